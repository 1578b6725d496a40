//! The host description: one declarative description of a private Matrix
//! server, from which every component's configuration is derived.
//!
//! The same schema is read from YAML or JSON. Every struct denies unknown
//! fields, so a misspelt key is an error naming the key rather than a silently
//! ignored setting. Values are kept close to what the user wrote (strings for
//! host names, sizes and durations) so that [`mod@crate::validate`] can report
//! *every* problem in one pass with the field path and the expected form.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A free-form map of extra settings for one component, merged last into the
/// emitted configuration (RFC 42 style). It may not break the invariants that
/// keep the server private: each component model's `privacy_violations()`.
pub type FreeformSettings = BTreeMap<String, serde_json::Value>;

/// The whole private Matrix host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostDescription {
    /// The base domain of the deployment, e.g. `example.org`. When it differs
    /// from `matrix_host`, the proxy serves `/.well-known/matrix/client` on it.
    pub base_domain: String,
    /// The Matrix server name: the part after the colon in `@alice:example.org`.
    /// Either the base domain (with `.well-known` delegation to `matrix_host`)
    /// or the Matrix host itself. It can never change after the first start.
    pub server_name: String,
    /// The host name that serves the Matrix client API, e.g. `matrix.example.org`.
    pub matrix_host: String,
    /// The host name that serves Element Web, e.g. `chat.example.org`.
    pub element_host: String,
    /// Synapse, the homeserver.
    #[serde(default)]
    pub synapse: SynapseSettings,
    /// coturn, the TURN server for voice and video calls.
    #[serde(default)]
    pub turn: TurnSettings,
    /// Element Web, the browser client.
    #[serde(default)]
    pub element: ElementSettings,
    /// Caddy, the reverse proxy that terminates TLS.
    #[serde(default)]
    pub proxy: ProxySettings,
    /// Where the secrets live. Secret values are never written here.
    #[serde(default)]
    pub secrets: SecretsSettings,
    /// Single sign-on through OpenID Connect providers, and whether
    /// passwords stay enabled.
    #[serde(default, skip_serializing_if = "SsoSettings::is_default")]
    pub sso: SsoSettings,
    /// Outgoing mail (SMTP): password resets and notifications of missed
    /// messages. No mail is sent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// Prometheus metrics (off unless enabled), on loopback only.
    #[serde(default)]
    pub metrics: MetricsSettings,
}

/// Synapse settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SynapseSettings {
    /// Where Synapse's client listener listens. It is never exposed directly:
    /// only the proxy reaches it. Written as `{tcp: {address, port}}` or
    /// `{unix: {path}}`.
    #[serde(with = "serde_yaml::with::singleton_map")]
    #[schemars(with = "SynapseListen")]
    pub listen: SynapseListen,
    /// PostgreSQL, reached over its Unix socket with peer authentication.
    pub database: DatabaseSettings,
    /// Synapse's data directory (media store default, state).
    pub data_dir: PathBuf,
    /// Where uploaded media are stored. Defaults to `<data_dir>/media_store`.
    pub media_store_path: Option<PathBuf>,
    /// The largest upload accepted, as a size such as `50M` (suffix K, M, G or T).
    pub max_upload_size: String,
    /// Whether online/offline presence is tracked and shared.
    pub presence: bool,
    /// Whether URL previews are generated. Off by default: fetching URLs leaks
    /// who reads what to the linked sites. When on, private ranges are refused.
    pub url_previews: bool,
    /// Which new rooms get end-to-end encryption without the client asking.
    pub encryption_by_default: EncryptionDefault,
    /// Synapse's log level.
    pub log_level: LogLevel,
    /// Extra `homeserver.yaml` keys, merged last. Keys that would break
    /// privacy (federation, registration, inline secrets) are refused.
    pub settings: FreeformSettings,
}

impl Default for SynapseSettings {
    fn default() -> Self {
        Self {
            listen: SynapseListen::default(),
            database: DatabaseSettings::default(),
            data_dir: PathBuf::from("/var/lib/ospw-matrix/synapse"),
            media_store_path: None,
            max_upload_size: "50M".to_owned(),
            presence: true,
            url_previews: false,
            encryption_by_default: EncryptionDefault::All,
            log_level: LogLevel::Warning,
            settings: FreeformSettings::new(),
        }
    }
}

