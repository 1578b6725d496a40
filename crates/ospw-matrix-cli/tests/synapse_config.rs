//! The rendered `homeserver.yaml` against Synapse itself: its own loader
//! (`python -m synapse.config`), its published JSON schema, and its signing
//! key reader. Secrets come from `ospw-matrix secrets init`.
//!
//! Needs Synapse's virtual environment (`OSPW_SYNAPSE_PYTHON`) and the
//! schema (`support::require_synapse_schema`); under CI a missing one fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ospw_matrix::secrets::SigningKey;
use serde_json::{json, Value};
use support::{
    assert_fails_naming, assert_renders, render_to, require, run, synapse_python, TempDir,
    EXAMPLE_NAMES,
};

/// Loads the configuration with Synapse's `HomeServerConfig` (the loader
/// `python -m synapse.config` uses, with inline secrets disallowed) and
/// prints, as JSON, what Synapse made of the keys this product sets.
const PROBE: &str = r#"
import sys, json
from synapse.config.homeserver import HomeServerConfig
c = HomeServerConfig.load_config("", ["-c", sys.argv[1], "--no-secrets-in-config"])
listeners = []
for l in c.server.listeners:
    d = {"type": l.type}
    for a in ("port", "bind_addresses", "path", "mode"):
        if hasattr(l, a):
            d[a] = getattr(l, a)
    if l.http_options is not None:
        d["resources"] = [n for r in l.http_options.resources for n in r.names]
        d["x_forwarded"] = l.http_options.x_forwarded
    listeners.append(d)
print(json.dumps({
    "server_name": c.server.server_name,
    "public_baseurl": c.server.public_baseurl,
    "federation_domain_whitelist": c.federation.federation_domain_whitelist,
    "key_servers": len(c.key.key_servers),
    "allow_profile_lookup_over_federation": c.federation.allow_profile_lookup_over_federation,
    "allow_public_rooms_over_federation": c.server.allow_public_rooms_over_federation,
    "serve_server_wellknown": c.server.serve_server_wellknown,
    "enable_registration": c.registration.enable_registration,
    "allow_guest_access": c.registration.allow_guest_access,
    "registration_shared_secret": c.registration.registration_shared_secret,
    "macaroon_secret_key": c.key.macaroon_secret_key.decode(),
    "form_secret": c.key.form_secret,
    "turn_shared_secret": c.voip.turn_shared_secret,
    "turn_uris": c.voip.turn_uris,
    "turn_user_lifetime": c.voip.turn_user_lifetime,
    "turn_allow_guests": c.voip.turn_allow_guests,
    "max_upload_size": c.media.max_upload_size,
    "media_store_path": c.media.media_store_path,
    "url_preview_enabled": c.media.url_preview_enabled,
    "signing_key": [k.alg + ":" + k.version for k in c.key.signing_key],
    "listeners": listeners,
    "report_stats": c.metrics.report_stats,
    "enable_metrics": c.metrics.enable_metrics,
    "presence": c.server.presence_enabled,
    "track_presence": c.server.track_presence,
    "encryption": sorted(c.room.encryption_enabled_by_default_for_room_presets),
    "log_config": c.logging.log_config,
    "db": c.database.databases[0].config.get("args"),
    "db_engine": c.database.databases[0].config.get("name"),
}))
"#;

/// Reads the signing key with signedjson (what Synapse uses), signs a JSON
/// object, verifies the signature, and prints the key ID, the verify key and
/// the signature.
const SIGNING_KEY_CHECK: &str = r#"
import sys, json
from signedjson.key import read_signing_keys, get_verify_key, encode_verify_key_base64
from signedjson.sign import sign_json, verify_signed_json
from synapse.config.key import KeyConfig
keys = read_signing_keys(open(sys.argv[1]))
assert len(keys) == 1, keys
key = keys[0]
signed = sign_json({"a": 1}, "example.org", key)
verify_signed_json(signed, "example.org", get_verify_key(key))
# Synapse's own reader of signing_key_path, too.
via_synapse = KeyConfig(None).read_signing_keys(sys.argv[1], "signing_key")
print(json.dumps({
    "key_id": key.alg + ":" + key.version,
    "synapse_key_id": via_synapse[0].alg + ":" + via_synapse[0].version,
    "verify_key": encode_verify_key_base64(get_verify_key(key)),
    "signature": signed["signatures"]["example.org"][key.alg + ":" + key.version],
}))
"#;

