//! OSPW Matrix acceptance suite: the whole private Matrix stack, started from
//! the `ospw-matrix` CLI's output unchanged, exercised as a user would.
//!
//! Each run: a fresh temporary directory; its own PostgreSQL cluster; secrets
//! from `ospw-matrix secrets init`; Synapse, coturn and Caddy (`tls internal`)
//! started from the rendered files, every program as an unprivileged user on
//! 127.0.0.1 with ports no other run can use (`src/ports.rs`). A real Matrix client (matrix-sdk) talks to
//! Caddy over HTTPS, trusting only Caddy's local root CA.
//!
//! Prints one line per check and `acceptance: N passed, N failed`. Every
//! process is stopped at the end (also on failure); the logs of a failed run
//! are printed and its directory kept.
//!
//! Environment: `OSPW_MATRIX_BIN` (the CLI; default `target/{release,debug}/
//! ospw-matrix` of the main workspace), `OSPW_SYNAPSE_PYTHON`
//! (`/opt/ospw-venv/bin/python`), `OSPW_PG_BIN` (`/usr/lib/postgresql/15/bin`),
//! `OSPW_TEST_USER` (`ospw_test`), `OSPW_KEEP_TMP` (keep the directory).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use matrix_sdk::ruma::api::client::room::create_room::v3::Request as CreateRoomRequest;
use matrix_sdk::ruma::OwnedServerName;
use ospw_matrix_acceptance::client::{self, read_decrypted, send_text, sync};
use ospw_matrix_acceptance::harness::{self, must, Harness};
use ospw_matrix_acceptance::http::{
    event_url, expect_404, get_json, joined_rooms, plain_client, seg,
};
use ospw_matrix_acceptance::net;
use ospw_matrix_acceptance::proc;
use ospw_matrix_acceptance::report::Report;
use ospw_matrix_acceptance::stack::{Options, Stack};
use ospw_matrix_acceptance::stun::{self, AllocateOutcome};
use ospw_matrix_acceptance::synapse_log;
use ospw_matrix_acceptance::util::{collect_files, mode_of, now, random_hex, tail, write_private};
use ospw_matrix_acceptance::workers;
use serde_json::{json, Value};

const BASE_DOMAIN: &str = "example.test";
const SERVER_NAME: &str = "example.test";
const MATRIX_HOST: &str = "matrix.example.test";
const ELEMENT_HOST: &str = "chat.example.test";
const SECRET_FILES: [&str; 5] = [
    "signing_key",
    "registration_shared_secret",
    "macaroon_secret_key",
    "form_secret",
    "turn_shared_secret",
];

/// The run against one stack may not take longer than this.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);
/// One CLI or helper command.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The stacks the same user-level checks run against: Synapse as one
/// process, and Synapse with its workers (a sync and a client worker, the
/// two kinds client requests are routed to; Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Monolith,
    Workers,
}

impl Variant {
    fn options(self) -> Options {
        match self {
            Self::Monolith => Options::full("acceptance"),
            Self::Workers => Options::full_with_workers("acceptance-workers", "sync: 1\nclient: 1"),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Monolith => "",
            Self::Workers => "[workers] ",
        }
    }
}

fn main() -> ExitCode {
    let mut harness = match Harness::new("acceptance", SUITE_TIMEOUT) {
        Ok(h) => h,
        Err(code) => return code,
    };
    // OSPW_ACCEPTANCE_VARIANT=monolith|workers runs one stack only.
    let only = std::env::var("OSPW_ACCEPTANCE_VARIANT").ok();
    for variant in [Variant::Monolith, Variant::Workers] {
        if only
            .as_deref()
            .is_some_and(|o| !format!("{variant:?}").eq_ignore_ascii_case(o))
        {
            continue;
        }
        harness.report.set_prefix(variant.prefix());
        let interrupted = harness.run(async |report, slot| run(report, slot, variant).await);
        if interrupted {
            break;
        }
    }
    harness.report.set_prefix("");
    harness.finish()
}

/// Logs in with matrix-sdk, with an in-memory store, after matrix-sdk itself
/// discovered the homeserver from `https://SERVER/.well-known/matrix/client`
/// (`server`: the base domain and Caddy's HTTPS port); fails unless it found
/// `base_url`, the Matrix host through Caddy.
async fn login(
    http: &reqwest::Client,
    server: &str,
    base_url: &str,
    name: &str,
    password: &str,
) -> Result<matrix_sdk::Client> {
    let server = OwnedServerName::try_from(server)?;
    let builder = matrix_sdk::Client::builder()
        .server_name(&server)
        .http_client(http.clone());
    let client = client::login(builder, name, password, &format!("acceptance {name}")).await?;
    let found = client
        .homeserver()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    ensure!(
        found == base_url,
        "matrix-sdk discovered {found} from https://{server}/.well-known/matrix/client, expected {base_url}"
    );
    Ok(client)
}

/// The generated password `user add` printed: a lone token, or the token
/// after "password".
fn parse_generated_password(stdout: &str) -> Option<String> {
    let t = stdout.trim();
    if !t.is_empty() && !t.contains(char::is_whitespace) {
        return Some(t.to_owned());
    }
    for line in t.lines() {
        if line.to_lowercase().contains("password") {
            if let Some(tok) = line.rsplit([':', ' ', '\t']).find(|s| !s.is_empty()) {
                return Some(tok.trim().to_owned());
            }
        }
    }
    t.split_whitespace().last().map(str::to_owned)
}

/// Extracts `tot_send_msgs=N, tot_recv_msgs=M` from turnutils_uclient's output.
fn uclient_totals(out: &str) -> Option<(u64, u64)> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("tot_send_msgs=") && l.contains("tot_recv_msgs="))?;
    let num = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .ok()
    };
    Some((num("tot_send_msgs=")?, num("tot_recv_msgs=")?))
}

fn read_secrets(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut m = BTreeMap::new();
    for name in SECRET_FILES {
        let p = dir.join(name);
        m.insert(
            name.to_owned(),
            std::fs::read(&p).with_context(|| format!("read {}", p.display()))?,
        );
    }
    Ok(m)
}

