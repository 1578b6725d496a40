//! docs/scaling.md's three hosts, simulated on loopback, each host's
//! private-network address played by a loopback address: the proxy, the
//! main process, Redis and a client worker here (127.0.0.1); `sync1` and
//! `event_persister1` on a worker host (127.0.0.2); PostgreSQL on its own
//! host (127.0.0.3). Replication therefore runs over TCP (the main
//! process's replication listener on 127.0.0.1, the remote workers' on
//! 127.0.0.2), Redis over TCP with a password read from a file, and every
//! Synapse process reaches PostgreSQL over TCP with a libpq password file
//! (scram-sha-256; no socket). Everything is started from the CLI's
//! rendered files and used through Caddy: users in rooms send messages
//! (`ospw_matrix_acceptance::load`), every message is delivered, and
//! Synapse's request counters (each process's metrics) show the remote event
//! persister persisting the events and the remote sync worker serving
//! `/sync` over TCP.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use ospw_matrix_acceptance::harness;
use ospw_matrix_acceptance::load::{self, Workload};
use ospw_matrix_acceptance::proc;
use ospw_matrix_acceptance::stack::{Options, Stack, Tools};
use ospw_matrix_acceptance::util::{random_hex, write_private};
use ospw_matrix_acceptance::workers;

const SERVER_NAME: &str = "multi.test";
const MATRIX_HOST: &str = "matrix.multi.test";
const REMOTE: &str = "127.0.0.2";
const DATABASE_HOST: &str = "127.0.0.3";
const TEST_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn remote_workers_over_tcp_on_loopback() {
    harness::test("multihost", TEST_TIMEOUT, run);
}

/// The TCP listeners (address:port) of `pid`'s sockets, from /proc.
fn tcp_listeners(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            (f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9])).then(|| {
                let (addr, port) = f[1].split_once(':').unwrap_or(("", ""));
                let a = u32::from_str_radix(addr, 16).unwrap_or(0).to_le_bytes();
                let p = u16::from_str_radix(port, 16).unwrap_or(0);
                format!("{}.{}.{}.{}:{p}", a[0], a[1], a[2], a[3])
            })
        })
        .collect()
}