/// Loads the logging configuration with Python's `logging.config` (Synapse
/// importable), then logs below and at the configured level.
const LOG_CHECK: &str = r#"
import sys, yaml, logging, logging.config
logging.config.dictConfig(yaml.safe_load(open(sys.argv[1])))
logging.getLogger("synapse.probe").info("quiet-info-line")
logging.getLogger("synapse.probe").warning("loud-warning-line")
"#;

fn python() -> Option<PathBuf> {
    require("Synapse's Python (OSPW_SYNAPSE_PYTHON)", synapse_python())
}

fn schema_file() -> Option<PathBuf> {
    support::require_synapse_schema_file()
}

fn py(python: &Path, script: &str, args: &[&Path]) -> std::process::Output {
    Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        // Out of any directory whose modules could shadow the standard library.
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A rendered host: secrets from `secrets init`, the host description
/// written here, then `render`.
struct Rendered {
    tmp: TempDir,
}

impl Rendered {
    fn new(tag: &str, host_yaml: impl Fn(&Path) -> String) -> Rendered {
        let tmp = TempDir::new(tag);
        let secrets = tmp.path().join("secrets");
        let out = run(&["secrets", "init", "--dir", secrets.to_str().expect("utf8")]);
        assert!(out.status.success(), "secrets init: {out:?}");
        let host = tmp.path().join("host.yaml");
        std::fs::write(&host, host_yaml(tmp.path())).expect("write host");
        assert_renders(Some(&host), &tmp.path().join("out"));
        Rendered { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn homeserver(&self) -> PathBuf {
        self.path("out/synapse/homeserver.yaml")
    }

    fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("secrets/{name}")))
            .expect("secret")
            .trim()
            .to_owned()
    }
}

fn example_host(dir: &Path) -> String {
    format!(
        "{EXAMPLE_NAMES}synapse:
  listen:
    tcp: {{address: 127.0.0.1, port: 8008}}
  data_dir: {dir}/data
  max_upload_size: 100M
turn:
  host: turn.example.org
  credential_lifetime: 1h
secrets:
  dir: {dir}/secrets
",
        dir = dir.display()
    )
}

fn variant_host(dir: &Path) -> String {
    format!(
        "base_domain: example.org
server_name: matrix.example.org
matrix_host: matrix.example.org
element_host: chat.example.org
synapse:
  listen:
    unix: {{path: {dir}/synapse.sock}}
  data_dir: {dir}/data
  media_store_path: {dir}/media
  max_upload_size: 2G
  presence: false
  url_previews: true
  encryption_by_default: invite
  log_level: DEBUG
  settings:
    auto_join_rooms: ['#lobby:matrix.example.org']
    user_directory: {{search_all_users: true}}
    max_image_pixels: 64M
    presence: {{enabled: false, include_offline_users_on_sync: false}}
turn:
  port: 3479
  tls: {{port: 5350, cert_file: /etc/ssl/turn.pem, key_file: /etc/ssl/turn.key}}
  credential_lifetime: 2d
proxy:
  https_port: 8443
secrets:
  dir: {dir}/secrets
",
        dir = dir.display()
    )
}

