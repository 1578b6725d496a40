# The interface of services.ospw-matrix. The typed options mirror the main
# fields of the host description (crates/ospw-matrix/src/host.rs); each
# component also takes free-form `settings` (RFC 42), merged last by
# `ospw-matrix render`, which refuses keys that would break the server's
# privacy (federation, open registration, inline secrets).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.services.ospw-matrix;
  jsonFormat = pkgs.formats.json { };

  # A plain PostgreSQL identifier; it is also the name of the system user
  # Synapse runs as (peer authentication).
  pgIdentifier = types.strMatching "[a-z_][a-z0-9_]{0,62}";

  # A string option that is `null` until set (host names, paths, addresses);
  # `args` gives its description and any example.
  nullStr =
    args:
    mkOption (
      {
        type = types.nullOr types.str;
        default = null;
      }
      // args
    );

  # A boolean.
  boolOption =
    default: description:
    mkOption {
      type = types.bool;
      inherit default description;
    };

  # A TCP or UDP port.
  portOption =
    default: description:
    mkOption {
      type = types.port;
      inherit default description;
    };

  # Free-form JSON keys (RFC 42 `settings`), empty by default; `args`
  # gives the description and an example.
  jsonOption =
    args:
    mkOption (
      {
        type = types.submodule { freeformType = jsonFormat.type; };
        default = { };
      }
      // args
    );

  # A path read at run time, never copied into the Nix store (a string, so
  # that a path literal such as ./secret is refused instead of copied).
  secretFile =
    what:
    nullStr {
      example = "/run/secrets/ospw-matrix/${what}";
      description = ''
        A file holding ${what}, for example managed by sops-nix or agenix.
        It is read at service start through systemd's `LoadCredential=`, so
        it may be readable by root only. Its contents never reach the Nix
        store; its path does, in the units' `LoadCredential=` lines. When
        `null`, the secret is
        generated on first start into
        {file}`${cfg.stateDir}/secrets` by `ospw-matrix-secrets.service`.
      '';
    };
