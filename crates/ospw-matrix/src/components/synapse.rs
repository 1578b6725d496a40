//! Synapse's `homeserver.yaml`: a typed model of every key this product sets,
//! a catch-all for the rest, and the privacy check.
//!
//! The model can load an existing `homeserver.yaml` ([`HomeserverConfig::from_yaml_str`]),
//! be changed and written back ([`HomeserverConfig::to_yaml_string`]): keys it
//! does not know are kept in `extra` maps (at the top level and inside
//! listeners, resources, the database section, presence and push), so a
//! round trip keeps them all.
//!
//! [`HomeserverConfig::privacy_violations`] lists every way a configuration
//! breaks the invariants of a private, non-federating server. It reads each
//! key the way Synapse does, so an *absent* key counts as Synapse's default:
//! no `federation_domain_whitelist` means "federate with everyone", no
//! `trusted_key_servers` means "trust matrix.org".
//!
//! YAML is read as YAML 1.2 (serde_yaml) while Synapse reads YAML 1.1
//! (PyYAML). The typed fields accept the YAML 1.1 forms that matter here
//! (an octal socket `mode` such as `0660`); in unknown keys, YAML-1.1-only
//! scalars (`yes`/`no`, leading-zero octals) are kept as strings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::components::synapse_auth::{EmailConfig, OidcProvider, PasswordConfig, SsoConfig};
use crate::error::{Error, Result, ValidationErrors};

/// Keys a model does not know, kept as they were read.
pub type Extra = BTreeMap<String, serde_yaml::Value>;

/// Synapse's `homeserver.yaml`.
///
/// Every typed field is optional: `None` means the key is absent (Synapse's
/// default applies) and is not written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HomeserverConfig {
    /// The Matrix server name (the part after the colon in user IDs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The public URL of the client API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_baseurl: Option<String>,
    /// Where a browser visiting the homeserver's root is redirected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_client_location: Option<String>,
    /// Whether Synapse serves `/.well-known/matrix/server` (federation discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_server_wellknown: Option<bool>,
    /// The listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<Listener>>,
    /// The database connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConfig>,
    /// The Python logging configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_config: Option<String>,
    /// Where uploaded media are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_store_path: Option<String>,
    /// The largest upload accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upload_size: Option<ByteSize>,
    /// The file holding the server's signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_path: Option<String>,
    /// The file holding the registration shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_shared_secret_path: Option<String>,
    /// The file holding the macaroon secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macaroon_secret_key_path: Option<String>,
    /// The file holding the form secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_secret_path: Option<String>,
    /// The servers allowed to federate with this one (`[]`: none; absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_domain_whitelist: Option<Vec<String>>,
    /// The notary servers whose keys are trusted (absent: matrix.org).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_key_servers: Option<Vec<TrustedKeyServer>>,
    /// Hides the warning about trusting matrix.org's key server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_key_server_warning: Option<bool>,
    /// Whether other servers may look up local profiles (Synapse default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_profile_lookup_over_federation: Option<bool>,
    /// Whether other servers may read the public room directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_public_rooms_over_federation: Option<bool>,
    /// Whether other servers may read device names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_device_name_lookup_over_federation: Option<bool>,
    /// Whether the room directory may be read without logging in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_public_rooms_without_auth: Option<bool>,
    /// Whether profile requests need an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_auth_for_profile_requests: Option<bool>,
    /// Whether profiles are visible only to users sharing a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_profile_requests_to_users_who_share_rooms: Option<bool>,
    /// Whether anyone may register an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_registration: Option<bool>,
    /// Whether guests (no account) may use the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_guest_access: Option<bool>,
    /// Whether 3PID (e-mail, phone) lookups are forwarded to identity servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_3pid_lookup: Option<bool>,
    /// Whether anonymous usage statistics are sent to matrix.org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_stats: Option<bool>,
    /// Whether Prometheus metrics are collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_metrics: Option<bool>,
    /// Presence (online/offline status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceConfig>,
    /// Push notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushConfig>,
    /// Whether URL previews are generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_preview_enabled: Option<bool>,
    /// Address ranges URL previews may not fetch from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_preview_ip_range_blacklist: Option<Vec<String>>,
    /// Address ranges Synapse never connects to (outbound requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range_blacklist: Option<Vec<String>>,
    /// Which new rooms are end-to-end encrypted by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_enabled_by_default_for_room_type: Option<RoomEncryption>,
    /// The TURN URIs handed to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_uris: Option<Vec<String>>,
    /// The file holding the TURN REST API shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_shared_secret_path: Option<String>,
    /// How long TURN credentials stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_user_lifetime: Option<Duration>,
    /// Whether guests get TURN credentials (Synapse default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_allow_guests: Option<bool>,
    /// Single sign-on through OpenID Connect providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_providers: Option<Vec<OidcProvider>>,
    /// Whether passwords sign people in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_config: Option<PasswordConfig>,
    /// Single sign-on settings shared by the providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoConfig>,
    /// Outgoing mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailConfig>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
    /// Typed top-level keys that were read with an explicit `null` (Synapse
    /// then applies its default, as for an absent key). Their typed fields
    /// stay `None`; each is written back as `null` while its field is
    /// unset, so a round trip keeps the key.
    #[serde(skip)]
    pub null_keys: Vec<String>,
}

/// One listener (`listeners[]`): TCP (`port` + `bind_addresses`) or a Unix
/// socket (`path` + `mode`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    /// The TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The addresses a TCP listener binds (absent: every interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_addresses: Option<Vec<String>>,
    /// The legacy single bind address, added to `bind_addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<String>,
    /// The Unix socket path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The Unix socket's permissions (Synapse default 0666).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SocketMode>,
    /// The listener type.
    #[serde(rename = "type")]
    pub kind: ListenerType,
    /// Whether the listener terminates TLS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Whether `X-Forwarded-For` from the reverse proxy is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded: Option<bool>,
    /// The resources served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ListenerResource>>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Listener {
    /// An HTTP listener on TCP `port` bound to `bind_addresses`, serving `names`.
    pub fn tcp(bind_addresses: Vec<String>, port: u16, names: Vec<ResourceName>) -> Self {
        Self {
            port: Some(port),
            bind_addresses: Some(bind_addresses),
            bind_address: None,
            path: None,
            mode: None,
            kind: ListenerType::Http,
            tls: Some(false),
            x_forwarded: Some(true),
            resources: Some(vec![ListenerResource::new(names)]),
            extra: Extra::new(),
        }
    }

    /// An HTTP listener on the Unix socket `path` with permissions `mode`,
    /// serving `names`.
    pub fn unix(path: String, mode: u32, names: Vec<ResourceName>) -> Self {
        Self {
            port: None,
            bind_addresses: None,
            bind_address: None,
            path: Some(path),
            mode: Some(SocketMode(mode)),
            kind: ListenerType::Http,
            tls: None,
            x_forwarded: Some(true),
            resources: Some(vec![ListenerResource::new(names)]),
            extra: Extra::new(),
        }
    }

    /// Every address a TCP listener binds: `bind_addresses` plus the legacy
    /// `bind_address`. Empty means Synapse's default, every interface.
    pub fn all_bind_addresses(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .bind_addresses
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if let Some(one) = &self.bind_address {
            all.push(one);
        }
        all
    }
}

