//! OSPW Matrix acceptance suite: the whole private Matrix stack, started from
//! the `ospw-matrix` CLI's output unchanged, exercised as a user would.
//!
//! Each run: a fresh temporary directory; its own PostgreSQL cluster; secrets
//! from `ospw-matrix secrets init`; Synapse, coturn and Caddy (`tls internal`)
//! started from the rendered files, every program as an unprivileged user on
//! 127.0.0.1 with free ports. A real Matrix client (matrix-sdk) talks to
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
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::room::create_room::v3::Request as CreateRoomRequest;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, UserId};
use matrix_sdk::RoomState;
use ospw_matrix_acceptance::proc::{self, RunAs, Service};
use ospw_matrix_acceptance::report::Report;
use ospw_matrix_acceptance::stun::{self, AllocateOutcome};
use ospw_matrix_acceptance::wait;
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

const ABORTED: &str = "acceptance: aborted after a failed setup step";
/// The whole run may not take longer than this.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);
/// One CLI or helper command.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Synapse's first start creates its schema.
const SYNAPSE_START: Duration = Duration::from_secs(240);
const SERVICE_START: Duration = Duration::from_secs(60);
const MATRIX_WAIT: Duration = Duration::from_secs(90);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acceptance: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report::new();
    let mut stack: Option<Stack> = None;
    // Ctrl-C or SIGTERM ends the run early; the processes are still stopped below.
    let outcome = runtime.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout(SUITE_TIMEOUT, run(&mut report, &mut stack)) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
            _ = terminated => None,
        }
    });
    match outcome {
        None => {
            report.check::<&str>("run completed", Err(anyhow!("interrupted by a signal")));
        }
        Some(Ok(Ok(()))) => {}
        Some(Ok(Err(e))) if format!("{e}").starts_with(ABORTED) => println!("\n{e:#}"),
        Some(Ok(Err(e))) => {
            report.check::<&str>("run completed", Err(e));
        }
        Some(Err(_)) => {
            report.check::<&str>(
                "run completed",
                Err(anyhow!(
                    "the suite exceeded its {SUITE_TIMEOUT:?} time limit"
                )),
            );
        }
    }
    // Stop every process before reading the logs, then decide what to keep.
    let failed = !report.failed().is_empty();
    if let Some(mut stack) = stack.take() {
        stack.stop_all();
        if failed {
            stack.print_logs();
            println!(
                "\nacceptance: the run's directory is kept: {}",
                stack.p.root.display()
            );
        } else if std::env::var_os("OSPW_KEEP_TMP").is_some() {
            println!(
                "acceptance: OSPW_KEEP_TMP set, kept {}",
                stack.p.root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&stack.p.root);
        }
    }
    drop(runtime);
    report.summary();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every path of one run.
struct Paths {
    root: PathBuf,
    /// Owned by the unprivileged user: everything the services write.
    state: PathBuf,
    out: PathBuf,
    secrets: PathBuf,
    synapse_data: PathBuf,
    pg_data: PathBuf,
    pg_sock: PathBuf,
    webroot: PathBuf,
    home: PathBuf,
    caddy_home: PathBuf,
    logs: PathBuf,
    host_yaml: PathBuf,
    host_wrong_secret_yaml: PathBuf,
    turn_conf: PathBuf,
}

struct Ports {
    synapse: u16,
    pg: u16,
    turn: u16,
    relay_min: u16,
    relay_max: u16,
    http: u16,
    https: u16,
    peer: u16,
}

/// The running stack. Dropping it stops every process.
struct Stack {
    p: Paths,
    ports: Ports,
    user: RunAs,
    cli: PathBuf,
    python: PathBuf,
    pg_bin: PathBuf,
    postgres: Option<Service>,
    synapse: Option<Service>,
    coturn: Option<Service>,
    caddy: Option<Service>,
    peer: Option<Service>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl Stack {
    fn stop_all(&mut self) {
        for svc in [
            self.caddy.take(),
            self.coturn.take(),
            self.peer.take(),
            self.synapse.take(),
            self.postgres.take(),
        ]
        .into_iter()
        .flatten()
        {
            let mut svc = svc;
            svc.stop(Duration::from_secs(20));
        }
    }

    fn print_logs(&self) {
        let mut files: Vec<PathBuf> = Vec::new();
        collect_files(&self.p.logs, &mut files);
        collect_files(&self.p.synapse_data, &mut files);
        files.retain(|f| f.extension().is_some_and(|e| e == "log"));
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(40);
            println!(
                "\n---- {} (last {} lines) ----",
                f.display(),
                lines.len() - start
            );
            for l in &lines[start..] {
                println!("{l}");
            }
        }
    }

