# Scheduled backups: ospw-matrix-backup.timer starts
# ospw-matrix-backup.service, a oneshot that runs `ospw-matrix backup` (a
# consistent pg_dump taken while Synapse runs, the secrets, the admin
# service account's state, the media store and the host description, in
# one archive of mode 0600) into `backup.directory`, then deletes the
# oldest archives beyond `backup.keep`, only once the new one is in place.
#
# The secrets are read through the unit's own `LoadCredential=`, from the
# same sources as Synapse's (a `secrets.*File` when set, otherwise the
# generated file), so that a sops-nix or agenix secret is backed up too and
# nothing depends on Synapse's credentials directory. The CLI reads the
# secrets from the host description's `secrets.dir`, so the unit gets a
# copy of the host description whose `secrets.dir` is its credentials
# directory (this copy is the host description in the archive; `restore`
# only compares it with the target's, see admin-cli.nix).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ospw-matrix;
  bcfg = cfg.backup;
  ospwLib = import ./lib.nix { inherit lib; };
  opt = "services.ospw-matrix.backup";

  unitName = "ospw-matrix-backup";
  credentialsDir = "/run/credentials/${unitName}.service";

  hostFile = pkgs.writeText "ospw-matrix-backup-host.json" (
    builtins.toJSON (cfg.hostDescription // { secrets.dir = credentialsDir; })
  );

  db = cfg.synapse.database;
  dbUnits = lib.optionals db.createLocally [
    "postgresql.target"
    "ospw-matrix-db-init.service"
  ];

  # ospw-matrix-YYYYMMDDTHHMMSSZ.tar: the names sort by time.
  digits = n: lib.concatStrings (lib.replicate n "[0-9]");
  archiveGlob = "ospw-matrix-${digits 8}T${digits 6}Z.tar";

  dir = lib.escapeShellArg bcfg.directory;
  coreutil = name: lib.getExe' pkgs.coreutils name;
in
{
  options.services.ospw-matrix.backup = {
    enable = lib.mkEnableOption ''
      scheduled backups: `ospw-matrix-backup.timer` starts
      `ospw-matrix-backup.service`, which runs `ospw-matrix backup` (the
      database, the secrets, the media store and the host description in
      one archive) while the server runs. Start one now with
      `systemctl start ospw-matrix-backup`; restore with
      `ospw-matrix restore` (see the Backups section of docs/nixos.md)'';

    directory = mkOption {
      type = types.str;
      default = "/var/backup/ospw-matrix";
      example = "/mnt/backup/ospw-matrix";
      description = ''
        Where the archives are written, as
        {file}`ospw-matrix-<UTC time>.tar` (for example
        {file}`ospw-matrix-20261125T031500Z.tar`), each of mode 0600: they
        hold the signing key and the other secrets. The directory is created
        with mode 0700, owned by root. Copy the archives off the host (they
        do not protect against losing the disk).

        The secrets are read as the service's own credentials from the same
        files as Synapse's, so secrets given with the
        `services.ospw-matrix.secrets.*File` options are in the archives
        too. `ospw-matrix restore` writes every secret of an archive to
        {file}`/var/lib/ospw-matrix/secrets`, which is only read for the
        secrets without a `*File` option: put the others back into your
        secrets manager yourself.
      '';
    };

    schedule = mkOption {
      type = types.str;
      default = "daily";
      example = "*-*-* 03:15:00";
      description = ''
        When to back up, as a systemd calendar event (`OnCalendar=` of
        `ospw-matrix-backup.timer`, see {manpage}`systemd.time(7)`).
      '';
    };

    randomizedDelaySec = mkOption {
      type = types.str;
      default = "0";
      example = "30min";
      description = ''
        A random delay up to this long is added to every scheduled time
        (`RandomizedDelaySec=` of the timer), to spread the load of several
        hosts.
      '';
    };

    persistent = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether a backup missed while the host was off is made as soon as
        it is up again (`Persistent=` of the timer).
      '';
    };

    keep = mkOption {
      type = types.int;
      default = 7;
      description = ''
        How many archives to keep in
        {option}`services.ospw-matrix.backup.directory`. After a successful
        backup, and never before, the oldest archives named
        {file}`ospw-matrix-<UTC time>.tar` beyond this number are deleted;
        other files are never touched. At least 1.
      '';
    };
  };

  config = lib.mkMerge [
    {
      assertions = lib.optionals bcfg.enable [
        {
          assertion = cfg.enable;
          message = "${opt}.enable is set but services.ospw-matrix.enable is not: backups need the server; enable it or remove ${opt}.enable.";
        }
        {
          assertion = bcfg.keep >= 1;
          message = "${opt}.keep = ${toString bcfg.keep}: it must be at least 1 (the number of newest archives kept; 7 keeps a week of daily backups).";
        }
        {
          assertion =
            lib.hasPrefix "/" bcfg.directory
            && !lib.hasPrefix "${builtins.storeDir}/" bcfg.directory
            && builtins.match ".*[[:space:]].*" bcfg.directory == null
            && bcfg.directory != "/";
          message = "${opt}.directory = \"${bcfg.directory}\" must be an absolute path without white space, other than / and outside the Nix store, such as /var/backup/ospw-matrix.";
        }
      ];
    }

    (lib.mkIf (cfg.enable && bcfg.enable) {
      systemd.tmpfiles.rules = [ "d ${bcfg.directory} 0700 root root - -" ];

      systemd.timers.${unitName} = {
        description = "OSPW Matrix: scheduled backups";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = bcfg.schedule;
          Persistent = bcfg.persistent;
          RandomizedDelaySec = bcfg.randomizedDelaySec;
        };
      };

      systemd.services.${unitName} = {
        description = "OSPW Matrix: back up the database, secrets and media";
        documentation = [ "https://github.com/ospw/ospw-matrix/blob/main/docs/nixos.md#backups" ];
        # The database must be up; Synapse need not be (it is only asked for
        # its version), but a backup started with the server waits for it.
        requires = [ "ospw-matrix-secrets.service" ] ++ lib.optional db.createLocally "postgresql.target";
        after = [
          "ospw-matrix-secrets.service"
          "ospw-matrix-synapse.service"
        ]
        ++ dbUnits;
        # `ospw-matrix backup --db-os-user` looks the user up with getent.
        path = [ pkgs.getent ];

        script = ''
          set -euo pipefail
          shopt -s nullglob

          archive=${dir}/ospw-matrix-$(${coreutil "date"} -u +%Y%m%dT%H%M%SZ).tar
          ${lib.getExe' cfg.package "ospw-matrix"} backup \
            --config ${hostFile} \
            --out "$archive" \
            --db-os-user ${db.user} \
            --pg-bin-dir ${db.package}/bin \
            --state-dir ${ospwLib.secretsDir cfg}

          # Only now that the new archive is in place: keep it and the
          # newest ${toString (bcfg.keep - 1)} others, delete the rest.
          if [ ! -s "$archive" ]; then
            echo "ospw-matrix-backup: $archive is missing after the backup; nothing deleted" >&2
            exit 1
          fi
          others=()
          for file in ${dir}/${archiveGlob}; do
            if [ "$file" != "$archive" ] && [ -f "$file" ]; then
              others+=("$file")
            fi
          done
          excess=$(( ''${#others[@]} - ${toString (bcfg.keep - 1)} ))
          if [ "$excess" -gt 0 ]; then
            for file in "''${others[@]:0:excess}"; do
              echo "ospw-matrix-backup: deleting $file (keep = ${toString bcfg.keep})"
              ${coreutil "rm"} -f -- "$file"
            done
          fi
        '';

        serviceConfig = lib.recursiveUpdate ospwLib.hardening {
          Type = "oneshot";
          # root: reads Synapse's media store (owned by its user, 0700) and
          # runs pg_dump as the database's system user (peer
          # authentication), which needs setuid/setgid.
          User = "root";
          Group = "root";
          LoadCredential = ospwLib.loadCredentials cfg (ospwLib.synapseSecrets cfg);
          CapabilityBoundingSet = [
            "CAP_DAC_READ_SEARCH"
            "CAP_SETUID"
            "CAP_SETGID"
          ];
          # ~@privileged holds setuid(2) and setgroups(2): allowed again
          # afterwards (the list is applied in order).
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
            "~@resources"
            "@setuid"
          ];
          ReadWritePaths = [ bcfg.directory ];
          # Only loopback (Synapse's version); PostgreSQL over its socket.
          IPAddressDeny = "any";
          IPAddressAllow = "localhost";
          Nice = 19;
          IOSchedulingClass = "idle";
        };
      };
    })
  ];
}