impl SynapseSettings {
    /// The media store path, defaulting to `<data_dir>/media_store`.
    pub fn media_store_path(&self) -> PathBuf {
        self.media_store_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media_store"))
    }
}

/// Where Synapse's client listener listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SynapseListen {
    /// A TCP port on a loopback address.
    Tcp {
        /// The loopback address, `127.0.0.1` or `::1`.
        address: String,
        /// The TCP port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix {
        /// Absolute path of the socket.
        path: PathBuf,
    },
}

impl Default for SynapseListen {
    fn default() -> Self {
        Self::Tcp {
            address: "127.0.0.1".to_owned(),
            port: 8008,
        }
    }
}

/// PostgreSQL connection over the Unix socket (peer authentication, no password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// The database name.
    pub name: String,
    /// The database role; with peer authentication it equals the system user.
    pub user: String,
    /// The directory holding PostgreSQL's socket.
    pub socket_dir: PathBuf,
    /// The port, which names the socket file (`.s.PGSQL.<port>`).
    pub port: u16,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            name: "synapse".to_owned(),
            user: "synapse".to_owned(),
            socket_dir: PathBuf::from("/run/postgresql"),
            port: 5432,
        }
    }
}

/// Which new rooms are end-to-end encrypted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncryptionDefault {
    /// Every new room.
    All,
    /// Rooms created as private (invite-only).
    Invite,
    /// None: clients decide.
    Off,
}

/// A Python logging level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Problems only.
    Warning,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// The level name as Python's logging module spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

/// coturn settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TurnSettings {
    /// The host name clients use for TURN. Defaults to `matrix_host`.
    pub host: Option<String>,
    /// The TURN realm. Defaults to the TURN host.
    pub realm: Option<String>,
    /// Addresses coturn listens on. Empty means all addresses.
    pub listening_ips: Vec<String>,
    /// The TURN listening port (UDP and TCP).
    pub port: u16,
    /// TURN over TLS, off unless set.
    pub tls: Option<TurnTls>,
    /// The UDP port range for relayed media, as `FIRST-LAST`.
    pub relay_ports: String,
    /// The public address, when the host is behind NAT (coturn's
    /// `external-ip`): `PUBLIC`, or `PUBLIC/PRIVATE` with this host's private
    /// address, which coturn exempts from the denied peer ranges; that
    /// address must then also be in `listening_ips` or be `relay_ip`, so
    /// coturn proves it is this host's and not another machine's.
    pub external_ip: Option<String>,
    /// The address to relay from (coturn's `relay-ip`).
    pub relay_ip: Option<String>,
    /// How many allocations one user may hold at once (1 to 1000000; coturn
    /// would read 0 as no limit).
    pub user_quota: u32,
    /// How many allocations the server holds at once (1 to 1000000; coturn
    /// would read 0 as no limit).
    pub total_quota: u32,
    /// How long the credentials Synapse hands out stay valid, as a duration
    /// with a unit such as `1h` or `1d` (ms, s, m, h, d or w), from one
    /// minute to seven days. A bare number is refused (Synapse would read it
    /// as milliseconds).
    pub credential_lifetime: String,
    /// Extra `turnserver.conf` options, merged last. Values are strings,
    /// numbers, booleans (a flag) or lists (the option repeated). Only
    /// options every supported coturn knows, with values it reads as
    /// written (one line, no leading `-`, `=`, space or quote); options set
    /// by a typed field may be restated but not changed.
    pub settings: FreeformSettings,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            host: None,
            realm: None,
            listening_ips: Vec::new(),
            port: 3478,
            tls: None,
            relay_ports: "49152-65535".to_owned(),
            external_ip: None,
            relay_ip: None,
            user_quota: 12,
            total_quota: 1200,
            credential_lifetime: "1h".to_owned(),
            settings: FreeformSettings::new(),
        }
    }
}

