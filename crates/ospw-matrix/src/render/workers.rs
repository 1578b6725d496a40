//! Derives Synapse's worker set-up from `synapse.workers`: the shared
//! `homeserver.yaml` keys (the main process's replication listener, Redis,
//! `instance_map`, `stream_writers`, the duties moved off the main process,
//! the replication secret's path), one configuration and one logging
//! configuration per worker, a manifest of the workers, and the proxy's
//! routes of client endpoints to the workers.
//!
//! The routes follow Synapse's worker documentation (`docs/workers.md`,
//! "Available worker applications" and "Stream writers"): the endpoints of
//! each stream go to that stream's writer, `/sync` and its kin to the sync
//! workers spread by user, `/messages` to one client worker per room, the
//! rest of the generic worker's list to the client workers, media to the
//! media repository, everything else to the main process.

use std::net::IpAddr;

use serde::Serialize;

use crate::components::caddy::Directive;
use crate::components::synapse::{Extra, HomeserverConfig, Listener, ResourceName};
use crate::components::synapse_worker::WorkerConfig;
use crate::error::ValidationErrors;
use crate::host::workers::{Endpoint, PlannedWorker, RedisSettings, WorkerKind, WorkersSettings};
use crate::host::{FreeformSettings, HostDescription, SecretKind};
use crate::render::{paths, RenderContext, RenderedFile};

/// Permissions of a worker's client-facing Unix socket: the proxy (in
/// Synapse's group) connects to it.
pub const CLIENT_SOCKET_MODE: u32 = 0o660;
/// Permissions of a replication or health socket: Synapse's own processes only.
pub const PRIVATE_SOCKET_MODE: u32 = 0o600;

/// `homeserver.yaml` keys that configure workers. `synapse.settings` may
/// not set them: `synapse.workers` derives them, and a hand-written
/// `instance_map` or `redis` would bypass its checks.
pub const WORKER_KEYS: [&str; 22] = [
    "instance_map",
    "stream_writers",
    "redis",
    "worker_replication_secret_path",
    "run_background_tasks_on",
    "update_user_directory_from_worker",
    "notify_appservices_from_worker",
    "pusher_instances",
    "media_instance_running_background_jobs",
    "worker_app",
    "worker_name",
    "worker_listeners",
    "worker_log_config",
    "start_pushers",
    "notify_appservices",
    "update_user_directory",
    "send_federation",
    "federation_sender_instances",
    "outbound_federation_restricted_to",
    "worker_replication_host",
    "worker_replication_http_port",
    "worker_main_http_uri",
];

/// Reports each [`WORKER_KEYS`] entry in `synapse.settings` (and
/// `enable_media_repo` when workers are set, since the media worker decides it).
pub fn check_settings(
    host: &HostDescription,
    settings: &FreeformSettings,
    errs: &mut ValidationErrors,
) {
    for key in settings.keys() {
        let media = key == "enable_media_repo" && host.synapse.workers.is_some();
        if WORKER_KEYS.contains(&key.as_str()) || media {
            errs.push(
                format!("synapse.settings.{key}"),
                "configures Synapse's workers, which synapse.workers derives (with its checks): \
                 set synapse.workers instead",
            );
        }
    }
}

/// The addresses of the private network the processes may use besides
/// loopback: this host's, the other hosts', and Redis's when over TCP.
pub fn internal_addresses(w: &WorkersSettings) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Some(r) = &w.remote {
        out.extend(r.address.parse::<IpAddr>().ok());
        out.extend(
            r.hosts
                .iter()
                .filter_map(|h| h.address.parse::<IpAddr>().ok()),
        );
    }
    if let RedisSettings::Tcp { address, .. } = &w.redis {
        out.extend(address.parse::<IpAddr>().ok());
    }
    out.retain(|a| !a.is_loopback());
    out.sort();
    out.dedup();
    out
}

fn listener(endpoint: &Endpoint, mode: u32, names: Vec<ResourceName>, proxied: bool) -> Listener {
    let mut l = match endpoint {
        Endpoint::Unix(path) => Listener::unix(path.display().to_string(), mode, names),
        Endpoint::Tcp { address, port } => Listener::tcp(vec![address.clone()], *port, names),
    };
    if !proxied {
        l.x_forwarded = None;
    }
    l
}

/// An `instance_map` entry.
fn location(endpoint: &Endpoint) -> serde_yaml::Value {
    let mut map = serde_yaml::Mapping::new();
    match endpoint {
        Endpoint::Unix(path) => {
            map.insert("path".into(), path.display().to_string().into());
        }
        Endpoint::Tcp { address, port } => {
            map.insert("host".into(), address.clone().into());
            map.insert("port".into(), u64::from(*port).into());
        }
    }
    serde_yaml::Value::Mapping(map)
}

