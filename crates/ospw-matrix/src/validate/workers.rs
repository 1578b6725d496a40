//! Validation of `synapse.workers`: counts within bounds, Redis, the
//! private network of workers on other hosts, socket paths and port
//! collisions.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use super::{absolute, ip, nonzero_port, Claim};
use crate::components::synapse::Cidr;
use crate::error::ValidationErrors;
use crate::host::workers::{
    Endpoint, RedisSettings, WorkerKind, WorkerPlan, WorkersSettings, CREDENTIALS_NAME,
    MAX_SOCKET_PATH, MAX_WORKERS,
};
use crate::host::{DatabaseSettings, HostDescription, SynapseListen};
use crate::values::PortRange;

const AT: &str = "synapse.workers";

/// The ranges a private network may use: RFC 1918, shared address space
/// (CGNAT, as Tailscale uses) and IPv6 unique local addresses; loopback for
/// a simulation on one machine.
const PRIVATE_RANGES: [&str; 7] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
    "127.0.0.0/8",
    "::1/128",
];

/// Whether `addr` is loopback or in a private range.
pub fn is_private(addr: IpAddr) -> bool {
    let me = Cidr {
        addr,
        prefix: if addr.is_ipv4() { 32 } else { 128 },
    };
    PRIVATE_RANGES
        .iter()
        .filter_map(|r| Cidr::parse(r))
        .any(|r| r.covers(&me))
}

/// A private (or loopback) address at `path`, or an error.
fn private_ip(errs: &mut ValidationErrors, path: &str, value: &str) -> Option<IpAddr> {
    let addr = ip(errs, path, value)?;
    if is_private(addr) {
        Some(addr)
    } else {
        errs.push(
            path,
            format!(
                "{value:?} is not an address of a private network: replication and Redis are unencrypted; \
                 expected an address in {} (a VPN such as WireGuard, or a private LAN)",
                PRIVATE_RANGES[..5].join(", ")
            ),
        );
        None
    }
}

/// Checks `synapse.database.remote`: an address of a private network and
/// absolute files.
pub(super) fn check_remote_database(db: &DatabaseSettings, errs: &mut ValidationErrors) {
    let Some(r) = &db.remote else {
        return;
    };
    let at = "synapse.database.remote";
    private_ip(errs, &format!("{at}.address"), &r.address);
    absolute(errs, &format!("{at}.password_file"), &r.password_file);
    if let Some(ca) = &r.ca_file {
        absolute(errs, &format!("{at}.ca_file"), ca);
    }
}

/// Checks `synapse.workers` of `host`.
pub(super) fn check(host: &HostDescription, errs: &mut ValidationErrors) {
    let Some(w) = &host.synapse.workers else {
        return;
    };
    let mut total = 0u32;
    for kind in WorkerKind::ALL {
        let count = w.count(kind);
        total = total.saturating_add(count);
        if count > kind.max() {
            let field = format!("{AT}.{}", kind.as_str());
            let why = if kind.max() == 1 {
                "Synapse runs this duty on one process"
            } else {
                "more processes than this would only compete for the same cores and database"
            };
            errs.push(
                field,
                format!("{count} is too many: expected 0 to {} ({why})", kind.max()),
            );
        }
    }
    if total == 0 {
        errs.push(
            AT,
            "declares no worker: expected a preset (small, medium) or a count of at least one kind; \
             remove synapse.workers to run Synapse as one process",
        );
    } else if total > MAX_WORKERS {
        errs.push(
            AT,
            format!("declares {total} workers: expected at most {MAX_WORKERS}"),
        );
    }
    absolute(errs, &format!("{AT}.socket_dir"), &w.socket_dir);
    if host.metrics.enable && u32::from(host.metrics.synapse_port) + total.min(MAX_WORKERS) > 65535
    {
        errs.push(
            "metrics.synapse_port",
            format!(
                "{} leaves no room for the workers' metrics ports, which follow it: expected at most {}",
                host.metrics.synapse_port,
                65535 - total.min(MAX_WORKERS)
            ),
        );
    }
    if let Some(dir) = &w.credentials_dir {
        let field = format!("{AT}.credentials_dir");
        absolute(errs, &field, dir);
        let text = dir.to_string_lossy();
        let rest = text.replacen(CREDENTIALS_NAME, "", 1);
        if rest.contains(['{', '}']) || text.chars().any(char::is_control) {
            errs.push(
                field,
                format!(
                    "{text:?} is not a directory path with at most one {CREDENTIALS_NAME}: \
                     expected such as /run/credentials/ospw-matrix-synapse-worker-{{name}}.service"
                ),
            );
        }
    }
    let plan = w.plan();
    check_redis(w, &plan, errs);
    check_remote(w, errs);
    check_sockets(host, w, &plan, errs);
}

