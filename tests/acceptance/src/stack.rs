//! The stack under test, started from the CLI's rendered files in a fresh
//! run directory: its own PostgreSQL cluster, one or more Synapses, and,
//! when [`Options`] asks for them, coturn and Caddy (`tls internal`), and
//! Synapse's workers with Redis.
//!
//! Every program runs as the unprivileged service user in its own process
//! group. Dropping the [`Stack`] stops them all (Synapses and the other
//! services first, PostgreSQL last), also after a failed step or a panic;
//! [`Stack::finish`] also prints the logs of a failed run and keeps its
//! directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, ensure, Result};

use crate::ports::PortBlock;
use crate::proc::{self, RunAs, Service};
use crate::util::{collect_files, mkdir, now};
use crate::wait;

/// How long PostgreSQL, coturn and Caddy may take to start.
pub const SERVICE_START: Duration = Duration::from_secs(60);

/// What a run starts, and its time limits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The run's name: its directory is `$TMPDIR/ospw-NAME-PID-TIME`, and it
    /// prefixes the closing messages.
    pub name: &'static str,
    /// coturn can be started (`turnserver` and the `turnutils` are required).
    pub coturn: bool,
    /// Caddy and Element's webroot can be started (`caddy` is required).
    pub caddy: bool,
    /// PostgreSQL without fsync (`initdb --no-sync`, `fsync=off`): faster,
    /// for runs that never need the data to survive a crash.
    pub fast_postgres: bool,
    /// One CLI or helper command.
    pub cmd_timeout: Duration,
    /// A Synapse's start (the first one creates its schema).
    pub synapse_start: Duration,
    /// The main host's `synapse.workers` (YAML lines of its body, without
    /// `socket_dir` and `redis`, which the run sets), e.g. `preset: small`:
    /// Synapse then runs with its workers and Redis (`redis-server`).
    pub workers: Option<&'static str>,
}

impl Options {
    /// The whole stack: PostgreSQL, Synapse, coturn and Caddy.
    pub fn full(name: &'static str) -> Self {
        Self {
            name,
            coturn: true,
            caddy: true,
            fast_postgres: false,
            cmd_timeout: Duration::from_secs(60),
            synapse_start: Duration::from_secs(240),
            workers: None,
        }
    }

    /// [`Options::full`] with Synapse's workers (`synapse.workers` = `workers`).
    pub fn full_with_workers(name: &'static str, workers: &'static str) -> Self {
        Self {
            workers: Some(workers),
            ..Self::full(name)
        }
    }

    /// PostgreSQL and Synapses only, PostgreSQL without fsync.
    pub fn synapse_only(name: &'static str) -> Self {
        Self {
            name,
            coturn: false,
            caddy: false,
            fast_postgres: true,
            cmd_timeout: Duration::from_secs(120),
            synapse_start: Duration::from_secs(300),
            workers: None,
        }
    }
}

/// The `ospw-matrix` CLI: `OSPW_MATRIX_BIN`, or the newest of the main
/// workspace's `target/{release,debug}/ospw-matrix`; it must exist.
pub fn find_cli() -> Result<PathBuf> {
    let p = match std::env::var_os("OSPW_MATRIX_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
            let mut found: Vec<(SystemTime, PathBuf)> = ["release", "debug"]
                .iter()
                .map(|p| target.join(p).join("ospw-matrix"))
                .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
                .collect();
            found.sort();
            found.pop().map(|(_, p)| p).ok_or_else(|| {
                anyhow!(
                    "no ospw-matrix binary: build it (cargo build -p ospw-matrix-cli) \
                     or set OSPW_MATRIX_BIN"
                )
            })?
        }
    };
    ensure!(p.is_file(), "{} does not exist", p.display());
    Ok(p)
}

/// The programs a run needs, found (or not) once.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The account the services run as.
    pub user: RunAs,
    /// The `ospw-matrix` CLI.
    pub cli: PathBuf,
    /// The Synapse venv's python (`OSPW_SYNAPSE_PYTHON`).
    pub python: PathBuf,
    /// PostgreSQL's binaries (`OSPW_PG_BIN`).
    pub pg_bin: PathBuf,
}

impl Tools {
    /// The service account `user` and the CLI `cli`; Synapse's python and
    /// PostgreSQL's binaries from the environment ([`Self::python_from_env`],
    /// [`Self::pg_bin_from_env`]).
    pub fn new(user: RunAs, cli: PathBuf) -> Self {
        Self {
            user,
            cli,
            python: Self::python_from_env(),
            pg_bin: Self::pg_bin_from_env(),
        }
    }

