# `ospw-matrix` on the administrator's PATH, preconfigured for this host:
# OSPW_MATRIX_CONFIG is the rendered host description (Synapse's listener),
# and the registration shared secret is read from the running Synapse
# unit's credentials directory (root only), so that
#
#   sudo ospw-matrix user add alice --admin
#
# works whether the secret was generated or comes from a secrets manager,
# and the wrapper names no secret file.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  secret = "/run/credentials/ospw-matrix-synapse.service/registration_shared_secret";

  wrapper = pkgs.writeShellScriptBin "ospw-matrix" ''
    export OSPW_MATRIX_CONFIG="''${OSPW_MATRIX_CONFIG:-${cfg.renderedConfig}/host.json}"
    export OSPW_MATRIX_REGISTRATION_SECRET_FILE="''${OSPW_MATRIX_REGISTRATION_SECRET_FILE:-${secret}}"
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
