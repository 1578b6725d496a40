//! Single sign-on and mail against real programs: the stack (PostgreSQL,
//! Synapse, Caddy with its internal CA) started from the CLI's output, a
//! certified OpenID Connect provider (`oidc-provider`, `idp/idp.mjs`) behind
//! a second Caddy at `https://localhost:PORT`, and an SMTP server (aiosmtpd,
//! `smtp/catcher.py`) that requires STARTTLS and the SMTP password. A browser
//! (reqwest with a cookie store, following every redirect by hand) goes
//! through the provider's login and consent pages and Synapse's callback;
//! matrix-sdk exchanges the login token and sends an encrypted message.
//!
//! Synapse trusts the provider's and the SMTP server's certificate through
//! `SSL_CERT_FILE` (the second Caddy's root CA), as a host trusts its
//! organisation's CA. Prints one line per check and `acceptance: N passed,
//! N failed`. Environment as for `tests/acceptance.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use matrix_sdk::ruma::api::client::room::create_room::v3::Request as CreateRoomRequest;
use ospw_matrix_acceptance::client::{invite_and_join, read_decrypted, send_text, sync};
use ospw_matrix_acceptance::harness::{self, must};
use ospw_matrix_acceptance::http::{get_json, password_login, seg};
use ospw_matrix_acceptance::proc;
use ospw_matrix_acceptance::report::Report;
use ospw_matrix_acceptance::stack::{Options, Stack, SERVICE_START};
use ospw_matrix_acceptance::util::{mkdir, random_hex, utf8, write_private};
use ospw_matrix_acceptance::wait;
use reqwest::Url;
use serde_json::{json, Value};

const SERVER_NAME: &str = "example.test";
const MATRIX_HOST: &str = "matrix.example.test";
const ELEMENT_HOST: &str = "chat.example.test";
/// The whole run may not take longer than this.
const SUITE_TIMEOUT: Duration = Duration::from_secs(1200);
/// A 1×1 PNG: the sign-in button's icon.
const ICON_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];
/// Reads a mail file with Python's email module: To, Subject and every text
/// part decoded (Synapse sends base64-encoded UTF-8 parts).
const READ_MAIL: &str = r#"
import sys, json, email
from email import policy
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.default)
parts = [p.get_content() for p in m.walk() if p.get_content_maintype() == "text"]
print(json.dumps({"to": str(m["To"]), "from": str(m["From"]), "subject": str(m["Subject"]), "text": "\n".join(parts)}))
"#;

fn main() -> ExitCode {
    harness::main("sso", SUITE_TIMEOUT, run)
}

/// The run's fixed facts: ports, files, secrets.
struct World {
    https: u16,
    idp_https: u16,
    smtp: u16,
    synapse: u16,
    main_ca: PathBuf,
    idp_ca: PathBuf,
    mails: PathBuf,
    host_yaml: PathBuf,
    secrets_file: PathBuf,
    python: PathBuf,
    /// Secret values that must never appear in a log.
    secrets: Vec<(String, String)>,
}

impl World {
    fn matrix(&self, path: &str) -> String {
        format!("https://{MATRIX_HOST}:{}{path}", self.https)
    }

    fn element(&self) -> String {
        format!("https://{ELEMENT_HOST}:{}/", self.https)
    }

    /// A fresh browser: its own cookie jar, trusting both Caddys' CAs,
    /// resolving the test names to 127.0.0.1, never following a redirect
    /// by itself.
    fn browser(&self) -> Result<reqwest::Client> {
        let lo: SocketAddr = ([127, 0, 0, 1], 0).into();
        let cert = |p: &Path| -> Result<reqwest::Certificate> {
            Ok(reqwest::Certificate::from_pem(&std::fs::read(p)?)?)
        };
        // Before the stack's Caddy has made its CA, the provider's alone.
        let mut certs = vec![cert(&self.idp_ca)?];
        if self.main_ca.is_file() {
            certs.push(cert(&self.main_ca)?);
        }
        Ok(reqwest::Client::builder()
            .tls_certs_only(certs)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .resolve(MATRIX_HOST, lo)
            .resolve(ELEMENT_HOST, lo)
            .resolve(SERVER_NAME, lo)
            .resolve("localhost", lo)
            .build()?)
    }
}

/// How a single sign-on attempt ended.
#[derive(Debug)]
enum Outcome {
    /// Synapse redirected to the client with this login token.
    Token(String),
    /// A page that is not a redirect: Synapse's (error or confirmation) page.
    Page { status: u16, body: String, at: Url },
    /// The provider refused the user name and password.
    IdpRefused,
}

