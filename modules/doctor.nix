# `ospw-matrix doctor` on NixOS: the environment that preconfigures it (the
# admin wrapper in admin-cli.nix exports the same, so `sudo ospw-matrix
# doctor` needs no option), and, opt-in, ospw-matrix-doctor.service with a
# timer (weekly by default). The service is a oneshot that exits non-zero
# when a check fails, so a broken or no longer private server shows in
# `systemctl --failed` (and in the journal, one line per check).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ospw-matrix;
  dcfg = cfg.doctor;
  ospwLib = import ./lib.nix { inherit lib; };
  opt = "services.ospw-matrix.doctor";
  db = cfg.synapse.database;
  unitName = "ospw-matrix-doctor";

  # The units whose state the doctor checks.
  units = [
    "ospw-matrix-synapse.service"
    "ospw-matrix-coturn.service"
    "caddy.service"
  ]
  ++ lib.optional db.createLocally "postgresql.service";
in
{
  options.services.ospw-matrix.doctor = {
    enable = lib.mkEnableOption ''
      `ospw-matrix-doctor.service` and a timer that runs `ospw-matrix
      doctor` (every check from the outside in and from the inside; see
      docs/monitoring.md) on {option}`${opt}.schedule`. A failed check
      fails the unit: it shows in `systemctl --failed`, and the journal
      names the check with its fix (`journalctl -u ospw-matrix-doctor`).
      `sudo ospw-matrix doctor` works without it'';

    schedule = mkOption {
      type = types.str;
      default = "weekly";
      example = "daily";
      description = ''
        When the doctor runs, as a systemd calendar event (`OnCalendar=` of
        `ospw-matrix-doctor.timer`, see {manpage}`systemd.time(7)`). Missed
        runs are made up at boot (`Persistent=`).
      '';
    };

    backupMaxAge = mkOption {
      type = types.str;
      default = "2d";
      example = "8d";
      description = ''
        With {option}`services.ospw-matrix.backup.enable`: the age the
        newest archive may reach before the doctor fails (a duration such
        as `2d`). Raise it when backups run less often than daily.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      internal = true;
      description = "The environment that preconfigures `ospw-matrix doctor` for this host.";
    };
  };

  config = lib.mkMerge [
    {
      services.ospw-matrix.doctor.environment = {
        OSPW_MATRIX_CONFIG = "${cfg.renderedConfig}/host.json";
        OSPW_MATRIX_REGISTRATION_SECRET_FILE = "/run/credentials/ospw-matrix-synapse.service/registration_shared_secret";
        OSPW_MATRIX_STATE_DIR = ospwLib.secretsDir cfg;
        OSPW_MATRIX_DB_OS_USER = db.user;
        OSPW_MATRIX_PG_BIN_DIR = "${db.package}/bin";
        # The generated secrets (the services read copies as credentials).
        OSPW_MATRIX_DOCTOR_SECRETS_DIR = ospwLib.secretsDir cfg;
        OSPW_MATRIX_DOCTOR_UNITS = lib.concatStringsSep "," units;
      }
      // lib.optionalAttrs cfg.backup.enable {
        OSPW_MATRIX_BACKUP_DIR = cfg.backup.directory;
        OSPW_MATRIX_BACKUP_MAX_AGE = dcfg.backupMaxAge;
      }
      // lib.optionalAttrs db.createLocally {
        OSPW_MATRIX_DB_DATA_DIR = config.services.postgresql.dataDir;
      };

      assertions = lib.optionals dcfg.enable [
        {
          assertion = cfg.enable;
          message = "${opt}.enable is set but services.ospw-matrix.enable is not: the doctor checks that server; enable it or remove ${opt}.enable.";
        }
        {
          assertion = builtins.match "[0-9]+(ms|s|m|h|d|w|y)" dcfg.backupMaxAge != null;
          message = "${opt}.backupMaxAge = \"${dcfg.backupMaxAge}\" is not a duration: expected a number with a unit, such as 2d or 36h.";
        }
      ];
    }

    (lib.mkIf (cfg.enable && dcfg.enable) {
      systemd.timers.${unitName} = {
        description = "OSPW Matrix: scheduled doctor";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = dcfg.schedule;
          Persistent = true;
          RandomizedDelaySec = "1h";
        };
      };

      systemd.services.${unitName} = {
        description = "OSPW Matrix: check that the server works as promised and is still private";
        documentation = [ "https://github.com/ospw/ospw-matrix/blob/main/docs/monitoring.md" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ] ++ units;
        # df (free space), getent (--db-os-user), systemctl (the units).
        path = [
          pkgs.coreutils
          pkgs.getent
          pkgs.systemd
        ];
        inherit (dcfg) environment;
        serviceConfig = {
          Type = "oneshot";
          # root: reads the secrets and Synapse's credentials, runs psql as
          # the database's system user (peer authentication).
          User = "root";
          Group = "root";
          ExecStart = "${lib.getExe' cfg.package "ospw-matrix"} doctor";
          # The CLI's admin service account is kept there.
          ReadWritePaths = [ (ospwLib.secretsDir cfg) ];
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          UMask = "0077";
          Nice = 10;
        };
      };
    })
  ];
}
