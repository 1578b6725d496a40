//! The rendered worker set-up (`synapse.workers`) against Synapse itself:
//! the shared `homeserver.yaml` and every worker's file, each loaded the way
//! Synapse loads it (`python -m synapse.config -c homeserver.yaml -c
//! worker.yaml`, and the generic worker's own `load_config` and
//! `create_homeserver`), each merged configuration valid against Synapse's
//! published schema, and what Synapse made of the worker keys.
//!
//! Needs Synapse's virtual environment (`OSPW_SYNAPSE_PYTHON`, with the
//! `redis` extra) and the schema (`support::require_synapse_schema_file`); under CI a
//! missing one fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{
    assert_fails_naming, assert_renders, render_to, require, run, synapse_python, TempDir,
    EXAMPLE_NAMES,
};

/// For each set of files (a JSON list of lists on argv[2]): the loader
/// behind `python -m synapse.config` (`synapse.config.__main__.main`, in
/// process), the generic worker's own `load_config` and `create_homeserver`
/// (which checks the worker application), inline secrets disallowed; the
/// merged configuration (PyYAML, top-level keys of later files replacing
/// earlier ones, as Synapse merges them) against Synapse's published schema
/// (argv[1]; `support::SYNAPSE_SCHEMA_PROBLEMS_PY`, put in front of this
/// probe: Draft 2020-12, and every key at any depth defined by it). Prints
/// one JSON object per set: the problems, and what Synapse made of the
/// worker keys.
const WORKER_PROBE: &str = r#"
import sys, json, io, contextlib, yaml
import synapse.config.__main__ as config_main
from synapse.app.generic_worker import load_config, create_homeserver
schema = yaml.safe_load(open(sys.argv[1]))
def loc(l):
    return {"path": l.path} if hasattr(l, "path") else {"host": l.host, "port": l.port}
def listener(l):
    d = {"type": l.type}
    for a in ("port", "bind_addresses", "path", "mode"):
        if hasattr(l, a):
            d[a] = getattr(l, a)
    d["resources"] = [n for r in l.http_options.resources for n in r.names] if l.http_options else []
    return d
out = []
for files in json.loads(sys.argv[2]):
    argv = ["--no-secrets-in-config"]
    for f in files:
        argv += ["-c", f]
    problems = []
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            config_main.main(["synapse.config"] + argv)
    except SystemExit as e:
        problems.append("python -m synapse.config exited %s" % e.code)
    if "Config parses OK!" not in printed.getvalue():
        problems.append("python -m synapse.config did not say: Config parses OK!")
    instance = {}
    for f in files:
        instance.update(yaml.safe_load(open(f)))
    # Synapse's worker documentation gives several event persisters as a
    # list (`stream_writers: {events: [a, b]}`), which its loader reads; the
    # published schema only describes one name. That form alone is let through.
    several = instance.get("stream_writers", {}).get("events")
    if isinstance(several, list) and len(several) > 1 and all(isinstance(n, str) for n in several):
        instance["stream_writers"]["events"] = several[0]
    problems += schema_problems(schema, instance)
    try:
        c = load_config(argv)
        if c.worker.worker_app is not None:
            create_homeserver(c)
    except BaseException as e:
        problems.append("generic worker loader: %r" % e)
        out.append({"files": files, "problems": problems})
        continue
    w = c.worker
    out.append({
        "files": files,
        "problems": problems,
        "worker_app": w.worker_app,
        "instance_name": w.instance_name,
        "worker_listeners": [listener(l) for l in w.worker_listeners],
        "listeners": [listener(l) for l in c.server.listeners],
        "instance_map": {k: loc(v) for k, v in w.instance_map.items()},
        "writers": {s: getattr(w.writers, s) for s in ("events", "typing", "to_device", "account_data", "receipts", "presence", "push_rules", "device_lists")},
        "run_background_tasks": w.run_background_tasks,
        "update_user_directory": w.should_update_user_directory,
        "notify_appservices": w.should_notify_appservices,
        "start_pushers": w.start_pushers,
        "replication_secret_set": bool(w.worker_replication_secret),
        "redis": {"enabled": c.redis.redis_enabled, "path": getattr(c.redis, "redis_path", None), "host": getattr(c.redis, "redis_host", None), "port": getattr(c.redis, "redis_port", None), "password_set": bool(getattr(c.redis, "redis_password", None))},
        "can_load_media_repo": c.media.can_load_media_repo,
        "worker_log_config": w.worker_log_config,
        "federation_domain_whitelist": c.federation.federation_domain_whitelist,
    })
