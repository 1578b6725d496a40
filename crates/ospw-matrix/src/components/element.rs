//! Element Web's `config.json`: a typed model of the keys this product sets
//! or checks, with every other key kept as it is, and the list of ways a
//! configuration breaks the privacy invariants.
//!
//! Element Web merges `config.json` over built-in defaults (`DEFAULTS` in
//! its `SdkConfig.ts`). Some of those defaults contact third parties, so
//! leaving a key out is not the same as turning it off:
//!
//! - `integrations_ui_url` / `integrations_rest_url` default to
//!   `scalar.vector.im` (the integration manager, which learns room and user
//!   ids): they must be an explicit `null`.
//! - `jitsi.preferred_domain` defaults to `meet.element.io`, used for
//!   conference calls in rooms of more than two members: unless the admin
//!   names a Jitsi server, widgets (and with them Jitsi conferences,
//!   stickers and integrations) are switched off with the
//!   `UIFeature.widgets` setting default.
//! - `fallbackICEServerAllowed`: when the homeserver hands out no TURN
//!   server, Element offers to use `turn.matrix.org`; the setting default is
//!   `false`, so calls only ever relay through this server's coturn.
//! - Analytics (`posthog`, `sentry`, legacy `piwik`) and bug reports
//!   (`bug_report_endpoint_url`) are off when absent; they must stay absent
//!   (or `null`/`false`).
//! - Element Call (`element_call.url`) and map tiles (`map_style_url`) have
//!   no third-party default: without them Element uses its embedded call app
//!   and shows no maps. They are only ever present when the admin set them
//!   through `element.settings`.
//!
//! Element also reads camelCase spellings of its keys (`bugReportEndpointUrl`
//! for `bug_report_endpoint_url`); those spellings of the checked keys are
//! refused so the checks cannot be bypassed.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, ValidationErrors};

/// A JSON object with its keys in order.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Reads a present field (even `null`) as `Some(..)`, so an explicit `null`
/// (`Some(None)`) differs from an absent key (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Element Web's `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ElementConfig {
    /// The homeserver Element uses (and, in `m.identity_server`, an
    /// identity server, which this product never sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server_config: Option<DefaultServerConfig>,
    /// The name shown in Element's title and texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The default theme (`light` or `dark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_theme: Option<String>,
    /// Whether the login screen hides the "change homeserver" option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_custom_urls: Option<bool>,
    /// Whether guest access is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_guests: Option<bool>,
    /// Whether login with e-mail addresses or phone numbers is off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "disable_3pid_login"
    )]
    pub disable_3pid_login: Option<bool>,
    /// Whether new rooms may federate by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_federate: Option<bool>,
    /// The integration manager's UI; `Some(None)` is an explicit `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub integrations_ui_url: Option<Option<String>>,
    /// The integration manager's API; `Some(None)` is an explicit `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub integrations_rest_url: Option<Option<String>>,
    /// URLs whose widgets get integration-manager tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrations_widgets_urls: Option<Vec<String>>,
    /// The servers the room directory offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_directory: Option<RoomDirectory>,
    /// Defaults for Element's settings (`UIFeature.*`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting_defaults: Option<JsonMap>,
    /// Whether the Labs settings tab is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_labs_settings: Option<bool>,
    /// Where bug reports (with logs) are sent; must stay absent or `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub bug_report_endpoint_url: Option<serde_json::Value>,
    /// PostHog analytics; must stay absent or `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub posthog: Option<serde_json::Value>,
    /// Sentry error reporting; must stay absent or `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub sentry: Option<serde_json::Value>,
    /// Legacy Matomo/Piwik analytics; must stay absent, `null` or `false`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub piwik: Option<serde_json::Value>,
    /// The privacy policy shown when asking for analytics consent; must stay
    /// absent or `null` (there are no analytics).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub privacy_policy_url: Option<serde_json::Value>,
    /// Jitsi conferences (`preferred_domain`); absent means
    /// `meet.element.io`. Present only when the admin configured it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub jitsi: Option<serde_json::Value>,
    /// Element Call (`url`); present only when the admin configured it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub element_call: Option<serde_json::Value>,
    /// The map tile style for location sharing; present only when the admin
    /// configured it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub map_style_url: Option<serde_json::Value>,
    /// Every other key, kept as it is.
    #[serde(flatten)]
    pub extra: JsonMap,
    /// Typed top-level keys that were read with an explicit `null` and whose
    /// field cannot tell `null` from absent. Their fields stay `None`; each
    /// is written back as `null` while its field is unset, so a round trip
    /// keeps the key.
    #[serde(skip)]
    pub null_keys: Vec<String>,
}

