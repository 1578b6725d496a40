//! The parts of Synapse's `homeserver.yaml` about who signs in and what mail
//! is sent: `oidc_providers`, `password_config`, `sso` and `email`, typed,
//! with unknown keys kept, and their privacy checks (called from
//! [`HomeserverConfig::privacy_violations`]).
//!
//! The invariants, read the way Synapse reads each key:
//!
//! - **No account for everyone by accident.** An OpenID Connect provider
//!   without `enable_registration` creates an account on every first sign-in
//!   (Synapse's default is `true`): the key must be written, `false` or an
//!   explicit `true` (limited by `attribute_requirements` or not). The other
//!   sign-in mechanisms that create accounts on first use (`cas_config`,
//!   `saml2_config`, `jwt_config`, the legacy `oidc_config`) are refused.
//! - **Login tokens go to our clients only.** `sso.client_whitelist` is
//!   matched as a prefix of the client's redirect URL: an entry without a
//!   path ending in `/` (`https://chat.example.org`) also matches
//!   `https://chat.example.org.evil.example/`, which would then receive a
//!   login token without the user being asked.
//! - **No mail in plaintext across the network.** Unless the SMTP host is
//!   this machine, Synapse must use implicit TLS (`force_tls`) or require
//!   STARTTLS (`require_transport_security`); Synapse's default is
//!   opportunistic STARTTLS, which an attacker on the path strips to read
//!   the SMTP password and every password-reset link.
//! - **No secret inline**, at any depth (`client_secret`, `smtp_pass`,
//!   `pepper`, `client_secret_jwt_key.key`): the whole-file scan of
//!   [`HomeserverConfig::privacy_violations`] ([`crate::inline_secrets`])
//!   covers these sections too.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::components::synapse::{Duration, Extra, HomeserverConfig};
use crate::error::ValidationErrors;

/// One entry of `oidc_providers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OidcProvider {
    /// The provider's ID (Synapse prefixes it with `oidc-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_id: Option<String>,
    /// The name on the sign-in button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_name: Option<String>,
    /// The button's icon, an `mxc://` URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_icon: Option<String>,
    /// A brand identifier for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_brand: Option<String>,
    /// The issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The file holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_path: Option<String>,
    /// How the client authenticates at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth_method: Option<String>,
    /// `auto`, `always` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_method: Option<String>,
    /// The scopes asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Whether a first sign-in links an existing account of the same localpart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_existing_users: Option<bool>,
    /// Whether a first sign-in creates an account (Synapse's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_registration: Option<bool>,
    /// Claims a person must have to sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_requirements: Option<Vec<AttributeRequirementConfig>>,
    /// How claims become the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_mapping_provider: Option<UserMappingProviderConfig>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One entry of `attribute_requirements`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributeRequirementConfig {
    /// The claim.
    pub attribute: String,
    /// The value it must have (or contain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Values of which it must have (or contain) one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `user_mapping_provider`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserMappingProviderConfig {
    /// The mapping module (absent: Synapse's Jinja2 mapper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The module's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<JinjaMappingConfig>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The configuration of Synapse's Jinja2 mapping provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JinjaMappingConfig {
    /// The claim identifying the person for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_claim: Option<String>,
    /// The localpart template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localpart_template: Option<String>,
    /// The display name template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name_template: Option<String>,
    /// The e-mail template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_template: Option<String>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `password_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PasswordConfig {
    /// Whether passwords may be used (absent: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<PasswordEnabled>,
    /// Whether Synapse's own password database is used (absent: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localdb_enabled: Option<bool>,
    /// Every other key (`policy`, …), kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

impl PasswordConfig {
    /// Whether passwords sign people in, as Synapse reads the section.
    pub fn allows_password_login(config: Option<&PasswordConfig>) -> bool {
        config.is_none_or(|c| {
            c.enabled.is_none_or(|e| e == PasswordEnabled::On) && c.localdb_enabled != Some(false)
        })
    }
}

/// `password_config.enabled`: `true`, `false` or `only_for_reauth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordEnabled {
    /// Passwords sign in.
    On,
    /// No passwords.
    Off,
    /// Only to confirm one's identity for sensitive actions.
    OnlyForReauth,
}

