# ospw-matrix-secrets.service: generates every missing secret into
# /var/lib/ospw-matrix/secrets (directory 0700, files 0600, root) before the
# services that need them start. It never overwrites a secret. The services
# receive them through `LoadCredential=` (see synapse.nix, coturn.nix),
# which takes a user's `services.ospw-matrix.secrets.*File` instead when set.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };
in
{
  config = lib.mkIf cfg.enable {
    systemd.services.ospw-matrix-secrets = {
      description = "OSPW Matrix: generate missing secrets";
      documentation = [ "https://github.com/ospw/ospw-matrix/blob/main/docs/nixos.md" ];
      before = [
        "ospw-matrix-synapse.service"
        "ospw-matrix-coturn.service"
      ];
      # Pulled in by the units that need it (Requires=).
      serviceConfig = lib.recursiveUpdate ospwLib.hardening {
        Type = "oneshot";
        RemainAfterExit = true;
        User = "root";
        Group = "root";
        # systemd creates the directory with this mode (and fixes it on
        # every start); secrets init creates the files 0600.
        StateDirectory = "ospw-matrix/secrets";
        StateDirectoryMode = "0700";
        # Nothing to generate when every secret comes from a file.
        ExecStart =
          if ospwLib.allProvided cfg (ospwLib.synapseSecrets cfg) then
            "${lib.getExe' pkgs.coreutils "true"}"
          else
            "${lib.getExe' cfg.package "ospw-matrix"} secrets init --dir ${ospwLib.secretsDir cfg}";
        PrivateNetwork = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
      };
    };
  };
}
