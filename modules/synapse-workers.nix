# Synapse's workers (services.ospw-matrix.synapse.workers): one unit per
# worker, ospw-matrix-synapse-worker-NAME.service, all of them and the main
# process under ospw-matrix-synapse.target (restarting the target restarts
# them together), ordered after the main process and Redis
# (services.redis.servers.ospw-matrix, on a Unix socket only, Synapse's user
# in its group). Each worker unit has the main unit's hardening and
# credentials (its serviceConfig, with its own command); the host
# description points each worker at its own credentials directory.
#
# The worker names come from the same presets as the crate's
# (crates/ospw-matrix/src/host/worker-presets.json): `<kind><n>`, kinds in
# the file's order, n from 1. Workers on other hosts are not run here (see
# docs/scaling.md).
{
  config,
  lib,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };
  wcfg = cfg.synapse.workers;
  user = cfg.synapse.database.user;

  presets = builtins.fromJSON (builtins.readFile ../crates/ospw-matrix/src/host/worker-presets.json);

  # Host description field (kind) -> option name.
  optionOf = {
    sync = "sync";
    client = "client";
    event_persister = "eventPersister";
    stream_writer = "streamWriter";
    media = "media";
    background = "background";
  };

  count =
    kind:
    let
      explicit = wcfg.${optionOf.${kind}};
    in
    if explicit != null then explicit else presets.presets.${wcfg.preset}.${kind};

  # Every worker's name, in the crate's order.
  names = lib.concatMap (kind: map (n: "${kind}${toString n}") (lib.range 1 (count kind))) presets.kinds;

  unit = name: "ospw-matrix-synapse-worker-${name}";

  socketDir = "/run/ospw-matrix-workers";
  redis = config.services.redis.servers.ospw-matrix;

  countOption =
    what:
    mkOption {
      type = types.nullOr types.ints.unsigned;
      default = null;
      description = "How many workers ${what}; `null` takes the preset's count.";
    };

  # The main unit's service configuration, without what belongs to it
  # alone (its command, its reload, its runtime directory).
  mainServiceConfig = config.systemd.services.ospw-matrix-synapse.serviceConfig;
  workerServiceConfig =
    name:
    removeAttrs mainServiceConfig [
      "ExecStart"
      "ExecReload"
      "RuntimeDirectory"
      "RuntimeDirectoryMode"
    ]
    // {
      ExecStart = lib.concatStringsSep " " [
        "${lib.getExe' (ospwLib.synapsePackage cfg) "synapse_worker"}"
        "--config-path ${cfg.renderedConfig}/synapse/homeserver.yaml"
        "--config-path ${cfg.renderedConfig}/synapse/workers/${name}.yaml"
      ];
    };
in
{
  options.services.ospw-matrix.synapse.workers = {
    enable = lib.mkEnableOption ''
      Synapse's worker processes (with Redis on a Unix socket): `/sync`, the
      client API and the main process's background duties in their own
      processes, so that Synapse uses more than one core. Off, Synapse runs
      as one process. See docs/scaling.md and BENCHMARKS.md for what they
      cost and bring'';

    preset = mkOption {
      type = types.enum (lib.attrNames presets.presets);
      default = "small";
      description = ''
        The workers of a common size: `small` (one sync worker),
        `medium` (two sync and two client workers, an event persister, a
        stream writer, a media repository and a background worker, for 4
        to 8 cores). On 2 cores Synapse as one process is faster (see
        BENCHMARKS.md). The counts below replace the preset's.
      '';
    };

    sync = countOption "serving `/sync` (requests spread by user)";
    client = countOption "serving the rest of the client API they can";
    eventPersister = countOption "persisting events";
    streamWriter = countOption "writing the typing, to-device, account data, receipts, presence and push rules streams (0 or 1)";
    media = countOption "serving the media repository (0 or 1)";
    background = countOption "taking the main process's background duties (0 or 1; without one, the first client worker takes them)";

    units = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      description = "The workers' unit names (`ospw-matrix-synapse-worker-NAME.service`), in start order.";
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      { services.ospw-matrix.synapse.workers.units = lib.optionals wcfg.enable (map (n: "${unit n}.service") names); }
      (lib.mkIf wcfg.enable {
        # Redis relays replication between the processes: a Unix socket
        # only (port 0), nothing kept on disk, its group admitting Synapse.
        services.redis.servers.ospw-matrix = {
          enable = true;
          port = 0;
          unixSocketPerm = 660;
          save = [ ];
          appendOnly = false;
        };
        users.users.${user}.extraGroups = [ redis.user ];
        # Caddy reaches the workers' sockets (0660, in a 0750 directory)
        # through Synapse's group.
        users.users.${config.services.caddy.user}.extraGroups = [ user ];

        systemd.tmpfiles.rules = [ "d ${socketDir} 0750 ${user} ${user} - -" ];

        systemd.targets.ospw-matrix-synapse = {
          description = "OSPW Matrix: Synapse and its workers";
          wantedBy = [ "multi-user.target" ];
          wants = [ "ospw-matrix-synapse.service" ] ++ map (n: "${unit n}.service") names;
        };

        systemd.services = {
          ospw-matrix-synapse = {
            partOf = [ "ospw-matrix-synapse.target" ];
            after = [ "redis-ospw-matrix.service" ];
            requires = [ "redis-ospw-matrix.service" ];
            serviceConfig.ReadWritePaths = [ socketDir ];
          };
          caddy.after = map (n: "${unit n}.service") names;
        }
        // lib.listToAttrs (
          map (name: {
            name = unit name;
            value = {
              description = "OSPW Matrix: Synapse worker ${name}";
              documentation = [ "https://element-hq.github.io/synapse/latest/workers.html" ];
              wantedBy = [ "ospw-matrix-synapse.target" ];
              # Restarted with the target and with the main process; stopped
              # when either stops.
              partOf = [
                "ospw-matrix-synapse.target"
                "ospw-matrix-synapse.service"
              ];
              after = [
                "ospw-matrix-synapse.service"
                "redis-ospw-matrix.service"
              ];
              requires = [
                "ospw-matrix-synapse.service"
                "redis-ospw-matrix.service"
              ];
              serviceConfig = workerServiceConfig name;
            };
          }) names
        );
      })
    ]
  );
}