/// The secret values to look for in rendered files: each file's trimmed
/// contents, and for the signing key its seed.
fn secret_needles(secrets: &BTreeMap<String, Vec<u8>>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, bytes) in secrets {
        let text = String::from_utf8_lossy(bytes).trim().to_owned();
        if name == "signing_key" {
            if let Some(seed) = text.split_whitespace().nth(2) {
                out.push((format!("{name} (seed)"), seed.to_owned()));
            }
        }
        if text.len() >= 8 {
            out.push((name.clone(), text));
        }
    }
    out
}
async fn run(report: &mut Report, slot: &mut Option<Stack>, variant: Variant) -> Result<()> {
    report.section("setup");
    let opts = variant.options();
    let tools = harness::tools(
        report,
        &opts,
        "Synapse, PostgreSQL, coturn and Caddy are installed",
    )?;

    // Paths and ports.
    let st = harness::new_stack(report, slot, opts, tools)?;

    let host_wrong_secret_yaml = st.p.root.join("host-wrong-secret.yaml");
    let wrong_secret_file = st.p.root.join("wrong_registration_secret");
    let mut host = st.main_host(SERVER_NAME);
    // With workers, Synapse's request counters show which process served
    // what: metrics on, the workers' metrics ports following the main
    // process's (consecutive ports of the run's block).
    let mut main_metrics = 0;
    if variant == Variant::Workers {
        let ports: Vec<u16> = (0..5).map(|_| st.port()).collect();
        ensure!(
            ports.windows(2).all(|w| w[1] == w[0] + 1),
            "the run's ports are not consecutive: {ports:?}"
        );
        // Synapse's, the two workers' (following it), coturn's, Caddy's.
        host.metrics = Some((ports[0], ports[3], ports[4]));
        main_metrics = ports[0];
    }
    std::fs::write(&st.p.host_yaml, st.host_yaml(&host))?;
    host.registration_secret_file = Some(wrong_secret_file.clone());
    std::fs::write(&host_wrong_secret_yaml, st.host_yaml(&host))?;
    write_private(&wrong_secret_file, &format!("{}\n", random_hex(40)), None)?;

    // Secrets.
    must(
        report,
        "ospw-matrix secrets init",
        st.secrets_init(&st.p.secrets).await,
    )?;
    let secrets_before = must(
        report,
        "every secret file was created",
        read_secrets(&st.p.secrets),
    )?;

    report.section("7. secrets");
    report.check(
        "secrets directory is mode 0700, every secret file 0600",
        (|| {
            let mode = mode_of(&st.p.secrets)?;
            ensure!(
                mode == 0o700,
                "{} has mode {mode:o}",
                st.p.secrets.display()
            );
            let mut files = Vec::new();
            collect_files(&st.p.secrets, &mut files);
            ensure!(!files.is_empty(), "no secret files");
            for f in &files {
                let m = mode_of(f)?;
                ensure!(m == 0o600, "{} has mode {m:o}", f.display());
            }
            Ok(format!("{} files", files.len()))
        })(),
    );

    // Render.
    report.section("setup: render and start the stack");
    must(
        report,
        "ospw-matrix render",
        async {
            st.render(&st.p.host_yaml, &st.p.out).await?;
            for f in [
                "synapse/homeserver.yaml",
                "synapse/log.yaml",
                "coturn/turnserver.conf",
                "element/config.json",
                "element/welcome.html",
                "caddy/Caddyfile",
                "caddy/sites.caddy",
                "well-known/matrix/client",
                "host.json",
            ] {
                let path = st.p.out.join(f);
                let meta =
                    std::fs::metadata(&path).with_context(|| format!("{f} was not rendered"))?;
                ensure!(meta.len() > 0, "{f} is empty");
            }
            Ok(())
        }
        .await,
    )?;
    report.check(
        "no generated secret value appears in any rendered file",
        (|| {
            let mut files = Vec::new();
            collect_files(&st.p.out, &mut files);
            let needles = secret_needles(&secrets_before);
            ensure!(
                needles.len() >= SECRET_FILES.len(),
                "secret values too short to search for"
            );
            for f in &files {
                let text = String::from_utf8_lossy(&std::fs::read(f)?).into_owned();
                for (name, value) in &needles {
                    ensure!(
                        !text.contains(value.as_str()),
                        "{} contains the {name}",
                        f.display()
                    );
                }
            }
            Ok(format!("{} rendered files searched", files.len()))
        })(),
    );

    must(
        report,
        "ospw-matrix materialize coturn",
        async {
            let mut c = st.cli_as_user();
            c.args(["materialize", "coturn", "--template"])
                .arg(st.p.out.join("coturn/turnserver.conf"))
                .arg("--secret-file")
                .arg(st.p.secrets.join("turn_shared_secret"))
                .arg("--out")
                .arg(&st.p.turn_conf);
            proc::run_ok(c, CMD_TIMEOUT).await?;
            Ok(())
        }
        .await,
    )?;
    report.check(
        "materialized turnserver.conf holds the TURN secret and is mode 0600",
        (|| {
            let text = std::fs::read_to_string(&st.p.turn_conf)?;
            let secret = String::from_utf8_lossy(&secrets_before["turn_shared_secret"])
                .trim()
                .to_owned();
            ensure!(
                text.contains(&secret),
                "the TURN shared secret is not in {}",
                st.p.turn_conf.display()
            );
            let m = mode_of(&st.p.turn_conf)?;
            ensure!(m == 0o600, "mode {m:o}");
            Ok("")
        })(),
    );

    must(
        report,
        "PostgreSQL cluster: initdb, peer auth, database with C collation (template0)",
        async {
            st.init_postgres().await?;
            st.start_postgres().await?;
            st.createdb("synapse").await
        }
        .await,
    )?;

    must(
        report,
        if variant == Variant::Workers {
            "Redis, Synapse's main process and its workers start from the rendered files and answer /health"
        } else {
            "Synapse starts from the rendered homeserver.yaml and answers /health"
        },
        st.start_main_synapse().await,
    )?;
    must(
        report,
        "coturn starts from the materialized turnserver.conf",
        st.start_coturn("coturn", &[]).await,
    )?;
    must(
        report,
        "Caddy starts from the rendered standalone Caddyfile (tls internal)",
        st.start_caddy().await,
    )?;

    // The client: trusts only Caddy's root CA, resolves the test names to 127.0.0.1.
    // `strict` follows no redirects, for the checks of status codes.
    let (http, strict) = must(
        report,
        "HTTPS client trusting only Caddy's local root CA",
        st.caddy_clients(&[BASE_DOMAIN, MATRIX_HOST, ELEMENT_HOST]),
    )?;
    let plain = plain_client(Duration::from_secs(10))?;

    report.check(
        "Caddy's local root CA is not in the system trust store",
        (|| {
            let pem = std::fs::read_to_string(st.caddy_ca())?;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let probe = &body[..body.len().min(64)];
            let mut files = Vec::new();
            for dir in [
                "/etc/ssl/certs",
                "/usr/local/share/ca-certificates",
                "/usr/share/ca-certificates",
            ] {
                collect_files(Path::new(dir), &mut files);
            }
            for f in &files {
                let text: String = std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .collect();
                ensure!(!text.contains(probe), "found in {}", f.display());
            }
            Ok(format!("{} files searched", files.len()))
        })(),
    );

    report.check(
        "PostgreSQL, Synapse, coturn and Caddy listen on 127.0.0.1 only (every TCP listener and UDP socket of the run)",
        (|| {
            let procs = proc::processes_with_home_under(&st.p.root);
            let pids: Vec<u32> = procs.iter().map(|(p, _)| *p).collect();
            ensure!(pids.len() >= 4, "only {} processes of the run found: {procs:?}", pids.len());
            let (bad, seen) = net::non_loopback_sockets(&pids);
            ensure!(bad.is_empty(), "not on loopback: {}", bad.join(", "));
            // Synapse, coturn (TCP and UDP) and Caddy (HTTP and HTTPS) at least.
            ensure!(seen >= 5, "only {seen} sockets seen");
            Ok(format!("{seen} sockets of {} processes", pids.len()))
        })(),
    );

    // ---------------------------------------------------------------- 1.
    report.section("1. accounts");
    let alice_pw = format!("alice-{}", random_hex(24));
    let pw_file = st.p.root.join("alice.password");
    write_private(&pw_file, &format!("{alice_pw}\n"), None)?;
    let user_add = |st: &Stack, name: &str, extra: &[&str], config: &Path| {
        let mut c = st.cli();
        c.args(["user", "add", name])
            .args(extra)
            .arg("--config")
            .arg(config);
        c
    };
    must(
        report,
        "ospw-matrix user add alice --admin --password-file F",
        async {
            let mut c = user_add(st, "alice", &["--admin"], &st.p.host_yaml);
            c.arg("--password-file").arg(&pw_file);
            let out = proc::run_ok(c, CMD_TIMEOUT).await?;
            ensure!(
                !out.stdout.contains(&alice_pw),
                "the password from the file was printed"
            );
            Ok(())
        }
        .await,
    )?;
    let bob_pw = must(
        report,
        "ospw-matrix user add bob prints a generated password",
        async {
            let out = proc::run_ok(user_add(st, "bob", &[], &st.p.host_yaml), CMD_TIMEOUT).await?;
            let pw = parse_generated_password(&out.stdout).context("no password on stdout")?;
            ensure!(pw.len() >= 12, "generated password {pw:?} is too short");
            ensure!(
                out.stdout.matches(pw.as_str()).count() == 1 && !out.stderr.contains(pw.as_str()),
                "the password is not printed exactly once on stdout"
            );
            Ok(pw)
        }
        .await,
    )?;
    report.check(
        "user add of an existing name fails with a \"user exists\" message",
        async {
            let out = proc::run(user_add(st, "alice", &[], &st.p.host_yaml), CMD_TIMEOUT).await?;
            ensure!(!out.status.success(), "succeeded: {}", out.both());
            let msg = out.both().to_lowercase();
            ensure!(
                msg.contains("exists"),
                "message does not say the user exists: {}",
                out.both()
            );
            Ok(out.stderr.trim().to_owned())
        }
        .await,
    );
    report.check(
        "user add with a wrong registration secret fails clearly",
        async {
            let out = proc::run(
                user_add(st, "carol", &[], &host_wrong_secret_yaml),
                CMD_TIMEOUT,
            )
            .await?;
            ensure!(!out.status.success(), "succeeded: {}", out.both());
            let msg = out.both().to_lowercase();
            ensure!(
                msg.contains("registration shared secret"),
                "message does not name the registration shared secret: {}",
                out.both()
            );
            Ok(out.stderr.trim().to_owned())
        }
        .await,
    );
    report.check("public registration through Caddy is refused (403)", async {
        let url = st.https(MATRIX_HOST, "/_matrix/client/v3/register");
        let body = json!({"username": "mallory", "password": random_hex(20), "auth": {"type": "m.login.dummy"}});
        let r = http.post(&url).json(&body).send().await?;
        let s = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        ensure!(s == 403, "POST {url} answered {s}: {text}");
        Ok(format!("403 {}", text.trim()))
    }.await);

    // ---------------------------------------------------------------- 2.
    report.section("2. encrypted messaging with matrix-sdk through Caddy");
    let base_url = must(
        report,
        "discovery: https://example.test/.well-known/matrix/client names the Matrix host",
        async {
            let v = get_json(
                &http,
                &st.https(BASE_DOMAIN, "/.well-known/matrix/client"),
                None,
            )
            .await?;
            let url = v["m.homeserver"]["base_url"]
                .as_str()
                .context("no m.homeserver.base_url")?
                .trim_end_matches('/')
                .to_owned();
            let expected = st.https(MATRIX_HOST, "");
            ensure!(url == expected, "base_url {url}, expected {expected}");
            Ok(url)
        }
        .await,
    )?;
    println!("  homeserver: {base_url}");
    // What a user types: the server name (here with Caddy's test port);
    // matrix-sdk finds the Matrix host through the base domain's well-known.
    let discovery = format!("{BASE_DOMAIN}:{}", st.ports.https);
    let alice = must(
        report,
        "alice logs in through Caddy over HTTPS (matrix-sdk discovers the Matrix host from the base domain's well-known)",
        login(&http, &discovery, &base_url, "alice", &alice_pw).await,
    )?;
    let bob = must(
        report,
        "bob logs in with the generated password",
        login(&http, &discovery, &base_url, "bob", &bob_pw).await,
    )?;
    let alice_token = alice.access_token().context("alice has no token")?;
    let bob_token = bob.access_token().context("bob has no token")?;
    report.check(
        "user IDs are on the server name",
        async {
            let who = alice.whoami().await?;
            ensure!(
                who.user_id.as_str() == format!("@alice:{SERVER_NAME}"),
                "alice is {}",
                who.user_id
            );
            Ok(who.user_id.to_string())
        }
        .await,
    );
    report.check(
        "--admin made alice a server admin (Synapse's own listener), bob is not",
        async {
            let url = |who: &str| {
                st.synapse_direct(&format!(
                    "/_synapse/admin/v2/users/{}",
                    seg(&format!("@{who}:{SERVER_NAME}"))
                ))
            };
            let v = get_json(&plain, &url("alice"), Some(&alice_token)).await?;
            ensure!(v["admin"] == true, "alice: {v}");
            let r = plain.get(url("bob")).bearer_auth(&bob_token).send().await?;
            ensure!(
                r.status().as_u16() == 403,
                "bob may use the admin API ({})",
                r.status()
            );
            Ok("")
        }
        .await,
    );
    // Both devices upload their keys.
    must(
        report,
        "first sync of both clients (device keys uploaded)",
        async {
            sync(&alice).await?;
            sync(&bob).await
        }
        .await,
    )?;
    let room = must(
        report,
        "alice creates a room without asking for encryption",
        alice
            .create_room(CreateRoomRequest::new())
            .await
            .map_err(Into::into),
    )?;
    let room_id = room.room_id().to_owned();
    report.check(
        "the new room is encrypted by default (m.room.encryption in its state)",
        async {
            let url = format!(
                "{base_url}/_matrix/client/v3/rooms/{}/state/m.room.encryption/",
                seg(room_id.as_str())
            );
            let v = get_json(&http, &url, Some(&alice_token)).await?;
            let alg = v["algorithm"].as_str().unwrap_or_default().to_owned();
            ensure!(alg == "m.megolm.v1.aes-sha2", "algorithm {alg:?}");
            Ok(alg)
        }
        .await,
    );
    must(
        report,
        "alice invites bob; bob sees the invite and joins",
        async { client::invite_and_join(&alice, &room, &bob).await }.await,
    )?;
    let plaintext = format!("acceptance secret {}", random_hex(24));
    let event_id = must(
        report,
        "alice sends an encrypted message",
        async {
            let (event_id, encrypted) = send_text(&alice, &room_id, &plaintext).await?;
            ensure!(encrypted, "the SDK sent it unencrypted");
            Ok(event_id)
        }
        .await,
    )?;
    report.check(
        "the stored event is m.room.encrypted, without the plaintext",
        async {
            let url = event_url(&base_url, &room_id, &event_id);
            let v = get_json(&http, &url, Some(&bob_token)).await?;
            ensure!(v["type"] == "m.room.encrypted", "type {}", v["type"]);
            ensure!(
                !v.to_string().contains(&plaintext),
                "plaintext visible to the server"
            );
            Ok(v["content"]["algorithm"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        }
        .await,
    );
    report.check(
        "bob decrypts and reads alice's message",
        async {
            let body = read_decrypted(&bob, &room_id, &event_id).await?;
            ensure!(body == plaintext, "bob read {body:?}");
            Ok("")
        }
        .await,
    );
    report.check(
        "the plaintext appears nowhere in a pg_dump of the database",
        async {
            let mut c = st.pg_client("pg_dump");
            c.arg("synapse");
            let out = proc::run_ok(c, Duration::from_secs(120)).await?;
            ensure!(
                out.stdout.contains(event_id.as_str()),
                "the dump does not even hold the event (wrong database?)"
            );
            ensure!(
                out.stdout.contains("m.room.encrypted"),
                "no encrypted event in the dump"
            );
            ensure!(
                !out.stdout.contains(&plaintext),
                "the plaintext is in the database"
            );
            Ok(format!("{} bytes searched", out.stdout.len()))
        }
        .await,
    );

    report.check(
        "Synapse is connected to PostgreSQL over the Unix socket as the service user",
        async {
            let mut c = st.pg_client("psql");
            c.args(["-d", "synapse", "-At", "-c"])
                .arg("SELECT usename || '|' || coalesce(host(client_addr), 'socket') FROM pg_stat_activity WHERE datname = 'synapse' AND pid <> pg_backend_pid()");
            let out = proc::run_ok(c, CMD_TIMEOUT).await?;
            let rows: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
            ensure!(!rows.is_empty(), "no connection to the database synapse");
            let expected = format!("{}|socket", st.user.name);
            ensure!(rows.iter().all(|r| *r == expected), "connections: {rows:?}");
            Ok(format!("{} connections as {}", rows.len(), st.user.name))
        }
        .await,
    );

    // ---------------------------------------------------------------- 3.
    report.section("3. federation closed");
    for (name, url, client) in [
        (
            "federation version through Caddy (Matrix host)",
            st.https(MATRIX_HOST, "/_matrix/federation/v1/version"),
            &http,
        ),
        (
            "server keys through Caddy",
            st.https(MATRIX_HOST, "/_matrix/key/v2/server"),
            &http,
        ),
        (
            "federation version on Synapse's own listener",
            st.synapse_direct("/_matrix/federation/v1/version"),
            &plain,
        ),
        (
            "server keys on Synapse's own listener",
            st.synapse_direct("/_matrix/key/v2/server"),
            &plain,
        ),
        (
            "/.well-known/matrix/server on the base domain",
            st.https(BASE_DOMAIN, "/.well-known/matrix/server"),
            &http,
        ),
        (
            "/.well-known/matrix/server on the Matrix host",
            st.https(MATRIX_HOST, "/.well-known/matrix/server"),
            &http,
        ),
        (
            "Synapse admin API not reachable through Caddy",
            st.https(MATRIX_HOST, "/_synapse/admin/v1/server_version"),
            &http,
        ),
    ] {
        let client = if std::ptr::eq(client, &http) {
            &strict
        } else {
            client
        };
        report.check(&format!("{name} → 404"), expect_404(client, &url).await);
    }
    report.check(
        "no path trick reaches the admin or federation API through Caddy (curl --path-as-is: dot segments, encoded characters, double slashes)",
        async {
            let ca = st.caddy_ca();
            let curl = |path: &str| {
                let mut c = std::process::Command::new("curl");
                c.args(["-sS", "--path-as-is", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
                    .arg(&ca)
                    .arg("--resolve")
                    .arg(format!("{MATRIX_HOST}:{}:127.0.0.1", st.ports.https))
                    .arg(st.https(MATRIX_HOST, path));
                proc::run_ok(c, CMD_TIMEOUT)
            };
            // The same request form reaches what Caddy does serve.
            let control = curl("/_matrix/client/versions").await?;
            ensure!(
                control.stdout.ends_with("\n200") && control.stdout.contains("\"versions\""),
                "the control request failed: {}",
                tail(&control.stdout, 3)
            );
            let mut seen = Vec::new();
            for path in [
                "/_matrix/../_synapse/admin/v1/server_version",
                "/_matrix/%2e%2e/_synapse/admin/v1/server_version",
                "/_matrix/client/%2e%2e/%2e%2e/_synapse/admin/v1/server_version",
                "/_synapse/client/../admin/v1/server_version",
                "/_synapse/client/%2e%2e/admin/v1/server_version",
                "/_synapse/%61dmin/v1/server_version",
                "//_synapse/admin/v1/server_version",
                "/_matrix//federation/v1/version",
                "/_matrix/%66ederation/v1/version",
                "/_matrix/client/../federation/v1/version",
                "/_matrix/client/%2e%2e/key/v2/server",
                "/_matrix/FEDERATION/v1/version",
            ] {
                let out = curl(path).await?;
                let code = out.stdout.lines().last().unwrap_or_default().trim().to_owned();
                ensure!(
                    !code.starts_with('2') && !code.starts_with('3'),
                    "{path} answered {code}: {}",
                    tail(&out.stdout, 3)
                );
                ensure!(
                    !out.stdout.contains("server_version") && !out.stdout.contains("\"server\""),
                    "{path} answered with the API: {}",
                    tail(&out.stdout, 3)
                );
                seen.push(format!("{path} → {code}"));
            }
            Ok(seen.join(", "))
        }
        .await,
    );
    report.check(
        "the base domain serves no federation API (404, or a redirect to Element Web)",
        async {
            let mut seen = Vec::new();
            for path in ["/_matrix/federation/v1/version", "/_matrix/key/v2/server"] {
                let url = st.https(BASE_DOMAIN, path);
                let r = strict.get(&url).send().await?;
                let s = r.status().as_u16();
                let loc = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let to_element = loc.starts_with(&st.https(ELEMENT_HOST, "/"));
                ensure!(
                    s == 404 || (r.status().is_redirection() && to_element),
                    "GET {url} answered {s} {loc}"
                );
                seen.push(format!("{path} → {s} {loc}"));
            }
            Ok(seen.join(", "))
        }
        .await,
    );

    // ---------------------------------------------------------------- 4.
    report.section("4. calls (TURN)");
    let turn_creds = report_value(
        report,
        "voip/turnServer returns TURN URIs and time-limited credentials",
        async {
            let v = get_json(
                &http,
                &format!("{base_url}/_matrix/client/v3/voip/turnServer"),
                Some(&alice_token),
            )
            .await?;
            let uris: Vec<String> = v["uris"]
                .as_array()
                .context("no uris")?
                .iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect();
            let expected = format!("turn:{MATRIX_HOST}:{}", st.ports.turn);
            ensure!(
                uris.iter().any(|u| u.starts_with(&expected)),
                "uris {uris:?} lack {expected}"
            );
            let username = v["username"].as_str().context("no username")?.to_owned();
            let password = v["password"].as_str().context("no password")?.to_owned();
            let ttl = v["ttl"].as_u64().context("no ttl")?;
            let (expiry, who) = username
                .split_once(':')
                .context("username is not EXPIRY:USER")?;
            let expiry: u64 = expiry.parse().context("expiry is not a number")?;
            let t = now();
            ensure!(
                expiry > t && expiry <= t + 3600 + 120,
                "expiry {expiry} not within the hour (now {t})"
            );
            ensure!(
                who == format!("@alice:{SERVER_NAME}"),
                "username names {who}"
            );
            ensure!(ttl > 0 && ttl <= 3600, "ttl {ttl}");
            ensure!(!password.is_empty(), "empty password");
            Ok((format!("{uris:?}, ttl {ttl}"), (username, password)))
        }
        .await,
    );
    let turn_addr: SocketAddr = ([127, 0, 0, 1], st.ports.turn).into();
    if let Some((turn_user, turn_pw)) = turn_creds {
        let mut peer = st.user.command("turnutils_peer", &st.p.home);
        peer.args(["-L", "127.0.0.1", "-p"])
            .arg(st.ports.peer.to_string());
        st.spawn("turnutils_peer", peer, libc::SIGTERM)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let uclient = |st: &Stack, user: &str, pw: &str, peer: &str| {
            let mut c = st.user.command("turnutils_uclient", &st.p.home);
            c.args([
                "-p",
                &st.ports.turn.to_string(),
                "-u",
                user,
                "-w",
                pw,
                "-e",
                peer,
                "-r",
                &st.ports.peer.to_string(),
                "-n",
                "5",
                "-m",
                "1",
                "-c",
                "127.0.0.1",
            ]);
            c
        };
        report.check(
            "production coturn: those credentials allocate a relay",
            async {
                match stun::allocate(turn_addr, &turn_user, &turn_pw).await? {
                    AllocateOutcome::Allocated => Ok("Allocate success"),
                    AllocateOutcome::Error(code, reason) => {
                        bail!("Allocate refused: {code} {reason}")
                    }
                }
            }
            .await,
        );
        report.check(
            "production coturn: a wrong password is refused (401)",
            async {
                match stun::allocate(turn_addr, &turn_user, "not-the-password").await? {
                    AllocateOutcome::Error(401, reason) => Ok(format!("401 {reason}")),
                    other => bail!("expected 401, got {other:?}"),
                }
            }
            .await,
        );
        for (peer, what) in [
            ("127.0.0.1", "the loopback peer"),
            ("10.0.0.1", "a private-range peer (10.0.0.1)"),
        ] {
            report.check(
                &format!("production coturn: relaying to {what} is refused (403 Forbidden IP)"),
                async {
                    let out = proc::run(
                        uclient(st, &turn_user, &turn_pw, peer),
                        Duration::from_secs(40),
                    )
                    .await?;
                    let text = out.both();
                    ensure!(
                        text.contains("403") && text.contains("Forbidden IP"),
                        "no 403 Forbidden IP: {}",
                        tail(&text, 8)
                    );
                    if let Some((_, recv)) = uclient_totals(&text) {
                        ensure!(recv == 0, "{recv} messages were relayed");
                    }
                    Ok("403 (Forbidden IP)")
                }
                .await,
            );
        }
        report.check("test-only coturn (same file, plus --allow-loopback-peers --allowed-peer-ip=127.0.0.1) relays to turnutils_peer with those credentials", async {
            st.stop_service("coturn", Duration::from_secs(10));
            st.start_coturn("coturn-test-loopback", &["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"]).await?;
            let out = proc::run(uclient(st, &turn_user, &turn_pw, "127.0.0.1"), Duration::from_secs(60)).await?;
            let text = out.both();
            ensure!(out.status.success(), "uclient failed ({}): {}", out.status, tail(&text, 8));
            let (sent, recv) = uclient_totals(&text).context("no totals in uclient's output")?;
            ensure!(sent > 0 && recv == sent, "sent {sent}, received {recv}: {}", tail(&text, 8));
            ensure!(text.contains("Total lost packets 0"), "packets lost: {}", tail(&text, 8));
            st.stop_service("coturn-test-loopback", Duration::from_secs(10));
            Ok(format!("{sent} messages relayed and echoed"))
        }.await);
        st.stop_service("turnutils_peer", Duration::from_secs(5));
    }

    // ---------------------------------------------------------------- 5.
    report.section("5. Element Web");
    report.check(
        "Element's config.json points at the Matrix host and server name",
        async {
            let v = get_json(&http, &st.https(ELEMENT_HOST, "/config.json"), None).await?;
            let hs = &v["default_server_config"]["m.homeserver"];
            let expected = st.https(MATRIX_HOST, "");
            ensure!(
                hs["base_url"].as_str().map(|s| s.trim_end_matches('/')) == Some(expected.as_str()),
                "base_url {}",
                hs["base_url"]
            );
            ensure!(
                hs["server_name"] == SERVER_NAME,
                "server_name {}",
                hs["server_name"]
            );
            Ok("")
        }
        .await,
    );
    report.check(
        "Element's welcome page is the rendered one: the brand, a sign-in link, nothing from elsewhere",
        async {
            let url = st.https(ELEMENT_HOST, "/welcome.html");
            let r = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
            let status = r.status();
            let page = r.text().await?;
            ensure!(status.is_success(), "GET {url} answered {status}");
            let rendered = std::fs::read_to_string(st.p.out.join("element/welcome.html"))?;
            ensure!(page == rendered, "the welcome page is not the rendered one: {page}");
            ensure!(page.contains("Acceptance Chat") && page.contains("#/login"), "{page}");
            for needle in ["http:", "https:", "//", "<script"] {
                ensure!(!page.contains(needle), "{needle} in the welcome page");
            }
            let v = get_json(&http, &st.https(ELEMENT_HOST, "/config.json"), None).await?;
            ensure!(
                v["embedded_pages"]["welcome_url"] == "welcome.html",
                "welcome_url {}",
                v["embedded_pages"]["welcome_url"]
            );
            Ok("served from the render output")
        }
        .await,
    );
    report.check(
        "config.json has no analytics, integration manager or bug report endpoints",
        async {
            let v = get_json(&http, &st.https(ELEMENT_HOST, "/config.json"), None).await?;
            let is_endpoint = |k: &str| match &v[k] {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Bool(b) => *b,
                Value::Object(o) => !o.is_empty(),
                Value::Number(_) => true,
            };
            let mut bad = Vec::new();
            for k in [
                "piwik",
                "posthog",
                "sentry",
                "bug_report_endpoint_url",
                "integrations_ui_url",
                "integrations_rest_url",
                "integrations_widgets_urls",
                "integrations_jitsi_widget_url",
            ] {
                if is_endpoint(k) {
                    bad.push(format!("{k}={}", v[k]));
                }
            }
            ensure!(bad.is_empty(), "{}", bad.join(", "));
            // Element falls back to its built-in integration manager (scalar.vector.im)
            // unless the keys are present and empty.
            let mut missing = Vec::new();
            for k in [
                "integrations_ui_url",
                "integrations_rest_url",
                "integrations_widgets_urls",
            ] {
                if v.get(k).is_none() {
                    missing.push(k);
                }
            }
            ensure!(
                missing.is_empty(),
                "{} absent: Element would use its default integration manager",
                missing.join(", ")
            );
            Ok("")
        }
        .await,
    );
    for path in ["/config.json", "/"] {
        report.check(
            &format!("Element host {path}: security headers and no stale caching"),
            async {
                let url = st.https(ELEMENT_HOST, path);
                let r = http.get(&url).send().await?;
                ensure!(r.status().is_success(), "GET {url} answered {}", r.status());
                let h = r.headers();
                let get = |n: &str| {
                    h.get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let xfo = get("x-frame-options");
                ensure!(!xfo.is_empty(), "no X-Frame-Options");
                ensure!(
                    get("x-content-type-options").eq_ignore_ascii_case("nosniff"),
                    "X-Content-Type-Options {:?}",
                    get("x-content-type-options")
                );
                let csp = get("content-security-policy");
                ensure!(
                    csp.contains("frame-ancestors"),
                    "CSP {csp:?} lacks frame-ancestors"
                );
                let mut detail = format!("X-Frame-Options {xfo}");
                if path == "/config.json" {
                    let cc = get("cache-control").to_lowercase();
                    ensure!(
                        cc.contains("no-cache")
                            || cc.contains("no-store")
                            || cc.contains("max-age=0"),
                        "Cache-Control {cc:?} allows stale config.json"
                    );
                    detail.push_str(&format!(", Cache-Control {cc}"));
                } else {
                    let body = r.text().await?;
                    ensure!(
                        body.contains("acceptance placeholder"),
                        "not the webroot's index.html"
                    );
                }
                Ok(detail)
            }
            .await,
        );
    }

    if variant == Variant::Workers {
        report.section("9. workers");
        workers_checks(
            report,
            st,
            &http,
            &alice_token,
            &room_id,
            &event_id,
            main_metrics,
        )
        .await;
    }

    // ---------------------------------------------------------------- 6.
    report.section("6. persistence across a restart of Synapse and PostgreSQL");
    let key_before = std::fs::read(st.p.secrets.join("signing_key"))?;
    must(
        report,
        "Synapse (every process) and PostgreSQL stop cleanly",
        (|| {
            ensure!(st.service_mut("synapse").is_ok(), "Synapse is not running");
            st.stop_synapse(Duration::from_secs(60))?;
            let p = st
                .take_postgres()
                .context("PostgreSQL is not running")?
                .stop(Duration::from_secs(60));
            ensure!(p.is_some(), "PostgreSQL had to be killed");
            Ok(())
        })(),
    )?;
    report.check(
        "user add while Synapse is stopped fails (unreachable)",
        async {
            let out = proc::run(user_add(st, "dave", &[], &st.p.host_yaml), CMD_TIMEOUT).await?;
            ensure!(!out.status.success(), "succeeded: {}", out.both());
            ensure!(
                out.stderr.contains("unreachable"),
                "the message does not say Synapse is unreachable: {}",
                out.both()
            );
            Ok(out.stderr.trim().to_owned())
        }
        .await,
    );
    report.check(
        "secrets init run again changes nothing (byte for byte)",
        async {
            st.secrets_init(&st.p.secrets).await?;
            let after = read_secrets(&st.p.secrets)?;
            for (k, v) in &secrets_before {
                ensure!(after.get(k) == Some(v), "{k} changed");
            }
            Ok("")
        }
        .await,
    );
    must(
        report,
        "PostgreSQL and Synapse start again",
        async {
            st.start_postgres().await?;
            st.start_main_synapse().await
        }
        .await,
    )?;
    report.check(
        "alice logs in again; her room and message are still there",
        async {
            let alice2 = login(&http, &discovery, &base_url, "alice", &alice_pw).await?;
            let token = alice2.access_token().context("no token")?;
            let joined = joined_rooms(&http, &base_url, &token).await?;
            ensure!(
                joined.iter().any(|r| r == room_id.as_str()),
                "room missing: {joined:?}"
            );
            let url = event_url(&base_url, &room_id, &event_id);
            let ev = get_json(&http, &url, Some(&token)).await?;
            ensure!(ev["type"] == "m.room.encrypted", "event {ev}");
            Ok("")
        }
        .await,
    );
    report.check(
        "bob logs in again with his generated password",
        async {
            login(&http, &discovery, &base_url, "bob", &bob_pw).await?;
            Ok("")
        }
        .await,
    );
    report.check(
        "bob's first session still decrypts the message after the restart",
        async {
            let body = read_decrypted(&bob, &room_id, &event_id).await?;
            ensure!(body == plaintext, "read {body:?}");
            Ok("")
        }
        .await,
    );
    report.check(
        "the signing key did not change, and Synapse made no other key",
        (|| {
            let after = std::fs::read(st.p.secrets.join("signing_key"))?;
            ensure!(after == key_before, "the signing key file changed");
            let hs = std::fs::read_to_string(st.p.out.join("synapse/homeserver.yaml"))?;
            let key_path = st.p.secrets.join("signing_key").display().to_string();
            ensure!(
                hs.contains(&key_path),
                "homeserver.yaml does not use {key_path}"
            );
            let mut files = Vec::new();
            collect_files(&st.p.synapse_data, &mut files);
            collect_files(&st.p.out, &mut files);
            if let Some(f) = files
                .iter()
                .find(|f| f.to_string_lossy().ends_with(".signing.key"))
            {
                bail!("Synapse generated another key: {}", f.display());
            }
            let key_id = String::from_utf8_lossy(&after)
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            Ok(format!("key id {key_id}"))
        })(),
    );

    // ---------------------------------------------------------------- 8.
    report.section("8. Synapse's log");
    // Let Synapse flush and stop so that its whole log is on disk.
    let stopped = st.stop_synapse(Duration::from_secs(60));
    report.check(
        "every Synapse process stops cleanly at the end",
        stopped.map(|()| ""),
    );
    // The main process's log and each worker's (`synapse-NAME.log`).
    let mut logs: Vec<std::path::PathBuf> = std::fs::read_dir(&st.p.logs)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("synapse") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    let mut data_files = Vec::new();
    collect_files(&st.p.synapse_data, &mut data_files);
    logs.extend(
        data_files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "log")),
    );
    let log_text: String = logs
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n");
    report.check(
        "Synapse logged at INFO for the whole run (the log is not empty)",
        (|| {
            ensure!(
                log_text.lines().count() > 10,
                "only {} lines in {logs:?}",
                log_text.lines().count()
            );
            Ok(format!("{} lines", log_text.lines().count()))
        })(),
    );
    report.check(
        "Synapse's log holds no ERROR line",
        (|| {
            // Each process's log on its own: the shutdown noise is per process.
            let mut errors = Vec::new();
            let mut noise = 0;
            for f in &logs {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                let (e, n) = synapse_log::error_lines_but_shutdown_noise(&text);
                errors.extend(e.into_iter().map(str::to_owned));
                noise += n;
            }
            ensure!(
                errors.is_empty(),
                "{}",
                errors[..errors.len().min(5)].join("\n")
            );
            Ok(if noise == 0 {
                String::new()
            } else {
                format!(
                    "left out: {noise} lines of Synapse's own shutdown noise (a Redis command racing the shutdown, matrix-org/synapse#12722)"
                )
            })
        })(),
    );
    report.check(
        "Synapse's log shows no attempt to reach another server",
        (|| {
            let hits = synapse_log::outbound_lines(&log_text);
            ensure!(hits.is_empty(), "{}", hits[..hits.len().min(5)].join("\n"));
            Ok("")
        })(),
    );
    Ok(())
}

/// Records a check that yields a value for later steps: `Ok((detail, value))`.
fn report_value<T>(report: &mut Report, name: &str, r: Result<(String, T)>) -> Option<T> {
    match r {
        Ok((detail, v)) => {
            report.check(name, Ok(detail));
            Some(v)
        }
        Err(e) => {
            report.check::<&str>(name, Err(e));
            None
        }
    }
}

/// Which process Synapse's worker documentation sends a request to, with
/// one sync and one client worker (every stream still written by the main
/// process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The sync worker.
    Sync,
    /// The client worker.
    Client,
    /// The main process.
    Main,
}

/// A request per entry of the documentation's lists ("Sync requests",
/// "Client API requests", "Encryption requests", "Registration/login
/// requests", "Event sending requests", "User directory search requests",
/// the GET-only list, pagination, the stream writers' endpoints), sent as
/// GET (nothing changes; a POST-only endpoint answers 405), and a few the
/// main process keeps. `ROOM` and `EVENT` are replaced.
const ROUTE_SAMPLES: &[(&str, Expect)] = &[
    ("/_matrix/client/v3/sync?timeout=0", Expect::Sync),
    ("/_matrix/client/r0/sync?timeout=0", Expect::Sync),
    ("/_matrix/client/v3/events?timeout=0", Expect::Sync),
    ("/_matrix/client/v3/initialSync", Expect::Sync),
    ("/_matrix/client/v3/rooms/ROOM/initialSync", Expect::Sync),
    ("/_matrix/client/v3/createRoom", Expect::Client),
    ("/_matrix/client/v3/publicRooms", Expect::Client),
    (
        "/_matrix/client/v3/rooms/ROOM/joined_members",
        Expect::Client,
    ),
    (
        "/_matrix/client/v3/rooms/ROOM/context/EVENT",
        Expect::Client,
    ),
    ("/_matrix/client/v3/rooms/ROOM/members", Expect::Client),
    ("/_matrix/client/v3/rooms/ROOM/state", Expect::Client),
    ("/_matrix/client/v1/rooms/ROOM/hierarchy", Expect::Client),
    (
        "/_matrix/client/v1/rooms/ROOM/relations/EVENT",
        Expect::Client,
    ),
    ("/_matrix/client/v1/rooms/ROOM/threads", Expect::Client),
    (
        "/_matrix/client/unstable/im.nheko.summary/summary/ROOM",
        Expect::Client,
    ),
    ("/_matrix/client/v3/account/3pid", Expect::Client),
    ("/_matrix/client/v3/account/whoami", Expect::Client),
    ("/_matrix/client/v3/account/deactivate", Expect::Client),
    ("/_matrix/client/versions", Expect::Client),
    ("/_matrix/client/v3/voip/turnServer", Expect::Client),
    ("/_matrix/client/v3/rooms/ROOM/event/EVENT", Expect::Client),
    ("/_matrix/client/v3/joined_rooms", Expect::Client),
    (
        "/_matrix/client/v1/rooms/ROOM/timestamp_to_event",
        Expect::Client,
    ),
    ("/_matrix/client/v3/rooms/ROOM/aliases", Expect::Client),
    ("/_matrix/client/v3/search", Expect::Client),
    (
        "/_matrix/client/v3/user/@alice:example.test/filter/0",
        Expect::Client,
    ),
    (
        "/_matrix/client/v3/directory/room/%23nowhere:example.test",
        Expect::Client,
    ),
    ("/_matrix/client/v3/capabilities", Expect::Client),
    ("/_matrix/client/v3/notifications", Expect::Client),
    ("/_matrix/client/v3/keys/query", Expect::Client),
    ("/_matrix/client/v3/keys/changes", Expect::Client),
    ("/_matrix/client/v3/keys/claim", Expect::Client),
    ("/_matrix/client/v3/room_keys/version", Expect::Client),
    ("/_matrix/client/v3/login", Expect::Client),
    ("/_matrix/client/v3/register", Expect::Client),
    ("/_matrix/client/v3/register/available", Expect::Client),
    (
        "/_matrix/client/v1/register/m.login.registration_token/validity",
        Expect::Client,
    ),
    ("/_matrix/client/v3/password_policy", Expect::Client),
    (
        "/_matrix/client/v3/rooms/ROOM/redact/EVENT/t1",
        Expect::Client,
    ),
    (
        "/_matrix/client/v3/rooms/ROOM/send/m.room.message/t1",
        Expect::Client,
    ),
    (
        "/_matrix/client/v3/rooms/ROOM/state/m.room.name/",
        Expect::Client,
    ),
    ("/_matrix/client/v3/rooms/ROOM/join", Expect::Client),
    ("/_matrix/client/v3/rooms/ROOM/invite", Expect::Client),
    ("/_matrix/client/v3/rooms/ROOM/leave", Expect::Client),
    ("/_matrix/client/v3/rooms/ROOM/kick", Expect::Client),
    ("/_matrix/client/v3/join/ROOM", Expect::Client),
    ("/_matrix/client/v3/knock/ROOM", Expect::Client),
    (
        "/_matrix/client/v3/profile/@alice:example.test",
        Expect::Client,
    ),
    ("/_matrix/client/v3/user_directory/search", Expect::Client),
    (
        "/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
        Expect::Client,
    ),
    ("/_matrix/client/v3/rooms/ROOM/messages", Expect::Client),
    // Each stream's endpoints go to its writer, here the main process.
    (
        "/_matrix/client/v3/rooms/ROOM/typing/@alice:example.test",
        Expect::Main,
    ),
    ("/_matrix/client/v3/sendToDevice/m.test/t1", Expect::Main),
    (
        "/_matrix/client/v3/user/@alice:example.test/account_data/m.test",
        Expect::Main,
    ),
    (
        "/_matrix/client/v3/user/@alice:example.test/rooms/ROOM/tags",
        Expect::Main,
    ),
    (
        "/_matrix/client/v3/rooms/ROOM/receipt/m.read/EVENT",
        Expect::Main,
    ),
    ("/_matrix/client/v3/rooms/ROOM/read_markers", Expect::Main),
    (
        "/_matrix/client/v3/presence/@alice:example.test/status",
        Expect::Main,
    ),
    ("/_matrix/client/v3/pushrules/", Expect::Main),
    ("/_matrix/client/v3/devices", Expect::Main),
    ("/_matrix/client/v3/delete_devices", Expect::Main),
    ("/_matrix/client/v3/keys/upload", Expect::Main),
    (
        "/_matrix/client/v3/keys/device_signing/upload",
        Expect::Main,
    ),
    ("/_matrix/client/v3/keys/signatures/upload", Expect::Main),
    // Not in the documentation's lists: the main process.
    ("/_matrix/client/v3/logout", Expect::Main),
    ("/_matrix/client/v3/account/password", Expect::Main),
    ("/_matrix/client/v3/rooms/ROOM/upgrade", Expect::Main),
];

/// Every Synapse process's metrics listener: (service name, ADDRESS:PORT).
fn metrics_endpoints(st: &Stack, main_metrics: u16) -> Result<Vec<(String, String)>> {
    let mut out = vec![("synapse".to_owned(), format!("127.0.0.1:{main_metrics}"))];
    for w in st.workers()? {
        let m = w
            .metrics
            .clone()
            .with_context(|| format!("{} has no metrics listener", w.name))?;
        out.push((w.service(), m));
    }
    Ok(out)
}

/// The requests each Synapse process handled so far (Synapse's own
/// counter, from its metrics), by service name and (method, servlet).
type Handled = BTreeMap<String, BTreeMap<(String, String), f64>>;

async fn handled(http: &reqwest::Client, endpoints: &[(String, String)]) -> Result<Handled> {
    let mut out = BTreeMap::new();
    for (service, address) in endpoints {
        out.insert(
            service.clone(),
            workers::requests_handled(http, address).await?,
        );
    }
    Ok(out)
}

/// The client requests (not replication between the processes) each
/// process handled between two counts, of `method`.
fn handled_between(before: &Handled, after: &Handled, method: &str) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(service, counts)| {
            let d: f64 = counts
                .iter()
                .filter(|((m, servlet), _)| m == method && !servlet.starts_with("Replication"))
                .map(|(k, v)| {
                    v - before
                        .get(service)
                        .and_then(|b| b.get(k))
                        .copied()
                        .unwrap_or(0.0)
                })
                .sum();
            (service.clone(), d)
        })
        .collect()
}

