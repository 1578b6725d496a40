//! Synapse workers in the host description (`synapse.workers`): the
//! processes Synapse's worker model splits the homeserver into, Redis, and
//! where each process listens.
//!
//! Absent, Synapse runs as one process, exactly as without this section.
//! Present, the main process keeps what only it can do and hands the rest
//! to generic workers: `/sync` ([`WorkerKind::Sync`]), the rest of the
//! client API and event creation ([`WorkerKind::Client`]), event
//! persistence ([`WorkerKind::EventPersister`]), the single-writer streams
//! ([`WorkerKind::StreamWriter`]), the media repository
//! ([`WorkerKind::Media`]) and the background duties
//! ([`WorkerKind::Background`]).
//!
//! [`WorkersSettings::plan`] resolves the section into named workers with
//! their listeners: the validator checks the plan, the renderer writes it.
//! Worker names are `<kind><n>` (`sync1`, `client2`), n counting from 1 in
//! the order of [`WorkerKind::ALL`]; the NixOS module derives the same names
//! from the same presets (`worker-presets.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The presets, shared with the NixOS module.
pub const PRESETS_JSON: &str = include_str!("worker-presets.json");

/// The largest number of workers of one kind.
pub const MAX_PER_KIND: u32 = 16;
/// The largest number of workers in total.
pub const MAX_WORKERS: u32 = 32;
/// The longest Unix socket path Linux accepts (`sun_path` is 108 bytes,
/// including the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Synapse workers (`synapse.workers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersSettings {
    /// A named set of workers: `small` (one sync worker, the cheapest
    /// split), `medium` (every kind, for 4 to 8 cores). On 2 cores Synapse
    /// as one process is faster (BENCHMARKS.md). A count given below
    /// replaces the preset's count of that kind.
    pub preset: Option<WorkerPreset>,
    /// Workers serving `/sync` and the other sync endpoints; requests are
    /// spread by user (the access token's user part).
    pub sync: Option<u32>,
    /// Workers serving the rest of the client API they can (room reads,
    /// event sending, keys, login, profiles, `/messages` spread by room).
    pub client: Option<u32>,
    /// Workers persisting events (the `events` stream, sharded by room).
    pub event_persister: Option<u32>,
    /// At most one worker writing the typing, to-device, account data,
    /// receipts, presence and push rules streams, serving their endpoints.
    pub stream_writer: Option<u32>,
    /// At most one media repository worker (uploads, downloads, thumbnails).
    pub media: Option<u32>,
    /// At most one worker for the main process's background duties
    /// (background tasks, user directory, pushers, application services).
    /// Without one, the first client worker takes them, else the first
    /// sync worker, stream writer or event persister.
    pub background: Option<u32>,
    /// The directory of the Unix sockets: the main process's replication
    /// listener and every local worker's listeners (`<name>.sock`,
    /// `<name>-replication.sock`).
    pub socket_dir: PathBuf,
    /// Redis, which relays replication between the processes: a Unix
    /// socket (default), or TCP with a password file when workers run on
    /// other hosts.
    #[serde(with = "serde_yaml::with::singleton_map")]
    #[schemars(with = "RedisSettings")]
    pub redis: RedisSettings,
    /// Workers on other hosts of a private network: replication then runs
    /// over TCP on that network.
    pub remote: Option<RemoteWorkers>,
    /// Where each worker reads the secrets instead of `secrets` (every one
    /// under its `secrets` file name), `{name}` replaced by the worker's
    /// name: systemd's per-unit credentials directory, such as
    /// `/run/credentials/ospw-matrix-synapse-worker-{name}.service` (NixOS).
    pub credentials_dir: Option<PathBuf>,
}

impl Default for WorkersSettings {
    fn default() -> Self {
        Self {
            preset: None,
            sync: None,
            client: None,
            event_persister: None,
            stream_writer: None,
            media: None,
            background: None,
            socket_dir: PathBuf::from("/run/ospw-matrix-workers"),
            redis: RedisSettings::default(),
            remote: None,
            credentials_dir: None,
        }
    }
}

/// A named size of workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerPreset {
    /// One sync worker, which also takes the main process's background
    /// duties: the cheapest split measured (BENCHMARKS.md).
    Small,
    /// 4 to 8 cores: two sync and two client workers, an event persister, a
    /// stream writer, a media worker and a background worker.
    Medium,
}

impl WorkerPreset {
    /// The preset's name as written in the host description.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
        }
    }

    /// The preset's count of `kind` (from `worker-presets.json`).
    pub fn count(self, kind: WorkerKind) -> u32 {
        presets()
            .get(self.as_str())
            .and_then(|counts| counts.get(kind.as_str()))
            .copied()
            .unwrap_or(0)
    }
}

