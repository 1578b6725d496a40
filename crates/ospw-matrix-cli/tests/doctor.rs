//! `ospw-matrix doctor` without a server: the committed report schema is
//! current, a server that is not running is reported check by check (exit
//! 1, every failure with a fix, the JSON valid against the schema), and
//! bad arguments are refused naming the option. The doctor against the
//! real stack is `tests/acceptance/tests/doctor.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::TempDir;

fn committed_report_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/doctor-report.schema.json")
}

#[test]
fn committed_report_schema_is_current() {
    let out = support::run(&["schema", "--doctor-report"]);
    assert!(out.status.success(), "{}", support::stderr_of(&out));
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(committed_report_schema()).expect("read schema");
    assert!(
        generated == committed,
        "schema/doctor-report.schema.json is stale: run `cargo run -q -p ospw-matrix-cli -- schema --doctor-report > schema/doctor-report.schema.json`"
    );
}

/// A host description on free loopback ports where nothing runs.
fn stopped_host(dir: &TempDir) -> PathBuf {
    let secrets = dir.path().join("secrets");
    let out = support::run(&["secrets", "init", "--dir", secrets.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", support::stderr_of(&out));
    let host = dir.path().join("host.yaml");
    std::fs::write(
        &host,
        format!(
            "{}synapse:\n  listen: {{tcp: {{address: 127.0.0.1, port: {}}}}}\n  database: {{socket_dir: {}, port: {}}}\n  data_dir: {}\nturn:\n  listening_ips: [127.0.0.1]\n  port: {}\n  relay_ports: \"{}-{}\"\nproxy:\n  http_port: {}\n  https_port: {}\n  bind: [127.0.0.1]\nsecrets:\n  dir: {}\n",
            support::EXAMPLE_NAMES,
            support::free_port(),
            dir.path().display(),
            support::free_port(),
            dir.path().join("synapse").display(),
            support::free_port(),
            40000,
            40010,
            support::free_port(),
            support::free_port(),
            secrets.display()
        ),
    )
    .expect("write host");
    host
}

fn doctor(host: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = support::bin();
    c.args(["doctor", "--timeout", "2", "--config"]).arg(host);
    for name in ["example.org", "matrix.example.org", "chat.example.org"] {
        c.args(["--resolve", &format!("{name}:127.0.0.1")]);
    }
    c.args(extra).output().expect("run doctor")
}

#[test]
fn a_stopped_server_fails_check_by_check_with_fixes() {
    let dir = TempDir::new("doctor-stopped");
    let host = stopped_host(&dir);
    let out = doctor(&host, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(support::stderr_of(&out).contains("checks failed"));
    for line in [
        "  ✓ dns.resolves [matrix.example.org]: 127.0.0.1 (this host)",
        "  ✗ tls.certificate [matrix.example.org]: no TLS connection",
        "  ✗ services.listening [synapse]:",
        "  ✗ services.listening [postgresql]:",
        "  ✗ services.listening [coturn]:",
        "  ✗ services.listening [caddy]:",
        "  ✗ turn.credentials:",
        "  ✗ synapse.health:",
        "  ✗ database.collation:",
        "  ✓ secrets.modes:",
        "  ✗ secrets.signing_key:",
        "  ✓ disk.free [media store]:",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    // Every failure comes with a fix on the next line.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("  ✗ ") {
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|n| n.starts_with("      fix: ")),
                "no fix after {l:?}"
            );
        }
    }
    // No secret value is printed.
    for secret in [
        "registration_shared_secret",
        "turn_shared_secret",
        "macaroon_secret_key",
    ] {
        let value = std::fs::read_to_string(dir.path().join("secrets").join(secret)).expect("read");
        assert!(!text.contains(value.trim()), "{secret} printed");
    }
}

#[test]
fn a_unit_that_is_not_active_fails() {
    let Some(_) = support::require("systemctl (systemd)", support::which("systemctl")) else {
        return;
    };
    let dir = TempDir::new("doctor-systemd");
    let host = stopped_host(&dir);
    let out = doctor(
        &host,
        &["--systemd-unit", "ospw-matrix-no-such-unit.service"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("  ✗ services.systemd [ospw-matrix-no-such-unit.service]: is "),
        "{text}"
    );
}

#[test]
fn the_json_report_validates_against_the_committed_schema() {
    let Some(python) = support::require(
        "Synapse's venv (python with jsonschema)",
        support::synapse_python(),
    ) else {
        return;
    };
    let dir = TempDir::new("doctor-json");
    let host = stopped_host(&dir);
    let out = doctor(&host, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["format"], "ospw-matrix-doctor/1");
    assert_eq!(report["ok"], false);
    let failed = report["counts"]["failed"].as_u64().expect("counts");
    assert!(failed >= 10, "{failed}");
    let file = dir.path().join("report.json");
    std::fs::write(&file, &out.stdout).expect("write");
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
report = json.load(open(sys.argv[2]))
errors = list(v.iter_errors(report))
assert not errors, errors
bad = dict(report, checks=[dict(report["checks"][0], status="maybe")])
assert list(v.iter_errors(bad)), "an unknown status must be rejected"
bad = dict(report, checks=[dict(report["checks"][0], id="tls.whatever")])
assert list(v.iter_errors(bad)), "an unknown check id must be rejected"
print("ok")
"#;
    let check = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(committed_report_schema())
        .arg(&file)
        .output()
        .expect("run python");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn bad_arguments_are_refused_naming_the_option() {
    let dir = TempDir::new("doctor-args");
    let host = stopped_host(&dir);
    for (extra, needles) in [
        (
            vec!["--resolve", "matrix.example.org"],
            vec!["--resolve", "NAME:ADDR"],
        ),
        (
            vec!["--resolve", "matrix.example.org:not-an-address"],
            vec!["--resolve", "not-an-address", "not an IP address"],
        ),
        (
            vec!["--ca-cert", "/nonexistent/ca.pem"],
            vec!["--ca-cert", "/nonexistent/ca.pem"],
        ),
        (
            vec!["--backup-max-age", "two days"],
            vec!["--backup-max-age"],
        ),
    ] {
        let out = doctor(&host, &extra);
        support::assert_fails_naming(&out, &needles);
        assert!(out.stdout.is_empty(), "a report was printed for {extra:?}");
    }
    let empty_ca = dir.path().join("empty.pem");
    std::fs::write(&empty_ca, "no certificate here\n").expect("write");
    let out = doctor(&host, &["--ca-cert", empty_ca.to_str().expect("utf8")]);
    support::assert_fails_naming(&out, &["empty.pem", "PEM"]);
    // An invalid host description is refused naming the field.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "{}metrics: {{enable: true, caddy_port: 0}}\n",
            support::EXAMPLE_NAMES
        ),
    )
    .expect("write");
    let out = doctor(&bad, &[]);
    support::assert_fails_naming(&out, &["metrics.caddy_port"]);
}
