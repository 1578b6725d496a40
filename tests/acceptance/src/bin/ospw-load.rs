//! `ospw-load`: closed-loop load on a Matrix homeserver (see
//! `ospw_matrix_acceptance::load`). Prints `WINDOW open` and `WINDOW close`
//! when the measured window opens and closes (so another process can sample
//! the server's CPU then) and, last, `RESULT <json>`.
//!
//! ```text
//! ospw-load --homeserver https://matrix.example.test:8443 \
//!     --admin-url http://127.0.0.1:8008 --registration-secret-file FILE \
//!     [--resolve HOST=127.0.0.1:8443]... [--ca FILE] [--users 20] [--rooms 5]
//!     [--senders 20] [--duration 60] [--warmup 5] [--drain 20] [--prefix load]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ospw_matrix_acceptance::load::{run, Workload};

fn parse(args: &[String]) -> Result<Workload> {
    let mut w = Workload {
        homeserver: String::new(),
        admin_url: String::new(),
        registration_secret: String::new(),
        resolve: Vec::new(),
        ca: None,
        users: 20,
        rooms: 5,
        senders: 20,
        duration: Duration::from_secs(60),
        warmup: Duration::from_secs(5),
        drain: Duration::from_secs(20),
        prefix: "load".to_owned(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        let secs = |v: &String| -> Result<Duration> {
            Ok(Duration::from_secs(v.parse().with_context(|| {
                format!("{flag}: {v:?} is not a number of seconds")
            })?))
        };
        match flag.as_str() {
            "--homeserver" => w.homeserver = value()?.trim_end_matches('/').to_owned(),
            "--admin-url" => w.admin_url = value()?.trim_end_matches('/').to_owned(),
            "--registration-secret-file" => {
                let f = value()?;
                w.registration_secret =
                    std::fs::read_to_string(f).with_context(|| format!("read {f}"))?;
            }
            "--resolve" => {
                let v = value()?;
                let (host, addr) = v.split_once('=').context("--resolve HOST=IP:PORT")?;
                w.resolve.push((
                    host.to_owned(),
                    addr.parse().context("--resolve HOST=IP:PORT")?,
                ));
            }
            "--ca" => w.ca = Some(PathBuf::from(value()?)),
            "--users" => w.users = value()?.parse()?,
            "--rooms" => w.rooms = value()?.parse()?,
            "--senders" => w.senders = value()?.parse()?,
            "--duration" => w.duration = secs(value()?)?,
            "--warmup" => w.warmup = secs(value()?)?,
            "--drain" => w.drain = secs(value()?)?,
            "--prefix" => w.prefix = value()?.clone(),
            "-h" | "--help" => {
                println!("see the header of tests/acceptance/src/bin/ospw-load.rs");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if w.homeserver.is_empty() || w.admin_url.is_empty() || w.registration_secret.is_empty() {
        bail!("--homeserver, --admin-url and --registration-secret-file are required");
    }
    Ok(w)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let w = match parse(&args) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ospw-load: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Two runtime threads: enough for the I/O, and a bounded share of the cores.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ospw-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(&w, |open| {
        println!("WINDOW {}", if open { "open" } else { "close" });
        let _ = std::io::stdout().flush();
    }));
    match result.and_then(|r| Ok(serde_json::to_string(&r)?)) {
        Ok(json) => {
            println!("RESULT {json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ospw-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