/// The value of query parameter `name` in `url`.
fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `action` of the first form in `html`.
fn form_action(html: &str) -> Option<String> {
    let at = html.find("<form")?;
    let rest = &html[at..];
    let a = rest.find("action=\"")? + 8;
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

/// Starts a sign-in at `start` and follows it as a browser: every
/// redirect, the provider's login form (filled with `user`, `password`)
/// and consent form, up to Synapse's answer. `codes` collects the one-time
/// authorization codes seen (they must not be logged).
async fn sso_flow(
    b: &reqwest::Client,
    start: Url,
    user: &str,
    password: &str,
    codes: &mut Vec<String>,
) -> Result<Outcome> {
    let mut url = start;
    let mut trail = Vec::new();
    for _ in 0..30 {
        let r = b
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = r.status().as_u16();
        trail.push(format!(
            "{status} {}{}",
            url.host_str().unwrap_or(""),
            url.path()
        ));
        if (300..400).contains(&status) {
            let loc = r
                .headers()
                .get(reqwest::header::LOCATION)
                .context("a redirect without Location")?
                .to_str()?;
            let next = url.join(loc)?;
            if let Some(code) = param(&next, "code") {
                codes.push(code);
            }
            if let Some(token) = param(&next, "loginToken") {
                return Ok(Outcome::Token(token));
            }
            url = next;
            continue;
        }
        let body = r.text().await?;
        if url.host_str() == Some("localhost") && status == 200 {
            let action = form_action(&body)
                .with_context(|| format!("a provider page without a form: {body}"))?;
            let target = url.join(&action)?;
            let form: Vec<(&str, &str)> = if action.ends_with("/login") {
                vec![("username", user), ("password", password)]
            } else {
                Vec::new()
            };
            let r = b.post(target.clone()).form(&form).send().await?;
            let s = r.status().as_u16();
            trail.push(format!("{s} POST {}", target.path()));
            if s == 401 {
                return Ok(Outcome::IdpRefused);
            }
            ensure!(
                (300..400).contains(&s),
                "the provider answered {s} to {}: {}",
                target.path(),
                r.text().await.unwrap_or_default()
            );
            let loc = r
                .headers()
                .get(reqwest::header::LOCATION)
                .context("no Location")?
                .to_str()?;
            url = target.join(loc)?;
            continue;
        }
        return Ok(Outcome::Page {
            status,
            body,
            at: url,
        });
    }
    bail!("more than 30 steps: {trail:?}")
}

/// The start of a sign-in through provider `id` (Synapse's `oidc-ID`) for
/// a client at `redirect`.
fn start_url(w: &World, id: Option<&str>, redirect: &str) -> Result<Url> {
    let path = match id {
        Some(id) => format!("/_matrix/client/v3/login/sso/redirect/oidc-{id}"),
        None => "/_matrix/client/v3/login/sso/redirect".to_owned(),
    };
    let mut u = Url::parse(&w.matrix(&path))?;
    u.query_pairs_mut().append_pair("redirectUrl", redirect);
    Ok(u)
}

/// Signs `user` in through provider `id` for Element in a fresh browser.
async fn element_sso(
    w: &World,
    id: &str,
    user: &str,
    password: &str,
    codes: &mut Vec<String>,
) -> Result<Outcome> {
    let b = w.browser()?;
    sso_flow(
        &b,
        start_url(w, Some(id), &w.element())?,
        user,
        password,
        codes,
    )
    .await
}

/// Signs `user` in through provider `id` for Element and returns the login token.
async fn sso_token(
    w: &World,
    id: &str,
    user: &str,
    password: &str,
    codes: &mut Vec<String>,
) -> Result<String> {
    match element_sso(w, id, user, password, codes).await? {
        Outcome::Token(t) => Ok(t),
        other => bail!("no login token: {other:?}"),
    }
}

/// Signs `user` in through provider `id`, expecting Synapse to refuse with
/// an error page; returns its status and text.
async fn sso_refused(
    w: &World,
    id: &str,
    user: &str,
    password: &str,
    codes: &mut Vec<String>,
) -> Result<(u16, String)> {
    match element_sso(w, id, user, password, codes).await? {
        Outcome::Page { status, body, at } => {
            ensure!(
                at.host_str() == Some(MATRIX_HOST),
                "the refusal came from {at}, not Synapse"
            );
            Ok((status, body))
        }
        other => bail!("expected Synapse's error page, got {other:?}"),
    }
}

/// A matrix-sdk session from a login token, through Caddy.
async fn sdk_from_token(w: &World, token: &str, device: &str) -> Result<matrix_sdk::Client> {
    let http = w.browser_for_sdk()?;
    let client = matrix_sdk::Client::builder()
        .homeserver_url(w.matrix(""))
        .respect_login_well_known(false)
        .http_client(http)
        .build()
        .await?;
    client
        .matrix_auth()
        .login_token(token)
        .initial_device_display_name(device)
        .send()
        .await
        .context("log in with the login token")?;
    Ok(client)
}

impl World {
    /// An HTTP client for matrix-sdk: the browser's trust and names,
    /// following redirects, no cookies.
    fn browser_for_sdk(&self) -> Result<reqwest::Client> {
        let lo: SocketAddr = ([127, 0, 0, 1], 0).into();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.main_ca)?)?;
        Ok(reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(60))
            .resolve(MATRIX_HOST, lo)
            .resolve(ELEMENT_HOST, lo)
            .resolve(SERVER_NAME, lo)
            .build()?)
    }

    /// The CLI's admin service token (from its state file in the secrets directory).
    fn admin_token(&self, st: &Stack) -> Result<String> {
        let state: Value =
            serde_json::from_slice(&std::fs::read(st.p.secrets.join("admin-account.json"))?)?;
        state["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no token in the CLI's state file")
    }

    /// The admin API's record of `@localpart:SERVER`, or None when it does not exist.
    async fn account(&self, st: &Stack, localpart: &str) -> Result<Option<Value>> {
        // Make sure the CLI's service account exists (and its token is fresh).
        st.cli_ok(&["user", "list", "--config", utf8(&self.host_yaml)?])
            .await?;
        let token = self.admin_token(st)?;
        let url = format!(
            "http://127.0.0.1:{}/_synapse/admin/v2/users/{}",
            self.synapse,
            seg(&format!("@{localpart}:{SERVER_NAME}"))
        );
        let r = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await?;
        match r.status().as_u16() {
            404 => Ok(None),
            200 => Ok(Some(r.json().await?)),
            s => bail!("GET {url}: {s} {}", r.text().await.unwrap_or_default()),
        }
    }

    /// The mails caught so far, each as `{to, from, subject, text}`.
    async fn mails(&self) -> Result<Vec<Value>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.mails)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let mut c = std::process::Command::new(&self.python);
            c.arg("-c").arg(READ_MAIL).arg(&f);
            let o = proc::run_ok(c, Duration::from_secs(30)).await?;
            out.push(serde_json::from_str(&o.stdout)?);
        }
        Ok(out)
    }

    /// Waits for a mail to `to` whose subject contains `subject`.
    async fn wait_for_mail(&self, to: &str, subject: &str) -> Result<Value> {
        wait::until(
            &format!("a mail to {to} about {subject:?}"),
            Duration::from_secs(120),
            Duration::from_millis(500),
            || async move {
                Ok(self.mails().await?.into_iter().find(|m| {
                    m["to"].as_str().is_some_and(|t| t.contains(to))
                        && m["subject"].as_str().is_some_and(|s| s.contains(subject))
                }))
            },
        )
        .await
    }
}

/// `https://` URLs in `text`.
fn urls_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>' || c == '\'')
        .filter(|t| t.starts_with("https://") || t.starts_with("http://"))
        .map(|t| t.replace("&amp;", "&"))
        .collect()
}

/// Synapse's log of the run.
fn synapse_log(st: &Stack) -> String {
    std::fs::read_to_string(st.p.logs.join("synapse.log")).unwrap_or_default()
}

/// Every log file of the run, as (name, text).
fn all_logs(st: &Stack) -> Vec<(String, String)> {
    let mut files = Vec::new();
    ospw_matrix_acceptance::util::collect_files(&st.p.logs, &mut files);
    files
        .into_iter()
        .map(|f| {
            (
                f.display().to_string(),
                std::fs::read_to_string(&f).unwrap_or_default(),
            )
        })
        .collect()
}