in
{
  options.services.ospw-matrix = {
    enable = lib.mkEnableOption "a private, non-federating Matrix server (Synapse, PostgreSQL, coturn, Element Web behind Caddy)";

    package = lib.mkPackageOption pkgs "ospw-matrix" { };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/ospw-matrix";
      readOnly = true;
      description = ''
        The state directory. Generated secrets live in {file}`secrets/`
        below it (mode 0700, root), Synapse's data in
        {option}`services.ospw-matrix.synapse.dataDir`.
      '';
    };

    openFirewall = boolOption true ''
      Whether to open the ports clients need: HTTP and HTTPS (TCP), HTTP/3
      on the HTTPS port (UDP), the TURN port (TCP and UDP), the TURN TLS
      port when TURN over TLS is on, and the TURN relay port range (UDP).
      Synapse and PostgreSQL are never exposed.
    '';

    baseDomain = nullStr {
      example = "example.org";
      description = ''
        The base domain. When it differs from
        {option}`services.ospw-matrix.matrixHost`, Caddy serves
        `/.well-known/matrix/client` on it so that clients find the
        homeserver (see {option}`services.ospw-matrix.proxy.serveBaseDomain`).
      '';
    };

    serverName = mkOption {
      type = types.nullOr types.str;
      default = cfg.baseDomain;
      defaultText = lib.literalExpression "config.services.ospw-matrix.baseDomain";
      example = "example.org";
      description = ''
        The Matrix server name, the part after the colon in
        `@alice:example.org`: either the base domain or the Matrix host.
        It can never change after the first start.
      '';
    };

    matrixHost = nullStr {
      example = "matrix.example.org";
      description = "The host name that serves the Matrix client API.";
    };

    elementHost = nullStr {
      example = "chat.example.org";
      description = ''
        The host name that serves Element Web. It must differ from
        {option}`services.ospw-matrix.matrixHost`.
      '';
    };

    synapse = {
      package = lib.mkPackageOption pkgs "matrix-synapse" {
        extraDescription = ''
          It must be nixpkgs' wrapped `matrix-synapse` (or an override of
          it) whose extras include `postgres` (they do by default):
          `matrix-synapse-unwrapped` has no PostgreSQL driver (psycopg2) and
          is refused. The units run it with the extras that what is turned
          on needs added to its own (`.override`): `redis` with
          {option}`services.ospw-matrix.synapse.workers.enable`, `oidc` with
          single sign-on providers.
        '';
      };

      listen = {
        address = mkOption {
          type = types.enum [
            "127.0.0.1"
            "::1"
          ];
          default = "127.0.0.1";
          description = "The loopback address of Synapse's client listener (only Caddy reaches it).";
        };
        port = portOption 8008 "The TCP port of Synapse's client listener, on loopback.";
        unixSocket = nullStr {
          example = "/run/ospw-matrix-synapse/client.sock";
          description = ''
            Listen on this Unix socket instead of TCP. It must be below
            {file}`/run/ospw-matrix-synapse/` (the unit's runtime
            directory); Caddy is added to Synapse's group to reach it.
          '';
        };
      };

      database = {
        createLocally = boolOption true ''
          Whether to enable PostgreSQL on this host
          ({option}`services.postgresql`) and create Synapse's role and
          database (C collation) if they are missing.
        '';
        name = mkOption {
          type = pgIdentifier;
          default = "synapse";
          description = "The PostgreSQL database.";
        };
        user = mkOption {
          type = pgIdentifier;
          default = "synapse";
          description = ''
            The PostgreSQL role, which is also the system user (and group)
            Synapse runs as: Synapse connects over the Unix socket with peer
            authentication, without a password.
          '';
        };
        socketDir = mkOption {
          type = types.str;
          default = "/run/postgresql";
          description = "The directory holding PostgreSQL's Unix socket.";
        };
        package = mkOption {
          type = types.package;
          default =
            if config.services.postgresql.enable then
              config.services.postgresql.package
            else
              pkgs.postgresql;
          defaultText = lib.literalExpression "if config.services.postgresql.enable then config.services.postgresql.package else pkgs.postgresql";
          example = lib.literalExpression "pkgs.postgresql_16";
          description = ''
            The PostgreSQL whose client programs (`psql`, `pg_dump`,
            `pg_restore`) create the database, and take and restore
            backups (the `ospw-matrix` command on the PATH and
            {option}`services.ospw-matrix.backup`). Set it when the
            database server is not {option}`services.postgresql`: its
            major version must not be older than the server's.
          '';
        };
        port = mkOption {
          type = types.port;
          default = config.services.postgresql.settings.port or 5432;
          defaultText = lib.literalExpression "config.services.postgresql.settings.port";
          description = "PostgreSQL's port, which names its socket file.";
        };
      };

      dataDir = mkOption {
        type = types.str;
        default = "${cfg.stateDir}/synapse";
        defaultText = lib.literalExpression ''"''${config.services.ospw-matrix.stateDir}/synapse"'';
        description = "Synapse's data directory (owned by the Synapse user, mode 0700).";
      };

      mediaStorePath = nullStr {
        description = "Where uploaded media are stored; `null` means {file}`media_store` in the data directory.";
      };

      maxUploadSize = mkOption {
        type = types.str;
        default = "50M";
        example = "100M";
        description = "The largest upload accepted (suffix K, M, G or T).";
      };

      presence = boolOption true "Whether online/offline presence is tracked and shared.";

      urlPreviews = boolOption false ''
        Whether URL previews are generated. Off by default: the server
        would fetch every posted link, telling the linked sites who reads
        what. Private address ranges are refused when on.
      '';

      encryptionByDefault = mkOption {
        type = types.enum [
          "all"
          "invite"
          "off"
        ];
        default = "all";
        description = "Which new rooms are end-to-end encrypted without the client asking.";
      };

      logLevel = mkOption {
        type = types.enum [
          "DEBUG"
          "INFO"
          "WARNING"
          "ERROR"
        ];
        default = "WARNING";
        description = "Synapse's log level (logs go to the journal; Synapse's access log, which would record who asked for what, is never written).";
      };

      settings = jsonOption {
        example.max_image_pixels = "64M";
        description = ''
          Extra {file}`homeserver.yaml` keys, merged last. Keys that would
          break privacy (federation, open registration) or hold a secret
          inline are refused with a message naming the key; use the
          `services.ospw-matrix.secrets.*File` options for secrets. See
          <https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html>.
        '';
      };
    };

    turn = {
      package = lib.mkPackageOption pkgs "coturn" {
        extraDescription = ''
          It must be built with libsystemd, as nixpkgs' is: the unit is
          `Type=notify`, so it becomes active (and the units ordered after it
          start) once coturn tells systemd it is ready.
        '';
      };

      host = nullStr {
        example = "turn.example.org";
        description = "The host name clients use for TURN; `null` means the Matrix host.";
      };

      realm = nullStr {
        description = "The TURN realm; `null` means the TURN host.";
      };

      listeningIps = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "203.0.113.7" ];
        description = "Addresses coturn listens on; empty means all addresses.";
      };

      port = portOption 3478 "The TURN listening port (UDP and TCP).";

      tls = {
        enable = lib.mkEnableOption "TURN over TLS and DTLS";
        port = portOption 5349 "The TURN TLS (TCP) and DTLS (UDP) port.";
        useACMEHost = nullStr {
          example = "turn.example.org";
          description = ''
            The name of a {option}`security.acme.certs` entry whose
            certificate coturn serves: {option}`certFile` and
            {option}`keyFile` default to its `fullchain.pem` and `key.pem`,
            `ospw-matrix-coturn.service` wants and starts after
            `acme-<name>.service`, and a renewal restarts it (the entry's
            `reloadServices`). Caddy holds port 80, so obtain this
            certificate with the DNS-01 challenge (`dnsProvider`); see
            docs/nixos.md, "TURN over TLS".
          '';
        };
        certFile = nullStr {
          example = "/var/lib/acme/turn.example.org/fullchain.pem";
          description = ''
            The certificate chain (PEM). Read at start through
            `LoadCredential=`; restart `ospw-matrix-coturn.service` after a
            renewal ({option}`useACMEHost` does both).
          '';
        };
        keyFile = nullStr {
          example = "/var/lib/acme/turn.example.org/key.pem";
          description = "The private key (PEM), read at start through `LoadCredential=`.";
        };
      };

      relayPortRange = {
        from = portOption 49152 "The first UDP port for relayed media.";
        to = portOption 65535 "The last UDP port for relayed media.";
      };

      externalIp = nullStr {
        example = "203.0.113.7/10.0.0.7";
        description = "The public address when the host is behind NAT (coturn's `external-ip`, `PUBLIC` or `PUBLIC/PRIVATE`). coturn exempts `PRIVATE` from the denied peer ranges, so it must also be in `listeningIps` or be `relayIp` (coturn then proves it is this host's).";
      };

      relayIp = nullStr {
        description = "The address to relay from (coturn's `relay-ip`).";
      };

      userQuota = mkOption {
        type = types.ints.positive;
        default = 12;
        description = "How many allocations one user may hold at once (at most 1000000).";
      };

      totalQuota = mkOption {
        type = types.ints.positive;
        default = 1200;
        description = "How many allocations the server holds at once (at most 1000000).";
      };

      credentialLifetime = mkOption {
        type = types.str;
        default = "1h";
        example = "1d";
        description = "How long the TURN credentials Synapse hands out stay valid: a number with a unit (ms, s, m, h, d or w), from one minute to seven days. A bare number is refused (Synapse would read it as milliseconds).";
      };

      settings = jsonOption {
        example.no-tcp-relay = true;
        description = ''
          Extra {file}`turnserver.conf` options, merged last: strings,
          numbers, booleans (a flag) or lists (the option repeated). Only
          options every supported coturn knows, with values it reads as
          written (one line, at most 1023 bytes with the name; numbers as
          plain digits); options set by another option here (ports, realm,
          quotas, addresses, TLS) may be restated but not changed. The
          shared secret may not be written here; see
          {option}`services.ospw-matrix.secrets.turnSharedSecretFile`.
        '';
      };
    };

    element = {
      package = lib.mkPackageOption pkgs "element-web" { };

      brand = mkOption {
        type = types.str;
        default = "Element";
        example = "Example Chat";
        description = "The name shown in Element's title and texts.";
      };

      defaultTheme = mkOption {
        type = types.enum [
          "light"
          "dark"
        ];
        default = "light";
        description = "Element's default theme.";
      };

      forceTurn = boolOption false ''
        Whether one-to-one calls always go through this server's TURN relay
        (Element's `webRtcForceTURN` setting default). Off, calls connect
        peer to peer when they can, which shows each caller's IP address to
        the other; on, nobody learns another user's address from a call, at
        the cost of relay bandwidth on this server and some latency. Users
        can still change it for themselves in Element's settings.
      '';

      mapStyleUrl = nullStr {
        example = "https://tiles.example.org/style.json";
        description = ''
          The map style of a tile server you host, for location sharing
          (Element's `map_style_url`, an `https://` URL). Without it
          location sharing is switched off: Element has no map server of
          its own.
        '';
      };

      jitsiDomain = nullStr {
        example = "meet.example.org";
        description = ''
          The host name of a Jitsi server you host, for conference calls in
          rooms. Without it widgets (and with them Jitsi conferences) are
          switched off; Element's default would be meet.element.io.
        '';
      };

      branding = {
        welcomeText = nullStr {
          example = "Welcome! Sign in with the account the admins made for you.";
          description = ''
            Text of the welcome page, as plain text (blank lines separate
            paragraphs). The page is rendered by `ospw-matrix render` and
            served by Caddy in place of Element's own, which links to
            element.io and others; it loads nothing from other sites.
          '';
        };
        logoFile = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = lib.literalExpression "./logo.svg";
          description = ''
            A logo (SVG, PNG, JPEG or WebP; the file name of letters,
            digits, `.`, `_` and `-`) shown on the welcome and sign-in
            pages, served by Caddy. It is public: a path in the Nix store is
            fine. Default: Element's logo.
          '';
        };
        footerLinks = mkOption {
          type = types.listOf (
            types.submodule {
              options = {
                text = mkOption {
                  type = types.str;
                  description = "The link text.";
                };
                url = mkOption {
                  type = types.str;
                  description = "The target, an `https://` URL.";
                };
              };
            }
          );
          default = [ ];
          example = [
            {
              text = "House rules";
              url = "https://example.org/rules";
            }
          ];
          description = "Links in the footer of Element's sign-in pages. Default: none.";
        };
        helpUrl = nullStr {
          example = "https://example.org/chat-help";
          description = "Where Element's help links lead (`https://`). Default: this Element itself, never element.io.";
        };
        desktopDownloadUrl = nullStr {
          example = "https://example.org/apps";
          description = "A page where people download a desktop client (`https://`). Default: no desktop download is offered.";
        };
      };

      settingDefaults = jsonOption {
        example.UIFeature.feedback = false;
        description = "Extra `setting_defaults` entries of Element's {file}`config.json`.";
      };

      settings = jsonOption {
        example.show_labs_settings = false;
        description = ''
          Extra {file}`config.json` keys, merged last. See
          <https://github.com/element-hq/element-web/blob/develop/docs/config.md>.
        '';
      };
    };

    proxy = {
      acmeEmail = nullStr {
        example = "admin@example.org";
        description = "The e-mail address given to the ACME CA (sets {option}`services.caddy.email`).";
      };

      tls = mkOption {
        type = types.enum [
          "acme"
          "internal"
        ];
        default = "acme";
        description = ''
          How Caddy obtains certificates: `acme` from a public CA (Let's
          Encrypt, ZeroSSL), `internal` from Caddy's own local CA (tests and
          closed networks; clients must trust that CA).
        '';
      };

      httpPort = portOption 80 "The HTTP port (redirects and ACME challenges).";

      httpsPort = portOption 443 "The HTTPS port.";

      bind = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Addresses Caddy binds the sites to; empty means all.";
      };

      serveBaseDomain = boolOption true ''
        Whether Caddy serves the base domain (for
        `/.well-known/matrix/client`). Turn off when the base domain's web
        site is hosted elsewhere and publish
        {file}`''${config.services.ospw-matrix.renderedConfig}/well-known/matrix/client` there.
      '';
    };

    sso = {
      passwordLogin = boolOption true ''
        Whether accounts may also sign in with a password. With `false`,
        Synapse offers single sign-on only: `ospw-matrix user add` creates
        accounts without a password (for providers with
        `allowExistingUsers`), `user reset-password` is refused and mail
        password resets are off. The CLI's own admin account keeps working
        (it takes its token from the registration, not from a password
        login).
      '';

      providers = mkOption {
        default = [ ];
        description = ''
          OpenID Connect providers (authentik, Keycloak, …), shown as
          sign-in buttons in this order. A first sign-in creates no account
          unless the provider says who may get one (`require`, or
          `autoCreate`). See docs/nixos.md for a worked authentik example;
          the redirect URI to register at the provider is
          `https://<matrixHost>/_synapse/client/oidc/callback`.
        '';
        type = types.listOf (
          types.submodule {
            options = {
              id = mkOption {
                type = types.strMatching "[a-z0-9][a-z0-9_-]{0,49}";
                example = "authentik";
                description = "A short identifier (Synapse's `idp_id` is `oidc-<id>`). Accounts are linked to it: never change it once people have signed in.";
              };
              name = mkOption {
                type = types.str;
                example = "Example SSO";
                description = "The name on the sign-in button.";
              };
              brand = nullStr {
                example = "authentik";
                description = "A brand identifier clients may use to style the button (Synapse's `idp_brand`).";
              };
              iconFile = mkOption {
                type = types.nullOr types.path;
                default = null;
                example = lib.literalExpression "./sso-icon.png";
                description = "An icon for the button (PNG, JPEG, WebP or SVG), served by Caddy on the Matrix host (it is not a secret and may be in the store). Never a remote URL.";
              };
              issuer = mkOption {
                type = types.str;
                example = "https://auth.example.org/application/o/matrix/";
                description = "The issuer URL (`https://`).";
              };
              clientId = mkOption {
                type = types.str;
                example = "matrix";
                description = "The client ID registered at the provider.";
              };
              clientSecretFile = nullStr {
                example = "/run/secrets/ospw-matrix/oidc-client-secret";
                description = ''
                  A file holding the client secret (sops-nix, agenix). It is
                  read at service start through systemd's `LoadCredential=`
                  and given to Synapse as `client_secret_path`; required.
                '';
              };
              scopes = mkOption {
                type = types.listOf types.str;
                default = [
                  "openid"
                  "profile"
                ];
                example = [
                  "openid"
                  "profile"
                  "email"
                ];
                description = "The scopes asked for; `openid` is required.";
              };
              pkce = mkOption {
                type = types.enum [
                  "auto"
                  "always"
                  "never"
                ];
                default = "auto";
                description = "Proof Key for Code Exchange: `auto` uses it when the provider offers it.";
              };
              userMapping = {
                subjectClaim = mkOption {
                  type = types.str;
                  default = "sub";
                  description = "The claim identifying the person for good.";
                };
                localpart = mkOption {
                  type = types.str;
                  default = "{{ user.preferred_username }}";
                  description = "The localpart, as a Jinja2 template over the claims (`user`).";
                };
                displayName = mkOption {
                  type = types.nullOr types.str;
                  default = "{{ user.name }}";
                  description = "The display name template, or `null`.";
                };
                email = mkOption {
                  type = types.nullOr types.str;
                  default = null;
                  example = "{{ user.email }}";
                  description = "The e-mail address template (kept for password resets and notifications), or `null`.";
                };
              };
              allowExistingUsers = boolOption false ''
                Whether a first sign-in is linked to an existing account of
                the same localpart (one made with `ospw-matrix user add`).
                The provider then decides who gets that account, admin
                rights included: use it only when people cannot choose
                their own user name at the provider.
              '';
              autoCreate = boolOption false ''
                Whether a first sign-in of anyone the provider authenticates
                creates an account. Prefer `require`.
              '';
              require = mkOption {
                type = types.listOf (
                  types.submodule {
                    options = {
                      attribute = mkOption {
                        type = types.str;
                        example = "groups";
                        description = "The claim.";
                      };
                      value = nullStr {
                        example = "chat-users";
                        description = "The value it must have (or contain, for a list such as groups).";
                      };
                      oneOf = mkOption {
                        type = types.listOf types.str;
                        default = [ ];
                        description = "Values of which it must have (or contain) one.";
                      };
                    };
                  }
                );
                default = [ ];
                example = lib.literalExpression ''[ { attribute = "groups"; value = "chat-users"; } ]'';
                description = "Claims a person must have to sign in; with any, a first sign-in of a person who has them creates an account.";
              };
            };
          }
        );
      };
    };

    email = {
      enable = lib.mkEnableOption "outgoing mail (SMTP) for password resets and notifications of missed messages";
      smtpHost = nullStr {
        example = "mail.example.org";
        description = "The SMTP server.";
      };
      smtpPort = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "Its port; `null` means 465 with implicit TLS, 587 with STARTTLS, 25 without TLS.";
      };
      tls = mkOption {
        type = types.enum [
          "implicit"
          "starttls"
          "off"
        ];
        default = "starttls";
        description = "`implicit` TLS, `starttls` (required, never skipped) or `off` (only to a relay on this host).";
      };
      user = nullStr {
        example = "matrix@example.org";
        description = "The SMTP user name.";
      };
      passwordFile = nullStr {
        example = "/run/secrets/ospw-matrix/smtp-password";
        description = ''
          A file holding the SMTP password (with `user`). Synapse has no file
          form for it: `ospw-matrix materialize synapse-secrets` writes it
          at service start into {file}`/run/ospw-matrix-synapse/secrets.yaml`
          (mode 0600, Synapse's user), read as a second configuration file.
        '';
      };
      from = nullStr {
        example = "Example Chat <noreply@example.org>";
        description = "The sender.";
      };
      passwordReset = boolOption false "Whether people may reset a forgotten password by mail (needs `sso.passwordLogin`).";
      notifications = boolOption false "Whether people get mail about messages they missed (never with the text of an encrypted message).";
      notificationDelay = mkOption {
        type = types.str;
        default = "10m";
        description = "How long a message stays unread before the notification mail.";
      };
    };

    secrets = {
      signingKeyFile = secretFile "the Synapse signing key (`ed25519 a_XXXX <seed>`)";
      registrationSharedSecretFile = secretFile "Synapse's registration shared secret";
      macaroonSecretKeyFile = secretFile "Synapse's macaroon secret key";
      formSecretFile = secretFile "Synapse's form secret";
      turnSharedSecretFile = secretFile "the TURN REST API secret shared by Synapse and coturn";
      workerReplicationSecretFile = secretFile "the secret Synapse's processes authenticate replication with (synapse.workers)";
    };

    # Results, for the other module files, for tests and for users who want
    # to publish a rendered file elsewhere.
    hostDescription = mkOption {
      type = jsonFormat.type;
      readOnly = true;
      description = "The host description given to `ospw-matrix render` (no secret values, no secret paths).";
    };

    hostDescriptionFile = mkOption {
      type = types.package;
      readOnly = true;
      description = "{option}`services.ospw-matrix.hostDescription` as a JSON file in the store.";
    };

    renderedConfig = mkOption {
      type = types.package;
      readOnly = true;
      description = ''
        The output of `ospw-matrix render`: {file}`synapse/homeserver.yaml`,
        {file}`coturn/turnserver.conf` (without its secret),
        {file}`element/config.json`, {file}`caddy/sites.caddy`,
        {file}`well-known/matrix/client` and {file}`host.json`. An invalid
        configuration fails this build with the validator's message.
      '';
    };
  };
}
