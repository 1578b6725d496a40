//! Derives Synapse's sign-in and mail sections (`oidc_providers`,
//! `password_config`, `sso`, `email`) from the host description's `sso` and
//! `email`, and the runtime secrets file `ospw-matrix materialize
//! synapse-secrets` writes.
//!
//! - Each provider becomes an `oidc_providers` entry with the client secret
//!   read from `client_secret_path`, `enable_registration` written out
//!   (`true` only with `require` or `auto_create`), the claim templates of
//!   Synapse's Jinja2 mapper, and, with an icon, an `mxc://` URI on our own
//!   server that the proxy answers with the icon file.
//! - `sso.client_whitelist` is Element's URL (with its trailing `/`), so
//!   signing in from our Element needs no extra confirmation page while any
//!   other client still gets one.
//! - `password_config.enabled: false` when `sso.password_login` is false.
//! - `email`: TLS as the host description says (implicit TLS, or STARTTLS
//!   required), the brand as the mails' app name, links to our Element.
//!   Synapse has no file form of `smtp_pass`: the password is only ever in
//!   the runtime secrets file. `next_link_domain_whitelist` is our Element's
//!   host, so a password-reset link cannot send the person on to a site
//!   the requester chose.
//! - With either, Synapse's own templates are partly replaced
//!   ([`TEMPLATES`], in `synapse/templates/`): its pages (the provider
//!   picker, error and confirmation pages) and mails show a logo loaded from
//!   matrix.org or element.io, and its notification mails sender avatars
//!   from riot.im and the messages' text. Ours load nothing from elsewhere,
//!   and notification mails name rooms and senders, never a message.

use crate::components::synapse::{Duration, Extra, HomeserverConfig};
use crate::components::synapse_auth::{
    icon_mxc, secrets_config_json, AttributeRequirementConfig, EmailConfig, JinjaMappingConfig,
    OidcProvider, PasswordConfig, PasswordEnabled, SsoConfig, UserMappingProviderConfig,
};
use crate::error::{Error, ValidationErrors};
use crate::host::{FreeformSettings, HostDescription, SmtpTls};
use crate::render::RenderContext;

/// Where the templates are, relative to the output directory.
pub const TEMPLATES_DIR: &str = "synapse/templates";

/// Synapse templates this product replaces, written to
/// `synapse/templates/` (Synapse's `templates.custom_template_directory`)
/// when single sign-on or mail is on. Synapse falls back to its own for
/// every other template (and the style sheets these include).
pub const TEMPLATES: [(&str, &str); 3] = [
    ("_base.html", BASE_HTML),
    ("notif_mail.html", NOTIF_MAIL_HTML),
    ("notif_mail.txt", NOTIF_MAIL_TXT),
];

/// The page frame of Synapse's web pages and mails: the app's name as text
/// where Synapse's own loads a logo from another site.
const BASE_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
    <meta charset="UTF-8">
    <meta name="viewport" content="width=device-width, initial-scale=1.0">
    <title>{% block title %}{% endblock %}</title>
    <style type="text/css">
      {%- include 'style.css' without context %}
    </style>
    {% block header %}{% endblock %}
</head>
<body>
<header class="mx_Header">
    {% if app_name %}<strong>{{ app_name }}</strong>{% endif %}
</header>

{% block body %}{% endblock %}

</body>
</html>
"#;

/// Notification of missed messages (HTML): the rooms, who wrote and links
/// to them; never a message's text, no image.
const NOTIF_MAIL_HTML: &str = r#"{% extends "_base.html" %}
{% block title %}New messages on {{ app_name }}{% endblock %}

{% block header %}
<style type="text/css">
    {%- include 'mail.css' without context %}
</style>
{% endblock %}

{% block body %}
<p>Hello {{ user_display_name }},</p>
<p>{{ summary_text }}</p>
{% for room in rooms %}
<h3><a href="{{ room.link }}">{{ room.title or "A chat" }}</a></h3>
{% if room.invite %}
<p>You have been invited to it.</p>
{% else %}
<ul>
{% for notif in room.notifs %}{% for message in notif.messages %}{% if not message.is_historical %}
<li><a href="{{ notif.link }}">A message from {{ message.sender_name }}</a></li>
{% endif %}{% endfor %}{% endfor %}
</ul>
{% endif %}
{% endfor %}
<p>Open {{ app_name }} to read them: messages are never sent by mail.</p>
<p><a href="{{ unsubscribe_link }}">Stop these mails</a></p>
{% endblock %}
"#;

/// Notification of missed messages (plain text), like [`NOTIF_MAIL_HTML`].
const NOTIF_MAIL_TXT: &str = r#"Hello {{ user_display_name }},

