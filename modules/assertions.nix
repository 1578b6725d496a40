# Configuration mistakes caught at evaluation time, with what to do about
# them. Field values (DNS names, port collisions, quotas, ...) are checked
# by `ospw-matrix render` when services.ospw-matrix.renderedConfig is built.
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };
  opt = "services.ospw-matrix";

  required = name: {
    assertion = cfg.${name} != null;
    message = "${opt}.${name} is not set: set it to a DNS name that points at this host (see docs/nixos.md).";
  };

  # Keys that would put a secret inline into a world-readable file in the
  # store, with the option to use instead (the same list as the crate's
  # validator, caught here before anything is built).
  inlineSecrets = {
    synapse = {
      registration_shared_secret = "secrets.registrationSharedSecretFile";
      macaroon_secret_key = "secrets.macaroonSecretKeyFile";
      form_secret = "secrets.formSecretFile";
      turn_shared_secret = "secrets.turnSharedSecretFile";
      turn_password = "secrets.turnSharedSecretFile";
      signing_key = "secrets.signingKeyFile";
      recaptcha_private_key = "a file read with recaptcha_private_key_path";
      worker_replication_secret = "secrets.workerReplicationSecretFile";
    };
    turn = {
      static-auth-secret = "secrets.turnSharedSecretFile";
      user = "the TURN REST API credentials Synapse hands out";
    };
  };

  inlineSecretAssertions = lib.concatLists (
    lib.mapAttrsToList (
      component: keys:
      lib.mapAttrsToList (key: instead: {
        assertion = !(cfg.${component}.settings ? ${key});
        message = "${opt}.${component}.settings.${key} would put a secret into the world-readable Nix store: remove it and use ${
          if lib.hasPrefix "secrets." instead then "${opt}.${instead}" else instead
        }.";
      }) keys
    ) inlineSecrets
  );

  # Every other secret in a free-form option, found by the library's own
  # rules (secret-detect.nix): by its key's name at any depth
  # (`modules[0].config.api_token`, `clientSecret`, items of `api_tokens`)
  # or by its shape (a PEM block, a signing key, a URL with a password, a
  # token). An assertion fails before anything is instantiated, so the
  # value never reaches the store.
  detect = import ./secret-detect.nix { inherit lib; };
  # Keys the assertions above already name, with their file form.
  named = option: lib.attrNames (inlineSecrets.${lib.head (lib.splitString "." option)} or { });
  settingsOptions = {
    "synapse.settings" = cfg.synapse.settings;
    "turn.settings" = cfg.turn.settings;
    "element.settings" = cfg.element.settings;
    "element.settingDefaults" = cfg.element.settingDefaults;
  };
  shapeSecretAssertions = lib.concatLists (
    lib.mapAttrsToList (
      option: settings:
      map (f: {
        assertion = false;
        message =
          if f.kind == "path" then
            "${opt}.${f.path} is a Nix path literal, which is copied into the world-readable Nix store as it is: write the path as a string (\"/run/…\"), naming a file that stays outside the store."
          else
            "${opt}.${f.path} holds a secret (by its name or its shape, the ospw-matrix library's rules) and would be written to the world-readable Nix store: remove it and hand the secret over as a file (the option's *_path or *_file form, or ${opt}.secrets.*File)${
              lib.optionalString (lib.hasPrefix "element." option) "; Element's config.json is served to every visitor, so it can hold no secret at all"
            }.";
      }) (
        lib.filter (
          f: !(builtins.elem (lib.head (lib.splitString "." (lib.removePrefix "${option}." f.path))) (named option))
        ) (detect.findSecrets option settings)
      )
    ) settingsOptions
  );

  # Single sign-on client secrets and the SMTP password: files only, never
  # in the store.
  outsideStore = path: lib.hasPrefix "/" path && !lib.hasPrefix "${builtins.storeDir}/" path;
  ssoEmailAssertions =
    lib.concatMap (p: [
      {
        assertion = p.clientSecretFile != null;
        message = "${opt}.sso.providers: provider ${p.id} has no clientSecretFile: set it to the file holding the client secret the provider issued (sops-nix, agenix); it is never written into the configuration.";
      }
      {
        assertion = p.clientSecretFile == null || outsideStore p.clientSecretFile;
        message = "${opt}.sso.providers: provider ${p.id}'s clientSecretFile \"${toString p.clientSecretFile}\" must be an absolute path outside the Nix store (the store is world-readable).";
      }
    ]) cfg.sso.providers
    ++ lib.optionals cfg.email.enable [
      {
        assertion = cfg.email.smtpHost != null && cfg.email.from != null;
        message = "${opt}.email.enable is set, so ${opt}.email.smtpHost and ${opt}.email.from must be set too.";
      }
      {
        assertion = cfg.email.passwordFile == null || outsideStore cfg.email.passwordFile;
        message = "${opt}.email.passwordFile = \"${toString cfg.email.passwordFile}\" must be an absolute path outside the Nix store (the store is world-readable).";
      }
    ];

  # Paths the modules write into unit files, tmpfiles.d rules, /etc/passwd
  # (Synapse's home) and unit scripts: each must be read literally by all
  # of them (see isPlainPath in lib.nix).
  unitPaths =
    {
      "synapse.dataDir" = cfg.synapse.dataDir;
      "synapse.mediaStorePath" = cfg.synapse.mediaStorePath;
      "synapse.listen.unixSocket" = cfg.synapse.listen.unixSocket;
      "synapse.database.socketDir" = cfg.synapse.database.socketDir;
      "turn.tls.certFile" = cfg.turn.tls.certFile;
      "turn.tls.keyFile" = cfg.turn.tls.keyFile;
    }
    // lib.mapAttrs' (name: path: lib.nameValuePair "secrets.${name}" path) cfg.secrets
    // lib.optionalAttrs (cfg ? backup) { "backup.directory" = cfg.backup.directory; }
    # Credentials of Synapse's unit (LoadCredential=NAME:PATH).
    // lib.listToAttrs (
      map (p: lib.nameValuePair "sso.providers.${p.id}.clientSecretFile" p.clientSecretFile) cfg.sso.providers
    )
    // {
      "email.passwordFile" = cfg.email.passwordFile;
    };

  unitPathAssertions = lib.mapAttrsToList (name: path: {
    assertion = path == null || ospwLib.isPlainPath path;
    message = "${opt}.${name} = ${builtins.toJSON path} is not a plain absolute path: it goes into systemd unit files (and tmpfiles rules and scripts), where a line break starts a new directive, white space splits values, % is a specifier, $ a variable and quotes and backslashes are unquoted; expected a path starting with / without white space, control characters or any of % \" ' \\ $ ` ; & | < > ( ) { } [ ] * ? ! # ~.";
  }) unitPaths;

  secretFileAssertions = lib.mapAttrsToList (name: path: {
    assertion = path == null || (lib.hasPrefix "/" path && !lib.hasPrefix "${builtins.storeDir}/" path);
    message = "${opt}.secrets.${name} = \"${toString path}\" must be an absolute path outside the Nix store (the store is world-readable), such as a sops-nix or agenix secret under /run.";
  }) cfg.secrets;