/// TURN over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnTls {
    /// The TLS listening port.
    #[serde(default = "default_turn_tls_port")]
    pub port: u16,
    /// The certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The private key (PEM).
    pub key_file: PathBuf,
}

fn default_turn_tls_port() -> u16 {
    5349
}

/// Element Web settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ElementSettings {
    /// The name shown in Element's title and texts.
    pub brand: String,
    /// The default theme.
    pub default_theme: ElementTheme,
    /// The directory holding Element Web's built app. `config.json` (and the
    /// welcome page) are served from the rendered output, not from here.
    pub webroot: PathBuf,
    /// Whether one-to-one calls always go through this server's TURN relay
    /// (Element's `webRtcForceTURN` setting default). Off: calls connect
    /// peer to peer when they can, which shows each caller's IP address to
    /// the other. On: nobody learns another user's address from a call, at
    /// the cost of relay bandwidth on this server and some latency. Users
    /// can still change it for themselves in Element's settings.
    pub force_turn: bool,
    /// A map style (`style.json`) of a tile server you host, for location
    /// sharing (Element's `map_style_url`). Without it location sharing is
    /// switched off: Element has no map server of its own.
    pub map_style_url: Option<String>,
    /// The host name of a Jitsi server you host, for conference calls in
    /// rooms (Element's `jitsi.preferred_domain`). Without it widgets, and
    /// with them Jitsi conferences, are switched off (Element's default is
    /// meet.element.io).
    pub jitsi_domain: Option<String>,
    /// The community's own branding of the pages people see before and
    /// around signing in.
    pub branding: ElementBranding,
    /// Extra `setting_defaults` entries.
    pub setting_defaults: FreeformSettings,
    /// Extra `config.json` keys, merged last.
    pub settings: FreeformSettings,
}

impl Default for ElementSettings {
    fn default() -> Self {
        Self {
            brand: "Element".to_owned(),
            default_theme: ElementTheme::Light,
            webroot: PathBuf::from("/var/lib/ospw-matrix/element-web"),
            force_turn: false,
            map_style_url: None,
            jitsi_domain: None,
            branding: ElementBranding::default(),
            setting_defaults: FreeformSettings::new(),
            settings: FreeformSettings::new(),
        }
    }
}

/// Element's welcome and sign-in pages and its help and download links.
/// Nothing here loads anything from another site: the welcome page is a
/// self-contained page served from the rendered output, the logo a file
/// this host serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ElementBranding {
    /// Text shown on the welcome page under the brand name, as plain text
    /// (blank lines separate paragraphs). Default: a short invitation to
    /// sign in.
    pub welcome_text: Option<String>,
    /// An image file on this host (SVG, PNG, JPEG or WebP) shown as the
    /// logo on the welcome and sign-in pages. Default: Element's logo.
    pub logo_file: Option<PathBuf>,
    /// Links in the sign-in pages' footer. Default: none.
    pub footer_links: Vec<ElementLink>,
    /// Where Element's "help" links lead (an `https://` URL). Default:
    /// this Element itself, never element.io.
    pub help_url: Option<String>,
    /// A page where people download a desktop client (an `https://` URL).
    /// Default: no desktop download is offered.
    pub desktop_download_url: Option<String>,
}

/// A link shown by Element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementLink {
    /// The link text.
    pub text: String,
    /// The target, an `https://` URL.
    pub url: String,
}

/// Element's built-in themes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ElementTheme {
    /// The light theme.
    Light,
    /// The dark theme.
    Dark,
}

/// Caddy, the TLS-terminating reverse proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// How certificates are obtained.
    pub tls: ProxyTls,
    /// The e-mail address given to the ACME CA (optional).
    pub acme_email: Option<String>,
    /// The HTTP port (redirects to HTTPS and ACME challenges).
    pub http_port: u16,
    /// The HTTPS port.
    pub https_port: u16,
    /// Addresses to bind. Empty means all addresses.
    pub bind: Vec<String>,
    /// Whether the base domain is served by this proxy (for
    /// `/.well-known/matrix/client`). Turn off when the base domain's web site
    /// is hosted elsewhere, and publish the rendered file there.
    pub serve_base_domain: bool,
    /// Caddy's admin endpoint in the standalone Caddyfile: `off`, a
    /// loopback address with one port (`localhost:2019`, `127.0.0.1:2019`,
    /// `[::1]:2019`) or a Unix socket (`unix//run/caddy/admin.sock`). It has
    /// no authentication, so it never listens on the network. NixOS manages
    /// Caddy's global options itself.
    pub admin: String,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            tls: ProxyTls::Acme,
            acme_email: None,
            http_port: 80,
            https_port: 443,
            bind: Vec::new(),
            serve_base_domain: true,
            admin: "localhost:2019".to_owned(),
        }
    }
}