impl Serialize for PasswordEnabled {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::On => serializer.serialize_bool(true),
            Self::Off => serializer.serialize_bool(false),
            Self::OnlyForReauth => serializer.serialize_str("only_for_reauth"),
        }
    }
}

impl<'de> Deserialize<'de> for PasswordEnabled {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PasswordEnabled;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"only_for_reauth\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PasswordEnabled, E> {
                Ok(if v {
                    PasswordEnabled::On
                } else {
                    PasswordEnabled::Off
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PasswordEnabled, E> {
                if v == "only_for_reauth" {
                    Ok(PasswordEnabled::OnlyForReauth)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `sso`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SsoConfig {
    /// Client URLs (prefixes) that get a login token without a confirmation page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_whitelist: Option<Vec<String>>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `email`. The SMTP password (`smtp_pass`) is deliberately not a typed
/// field: it may never be in `homeserver.yaml`, and is kept in `extra` only
/// so the privacy check can report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailConfig {
    /// The SMTP server (absent: localhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// Its port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// The SMTP user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_user: Option<String>,
    /// Implicit TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_tls: Option<bool>,
    /// Whether STARTTLS is used when offered (absent: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tls: Option<bool>,
    /// Whether mail fails without STARTTLS (absent: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_transport_security: Option<bool>,
    /// The sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notif_from: Option<String>,
    /// The name used in mails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Whether missed-message notifications are mailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_notifs: Option<bool>,
    /// Whether new accounts with an address get the notification mails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notif_for_new_users: Option<bool>,
    /// The client that links in mails open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_base_url: Option<String>,
    /// How long a message stays unread before the mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notif_delay_before_mail: Option<Duration>,
    /// Every other key, kept as read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Sign-in mechanisms that create accounts on first use and are not
/// checked here: only `oidc_providers` is.
const OTHER_SSO_KEYS: [&str; 4] = ["oidc_config", "cas_config", "saml2_config", "jwt_config"];

/// Adds the violations of the sections this module models to `errs`.
pub(crate) fn privacy_violations(config: &HomeserverConfig, errs: &mut ValidationErrors) {
    for (i, p) in config.oidc_providers.iter().flatten().enumerate() {
        let at = format!("oidc_providers[{i}]");
        if p.enable_registration.is_none() {
            errs.push(
                format!("{at}.enable_registration"),
                "is absent, and Synapse's default (true) creates an account for everyone the provider \
                 authenticates: expected false, or true written out (limited by attribute_requirements)",
            );
        }
        for (k, r) in p.attribute_requirements.iter().flatten().enumerate() {
            if r.value.is_none() && r.one_of.as_ref().is_none_or(Vec::is_empty) {
                errs.push(
                    format!("{at}.attribute_requirements[{k}]"),
                    "has neither value nor one_of, so any value of the claim lets a person in: expected value or one_of",
                );
            }
        }
    }
    for key in OTHER_SSO_KEYS {
        if let Some(value) = config.extra.get(key) {
            let on = match value {
                serde_yaml::Value::Null => false,
                serde_yaml::Value::Mapping(m) => match m.get("enabled") {
                    Some(serde_yaml::Value::Bool(b)) => *b,
                    // saml2_config has no `enabled`: any configuration turns it on.
                    None => key == "saml2_config" && !m.is_empty(),
                    Some(_) => true,
                },
                _ => true,
            };
            if on {
                errs.push(
                    key,
                    "turns on a sign-in mechanism that creates accounts on first use without the checks \
                     applied to oidc_providers: expected it absent (use oidc_providers)",
                );
            }
        }
    }
    if let Some(sso) = &config.sso {
        for (i, url) in sso.client_whitelist.iter().flatten().enumerate() {
            if let Err(why) = check_whitelisted_client(url) {
                errs.push(format!("sso.client_whitelist[{i}]"), why);
            }
        }
    }
    if let Some(email) = &config.email {
        let host = email.smtp_host.as_deref().unwrap_or("localhost");
        let tls = email.force_tls == Some(true)
            || (email.enable_tls != Some(false) && email.require_transport_security == Some(true));
        if !tls && !crate::values::is_loopback_host(host) {
            errs.push(
                "email.require_transport_security",
                format!(
                    "is not true (and force_tls is not either) while smtp_host {host:?} is not this machine: \
                     an attacker on the path could strip STARTTLS and read the SMTP password, every \
                     password-reset link and every mail; expected force_tls or require_transport_security true"
                ),
            );
        }
    }
    // Inline secrets in these sections (client_secret, smtp_pass, pepper,
    // client_secret_jwt_key.key) are found by the whole-file scan of
    // HomeserverConfig::privacy_violations.
}

/// Checks one `sso.client_whitelist` entry: an `https://` URL (`http://`
/// only on this machine) whose path ends in `/`, so that matching it as a
/// prefix cannot reach another host or port.
pub fn check_whitelisted_client(url: &str) -> Result<(), String> {
    let parsed = crate::values::parse_web_url(url).map_err(|e| {
        format!("{e}; Synapse hands login tokens to URLs starting with it without asking the user")
    })?;
    if parsed.scheme == "http" && !crate::values::is_loopback_host(&parsed.host) {
        return Err(format!(
            "{url:?} would receive login tokens over plain http: expected https://"
        ));
    }
    if !parsed.path.ends_with('/') {
        return Err(format!(
            "{url:?} is matched as a prefix, so {url}.evil.example/ (or any longer URL) would receive \
             login tokens without the user being asked: expected the URL with a path ending in /, such \
             as https://chat.example.org/"
        ));
    }
    Ok(())
}

/// The `idp_icon` of provider `id` on server `server_name`: a media ID
/// Synapse never generates (its own are random letters only), which the
/// proxy answers with the configured icon file.
pub fn icon_mxc(server_name: &str, id: &str) -> String {
    format!("mxc://{server_name}/{}", icon_media_id(id))
}

/// The media ID of provider `id`'s icon.
pub fn icon_media_id(id: &str) -> String {
    format!("ospw-sso-icon-{id}")
}

/// The runtime configuration file Synapse reads after `homeserver.yaml`
/// (`--config-path`): the whole `email` section of `email` with `smtp_pass`
/// added (Synapse merges configuration files section by section, so the
/// section must be complete). JSON, which YAML reads, so the password needs
/// no YAML quoting rules.
pub fn secrets_config_json(
    email: Option<&EmailConfig>,
    smtp_pass: Option<&str>,
) -> Result<String, crate::Error> {
    let mut top = BTreeMap::new();
    if let (Some(email), Some(pass)) = (email, smtp_pass) {
        let mut value = serde_json::to_value(email)
            .map_err(|e| crate::Error::Other(format!("cannot serialise email: {e}")))?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert(
                "smtp_pass".to_owned(),
                serde_json::Value::String(pass.to_owned()),
            );
        }
        top.insert("email", value);
    }
    let mut text = serde_json::to_string_pretty(&top)
        .map_err(|e| crate::Error::Other(format!("cannot serialise the secrets file: {e}")))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The violations of this module's sections in a `homeserver.yaml` made
    /// of `yaml`.
    fn auth_violations(yaml: &str) -> Vec<String> {
        let config = HomeserverConfig::from_yaml_str(yaml).expect("parses");
        let ours = [
            "oidc_providers",
            "password_config",
            "sso",
            "email",
            "oidc_config",
            "cas_config",
            "saml2_config",
            "jwt_config",
        ];
        config
            .privacy_violations()
            .errors
            .into_iter()
            .map(|e| e.path)
            .filter(|p| ours.contains(&p.split(['.', '[']).next().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn sign_in_and_mail_invariants() {
        for (yaml, paths) in [
            (
                "oidc_providers: [{idp_id: a, issuer: 'https://a.example/', client_id: c}]",
                vec!["oidc_providers[0].enable_registration"],
            ),
            (
                "oidc_providers: [{idp_id: a, issuer: 'https://a.example/', client_id: c, \
                 enable_registration: true, attribute_requirements: [{attribute: groups}]}]",
                vec!["oidc_providers[0].attribute_requirements[0]"],
            ),
            (
                "oidc_providers: [{idp_id: a, enable_registration: false, \
                 client_secret_jwt_key: {key: '-----BEGIN', jwt_header: {alg: ES256}}}]",
                vec!["oidc_providers[0].client_secret_jwt_key.key"],
            ),
            ("oidc_config: {enabled: true, issuer: x}", vec!["oidc_config"]),
            ("cas_config: {enabled: true}", vec!["cas_config"]),
            ("jwt_config: {enabled: true, secret_path: /s}", vec!["jwt_config"]),
            ("saml2_config: {sp_config: {}}", vec!["saml2_config"]),
            (
                "sso: {client_whitelist: ['https://chat.example.org']}",
                vec!["sso.client_whitelist[0]"],
            ),
            ("email: {smtp_host: mail.example.org}", vec!["email.require_transport_security"]),
            (
                "email: {smtp_host: mail.example.org, enable_tls: false, require_transport_security: true}",
                vec!["email.require_transport_security"],
            ),
            (
                "email: {smtp_host: mail.example.org, force_tls: true, smtp_pass: hunter2}",
                vec!["email.smtp_pass"],
            ),
            ("password_config: {pepper: hunter2}", vec!["password_config.pepper"]),
        ] {
            assert_eq!(auth_violations(yaml), paths, "{yaml}");
        }
        for fine in [
            "oidc_providers: [{idp_id: a, issuer: 'https://a.example/', client_id: c, \
             enable_registration: false, client_secret_path: /run/s}]",
            "oidc_config: {enabled: false}",
            "cas_config: null",
            "saml2_config: {}",
            "sso: {client_whitelist: ['https://chat.example.org/']}",
            "email: {smtp_host: mail.example.org, force_tls: true}",
            "email: {smtp_host: mail.example.org, require_transport_security: true}",
            "email: {smtp_host: 127.0.0.1, enable_tls: false}",
            "email: {enable_notifs: true}",
            "password_config: {enabled: false, policy: {minimum_length: 10}}",
        ] {
            assert!(
                auth_violations(fine).is_empty(),
                "{fine}: {:?}",
                auth_violations(fine)
            );
        }
    }

    #[test]
    fn whitelist_entries_must_end_in_a_path_slash() {
        assert!(check_whitelisted_client("https://chat.example.org/").is_ok());
        assert!(check_whitelisted_client("https://chat.example.org:8443/app/").is_ok());
        assert!(check_whitelisted_client("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "https://chat.example.org",
            "https://chat.example.org:8443",
            "https://chat.example.org/app",
            "http://chat.example.org/",
            "chat.example.org/",
            "https://user@chat.example.org/",
        ] {
            assert!(check_whitelisted_client(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_login_as_synapse_reads_it() {
        assert!(PasswordConfig::allows_password_login(None));
        let off: PasswordConfig = serde_yaml::from_str("enabled: false").unwrap();
        assert!(!PasswordConfig::allows_password_login(Some(&off)));
        let reauth: PasswordConfig = serde_yaml::from_str("enabled: only_for_reauth").unwrap();
        assert!(!PasswordConfig::allows_password_login(Some(&reauth)));
        let nodb: PasswordConfig = serde_yaml::from_str("localdb_enabled: false").unwrap();
        assert!(!PasswordConfig::allows_password_login(Some(&nodb)));
        let on: PasswordConfig =
            serde_yaml::from_str("enabled: true\npolicy: {minimum_length: 12}").unwrap();
        assert!(PasswordConfig::allows_password_login(Some(&on)));
    }

    #[test]
    fn the_secrets_file_holds_the_whole_email_section() {
        let email = EmailConfig {
            smtp_host: Some("mail.example.org".into()),
            force_tls: Some(true),
            ..EmailConfig::default()
        };
        let text = secrets_config_json(Some(&email), Some("p\"ss: {x}\nyes")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["email"]["smtp_pass"].as_str(), Some("p\"ss: {x}\nyes"));
        assert_eq!(v["email"]["smtp_host"].as_str(), Some("mail.example.org"));
        assert_eq!(v["email"]["force_tls"].as_bool(), Some(true));
        assert_eq!(secrets_config_json(None, None).unwrap(), "{}\n");
    }
}
