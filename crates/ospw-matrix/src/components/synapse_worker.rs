//! A Synapse worker's own configuration file (`worker_app`, `worker_name`,
//! `worker_listeners`, `worker_log_config`), read by the worker after the
//! shared `homeserver.yaml` (`-c homeserver.yaml -c worker.yaml`).
//!
//! Synapse merges the files key by key at the top level, the worker's file
//! last, so a worker file can override any shared key: the privacy check
//! ([`WorkerConfig::privacy_violations`]) checks the worker's own listeners
//! and the merged configuration the worker actually runs with.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::components::synapse::{
    check_listener, Extra, HomeserverConfig, Listener, ListenerRules, ResourceName,
};
use crate::error::{Error, Result, ValidationErrors};

/// The worker applications this product runs.
pub const WORKER_APPS: [&str; 2] = ["synapse.app.generic_worker", "synapse.app.media_repository"];

/// A worker's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The worker application, e.g. `synapse.app.generic_worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_app: Option<String>,
    /// The worker's unique name (its `instance_map` key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    /// The worker's listeners (the shared `listeners` are the main
    /// process's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_listeners: Option<Vec<Listener>>,
    /// The worker's logging configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_log_config: Option<String>,
    /// Every other key: each replaces the shared key of that name.
    #[serde(flatten)]
    pub extra: Extra,
}