    /// Every program from the environment: the service account
    /// ([`RunAs::detect`]), the CLI ([`find_cli`]) and [`Self::new`]'s.
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(RunAs::detect()?, find_cli()?))
    }

    /// `OSPW_SYNAPSE_PYTHON` (default `/opt/ospw-venv/bin/python`).
    pub fn python_from_env() -> PathBuf {
        PathBuf::from(
            std::env::var_os("OSPW_SYNAPSE_PYTHON")
                .unwrap_or_else(|| "/opt/ospw-venv/bin/python".into()),
        )
    }

    /// `OSPW_PG_BIN` (default `/usr/lib/postgresql/15/bin`).
    pub fn pg_bin_from_env() -> PathBuf {
        PathBuf::from(
            std::env::var_os("OSPW_PG_BIN").unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into()),
        )
    }

    /// Fails unless Synapse, PostgreSQL, `setpriv` and what `opts` starts
    /// (coturn and its test tools, Caddy) are installed.
    pub fn check_installed(&self, opts: &Options) -> Result<()> {
        ensure!(
            self.python.is_file(),
            "no Synapse venv python at {} (scripts/install-test-deps.sh)",
            self.python.display()
        );
        ensure!(
            self.pg_bin.join("initdb").is_file(),
            "no PostgreSQL at {}",
            self.pg_bin.display()
        );
        let mut programs = Vec::new();
        if opts.coturn {
            programs.extend(["turnserver", "turnutils_uclient", "turnutils_peer"]);
        }
        if opts.caddy {
            programs.push("caddy");
        }
        if opts.workers.is_some() {
            programs.push("redis-server");
        }
        programs.push("setpriv");
        for prog in programs {
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
    }
}

/// Every path of one run.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The run directory.
    pub root: PathBuf,
    /// Owned by the unprivileged user: everything the services write.
    pub state: PathBuf,
    /// The main host's rendered files.
    pub out: PathBuf,
    /// The main host's secrets directory.
    pub secrets: PathBuf,
    /// The main Synapse's data directory.
    pub synapse_data: PathBuf,
    /// PostgreSQL's cluster.
    pub pg_data: PathBuf,
    /// PostgreSQL's Unix socket directory (no TCP).
    pub pg_sock: PathBuf,
    /// Element Web's webroot (a placeholder page).
    pub webroot: PathBuf,
    /// HOME of the service user's programs.
    pub home: PathBuf,
    /// Caddy's HOME, data and config.
    pub caddy_home: PathBuf,
    /// One log per service.
    pub logs: PathBuf,
    /// The main host description.
    pub host_yaml: PathBuf,
    /// The materialized coturn configuration.
    pub turn_conf: PathBuf,
    /// The workers' Unix sockets (`synapse.workers.socket_dir`).
    pub sockets: PathBuf,
    /// Redis's directory and socket.
    pub redis: PathBuf,
}

impl Paths {
    fn under(root: PathBuf) -> Self {
        Self {
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
            turn_conf: root.join("state/turnserver.conf"),
            sockets: root.join("state/sock"),
            redis: root.join("state/redis"),
            root,
        }
    }
}

/// The run's ports on 127.0.0.1, from the run's reserved [`PortBlock`]
/// (no other run can use them).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The main Synapse's listener.
    pub synapse: u16,
    /// PostgreSQL (the socket's name only: no TCP).
    pub pg: u16,
    /// coturn (TCP and UDP).
    pub turn: u16,
    /// coturn's relay range.
    pub relay_min: u16,
    /// coturn's relay range (inclusive).
    pub relay_max: u16,
    /// Caddy's HTTP port.
    pub http: u16,
    /// Caddy's HTTPS port.
    pub https: u16,
    /// A TURN test peer (`turnutils_peer`).
    pub peer: u16,
}

impl Ports {
    fn from_block(b: &PortBlock) -> Self {
        let (relay_min, relay_max) = b.relay();
        Self {
            synapse: b.next(),
            pg: b.next(),
            turn: b.next(),
            relay_min,
            relay_max,
            http: b.next(),
            https: b.next(),
            peer: b.next(),
        }
    }
}

/// A host description (the CLI's input) for a host on this stack's
/// PostgreSQL; `Stack::host_yaml` writes it.
#[derive(Debug, Clone)]
pub struct Host {
    /// The server name, also the base domain; the Matrix host is
    /// `matrix.NAME`, Element's `chat.NAME`.
    pub server_name: String,
    /// Synapse's listener on 127.0.0.1.
    pub synapse_port: u16,
    /// The database name.
    pub database: String,
    /// Synapse's data directory.
    pub data_dir: PathBuf,
    /// The secrets directory.
    pub secrets_dir: PathBuf,
    /// A registration secret read from this file instead of the directory.
    pub registration_secret_file: Option<PathBuf>,
    /// coturn on 127.0.0.1: its port and relay range.
    pub turn: Option<(u16, u16, u16)>,
    /// Element Web's webroot.
    pub element_webroot: Option<PathBuf>,
    /// Caddy's HTTP and HTTPS ports, bound to 127.0.0.1, admin endpoint off.
    pub proxy_ports: Option<(u16, u16)>,
    /// Login rate limits high enough for many logins in a row.
    pub relaxed_login_limits: bool,
    /// The body of `synapse.workers` (YAML lines indented by four spaces).
    pub workers: Option<String>,
    /// Synapse's log level (`INFO`, so that the checks can read its access log).
    pub log_level: &'static str,
    /// Further `synapse.settings` keys (a YAML mapping).
    pub settings: Option<String>,
    /// PostgreSQL on another host: its address and the password file.
    pub database_remote: Option<(String, PathBuf)>,
    /// Further top-level sections of the host description (YAML, such as
    /// `sso:` and `email:`), appended as they are.
    pub extra: String,
    /// `metrics.enable` with these Synapse, coturn and Caddy ports.
    pub metrics: Option<(u16, u16, u16)>,
}

