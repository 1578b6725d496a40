# `ospw-matrix` on the administrator's PATH, preconfigured for this host:
# OSPW_MATRIX_CONFIG is the rendered host description (Synapse's listener),
# and the registration shared secret is read from the running Synapse
# unit's credentials directory (root only), so that
#
#   sudo ospw-matrix user add alice --admin
#
# works whether the secret was generated or comes from a secrets manager,
# and the wrapper names no secret file.
#
# The CLI's admin service account (`user list`, ...) is kept in the
# generated-secrets directory (root, 0700), which `backup` reads and
# `restore` writes; the PostgreSQL programs (from
# services.ospw-matrix.synapse.database.package) run as Synapse's database
# user. `restore` gets a host description whose `secrets.dir` is the
# generated-secrets directory (the source of Synapse's credentials), not
# Synapse's read-only credentials directory.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };
  secret = "/run/credentials/ospw-matrix-synapse.service/registration_shared_secret";

  restoreHostFile = pkgs.writeText "ospw-matrix-restore-host.json" (
    builtins.toJSON (cfg.hostDescription // { secrets.dir = ospwLib.secretsDir cfg; })
  );

  # Exported for every command below; `doctor` also gets the rest of its
  # environment (doctor.nix): its units, the generated secrets, backups.
  common = [
    "OSPW_MATRIX_CONFIG"
    "OSPW_MATRIX_REGISTRATION_SECRET_FILE"
    "OSPW_MATRIX_STATE_DIR"
    "OSPW_MATRIX_DB_OS_USER"
    "OSPW_MATRIX_PG_BIN_DIR"
  ];

  wrapper = pkgs.writeShellScriptBin "ospw-matrix" ''
    if [ "''${1:-}" = restore ]; then
      export OSPW_MATRIX_CONFIG="''${OSPW_MATRIX_CONFIG:-${restoreHostFile}}"
    else
      export OSPW_MATRIX_CONFIG="''${OSPW_MATRIX_CONFIG:-${cfg.renderedConfig}/host.json}"
    fi
    export OSPW_MATRIX_REGISTRATION_SECRET_FILE="''${OSPW_MATRIX_REGISTRATION_SECRET_FILE:-${secret}}"
    export OSPW_MATRIX_STATE_DIR="''${OSPW_MATRIX_STATE_DIR:-${ospwLib.secretsDir cfg}}"
    export OSPW_MATRIX_DB_OS_USER="''${OSPW_MATRIX_DB_OS_USER:-${cfg.synapse.database.user}}"
    export OSPW_MATRIX_PG_BIN_DIR="''${OSPW_MATRIX_PG_BIN_DIR:-${cfg.synapse.database.package}/bin}"
    if [ "''${1:-}" = doctor ]; then
    ${lib.concatStrings (
      lib.mapAttrsToList (name: value: ''
        export ${name}="''${${name}:-${value}}"
      '') (removeAttrs cfg.doctor.environment common)
    )}fi
    if [ "''${1:-}" = user ] && [ ! -r "$OSPW_MATRIX_REGISTRATION_SECRET_FILE" ]; then
      echo "ospw-matrix: cannot read $OSPW_MATRIX_REGISTRATION_SECRET_FILE: run this as root (sudo ospw-matrix ...) while ospw-matrix-synapse.service is running" >&2
      exit 1
    fi
    exec ${lib.getExe' cfg.package "ospw-matrix"} "$@"
  '';
in
{
  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ wrapper ];
  };
}