/// The presets read from [`PRESETS_JSON`]: preset -> kind -> count. A
/// malformed file (caught by this module's tests) reads as no presets.
fn presets() -> BTreeMap<String, BTreeMap<String, u32>> {
    #[derive(Deserialize)]
    struct File {
        presets: BTreeMap<String, BTreeMap<String, u32>>,
    }
    serde_json::from_str::<File>(PRESETS_JSON)
        .map(|f| f.presets)
        .unwrap_or_default()
}

/// What a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkerKind {
    /// `/sync`, `/events`, `/initialSync`.
    Sync,
    /// The rest of the client API a generic worker serves.
    Client,
    /// A writer of the `events` stream.
    EventPersister,
    /// The writer of the single-writer streams.
    StreamWriter,
    /// The media repository.
    Media,
    /// The background duties.
    Background,
}

impl WorkerKind {
    /// Every kind, in naming and start order.
    pub const ALL: [WorkerKind; 6] = [
        WorkerKind::Sync,
        WorkerKind::Client,
        WorkerKind::EventPersister,
        WorkerKind::StreamWriter,
        WorkerKind::Media,
        WorkerKind::Background,
    ];

    /// The kind's field in `synapse.workers`, also its workers' name prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Client => "client",
            Self::EventPersister => "event_persister",
            Self::StreamWriter => "stream_writer",
            Self::Media => "media",
            Self::Background => "background",
        }
    }

    /// The most workers of this kind: one for the single-instance duties.
    pub fn max(self) -> u32 {
        match self {
            Self::StreamWriter | Self::Media | Self::Background => 1,
            Self::Sync | Self::Client | Self::EventPersister => MAX_PER_KIND,
        }
    }

    /// The Synapse application the worker runs.
    pub fn app(self) -> &'static str {
        match self {
            Self::Media => "synapse.app.media_repository",
            _ => "synapse.app.generic_worker",
        }
    }

    /// Whether the proxy sends client requests to it.
    pub fn serves_clients(self) -> bool {
        matches!(
            self,
            Self::Sync | Self::Client | Self::StreamWriter | Self::Media
        )
    }

    /// Whether it writes a stream, so other processes call it over
    /// replication (it is in `instance_map`).
    pub fn writes_streams(self) -> bool {
        matches!(self, Self::EventPersister | Self::StreamWriter)
    }
}

/// Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RedisSettings {
    /// Redis's Unix socket on this host (no TCP, no password: the socket's
    /// permissions admit Synapse's group).
    Unix {
        /// Absolute path of the socket.
        path: PathBuf,
    },
    /// Redis over TCP on the private network, for workers on other hosts.
    Tcp {
        /// Redis's address (loopback or a private address).
        address: String,
        /// Redis's port.
        port: u16,
        /// A file holding Redis's password (`requirepass`), read by Synapse
        /// (`redis.password_path`).
        password_file: PathBuf,
    },
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self::Unix {
            path: PathBuf::from("/run/redis-ospw-matrix/redis.sock"),
        }
    }
}

/// Workers on other hosts, reached over a private network (WireGuard, a
/// VLAN): replication (the main process's and every stream writer's
/// listener) then runs over TCP on that network, authenticated by the
/// replication secret, and Redis must be TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteWorkers {
    /// This host's address on the private network: the main process's
    /// replication listener and the local stream writers' bind here.
    pub address: String,
    /// The first port on `address`: the main process's replication
    /// listener; local stream writers take the following ports.
    pub first_port: u16,
    /// The other hosts and the workers each runs.
    pub hosts: Vec<RemoteHost>,
}

/// One other host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteHost {
    /// A label for the host (letters, digits, `-`), used in messages.
    pub name: String,
    /// Its address on the private network.
    pub address: String,
    /// The first port of its workers' listeners, one port per listener in
    /// worker order.
    pub first_port: u16,
    /// The workers it runs, by name (`sync1`, `client2`).
    pub workers: Vec<String>,
}

/// Where a listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// A TCP port on an address (a literal IP address).
    Tcp {
        /// The address.
        address: String,
        /// The port (0 when the port range overflowed; validation reports it).
        port: u16,
    },
}

/// One resolved worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWorker {
    /// Its name (`worker_name`, `instance_map` key).
    pub name: String,
    /// What it does.
    pub kind: WorkerKind,
    /// The remote host it runs on (its label), or `None` for this host.
    pub remote_host: Option<String>,
    /// Its HTTP listener for the proxy (client-facing kinds) or for health
    /// checks only (the background worker); `None` for event persisters,
    /// whose replication listener answers health checks.
    pub http: Option<Endpoint>,
    /// Its replication listener (stream writers only).
    pub replication: Option<Endpoint>,
}