/// A `stream_writers` value: one name as a string (the form Synapse's
/// published schema describes), several as a list (the form its worker
/// documentation gives for several event persisters).
fn names(workers: &[&PlannedWorker]) -> serde_yaml::Value {
    match workers {
        [one] => one.name.clone().into(),
        many => serde_yaml::Value::Sequence(many.iter().map(|w| w.name.clone().into()).collect()),
    }
}

/// The streams the stream writer takes from the main process (each has a
/// single writer, or may have several; `device_lists`, `events` and the
/// rest stay where they are).
pub const STREAMS_OF_STREAM_WRITER: [&str; 6] = [
    "typing",
    "to_device",
    "account_data",
    "receipts",
    "presence",
    "push_rules",
];

/// Adds the shared worker keys to `config` (the main process's view).
pub fn apply_to_homeserver(
    host: &HostDescription,
    w: &WorkersSettings,
    config: &mut HomeserverConfig,
) {
    let plan = w.plan();
    let listeners = config.listeners.get_or_insert_with(Vec::new);
    listeners.push(listener(
        &plan.main_replication,
        PRIVATE_SOCKET_MODE,
        vec![ResourceName::Replication],
        false,
    ));
    let x = &mut config.extra;
    let secret = host.secrets.path(SecretKind::WorkerReplicationSecret);
    x.insert(
        "worker_replication_secret_path".into(),
        secret.display().to_string().into(),
    );
    let mut redis = serde_yaml::Mapping::new();
    redis.insert("enabled".into(), true.into());
    match &w.redis {
        RedisSettings::Unix { path } => {
            redis.insert("path".into(), path.display().to_string().into());
        }
        RedisSettings::Tcp {
            address,
            port,
            password_file,
        } => {
            redis.insert("host".into(), address.clone().into());
            redis.insert("port".into(), u64::from(*port).into());
            redis.insert(
                "password_path".into(),
                password_file.display().to_string().into(),
            );
        }
    }
    x.insert("redis".into(), serde_yaml::Value::Mapping(redis));
    let mut instances = serde_yaml::Mapping::new();
    instances.insert("main".into(), location(&plan.main_replication));
    for pw in &plan.workers {
        if let Some(r) = &pw.replication {
            instances.insert(pw.name.clone().into(), location(r));
        }
    }
    x.insert("instance_map".into(), serde_yaml::Value::Mapping(instances));
    let mut writers = serde_yaml::Mapping::new();
    let persisters: Vec<&PlannedWorker> = plan.of(WorkerKind::EventPersister).collect();
    if !persisters.is_empty() {
        writers.insert("events".into(), names(&persisters));
    }
    let stream_writers: Vec<&PlannedWorker> = plan.of(WorkerKind::StreamWriter).collect();
    if !stream_writers.is_empty() {
        for stream in STREAMS_OF_STREAM_WRITER {
            writers.insert(stream.into(), names(&stream_writers));
        }
    }
    if !writers.is_empty() {
        x.insert("stream_writers".into(), serde_yaml::Value::Mapping(writers));
    }
    if let Some(duty) = plan.duty_worker() {
        let name: serde_yaml::Value = duty.name.clone().into();
        for key in [
            "run_background_tasks_on",
            "update_user_directory_from_worker",
            "notify_appservices_from_worker",
        ] {
            x.insert(key.into(), name.clone());
        }
        x.insert(
            "pusher_instances".into(),
            serde_yaml::Value::Sequence(vec![name]),
        );
    }
    let media = plan.of(WorkerKind::Media).next().map(|m| m.name.clone());
    if let Some(media) = media {
        x.insert("enable_media_repo".into(), false.into());
        x.insert(
            "media_instance_running_background_jobs".into(),
            media.into(),
        );
    }
}

/// One worker's configuration file: its application, name, listeners and
/// logging configuration, and with `credentials_dir` the path of every
/// secret in its own directory.
pub fn worker_config(
    host: &HostDescription,
    w: &WorkersSettings,
    pw: &PlannedWorker,
    ctx: &RenderContext,
) -> WorkerConfig {
    let mut listeners = Vec::new();
    if let Some(http) = &pw.http {
        let (names, mode, proxied) = match pw.kind {
            WorkerKind::Media => (vec![ResourceName::Media], CLIENT_SOCKET_MODE, true),
            WorkerKind::Background => (vec![ResourceName::Health], PRIVATE_SOCKET_MODE, false),
            _ => (vec![ResourceName::Client], CLIENT_SOCKET_MODE, true),
        };
        listeners.push(listener(http, mode, names, proxied));
    }
    if let Some(r) = &pw.replication {
        listeners.push(listener(
            r,
            PRIVATE_SOCKET_MODE,
            vec![ResourceName::Replication],
            false,
        ));
    }
    if let Some(port) = metrics_port(host, w, &pw.name) {
        // Prometheus metrics of this worker, on loopback only (as the main
        // process's, `metrics.synapse_port`; each worker the next port).
        listeners.push(Listener {
            kind: crate::components::synapse::ListenerType::Metrics,
            tls: None,
            x_forwarded: None,
            resources: None,
            ..Listener::tcp(
                vec![crate::host::METRICS_ADDRESS.to_owned()],
                port,
                Vec::new(),
            )
        });
    }
    let mut extra = Extra::new();
    if let Some(dir) = w.credentials_dir_of(&pw.name) {
        for kind in SecretKind::ALL {
            extra.insert(
                format!("{}_path", kind.file_name()),
                dir.join(kind.file_name()).display().to_string().into(),
            );
        }
    }
    WorkerConfig {
        worker_app: Some(pw.kind.app().to_owned()),
        worker_name: Some(pw.name.clone()),
        worker_listeners: Some(listeners),
        worker_log_config: Some(
            ctx.output_dir
                .join(worker_log_path(&pw.name))
                .display()
                .to_string(),
        ),
        extra,
    }
}