impl Host {
    /// A host with Synapse only (no coturn, Element or proxy ports).
    pub fn synapse_only(
        server_name: &str,
        synapse_port: u16,
        database: &str,
        data_dir: &Path,
        secrets_dir: &Path,
    ) -> Self {
        Self {
            server_name: server_name.to_owned(),
            synapse_port,
            database: database.to_owned(),
            data_dir: data_dir.to_owned(),
            secrets_dir: secrets_dir.to_owned(),
            registration_secret_file: None,
            turn: None,
            element_webroot: None,
            proxy_ports: None,
            relaxed_login_limits: false,
            workers: None,
            log_level: "INFO",
            settings: None,
            database_remote: None,
            extra: String::new(),
            metrics: None,
        }
    }
}

/// A path as a YAML (JSON) string.
fn q(p: &Path) -> String {
    serde_json::Value::String(p.display().to_string()).to_string()
}

/// How many directories of earlier, finished runs of the same name
/// [`Stack::new`] keeps (a failed run's directory is kept for inspection;
/// without a bound they would fill `/tmp`).
pub const KEEP_OLD_RUNS: usize = 3;

/// Removes the directories `BASE/ospw-NAME-PID-TIME` of runs whose process
/// has ended, all but the `keep` newest; a running run's directory is never
/// touched. Returns what it removed.
pub fn prune_old_runs(base: &Path, name: &str, keep: usize) -> Vec<PathBuf> {
    let prefix = format!("ospw-{name}-");
    let mut old: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, time)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(time)) = (pid.parse::<u32>(), time.parse::<u64>()) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        if !alive && e.path().is_dir() {
            old.push((time, e.path()));
        }
    }
    old.sort();
    let remove = old.len().saturating_sub(keep);
    old.into_iter()
        .take(remove)
        .filter(|(_, p)| std::fs::remove_dir_all(p).is_ok())
        .map(|(_, p)| p)
        .collect()
}

