//! Derives Element Web's configuration from the host description.
//!
//! The derived `config.json` points Element at this server only and turns
//! off everything in a stock Element Web that would contact a third party
//! (see [`crate::components::element`] for each default and why).
//! `element.setting_defaults` is merged into `setting_defaults`, then
//! `element.settings` is merged last (objects key by key, anything else
//! replaced); the result must still keep every invariant.

use crate::components::element::{
    AllowedHosts, DefaultServerConfig, ElementConfig, HomeserverRef, JsonMap, RoomDirectory,
};
use crate::error::ValidationErrors;
use crate::host::{ElementTheme, HostDescription};
use serde_json::{json, Value};

/// Where the welcome page is served, relative to Element (the rendered
/// `element/welcome.html`, served by the proxy in place of Element's own).
pub const WELCOME_URL: &str = "welcome.html";

/// Where the logo (`element.branding.logo_file`) is served, without its
/// extension.
pub const LOGO_PATH: &str = "branding/logo";

/// The logo's URL path relative to Element, e.g. `branding/logo.svg`.
pub fn logo_url(host: &HostDescription) -> Option<String> {
    let file = host.element.branding.logo_file.as_ref()?;
    let ext = file.extension()?.to_str()?.to_ascii_lowercase();
    Some(format!("{LOGO_PATH}.{ext}"))
}

/// The `setting_defaults` this product sets, before
/// `element.setting_defaults` and `element.settings`.
fn derived_setting_defaults(host: &HostDescription) -> JsonMap {
    let mut d = JsonMap::new();
    let mut set = |k: &str, v: bool| {
        d.insert(k.to_owned(), Value::Bool(v));
    };
    // Never offer turn.matrix.org when calls need a relay: coturn is here.
    set("fallbackICEServerAllowed", false);
    // Widgets carry Jitsi conferences (meet.element.io unless a Jitsi server
    // is configured), stickers and integration managers.
    if host.element.jitsi_domain.is_none() {
        set("UIFeature.widgets", false);
    }
    // Element has no map server of its own: without one, location sharing
    // is offered and then fails.
    if host.element.map_style_url.is_none() {
        set("UIFeature.locationSharing", false);
    }
    // No identity server, and no e-mail or phone identifiers people manage
    // themselves: with mail on, an account's address comes from its single
    // sign-on provider or the admin (`ospw-matrix user add --email`), and
    // people sign in with their Matrix ID or single sign-on, never an
    // address (`disable_3pid_login` stays true).
    set("UIFeature.identityServer", false);
    set("UIFeature.thirdPartyId", false);
    // No public registration. Password resets by mail only when mail is
    // set up for them and passwords sign in at all.
    set("UIFeature.registration", false);
    set(
        "UIFeature.passwordReset",
        host.sso.password_login && host.email.as_ref().is_some_and(|e| e.password_reset),
    );
    // Feedback goes to Element's rageshake server or analytics: neither exists here.
    set("UIFeature.feedback", false);
    // "Share to" buttons for Facebook, Twitter, LinkedIn, Reddit.
    set("UIFeature.shareSocial", false);
    // The homeserver generates previews only when synapse.url_previews is on.
    set("UIFeature.urlPreviews", host.synapse.url_previews);
    // Element reads "Allow peer-to-peer for 1:1 calls" at the config level
    // under its inverted name (SettingsStore's invertedSettingName).
    if host.element.force_turn {
        set("webRtcForceTURN", true);
    }
    d
}

