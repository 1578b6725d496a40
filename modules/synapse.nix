# ospw-matrix-synapse.service: Synapse with the rendered homeserver.yaml.
# Every secret arrives as a systemd credential (homeserver.yaml's `*_path`
# options point into /run/credentials/ospw-matrix-synapse.service). The
# sandboxing is at least that of nixpkgs' matrix-synapse module.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };

  user = cfg.synapse.database.user;
  inherit (cfg.synapse) dataDir;
  mediaStore = if cfg.synapse.mediaStorePath != null then cfg.synapse.mediaStorePath else "${dataDir}/media_store";

  # Directories under /var/lib are systemd state directories; others are
  # created by tmpfiles.
  stateDirectoryOf = dir: if lib.hasPrefix "/var/lib/" dir then lib.removePrefix "/var/lib/" dir else null;
  dataStateDirectory = stateDirectoryOf dataDir;

  usesSocket = cfg.synapse.listen.unixSocket != null;

  dbUnits = lib.optionals cfg.synapse.database.createLocally [
    "postgresql.target"
    "ospw-matrix-db-init.service"
  ];
in
{
  config = lib.mkIf cfg.enable {
    users.users.${user} = {
      isSystemUser = true;
      group = user;
      home = dataDir;
      description = "OSPW Matrix Synapse";
    };
    users.groups.${user} = { };

    systemd.tmpfiles.rules =
      lib.optional (dataStateDirectory == null) "d ${dataDir} 0700 ${user} ${user} - -"
      ++ lib.optional (
        cfg.synapse.mediaStorePath != null && !lib.hasPrefix "${dataDir}/" cfg.synapse.mediaStorePath
      ) "d ${cfg.synapse.mediaStorePath} 0700 ${user} ${user} - -";

    systemd.services.ospw-matrix-synapse = {
      description = "OSPW Matrix: Synapse homeserver";
      documentation = [ "https://element-hq.github.io/synapse/latest/" ];
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "ospw-matrix-secrets.service"
      ]
      ++ dbUnits;
      requires = [ "ospw-matrix-secrets.service" ] ++ dbUnits;

      serviceConfig = lib.recursiveUpdate ospwLib.hardening (
        {
          Type = "notify";
          NotifyAccess = "main";
          User = user;
          Group = user;
          WorkingDirectory = dataDir;
          ExecStart = lib.concatStringsSep " " (
            [
              "${lib.getExe' (ospwLib.synapsePackage cfg) "synapse_homeserver"}"
              "--config-path ${cfg.renderedConfig}/synapse/homeserver.yaml"
            ]
            # The secrets Synapse cannot read from a file (modules/sso.nix).
            ++ lib.optional (ospwLib.needsRuntimeSecrets cfg) "--config-path ${ospwLib.runtimeSecretsFile}"
            ++ [ "--keys-directory ${ospwLib.escapeExecArg dataDir}" ]
          );
          ExecReload = "${lib.getExe' pkgs.coreutils "kill"} -HUP $MAINPID";
          Restart = "on-failure";
          RestartSec = "5s";
          LoadCredential = ospwLib.loadCredentials cfg (ospwLib.synapseSecrets cfg);
          # (A media store inside the data directory is covered by it; one
          # outside is created by tmpfiles, as ReadWritePaths= must exist.)
          ReadWritePaths = [ dataDir ] ++ lib.optional (!lib.hasPrefix "${dataDir}/" mediaStore) mediaStore;
          PrivateUsers = true;
          # cffi callbacks (used by Synapse's dependencies) need writable
          # executable memory; nixpkgs' module does not set it either.
          MemoryDenyWriteExecute = false;
        }
        // lib.optionalAttrs (dataStateDirectory != null) {
          StateDirectory = dataStateDirectory;
          StateDirectoryMode = "0700";
        }
        // lib.optionalAttrs usesSocket {
          RuntimeDirectory = "ospw-matrix-synapse";
          RuntimeDirectoryMode = "0750";
        }
      );
    };
  };
}
