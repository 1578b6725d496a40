# PostgreSQL for Synapse. Synapse requires a database with C collation,
# which services.postgresql.ensureDatabases cannot create, so a oneshot
# (ospw-matrix-db-init.service) runs psql as `postgres` after PostgreSQL is
# up and creates the role and the database if they are missing. It is
# idempotent, and works whether or not PostgreSQL already ran on the host.
# Synapse connects over the Unix socket with peer authentication (system
# user = role, no password), which NixOS's default pg_hba.conf allows.
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };
  db = cfg.synapse.database;
  psql = "${lib.getExe' db.package "psql"} --no-psqlrc --set ON_ERROR_STOP=1 --host=${db.socketDir} --port=${toString db.port} --dbname=postgres";
in
{
  config = lib.mkIf (cfg.enable && db.createLocally) {
    services.postgresql.enable = true;

    systemd.services.ospw-matrix-db-init = {
      description = "OSPW Matrix: create Synapse's PostgreSQL role and database";
      requires = [ "postgresql.target" ];
      after = [ "postgresql.target" ];
      before = [ "ospw-matrix-synapse.service" ];
      # Pulled in by ospw-matrix-synapse.service (Requires=).
      # The shared sandboxing; psql only needs PostgreSQL's Unix socket (a
      # file-system socket, reachable from a private network namespace).
      serviceConfig = lib.recursiveUpdate ospwLib.hardening {
        Type = "oneshot";
        RemainAfterExit = true;
        User = "postgres";
        Group = "postgres";
        PrivateNetwork = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        # The unit runs as `postgres`: RemoveIPC= would remove every IPC
        # object of that user when the unit stops (a restart, a switch),
        # among them the running server's shared memory.
        RemoveIPC = false;
      };
      # The names are plain identifiers (checked by the option type), so
      # they can be quoted into SQL as they are.
      script = ''
        set -euo pipefail
        if [ -z "$(${psql} -tAc "SELECT 1 FROM pg_roles WHERE rolname = '${db.user}'")" ]; then
          ${psql} -c 'CREATE ROLE "${db.user}" LOGIN'
        fi
        if [ -z "$(${psql} -tAc "SELECT 1 FROM pg_database WHERE datname = '${db.name}'")" ]; then
          ${psql} -c "CREATE DATABASE \"${db.name}\" OWNER \"${db.user}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        fi
        collation="$(${psql} -tAc "SELECT datcollate || '/' || datctype FROM pg_database WHERE datname = '${db.name}'")"
        if [ "$collation" != "C/C" ]; then
          echo "ospw-matrix-db-init: database ${db.name} exists with collation/ctype $collation; Synapse needs C/C." >&2
          echo "Dump it, drop it and start this unit again to recreate it, or restore the dump into a database created with LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0." >&2
          exit 1
        fi
      '';
    };
  };
}