/// The metrics port of worker `name` with `metrics.enable`: the
/// `metrics.synapse_port` (the main process's) plus the worker's position
/// in the plan, from 1, on 127.0.0.1 of the host it runs on. `None` without
/// metrics (or past port 65535, which the validator reports).
pub fn metrics_port(host: &HostDescription, w: &WorkersSettings, name: &str) -> Option<u16> {
    if !host.metrics.enable {
        return None;
    }
    let i = w.plan().workers.iter().position(|pw| pw.name == name)?;
    u16::try_from(usize::from(host.metrics.synapse_port) + 1 + i).ok()
}

/// `synapse/workers/NAME.yaml`.
pub fn worker_config_path(name: &str) -> String {
    format!("{}/{name}.yaml", paths::SYNAPSE_WORKERS_DIR)
}

/// `synapse/workers/NAME.log.yaml`.
pub fn worker_log_path(name: &str) -> String {
    format!("{}/{name}.log.yaml", paths::SYNAPSE_WORKERS_DIR)
}

/// The manifest `synapse/workers.json`: what runs where, for service
/// managers and tests.
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    workers: Vec<ManifestWorker<'a>>,
    main_replication: String,
    redis: String,
}

#[derive(Debug, Serialize)]
struct ManifestWorker<'a> {
    name: &'a str,
    kind: &'a str,
    app: &'a str,
    config: String,
    log_config: String,
    host: Option<&'a str>,
    http: Option<String>,
    replication: Option<String>,
    metrics: Option<String>,
}

/// An endpoint as text: `unix:/path` or `tcp:ADDRESS:PORT`.
pub fn endpoint_text(e: &Endpoint) -> String {
    match e {
        Endpoint::Unix(p) => format!("unix:{}", p.display()),
        Endpoint::Tcp { address, port } if address.contains(':') => {
            format!("tcp:[{address}]:{port}")
        }
        Endpoint::Tcp { address, port } => format!("tcp:{address}:{port}"),
    }
}

/// Every worker file (configurations, logging configurations, manifest),
/// each worker's configuration checked merged with the shared `homeserver`.
pub fn files(
    host: &HostDescription,
    w: &WorkersSettings,
    homeserver: &HomeserverConfig,
    ctx: &RenderContext,
) -> Result<Vec<RenderedFile>, ValidationErrors> {
    let plan = w.plan();
    let internal = internal_addresses(w);
    let mut errs = ValidationErrors::new();
    let mut out = Vec::new();
    for pw in &plan.workers {
        let config = worker_config(host, w, pw, ctx);
        for e in config.privacy_violations(homeserver, &internal).errors {
            errs.push(
                format!(
                    "synapse.workers ({} {})",
                    worker_config_path(&pw.name),
                    e.path
                ),
                e.message,
            );
        }
        match config.to_yaml_string() {
            Ok(text) => out.push(RenderedFile {
                path: worker_config_path(&pw.name).into(),
                contents: format!(
                    "# Synapse worker {} ({}), derived by ospw-matrix; read after homeserver.yaml.\n{text}",
                    pw.name,
                    pw.kind.as_str()
                ),
            }),
            Err(e) => errs.push("synapse.workers", e.to_string()),
        }
        out.push(RenderedFile {
            path: worker_log_path(&pw.name).into(),
            contents: super::synapse::log_config(host).replacen(
                "# Synapse's logging",
                &format!("# Synapse worker {}'s logging", pw.name),
                1,
            ),
        });
    }
    let manifest = Manifest {
        workers: plan
            .workers
            .iter()
            .map(|pw| ManifestWorker {
                name: &pw.name,
                kind: pw.kind.as_str(),
                app: pw.kind.app(),
                config: worker_config_path(&pw.name),
                log_config: worker_log_path(&pw.name),
                host: pw.remote_host.as_deref(),
                http: pw.http.as_ref().map(endpoint_text),
                replication: pw.replication.as_ref().map(endpoint_text),
                metrics: metrics_port(host, w, &pw.name).map(|port| {
                    endpoint_text(&Endpoint::Tcp {
                        address: crate::host::METRICS_ADDRESS.to_owned(),
                        port,
                    })
                }),
            })
            .collect(),
        main_replication: endpoint_text(&plan.main_replication),
        redis: match &w.redis {
            RedisSettings::Unix { path } => format!("unix:{}", path.display()),
            RedisSettings::Tcp { address, port, .. } => endpoint_text(&Endpoint::Tcp {
                address: address.clone(),
                port: *port,
            }),
        },
    };
    match serde_json::to_string_pretty(&manifest) {
        Ok(text) => out.push(RenderedFile {
            path: paths::SYNAPSE_WORKERS_MANIFEST.into(),
            contents: text + "\n",
        }),
        Err(e) => errs.push("synapse.workers", e.to_string()),
    }
    errs.into_result(out)
}