/// Whether a response says Synapse has no handler for the path (404
/// `M_UNRECOGNIZED`; a known path with another method answers 405).
fn unrecognized(status: u16, body: &str) -> bool {
    status == 404 && body.contains("M_UNRECOGNIZED")
}

/// The workers section (a sync and a client worker): the routes of Synapse's
/// worker documentation, each process's share of the traffic, the
/// workers' sockets.
async fn workers_checks(
    report: &mut Report,
    st: &Stack,
    http: &reqwest::Client,
    token: &str,
    room: &matrix_sdk::ruma::OwnedRoomId,
    event: &matrix_sdk::ruma::OwnedEventId,
    main_metrics: u16,
) {
    let workers = match st.workers() {
        Ok(w) => w,
        Err(e) => {
            report.check::<&str>("the rendered workers manifest is read", Err(e));
            return;
        }
    };
    report.check(
        "a sync and a client worker run",
        (|| {
            let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
            ensure!(names == ["sync1", "client1"], "workers {names:?}");
            Ok(names.join(", "))
        })(),
    );
    let plain = match plain_client(Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            report.check::<&str>("an HTTP client for the metrics", Err(e));
            return;
        }
    };
    let endpoints = match metrics_endpoints(st, main_metrics) {
        Ok(e) => e,
        Err(e) => {
            report.check::<&str>("every Synapse process has a metrics listener", Err(e));
            return;
        }
    };
    // Each process served its share of what the users did above (Synapse's
    // own request counters: its access log is never written).
    report.check(
        "each worker served its share: /sync only on the sync worker, event sending and key queries only on the client worker (Synapse's request counters)",
        async {
            let by = handled(&plain, &endpoints).await?;
            let count = |svc: &str, method: &str, servlet: &str| {
                by.get(svc)
                    .and_then(|c| c.get(&(method.to_owned(), servlet.to_owned())))
                    .copied()
                    .unwrap_or(0.0)
            };
            let sync = count("synapse-sync1", "GET", "SyncRestServlet");
            let send = count("synapse-client1", "PUT", "RoomSendEventRestServlet");
            let keys = count("synapse-client1", "POST", "KeyQueryServlet");
            let seen = || format!("{by:?}");
            ensure!(sync > 0.0, "the sync worker served no /sync: {}", seen());
            ensure!(send > 0.0, "the client worker served no event sending: {}", seen());
            ensure!(keys > 0.0, "the client worker served no key query: {}", seen());
            for other in ["synapse", "synapse-client1"] {
                ensure!(count(other, "GET", "SyncRestServlet") == 0.0, "{other} served /sync");
            }
            for other in ["synapse", "synapse-sync1"] {
                ensure!(
                    count(other, "PUT", "RoomSendEventRestServlet") == 0.0,
                    "{other} served event sending"
                );
            }
            let main_total: f64 = by.get("synapse").map_or(0.0, |c| c.values().sum());
            Ok(format!(
                "sync1: {sync} syncs; client1: {send} sends, {keys} key queries; main: {main_total} requests"
            ))
        }
        .await,
    );
    let samples: Vec<(String, Expect)> = ROUTE_SAMPLES
        .iter()
        .map(|(p, e)| {
            (
                p.replace("ROOM", &seg(room.as_str()))
                    .replace("EVENT", &seg(event.as_str())),
                *e,
            )
        })
        .collect();
    let mut results = Vec::new();
    for (path, expect) in &samples {
        let r = async {
            let service = match expect {
                Expect::Sync => "synapse-sync1",
                Expect::Client => "synapse-client1",
                Expect::Main => "synapse",
            };
            let before = handled(&plain, &endpoints).await?;
            let url = st.https(MATRIX_HOST, path);
            let r = http.get(&url).bearer_auth(token).send().await?;
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            // The count is taken when Synapse has answered; wait for it.
            let mut at = Vec::new();
            for _ in 0..20 {
                let after = handled(&plain, &endpoints).await?;
                at = handled_between(&before, &after, "GET")
                    .into_iter()
                    .filter(|(_, d)| *d > 0.0)
                    .map(|(s, _)| s)
                    .collect();
                if !at.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ensure!(at == [service], "GET {path} was served by {at:?}, expected {service} ({status})");
            if unrecognized(status, &body) {
                // An endpoint behind an experimental feature that is off:
                // the main process does not know it either.
                let path = path.split('?').next().unwrap_or(path);
                let r = plain
                    .get(st.synapse_direct(path))
                    .bearer_auth(token)
                    .send()
                    .await?;
                let s = r.status().as_u16();
                let b = r.text().await.unwrap_or_default();
                ensure!(
                    unrecognized(s, &b),
                    "{service} does not handle GET {path} (404 M_UNRECOGNIZED), the main process does ({s})"
                );
                return Ok(format!("{path}: off on every process"));
            }
            Ok(String::new())
        }
        .await;
        results.push(r);
    }
    let mut failures = Vec::new();
    let mut off = Vec::new();
    for r in results {
        match r {
            Ok(note) if !note.is_empty() => off.push(note),
            Ok(_) => {}
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    report.check(
        "every endpoint of Synapse's worker documentation reaches the process it lists, which handles it (a request per entry through Caddy)",
        if failures.is_empty() {
            Ok(format!(
                "{} requests; {}",
                samples.len(),
                if off.is_empty() {
                    "every one handled".to_owned()
                } else {
                    off.join("; ")
                }
            ))
        } else {
            Err(anyhow!("{}", failures.join("\n")))
        },
    );
    // The workers' sockets: the proxy's 0660, replication's 0600; none
    // serves federation or server keys.
    let mut socket_results = Vec::new();
    for w in &workers {
        for (sock, mode) in [(&w.http, 0o660), (&w.replication, 0o600)] {
            let Some(sock) = sock else { continue };
            let r = async {
                let m = mode_of(sock)?;
                ensure!(
                    m == mode,
                    "{} has mode {m:o}, expected {mode:o}",
                    sock.display()
                );
                for path in ["/_matrix/federation/v1/version", "/_matrix/key/v2/server"] {
                    let (status, _) = workers::unix_get(sock, path).await?;
                    ensure!(
                        status == 404,
                        "{} answered {status} for {path}",
                        sock.display()
                    );
                }
                Ok(())
            }
            .await;
            socket_results.push(r);
        }
    }
    let main_repl = st.p.sockets.join("main-replication.sock");
    socket_results.push(mode_of(&main_repl).and_then(|m| {
        ensure!(m == 0o600, "{} has mode {m:o}", main_repl.display());
        Ok(())
    }));
    report.check(
        "the workers' sockets: 0660 for the proxy, 0600 for replication; no federation or key endpoint on any (404)",
        socket_results
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(|v| format!("{} sockets", v.len())),
    );
}