print(json.dumps(out))
"#;

fn python() -> Option<PathBuf> {
    require("Synapse's Python (OSPW_SYNAPSE_PYTHON)", synapse_python())
}

fn schema_file() -> Option<PathBuf> {
    support::require_synapse_schema_file()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A host with `workers` (the YAML of `synapse.workers`, indented by four),
/// its secrets from `secrets init`, rendered into `out`.
struct Host {
    tmp: TempDir,
}

impl Host {
    /// `DIR` in `workers` is replaced by the host's temporary directory.
    fn render(tag: &str, workers: &str, extra_secrets: &str) -> Host {
        let tmp = TempDir::new(tag);
        let dir = tmp.path();
        let workers = workers.replace("DIR", &dir.display().to_string());
        let secrets = dir.join("secrets");
        let out = run(&["secrets", "init", "--dir", secrets.to_str().expect("utf8")]);
        assert!(out.status.success(), "secrets init: {out:?}");
        let host = dir.join("host.yaml");
        std::fs::write(
            &host,
            format!(
                "{EXAMPLE_NAMES}synapse:
  data_dir: {d}/data
  workers:
{workers}
secrets:
  dir: {d}/secrets
{extra_secrets}",
                d = dir.display()
            ),
        )
        .expect("write host");
        assert_renders(Some(&host), &dir.join("out"));
        Host { tmp }
    }

    fn out(&self, rel: &str) -> PathBuf {
        self.tmp.path().join("out").join(rel)
    }

    /// The workers' names and configuration files, from the manifest.
    fn workers(&self) -> Vec<(String, PathBuf)> {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(self.out("synapse/workers.json")).expect("manifest"),
        )
        .expect("json");
        manifest["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .map(|w| {
                (
                    w["name"].as_str().expect("name").to_owned(),
                    self.out(w["config"].as_str().expect("config")),
                )
            })
            .collect()
    }
}

/// The real `python -m synapse.config` entry point accepts `files`.
fn entry_point_accepts(python: &Path, files: &[&Path]) {
    let mut c = Command::new(python);
    c.args(["-m", "synapse.config"]);
    for f in files {
        c.arg("-c").arg(f);
    }
    let out = c
        .arg("--no-secrets-in-config")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run synapse.config");
    assert!(
        out.status.success() && text(&out.stdout).contains("Config parses OK!"),
        "python -m synapse.config refused {files:?}: {}",
        text(&out.stderr)
    );
}

