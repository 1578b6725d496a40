# Single sign-on and mail for ospw-matrix-synapse.service: each provider's
# client secret and the SMTP password are credentials of Synapse's unit
# (`LoadCredential=`), so neither they nor the paths of the user's secret
# files reach the store. Synapse reads the client secrets itself
# (`client_secret_path`); the SMTP password has no file form in Synapse, so
# `ospw-matrix materialize synapse-secrets` writes it at every start, as
# Synapse's user, into /run/ospw-matrix-synapse/secrets.yaml (0600, atomic),
# which Synapse reads as a second configuration file (synapse.nix).
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };

  credentials =
    map (p: "${ospwLib.ssoCredential p}:${p.clientSecretFile}") (
      lib.filter (p: p.clientSecretFile != null) cfg.sso.providers
    )
    ++ lib.optional (
      cfg.email.enable && cfg.email.passwordFile != null
    ) "${ospwLib.smtpCredential}:${cfg.email.passwordFile}";
in
{
  config = lib.mkIf cfg.enable {
    systemd.services.ospw-matrix-synapse.serviceConfig = lib.mkMerge [
      (lib.mkIf (credentials != [ ]) { LoadCredential = credentials; })
      (lib.mkIf (ospwLib.needsRuntimeSecrets cfg) {
        ExecStartPre = [
          "${lib.getExe' cfg.package "ospw-matrix"} materialize synapse-secrets --config ${cfg.renderedConfig}/host.json --out ${ospwLib.runtimeSecretsFile}"
        ];
        RuntimeDirectory = "ospw-matrix-synapse";
        RuntimeDirectoryMode = "0750";
      })
    ];
  };
}