    /// `ospw-matrix ARGS`, run as root (the administrator).
    fn cli(&self) -> Command {
        Command::new(&self.cli)
    }

    /// `ospw-matrix ARGS`, run as the service user (files it creates belong to it).
    fn cli_as_user(&self) -> Command {
        self.user.command(&self.cli, &self.p.home)
    }

    fn pg(&self, program: &str) -> Command {
        self.user.command(self.pg_bin.join(program), &self.p.home)
    }

    fn https(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.ports.https)
    }

    fn synapse_direct(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.synapse)
    }

    async fn start_postgres(&mut self) -> Result<()> {
        let mut cmd = self.pg("postgres");
        cmd.arg("-D")
            .arg(&self.p.pg_data)
            .arg("-k")
            .arg(&self.p.pg_sock)
            .arg("-p")
            .arg(self.ports.pg.to_string())
            // Unix socket only: no TCP at all.
            .arg("-c")
            .arg("listen_addresses=");
        let svc = Service::spawn(
            "postgres",
            cmd,
            &self.p.logs.join("postgres.log"),
            libc::SIGINT,
        )?;
        self.postgres = Some(svc);
        let (sock, port) = (self.p.pg_sock.clone(), self.ports.pg);
        let me = &*self;
        wait::until(
            "PostgreSQL",
            SERVICE_START,
            Duration::from_millis(300),
            || {
                let sock = sock.clone();
                async move {
                    let mut c = me.pg("pg_isready");
                    c.arg("-h")
                        .arg(&sock)
                        .arg("-p")
                        .arg(port.to_string())
                        .args(["-d", "postgres"]);
                    Ok(proc::run(c, CMD_TIMEOUT)
                        .await?
                        .status
                        .success()
                        .then_some(()))
                }
            },
        )
        .await
    }

    async fn start_synapse(&mut self) -> Result<()> {
        let mut cmd = self.user.command(&self.python, &self.p.home);
        cmd.args(["-m", "synapse.app.homeserver", "-c"])
            .arg(self.p.out.join("synapse/homeserver.yaml"))
            .current_dir(&self.p.synapse_data);
        let svc = Service::spawn(
            "synapse",
            cmd,
            &self.p.logs.join("synapse.log"),
            libc::SIGTERM,
        )?;
        self.synapse = Some(svc);
        let url = self.synapse_direct("/health");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let synapse = self.synapse.as_mut().expect("just set");
        let deadline = std::time::Instant::now() + SYNAPSE_START;
        loop {
            synapse.check_running()?;
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("Synapse did not answer {url} within {SYNAPSE_START:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn start_coturn(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        let mut cmd = self.user.command("turnserver", &self.p.home);
        cmd.arg("-c").arg(&self.p.turn_conf).args(extra);
        let svc = Service::spawn(
            name,
            cmd,
            &self.p.logs.join(format!("{name}.log")),
            libc::SIGTERM,
        )?;
        self.coturn = Some(svc);
        wait::tcp_port("coturn's TCP listener", self.ports.turn, SERVICE_START).await?;
        // coturn opens its UDP listener in the same start-up step; give it a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.coturn.as_mut().expect("just set").check_running()
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

fn mkdir(path: &Path, mode: u32, user: Option<&RunAs>) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(u) = user {
        u.chown(path)?;
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    while s.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(n);
    s
}

/// Percent-encodes a path segment (room and event IDs).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn find_cli() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("OSPW_MATRIX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let mut found: Vec<(SystemTime, PathBuf)> = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("ospw-matrix"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("no ospw-matrix binary: build it (cargo build -p ospw-matrix-cli) or set OSPW_MATRIX_BIN"))
}

/// Records a setup step; a failure aborts the run.
fn must<T>(report: &mut Report, name: &str, r: Result<T>) -> Result<T> {
    match r {
        Ok(v) => {
            report.check(name, Ok(""));
            Ok(v)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            report.check::<&str>(name, Err(e));
            bail!("{ABORTED} ({name}): {msg}")
        }
    }
}

async fn status_of(http: &reqwest::Client, url: &str) -> Result<u16> {
    let r = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    Ok(r.status().as_u16())
}

async fn expect_404(http: &reqwest::Client, url: &str) -> Result<String> {
    let s = status_of(http, url).await?;
    ensure!(s == 404, "GET {url} answered {s}, expected 404");
    Ok(format!("{url} → 404"))
}

async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> Result<Value> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "GET {url} answered {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))
}

/// Logs in with matrix-sdk through Caddy, with an in-memory store.
async fn login(
    http: &reqwest::Client,
    base_url: &str,
    name: &str,
    password: &str,
) -> Result<matrix_sdk::Client> {
    let client = matrix_sdk::Client::builder()
        .homeserver_url(base_url)
        .http_client(http.clone())
        .build()
        .await
        .context("build the matrix-sdk client")?;
    client
        .matrix_auth()
        .login_username(name, password)
        .initial_device_display_name(&format!("acceptance {name}"))
        .send()
        .await
        .with_context(|| format!("log in as {name}"))?;
    Ok(client)
}

fn sync_settings() -> SyncSettings {
    SyncSettings::default().timeout(Duration::from_secs(1))
}

async fn sync(client: &matrix_sdk::Client) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(30), client.sync_once(sync_settings()))
        .await
        .map_err(|_| anyhow!("sync timed out"))?
        .context("sync")?;
    Ok(())
}