/// How the proxy obtains certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyTls {
    /// Automatic HTTPS from a public ACME CA (Let's Encrypt, ZeroSSL).
    Acme,
    /// Caddy's own local CA, for tests and closed networks.
    Internal,
}

/// Prometheus metrics of Synapse, coturn and Caddy. Each endpoint listens
/// on 127.0.0.1 only and is never routed through the proxy's public sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Whether the three endpoints are turned on.
    pub enable: bool,
    /// Synapse's metrics listener (`/_synapse/metrics`) on 127.0.0.1.
    pub synapse_port: u16,
    /// coturn's Prometheus exporter (`/metrics`) on 127.0.0.1.
    pub coturn_port: u16,
    /// Caddy's metrics (`/metrics`) on 127.0.0.1.
    pub caddy_port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enable: false,
            synapse_port: 9000,
            coturn_port: 9641,
            caddy_port: 9180,
        }
    }
}

/// The only address a metrics endpoint listens on.
pub const METRICS_ADDRESS: &str = "127.0.0.1";

/// Where secrets are kept. Each secret is read from its explicit `*_file`
/// when given (sops-nix, agenix), otherwise from a file of a fixed name in
/// `dir`, which `ospw-matrix secrets init` fills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsSettings {
    /// The directory of generated secrets (mode 0700).
    pub dir: PathBuf,
    /// The Synapse signing key (`ed25519 a_XXXX <seed>`).
    pub signing_key_file: Option<PathBuf>,
    /// Synapse's registration shared secret (admin account creation).
    pub registration_shared_secret_file: Option<PathBuf>,
    /// Synapse's macaroon secret key.
    pub macaroon_secret_key_file: Option<PathBuf>,
    /// Synapse's form secret.
    pub form_secret_file: Option<PathBuf>,
    /// The shared secret between Synapse and coturn (TURN REST API).
    pub turn_shared_secret_file: Option<PathBuf>,
}

impl Default for SecretsSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/ospw-matrix/secrets"),
            signing_key_file: None,
            registration_shared_secret_file: None,
            macaroon_secret_key_file: None,
            form_secret_file: None,
            turn_shared_secret_file: None,
        }
    }
}

/// Single sign-on (OpenID Connect) and whether passwords stay enabled.
///
/// Signing in through a provider is not public registration: a first login
/// creates no account unless the provider says who may get one (`require`,
/// or an explicit `auto_create: true`), and only people the organisation's
/// own identity provider authenticates can try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SsoSettings {
    /// Whether accounts may also sign in with a password. With `false`,
    /// Synapse offers single sign-on only, `ospw-matrix user add` creates
    /// accounts without a usable password (for providers that link existing
    /// accounts) and password resets are off.
    pub password_login: bool,
    /// The OpenID Connect providers, shown as sign-in buttons in this order.
    pub providers: Vec<OidcProviderSettings>,
}

impl Default for SsoSettings {
    fn default() -> Self {
        Self {
            password_login: true,
            providers: Vec::new(),
        }
    }
}

