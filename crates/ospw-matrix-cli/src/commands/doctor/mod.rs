//! `doctor`: does the server work as promised, and is it still private?
//!
//! It looks from the outside in, as a client on the internet would (DNS,
//! the sites' certificates and HSTS, discovery, the privacy promises as
//! seen through the proxy, Element's served `config.json` re-checked with
//! the library's own `privacy_violations()`, TURN with real credentials),
//! then from the inside (services, Synapse's health, the database's
//! collation, the secrets' modes and the signing key Synapse really uses,
//! free disk space, the newest backup, the loopback metrics endpoints).
//! One line per check (✓, ! warning, ✗ failure with a fix), or `--json`;
//! the exit status is non-zero when a check failed.

mod inside;
mod metrics;
mod outside;
pub mod report;
mod signing;
mod turn;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use ospw_matrix::components::synapse::HomeserverConfig;
use ospw_matrix::{Error, HostDescription, RenderContext};

use crate::admin_api::{AdminArgs, AdminClient};
use crate::commands::backup::PgArgs;
use crate::tls::{Https, Trust};

pub use report::Findings;

/// Arguments of `doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub pg: PgArgs,
    /// Write the report as JSON (schema/doctor-report.schema.json) instead
    /// of one line per check.
    #[arg(long)]
    pub json: bool,
    /// Trust only the CA certificates in this PEM file (default: the
    /// system's trust store).
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Use ADDR for host NAME instead of asking DNS (repeatable).
    #[arg(long, value_name = "NAME:ADDR")]
    pub resolve: Vec<String>,
    /// Also check that this systemd unit is active (repeatable, or
    /// comma-separated in the variable).
    #[arg(
        long = "systemd-unit",
        env = "OSPW_MATRIX_DOCTOR_UNITS",
        value_delimiter = ',',
        value_name = "UNIT"
    )]
    pub units: Vec<String>,
    /// Also check the modes of this directory of generated secrets and its
    /// files (on NixOS the services read copies as credentials).
    #[arg(long, env = "OSPW_MATRIX_DOCTOR_SECRETS_DIR", value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// The backup directory: its newest `*.tar` must be younger than
    /// --backup-max-age.
    #[arg(long, env = "OSPW_MATRIX_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// The oldest acceptable newest backup, as a duration such as `2d`.
    #[arg(
        long,
        env = "OSPW_MATRIX_BACKUP_MAX_AGE",
        default_value = "2d",
        value_name = "DURATION"
    )]
    pub backup_max_age: String,
    /// PostgreSQL's data directory, for the free-space check (default:
    /// asked from PostgreSQL, which needs a privileged role).
    #[arg(long, env = "OSPW_MATRIX_DB_DATA_DIR", value_name = "DIR")]
    pub db_data_dir: Option<PathBuf>,
}

/// `NAME:ADDR` overrides of the system resolver.
#[derive(Debug, Default, Clone)]
pub struct Resolver {
    overrides: Vec<(String, IpAddr)>,
}

impl Resolver {
    /// Parses `--resolve` values (`NAME:ADDR`, the address IPv4, IPv6 or
    /// `[IPv6]`).
    pub fn new(specs: &[String]) -> Result<Self, String> {
        let mut overrides = Vec::new();
        for spec in specs {
            let expected = "expected NAME:ADDR, such as matrix.example.org:127.0.0.1";
            let (name, addr) = spec
                .split_once(':')
                .ok_or_else(|| format!("--resolve {spec:?}: {expected}"))?;
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            let addr: IpAddr = addr.parse().map_err(|_| {
                format!("--resolve {spec:?}: {addr:?} is not an IP address; {expected}")
            })?;
            if name.is_empty() {
                return Err(format!("--resolve {spec:?}: no name; {expected}"));
            }
            overrides.push((name.to_ascii_lowercase(), addr));
        }
        Ok(Self { overrides })
    }