fn host_sections(w: &World, dir: &Path, password_login: bool, gone_port: u16) -> String {
    let f = |name: &str| dir.join(name).display().to_string();
    let issuer = format!("https://localhost:{}", w.idp_https);
    format!(
        "sso:
  password_login: {password_login}
  providers:
    - id: corp
      name: Corp SSO
      brand: authentik
      icon_file: {icon}
      issuer: {issuer}
      client_id: synapse-corp
      client_secret_file: {corp}
      scopes: [openid, profile, email, groups]
      user_mapping:
        email: '{{{{ user.email }}}}'
      allow_existing_users: true
      require:
        - attribute: groups
          value: chat-users
    - id: strict
      name: Strict SSO
      issuer: {issuer}
      client_id: synapse-strict
      client_secret_file: {strict}
    - id: wrong
      name: Misconfigured SSO
      issuer: {issuer}
      client_id: synapse-wrong
      client_secret_file: {wrong}
      auto_create: true
    - id: gone
      name: Unreachable SSO
      issuer: https://localhost:{gone_port}
      client_id: synapse-gone
      client_secret_file: {gone}
      auto_create: true
email:
  smtp_host: localhost
  smtp_port: {smtp}
  tls: starttls
  user: synapse@example.test
  password_file: {smtp_pw}
  from: Acceptance Chat <noreply@example.test>
  password_reset: {password_login}
  notifications: true
  notification_delay: 2s
",
        icon = f("icon.png"),
        corp = f("oidc-corp"),
        strict = f("oidc-strict"),
        wrong = f("oidc-wrong"),
        gone = f("oidc-gone"),
        smtp = w.smtp,
        smtp_pw = f("smtp-password"),
    )
}

