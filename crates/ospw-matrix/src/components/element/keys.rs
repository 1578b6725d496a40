//! The keys Element Web reads from `config.json` and the type it expects for
//! each, as its `IConfigOptions` interface (`src/IConfigOptions.ts`) and its
//! defaults (`SdkConfig.ts`) define them for Element Web 1.11/1.12, plus the
//! legacy keys it still honours.
//!
//! Element reads most keys through `SnakedObject`, which falls back to the
//! camelCase spelling (`mapStyleUrl` for `map_style_url`, its
//! `snakeToCamel`) when the snake_case key is absent, at the top level and
//! inside the objects below. So a camelCase spelling of a known key is
//! another way to set it, and is refused.

use serde_json::Value;

use crate::error::ValidationErrors;

/// The JSON type Element expects at a key.
#[derive(Debug)]
pub enum Ty {
    /// Anything (checked elsewhere, or free-form).
    Any,
    /// A string.
    Str,
    /// A string or `null`.
    StrOrNull,
    /// A string or a list of strings.
    StrOrStrs,
    /// A boolean.
    Bool,
    /// A number.
    Num,
    /// A list of strings.
    Strs,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An object with these known keys (others are kept as they are).
    Obj(&'static [(&'static str, Ty)]),
    /// A list of values of one type.
    List(&'static Ty),
    /// An object whose values all have one type.
    Map(&'static Ty),
}

const LINK: Ty = Ty::Obj(&[("text", Ty::Str), ("url", Ty::Str)]);

/// Every top-level key of `IConfigOptions`, with its type.
pub const KEYS: &[(&str, Ty)] = &[
    ("default_server_config", Ty::Any),
    ("default_server_name", Ty::Str),
    ("default_hs_url", Ty::Str),
    ("default_is_url", Ty::Str),
    ("validated_server_config", Ty::Any),
    ("fallback_hs_url", Ty::Str),
    ("disable_custom_urls", Ty::Bool),
    ("disable_guests", Ty::Bool),
    ("disable_login_language_selector", Ty::Bool),
    ("disable_3pid_login", Ty::Bool),
    ("brand", Ty::Str),
    (
        "branding",
        Ty::Obj(&[
            ("welcome_background_url", Ty::StrOrStrs),
            ("auth_header_logo_url", Ty::Str),
            ("auth_footer_links", Ty::List(&LINK)),
        ]),
    ),
    ("force_verification", Ty::Bool),
    ("map_style_url", Ty::Str),
    (
        "embedded_pages",
        Ty::Obj(&[
            ("welcome_url", Ty::Str),
            ("home_url", Ty::Str),
            ("login_for_welcome", Ty::Bool),
        ]),
    ),
    ("permalink_prefix", Ty::Str),
    ("update_base_url", Ty::Str),
    (
        "desktop_builds",
        Ty::Obj(&[
            ("available", Ty::Bool),
            ("logo", Ty::Str),
            ("url", Ty::Str),
            ("url_macos", Ty::Str),
            ("url_win64", Ty::Str),
            ("url_win64arm", Ty::Str),
            ("url_linux", Ty::Str),
        ]),
    ),
    (
        "mobile_builds",
        Ty::Obj(&[
            ("ios", Ty::StrOrNull),
            ("android", Ty::StrOrNull),
            ("fdroid", Ty::StrOrNull),
        ]),
    ),
    ("mobile_guide_toast", Ty::Bool),
    (
        "mobile_guide_app_variant",
        Ty::OneOf(&["element", "element-classic", "element-pro"]),
    ),
    ("default_theme", Ty::Str),
    ("default_country_code", Ty::Str),
    ("default_federate", Ty::Bool),
    ("default_device_display_name", Ty::Str),
    ("setting_defaults", Ty::Map(&Ty::Any)),
    ("integrations_ui_url", Ty::StrOrNull),
    ("integrations_rest_url", Ty::StrOrNull),
    ("integrations_widgets_urls", Ty::Strs),
    ("default_widget_container_height", Ty::Num),
    ("show_labs_settings", Ty::Bool),
    ("features", Ty::Map(&Ty::Bool)),
    ("bug_report_endpoint_url", Ty::StrOrNull),
    ("uisi_autorageshake_app", Ty::Str),
    (
        "sentry",
        Ty::Obj(&[("dsn", Ty::Str), ("environment", Ty::Str)]),
    ),
    ("widget_build_url", Ty::Str),
    ("widget_build_url_ignore_dm", Ty::Bool),
    ("audio_stream_url", Ty::Str),
    ("jitsi", Ty::Obj(&[("preferred_domain", Ty::Str)])),
    (
        "jitsi_widget",
        Ty::Obj(&[("skip_built_in_welcome_screen", Ty::Bool)]),
    ),
    ("voip", Ty::Obj(&[("obey_asserted_identity", Ty::Bool)])),
    (
        "element_call",
        Ty::Obj(&[
            ("url", Ty::Str),
            ("guest_spa_url", Ty::Str),
            ("use_exclusively", Ty::Bool),
            ("participant_limit", Ty::Num),
            ("brand", Ty::Str),
        ]),
    ),
    ("logout_redirect_url", Ty::Str),
    ("sso_immediate_redirect", Ty::Bool),
    (
        "sso_redirect_options",
        Ty::Obj(&[
            ("immediate", Ty::Bool),
            ("on_welcome_page", Ty::Bool),
            ("on_login_page", Ty::Bool),
        ]),
    ),
    ("custom_translations_url", Ty::Str),
    ("report_event", Ty::Obj(&[("admin_message_md", Ty::Str)])),
    ("room_directory", Ty::Obj(&[("servers", Ty::Strs)])),
    (
        "posthog",
        Ty::Obj(&[("project_api_key", Ty::Str), ("api_host", Ty::Str)]),
    ),
    ("analytics_owner", Ty::Str),
    ("privacy_policy_url", Ty::StrOrNull),
    ("enable_presence_by_hs_url", Ty::Map(&Ty::Bool)),
    ("terms_and_conditions_links", Ty::List(&LINK)),
    ("help_url", Ty::Str),
    ("help_encryption_url", Ty::Str),
    ("latex_maths_delims", Ty::Any),
    ("sync_timeline_limit", Ty::Num),
    ("dangerously_allow_unsafe_and_insecure_passwords", Ty::Bool),
    (
        "user_notice",
        Ty::Obj(&[
            ("title", Ty::Str),
            ("description", Ty::Str),
            ("show_once", Ty::Bool),
        ]),
    ),
    (
        "feedback",
        Ty::Obj(&[("existing_issues_url", Ty::Str), ("new_issue_url", Ty::Str)]),
    ),
    (
        "oidc_static_clients",
        Ty::Map(&Ty::Obj(&[("client_id", Ty::Str)])),
    ),
    (
        "oidc_metadata",
        Ty::Obj(&[
            ("client_uri", Ty::Str),
            ("logo_uri", Ty::Str),
            ("tos_uri", Ty::Str),
            ("policy_uri", Ty::Str),
            ("contacts", Ty::Strs),
        ]),
    ),
    ("modules", Ty::Strs),
    // Legacy keys Element still reads.
    ("piwik", Ty::Any),
    ("welcome_user_id", Ty::Str),
];

/// Keys (dotted, `[]` for list items) whose values are text shown to
/// people, never URLs.
pub const TEXT_KEYS: [&str; 13] = [
    "brand",
    "default_theme",
    "default_country_code",
    "default_device_display_name",
    "uisi_autorageshake_app",
    "analytics_owner",
    "report_event.admin_message_md",
    "user_notice.title",
    "user_notice.description",
    "element_call.brand",
    "branding.auth_footer_links[].text",
    "terms_and_conditions_links[].text",
    "latex_maths_delims",
];

/// `snake_case` to `camelCase` exactly as Element's `snakeToCamel` does
/// (`s.replace(/._./g, v => v[0] + v[2].toUpperCase())`): matches do not
/// overlap, so `a_b_c` becomes `aB_c`.
pub fn snake_to_camel(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '_' {
            out.push(chars[i]);
            out.extend(chars[i + 2].to_uppercase());
            i += 3;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn type_name(ty: &Ty) -> String {
    match ty {
        Ty::Any => "any value".into(),
        Ty::Str => "a string".into(),
        Ty::StrOrNull => "a string or null".into(),
        Ty::StrOrStrs => "a string or a list of strings".into(),
        Ty::Bool => "true or false".into(),
        Ty::Num => "a number".into(),
        Ty::Strs => "a list of strings".into(),
        Ty::OneOf(v) => format!("one of {}", v.join(", ")),
        Ty::Obj(_) | Ty::Map(_) => "an object".into(),
        Ty::List(_) => "a list".into(),
    }
}

fn check_type(value: &Value, ty: &Ty, path: &str, errs: &mut ValidationErrors) {
    let ok = match (ty, value) {
        (Ty::Any, _) => true,
        (Ty::Str, Value::String(_)) => true,
        (Ty::StrOrNull, Value::String(_) | Value::Null) => true,
        (Ty::StrOrStrs, Value::String(_)) => true,
        (Ty::StrOrStrs | Ty::Strs, Value::Array(items)) => items.iter().all(Value::is_string),
        (Ty::Bool, Value::Bool(_)) => true,
        (Ty::Num, Value::Number(_)) => true,
        (Ty::OneOf(allowed), Value::String(s)) => allowed.contains(&s.as_str()),
        (Ty::Obj(fields), Value::Object(map)) => {
            for (key, sub) in fields.iter() {
                if let Some(v) = map.get(*key) {
                    check_type(v, sub, &format!("{path}.{key}"), errs);
                }
            }
            true
        }
        (Ty::Map(sub), Value::Object(map)) => {
            for (key, v) in map {
                check_type(v, sub, &format!("{path}.{key}"), errs);
            }
            true
        }
        (Ty::List(sub), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                check_type(v, sub, &format!("{path}[{i}]"), errs);
            }
            true
        }
        _ => false,
    };
    if !ok {
        // The value's kind, not the value: it may be a secret or huge.
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        };
        errs.push(
            path,
            format!(
                "is {kind}: Element Web expects {} here (IConfigOptions)",
                type_name(ty)
            ),
        );
    }
}

/// Every value of a known key whose JSON type differs from the one Element
/// expects (a wrong type makes Element misbehave or fail to start).
pub fn type_errors(config: &Value) -> ValidationErrors {
    let mut errs = ValidationErrors::new();
    if let Value::Object(map) = config {
        for (key, ty) in KEYS {
            if let Some(v) = map.get(*key) {
                check_type(v, ty, key, &mut errs);
            }
        }
    }
    errs
}

/// Every camelCase spelling of a known key (top level, and inside the
/// known objects), which Element reads when the snake_case key is absent.
pub fn camel_case_spellings(config: &Value) -> ValidationErrors {
    let mut errs = ValidationErrors::new();
    let Value::Object(map) = config else {
        return errs;
    };
    for (key, ty) in KEYS {
        let alias = snake_to_camel(key);
        if alias != *key && map.contains_key(&alias) {
            errs.push(
                alias.clone(),
                format!("is the camelCase spelling of {key}, which Element also reads: use {key}"),
            );
        }
        if let (Ty::Obj(fields), Some(Value::Object(inner))) = (ty, map.get(*key)) {
            for (sub, _) in fields.iter() {
                let alias = snake_to_camel(sub);
                if alias != *sub && inner.contains_key(&alias) {
                    errs.push(
                        format!("{key}.{alias}"),
                        format!(
                            "is the camelCase spelling of {key}.{sub}, which Element also reads: use {sub}"
                        ),
                    );
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn camel_case_as_element_spells_it() {
        assert_eq!(snake_to_camel("disable_3pid_login"), "disable3pidLogin");
        assert_eq!(
            snake_to_camel("bug_report_endpoint_url"),
            "bugReportEndpointUrl"
        );
        assert_eq!(snake_to_camel("map_style_url"), "mapStyleUrl");
        assert_eq!(snake_to_camel("jitsi"), "jitsi");
        // Element's regex does not overlap its matches.
        assert_eq!(snake_to_camel("a_b_c"), "aB_c");
        assert_eq!(snake_to_camel("url_win64arm"), "urlWin64arm");
    }

    #[test]
    fn types() {
        let good = json!({
            "brand": "x",
            "branding": {"auth_footer_links": [{"text": "a", "url": "b"}],
                         "welcome_background_url": ["a", "b"]},
            "mobile_builds": {"ios": null},
            "features": {"feature_x": true},
            "integrations_ui_url": null,
            "unknown": 3,
        });
        assert_eq!(type_errors(&good), ValidationErrors::new());
        let bad = json!({
            "brand": 1,
            "branding": {"auth_footer_links": [{"text": 1, "url": "b"}]},
            "features": {"feature_x": "yes"},
            "desktop_builds": "off",
            "mobile_guide_app_variant": "other",
        });
        let errs = type_errors(&bad);
        for path in [
            "brand",
            "branding.auth_footer_links[0].text",
            "features.feature_x",
            "desktop_builds",
            "mobile_guide_app_variant",
        ] {
            assert!(errs.errors.iter().any(|e| e.path == path), "{path}: {errs}");
        }
    }

    #[test]
    fn camel_spellings_found_nested() {
        let v = json!({"mapStyleUrl": "x", "branding": {"authHeaderLogoUrl": "y"},
                       "embeddedPages": {}, "brand": "z"});
        let paths: Vec<String> = camel_case_spellings(&v)
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            vec!["branding.authHeaderLogoUrl", "mapStyleUrl", "embeddedPages"]
        );
    }
}