impl SsoSettings {
    /// Whether these are the defaults (passwords on, no provider).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One OpenID Connect provider (an authentik application, Keycloak client, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderSettings {
    /// A short identifier: lower-case letters, digits, `-` and `_` (Synapse's
    /// `idp_id` becomes `oidc-<id>`). Accounts are linked to it: never
    /// change it once people have signed in.
    pub id: String,
    /// The name on the sign-in button, such as `Example SSO`.
    pub name: String,
    /// A brand identifier clients may use to style the button (Synapse's
    /// `idp_brand`, such as `authentik` or `keycloak`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// An icon for the button (PNG, JPEG, WebP or SVG), served by our own
    /// proxy on the Matrix host; never a remote URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_file: Option<PathBuf>,
    /// The issuer URL, such as
    /// `https://auth.example.org/application/o/matrix/`. `https://`;
    /// `http://` only for a loopback test provider.
    pub issuer: String,
    /// The client ID registered at the provider.
    pub client_id: String,
    /// The file holding the client secret (Synapse's `client_secret_path`).
    pub client_secret_file: PathBuf,
    /// The scopes asked for; `openid` is required.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// Proof Key for Code Exchange: `auto` (when the provider offers it),
    /// `always` or `never`.
    #[serde(default)]
    pub pkce: PkceMethod,
    /// How the provider's claims become the Matrix account.
    #[serde(default)]
    pub user_mapping: UserMapping,
    /// Whether a first sign-in is linked to an existing account of the same
    /// localpart (one an admin created with `ospw-matrix user add`). The
    /// provider then decides who gets that account, admin rights included:
    /// use it only when users cannot choose their own name there.
    #[serde(default)]
    pub allow_existing_users: bool,
    /// Whether a first sign-in of anyone the provider authenticates creates
    /// an account. Off by default; prefer `require`.
    #[serde(default)]
    pub auto_create: bool,
    /// Claims a person must have to sign in (all of them); with any, a
    /// first sign-in of a person who has them creates an account.
    #[serde(default)]
    pub require: Vec<AttributeRequirement>,
}

fn default_oidc_scopes() -> Vec<String> {
    vec!["openid".to_owned(), "profile".to_owned()]
}

impl OidcProviderSettings {
    /// Whether a first sign-in may create an account.
    pub fn creates_accounts(&self) -> bool {
        self.auto_create || !self.require.is_empty()
    }

    /// Synapse's identity provider ID, `oidc-<id>`.
    pub fn idp_id(&self) -> String {
        format!("oidc-{}", self.id)
    }
}

/// Synapse's `pkce_method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PkceMethod {
    /// When the provider advertises S256.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl PkceMethod {
    /// The value as Synapse spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

/// How a provider's claims map to the Matrix account: Jinja2 templates over
/// the claims (`user`), as Synapse's default mapping provider renders them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UserMapping {
    /// The claim that identifies the person at the provider for good
    /// (accounts are linked to it).
    pub subject_claim: String,
    /// The localpart (`alice` of `@alice:example.org`).
    pub localpart: String,
    /// The display name, if any.
    pub display_name: Option<String>,
    /// The e-mail address stored with the account (for password resets and
    /// notifications), if any.
    pub email: Option<String>,
}

impl Default for UserMapping {
    fn default() -> Self {
        Self {
            subject_claim: "sub".to_owned(),
            localpart: "{{ user.preferred_username }}".to_owned(),
            display_name: Some("{{ user.name }}".to_owned()),
            email: None,
        }
    }
}

/// A claim a person must have: `value` (one value) or `one_of` (any of
/// these). A list claim such as `groups` matches when it contains the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeRequirement {
    /// The claim, such as `groups`.
    pub attribute: String,
    /// The value it must have (or contain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Values of which it must have (or contain) one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
}

/// Outgoing mail through an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP server.
    pub smtp_host: String,
    /// Its port; default 465 with implicit TLS, 587 with STARTTLS, 25 without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// `implicit` (TLS from the first byte), `starttls` (required, never
    /// skipped) or `off` (only to a loopback host).
    #[serde(default)]
    pub tls: SmtpTls,
    /// The SMTP user name, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The file holding the SMTP password (with `user`). Synapse cannot read
    /// it from a file: `ospw-matrix materialize synapse-secrets` writes it
    /// into a second configuration file at service start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The sender, such as `Example Chat <noreply@example.org>`.
    pub from: String,
    /// Whether people may reset a forgotten password by mail. Off by default.
    #[serde(default)]
    pub password_reset: bool,
    /// Whether people get mail about messages they missed. Off by default;
    /// the mail never contains the text of an encrypted message.
    #[serde(default)]
    pub notifications: bool,
    /// How long a message stays unread before the notification mail, such
    /// as `10m`.
    #[serde(default = "default_notification_delay")]
    pub notification_delay: String,
}