async fn run(slot: &mut Option<Stack>) -> Result<()> {
    let mut opts = Options::full("multihost");
    opts.coturn = false;
    let tools = Tools::from_env()?;
    // Reserve the ports first: the host description names them.
    *slot = Some(Stack::new(
        Options {
            workers: Some("sync: 1"),
            ..opts
        },
        tools.clone(),
    )?);
    let st = slot.as_mut().context("stack")?;
    let (redis_port, main_repl, remote_first) = (st.port(), st.port(), st.port());
    let _ = st.port(); // the remote host's second listener
                       // Metrics (Synapse's request counters say which process served what):
                       // the main process's port, then the three workers' (consecutive),
                       // coturn's and Caddy's.
    let metrics: Vec<u16> = (0..6).map(|_| st.port()).collect();
    ensure!(
        metrics.windows(2).all(|w| w[1] == w[0] + 1),
        "the run's ports are not consecutive: {metrics:?}"
    );
    let password_file = st.p.root.join("redis-password");
    let body: &'static str = Box::leak(
        format!(
            "sync: 1\n\
             client: 1\n\
             event_persister: 1\n\
             redis:\n  tcp: {{address: 127.0.0.1, port: {redis_port}, password_file: {pw}}}\n\
             remote:\n  address: 127.0.0.1\n  first_port: {main_repl}\n  hosts:\n    - name: workers-b\n      address: {REMOTE}\n      first_port: {remote_first}\n      workers: [sync1, event_persister1]",
            pw = serde_json::to_string(&password_file.display().to_string())?,
        )
        .into_boxed_str(),
    );
    st.opts.workers = Some(body);
    tools.check_installed(&st.opts)?;
    println!("multihost: run directory {}", st.p.root.display());
    st.make_dirs()?;
    let password = random_hex(32);
    write_private(&password_file, &format!("{password}\n"), Some(&st.user))?;

    // PostgreSQL on "its own host": a password for the role, TCP on
    // 127.0.0.3 with scram-sha-256 only, a libpq password file (0600).
    let db_password = random_hex(32);
    let passfile = st.p.root.join("pgpass");
    write_private(
        &passfile,
        &format!(
            "{DATABASE_HOST}:{}:synapse:{}:{db_password}\n",
            st.ports.pg, st.user.name
        ),
        Some(&st.user),
    )?;
    let mut host = st.main_host(SERVER_NAME);
    host.relaxed_login_limits = true;
    // Messages as fast as the senders go.
    host.settings = Some("rc_message: {per_second: 1000, burst_count: 1000}\n".to_owned());
    host.database_remote = Some((DATABASE_HOST.to_owned(), passfile.clone()));
    host.metrics = Some((metrics[0], metrics[4], metrics[5]));
    std::fs::write(&st.p.host_yaml, st.host_yaml(&host))?;
    st.secrets_init(&st.p.secrets.clone()).await?;
    let (yaml, out) = (st.p.host_yaml.clone(), st.p.out.clone());
    st.render(&yaml, &out).await?;

    // The rendered files place each process where the description says.
    let hs = std::fs::read_to_string(st.p.out.join("synapse/homeserver.yaml"))?;
    let hs: serde_yaml::Value = serde_yaml::from_str(&hs)?;
    ensure!(
        hs["instance_map"]["main"]["host"] == "127.0.0.1"
            && hs["instance_map"]["main"]["port"].as_u64() == Some(u64::from(main_repl)),
        "instance_map.main: {:?}",
        hs["instance_map"]["main"]
    );
    ensure!(
        hs["instance_map"]["event_persister1"]["host"] == REMOTE,
        "instance_map.event_persister1: {:?}",
        hs["instance_map"]["event_persister1"]
    );
    ensure!(
        hs["redis"]["password_path"] == password_file.display().to_string(),
        "redis: {:?}",
        hs["redis"]
    );
    let caddy = std::fs::read_to_string(st.p.out.join("caddy/Caddyfile"))?;
    ensure!(
        caddy.contains(&format!("reverse_proxy @ospw_sync {REMOTE}:{remote_first}")),
        "the proxy does not send /sync to the remote sync worker:\n{caddy}"
    );

    st.init_postgres().await?;
    st.start_postgres().await?;
    st.createdb("synapse").await?;
    let mut c = st.pg_client("psql");
    c.args(["-d", "postgres", "-c"]).arg(format!(
        "ALTER ROLE \"{}\" PASSWORD '{db_password}'",
        st.user.name
    ));
    proc::run_ok(c, Duration::from_secs(60)).await?;
    let hba = st.p.pg_data.join("pg_hba.conf");
    // First, before initdb's `reject` for every other TCP connection (the
    // first matching line wins). The source address of a connection to
    // 127.0.0.3 is 127.0.0.1.
    let rules = format!(
        "host synapse {user} {DATABASE_HOST}/32 scram-sha-256\nhost synapse {user} 127.0.0.1/32 scram-sha-256\n{}",
        std::fs::read_to_string(&hba)?,
        user = st.user.name
    );
    std::fs::write(&hba, rules)?;
    st.take_postgres()
        .context("PostgreSQL is not running")?
        .stop(Duration::from_secs(30));
    st.start_postgres_on(DATABASE_HOST).await?;
    st.start_redis_with(Some(("127.0.0.1", redis_port, &password)))
        .await?;
    st.start_main_synapse().await?;
    st.start_caddy().await?;

    // Who listens where: the main process's replication on this host's
    // address, the remote workers on theirs, the local worker on a socket.
    let procs = proc::processes_with_home_under(&st.p.root);
    let pid_of = |needle: &str| {
        procs
            .iter()
            .find(|(_, cmd)| cmd.contains(needle))
            .map(|(p, _)| *p)
            .with_context(|| format!("no process {needle}"))
    };
    let main_l = tcp_listeners(pid_of("synapse.app.homeserver")?);
    ensure!(
        main_l.contains(&format!("127.0.0.1:{main_repl}")),
        "main process listens on {main_l:?}"
    );
    // (Besides, each worker's metrics on its host's loopback.)
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let sync_l = sorted(tcp_listeners(pid_of("workers/sync1.yaml")?));
    ensure!(
        sync_l
            == sorted(vec![
                format!("{REMOTE}:{remote_first}"),
                format!("127.0.0.1:{}", metrics[1])
            ]),
        "sync1 listens on {sync_l:?}"
    );
    let persister_l = sorted(tcp_listeners(pid_of("workers/event_persister1.yaml")?));
    ensure!(
        persister_l
            == sorted(vec![
                format!("{REMOTE}:{}", remote_first + 1),
                format!("127.0.0.1:{}", metrics[3])
            ]),
        "event_persister1 listens on {persister_l:?}"
    );
    let client_l = tcp_listeners(pid_of("workers/client1.yaml")?);
    ensure!(
        client_l == [format!("127.0.0.1:{}", metrics[2])],
        "client1 listens on TCP beyond its metrics: {client_l:?}"
    );
    let redis_l = tcp_listeners(pid_of("redis-server")?);
    ensure!(
        redis_l == [format!("127.0.0.1:{redis_port}")],
        "Redis listens on {redis_l:?}"
    );

    // Every Synapse process reaches PostgreSQL over TCP (none over its socket).
    let mut c = st.pg_client("psql");
    c.args(["-d", "synapse", "-At", "-c"]).arg(
        "SELECT coalesce(host(client_addr), 'socket') FROM pg_stat_activity WHERE datname = 'synapse' AND pid <> pg_backend_pid()",
    );
    let rows = proc::run_ok(c, Duration::from_secs(60)).await?.stdout;
    let rows: Vec<&str> = rows.lines().filter(|l| !l.is_empty()).collect();
    ensure!(
        !rows.is_empty() && rows.iter().all(|r| *r != "socket"),
        "Synapse's connections: {rows:?}"
    );
    let pg_l = tcp_listeners(
        procs
            .iter()
            .filter(|(_, cmd)| cmd.contains("postgres") && cmd.contains("-D"))
            .map(|(p, _)| *p)
            .next()
            .context("no postmaster")?,
    );
    ensure!(
        pg_l == [format!("{DATABASE_HOST}:{}", st.ports.pg)],
        "PostgreSQL listens on {pg_l:?}"
    );

    // Users in rooms send messages through Caddy; every one arrives.
    let w = Workload {
        homeserver: st.https(MATRIX_HOST, ""),
        admin_url: st.synapse_direct(""),
        registration_secret: std::fs::read_to_string(
            st.p.secrets.join("registration_shared_secret"),
        )?,
        resolve: vec![(
            MATRIX_HOST.to_owned(),
            ([127, 0, 0, 1], st.ports.https).into(),
        )],
        ca: Some(st.caddy_ca()),
        users: 4,
        rooms: 2,
        senders: 4,
        duration: Duration::from_secs(8),
        warmup: Duration::from_secs(2),
        drain: Duration::from_secs(20),
        prefix: "remote".to_owned(),
    };
    let r = load::run(&w, |_| {}).await?;
    println!("multihost: {r:?}");
    ensure!(r.sends > 0, "no message sent: {r:?}");
    ensure!(
        r.lost == 0 && r.errors == 0,
        "messages lost or failed: {r:?}"
    );

    // The remote persister persisted them (the client worker sent each
    // event to it over TCP), the remote sync worker served the receivers:
    // Synapse's own request counters, from each process's metrics.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let count = |counts: &std::collections::BTreeMap<(String, String), f64>,
                 method: &str,
                 servlet: &str| {
        counts
            .get(&(method.to_owned(), servlet.to_owned()))
            .copied()
            .unwrap_or(0.0)
    };
    let port_of = |name: &str| -> Result<u16> {
        let w = st
            .workers()?
            .into_iter()
            .find(|w| w.name == name)
            .with_context(|| format!("no worker {name}"))?;
        w.metrics
            .as_deref()
            .and_then(|m| m.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .with_context(|| format!("{name} has no metrics listener"))
    };
    ensure!(
        port_of("sync1")? == metrics[1] && port_of("event_persister1")? == metrics[3],
        "the workers' metrics ports do not follow the main process's"
    );
    let at = |port: u16| format!("127.0.0.1:{port}");
    let persister = workers::requests_handled(&http, &at(metrics[3])).await?;
    let persisted = count(&persister, "POST", "ReplicationSendEventsRestServlet");
    ensure!(
        persisted >= r.sends as f64,
        "event_persister1 persisted {persisted} events for {} messages: {persister:?}",
        r.sends
    );
    let main_counts = workers::requests_handled(&http, &at(metrics[0])).await?;
    ensure!(
        count(&main_counts, "POST", "ReplicationSendEventsRestServlet") == 0.0,
        "the main process persisted events: {main_counts:?}"
    );
    let syncs = count(
        &workers::requests_handled(&http, &at(metrics[1])).await?,
        "GET",
        "SyncRestServlet",
    );
    ensure!(syncs > 0.0, "the remote sync worker served no /sync");
    let client_sends = count(
        &workers::requests_handled(&http, &at(metrics[2])).await?,
        "PUT",
        "RoomSendEventRestServlet",
    );
    ensure!(client_sends > 0.0, "the local client worker served no send");
    println!(
        "multihost: {persisted} events persisted on {REMOTE}, {syncs} syncs served on {REMOTE}, {client_sends} sends on the local client worker"
    );
    st.stop_synapse(Duration::from_secs(60))?;
    Ok(())
}