/// Every set of files accepted by Synapse's loaders and schema
/// ([`WORKER_PROBE`], one Python process); what Synapse read, per set.
fn accepted(python: &Path, schema: &Path, sets: &[Vec<&Path>]) -> Vec<Value> {
    let sets_json = serde_json::to_string(
        &sets
            .iter()
            .map(|s| {
                s.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>(),
    )
    .expect("json");
    let out = Command::new(python)
        .arg("-c")
        .arg(format!(
            "{}\n{WORKER_PROBE}",
            support::SYNAPSE_SCHEMA_PROBLEMS_PY
        ))
        .arg(schema)
        .arg(&sets_json)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the probe failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got: Vec<Value> = serde_json::from_slice(&out.stdout).expect("probe JSON");
    for g in &got {
        assert_eq!(
            g["problems"],
            serde_json::json!([]),
            "Synapse refused {}",
            g["files"]
        );
    }
    assert_eq!(got.len(), sets.len());
    got
}

#[test]
fn every_worker_of_the_medium_preset_is_accepted_by_synapse() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    let h = Host::render("workers-medium", "    preset: medium", "");
    let hs = h.out("synapse/homeserver.yaml");
    entry_point_accepts(&python, &[&hs]);
    let workers = h.workers();
    let mut sets = vec![vec![hs.as_path()]];
    sets.extend(workers.iter().map(|(_, f)| vec![hs.as_path(), f.as_path()]));
    let got_all = accepted(&python, &schema, &sets);
    let main = &got_all[0];
    let sockets = "/run/ospw-matrix-workers";
    assert_eq!(main["worker_app"], Value::Null);
    assert_eq!(main["instance_name"], "master");
    assert_eq!(main["replication_secret_set"], true);
    let listeners = main["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 2);
    assert_eq!(
        listeners[1]["path"],
        format!("{sockets}/main-replication.sock")
    );
    assert_eq!(
        listeners[1]["resources"],
        serde_json::json!(["replication"])
    );
    assert_eq!(listeners[1]["mode"], 0o600);
    assert_eq!(main["redis"]["enabled"], true);
    assert_eq!(main["redis"]["path"], "/run/redis-ospw-matrix/redis.sock");
    assert_eq!(main["redis"]["password_set"], false);
    assert_eq!(
        main["instance_map"]["main"]["path"],
        format!("{sockets}/main-replication.sock")
    );
    assert_eq!(
        main["writers"]["events"],
        serde_json::json!(["event_persister1"])
    );
    for stream in [
        "typing",
        "to_device",
        "account_data",
        "receipts",
        "presence",
        "push_rules",
    ] {
        assert_eq!(
            main["writers"][stream],
            serde_json::json!(["stream_writer1"]),
            "{stream}"
        );
    }
    assert_eq!(
        main["writers"]["device_lists"],
        serde_json::json!(["master"])
    );
    // Every duty Synapse allows to move has left the main process.
    for duty in [
        "run_background_tasks",
        "update_user_directory",
        "notify_appservices",
        "start_pushers",
        "can_load_media_repo",
    ] {
        assert_eq!(main[duty], false, "{duty} still on the main process");
    }

    let names: Vec<&str> = workers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "sync1",
            "sync2",
            "client1",
            "client2",
            "event_persister1",
            "stream_writer1",
            "media1",
            "background1"
        ]
    );
    for ((name, _), got) in workers.iter().zip(&got_all[1..]) {
        assert_eq!(got["instance_name"], name.as_str());
        assert_eq!(got["replication_secret_set"], true, "{name}");
        assert_eq!(
            got["federation_domain_whitelist"],
            serde_json::json!({}),
            "{name}"
        );
        assert_eq!(
            got["worker_log_config"],
            h.out(&format!("synapse/workers/{name}.log.yaml"))
                .display()
                .to_string()
        );
        let resources: Vec<Vec<String>> = got["worker_listeners"]
            .as_array()
            .expect("listeners")
            .iter()
            .map(|l| serde_json::from_value(l["resources"].clone()).expect("resources"))
            .collect();
        let (app, expected): (&str, Vec<Vec<&str>>) = match name.trim_end_matches(char::is_numeric)
        {
            "sync" | "client" => ("synapse.app.generic_worker", vec![vec!["client"]]),
            "event_persister" => ("synapse.app.generic_worker", vec![vec!["replication"]]),
            "stream_writer" => (
                "synapse.app.generic_worker",
                vec![vec!["client"], vec!["replication"]],
            ),
            "media" => ("synapse.app.media_repository", vec![vec!["media"]]),
            "background" => ("synapse.app.generic_worker", vec![vec!["health"]]),
            other => panic!("unexpected worker kind {other}"),
        };
        assert_eq!(got["worker_app"], app, "{name}");
        assert_eq!(resources, expected, "{name}");
        for l in got["worker_listeners"].as_array().expect("listeners") {
            let path = l["path"].as_str().expect("a Unix socket");
            assert!(path.starts_with(sockets), "{name}: {path}");
        }
        let duties = name == "background1";
        for duty in [
            "run_background_tasks",
            "update_user_directory",
            "notify_appservices",
            "start_pushers",
        ] {
            assert_eq!(got[duty], duties, "{name}: {duty}");
        }
        assert_eq!(got["can_load_media_repo"], name == "media1", "{name}");
    }
}