fn default_notification_delay() -> String {
    "10m".to_owned()
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// STARTTLS, required: a server that does not offer it gets no mail.
    #[default]
    Starttls,
    /// No TLS: only to a loopback host (a local relay).
    Off,
}

impl EmailSettings {
    /// The SMTP port, defaulting by TLS mode.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            SmtpTls::Implicit => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::Off => 25,
        })
    }
}

/// One of the secrets the server needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    /// Synapse's ed25519 signing key.
    SigningKey,
    /// Synapse's registration shared secret.
    RegistrationSharedSecret,
    /// Synapse's macaroon secret key.
    MacaroonSecretKey,
    /// Synapse's form secret.
    FormSecret,
    /// The TURN REST API shared secret.
    TurnSharedSecret,
}

impl SecretKind {
    /// Every secret, in a fixed order.
    pub const ALL: [SecretKind; 5] = [
        SecretKind::SigningKey,
        SecretKind::RegistrationSharedSecret,
        SecretKind::MacaroonSecretKey,
        SecretKind::FormSecret,
        SecretKind::TurnSharedSecret,
    ];

    /// The file name of this secret inside the secrets directory; also the
    /// systemd credential name on NixOS.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::SigningKey => "signing_key",
            Self::RegistrationSharedSecret => "registration_shared_secret",
            Self::MacaroonSecretKey => "macaroon_secret_key",
            Self::FormSecret => "form_secret",
            Self::TurnSharedSecret => "turn_shared_secret",
        }
    }

    /// The host-description field that overrides this secret's path.
    pub fn field(self) -> &'static str {
        match self {
            Self::SigningKey => "secrets.signing_key_file",
            Self::RegistrationSharedSecret => "secrets.registration_shared_secret_file",
            Self::MacaroonSecretKey => "secrets.macaroon_secret_key_file",
            Self::FormSecret => "secrets.form_secret_file",
            Self::TurnSharedSecret => "secrets.turn_shared_secret_file",
        }
    }
}

impl SecretsSettings {
    /// The explicit file for `kind`, if one is configured.
    pub fn explicit_file(&self, kind: SecretKind) -> Option<&PathBuf> {
        match kind {
            SecretKind::SigningKey => self.signing_key_file.as_ref(),
            SecretKind::RegistrationSharedSecret => self.registration_shared_secret_file.as_ref(),
            SecretKind::MacaroonSecretKey => self.macaroon_secret_key_file.as_ref(),
            SecretKind::FormSecret => self.form_secret_file.as_ref(),
            SecretKind::TurnSharedSecret => self.turn_shared_secret_file.as_ref(),
        }
    }

    /// The path the services read `kind` from.
    pub fn path(&self, kind: SecretKind) -> PathBuf {
        self.explicit_file(kind)
            .cloned()
            .unwrap_or_else(|| self.dir.join(kind.file_name()))
    }
}

impl HostDescription {
    /// The TURN host name (defaults to the Matrix host).
    pub fn turn_host(&self) -> &str {
        self.turn.host.as_deref().unwrap_or(&self.matrix_host)
    }

    /// The TURN realm (defaults to the TURN host).
    pub fn turn_realm(&self) -> &str {
        self.turn
            .realm
            .as_deref()
            .unwrap_or_else(|| self.turn_host())
    }

    /// The public URL of the client API, e.g. `https://matrix.example.org`,
    /// with the port when the proxy does not use 443.
    pub fn homeserver_url(&self) -> String {
        https_url(&self.matrix_host, self.proxy.https_port)
    }

    /// The public URL of Element Web.
    pub fn element_url(&self) -> String {
        https_url(&self.element_host, self.proxy.https_port)
    }

    /// Whether clients find the homeserver through `.well-known` on the base
    /// domain (server name = base domain, Matrix API on another host).
    pub fn delegates_from_base_domain(&self) -> bool {
        self.base_domain != self.matrix_host
    }
}

fn https_url(host: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}