in
{
  config = lib.mkIf cfg.enable {
    assertions = [
      (required "baseDomain")
      (required "matrixHost")
      (required "elementHost")
      {
        assertion = !(config.services.matrix-synapse.enable or false);
        message = "${opt} runs its own Synapse (ospw-matrix-synapse.service); services.matrix-synapse must not be enabled as well (two homeservers would fight over the database and the port). Disable one of them.";
      }
      {
        assertion = !(config.services.coturn.enable or false);
        message = "${opt} runs its own coturn (ospw-matrix-coturn.service) with secrets shared with Synapse; services.coturn must not be enabled as well (both would bind the TURN ports). Disable services.coturn.";
      }
      {
        # nixpkgs' matrix-synapse is a wrapper (passthru.unwrapped) adding
        # the Python packages of its extras, postgres among them; the
        # unwrapped package (it has optional-dependencies instead) would
        # start without psycopg2 and fail on its first database access.
        assertion = !(cfg.synapse.package ? optional-dependencies && !(cfg.synapse.package ? unwrapped));
        message = "${opt}.synapse.package is the unwrapped Synapse (matrix-synapse-unwrapped), which has no PostgreSQL driver (psycopg2): use pkgs.matrix-synapse, or pkgs.matrix-synapse.override { extras = [ \"postgres\" ... ]; }.";
      }
      {
        assertion = cfg.turn.tls.enable -> (cfg.turn.tls.certFile != null && cfg.turn.tls.keyFile != null);
        message = "${opt}.turn.tls.enable is set, so ${opt}.turn.tls.certFile and ${opt}.turn.tls.keyFile must name the certificate chain and the private key (PEM); or set ${opt}.turn.tls.useACMEHost to a security.acme.certs entry.";
      }
      {
        assertion = cfg.turn.relayPortRange.from <= cfg.turn.relayPortRange.to;
        message = "${opt}.turn.relayPortRange: from (${toString cfg.turn.relayPortRange.from}) must not be above to (${toString cfg.turn.relayPortRange.to}).";
      }
      {
        assertion =
          cfg.synapse.listen.unixSocket == null
          || lib.hasPrefix "/run/ospw-matrix-synapse/" cfg.synapse.listen.unixSocket;
        message = "${opt}.synapse.listen.unixSocket must be below /run/ospw-matrix-synapse/ (the Synapse unit's runtime directory, which Caddy can reach).";
      }
      {
        assertion =
          cfg.synapse.database.createLocally -> cfg.synapse.database.socketDir == "/run/postgresql";
        message = "${opt}.synapse.database.socketDir must stay /run/postgresql when ${opt}.synapse.database.createLocally is on (that is where services.postgresql puts its socket).";
      }
    ]
    ++ lib.optionals (cfg.turn.tls.enable) (
      map
        (path: {
          assertion = path == null || !lib.hasPrefix "${builtins.storeDir}/" path;
          message = "${opt}.turn.tls.keyFile must be outside the Nix store (the store is world-readable).";
        })
        [ cfg.turn.tls.keyFile ]
    )
    ++ secretFileAssertions
    ++ ssoEmailAssertions
    ++ unitPathAssertions
    ++ inlineSecretAssertions
    ++ shapeSecretAssertions;

    warnings = lib.optional (cfg.proxy.tls == "acme" && cfg.proxy.acmeEmail == null) "${opt}.proxy.acmeEmail is not set: the ACME CA cannot warn you about expiring certificates or account problems.";
  };
}