#[test]
fn small_preset_and_remote_workers_over_tcp_are_accepted_by_synapse() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    let small = Host::render("workers-small", "    preset: small", "");
    let hs = small.out("synapse/homeserver.yaml");
    let workers = small.workers();
    let names: Vec<&str> = workers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sync1"]);
    let mut sets = vec![vec![hs.as_path()]];
    sets.extend(workers.iter().map(|(_, f)| vec![hs.as_path(), f.as_path()]));
    let got_all = accepted(&python, &schema, &sets);
    // Without a background or client worker, the sync worker takes the duties.
    assert_eq!(got_all[0]["run_background_tasks"], false);
    assert_eq!(got_all[0]["start_pushers"], false);
    assert_eq!(got_all[1]["run_background_tasks"], true);
    assert_eq!(got_all[1]["start_pushers"], true);
    assert_eq!(got_all[1]["update_user_directory"], true);

    let remote = Host::render(
        "workers-remote",
        "    sync: 2
    client: 1
    event_persister: 2
    redis:
      tcp: {address: 10.0.0.1, port: 6379, password_file: /run/keys/redis}
    remote:
      address: 10.0.0.1
      first_port: 9093
      hosts:
        - name: workers-b
          address: 10.0.0.2
          first_port: 8100
          workers: [sync2, event_persister2]",
        "",
    );
    // Synapse reads redis.password_path at load time: give it the file.
    let hs = remote.out("synapse/homeserver.yaml");
    let text_hs = std::fs::read_to_string(&hs).expect("read");
    let pw = remote.tmp.path().join("redis-password");
    std::fs::write(&pw, "redis-password-123\n").expect("write");
    std::fs::write(
        &hs,
        text_hs.replace("/run/keys/redis", pw.to_str().expect("utf8")),
    )
    .expect("write");
    let workers = remote.workers();
    let mut sets = vec![vec![hs.as_path()]];
    sets.extend(workers.iter().map(|(_, f)| vec![hs.as_path(), f.as_path()]));
    let got_all = accepted(&python, &schema, &sets);
    let main = &got_all[0];
    assert_eq!(main["redis"]["host"], "10.0.0.1");
    assert_eq!(main["redis"]["password_set"], true);
    assert_eq!(
        main["instance_map"]["main"],
        serde_json::json!({"host": "10.0.0.1", "port": 9093})
    );
    assert_eq!(
        main["instance_map"]["event_persister1"],
        serde_json::json!({"host": "10.0.0.1", "port": 9094})
    );
    assert_eq!(
        main["instance_map"]["event_persister2"],
        serde_json::json!({"host": "10.0.0.2", "port": 8101})
    );
    assert_eq!(
        main["listeners"][1]["bind_addresses"],
        serde_json::json!(["10.0.0.1"])
    );
    for ((name, _), got) in workers.iter().zip(&got_all[1..]) {
        let listeners = got["worker_listeners"].as_array().expect("listeners");
        match name.as_str() {
            "sync2" => {
                assert_eq!(
                    listeners[0]["bind_addresses"],
                    serde_json::json!(["10.0.0.2"])
                );
                assert_eq!(listeners[0]["port"], 8100);
            }
            "event_persister2" => assert_eq!(listeners[0]["port"], 8101),
            "event_persister1" => assert_eq!(
                listeners[0]["bind_addresses"],
                serde_json::json!(["10.0.0.1"])
            ),
            _ => assert!(
                listeners[0]["path"].is_string(),
                "{name}: local, on a socket"
            ),
        }
    }
}

