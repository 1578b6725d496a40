# Synapse with its workers (synapse.workers.enable, a sync and a client
# worker): the
# user-level checks of `basic` pass through the workers, a message sent
# through the client worker is received by /sync on the sync worker (their
# request counters say which process served what), Redis listens on its Unix
# socket only, every unit has the main unit's hardening, and restarting
# ospw-matrix-synapse.target restarts them all.
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
  name = "ospw-matrix-workers";

  nodes = testLib.serverAndClient self {
    server = {
      services.ospw-matrix.synapse = {
        workers = {
          enable = true;
          sync = 1;
          client = 1;
        };
      };
      # Each process's request counters (which process served what):
      # Synapse's metrics on 127.0.0.1:9000, the workers' on the next ports.
      services.ospw-matrix.metrics.enable = true;
    };
  };

  testScript =
    { nodes, ... }:
    let
      render = nodes.server.services.ospw-matrix.renderedConfig;
    in
    ''
      import json

      ${testLib.helpersScript}

      # services.ospw-matrix.synapse.workers.units (the evaluation tests
      # check the module derives these).
      units = ["ospw-matrix-synapse-worker-sync1.service", "ospw-matrix-synapse-worker-client1.service"]


      def wait_for_workers():
          server.wait_for_unit("redis-ospw-matrix.service")
          for unit in units:
              server.wait_for_unit(unit)
          server.wait_for_unit("ospw-matrix-synapse.target")
          for name in ["sync1", "client1"]:
              server.wait_until_succeeds(f"curl -sSf --unix-socket /run/ospw-matrix-workers/{name}.sock http://localhost/health")


      # Metrics ports: the main process's, then each worker's in order.
      metrics = {"main": 9000, "sync1": 9001, "client1": 9002}


      def served(process, method, servlet):
          """How many `method` requests `servlet` of `process` has handled (Synapse's counter)."""
          out = server.succeed(f"curl -s http://127.0.0.1:{metrics[process]}/_synapse/metrics")
          total = 0.0
          for line in out.splitlines():
              if (
                  line.startswith("synapse_http_server_requests_received_total{")
                  and f'method="{method}"' in line
                  and f'servlet="{servlet}"' in line
              ):
                  total += float(line.rsplit(" ", 1)[1])
          return total


      start_all()
      wait_for_server()
      wait_for_workers()

      with subtest("the rendered files: one configuration per worker beside the shared one"):
          for name in ["sync1", "client1"]:
              server.succeed(f"grep -q 'worker_name: {name}' ${render}/synapse/workers/{name}.yaml")
              server.succeed(f"grep -q credentials/ospw-matrix-synapse-worker-{name}.service ${render}/synapse/workers/{name}.yaml")
          server.succeed("grep -q 'worker_replication_secret_path' ${render}/synapse/homeserver.yaml")
          server.succeed("test -s /run/credentials/ospw-matrix-synapse-worker-client1.service/worker_replication_secret")

      with subtest("Redis: its Unix socket only, no TCP port; Synapse's processes on Unix sockets"):
          server.succeed("test -S /run/redis-ospw-matrix/redis.sock")
          server.fail("ss -Htlnp | grep -q redis-server")
          synapse_tcp = server.succeed("ss -Htlnp | grep python | awk '{print $4}'").split()
          assert synapse_tcp == ["127.0.0.1:8008"], synapse_tcp
          sockets = server.succeed("stat -c '%a %U %G %n' /run/ospw-matrix-workers/*.sock")
          assert "660 synapse synapse /run/ospw-matrix-workers/sync1.sock" in sockets, sockets
          assert "600 synapse synapse /run/ospw-matrix-workers/main-replication.sock" in sockets, sockets

      with subtest("every worker unit has the main unit's hardening and credentials"):
          keys = ["ProtectSystem", "PrivateUsers", "NoNewPrivileges", "CapabilityBoundingSet", "SystemCallFilter", "RestrictAddressFamilies", "User", "LoadCredential"]
          main = server.succeed("systemctl show ospw-matrix-synapse.service -p " + ",".join(keys))
          for unit in units:
              got = server.succeed(f"systemctl show {unit} -p " + ",".join(keys))
              assert sorted(got.split("\n")) == sorted(main.split("\n")), f"{unit}:\n{got}\nmain:\n{main}"

      with subtest("the administrator creates accounts; federation and registration stay closed"):
          create_users()
          client.wait_for_unit("multi-user.target")
          client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)
          out = json.loads(client.succeed("${client} register mallory"))
          assert out["status"] == 403, out
          for url in [
              "https://${names.matrix}/_matrix/federation/v1/version",
              "https://${names.matrix}/_matrix/key/v2/server",
              "https://${names.matrix}/.well-known/matrix/server",
          ]:
              code = client.succeed(f"${curl} -s -o /dev/null -w '%{{http_code}}' {url}")
              assert code == "404", f"{url}: HTTP {code}"
          for name in ["sync1", "client1"]:
              code = server.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' --unix-socket /run/ospw-matrix-workers/{name}.sock http://localhost/_matrix/federation/v1/version")
              assert code == "404", f"{name}: HTTP {code}"

      with subtest("a message sent through the client worker is received by /sync on the sync worker"):
          sends_before = served("client1", "PUT", "RoomSendEventRestServlet")
          syncs_before = served("sync1", "GET", "SyncRestServlet")
          out = json.loads(client.succeed("${client} conversation alice '${passwords.alice}' bob '${passwords.bob}'"))
          assert out["encryption"].get("algorithm") == "m.megolm.v1.aes-sha2", out
          assert sorted(out["received"]) == sorted(out["sent"]), out
          assert served("client1", "PUT", "RoomSendEventRestServlet") > sends_before
          assert served("sync1", "GET", "SyncRestServlet") > syncs_before
          assert served("main", "GET", "SyncRestServlet") == 0
          assert served("main", "PUT", "RoomSendEventRestServlet") == 0

      with subtest("restarting the target restarts Synapse and every worker; they serve again"):
          pids = {u: server.succeed(f"systemctl show -p MainPID --value {u}").strip() for u in units + ["ospw-matrix-synapse.service"]}
          server.succeed("systemctl restart ospw-matrix-synapse.target")
          wait_for_server()
          wait_for_workers()
          for unit, pid in pids.items():
              now = server.succeed(f"systemctl show -p MainPID --value {unit}").strip()
              assert now != pid and now != "0", f"{unit}: {pid} -> {now}"
          out = json.loads(client.succeed("${client} conversation alice '${passwords.alice}' bob '${passwords.bob}'"))
          assert sorted(out["received"]) == sorted(out["sent"]), out

      with subtest("no worker logged an error (Synapse's own Redis race at shutdown aside)"):
          for unit in units + ["ospw-matrix-synapse.service"]:
              errors = server.succeed(f"journalctl -o cat -u {unit} | grep ' - ERROR - ' | grep -v \"Background process 'send-cmd' threw an exception\" || true")
              assert errors.strip() == "", f"{unit}: {errors}"
    '';
}
