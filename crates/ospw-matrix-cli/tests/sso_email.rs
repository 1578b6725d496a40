//! Single sign-on and mail against the real programs' readers: Synapse's own
//! loader reads the rendered `homeserver.yaml` plus the runtime secrets file
//! `ospw-matrix materialize synapse-secrets` writes (both as `--config-path`),
//! Synapse's published schema accepts them, and the claim templates the
//! validator accepts are exactly ones Jinja2 (with Synapse's own mapping
//! environment) compiles and renders, while those Jinja2 refuses are refused
//! first by the validator.
//!
//! Needs Synapse's virtual environment with its `oidc` extra (authlib);
//! under CI a missing one fails.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::{assert_fails_naming, require, run, synapse_python, TempDir, EXAMPLE_NAMES};

/// Loads the configuration files with Synapse's `HomeServerConfig` (inline
/// secrets disallowed) and prints what Synapse made of sign-in and mail.
const PROBE: &str = r#"
import sys, json
from synapse.config.homeserver import HomeServerConfig
args = []
for p in sys.argv[1:]:
    args += ["-c", p]
c = HomeServerConfig.load_config("", args + ["--no-secrets-in-config"])
providers = []
for p in c.oidc.oidc_providers:
    m = p.user_mapping_provider_config
    providers.append({
        "idp_id": p.idp_id, "idp_name": p.idp_name, "idp_icon": p.idp_icon,
        "idp_brand": p.idp_brand, "issuer": p.issuer, "client_id": p.client_id,
        "client_secret": p.client_secret, "client_auth_method": p.client_auth_method,
        "pkce_method": p.pkce_method, "scopes": list(p.scopes),
        "allow_existing_users": p.allow_existing_users,
        "enable_registration": p.enable_registration,
        "attribute_requirements": [
            {"attribute": r.attribute, "value": r.value, "one_of": r.one_of}
            for r in p.attribute_requirements
        ],
        "localpart": m.localpart_template.render(user={"preferred_username": "Alice Smith"}),
        "subject": m.subject_template.render(user={"sub": "s-1"}),
    })
e = c.email
print(json.dumps({
    "providers": providers,
    "password_enabled_for_login": c.auth.password_enabled_for_login,
    "client_whitelist": c.sso.sso_client_whitelist,
    "can_verify_email": e.can_verify_email,
    "smtp_host": e.email_smtp_host, "smtp_port": e.email_smtp_port,
    "smtp_user": e.email_smtp_user, "smtp_pass": e.email_smtp_pass,
    "force_tls": e.force_tls, "enable_tls": e.enable_smtp_tls,
    "require_transport_security": e.require_transport_security,
    "notif_from": e.email_notif_from, "app_name": e.email_app_name,
    "enable_notifs": e.email_enable_notifs,
    "client_base_url": getattr(e, "email_riot_base_url", None),
    "notif_delay_ms": getattr(e, "notif_delay_before_mail_ms", None),
    "enable_registration": c.registration.enable_registration,
}))
"#;

/// Compiles and renders each template (one per line of the file in
/// argv[1]) with the Jinja2 environment of Synapse's OIDC mapping provider;
/// prints one JSON line per template: `{"ok": bool, "out": str}`.
const JINJA: &str = r#"
import sys, json
from synapse.handlers.oidc import env
user = {"preferred_username": "Alice", "name": "Alice Smith", "email": "alice@example.org",
        "given_name": "Alice", "family_name": "Smith", "sub": "s-1",
        "address": {"locality": "Berlin"}, "https://example.org/name": "x"}
for line in open(sys.argv[1]).read().split("\n"):
    if not line:
        continue
    t = json.loads(line)
    try:
        out = env.from_string(t).render(user=user)
        print(json.dumps({"ok": True, "out": out}))
    except Exception as e:
        print(json.dumps({"ok": False, "out": type(e).__name__}))
"#;

