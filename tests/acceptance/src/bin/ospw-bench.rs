//! `ospw-bench`: one run of the stack benchmark, and the report of many.
//!
//! ```text
//! ospw-bench run --config stock|monolith|small --out FILE [--run N] [--profile DIR]
//!                [--duration 60] [--warmup 5] [--workers 'sync: 1']
//! ospw-bench report FILE...
//! ```
//!
//! `run` starts a fresh stack in the acceptance suite's way (its own
//! PostgreSQL cluster, Synapse, Caddy with `tls internal`, and for `small`
//! Redis and the workers), as the service user:
//!
//! - `stock`: Synapse's own `--generate-config` output, changed only where
//!   it must be to run here: PostgreSQL (the same cluster, over its socket),
//!   the listener's port and loopback address, and the rate limits raised;
//!   behind a Caddy that proxies everything to it;
//! - `monolith`: the host description's defaults rendered by `ospw-matrix`;
//! - `small`: the same with `synapse.workers: {preset: small}` (or, to
//!   compare layouts, `--workers` with another body of `synapse.workers`,
//!   given as one line of flow YAML such as `sync: 1, client: 0`).
//!
//! All three get the same rate limits (raised so that they do not shape
//! the load). Then `ospw-load` (this directory) runs the workload through
//! Caddy; at the edges of its measured window the CPU time of every process
//! of the stack, of the load generator and of the whole machine is
//! sampled (the rest is other load on the machine), and the memory (PSS
//! and RSS, from `smaps_rollup`) before the load (idle) and after it. With
//! `--profile DIR`, `py-spy` (`OSPW_PY_SPY`, else on PATH) records each Synapse process during
//! the window, sampling the thread that holds the GIL (collapsed stacks,
//! `ROLE.txt` in DIR, for `flamegraph.pl` or `ospw-bench profile`), and the
//! per-thread CPU of each Synapse process is in the result in any case.
//!
//! `report` prints the Markdown table of BENCHMARKS.md: medians per
//! configuration, ratios to `stock`, and every run with its machine load.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use ospw_matrix_acceptance::proc;
use ospw_matrix_acceptance::stack::{Options, Stack, Tools};
use serde_json::{json, Value};

const SERVER: &str = "bench.test";
const MATRIX_HOST: &str = "matrix.bench.test";

/// The rate limits every configuration gets: high enough never to apply.
const RATE_LIMITS: &[&str] = &[
    "rc_message",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_joins.local",
    "rc_joins_per_room",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_room_creation",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_registration",
];