impl WorkerConfig {
    /// Parses a worker file; a type error names the key's path.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<WorkerConfig> {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            Error::Parse {
                source_name: source_name.to_owned(),
                path,
                message: err.into_inner().to_string(),
            }
        })
    }

    /// Reads and parses a worker file.
    pub fn from_yaml_file(path: &Path) -> Result<WorkerConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Emits YAML.
    pub fn to_yaml_string(&self) -> Result<String> {
        serde_yaml::to_string(self)
            .map_err(|e| Error::Other(format!("cannot serialise a worker configuration: {e}")))
    }

    /// The configuration the worker runs with: `shared`, each top-level
    /// key of this file replacing the shared one (as Synapse merges them).
    pub fn merged(&self, shared: &HomeserverConfig) -> Result<HomeserverConfig> {
        let mut value = shared.to_yaml_value()?;
        let own = serde_yaml::to_value(self)
            .map_err(|e| Error::Other(format!("cannot serialise a worker configuration: {e}")))?;
        if let (serde_yaml::Value::Mapping(base), serde_yaml::Value::Mapping(own)) =
            (&mut value, own)
        {
            for (k, v) in own {
                base.insert(k, v);
            }
        }
        HomeserverConfig::from_yaml_value(value, "worker configuration")
    }

    /// Every way this worker breaks the privacy invariants: its listeners
    /// (HTTP only; `client`, `replication` and `health`, and `media` for a
    /// media repository; a Unix socket or loopback, or an `internal`
    /// address of the private network), an unknown `worker_app`, and
    /// whatever the merged configuration (shared file plus this one)
    /// breaks, reported at its key.
    pub fn privacy_violations(
        &self,
        shared: &HomeserverConfig,
        internal: &[IpAddr],
    ) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        match self.worker_app.as_deref() {
            Some(app) if WORKER_APPS.contains(&app) => {}
            other => errs.push(
                "worker_app",
                format!(
                    "is {}: expected {}",
                    other.map_or("absent".to_owned(), |a| format!("{a:?}")),
                    WORKER_APPS.join(" or ")
                ),
            ),
        }
        let media = self.worker_app.as_deref() == Some(WORKER_APPS[1]);
        let secret = shared
            .extra
            .get("worker_replication_secret_path")
            .or_else(|| self.extra.get("worker_replication_secret_path"))
            .is_some_and(|v| !v.is_null());
        let mut resources = vec![ResourceName::Client, ResourceName::Health];
        if secret {
            resources.push(ResourceName::Replication);
        }
        if media {
            resources.push(ResourceName::Media);
        }
        let rules = ListenerRules {
            resources: &resources,
            internal,
        };
        for (i, l) in self.worker_listeners.iter().flatten().enumerate() {
            check_listener(&format!("worker_listeners[{i}]"), l, &rules, &mut errs);
        }
        match self.merged(shared) {
            Ok(merged) => {
                for e in merged.privacy_violations_with(internal).errors {
                    errs.push(
                        format!("(merged with homeserver.yaml) {}", e.path),
                        e.message,
                    );
                }
            }
            Err(e) => errs.push("(merged with homeserver.yaml)", e.to_string()),
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> HomeserverConfig {
        let host = crate::load::example_host().expect("example");
        let ctx = crate::render::RenderContext {
            output_dir: "/etc/ospw-matrix".into(),
        };
        let mut hs = crate::render::synapse::homeserver(&host, &ctx).expect("derives");
        hs.extra.insert(
            "worker_replication_secret_path".into(),
            serde_yaml::Value::String("/run/secret".into()),
        );
        hs
    }

    fn violations(worker: &str, internal: &[IpAddr]) -> Vec<String> {
        WorkerConfig::from_yaml_str(worker, "w.yaml")
            .expect("parses")
            .privacy_violations(&shared(), internal)
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    const GOOD: &str = "worker_app: synapse.app.generic_worker
worker_name: sync1
worker_listeners:
  - path: /run/w/sync1.sock
    mode: 432
    type: http
    resources: [{names: [client]}]
  - path: /run/w/sync1-replication.sock
    type: http
    resources: [{names: [replication, health]}]
";

    #[test]
    fn a_private_worker_passes() {
        assert_eq!(violations(GOOD, &[]), Vec::<String>::new());
    }

    #[test]
    fn worker_listeners_keep_the_listener_rules() {
        for (listener, path) in [
            ("{path: /s, type: http, resources: [{names: [federation]}]}", "worker_listeners[0].resources[0].names[0]"),
            ("{path: /s, type: http, resources: [{names: [client, keys]}]}", "worker_listeners[0].resources[0].names[1]"),
            ("{path: /s, type: http, resources: [{names: [openid]}]}", "worker_listeners[0].resources[0].names[0]"),
            ("{path: /s, type: http, resources: [{names: [media]}]}", "worker_listeners[0].resources[0].names[0]"),
            ("{port: 8083, bind_addresses: ['0.0.0.0'], type: http, resources: [{names: [client]}]}", "worker_listeners[0].bind_addresses[0]"),
            ("{port: 8083, bind_addresses: ['10.0.0.2'], type: http, resources: [{names: [client]}]}", "worker_listeners[0].bind_addresses[0]"),
            ("{port: 8083, type: http, resources: [{names: [client]}]}", "worker_listeners[0].bind_addresses"),
            ("{port: 9000, bind_addresses: ['127.0.0.1'], type: manhole}", "worker_listeners[0].type"),
        ] {
            let worker = format!(
                "worker_app: synapse.app.generic_worker\nworker_name: w\nworker_listeners: [{listener}]\n"
            );
            assert_eq!(violations(&worker, &[]), vec![path.to_owned()], "{listener}");
        }
        // The private network's own address is allowed when declared.
        let internal: [IpAddr; 1] = ["10.0.0.2".parse().expect("ip")];
        let worker = "worker_app: synapse.app.generic_worker\nworker_listeners: [{port: 8083, bind_addresses: ['10.0.0.2'], type: http, resources: [{names: [client]}]}]\n";
        assert!(violations(worker, &internal).is_empty());
        // A media repository may serve `media`.
        let media = "worker_app: synapse.app.media_repository\nworker_listeners: [{path: /s, type: http, resources: [{names: [media, client]}]}]\n";
        assert!(violations(media, &[]).is_empty());
    }

    #[test]
    fn replication_without_the_secret_is_refused() {
        let mut hs = shared();
        hs.extra.remove("worker_replication_secret_path");
        let w = WorkerConfig::from_yaml_str(GOOD, "w").expect("parses");
        let paths: Vec<String> = w
            .privacy_violations(&hs, &[])
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, vec!["worker_listeners[1].resources[0].names[0]"]);
    }

    #[test]
    fn a_worker_file_cannot_override_the_shared_invariants() {
        for (key, path) in [
            ("federation_domain_whitelist: null", "(merged with homeserver.yaml) federation_domain_whitelist"),
            ("enable_registration: true", "(merged with homeserver.yaml) enable_registration"),
            ("trusted_key_servers: [{server_name: matrix.org}]", "(merged with homeserver.yaml) trusted_key_servers"),
            ("macaroon_secret_key: hunter2hunter2", "(merged with homeserver.yaml) macaroon_secret_key"),
            ("listeners: [{port: 8448, bind_addresses: ['0.0.0.0'], type: http, resources: [{names: [client]}]}]", "(merged with homeserver.yaml) listeners[0].bind_addresses[0]"),
            ("redis: {enabled: true, host: 203.0.113.9, password_path: /p}", "(merged with homeserver.yaml) redis.host"),
            ("redis: {enabled: true, host: 127.0.0.1}", "(merged with homeserver.yaml) redis.password_path"),
            ("instance_map: {main: {host: 203.0.113.9, port: 9093}}", "(merged with homeserver.yaml) instance_map.main.host"),
        ] {
            let worker = format!("worker_app: synapse.app.generic_worker\n{key}\n");
            let got = violations(&worker, &[]);
            assert!(got.contains(&path.to_owned()), "{key}: {got:?}");
        }
        // The main process's application is not a worker's.
        assert_eq!(
            violations("worker_app: synapse.app.homeserver\n", &[]),
            vec!["worker_app"]
        );
        assert_eq!(violations("worker_name: w\n", &[]), vec!["worker_app"]);
    }
}
