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
    let mut errs = ValidationErrors::new();
    check_setting_values(&s.settings, &mut errs);
    let config = match merge_settings(config, &s.settings) {
        Ok(config) => config,
        Err(e) => {
            // A type error at a value already refused above is the same problem.
            for err in e.errors {
                if !errs.errors.iter().any(|f| f.path == err.path) {
                    errs.errors.push(err);
                }
            }
            return Err(errs);
        }
    };
    if let Some(derived) = &derived {
        check_derived_keys(derived, &config, &s.settings, &mut errs);
        check_typed_fields(derived, &config, &s.settings, &mut errs);
        check_privacy_defaults(derived, &config, &s.settings, &mut errs);
        super::synapse_auth::check_settings(host, derived, &config, &s.settings, &mut errs);
    }
    for e in config.privacy_violations().errors {
        let top = e.path.split(['.', '[']).next().unwrap_or_default();
        // Previews switched on through settings are reported once, at the
        // setting, pointing at synapse.url_previews.
        if top == "url_preview_ip_range_blacklist"
            && errs.mentions("synapse.settings.url_preview_enabled")
        {
            continue;
        }
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

/// Settings this product renders for privacy beyond the invariants every
/// `homeserver.yaml` is checked for: (the key in `synapse.settings`, the
/// value Synapse acts on, with Synapse's default when absent, and why).
/// A top-level key of `synapse.settings` replaces the rendered one whole,
/// so `push: {enabled: true}` alone would bring back Synapse's default
/// `include_content: true`.
/// A privacy default: the settings keys that can change it, the value
/// Synapse acts on, and why it matters.
type PrivacyDefault = (
    &'static [&'static str],
    fn(&HomeserverConfig) -> bool,
    &'static str,
);

const PRIVACY_DEFAULTS: [PrivacyDefault; 4] = [
    (
        &["push", "email"],
        push_include_content,
        "would send message text of unencrypted rooms to push gateways (and on to Google or \
         Apple) as push.include_content; keep include_content: false (and no \
         email.redact_content: false, which overrides it)",
    ),
    (
        &["enable_3pid_lookup"],
        |c| c.enable_3pid_lookup.unwrap_or(true),
        "would let clients have the server look e-mail addresses and phone numbers up at \
         identity servers elsewhere; keep false",
    ),
    (
        &["require_auth_for_profile_requests"],
        |c| c.require_auth_for_profile_requests.unwrap_or(false),
        "would show profiles to anyone without an account; keep true",
    ),
    (
        &["limit_profile_requests_to_users_who_share_rooms"],
        |c| {
            c.limit_profile_requests_to_users_who_share_rooms
                .unwrap_or(false)
        },
        "would show every profile to every user; keep true",
    ),
];

/// Whether Synapse sends message content to push gateways: the deprecated
/// `email.redact_content` wins over `push.include_content` (Synapse's
/// `PushConfig`), which is true when absent.
fn push_include_content(c: &HomeserverConfig) -> bool {
    let redact = c
        .email
        .as_ref()
        .and_then(|e| e.extra.get("redact_content"))
        .filter(|v| !v.is_null());
    match redact {
        // Python's `not redact_content`.
        Some(v) => !match v {
            serde_yaml::Value::Bool(b) => *b,
            serde_yaml::Value::Number(n) => n.as_f64() != Some(0.0),
            serde_yaml::Value::String(t) => !t.is_empty(),
            serde_yaml::Value::Sequence(items) => !items.is_empty(),
            serde_yaml::Value::Mapping(map) => !map.is_empty(),
            _ => true,
        },
        None => c
            .push
            .as_ref()
            .and_then(|p| p.include_content)
            .unwrap_or(true),
    }
}

/// Reports each [`PRIVACY_DEFAULTS`] entry that `settings` relaxes, as
/// Synapse will read it.
fn check_privacy_defaults(
    derived: &HomeserverConfig,
    merged: &HomeserverConfig,
    settings: &crate::host::FreeformSettings,
    errs: &mut ValidationErrors,
) {
    for (keys, effective, why) in PRIVACY_DEFAULTS {
        let (before, after) = (effective(derived), effective(merged));
        if before == after {
            continue;
        }
        for key in keys.iter().filter(|k| settings.contains_key(**k)) {
            errs.push(
                format!("synapse.settings.{key}"),
                format!(
                    "changes a privacy default: Synapse would read {after} where this product \
                     renders {before}: it {why}"
                ),
            );
        }
    }
}

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