/// The configuration derived from the typed host-description fields
/// (without `element.setting_defaults` and `element.settings`).
fn derive(host: &HostDescription) -> ElementConfig {
    let e = &host.element;
    let setting_defaults = derived_setting_defaults(host);
    let element_url = host.element_url();
    let mut extra = JsonMap::new();
    let mut put = |k: &str, v: Value| {
        extra.insert(k.to_owned(), v);
    };
    // Links to rooms and messages point at this Element, not at matrix.to
    // (Element's default), which would learn every room id shared.
    put("permalink_prefix", Value::String(element_url.clone()));
    // Element's defaults send people to element.io for help.
    let help = e
        .branding
        .help_url
        .clone()
        .unwrap_or_else(|| format!("{element_url}/"));
    put("help_url", Value::String(help.clone()));
    put("help_encryption_url", Value::String(help));
    // The welcome page: a self-contained page rendered here.
    put("embedded_pages", json!({ "welcome_url": WELCOME_URL }));
    let mut branding = JsonMap::new();
    branding.insert(
        "auth_footer_links".into(),
        Value::Array(
            e.branding
                .footer_links
                .iter()
                .map(|l| json!({"text": l.text, "url": l.url}))
                .collect(),
        ),
    );
    if let Some(logo) = logo_url(host) {
        branding.insert("auth_header_logo_url".into(), Value::String(logo));
    }
    put("branding", Value::Object(branding));
    // Element's defaults point every download link at element.io.
    let desktop = e.branding.desktop_download_url.as_ref();
    let download = desktop
        .cloned()
        .unwrap_or_else(|| format!("{element_url}/"));
    put(
        "desktop_builds",
        json!({
            "available": desktop.is_some(),
            "logo": "vector-icons/1024.png",
            "url": download,
            "url_macos": download,
            "url_win64": download,
            "url_win64arm": download,
            "url_linux": download,
        }),
    );
    // null: "not available" (absent would mean Element's app-store links).
    put(
        "mobile_builds",
        json!({"ios": null, "android": null, "fdroid": null}),
    );
    if !host.synapse.presence {
        put(
            "enable_presence_by_hs_url",
            json!({ host.homeserver_url(): false }),
        );
    }
    ElementConfig {
        default_server_config: Some(DefaultServerConfig {
            homeserver: HomeserverRef {
                base_url: host.homeserver_url(),
                server_name: Some(host.server_name.clone()),
                extra: JsonMap::new(),
            },
            extra: JsonMap::new(),
        }),
        brand: Some(e.brand.clone()),
        default_theme: Some(
            match e.default_theme {
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
        jitsi: e
            .jitsi_domain
            .as_ref()
            .map(|d| json!({ "preferred_domain": d })),
        map_style_url: e.map_style_url.as_ref().map(|u| Value::String(u.clone())),
        extra,
        ..ElementConfig::default()
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
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

/// The value at `segments` (object keys) in `value`.
fn lookup<'a>(value: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(value, |v, key| v.as_object().and_then(|m| m.get(*key)))
}

/// `config.json` keys that typed host-description fields decide: `settings`
/// (or `setting_defaults`) may restate them but not change them.
const TYPED_KEYS: [(&[&str], &str); 14] = [
    (&["brand"], "element.brand"),
    (&["default_theme"], "element.default_theme"),
    (&["permalink_prefix"], "element_host"),
    (&["map_style_url"], "element.map_style_url"),
    (&["jitsi"], "element.jitsi_domain"),
    (
        &["embedded_pages", "welcome_url"],
        "element.branding.welcome_text",
    ),
    (
        &["branding", "auth_header_logo_url"],
        "element.branding.logo_file",
    ),
    (
        &["branding", "auth_footer_links"],
        "element.branding.footer_links",
    ),
    (&["help_url"], "element.branding.help_url"),
    (&["help_encryption_url"], "element.branding.help_url"),
    (&["desktop_builds"], "element.branding.desktop_download_url"),
    (
        &["setting_defaults", "webRtcForceTURN"],
        "element.force_turn",
    ),
    (
        &["setting_defaults", "UIFeature.locationSharing"],
        "element.map_style_url",
    ),
    (
        &["setting_defaults", "UIFeature.urlPreviews"],
        "synapse.url_previews",
    ),
];

/// The typed field's value as the user wrote it, for messages.
fn typed_value(host: &HostDescription, field: &str) -> String {
    let e = &host.element;
    let opt = |v: &Option<String>| {
        v.as_ref()
            .map_or("not set".to_owned(), |s| format!("{s:?}"))
    };
    match field {
        "element.brand" => format!("{:?}", e.brand),
        "element.default_theme" => serde_json::to_string(&e.default_theme).unwrap_or_default(),
        "element_host" => format!("{:?}", host.element_host),
        "element.map_style_url" => opt(&e.map_style_url),
        "element.jitsi_domain" => opt(&e.jitsi_domain),
        "element.branding.welcome_text" => "the rendered welcome page".to_owned(),
        "element.branding.logo_file" => e
            .branding
            .logo_file
            .as_ref()
            .map_or("not set".to_owned(), |p| {
                format!("{:?}", p.display().to_string())
            }),
        "element.branding.footer_links" => format!("{} link(s)", e.branding.footer_links.len()),
        "element.branding.help_url" => opt(&e.branding.help_url),
        "element.branding.desktop_download_url" => opt(&e.branding.desktop_download_url),
        "element.force_turn" => e.force_turn.to_string(),
        "synapse.url_previews" => host.synapse.url_previews.to_string(),
        "synapse.presence" => host.synapse.presence.to_string(),
        _ => String::new(),
    }
}

/// Class 8: a value in `element.settings` or `element.setting_defaults`
/// that contradicts a typed field is refused, naming both.
fn check_typed_keys(
    host: &HostDescription,
    settings: &Value,
    derived: &Value,
    merged: &Value,
    errs: &mut ValidationErrors,
) {
    let typed_defaults = Value::Object(
        host.element
            .setting_defaults
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let contradiction = |errs: &mut ValidationErrors, at: String, written: &Value, field: &str| {
        errs.push(
            at,
            format!(
                "{written} contradicts {field} ({}): {field} decides this; set it there instead",
                typed_value(host, field)
            ),
        );
    };
    for (segments, field) in TYPED_KEYS {
        let derived_value = lookup(derived, segments);
        if let Some(written) = lookup(settings, segments) {
            if lookup(merged, segments) != derived_value {
                contradiction(
                    errs,
                    format!("element.settings.{}", segments.join(".")),
                    written,
                    field,
                );
            }
        }
        if let ["setting_defaults", key] = segments {
            if let Some(written) = typed_defaults.get(*key) {
                if Some(written) != derived_value {
                    contradiction(
                        errs,
                        format!("element.setting_defaults.{key}"),
                        written,
                        field,
                    );
                }
            }
        }
    }
    // Previews the homeserver does not make.
    for (source, prefix) in [
        (
            lookup(settings, &["setting_defaults"]),
            "element.settings.setting_defaults",
        ),
        (Some(&typed_defaults), "element.setting_defaults"),
    ] {
        let on = source.and_then(|d| d.get("urlPreviewsEnabled")) == Some(&Value::Bool(true));
        if on && !host.synapse.url_previews {
            contradiction(
                errs,
                format!("{prefix}.urlPreviewsEnabled"),
                &Value::Bool(true),
                "synapse.url_previews",
            );
        }
    }
    // Presence shown for this homeserver must match whether it tracks it.
    if let Some(Value::Object(map)) = lookup(settings, &["enable_presence_by_hs_url"]) {
        for (url, shown) in map {
            let ours = crate::components::element::urls::target(url)
                == crate::components::element::urls::UrlTarget::Host(host.matrix_host.clone());
            if ours && shown != &Value::Bool(host.synapse.presence) {
                contradiction(
                    errs,
                    format!("element.settings.enable_presence_by_hs_url.{url}"),
                    shown,
                    "synapse.presence",
                );
            }
        }
    }
}

/// The hosts Element may contact or send people to: this server's, and
/// those the operator named in typed fields.
fn allowed_hosts(host: &HostDescription) -> AllowedHosts {
    let e = &host.element;
    let mut hosts = vec![
        host.matrix_host.clone(),
        host.element_host.clone(),
        host.base_domain.clone(),
        host.server_name.clone(),
    ];
    let typed_urls = [
        e.map_style_url.as_deref(),
        e.branding.help_url.as_deref(),
        e.branding.desktop_download_url.as_deref(),
    ];
    let links = e.branding.footer_links.iter().map(|l| Some(l.url.as_str()));
    for url in typed_urls.into_iter().chain(links).flatten() {
        if let crate::components::element::urls::UrlTarget::Host(h) =
            crate::components::element::urls::target(url)
        {
            hosts.push(h);
        }
    }
    hosts.extend(e.jitsi_domain.iter().map(|d| d.to_ascii_lowercase()));
    hosts.sort();
    hosts.dedup();
    AllowedHosts { hosts }
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
    let derived = derive(host).to_value();
    let mut value = derived.clone();
    if let Some(Value::Object(defaults)) = value.get_mut("setting_defaults") {
        for (k, v) in &host.element.setting_defaults {
            defaults.insert(k.clone(), v.clone());
        }
    }
    let settings = Value::Object(
        host.element
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    merge(&mut value, &settings);
    let mut errs = ValidationErrors::new();
    check_typed_keys(host, &settings, &derived, &value, &mut errs);
    for v in crate::components::element::keys::type_errors(&value).errors {
        errs.push(field_path(host, &v.path), v.message);
    }
    let conf: ElementConfig = match serde_path_to_error::deserialize(value) {
        Ok(conf) => conf,
        Err(e) => {
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
    let allowed = allowed_hosts(host);
    for v in conf.privacy_violations_allowing(&allowed).errors {
        let path = field_path(host, &v.path);
        // Already refused above, naming the typed field.
        if errs.mentions(&path) {
            continue;
        }
        errs.push(path, format!("breaks a privacy invariant: {}", v.message));
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

/// The welcome page: a self-contained HTML page (no script, no remote
/// asset) with the brand, the logo when one is configured, the welcome
/// text and a sign-in link. Element fetches it and shows it inline.
pub fn welcome_page(host: &HostDescription) -> String {
    let e = &host.element;
    let brand = html_escape(&e.brand);
    let mut body = String::new();
    if let Some(logo) = logo_url(host) {
        body.push_str(&format!(
            "<img class=\"ospw_welcome_logo\" src=\"{}\" alt=\"\">\n",
            html_escape(&logo)
        ));
    }
    body.push_str(&format!("<h1>{brand}</h1>\n"));
    let text = e.branding.welcome_text.clone().unwrap_or_else(|| {
        format!(
            "Welcome to {}. Sign in with the account your administrator created for you.",
            e.brand
        )
    });
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let lines: Vec<String> = paragraph.lines().map(html_escape).collect();
        body.push_str(&format!("<p>{}</p>\n", lines.join("<br>\n")));
    }
    body.push_str("<p><a class=\"ospw_welcome_signin\" href=\"#/login\">Sign in</a></p>\n");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{brand}</title>\n\
         <style>\n\
         .ospw_welcome {{ max-width: 36em; margin: 0 auto; padding: 2em 1em; text-align: center; }}\n\
         .ospw_welcome_logo {{ max-width: 12em; max-height: 6em; }}\n\
         .ospw_welcome_signin {{ display: inline-block; margin-top: 1em; padding: 0.6em 2.4em; \
         border-radius: 0.5em; background: #0dbd8b; color: #fff; text-decoration: none; font-weight: 600; }}\n\
         </style>\n</head>\n<body>\n<div class=\"ospw_welcome\">\n{body}</div>\n</body>\n</html>\n"
    )
}

/// Escapes text for HTML element content and attribute values, and for
/// what Element does to the page before showing it: its `EmbeddedPage`
/// replaces every `$brand`, `$riot:ssoUrl`, `$riot:casUrl` and `[matrix]`
/// in the fetched text with a value inserted as raw HTML (so a brand
/// `<img src=//elsewhere/...>` would load from another site), and
/// translates `_t("...")`. `$`, `[` and `(` are written as character
/// references, so none of those sequences appears in the page text while
/// the browser still shows the same characters.
fn html_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '$' => out.push_str("&#36;"),
            '[' => out.push_str("&#91;"),
            '(' => out.push_str("&#40;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
        let from = |map: &crate::host::FreeformSettings| {
            map.keys()
                .find(|k| {
                    key == k.as_str()
                        || key.starts_with(&format!("{k}."))
                        || key.starts_with(&format!("{k}["))
                })
                .is_some()
        };
        let in_settings = host
            .element
            .settings
            .get("setting_defaults")
            .and_then(Value::as_object)
            .is_some_and(|s| {
                s.keys().any(|k| {
                    key == k.as_str()
                        || key.starts_with(&format!("{k}."))
                        || key.starts_with(&format!("{k}["))
                })
            });
        if !in_settings && from(&host.element.setting_defaults) {
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
    fn mail_and_password_settings_show_the_matching_ui() {
        let v = config(&host()).unwrap().to_value();
        assert_eq!(
            v["setting_defaults"]["UIFeature.passwordReset"],
            json!(false)
        );
        assert_eq!(
            v["setting_defaults"]["UIFeature.thirdPartyId"],
            json!(false)
        );
        let mut h = host();
        h.email = Some(
            serde_yaml::from_str(
                "{smtp_host: mail.example.org, from: noreply@example.org, password_reset: true}",
            )
            .unwrap(),
        );
        let v = config(&h).unwrap().to_value();
        assert_eq!(
            v["setting_defaults"]["UIFeature.passwordReset"],
            json!(true)
        );
        assert_eq!(
            v["setting_defaults"]["UIFeature.thirdPartyId"],
            json!(false)
        );
        assert_eq!(v["disable_3pid_login"], json!(true));
        h.sso.password_login = false;
        let v = config(&h).unwrap().to_value();
        assert_eq!(
            v["setting_defaults"]["UIFeature.passwordReset"],
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
        // Restating a typed field's value is fine.
        h.element
            .settings
            .insert("brand".into(), json!("Example Chat"));
        h.element.jitsi_domain = Some("meet.example.org".into());
        h.element.map_style_url = Some("https://tiles.example.org/style.json".into());
        let conf = config(&h).unwrap();
        let v = conf.to_value();
        assert_eq!(v["embedded_pages"]["login_for_welcome"], json!(true));
        assert_eq!(v["embedded_pages"]["welcome_url"], "welcome.html");
        assert_eq!(v["brand"], "Example Chat");
        // Merged key by key: the derived defaults stay.
        assert_eq!(v["setting_defaults"]["breadcrumbs"], json!(true));
        assert_eq!(
            v["setting_defaults"]["fallbackICEServerAllowed"],
            json!(false)
        );
        // A configured Jitsi server leaves widgets on, a map server location sharing.
        assert!(v["setting_defaults"].get("UIFeature.widgets").is_none());
        assert!(v["setting_defaults"]
            .get("UIFeature.locationSharing")
            .is_none());
        assert_eq!(v["jitsi"]["preferred_domain"], "meet.example.org");
        assert_eq!(v["map_style_url"], "https://tiles.example.org/style.json");
    }

    #[test]
    fn element_as_people_see_it() {
        let v = config(&host()).unwrap().to_value();
        // No third-party page, link or service by default.
        assert_eq!(
            v["setting_defaults"]["UIFeature.locationSharing"],
            json!(false)
        );
        assert!(v["setting_defaults"].get("webRtcForceTURN").is_none());
        assert_eq!(v["branding"]["auth_footer_links"], json!([]));
        assert_eq!(v["help_url"], "https://chat.example.org/");
        assert_eq!(v["desktop_builds"]["available"], json!(false));
        assert_eq!(
            v["mobile_builds"],
            json!({"ios": null, "android": null, "fdroid": null})
        );
        for host in ["element.io", "matrix.org", "vector.im", "github.com"] {
            assert!(!v.to_string().contains(host), "{host}");
        }
        // The typed choices.
        let mut h = host();
        h.element.force_turn = true;
        h.synapse.presence = false;
        h.element.branding.help_url = Some("https://wiki.example.org/chat".into());
        h.element.branding.desktop_download_url = Some("https://example.org/apps".into());
        h.element.branding.footer_links = vec![crate::host::ElementLink {
            text: "Rules".into(),
            url: "https://example.org/rules".into(),
        }];
        h.element.branding.logo_file = Some("/etc/chat/logo.svg".into());
        let v = config(&h).unwrap().to_value();
        assert_eq!(v["setting_defaults"]["webRtcForceTURN"], json!(true));
        assert_eq!(v["help_url"], "https://wiki.example.org/chat");
        assert_eq!(v["help_encryption_url"], "https://wiki.example.org/chat");
        assert_eq!(v["desktop_builds"]["available"], json!(true));
        assert_eq!(v["desktop_builds"]["url_win64"], "https://example.org/apps");
        assert_eq!(
            v["branding"]["auth_footer_links"],
            json!([{"text": "Rules", "url": "https://example.org/rules"}])
        );
        assert_eq!(v["branding"]["auth_header_logo_url"], "branding/logo.svg");
        assert_eq!(
            v["enable_presence_by_hs_url"],
            json!({"https://matrix.example.org": false})
        );
    }

    #[test]
    fn welcome_page_is_self_contained() {
        let mut h = host();
        h.element.brand = "Café <Chat> & \"Friends\"".into();
        h.element.branding.welcome_text =
            Some("Line one\nline <b>two</b>\n\nSecond 'paragraph'".into());
        h.element.branding.logo_file = Some("/etc/chat/logo.png".into());
        let page = welcome_page(&h);
        assert!(
            page.contains("<h1>Café &lt;Chat&gt; &amp; &quot;Friends&quot;</h1>"),
            "{page}"
        );
        assert!(
            page.contains("<p>Line one<br>\nline &lt;b&gt;two&lt;/b&gt;</p>"),
            "{page}"
        );
        assert!(page.contains("<p>Second &#39;paragraph&#39;</p>"), "{page}");
        assert!(page.contains("src=\"branding/logo.png\""), "{page}");
        assert!(page.contains("href=\"#/login\""), "{page}");
        // Nothing loaded from anywhere else, no script.
        for needle in ["http:", "https:", "//", "<script", "@import", "url("] {
            assert!(!page.contains(needle), "{needle} in {page}");
        }
        // Element replaces these in the page with raw HTML (`$brand` with
        // the brand) or translations: user text can never form them.
        h.element.brand = "<img src=//evil.example/p.png>".into();
        h.element.branding.welcome_text =
            Some("$brand $riot:ssoUrl [matrix] _t('x') _t(\"y\") $$brand [[matrix]]".into());
        let page = welcome_page(&h);
        for needle in ["$brand", "$riot:", "[matrix]", "_t(", "<img src=//"] {
            assert!(!page.contains(needle), "{needle} in {page}");
        }
        assert!(
            page.contains("&#36;brand &#36;riot:ssoUrl &#91;matrix] _t&#40;"),
            "{page}"
        );
    }

    #[test]
    fn settings_contradicting_typed_fields_name_both() {
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (
                "brand",
                json!("Other"),
                "element.settings.brand",
                "element.brand",
            ),
            (
                "default_theme",
                json!("light"),
                "element.settings.default_theme",
                "element.default_theme",
            ),
            (
                "permalink_prefix",
                json!("https://matrix.to"),
                "element.settings.permalink_prefix",
                "element_host",
            ),
            (
                "jitsi",
                json!({"preferred_domain": "meet.example.org"}),
                "element.settings.jitsi",
                "element.jitsi_domain",
            ),
            (
                "map_style_url",
                json!("https://tiles.example.org/style.json"),
                "element.settings.map_style_url",
                "element.map_style_url",
            ),
            (
                "help_url",
                json!("https://chat.example.org/help"),
                "element.settings.help_url",
                "element.branding.help_url",
            ),
            (
                "desktop_builds",
                json!({"available": true}),
                "element.settings.desktop_builds",
                "element.branding.desktop_download_url",
            ),
            (
                "branding",
                json!({"auth_footer_links": [{"text": "x", "url": "https://chat.example.org/"}]}),
                "element.settings.branding.auth_footer_links",
                "element.branding.footer_links",
            ),
            (
                "embedded_pages",
                json!({"welcome_url": "other.html"}),
                "element.settings.embedded_pages.welcome_url",
                "element.branding.welcome_text",
            ),
            (
                "setting_defaults",
                json!({"webRtcForceTURN": true}),
                "element.settings.setting_defaults.webRtcForceTURN",
                "element.force_turn",
            ),
            (
                "setting_defaults",
                json!({"UIFeature.locationSharing": true}),
                "element.settings.setting_defaults.UIFeature.locationSharing",
                "element.map_style_url",
            ),
            (
                "setting_defaults",
                json!({"UIFeature.urlPreviews": true}),
                "element.settings.setting_defaults.UIFeature.urlPreviews",
                "synapse.url_previews",
            ),
            (
                "setting_defaults",
                json!({"urlPreviewsEnabled": true}),
                "element.settings.setting_defaults.urlPreviewsEnabled",
                "synapse.url_previews",
            ),
            (
                "enable_presence_by_hs_url",
                json!({"https://matrix.example.org": false}),
                "element.settings.enable_presence_by_hs_url",
                "synapse.presence",
            ),
        ];
        for (key, value, path, typed) in cases {
            let mut h = host();
            h.element.settings.insert(key.into(), value);
            let err = config(&h).unwrap_err();
            let e = err
                .errors
                .iter()
                .find(|e| e.path.starts_with(path))
                .unwrap_or_else(|| panic!("{key}: {err}"));
            assert!(e.message.contains(typed), "{key}: {e}");
        }
        // The same through element.setting_defaults.
        let mut h = host();
        h.element.force_turn = true;
        h.element
            .setting_defaults
            .insert("webRtcForceTURN".into(), json!(false));
        let err = config(&h).unwrap_err();
        assert!(
            err.mentions("element.setting_defaults.webRtcForceTURN"),
            "{err}"
        );
        assert!(
            err.errors[0].message.contains("element.force_turn (true)"),
            "{err}"
        );
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
