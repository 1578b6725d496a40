# The host description (the JSON form of crates/ospw-matrix/src/host.rs),
# written to the store, and its rendering by `ospw-matrix render` at build
# time. Nothing here reads a derivation's output during evaluation (no
# import-from-derivation): the other module files only refer to paths
# inside `renderedConfig`.
#
# On NixOS every secret reaches Synapse as a systemd credential, so
# `secrets.dir` is Synapse's credentials directory and no `*_file` is set:
# the host description and the rendered files hold no secret value and no
# path of the user's secret files. No secret value ever reaches the store;
# the paths of the user's secret files (secrets.*File, turn.tls.certFile and
# keyFile) do, in the units' `LoadCredential=` lines, which systemd reads
# from the store. coturn's TLS certificate and key are credentials of
# coturn's unit for the same reason.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.ospw-matrix;
  ospwLib = import ./lib.nix { inherit lib; };

  synapseCredentials = "/run/credentials/ospw-matrix-synapse.service";
  coturnCredentials = "/run/credentials/ospw-matrix-coturn.service";

  # Optional fields are left out rather than written as null.
  dropNulls = lib.filterAttrs (_: v: v != null);

  description = dropNulls {
    base_domain = cfg.baseDomain;
    server_name = cfg.serverName;
    matrix_host = cfg.matrixHost;
    element_host = cfg.elementHost;

    synapse = dropNulls {
      listen =
        if cfg.synapse.listen.unixSocket != null then
          { unix.path = cfg.synapse.listen.unixSocket; }
        else
          {
            tcp = {
              inherit (cfg.synapse.listen) address port;
            };
          };
      database = {
        inherit (cfg.synapse.database) name user port;
        socket_dir = cfg.synapse.database.socketDir;
      };
      data_dir = cfg.synapse.dataDir;
      media_store_path = cfg.synapse.mediaStorePath;
      max_upload_size = cfg.synapse.maxUploadSize;
      inherit (cfg.synapse) presence;
      url_previews = cfg.synapse.urlPreviews;
      encryption_by_default = cfg.synapse.encryptionByDefault;
      log_level = cfg.synapse.logLevel;
      inherit (cfg.synapse) settings;
      workers =
        let
          w = cfg.synapse.workers;
        in
        if w.enable then
          dropNulls {
            inherit (w) preset sync client media background;
            event_persister = w.eventPersister;
            stream_writer = w.streamWriter;
            socket_dir = "/run/ospw-matrix-workers";
            redis.unix.path = config.services.redis.servers.ospw-matrix.unixSocket;
            # Each worker unit's own credentials (LoadCredential).
            credentials_dir = "/run/credentials/ospw-matrix-synapse-worker-{name}.service";
          }
        else
          null;
    };

    turn = dropNulls {
      inherit (cfg.turn) host realm port;
      listening_ips = cfg.turn.listeningIps;
      tls =
        if cfg.turn.tls.enable then
          {
            inherit (cfg.turn.tls) port;
            cert_file = "${coturnCredentials}/turn_tls_cert";
            key_file = "${coturnCredentials}/turn_tls_key";
          }
        else
          null;
      relay_ports = "${toString cfg.turn.relayPortRange.from}-${toString cfg.turn.relayPortRange.to}";
      external_ip = cfg.turn.externalIp;
      relay_ip = cfg.turn.relayIp;
      user_quota = cfg.turn.userQuota;
      total_quota = cfg.turn.totalQuota;
      credential_lifetime = cfg.turn.credentialLifetime;
      inherit (cfg.turn) settings;
    };

    element = dropNulls {
      inherit (cfg.element) brand settings;
      default_theme = cfg.element.defaultTheme;
      # The built app; config.json is served from the rendered output.
      webroot = "${cfg.element.package}";
      force_turn = cfg.element.forceTurn;
      map_style_url = cfg.element.mapStyleUrl;
      jitsi_domain = cfg.element.jitsiDomain;
      branding = dropNulls {
        welcome_text = cfg.element.branding.welcomeText;
        # A store path (public, like the rest of Element).
        logo_file = if cfg.element.branding.logoFile == null then null else "${cfg.element.branding.logoFile}";
        footer_links = map (l: { inherit (l) text url; }) cfg.element.branding.footerLinks;
        help_url = cfg.element.branding.helpUrl;
        desktop_download_url = cfg.element.branding.desktopDownloadUrl;
      };
      setting_defaults = cfg.element.settingDefaults;
    };

    proxy = dropNulls {
      inherit (cfg.proxy) tls bind;
      acme_email = cfg.proxy.acmeEmail;
      http_port = cfg.proxy.httpPort;
      https_port = cfg.proxy.httpsPort;
      serve_base_domain = cfg.proxy.serveBaseDomain;
      # Only used by the standalone Caddyfile; services.caddy has its own.
      admin = "off";
    };

    secrets.dir = synapseCredentials;

    # Secret files become credentials of Synapse's unit (modules/sso.nix):
    # the description names only the credentials directory.
    sso = {
      password_login = cfg.sso.passwordLogin;
      providers = map (
        p:
        dropNulls {
          inherit (p) id name brand issuer scopes pkce;
          icon_file = if p.iconFile == null then null else "${p.iconFile}";
          client_id = p.clientId;
          client_secret_file = "${synapseCredentials}/${ospwLib.ssoCredential p}";
          user_mapping = {
            subject_claim = p.userMapping.subjectClaim;
            inherit (p.userMapping) localpart;
            display_name = p.userMapping.displayName;
            inherit (p.userMapping) email;
          };
          allow_existing_users = p.allowExistingUsers;
          auto_create = p.autoCreate;
          require = map (
            r:
            dropNulls {
              inherit (r) attribute value;
              one_of = r.oneOf;
            }
          ) p.require;
        }
      ) cfg.sso.providers;
    };

    email =
      if cfg.email.enable then
        dropNulls {
          smtp_host = cfg.email.smtpHost;
          smtp_port = cfg.email.smtpPort;
          inherit (cfg.email) tls user from;
          password_file =
            if cfg.email.passwordFile == null then null else "${synapseCredentials}/${ospwLib.smtpCredential}";
          password_reset = cfg.email.passwordReset;
          inherit (cfg.email) notifications;
          notification_delay = cfg.email.notificationDelay;
        }
      else
        null;
    metrics = {
      inherit (cfg.metrics) enable;
      synapse_port = cfg.metrics.synapsePort;
      coturn_port = cfg.metrics.coturnPort;
      caddy_port = cfg.metrics.caddyPort;
    };
  };

  hostDescriptionFile = pkgs.writeText "ospw-matrix-host.json" (builtins.toJSON description);

  # Host description field -> option, to translate the validator's messages.
  fieldOptions = {
    base_domain = "baseDomain";
    server_name = "serverName";
    matrix_host = "matrixHost";
    element_host = "elementHost";
    "synapse.listen.tcp.address" = "synapse.listen.address";
    "synapse.listen.tcp.port" = "synapse.listen.port";
    "synapse.listen.unix.path" = "synapse.listen.unixSocket";
    "synapse.database.name" = "synapse.database.name";
    "synapse.database.user" = "synapse.database.user";
    "synapse.database.socket_dir" = "synapse.database.socketDir";
    "synapse.database.port" = "synapse.database.port";
    "synapse.data_dir" = "synapse.dataDir";
    "synapse.media_store_path" = "synapse.mediaStorePath";
    "synapse.max_upload_size" = "synapse.maxUploadSize";
    "synapse.settings" = "synapse.settings";
    "synapse.workers" = "synapse.workers";
    "turn.host" = "turn.host";
    "turn.realm" = "turn.realm";
    "turn.listening_ips" = "turn.listeningIps";
    "turn.port" = "turn.port";
    "turn.tls.port" = "turn.tls.port";
    "turn.relay_ports" = "turn.relayPortRange";
    "turn.external_ip" = "turn.externalIp";
    "turn.relay_ip" = "turn.relayIp";
    "turn.user_quota" = "turn.userQuota";
    "turn.total_quota" = "turn.totalQuota";
    "turn.credential_lifetime" = "turn.credentialLifetime";
    "turn.settings" = "turn.settings";
    "element.brand" = "element.brand";
    "element.setting_defaults" = "element.settingDefaults";
    "element.map_style_url" = "element.mapStyleUrl";
    "element.jitsi_domain" = "element.jitsiDomain";
    "element.branding.welcome_text" = "element.branding.welcomeText";
    "element.branding.logo_file" = "element.branding.logoFile";
    "element.branding.footer_links" = "element.branding.footerLinks";
    "element.branding.help_url" = "element.branding.helpUrl";
    "element.branding.desktop_download_url" = "element.branding.desktopDownloadUrl";
    "element.settings" = "element.settings";
    "proxy.acme_email" = "proxy.acmeEmail";
    "proxy.http_port" = "proxy.httpPort";
    "proxy.https_port" = "proxy.httpsPort";
    "proxy.bind" = "proxy.bind";
    "sso.password_login" = "sso.passwordLogin";
    "sso.providers" = "sso.providers (user_mapping: userMapping, client_id: clientId, icon_file: iconFile, allow_existing_users: allowExistingUsers, auto_create: autoCreate)";
    "email" = "email";
    "metrics.synapse_port" = "metrics.synapsePort";
    "metrics.coturn_port" = "metrics.coturnPort";
    "metrics.caddy_port" = "metrics.caddyPort";
  };

  renderedConfig =
    pkgs.runCommand "ospw-matrix-config"
      {
        nativeBuildInputs = [ cfg.package ];
        preferLocalBuild = true;
      }
      ''
        # An invalid configuration fails the build with the validator's
        # messages, each naming its host description field, followed by
        # the options those fields come from.
        if ! ospw-matrix render --config ${hostDescriptionFile} --out "$out" 2> errors; then
          cat errors >&2
          {
            echo
            echo "services.ospw-matrix: the configuration above is invalid; the fields come from these options:"
            ${lib.concatStrings (
              lib.mapAttrsToList (field: option: ''
                grep -q -- ${lib.escapeShellArg "^ *${field}[:.[]"} errors && echo "  ${field}: services.ospw-matrix.${option}"
              '') fieldOptions
            )}
          } >&2
          exit 1
        fi
        cat errors >&2
      '';
in
{
  config = lib.mkIf cfg.enable {
    services.ospw-matrix = {
      hostDescription = description;
      inherit hostDescriptionFile renderedConfig;
    };
  };
}