/// `default_server_config`: the same shape as `/.well-known/matrix/client`,
/// plus `server_name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DefaultServerConfig {
    /// The homeserver.
    #[serde(rename = "m.homeserver")]
    pub homeserver: HomeserverRef,
    /// Every other key (such as `m.identity_server`), kept as it is.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `m.homeserver` in `default_server_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HomeserverRef {
    /// The client API URL, e.g. `https://matrix.example.org`.
    pub base_url: String,
    /// The Matrix server name, e.g. `example.org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Every other key, kept as it is.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `room_directory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomDirectory {
    /// The servers whose public room lists are offered.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Every other key, kept as it is.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The `setting_defaults` entries that must hold a given value, and why.
pub const REQUIRED_SETTING_DEFAULTS: [(&str, bool, &str); 1] = [(
    "fallbackICEServerAllowed",
    false,
    "must be false: otherwise Element offers to relay calls through turn.matrix.org",
)];

/// Keys whose camelCase spelling Element also reads; the camelCase
/// spellings are refused so the checks cannot be bypassed.
const CHECKED_KEYS: [&str; 17] = [
    "default_server_config",
    "disable_custom_urls",
    "disable_guests",
    "disable_3pid_login",
    "default_federate",
    "integrations_ui_url",
    "integrations_rest_url",
    "integrations_widgets_urls",
    "room_directory",
    "setting_defaults",
    "bug_report_endpoint_url",
    "privacy_policy_url",
    "map_style_url",
    "element_call",
    "jitsi",
    "posthog",
    "sentry",
];

/// `snake_case` to `camelCase`, as Element's `SnakedObject` does.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

fn absent_or_null(v: &Option<serde_json::Value>) -> bool {
    matches!(v, None | Some(serde_json::Value::Null))
}