/// Runs the probe and returns what Synapse read.
fn synapse_reads(python: &Path, rendered: &Rendered) -> Value {
    let out = py(python, PROBE, &[&rendered.homeserver()]);
    assert!(
        out.status.success(),
        "Synapse refused the configuration:\n{}\n{}",
        text(&out.stderr),
        std::fs::read_to_string(rendered.homeserver()).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

fn loader_accepts(python: &Path, rendered: &Rendered) {
    let out = Command::new(python)
        .args(["-m", "synapse.config", "-c"])
        .arg(rendered.homeserver())
        .arg("--no-secrets-in-config")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run synapse.config");
    assert!(
        out.status.success(),
        "python -m synapse.config refused it: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Config parses OK!"));
}

fn schema_accepts(python: &Path, schema: &Path, rendered: &Rendered) {
    let problems = support::synapse_schema_problems(python, schema, &rendered.homeserver());
    assert!(
        problems.is_empty(),
        "not valid against Synapse's schema:\n{}",
        problems.join("\n")
    );
}

/// Synapse's loader, its schema (in Python and in Rust) all accept the
/// rendered configuration; returns what Synapse read.
fn accepted_by_synapse(python: &Path, schema: &Path, rendered: &Rendered) -> Value {
    loader_accepts(python, rendered);
    schema_accepts(python, schema, rendered);
    top_level_keys_are_in_schema(schema, rendered);
    synapse_reads(python, rendered)
}

/// (c), in Rust: every top-level key written is a property of the schema.
fn top_level_keys_are_in_schema(schema: &Path, rendered: &Rendered) {
    let schema: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(schema).expect("schema")).expect("yaml");
    let props = schema["properties"].as_mapping().expect("properties");
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rendered.homeserver()).expect("read"))
            .expect("yaml");
    let keys: Vec<&str> = config
        .as_mapping()
        .expect("mapping")
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        assert!(props.contains_key(key), "{key} is not in Synapse's schema");
    }
}

#[test]
fn example_is_accepted_by_synapse_and_its_schema() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    let r = Rendered::new("synapse-example", example_host);
    let got = accepted_by_synapse(&python, &schema, &r);
    let dir = r.tmp.path().display().to_string();
    let key =
        SigningKey::parse(&std::fs::read_to_string(r.path("secrets/signing_key")).expect("key"))
            .expect("parses");
    assert_eq!(got["server_name"], "example.org");
    assert_eq!(got["public_baseurl"], "https://matrix.example.org/");
    assert_eq!(got["federation_domain_whitelist"], json!({}));
    assert_eq!(got["key_servers"], 0);
    assert_eq!(got["allow_profile_lookup_over_federation"], false);
    assert_eq!(got["allow_public_rooms_over_federation"], false);
    assert_eq!(got["serve_server_wellknown"], false);
    assert_eq!(got["enable_registration"], false);
    assert_eq!(got["allow_guest_access"], false);
    assert_eq!(got["report_stats"], false);
    assert_eq!(got["enable_metrics"], false);
    assert_eq!(got["turn_allow_guests"], false);
    // Secrets are read from the files secrets init wrote.
    for (field, file) in [
        ("registration_shared_secret", "registration_shared_secret"),
        ("macaroon_secret_key", "macaroon_secret_key"),
        ("form_secret", "form_secret"),
        ("turn_shared_secret", "turn_shared_secret"),
    ] {
        assert_eq!(got[field], r.secret(file), "{field}");
    }
    assert_eq!(got["signing_key"], json!([key.key_id()]));
    assert_eq!(
        got["turn_uris"],
        json!([
            "turn:turn.example.org:3478?transport=udp",
            "turn:turn.example.org:3478?transport=tcp"
        ])
    );
    assert_eq!(got["turn_user_lifetime"], 3_600_000);
    assert_eq!(got["max_upload_size"], 100 * 1024 * 1024);
    assert_eq!(got["media_store_path"], format!("{dir}/data/media_store"));
    assert_eq!(got["url_preview_enabled"], false);
    assert_eq!(got["presence"], true);
    assert_eq!(got["track_presence"], true);
    assert_eq!(
        got["encryption"],
        json!(["private_chat", "public_chat", "trusted_private_chat"])
    );
    assert_eq!(got["log_config"], format!("{dir}/out/synapse/log.yaml"));
    assert_eq!(got["db_engine"], "psycopg2");
    assert_eq!(
        got["db"],
        json!({"user": "synapse", "database": "synapse", "host": "/run/postgresql",
               "port": 5432, "cp_min": 5, "cp_max": 10})
    );
    assert_eq!(
        got["listeners"],
        json!([{"type": "http", "port": 8008, "bind_addresses": ["127.0.0.1"],
                "resources": ["client"], "x_forwarded": true}])
    );

    // The logging configuration loads and filters at the host's level (WARNING).
    let out = py(&python, LOG_CHECK, &[&r.path("out/synapse/log.yaml")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("loud-warning-line"), "{stderr}");
    assert!(!stderr.contains("quiet-info-line"), "{stderr}");
}