/// `RATE_LIMITS` as a YAML mapping (each `{per_second: 10000, burst_count: 10000}`).
fn rate_limits() -> serde_yaml::Value {
    let limit: serde_yaml::Value =
        serde_yaml::from_str("{per_second: 10000, burst_count: 10000}").unwrap_or_default();
    let mut top = serde_yaml::Mapping::new();
    for key in RATE_LIMITS {
        match key.split_once('.') {
            None => {
                top.insert((*key).into(), limit.clone());
            }
            Some((a, b)) => {
                let entry = top
                    .entry(a.into())
                    .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
                if let serde_yaml::Value::Mapping(m) = entry {
                    m.insert(b.into(), limit.clone());
                }
            }
        }
    }
    serde_yaml::Value::Mapping(top)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => run_cmd(&args[1..]),
        Some("report") => report(&args[1..]),
        _ => Err(anyhow::anyhow!(
            "usage: ospw-bench run --config stock|monolith|small --out FILE [--run N] [--profile DIR] | report FILE..."
        )),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ospw-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct RunArgs {
    config: String,
    out: PathBuf,
    run: u32,
    profile: Option<PathBuf>,
    duration: u64,
    warmup: u64,
    workers: Option<String>,
}

fn run_cmd(args: &[String]) -> Result<()> {
    let mut a = RunArgs {
        config: String::new(),
        out: PathBuf::new(),
        run: 1,
        profile: None,
        duration: 60,
        warmup: 5,
        workers: None,
    };
    let mut it = args.iter();
    while let Some(f) = it.next() {
        let mut v = || it.next().with_context(|| format!("{f} needs a value"));
        match f.as_str() {
            "--config" => a.config = v()?.clone(),
            "--out" => a.out = PathBuf::from(v()?),
            "--run" => a.run = v()?.parse()?,
            "--profile" => a.profile = Some(PathBuf::from(v()?)),
            "--duration" => a.duration = v()?.parse()?,
            "--warmup" => a.warmup = v()?.parse()?,
            "--workers" => a.workers = Some(v()?.clone()),
            other => bail!("unknown argument {other}"),
        }
    }
    ensure!(
        ["stock", "monolith", "small"].contains(&a.config.as_str()),
        "--config stock|monolith|small"
    );
    ensure!(!a.out.as_os_str().is_empty(), "--out FILE is required");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut slot: Option<Stack> = None;
    let r = rt.block_on(bench(&a, &mut slot));
    if let Some(st) = slot.take() {
        st.finish(r.is_err());
    }
    let result = r?;
    std::fs::write(&a.out, serde_json::to_string_pretty(&result)? + "\n")?;
    println!("ospw-bench: wrote {}", a.out.display());
    Ok(())
}

/// CPU ticks (user + system, with waited-for children's) of `pid`.
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // After the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    Some(n(11)? + n(12)? + n(13)? + n(14)?)
}

/// Per-thread CPU ticks of `pid` (thread id -> (name, ticks)).
fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        out.insert(tid, (name.trim().to_owned(), n(11) + n(12)));
    }
    out
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    (busy, busy + get(3) + get(4))
}

/// The role of a process of the stack, from its command line.
fn role(cmd: &str) -> String {
    if cmd.contains("synapse.app.homeserver") {
        "synapse main".to_owned()
    } else if cmd.contains("synapse.app.") {
        // ... -c .../workers/NAME.yaml
        let name = cmd
            .split_whitespace()
            .filter_map(|w| w.strip_suffix(".yaml"))
            .filter_map(|w| w.rsplit('/').next())
            .next_back()
            .unwrap_or("worker");
        format!("synapse {name}")
    } else if cmd.starts_with("postgres") || cmd.contains("/postgres ") || cmd.contains("postgres:")
    {
        "postgres".to_owned()
    } else if cmd.contains("caddy") {
        "caddy".to_owned()
    } else if cmd.contains("redis") {
        "redis".to_owned()
    } else {
        "other".to_owned()
    }
}

/// (pid, role) of every process of the run.
fn stack_processes(root: &Path) -> Vec<(u32, String)> {
    proc::processes_with_home_under(root)
        .into_iter()
        .map(|(pid, cmd)| (pid, role(&cmd)))
        .collect()
}

/// `Pss` and `Rss` (kB) of `pid` from `smaps_rollup`.
fn memory_kb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Pss:"), field("Rss:"))
}