// ---------------------------------------------------------------- routes

/// The endpoints of Synapse's worker documentation, by what handles them.
pub mod endpoints {
    /// Sync requests (to the sync workers, spread by user).
    pub const SYNC: &[&str] = &[
        "^/_matrix/client/(r0|v3)/sync$",
        "^/_matrix/client/(api/v1|r0|v3)/events$",
        "^/_matrix/client/(api/v1|r0|v3)/initialSync$",
        "^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
    ];

    /// Pagination: all requests for one room to one process.
    pub const MESSAGES: &str = "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/(.*)/messages$";

    /// The client API requests any generic worker handles (the lists
    /// "Client API requests", "Encryption requests", "Registration/login
    /// requests", "Event sending requests" and "User directory search
    /// requests"; the federation and admin API entries are left out: the
    /// proxy answers 404 for those).
    pub const CLIENT: &[&str] = &[
        "^/_matrix/client/(api/v1|r0|v3|unstable)/createRoom$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/publicRooms$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/joined_members$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/context/.*$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/members$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state$",
        "^/_matrix/client/v1/rooms/.*/hierarchy$",
        "^/_matrix/client/(v1|unstable)/rooms/.*/relations/",
        "^/_matrix/client/v1/rooms/.*/threads$",
        "^/_matrix/client/unstable/im.nheko.summary/summary/.*$",
        "^/_matrix/client/(r0|v3|unstable)/account/3pid$",
        "^/_matrix/client/(r0|v3|unstable)/account/whoami$",
        "^/_matrix/client/(r0|v3|unstable)/account/deactivate$",
        "^/_matrix/client/(r0|v3)/delete_devices$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/devices(/|$)",
        "^/_matrix/client/versions$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/voip/turnServer$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/event/",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/joined_rooms$",
        "^/_matrix/client/v1/rooms/.*/timestamp_to_event$",
        "^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/search$",
        "^/_matrix/client/(r0|v3|unstable)/user/.*/filter(/|$)",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/directory/room/.*$",
        "^/_matrix/client/(r0|v3|unstable)/capabilities$",
        "^/_matrix/client/(r0|v3|unstable)/notifications$",
        "^/_matrix/client/(r0|v3|unstable)/keys/query$",
        "^/_matrix/client/(r0|v3|unstable)/keys/changes$",
        "^/_matrix/client/(r0|v3|unstable)/keys/claim$",
        "^/_matrix/client/(r0|v3|unstable)/room_keys/",
        "^/_matrix/client/(r0|v3|unstable)/keys/upload",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/keys/device_signing/upload$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/keys/signatures/upload$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/login$",
        "^/_matrix/client/(r0|v3|unstable)/register$",
        "^/_matrix/client/(r0|v3|unstable)/register/available$",
        "^/_matrix/client/v1/register/m.login.registration_token/validity$",
        "^/_matrix/client/(r0|v3|unstable)/password_policy$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/redact",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/send",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state/",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/(join|invite|leave|ban|unban|kick)$",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/join/",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/knock/",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/profile/",
        "^/_matrix/client/(r0|v3|unstable)/user_directory/search$",
    ];

    /// The endpoints a generic worker handles for GET only.
    pub const CLIENT_GET: &[&str] = &[
        "^/_matrix/client/(api/v1|r0|v3|unstable)/pushrules/",
        "^/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
        "^/_matrix/client/(r0|v3|unstable)/.*/tags",
        "^/_matrix/client/(r0|v3|unstable)/.*/account_data",
        "^/_matrix/client/(api/v1|r0|v3|unstable)/presence/",
    ];