#[test]
fn each_worker_reads_the_secrets_from_its_own_credentials_directory() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    let h = Host::render(
        "workers-credentials",
        "    preset: small\n    credentials_dir: DIR/credentials/{name}",
        "",
    );
    let hs = h.out("synapse/homeserver.yaml");
    accepted(&python, &schema, &[vec![hs.as_path()]]);
    // Each worker's own copy of the secrets (as systemd's LoadCredential
    // gives each unit), and the shared directory gone: the workers load
    // only if they read their own.
    let workers = h.workers();
    let shared = h.tmp.path().join("secrets");
    for (name, _) in &workers {
        let own = h.tmp.path().join("credentials").join(name);
        std::fs::create_dir_all(&own).expect("mkdir");
        for f in std::fs::read_dir(&shared).expect("secrets").flatten() {
            std::fs::copy(f.path(), own.join(f.file_name())).expect("copy");
        }
    }
    std::fs::remove_dir_all(&shared).expect("remove the shared secrets");
    let sets: Vec<Vec<&Path>> = workers
        .iter()
        .map(|(_, f)| vec![hs.as_path(), f.as_path()])
        .collect();
    let got = accepted(&python, &schema, &sets);
    assert!(got.iter().all(|g| g["replication_secret_set"] == true));
    // The main process, which has no copy, no longer loads.
    let out = Command::new(&python)
        .args(["-m", "synapse.config", "-c"])
        .arg(&hs)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "the main process loaded without its secrets"
    );
}

#[test]
fn with_metrics_each_worker_has_a_loopback_metrics_listener() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    let h = Host::render(
        "workers-metrics",
        "    sync: 1\n    client: 1",
        "metrics: {enable: true, synapse_port: 9100}\n",
    );
    let hs = h.out("synapse/homeserver.yaml");
    let workers = h.workers();
    let mut sets = vec![vec![hs.as_path()]];
    sets.extend(workers.iter().map(|(_, f)| vec![hs.as_path(), f.as_path()]));
    let got = accepted(&python, &schema, &sets);
    for (i, g) in got.iter().enumerate().skip(1) {
        let metrics: Vec<&Value> = g["worker_listeners"]
            .as_array()
            .expect("listeners")
            .iter()
            .filter(|l| l["type"] == "metrics")
            .collect();
        assert_eq!(metrics.len(), 1, "{}", g["files"]);
        assert_eq!(metrics[0]["port"], 9100 + i, "{}", g["files"]);
        assert_eq!(
            metrics[0]["bind_addresses"],
            serde_json::json!(["127.0.0.1"])
        );
    }
}

#[test]
fn worker_mistakes_are_refused_naming_the_field() {
    let tmp = TempDir::new("workers-bad");
    for (workers, fields) in [
        ("    sync: 99", &["synapse.workers.sync"][..]),
        ("    preset: large", &["synapse.workers.preset"]),
        (
            "    preset: small\n    redis:\n      tcp: {address: 127.0.0.1, port: 6379, password_file: /p}",
            &["synapse.workers.redis.tcp"],
        ),
        ("    {}", &["synapse.workers"]),
    ] {
        let host = tmp.path().join("host.yaml");
        std::fs::write(
            &host,
            format!("{EXAMPLE_NAMES}synapse:\n  workers:\n{workers}\n"),
        )
        .expect("write");
        let out_dir = tmp.path().join("out");
        let out = render_to(Some(&host), &out_dir);
        assert_fails_naming(&out, fields);
        assert!(!out_dir.exists(), "something was written for {workers}");
    }
}
