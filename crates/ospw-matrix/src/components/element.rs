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
//! - Map tiles (`map_style_url`) have no default: without them Element
//!   shows no maps, yet still offers location sharing, which then fails;
//!   `UIFeature.locationSharing` must be `false` unless a tile server is named.
//! - `help_url`, `help_encryption_url`, `desktop_builds` and `mobile_builds`
//!   default to element.io and app-store pages, the sign-in footer to
//!   element.io, Twitter and GitHub links: a derived configuration names
//!   this server's own pages or hides them.
//!
//! Keys that change which server people log into (`default_server_name`,
//! the legacy `default_hs_url`/`default_is_url`, ...) are refused, and every
//! URL anywhere in the file (nested, in lists, in object keys, in any
//! spelling a browser accepts: see [`urls`]) must stay on this server's own
//! hosts or those the operator chose through typed fields.
//!
//! Element also reads camelCase spellings of its keys (`bugReportEndpointUrl`
//! for `bug_report_endpoint_url`, at the top level and inside its objects):
//! those spellings of known keys are refused so the checks cannot be
//! bypassed ([`keys`]).

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, ValidationErrors};

pub mod keys;
pub mod urls;

use urls::UrlTarget;

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
pub const REQUIRED_SETTING_DEFAULTS: [(&str, bool, &str); 6] = [
    (
        "fallbackICEServerAllowed",
        false,
        "must be false: otherwise Element offers to relay calls through turn.matrix.org",
    ),
    (
        "UIFeature.identityServer",
        false,
        "must be false: there is no identity server, and Element would offer to use one elsewhere, \
         handing it people's e-mail addresses and phone numbers",
    ),
    (
        "UIFeature.thirdPartyId",
        false,
        "must be false: there are no e-mail or phone identifiers on this server",
    ),
    (
        "UIFeature.feedback",
        false,
        "must be false: feedback goes to Element's rageshake server and analytics, neither of which exists here",
    ),
    (
        "UIFeature.shareSocial",
        false,
        "must be false: its buttons hand room links to Facebook, Twitter, LinkedIn and Reddit",
    ),
    (
        "UIFeature.registration",
        false,
        "must be false: there is no public registration (the admin creates every account)",
    ),
];

/// Keys that change which server people log into, or that stop Element from
/// starting next to `default_server_config` ("Invalid configuration"), in
/// any spelling.
pub const LOGIN_SERVER_KEYS: [(&str, &str); 5] = [
    (
        "default_server_name",
        "makes Element look up another server's /.well-known/matrix/client and log people in there \
         (it wins over default_server_config)",
    ),
    (
        "default_hs_url",
        "names a homeserver besides default_server_config: Element refuses to start (\"Invalid configuration\")",
    ),
    (
        "default_is_url",
        "names an identity server, which would learn people's e-mail addresses and phone numbers",
    ),
    (
        "fallback_hs_url",
        "sends people to another homeserver when this one does not answer",
    ),
    (
        "validated_server_config",
        "is Element's own result of checking default_server_config, set at start-up, never in config.json",
    ),
];

/// Hosts whose URLs need no check: the ones a browser reads as this
/// server's own, and those the operator chose through typed fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Host names (lower case, no port).
    pub hosts: Vec<String>,
}