/// The resolved workers and the main process's replication listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Every worker, in [`WorkerKind::ALL`] order.
    pub workers: Vec<PlannedWorker>,
    /// The main process's replication listener.
    pub main_replication: Endpoint,
}

impl WorkerPlan {
    /// The workers of `kind`.
    pub fn of(&self, kind: WorkerKind) -> impl Iterator<Item = &PlannedWorker> {
        self.workers.iter().filter(move |w| w.kind == kind)
    }

    /// The worker that takes the main process's background duties: the
    /// background worker, else the first client worker, sync worker,
    /// stream writer or event persister (a generic worker, not the media
    /// repository), else none (only a media worker: the main process keeps
    /// them).
    pub fn duty_worker(&self) -> Option<&PlannedWorker> {
        [
            WorkerKind::Background,
            WorkerKind::Client,
            WorkerKind::Sync,
            WorkerKind::StreamWriter,
            WorkerKind::EventPersister,
        ]
        .into_iter()
        .find_map(|k| self.of(k).next())
    }

    /// Whether any worker runs on another host.
    pub fn has_remote(&self) -> bool {
        self.workers.iter().any(|w| w.remote_host.is_some())
    }
}

impl WorkersSettings {
    /// The explicit count of `kind`, if given.
    pub fn explicit(&self, kind: WorkerKind) -> Option<u32> {
        match kind {
            WorkerKind::Sync => self.sync,
            WorkerKind::Client => self.client,
            WorkerKind::EventPersister => self.event_persister,
            WorkerKind::StreamWriter => self.stream_writer,
            WorkerKind::Media => self.media,
            WorkerKind::Background => self.background,
        }
    }

    /// The count of `kind`: the explicit count, else the preset's, else 0.
    pub fn count(&self, kind: WorkerKind) -> u32 {
        self.explicit(kind)
            .or_else(|| self.preset.map(|p| p.count(kind)))
            .unwrap_or(0)
    }

    /// Resolves the workers: names, hosts and listeners. Never fails;
    /// the validator reports counts, names and ports out of bounds (a
    /// count above [`MAX_PER_KIND`] is cut there, an overflowing port is 0).
    pub fn plan(&self) -> WorkerPlan {
        let socket = |file: String| Endpoint::Unix(self.socket_dir.join(file));
        let remote_of = |name: &str| -> Option<&RemoteHost> {
            self.remote
                .as_ref()?
                .hosts
                .iter()
                .find(|h| h.workers.iter().any(|w| w == name))
        };
        let port = |first: u16, offset: usize| -> u16 {
            u16::try_from(usize::from(first) + offset).unwrap_or(0)
        };
        // The next free port offset on each remote host, and on this host's
        // private address (offset 0 is the main process's replication).
        let mut next_remote: BTreeMap<String, usize> = BTreeMap::new();
        let mut next_local = 1usize;
        let mut workers = Vec::new();
        for kind in WorkerKind::ALL {
            for n in 1..=self.count(kind).min(MAX_PER_KIND) {
                let name = format!("{}{n}", kind.as_str());
                let host = remote_of(&name);
                let mut take = |wanted: bool, suffix: &str| -> Option<Endpoint> {
                    if !wanted {
                        return None;
                    }
                    Some(match host {
                        Some(h) => {
                            let next = next_remote.entry(h.name.clone()).or_insert(0);
                            let p = port(h.first_port, *next);
                            *next += 1;
                            Endpoint::Tcp {
                                address: h.address.clone(),
                                port: p,
                            }
                        }
                        None => match (&self.remote, suffix) {
                            // Remote workers must reach a local stream writer.
                            (Some(r), "-replication") => {
                                let p = port(r.first_port, next_local);
                                next_local += 1;
                                Endpoint::Tcp {
                                    address: r.address.clone(),
                                    port: p,
                                }
                            }
                            _ => socket(format!("{name}{suffix}.sock")),
                        },
                    })
                };
                let http = take(kind != WorkerKind::EventPersister, "");
                let replication = take(kind.writes_streams(), "-replication");
                workers.push(PlannedWorker {
                    remote_host: host.map(|h| h.name.clone()),
                    name,
                    kind,
                    http,
                    replication,
                });
            }
        }
        let main_replication = match &self.remote {
            Some(r) => Endpoint::Tcp {
                address: r.address.clone(),
                port: r.first_port,
            },
            None => socket("main-replication.sock".to_owned()),
        };
        WorkerPlan {
            workers,
            main_replication,
        }
    }
}