{{ summary_text }}
{% for room in rooms %}
{{ room.title or "A chat" }}: {{ room.link }}
{% if room.invite %}  You have been invited to it.
{% else %}{% for notif in room.notifs %}{% for message in notif.messages %}{% if not message.is_historical %}  A message from {{ message.sender_name }}: {{ notif.link }}
{% endif %}{% endfor %}{% endfor %}{% endif %}{% endfor %}
Open {{ app_name }} to read them: messages are never sent by mail.

Stop these mails: {{ unsubscribe_link }}
"#;

/// Whether the templates of [`TEMPLATES`] are rendered and used: with
/// single sign-on or mail, the features that show Synapse's pages and send
/// its mails.
pub fn uses_templates(host: &HostDescription) -> bool {
    !host.sso.providers.is_empty() || host.email.is_some()
}

/// The derived sign-in and mail sections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthSections {
    /// `oidc_providers`.
    pub oidc_providers: Option<Vec<OidcProvider>>,
    /// `password_config`.
    pub password_config: Option<PasswordConfig>,
    /// `sso`.
    pub sso: Option<SsoConfig>,
    /// `email` (without `smtp_pass`).
    pub email: Option<EmailConfig>,
    /// Top-level keys without a typed field: `templates` and
    /// `next_link_domain_whitelist`.
    pub extra: Extra,
}

