# A reboot keeps everything: accounts, rooms and messages (PostgreSQL), the
# generated secrets (never regenerated, so the signing key and the server's
# identity stay), and the services come back by themselves.
{
  pkgs,
  self,
  testLib,
}:

let
  inherit (testLib) names passwords;
  inherit (testLib.commands) client curl;
in
{
  name = "ospw-matrix-restart";

  nodes = testLib.serverAndClient self { };

  testScript = ''
    import json

    ${testLib.helpersScript}


    def secrets_fingerprint():
        return server.succeed(
            "cd /var/lib/ospw-matrix/secrets && stat -c '%n %i %Y %a' * && sha256sum *"
        )


    start_all()
    wait_for_server()
    create_users()
    client.wait_for_unit("multi-user.target")
    client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

    conversation = json.loads(client.succeed("${client} conversation alice '${passwords.alice}' bob '${passwords.bob}'"))
    assert sorted(conversation["received"]) == sorted(conversation["sent"]), conversation
    room_id = conversation["room_id"]
    before = secrets_fingerprint()

    with subtest("the server reboots and comes back by itself"):
        server.shutdown()
        server.start()
        wait_for_server()
        client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

    with subtest("the secrets were kept, not regenerated"):
        after = secrets_fingerprint()
        assert before == after, f"before:\n{before}\nafter:\n{after}"
        # Running the generator again changes nothing (Synapse and coturn,
        # which require it, restart along with it).
        server.succeed("systemctl restart ospw-matrix-secrets.service")
        assert secrets_fingerprint() == before
        wait_for_server()
        client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

    with subtest("accounts, the room and its messages survived"):
        for user, password in [("alice", "${passwords.alice}"), ("bob", "${passwords.bob}")]:
            history = json.loads(client.succeed(f"${client} history {user} '{password}' '{room_id}'"))
            assert room_id in history["joined_rooms"], history
            for text in conversation["sent"]:
                assert text in history["ciphertexts"], (text, history)

    with subtest("the room is still encrypted and messages still flow"):
        again = json.loads(client.succeed("${client} conversation alice '${passwords.alice}' bob '${passwords.bob}'"))
        assert again["encryption"].get("algorithm") == "m.megolm.v1.aes-sha2", again
        assert sorted(again["received"]) == sorted(again["sent"]), again

    with subtest("Synapse still signs with the same key"):
        # Every event Synapse created, before and after the reboot, carries
        # a signature by the key in the (unchanged) signing key file.
        algorithm, version, _seed = server.succeed("cat /var/lib/ospw-matrix/secrets/signing_key").split()
        key_ids = server.succeed(
            "runuser -u postgres -- psql -d synapse -tAc "
            + "\"SELECT DISTINCT jsonb_object_keys((json::jsonb)->'signatures'->'${names.base}') FROM event_json\""
        ).split()
        assert key_ids == [f"{algorithm}:{version}"], key_ids
  '';
}