/// A `homeserver.yaml` key that a typed host-description field sets, and
/// how to read its effective value (Synapse's default when absent), so a
/// setting that restates the value passes and one that contradicts it is
/// refused naming both.
struct TypedKey {
    /// The top-level key in `synapse.settings`.
    key: &'static str,
    /// The host-description field.
    field: &'static str,
    /// The value Synapse acts on, as text.
    effective: fn(&HomeserverConfig) -> String,
    /// What to do instead, when more than "set the field".
    hint: &'static str,
}

fn eff_max_upload_size(c: &HomeserverConfig) -> String {
    let bytes = match &c.max_upload_size {
        Some(size) => size.bytes(),
        None => Ok(50 << 20),
    };
    bytes.map_or_else(|m| m, |b| format!("{b} bytes"))
}

fn eff_presence(c: &HomeserverConfig) -> String {
    match c.presence.as_ref().and_then(|p| p.enabled) {
        Some(PresenceEnabled::On) => "true".to_owned(),
        Some(PresenceEnabled::Off) => "false".to_owned(),
        Some(PresenceEnabled::Untracked) => "untracked".to_owned(),
        // Synapse falls back to the legacy `use_presence`, then true.
        None => match c.extra.get("use_presence") {
            Some(serde_yaml::Value::Bool(b)) => b.to_string(),
            Some(serde_yaml::Value::Null) | None => "true".to_owned(),
            Some(other) => format!("{other:?}"),
        },
    }
}

fn eff_url_previews(c: &HomeserverConfig) -> String {
    c.url_preview_enabled.unwrap_or(false).to_string()
}

fn eff_encryption(c: &HomeserverConfig) -> String {
    match c.encryption_enabled_by_default_for_room_type {
        Some(RoomEncryption::All) => "all",
        Some(RoomEncryption::Invite) => "invite",
        Some(RoomEncryption::Off) | None => "off",
    }
    .to_owned()
}

fn eff_log_config(c: &HomeserverConfig) -> String {
    c.log_config.clone().unwrap_or_else(|| "(none)".to_owned())
}

fn eff_turn_lifetime(c: &HomeserverConfig) -> String {
    let ms = match &c.turn_user_lifetime {
        Some(d) => d.millis(),
        None => Ok(3_600_000),
    };
    ms.map_or_else(|m| m, |ms| format!("{ms} ms"))
}

fn eff_web_client(c: &HomeserverConfig) -> String {
    c.web_client_location
        .as_deref()
        .unwrap_or("(none)")
        .trim_end_matches('/')
        .to_owned()
}

/// Every `homeserver.yaml` key a typed field of the host description sets
/// (besides [`DERIVED_KEYS`], which other components depend on).
const TYPED_KEYS: [TypedKey; 8] = [
    TypedKey {
        key: "max_upload_size",
        field: "synapse.max_upload_size",
        effective: eff_max_upload_size,
        hint: "",
    },
    TypedKey {
        key: "presence",
        field: "synapse.presence",
        effective: eff_presence,
        hint: "",
    },
    TypedKey {
        key: "use_presence",
        field: "synapse.presence",
        effective: eff_presence,
        hint: "",
    },
    TypedKey {
        key: "url_preview_enabled",
        field: "synapse.url_previews",
        effective: eff_url_previews,
        hint: " (it also writes the address blocklist previews need)",
    },
    TypedKey {
        key: "encryption_enabled_by_default_for_room_type",
        field: "synapse.encryption_by_default",
        effective: eff_encryption,
        hint: "",
    },
    TypedKey {
        key: "log_config",
        field: "synapse.log_level",
        effective: eff_log_config,
        hint: " (the rendered synapse/log.yaml holds the level)",
    },
    TypedKey {
        key: "turn_user_lifetime",
        field: "turn.credential_lifetime",
        effective: eff_turn_lifetime,
        hint: " (coturn and Synapse share it)",
    },
    TypedKey {
        key: "web_client_location",
        field: "element_host",
        effective: eff_web_client,
        hint: "",
    },
];