/// A listener's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerType {
    /// The HTTP APIs.
    Http,
    /// A Python shell (SSH) into the running server.
    Manhole,
    /// Prometheus metrics.
    Metrics,
}

/// A group of resources served by one listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerResource {
    /// The resources.
    #[serde(default)]
    pub names: Vec<ResourceName>,
    /// Whether responses are gzip-compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ListenerResource {
    /// Resources `names`, uncompressed (the proxy compresses).
    pub fn new(names: Vec<ResourceName>) -> Self {
        Self {
            names,
            compress: Some(false),
            extra: Extra::new(),
        }
    }
}

/// A resource a listener can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceName {
    /// The client-server API (and the admin API, media, `/health`).
    Client,
    /// The consent tracking pages.
    Consent,
    /// The server-server (federation) API.
    Federation,
    /// The key server API for other servers.
    Keys,
    /// The media repository.
    Media,
    /// Prometheus metrics.
    Metrics,
    /// OpenID token introspection for other servers.
    Openid,
    /// Worker replication.
    Replication,
    /// Static files.
    Static,
    /// The health check.
    Health,
}

impl ResourceName {
    /// The name as Synapse spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Consent => "consent",
            Self::Federation => "federation",
            Self::Keys => "keys",
            Self::Media => "media",
            Self::Metrics => "metrics",
            Self::Openid => "openid",
            Self::Replication => "replication",
            Self::Static => "static",
            Self::Health => "health",
        }
    }
}

/// A Unix socket's permission bits. Written as a decimal integer (which
/// PyYAML and serde_yaml read alike); read from an integer or from a
/// leading-zero octal such as `0660`, which PyYAML (YAML 1.1) reads as octal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl Serialize for SocketMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for SocketMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SocketMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("permission bits: an integer, or an octal such as 0660")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<SocketMode, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .map(SocketMode)
                    .ok_or_else(|| E::custom(format!("{v} is not a permission mode (0 to 0o7777)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<SocketMode, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is not a permission mode")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<SocketMode, E> {
                let digits = v
                    .strip_prefix("0o")
                    .or_else(|| v.strip_prefix('0'))
                    .filter(|d| !d.is_empty());
                digits
                    .and_then(|d| u32::from_str_radix(d, 8).ok())
                    .filter(|m| *m <= 0o7777)
                    .map(SocketMode)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "{v:?} is not a permission mode: expected an octal such as 0660"
                        ))
                    })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A byte size: a number of bytes, or a string with a suffix K, M, G or T
/// (powers of 1024), as Synapse's `parse_size` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteSize {
    /// A number of bytes.
    Bytes(u64),
    /// A size such as `50M`.
    Text(String),
}

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(&self) -> std::result::Result<u64, String> {
        match self {
            Self::Bytes(n) => Ok(*n),
            Self::Text(text) => crate::values::parse_size_bytes(text),
        }
    }
}

/// A duration: a number of milliseconds, or a string with a suffix ms, s,
/// m, h, d, w or y, as Synapse's `parse_duration` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duration {
    /// Milliseconds.
    Millis(u64),
    /// A duration such as `1h`.
    Text(String),
}

impl Duration {
    /// The duration in milliseconds.
    pub fn millis(&self) -> std::result::Result<u64, String> {
        match self {
            Self::Millis(n) => Ok(*n),
            Self::Text(text) => crate::values::parse_duration_ms(text),
        }
    }
}