    /// Each stream's endpoints, to be sent to its writer ("Stream writers").
    pub const STREAMS: &[(&str, &[&str])] = &[
        (
            "typing",
            &["^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/typing"],
        ),
        (
            "to_device",
            &["^/_matrix/client/(r0|v3|unstable)/sendToDevice/"],
        ),
        (
            "account_data",
            &[
                "^/_matrix/client/(r0|v3|unstable)/.*/tags",
                "^/_matrix/client/(r0|v3|unstable)/.*/account_data",
            ],
        ),
        (
            "receipts",
            &[
                "^/_matrix/client/(r0|v3|unstable)/rooms/.*/receipt",
                "^/_matrix/client/(r0|v3|unstable)/rooms/.*/read_markers",
            ],
        ),
        (
            "presence",
            &["^/_matrix/client/(api/v1|r0|v3|unstable)/presence/"],
        ),
        (
            "push_rules",
            &["^/_matrix/client/(api/v1|r0|v3|unstable)/pushrules/"],
        ),
        (
            "device_lists",
            &[
                "^/_matrix/client/(r0|v3)/delete_devices$",
                "^/_matrix/client/(api/v1|r0|v3|unstable)/devices(/|$)",
                "^/_matrix/client/(r0|v3|unstable)/keys/upload",
                "^/_matrix/client/(api/v1|r0|v3|unstable)/keys/device_signing/upload$",
                "^/_matrix/client/(api/v1|r0|v3|unstable)/keys/signatures/upload$",
            ],
        ),
    ];

    /// The media repository's path prefixes (its federation prefix is
    /// left out: the proxy answers 404 for federation).
    pub const MEDIA: &[&str] = &["/_matrix/media/*", "/_matrix/client/v1/media/*"];
}

/// One regular expression matching any of `patterns` (each anchored at
/// the start, as the documentation writes them).
pub fn alternation(patterns: &[&str]) -> String {
    let parts: Vec<&str> = patterns
        .iter()
        .map(|p| p.strip_prefix('^').unwrap_or(p))
        .collect();
    format!("^(?:{})", parts.join("|"))
}

/// A proxy upstream for a worker's client-facing listener.
pub fn upstream(e: &Endpoint) -> String {
    match e {
        Endpoint::Unix(p) => format!("unix/{}", p.display()),
        Endpoint::Tcp { address, port } if address.contains(':') => format!("[{address}]:{port}"),
        Endpoint::Tcp { address, port } => format!("{address}:{port}"),
    }
}

/// The header the proxy sets to the key requests are spread by (a user, a
/// room); any value a client sent is replaced.
pub const ROUTE_HEADER: &str = "X-Ospw-Route";
/// The Caddy variable holding the requesting user's key: the user part of
/// Synapse's access token (`syt_<user>_...`), else the whole token.
const USER_VAR: &str = "{ospw_user}";

/// How a route spreads requests over several upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// By the requesting user.
    User,
    /// By the room in the path.
    Room,
    /// In turn.
    RoundRobin,
}

/// `reverse_proxy @matcher UPSTREAMS` with the spreading policy when there
/// are several upstreams.
fn proxy(matcher: &str, upstreams: &[String], spread: Spread) -> Directive {
    let mut args = vec![matcher.to_owned()];
    args.extend(upstreams.iter().cloned());
    if upstreams.len() < 2 {
        return Directive::new("reverse_proxy", args);
    }
    let policy = match spread {
        Spread::User | Spread::Room => Directive::new("lb_policy", ["header", ROUTE_HEADER]),
        Spread::RoundRobin => Directive::new("lb_policy", ["round_robin"]),
    };
    Directive::with_block("reverse_proxy", args, vec![policy])
}

