//! Derives Element Web's configuration from the host description.
//!
//! The derived `config.json` points Element at this server only and turns
//! off everything in a stock Element Web that would contact a third party
//! (see [`crate::components::element`] for each default and why).
//! `element.setting_defaults` is merged into `setting_defaults`, then
//! `element.settings` is merged last (objects key by key, anything else
//! replaced); the result must still keep every invariant.

use crate::components::element::{
    DefaultServerConfig, ElementConfig, HomeserverRef, JsonMap, RoomDirectory,
};
use crate::error::ValidationErrors;
use crate::host::{ElementTheme, HostDescription};

/// The `setting_defaults` this product sets, before
/// `element.setting_defaults` and `element.settings`.
fn derived_setting_defaults(host: &HostDescription) -> JsonMap {
    let mut d = JsonMap::new();
    let mut set = |k: &str, v: bool| {
        d.insert(k.to_owned(), serde_json::Value::Bool(v));
    };
    // Never offer turn.matrix.org when calls need a relay: coturn is here.
    set("fallbackICEServerAllowed", false);
    // Widgets carry Jitsi conferences (meet.element.io unless a Jitsi server
    // is configured), stickers and integration managers.
    if !jitsi_configured(host) {
        set("UIFeature.widgets", false);
    }
    // No identity server and no e-mail/phone identifiers on this server.
    set("UIFeature.identityServer", false);
    set("UIFeature.thirdPartyId", false);
    // No public registration and no e-mail for password resets.
    set("UIFeature.registration", false);
    set("UIFeature.passwordReset", false);
    // Feedback goes to Element's rageshake server or analytics: neither exists here.
    set("UIFeature.feedback", false);
    // "Share to" buttons for Facebook, Twitter, LinkedIn, Reddit.
    set("UIFeature.shareSocial", false);
    // The homeserver generates previews only when synapse.url_previews is on.
    set("UIFeature.urlPreviews", host.synapse.url_previews);
    d
}