/// Syncs `client` until `room`'s `event_id` is available decrypted, and returns its body.
async fn read_decrypted(
    client: &matrix_sdk::Client,
    room_id: &OwnedRoomId,
    event_id: &OwnedEventId,
) -> Result<String> {
    wait::until(
        "the decrypted message",
        MATRIX_WAIT,
        Duration::from_millis(200),
        || async move {
            sync(client).await?;
            let room = client
                .get_room(room_id)
                .context("room unknown to the client")?;
            let ev = room
                .event(event_id, None)
                .await
                .context("fetch the event")?;
            if ev.encryption_info().is_none() {
                bail!("not decrypted (yet)");
            }
            let v: Value = ev.raw().deserialize_as()?;
            Ok(v["content"]["body"].as_str().map(str::to_owned))
        },
    )
    .await
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

async fn run(report: &mut Report, slot: &mut Option<Stack>) -> Result<()> {
    report.section("setup");
    let user = must(report, "unprivileged service user exists", RunAs::detect())?;
    let cli = must(
        report,
        "ospw-matrix binary found",
        find_cli().and_then(|p| {
            ensure!(p.is_file(), "{} does not exist", p.display());
            Ok(p)
        }),
    )?;
    println!("  CLI: {}; services run as {}", cli.display(), user.name);
    let python = PathBuf::from(
        std::env::var_os("OSPW_SYNAPSE_PYTHON")
            .unwrap_or_else(|| "/opt/ospw-venv/bin/python".into()),
    );
    let pg_bin = PathBuf::from(
        std::env::var_os("OSPW_PG_BIN").unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into()),
    );
    must(
        report,
        "Synapse, PostgreSQL, coturn and Caddy are installed",
        (|| {
            ensure!(
                python.is_file(),
                "no Synapse venv python at {}",
                python.display()
            );
            ensure!(
                pg_bin.join("initdb").is_file(),
                "no PostgreSQL at {}",
                pg_bin.display()
            );
            for prog in [
                "turnserver",
                "turnutils_uclient",
                "turnutils_peer",
                "caddy",
                "setpriv",
            ] {
                ensure!(
                    Command::new("sh")
                        .arg("-c")
                        .arg(format!("command -v {prog}"))
                        .output()?
                        .status
                        .success(),
                    "{prog} is not installed (scripts/install-test-deps.sh)"
                );
            }
            Ok(())
        })(),
    )?;

    // Paths and ports.
    let root =
        std::env::temp_dir().join(format!("ospw-acceptance-{}-{}", std::process::id(), now()));
    let p = Paths {
        state: root.join("state"),
        out: root.join("rendered"),
        secrets: root.join("state/secrets"),
        synapse_data: root.join("state/synapse"),
        pg_data: root.join("state/pgdata"),
        pg_sock: root.join("state/pgsock"),
        webroot: root.join("webroot"),
        home: root.join("state/home"),
        caddy_home: root.join("state/caddy"),
        logs: root.join("logs"),
        host_yaml: root.join("host.yaml"),
        host_wrong_secret_yaml: root.join("host-wrong-secret.yaml"),
        turn_conf: root.join("state/turnserver.conf"),
        root,
    };
    let relay_min = 40000 + (std::process::id() % 200) as u16 * 100;
    let ports = Ports {
        synapse: wait::free_port(),
        pg: wait::free_port(),
        turn: wait::free_tcp_udp_port(),
        relay_min,
        relay_max: relay_min + 99,
        http: wait::free_port(),
        https: wait::free_port(),
        peer: wait::free_tcp_udp_port(),
    };
    *slot = Some(Stack {
        p,
        ports,
        user,
        cli,
        python,
        pg_bin,
        postgres: None,
        synapse: None,
        coturn: None,
        caddy: None,
        peer: None,
    });
    let st = slot.as_mut().expect("just set");
    println!("  run directory: {}", st.p.root.display());

    must(
        report,
        "fresh run directory",
        (|| {
            mkdir(&st.p.root, 0o755, None)?;
            mkdir(&st.p.logs, 0o777, None)?;
            mkdir(&st.p.webroot, 0o755, None)?;
            std::fs::write(
                st.p.webroot.join("index.html"),
                "<!doctype html><title>Element (acceptance placeholder)</title>\n",
            )?;
            mkdir(&st.p.state, 0o755, Some(&st.user))?;
            for d in [
                &st.p.synapse_data,
                &st.p.pg_sock,
                &st.p.home,
                &st.p.caddy_home,
            ] {
                mkdir(d, 0o700, Some(&st.user))?;
            }
            Ok(())
        })(),
    )?;

    let host_yaml = |secret_override: Option<&Path>| -> String {
        let q = |p: &Path| serde_json::to_string(&p.display().to_string()).expect("string");
        let mut secrets = format!("secrets:\n  dir: {}\n", q(&st.p.secrets));
        if let Some(f) = secret_override {
            secrets.push_str(&format!("  registration_shared_secret_file: {}\n", q(f)));
        }
        format!(
            "# Written by the acceptance suite.\n\
             base_domain: {BASE_DOMAIN}\n\
             server_name: {SERVER_NAME}\n\
             matrix_host: {MATRIX_HOST}\n\
             element_host: {ELEMENT_HOST}\n\
             synapse:\n\
             \x20 listen:\n\
             \x20   tcp:\n\
             \x20     address: 127.0.0.1\n\
             \x20     port: {sp}\n\
             \x20 database:\n\
             \x20   name: synapse\n\
             \x20   user: {user}\n\
             \x20   socket_dir: {sock}\n\
             \x20   port: {pgp}\n\
             \x20 data_dir: {data}\n\
             \x20 log_level: INFO\n\
             turn:\n\
             \x20 listening_ips: [127.0.0.1]\n\
             \x20 port: {tp}\n\
             \x20 relay_ports: \"{rmin}-{rmax}\"\n\
             element:\n\
             \x20 brand: Acceptance Chat\n\
             \x20 webroot: {web}\n\
             proxy:\n\
             \x20 tls: internal\n\
             \x20 http_port: {hp}\n\
             \x20 https_port: {hsp}\n\
             \x20 bind: [127.0.0.1]\n\
             \x20 admin: \"off\"\n\
             {secrets}",
            sp = st.ports.synapse,
            user = st.user.name,
            sock = q(&st.p.pg_sock),
            pgp = st.ports.pg,
            data = q(&st.p.synapse_data),
            tp = st.ports.turn,
            rmin = st.ports.relay_min,
            rmax = st.ports.relay_max,
            web = q(&st.p.webroot),
            hp = st.ports.http,
            hsp = st.ports.https,
        )
    };
    let wrong_secret_file = st.p.root.join("wrong_registration_secret");
    std::fs::write(&st.p.host_yaml, host_yaml(None))?;
    std::fs::write(
        &st.p.host_wrong_secret_yaml,
        host_yaml(Some(&wrong_secret_file)),
    )?;
    std::fs::write(&wrong_secret_file, format!("{}\n", random_hex(40)))?;
    std::fs::set_permissions(&wrong_secret_file, std::fs::Permissions::from_mode(0o600))?;

    // Secrets.
    let secrets_init = |st: &Stack| {
        let mut c = st.cli_as_user();
        c.args(["secrets", "init", "--dir"]).arg(&st.p.secrets);
        c
    };
    must(
        report,
        "ospw-matrix secrets init",
        async {
            proc::run_ok(secrets_init(st), CMD_TIMEOUT).await?;
            Ok(())
        }
        .await,
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
            let mode = std::fs::metadata(&st.p.secrets)?.permissions().mode() & 0o777;
            ensure!(
                mode == 0o700,
                "{} has mode {mode:o}",
                st.p.secrets.display()
            );
            let mut files = Vec::new();
            collect_files(&st.p.secrets, &mut files);
            ensure!(!files.is_empty(), "no secret files");
            for f in &files {
                let m = std::fs::metadata(f)?.permissions().mode() & 0o777;
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
            let mut c = st.cli();
            c.args(["render", "--config"])
                .arg(&st.p.host_yaml)
                .arg("--out")
                .arg(&st.p.out);
            proc::run_ok(c, CMD_TIMEOUT).await?;
            for f in [
                "synapse/homeserver.yaml",
                "synapse/log.yaml",
                "coturn/turnserver.conf",
                "element/config.json",
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
            let m = std::fs::metadata(&st.p.turn_conf)?.permissions().mode() & 0o777;
            ensure!(m == 0o600, "mode {m:o}");
            Ok("")
        })(),
    );

    must(
        report,
        "PostgreSQL cluster: initdb, peer auth, database with C collation (template0)",
        async {
            let mut c = st.pg("initdb");
            c.arg("-D")
                .arg(&st.p.pg_data)
                .args([
                    "--auth-local=peer",
                    "--auth-host=reject",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                ])
                .arg(&st.user.name);
            proc::run_ok(c, Duration::from_secs(120)).await?;
            st.start_postgres().await?;
            let mut c = st.pg("createdb");
            c.arg("-h")
                .arg(&st.p.pg_sock)
                .arg("-p")
                .arg(st.ports.pg.to_string())
                .args([
                    "-T",
                    "template0",
                    "-E",
                    "UTF8",
                    "--lc-collate=C",
                    "--lc-ctype=C",
                    "-O",
                ])
                .arg(&st.user.name)
                .arg("synapse");
            proc::run_ok(c, CMD_TIMEOUT).await?;
            Ok(())
        }
        .await,
    )?;

    must(
        report,
        "Synapse starts from the rendered homeserver.yaml and answers /health",
        st.start_synapse().await,
    )?;
    must(
        report,
        "coturn starts from the materialized turnserver.conf",
        st.start_coturn("coturn", &[]).await,
    )?;
    let ca_path =
        st.p.caddy_home
            .join("data/caddy/pki/authorities/local/root.crt");
    must(
        report,
        "Caddy starts from the rendered standalone Caddyfile (tls internal)",
        async {
            let mut c = st.user.command("caddy", &st.p.caddy_home);
            c.args(["run", "--adapter", "caddyfile", "--config"])
                .arg(st.p.out.join("caddy/Caddyfile"))
                .env("XDG_DATA_HOME", st.p.caddy_home.join("data"))
                .env("XDG_CONFIG_HOME", st.p.caddy_home.join("config"))
                .current_dir(&st.p.caddy_home);
            st.caddy = Some(Service::spawn(
                "caddy",
                c,
                &st.p.logs.join("caddy.log"),
                libc::SIGTERM,
            )?);
            wait::tcp_port("Caddy's HTTPS port", st.ports.https, SERVICE_START).await?;
            let ca = ca_path.clone();
            wait::until(
                "Caddy's local root CA",
                SERVICE_START,
                Duration::from_millis(200),
                || {
                    let ca = ca.clone();
                    async move { Ok(ca.is_file().then_some(())) }
                },
            )
            .await?;
            st.caddy.as_mut().expect("set").check_running()
        }
        .await,
    )?;

    // The client: trusts only Caddy's root CA, resolves the test names to 127.0.0.1.
    // `strict` follows no redirects, for the checks of status codes.
    let (http, strict) = must(
        report,
        "HTTPS client trusting only Caddy's local root CA",
        (|| {
            let pem = std::fs::read(&ca_path)?;
            let cert = reqwest::Certificate::from_pem(&pem)?;
            let lo: SocketAddr = ([127, 0, 0, 1], st.ports.https).into();
            let builder = || {
                reqwest::Client::builder()
                    .tls_certs_only([cert.clone()])
                    .resolve(BASE_DOMAIN, lo)
                    .resolve(MATRIX_HOST, lo)
                    .resolve(ELEMENT_HOST, lo)
                    .timeout(Duration::from_secs(30))
            };
            Ok((
                builder().build()?,
                builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
            ))
        })(),
    )?;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    report.check(
        "Caddy's local root CA is not in the system trust store",
        (|| {
            let pem = std::fs::read_to_string(&ca_path)?;
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

    // ---------------------------------------------------------------- 1.
    report.section("1. accounts");
    let alice_pw = format!("alice-{}", random_hex(24));
    let pw_file = st.p.root.join("alice.password");
    std::fs::write(&pw_file, format!("{alice_pw}\n"))?;
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600))?;
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
                msg.contains("exist") || msg.contains("taken") || msg.contains("in use"),
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
                user_add(st, "carol", &[], &st.p.host_wrong_secret_yaml),
                CMD_TIMEOUT,
            )
            .await?;
            ensure!(!out.status.success(), "succeeded: {}", out.both());
            let msg = out.both().to_lowercase();
            ensure!(
                msg.contains("secret")
                    || msg.contains("hmac")
                    || msg.contains("mac")
                    || msg.contains("forbidden"),
                "message does not name the secret: {}",
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
    let alice = must(
        report,
        "alice logs in through Caddy over HTTPS",
        login(&http, &base_url, "alice", &alice_pw).await,
    )?;
    let bob = must(
        report,
        "bob logs in with the generated password",
        login(&http, &base_url, "bob", &bob_pw).await,
    )?;
    let alice_token = alice.access_token().context("alice has no token")?;
    let bob_token = bob.access_token().context("bob has no token")?;
    let bob_id = UserId::parse(format!("@bob:{SERVER_NAME}"))?;
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
        async {
            room.invite_user_by_id(&bob_id).await?;
            let bob_ref = &bob;
            let rid = &room_id;
            wait::until(
                "bob's invite",
                MATRIX_WAIT,
                Duration::from_millis(200),
                || async move {
                    sync(bob_ref).await?;
                    Ok(bob_ref
                        .get_room(rid)
                        .filter(|r| r.state() == RoomState::Invited)
                        .map(|_| ()))
                },
            )
            .await?;
            bob.join_room_by_id(&room_id).await?;
            let alice_ref = &alice;
            wait::until(
                "alice to see bob joined",
                MATRIX_WAIT,
                Duration::from_millis(200),
                || async move {
                    sync(alice_ref).await?;
                    let r = alice_ref.get_room(rid).context("alice lost the room")?;
                    let member = r
                        .get_member_no_sync(bob_ref.user_id().context("bob")?)
                        .await?;
                    Ok(member
                        .filter(|m| *m.membership() == MembershipState::Join)
                        .map(|_| ()))
                },
            )
            .await
        }
        .await,
    )?;
    let plaintext = format!("acceptance secret {}", random_hex(24));
    let event_id = must(
        report,
        "alice sends an encrypted message",
        async {
            let room = alice.get_room(&room_id).context("room")?;
            let sent = tokio::time::timeout(
                MATRIX_WAIT,
                room.send(RoomMessageEventContent::text_plain(&plaintext)),
            )
            .await
            .map_err(|_| anyhow!("send timed out"))??;
            ensure!(
                sent.encryption_info.is_some(),
                "the SDK sent it unencrypted"
            );
            Ok(sent.response.event_id)
        }
        .await,
    )?;
    report.check(
        "the stored event is m.room.encrypted, without the plaintext",
        async {
            let url = format!(
                "{base_url}/_matrix/client/v3/rooms/{}/event/{}",
                seg(room_id.as_str()),
                seg(event_id.as_str())
            );
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
            let mut c = st.pg("pg_dump");
            c.arg("-h")
                .arg(&st.p.pg_sock)
                .arg("-p")
                .arg(st.ports.pg.to_string())
                .arg("synapse");
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
            let mut c = st.pg("psql");
            c.arg("-h")
                .arg(&st.p.pg_sock)
                .arg("-p")
                .arg(st.ports.pg.to_string())
                .args(["-d", "synapse", "-At", "-c"])
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
        st.peer = Some(Service::spawn(
            "turnutils_peer",
            {
                let mut c = st.user.command("turnutils_peer", &st.p.home);
                c.args(["-L", "127.0.0.1", "-p"])
                    .arg(st.ports.peer.to_string());
                c
            },
            &st.p.logs.join("turnutils_peer.log"),
            libc::SIGTERM,
        )?);
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
            if let Some(mut c) = st.coturn.take() {
                c.stop(Duration::from_secs(10));
            }
            st.start_coturn("coturn-test-loopback", &["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"]).await?;
            let out = proc::run(uclient(st, &turn_user, &turn_pw, "127.0.0.1"), Duration::from_secs(60)).await?;
            let text = out.both();
            ensure!(out.status.success(), "uclient failed ({}): {}", out.status, tail(&text, 8));
            let (sent, recv) = uclient_totals(&text).context("no totals in uclient's output")?;
            ensure!(sent > 0 && recv == sent, "sent {sent}, received {recv}: {}", tail(&text, 8));
            ensure!(text.contains("Total lost packets 0"), "packets lost: {}", tail(&text, 8));
            if let Some(mut c) = st.coturn.take() {
                c.stop(Duration::from_secs(10));
            }
            Ok(format!("{sent} messages relayed and echoed"))
        }.await);
        if let Some(mut p) = st.peer.take() {
            p.stop(Duration::from_secs(5));
        }
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

    // ---------------------------------------------------------------- 6.
    report.section("6. persistence across a restart of Synapse and PostgreSQL");
    let key_before = std::fs::read(st.p.secrets.join("signing_key"))?;
    must(
        report,
        "Synapse and PostgreSQL stop cleanly",
        (|| {
            let s = st
                .synapse
                .take()
                .context("Synapse is not running")?
                .stop(Duration::from_secs(60));
            ensure!(s.is_some(), "Synapse had to be killed");
            let p = st
                .postgres
                .take()
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
            ensure!(!out.stderr.trim().is_empty(), "no message");
            Ok(out.stderr.trim().to_owned())
        }
        .await,
    );
    report.check(
        "secrets init run again changes nothing (byte for byte)",
        async {
            proc::run_ok(secrets_init(st), CMD_TIMEOUT).await?;
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
            st.start_synapse().await
        }
        .await,
    )?;
    report.check(
        "alice logs in again; her room and message are still there",
        async {
            let alice2 = login(&http, &base_url, "alice", &alice_pw).await?;
            let token = alice2.access_token().context("no token")?;
            let v = get_json(
                &http,
                &format!("{base_url}/_matrix/client/v3/joined_rooms"),
                Some(&token),
            )
            .await?;
            ensure!(
                v["joined_rooms"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r == room_id.as_str())),
                "room missing: {v}"
            );
            let url = format!(
                "{base_url}/_matrix/client/v3/rooms/{}/event/{}",
                seg(room_id.as_str()),
                seg(event_id.as_str())
            );
            let ev = get_json(&http, &url, Some(&token)).await?;
            ensure!(ev["type"] == "m.room.encrypted", "event {ev}");
            Ok("")
        }
        .await,
    );
    report.check(
        "bob logs in again with his generated password",
        async {
            login(&http, &base_url, "bob", &bob_pw).await?;
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
    if let Some(mut s) = st.synapse.take() {
        s.stop(Duration::from_secs(60));
    }
    let mut logs = vec![st.p.logs.join("synapse.log")];
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
            let errors: Vec<&str> = log_text
                .lines()
                .filter(|l| l.contains("ERROR"))
                .take(5)
                .collect();
            ensure!(errors.is_empty(), "{}", errors.join("\n"));
            Ok("")
        })(),
    );
    report.check(
        "Synapse's log shows no attempt to reach another server",
        (|| {
            let patterns = [
                "matrix.org",
                "vector.im",
                "element.io",
                "matrixfederationclient",
                "federation_client",
                "Sending request",
                "report-usage-stats",
                "Requesting keys",
                "perspectives",
                "DNS lookup failed",
            ];
            let hits: Vec<&str> = log_text
                .lines()
                .filter(|l| patterns.iter().any(|p| l.contains(p)))
                .take(5)
                .collect();
            ensure!(hits.is_empty(), "{}", hits.join("\n"));
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

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