/// Reports each [`TYPED_KEYS`] entry whose value `settings` changed: the
/// setting would silently win over the typed field.
fn check_typed_fields(
    derived: &HomeserverConfig,
    merged: &HomeserverConfig,
    settings: &crate::host::FreeformSettings,
    errs: &mut ValidationErrors,
) {
    for t in TYPED_KEYS {
        let path = format!("synapse.settings.{}", t.key);
        if !settings.contains_key(t.key) || errs.mentions(&path) {
            continue;
        }
        let (before, after) = ((t.effective)(derived), (t.effective)(merged));
        if before != after {
            errs.push(
                path,
                format!(
                    "makes Synapse read {} where {} gives {}: the two contradict each other; \
                     set {} instead{}",
                    crate::redact::quote(&after),
                    t.field,
                    crate::redact::quote(&before),
                    t.field,
                    t.hint
                ),
            );
        }
    }
}

/// Synapse's options that hold a duration, as paths in `homeserver.yaml`
/// (`[]` for any list item). Synapse reads a bare number as milliseconds
/// and knows the suffixes s, m, h, d, w and y (no `ms`).
pub const DURATION_KEYS: [&str; 41] = [
    "presence.last_active_granularity",
    "presence.sync_online_timeout",
    "presence.idle_timeout",
    "delete_stale_devices_after",
    "email.notif_delay_before_mail",
    "email.validation_token_lifetime",
    "max_event_delay_duration",
    "redaction_retention_period",
    "forgotten_room_retention_period",
    "user_ips_max_age",
    "retention.default_policy.min_lifetime",
    "retention.default_policy.max_lifetime",
    "retention.allowed_lifetime_min",
    "retention.allowed_lifetime_max",
    "retention.purge_jobs[].shortest_max_lifetime",
    "retention.purge_jobs[].longest_max_lifetime",
    "retention.purge_jobs[].interval",
    "federation.client_timeout",
    "federation.max_short_retry_delay",
    "federation.max_long_retry_delay",
    "federation.destination_min_retry_interval",
    "federation.destination_max_retry_interval",
    "caches.cache_entry_ttl",
    "caches.sync_response_cache_duration",
    "caches.cache_autotuning.min_cache_ttl",
    "unused_expiration_time",
    "media_retention.local_media_lifetime",
    "media_retention.remote_media_lifetime",
    "turn_user_lifetime",
    "session_lifetime",
    "refreshable_access_token_lifetime",
    "refresh_token_lifetime",
    "nonrefreshable_access_token_lifetime",
    "ui_auth.session_timeout",
    "login_via_existing_session.token_timeout",
    "key_refresh_interval",
    "saml2_config.saml_session_lifetime",
    "push.jitter_delay",
    "account_validity.period",
    "account_validity.renew_at",
    "rc_delayed_event_mgmt.period",
];

/// The longest duration accepted in settings: 100 years.
const MAX_SETTING_DURATION_MS: u64 = 100 * 365 * 86_400_000;

/// Checks a duration option's value as Synapse reads it: a unit is
/// required (a bare number would be milliseconds), `ms` is not a suffix
/// Synapse knows, and at most 100 years.
fn check_duration(path: &str, value: &serde_json::Value, errs: &mut ValidationErrors) {
    let expected = "expected a number with a unit s, m, h, d, w or y, such as 1h";
    let text = match value {
        serde_json::Value::Null => return,
        serde_json::Value::Number(n) => {
            let secs = n.as_u64().map(|ms| ms / 1000).unwrap_or_default();
            errs.push(
                path,
                format!(
                    "{n} is a bare number, which Synapse reads as milliseconds ({secs} s): \
                     write the unit: {n}s if seconds were meant, {secs}s for what Synapse would \
                     read"
                ),
            );
            return;
        }
        serde_json::Value::String(t) => t,
        _ => {
            errs.push(path, format!("is not a duration: {expected}"));
            return;
        }
    };
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        errs.push(
            path,
            format!(
                "{} has no unit, so Synapse reads it as milliseconds: write the unit, such as {text}s",
                crate::redact::quote(text)
            ),
        );
        return;
    }
    if let Some(n) = text.strip_suffix("ms") {
        errs.push(
            path,
            format!(
                "{} ends in ms, a suffix Synapse does not read: {expected} ({n}ms is {n} without a unit, which is refused too)",
                crate::redact::quote(text)
            ),
        );
        return;
    }
    let well_formed = text.len() >= 2
        && text.ends_with(['s', 'm', 'h', 'd', 'w', 'y'])
        && text[..text.len() - 1].chars().all(|c| c.is_ascii_digit());
    if !well_formed {
        errs.push(
            path,
            format!(
                "{} is not a duration Synapse reads: {expected}",
                crate::redact::quote(text)
            ),
        );
        return;
    }
    match parse_duration_ms(text) {
        Ok(ms) if ms > MAX_SETTING_DURATION_MS => errs.push(
            path,
            format!("{text} is longer than 100 years: expected at most 100y"),
        ),
        Err(m) if !m.contains("zero") => errs.push(path, m),
        _ => {}
    }
}

