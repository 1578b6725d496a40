# Helpers shared by the module files (not a module itself).
{ lib }:

rec {
  # Credential name (= file name in the generated secrets directory and in
  # the services' credentials directories) -> its `*File` option.
  secretOptions = {
    signing_key = "signingKeyFile";
    registration_shared_secret = "registrationSharedSecretFile";
    macaroon_secret_key = "macaroonSecretKeyFile";
    form_secret = "formSecretFile";
    turn_shared_secret = "turnSharedSecretFile";
    worker_replication_secret = "workerReplicationSecretFile";
  };

  # The credentials Synapse (and the backup) needs: every secret, the
  # replication secret only with workers.
  synapseSecrets =
    cfg:
    lib.filter (name: name != "worker_replication_secret" || cfg.synapse.workers.enable) (
      lib.attrNames secretOptions
    );

  secretsDir = cfg: "${cfg.stateDir}/secrets";

  # The Synapse the units run: services.ospw-matrix.synapse.package with
  # the extras (Python packages) that what is turned on needs added to the
  # wrapper's: `redis` for the workers (txredisapi; without it every
  # process refuses `redis.enabled`), `oidc` for single sign-on. nixpkgs'
  # wrapper has only postgres, url-preview and systemd by default; an
  # override of it keeps its own extras and plugins. A package without
  # `override` is used as given.
  synapseExtras =
    cfg:
    lib.optional cfg.synapse.workers.enable "redis"
    ++ lib.optional (cfg.sso.providers != [ ]) "oidc";
  synapsePackage =
    cfg:
    let
      pkg = cfg.synapse.package;
      needed = synapseExtras cfg;
      # nixpkgs' default when `extras` is not given (on Linux).
      wrapperDefault = [
        "postgres"
        "url-preview"
        "systemd"
      ];
    in
    if needed == [ ] || !(pkg ? override) then
      pkg
    else
      pkg.override (old: {
        extras = lib.unique ((old.extras or wrapperDefault) ++ needed);
      });

  # The credential names of the secrets that come only from the user's
  # files (single sign-on client secrets, the SMTP password): nothing
  # generates them.
  ssoCredential = provider: "sso_client_secret_${provider.id}";
  smtpCredential = "smtp_password";

  # Synapse's runtime secrets file (`ospw-matrix materialize
  # synapse-secrets`), needed when Synapse must be given a secret it cannot
  # read from a file: the SMTP password.
  runtimeSecretsFile = "/run/ospw-matrix-synapse/secrets.yaml";
  needsRuntimeSecrets = cfg: cfg.email.enable && cfg.email.passwordFile != null;

  # Where a credential is loaded from: the user's file if given, otherwise
  # the file `ospw-matrix secrets init` generated.
  credentialSource =
    cfg: name:
    let
      file = cfg.secrets.${secretOptions.${name}};
    in
    if file != null then file else "${secretsDir cfg}/${name}";

  # `LoadCredential=` entries for the given credential names.
  loadCredentials = cfg: names: map (name: "${name}:${credentialSource cfg name}") names;

  # Whether every credential in `names` comes from a user's file, so that
  # nothing needs generating.
  allProvided = cfg: names: lib.all (name: cfg.secrets.${secretOptions.${name}} != null) names;

  # A path that every program reading it from a unit file takes literally:
  # absolute, and none of white space and control characters (a line break
  # would start a new directive in the unit file; white space splits
  # ReadWritePaths= and tmpfiles.d fields), % (systemd specifiers, expanded
  # in LoadCredential=, WorkingDirectory=, tmpfiles.d paths), quotes and
  # backslashes (unquoting and C escapes in ExecStart=, ReadWritePaths=,
  # tmpfiles.d), $ (environment variables in ExecStart=), nor the shell's
  # special characters (the paths also appear in the units' scripts).
  plainPathRegex = "/[^][:space:][:cntrl:]%\"'\\$`;&|<>(){}*?!#~[]*";
  isPlainPath = path: builtins.match plainPathRegex path != null;

  # One ExecStart= argument, quoted and escaped as systemd reads it (what
  # nixpkgs' utils.escapeSystemdExecArg does: a JSON string is a valid
  # systemd C-style quoted word; % and $ are doubled).
  escapeExecArg = arg: lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON arg);

  # The sandboxing shared by the long-running services (the set of nixpkgs'
  # matrix-synapse module, minus what a unit adds or relaxes itself).
  hardening = {
    CapabilityBoundingSet = [ "" ];
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    NoNewPrivileges = true;
    PrivateDevices = true;
    PrivateTmp = true;
    ProcSubset = "pid";
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHome = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProtectSystem = "strict";
    RemoveIPC = true;
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    UMask = "0077";
  };
}