/// The running stack. Dropping it stops every process.
pub struct Stack {
    /// What this run starts.
    pub opts: Options,
    /// Its paths.
    pub p: Paths,
    /// Its ports.
    pub ports: Ports,
    /// The reserved block they come from (held for the run's lifetime).
    port_block: PortBlock,
    /// The service user.
    pub user: RunAs,
    /// The `ospw-matrix` CLI.
    pub cli: PathBuf,
    /// The Synapse venv's python.
    pub python: PathBuf,
    /// PostgreSQL's binaries.
    pub pg_bin: PathBuf,
    postgres: Option<Service>,
    /// Everything else, in the order started.
    services: Vec<Service>,
    /// Directories whose `*.log` files are printed after a failure.
    log_dirs: Vec<PathBuf>,
    health: reqwest::Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl Stack {
    /// A stack in a new run directory (not created yet: see
    /// [`Stack::make_dirs`]) with a reserved block of ports (`PortBlock`). Nothing is started.
    pub fn new(opts: Options, tools: Tools) -> Result<Self> {
        let tmp = std::env::temp_dir();
        for old in prune_old_runs(&tmp, opts.name, KEEP_OLD_RUNS) {
            println!("  removed an old run's directory: {}", old.display());
        }
        let root = tmp.join(format!(
            "ospw-{}-{}-{}",
            opts.name,
            std::process::id(),
            now()
        ));
        let p = Paths::under(root);
        let port_block = PortBlock::reserve()?;
        Ok(Self {
            opts,
            log_dirs: vec![p.logs.clone()],
            p,
            ports: Ports::from_block(&port_block),
            port_block,
            user: tools.user,
            cli: tools.cli,
            python: tools.python,
            pg_bin: tools.pg_bin,
            postgres: None,
            services: Vec::new(),
            health: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// Another port of the run's block, for a further listener (free for TCP
    /// and UDP when the run started; no other run uses it).
    pub fn port(&self) -> u16 {
        self.port_block.next()
    }

    /// Creates the run directory: logs (writable by all), the service
    /// user's state (home, PostgreSQL's socket, the main Synapse's data) and,
    /// with Caddy, its home and a placeholder Element webroot.
    pub fn make_dirs(&self) -> Result<()> {
        let p = &self.p;
        mkdir(&p.root, 0o755, None)?;
        mkdir(&p.logs, 0o777, None)?;
        if self.opts.caddy {
            mkdir(&p.webroot, 0o755, None)?;
            std::fs::write(
                p.webroot.join("index.html"),
                "<!doctype html><title>Element (acceptance placeholder)</title>\n",
            )?;
        }
        mkdir(&p.state, 0o755, Some(&self.user))?;
        let mut private = vec![&p.synapse_data, &p.pg_sock, &p.home];
        if self.opts.workers.is_some() {
            private.push(&p.sockets);
            private.push(&p.redis);
        }
        if self.opts.caddy {
            private.push(&p.caddy_home);
        }
        for d in private {
            mkdir(d, 0o700, Some(&self.user))?;
        }
        Ok(())
    }

    /// `ospw-matrix`, run as root (the administrator).
    pub fn cli(&self) -> Command {
        Command::new(&self.cli)
    }

    /// `ospw-matrix`, run as the service user (files it creates belong to it).
    pub fn cli_as_user(&self) -> Command {
        self.user.command(&self.cli, &self.p.home)
    }

    /// Runs `ospw-matrix ARGS` as root; fails unless it succeeds.
    pub async fn cli_ok(&self, args: &[&str]) -> Result<proc::Output> {
        let mut c = self.cli();
        c.args(args);
        proc::run_ok(c, self.opts.cmd_timeout).await
    }

    /// Runs `ospw-matrix ARGS` as the service user; fails unless it succeeds.
    pub async fn cli_as_user_ok(&self, args: &[&str]) -> Result<proc::Output> {
        let mut c = self.cli_as_user();
        c.args(args);
        proc::run_ok(c, self.opts.cmd_timeout).await
    }

    /// Runs `ospw-matrix ARGS` as root, whatever its exit status.
    pub async fn cli_run(&self, args: &[&str]) -> Result<proc::Output> {
        let mut c = self.cli();
        c.args(args);
        proc::run(c, self.opts.cmd_timeout).await
    }

    /// `ospw-matrix secrets init --dir DIR`, as the service user.
    pub async fn secrets_init(&self, dir: &Path) -> Result<()> {
        let mut c = self.cli_as_user();
        c.args(["secrets", "init", "--dir"]).arg(dir);
        proc::run_ok(c, self.opts.cmd_timeout).await?;
        Ok(())
    }

    /// `ospw-matrix render --config CONFIG --out OUT`, as root.
    pub async fn render(&self, config: &Path, out: &Path) -> Result<()> {
        let mut c = self.cli();
        c.args(["render", "--config"])
            .arg(config)
            .arg("--out")
            .arg(out);
        proc::run_ok(c, self.opts.cmd_timeout).await?;
        Ok(())
    }

    /// The host description of `host` on this stack's PostgreSQL, as YAML.
    pub fn host_yaml(&self, host: &Host) -> String {
        let sn = &host.server_name;
        let mut y = format!(
            "# Written by the acceptance suite.\n\
             base_domain: {sn}\n\
             server_name: {sn}\n\
             matrix_host: matrix.{sn}\n\
             element_host: chat.{sn}\n\
             synapse:\n\
             \x20 listen:\n\
             \x20   tcp:\n\
             \x20     address: 127.0.0.1\n\
             \x20     port: {port}\n\
             \x20 database:\n\
             \x20   name: {db}\n\
             \x20   user: {user}\n\
             \x20   socket_dir: {sock}\n\
             \x20   port: {pgp}\n\
             {remote}\
             \x20 data_dir: {data}\n\
             \x20 log_level: {level}\n",
            port = host.synapse_port,
            db = host.database,
            user = self.user.name,
            sock = q(&self.p.pg_sock),
            pgp = self.ports.pg,
            data = q(&host.data_dir),
            level = host.log_level,
            remote = match &host.database_remote {
                Some((address, file)) => format!(
                    "    remote: {{address: {address}, password_file: {}}}\n",
                    q(file)
                ),
                None => String::new(),
            },
        );
        if host.relaxed_login_limits || host.settings.is_some() {
            y.push_str("  settings:\n");
        }
        if host.relaxed_login_limits {
            y.push_str(
                "\x20   rc_login:\n\
                 \x20     address: {per_second: 100, burst_count: 100}\n\
                 \x20     account: {per_second: 100, burst_count: 100}\n\
                 \x20     failed_attempts: {per_second: 100, burst_count: 100}\n",
            );
        }
        if let Some(settings) = &host.settings {
            for line in settings.lines() {
                y.push_str(&format!("    {line}\n"));
            }
        }
        if let Some(workers) = &host.workers {
            y.push_str("  workers:\n");
            y.push_str(workers);
        }
        if let Some((port, min, max)) = host.turn {
            y.push_str(&format!(
                "turn:\n\
                 \x20 listening_ips: [127.0.0.1]\n\
                 \x20 port: {port}\n\
                 \x20 relay_ports: \"{min}-{max}\"\n"
            ));
        }
        if let Some(web) = &host.element_webroot {
            y.push_str(&format!(
                "element:\n\
                 \x20 brand: Acceptance Chat\n\
                 \x20 webroot: {}\n",
                q(web)
            ));
        }
        y.push_str("proxy:\n  tls: internal\n");
        if let Some((http, https)) = host.proxy_ports {
            y.push_str(&format!(
                "\x20 http_port: {http}\n\
                 \x20 https_port: {https}\n\
                 \x20 bind: [127.0.0.1]\n\
                 \x20 admin: \"off\"\n"
            ));
        }
        if let Some((synapse, coturn, caddy)) = host.metrics {
            y.push_str(&format!(
                "metrics:\n\
                 \x20 enable: true\n\
                 \x20 synapse_port: {synapse}\n\
                 \x20 coturn_port: {coturn}\n\
                 \x20 caddy_port: {caddy}\n"
            ));
        }
        y.push_str(&format!("secrets:\n  dir: {}\n", q(&host.secrets_dir)));
        if let Some(f) = &host.registration_secret_file {
            y.push_str(&format!("  registration_shared_secret_file: {}\n", q(f)));
        }
        y.push_str(&host.extra);
        y
    }

    /// The main host: `server_name`, the main Synapse and its database
    /// `synapse`, and coturn, Element and Caddy when the options start them.
    pub fn main_host(&self, server_name: &str) -> Host {
        let mut h = Host::synapse_only(
            server_name,
            self.ports.synapse,
            "synapse",
            &self.p.synapse_data,
            &self.p.secrets,
        );
        if self.opts.coturn {
            h.turn = Some((self.ports.turn, self.ports.relay_min, self.ports.relay_max));
        }
        if self.opts.caddy {
            h.element_webroot = Some(self.p.webroot.clone());
            h.proxy_ports = Some((self.ports.http, self.ports.https));
        }
        if let Some(workers) = self.opts.workers {
            let mut body = String::new();
            for line in workers.lines() {
                body.push_str(&format!("    {line}\n"));
            }
            body.push_str(&format!("    socket_dir: {}\n", q(&self.p.sockets)));
            if !workers.contains("redis:") {
                body.push_str(&format!(
                    "    redis:\n      unix: {{path: {}}}\n",
                    q(&self.redis_socket())
                ));
            }
            h.workers = Some(body);
        }
        h
    }

    /// Redis's Unix socket.
    pub fn redis_socket(&self) -> PathBuf {
        self.p.redis.join("redis.sock")
    }

    /// Starts Redis (service `redis`) on its Unix socket only (no TCP port,
    /// no persistence) and waits until it answers.
    pub async fn start_redis(&mut self) -> Result<()> {
        self.start_redis_with(None).await
    }

    /// Starts Redis on its Unix socket and, with `tcp` (`(address, port,
    /// password)`), on that TCP address too with that password; waits
    /// until it answers on the socket.
    pub async fn start_redis_with(&mut self, tcp: Option<(&str, u16, &str)>) -> Result<()> {
        let conf = self.p.redis.join("redis.conf");
        let network = match tcp {
            None => "port 0\n".to_owned(),
            Some((address, port, password)) => {
                format!("port {port}\nbind {address}\nrequirepass {password}\n")
            }
        };
        std::fs::write(
            &conf,
            format!(
                "# Written by the acceptance suite: nothing on disk.\n\
                 {network}\
                 unixsocket {}\n\
                 unixsocketperm 700\n\
                 save \"\"\n\
                 appendonly no\n\
                 dir {}\n\
                 daemonize no\n",
                self.redis_socket().display(),
                self.p.redis.display()
            ),
        )?;
        self.user.chown(&conf)?;
        let password = tcp.map(|t| t.2.to_owned());
        let mut cmd = self.user.command("redis-server", &self.p.home);
        cmd.arg(&conf);
        self.spawn("redis", cmd, libc::SIGTERM)?;
        let sock = self.redis_socket();
        wait::until(
            "Redis's socket",
            SERVICE_START,
            Duration::from_millis(100),
            || {
                let sock = sock.clone();
                let password = password.clone();
                async move {
                    let Ok(mut s) = tokio::net::UnixStream::connect(&sock).await else {
                        return Ok(None);
                    };
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    if let Some(p) = password {
                        s.write_all(format!("AUTH {p}\r\n").as_bytes()).await?;
                        let mut ok = [0u8; 5];
                        s.read_exact(&mut ok).await?;
                    }
                    s.write_all(b"PING\r\n").await?;
                    let mut buf = [0u8; 16];
                    let n = s.read(&mut buf).await?;
                    Ok(buf[..n].starts_with(b"+PONG").then_some(()))
                }
            },
        )
        .await?;
        self.service_mut("redis")?.check_running()
    }

    /// The main host's workers (from the rendered manifest; empty without).
    pub fn workers(&self) -> Result<Vec<crate::workers::Worker>> {
        crate::workers::manifest(&self.p.out)
    }

    /// Starts every worker of the rendered manifest (service
    /// `synapse-NAME` each, started together) and waits until each answers
    /// `/health` on its socket.
    pub async fn start_workers(&mut self) -> Result<()> {
        let workers = self.workers()?;
        let hs = self.p.out.join("synapse/homeserver.yaml");
        let data = self.p.synapse_data.clone();
        for w in &workers {
            let mut cmd = self.user.command(&self.python, &self.p.home);
            cmd.args(["-m", &w.app, "-c"])
                .arg(&hs)
                .arg("-c")
                .arg(&w.config)
                .current_dir(&data);
            self.spawn(&w.service(), cmd, libc::SIGTERM)?;
        }
        let deadline = std::time::Instant::now() + self.opts.synapse_start;
        for w in &workers {
            let sock = w.health_socket().map(Path::to_owned);
            let tcp = w.tcp.first().cloned();
            ensure!(
                sock.is_some() || tcp.is_some(),
                "{} has no listener",
                w.name
            );
            loop {
                self.service_mut(&w.service())?.check_running()?;
                let up = match (&sock, &tcp) {
                    (Some(sock), _) => {
                        matches!(
                            crate::workers::unix_get(sock, "/health").await,
                            Ok((200, _))
                        )
                    }
                    (None, Some(addr)) => self
                        .health
                        .get(format!("http://{addr}/health"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                    (None, None) => false,
                };
                if up {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "{} did not answer /health within {:?}",
                        w.name,
                        self.opts.synapse_start
                    );
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Ok(())
    }

    /// Stops the workers (in reverse order) and the main Synapse; fails
    /// naming each process that had to be killed.
    pub fn stop_synapse(&mut self, grace: Duration) -> Result<()> {
        let mut killed = Vec::new();
        let mut names: Vec<String> = self.workers()?.iter().map(|w| w.service()).collect();
        names.reverse();
        names.push("synapse".to_owned());
        for name in names {
            if let Some(mut s) = self.take_service(&name) {
                if s.stop(grace).is_none() {
                    killed.push(name);
                }
            }
        }
        ensure!(killed.is_empty(), "had to be killed: {}", killed.join(", "));
        Ok(())
    }

    /// A PostgreSQL program, as the service user.
    pub fn pg(&self, program: &str) -> Command {
        self.user.command(self.pg_bin.join(program), &self.p.home)
    }

    /// A PostgreSQL client program connected to this cluster's socket
    /// (`-h SOCKET -p PORT`).
    pub fn pg_client(&self, program: &str) -> Command {
        let mut c = self.pg(program);
        c.arg("-h")
            .arg(&self.p.pg_sock)
            .arg("-p")
            .arg(self.ports.pg.to_string());
        c
    }

    /// `initdb`: peer authentication on the socket, no host connections,
    /// UTF-8 with C locale, the service user as superuser.
    pub async fn init_postgres(&self) -> Result<()> {
        let mut c = self.pg("initdb");
        c.arg("-D").arg(&self.p.pg_data).args([
            "--auth-local=peer",
            "--auth-host=reject",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        if self.opts.fast_postgres {
            c.arg("--no-sync");
        }
        c.arg("-U").arg(&self.user.name);
        proc::run_ok(c, Duration::from_secs(120).max(self.opts.cmd_timeout)).await?;
        Ok(())
    }

    /// Starts PostgreSQL (Unix socket only) and waits until it accepts connections.
    pub async fn start_postgres(&mut self) -> Result<()> {
        self.start_postgres_on("").await
    }

    /// Starts PostgreSQL with its Unix socket and TCP on `listen`
    /// (`listen_addresses`; empty: no TCP) and waits until it accepts
    /// connections.
    pub async fn start_postgres_on(&mut self, listen: &str) -> Result<()> {
        let mut cmd = self.pg("postgres");
        cmd.arg("-D")
            .arg(&self.p.pg_data)
            .arg("-k")
            .arg(&self.p.pg_sock)
            .arg("-p")
            .arg(self.ports.pg.to_string())
            // Unix socket only unless asked: no TCP at all.
            .arg("-c")
            .arg(format!("listen_addresses={listen}"));
        if self.opts.fast_postgres {
            cmd.args(["-c", "fsync=off"]);
        }
        self.postgres = Some(Service::spawn(
            "postgres",
            cmd,
            &self.p.logs.join("postgres.log"),
            libc::SIGINT,
        )?);
        let me = &*self;
        wait::until(
            "PostgreSQL",
            SERVICE_START,
            Duration::from_millis(300),
            || async move {
                let mut c = me.pg_client("pg_isready");
                c.args(["-d", "postgres"]);
                Ok(proc::run(c, me.opts.cmd_timeout)
                    .await?
                    .status
                    .success()
                    .then_some(()))
            },
        )
        .await
    }

    /// Takes PostgreSQL out of the stack (to stop it and see how it stopped).
    pub fn take_postgres(&mut self) -> Option<Service> {
        self.postgres.take()
    }

    /// Creates database `name` (template0, UTF-8, C collation) owned by the
    /// service user.
    pub async fn createdb(&self, name: &str) -> Result<()> {
        let mut c = self.pg_client("createdb");
        c.args([
            "-T",
            "template0",
            "-E",
            "UTF8",
            "--lc-collate=C",
            "--lc-ctype=C",
            "-O",
        ])
        .arg(&self.user.name)
        .arg(name);
        proc::run_ok(c, self.opts.cmd_timeout).await?;
        Ok(())
    }

    /// Drops database `name` (if it exists, ending its connections).
    pub async fn dropdb(&self, name: &str) -> Result<()> {
        let mut c = self.pg_client("dropdb");
        c.args(["--if-exists", "--force", name]);
        proc::run_ok(c, self.opts.cmd_timeout).await?;
        Ok(())
    }

    /// Starts `cmd` as service `name` (log `logs/NAME.log`), stopped with
    /// `stop_signal`.
    pub fn spawn(&mut self, name: &str, cmd: Command, stop_signal: libc::c_int) -> Result<()> {
        let svc = Service::spawn(
            name,
            cmd,
            &self.p.logs.join(format!("{name}.log")),
            stop_signal,
        )?;
        self.services.push(svc);
        Ok(())
    }

    /// The running service `name`.
    pub fn service_mut(&mut self, name: &str) -> Result<&mut Service> {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow!("{name} is not running"))
    }

    /// Takes service `name` out of the stack (to stop it and see how it stopped).
    pub fn take_service(&mut self, name: &str) -> Option<Service> {
        let i = self.services.iter().position(|s| s.name == name)?;
        Some(self.services.remove(i))
    }

    /// Stops service `name` (if running), waiting up to `grace`; its exit
    /// status when it stopped by itself.
    pub fn stop_service(&mut self, name: &str, grace: Duration) -> Option<ExitStatus> {
        self.take_service(name)?.stop(grace)
    }

    /// Starts a Synapse as service `name` from `config` (working directory
    /// `data`, whose logs are printed after a failure) and waits until it
    /// answers `/health` on `port`.
    pub async fn start_synapse(
        &mut self,
        name: &str,
        config: &Path,
        data: &Path,
        port: u16,
    ) -> Result<()> {
        self.start_synapse_with(name, &[config], &[], data, port)
            .await
    }

    /// [`Stack::start_synapse`] with several configuration files (each a
    /// `-c`, read in order, as a runtime secrets file is) and extra
    /// environment variables.
    pub async fn start_synapse_with(
        &mut self,
        name: &str,
        configs: &[&Path],
        env: &[(&str, &std::ffi::OsStr)],
        data: &Path,
        port: u16,
    ) -> Result<()> {
        let mut cmd = self.user.command(&self.python, &self.p.home);
        cmd.args(["-m", "synapse.app.homeserver"]);
        for config in configs {
            cmd.arg("-c").arg(config);
        }
        cmd.envs(env.iter().copied()).current_dir(data);
        if !self.log_dirs.iter().any(|d| d == data) {
            self.log_dirs.push(data.to_owned());
        }
        self.spawn(name, cmd, libc::SIGTERM)?;
        let url = format!("http://127.0.0.1:{port}/health");
        let limit = self.opts.synapse_start;
        let deadline = std::time::Instant::now() + limit;
        loop {
            self.service_mut(name)?.check_running()?;
            if let Ok(r) = self.health.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("{name} did not answer {url} within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts the main Synapse (service `synapse`) from the rendered
    /// `synapse/homeserver.yaml`; with workers, Redis first (unless it
    /// runs) and the workers after it.
    pub async fn start_main_synapse(&mut self) -> Result<()> {
        let config = self.p.out.join("synapse/homeserver.yaml");
        let data = self.p.synapse_data.clone();
        let workers = self.opts.workers.is_some();
        if workers && self.service_mut("redis").is_err() {
            self.start_redis().await?;
        }
        self.start_synapse("synapse", &config, &data, self.ports.synapse)
            .await?;
        if workers {
            self.start_workers().await?;
        }
        Ok(())
    }

    /// The main Synapse's own listener: `http://127.0.0.1:PORT{path}`.
    pub fn synapse_direct(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.synapse)
    }

    /// Starts coturn as service `name` from the materialized configuration
    /// plus `extra` arguments, and waits for its listener.
    pub async fn start_coturn(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        ensure!(self.opts.coturn, "this run does not start coturn");
        let mut cmd = self.user.command("turnserver", &self.p.home);
        cmd.arg("-c").arg(&self.p.turn_conf).args(extra);
        self.spawn(name, cmd, libc::SIGTERM)?;
        wait::tcp_port("coturn's TCP listener", self.ports.turn, SERVICE_START).await?;
        // coturn opens its UDP listener in the same start-up step; give it a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.service_mut(name)?.check_running()
    }

    /// `ospw-matrix materialize coturn` (as the service user): the rendered
    /// template plus the TURN secret, into `state/turnserver.conf`.
    pub async fn materialize_coturn(&self) -> Result<()> {
        let mut c = self.cli_as_user();
        c.args(["materialize", "coturn", "--template"])
            .arg(self.p.out.join("coturn/turnserver.conf"))
            .arg("--secret-file")
            .arg(self.p.secrets.join("turn_shared_secret"))
            .arg("--out")
            .arg(&self.p.turn_conf);
        proc::run_ok(c, self.opts.cmd_timeout).await?;
        Ok(())
    }

    /// The whole stack for the main host description (`p.host_yaml`,
    /// already written): secrets, render, coturn's runtime file, a new
    /// PostgreSQL cluster with database `synapse`, then Synapse, coturn
    /// (service `coturn`) and Caddy.
    pub async fn start_full(&mut self) -> Result<()> {
        self.secrets_init(&self.p.secrets).await?;
        self.render(&self.p.host_yaml, &self.p.out).await?;
        self.materialize_coturn().await?;
        self.init_postgres().await?;
        self.start_postgres().await?;
        self.createdb("synapse").await?;
        self.start_main_synapse().await?;
        self.start_coturn("coturn", &[]).await?;
        self.start_caddy().await
    }

    /// Caddy's local root CA (`tls internal`), once Caddy has made it.
    pub fn caddy_ca(&self) -> PathBuf {
        self.p
            .caddy_home
            .join("data/caddy/pki/authorities/local/root.crt")
    }

    /// Starts Caddy (service `caddy`) from the rendered standalone
    /// Caddyfile, its data in the run directory, and waits for its HTTPS
    /// port and its local root CA.
    pub async fn start_caddy(&mut self) -> Result<()> {
        ensure!(self.opts.caddy, "this run does not start Caddy");
        let home = &self.p.caddy_home;
        let mut c = self.user.command("caddy", home);
        c.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(self.p.out.join("caddy/Caddyfile"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .current_dir(home);
        self.spawn("caddy", c, libc::SIGTERM)?;
        wait::tcp_port("Caddy's HTTPS port", self.ports.https, SERVICE_START).await?;
        let ca = self.caddy_ca();
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
        self.service_mut("caddy")?.check_running()
    }

    /// `https://HOST:PORT{path}` through Caddy.
    pub fn https(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.ports.https)
    }

    /// Two HTTPS clients that trust only Caddy's local root CA and resolve
    /// `hosts` to 127.0.0.1: one following redirects, one (`strict`) not.
    pub fn caddy_clients(&self, hosts: &[&str]) -> Result<(reqwest::Client, reqwest::Client)> {
        let pem = std::fs::read(self.caddy_ca())?;
        let cert = reqwest::Certificate::from_pem(&pem)?;
        let lo: SocketAddr = ([127, 0, 0, 1], self.ports.https).into();
        let builder = || {
            let mut b = reqwest::Client::builder()
                .tls_certs_only([cert.clone()])
                .timeout(Duration::from_secs(30));
            for h in hosts {
                b = b.resolve(h, lo);
            }
            b
        };
        Ok((
            builder().build()?,
            builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        ))
    }

    /// Stops every process: the services in the reverse order of their
    /// start, PostgreSQL last.
    pub fn stop_all(&mut self) {
        while let Some(mut s) = self.services.pop() {
            s.stop(Duration::from_secs(20));
        }
        if let Some(mut pg) = self.postgres.take() {
            pg.stop(Duration::from_secs(20));
        }
    }

    /// Prints the last 40 lines of every `*.log` file of the run (the
    /// services' logs and the Synapses' own).
    pub fn print_logs(&self) {
        let mut files: Vec<PathBuf> = Vec::new();
        for d in &self.log_dirs {
            collect_files(d, &mut files);
        }
        files.retain(|f| f.extension().is_some_and(|e| e == "log"));
        files.dedup();
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

    /// Ends the run: stops every process, then prints the logs of a failed
    /// run and keeps its directory; a passing run's directory is removed
    /// unless `OSPW_KEEP_TMP` is set.
    pub fn finish(mut self, failed: bool) {
        self.stop_all();
        let name = self.opts.name;
        let root = &self.p.root;
        if failed {
            self.print_logs();
            println!("\n{name}: the run's directory is kept: {}", root.display());
        } else if std::env::var_os("OSPW_KEEP_TMP").is_some() {
            println!("{name}: OSPW_KEEP_TMP set, kept {}", root.display());
        } else {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_run_directories_are_pruned_but_a_running_ones_kept() {
        let base = std::env::temp_dir().join(format!("ospw-prune-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let _cleanup = crate::util::RemoveOnDrop(base.clone());
        std::fs::create_dir_all(&base).unwrap();
        // u32::MAX is above any pid_max: those runs have ended.
        let dead = |t: u64| base.join(format!("ospw-acceptance-{}-{t}", u32::MAX));
        for t in 1..=5 {
            std::fs::create_dir_all(dead(t).join("state")).unwrap();
        }
        let running = base.join(format!("ospw-acceptance-{}-0", std::process::id()));
        let other = base.join(format!("ospw-operations-{}-1", u32::MAX));
        let unrelated = base.join("ospw-acceptance-notes");
        for d in [&running, &other, &unrelated] {
            std::fs::create_dir_all(d).unwrap();
        }
        let removed = prune_old_runs(&base, "acceptance", 2);
        assert_eq!(removed, vec![dead(1), dead(2), dead(3)]);
        for d in [dead(4), dead(5), running, other, unrelated] {
            assert!(d.is_dir(), "{} was removed", d.display());
        }
    }
}
