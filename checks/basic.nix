# The whole stack on one server, used from a client machine: the
# administrator creates accounts with the preconfigured CLI, a client
# discovers the homeserver and logs in, new rooms are encrypted, messages
# flow; registration is closed, federation is not served, Element and its
# configuration are, no secret is in the store and only the expected ports
# are reachable.
#
# Two clients: matrix-test-client (checks/lib, Python standard library) for
# the HTTP-level checks, and matrix-commander-rs, a real E2E client built on
# matrix-rust-sdk (vodozemac, so no olm, which nixpkgs marks insecure): Alice
# creates a room without asking for encryption, invites Bob, sends; Bob
# decrypts what she sent, while the server only ever holds ciphertext.
{
  pkgs,
  self,
  testLib,
}:

let
  inherit (testLib) names passwords;
  inherit (testLib.commands) client curl;
  # matrix-commander-rs, one credentials file and store per user; stdin from
  # /dev/null (it reads a message from stdin when asked with `-`). Its TLS
  # (OpenSSL) is pointed at the system bundle, which holds the test CA.
  mc = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt matrix-commander-rs --timeout 30";
in
{
  name = "ospw-matrix-basic";

  nodes = testLib.serverAndClient self {
    client.environment.systemPackages = [ pkgs.matrix-commander-rs ];
  };

  testScript =
    { nodes, ... }:
    let
      render = nodes.server.services.ospw-matrix.renderedConfig;
    in
    ''
      import json

      secrets = ["signing_key", "registration_shared_secret", "macaroon_secret_key", "form_secret", "turn_shared_secret"]

      ${testLib.helpersScript}

      start_all()
      wait_for_server()

      with subtest("secrets are generated root-only and handed to Synapse as credentials"):
          server.succeed("test \"$(stat -c '%a %U' /var/lib/ospw-matrix/secrets)\" = '700 root'")
          for name in secrets:
              server.succeed(f"test \"$(stat -c '%a %U' /var/lib/ospw-matrix/secrets/{name})\" = '600 root'")
              server.succeed(f"test -s /run/credentials/ospw-matrix-synapse.service/{name}")
          server.succeed("grep -q /run/credentials/ospw-matrix-synapse.service/signing_key ${render}/synapse/homeserver.yaml")
          # coturn's runtime configuration holds the secret; only its own user can read it.
          server.succeed("test \"$(stat -c '%a' /run/ospw-matrix-coturn/turnserver.conf)\" = 600")

      with subtest("Synapse's database has C collation, and creating it again is a no-op"):
          collation = server.succeed("runuser -u postgres -- psql -tAc \"SELECT datcollate || '|' || datctype || '|' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'synapse'\"")
          assert collation.strip() == "C|C|synapse", collation
          # Synapse requires the unit, so it is restarted along with it.
          server.succeed("systemctl restart ospw-matrix-db-init.service")
          wait_for_server()

      with subtest("Synapse and PostgreSQL listen on loopback only"):
          listeners = server.succeed("ss -Htln | awk '{print $4}'").split()
          assert "127.0.0.1:8008" in listeners, listeners
          exposed = [l for l in listeners if l.rsplit(":", 1)[1] in ("8008", "5432") and not l.startswith(("127.0.0.1:", "[::1]:"))]
          assert exposed == [], exposed

      with subtest("the administrator creates accounts with the CLI"):
          create_users()
          server.fail("sudo ospw-matrix user add alice --password-file /root/alice.password")
          admin = "matrix-test-client --homeserver http://127.0.0.1:8008 is-admin alice '${passwords.alice}'"
          assert json.loads(server.succeed(f"{admin} @alice:${names.base}")) == {"admin": True}
          assert json.loads(server.succeed(f"{admin} @bob:${names.base}")) == {"admin": False}

      client.wait_for_unit("multi-user.target")
      client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

      with subtest("clients discover the homeserver through .well-known"):
          wk = json.loads(client.succeed("${curl} -sSf https://${names.base}/.well-known/matrix/client"))
          assert wk["m.homeserver"]["base_url"] == "https://${names.matrix}", wk

      with subtest("a client logs in; a new room is encrypted by default; messages flow"):
          conversation = json.loads(client.succeed("${client} conversation alice '${passwords.alice}' bob '${passwords.bob}'"))
          assert conversation["encryption"].get("algorithm") == "m.megolm.v1.aes-sha2", conversation
          assert conversation["device_keys_found"] and conversation["one_time_key_claimed"], conversation
          assert sorted(conversation["received"]) == sorted(conversation["sent"]), conversation

      def mc(user, args):
          return client.succeed(
              f"${mc} --credentials /root/mc-{user}/credentials.json --store /root/mc-{user}/store {args} </dev/null"
          )


      def mc_json(user, args):
          """The JSON objects matrix-commander-rs printed (one a line)."""
          out = mc(user, f"--output json {args}")
          return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


      with subtest("a real E2E client: Bob decrypts what Alice sent; the server holds only ciphertext"):
          passwords = {"alice": "${passwords.alice}", "bob": "${passwords.bob}"}
          for user in ["bob", "alice"]:
              client.succeed(f"mkdir -p /root/mc-{user}")
              # Logging in uploads the device's identity and one-time keys.
              mc(user, " ".join([
                  "--login password",
                  "--homeserver https://${names.matrix}",
                  f"--user-login @{user}:${names.base}",
                  f"--password '{passwords[user]}'",
                  f"--device vm-test-{user}",
                  "--room-default '!unused:${names.base}'",
              ]))
          # --plain true: the client does not ask for encryption; the server
          # turns it on (encryption by default).
          created = mc_json("alice", "--room-create ospw-e2e --name 'E2E test' --topic 'VM test' --plain true")
          room = created[0]["room_id"]
          assert room.startswith("!"), created
          mc("alice", f"--room-invite '{room}' --user '@bob:${names.base}'")
          mc("bob", f"--room-join '{room}'")
          texts = ["e2e-plaintext-one", "e2e-plaintext-two"]
          mc("alice", f"--room '{room}' --message {texts[0]} {texts[1]}")
          # Bob's sync brings Alice's Megolm session (to-device, Olm); --tail
          # reads the room's last events and decrypts them.
          events = mc_json("bob", f"--room '{room}' --tail 30")
          decrypted = [
              e["content"].get("body")
              for e in events
              if e.get("type") == "m.room.message" and e.get("sender") == "@alice:${names.base}"
          ]
          assert decrypted == texts, events
          for text in texts:
              held = json.loads(client.succeed(f"${client} room-events bob '${passwords.bob}' '{room}' {text}"))
              assert held["encryption"] is not None and held["encryption"].get("algorithm") == "m.megolm.v1.aes-sha2", held
              assert "m.room.message" not in held["message_types"] and "m.room.encrypted" in held["message_types"], held
              assert held["needle_in_clear"] is False, held

      with subtest("registration is closed"):
          registration = json.loads(client.succeed("${client} register mallory"))
          assert registration["status"] == 403, registration
          for user, password in [("mallory", "a-password-nobody-should-get-0"), ("alice", "wrong-password")]:
              login = json.loads(client.succeed(f"${client} try-login {user} {password}"))
              assert login == {"status": 403, "errcode": "M_FORBIDDEN"}, login

      with subtest("federation is not served"):
          for url in [
              "https://${names.matrix}/_matrix/federation/v1/version",
              "https://${names.matrix}/_matrix/key/v2/server",
              "https://${names.matrix}/.well-known/matrix/server",
              "https://${names.base}/.well-known/matrix/server",
          ]:
              code = client.succeed(f"${curl} -s -o /dev/null -w '%{{http_code}}' {url}")
              assert code == "404", f"{url}: HTTP {code}"

      with subtest("Element Web and its rendered configuration are served"):
          config = json.loads(client.succeed("${curl} -sSf https://${names.element}/config.json"))
          assert config["default_server_config"]["m.homeserver"]["base_url"] == "https://${names.matrix}", config
          assert config["brand"] == "OSPW Test Chat", config
          content_type = client.succeed("${curl} -sSf -o /dev/null -w '%{content_type}' https://${names.element}/")
          assert content_type.startswith("text/html"), content_type
          client.succeed("${curl} -sSf https://${names.element}/ | grep -qi '<script'")

      with subtest("no secret value is in the Nix store"):
          # The system's closure: every store path the server uses (the
          # rendered configuration, the units, the admin wrapper, ...).
          # One pattern per line of every secret file (no empty pattern,
          # which would match everything), searched in one pass.
          server.succeed("grep -hv '^$' /var/lib/ospw-matrix/secrets/* > /root/secret-patterns")
          assert int(server.succeed("wc -l < /root/secret-patterns")) == len(secrets)
          found = server.succeed("grep -rlsF -f /root/secret-patterns $(nix-store --query --requisites /run/current-system) || true")
          assert found.strip() == "", f"secrets found in the store: {found}"

      with subtest("only HTTP, HTTPS and TURN are reachable from the network"):
          scan = client.succeed("nmap -Pn -sT -p- --min-rate 2000 --max-retries 1 -oG - ${names.matrix}")
          open_ports = sorted(
              int(entry.strip().split("/")[0])
              for line in scan.splitlines()
              if "Ports:" in line
              for entry in line.split("Ports:")[1].split("\t")[0].split(",")
              if "/open/" in entry
          )
          assert open_ports == [80, 443, 3478], open_ports
    '';
}