fn jitsi_configured(host: &HostDescription) -> bool {
    host.element
        .settings
        .get("jitsi")
        .and_then(|j| j.get("preferred_domain"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|d| !d.trim().is_empty())
}

/// The configuration derived from the typed host-description fields.
fn derive(host: &HostDescription) -> ElementConfig {
    let mut setting_defaults = derived_setting_defaults(host);
    for (k, v) in &host.element.setting_defaults {
        setting_defaults.insert(k.clone(), v.clone());
    }
    // Links to rooms and messages point at this Element, not at matrix.to
    // (Element's default), which would learn every room id shared.
    let mut extra = JsonMap::new();
    extra.insert(
        "permalink_prefix".to_owned(),
        serde_json::Value::String(host.element_url()),
    );
    ElementConfig {
        default_server_config: Some(DefaultServerConfig {
            homeserver: HomeserverRef {
                base_url: host.homeserver_url(),
                server_name: Some(host.server_name.clone()),
                extra: JsonMap::new(),
            },
            extra: JsonMap::new(),
        }),
        brand: Some(host.element.brand.clone()),
        default_theme: Some(
            match host.element.default_theme {
                ElementTheme::Light => "light",
                ElementTheme::Dark => "dark",
            }
            .to_owned(),
        ),
        disable_custom_urls: Some(true),
        disable_guests: Some(true),
        disable_3pid_login: Some(true),
        default_federate: Some(false),
        // Explicit nulls: absent keys fall back to scalar.vector.im.
        integrations_ui_url: Some(None),
        integrations_rest_url: Some(None),
        integrations_widgets_urls: Some(Vec::new()),
        room_directory: Some(RoomDirectory {
            servers: vec![host.server_name.clone()],
            extra: JsonMap::new(),
        }),
        setting_defaults: Some(setting_defaults),
        show_labs_settings: Some(false),
        extra,
        ..ElementConfig::default()
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Derives `config.json`, merges `element.settings` last, and checks the
/// privacy invariants. Errors name the host-description field at fault.
pub fn config(host: &HostDescription) -> Result<ElementConfig, ValidationErrors> {
    let mut errs = inline_secrets(host);
    match checked_config(host) {
        Ok(conf) if errs.is_empty() => Ok(conf),
        Ok(_) => Err(errs),
        Err(more) => {
            errs.extend(more);
            Err(errs)
        }
    }
}

fn checked_config(host: &HostDescription) -> Result<ElementConfig, ValidationErrors> {
    let mut value = derive(host).to_value();
    let settings = serde_json::Value::Object(
        host.element
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    merge(&mut value, &settings);
    let conf: ElementConfig = match serde_path_to_error::deserialize(value) {
        Ok(conf) => conf,
        Err(e) => {
            let mut errs = ValidationErrors::new();
            let path = e.path().to_string();
            errs.push(
                format!("element.settings.{path}"),
                format!(
                    "{}: expected the type Element Web reads there",
                    e.into_inner()
                ),
            );
            return Err(errs);
        }
    };
    let mut errs = ValidationErrors::new();
    for v in conf.privacy_violations().errors {
        errs.push(
            field_path(host, &v.path),
            format!("breaks a privacy invariant: {}", v.message),
        );
    }
    if errs.is_empty() {
        check_own_server(host, &conf, &mut errs);
    }
    errs.into_result(conf)
}

/// Secrets in `element.settings` or `element.setting_defaults`, found by
/// shape ([`crate::inline_secrets`]): `config.json` is served to every
/// visitor, so no file form exists.
fn inline_secrets(host: &HostDescription) -> ValidationErrors {
    let mut errs = ValidationErrors::new();
    for (field, map) in [
        ("element.settings", &host.element.settings),
        ("element.setting_defaults", &host.element.setting_defaults),
    ] {
        for (key, value) in map {
            for f in crate::inline_secrets::find(value, &format!("{field}.{key}"), key) {
                errs.push(
                    f.path,
                    "holds a secret (by its name or its shape): Element's config.json is served to \
                     every visitor, so it can hold none; leave it out (a service that needs a \
                     secret belongs behind the homeserver)",
                );
            }
        }
    }
    errs
}

/// Element must point at this server only: its homeserver URL, its server
/// name, and a room directory of this server alone. `privacy_violations()`
/// can only compare the file with itself; here `element.settings` is
/// compared with the host description.
fn check_own_server(host: &HostDescription, conf: &ElementConfig, errs: &mut ValidationErrors) {
    let url = host.homeserver_url();
    if let Some(dsc) = &conf.default_server_config {
        let base_url = dsc.homeserver.base_url.trim_end_matches('/');
        if base_url != url {
            errs.push(
                "element.settings.default_server_config.m.homeserver.base_url",
                format!(
                    "{base_url:?} is not this server's client API: expected {url:?} (derived from matrix_host \
                     and proxy.https_port), so Element talks to this homeserver only"
                ),
            );
        }
        if conf.server_name() != Some(host.server_name.as_str()) {
            errs.push(
                "element.settings.default_server_config.m.homeserver.server_name",
                format!(
                    "{:?} is not this server's name: expected {:?} (server_name)",
                    conf.server_name().unwrap_or_default(),
                    host.server_name
                ),
            );
        }
    }
    if let Some(rd) = &conf.room_directory {
        if rd.servers != [host.server_name.clone()] {
            errs.push(
                "element.settings.room_directory.servers",
                format!(
                    "{:?} offers other servers' room lists: expected only this server, [{:?}] (server_name)",
                    rd.servers, host.server_name
                ),
            );
        }
    }
}

/// The host-description field a violation of `config.json` key `path`
/// comes from.
fn field_path(host: &HostDescription, path: &str) -> String {
    if let Some(key) = path.strip_prefix("setting_defaults.") {
        let in_settings = host
            .element
            .settings
            .get("setting_defaults")
            .is_some_and(|s| s.get(key).is_some());
        if !in_settings && host.element.setting_defaults.contains_key(key) {
            return format!("element.setting_defaults.{key}");
        }
    }
    format!("element.settings.{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host() -> HostDescription {
        crate::load::example_host().unwrap()
    }

    #[test]
    fn example_derivation() {
        let conf = config(&host()).unwrap();
        let dsc = conf.default_server_config.as_ref().unwrap();
        assert_eq!(dsc.homeserver.base_url, "https://matrix.example.org");
        assert_eq!(conf.server_name(), Some("example.org"));
        assert_eq!(conf.brand.as_deref(), Some("Example Chat"));
        assert_eq!(conf.default_theme.as_deref(), Some("dark"));
        assert_eq!(
            conf.room_directory.as_ref().unwrap().servers,
            vec!["example.org"]
        );
        assert!(conf.privacy_violations().is_empty());
        let v = conf.to_value();
        assert_eq!(v["integrations_ui_url"], serde_json::Value::Null);
        assert!(v.as_object().unwrap().contains_key("integrations_ui_url"));
        assert_eq!(v["setting_defaults"]["UIFeature.urlPreviews"], json!(false));
        assert!(v.get("jitsi").is_none() && v.get("map_style_url").is_none());
        assert_eq!(v["permalink_prefix"], "https://chat.example.org");
    }

    #[test]
    fn settings_may_not_point_element_at_another_server() {
        let mut h = host();
        h.element.settings.insert(
            "default_server_config".into(),
            json!({"m.homeserver": {"base_url": "https://matrix-client.matrix.org",
                                    "server_name": "matrix.org"}}),
        );
        h.element
            .settings
            .insert("room_directory".into(), json!({"servers": ["matrix.org"]}));
        let errs = config(&h).unwrap_err();
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "element.settings.default_server_config.m.homeserver.base_url",
                "element.settings.default_server_config.m.homeserver.server_name",
                "element.settings.room_directory.servers",
            ]
        );
        assert!(errs.errors[0]
            .message
            .contains("https://matrix.example.org"));
        // Restating this server's own values (or adding keys beside them) is fine.
        let mut h = host();
        h.element.settings.insert(
            "default_server_config".into(),
            json!({"m.homeserver": {"base_url": "https://matrix.example.org/", "x": 1}}),
        );
        h.element
            .settings
            .insert("room_directory".into(), json!({"servers": ["example.org"]}));
        assert!(config(&h).is_ok());
    }

    #[test]
    fn port_and_setting_defaults() {
        let mut h = host();
        h.proxy.https_port = 8443;
        h.synapse.url_previews = true;
        h.element
            .setting_defaults
            .insert("breadcrumbs".into(), json!(false));
        let conf = config(&h).unwrap();
        let v = conf.to_value();
        assert_eq!(
            v["default_server_config"]["m.homeserver"]["base_url"],
            "https://matrix.example.org:8443"
        );
        assert_eq!(v["setting_defaults"]["breadcrumbs"], json!(false));
        assert_eq!(v["setting_defaults"]["UIFeature.urlPreviews"], json!(true));
        assert_eq!(
            v["setting_defaults"]["fallbackICEServerAllowed"],
            json!(false)
        );
    }

    #[test]
    fn settings_merge_last() {
        let mut h = host();
        h.element
            .settings
            .insert("embedded_pages".into(), json!({"login_for_welcome": true}));
        h.element
            .settings
            .insert("setting_defaults".into(), json!({"breadcrumbs": true}));
        h.element.settings.insert("brand".into(), json!("Other"));
        h.element.settings.insert(
            "jitsi".into(),
            json!({"preferred_domain": "meet.example.org"}),
        );
        h.element.settings.insert(
            "map_style_url".into(),
            json!("https://tiles.example.org/style.json"),
        );
        let conf = config(&h).unwrap();
        let v = conf.to_value();
        assert_eq!(v["embedded_pages"]["login_for_welcome"], json!(true));
        assert_eq!(v["brand"], "Other");
        // Merged key by key: the derived defaults stay.
        assert_eq!(v["setting_defaults"]["breadcrumbs"], json!(true));
        assert_eq!(
            v["setting_defaults"]["fallbackICEServerAllowed"],
            json!(false)
        );
        // A configured Jitsi server leaves widgets on.
        assert!(v["setting_defaults"].get("UIFeature.widgets").is_none());
        assert_eq!(v["jitsi"]["preferred_domain"], "meet.example.org");
    }

    #[test]
    fn breaking_settings_are_refused_with_their_path() {
        let cases = [
            (
                "disable_guests",
                json!(false),
                "element.settings.disable_guests",
            ),
            (
                "default_federate",
                json!(true),
                "element.settings.default_federate",
            ),
            (
                "integrations_ui_url",
                json!("https://scalar.vector.im/"),
                "element.settings.integrations_ui_url",
            ),
            (
                "posthog",
                json!({"project_api_key": "k"}),
                "element.settings.posthog",
            ),
            (
                "bug_report_endpoint_url",
                json!("https://x/"),
                "element.settings.bug_report_endpoint_url",
            ),
            (
                "room_directory",
                json!({"servers": ["matrix.org"]}),
                "element.settings.room_directory.servers",
            ),
            (
                "setting_defaults",
                json!({"fallbackICEServerAllowed": true}),
                "element.settings.setting_defaults.fallbackICEServerAllowed",
            ),
            (
                "setting_defaults",
                json!({"UIFeature.widgets": true}),
                "element.settings.setting_defaults.UIFeature.widgets",
            ),
            (
                "default_server_config",
                json!({"m.identity_server": {"base_url": "https://vector.im"}}),
                "element.settings.default_server_config.m.identity_server",
            ),
            (
                "disable_guests",
                json!("yes"),
                "element.settings.disable_guests",
            ),
        ];
        for (key, value, path) in cases {
            let mut h = host();
            h.element.settings.insert(key.into(), value);
            let err = config(&h).unwrap_err();
            assert!(err.mentions(path), "{key}: {err}");
        }
        let mut h = host();
        h.element
            .setting_defaults
            .insert("fallbackICEServerAllowed".into(), json!(true));
        let err = config(&h).unwrap_err();
        assert!(
            err.mentions("element.setting_defaults.fallbackICEServerAllowed"),
            "{err}"
        );
    }
}
