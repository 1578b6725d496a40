# The ports clients need, and nothing else: HTTP and HTTPS (TCP), HTTP/3 on
# the HTTPS port (UDP: Caddy serves it by default, as nixpkgs' own
# services.caddy.openFirewall opens it), the TURN port (TCP and UDP), the
# TURN TLS/DTLS port when TURN over TLS is on, and the relay range (UDP).
# Synapse listens on loopback and PostgreSQL on its Unix socket, so neither
# is ever opened.
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  turnPorts = [ cfg.turn.port ] ++ lib.optional cfg.turn.tls.enable cfg.turn.tls.port;
in
{
  config = lib.mkIf (cfg.enable && cfg.openFirewall) {
    networking.firewall = {
      allowedTCPPorts = [
        cfg.proxy.httpPort
        cfg.proxy.httpsPort
      ]
      ++ turnPorts;
      allowedUDPPorts = [ cfg.proxy.httpsPort ] ++ turnPorts;
      allowedUDPPortRanges = [ cfg.turn.relayPortRange ];
    };
  };
}