/// Where Synapse's published schema is behind its own code, with why the
/// code is right; each must still be reported (so a fixed schema is noticed).
const KNOWN_SCHEMA_GAPS: [&str; 2] = [
    // Synapse passes smtp_port to Twisted's HostnameEndpoint, which needs an
    // integer; the schema's own example writes 587.
    "schema: email/smtp_port: 465 is not of type 'string', 'null'",
    // OIDCConfig reads attribute_requirements (synapse/config/oidc.py); the
    // schema documents it for the other SSO mechanisms only.
    "unknown key: oidc_providers/0/attribute_requirements",
];

/// Renders, with the templates Synapse loaded for the configuration files
/// given, a notification mail about an unencrypted message (whose text
/// Synapse's own template would show) and its single sign-on error page;
/// prints them as JSON.
const TEMPLATE_PROBE: &str = r#"
import sys, json
from synapse.config.homeserver import HomeServerConfig
args = []
for p in sys.argv[1:]:
    args += ["-c", p]
c = HomeServerConfig.load_config("", args)
message = {"event_type": "m.room.message", "is_historical": False, "id": "$e", "ts": 0,
           "sender_name": "Carol", "sender_avatar_url": None, "sender_hash": 1,
           "msgtype": "m.text", "body_text_html": "TOP-SECRET-TEXT", "body_text_plain": "TOP-SECRET-TEXT",
           "format": None, "image_url": None}
room = {"title": "Planning", "hash": 2, "invite": False, "avatar_url": None,
        "link": "https://chat.example.org/#/room/!r:example.org",
        "notifs": [{"link": "https://chat.example.org/#/room/!r:example.org/$e", "ts": 0, "messages": [message]}]}
v = {"app_name": c.email.email_app_name, "server_name": "example.org", "user_display_name": "Alice",
     "unsubscribe_link": "https://matrix.example.org/_synapse/client/unsubscribe?x", "summary_text": "You have a message",
     "rooms": [room], "reason": {}}
print(json.dumps({
    "html": c.email.email_notif_template_html.render(**v),
    "text": c.email.email_notif_template_text.render(**v),
    "error_page": c.sso.sso_error_template.render(error="unauthorised", error_description="x"),
    "reset_mail": c.email.email_password_reset_template_html.render(link="https://matrix.example.org/r", app_name="Example Chat"),
}))
"#;

fn python() -> Option<PathBuf> {
    let python = require("Synapse's Python (OSPW_SYNAPSE_PYTHON)", synapse_python())?;
    let oidc = Command::new(&python)
        .args([
            "-c",
            "from synapse.util.check_dependencies import check_requirements; check_requirements('oidc')",
        ])
        .current_dir(std::env::temp_dir())
        .status()
        .is_ok_and(|s| s.success());
    require(
        "Synapse's oidc extra (pip install 'matrix-synapse[oidc]')",
        oidc.then_some(python),
    )
}

fn host_yaml(dir: &Path, password_login: bool) -> String {
    let d = dir.display();
    format!(
        "{EXAMPLE_NAMES}synapse:
  data_dir: {d}/data
element:
  brand: Example Chat
secrets:
  dir: {d}/secrets
sso:
  password_login: {password_login}
  providers:
    - id: authentik
      name: Example SSO
      brand: authentik
      icon_file: {d}/sso.png
      issuer: https://auth.example.org/application/o/matrix/
      client_id: matrix
      client_secret_file: {d}/oidc-secret
      scopes: [openid, profile, email, groups]
      pkce: always
      user_mapping:
        localpart: '{{{{ user.preferred_username | lower }}}}'
        email: '{{{{ user.email }}}}'
      allow_existing_users: true
      require:
        - attribute: groups
          one_of: [chat-users, chat-admins]
    - id: partner
      name: Partner login
      issuer: https://login.partner.example/
      client_id: chat
      client_secret_file: {d}/partner-secret
email:
  smtp_host: mail.example.org
  tls: implicit
  user: matrix@example.org
  password_file: {d}/smtp-password
  from: Example Chat <noreply@example.org>
  password_reset: {password_login}
  notifications: true
  notification_delay: 5m
"
    )
}