/// The directives of the Matrix host's `handle /_matrix/*` block: each
/// group of endpoints to its workers, then everything else to `main`.
/// Caddy keeps same-named directives with matchers in the order written
/// (before the one without), so the stream writers' routes, which overlap
/// the generic list, come first.
pub fn matrix_routes(w: &WorkersSettings, main: &str) -> Vec<Directive> {
    let plan = w.plan();
    let ups = |kind: WorkerKind| -> Vec<String> {
        plan.of(kind)
            .filter_map(|pw| pw.http.as_ref())
            .map(upstream)
            .collect()
    };
    let streams = ups(WorkerKind::StreamWriter);
    let sync = ups(WorkerKind::Sync);
    let client = ups(WorkerKind::Client);
    let media = ups(WorkerKind::Media);
    let main = vec![main.to_owned()];
    let mut d = Vec::new();
    let route = |d: &mut Vec<Directive>,
                 name: &str,
                 matcher: Vec<Directive>,
                 upstreams: &[String],
                 spread: Spread,
                 key: Option<String>| {
        let at = format!("@{name}");
        d.push(Directive::with_block(&at, Vec::<String>::new(), matcher));
        if let Some(key) = key.filter(|_| upstreams.len() > 1) {
            d.push(Directive::new(
                "request_header",
                [at.clone(), ROUTE_HEADER.to_owned(), key],
            ));
        }
        d.push(proxy(&at, upstreams, spread));
    };
    let regexp = |patterns: &[&str]| Directive::new("path_regexp", [alternation(patterns)]);
    // Each stream's endpoints go to its writer: the stream writer worker
    // for the streams it writes, the main process for the others.
    for (stream, patterns) in endpoints::STREAMS {
        let target = if !streams.is_empty() && STREAMS_OF_STREAM_WRITER.contains(stream) {
            &streams
        } else {
            &main
        };
        route(
            &mut d,
            &format!("ospw_stream_{stream}"),
            vec![regexp(patterns)],
            target,
            Spread::RoundRobin,
            None,
        );
    }
    if !media.is_empty() {
        route(
            &mut d,
            "ospw_media",
            vec![Directive::new("path", endpoints::MEDIA.iter().copied())],
            &media,
            Spread::RoundRobin,
            None,
        );
    }
    let sync_targets = if sync.is_empty() { &client } else { &sync };
    if !sync_targets.is_empty() {
        if sync_targets.len() > 1 {
            d.push(user_key_map());
        }
        route(
            &mut d,
            "ospw_sync",
            vec![regexp(endpoints::SYNC)],
            sync_targets,
            Spread::User,
            Some(USER_VAR.to_owned()),
        );
    }
    if !client.is_empty() {
        route(
            &mut d,
            "ospw_messages",
            vec![Directive::new(
                "path_regexp",
                ["ospw_messages", endpoints::MESSAGES],
            )],
            &client,
            Spread::Room,
            Some("{re.ospw_messages.2}".to_owned()),
        );
        route(
            &mut d,
            "ospw_client",
            vec![regexp(endpoints::CLIENT)],
            &client,
            Spread::RoundRobin,
            None,
        );
        route(
            &mut d,
            "ospw_client_get",
            vec![
                Directive::new("method", ["GET"]),
                regexp(endpoints::CLIENT_GET),
            ],
            &client,
            Spread::RoundRobin,
            None,
        );
    }
    d.push(Directive::new("reverse_proxy", main));
    d
}