macro_rules! number_or_text {
    ($ty:ident, $num:ident, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                match self {
                    Self::$num(n) => serializer.serialize_u64(*n),
                    Self::Text(t) => serializer.serialize_str(t),
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<$ty, E> {
                        Ok($ty::$num(v))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<$ty, E> {
                        u64::try_from(v)
                            .map($ty::$num)
                            .map_err(|_| E::custom(format!("{v} is negative: {}", $expecting)))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<$ty, E> {
                        Ok($ty::Text(v.to_owned()))
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

number_or_text!(
    ByteSize,
    Bytes,
    "a byte size: a number of bytes or a string such as 50M"
);
number_or_text!(
    Duration,
    Millis,
    "a duration: a number of milliseconds or a string such as 1h"
);

/// The `database` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// The database driver (absent: Synapse's default, SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DatabaseEngine>,
    /// The driver's connection arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<DatabaseArgs>,
    /// Every other key (`txn_limit`, `allow_unsafe_locale`), kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Synapse's database drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseEngine {
    /// PostgreSQL.
    Psycopg2,
    /// SQLite (tests and toys only).
    Sqlite3,
}

/// Connection arguments (passed to psycopg2 or sqlite3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseArgs {
    /// The database role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The database name (PostgreSQL) or file (SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The host name, or the directory of PostgreSQL's Unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port (which names the socket file for a socket directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The minimum number of pooled connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp_min: Option<u32>,
    /// The maximum number of pooled connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp_max: Option<u32>,
    /// Every other argument, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One trusted key server (`trusted_key_servers[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustedKeyServer {
    /// The key server's name.
    pub server_name: String,
    /// Its known verify keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_keys: Option<BTreeMap<String, String>>,
    /// Whether keys are accepted without `verify_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_keys_insecurely: Option<bool>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `presence` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceConfig {
    /// Whether presence is tracked and shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<PresenceEnabled>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `presence.enabled`: `true`, `false` or `untracked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceEnabled {
    /// Tracked and shared.
    On,
    /// Off.
    Off,
    /// Not tracked by the server; clients may still set it.
    Untracked,
}

impl Serialize for PresenceEnabled {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::On => serializer.serialize_bool(true),
            Self::Off => serializer.serialize_bool(false),
            Self::Untracked => serializer.serialize_str("untracked"),
        }
    }
}

impl<'de> Deserialize<'de> for PresenceEnabled {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PresenceEnabled;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"untracked\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<PresenceEnabled, E> {
                Ok(if v {
                    PresenceEnabled::On
                } else {
                    PresenceEnabled::Off
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<PresenceEnabled, E> {
                if v == "untracked" {
                    Ok(PresenceEnabled::Untracked)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The `push` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushConfig {
    /// Whether message content is sent to push gateways (and on to Google
    /// or Apple). `false` sends only the event and room IDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_content: Option<bool>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `encryption_enabled_by_default_for_room_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomEncryption {
    /// Every new room.
    All,
    /// New invite-only rooms.
    Invite,
    /// None.
    Off,
}

/// Keys that hold a secret value inline, with the `*_path` key to use
/// instead. A configuration is often world-readable (the Nix store), so
/// none of them may be present.
pub const INLINE_SECRET_KEYS: [(&str, &str); 8] = [
    (
        "registration_shared_secret",
        "registration_shared_secret_path",
    ),
    ("macaroon_secret_key", "macaroon_secret_key_path"),
    ("form_secret", "form_secret_path"),
    ("turn_shared_secret", "turn_shared_secret_path"),
    ("turn_password", "turn_shared_secret_path"),
    ("signing_key", "signing_key_path"),
    ("recaptcha_private_key", "recaptcha_private_key_path"),
    (
        "worker_replication_secret",
        "worker_replication_secret_path",
    ),
];

/// Synapse's file forms of options that hold secrets, beyond
/// [`INLINE_SECRET_KEYS`]: (the option's path, with `[]` for any list item;
/// the option to use instead).
const FILE_FORMS: [(&str, &str); 4] = [
    ("redis.password", "redis.password_path"),
    (
        "matrix_authentication_service.secret",
        "matrix_authentication_service.secret_path",
    ),
    (
        "oidc_providers[].client_secret",
        "oidc_providers[].client_secret_path",
    ),
    (
        "oidc_providers[].client_secret_jwt_key.key",
        "oidc_providers[].client_secret_jwt_key.key_file",
    ),
];

/// The file-based alternative to the secret at `path` (a path such as
/// `oidc_providers[0].client_secret`).
pub fn file_form(path: &str) -> String {
    let generic: String = {
        let mut out = String::new();
        let mut in_index = false;
        for c in path.chars() {
            match c {
                '[' => {
                    in_index = true;
                    out.push('[');
                }
                ']' => {
                    in_index = false;
                    out.push(']');
                }
                _ if in_index => {}
                c => out.push(c),
            }
        }
        out
    };
    if let Some((_, instead)) = INLINE_SECRET_KEYS.iter().find(|(k, _)| *k == generic) {
        return format!("{instead} (a file)");
    }
    if let Some((_, instead)) = FILE_FORMS.iter().find(|(k, _)| *k == generic) {
        return format!("{instead} (a file)");
    }
    "the option's *_path or *_file form (a file only Synapse can read) if it has one; without \
     one, the option cannot be set without putting the secret in a world-readable file: leave it out"
        .to_owned()
}

/// Address ranges Synapse must never fetch from on a user's behalf
/// (`ip_range_blacklist`, `url_preview_ip_range_blacklist`): loopback,
/// private, CGNAT, link-local, documentation, benchmarking, multicast and
/// reserved ranges, IPv4 and IPv6. Synapse's own default list plus
/// "this network", the reserved 240/4, the unspecified and IPv4-mapped IPv6
/// addresses, NAT64 local use, discard-only, IETF protocol assignments and
/// 6to4 (which can wrap a private IPv4 address), and the newer IPv6
/// documentation range 3fff::/20.
pub const BLOCKED_IP_RANGES: [&str; 29] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "64:ff9b::/96",
];

/// The ranges a blocklist (`ip_range_blacklist`,
/// `url_preview_ip_range_blacklist`, `federation_ip_range_blacklist`) must
/// cover for the privacy check to pass: Synapse's own default list
/// (`DEFAULT_IP_RANGE_BLOCKLIST`), so an existing configuration with
/// Synapse's documented list passes and one that empties or shrinks it does
/// not. Synapse adds the IPv4-mapped, IPv4-compatible and 6to4 forms of
/// every IPv4 entry itself.
pub const REQUIRED_BLOCKED_RANGES: [&str; 21] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
    // Not in Synapse's list, which blocks 0.0.0.0 and :: alone:
    // connecting to 0.0.0.0/8 reaches the host itself on Linux.
    "0.0.0.0/8",
    "::/128",
];

/// Synapse's options that list address ranges to *allow*, each overriding
/// a blocklist: `ip_range_whitelist` (every outbound request: federation,
/// identity servers, push gateways, …) and `url_preview_ip_range_whitelist`.
/// No entry may share an address with [`BLOCKED_IP_RANGES`] or with the
/// IPv4-compatible range `::/96`.
pub const ALLOWLIST_KEYS: [&str; 2] = ["ip_range_whitelist", "url_preview_ip_range_whitelist"];

/// Synapse's options that list address ranges to block, with Synapse's
/// default when absent: the `url_preview_*` list is only read when previews
/// are on, and `federation_ip_range_blacklist` replaces `ip_range_blacklist`
/// for federation and identity-server requests when present.
pub const BLOCKLIST_KEYS: [&str; 3] = [
    "ip_range_blacklist",
    "url_preview_ip_range_blacklist",
    "federation_ip_range_blacklist",
];

/// An address range in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN` or a bare address (a single-address range).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    /// Whether every address of `other` lies in this range.
    pub fn covers(&self, other: &Cidr) -> bool {
        let (mine, width) = Self::bits(self.addr);
        let (theirs, other_width) = Self::bits(other.addr);
        if width != other_width || other.prefix < self.prefix {
            return false;
        }
        let shift = u32::from(width - self.prefix);
        let mask = if shift >= 128 {
            0
        } else {
            (u128::MAX << shift) & (u128::MAX >> (128 - u32::from(width)))
        };
        mine & mask == theirs & mask
    }
}

/// The entries of [`REQUIRED_BLOCKED_RANGES`] that `list` does not cover.
pub fn uncovered_required_ranges(list: &[String]) -> Vec<&'static str> {
    let listed: Vec<Cidr> = list.iter().filter_map(|s| Cidr::parse(s)).collect();
    REQUIRED_BLOCKED_RANGES
        .iter()
        .copied()
        .filter(|required| {
            Cidr::parse(required).is_some_and(|r| !listed.iter().any(|l| l.covers(&r)))
        })
        .collect()
}

/// What an address allowlist (`ip_range_whitelist`,
/// `url_preview_ip_range_whitelist`) holding `value` would re-open: one
/// message per entry that is not a range this check reads exactly as
/// Synapse's netaddr does (then it is refused) or that shares an address
/// with a blocked range (loopback, private, link-local, CGNAT, reserved,
/// multicast, documentation, unique-local, IPv4-mapped or -compatible,
/// 6to4, NAT64), supersets such as `0.0.0.0/0` and `::/0` included.
pub fn allowlist_problems(value: &serde_yaml::Value) -> Vec<String> {
    let items = match value {
        serde_yaml::Value::Null => return Vec::new(),
        serde_yaml::Value::Sequence(items) => items,
        _ => return vec!["is not a list: expected a list of public address ranges such as ['93.184.216.0/24'], or leave it out".to_owned()],
    };
    let forbidden: Vec<(&str, Cidr)> = BLOCKED_IP_RANGES
        .iter()
        .chain(std::iter::once(&"::/96"))
        .filter_map(|r| Cidr::parse(r).map(|c| (*r, c)))
        .collect();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let text = item.as_str().unwrap_or_default();
        let Some(range) = Cidr::parse(text) else {
            out.push(format!(
                "[{i}] {} is not an address range: expected ADDRESS/LENGTH such as 93.184.216.0/24",
                crate::redact::quote(text)
            ));
            continue;
        };
        let opened: Vec<&str> = forbidden
            .iter()
            .filter(|(_, f)| f.covers(&range) || range.covers(f))
            .map(|(text, _)| *text)
            .collect();
        if !opened.is_empty() {
            out.push(format!(
                "[{i}] {text} re-opens {}: Synapse could then be made to connect into the host's own or \
                 private network; expected only public address ranges",
                opened.join(", ")
            ));
        }
    }
    out
}

impl HomeserverConfig {
    /// Parses `homeserver.yaml` text. A type error names the key's path
    /// (e.g. `listeners[0].type`); unknown keys are kept in `extra`.
    pub fn from_yaml_str(text: &str) -> Result<HomeserverConfig> {
        Self::from_yaml_str_named(text, "homeserver.yaml")
    }

    /// Like [`HomeserverConfig::from_yaml_str`], naming the input `source_name` in errors.
    ///
    /// The text is read strictly first ([`crate::input::read_tree`]): a
    /// merge key (`<<`, which Synapse's PyYAML applies), a duplicate key, a
    /// YAML tag or deep nesting is an error naming its path, so the model
    /// checked is the configuration Synapse reads.
    pub fn from_yaml_str_named(text: &str, source_name: &str) -> Result<HomeserverConfig> {
        crate::input::read_tree(text, crate::input::Format::Yaml).map_err(|e| Error::Parse {
            source_name: source_name.to_owned(),
            path: e.path,
            message: e.message,
        })?;
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let mut config: HomeserverConfig = serde_path_to_error::deserialize(deserializer)
            .map_err(|err| path_error(err, source_name))?;
        if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            config.null_keys = typed_null_keys(&value, &config.extra);
        }
        Ok(config)
    }

    /// Reads and parses a `homeserver.yaml` file.
    pub fn from_yaml_file(path: &Path) -> Result<HomeserverConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
        Self::from_yaml_str_named(&text, &path.display().to_string())
    }

    /// Reads the model from a YAML value (e.g. after merging keys into one).
    pub fn from_yaml_value(
        value: serde_yaml::Value,
        source_name: &str,
    ) -> Result<HomeserverConfig> {
        let nulls: Vec<String> = match &value {
            serde_yaml::Value::Mapping(map) => map
                .iter()
                .filter(|(_, v)| v.is_null())
                .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let mut config: HomeserverConfig =
            serde_path_to_error::deserialize(value).map_err(|err| path_error(err, source_name))?;
        config.null_keys = nulls
            .into_iter()
            .filter(|k| !config.extra.contains_key(k))
            .collect();
        Ok(config)
    }

    /// The model as a YAML value (a mapping).
    pub fn to_yaml_value(&self) -> Result<serde_yaml::Value> {
        self.check_extra_keys()?;
        let mut value = serde_yaml::to_value(self)
            .map_err(|e| Error::Other(format!("cannot serialise homeserver.yaml: {e}")))?;
        if let serde_yaml::Value::Mapping(map) = &mut value {
            for key in &self.null_keys {
                if !map.contains_key(key.as_str()) {
                    map.insert(
                        serde_yaml::Value::String(key.clone()),
                        serde_yaml::Value::Null,
                    );
                }
            }
        }
        Ok(value)
    }

    /// The whole configuration as a JSON value, for the shape-based checks
    /// ([`crate::inline_secrets`]); keys that cannot be written as JSON
    /// are left out.
    fn json_tree(&self) -> serde_json::Value {
        if let Ok(tree) = serde_json::to_value(self) {
            return tree;
        }
        let mut typed = self.clone();
        typed.extra.clear();
        let mut tree = serde_json::to_value(&typed).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut tree {
            for (k, v) in &self.extra {
                if let Ok(v) = serde_json::to_value(v) {
                    map.insert(k.clone(), v);
                }
            }
        }
        tree
    }

    /// Emits YAML that Synapse's PyYAML reads back as exactly this model
    /// ([`crate::components::pyyaml`]). Fails when an `extra` key
    /// duplicates a typed key that is also set (which would write the key
    /// twice), or for a key that is not a string or a tagged value.
    pub fn to_yaml_string(&self) -> Result<String> {
        crate::components::pyyaml::to_string(&self.to_yaml_value()?)
            .map_err(|e| Error::Other(format!("cannot write homeserver.yaml: {e}")))
    }

    fn check_extra_keys(&self) -> Result<()> {
        if self.extra.is_empty() {
            return Ok(());
        }
        let mut typed = self.clone();
        typed.extra.clear();
        let value = serde_yaml::to_value(&typed)
            .map_err(|e| Error::Other(format!("cannot serialise homeserver.yaml: {e}")))?;
        if let serde_yaml::Value::Mapping(map) = value {
            if let Some(key) = self.extra.keys().find(|k| map.contains_key(k.as_str())) {
                return Err(Error::Other(format!(
                    "homeserver.yaml: {key} is set both as a typed field and in `extra`"
                )));
            }
        }
        Ok(())
    }

    /// Lists every way this configuration breaks the privacy invariants of
    /// a private, non-federating server, each with the key's path in
    /// `homeserver.yaml` and what is expected. Absent keys count as
    /// Synapse's default. Empty when the configuration is private.
    pub fn privacy_violations(&self) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        self.check_federation(&mut errs);
        self.check_listeners(&mut errs);
        crate::components::synapse_auth::privacy_violations(self, &mut errs);
        for (key, value, default, why) in [
            (
                "enable_registration",
                self.enable_registration,
                false,
                "would let anyone create an account; accounts are created with `ospw-matrix user add`",
            ),
            (
                "allow_guest_access",
                self.allow_guest_access,
                false,
                "would let people without an account use the server",
            ),
            (
                "turn_allow_guests",
                self.turn_allow_guests,
                true,
                "would hand TURN credentials to guests",
            ),
            (
                "report_stats",
                self.report_stats,
                false,
                "would send usage statistics to matrix.org",
            ),
            (
                "allow_public_rooms_without_auth",
                self.allow_public_rooms_without_auth,
                false,
                "would show the room directory to anyone without logging in",
            ),
        ] {
            must_be_false(&mut errs, key, value, default, why);
        }
        for finding in crate::inline_secrets::find(&self.json_tree(), "", "") {
            if finding.path == "database.args.password" {
                errs.push(
                    "database.args.password",
                    "holds the database password inline: expected PostgreSQL peer authentication over its Unix socket (no password)",
                );
                continue;
            }
            let what = match finding.reason {
                crate::inline_secrets::Reason::Key => "holds a secret inline",
                crate::inline_secrets::Reason::Value => {
                    "holds a value that looks like a secret (a key, token or password)"
                }
                crate::inline_secrets::Reason::Name => {
                    "is a key that looks like a secret (a token or a URL with a password)"
                }
            };
            errs.push(
                finding.path.clone(),
                format!(
                    "{what}, readable by anyone who can read this file: expected {}",
                    file_form(&finding.path)
                ),
            );
        }
        if self.url_preview_enabled == Some(true) {
            match &self.url_preview_ip_range_blacklist {
                None => errs.push(
                    "url_preview_ip_range_blacklist",
                    "is absent while url_preview_enabled is true: previews could fetch from the host's private network; expected a list covering the private, loopback and link-local ranges",
                ),
                Some(list) => blocklist_covers(&mut errs, "url_preview_ip_range_blacklist", list),
            }
        }
        if let Some(list) = &self.ip_range_blacklist {
            blocklist_covers(&mut errs, "ip_range_blacklist", list);
        }
        if let Some(value) = self.extra.get("federation_ip_range_blacklist") {
            let list: Vec<String> = value
                .as_sequence()
                .map(|seq| {
                    seq.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            blocklist_covers(&mut errs, "federation_ip_range_blacklist", &list);
        }
        for key in ALLOWLIST_KEYS {
            if let Some(value) = self.extra.get(key) {
                for problem in allowlist_problems(value) {
                    match problem.strip_prefix('[') {
                        Some(rest) => {
                            let (index, message) = rest.split_once("] ").unwrap_or(("0", rest));
                            errs.push(format!("{key}[{index}]"), message);
                        }
                        None => errs.push(key, problem),
                    }
                }
            }
        }
        errs
    }

    fn check_federation(&self, errs: &mut ValidationErrors) {
        match &self.federation_domain_whitelist {
            None => errs.push(
                "federation_domain_whitelist",
                "is absent, which makes Synapse federate with every server: expected [] (federation off)",
            ),
            Some(list) if !list.is_empty() => errs.push(
                "federation_domain_whitelist",
                format!("allows federation with {}: expected [] (this server does not federate)", list.join(", ")),
            ),
            Some(_) => {}
        }
        match &self.trusted_key_servers {
            None => errs.push(
                "trusted_key_servers",
                "is absent, which makes Synapse ask matrix.org for other servers' keys: expected []",
            ),
            Some(list) if !list.is_empty() => errs.push(
                "trusted_key_servers",
                format!(
                    "lists {}: expected [] (no key servers are asked)",
                    list.iter()
                        .map(|k| k.server_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(_) => {}
        }
        for (key, value, default) in [
            (
                "allow_profile_lookup_over_federation",
                self.allow_profile_lookup_over_federation,
                true,
            ),
            (
                "allow_public_rooms_over_federation",
                self.allow_public_rooms_over_federation,
                false,
            ),
            (
                "allow_device_name_lookup_over_federation",
                self.allow_device_name_lookup_over_federation,
                false,
            ),
            ("serve_server_wellknown", self.serve_server_wellknown, false),
        ] {
            must_be_false(
                errs,
                key,
                value,
                default,
                "would expose this server over federation",
            );
        }
    }

    fn check_listeners(&self, errs: &mut ValidationErrors) {
        for (i, l) in self.listeners.iter().flatten().enumerate() {
            let at = format!("listeners[{i}]");
            match l.kind {
                ListenerType::Http => {}
                // Metrics only on loopback TCP (checked below like every
                // TCP listener); Synapse's metrics listener has no socket form.
                ListenerType::Metrics if l.path.is_none() => {}
                ListenerType::Metrics => errs.push(
                    format!("{at}.path"),
                    "is set on a metrics listener: expected a TCP port on loopback (127.0.0.1 or ::1)",
                ),
                ListenerType::Manhole => errs.push(
                    format!("{at}.type"),
                    "is manhole: expected http, or metrics on loopback (no Python shell into the server)",
                ),
            }
            for (j, res) in l.resources.iter().flatten().enumerate() {
                for (k, name) in res.names.iter().enumerate() {
                    if *name != ResourceName::Client {
                        errs.push(
                            format!("{at}.resources[{j}].names[{k}]"),
                            format!(
                                "is {}: expected only client (no federation, keys, openid, metrics, replication or other resource)",
                                name.as_str()
                            ),
                        );
                    }
                }
            }
            match (l.port, &l.path) {
                (Some(_), Some(_)) => errs.push(
                    at,
                    "has both port and path: expected a TCP port on loopback or a Unix socket path",
                ),
                (None, None) => errs.push(
                    at,
                    "has neither port nor path: expected a TCP port on loopback or a Unix socket path",
                ),
                (None, Some(_)) => {}
                (Some(_), None) => {
                    let addrs = l.all_bind_addresses();
                    if addrs.is_empty() {
                        errs.push(
                            format!("{at}.bind_addresses"),
                            "is absent, which makes Synapse listen on every interface: expected loopback addresses (127.0.0.1, ::1)",
                        );
                    }
                    let listed = l.bind_addresses.as_ref().map_or(0, Vec::len);
                    for (k, addr) in addrs.iter().enumerate() {
                        let loopback = addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback());
                        if !loopback {
                            let path = if k < listed {
                                format!("{at}.bind_addresses[{k}]")
                            } else {
                                format!("{at}.bind_address")
                            };
                            errs.push(
                                path,
                                format!("{addr:?} is not a loopback address: Synapse is reached only through the proxy; expected 127.0.0.1 or ::1, or a Unix socket"),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The top-level keys of `value` read as `null` that are not in `extra`
/// (so they belong to typed fields).
fn typed_null_keys(value: &serde_yaml::Value, extra: &Extra) -> Vec<String> {
    let serde_yaml::Value::Mapping(map) = value else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| v.is_null())
        .filter_map(|(k, _)| k.as_str())
        .filter(|k| !extra.contains_key(*k))
        .map(str::to_owned)
        .collect()
}

/// Reports `key` when the blocklist `list` does not cover every range of
/// [`REQUIRED_BLOCKED_RANGES`].
fn blocklist_covers(errs: &mut ValidationErrors, key: &str, list: &[String]) {
    let missing = uncovered_required_ranges(list);
    if !missing.is_empty() {
        errs.push(
            key,
            format!(
                "does not cover {}: Synapse could be made to connect into the host's own or private network; \
                 expected a list covering at least Synapse's default blocklist",
                missing.join(", ")
            ),
        );
    }
}

fn must_be_false(
    errs: &mut ValidationErrors,
    key: &str,
    value: Option<bool>,
    default: bool,
    why: &str,
) {
    match value {
        Some(true) => errs.push(key, format!("is true, which {why}: expected false")),
        None if default => errs.push(
            key,
            format!("is absent, and Synapse's default (true) {why}: expected false"),
        ),
        _ => {}
    }
}

fn path_error<E: fmt::Display>(err: serde_path_to_error::Error<E>, source_name: &str) -> Error {
    let path = err.path().to_string();
    let mut message = err.into_inner().to_string();
    if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
        message = rest.to_owned();
    }
    let message = crate::redact::message(&message);
    Error::Parse {
        source_name: source_name.to_owned(),
        path,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private configuration, as a loaded file would hold it.
    const PRIVATE: &str = r#"
server_name: example.org
public_baseurl: https://matrix.example.org
listeners:
  - port: 8008
    bind_addresses: ['127.0.0.1', '::1']
    type: http
    x_forwarded: true
    resources:
      - names: [client]
        compress: false
database:
  name: psycopg2
  args:
    user: synapse
    database: synapse
    host: /run/postgresql
    port: 5432
    cp_min: 5
    cp_max: 10
federation_domain_whitelist: []
trusted_key_servers: []
allow_profile_lookup_over_federation: false
turn_allow_guests: false
registration_shared_secret_path: /run/secrets/registration
"#;

    fn private() -> HomeserverConfig {
        HomeserverConfig::from_yaml_str(PRIVATE).expect("parses")
    }

    fn violations_after(change: &str) -> Vec<String> {
        let mut value: serde_yaml::Value = serde_yaml::from_str(PRIVATE).expect("yaml");
        let patch: serde_yaml::Mapping = serde_yaml::from_str(change).expect("patch");
        if let serde_yaml::Value::Mapping(map) = &mut value {
            for (k, v) in patch {
                if v == serde_yaml::Value::String("<remove>".into()) {
                    map.remove(&k);
                } else {
                    map.insert(k, v);
                }
            }
        }
        let config = HomeserverConfig::from_yaml_value(value, "test").expect("parses");
        config
            .privacy_violations()
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn private_config_has_no_violations() {
        assert_eq!(private().privacy_violations(), ValidationErrors::new());
    }

    #[test]
    fn round_trip_keeps_unknown_keys() {
        let text = r#"
server_name: example.org
some_future_option: {nested: [1, 2, {deep: true}]}
another: "text"
listeners:
  - port: 8008
    bind_addresses: ['127.0.0.1']
    type: http
    unknown_listener_key: 7
    resources:
      - names: [client]
        unknown_resource_key: x
database:
  name: psycopg2
  txn_limit: 10000
  args:
    user: synapse
    keepalives_idle: 10
presence:
  enabled: untracked
  idle_timeout: 5m
push:
  include_content: false
  group_unread_count_by_room: false
max_upload_size: 50M
turn_user_lifetime: 86400000
"#;
        let config = HomeserverConfig::from_yaml_str(text).expect("parses");
        assert!(config.extra.contains_key("some_future_option"));
        assert!(config.extra.contains_key("another"));
        let emitted = config.to_yaml_string().expect("emits");
        let again = HomeserverConfig::from_yaml_str(&emitted).expect("re-parses");
        assert_eq!(config, again);
        // Compared as plain YAML values too: nothing lost, nothing added.
        let a: serde_yaml::Value = serde_yaml::from_str(text).expect("yaml");
        let b: serde_yaml::Value = serde_yaml::from_str(&emitted).expect("yaml");
        assert_eq!(a, b);
        assert_eq!(config.max_upload_size, Some(ByteSize::Text("50M".into())));
        assert_eq!(
            config.turn_user_lifetime,
            Some(Duration::Millis(86_400_000))
        );
    }

    #[test]
    fn round_trip_keeps_typed_keys_written_as_null() {
        let text = "server_name: example.org\nreport_stats: null\nfederation_domain_whitelist: null\nunknown: null\n";
        let config = HomeserverConfig::from_yaml_str(text).expect("parses");
        assert_eq!(config.report_stats, None);
        let emitted = config.to_yaml_string().expect("emits");
        let a: serde_yaml::Value = serde_yaml::from_str(text).expect("yaml");
        let b: serde_yaml::Value = serde_yaml::from_str(&emitted).expect("yaml");
        assert_eq!(a, b, "{emitted}");
        assert_eq!(
            HomeserverConfig::from_yaml_str(&emitted).expect("re-parses"),
            config
        );
        // Null still counts as absent for the privacy check ...
        assert!(config
            .privacy_violations()
            .mentions("federation_domain_whitelist"));
        // ... and a value set later wins over the recorded null.
        let mut config = config;
        config.federation_domain_whitelist = Some(Vec::new());
        let emitted = config.to_yaml_string().expect("emits");
        assert!(
            emitted.contains("federation_domain_whitelist: []"),
            "{emitted}"
        );
        let value = serde_yaml::from_str::<serde_yaml::Value>(text).expect("yaml");
        let from_value = HomeserverConfig::from_yaml_value(value, "test").expect("parses");
        assert_eq!(from_value.null_keys.len(), 2);
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = HomeserverConfig::from_yaml_str("listeners:\n  - port: 8008\n    type: htp\n")
            .expect_err("bad type");
        let Error::Parse { path, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(path, "listeners[0].type");
        let err =
            HomeserverConfig::from_yaml_str("enable_registration: maybe\n").expect_err("bad bool");
        assert!(err.to_string().contains("enable_registration"), "{err}");
        let err =
            HomeserverConfig::from_yaml_str("database:\n  name: psycopg2\n  args:\n    port: x\n")
                .expect_err("bad port");
        assert!(err.to_string().contains("database.args.port"), "{err}");
    }

    #[test]
    fn octal_socket_mode_reads_as_pyyaml_does() {
        let config = HomeserverConfig::from_yaml_str(
            "listeners:\n  - path: /run/s.sock\n    mode: 0660\n    type: http\n",
        )
        .expect("parses");
        let listeners = config.listeners.expect("listeners");
        assert_eq!(listeners[0].mode, Some(SocketMode(0o660)));
        let emitted = HomeserverConfig {
            listeners: Some(listeners),
            ..Default::default()
        }
        .to_yaml_string()
        .expect("emits");
        assert!(emitted.contains("mode: 432"), "{emitted}");
    }

    #[test]
    fn duplicate_extra_key_is_refused() {
        let mut config = private();
        config
            .extra
            .insert("server_name".into(), serde_yaml::Value::String("x".into()));
        assert!(config.to_yaml_string().is_err());
    }

    #[test]
    fn each_federation_violation_is_detected() {
        for (change, path) in [
            (
                "federation_domain_whitelist: <remove>",
                "federation_domain_whitelist",
            ),
            (
                "federation_domain_whitelist: [matrix.org]",
                "federation_domain_whitelist",
            ),
            ("trusted_key_servers: <remove>", "trusted_key_servers"),
            (
                "trusted_key_servers: [{server_name: matrix.org}]",
                "trusted_key_servers",
            ),
            (
                "allow_profile_lookup_over_federation: <remove>",
                "allow_profile_lookup_over_federation",
            ),
            (
                "allow_profile_lookup_over_federation: true",
                "allow_profile_lookup_over_federation",
            ),
            (
                "allow_public_rooms_over_federation: true",
                "allow_public_rooms_over_federation",
            ),
            (
                "allow_device_name_lookup_over_federation: true",
                "allow_device_name_lookup_over_federation",
            ),
            ("serve_server_wellknown: true", "serve_server_wellknown"),
        ] {
            assert_eq!(violations_after(change), vec![path.to_owned()], "{change}");
        }
    }

    #[test]
    fn each_account_and_stats_violation_is_detected() {
        for (change, path) in [
            ("enable_registration: true", "enable_registration"),
            ("allow_guest_access: true", "allow_guest_access"),
            ("turn_allow_guests: true", "turn_allow_guests"),
            ("turn_allow_guests: <remove>", "turn_allow_guests"),
            ("report_stats: true", "report_stats"),
            (
                "allow_public_rooms_without_auth: true",
                "allow_public_rooms_without_auth",
            ),
        ] {
            assert_eq!(violations_after(change), vec![path.to_owned()], "{change}");
        }
    }

    #[test]
    fn each_inline_secret_is_detected() {
        for (key, _) in INLINE_SECRET_KEYS {
            assert_eq!(
                violations_after(&format!("{key}: hunter2")),
                vec![key.to_owned()],
                "{key}"
            );
            assert!(
                violations_after(&format!("{key}: null")).is_empty(),
                "{key}"
            );
        }
        let config = HomeserverConfig::from_yaml_str(
            &PRIVATE.replace("    cp_max: 10", "    cp_max: 10\n    password: hunter2"),
        )
        .expect("parses");
        let paths: Vec<String> = config
            .privacy_violations()
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, vec!["database.args.password".to_owned()]);
    }

    #[test]
    fn nested_inline_secrets_are_detected() {
        for (change, path) in [
            (
                "email: {smtp_host: mail.example.org, force_tls: true, smtp_pass: hunter2}",
                "email.smtp_pass",
            ),
            (
                "redis: {enabled: true, password: hunter2}",
                "redis.password",
            ),
            (
                "matrix_authentication_service: {enabled: true, secret: hunter2}",
                "matrix_authentication_service.secret",
            ),
            (
                "password_config: {pepper: hunter2}",
                "password_config.pepper",
            ),
            (
                "oidc_providers: [{idp_id: x, enable_registration: false, client_secret: hunter2}]",
                "oidc_providers[0].client_secret",
            ),
            (
                "experimental_features: {msc3861: {admin_token: hunter2}}",
                "experimental_features.msc3861.admin_token",
            ),
            ("some_api_secret: hunter2", "some_api_secret"),
        ] {
            assert_eq!(violations_after(change), vec![path.to_owned()], "{change}");
        }
        for fine in [
            "email: {smtp_host: mail.example.org, force_tls: true, smtp_pass: null}",
            "matrix_authentication_service: {enabled: true, secret_path: /run/mas}",
            "registration_requires_token: false",
            "refresh_token_lifetime: 1h",
            "password_config: {enabled: true, localdb_enabled: true}",
        ] {
            assert!(violations_after(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn each_listener_violation_is_detected() {
        for (listener, paths) in [
            (
                "{port: 8008, bind_addresses: ['0.0.0.0'], type: http, resources: [{names: [client]}]}",
                vec!["listeners[0].bind_addresses[0]"],
            ),
            (
                "{port: 8008, type: http, resources: [{names: [client]}]}",
                vec!["listeners[0].bind_addresses"],
            ),
            (
                "{port: 8008, bind_address: '::', type: http, resources: [{names: [client]}]}",
                vec!["listeners[0].bind_address"],
            ),
            (
                "{port: 8008, bind_addresses: [localhost], type: http}",
                vec!["listeners[0].bind_addresses[0]"],
            ),
            (
                "{port: 8008, bind_addresses: ['127.0.0.1'], type: http, resources: [{names: [client, federation]}, {names: [keys, openid, metrics, replication]}]}",
                vec![
                    "listeners[0].resources[0].names[1]",
                    "listeners[0].resources[1].names[0]",
                    "listeners[0].resources[1].names[1]",
                    "listeners[0].resources[1].names[2]",
                    "listeners[0].resources[1].names[3]",
                ],
            ),
            (
                "{port: 9000, bind_addresses: ['127.0.0.1'], type: manhole}",
                vec!["listeners[0].type"],
            ),
            // Metrics: on loopback TCP only.
            (
                "{port: 9000, bind_addresses: ['127.0.0.1'], type: metrics}",
                vec![],
            ),
            (
                "{port: 9000, bind_addresses: ['0.0.0.0'], type: metrics}",
                vec!["listeners[0].bind_addresses[0]"],
            ),
            ("{port: 9000, type: metrics}", vec!["listeners[0].bind_addresses"]),
            (
                "{port: 9000, bind_address: '::', type: metrics}",
                vec!["listeners[0].bind_address"],
            ),
            ("{path: /run/metrics.sock, type: metrics}", vec!["listeners[0].path"]),
            ("{type: http}", vec!["listeners[0]"]),
            (
                "{port: 8008, path: /run/s, bind_addresses: ['127.0.0.1'], type: http}",
                vec!["listeners[0]"],
            ),
            ("{path: /run/synapse.sock, mode: 0660, type: http, resources: [{names: [client]}]}", vec![]),
            ("{port: 8008, bind_addresses: ['::1', '127.0.0.5'], type: http}", vec![]),
        ] {
            let got = violations_after(&format!("listeners: [{listener}]"));
            assert_eq!(got, paths, "{listener}");
        }
    }

    #[test]
    fn url_previews_need_the_private_blocklist() {
        assert_eq!(
            violations_after("url_preview_enabled: true"),
            vec!["url_preview_ip_range_blacklist"]
        );
        assert_eq!(
            violations_after(
                "url_preview_enabled: true\nurl_preview_ip_range_blacklist: ['10.0.0.0/8']"
            ),
            vec!["url_preview_ip_range_blacklist"]
        );
        let full = format!(
            "url_preview_enabled: true\nurl_preview_ip_range_blacklist: [{}]",
            BLOCKED_IP_RANGES.map(|r| format!("'{r}'")).join(", ")
        );
        assert!(violations_after(&full).is_empty());
        // Wider ranges cover narrower ones.
        let wide =
            "url_preview_enabled: true\nurl_preview_ip_range_blacklist: ['0.0.0.0/0', '::/0']";
        assert!(violations_after(wide).is_empty());
        assert_eq!(
            violations_after(&format!(
                "{full}\nurl_preview_ip_range_whitelist: ['192.168.1.10', '93.184.216.34']"
            )),
            vec!["url_preview_ip_range_whitelist[0]"]
        );
        assert!(violations_after(&format!(
            "{full}\nurl_preview_ip_range_whitelist: ['93.184.216.0/24']"
        ))
        .is_empty());
        assert_eq!(
            violations_after("ip_range_blacklist: ['127.0.0.0/8']"),
            vec!["ip_range_blacklist"]
        );
    }

    #[test]
    fn allowlists_may_not_reopen_blocked_ranges() {
        for key in ALLOWLIST_KEYS {
            for (entry, opened) in [
                ("127.0.0.1", "127.0.0.0/8"),
                ("10.1.2.0/24", "10.0.0.0/8"),
                ("100.64.0.1", "100.64.0.0/10"),
                ("169.254.169.254", "169.254.0.0/16"),
                ("0.0.0.0/0", "10.0.0.0/8"),
                ("::/0", "::1/128"),
                ("::ffff:0:0/96", "::ffff:0:0/96"),
                ("::ffff:127.0.0.1", "::ffff:0:0/96"),
                ("::127.0.0.1", "::/96"),
                ("2002:7f00:1::/48", "2002::/16"),
                ("fd00::1", "fc00::/7"),
                ("fe80::1/64", "fe80::/10"),
                ("224.0.0.251", "224.0.0.0/4"),
                ("240.0.0.1", "240.0.0.0/4"),
                ("64:ff9b::a00:1", "64:ff9b::/96"),
                ("8.0.0.0/4", "10.0.0.0/8"),
            ] {
                let config = HomeserverConfig::from_yaml_str(&format!(
                    "{PRIVATE}{key}: ['93.184.216.0/24', '{entry}']\n"
                ))
                .expect("parses");
                let errs = config.privacy_violations();
                assert_eq!(errs.errors.len(), 1, "{key}: {entry}: {errs}");
                assert_eq!(errs.errors[0].path, format!("{key}[1]"), "{errs}");
                assert!(errs.errors[0].message.contains(opened), "{entry}: {errs}");
            }
            for bad in [
                "'127.1'",
                "'10/8'",
                "'10.0.0.0/255.0.0.0'",
                "' 8.8.8.8'",
                "'fe80::1%eth0'",
                "7",
            ] {
                let config = HomeserverConfig::from_yaml_str(&format!("{PRIVATE}{key}: [{bad}]\n"))
                    .expect("parses");
                assert!(config.privacy_violations().mentions(key), "{bad}");
            }
            let config = HomeserverConfig::from_yaml_str(&format!("{PRIVATE}{key}: '127.0.0.1'\n"))
                .expect("parses");
            assert!(config.privacy_violations().mentions(key));
            let fine = HomeserverConfig::from_yaml_str(&format!(
                "{PRIVATE}{key}: ['93.184.216.0/24', '2606:2800:220:1::/64', '8.8.8.8']\n"
            ))
            .expect("parses");
            assert!(
                fine.privacy_violations().is_empty(),
                "{}",
                fine.privacy_violations()
            );
        }
    }

    #[test]
    fn blocklists_may_not_be_emptied_or_shrunk() {
        let synapse_default = format!(
            "[{}]",
            REQUIRED_BLOCKED_RANGES.map(|r| format!("'{r}'")).join(", ")
        );
        for key in ["ip_range_blacklist", "federation_ip_range_blacklist"] {
            for list in ["[]", "['127.0.0.0/8']", "['10.0.0.0/8', '::1/128']"] {
                assert_eq!(
                    violations_after(&format!("{key}: {list}")),
                    vec![key.to_owned()],
                    "{list}"
                );
            }
            assert!(violations_after(&format!("{key}: {synapse_default}")).is_empty());
        }
        let previews = "url_preview_enabled: true\nurl_preview_ip_range_blacklist";
        assert_eq!(
            violations_after(&format!("{previews}: []")),
            vec!["url_preview_ip_range_blacklist"]
        );
        assert!(violations_after(&format!("{previews}: {synapse_default}")).is_empty());
    }

    #[test]
    fn cidr_cover() {
        let c = |s| Cidr::parse(s).expect(s);
        assert!(c("10.0.0.0/8").covers(&c("10.1.0.0/16")));
        assert!(!c("10.1.0.0/16").covers(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/8").covers(&c("11.0.0.0/8")));
        assert!(c("fc00::/7").covers(&c("fd12::/16")));
        assert!(!c("fc00::/7").covers(&c("10.0.0.0/8")));
        assert!(c("0.0.0.0/0").covers(&c("192.168.0.0/16")));
        assert!(c("::1").covers(&c("::1/128")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
        for r in BLOCKED_IP_RANGES {
            assert!(Cidr::parse(r).is_some(), "{r}");
        }
    }
}