impl WorkersSettings {
    /// The directory worker `name` reads its secrets from, if not `secrets`.
    pub fn credentials_dir_of(&self, name: &str) -> Option<PathBuf> {
        let dir = self.credentials_dir.as_ref()?;
        Some(PathBuf::from(
            dir.to_string_lossy().replace(CREDENTIALS_NAME, name),
        ))
    }
}

/// The placeholder for the worker's name in `credentials_dir`.
pub const CREDENTIALS_NAME: &str = "{name}";

impl Endpoint {
    /// The socket path of a Unix endpoint.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Self::Unix(p) => Some(p),
            Self::Tcp { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_file_lists_every_kind_in_order_and_every_preset() {
        #[derive(Deserialize)]
        struct File {
            kinds: Vec<String>,
            presets: BTreeMap<String, BTreeMap<String, u32>>,
        }
        let file: File = serde_json::from_str(PRESETS_JSON).expect("worker-presets.json parses");
        let kinds: Vec<&str> = WorkerKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(file.kinds, kinds);
        for preset in [WorkerPreset::Small, WorkerPreset::Medium] {
            let counts = &file.presets[preset.as_str()];
            let listed: Vec<&str> = counts.keys().map(String::as_str).collect();
            let mut sorted = kinds.clone();
            sorted.sort_unstable();
            assert_eq!(listed, sorted, "{}", preset.as_str());
            for kind in WorkerKind::ALL {
                assert!(preset.count(kind) <= kind.max(), "{}", kind.as_str());
            }
        }
        assert_eq!(file.presets.len(), 2);
    }

    #[test]
    fn counts_come_from_the_preset_unless_given() {
        let w = WorkersSettings {
            preset: Some(WorkerPreset::Small),
            sync: Some(3),
            ..WorkersSettings::default()
        };
        assert_eq!(w.count(WorkerKind::Sync), 3);
        assert_eq!(
            w.count(WorkerKind::Client),
            WorkerPreset::Small.count(WorkerKind::Client)
        );
        let none = WorkersSettings::default();
        assert!(WorkerKind::ALL.iter().all(|k| none.count(*k) == 0));
    }

    #[test]
    fn plan_names_and_sockets() {
        let w = WorkersSettings {
            sync: Some(2),
            client: Some(1),
            event_persister: Some(1),
            stream_writer: Some(1),
            background: Some(1),
            ..WorkersSettings::default()
        };
        let plan = w.plan();
        let names: Vec<&str> = plan.workers.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sync1",
                "sync2",
                "client1",
                "event_persister1",
                "stream_writer1",
                "background1"
            ]
        );
        let dir = Path::new("/run/ospw-matrix-workers");
        assert_eq!(
            plan.workers[0].http,
            Some(Endpoint::Unix(dir.join("sync1.sock")))
        );
        assert_eq!(plan.workers[0].replication, None);
        assert_eq!(plan.workers[3].http, None);
        assert_eq!(
            plan.workers[3].replication,
            Some(Endpoint::Unix(
                dir.join("event_persister1-replication.sock")
            ))
        );
        assert_eq!(
            plan.main_replication,
            Endpoint::Unix(dir.join("main-replication.sock"))
        );
        assert_eq!(
            plan.duty_worker().map(|w| w.name.as_str()),
            Some("background1")
        );
    }

    #[test]
    fn plan_places_remote_workers_on_their_hosts_ports() {
        let w = WorkersSettings {
            sync: Some(2),
            event_persister: Some(2),
            remote: Some(RemoteWorkers {
                address: "10.0.0.1".into(),
                first_port: 9093,
                hosts: vec![RemoteHost {
                    name: "b".into(),
                    address: "10.0.0.2".into(),
                    first_port: 8100,
                    workers: vec!["sync2".into(), "event_persister2".into()],
                }],
            }),
            ..WorkersSettings::default()
        };
        let plan = w.plan();
        let tcp = |a: &str, p: u16| {
            Some(Endpoint::Tcp {
                address: a.into(),
                port: p,
            })
        };
        assert!(plan.has_remote());
        // Local client-facing listeners stay on Unix sockets.
        assert!(matches!(plan.workers[0].http, Some(Endpoint::Unix(_))));
        assert_eq!(plan.workers[1].http, tcp("10.0.0.2", 8100));
        assert_eq!(plan.workers[1].remote_host.as_deref(), Some("b"));
        // A local stream writer's replication is on the private network.
        assert_eq!(plan.workers[2].replication, tcp("10.0.0.1", 9094));
        assert_eq!(plan.workers[3].replication, tcp("10.0.0.2", 8101));
        assert_eq!(plan.main_replication, tcp("10.0.0.1", 9093).unwrap());
        assert_eq!(plan.duty_worker().map(|w| w.name.as_str()), Some("sync1"));
    }
}
