# Scheduled backups: the timer is armed; the backup unit writes a complete
# archive (mode 0600, in a 0700 directory) while the server runs; older
# archives beyond `keep` go only after a new one is written; after the
# database and a secret are wiped, `ospw-matrix restore` (the preconfigured
# CLI) brings the accounts, the room and its messages back.
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
  name = "ospw-matrix-backup";

  nodes = testLib.serverAndClient self {
    server.services.ospw-matrix.backup = {
      enable = true;
      keep = 2;
    };
  };

  testScript = ''
    import json

    ${testLib.helpersScript}


    def archives():
        return sorted(server.succeed("ls /var/backup/ospw-matrix/").split())


    def back_up():
        # A oneshot: `systemctl start` returns when it is done, and fails
        # when it failed. Archive names have a resolution of one second.
        server.succeed("sleep 1.1")
        server.succeed("systemctl start ospw-matrix-backup.service")


    start_all()
    wait_for_server()
    create_users()
    client.wait_for_unit("multi-user.target")
    client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

    conversation = json.loads(client.succeed("${client} conversation alice '${passwords.alice}' bob '${passwords.bob}'"))
    assert sorted(conversation["received"]) == sorted(conversation["sent"]), conversation
    room_id = conversation["room_id"]

    with subtest("the timer is armed; the directory is root's, 0700"):
        server.wait_for_unit("ospw-matrix-backup.timer")
        server.succeed("test \"$(stat -c '%a %U' /var/backup/ospw-matrix)\" = '700 root'")
        assert archives() == [], archives()

    with subtest("a backup writes one complete archive, mode 0600"):
        back_up()
        names = archives()
        assert len(names) == 1, names
        first = "/var/backup/ospw-matrix/" + names[0]
        server.succeed(f"test \"$(stat -c '%a %U' {first})\" = '600 root'")
        members = server.succeed(f"tar -tf {first}").split()
        for member in ["manifest.json", "host/host-description", "database/synapse.pgdump"]:
            assert member in members, (member, members)
        for name in ["signing_key", "registration_shared_secret", "macaroon_secret_key", "form_secret", "turn_shared_secret"]:
            # Read through the unit's own credentials: the same files.
            server.succeed(f"tar -xOf {first} secrets/{name} | cmp - /var/lib/ospw-matrix/secrets/{name}")

    with subtest("keep = 2: the oldest archive goes once a third is written"):
        back_up()
        assert len(archives()) == 2, archives()
        back_up()
        names = archives()
        assert len(names) == 2 and first.rsplit("/", 1)[1] not in names, names
        latest = "/var/backup/ospw-matrix/" + names[-1]
        server.succeed("journalctl -u ospw-matrix-backup.service | grep -q 'deleting .*keep = 2'")

    with subtest("restore refuses while Synapse runs"):
        out = server.fail(f"ospw-matrix restore {latest} 2>&1")
        assert "stop it first" in out, out

    with subtest("after the database and a secret are lost, restore brings them back"):
        server.succeed("systemctl stop ospw-matrix-synapse.service")
        server.succeed("runuser -u postgres -- psql -c 'DROP DATABASE synapse'")
        # Recreates the empty database (Synapse, stopped, stays stopped).
        server.succeed("systemctl restart ospw-matrix-db-init.service")
        server.succeed("rm /var/lib/ospw-matrix/secrets/form_secret")
        out = server.succeed(f"ospw-matrix restore {latest}")
        print(out)
        server.succeed(f"tar -xOf {latest} secrets/form_secret | cmp - /var/lib/ospw-matrix/secrets/form_secret")
        server.succeed("test \"$(stat -c '%a %U' /var/lib/ospw-matrix/secrets/form_secret)\" = '600 root'")
        server.succeed("systemctl start ospw-matrix-synapse.service")
        wait_for_server()
        client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

    with subtest("accounts, the room and its messages are back"):
        for user, password in [("alice", "${passwords.alice}"), ("bob", "${passwords.bob}")]:
            history = json.loads(client.succeed(f"${client} history {user} '{password}' '{room_id}'"))
            assert room_id in history["joined_rooms"], history
            for text in conversation["sent"]:
                assert text in history["ciphertexts"], (text, history)
  '';
}