/// PSS and RSS (MiB) of the stack, in total and by role.
fn memory(root: &Path) -> Value {
    let mut by_role: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (pid, role) in stack_processes(root) {
        let (pss, rss) = memory_kb(pid);
        let e = by_role.entry(role).or_default();
        e.0 += pss;
        e.1 += rss;
    }
    let mib = |kb: u64| (kb as f64 / 1024.0 * 10.0).round() / 10.0;
    let (pss, rss) = by_role.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    json!({
        "pss_mib": mib(pss),
        "rss_mib": mib(rss),
        "pss_mib_by_role": by_role.iter().map(|(k, v)| (k.clone(), json!(mib(v.0)))).collect::<serde_json::Map<_, _>>(),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A snapshot of CPU ticks: per process of the stack, the load generator,
/// the machine, and per thread of each Synapse process.
struct Snapshot {
    procs: BTreeMap<u32, (String, u64)>,
    threads: BTreeMap<u32, BTreeMap<u32, (String, u64)>>,
    load: u64,
    machine: (u64, u64),
}

fn snapshot(root: &Path, load_pid: u32) -> Snapshot {
    let mut procs = BTreeMap::new();
    let mut threads = BTreeMap::new();
    for (pid, role) in stack_processes(root) {
        if pid == load_pid {
            continue;
        }
        if let Some(t) = ticks(pid) {
            if role.starts_with("synapse") {
                threads.insert(pid, thread_ticks(pid));
            }
            procs.insert(pid, (role, t));
        }
    }
    Snapshot {
        procs,
        threads,
        load: ticks(load_pid).unwrap_or(0),
        machine: machine_ticks(),
    }
}

/// CPU (percent of one core) per role, of the load generator and of the
/// rest of the machine between two snapshots, and the Synapse threads.
fn cpu(a: &Snapshot, b: &Snapshot, seconds: f64) -> Value {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let pct = |t: u64| (t as f64 / hz / seconds * 1000.0).round() / 10.0;
    let mut by_role: BTreeMap<String, u64> = BTreeMap::new();
    let mut stack_total = 0;
    for (pid, (role, end)) in &b.procs {
        // A process started in the window counts whole.
        let start = a.procs.get(pid).map_or(0, |x| x.1);
        let d = end.saturating_sub(start);
        *by_role.entry(role.clone()).or_default() += d;
        stack_total += d;
    }
    let load = b.load.saturating_sub(a.load);
    let machine = b.machine.0.saturating_sub(a.machine.0);
    let machine_total = b.machine.1.saturating_sub(a.machine.1).max(1);
    let cores = machine_total as f64 / hz / seconds;
    let others = machine.saturating_sub(stack_total + load);
    let mut threads = serde_json::Map::new();
    for (pid, tb) in &b.threads {
        let Some((role, _)) = b.procs.get(pid) else {
            continue;
        };
        let ta = a.threads.get(pid);
        let mut list: Vec<(String, u64)> = tb
            .iter()
            .map(|(tid, (name, t))| {
                let start = ta.and_then(|m| m.get(tid)).map_or(0, |x| x.1);
                let label = if tid == pid {
                    format!("{name} (main thread)")
                } else {
                    name.clone()
                };
                (label, t.saturating_sub(start))
            })
            .filter(|(_, d)| *d > 0)
            .collect();
        list.sort_by_key(|x| std::cmp::Reverse(x.1));
        threads.insert(
            role.clone(),
            json!(list
                .iter()
                .take(8)
                .map(|(n, d)| json!({"thread": n, "cpu_pct": pct(*d)}))
                .collect::<Vec<_>>()),
        );
    }
    json!({
        "by_role_pct": by_role.iter().map(|(k, v)| (k.clone(), json!(pct(*v)))).collect::<serde_json::Map<_, _>>(),
        "stack_pct": pct(stack_total),
        "load_generator_pct": pct(load),
        "other_processes_pct": pct(others),
        "machine_busy_pct": pct(machine),
        "cores": (cores * 10.0).round() / 10.0,
        "synapse_threads": threads,
    })
}

async fn bench(a: &RunArgs, slot: &mut Option<Stack>) -> Result<Value> {
    let mut opts = Options::full(match a.config.as_str() {
        "stock" => "bench-stock",
        "monolith" => "bench-monolith",
        _ => "bench-small",
    });
    opts.coturn = false;
    if a.config == "small" {
        let body: &'static str = match &a.workers {
            // One line of flow YAML, e.g. `sync: 1, client: 0`; leaked: it
            // lives as long as the run.
            Some(w) => Box::leak(w.replace(", ", "\n").into_boxed_str()),
            None => "preset: small",
        };
        opts.workers = Some(body);
    }
    let tools = Tools::from_env()?;
    tools.check_installed(&opts)?;
    *slot = Some(Stack::new(opts, tools)?);
    let st = slot.as_mut().context("stack")?;
    st.make_dirs()?;
    st.init_postgres().await?;
    st.start_postgres().await?;
    st.createdb("synapse").await?;
    let secret_file = st.p.root.join("registration_secret");
    if a.config == "stock" {
        stock_setup(st, &secret_file).await?;
    } else {
        let mut host = st.main_host(SERVER);
        host.log_level = "WARNING";
        host.settings = Some(serde_yaml::to_string(&rate_limits())?);
        std::fs::write(&st.p.host_yaml, st.host_yaml(&host))?;
        st.secrets_init(&st.p.secrets.clone()).await?;
        let (yaml, out) = (st.p.host_yaml.clone(), st.p.out.clone());
        st.render(&yaml, &out).await?;
        std::fs::copy(
            st.p.secrets.join("registration_shared_secret"),
            &secret_file,
        )?;
        st.start_main_synapse().await?;
    }
    st.start_caddy().await?;
    // Let start-up work settle, then the idle memory.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = memory(&st.p.root);
    let load_bin = std::env::current_exe()?
        .parent()
        .context("no directory")?
        .join("ospw-load");
    let home = format!("https://{MATRIX_HOST}:{}", st.ports.https);
    let mut cmd = Command::new(&load_bin);
    cmd.args(["--homeserver", &home, "--admin-url"])
        .arg(st.synapse_direct(""))
        .arg("--registration-secret-file")
        .arg(&secret_file)
        .arg("--resolve")
        .arg(format!("{MATRIX_HOST}=127.0.0.1:{}", st.ports.https))
        .arg("--ca")
        .arg(st.caddy_ca())
        .args([
            "--duration",
            &a.duration.to_string(),
            "--warmup",
            &a.warmup.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let load_before = loadavg();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", load_bin.display()))?;
    let load_pid = child.id();
    let stdout = child.stdout.take().context("no stdout")?;
    let root = st.p.root.clone();
    let profile = a.profile.clone();
    // The profiler, a benchmark tool rather than a test dependency:
    // `OSPW_PY_SPY`, or `py-spy` on PATH (`pip install py-spy`).
    let py_spy = std::env::var_os("OSPW_PY_SPY").unwrap_or_else(|| "py-spy".into());
    let duration = a.duration;
    let (tx, rx) = std::sync::mpsc::channel();
    // The generator's lines, read on a thread; snapshots taken at once.
    let reader = std::thread::spawn(
        move || -> Result<(Snapshot, Snapshot, Value, Vec<std::process::Child>)> {
            let mut start = None;
            let mut end = None;
            let mut spies = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line?;
                if line == "WINDOW open" {
                    start = Some(snapshot(&root, load_pid));
                    if let Some(dir) = &profile {
                        std::fs::create_dir_all(dir)?;
                        for (pid, role) in stack_processes(&root) {
                            if role.starts_with("synapse") {
                                let file = dir.join(format!("{}.txt", role.replace(' ', "-")));
                                spies.push(
                                    Command::new(&py_spy)
                                        .args([
                                            "record",
                                            "--nonblocking",
                                            "--threads",
                                            "--gil",
                                            "--format",
                                            "raw",
                                            "--rate",
                                            "50",
                                            "--pid",
                                        ])
                                        .arg(pid.to_string())
                                        .args(["--duration", &duration.to_string(), "--output"])
                                        .arg(&file)
                                        .stdout(Stdio::null())
                                        .stderr(Stdio::null())
                                        .spawn()
                                        .context("start py-spy (pip install py-spy)")?,
                                );
                            }
                        }
                    }
                } else if line == "WINDOW close" {
                    end = Some(snapshot(&root, load_pid));
                } else if let Some(json) = line.strip_prefix("RESULT ") {
                    let v: Value = serde_json::from_str(json)?;
                    let (Some(s), Some(e)) = (start.take(), end.take()) else {
                        bail!("the window's edges were not reported");
                    };
                    let _ = tx.send(());
                    return Ok((s, e, v, spies));
                } else {
                    println!("ospw-load: {line}");
                }
            }
            bail!("ospw-load ended without a result")
        },
    );
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    let (s, e, results, spies) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))??;
    drop(rx);
    ensure!(status.success(), "ospw-load failed ({status})");
    for mut spy in spies {
        let _ = spy.wait();
    }
    let load_after = loadavg();
    let end_mem = memory(&st.p.root);
    let cpu = cpu(&s, &e, a.duration as f64);
    Ok(json!({
        "config": a.config,
        "workers": a.workers,
        "run": a.run,
        "synapse": synapse_version(&st.python),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "results": results,
        "cpu": cpu,
        "memory_idle": idle,
        "memory_end": end_mem,
    }))
}

fn synapse_version(python: &Path) -> String {
    Command::new(python)
        .args(["-c", "import synapse; print(synapse.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Stock: Synapse's generated configuration, with PostgreSQL, the
/// listener's port and the rate limits changed; a Caddy in front.
async fn stock_setup(st: &mut Stack, secret_file: &Path) -> Result<()> {
    let data = st.p.synapse_data.clone();
    let config = data.join("homeserver.yaml");
    let mut c = st.user.command(&st.python, &st.p.home);
    c.args([
        "-m",
        "synapse.app.homeserver",
        "--server-name",
        SERVER,
        "--config-path",
    ])
    .arg(&config)
    .args(["--generate-config", "--report-stats=no", "--data-directory"])
    .arg(&data)
    .current_dir(&data);
    proc::run_ok(c, Duration::from_secs(120)).await?;
    let mut y: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&config)?)?;
    let m = y
        .as_mapping_mut()
        .context("homeserver.yaml is not a mapping")?;
    let secret = m
        .get("registration_shared_secret")
        .and_then(|v| v.as_str())
        .context("no registration_shared_secret in the generated configuration")?
        .to_owned();
    std::fs::write(secret_file, secret)?;
    let listeners: serde_yaml::Value = serde_yaml::from_str(&format!(
        "[{{port: {}, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: true, resources: [{{names: [client, federation], compress: false}}]}}]",
        st.ports.synapse
    ))?;
    m.insert("listeners".into(), listeners);
    let database: serde_yaml::Value = serde_yaml::from_str(&format!(
        "{{name: psycopg2, args: {{user: {}, database: synapse, host: {}, port: {}, cp_min: 5, cp_max: 10}}}}",
        st.user.name,
        serde_json::to_string(&st.p.pg_sock.display().to_string())?,
        st.ports.pg
    ))?;
    m.insert("database".into(), database);
    if let serde_yaml::Value::Mapping(limits) = rate_limits() {
        for (k, v) in limits {
            m.insert(k, v);
        }
    }
    std::fs::write(&config, serde_yaml::to_string(&y)?)?;
    st.user.chown(&config)?;
    std::fs::create_dir_all(st.p.out.join("caddy"))?;
    std::fs::write(
        st.p.out.join("caddy/Caddyfile"),
        format!(
            "{{\n\tadmin off\n\thttp_port {http}\n\thttps_port {https}\n\tlocal_certs\n\tskip_install_trust\n}}\n\
             {MATRIX_HOST}:{https} {{\n\tbind 127.0.0.1\n\ttls internal\n\treverse_proxy 127.0.0.1:{synapse}\n}}\n",
            http = st.ports.http,
            https = st.ports.https,
            synapse = st.ports.synapse
        ),
    )?;
    let port = st.ports.synapse;
    st.start_synapse("synapse", &config, &data, port).await
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A percentage for the table: `–` when absent.
fn pct_cell(v: f64) -> String {
    if v.is_nan() {
        "–".to_owned()
    } else {
        format!("{v:.0} %")
    }
}

fn report(files: &[String]) -> Result<()> {
    let mut runs: Vec<Value> = Vec::new();
    for f in files {
        runs.push(serde_json::from_str(
            &std::fs::read_to_string(f).with_context(|| format!("read {f}"))?,
        )?);
    }
    let configs = ["stock", "monolith", "small"];
    let order = |r: &Value| {
        let c = configs
            .iter()
            .position(|c| r["config"] == *c)
            .unwrap_or(configs.len());
        (r["run"].as_u64().unwrap_or(0), c)
    };
    runs.sort_by_key(order);
    let num = |v: &Value, path: &[&str]| -> f64 {
        let mut x = v;
        for p in path {
            x = &x[*p];
        }
        x.as_f64().unwrap_or(f64::NAN)
    };
    let synapse_pct = |r: &Value| -> f64 {
        r["cpu"]["by_role_pct"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| k.starts_with("synapse"))
                    .filter_map(|(_, v)| v.as_f64())
                    .sum()
            })
            .unwrap_or(f64::NAN)
    };
    // CPU milliseconds per acknowledged message.
    let per_msg = |pct: f64, r: &Value| pct * 10.0 / num(r, &["results", "sends_per_s"]);
    let of = |c: &'static str| runs.iter().filter(move |r| r["config"] == c);
    let med = |c: &'static str, path: &[&str]| median(of(c).map(|r| num(r, path)).collect());
    let stock_rate = med("stock", &["results", "sends_per_s"]);
    println!("| config | runs | sends/s | vs stock | send p50 / p99 | delivery p50 / p99 | lost | Synapse CPU (all processes) | PostgreSQL CPU | Caddy / Redis CPU | load generator CPU | CPU per message: Synapse / PostgreSQL | idle / end PSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in configs {
        let n = of(c).count();
        if n == 0 {
            continue;
        }
        let synapse = median(of(c).map(synapse_pct).collect());
        let syn_ms = median(of(c).map(|r| per_msg(synapse_pct(r), r)).collect());
        let pg_ms = median(
            of(c)
                .map(|r| per_msg(num(r, &["cpu", "by_role_pct", "postgres"]), r))
                .collect(),
        );
        let lost: f64 = of(c).map(|r| num(r, &["results", "lost"])).sum();
        let rate = med(c, &["results", "sends_per_s"]);
        println!(
            "| {c} | {n} | {rate:.1} | {:.2}× | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {lost:.0} | {} | {} | {} / {} | {} | {syn_ms:.1} / {pg_ms:.1} ms | {:.0} / {:.0} MiB |",
            rate / stock_rate,
            med(c, &["results", "send_p50_ms"]),
            med(c, &["results", "send_p99_ms"]),
            med(c, &["results", "delivery_p50_ms"]),
            med(c, &["results", "delivery_p99_ms"]),
            pct_cell(synapse),
            pct_cell(med(c, &["cpu", "by_role_pct", "postgres"])),
            pct_cell(med(c, &["cpu", "by_role_pct", "caddy"])),
            pct_cell(med(c, &["cpu", "by_role_pct", "redis"])),
            pct_cell(med(c, &["cpu", "load_generator_pct"])),
            med(c, &["memory_idle", "pss_mib"]),
            med(c, &["memory_end", "pss_mib"]),
        );
    }
    println!();
    println!("| run | config | sends/s | delivery p99 | lost | CPU by process (% of one core) | other processes' CPU | load average before → after |");
    println!("|---:|---|---:|---:|---:|---|---:|---|");
    for r in &runs {
        let by: Vec<String> = r["cpu"]["by_role_pct"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        let load = |k: &str| {
            r[k].as_str()
                .unwrap_or("")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "| {} | {} | {:.1} | {:.0} ms | {} | {} | {:.0} % | {} → {} |",
            r["run"],
            r["config"].as_str().unwrap_or(""),
            num(r, &["results", "sends_per_s"]),
            num(r, &["results", "delivery_p99_ms"]),
            r["results"]["lost"],
            by.join(", "),
            num(r, &["cpu", "other_processes_pct"]),
            load("loadavg_before"),
            load("loadavg_after"),
        );
    }
    Ok(())
}