impl ElementConfig {
    /// Parses `config.json` text. Errors name the key at fault.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut conf: Self =
            serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Parse {
                source_name: "config.json".to_owned(),
                path: e.path().to_string(),
                message: e.into_inner().to_string(),
            })?;
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            conf.null_keys = conf.typed_null_keys(&value);
        }
        Ok(conf)
    }

    /// Builds the model from a JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut conf: Self = serde_json::from_value(value.clone())?;
        conf.null_keys = conf.typed_null_keys(&value);
        Ok(conf)
    }

    /// The top-level keys of `value` read as `null` that this model did
    /// not keep (in `extra` or as an explicit `null`).
    fn typed_null_keys(&self, value: &serde_json::Value) -> Vec<String> {
        let Some(map) = value.as_object() else {
            return Vec::new();
        };
        let kept = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        map.iter()
            .filter(|(k, v)| v.is_null() && kept.get(k.as_str()).is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The configuration as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            for key in &self.null_keys {
                if !map.contains_key(key) {
                    map.insert(key.clone(), serde_json::Value::Null);
                }
            }
        }
        value
    }

    /// Emits pretty-printed JSON with a final line break.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_value()).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The Matrix server name in `default_server_config`, if set.
    pub fn server_name(&self) -> Option<&str> {
        self.default_server_config
            .as_ref()
            .and_then(|c| c.homeserver.server_name.as_deref())
    }

    /// Whether the admin named a Jitsi server (`jitsi.preferred_domain`).
    pub fn jitsi_configured(&self) -> bool {
        self.jitsi
            .as_ref()
            .and_then(|j| {
                j.get("preferred_domain")
                    .or_else(|| j.get("preferredDomain"))
            })
            .and_then(serde_json::Value::as_str)
            .is_some_and(|d| !d.trim().is_empty())
    }

    /// Lists every way this configuration breaks the privacy invariants,
    /// each naming the key at fault (dotted for nested keys).
    pub fn privacy_violations(&self) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        let must = [
            (
                "disable_custom_urls",
                self.disable_custom_urls == Some(true),
                "must be true: users may not point this Element at another homeserver",
            ),
            (
                "disable_guests",
                self.disable_guests == Some(true),
                "must be true: there is no guest access",
            ),
            (
                "disable_3pid_login",
                self.disable_3pid_login == Some(true),
                "must be true: there is no login by e-mail address or phone number",
            ),
            (
                "default_federate",
                self.default_federate == Some(false),
                "must be false: the server does not federate",
            ),
        ];
        for (key, ok, message) in must {
            if !ok {
                errs.push(key, message);
            }
        }
        for (key, value) in [
            ("integrations_ui_url", &self.integrations_ui_url),
            ("integrations_rest_url", &self.integrations_rest_url),
        ] {
            if value != &Some(None) {
                errs.push(
                    key,
                    "must be null: when absent Element uses the scalar.vector.im integration manager, \
                     which learns room and user ids",
                );
            }
        }
        if self
            .integrations_widgets_urls
            .as_ref()
            .is_some_and(|urls| !urls.is_empty())
        {
            errs.push(
                "integrations_widgets_urls",
                "must be empty: no widget gets integration-manager tokens",
            );
        }
        for (key, value) in [
            ("bug_report_endpoint_url", &self.bug_report_endpoint_url),
            ("posthog", &self.posthog),
            ("sentry", &self.sentry),
            ("privacy_policy_url", &self.privacy_policy_url),
        ] {
            if !absent_or_null(value) {
                errs.push(
                    key,
                    "must be absent or null: nothing about this server's users is reported to third parties",
                );
            }
        }
        if !matches!(
            self.piwik,
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false))
        ) {
            errs.push(
                "piwik",
                "must be absent, null or false: no analytics are collected",
            );
        }
        match &self.default_server_config {
            None => errs.push(
                "default_server_config",
                "must name this server's homeserver (m.homeserver base_url and server_name)",
            ),
            Some(dsc) => {
                if dsc.homeserver.base_url.is_empty() {
                    errs.push(
                        "default_server_config.m.homeserver.base_url",
                        "must be this server's client API URL",
                    );
                }
                if dsc.homeserver.server_name.is_none() {
                    errs.push(
                        "default_server_config.m.homeserver.server_name",
                        "must be this server's name",
                    );
                }
                if dsc.extra.contains_key("m.identity_server") {
                    errs.push(
                        "default_server_config.m.identity_server",
                        "must be absent: no identity server learns users' e-mail addresses or phone numbers",
                    );
                }
            }
        }
        let own = self.server_name().map(str::to_owned);
        match (&self.room_directory, own) {
            (Some(rd), Some(own)) if rd.servers == [own.clone()] => {}
            (_, own) => errs.push(
                "room_directory.servers",
                format!(
                    "must list only this server ({}): other servers' room lists are not offered",
                    own.as_deref()
                        .unwrap_or("default_server_config.m.homeserver.server_name")
                ),
            ),
        }
        let defaults = self.setting_defaults.clone().unwrap_or_default();
        for (key, value, message) in REQUIRED_SETTING_DEFAULTS {
            if defaults.get(key) != Some(&serde_json::Value::Bool(value)) {
                errs.push(format!("setting_defaults.{key}"), message);
            }
        }
        if !self.jitsi_configured()
            && defaults.get("UIFeature.widgets") != Some(&serde_json::Value::Bool(false))
        {
            errs.push(
                "setting_defaults.UIFeature.widgets",
                "must be false unless jitsi.preferred_domain names a Jitsi server: otherwise \
                 conference calls go to meet.element.io",
            );
        }
        for key in CHECKED_KEYS {
            let alias = camel(key);
            if alias != key && self.extra.contains_key(&alias) {
                errs.push(
                    alias.clone(),
                    format!(
                        "is the camelCase spelling of {key}, which Element also reads: use {key}"
                    ),
                );
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> serde_json::Value {
        json!({
            "default_server_config": {
                "m.homeserver": {"base_url": "https://matrix.example.org", "server_name": "example.org"}
            },
            "brand": "Example Chat",
            "disable_custom_urls": true,
            "disable_guests": true,
            "disable_3pid_login": true,
            "default_federate": false,
            "integrations_ui_url": null,
            "integrations_rest_url": null,
            "integrations_widgets_urls": [],
            "room_directory": {"servers": ["example.org"]},
            "setting_defaults": {"fallbackICEServerAllowed": false, "UIFeature.widgets": false},
        })
    }

    fn violations(v: serde_json::Value) -> ValidationErrors {
        ElementConfig::from_value(v).unwrap().privacy_violations()
    }

    #[test]
    fn good_has_no_violations() {
        assert_eq!(violations(good()), ValidationErrors::new());
    }

    #[test]
    fn round_trip_keeps_unknown_keys_and_explicit_nulls() {
        let mut v = good();
        v["embedded_pages"] = json!({"login_for_welcome": true});
        v["default_server_config"]["m.homeserver"]["x"] = json!(1);
        v["room_directory"]["y"] = json!("z");
        v["sso_redirect_options"] = json!({"immediate": false});
        let conf = ElementConfig::from_value(v.clone()).unwrap();
        assert_eq!(conf.integrations_ui_url, Some(None));
        assert_eq!(conf.extra.len(), 2);
        let text = conf.to_json_string();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(ElementConfig::parse(&text).unwrap(), conf);
        let err = ElementConfig::parse(r#"{"disable_guests": "yes"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("config.json: disable_guests: "),
            "{err}"
        );
        // Absent stays absent.
        let mut v = good();
        v.as_object_mut().unwrap().remove("integrations_ui_url");
        let conf = ElementConfig::from_value(v).unwrap();
        assert_eq!(conf.integrations_ui_url, None);
        assert!(!conf.to_json_string().contains("integrations_ui_url"));
    }

    #[test]
    fn round_trip_keeps_typed_keys_written_as_null() {
        let mut v = good();
        v["brand"] = json!(null);
        v["show_labs_settings"] = json!(null);
        let conf = ElementConfig::from_value(v.clone()).unwrap();
        assert_eq!(conf.brand, None);
        let back: serde_json::Value = serde_json::from_str(&conf.to_json_string()).unwrap();
        assert_eq!(back, v);
        let parsed = ElementConfig::parse(&conf.to_json_string()).unwrap();
        assert_eq!(parsed, conf);
        // A value set later wins over the recorded null.
        let mut conf = conf;
        conf.brand = Some("Chat".into());
        assert_eq!(conf.to_value()["brand"], json!("Chat"));
    }

    #[test]
    fn every_violation_is_detected() {
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "disable_custom_urls",
                Box::new(|v| v["disable_custom_urls"] = json!(false)),
            ),
            (
                "disable_guests",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("disable_guests");
                }),
            ),
            (
                "disable_3pid_login",
                Box::new(|v| v["disable_3pid_login"] = json!(false)),
            ),
            (
                "default_federate",
                Box::new(|v| v["default_federate"] = json!(true)),
            ),
            (
                "integrations_ui_url",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("integrations_ui_url");
                }),
            ),
            (
                "integrations_rest_url",
                Box::new(|v| v["integrations_rest_url"] = json!("https://scalar.vector.im/api")),
            ),
            (
                "integrations_widgets_urls",
                Box::new(|v| {
                    v["integrations_widgets_urls"] = json!(["https://scalar.vector.im/api"])
                }),
            ),
            (
                "bug_report_endpoint_url",
                Box::new(|v| {
                    v["bug_report_endpoint_url"] = json!("https://element.io/bugreports/submit")
                }),
            ),
            (
                "posthog",
                Box::new(|v| {
                    v["posthog"] =
                        json!({"project_api_key": "x", "api_host": "https://posthog.element.io"})
                }),
            ),
            ("sentry", Box::new(|v| v["sentry"] = json!({"dsn": "x"}))),
            (
                "piwik",
                Box::new(|v| v["piwik"] = json!({"url": "https://piwik.example/"})),
            ),
            (
                "privacy_policy_url",
                Box::new(|v| v["privacy_policy_url"] = json!("https://element.io/cookie-policy")),
            ),
            (
                "default_server_config.m.identity_server",
                Box::new(|v| {
                    v["default_server_config"]["m.identity_server"] =
                        json!({"base_url": "https://vector.im"})
                }),
            ),
            (
                "default_server_config",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("default_server_config");
                }),
            ),
            (
                "room_directory.servers",
                Box::new(|v| v["room_directory"]["servers"] = json!(["example.org", "matrix.org"])),
            ),
            (
                "room_directory.servers",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("room_directory");
                }),
            ),
            (
                "setting_defaults.fallbackICEServerAllowed",
                Box::new(|v| v["setting_defaults"]["fallbackICEServerAllowed"] = json!(true)),
            ),
            (
                "setting_defaults.UIFeature.widgets",
                Box::new(|v| {
                    v["setting_defaults"]
                        .as_object_mut()
                        .unwrap()
                        .remove("UIFeature.widgets");
                }),
            ),
            (
                "bugReportEndpointUrl",
                Box::new(|v| {
                    v["bugReportEndpointUrl"] = json!("https://element.io/bugreports/submit")
                }),
            ),
            (
                "integrationsUiUrl",
                Box::new(|v| v["integrationsUiUrl"] = json!("https://scalar.vector.im/")),
            ),
        ];
        for (key, change) in cases {
            let mut v = good();
            change(&mut v);
            let errs = violations(v);
            assert!(errs.mentions(key), "{key}: {errs}");
        }
    }

    #[test]
    fn explicit_services_are_accepted() {
        let mut v = good();
        v["jitsi"] = json!({"preferred_domain": "meet.example.org"});
        v["setting_defaults"]["UIFeature.widgets"] = json!(true);
        v["element_call"] = json!({"url": "https://call.example.org"});
        v["map_style_url"] = json!("https://tiles.example.org/style.json");
        v["piwik"] = json!(false);
        assert_eq!(violations(v), ValidationErrors::new());
        // An empty Jitsi domain falls back to meet.element.io.
        let mut v = good();
        v["jitsi"] = json!({"preferred_domain": ""});
        v["setting_defaults"]["UIFeature.widgets"] = json!(true);
        assert!(violations(v).mentions("setting_defaults.UIFeature.widgets"));
    }

    #[test]
    fn camel_case() {
        assert_eq!(camel("disable_3pid_login"), "disable3pidLogin");
        assert_eq!(camel("bug_report_endpoint_url"), "bugReportEndpointUrl");
        assert_eq!(camel("jitsi"), "jitsi");
    }
}