#[test]
fn metrics_listener_is_accepted_by_synapse_and_its_schema() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    let r = Rendered::new("synapse-metrics", |dir| {
        format!(
            "{}metrics:\n  enable: true\n  synapse_port: 9100\n",
            example_host(dir)
        )
    });
    let got = accepted_by_synapse(&python, &schema, &r);
    assert_eq!(got["enable_metrics"], true);
    assert_eq!(
        got["listeners"],
        json!([
            {"type": "http", "port": 8008, "bind_addresses": ["127.0.0.1"],
             "resources": ["client"], "x_forwarded": true},
            {"type": "metrics", "port": 9100, "bind_addresses": ["127.0.0.1"]}
        ])
    );
}

#[test]
fn variant_is_accepted_by_synapse_and_its_schema() {
    let (Some(python), Some(schema)) = (python(), schema_file()) else {
        return;
    };
    // URL previews make Synapse check its url-preview extra (lxml,
    // beautifulsoup4): matrix-synapse[url-preview].
    let extra = Command::new(&python)
        .args([
            "-c",
            "from synapse.util.check_dependencies import check_requirements; check_requirements('url-preview')",
        ])
        .current_dir(std::env::temp_dir())
        .status()
        .is_ok_and(|s| s.success());
    if require(
        "Synapse's url-preview extra (pip install 'matrix-synapse[url-preview]')",
        extra.then(PathBuf::new),
    )
    .is_none()
    {
        return;
    }
    let r = Rendered::new("synapse-variant", variant_host);
    let got = accepted_by_synapse(&python, &schema, &r);
    let dir = r.tmp.path().display().to_string();
    assert_eq!(got["server_name"], "matrix.example.org");
    assert_eq!(got["public_baseurl"], "https://matrix.example.org:8443/");
    assert_eq!(
        got["listeners"],
        json!([{"type": "http", "path": format!("{dir}/synapse.sock"), "mode": 0o660,
                "resources": ["client"], "x_forwarded": true}])
    );
    assert_eq!(
        got["turn_uris"],
        json!([
            "turn:matrix.example.org:3479?transport=udp",
            "turn:matrix.example.org:3479?transport=tcp",
            "turns:matrix.example.org:5350?transport=tcp"
        ])
    );
    assert_eq!(got["turn_user_lifetime"], 2 * 86_400_000);
    assert_eq!(got["max_upload_size"], 2u64 << 30);
    assert_eq!(got["media_store_path"], format!("{dir}/media"));
    assert_eq!(got["url_preview_enabled"], true);
    // The settings' presence section restates the host's `presence: false`
    // (one that contradicts it is refused: render's tests).
    assert_eq!(got["presence"], false);
    assert_eq!(got["track_presence"], false);
    assert_eq!(
        got["encryption"],
        json!(["private_chat", "trusted_private_chat"])
    );

    let yaml = std::fs::read_to_string(r.homeserver()).expect("read");
    let config: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(
        config["auto_join_rooms"],
        serde_yaml::from_str::<serde_yaml::Value>("['#lobby:matrix.example.org']").expect("v")
    );
    assert_eq!(config["user_directory"]["search_all_users"], true);
    assert_eq!(config["max_image_pixels"], "64M");
    let preview = config["url_preview_ip_range_blacklist"]
        .as_sequence()
        .expect("blocklist");
    for range in [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "fc00::/7",
        "169.254.0.0/16",
        "100.64.0.0/10",
    ] {
        assert!(preview.iter().any(|v| v == range), "{range}");
    }

    // DEBUG logs Synapse but not SQL statements below INFO.
    let log: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(r.path("out/synapse/log.yaml")).expect("log"),
    )
    .expect("yaml");
    assert_eq!(log["root"]["level"], "DEBUG");
    assert_eq!(log["loggers"]["synapse.storage.SQL"]["level"], "INFO");
    let out = py(&python, LOG_CHECK, &[&r.path("out/synapse/log.yaml")]);
    assert!(text(&out.stderr).contains("quiet-info-line"));
}