/// Options whose documented values include the strings `off`/`on` (which
/// Synapse reads both as strings and as the booleans PyYAML makes of them).
const STRING_WORD_KEYS: [&str; 2] = [
    "encryption_enabled_by_default_for_room_type",
    "experimental_features.msc4388_mode",
];

/// Checks the values of `synapse.settings` as Synapse will read them:
/// durations need a unit ([`DURATION_KEYS`]); a string that YAML 1.1
/// reads as something else (`off`, `0660`, `1:30`) is refused with what
/// to write ([`crate::components::pyyaml::yaml11_reading`]).
fn check_setting_values(settings: &crate::host::FreeformSettings, errs: &mut ValidationErrors) {
    fn walk(value: &serde_json::Value, path: &str, generic: &str, errs: &mut ValidationErrors) {
        if DURATION_KEYS.contains(&generic) {
            check_duration(&format!("synapse.settings.{path}"), value, errs);
            return;
        }
        match value {
            serde_json::Value::String(s) if !STRING_WORD_KEYS.contains(&generic) => {
                if let Some(reading) = crate::components::pyyaml::yaml11_reading(s) {
                    errs.push(
                        format!("synapse.settings.{path}"),
                        format!(
                            "{} is read here as a string, but Synapse's YAML 1.1 reader takes it for {reading}",
                            crate::redact::quote(s)
                        ),
                    );
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), &format!("{generic}[]"), errs);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &format!("{path}.{k}"), &format!("{generic}.{k}"), errs);
                }
            }
            _ => {}
        }
    }
    for (key, value) in settings {
        walk(value, key, key, errs);
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

    fn settings_errors(settings: serde_json::Value) -> ValidationErrors {
        let mut host = example();
        host.synapse.settings = serde_json::from_value(settings).expect("map");
        homeserver(&host, &ctx()).expect_err("refused")
    }

    #[test]
    fn settings_may_not_contradict_typed_fields() {
        for (settings, path, field) in [
            (
                serde_json::json!({"encryption_enabled_by_default_for_room_type": "off"}),
                "synapse.settings.encryption_enabled_by_default_for_room_type",
                "synapse.encryption_by_default",
            ),
            (
                serde_json::json!({"max_upload_size": "1G"}),
                "synapse.settings.max_upload_size",
                "synapse.max_upload_size",
            ),
            (
                serde_json::json!({"presence": {"enabled": false}}),
                "synapse.settings.presence",
                "synapse.presence",
            ),
            (
                serde_json::json!({"presence": {"enabled": "untracked"}}),
                "synapse.settings.presence",
                "synapse.presence",
            ),
            (
                serde_json::json!({"url_preview_enabled": true}),
                "synapse.settings.url_preview_enabled",
                "synapse.url_previews",
            ),
            (
                serde_json::json!({"log_config": "/etc/synapse/log.yaml"}),
                "synapse.settings.log_config",
                "synapse.log_level",
            ),
            (
                serde_json::json!({"turn_user_lifetime": "1d"}),
                "synapse.settings.turn_user_lifetime",
                "turn.credential_lifetime",
            ),
            (
                serde_json::json!({"web_client_location": "https://app.element.io"}),
                "synapse.settings.web_client_location",
                "element_host",
            ),
        ] {
            let errs = settings_errors(settings.clone());
            assert_eq!(errs.errors.len(), 1, "{settings}: {errs}");
            assert_eq!(errs.errors[0].path, path, "{errs}");
            assert!(errs.errors[0].message.contains(field), "{errs}");
        }
        // Previews switched on in settings: one error, at the setting,
        // pointing at the typed field (not at the missing blocklist).
        let errs = settings_errors(serde_json::json!({"url_preview_enabled": true}));
        assert!(
            errs.errors[0]
                .message
                .contains("set synapse.url_previews instead"),
            "{errs}"
        );
        // Restating the typed value, or a presence section that keeps it, is fine.
        let mut host = example();
        host.synapse.settings = serde_json::from_value(serde_json::json!({
            "encryption_enabled_by_default_for_room_type": "all",
            "max_upload_size": 104857600,
            "presence": {"enabled": true, "include_offline_users_on_sync": false},
            "url_preview_enabled": false,
            "turn_user_lifetime": "1h",
            "web_client_location": "https://chat.example.org/",
        }))
        .expect("map");
        assert!(
            homeserver(&host, &ctx()).is_ok(),
            "{:?}",
            homeserver(&host, &ctx()).err()
        );
    }

    #[test]
    fn durations_in_settings_need_a_unit() {
        for (value, needle) in [
            (serde_json::json!(86400), "milliseconds (86 s)"),
            (serde_json::json!("86400"), "no unit"),
            (
                serde_json::json!("500ms"),
                "ms, a suffix Synapse does not read",
            ),
            (serde_json::json!("1 h"), "not a duration Synapse reads"),
            (serde_json::json!("1.5h"), "not a duration Synapse reads"),
            (serde_json::json!("101y"), "longer than 100 years"),
            (serde_json::json!(true), "not a duration"),
        ] {
            for key in ["session_lifetime", "user_ips_max_age"] {
                let errs = settings_errors(serde_json::json!({ key: value }));
                assert_eq!(errs.errors.len(), 1, "{value}: {errs}");
                assert_eq!(errs.errors[0].path, format!("synapse.settings.{key}"));
                assert!(errs.errors[0].message.contains(needle), "{value}: {errs}");
            }
        }
        let errs = settings_errors(serde_json::json!({"retention": {"enabled": true,
            "purge_jobs": [{"interval": "1d"}, {"interval": 43200000}]}}));
        assert_eq!(
            errs.errors[0].path,
            "synapse.settings.retention.purge_jobs[1].interval"
        );
        let mut host = example();
        host.synapse.settings = serde_json::from_value(serde_json::json!({
            "session_lifetime": "24h", "user_ips_max_age": null, "redaction_retention_period": "7d",
            "retention": {"enabled": true, "purge_jobs": [{"interval": "12h"}]},
        }))
        .expect("map");
        assert!(homeserver(&host, &ctx()).is_ok());
    }

    #[test]
    fn yaml_1_1_strings_in_settings_are_refused() {
        for (value, needle) in [
            ("off", "boolean false"),
            ("yes", "boolean true"),
            ("0660", "octal number 432"),
            ("1:30", "sexagesimal"),
            ("1_000", "number 1000"),
        ] {
            let errs = settings_errors(serde_json::json!({"some_module": {"option": value}}));
            assert_eq!(errs.errors.len(), 1, "{value}: {errs}");
            assert_eq!(errs.errors[0].path, "synapse.settings.some_module.option");
            assert!(errs.errors[0].message.contains(needle), "{errs}");
        }
    }

    #[test]
    fn inline_secrets_in_module_settings_are_refused_by_shape() {
        let errs = settings_errors(serde_json::json!({
            "media_storage_providers": [{"module": "s3_storage_provider.S3StorageProviderBackend",
                "store_local": true,
                "config": {"bucket": "media", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}],
            "oidc_providers": [{"idp_id": "x", "client_secret": "s3cr3t"}],
            "redis": {"enabled": true, "password": "hunter2"},
            "modules": [{"module": "m.M", "config": {"api_token": 123456,
                "endpoint": "https://bot:hunter2@example.com/hook"}}],
        }));
        // (oidc_providers is also derived from sso.providers and needs
        // enable_registration written out: see synapse_auth.rs.)
        let mut errs = errs;
        errs.errors.retain(|e| {
            !e.message.starts_with("changes a key derived")
                && !e.path.ends_with(".enable_registration")
        });
        errs.errors.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "synapse.settings.media_storage_providers[0].config.secret_access_key",
                "synapse.settings.modules[0].config.api_token",
                "synapse.settings.modules[0].config.endpoint",
                "synapse.settings.oidc_providers[0].client_secret",
                "synapse.settings.redis.password",
            ],
            "{errs}"
        );
        assert!(
            errs.errors[3].message.contains("client_secret_path"),
            "{errs}"
        );
        assert!(
            errs.errors[4].message.contains("redis.password_path"),
            "{errs}"
        );
        for e in &errs.errors {
            assert!(
                !e.message.contains("hunter2") && !e.message.contains("wJalr"),
                "{e}"
            );
        }
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
