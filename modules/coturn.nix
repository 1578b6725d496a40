# ospw-matrix-coturn.service: coturn, the TURN server for calls. The
# rendered turnserver.conf has no secret; at start, `ospw-matrix materialize
# coturn` writes the runtime configuration with the TURN shared secret (from
# the unit's credentials) into the runtime directory (mode 0600), readable
# by coturn's dynamic user only.
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };

  runtimeDir = "/run/ospw-matrix-coturn";
  runtimeConfig = "${runtimeDir}/turnserver.conf";

  ports = [
    cfg.turn.port
    cfg.turn.relayPortRange.from
  ]
  ++ lib.optional cfg.turn.tls.enable cfg.turn.tls.port;
  needsLowPorts = lib.any (port: port < 1024) ports;

  # TURN over TLS with a certificate of security.acme (turn.tls.useACMEHost):
  # acme-<name>.service puts a certificate in place (a self-signed one until
  # the first order succeeds), so coturn starts after it; a renewal
  # restarts coturn, which loads the new files as credentials.
  acmeCert = if cfg.turn.tls.enable then cfg.turn.tls.useACMEHost else null;
  acmeUnits = lib.optional (acmeCert != null) "acme-${acmeCert}.service";
in
{
  config = lib.mkIf cfg.enable {
    services.ospw-matrix.turn.tls = lib.mkIf (acmeCert != null) {
      certFile = lib.mkDefault "${config.security.acme.certs.${acmeCert}.directory}/fullchain.pem";
      keyFile = lib.mkDefault "${config.security.acme.certs.${acmeCert}.directory}/key.pem";
    };
    security.acme.certs = lib.mkIf (acmeCert != null) {
      ${acmeCert}.reloadServices = [ "ospw-matrix-coturn.service" ];
    };

    systemd.services.ospw-matrix-coturn = {
      description = "OSPW Matrix: coturn TURN server";
      documentation = [ "man:turnserver(1)" ];
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ acmeUnits;
      after = [
        "network-online.target"
        "ospw-matrix-secrets.service"
      ]
      ++ acmeUnits;
      requires = [ "ospw-matrix-secrets.service" ];

      serviceConfig = lib.recursiveUpdate ospwLib.hardening {
        # nixpkgs' coturn is built with libsystemd and tells systemd when it
        # is ready (nixpkgs' own services.coturn runs it so, too): units
        # ordered after this one start once coturn listens. A coturn built
        # without libsystemd (turn.package) would never become ready.
        Type = "notify";
        DynamicUser = true;
        RuntimeDirectory = "ospw-matrix-coturn";
        RuntimeDirectoryMode = "0700";
        LoadCredential =
          ospwLib.loadCredentials cfg [ "turn_shared_secret" ]
          ++ lib.optionals cfg.turn.tls.enable [
            "turn_tls_cert:${cfg.turn.tls.certFile}"
            "turn_tls_key:${cfg.turn.tls.keyFile}"
          ];
        # %d is the credentials directory ($CREDENTIALS_DIRECTORY).
        ExecStartPre = lib.concatStringsSep " " [
          "${lib.getExe' cfg.package "ospw-matrix"} materialize coturn"
          "--template ${cfg.renderedConfig}/coturn/turnserver.conf"
          "--secret-file %d/turn_shared_secret"
          "--out ${runtimeConfig}"
        ];
        # Logs go to the journal; the pid file to the runtime directory
        # (the rest of the file system is read-only).
        ExecStart = lib.concatStringsSep " " [
          "${lib.getExe' cfg.turn.package "turnserver"}"
          "-c ${runtimeConfig}"
          "--log-file stdout"
          "--pidfile ${runtimeDir}/turnserver.pid"
        ];
        Restart = "on-failure";
        RestartSec = "5s";
        LimitNOFILE = 65536;
        # coturn enumerates the host's addresses through netlink.
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
          "AF_NETLINK"
        ];
        # coturn raises its file limit and may adjust its scheduling at
        # start: keep @resources allowed, and let any other refused system
        # call fail with EPERM rather than kill the server.
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
        PrivateUsers = !needsLowPorts;
        CapabilityBoundingSet = if needsLowPorts then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.mkIf needsLowPorts [ "CAP_NET_BIND_SERVICE" ];
      };
    };
  };
}