/// `map` of the access token (header or query parameter) to the user part
/// of Synapse's tokens (`syt_<base64 localpart>_<random>_<crc>`), so that
/// every device of one user syncs on one worker; another token form is its
/// own key.
fn user_key_map() -> Directive {
    let source = "{http.request.header.Authorization}{query.access_token}";
    Directive::with_block(
        "map",
        [source, USER_VAR],
        vec![
            Directive::new("~^(?:Bearer )?syt_([^_]+)_", ["${1}"]),
            Directive::new("default", [source]),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::workers::WorkerPreset;

    fn regex_matches(patterns: &[&str], path: &str) -> bool {
        // The documented patterns use only anchors, alternations, `.*`,
        // `[^/]+` and literal text: a tiny matcher is enough to check the
        // alternation keeps them apart.
        let re = alternation(patterns);
        regex_lite_match(&re, path)
    }

    /// Matches the subset of regular expressions used here by expanding
    /// alternations and trying each branch; `.*`, `[^/]+`, `[^/]*`, `$`.
    fn regex_lite_match(re: &str, path: &str) -> bool {
        let body = re
            .strip_prefix("^(?:")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(re);
        split_top(body)
            .iter()
            .any(|branch| branch_matches(branch, path))
    }

    fn split_top(s: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut depth = 0;
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                '|' if depth == 0 => {
                    out.push(String::new());
                    continue;
                }
                _ => {}
            }
            if let Some(last) = out.last_mut() {
                last.push(c);
            }
        }
        out
    }

    fn expand(branch: &str) -> Vec<String> {
        if let Some(open) = branch.find('(') {
            let mut depth = 0;
            let mut close = open;
            for (i, c) in branch[open..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &branch[open + 1..close];
            let inner = inner.strip_prefix("?:").unwrap_or(inner);
            let mut out = Vec::new();
            for alt in split_top(inner) {
                for rest in expand(&branch[close + 1..]) {
                    for head in expand(&alt) {
                        out.push(format!("{}{head}{rest}", &branch[..open]));
                    }
                }
            }
            out
        } else {
            vec![branch.to_owned()]
        }
    }

    fn branch_matches(branch: &str, path: &str) -> bool {
        expand(branch).iter().any(|b| simple_match(b, path))
    }

    fn simple_match(pat: &str, s: &str) -> bool {
        if pat.is_empty() {
            return true;
        }
        if pat == "$" {
            return s.is_empty();
        }
        for (token, any_slash) in [(".*", true), ("[^/]+", false), ("[^/]*", false)] {
            if let Some(rest) = pat.strip_prefix(token) {
                let min = usize::from(token == "[^/]+");
                return (min..=s.len())
                    .filter(|i| s.is_char_boundary(*i))
                    .filter(|i| any_slash || !s[..*i].contains('/'))
                    .any(|i| simple_match(rest, &s[i..]));
            }
        }
        let c = pat.chars().next().unwrap_or_default();
        s.starts_with(c) && simple_match(&pat[c.len_utf8()..], &s[c.len_utf8()..])
    }

    #[test]
    fn the_alternations_match_what_the_documentation_routes() {
        assert!(regex_matches(endpoints::SYNC, "/_matrix/client/v3/sync"));
        assert!(regex_matches(
            endpoints::SYNC,
            "/_matrix/client/r0/rooms/!a:b/initialSync"
        ));
        assert!(!regex_matches(
            endpoints::SYNC,
            "/_matrix/client/v3/sync/extra"
        ));
        assert!(!regex_matches(
            endpoints::SYNC,
            "/_matrix/client/v3/rooms/!a/b/initialSync"
        ));
        assert!(regex_matches(
            endpoints::CLIENT,
            "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t1"
        ));
        assert!(regex_matches(
            endpoints::CLIENT,
            "/_matrix/client/v3/keys/query"
        ));
        assert!(regex_matches(endpoints::CLIENT, "/_matrix/client/versions"));
        assert!(!regex_matches(
            endpoints::CLIENT,
            "/_matrix/client/v3/rooms/!r:x/messages"
        ));
        assert!(!regex_matches(
            endpoints::CLIENT,
            "/_matrix/client/v3/logout"
        ));
        assert!(!regex_matches(endpoints::CLIENT, "/_matrix/client/v3/sync"));
        assert!(regex_matches(
            &[endpoints::MESSAGES],
            "/_matrix/client/v3/rooms/!r:x/messages"
        ));
    }

    fn small() -> WorkersSettings {
        WorkersSettings {
            preset: Some(WorkerPreset::Small),
            ..WorkersSettings::default()
        }
    }

    #[test]
    fn routes_of_the_small_preset() {
        let d = matrix_routes(&small(), "127.0.0.1:8008");
        let proxies: Vec<&Directive> = d.iter().filter(|d| d.name == "reverse_proxy").collect();
        // The stream endpoints to the main process (their writer), sync to
        // the sync worker, the rest to the main process.
        let targets: Vec<(&str, &str)> = proxies
            .iter()
            .map(|p| (p.args[0].as_str(), p.args.get(1).map_or("", String::as_str)))
            .collect();
        assert_eq!(
            targets,
            vec![
                ("@ospw_stream_typing", "127.0.0.1:8008"),
                ("@ospw_stream_to_device", "127.0.0.1:8008"),
                ("@ospw_stream_account_data", "127.0.0.1:8008"),
                ("@ospw_stream_receipts", "127.0.0.1:8008"),
                ("@ospw_stream_presence", "127.0.0.1:8008"),
                ("@ospw_stream_push_rules", "127.0.0.1:8008"),
                ("@ospw_stream_device_lists", "127.0.0.1:8008"),
                ("@ospw_sync", "unix//run/ospw-matrix-workers/sync1.sock"),
                ("127.0.0.1:8008", ""),
            ]
        );
        // One upstream each: no spreading, no user map.
        assert!(d
            .iter()
            .all(|d| d.name != "map" && d.name != "request_header"));
        assert!(proxies.iter().all(|p| p.block.is_empty()));
        // With a client worker, its lists go to it.
        let w = WorkersSettings {
            client: Some(1),
            ..small()
        };
        let d = matrix_routes(&w, "127.0.0.1:8008");
        let client: Vec<&str> = d
            .iter()
            .filter(|d| {
                d.name == "reverse_proxy"
                    && d.args.get(1).is_some_and(|u| u.ends_with("client1.sock"))
            })
            .map(|d| d.args[0].as_str())
            .collect();
        assert_eq!(
            client,
            ["@ospw_messages", "@ospw_client", "@ospw_client_get"]
        );
    }

    #[test]
    fn routes_spread_sync_by_user_and_messages_by_room() {
        let w = WorkersSettings {
            sync: Some(2),
            client: Some(3),
            stream_writer: Some(1),
            media: Some(1),
            ..WorkersSettings::default()
        };
        let d = matrix_routes(&w, "unix//run/s.sock");
        let find = |name: &str| {
            d.iter()
                .find(|d| d.name == "reverse_proxy" && d.args[0] == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let sync = find("@ospw_sync");
        assert_eq!(sync.args.len(), 3);
        assert_eq!(
            sync.block,
            vec![Directive::new("lb_policy", ["header", ROUTE_HEADER])]
        );
        assert!(d.iter().any(|x| x.name == "map" && x.args[1] == USER_VAR));
        assert!(d.contains(&Directive::new(
            "request_header",
            ["@ospw_sync", ROUTE_HEADER, USER_VAR]
        )));
        assert!(d.contains(&Directive::new(
            "request_header",
            ["@ospw_messages", ROUTE_HEADER, "{re.ospw_messages.2}"]
        )));
        assert_eq!(
            find("@ospw_client").block,
            vec![Directive::new("lb_policy", ["round_robin"])]
        );
        assert_eq!(find("@ospw_client").args.len(), 4);
        // The stream writer takes its streams' endpoints; device lists stay
        // with the main process.
        assert_eq!(
            find("@ospw_stream_typing").args[1],
            "unix//run/ospw-matrix-workers/stream_writer1.sock"
        );
        assert_eq!(
            find("@ospw_stream_device_lists").args[1],
            "unix//run/s.sock"
        );
        assert_eq!(
            find("@ospw_media").args[1],
            "unix//run/ospw-matrix-workers/media1.sock"
        );
        // Stream routes come before the generic list they overlap.
        let pos = |name: &str| {
            d.iter()
                .position(|x| x.name == "reverse_proxy" && x.args[0] == name)
        };
        assert!(pos("@ospw_stream_presence") < pos("@ospw_client_get"));
        assert!(pos("@ospw_stream_device_lists") < pos("@ospw_client"));
    }

    #[test]
    fn without_sync_workers_the_client_workers_sync() {
        let w = WorkersSettings {
            client: Some(1),
            ..WorkersSettings::default()
        };
        let d = matrix_routes(&w, "m:1");
        assert!(d.iter().any(|x| x.name == "reverse_proxy"
            && x.args == ["@ospw_sync", "unix//run/ospw-matrix-workers/client1.sock"]));
        let w = WorkersSettings {
            event_persister: Some(1),
            ..WorkersSettings::default()
        };
        let d = matrix_routes(&w, "m:1");
        assert!(!d
            .iter()
            .any(|x| x.args.first().is_some_and(|a| a == "@ospw_sync")));
    }

    #[test]
    fn a_remote_database_is_reached_with_a_password_file_and_tls() {
        let ctx = RenderContext {
            output_dir: "/etc/ospw-matrix".into(),
        };
        let mut host = crate::load::example_host().expect("example");
        host.synapse.database.remote = Some(crate::host::RemoteDatabase {
            address: "10.0.0.3".into(),
            password_file: "/run/secrets/pgpass".into(),
            ca_file: Some("/etc/pg-ca.pem".into()),
        });
        let hs = crate::render::synapse::homeserver(&host, &ctx).expect("renders");
        let args = hs.database.and_then(|d| d.args).expect("args");
        assert_eq!(args.host.as_deref(), Some("10.0.0.3"));
        let text = |k: &str| {
            args.extra
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        assert_eq!(text("passfile").as_deref(), Some("/run/secrets/pgpass"));
        assert_eq!(text("sslmode").as_deref(), Some("verify-full"));
        assert_eq!(text("sslrootcert").as_deref(), Some("/etc/pg-ca.pem"));
        assert!(!args.extra.contains_key("password"));
        // Without a CA, the private network must encrypt: sslmode disable.
        if let Some(r) = host.synapse.database.remote.as_mut() {
            r.ca_file = None;
        }
        let hs = crate::render::synapse::homeserver(&host, &ctx).expect("renders");
        let args = hs.database.and_then(|d| d.args).expect("args");
        assert_eq!(
            args.extra.get("sslmode").and_then(|v| v.as_str()),
            Some("disable")
        );
        // The privacy check refuses a database at a public address.
        let mut public = crate::render::synapse::homeserver(&host, &ctx).expect("renders");
        if let Some(a) = public.database.as_mut().and_then(|d| d.args.as_mut()) {
            a.host = Some("203.0.113.7".into());
        }
        let errs = public.privacy_violations_with(&["10.0.0.3".parse().expect("ip")]);
        assert_eq!(errs.errors.len(), 1, "{errs}");
        assert_eq!(errs.errors[0].path, "database.args.host");
        assert!(public
            .privacy_violations_with(&["203.0.113.7".parse().expect("ip")])
            .is_empty());
        // ... and so does the validator, for the host description's field.
        if let Some(r) = host.synapse.database.remote.as_mut() {
            r.address = "203.0.113.7".into();
        }
        let errs = crate::validate::validate(&host).expect_err("public");
        assert!(errs.mentions("synapse.database.remote.address"), "{errs}");
    }

    #[test]
    fn worker_keys_in_settings_are_refused() {
        let mut host = crate::load::example_host().expect("example");
        for key in [
            "instance_map",
            "redis",
            "stream_writers",
            "worker_app",
            "enable_media_repo",
        ] {
            host.synapse
                .settings
                .insert(key.into(), serde_json::json!({}));
        }
        let mut errs = ValidationErrors::new();
        check_settings(&host, &host.synapse.settings, &mut errs);
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        // enable_media_repo is for the admin to decide without workers.
        assert_eq!(
            paths,
            vec![
                "synapse.settings.instance_map",
                "synapse.settings.redis",
                "synapse.settings.stream_writers",
                "synapse.settings.worker_app",
            ]
        );
        host.synapse.workers = Some(small());
        let mut errs = ValidationErrors::new();
        check_settings(&host, &host.synapse.settings, &mut errs);
        assert!(
            errs.mentions("synapse.settings.enable_media_repo"),
            "{errs}"
        );
    }
}