struct Setup {
    tmp: TempDir,
}

impl Setup {
    fn new(tag: &str, password_login: bool) -> Setup {
        let tmp = TempDir::new(tag);
        let d = tmp.path();
        let out = run(&[
            "secrets",
            "init",
            "--dir",
            d.join("secrets").to_str().expect("utf8"),
        ]);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(d.join("oidc-secret"), "oidc-client-secret-value\n").expect("write");
        std::fs::write(d.join("partner-secret"), "partner-secret-value").expect("write");
        std::fs::write(d.join("smtp-password"), "smtp: \"pa$$word\" {yes}\n").expect("write");
        std::fs::write(d.join("host.yaml"), host_yaml(d, password_login)).expect("write");
        support::assert_renders(Some(&d.join("host.yaml")), &d.join("out"));
        Setup { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn materialize(&self) -> std::process::Output {
        run(&[
            "materialize",
            "synapse-secrets",
            "--config",
            self.path("out/host.json").to_str().expect("utf8"),
            "--out",
            self.path("synapse-secrets.yaml").to_str().expect("utf8"),
        ])
    }
}

fn probe(python: &Path, files: &[PathBuf]) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .args(files)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "Synapse refused the configuration: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

#[test]
fn synapse_reads_providers_and_mail_with_the_materialized_password() {
    let Some(python) = python() else { return };
    let s = Setup::new("sso-synapse", true);
    let out = s.materialize();
    assert!(out.status.success(), "{}", support::stderr_of(&out));
    let secrets = s.path("synapse-secrets.yaml");
    let mode = std::fs::metadata(&secrets)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Neither the rendered files nor the host description hold a secret.
    for rel in ["out/synapse/homeserver.yaml", "out/host.json"] {
        let text = std::fs::read_to_string(s.path(rel)).expect("read");
        for secret in [
            "oidc-client-secret-value",
            "partner-secret-value",
            "pa$$word",
        ] {
            assert!(!text.contains(secret), "{secret} in {rel}");
        }
    }
    let hs = s.path("out/synapse/homeserver.yaml");
    let got = probe(&python, &[hs.clone(), secrets.clone()]);
    let p = &got["providers"][0];
    assert_eq!(p["idp_id"], "oidc-authentik");
    assert_eq!(p["idp_name"], "Example SSO");
    assert_eq!(p["idp_icon"], "mxc://example.org/ospw-sso-icon-authentik");
    assert_eq!(p["idp_brand"], "authentik");
    assert_eq!(p["client_secret"], "oidc-client-secret-value");
    assert_eq!(p["client_auth_method"], "client_secret_basic");
    assert_eq!(p["pkce_method"], "always");
    assert_eq!(p["scopes"], json!(["openid", "profile", "email", "groups"]));
    assert_eq!(p["allow_existing_users"], true);
    assert_eq!(p["enable_registration"], true);
    assert_eq!(
        p["attribute_requirements"],
        json!([{"attribute": "groups", "value": null, "one_of": ["chat-users", "chat-admins"]}])
    );
    assert_eq!(p["localpart"], "alice smith");
    assert_eq!(p["subject"], "s-1");
    let partner = &got["providers"][1];
    assert_eq!(partner["idp_id"], "oidc-partner");
    assert_eq!(partner["client_secret"], "partner-secret-value");
    // No requirement, no auto_create: a first sign-in creates no account.
    assert_eq!(partner["enable_registration"], false);
    assert_eq!(partner["allow_existing_users"], false);
    assert_eq!(partner["idp_icon"], Value::Null);
    assert_eq!(got["enable_registration"], false);
    assert_eq!(got["password_enabled_for_login"], true);
    let whitelist = got["client_whitelist"].as_array().expect("list");
    assert_eq!(whitelist[0], "https://chat.example.org/");
    assert_eq!(got["can_verify_email"], true);
    assert_eq!(got["smtp_host"], "mail.example.org");
    assert_eq!(got["smtp_port"], 465);
    assert_eq!(got["smtp_user"], "matrix@example.org");
    // The password as written in its file (one line), quotes and all.
    assert_eq!(got["smtp_pass"], "smtp: \"pa$$word\" {yes}");
    assert_eq!(got["force_tls"], true);
    assert_eq!(got["enable_tls"], true);
    assert_eq!(got["notif_from"], "Example Chat <noreply@example.org>");
    assert_eq!(got["app_name"], "Example Chat");
    assert_eq!(got["enable_notifs"], true);
    assert_eq!(got["client_base_url"], "https://chat.example.org");
    assert_eq!(got["notif_delay_ms"], 300_000);

    // Synapse's published schema: nothing but its known gaps.
    if let Some(schema) = support::require_synapse_schema_file() {
        let problems = support::synapse_schema_problems(&python, &schema, &hs);
        assert_eq!(problems, KNOWN_SCHEMA_GAPS, "{problems:#?}");
    }

    // Without the secrets file Synapse would send mail without the password:
    // homeserver.yaml alone has none.
    let alone = probe(&python, &[hs]);
    assert_eq!(alone["smtp_pass"], Value::Null);
}

#[test]
fn with_passwords_off_synapse_offers_no_password_login() {
    let Some(python) = python() else { return };
    let s = Setup::new("sso-nopw", false);
    assert!(s.materialize().status.success());
    let got = probe(
        &python,
        &[
            s.path("out/synapse/homeserver.yaml"),
            s.path("synapse-secrets.yaml"),
        ],
    );
    assert_eq!(got["password_enabled_for_login"], false);
    let element: Value = serde_json::from_str(
        &std::fs::read_to_string(s.path("out/element/config.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(
        element["setting_defaults"]["UIFeature.passwordReset"],
        false
    );
    assert_eq!(element["setting_defaults"]["UIFeature.thirdPartyId"], false);
    // Resets are off: the proxy answers the reset-mail request itself.
    let caddy = std::fs::read_to_string(s.path("out/caddy/sites.caddy")).expect("read");
    assert!(
        caddy.contains("handle /_matrix/client/*/account/password/email/requestToken"),
        "{caddy}"
    );
}

#[test]
fn materialize_refuses_bad_input_without_writing_or_showing_the_secret() {
    let s = Setup::new("sso-materialize", true);
    let out_file = s.path("synapse-secrets.yaml");
    // A password over two lines.
    std::fs::write(s.path("smtp-password"), "hunter2-first\nhunter2-second\n").expect("write");
    let out = s.materialize();
    let stderr = assert_fails_naming(&out, &["email.password_file", "smtp-password"]);
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!out_file.exists());
    // A missing password file.
    std::fs::remove_file(s.path("smtp-password")).expect("rm");
    assert_fails_naming(&s.materialize(), &["smtp-password"]);
    assert!(!out_file.exists());
    // An invalid host description is refused like render refuses it.
    std::fs::write(s.path("smtp-password"), "fine\n").expect("write");
    let host = s.path("bad-host.yaml");
    std::fs::write(
        &host,
        host_yaml(s.tmp.path(), true).replace("tls: implicit", "tls: 'off'"),
    )
    .expect("write");
    let out = run(&[
        "materialize",
        "synapse-secrets",
        "--config",
        host.to_str().expect("utf8"),
        "--out",
        out_file.to_str().expect("utf8"),
    ]);
    assert_fails_naming(&out, &["email.tls"]);
    assert!(!out_file.exists());
    // Without mail, the file is an empty section list.
    let plain = s.path("plain.yaml");
    std::fs::write(
        &plain,
        format!(
            "{EXAMPLE_NAMES}secrets:\n  dir: {}\n",
            s.path("secrets").display()
        ),
    )
    .expect("write");
    let out = run(&[
        "materialize",
        "synapse-secrets",
        "--config",
        plain.to_str().expect("utf8"),
        "--out",
        out_file.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", support::stderr_of(&out));
    assert_eq!(std::fs::read_to_string(&out_file).expect("read"), "{}\n");
}

/// Templates the validator accepts compile and render in Jinja2 as Synapse
/// runs them; templates Jinja2 cannot compile are refused by the validator.
#[test]
fn claim_templates_agree_with_jinja2() {
    let Some(python) = python() else { return };
    let accepted = [
        "{{ user.preferred_username }}",
        "{{user.email|localpart_from_email}}",
        "{{ user.given_name }} {{ user.family_name | upper }}",
        "{{ user['https://example.org/name'] | lower | trim }}",
        "{{ user.address.locality | title }}",
        "chat-{{ user.sub | capitalize }}",
        "{{ \"fixed\" }}-{{ user.sub }}",
    ];
    let jinja_refuses = [
        "{{ user.name",
        "{{ }}",
        "{{ user.name | }}",
        "{% if user.name %}x",
        "{{ user[ }}",
        "{{ user.name }}{% endif %}",
        "{# open comment",
        "{{ user.name | lower( }}",
        "{{ 'unterminated }}",
    ];
    let tmp = TempDir::new("sso-jinja");
    let all: Vec<&str> = accepted
        .iter()
        .chain(jinja_refuses.iter())
        .copied()
        .collect();
    let lines: String = all
        .iter()
        .map(|t| serde_json::to_string(t).expect("json") + "\n")
        .collect();
    let file = tmp.path().join("templates");
    std::fs::write(&file, lines).expect("write");
    let out = Command::new(&python)
        .arg("-c")
        .arg(JINJA)
        .arg(&file)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(results.len(), all.len());
    for (t, r) in accepted.iter().zip(&results) {
        assert!(
            ospw_matrix::values::parse_claim_template(t).is_ok(),
            "the validator refuses {t}"
        );
        assert_eq!(r["ok"], true, "Jinja2 refuses {t}: {r}");
    }
    assert_eq!(results[0]["out"], "Alice");
    assert_eq!(results[1]["out"], "alice");
    assert_eq!(results[3]["out"], "x");
    assert_eq!(results[4]["out"], "Berlin");
    for (t, r) in jinja_refuses.iter().zip(&results[accepted.len()..]) {
        assert_eq!(r["ok"], false, "Jinja2 accepts {t}: {r}");
        assert!(
            ospw_matrix::values::parse_claim_template(t).is_err(),
            "the validator accepts {t}, which Jinja2 cannot compile"
        );
    }
}

/// With single sign-on or mail on, Synapse's pages and mails (loaded by
/// Synapse itself from the rendered template directory) load nothing from
/// another site, and notification mails never carry a message's text.
#[test]
fn synapse_pages_and_mails_load_nothing_from_elsewhere() {
    let Some(python) = python() else { return };
    let s = Setup::new("sso-templates", true);
    assert!(s.materialize().status.success());
    let out = Command::new(&python)
        .arg("-c")
        .arg(TEMPLATE_PROBE)
        .arg(s.path("out/synapse/homeserver.yaml"))
        .arg(s.path("synapse-secrets.yaml"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in ["html", "text", "error_page", "reset_mail"] {
        let text = got[key].as_str().expect("rendered");
        for host in ["matrix.org", "riot.im", "element.io", "vector.im"] {
            assert!(!text.contains(host), "{key} loads from {host}:\n{text}");
        }
        assert!(!text.contains("<img"), "{key} has an image:\n{text}");
    }
    for key in ["html", "text"] {
        let text = got[key].as_str().expect("rendered");
        assert!(!text.contains("TOP-SECRET-TEXT"), "{key} holds the message");
        assert!(text.contains("A message from Carol"), "{key}: {text}");
        assert!(
            text.contains("https://chat.example.org/#/room/!r:example.org/$e"),
            "{key}: {text}"
        );
        assert!(text.contains("Example Chat"), "{key}: {text}");
    }
    assert!(got["reset_mail"]
        .as_str()
        .expect("rendered")
        .contains("https://matrix.example.org/r"));
}
