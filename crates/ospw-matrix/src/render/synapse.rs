//! Derives Synapse's `homeserver.yaml` and logging configuration from the
//! host description.
//!
//! Every key written is a property of Synapse's published configuration
//! schema (checked by `crates/ospw-matrix-cli/tests/synapse_config.rs`,
//! which also runs Synapse's own loader on the result).

use crate::components::synapse::{
    ByteSize, DatabaseArgs, DatabaseConfig, DatabaseEngine, Duration, Extra, HomeserverConfig,
    Listener, ListenerType, PresenceConfig, PresenceEnabled, PushConfig, ResourceName,
    RoomEncryption, BLOCKED_IP_RANGES,
};
use crate::error::{Error, ValidationErrors};
use crate::host::{
    EncryptionDefault, HostDescription, LogLevel, SecretKind, SynapseListen, METRICS_ADDRESS,
};
use crate::render::{paths, RenderContext};
use crate::values::{parse_duration_ms, parse_size_bytes};

/// The permissions of Synapse's Unix socket: owner and group (the proxy
/// must be in Synapse's group), nobody else.
pub const UNIX_SOCKET_MODE: u32 = 0o660;

/// The database connection pool bounds.
const CP_MIN: u32 = 5;
const CP_MAX: u32 = 10;

/// Derives `homeserver.yaml`, merges `synapse.settings` last (each key
/// replaces the derived top-level key), and checks the privacy invariants.
///
/// A problem caused by a key from `synapse.settings` is reported at
/// `synapse.settings.<key>...`; a type error in settings likewise.
pub fn homeserver(
    host: &HostDescription,
    ctx: &RenderContext,
) -> Result<HomeserverConfig, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let s = &host.synapse;
    let max_upload = parse_size_bytes(&s.max_upload_size)
        .map_err(|m| errs.push("synapse.max_upload_size", m))
        .ok();
    let lifetime = parse_duration_ms(&host.turn.credential_lifetime)
        .map_err(|m| errs.push("turn.credential_lifetime", m))
        .ok();
    let (Some(max_upload), Some(lifetime)) = (max_upload, lifetime) else {
        return Err(errs);
    };
    let path = |p: &std::path::Path| p.display().to_string();
    let secret = |kind| Some(path(&host.secrets.path(kind)));

    let listener = match &s.listen {
        SynapseListen::Tcp { address, port } => {
            Listener::tcp(vec![address.clone()], *port, vec![ResourceName::Client])
        }
        SynapseListen::Unix { path: socket } => {
            Listener::unix(path(socket), UNIX_SOCKET_MODE, vec![ResourceName::Client])
        }
    };
    let mut listeners = vec![listener];
    if host.metrics.enable {
        // Prometheus metrics (`/_synapse/metrics`), on loopback only; the
        // proxy never routes there.
        listeners.push(Listener {
            kind: ListenerType::Metrics,
            tls: None,
            x_forwarded: None,
            resources: None,
            ..Listener::tcp(
                vec![METRICS_ADDRESS.to_owned()],
                host.metrics.synapse_port,
                Vec::new(),
            )
        });
    }
    let turn_host = host.turn_host();
    let mut turn_uris = vec![
        format!("turn:{turn_host}:{}?transport=udp", host.turn.port),
        format!("turn:{turn_host}:{}?transport=tcp", host.turn.port),
    ];
    if let Some(tls) = &host.turn.tls {
        turn_uris.push(format!("turns:{turn_host}:{}?transport=tcp", tls.port));
    }
    let blocked: Vec<String> = BLOCKED_IP_RANGES.iter().map(|r| (*r).to_owned()).collect();
    let auth = super::synapse_auth::derive(host, ctx);

    let config = HomeserverConfig {
        server_name: Some(host.server_name.clone()),
        public_baseurl: Some(host.homeserver_url()),
        web_client_location: Some(host.element_url()),
        serve_server_wellknown: Some(false),
        listeners: Some(listeners),
        database: Some(DatabaseConfig {
            name: Some(DatabaseEngine::Psycopg2),
            args: Some(DatabaseArgs {
                user: Some(s.database.user.clone()),
                database: Some(s.database.name.clone()),
                host: Some(path(&s.database.socket_dir)),
                port: Some(s.database.port),
                cp_min: Some(CP_MIN),
                cp_max: Some(CP_MAX),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        }),
        log_config: Some(path(&ctx.output_dir.join(paths::SYNAPSE_LOG_CONFIG))),
        media_store_path: Some(path(&s.media_store_path())),
        max_upload_size: Some(ByteSize::Bytes(max_upload)),
        signing_key_path: secret(SecretKind::SigningKey),
        registration_shared_secret_path: secret(SecretKind::RegistrationSharedSecret),
        macaroon_secret_key_path: secret(SecretKind::MacaroonSecretKey),
        form_secret_path: secret(SecretKind::FormSecret),
        federation_domain_whitelist: Some(Vec::new()),
        trusted_key_servers: Some(Vec::new()),
        // The warning only concerns matrix.org as a key server, which is
        // not configured.
        suppress_key_server_warning: None,
        allow_profile_lookup_over_federation: Some(false),
        allow_public_rooms_over_federation: Some(false),
        allow_device_name_lookup_over_federation: Some(false),
        allow_public_rooms_without_auth: Some(false),
        require_auth_for_profile_requests: Some(true),
        limit_profile_requests_to_users_who_share_rooms: Some(true),
        enable_registration: Some(false),
        allow_guest_access: Some(false),
        enable_3pid_lookup: Some(false),
        report_stats: Some(false),
        enable_metrics: Some(host.metrics.enable),
        presence: Some(PresenceConfig {
            enabled: Some(if s.presence {
                PresenceEnabled::On
            } else {
                PresenceEnabled::Off
            }),
            extra: Extra::new(),
        }),
        push: Some(PushConfig {
            include_content: Some(false),
            extra: Extra::new(),
        }),
        url_preview_enabled: Some(s.url_previews),
        url_preview_ip_range_blacklist: s.url_previews.then(|| blocked.clone()),
        ip_range_blacklist: Some(blocked),
        encryption_enabled_by_default_for_room_type: Some(match s.encryption_by_default {
            EncryptionDefault::All => RoomEncryption::All,
            EncryptionDefault::Invite => RoomEncryption::Invite,
            EncryptionDefault::Off => RoomEncryption::Off,
        }),
        turn_uris: Some(turn_uris),
        turn_shared_secret_path: secret(SecretKind::TurnSharedSecret),
        turn_user_lifetime: Some(Duration::Millis(lifetime)),
        turn_allow_guests: Some(false),
        oidc_providers: auth.oidc_providers,
        password_config: auth.password_config,
        sso: auth.sso,
        email: auth.email,
        extra: auth.extra,
        null_keys: Vec::new(),
    };

    let derived = if s.settings.is_empty() {
        None
    } else {
        Some(config.clone())
    };
    let config = merge_settings(config, &s.settings)?;
    let mut errs = ValidationErrors::new();
    if let Some(derived) = &derived {
        check_derived_keys(derived, &config, &s.settings, &mut errs);
        super::synapse_auth::check_settings(host, derived, &config, &s.settings, &mut errs);
    }
    for e in config.privacy_violations().errors {
        let top = e.path.split(['.', '[']).next().unwrap_or_default();
        if !s.settings.contains_key(top) {
            errs.push(format!("synapse (homeserver.yaml {})", e.path), e.message);
            continue;
        }
        // A secret the host description manages: point at its field.
        let message = match SecretKind::ALL.iter().find(|k| k.file_name() == e.path) {
            Some(kind) => format!(
                "secret values may not be written inline (they would end up in world-readable files): use {}",
                kind.field()
            ),
            None => e.message,
        };
        errs.push(format!("synapse.settings.{}", e.path), message);
    }
    errs.into_result(config)
}

/// `homeserver.yaml` keys that other components or commands depend on,
/// each with the host-description field that sets it. `synapse.settings`
/// may restate them but not change them: the components would disagree.
pub const DERIVED_KEYS: [(&str, &str); 11] = [
    ("server_name", "server_name"),
    (
        "public_baseurl",
        "matrix_host and proxy.https_port (Element and .well-known point there)",
    ),
    ("listeners", "synapse.listen (the proxy forwards there)"),
    (
        "database",
        "synapse.database (backup and restore connect there)",
    ),
    (
        "media_store_path",
        "synapse.media_store_path (backup archives it)",
    ),
    ("signing_key_path", "secrets.signing_key_file"),
    (
        "registration_shared_secret_path",
        "secrets.registration_shared_secret_file (ospw-matrix user add reads it)",
    ),
    (
        "macaroon_secret_key_path",
        "secrets.macaroon_secret_key_file",
    ),
    ("form_secret_path", "secrets.form_secret_file"),
    (
        "turn_shared_secret_path",
        "secrets.turn_shared_secret_file (coturn reads the same secret)",
    ),
    (
        "turn_uris",
        "turn.host, turn.port and turn.tls (where coturn listens)",
    ),
];

/// Reports each [`DERIVED_KEYS`] entry that `settings` changed.
fn check_derived_keys(
    derived: &HomeserverConfig,
    merged: &HomeserverConfig,
    settings: &crate::host::FreeformSettings,
    errs: &mut ValidationErrors,
) {
    if !DERIVED_KEYS
        .iter()
        .any(|(key, _)| settings.contains_key(*key))
    {
        return;
    }
    let (Ok(before), Ok(after)) = (derived.to_yaml_value(), merged.to_yaml_value()) else {
        return;
    };
    let normal = |v: Option<&serde_yaml::Value>| match v {
        Some(serde_yaml::Value::String(s)) => Some(serde_yaml::Value::String(
            s.trim_end_matches('/').to_owned(),
        )),
        other => other.cloned(),
    };
    for (key, field) in DERIVED_KEYS {
        if settings.contains_key(key) && normal(before.get(key)) != normal(after.get(key)) {
            errs.push(
                format!("synapse.settings.{key}"),
                format!(
                    "changes a key derived from {field}: set that field instead, so every component agrees"
                ),
            );
        }
    }
}

/// Replaces top-level keys of `config` with `settings`, re-reading the
/// result so a wrongly typed setting is an error naming it.
fn merge_settings(
    config: HomeserverConfig,
    settings: &crate::host::FreeformSettings,
) -> Result<HomeserverConfig, ValidationErrors> {
    if settings.is_empty() {
        return Ok(config);
    }
    let one = |path: &str, message: String| {
        let mut errs = ValidationErrors::new();
        errs.push(path, message);
        errs
    };
    let mut value = config
        .to_yaml_value()
        .map_err(|e| one("synapse", e.to_string()))?;
    let serde_yaml::Value::Mapping(map) = &mut value else {
        return Err(one(
            "synapse",
            "homeserver.yaml is not a mapping".to_owned(),
        ));
    };
    for (key, setting) in settings {
        let setting = serde_yaml::to_value(setting)
            .map_err(|e| one(&format!("synapse.settings.{key}"), e.to_string()))?;
        map.insert(serde_yaml::Value::String(key.clone()), setting);
    }
    HomeserverConfig::from_yaml_value(value, "synapse.settings").map_err(|e| match e {
        Error::Parse { path, message, .. } => one(&format!("synapse.settings.{path}"), message),
        other => one("synapse.settings", other.to_string()),
    })
}

/// Synapse's logging configuration: a Python `logging.config.dictConfig`
/// document writing to standard error (the journal adds time stamps) at the
/// host's log level. SQL statements are never logged below INFO, so a DEBUG
/// level does not write message contents into the journal. Synapse's access
/// log (`synapse.access`: every request with the user, the client's address
/// and the URL, which can hold one-time secrets such as the OpenID Connect
/// callback's code or a password-reset link's token) is never written, at
/// any level: like Caddy, which keeps no access log, Synapse does not record
/// who asked for what.
pub fn log_config(host: &HostDescription) -> String {
    let level = host.synapse.log_level.as_str();
    let sql_level = match host.synapse.log_level {
        LogLevel::Debug => LogLevel::Info.as_str(),
        other => other.as_str(),
    };
    format!(
        "# Synapse's logging (Python logging.config.dictConfig), derived by ospw-matrix.
version: 1
disable_existing_loggers: false
formatters:
  journal:
    format: '%(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  journal:
    class: logging.StreamHandler
    formatter: journal
    stream: ext://sys.stderr
loggers:
  synapse.storage.SQL:
    level: {sql_level}
  synapse.access:
    level: WARNING
root:
  level: {level}
  handlers: [journal]
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::synapse::SocketMode;
    use crate::host::TurnTls;
    use std::path::PathBuf;

    fn ctx() -> RenderContext {
        RenderContext {
            output_dir: PathBuf::from("/etc/ospw-matrix"),
        }
    }

    fn example() -> HostDescription {
        crate::load::example_host().expect("example")
    }

    #[test]
    fn metrics_add_a_loopback_metrics_listener() {
        let config = homeserver(&example(), &ctx()).expect("derives");
        assert_eq!(config.enable_metrics, Some(false));
        assert_eq!(config.listeners.as_ref().map(Vec::len), Some(1));
        let mut h = example();
        h.metrics.enable = true;
        h.metrics.synapse_port = 9100;
        let config = homeserver(&h, &ctx()).expect("derives");
        assert_eq!(config.enable_metrics, Some(true));
        let listeners = config.listeners.as_ref().expect("listeners");
        assert_eq!(listeners.len(), 2);
        assert_eq!(
            listeners[0].kind,
            ListenerType::Http,
            "the client listener first"
        );
        let m = &listeners[1];
        assert_eq!(m.kind, ListenerType::Metrics);
        assert_eq!(m.port, Some(9100));
        assert_eq!(m.bind_addresses, Some(vec!["127.0.0.1".to_owned()]));
        assert_eq!(m.resources, None);
        assert_eq!(config.privacy_violations(), ValidationErrors::new());
        let yaml = config.to_yaml_string().expect("yaml");
        assert!(yaml.contains("type: metrics"), "{yaml}");
    }

    #[test]
    fn example_derives_a_private_config() {
        let config = homeserver(&example(), &ctx()).expect("derives");
        assert_eq!(config.privacy_violations(), ValidationErrors::new());
        assert_eq!(config.server_name.as_deref(), Some("example.org"));
        assert_eq!(
            config.public_baseurl.as_deref(),
            Some("https://matrix.example.org")
        );
        assert_eq!(
            config.log_config.as_deref(),
            Some("/etc/ospw-matrix/synapse/log.yaml")
        );
        assert_eq!(
            config.max_upload_size,
            Some(ByteSize::Bytes(100 * 1024 * 1024))
        );
        assert_eq!(config.turn_user_lifetime, Some(Duration::Millis(3_600_000)));
        assert_eq!(
            config.turn_uris,
            Some(vec![
                "turn:turn.example.org:3478?transport=udp".to_owned(),
                "turn:turn.example.org:3478?transport=tcp".to_owned(),
            ])
        );
        assert_eq!(
            config.signing_key_path.as_deref(),
            Some("/var/lib/ospw-matrix/secrets/signing_key")
        );
        assert_eq!(
            config.turn_shared_secret_path.as_deref(),
            Some("/var/lib/ospw-matrix/secrets/turn_shared_secret")
        );
        assert_eq!(
            config.media_store_path.as_deref(),
            Some("/var/lib/ospw-matrix/synapse/media_store")
        );
        let listeners = config.listeners.as_ref().expect("listeners");
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].port, Some(8008));
        assert_eq!(
            listeners[0].bind_addresses,
            Some(vec!["127.0.0.1".to_owned()])
        );
        let args = config
            .database
            .as_ref()
            .and_then(|d| d.args.as_ref())
            .expect("args");
        assert_eq!(args.host.as_deref(), Some("/run/postgresql"));
        assert_eq!(args.port, Some(5432));
        assert_eq!(config.url_preview_enabled, Some(false));
        assert_eq!(config.url_preview_ip_range_blacklist, None);
        assert_eq!(
            config.ip_range_blacklist.as_ref().map(Vec::len),
            Some(BLOCKED_IP_RANGES.len())
        );
        assert_eq!(
            config.encryption_enabled_by_default_for_room_type,
            Some(RoomEncryption::All)
        );
        let yaml = config.to_yaml_string().expect("emits");
        assert!(yaml.contains("federation_domain_whitelist: []"), "{yaml}");
        assert!(yaml.contains("trusted_key_servers: []"), "{yaml}");
    }

    #[test]
    fn variant_details() {
        let mut host = example();
        host.synapse.listen = SynapseListen::Unix {
            path: "/run/ospw-matrix/synapse.sock".into(),
        };
        host.synapse.url_previews = true;
        host.synapse.presence = false;
        host.synapse.encryption_by_default = EncryptionDefault::Invite;
        host.turn.tls = Some(TurnTls {
            port: 5349,
            cert_file: "/c".into(),
            key_file: "/k".into(),
        });
        host.turn.credential_lifetime = "2d".into();
        host.secrets.form_secret_file = Some("/run/agenix/form".into());
        host.synapse.media_store_path = Some("/srv/media".into());
        let config = homeserver(&host, &ctx()).expect("derives");
        let l = &config.listeners.as_ref().expect("listeners")[0];
        assert_eq!(l.path.as_deref(), Some("/run/ospw-matrix/synapse.sock"));
        assert_eq!(l.mode, Some(SocketMode(0o660)));
        assert_eq!(l.port, None);
        assert_eq!(
            config
                .turn_uris
                .as_ref()
                .and_then(|u| u.last())
                .map(String::as_str),
            Some("turns:turn.example.org:5349?transport=tcp")
        );
        assert_eq!(
            config.turn_user_lifetime,
            Some(Duration::Millis(172_800_000))
        );
        assert_eq!(config.form_secret_path.as_deref(), Some("/run/agenix/form"));
        assert_eq!(config.media_store_path.as_deref(), Some("/srv/media"));
        assert_eq!(
            config.url_preview_ip_range_blacklist.as_ref().map(Vec::len),
            Some(BLOCKED_IP_RANGES.len())
        );
        assert_eq!(
            config.presence.as_ref().and_then(|p| p.enabled),
            Some(PresenceEnabled::Off)
        );
        assert_eq!(
            config.encryption_enabled_by_default_for_room_type,
            Some(RoomEncryption::Invite)
        );
    }

    #[test]
    fn settings_merge_last_and_unknown_keys_pass_through() {
        let mut host = example();
        host.synapse
            .settings
            .insert("enable_metrics".into(), serde_json::json!(true));
        host.synapse.settings.insert(
            "auto_join_rooms".into(),
            serde_json::json!(["#lobby:example.org"]),
        );
        let config = homeserver(&host, &ctx()).expect("derives");
        assert_eq!(config.enable_metrics, Some(true));
        assert_eq!(
            config.extra.get("auto_join_rooms"),
            Some(&serde_yaml::from_str::<serde_yaml::Value>("['#lobby:example.org']").expect("v"))
        );
    }

    #[test]
    fn settings_that_break_privacy_name_the_setting() {
        let mut host = example();
        for (key, value) in [
            ("enable_registration", serde_json::json!(true)),
            ("federation_domain_whitelist", serde_json::json!(null)),
            (
                "listeners",
                serde_json::json!([{"port": 8448, "bind_addresses": ["0.0.0.0"], "type": "http",
                    "resources": [{"names": ["federation"]}]}]),
            ),
        ] {
            host.synapse.settings.insert(key.into(), value);
        }
        let errs = homeserver(&host, &ctx()).expect_err("refused");
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "synapse.settings.listeners",
                "synapse.settings.federation_domain_whitelist",
                "synapse.settings.listeners[0].resources[0].names[0]",
                "synapse.settings.listeners[0].bind_addresses[0]",
                "synapse.settings.enable_registration",
            ]
        );
    }

    #[test]
    fn settings_may_not_change_keys_other_components_depend_on() {
        let mut host = example();
        for (key, value) in [
            ("server_name", serde_json::json!("other.org")),
            (
                "public_baseurl",
                serde_json::json!("https://elsewhere.org/"),
            ),
            (
                "listeners",
                serde_json::json!([{"port": 9000, "bind_addresses": ["127.0.0.1"], "type": "http",
                    "resources": [{"names": ["client"]}]}]),
            ),
            (
                "turn_shared_secret_path",
                serde_json::json!("/run/other/turn"),
            ),
            ("turn_uris", serde_json::json!(["turn:other.org:3478"])),
            (
                "database",
                serde_json::json!({"name": "psycopg2", "args": {"database": "x"}}),
            ),
        ] {
            host.synapse.settings.insert(key.into(), value);
        }
        let errs = homeserver(&host, &ctx()).expect_err("refused");
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "synapse.settings.server_name",
                "synapse.settings.public_baseurl",
                "synapse.settings.listeners",
                "synapse.settings.database",
                "synapse.settings.turn_shared_secret_path",
                "synapse.settings.turn_uris",
            ]
        );
        assert!(errs.errors[0].message.contains("server_name"), "{errs}");
        // Restating a derived value (trailing slash aside) is accepted.
        let mut host = example();
        host.synapse.settings.insert(
            "public_baseurl".into(),
            serde_json::json!("https://matrix.example.org/"),
        );
        host.synapse
            .settings
            .insert("server_name".into(), serde_json::json!("example.org"));
        assert!(homeserver(&host, &ctx()).is_ok());
    }

    #[test]
    fn inline_managed_secrets_point_at_the_secrets_field() {
        let mut host = example();
        host.synapse
            .settings
            .insert("macaroon_secret_key".into(), serde_json::json!("s3cr3t"));
        let errs = homeserver(&host, &ctx()).expect_err("refused");
        assert!(
            errs.errors
                .iter()
                .any(|e| e.path == "synapse.settings.macaroon_secret_key"
                    && e.message.ends_with("use secrets.macaroon_secret_key_file")),
            "{errs}"
        );
    }

    #[test]
    fn nested_inline_secrets_in_settings_are_refused() {
        let mut host = example();
        // (email is derived from the host description's own section, see
        // synapse_auth.rs; redis is not.)
        host.synapse.settings.insert(
            "redis".into(),
            serde_json::json!({"enabled": true, "password": "hunter2"}),
        );
        let errs = homeserver(&host, &ctx()).expect_err("refused");
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["synapse.settings.redis.password"]);
    }

    #[test]
    fn mistyped_setting_names_the_setting() {
        let mut host = example();
        host.synapse
            .settings
            .insert("turn_allow_guests".into(), serde_json::json!("no"));
        let errs = homeserver(&host, &ctx()).expect_err("refused");
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert_eq!(errs.errors[0].path, "synapse.settings.turn_allow_guests");
    }

    #[test]
    fn bad_values_are_reported_without_panicking() {
        let mut host = example();
        host.synapse.max_upload_size = "lots".into();
        host.turn.credential_lifetime = "forever".into();
        let errs = homeserver(&host, &ctx()).expect_err("refused");
        assert!(errs.mentions("synapse.max_upload_size"), "{errs}");
        assert!(errs.mentions("turn.credential_lifetime"), "{errs}");
    }

    #[test]
    fn log_config_levels() {
        let mut host = example();
        let text = log_config(&host);
        let value: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
        assert_eq!(value["root"]["level"].as_str(), Some("WARNING"));
        assert_eq!(
            value["handlers"]["journal"]["stream"].as_str(),
            Some("ext://sys.stderr")
        );
        host.synapse.log_level = LogLevel::Debug;
        let value: serde_yaml::Value = serde_yaml::from_str(&log_config(&host)).expect("yaml");
        assert_eq!(value["root"]["level"].as_str(), Some("DEBUG"));
        assert_eq!(
            value["loggers"]["synapse.storage.SQL"]["level"].as_str(),
            Some("INFO")
        );
        assert_eq!(
            value["loggers"]["synapse.access"]["level"].as_str(),
            Some("WARNING")
        );
    }
}
