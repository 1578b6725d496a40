//! `ospw-matrix doctor` against the real stack (PostgreSQL, Synapse, coturn,
//! Caddy with `tls internal`, started from the CLI's rendered files as in
//! `acceptance.rs`): on the healthy stack every check passes; then one thing
//! at a time is broken, the doctor must name exactly that (and exit
//! non-zero), and it is repaired before the next. Last, `metrics.enable`:
//! the loopback endpoints of Synapse, coturn and Caddy answer and the public
//! sites do not serve them.
//!
//! The doctor runs as root (the administrator) with `--ca-cert` (Caddy's
//! local root CA plus this test's own CA) and `--resolve` for the test host
//! names, `--json` (validated against the committed
//! `schema/doctor-report.schema.json` with Python's jsonschema from
//! Synapse's venv). Prints one line per check and
//! `acceptance: N passed, N failed`; environment as for `acceptance.rs`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, ensure, Context, Result};
use ospw_matrix_acceptance::harness::{self, must};
use ospw_matrix_acceptance::proc;
use ospw_matrix_acceptance::report::Report;
use ospw_matrix_acceptance::stack::{Options, Stack};
use ospw_matrix_acceptance::util::{mkdir, utf8, write_private};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use time::OffsetDateTime;

const SERVER_NAME: &str = "example.test";
const MATRIX_HOST: &str = "matrix.example.test";
const ELEMENT_HOST: &str = "chat.example.test";
/// The whole run may not take longer than this.
const SUITE_TIMEOUT: Duration = Duration::from_secs(1200);
/// One doctor run.
const DOCTOR_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    harness::main("doctor", SUITE_TIMEOUT, run)
}

/// One doctor run: its exit status and report.
struct Run {
    success: bool,
    report: Value,
    stderr: String,
}

impl Run {
    /// `id[target]` (or `id`) of every check with `status`.
    fn with_status(&self, status: &str) -> BTreeSet<String> {
        self.report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == status)
            .map(|c| match c["target"].as_str() {
                Some(t) => format!("{}[{t}]", c["id"].as_str().unwrap_or("?")),
                None => c["id"].as_str().unwrap_or("?").to_owned(),
            })
            .collect()
    }

    /// The message of the check `key` (`id[target]`).
    fn message(&self, key: &str) -> String {
        self.report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                let k = match c["target"].as_str() {
                    Some(t) => format!("{}[{t}]", c["id"].as_str().unwrap_or("?")),
                    None => c["id"].as_str().unwrap_or("?").to_owned(),
                };
                k == key
            })
            .map(|c| {
                format!(
                    "{} (fix: {})",
                    c["message"].as_str().unwrap_or_default(),
                    c["hint"].as_str().unwrap_or("none")
                )
            })
            .unwrap_or_default()
    }

    /// Every check passed and the doctor exited 0.
    fn all_passed(&self) -> Result<String> {
        let failed = self.with_status("fail");
        let warned = self.with_status("warn");
        ensure!(
            self.success && failed.is_empty() && warned.is_empty(),
            "doctor exit {}, failed {failed:?}, warned {warned:?}: {}",
            if self.success { "0" } else { "non-zero" },
            failed
                .iter()
                .chain(&warned)
                .map(|k| format!("{k}: {}", self.message(k)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let n = self.report["checks"].as_array().map_or(0, Vec::len);
        ensure!(n >= 30, "only {n} checks ran");
        Ok(format!("{n} checks, all ✓"))
    }

    /// The doctor exited non-zero and failed exactly `expected`, each with a
    /// fix hint.
    fn names_exactly(&self, expected: &[&str]) -> Result<String> {
        let failed = self.with_status("fail");
        let want: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        ensure!(!self.success, "doctor exited 0 (failed: {failed:?})");
        ensure!(
            failed == want,
            "doctor failed {failed:?}, expected exactly {want:?}: {}",
            failed
                .iter()
                .map(|k| format!("{k}: {}", self.message(k)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        ensure!(
            self.stderr.contains("checks failed"),
            "stderr: {}",
            self.stderr
        );
        for k in &failed {
            ensure!(
                !self.message(k).ends_with("(fix: none)"),
                "{k} has no fix hint"
            );
        }
        Ok(failed
            .iter()
            .map(|k| format!("{k}: {}", self.message(k)))
            .collect::<Vec<_>>()
            .join(" | "))
    }
}

/// The test's own CA and the trust file the doctor gets (Caddy's root and
/// this CA).
struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    trust: PathBuf,
}

impl TestCa {
    fn new(st: &Stack) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "ospw doctor test CA");
        let cert = params.self_signed(&key)?;
        let trust = st.p.root.join("trust.pem");
        let mut pem = std::fs::read_to_string(st.caddy_ca())?;
        pem.push_str(&cert.pem());
        std::fs::write(&trust, pem)?;
        Ok(Self { key, cert, trust })
    }

    /// A certificate for `name` valid from `from` to `until` (relative to
    /// now), written for Caddy as `certs/LABEL.{pem,key}`.
    fn issue(
        &self,
        st: &Stack,
        label: &str,
        name: &str,
        from: time::Duration,
        until: time::Duration,
    ) -> Result<(PathBuf, PathBuf)> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.not_before = now + from;
        params.not_after = now + until;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let dir = st.p.state.join("certs");
        mkdir(&dir, 0o700, Some(&st.user))?;
        let (c, k) = (
            dir.join(format!("{label}.pem")),
            dir.join(format!("{label}.key")),
        );
        write_private(&c, &cert.pem(), Some(&st.user))?;
        write_private(&k, &key.serialize_pem(), Some(&st.user))?;
        Ok((c, k))
    }
}

/// Runs the doctor as root with `--json`, `--ca-cert`, `--resolve` for the
/// test names and the database's system user, plus `extra`.
async fn doctor(st: &Stack, trust: &Path, extra: &[&str]) -> Result<Run> {
    let mut c = st.cli();
    c.args(["doctor", "--json", "--config"])
        .arg(&st.p.host_yaml)
        .arg("--ca-cert")
        .arg(trust);
    for name in [SERVER_NAME, MATRIX_HOST, ELEMENT_HOST] {
        c.arg("--resolve").arg(format!("{name}:127.0.0.1"));
    }
    c.args(["--db-os-user", &st.user.name, "--pg-bin-dir"])
        .arg(&st.pg_bin)
        .args(extra);
    let out = proc::run(c, DOCTOR_TIMEOUT).await?;
    let report: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("doctor --json printed no JSON: {}", out.both()))?;
    Ok(Run {
        success: out.status.success(),
        report,
        stderr: out.stderr,
    })
}