fn path_text(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Derives the sections from `host` (already validated); the templates
/// live under `ctx.output_dir`.
pub fn derive(host: &HostDescription, ctx: &RenderContext) -> AuthSections {
    let providers: Vec<OidcProvider> = host
        .sso
        .providers
        .iter()
        .map(|p| OidcProvider {
            idp_id: Some(p.id.clone()),
            idp_name: Some(p.name.clone()),
            idp_icon: p
                .icon_file
                .as_ref()
                .map(|_| icon_mxc(&host.server_name, &p.id)),
            idp_brand: p.brand.clone(),
            issuer: Some(p.issuer.clone()),
            client_id: Some(p.client_id.clone()),
            client_secret_path: Some(path_text(&p.client_secret_file)),
            client_auth_method: None,
            pkce_method: Some(p.pkce.as_str().to_owned()),
            scopes: Some(p.scopes.clone()),
            allow_existing_users: Some(p.allow_existing_users),
            enable_registration: Some(p.creates_accounts()),
            attribute_requirements: (!p.require.is_empty()).then(|| {
                p.require
                    .iter()
                    .map(|r| AttributeRequirementConfig {
                        attribute: r.attribute.clone(),
                        value: r.value.clone(),
                        one_of: (!r.one_of.is_empty()).then(|| r.one_of.clone()),
                        extra: Extra::new(),
                    })
                    .collect()
            }),
            user_mapping_provider: Some(UserMappingProviderConfig {
                module: None,
                config: Some(JinjaMappingConfig {
                    subject_claim: Some(p.user_mapping.subject_claim.clone()),
                    localpart_template: Some(p.user_mapping.localpart.clone()),
                    display_name_template: p.user_mapping.display_name.clone(),
                    email_template: p.user_mapping.email.clone(),
                    extra: Extra::new(),
                }),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        })
        .collect();
    let has_providers = !providers.is_empty();
    let mut extra = Extra::new();
    if uses_templates(host) {
        let mut templates = serde_yaml::Mapping::new();
        templates.insert(
            "custom_template_directory".into(),
            path_text(&ctx.output_dir.join(TEMPLATES_DIR)).into(),
        );
        extra.insert("templates".to_owned(), templates.into());
    }
    if host.email.is_some() {
        extra.insert(
            "next_link_domain_whitelist".to_owned(),
            serde_yaml::Value::Sequence(vec![host.element_host.clone().into()]),
        );
    }
    AuthSections {
        extra,
        oidc_providers: has_providers.then_some(providers),
        password_config: (!host.sso.password_login).then(|| PasswordConfig {
            enabled: Some(PasswordEnabled::Off),
            localdb_enabled: None,
            extra: Extra::new(),
        }),
        sso: has_providers.then(|| SsoConfig {
            client_whitelist: Some(vec![format!("{}/", host.element_url())]),
            extra: Extra::new(),
        }),
        email: host.email.as_ref().map(|e| EmailConfig {
            smtp_host: Some(e.smtp_host.clone()),
            smtp_port: Some(e.port()),
            smtp_user: e.user.clone(),
            force_tls: Some(e.tls == SmtpTls::Implicit),
            enable_tls: Some(e.tls != SmtpTls::Off),
            require_transport_security: Some(e.tls == SmtpTls::Starttls),
            notif_from: Some(e.from.clone()),
            app_name: Some(host.element.brand.clone()),
            enable_notifs: Some(e.notifications),
            notif_for_new_users: Some(e.notifications),
            client_base_url: Some(host.element_url()),
            notif_delay_before_mail: Some(Duration::Text(e.notification_delay.clone())),
            extra: Extra::new(),
        }),
    }
}

/// `homeserver.yaml` keys derived from `sso` and `email`, with the field
/// that sets each: `synapse.settings` may restate them but not change them.
pub const DERIVED_KEYS: [(&str, &str); 4] = [
    ("oidc_providers", "sso.providers"),
    (
        "email",
        "email (its password is added by ospw-matrix materialize synapse-secrets, which \
         writes the whole section)",
    ),
    (
        "templates",
        "sso and email (Synapse's pages and mails without images from other sites)",
    ),
    (
        "next_link_domain_whitelist",
        "email (password-reset links lead back to our Element only)",
    ),
];

/// Reports the `synapse.settings` that change what `sso` and `email` derive:
/// the [`DERIVED_KEYS`], and whether passwords sign in (`password_config`'s
/// `enabled` and `localdb_enabled`, other keys such as `policy` are free).
pub fn check_settings(
    host: &HostDescription,
    derived: &HomeserverConfig,
    merged: &HomeserverConfig,
    settings: &FreeformSettings,
    errs: &mut ValidationErrors,
) {
    for (key, field) in DERIVED_KEYS {
        if !settings.contains_key(key) {
            continue;
        }
        let same = match key {
            "oidc_providers" => derived.oidc_providers == merged.oidc_providers,
            "email" => derived.email == merged.email,
            // Without sso or email these are the admin's to set.
            other => match derived.extra.get(other) {
                None => true,
                Some(value) => merged.extra.get(other) == Some(value),
            },
        };
        if !same {
            errs.push(
                format!("synapse.settings.{key}"),
                format!("changes a key derived from {field}: set that field instead"),
            );
        }
    }
    if settings.contains_key("password_config")
        && PasswordConfig::allows_password_login(merged.password_config.as_ref())
            != host.sso.password_login
    {
        errs.push(
            "synapse.settings.password_config",
            "changes whether passwords sign in, which sso.password_login decides (ospw-matrix user add \
             and the CLI's admin account follow it): set sso.password_login instead",
        );
    }
}

/// The text of the runtime secrets file for `host`: the secrets Synapse
/// cannot read from a file (today the SMTP password), completing their
/// sections, as JSON. `{}` when there are none. The password file is read
/// here; its value never appears in an error.
pub fn secrets_file(host: &HostDescription) -> Result<String, Error> {
    let ctx = RenderContext {
        output_dir: "/nonexistent".into(),
    };
    let sections = derive(host, &ctx);
    let password = match host.email.as_ref().and_then(|e| e.password_file.as_ref()) {
        Some(file) => Some(read_one_line_secret(file, "email.password_file")?),
        None => None,
    };
    secrets_config_json(sections.email.as_ref(), password.as_deref())
}

/// Reads a secret kept on one line (a final line ending is dropped): not
/// empty, no control characters. Errors name the file and the field, never
/// the value.
pub fn read_one_line_secret(path: &std::path::Path, field: &str) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let bad = |why: &str| Error::BadSecret {
        path: path.to_path_buf(),
        message: format!("{why}: expected the secret on one line ({field})"),
    };
    if line.is_empty() {
        return Err(bad("is empty"));
    }
    if line.chars().any(char::is_control) {
        return Err(bad("holds more than one line or a control character"));
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{AttributeRequirement, EmailSettings, OidcProviderSettings};
    use crate::render::{synapse::homeserver, RenderContext};

    fn ctx() -> RenderContext {
        RenderContext {
            output_dir: "/etc/ospw-matrix".into(),
        }
    }

    fn provider(id: &str) -> OidcProviderSettings {
        serde_yaml::from_str(&format!(
            "{{id: {id}, name: Example SSO, issuer: 'https://auth.example.org/application/o/matrix/', \
             client_id: matrix, client_secret_file: /run/secrets/oidc}}"
        ))
        .expect("provider")
    }

    fn host() -> HostDescription {
        let mut host = crate::load::example_host().expect("example");
        host.sso.providers = vec![provider("authentik")];
        host
    }

    fn email() -> EmailSettings {
        serde_yaml::from_str(
            "{smtp_host: mail.example.org, from: 'Example Chat <noreply@example.org>', \
             user: matrix, password_file: /run/secrets/smtp, password_reset: true}",
        )
        .expect("email")
    }

    #[test]
    fn a_provider_creates_no_account_unless_told() {
        let config = homeserver(&host(), &ctx()).expect("derives");
        let p = &config.oidc_providers.as_ref().expect("providers")[0];
        assert_eq!(p.enable_registration, Some(false));
        assert_eq!(p.allow_existing_users, Some(false));
        assert_eq!(p.client_secret_path.as_deref(), Some("/run/secrets/oidc"));
        assert_eq!(p.pkce_method.as_deref(), Some("auto"));
        assert_eq!(p.idp_icon, None);
        let mapping = p
            .user_mapping_provider
            .as_ref()
            .and_then(|m| m.config.as_ref())
            .expect("mapping");
        assert_eq!(
            mapping.localpart_template.as_deref(),
            Some("{{ user.preferred_username }}")
        );
        assert_eq!(
            config.sso.as_ref().and_then(|s| s.client_whitelist.clone()),
            Some(vec!["https://chat.example.org/".to_owned()])
        );
        assert_eq!(config.privacy_violations(), ValidationErrors::new());
        let yaml = config.to_yaml_string().expect("yaml");
        assert!(!yaml.contains("client_secret:"), "{yaml}");

        let mut h = host();
        h.sso.providers[0].require = vec![AttributeRequirement {
            attribute: "groups".into(),
            value: Some("chat".into()),
            one_of: Vec::new(),
        }];
        h.sso.providers[0].icon_file = Some("/etc/icons/sso.png".into());
        let config = homeserver(&h, &ctx()).expect("derives");
        let p = &config.oidc_providers.as_ref().expect("providers")[0];
        assert_eq!(p.enable_registration, Some(true));
        assert_eq!(
            p.idp_icon.as_deref(),
            Some("mxc://example.org/ospw-sso-icon-authentik")
        );
        assert_eq!(
            p.attribute_requirements
                .as_ref()
                .map(|r| r[0].value.clone()),
            Some(Some("chat".to_owned()))
        );
    }

    #[test]
    fn passwords_off_and_mail_settings() {
        let mut h = host();
        h.sso.password_login = false;
        let mut e = email();
        e.password_reset = false;
        e.notifications = true;
        h.email = Some(e);
        let config = homeserver(&h, &ctx()).expect("derives");
        assert_eq!(
            config.password_config.as_ref().and_then(|p| p.enabled),
            Some(PasswordEnabled::Off)
        );
        let mail = config.email.as_ref().expect("email");
        assert_eq!(mail.smtp_port, Some(587));
        assert_eq!(mail.require_transport_security, Some(true));
        assert_eq!(mail.force_tls, Some(false));
        assert_eq!(mail.enable_notifs, Some(true));
        assert_eq!(mail.app_name.as_deref(), Some("Example Chat"));
        assert_eq!(
            mail.client_base_url.as_deref(),
            Some("https://chat.example.org")
        );
        assert!(!mail.extra.contains_key("smtp_pass"));
        assert_eq!(config.privacy_violations(), ValidationErrors::new());
    }

    #[test]
    fn settings_may_not_change_the_sign_in_and_mail_sections() {
        let mut h = host();
        h.email = Some(email());
        for (key, value) in [
            (
                "oidc_providers",
                serde_json::json!([{"idp_id": "x", "issuer": "https://x.example/", "client_id": "c",
                    "client_secret_path": "/s", "enable_registration": false}]),
            ),
            (
                "email",
                serde_json::json!({"smtp_host": "other.example.org", "force_tls": true}),
            ),
            ("password_config", serde_json::json!({"enabled": false})),
        ] {
            h.synapse.settings.insert(key.into(), value);
        }
        let errs = homeserver(&h, &ctx()).expect_err("refused");
        for key in ["oidc_providers", "email", "password_config"] {
            assert!(
                errs.mentions(&format!("synapse.settings.{key}")),
                "{key}: {errs}"
            );
        }
        // Other password_config keys stay free.
        let mut h = host();
        h.synapse.settings.insert(
            "password_config".into(),
            serde_json::json!({"policy": {"enabled": true, "minimum_length": 12}}),
        );
        assert!(homeserver(&h, &ctx()).is_ok());
    }

    #[test]
    fn the_secrets_file_has_the_smtp_password_and_errors_never_show_it() {
        let dir = std::env::temp_dir().join(format!("ospw-auth-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("smtp");
        std::fs::write(&file, "hunter2: {yes}\n").unwrap();
        let mut h = host();
        let mut e = email();
        e.password_file = Some(file.clone());
        h.email = Some(e);
        let text = secrets_file(&h).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["email"]["smtp_pass"].as_str(), Some("hunter2: {yes}"));
        assert_eq!(v["email"]["smtp_user"].as_str(), Some("matrix"));
        assert_eq!(
            v["email"]["require_transport_security"].as_bool(),
            Some(true)
        );
        std::fs::write(&file, "hunter2\nsecond line\n").unwrap();
        let err = secrets_file(&h).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("email.password_file"), "{err}");
        h.email = None;
        assert_eq!(secrets_file(&h).unwrap(), "{}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