impl AllowedHosts {
    /// Whether `host` is one of them.
    pub fn contains(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    fn describe(&self) -> String {
        self.hosts.join(", ")
    }
}

fn absent_or_null(v: &Option<serde_json::Value>) -> bool {
    matches!(v, None | Some(serde_json::Value::Null))
}

/// The host of an `https://` URL (lower case), if `url` is one.
fn https_host(url: &str) -> Option<String> {
    match urls::target(url) {
        UrlTarget::Host(h) if url.trim().to_ascii_lowercase().starts_with("https://") => Some(h),
        _ => None,
    }
}

/// Path pattern of a key path: list indexes as `[]`.
fn pattern(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Records `target`, found at `at`, unless it stays on `allowed` hosts.
fn report(errs: &mut ValidationErrors, at: &str, target: UrlTarget, allowed: &AllowedHosts) {
    match target {
        UrlTarget::Local | UrlTarget::NoHost => {}
        UrlTarget::Host(h) if allowed.contains(&h) => {}
        UrlTarget::Host(h) => errs.push(
            at,
            format!(
                "points Element at {h}, which is not one of this server's hosts ({}): Element would \
                 contact it or send people there. A map, Jitsi or help page you host is set through \
                 its typed field (element.map_style_url, element.jitsi_domain, element.branding.*)",
                allowed.describe()
            ),
        ),
        UrlTarget::Unclear(why) => errs.push(
            at,
            format!(
                "{why}: expected an https:// URL on this server's hosts ({}) or a path relative to Element",
                allowed.describe()
            ),
        ),
    }
}

/// Reports every URL in `value` (at `path`) that leads to a host not in
/// `allowed`: strings, and object keys that are URLs.
fn check_urls(
    value: &serde_json::Value,
    path: &str,
    allowed: &AllowedHosts,
    errs: &mut ValidationErrors,
) {
    let pat = pattern(path);
    if keys::TEXT_KEYS.contains(&pat.as_str()) {
        return;
    }
    match value {
        serde_json::Value::String(s) => {
            // A bare host name where Element expects one.
            let key = pat
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let host_key = key.ends_with("domain") || key.ends_with("host");
            if host_key && !urls::looks_like_url(s) && !s.is_empty() {
                let host = s.trim().to_ascii_lowercase();
                let target = if host.contains(['/', '@', '%']) {
                    UrlTarget::Unclear(format!("{s:?} is not a host name"))
                } else {
                    UrlTarget::Host(host.split(':').next().unwrap_or_default().to_owned())
                };
                report(errs, path, target, allowed);
            } else if urls::looks_like_url(s) {
                for target in urls::targets_in(s) {
                    report(errs, path, target, allowed);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_urls(item, &format!("{path}[{i}]"), allowed, errs);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.contains("://") || key.starts_with("//") {
                    for target in urls::targets_in(key) {
                        report(errs, &sub, target, allowed);
                    }
                }
                check_urls(item, &sub, allowed, errs);
            }
        }
        _ => {}
    }
}

impl ElementConfig {
    /// Parses `config.json` text. Errors name the key at fault. The text
    /// is read strictly first ([`crate::input::read_tree`]): a key written
    /// twice (the browser's `JSON.parse` keeps the last, a check that read
    /// the first would pass the wrong one) or nesting deeper than
    /// [`crate::input::MAX_DEPTH`] is an error naming its path.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let parse_error = |path: String, message: String| Error::Parse {
            source_name: "config.json".to_owned(),
            path,
            message,
        };
        let tree = crate::input::read_tree(text, crate::input::Format::Json)
            .map_err(|e| parse_error(e.path, e.message))?;
        let mut conf: Self = serde_path_to_error::deserialize(&tree).map_err(|e| {
            parse_error(
                e.path().to_string(),
                crate::redact::message(&e.into_inner().to_string()),
            )
        })?;
        conf.null_keys = conf.typed_null_keys(&tree);
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

    /// The hosts this file itself names as the server's own: the
    /// homeserver (`m.homeserver.base_url`), the server name, and Element's
    /// own URL (`permalink_prefix`, unless it is matrix.to).
    pub fn own_hosts(&self) -> AllowedHosts {
        let mut hosts = Vec::new();
        if let Some(dsc) = &self.default_server_config {
            hosts.extend(https_host(&dsc.homeserver.base_url));
        }
        hosts.extend(self.server_name().map(str::to_ascii_lowercase));
        if let Some(prefix) = self.extra.get("permalink_prefix").and_then(|p| p.as_str()) {
            hosts.extend(https_host(prefix).filter(|h| h != "matrix.to"));
        }
        hosts.dedup();
        AllowedHosts { hosts }
    }

    /// Lists every way this configuration breaks the privacy invariants,
    /// each naming the key at fault (dotted for nested keys). Every URL in
    /// the file must stay on the hosts the file names as its own
    /// ([`own_hosts`](Self::own_hosts)).
    pub fn privacy_violations(&self) -> ValidationErrors {
        self.privacy_violations_allowing(&self.own_hosts())
    }

    /// [`privacy_violations`](Self::privacy_violations) with the hosts URLs
    /// may lead to given by the caller (this server's hosts and the
    /// services the operator chose through typed fields).
    pub fn privacy_violations_allowing(&self, allowed: &AllowedHosts) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        let value = self.to_value();
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
        for (key, why) in LOGIN_SERVER_KEYS {
            if value.get(key).is_some() {
                errs.push(key, format!("must be absent: it {why}"));
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
        // "local" keeps debug logs on the user's machine: nothing is sent.
        let local_reports = self
            .bug_report_endpoint_url
            .as_ref()
            .and_then(|v| v.as_str())
            == Some("local");
        for (key, value) in [
            ("bug_report_endpoint_url", &self.bug_report_endpoint_url),
            ("posthog", &self.posthog),
            ("sentry", &self.sentry),
            ("privacy_policy_url", &self.privacy_policy_url),
        ] {
            let allowed_local = key == "bug_report_endpoint_url" && local_reports;
            if !(absent_or_null(value) || allowed_local) {
                errs.push(
                    key,
                    "must be absent or null (or, for bug_report_endpoint_url, \"local\"): nothing about \
                     this server's users is reported to third parties",
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
        match self.extra.get("permalink_prefix").and_then(|p| p.as_str()) {
            Some(prefix) if https_host(prefix).is_some_and(|h| h != "matrix.to") => {}
            _ => errs.push(
                "permalink_prefix",
                "must be this Element's own https:// URL: otherwise links to rooms and messages point \
                 at matrix.to, which learns every room id shared",
            ),
        }
        let defaults = self.setting_defaults.clone().unwrap_or_default();
        let is = |key: &str, v: bool| defaults.get(key) == Some(&serde_json::Value::Bool(v));
        for (key, value, message) in REQUIRED_SETTING_DEFAULTS {
            if !is(key, value) {
                errs.push(format!("setting_defaults.{key}"), message);
            }
        }
        if !self.jitsi_configured() && !is("UIFeature.widgets", false) {
            errs.push(
                "setting_defaults.UIFeature.widgets",
                "must be false unless jitsi.preferred_domain names a Jitsi server: otherwise \
                 conference calls go to meet.element.io",
            );
        }
        if absent_or_null(&self.map_style_url) && !is("UIFeature.locationSharing", false) {
            errs.push(
                "setting_defaults.UIFeature.locationSharing",
                "must be false unless map_style_url names a tile server: Element has none of its own, \
                 so location sharing is offered and then fails",
            );
        }
        if is("urlPreviewsEnabled_e2ee", true) {
            errs.push(
                "setting_defaults.urlPreviewsEnabled_e2ee",
                "must not be true: it has the server fetch every link posted in encrypted rooms, \
                 revealing what end-to-end encryption hides",
            );
        }
        if defaults.contains_key("webRtcAllowPeerToPeer") {
            errs.push(
                "setting_defaults.webRtcAllowPeerToPeer",
                "is not read here: Element reads this setting's config default under its inverted \
                 name webRtcForceTURN (true sends one-to-one calls through the TURN relay)",
            );
        }
        if value.get("mobile_guide_toast") == Some(&serde_json::Value::Bool(true)) {
            errs.push(
                "mobile_guide_toast",
                "must not be true: the mobile guide sends people to app-store pages run by third parties",
            );
        }
        if value.get("mobile_guide_app_variant").is_some() {
            errs.push(
                "mobile_guide_app_variant",
                "must be absent: it picks which third-party app-store pages the mobile guide sends people to",
            );
        }
        errs.extend(keys::camel_case_spellings(&value));
        if let serde_json::Value::Object(map) = &value {
            for (key, item) in map {
                // Checked against this server above.
                if key == "default_server_config" || key == "room_directory" {
                    continue;
                }
                if key.contains("://") {
                    for target in urls::targets_in(key) {
                        report(&mut errs, key, target, allowed);
                    }
                }
                check_urls(item, key, allowed, &mut errs);
            }
        }
        errs
    }

    /// Values of known keys whose JSON type is not the one Element expects.
    pub fn type_errors(&self) -> ValidationErrors {
        keys::type_errors(&self.to_value())
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
            "permalink_prefix": "https://chat.example.org",
            "setting_defaults": {
                "fallbackICEServerAllowed": false,
                "UIFeature.widgets": false,
                "UIFeature.locationSharing": false,
                "UIFeature.identityServer": false,
                "UIFeature.thirdPartyId": false,
                "UIFeature.feedback": false,
                "UIFeature.shareSocial": false,
                "UIFeature.registration": false,
            },
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
    fn config_json_is_read_strictly() {
        let err = ElementConfig::parse(
            r#"{"brand": "A", "disable_guests": false, "disable_guests": true}"#,
        )
        .expect_err("duplicate");
        assert!(err.to_string().contains("disable_guests"), "{err}");
        assert!(err.to_string().contains("twice"), "{err}");
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(ElementConfig::parse(&deep).is_err());
        let err = ElementConfig::parse(
            r#"{"brand": {"password": "hunter2-AbCdEfGhIjKlMnOpQrStUv1234"}}"#,
        )
        .expect_err("type");
        assert!(!err.to_string().contains("hunter2"), "{err}");
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
        assert_eq!(conf.extra.len(), 3);
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
    fn explicit_services_are_accepted_when_allowed() {
        let mut v = good();
        v["jitsi"] = json!({"preferred_domain": "meet.example.org"});
        v["setting_defaults"]["UIFeature.widgets"] = json!(true);
        v["element_call"] = json!({"url": "https://call.example.org"});
        v["map_style_url"] = json!("https://tiles.example.org/style.json");
        v["setting_defaults"]["UIFeature.locationSharing"] = json!(true);
        v["piwik"] = json!(false);
        v["bug_report_endpoint_url"] = json!("local");
        let conf = ElementConfig::from_value(v.clone()).unwrap();
        let mut allowed = conf.own_hosts();
        assert_eq!(
            allowed.hosts,
            vec!["matrix.example.org", "example.org", "chat.example.org"]
        );
        // Alone, the file names these services' hosts as foreign.
        let errs = conf.privacy_violations_allowing(&allowed);
        for path in [
            "jitsi.preferred_domain",
            "element_call.url",
            "map_style_url",
        ] {
            assert!(errs.mentions(path), "{path}: {errs}");
        }
        for h in ["meet.example.org", "call.example.org", "tiles.example.org"] {
            allowed.hosts.push(h.into());
        }
        assert_eq!(
            conf.privacy_violations_allowing(&allowed),
            ValidationErrors::new()
        );
        // An empty Jitsi domain falls back to meet.element.io.
        let mut v = good();
        v["jitsi"] = json!({"preferred_domain": ""});
        v["setting_defaults"]["UIFeature.widgets"] = json!(true);
        assert!(violations(v).mentions("setting_defaults.UIFeature.widgets"));
    }

    #[test]
    fn login_server_keys_in_any_spelling() {
        for (key, value) in [
            ("default_server_name", json!("matrix.org")),
            ("default_hs_url", json!("https://matrix-client.matrix.org")),
            ("default_is_url", json!("https://vector.im")),
            ("fallback_hs_url", json!("https://matrix-client.matrix.org")),
            ("validated_server_config", json!({})),
            ("defaultServerName", json!("matrix.org")),
            ("defaultHsUrl", json!("https://matrix-client.matrix.org")),
            ("defaultIsUrl", json!("https://vector.im")),
        ] {
            let mut v = good();
            v[key] = value;
            assert!(violations(v).mentions(key), "{key}");
        }
    }

    #[test]
    fn third_party_urls_anywhere() {
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 16] = [
            ("help_url", |v| {
                v["help_url"] = json!("https://element.io/help")
            }),
            ("map_style_url", |v| {
                v["map_style_url"] = json!("https://api.maptiler.com/maps/streets/style.json")
            }),
            (
                "branding.auth_header_logo_url",
                |v| v["branding"] = json!({"auth_header_logo_url": "//cdn.example.net/logo.svg"}),
            ),
            (
                "branding.auth_footer_links[0].url",
                |v| v["branding"] = json!({"auth_footer_links": [{"text": "Blog", "url": "https://element.io/blog"}]}),
            ),
            (
                "embedded_pages.welcome_url",
                |v| {
                    v["embedded_pages"] =
                        json!({"welcome_url": "https:\\\\evil.example/welcome.html"})
                },
            ),
            ("embedded_pages.home_url", |v| {
                v["embedded_pages"] = json!({"home_url": " ht\ttps://evil.example/home.html"})
            }),
            (
                "desktop_builds.url_linux",
                |v| {
                    v["desktop_builds"] =
                        json!({"available": true, "url_linux": "https://element.io/download#linux"})
                },
            ),
            ("terms_and_conditions_links[0].url", |v| {
                v["terms_and_conditions_links"] =
                    json!([{"text": "ToS", "url": "https://element.io/terms"}])
            }),
            ("logout_redirect_url", |v| {
                v["logout_redirect_url"] = json!("https://chat.example.org@evil.example/")
            }),
            ("custom_translations_url", |v| {
                v["custom_translations_url"] = json!("https://evil.example/t.json")
            }),
            ("modules[0]", |v| {
                v["modules"] = json!(["https://evil.example/module.js"])
            }),
            ("jitsi.preferred_domain", |v| {
                v["jitsi"] = json!({"preferred_domain": "meet.jit.si"});
                v["setting_defaults"]["UIFeature.widgets"] = json!(true);
            }),
            (
                "setting_defaults.custom_themes[0].fonts.faces[0].src[0].url",
                |v| v["setting_defaults"]["custom_themes"] = json!([{"name": "T", "fonts": {"faces": [{"src": [{"url": "https://fonts.example.net/f.woff2"}]}]}}]),
            ),
            (
                "enable_presence_by_hs_url.https://matrix-client.matrix.org",
                |v| {
                    v["enable_presence_by_hs_url"] =
                        json!({"https://matrix-client.matrix.org": false})
                },
            ),
            ("some_module_setting", |v| {
                v["some_module_setting"] = json!("javascript:alert(1)")
            }),
            (
                "feedback.new_issue_url",
                |v| v["feedback"] = json!({"new_issue_url": "https://github.com/element-hq/element-web/issues/new"}),
            ),
        ];
        for (path, change) in cases {
            let mut v = good();
            change(&mut v);
            let errs = violations(v);
            assert!(errs.errors.iter().any(|e| e.path == path), "{path}: {errs}");
        }
        // This server's own hosts and relative paths are fine.
        let mut v = good();
        v["help_url"] = json!("https://chat.example.org/help.html");
        v["branding"] = json!({"auth_header_logo_url": "branding/logo.svg",
                               "auth_footer_links": [{"text": "Mail", "url": "mailto:admin@example.org"}],
                               "welcome_background_url": "data:image/png;base64,AAAA"});
        v["embedded_pages"] = json!({"welcome_url": "welcome.html", "home_url": "/home.html"});
        v["enable_presence_by_hs_url"] = json!({"https://matrix.example.org": false});
        v["report_event"] = json!({"admin_message_md": "Read https://example.net/rules first"});
        v["brand"] = json!("Chat: https://example.net");
        assert_eq!(violations(v), ValidationErrors::new());
    }

    #[test]
    fn setting_defaults_that_reach_third_parties() {
        for (key, value) in [
            ("UIFeature.identityServer", json!(true)),
            ("UIFeature.thirdPartyId", json!(true)),
            ("UIFeature.feedback", json!(true)),
            ("UIFeature.shareSocial", json!(true)),
            ("UIFeature.registration", json!(true)),
            ("UIFeature.locationSharing", json!(true)),
            ("urlPreviewsEnabled_e2ee", json!(true)),
            ("webRtcAllowPeerToPeer", json!(false)),
        ] {
            let mut v = good();
            v["setting_defaults"][key] = value;
            let path = format!("setting_defaults.{key}");
            assert!(violations(v).mentions(&path), "{path}");
        }
        for (key, value) in [
            ("mobile_guide_toast", json!(true)),
            ("mobile_guide_app_variant", json!("element")),
            ("permalink_prefix", json!("https://matrix.to")),
            (
                "bug_report_endpoint_url",
                json!("https://rageshakes.example.org/submit"),
            ),
        ] {
            let mut v = good();
            v[key] = value;
            assert!(violations(v).mentions(key), "{key}");
        }
        let mut v = good();
        v.as_object_mut().unwrap().remove("permalink_prefix");
        assert!(violations(v).mentions("permalink_prefix"));
    }
}