#[test]
fn generated_signing_keys_are_read_by_synapse() {
    let Some(python) = python() else {
        return;
    };
    let tmp = TempDir::new("synapse-keys");
    // One from keygen, one from secrets init.
    let out = run(&["keygen"]);
    assert!(out.status.success(), "{out:?}");
    let keygen_file = tmp.path().join("keygen.key");
    std::fs::write(&keygen_file, &out.stdout).expect("write");
    let dir = tmp.path().join("secrets");
    assert!(
        run(&["secrets", "init", "--dir", dir.to_str().expect("utf8")])
            .status
            .success()
    );
    for file in [keygen_file, dir.join("signing_key")] {
        let key =
            SigningKey::parse(&std::fs::read_to_string(&file).expect("read")).expect("parses");
        let out = py(&python, SIGNING_KEY_CHECK, &[&file]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(got["key_id"], key.key_id());
        assert_eq!(got["synapse_key_id"], key.key_id());
        // The same public key and the same (deterministic) ed25519
        // signature over the canonical JSON `{"a":1}` on both sides.
        assert_eq!(got["verify_key"], key.verify_key_base64());
        assert_eq!(got["signature"], key.sign_base64(br#"{"a":1}"#));
    }
}

#[test]
fn settings_that_break_privacy_are_refused_naming_the_setting() {
    let tmp = TempDir::new("synapse-refuse");
    let host = tmp.path().join("host.yaml");
    let yaml = example_host(tmp.path()).replace(
        "  max_upload_size: 100M\n",
        "  max_upload_size: 100M\n  settings:\n    allow_guest_access: true\n    trusted_key_servers: [{server_name: matrix.org}]\n",
    );
    std::fs::write(&host, yaml).expect("write");
    let out = render_to(Some(&host), &tmp.path().join("out"));
    assert_fails_naming(
        &out,
        &[
            "synapse.settings.allow_guest_access",
            "synapse.settings.trusted_key_servers",
        ],
    );
    assert!(!tmp.path().join("out").exists(), "nothing written");
}

/// A configuration Synapse generates itself (`--generate-config`) loads
/// into the model, round-trips unchanged as PyYAML reads it, is flagged for
/// every way it is not private, and its signing key file is byte for byte
/// what this crate's parser and writer produce.
#[test]
fn synapse_generated_config_round_trips_and_is_flagged() {
    use ospw_matrix::components::synapse::HomeserverConfig;
    let Some(python) = python() else {
        return;
    };
    let tmp = TempDir::new("synapse-generated");
    let hs = tmp.path().join("homeserver.yaml");
    let out = Command::new(&python)
        .args([
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            "example.org",
            "--report-stats=no",
            "--generate-config",
            "--config-path",
        ])
        .arg(&hs)
        .current_dir(tmp.path())
        .output()
        .expect("generate");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let config = HomeserverConfig::from_yaml_file(&hs).expect("loads");
    let written = tmp.path().join("written.yaml");
    std::fs::write(&written, config.to_yaml_string().expect("emits")).expect("write");
    let same = py(
        &python,
        "import sys, yaml\na, b = (yaml.safe_load(open(p)) for p in sys.argv[1:])\nprint(a == b)\nsys.exit(0 if a == b else 1)",
        &[&hs, &written],
    );
    assert!(
        same.status.success(),
        "the round trip changed the configuration: {}{}",
        text(&same.stdout),
        text(&same.stderr)
    );

    let mut paths: Vec<String> = config
        .privacy_violations()
        .errors
        .into_iter()
        .map(|e| e.path)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "allow_profile_lookup_over_federation",
            "federation_domain_whitelist",
            "form_secret",
            "listeners[0].resources[0].names[1]",
            "macaroon_secret_key",
            "registration_shared_secret",
            "trusted_key_servers",
            "turn_allow_guests",
        ]
    );

    let key_file = config
        .signing_key_path
        .as_deref()
        .expect("signing_key_path");
    let synapse_text = std::fs::read_to_string(key_file).expect("key");
    let key = SigningKey::parse(&synapse_text).expect("parses Synapse's key");
    assert_eq!(
        key.to_file_string(),
        synapse_text,
        "same format, byte for byte"
    );
}
