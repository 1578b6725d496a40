//! The Prometheus alert rules in docs/monitoring.md are what Prometheus
//! reads: `promtool check rules` accepts every rules block, and `promtool
//! test rules` shows each alert firing on a broken server (and only then):
//! a service down, a certificate close to expiry, a disk filling up, the
//! doctor's unit failed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::TempDir;

/// The docs page (outside the package's sources: skipped without it,
/// failing under CI).
fn docs() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/monitoring.md");
    let found = path.is_file().then(|| path.clone());
    support::require("docs/monitoring.md (the repository's docs)", found)
        .map(|p| std::fs::read_to_string(p).expect("read docs/monitoring.md"))
}

/// Every fenced ```yaml block of `text` that holds rule groups.
fn rule_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("\n```").expect("unterminated block");
        if body[..end].starts_with("groups:") {
            out.push(body[..=end].to_owned());
        }
        rest = &body[end..];
    }
    out
}

fn promtool() -> Option<PathBuf> {
    support::require(
        "promtool (Debian package prometheus)",
        support::which("promtool"),
    )
}

fn run(promtool: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_docs_hold_the_three_alerts_and_the_doctor_rule() {
    let Some(text) = docs() else {
        return;
    };
    let blocks = rule_blocks(&text);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    for alert in [
        "OspwMatrixServiceDown",
        "OspwMatrixCertificateExpiresSoon",
        "OspwMatrixDiskFilling",
    ] {
        assert!(blocks[0].contains(&format!("alert: {alert}\n")), "{alert}");
    }
    assert_eq!(blocks[0].matches("- alert: ").count(), 3);
    assert!(blocks[1].contains("alert: OspwMatrixDoctorFailed\n"));
}

#[test]
fn promtool_accepts_the_rules() {
    let (Some(text), Some(promtool)) = (docs(), promtool()) else {
        return;
    };
    let dir = TempDir::new("monitoring-check");
    for (i, block) in rule_blocks(&text).iter().enumerate() {
        let file = dir.path().join(format!("rules-{i}.yml"));
        std::fs::write(&file, block).expect("write");
        let (ok, out) = run(
            &promtool,
            &["check", "rules", file.to_str().expect("utf8")],
            dir.path(),
        );
        assert!(ok, "block {i}: {out}");
    }
    // The check can fail: a broken expression is refused.
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, rule_blocks(&text)[0].replace("== 0 or", "== or")).expect("write");
    let (ok, _) = run(&promtool, &["check", "rules", "broken.yml"], dir.path());
    assert!(!ok, "promtool accepted a broken expression");
}

