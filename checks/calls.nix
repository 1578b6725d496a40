# Calls: a client gets TURN credentials from Synapse (/voip/turnServer) and
# relays media through coturn to a peer on a public address; a peer on a
# private address is refused (coturn's denied-peer-ip, so that the TURN
# server cannot be used to reach the server's own network).
#
# The test network is 192.168.1.0/24 (private), so the public peer gets an
# extra address in 11.22.33.0/24 on the same link, and the server one in
# the same subnet to reach it.
{
  pkgs,
  self,
  testLib,
}:

let
  inherit (testLib) names passwords;
  inherit (testLib.commands) client curl;
  publicSubnet = "11.22.33";
  peerPort = 3480;
in
{
  name = "ospw-matrix-calls";

  nodes =
    testLib.serverAndClient self {
      server = {
        networking.interfaces.eth1.ipv4.addresses = [
          {
            address = "${publicSubnet}.1";
            prefixLength = 24;
          }
        ];
        # A short range is enough here and keeps the test's port checks fast.
        services.ospw-matrix.turn.relayPortRange = {
          from = 49152;
          to = 49352;
        };
      };
    }
    // {
      # A media peer on a public address, echoing what it receives.
      peer = {
        networking.interfaces.eth1.ipv4.addresses = [
          {
            address = "${publicSubnet}.2";
            prefixLength = 24;
          }
        ];
        networking.firewall.allowedUDPPorts = [ peerPort ];
        environment.systemPackages = [ pkgs.coturn ];
        systemd.services.turn-peer = {
          description = "TURN test peer (echo)";
          wantedBy = [ "multi-user.target" ];
          after = [ "network-online.target" ];
          wants = [ "network-online.target" ];
          serviceConfig = {
            ExecStart = "${pkgs.coturn}/bin/turnutils_peer -L ${publicSubnet}.2 -p ${toString peerPort}";
            DynamicUser = true;
          };
        };
      };
    };

  testScript =
    { nodes, ... }:
    ''
      import json
      import re

      ${testLib.helpersScript}


      def relay(peer_ip):
          """Runs turnutils_uclient from the client through the server's TURN
          port to peer_ip with fresh credentials from Synapse; returns
          (exit status, output, messages received back)."""
          creds = json.loads(client.succeed("${client} turn-credentials alice '${passwords.alice}'"))
          status, out = client.execute(
              "turnutils_uclient -p 3478 -n 10 -m 1 "
              f"-u '{creds['username']}' -w '{creds['password']}' "
              f"-e {peer_ip} -r ${toString peerPort} "
              "${nodes.server.networking.primaryIPAddress} 2>&1"
          )
          totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", out, re.MULTILINE)
          received = int(totals[-1][1]) if totals else 0
          return status, out, received


      start_all()
      wait_for_server()
      create_users()
      peer.wait_for_unit("turn-peer.service")
      client.wait_for_unit("multi-user.target")
      client.wait_until_succeeds("${curl} -sSf https://${names.matrix}/_matrix/client/versions", timeout=300)

      with subtest("Synapse hands out TURN credentials for the TURN host"):
          creds = json.loads(client.succeed("${client} turn-credentials alice '${passwords.alice}'"))
          assert creds["username"] and creds["password"], creds
          assert creds["username"].endswith(":@alice:${names.base}"), creds
          assert "turn:${names.turn}:3478?transport=udp" in creds["uris"], creds
          assert "turn:${names.turn}:3478?transport=tcp" in creds["uris"], creds
          assert 0 < creds["ttl"] <= 3600, creds

      with subtest("TURN credentials need a logged-in user"):
          code = client.succeed("${curl} -s -o /dev/null -w '%{http_code}' https://${names.matrix}/_matrix/client/v3/voip/turnServer")
          assert code == "401", code

      with subtest("media are relayed to a public peer"):
          status, out, received = relay("${publicSubnet}.2")
          assert status == 0, out
          assert received > 0, out
          assert "Total lost packets 0 " in out, out

      with subtest("a peer in a private range is refused"):
          status, out, received = relay("${nodes.client.networking.primaryIPAddress}")
          assert status != 0 or received == 0, out
          assert "403" in out, out
          server.succeed("journalctl -u ospw-matrix-coturn.service | grep -q 'denied in the range'")

      with subtest("wrong credentials are refused"):
          status, out = client.execute(
              "turnutils_uclient -p 3478 -n 1 -m 1 -u '9999999999:@alice:${names.base}' -w 'not-the-password' "
              "-e ${publicSubnet}.2 -r ${toString peerPort} ${nodes.server.networking.primaryIPAddress} 2>&1"
          )
          assert status != 0, out
    '';
}