async fn run(report: &mut Report, slot: &mut Option<Stack>) -> Result<()> {
    report.section("setup");
    let opts = Options {
        name: "sso",
        coturn: false,
        caddy: true,
        fast_postgres: true,
        cmd_timeout: Duration::from_secs(120),
        synapse_start: Duration::from_secs(300),
        workers: None,
    };
    let tools = harness::tools(report, &opts, "Synapse, PostgreSQL and Caddy are installed")?;
    let idp_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("idp");
    let catcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/catcher.py");
    must(
        report,
        "node, oidc-provider and aiosmtpd are installed",
        (|| {
            let node = std::process::Command::new("node").arg("--version").output();
            ensure!(
                node.is_ok_and(|o| o.status.success()),
                "node is not installed (scripts/install-test-deps.sh)"
            );
            ensure!(
                idp_dir.join("node_modules/oidc-provider").is_dir(),
                "{} has no node_modules/oidc-provider (scripts/install-test-deps.sh runs npm ci there)",
                idp_dir.display()
            );
            let smtpd = std::process::Command::new(&tools.python)
                .args(["-c", "import aiosmtpd, authlib"])
                .status();
            ensure!(
                smtpd.is_ok_and(|s| s.success()),
                "the Synapse venv lacks aiosmtpd or authlib (scripts/install-test-deps.sh)"
            );
            Ok(())
        })(),
    )?;
    let python = tools.python.clone();
    let st = harness::new_stack(report, slot, opts, tools)?;

    // Ports, files and secrets.
    let idp_http = st.port();
    let idp_https = st.port();
    let idp_redirect = st.port();
    let smtp = st.port();
    let gone_port = st.port();
    let dir = st.p.root.join("sso");
    let idp_home = st.p.state.join("idp");
    let mails = st.p.state.join("mails");
    mkdir(&dir, 0o755, None)?;
    mkdir(&idp_home, 0o700, Some(&st.user))?;
    mkdir(&mails, 0o700, Some(&st.user))?;
    std::fs::write(dir.join("icon.png"), ICON_PNG)?;
    let secret = |tag: &str| format!("{tag}-{}", random_hex(24));
    let (corp_secret, strict_secret, wrong_secret, gone_secret) = (
        secret("corp"),
        secret("strict"),
        secret("wrong"),
        secret("gone"),
    );
    let smtp_password = format!("smtp {} \"pw\"", random_hex(16));
    for (name, value) in [
        ("oidc-corp", &corp_secret),
        ("oidc-strict", &strict_secret),
        ("oidc-wrong", &wrong_secret),
        ("oidc-gone", &gone_secret),
        ("smtp-password", &smtp_password),
    ] {
        write_private(&dir.join(name), &format!("{value}\n"), Some(&st.user))?;
    }
    let w = World {
        https: st.ports.https,
        idp_https,
        smtp,
        synapse: st.ports.synapse,
        main_ca: st.caddy_ca(),
        idp_ca: idp_home.join("data/caddy/pki/authorities/local/root.crt"),
        mails: mails.clone(),
        host_yaml: st.p.host_yaml.clone(),
        secrets_file: st.p.state.join("synapse-secrets.yaml"),
        python,
        secrets: vec![
            ("the corp client secret".into(), corp_secret.clone()),
            ("the strict client secret".into(), strict_secret.clone()),
            ("the wrong client secret".into(), wrong_secret.clone()),
            ("the SMTP password".into(), smtp_password.clone()),
        ],
    };

    // The provider's Caddy: https://localhost:IDP_HTTPS with its own CA.
    let idp_caddyfile = dir.join("idp.Caddyfile");
    std::fs::write(
        &idp_caddyfile,
        format!(
            "{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {idp_redirect}\n\t\
             https_port {idp_https}\n\tauto_https disable_redirects\n}}\n\n\
             localhost:{idp_https} {{\n\tbind 127.0.0.1\n\ttls internal\n\t\
             reverse_proxy 127.0.0.1:{idp_http}\n}}\n"
        ),
    )?;
    must(
        report,
        "the provider's Caddy starts with its own CA",
        async {
            let mut c = st.user.command("caddy", &idp_home);
            c.args(["run", "--adapter", "caddyfile", "--config"])
                .arg(&idp_caddyfile)
                .env("XDG_DATA_HOME", idp_home.join("data"))
                .env("XDG_CONFIG_HOME", idp_home.join("config"))
                .current_dir(&idp_home);
            st.spawn("idp-caddy", c, libc::SIGTERM)?;
            wait::tcp_port("the provider's Caddy", idp_https, SERVICE_START).await?;
            let leaf = idp_home.join("data/caddy/certificates/local/localhost/localhost.key");
            let (ca, leaf) = (&w.idp_ca, &leaf);
            wait::until(
                "the provider's CA and localhost certificate",
                SERVICE_START,
                Duration::from_millis(200),
                || async move { Ok((ca.is_file() && leaf.is_file()).then_some(())) },
            )
            .await
        }
        .await,
    )?;

    // The provider: three clients (the third registered with another secret
    // than Synapse's), four people.
    let callback = w.matrix("/_synapse/client/oidc/callback");
    let person = |sub: &str, user: &str, name: &str, groups: &[&str]| {
        json!({"sub": sub, "username": user, "password": format!("{user}-idp-password"),
               "name": name, "email": format!("{user}@example.test"), "groups": groups})
    };
    let idp_config = json!({
        "issuer": format!("https://localhost:{idp_https}"),
        "port": idp_http,
        "clients": [
            {"client_id": "synapse-corp", "client_secret": corp_secret, "redirect_uris": [callback]},
            {"client_id": "synapse-strict", "client_secret": strict_secret, "redirect_uris": [callback]},
            {"client_id": "synapse-wrong", "client_secret": format!("not-{wrong_secret}"), "redirect_uris": [callback]},
        ],
        "accounts": [
            person("sub-alice", "alice", "Alice Liddell", &["chat-users"]),
            person("sub-bob", "bob", "Bob Outsider", &["staff"]),
            person("sub-carol", "carol", "Carol Existing", &["chat-users"]),
            person("sub-dave", "dave", "Dave Newcomer", &["chat-users"]),
        ],
    });
    let idp_json = st.p.state.join("idp.json");
    write_private(&idp_json, &idp_config.to_string(), Some(&st.user))?;
    must(
        report,
        "the OpenID Connect provider (oidc-provider) answers discovery through its Caddy",
        async {
            let mut c = st.user.command("node", &idp_home);
            c.arg(idp_dir.join("idp.mjs"))
                .arg(&idp_json)
                .current_dir(&idp_dir);
            st.spawn("idp", c, libc::SIGTERM)?;
            let b = w.browser()?;
            let url = format!("https://localhost:{idp_https}/.well-known/openid-configuration");
            let v = wait::until(
                "the provider's discovery document",
                SERVICE_START,
                Duration::from_millis(300),
                || {
                    let b = b.clone();
                    let url = url.clone();
                    async move {
                        let r = b.get(&url).send().await?;
                        if r.status() != 200 {
                            return Ok(None);
                        }
                        Ok(Some(r.json::<Value>().await?))
                    }
                },
            )
            .await?;
            ensure!(
                v["issuer"] == format!("https://localhost:{idp_https}"),
                "issuer {}",
                v["issuer"]
            );
            Ok(())
        }
        .await,
    )?;

    let leaf_dir = idp_home.join("data/caddy/certificates/local/localhost");
    must(
        report,
        "the SMTP server (aiosmtpd, STARTTLS and login required) listens",
        async {
            let mut c = st.user.command(&w.python, &idp_home);
            c.arg(&catcher)
                .arg(smtp.to_string())
                .arg(leaf_dir.join("localhost.crt"))
                .arg(leaf_dir.join("localhost.key"))
                .arg("synapse@example.test")
                .arg(dir.join("smtp-password"))
                .arg(&mails);
            st.spawn("smtp", c, libc::SIGTERM)?;
            wait::tcp_port("the SMTP server", smtp, SERVICE_START).await
        }
        .await,
    )?;

    // The host: the stack's own plus sso and email.
    let mut host = st.main_host(SERVER_NAME);
    host.relaxed_login_limits = true;
    host.extra = host_sections(&w, &dir, true, gone_port);
    std::fs::write(&st.p.host_yaml, st.host_yaml(&host))?;
    must(
        report,
        "ospw-matrix secrets init",
        st.secrets_init(&st.p.secrets).await,
    )?;
    must(
        report,
        "ospw-matrix render",
        st.render(&st.p.host_yaml, &st.p.out).await,
    )?;
    let host_json = st.p.out.join("host.json");
    report.check(
        "materialize synapse-secrets writes the SMTP password 0600, owned by Synapse's user",
        async {
            st.cli_as_user_ok(&[
                "materialize",
                "synapse-secrets",
                "--config",
                utf8(&host_json)?,
                "--out",
                utf8(&w.secrets_file)?,
            ])
            .await?;
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&w.secrets_file)?;
            ensure!(
                meta.mode() & 0o777 == 0o600,
                "mode {:o}",
                meta.mode() & 0o777
            );
            if let Some((uid, _)) = st.user.ids {
                ensure!(meta.uid() == uid, "owned by uid {}", meta.uid());
            }
            let v: serde_yaml::Value =
                serde_yaml::from_str(&std::fs::read_to_string(&w.secrets_file)?)?;
            ensure!(
                v["email"]["smtp_pass"].as_str() == Some(smtp_password.as_str()),
                "no SMTP password in it"
            );
            for f in [
                "synapse/homeserver.yaml",
                "host.json",
                "element/config.json",
                "caddy/Caddyfile",
            ] {
                let text = std::fs::read_to_string(st.p.out.join(f))?;
                for (what, value) in &w.secrets {
                    ensure!(!text.contains(value.as_str()), "{what} is in {f}");
                }
            }
            Ok("no secret in the rendered files")
        }
        .await,
    );
    must(
        report,
        "PostgreSQL",
        async {
            st.init_postgres().await?;
            st.start_postgres().await?;
            st.createdb("synapse").await
        }
        .await,
    )?;
    let hs = st.p.out.join("synapse/homeserver.yaml");
    let data = st.p.synapse_data.clone();
    let ca_env = w.idp_ca.clone();
    must(
        report,
        "Synapse starts with homeserver.yaml and the runtime secrets file",
        async {
            st.start_synapse_with(
                "synapse",
                &[&hs, &w.secrets_file],
                &[("SSL_CERT_FILE", ca_env.as_os_str())],
                &data,
                w.synapse,
            )
            .await
        }
        .await,
    )?;
    must(report, "Caddy", st.start_caddy().await)?;

    let mut codes: Vec<String> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();

    report.section("Element and the proxy");
    let plain = w.browser()?;
    report.check(
        "Element's config.json turns on the password-reset UI, never 3PID login or self-managed addresses",
        async {
            let url = format!("https://{ELEMENT_HOST}:{}/config.json", w.https);
            let v = get_json(&plain, &url, None).await?;
            ensure!(
                v["setting_defaults"]["UIFeature.passwordReset"] == true,
                "{v}"
            );
            ensure!(
                v["setting_defaults"]["UIFeature.thirdPartyId"] == false,
                "{v}"
            );
            ensure!(v["disable_3pid_login"] == true, "{v}");
            Ok("")
        }
        .await,
    );
    report.check(
        "the login flows offer the four providers (with brand and icon) and passwords",
        async {
            let v = get_json(&plain, &w.matrix("/_matrix/client/v3/login"), None).await?;
            let flows = v["flows"].as_array().context("flows")?;
            let kinds: Vec<&str> = flows.iter().filter_map(|f| f["type"].as_str()).collect();
            ensure!(
                kinds.contains(&"m.login.password") && kinds.contains(&"m.login.sso"),
                "{kinds:?}"
            );
            let sso = flows
                .iter()
                .find(|f| f["type"] == "m.login.sso")
                .context("sso flow")?;
            let ids: Vec<&str> = sso["identity_providers"]
                .as_array()
                .context("providers")?
                .iter()
                .filter_map(|p| p["id"].as_str())
                .collect();
            ensure!(
                ids == ["oidc-corp", "oidc-strict", "oidc-wrong", "oidc-gone"],
                "{ids:?}"
            );
            let corp = &sso["identity_providers"][0];
            ensure!(
                corp["brand"] == "authentik" && corp["name"] == "Corp SSO",
                "{corp}"
            );
            ensure!(
                corp["icon"] == format!("mxc://{SERVER_NAME}/ospw-sso-icon-corp"),
                "{corp}"
            );
            Ok(format!("{ids:?}"))
        }
        .await,
    );
    report.check("the icon is served by our proxy at its media URLs, and nothing else", async {
        let mut served = 0;
        for path in [
            "/_matrix/media/v1/thumbnail/example.test/ospw-sso-icon-corp?width=32&height=32&method=crop",
            "/_matrix/media/v3/download/example.test/ospw-sso-icon-corp",
            "/_matrix/client/v1/media/thumbnail/example.test/ospw-sso-icon-corp?width=24&height=24",
            "/_matrix/client/v1/media/download/example.test/ospw-sso-icon-corp/icon.png",
        ] {
            let r = plain.get(w.matrix(path)).send().await?;
            let s = r.status().as_u16();
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body = r.bytes().await?;
            ensure!(s == 200 && body.as_ref() == ICON_PNG && ct.starts_with("image/png"), "{path}: {s} {ct}");
            served += 1;
        }
        // Another media ID reaches Synapse (which has no such file), and the
        // admin API stays closed.
        for path in [
            "/_matrix/client/v1/media/download/example.test/ospw-sso-icon-other",
            "/_matrix/media/v3/download/example.test/ospw-sso-icon-corpx",
        ] {
            let r = plain.get(w.matrix(path)).send().await?;
            let s = r.status().as_u16();
            let body = r.bytes().await?;
            ensure!(body.as_ref() != ICON_PNG, "{path} served the icon ({s})");
        }
        let s = plain.get(w.matrix("/_synapse/admin/v1/server_version")).send().await?.status();
        ensure!(s == 404, "the admin API answered {s} through the proxy");
        Ok(format!("{served} URLs"))
    }.await);
    report.check(
        "Synapse's provider picker works through the proxy, icons included",
        async {
            let b = w.browser()?;
            let r = b.get(start_url(&w, None, &w.element())?).send().await?;
            ensure!(r.status() == 302, "{}", r.status());
            let loc = r
                .headers()
                .get("location")
                .context("Location")?
                .to_str()?
                .to_owned();
            let pick = Url::parse(&w.matrix("/"))?.join(&loc)?;
            ensure!(pick.path() == "/_synapse/client/pick_idp", "{pick}");
            let r = b.get(pick.clone()).send().await?;
            ensure!(r.status() == 200, "{}", r.status());
            let page = r.text().await?;
            for name in [
                "Corp SSO",
                "Strict SSO",
                "Misconfigured SSO",
                "Unreachable SSO",
            ] {
                ensure!(page.contains(name), "{name} not on the picker");
            }
            let icon = urls_in(&page)
                .into_iter()
                .find(|u| u.contains("ospw-sso-icon-corp"))
                .context("no icon URL on the picker")?;
            let r = b.get(&icon).send().await?;
            ensure!(
                r.status() == 200 && r.bytes().await?.as_ref() == ICON_PNG,
                "the picker's icon {icon} is not served"
            );
            let mut choose = pick.clone();
            choose.query_pairs_mut().append_pair("idp", "oidc-corp");
            let r = b.get(choose).send().await?;
            let loc = r
                .headers()
                .get("location")
                .context("Location")?
                .to_str()?
                .to_owned();
            ensure!(
                r.status() == 302 && loc.contains("/login/sso/redirect/oidc-corp"),
                "{} {loc}",
                r.status()
            );
            Ok("")
        }
        .await,
    );

    report.section("signing in");
    let alice_token = sso_token(&w, "corp", "alice", "alice-idp-password", &mut codes).await;
    let alice = async {
        let token = alice_token?;
        tokens.push(token.clone());
        let client = sdk_from_token(&w, &token, "alice SSO").await?;
        let me = client.user_id().context("no user id")?.to_string();
        ensure!(me == format!("@alice:{SERVER_NAME}"), "signed in as {me}");
        Ok(client)
    }
    .await;
    let alice_ok = report.check(
        "a person in the allowed group signs in (login page, consent, callback, login token): a new account",
        alice.as_ref().map(|c| c.user_id().map(|u| u.to_string()).unwrap_or_default()).map_err(|e| anyhow!("{e:#}")),
    );
    let alice = alice.ok();
    if let (true, Some(client)) = (alice_ok, &alice) {
        let token = client.access_token().unwrap_or_default();
        report.check(
            "the new account has the provider's display name and e-mail address; its owner turns on notification mails",
            async {
                let http = w.browser_for_sdk()?;
                let p = get_json(
                    &http,
                    &w.matrix(&format!(
                        "/_matrix/client/v3/profile/{}",
                        seg(&format!("@alice:{SERVER_NAME}"))
                    )),
                    Some(&token),
                )
                .await?;
                ensure!(p["displayname"] == "Alice Liddell", "{p}");
                let t = get_json(
                    &http,
                    &w.matrix("/_matrix/client/v3/account/3pid"),
                    Some(&token),
                )
                .await?;
                let addrs: Vec<&str> = t["threepids"]
                    .as_array()
                    .context("threepids")?
                    .iter()
                    .filter_map(|t| t["address"].as_str())
                    .collect();
                ensure!(addrs == ["alice@example.test"], "{addrs:?}");
                // Synapse adds no e-mail pusher at a single sign-on
                // registration: the person turns notification mails on in
                // Element's settings, which sets this pusher for the address.
                let r = http
                    .post(w.matrix("/_matrix/client/v3/pushers/set"))
                    .bearer_auth(&token)
                    .json(&json!({"kind": "email", "app_id": "m.email",
                        "pushkey": "alice@example.test", "app_display_name": "Email Notifications",
                        "device_display_name": "alice@example.test", "lang": "en", "data": {}}))
                    .send()
                    .await?;
                let status = r.status();
                ensure!(status == 200, "setting the e-mail pusher: {status} {}", r.text().await?);
                Ok("")
            }
            .await,
        );
    }
    report.check(
        "a client not on the whitelist gets Synapse's confirmation page (through the proxy)",
        async {
            let b = w.browser()?;
            match sso_flow(
                &b,
                start_url(&w, Some("corp"), "https://other-client.example.test/")?,
                "alice",
                "alice-idp-password",
                &mut codes,
            )
            .await?
            {
                Outcome::Page { status, body, at } => {
                    ensure!(
                        status == 200 && at.path() == "/_synapse/client/oidc/callback",
                        "{status} {at}"
                    );
                    let link = urls_in(&body)
                        .into_iter()
                        .find(|u| u.contains("loginToken="))
                        .context("no continue link")?;
                    ensure!(
                        link.starts_with("https://other-client.example.test/"),
                        "{link}"
                    );
                    if let Ok(u) = Url::parse(&link) {
                        tokens.extend(param(&u, "loginToken"));
                    }
                    Ok("confirmation page with the link")
                }
                other => bail!("{other:?}"),
            }
        }
        .await,
    );
    report.check(
        "a wrong password at the provider gets no further",
        async {
            match element_sso(&w, "corp", "alice", "wrong", &mut codes).await? {
                Outcome::IdpRefused => Ok(""),
                other => bail!("{other:?}"),
            }
        }
        .await,
    );
    for (name, id, user, refusal) in [
        (
            "a person outside the allowed group is refused, and no account is made",
            "corp",
            "bob",
            "not allowed to log in",
        ),
        (
            "a provider without require or auto_create creates no account",
            "strict",
            "dave",
            "registrations are disabled",
        ),
    ] {
        report.check(
            name,
            async {
                let password = format!("{user}-idp-password");
                let (status, body) = sso_refused(&w, id, user, &password, &mut codes).await?;
                ensure!(status >= 400 && body.contains(refusal), "{status}: {body}");
                ensure!(w.account(st, user).await?.is_none(), "@{user} exists");
                Ok(format!("{status}"))
            }
            .await,
        );
    }

    report.section("an account the admin made");
    let carol_pw = format!("carol-{}", random_hex(12));
    let carol_file = dir.join("carol.password");
    write_private(&carol_file, &format!("{carol_pw}\n"), None)?;
    report.check(
        "user add carol (passwords on) notes that Corp SSO links it",
        async {
            let out = st
                .cli_ok(&[
                    "user",
                    "add",
                    "carol",
                    "--password-file",
                    utf8(&carol_file)?,
                    "--config",
                    utf8(&w.host_yaml)?,
                ])
                .await?;
            ensure!(out.stderr.contains("Corp SSO (corp)"), "{}", out.both());
            Ok("")
        }
        .await,
    );
    report.check(
        "a provider without allow_existing_users does not link it (nor makes carol1)",
        async {
            let (status, body) =
                sso_refused(&w, "strict", "carol", "carol-idp-password", &mut codes).await?;
            ensure!(status >= 400, "{status}: {body}");
            let carol = w.account(st, "carol").await?.context("@carol is gone")?;
            ensure!(
                carol["external_ids"]
                    .as_array()
                    .is_some_and(|a| a.is_empty()),
                "{}",
                carol["external_ids"]
            );
            ensure!(w.account(st, "carol1").await?.is_none(), "@carol1 exists");
            Ok(format!("{status}"))
        }
        .await,
    );
    let carol_sso = async {
        let token = sso_token(&w, "corp", "carol", "carol-idp-password", &mut codes).await?;
        tokens.push(token.clone());
        let client = sdk_from_token(&w, &token, "carol SSO").await?;
        let me = client.user_id().context("no user id")?.to_string();
        ensure!(me == format!("@carol:{SERVER_NAME}"), "signed in as {me}");
        let carol = w.account(st, "carol").await?.context("@carol")?;
        let ids = carol["external_ids"].to_string();
        ensure!(
            ids.contains("oidc-corp") && ids.contains("sub-carol"),
            "{ids}"
        );
        Ok(client)
    }
    .await;
    report.check(
        "a provider with allow_existing_users links it: carol signs in as @carol",
        carol_sso.as_ref().map(|_| "").map_err(|e| anyhow!("{e:#}")),
    );
    report.check(
        "user add --email gives a password account an address; a reset mail reaches it",
        async {
            let pw_file = dir.join("dora.password");
            write_private(&pw_file, &format!("dora-{}\n", random_hex(12)), None)?;
            let cfg = utf8(&w.host_yaml)?;
            let out = st
                .cli_ok(&["user", "add", "dora", "--password-file", utf8(&pw_file)?,
                    "--email", "dora@example.test", "--config", cfg])
                .await?;
            ensure!(out.stderr.contains("dora@example.test"), "{}", out.both());
            let dora = w.account(st, "dora").await?.context("@dora")?;
            ensure!(dora["threepids"].to_string().contains("dora@example.test"), "{}", dora["threepids"]);
            let r = w.browser()?
                .post(w.matrix("/_matrix/client/v3/account/password/email/requestToken"))
                .json(&json!({"email": "dora@example.test", "client_secret": format!("cs{}", random_hex(8)), "send_attempt": 1}))
                .send()
                .await?;
            ensure!(r.status() == 200, "requestToken: {}", r.status());
            let mail = w.wait_for_mail("dora@example.test", "Password reset").await?;
            let text = mail["text"].as_str().unwrap_or_default();
            let link = urls_in(text).into_iter().find(|u| u.contains("submit_token")).context("no link")?;
            if let Ok(u) = Url::parse(&link) {
                tokens.extend(param(&u, "token"));
            }
            Ok("")
        }
        .await,
    );
    report.check(
        "an older service account a provider could link (ospw-admin) is replaced and deactivated",
        async {
            // The CLI's service account as older versions named it.
            let pw = format!("old-admin-{}", random_hex(12));
            let pw_file = dir.join("old-admin.password");
            write_private(&pw_file, &format!("{pw}\n"), None)?;
            let cfg = utf8(&w.host_yaml)?;
            st.cli_ok(&[
                "user",
                "add",
                "ospw-admin",
                "--admin",
                "--password-file",
                utf8(&pw_file)?,
                "--config",
                cfg,
            ])
            .await?;
            let (s, v) = password_login(&w.browser()?, &w.matrix(""), "ospw-admin", &pw).await?;
            ensure!(s == 200, "{s} {v}");
            let old_id = format!("@ospw-admin:{SERVER_NAME}");
            let state = json!({"user_id": old_id, "localpart": "ospw-admin", "password": pw,
                "access_token": v["access_token"]});
            let state_file = st.p.secrets.join("admin-account.json");
            write_private(&state_file, &state.to_string(), Some(&st.user))?;
            let out = st.cli_ok(&["user", "list", "--config", cfg]).await?;
            ensure!(
                out.stderr.contains("replacing it")
                    && out
                        .stderr
                        .contains(&format!("deactivated the old service account {old_id}")),
                "{}",
                out.both()
            );
            let now: Value = serde_json::from_slice(&std::fs::read(&state_file)?)?;
            let new_id = now["user_id"].as_str().unwrap_or_default().to_owned();
            ensure!(new_id.starts_with("@ospw-admin=svc"), "{new_id}");
            let old = w.account(st, "ospw-admin").await?.context("@ospw-admin")?;
            ensure!(old["deactivated"] == true, "{old}");
            Ok(format!("{old_id} → {new_id}"))
        }
        .await,
    );

    report.section("encrypted messages and mail");
    let room = match (&alice, &carol_sso) {
        (Some(a), Ok(c)) => {
            let r = async {
                sync(a).await?;
                sync(c).await?;
                let room = a.create_room(CreateRoomRequest::new()).await?;
                invite_and_join(a, &room, c).await?;
                let room_id = room.room_id().to_owned();
                let (event, encrypted) =
                    send_text(a, &room_id, "hello from an SSO session").await?;
                ensure!(encrypted, "not sent encrypted");
                let body = read_decrypted(c, &room_id, &event).await?;
                ensure!(body == "hello from an SSO session", "carol read {body:?}");
                Ok(room_id)
            }
            .await;
            report.check(
                "the SSO session (matrix-sdk) sends an encrypted message the other account decrypts",
                r.as_ref().map(|_| "").map_err(|e| anyhow!("{e:#}")),
            );
            r.ok()
        }
        _ => {
            report.check::<&str>(
                "the SSO session sends an encrypted message",
                Err(anyhow!("no sessions")),
            );
            None
        }
    };
    let secret_text = format!("the missed message {}", random_hex(8));
    if let (Some(room_id), Ok(c)) = (&room, &carol_sso) {
        report.check(
            "a missed-message mail arrives, pointing at our Element, without the message text",
            async {
                send_text(c, room_id, &secret_text).await?;
                let mail = w
                    .wait_for_mail("alice@example.test", "You have a message")
                    .await?;
                let text = mail["text"].as_str().unwrap_or_default();
                ensure!(
                    !text.contains(&secret_text),
                    "the mail holds the message text"
                );
                ensure!(
                    mail["from"]
                        .as_str()
                        .is_some_and(|f| f.contains("noreply@example.test")),
                    "{}",
                    mail["from"]
                );
                let element = format!("https://{ELEMENT_HOST}:{}", w.https);
                let links = urls_in(text);
                ensure!(
                    links.iter().any(|l| l.starts_with(&element)),
                    "no link to {element}: {links:?}"
                );
                ensure!(
                    links.iter().all(|l| l.starts_with(&element)
                        || l.starts_with(&format!("https://{MATRIX_HOST}"))),
                    "a link elsewhere: {links:?}"
                );
                Ok(mail["subject"].as_str().unwrap_or_default().to_owned())
            }
            .await,
        );
    }
    report.check("a password-reset mail arrives with a link to our host, and the reset works", async {
        let http = w.browser()?;
        let client_secret = format!("cs{}", random_hex(16));
        let r = http.post(w.matrix("/_matrix/client/v3/account/password/email/requestToken"))
            .json(&json!({"email": "alice@example.test", "client_secret": client_secret, "send_attempt": 1}))
            .send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        ensure!(status == 200, "requestToken: {status} {v}");
        let sid = v["sid"].as_str().context("sid")?.to_owned();
        let mail = w.wait_for_mail("alice@example.test", "Password reset").await?;
        let text = mail["text"].as_str().unwrap_or_default();
        let link = urls_in(text).into_iter().find(|u| u.contains("submit_token")).context("no reset link")?;
        let url = Url::parse(&link)?;
        ensure!(url.host_str() == Some(MATRIX_HOST) && url.port() == Some(w.https), "the link goes to {link}");
        tokens.extend(param(&url, "token"));
        let r = http.get(url.clone()).send().await?;
        ensure!(r.status() == 200, "the link's page answered {}", r.status());
        let r = http.post(url.clone()).send().await?;
        let s = r.status();
        let page = r.text().await?;
        ensure!(s == 200, "confirming answered {s}: {page}");
        let new_pw = format!("alice-new-{}", random_hex(10));
        let r = http.post(w.matrix("/_matrix/client/v3/account/password"))
            .json(&json!({"new_password": new_pw, "auth": {"type": "m.login.email.identity",
                "threepid_creds": {"sid": sid, "client_secret": client_secret}}}))
            .send().await?;
        let s = r.status();
        ensure!(s == 200, "setting the password: {s} {}", r.text().await.unwrap_or_default());
        let (s, _) = password_login(&http, &w.matrix(""), "alice", &new_pw).await?;
        ensure!(s == 200, "the new password does not sign in ({s})");
        Ok("")
    }.await);

    report.section("failures the admin can diagnose");
    let log_before = synapse_log(st).len();
    report.check(
        "a wrong client secret: a clean error page, and Synapse's log says why",
        async {
            let (status, body) =
                sso_refused(&w, "wrong", "alice", "alice-idp-password", &mut codes).await?;
            ensure!(
                status >= 400 && !body.contains("loginToken"),
                "{status}: {body}"
            );
            let log = synapse_log(st);
            let new = &log[log_before.min(log.len())..];
            let line = new
                .lines()
                .find(|l| l.contains("invalid_client"))
                .context("no invalid_client in Synapse's log")?;
            Ok(format!(
                "{status}; log: {}",
                line.chars().take(160).collect::<String>()
            ))
        }
        .await,
    );
    report.check(
        "an unreachable provider: a clean error page, and Synapse's log says why",
        async {
            match element_sso(&w, "gone", "alice", "x", &mut codes).await? {
                Outcome::Page { status, body, at } => {
                    ensure!(
                        at.host_str() == Some(MATRIX_HOST) && status >= 400,
                        "{status} {at}"
                    );
                    ensure!(!body.contains("Traceback"), "{body}");
                    // At ERROR (seen at the default WARNING level), and
                    // the connection error at INFO.
                    let log = synapse_log(st);
                    let line = log
                        .lines()
                        .find(|l| {
                            l.contains(" - ERROR - ") && l.contains("'oidc-gone' unavailable")
                        })
                        .context("no error about the provider in Synapse's log")?;
                    ensure!(
                        log.lines()
                            .any(|l| l.contains(&format!("localhost:{gone_port}"))
                                && l.contains("Connection")),
                        "the connection error is not in Synapse's log"
                    );
                    Ok(format!(
                        "{status}; log: {}",
                        line.chars().take(160).collect::<String>()
                    ))
                }
                other => bail!("{other:?}"),
            }
        }
        .await,
    );

    report.section("passwords off");
    host.extra = host_sections(&w, &dir, false, gone_port);
    std::fs::write(&st.p.host_yaml, st.host_yaml(&host))?;
    must(
        report,
        "re-render and restart Synapse and Caddy with sso.password_login: false",
        async {
            st.render(&st.p.host_yaml, &st.p.out).await?;
            st.cli_as_user_ok(&[
                "materialize",
                "synapse-secrets",
                "--config",
                utf8(&host_json)?,
                "--out",
                utf8(&w.secrets_file)?,
            ])
            .await?;
            st.stop_service("caddy", Duration::from_secs(20));
            st.stop_service("synapse", Duration::from_secs(30));
            st.start_synapse_with(
                "synapse",
                &[&hs, &w.secrets_file],
                &[("SSL_CERT_FILE", ca_env.as_os_str())],
                &data,
                w.synapse,
            )
            .await?;
            st.start_caddy().await
        }
        .await,
    )?;
    let plain = w.browser()?;
    report.check(
        "Synapse offers single sign-on only, and refuses a password",
        async {
            let v = get_json(&plain, &w.matrix("/_matrix/client/v3/login"), None).await?;
            let kinds: Vec<&str> = v["flows"]
                .as_array()
                .context("flows")?
                .iter()
                .filter_map(|f| f["type"].as_str())
                .collect();
            ensure!(
                !kinds.contains(&"m.login.password") && kinds.contains(&"m.login.sso"),
                "{kinds:?}"
            );
            let (s, v) = password_login(&plain, &w.matrix(""), "carol", &carol_pw).await?;
            ensure!(s == 400 || s == 403, "carol's password: {s} {v}");
            Ok(format!("{kinds:?}; password login {s}"))
        }
        .await,
    );
    report.check("Element shows no password reset; the proxy answers reset requests 403", async {
        let v = get_json(&plain, &format!("https://{ELEMENT_HOST}:{}/config.json", w.https), None).await?;
        ensure!(v["setting_defaults"]["UIFeature.passwordReset"] == false, "{v}");
        let before = w.mails().await?.len();
        let r = plain.post(w.matrix("/_matrix/client/v3/account/password/email/requestToken"))
            .json(&json!({"email": "alice@example.test", "client_secret": "cs0123456789", "send_attempt": 1}))
            .send().await?;
        let s = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(s == 403 && body["errcode"] == "M_FORBIDDEN", "{s} {body}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(w.mails().await?.len() == before, "a mail was sent");
        Ok("")
    }.await);
    report.check(
        "alice still signs in through Corp SSO",
        async {
            let token = sso_token(&w, "corp", "alice", "alice-idp-password", &mut codes).await?;
            tokens.push(token.clone());
            let c = sdk_from_token(&w, &token, "alice SSO 2").await?;
            ensure!(
                c.user_id()
                    .is_some_and(|u| u.as_str() == format!("@alice:{SERVER_NAME}")),
                "wrong user"
            );
            Ok("")
        }
        .await,
    );
    let cfg = utf8(&w.host_yaml)?.to_owned();
    report.check(
        "user add: no password (none shown), linked by Corp SSO; --password-file refused",
        async {
            let out = st
                .cli_ok(&["user", "add", "erin", "--config", &cfg])
                .await?;
            ensure!(out.stdout.trim().is_empty(), "printed {:?}", out.stdout);
            ensure!(
                out.stderr.contains("without a password") && out.stderr.contains("Corp SSO"),
                "{}",
                out.both()
            );
            ensure!(w.account(st, "erin").await?.is_some(), "@erin was not made");
            let out = st
                .cli_run(&[
                    "user",
                    "add",
                    "frank",
                    "--password-file",
                    utf8(&carol_file)?,
                    "--config",
                    &cfg,
                ])
                .await?;
            ensure!(
                !out.status.success() && out.both().contains("sso.password_login"),
                "{}",
                out.both()
            );
            let out = st
                .cli_run(&["user", "reset-password", "carol", "--config", &cfg])
                .await?;
            ensure!(
                !out.status.success() && out.both().contains("sso.password_login"),
                "{}",
                out.both()
            );
            Ok("")
        }
        .await,
    );
    report.check(
        "the CLI's service account works without password login, renewing itself",
        async {
            let state_file = st.p.secrets.join("admin-account.json");
            let before: Value = serde_json::from_slice(&std::fs::read(&state_file)?)?;
            let old_id = before["user_id"].as_str().context("user_id")?.to_owned();
            ensure!(old_id.starts_with("@ospw-admin=svc"), "{old_id}");
            // A lost token: no password can sign the account in again.
            let mut lost = before.clone();
            lost["access_token"] = json!("syt_revoked_token");
            std::fs::write(&state_file, serde_json::to_vec(&lost)?)?;
            let out = st
                .cli_ok(&["user", "list", "--all", "--config", &cfg])
                .await?;
            let after: Value = serde_json::from_slice(&std::fs::read(&state_file)?)?;
            let new_id = after["user_id"].as_str().context("user_id")?;
            ensure!(new_id != old_id, "the same account: {}", out.both());
            ensure!(
                out.stderr
                    .contains(&format!("deactivated the old service account {old_id}")),
                "{}",
                out.both()
            );
            let old_local = old_id
                .trim_start_matches('@')
                .split(':')
                .next()
                .unwrap_or_default();
            let old = w
                .account(st, old_local)
                .await?
                .context("the old service account")?;
            ensure!(old["deactivated"] == true, "{old}");
            Ok(format!("{old_id} → {new_id}"))
        }
        .await,
    );

    report.section("logs");
    report.check("no log of the run holds a client secret, the SMTP password, a login token, an authorization code or a reset token", (|| {
        ensure!(!codes.is_empty() && !tokens.is_empty(), "the run saw no code or token to look for");
        let mut needles = w.secrets.clone();
        needles.extend(codes.iter().map(|c| ("an authorization code".to_owned(), c.clone())));
        needles.extend(tokens.iter().map(|t| ("a login or reset token".to_owned(), t.clone())));
        for (file, text) in all_logs(st) {
            for (what, value) in &needles {
                ensure!(!text.contains(value.as_str()), "{what} is in {file}");
            }
        }
        Ok(format!("{} values, {} logs", needles.len(), all_logs(st).len()))
    })());
    Ok(())
}