fn check_redis(w: &WorkersSettings, plan: &WorkerPlan, errs: &mut ValidationErrors) {
    let at = format!("{AT}.redis");
    match &w.redis {
        RedisSettings::Unix { path } => {
            absolute(errs, &format!("{at}.unix.path"), path);
            if w.remote.is_some() {
                errs.push(
                    format!("{at}.unix"),
                    "cannot be reached by the workers on other hosts (synapse.workers.remote): \
                     expected tcp with an address of the private network and a password_file",
                );
            }
        }
        RedisSettings::Tcp {
            address,
            port,
            password_file,
        } => {
            if w.remote.is_none() && !plan.has_remote() {
                errs.push(
                    format!("{at}.tcp"),
                    "is only for workers on other hosts (synapse.workers.remote): on one host \
                     expected unix (a socket only Synapse's group can use, no TCP port)",
                );
            }
            private_ip(errs, &format!("{at}.tcp.address"), address);
            nonzero_port(errs, &format!("{at}.tcp.port"), *port);
            absolute(errs, &format!("{at}.tcp.password_file"), password_file);
        }
    }
}

fn check_remote(w: &WorkersSettings, errs: &mut ValidationErrors) {
    let Some(r) = &w.remote else {
        return;
    };
    let at = format!("{AT}.remote");
    let main = private_ip(errs, &format!("{at}.address"), &r.address);
    nonzero_port(errs, &format!("{at}.first_port"), r.first_port);
    let local_writers = WorkerKind::ALL
        .iter()
        .filter(|k| k.writes_streams())
        .map(|k| w.count(*k))
        .sum::<u32>();
    if u32::from(r.first_port) + local_writers > 65535 {
        errs.push(
            format!("{at}.first_port"),
            format!(
                "{} leaves no room for the main process's and {local_writers} stream writers' replication ports: expected at most {}",
                r.first_port,
                65535 - local_writers
            ),
        );
    }
    if r.hosts.is_empty() {
        errs.push(
            format!("{at}.hosts"),
            "is empty: expected at least one other host, or no synapse.workers.remote",
        );
    }
    let plan = w.plan();
    let names: Vec<&str> = plan.workers.iter().map(|w| w.name.as_str()).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut labels: BTreeSet<&str> = BTreeSet::new();
    let mut addresses: Vec<IpAddr> = main.into_iter().collect();
    for (i, h) in r.hosts.iter().enumerate() {
        let hat = format!("{at}.hosts[{i}]");
        let label_ok = !h.name.is_empty()
            && h.name.len() <= 63
            && h.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !label_ok {
            errs.push(
                format!("{hat}.name"),
                format!("{:?} is not a host label: expected lower-case letters, digits and -, such as workers-1", h.name),
            );
        } else if !labels.insert(&h.name) {
            errs.push(
                format!("{hat}.name"),
                format!("{:?} names two hosts: expected a unique label", h.name),
            );
        }
        if let Some(addr) = private_ip(errs, &format!("{hat}.address"), &h.address) {
            if addresses.contains(&addr) {
                errs.push(
                    format!("{hat}.address"),
                    format!("{addr} is already this host's or another remote host's address: expected each host's own address"),
                );
            }
            addresses.push(addr);
        }
        nonzero_port(errs, &format!("{hat}.first_port"), h.first_port);
        if h.workers.is_empty() {
            errs.push(
                format!("{hat}.workers"),
                "is empty: expected the names of the workers this host runs",
            );
        }
        let mut listeners = 0u32;
        for (j, name) in h.workers.iter().enumerate() {
            let wat = format!("{hat}.workers[{j}]");
            let kind = plan
                .workers
                .iter()
                .find(|pw| &pw.name == name)
                .map(|pw| pw.kind);
            if kind.is_none() {
                errs.push(
                    wat,
                    format!(
                        "{name:?} is not one of the workers: expected one of {}",
                        if names.is_empty() {
                            "(none declared)".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            } else if !placed.insert(name.as_str()) {
                errs.push(
                    wat,
                    format!("{name:?} is placed on two hosts: expected each worker on one host"),
                );
            } else {
                listeners += kind.map_or(0, |k| {
                    u32::from(k != WorkerKind::EventPersister) + u32::from(k.writes_streams())
                });
                if kind == Some(WorkerKind::Media) {
                    errs.push(
                        wat,
                        "a media repository must run on the host that holds the media store: expected it on this host",
                    );
                }
            }
        }
        if u32::from(h.first_port) + listeners > 65536 {
            errs.push(
                format!("{hat}.first_port"),
                format!(
                    "{} leaves no room for its workers' {listeners} listeners: expected at most {}",
                    h.first_port,
                    65536 - listeners
                ),
            );
        }
    }
}

/// Socket paths: within Linux's length limit, and no two listeners (or
/// Redis) on one path.
fn check_sockets(
    host: &HostDescription,
    w: &WorkersSettings,
    plan: &WorkerPlan,
    errs: &mut ValidationErrors,
) {
    let mut sockets: Vec<(&Path, String)> = Vec::new();
    if let SynapseListen::Unix { path } = &host.synapse.listen {
        sockets.push((path, "synapse.listen.unix.path".to_owned()));
    }
    if let RedisSettings::Unix { path } = &w.redis {
        sockets.push((path, format!("{AT}.redis.unix.path")));
    }
    for (path, field) in &sockets {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            errs.push(
                field.clone(),
                format!("is longer than Linux allows for a socket path ({MAX_SOCKET_PATH} bytes): expected a shorter path"),
            );
        }
    }
    let planned = plan
        .workers
        .iter()
        .flat_map(|pw| [&pw.http, &pw.replication])
        .flatten()
        .chain([&plan.main_replication])
        .filter_map(Endpoint::unix_path);
    let mut too_long = false;
    for path in planned {
        if path.as_os_str().len() > MAX_SOCKET_PATH && !too_long {
            too_long = true;
            errs.push(
                format!("{AT}.socket_dir"),
                format!(
                    "{:?} makes the socket path {:?} longer than Linux allows ({MAX_SOCKET_PATH} bytes): expected a shorter directory",
                    w.socket_dir.display().to_string(),
                    path.display().to_string()
                ),
            );
        }
        sockets.push((path, format!("{AT}.socket_dir")));
    }
    for (i, (a, field_a)) in sockets.iter().enumerate() {
        if let Some((_, field_b)) = sockets[i + 1..].iter().find(|(b, _)| b == a) {
            errs.push(
                field_a.clone(),
                format!(
                    "{:?} is also a socket of {field_b}: expected a path no other listener uses",
                    a.display().to_string()
                ),
            );
        }
    }
}

/// The TCP ports the workers' processes claim on this host (the main
/// process's and local stream writers' replication listeners, and Redis
/// when it is on this host's address), for the port collision check.
pub(super) fn local_tcp_claims(host: &HostDescription) -> Vec<Claim> {
    let Some(w) = &host.synapse.workers else {
        return Vec::new();
    };
    let mut claims = Vec::new();
    // The workers' metrics listeners follow the main process's port.
    let workers = w.plan().workers.len();
    if host.metrics.enable && workers > 0 {
        let first = u32::from(host.metrics.synapse_port) + 1;
        let last = first + u32::try_from(workers).unwrap_or(u32::MAX) - 1;
        claims.push(Claim {
            field: "metrics.synapse_port".to_owned(),
            range: PortRange {
                first: u16::try_from(first).unwrap_or(u16::MAX),
                last: u16::try_from(last).unwrap_or(u16::MAX),
            },
        });
    }
    let Some(r) = &w.remote else {
        return claims;
    };
    let plan = w.plan();
    let local = plan
        .workers
        .iter()
        .filter(|pw| pw.remote_host.is_none())
        .filter_map(|pw| pw.replication.as_ref())
        .chain([&plan.main_replication]);
    let mut last = r.first_port;
    for e in local {
        if let Endpoint::Tcp { port, .. } = e {
            last = last.max(*port);
        }
    }
    claims.push(Claim {
        field: format!("{AT}.remote.first_port"),
        range: PortRange {
            first: r.first_port,
            last,
        },
    });
    if let RedisSettings::Tcp { address, port, .. } = &w.redis {
        let here = address == &r.address
            || address
                .parse::<IpAddr>()
                .is_ok_and(|a| a.is_loopback() || a.is_unspecified());
        if here {
            claims.push(Claim {
                field: format!("{AT}.redis.tcp.port"),
                range: PortRange {
                    first: *port,
                    last: *port,
                },
            });
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::workers::{RemoteHost, RemoteWorkers, WorkerPreset};

    fn with(w: WorkersSettings) -> Vec<String> {
        let mut host = crate::load::example_host().expect("example");
        host.synapse.workers = Some(w);
        crate::validate::validate(&host)
            .err()
            .map(|e| e.errors.into_iter().map(|e| e.path).collect())
            .unwrap_or_default()
    }

    fn remote() -> RemoteWorkers {
        RemoteWorkers {
            address: "10.0.0.1".into(),
            first_port: 9093,
            hosts: vec![RemoteHost {
                name: "workers-1".into(),
                address: "10.0.0.2".into(),
                first_port: 8100,
                workers: vec!["sync1".into()],
            }],
        }
    }

    fn tcp_redis() -> RedisSettings {
        RedisSettings::Tcp {
            address: "10.0.0.1".into(),
            port: 6379,
            password_file: "/run/keys/redis".into(),
        }
    }

    #[test]
    fn presets_and_counts_within_bounds_pass() {
        for preset in [WorkerPreset::Small, WorkerPreset::Medium] {
            let w = WorkersSettings {
                preset: Some(preset),
                ..WorkersSettings::default()
            };
            assert_eq!(with(w), Vec::<String>::new(), "{}", preset.as_str());
        }
    }

    #[test]
    fn counts_out_of_bounds() {
        assert_eq!(
            with(WorkersSettings::default()),
            vec!["synapse.workers"],
            "no worker at all"
        );
        assert_eq!(
            with(WorkersSettings {
                preset: Some(WorkerPreset::Small),
                client: Some(0),
                sync: Some(0),
                ..WorkersSettings::default()
            }),
            vec!["synapse.workers"]
        );
        assert_eq!(
            with(WorkersSettings {
                sync: Some(17),
                media: Some(2),
                background: Some(5),
                stream_writer: Some(2),
                ..WorkersSettings::default()
            }),
            vec![
                "synapse.workers.sync",
                "synapse.workers.stream_writer",
                "synapse.workers.media",
                "synapse.workers.background",
            ]
        );
        assert_eq!(
            with(WorkersSettings {
                sync: Some(16),
                client: Some(16),
                event_persister: Some(1),
                ..WorkersSettings::default()
            }),
            vec!["synapse.workers"]
        );
        assert_eq!(
            with(WorkersSettings {
                sync: Some(u32::MAX),
                client: Some(u32::MAX),
                ..WorkersSettings::default()
            }),
            vec![
                "synapse.workers.sync",
                "synapse.workers.client",
                "synapse.workers"
            ]
        );
    }

    #[test]
    fn redis_over_tcp_only_for_remote_workers_and_on_a_private_network() {
        let small = || WorkersSettings {
            preset: Some(WorkerPreset::Small),
            ..WorkersSettings::default()
        };
        assert_eq!(
            with(WorkersSettings {
                redis: tcp_redis(),
                ..small()
            }),
            vec!["synapse.workers.redis.tcp"]
        );
        assert_eq!(
            with(WorkersSettings {
                remote: Some(remote()),
                ..small()
            }),
            vec!["synapse.workers.redis.unix"]
        );
        assert_eq!(
            with(WorkersSettings {
                remote: Some(remote()),
                redis: RedisSettings::Tcp {
                    address: "203.0.113.5".into(),
                    port: 0,
                    password_file: "keys/redis".into(),
                },
                ..small()
            }),
            vec![
                "synapse.workers.redis.tcp.address",
                "synapse.workers.redis.tcp.port",
                "synapse.workers.redis.tcp.password_file"
            ]
        );
        assert_eq!(
            with(WorkersSettings {
                remote: Some(remote()),
                redis: tcp_redis(),
                ..small()
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn remote_hosts() {
        let small = |r: RemoteWorkers| WorkersSettings {
            preset: Some(WorkerPreset::Small),
            client: Some(1),
            media: Some(1),
            redis: tcp_redis(),
            remote: Some(r),
            ..WorkersSettings::default()
        };
        let mut r = remote();
        r.address = "8.8.8.8".into();
        r.hosts[0].address = "10.0.0.1".into();
        r.hosts[0].workers = vec!["sync9".into(), "media1".into()];
        r.hosts[0].name = "Workers 1".into();
        r.hosts.push(RemoteHost {
            name: "b".into(),
            address: "fd00::2".into(),
            first_port: 65535,
            workers: vec!["media1".into(), "client1".into(), "sync1".into()],
        });
        assert_eq!(
            with(small(r)),
            vec![
                "synapse.workers.remote.address",
                "synapse.workers.remote.hosts[0].name",
                "synapse.workers.remote.hosts[0].workers[0]",
                "synapse.workers.remote.hosts[0].workers[1]",
                "synapse.workers.remote.hosts[1].workers[0]",
                "synapse.workers.remote.hosts[1].first_port",
            ]
        );
        let mut r = remote();
        r.hosts[0].address = "10.0.0.1".into();
        r.hosts.push(RemoteHost {
            workers: vec![],
            ..remote().hosts[0].clone()
        });
        assert_eq!(
            with(small(r)),
            vec![
                "synapse.workers.remote.hosts[0].address",
                "synapse.workers.remote.hosts[1].name",
                "synapse.workers.remote.hosts[1].workers",
            ]
        );
        let mut r = remote();
        r.hosts.clear();
        assert_eq!(with(small(r)), vec!["synapse.workers.remote.hosts"]);
    }

    #[test]
    fn local_replication_ports_collide_with_other_listeners() {
        let mut host = crate::load::example_host().expect("example");
        let mut r = remote();
        r.first_port = 8007; // main's replication 8007, a local persister 8008
        host.synapse.workers = Some(WorkersSettings {
            sync: Some(1),
            event_persister: Some(1),
            redis: RedisSettings::Tcp {
                address: "10.0.0.1".into(),
                port: 443,
                password_file: "/run/keys/redis".into(),
            },
            remote: Some(r),
            ..WorkersSettings::default()
        });
        let errs = crate::validate::validate(&host).expect_err("collides");
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "synapse.workers.remote.first_port",
                "synapse.workers.redis.tcp.port"
            ],
            "{errs}"
        );
        assert!(
            errs.errors[0].message.contains("synapse.listen.tcp.port"),
            "{errs}"
        );
    }

    #[test]
    fn socket_paths() {
        let long = format!("/run/{}", "d".repeat(100));
        assert_eq!(
            with(WorkersSettings {
                preset: Some(WorkerPreset::Small),
                socket_dir: long.into(),
                ..WorkersSettings::default()
            }),
            vec!["synapse.workers.socket_dir"]
        );
        assert_eq!(
            with(WorkersSettings {
                preset: Some(WorkerPreset::Small),
                socket_dir: "run/w".into(),
                ..WorkersSettings::default()
            }),
            vec!["synapse.workers.socket_dir"]
        );
        let mut host = crate::load::example_host().expect("example");
        host.synapse.listen = SynapseListen::Unix {
            path: "/run/ospw-matrix-workers/sync1.sock".into(),
        };
        host.synapse.workers = Some(WorkersSettings {
            preset: Some(WorkerPreset::Small),
            client: Some(1),
            redis: RedisSettings::Unix {
                path: "/run/ospw-matrix-workers/client1.sock".into(),
            },
            ..WorkersSettings::default()
        });
        let errs = crate::validate::validate(&host).expect_err("collides");
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "synapse.listen.unix.path",
                "synapse.workers.redis.unix.path"
            ],
            "{errs}"
        );
    }

    #[test]
    fn credentials_dir() {
        let small = |dir: &str| WorkersSettings {
            preset: Some(WorkerPreset::Small),
            credentials_dir: Some(dir.into()),
            ..WorkersSettings::default()
        };
        assert!(with(small("/run/credentials/w-{name}.service")).is_empty());
        assert!(with(small("/run/shared")).is_empty());
        for bad in [
            "run/c/{name}",
            "/run/{name}/{name}",
            "/run/{worker}",
            "/run/a\nb",
        ] {
            assert_eq!(
                with(small(bad)),
                vec!["synapse.workers.credentials_dir"],
                "{bad}"
            );
        }
    }

    #[test]
    fn workers_metrics_ports_follow_the_main_processes_and_collide() {
        let mut host = crate::load::example_host().expect("example");
        host.metrics.enable = true;
        host.metrics.synapse_port = 9000;
        host.synapse.workers = Some(WorkersSettings {
            preset: Some(WorkerPreset::Medium),
            ..WorkersSettings::default()
        });
        // medium: eight workers on 9001-9008; coturn's exporter on 9005.
        host.metrics.coturn_port = 9005;
        let errs = crate::validate::validate(&host).expect_err("collides");
        assert!(errs.mentions("metrics.synapse_port"), "{errs}");
        assert!(errs.errors[0].message.contains("9001-9008"), "{errs}");
        host.metrics.coturn_port = 9641;
        assert_eq!(crate::validate::validate(&host), Ok(()));
        host.metrics.synapse_port = 65530;
        let errs = crate::validate::validate(&host).expect_err("overflows");
        assert!(errs.mentions("metrics.synapse_port"), "{errs}");
    }

    #[test]
    fn private_addresses() {
        for a in [
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "100.100.1.1",
            "fd12::1",
            "127.0.0.2",
            "::1",
        ] {
            assert!(is_private(a.parse().expect("ip")), "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "2001:db8::1",
            "169.254.1.1",
            "0.0.0.0",
            "::",
        ] {
            assert!(!is_private(a.parse().expect("ip")), "{a}");
        }
    }
}