/// Unit tests for the rules (promtool's format): each alert fires on the
/// broken series, after its `for`, and not on the healthy ones.
const TESTS: &str = r#"
rule_files:
  - rules-0.yml
  - rules-1.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # Synapse stops answering after 2 minutes; Caddy keeps answering.
      - series: 'up{job="ospw-matrix-synapse", instance="127.0.0.1:9000"}'
        values: '1 1 0x200'
      - series: 'up{job="ospw-matrix-caddy", instance="127.0.0.1:9180"}'
        values: '1x200'
      # The public Element site answers; the Matrix host's probe fails.
      - series: 'probe_success{job="ospw-matrix-https", instance="https://chat.example.org/"}'
        values: '1x200'
      - series: 'probe_success{job="ospw-matrix-https", instance="https://matrix.example.org/_matrix/client/versions"}'
        values: '1x100 0x100'
      # Certificates expiring 10 days and 60 days after the epoch (the
      # test's clock starts there).
      - series: 'probe_ssl_earliest_cert_expiry{job="ospw-matrix-https", instance="https://chat.example.org/"}'
        values: '864000x200'
      - series: 'probe_ssl_earliest_cert_expiry{job="ospw-matrix-https", instance="https://matrix.example.org/_matrix/client/versions"}'
        values: '5184000x200'
      # /var/lib at 5 % free, / at 50 %, a tmpfs at 1 % (ignored).
      - series: 'node_filesystem_avail_bytes{mountpoint="/var/lib", fstype="ext4", device="/dev/vdb"}'
        values: '5x200'
      - series: 'node_filesystem_size_bytes{mountpoint="/var/lib", fstype="ext4", device="/dev/vdb"}'
        values: '100x200'
      - series: 'node_filesystem_avail_bytes{mountpoint="/", fstype="ext4", device="/dev/vda"}'
        values: '50x200'
      - series: 'node_filesystem_size_bytes{mountpoint="/", fstype="ext4", device="/dev/vda"}'
        values: '100x200'
      - series: 'node_filesystem_avail_bytes{mountpoint="/run", fstype="tmpfs", device="tmpfs"}'
        values: '1x200'
      - series: 'node_filesystem_size_bytes{mountpoint="/run", fstype="tmpfs", device="tmpfs"}'
        values: '100x200'
      # The doctor's unit failed.
      - series: 'node_systemd_unit_state{name="ospw-matrix-doctor.service", state="failed"}'
        values: '0 0 1x200'
      - series: 'node_systemd_unit_state{name="ospw-matrix-doctor.service", state="inactive"}'
        values: '1 1 0x200'
    alert_rule_test:
      - eval_time: 4m
        alertname: OspwMatrixServiceDown
        exp_alerts: []
      - eval_time: 10m
        alertname: OspwMatrixServiceDown
        exp_alerts:
          - exp_labels:
              severity: critical
              job: ospw-matrix-synapse
              instance: 127.0.0.1:9000
            exp_annotations:
              summary: "ospw-matrix-synapse does not answer (127.0.0.1:9000)"
              description: "For 5 minutes. On the host: systemctl --failed; sudo ospw-matrix doctor"
      - eval_time: 110m
        alertname: OspwMatrixServiceDown
        exp_alerts:
          - exp_labels:
              severity: critical
              job: ospw-matrix-synapse
              instance: 127.0.0.1:9000
            exp_annotations:
              summary: "ospw-matrix-synapse does not answer (127.0.0.1:9000)"
              description: "For 5 minutes. On the host: systemctl --failed; sudo ospw-matrix doctor"
          - exp_labels:
              severity: critical
              job: ospw-matrix-https
              instance: https://matrix.example.org/_matrix/client/versions
            exp_annotations:
              summary: "ospw-matrix-https does not answer (https://matrix.example.org/_matrix/client/versions)"
              description: "For 5 minutes. On the host: systemctl --failed; sudo ospw-matrix doctor"
      - eval_time: 30m
        alertname: OspwMatrixCertificateExpiresSoon
        exp_alerts: []
      - eval_time: 90m
        alertname: OspwMatrixCertificateExpiresSoon
        exp_alerts:
          - exp_labels:
              severity: warning
              job: ospw-matrix-https
              instance: https://chat.example.org/
            exp_annotations:
              summary: "The certificate of https://chat.example.org/ expires in less than 14 days"
              description: "Caddy's renewals are failing: journalctl -u caddy; sudo ospw-matrix doctor"
      - eval_time: 10m
        alertname: OspwMatrixDiskFilling
        exp_alerts: []
      - eval_time: 20m
        alertname: OspwMatrixDiskFilling
        exp_alerts:
          - exp_labels:
              severity: warning
              mountpoint: /var/lib
              fstype: ext4
              device: /dev/vdb
            exp_annotations:
              summary: "/var/lib has less than 10 % free"
              description: "The media store and the database grow: free space before Synapse and PostgreSQL stop"
      - eval_time: 1m
        alertname: OspwMatrixDoctorFailed
        exp_alerts: []
      - eval_time: 5m
        alertname: OspwMatrixDoctorFailed
        exp_alerts:
          - exp_labels:
              severity: warning
              name: ospw-matrix-doctor.service
              state: failed
            exp_annotations:
              summary: "ospw-matrix doctor found a problem"
              description: "journalctl -u ospw-matrix-doctor names the check and its fix"
"#;

#[test]
fn each_alert_fires_on_a_broken_server_and_only_then() {
    let (Some(text), Some(promtool)) = (docs(), promtool()) else {
        return;
    };
    let dir = TempDir::new("monitoring-test");
    for (i, block) in rule_blocks(&text).iter().enumerate() {
        std::fs::write(dir.path().join(format!("rules-{i}.yml")), block).expect("write");
    }
    std::fs::write(dir.path().join("tests.yml"), TESTS).expect("write");
    let (ok, out) = run(&promtool, &["test", "rules", "tests.yml"], dir.path());
    assert!(ok, "{out}");
    // The tests can fail: with the disk threshold at 1 %, no disk alert.
    let rules = std::fs::read_to_string(dir.path().join("rules-0.yml")).expect("read");
    std::fs::write(
        dir.path().join("rules-0.yml"),
        rules.replace("< 0.10", "< 0.01"),
    )
    .expect("write");
    let (ok, out) = run(&promtool, &["test", "rules", "tests.yml"], dir.path());
    assert!(!ok && out.contains("OspwMatrixDiskFilling"), "{out}");
}
