# Calls: a client gets TURN credentials from Synapse (/voip/turnServer) and
# relays media through coturn to a peer on an ordinary public address: a
# permission and a channel to it succeed and data flows both ways through
# the relay, over UDP and TCP. Every denied range (coturn's denied-peer-ip,
# so that the TURN server cannot be used to reach the server's own network)
# is refused with 403.
#
# The peer sits on a network of its own (vlan 2) with a public address in
# 11.22.33.0/24, which the client (vlan 1) cannot reach: media reach it only
# through the relay. The server has an address on both, and relays from its
# address on the peer's network.
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
        virtualisation.vlans = [
          1
          2
        ];
        networking.interfaces.eth2.ipv4.addresses = [
          {
            address = "${publicSubnet}.1";
            prefixLength = 24;
          }
        ];
        # turnutils_uclient, for the denied-range probes.
        environment.systemPackages = [ pkgs.coturn ];
        services.ospw-matrix.turn = {
          # Relay from the address on the peer's network, so the peer's
          # answers come back to the relay.
          relayIp = "${publicSubnet}.1";
          # A short range is enough here and keeps the test's port checks fast.
          relayPortRange = {
            from = 49152;
            to = 49352;
          };
        };
      };
    }
    // {
      # A media peer on a public address, echoing what it receives.
      peer = {
        virtualisation.vlans = [ 2 ];
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
      import ipaddress
      import json
      import re

      ${testLib.helpersScript}

      SERVER_IP = "${nodes.server.networking.primaryIPAddress}"
      PEER_IP = "${publicSubnet}.2"


      def relay(peer_ip: str, user: str = "alice", flags: str = "", messages: int = 10) -> tuple[int, str, int, int]:
          """Runs turnutils_uclient from the client through the server's TURN
          port to peer_ip with fresh credentials from Synapse for `user`
          (`flags`: -t for TCP to the server, -s for CreatePermission + Send
          instead of ChannelBind + ChannelData); returns (exit status,
          output, messages sent, messages received back)."""
          password = {"alice": "${passwords.alice}", "bob": "${passwords.bob}"}[user]
          creds = json.loads(client.succeed(f"${client} turn-credentials {user} '{password}'"))
          status, out = client.execute(
              f"turnutils_uclient -c -p 3478 -n {messages} -m 1 {flags} "
              f"-u '{creds['username']}' -w '{creds['password']}' "
              f"-e {peer_ip} -r ${toString peerPort} {SERVER_IP} 2>&1"
          )
          totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", out, re.MULTILINE)
          sent, received = (int(totals[-1][0]), int(totals[-1][1])) if totals else (0, 0)
          return status, out, sent, received


      def denied_probes() -> list[str]:
          """The first and last address of every IPv4 denied-peer-ip range of
          the runtime configuration coturn reads."""
          conf = server.succeed("cat /run/ospw-matrix-coturn/turnserver.conf")
          probes: list[str] = []
          for line in conf.splitlines():
              if not line.startswith("denied-peer-ip="):
                  continue
              ends = [ipaddress.ip_address(a) for a in line.split("=", 1)[1].split("-")]
              if ends[0].version == 4:
                  probes.extend(str(a) for a in dict.fromkeys([ends[0], ends[-1]]))
          return probes


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

      with subtest("the peer is reachable only through the relay"):
          client.fail(f"ping -c 1 -W 2 {PEER_IP}")

      with subtest("a public peer gets a permission and a channel, and media flow both ways"):
          for user, flags, step in [
              ("alice", "", "channel bind"),
              ("alice", "-t", "channel bind"),
              ("bob", "-s", "create perm"),
              ("bob", "-t -s", "create perm"),
          ]:
              status, out, sent, received = relay(PEER_IP, user, flags)
              assert status == 0, out
              assert f"{step} sent" in out, out
              assert "channel bind: error" not in out and "create permission error" not in out, out
              assert sent == 10 and received == sent, out
              assert "Total lost packets 0 " in out, out
          server.fail("journalctl -u ospw-matrix-coturn.service | grep -q 'denied in the range'")

      with subtest("a peer in a private range is refused"):
          status, out, sent, received = relay("${nodes.client.networking.primaryIPAddress}")
          assert status != 0 or received == 0, out
          assert "403" in out, out
          server.succeed("journalctl -u ospw-matrix-coturn.service | grep -q 'denied in the range'")

      with subtest("every denied range is refused, on UDP and TCP allocations"):
          # From the server, with credentials made from the shared secret and
          # a user name per probe (each allocation counts against its user's
          # quota until it expires).
          secret = "$(cat /var/lib/ospw-matrix/secrets/turn_shared_secret)"
          probes = denied_probes()
          assert len(probes) >= 25, probes
          for i, address in enumerate(probes):
              for flags in ["", "-t"]:
                  out = server.succeed(
                      f"turnutils_uclient -c -s -n 0 {flags} -W \"{secret}\" -u probe{i}{flags.strip('-')} "
                      f"-p 3478 -e {address} {SERVER_IP} 2>&1 || true"
                  )
                  assert "create permission error 403" in out, f"{address} {flags}: {out}"

      with subtest("wrong credentials are refused"):
          status, out = client.execute(
              "turnutils_uclient -p 3478 -n 1 -m 1 -u '9999999999:@alice:${names.base}' -w 'not-the-password' "
              f"-e {PEER_IP} -r ${toString peerPort} {SERVER_IP} 2>&1"
          )
          assert status != 0, out
    '';
}