/// The committed JSON Schema of the doctor's report.
fn report_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/doctor-report.schema.json")
}

/// Validates `report` against the committed schema with Python's jsonschema.
async fn validate_report(st: &Stack, report: &Value) -> Result<()> {
    let file = st.p.root.join("report.json");
    std::fs::write(&file, serde_json::to_vec(report)?)?;
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  cls = jsonschema.validators.validator_for(schema)\n\
                  cls.check_schema(schema)\n\
                  errors = list(cls(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
                  assert not errors, errors\n";
    let mut c = tokio::process::Command::new(&st.python);
    c.arg("-c").arg(script).arg(report_schema()).arg(&file);
    let out = tokio::time::timeout(Duration::from_secs(60), c.output()).await??;
    ensure!(
        out.status.success(),
        "the report does not validate against {}: {}",
        report_schema().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// coturn's per-user allocation quota at 2 (instead of 12): the doctor runs
/// a dozen times with the same service account, so an allocation it did not
/// release would make the third run fail with 486 (Allocation Quota
/// Reached).
fn small_turn_quota(yaml: &str) -> Result<String> {
    ensure!(yaml.contains("\nturn:\n"), "no turn section in {yaml}");
    Ok(yaml.replacen("\nturn:\n", "\nturn:\n  user_quota: 2\n", 1))
}

/// The site block of `addr` (`NAME:PORT`) in a Caddyfile, changed by `edit`.
fn edit_site(caddyfile: &str, addr: &str, edit: impl FnOnce(&str) -> String) -> Result<String> {
    let open = format!("\n{addr} {{\n");
    let start = caddyfile
        .find(&open)
        .with_context(|| format!("no site block {addr}"))?
        + 1;
    let end = caddyfile[start..]
        .find("\n}\n")
        .map(|i| start + i + 3)
        .context("unterminated site block")?;
    Ok(format!(
        "{}{}{}",
        &caddyfile[..start],
        edit(&caddyfile[start..end]),
        &caddyfile[end..]
    ))
}

/// Restarts Caddy after its Caddyfile changed.
async fn restart_caddy(st: &mut Stack) -> Result<()> {
    st.stop_service("caddy", Duration::from_secs(20));
    st.start_caddy().await
}

/// Runs `scenario` with the Caddyfile changed by `edit`, then puts the
/// rendered one back and restarts Caddy.
async fn with_caddyfile(
    st: &mut Stack,
    edit: impl FnOnce(&str) -> Result<String>,
) -> Result<String> {
    let path = st.p.out.join("caddy/Caddyfile");
    let original = std::fs::read_to_string(&path)?;
    std::fs::write(&path, edit(&original)?)?;
    let started = restart_caddy(st).await;
    std::fs::write(&path, &original)?;
    started.map(|()| original)
}

/// The host's address the kernel would use towards the internet (a
/// non-loopback address), when it has one.
fn outward_address() -> Option<IpAddr> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("198.51.100.1:9").ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `curl` through Caddy: status and body of `https://HOST:PORT{path}` with
/// the extra header, trusting Caddy's CA.
async fn curl(st: &Stack, host: &str, path: &str, header: Option<&str>) -> Result<(u16, String)> {
    let mut c = tokio::process::Command::new("curl");
    c.args([
        "-s",
        "--path-as-is",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(st.caddy_ca())
    .arg("--resolve")
    .arg(format!("{host}:{}:127.0.0.1", st.ports.https))
    .arg(format!("https://{host}:{}{path}", st.ports.https));
    if let Some(h) = header {
        c.args(["-H", h]);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), c.output()).await??;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok((
        code.trim().parse().context("no status from curl")?,
        body.to_owned(),
    ))
}

/// A plain HTTP GET on 127.0.0.1: status and body.
async fn local_get(port: u16, path: &str) -> Result<(u16, String)> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Whether the installed coturn was built with Prometheus support.
async fn coturn_has_prometheus() -> bool {
    let out = tokio::process::Command::new("turnserver")
        .arg("-h")
        .output()
        .await;
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout).contains("--prometheus")
            || String::from_utf8_lossy(&o.stderr).contains("--prometheus")
    })
}

async fn run(report: &mut Report, slot: &mut Option<Stack>) -> Result<()> {
    report.section("setup");
    let opts = Options::full("doctor");
    let tools = harness::tools(
        report,
        &opts,
        "Synapse, PostgreSQL, coturn and Caddy are installed",
    )?;
    let st = harness::new_stack(report, slot, opts, tools)?;
    let host = st.main_host(SERVER_NAME);
    std::fs::write(&st.p.host_yaml, small_turn_quota(&st.host_yaml(&host))?)?;
    must(
        report,
        "the whole stack starts from the rendered files",
        st.start_full().await,
    )?;
    let ca = must(report, "a test CA beside Caddy's", TestCa::new(st))?;
    let backups = st.p.root.join("backups");
    mkdir(&backups, 0o700, None)?;
    let archive = backups.join("ospw-matrix-test.tar");
    must(
        report,
        "ospw-matrix backup (for the backup check)",
        async {
            let mut c = st.cli();
            c.args(["backup", "--config"])
                .arg(&st.p.host_yaml)
                .arg("--out")
                .arg(&archive)
                .args(["--db-os-user", &st.user.name, "--pg-bin-dir"])
                .arg(&st.pg_bin);
            proc::run_ok(c, Duration::from_secs(120)).await?;
            Ok(())
        }
        .await,
    )?;
    let backup_dir = utf8(&backups)?.to_owned();
    let with_backup = ["--backup-dir", backup_dir.as_str()];

    report.section("the healthy stack");
    let healthy = doctor(st, &ca.trust, &with_backup).await;
    let healthy_ok = report.check(
        "doctor reports every check ✓ and exits 0",
        healthy
            .as_ref()
            .map_err(|e| anyhow!("{e:#}"))
            .and_then(Run::all_passed),
    );
    if let Ok(run) = &healthy {
        report.check(
            "doctor --json validates against schema/doctor-report.schema.json",
            validate_report(st, &run.report).await.map(|()| ""),
        );
        report.check(
            "the report names every part of the issue (DNS, TLS, discovery, privacy, TURN, services, database, secrets, disk, backup)",
            (|| {
                let all = run.with_status("pass");
                for want in [
                    "dns.resolves[matrix.example.test]",
                    "tls.certificate[chat.example.test]",
                    "tls.expiry[example.test]",
                    "tls.hsts[matrix.example.test]",
                    "discovery.client[example.test]",
                    "discovery.server[example.test]",
                    "privacy.federation[matrix.example.test]",
                    "privacy.admin_api[matrix.example.test]",
                    "privacy.registration[matrix.example.test]",
                    "privacy.guest_access[matrix.example.test]",
                    "privacy.encryption[matrix.example.test]",
                    "privacy.element_config[chat.example.test]",
                    "privacy.metrics[chat.example.test]",
                    "turn.credentials",
                    "turn.allocate[udp]",
                    "turn.allocate[tcp]",
                    "turn.private_peer[udp]",
                    "turn.private_peer[tcp]",
                    "services.listening[coturn]",
                    "synapse.health",
                    "database.collation",
                    "secrets.modes",
                    "secrets.signing_key",
                    "disk.free[database]",
                    "backup.age[",
                ] {
                    ensure!(
                        all.iter().any(|k| k == want || (want.ends_with('[') && k.starts_with(want))),
                        "no passing {want} in {all:?}"
                    );
                }
                Ok(format!("{} passing checks", all.len()))
            })(),
        );
    }
    if !healthy_ok {
        return Err(harness::abort(
            "the healthy stack does not pass: the scenarios below would mean nothing",
        ));
    }

    report.section("one thing broken at a time");
    // 1. coturn stopped.
    let result = async {
        st.stop_service("coturn", Duration::from_secs(10));
        let run = doctor(st, &ca.trust, &with_backup).await;
        st.start_coturn("coturn", &[]).await?;
        run?.names_exactly(&[
            "services.listening[coturn]",
            "turn.allocate[udp]",
            "turn.allocate[tcp]",
        ])
    }
    .await;
    report.check("coturn stopped: doctor names coturn and TURN", result);

    // 2. A wrong /.well-known/matrix/client.
    let https = st.ports.https;
    let result = async {
        let right = format!("\"base_url\":\"https://{MATRIX_HOST}:{https}\"");
        with_caddyfile(st, |text| {
            ensure!(text.contains(&right), "the Caddyfile lacks {right}");
            Ok(text.replace(&right, "\"base_url\":\"https://matrix.elsewhere.test\""))
        })
        .await?;
        let run = doctor(st, &ca.trust, &with_backup).await;
        restart_caddy(st).await?;
        run?.names_exactly(&["discovery.client[example.test]"])
    }
    .await;
    report.check(
        "a wrong /.well-known/matrix/client: doctor names discovery.client",
        result,
    );

    // 3.-5. Certificates from the test CA on the Element host.
    let chat_site = format!("{ELEMENT_HOST}:{https}");
    let day = time::Duration::days(1);
    for (label, name, from, until, expected, what) in [
        (
            "other-name",
            "other.test",
            -day,
            day * 30,
            vec!["tls.certificate[chat.example.test]"],
            "a certificate for another name",
        ),
        (
            "expired",
            ELEMENT_HOST,
            -day * 3,
            -time::Duration::hours(1),
            vec![
                "tls.certificate[chat.example.test]",
                "tls.expiry[chat.example.test]",
            ],
            "an expired certificate",
        ),
        (
            "expiring",
            ELEMENT_HOST,
            -day * 28,
            day * 2,
            vec!["tls.expiry[chat.example.test]"],
            "a certificate expiring in 2 days",
        ),
    ] {
        let result = async {
            let (cert, key) = ca.issue(st, label, name, from, until)?;
            let line = format!("\ttls {} {}\n", utf8(&cert)?, utf8(&key)?);
            with_caddyfile(st, |text| {
                edit_site(text, &chat_site, |block| {
                    block.replace("\ttls internal\n", &line)
                })
            })
            .await?;
            let run = doctor(st, &ca.trust, &with_backup).await;
            restart_caddy(st).await?;
            run?.names_exactly(&expected)
        }
        .await;
        report.check(
            &format!("{what}: doctor names {}", expected.join(" and ")),
            result,
        );
    }
    let result = async {
        // A 90-day certificate (as from Let's Encrypt) with 10 days left.
        let (cert, key) = ca.issue(st, "warning", ELEMENT_HOST, -day * 80, day * 10)?;
        let line = format!("\ttls {} {}\n", utf8(&cert)?, utf8(&key)?);
        with_caddyfile(st, |text| {
            edit_site(text, &chat_site, |block| {
                block.replace("\ttls internal\n", &line)
            })
        })
        .await?;
        let run = doctor(st, &ca.trust, &with_backup).await?;
        restart_caddy(st).await?;
        let warned = run.with_status("warn");
        ensure!(
            run.success && run.with_status("fail").is_empty(),
            "doctor failed: {:?}",
            run.with_status("fail")
        );
        ensure!(
            warned == BTreeSet::from(["tls.expiry[chat.example.test]".to_owned()]),
            "warnings {warned:?}"
        );
        Ok(run.message("tls.expiry[chat.example.test]"))
    }
    .await;
    report.check(
        "a certificate expiring in 10 days: a warning (!), exit 0",
        result,
    );

    // 6. The secrets directory loosened to 0755.
    let result = async {
        use std::os::unix::fs::PermissionsExt;
        let dir = st.p.secrets.clone();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let run = doctor(st, &ca.trust, &with_backup).await;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        run?.names_exactly(&["secrets.modes"])
    }
    .await;
    report.check(
        "the secrets directory at 0755: doctor names secrets.modes",
        result,
    );

    // 7. A Caddy configuration that exposes /_synapse/admin.
    let matrix_site = format!("{MATRIX_HOST}:{https}");
    let synapse = st.ports.synapse;
    let result = async {
        with_caddyfile(st, |text| {
            edit_site(text, &matrix_site, |block| {
                block.replacen(
                    "\thandle {\n",
                    &format!(
                        "\thandle /_synapse/admin/* {{\n\t\treverse_proxy 127.0.0.1:{synapse}\n\t}}\n\thandle {{\n"
                    ),
                    1,
                )
            })
        })
        .await?;
        let run = doctor(st, &ca.trust, &with_backup).await;
        restart_caddy(st).await?;
        run?.names_exactly(&["privacy.admin_api[matrix.example.test]"])
    }
    .await;
    report.check(
        "a Caddy configuration exposing /_synapse/admin: doctor names privacy.admin_api",
        result,
    );

    // 8. Element served with an integration manager.
    let result = async {
        let path = st.p.out.join("element/config.json");
        let original = std::fs::read_to_string(&path)?;
        let mut config: Value = serde_json::from_str(&original)?;
        config["integrations_ui_url"] = "https://scalar.vector.im/".into();
        config["integrations_rest_url"] = "https://scalar.vector.im/api".into();
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        let run = doctor(st, &ca.trust, &with_backup).await;
        std::fs::write(&path, &original)?;
        let run = run?;
        let text = run.names_exactly(&["privacy.element_config[chat.example.test]"])?;
        ensure!(text.contains("integrations_ui_url"), "{text}");
        Ok(text)
    }
    .await;
    report.check(
        "Element served with an integration manager URL: doctor names privacy.element_config",
        result,
    );

    // 9. The newest backup too old.
    let result = async {
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&archive)?
            .set_modified(old)?;
        let run = doctor(st, &ca.trust, &with_backup).await?;
        run.names_exactly(&[&format!("backup.age[{backup_dir}]")])
    }
    .await;
    report.check(
        "the newest backup 3 days old: doctor names backup.age",
        result,
    );

    report.section("metrics (metrics.enable)");
    let ports = (st.port(), st.port(), st.port());
    let metrics = must(
        report,
        "render with metrics.enable and restart Synapse, coturn and Caddy",
        async {
            let mut host = st.main_host(SERVER_NAME);
            host.metrics = Some(ports);
            std::fs::write(&st.p.host_yaml, small_turn_quota(&st.host_yaml(&host))?)?;
            st.render(&st.p.host_yaml, &st.p.out).await?;
            st.materialize_coturn().await?;
            st.stop_service("synapse", Duration::from_secs(30));
            st.start_main_synapse().await?;
            st.stop_service("coturn", Duration::from_secs(10));
            st.start_coturn("coturn", &[]).await?;
            restart_caddy(st).await?;
            Ok(ports)
        }
        .await,
    )?;
    let (synapse_port, coturn_port, caddy_port) = metrics;
    report.check(
        "Synapse's metrics answer on 127.0.0.1 (/_synapse/metrics)",
        async {
            let (code, body) = local_get(synapse_port, "/_synapse/metrics").await?;
            ensure!(code == 200 && body.contains("synapse_"), "HTTP {code}");
            Ok(format!("{} bytes", body.len()))
        }
        .await,
    );
    report.check(
        "Caddy's metrics answer on 127.0.0.1 (/metrics)",
        async {
            let (code, body) = local_get(caddy_port, "/metrics").await?;
            ensure!(
                code == 200 && (body.contains("caddy_") || body.contains("go_")),
                "HTTP {code}"
            );
            Ok(format!("{} bytes", body.len()))
        }
        .await,
    );
    let coturn_prometheus = coturn_has_prometheus().await;
    report.check(
        "coturn's exporter answers on 127.0.0.1 when coturn has Prometheus support (otherwise coturn reads and ignores the options)",
        async {
            if coturn_prometheus {
                let (code, body) = local_get(coturn_port, "/metrics").await?;
                ensure!(code == 200 && body.contains("turn"), "HTTP {code}");
                Ok(format!("{} bytes", body.len()))
            } else {
                let log = std::fs::read_to_string(st.p.logs.join("coturn.log"))?;
                ensure!(
                    log.contains("Bad configuration format: prometheus-address"),
                    "coturn's log does not show the exporter options"
                );
                ensure!(
                    local_get(coturn_port, "/metrics").await.is_err(),
                    "something answers on the exporter's port"
                );
                Ok("this coturn (Debian's) is built without Prometheus: the rendered options reach it, no exporter runs".to_owned())
            }
        }
        .await,
    );
    report.check(
        "curl through the public sites gets 404 for the metrics paths (and no metrics with another Host)",
        async {
            let mut seen = Vec::new();
            for host in [MATRIX_HOST, ELEMENT_HOST, SERVER_NAME] {
                for path in ["/metrics", "/_synapse/metrics", "/_synapse/metrics/", "/_synapse//metrics"] {
                    let (code, body) = curl(st, host, path, None).await?;
                    let redirect = host == SERVER_NAME && (300..400).contains(&code);
                    ensure!(code == 404 || redirect, "https://{host}{path} answered {code}");
                    ensure!(!body.contains("# TYPE"), "https://{host}{path} served metrics");
                    seen.push(format!("{host}{path} {code}"));
                }
                for port in [synapse_port, coturn_port, caddy_port] {
                    let header = format!("Host: 127.0.0.1:{port}");
                    let (code, body) = curl(st, host, "/metrics", Some(&header)).await?;
                    ensure!(
                        !body.contains("# TYPE"),
                        "https://{host}/metrics with {header} served metrics ({code})"
                    );
                }
            }
            Ok(seen.join(", "))
        }
        .await,
    );
    report.check(
        "the metrics ports refuse connections on the host's other address",
        async {
            let Some(ip) = outward_address() else {
                return Ok("this host has no non-loopback address".to_owned());
            };
            for port in [synapse_port, coturn_port, caddy_port] {
                let addr = SocketAddr::new(ip, port);
                ensure!(
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        tokio::net::TcpStream::connect(addr)
                    )
                    .await
                    .map_or(true, |r| r.is_err()),
                    "{addr} accepts connections"
                );
            }
            Ok(format!("{ip}: refused"))
        }
        .await,
    );
    report.check(
        "doctor with metrics.enable: the endpoints on loopback, privacy.metrics on every site",
        async {
            let run = doctor(st, &ca.trust, &with_backup).await?;
            let passed = run.with_status("pass");
            let failed = run.with_status("fail");
            for want in [
                "metrics.endpoint[synapse]",
                "metrics.endpoint[caddy]",
                "privacy.metrics[matrix.example.test]",
                "privacy.metrics[chat.example.test]",
                "privacy.metrics[example.test]",
            ] {
                ensure!(
                    passed.contains(want),
                    "{want} did not pass: {}",
                    run.message(want)
                );
            }
            let expected_fail: BTreeSet<String> = if coturn_prometheus {
                BTreeSet::new()
            } else {
                BTreeSet::from(["metrics.endpoint[coturn]".to_owned()])
            };
            // The backup is 3 days old since scenario 9.
            let failed: BTreeSet<String> = failed
                .into_iter()
                .filter(|k| !k.starts_with("backup.age"))
                .collect();
            ensure!(
                failed == expected_fail,
                "failed {failed:?}, expected {expected_fail:?}"
            );
            Ok(run.message("metrics.endpoint[coturn]"))
        }
        .await,
    );
    Ok(())
}