    /// The addresses of `name`: the overrides for it, or the system
    /// resolver's answer (getaddrinfo).
    pub fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let name_lc = name.to_ascii_lowercase();
        let given: Vec<IpAddr> = self
            .overrides
            .iter()
            .filter(|(n, _)| *n == name_lc)
            .map(|(_, a)| *a)
            .collect();
        if !given.is_empty() {
            return Ok(given);
        }
        let mut found: Vec<IpAddr> = Vec::new();
        for a in (name, 0)
            .to_socket_addrs()
            .map_err(|e| format!("does not resolve: {e}"))?
        {
            if !found.contains(&a.ip()) {
                found.push(a.ip());
            }
        }
        if found.is_empty() {
            return Err("has no address".into());
        }
        Ok(found)
    }

    /// The socket addresses of `name` on `port`.
    pub fn socket_addrs(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        Ok(self
            .lookup(name)?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}

/// Whether `ip` is an address of this host: a socket can be bound to it.
pub fn is_local_address(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// What every check needs.
pub struct Ctx {
    /// The host description.
    pub host: HostDescription,
    /// Synapse's configuration as rendered from it.
    pub homeserver: HomeserverConfig,
    /// The HTTPS client.
    pub https: Https,
    /// Name resolution.
    pub resolver: Resolver,
    /// The time limit of one network step.
    pub timeout: Duration,
    /// Sites no connection could be made to, with the reason: later
    /// requests to them fail at once instead of waiting out the timeout
    /// again.
    pub unreachable: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
}

/// Runs every check and prints the report; fails when a check failed.
pub fn doctor(args: DoctorArgs) -> Result<(), Error> {
    let host = ospw_matrix::load_host(&args.admin.config)?;
    let render_ctx = RenderContext {
        output_dir: PathBuf::from("/nonexistent"),
    };
    // The whole validation first (as `check` does): a doctor for a host
    // description that would not render checks nothing sensible.
    ospw_matrix::render(&host, &render_ctx)?;
    let homeserver = ospw_matrix::render::synapse::homeserver(&host, &render_ctx).map_err(|e| {
        Error::Other(format!(
            "{}: not a valid host description: {e}",
            args.admin.config.display()
        ))
    })?;
    let trust = match &args.ca_cert {
        Some(path) => Trust::from_pem_file(path).map_err(Error::Other)?,
        None => Trust::system(),
    };
    let resolver = Resolver::new(&args.resolve).map_err(Error::Other)?;
    let backup_max_age_ms = ospw_matrix::values::parse_duration_ms(&args.backup_max_age)
        .map_err(|e| Error::Other(format!("--backup-max-age: {e}")))?;
    // One network step of the doctor waits at most 10 s (a firewall that
    // drops packets would otherwise make every check wait the full
    // --timeout).
    let timeout = Duration::from_secs(args.admin.timeout.clamp(1, 10));
    let ctx = Ctx {
        homeserver,
        https: Https::new(trust, timeout),
        resolver,
        timeout,
        host,
        unreachable: Default::default(),
    };
    let checked_at = ospw_matrix::backup::rfc3339(crate::tls::now_secs());
    // The CLI's admin service account: TURN credentials and a freshly
    // signed event come through it.
    let mut admin = AdminClient::new(&args.admin).map_err(|e| e.to_string());
    let mut f = Findings::default();
    outside::run(&ctx, &mut f);
    turn::run(&ctx, &mut admin, &mut f);
    inside::run(&ctx, &args, &mut admin, backup_max_age_ms, &mut f);
    let report = f.into_report(&ctx.host.server_name, checked_at);
    if args.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", report::to_text(&report));
    }
    if report.ok {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{} of {} checks failed",
            report.counts.failed,
            report.checks.len()
        )))
    }
}

/// Prints the JSON Schema of `doctor --json`'s report.
pub fn schema() -> Result<(), Error> {
    let text =
        serde_json::to_string_pretty(&report::schema()).map_err(|e| Error::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_overrides_are_parsed_and_used() {
        let r = Resolver::new(&[
            "Matrix.Example.org:127.0.0.1".into(),
            "matrix.example.org:::1".into(),
            "chat.example.org:[::1]".into(),
        ])
        .unwrap();
        assert_eq!(
            r.lookup("matrix.example.org").unwrap(),
            vec![
                IpAddr::from([127, 0, 0, 1]),
                "::1".parse::<IpAddr>().unwrap()
            ]
        );
        assert_eq!(
            r.socket_addrs("chat.example.org", 8443).unwrap(),
            vec!["[::1]:8443".parse::<SocketAddr>().unwrap()]
        );
        for bad in ["matrix.example.org", ":127.0.0.1", "x:not-an-ip", "x:1.2.3"] {
            let err = Resolver::new(&[bad.into()]).unwrap_err();
            assert!(
                err.contains("--resolve") && err.contains("NAME:ADDR"),
                "{err}"
            );
        }
    }

    #[test]
    fn loopback_is_local_and_a_documentation_address_is_not() {
        assert!(is_local_address(IpAddr::from([127, 0, 0, 1])));
        assert!(!is_local_address(IpAddr::from([192, 0, 2, 1])));
    }
}
