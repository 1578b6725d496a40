//! The doctor's findings: one [`Check`] per line, printed for people or
//! written as JSON (`--json`) in the form `schema/doctor-report.schema.json`
//! describes (`ospw-matrix schema --doctor-report` prints it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as promised.
    Pass,
    /// Works, but needs attention soon (or could not be checked).
    Warn,
    /// Broken, or not private: `doctor` exits non-zero.
    Fail,
}

impl Status {
    /// The mark printed before the line.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        }
    }
}

/// From where a check looks at the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// As a client on the internet: DNS, HTTPS through the proxy, TURN.
    Outside,
    /// On the host: services, files, the database, the disk.
    Inside,
}

/// What a check looks at. The identifiers are stable, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CheckId {
    /// A host name resolves, to an address of this host (or `turn.external_ip`).
    #[serde(rename = "dns.resolves")]
    DnsResolves,
    /// The site's certificate is trusted and valid for its name.
    #[serde(rename = "tls.certificate")]
    TlsCertificate,
    /// The certificate does not expire soon.
    #[serde(rename = "tls.expiry")]
    TlsExpiry,
    /// The site sends Strict-Transport-Security.
    #[serde(rename = "tls.hsts")]
    TlsHsts,
    /// `/.well-known/matrix/client` on the server name points at the Matrix host, with CORS.
    #[serde(rename = "discovery.client")]
    DiscoveryClient,
    /// `/.well-known/matrix/server` is 404 (no federation).
    #[serde(rename = "discovery.server")]
    DiscoveryServer,
    /// Federation and server-key endpoints are 404 from outside.
    #[serde(rename = "privacy.federation")]
    PrivacyFederation,
    /// Synapse's admin API is 404 from outside.
    #[serde(rename = "privacy.admin_api")]
    PrivacyAdminApi,
    /// Public registration is refused (403).
    #[serde(rename = "privacy.registration")]
    PrivacyRegistration,
    /// Guest registration is refused (403).
    #[serde(rename = "privacy.guest_access")]
    PrivacyGuestAccess,
    /// `/versions` advertises the encryption new rooms get by default.
    #[serde(rename = "privacy.encryption")]
    PrivacyEncryption,
    /// Element's served `config.json` keeps every privacy invariant.
    #[serde(rename = "privacy.element_config")]
    PrivacyElementConfig,
    /// No metrics endpoint is reachable through the public sites.
    #[serde(rename = "privacy.metrics")]
    PrivacyMetrics,
    /// Synapse hands out TURN credentials (`/voip/turnServer`).
    #[serde(rename = "turn.credentials")]
    TurnCredentials,
    /// Those credentials allocate a relay (per transport).
    #[serde(rename = "turn.allocate")]
    TurnAllocate,
    /// A relay to a private address is refused (per transport).
    #[serde(rename = "turn.private_peer")]
    TurnPrivatePeer,
    /// A service accepts connections where the host description says.
    #[serde(rename = "services.listening")]
    ServicesListening,
    /// A systemd unit is active.
    #[serde(rename = "services.systemd")]
    ServicesSystemd,
    /// Synapse answers `/health` on its own listener.
    #[serde(rename = "synapse.health")]
    SynapseHealth,
    /// The database is reachable, with C collation and ctype.
    #[serde(rename = "database.collation")]
    DatabaseCollation,
    /// Secret files are present and private (no group or other access).
    #[serde(rename = "secrets.modes")]
    SecretsModes,
    /// The signing key file parses and is the key Synapse signs with.
    #[serde(rename = "secrets.signing_key")]
    SecretsSigningKey,
    /// Free space for the media store and the database.
    #[serde(rename = "disk.free")]
    DiskFree,
    /// The newest backup is recent.
    #[serde(rename = "backup.age")]
    BackupAge,
    /// A metrics endpoint answers on loopback (with `metrics.enable`).
    #[serde(rename = "metrics.endpoint")]
    MetricsEndpoint,
}

impl CheckId {
    /// The identifier as written in the report.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What is checked.
    pub id: CheckId,
    /// From where.
    pub side: Side,
    /// The host name, service, transport or path checked, when the check
    /// runs for several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The outcome.
    pub status: Status,
    /// What was found, in words.
    pub message: String,
    /// How to fix it (failures and warnings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The report's format identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Format {
    /// Version 1.
    #[serde(rename = "ospw-matrix-doctor/1")]
    V1,
}

/// How many checks ended how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Checks that passed.
    pub passed: u32,
    /// Warnings.
    pub warnings: u32,
    /// Failures.
    pub failed: u32,
}

/// Everything `ospw-matrix doctor --json` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// `ospw-matrix-doctor/1`.
    pub format: Format,
    /// The Matrix server name checked.
    pub server_name: String,
    /// When the checks ran (UTC, RFC 3339).
    pub checked_at: String,
    /// True when no check failed (warnings allowed); `doctor` then exits 0.
    pub ok: bool,
    /// The counts by outcome.
    pub counts: Counts,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

/// The JSON Schema of [`Report`].
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(Report)
}

/// Collects the checks as they run.
#[derive(Debug, Default)]
pub struct Findings {
    /// The checks so far.
    pub checks: Vec<Check>,
}

impl Findings {
    /// Records one outcome.
    pub fn add(
        &mut self,
        id: CheckId,
        side: Side,
        target: Option<&str>,
        status: Status,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.checks.push(Check {
            id,
            side,
            target: target.map(str::to_owned),
            status,
            message: message.into(),
            hint: if status == Status::Pass { None } else { hint },
        });
    }

    /// The finished report.
    pub fn into_report(self, server_name: &str, checked_at: String) -> Report {
        let mut counts = Counts::default();
        for c in &self.checks {
            match c.status {
                Status::Pass => counts.passed += 1,
                Status::Warn => counts.warnings += 1,
                Status::Fail => counts.failed += 1,
            }
        }
        Report {
            format: Format::V1,
            server_name: server_name.to_owned(),
            checked_at,
            ok: counts.failed == 0,
            counts,
            checks: self.checks,
        }
    }
}

/// The report as text, one line per check (and an indented fix hint).
pub fn to_text(report: &Report) -> String {
    let mut out = format!(
        "ospw-matrix doctor: {} ({})\n",
        report.server_name, report.checked_at
    );
    for (side, title) in [
        (
            Side::Outside,
            "From the outside, as a client on the internet:",
        ),
        (Side::Inside, "On the host:"),
    ] {
        let checks: Vec<&Check> = report.checks.iter().filter(|c| c.side == side).collect();
        if checks.is_empty() {
            continue;
        }
        out.push('\n');
        out.push_str(title);
        out.push('\n');
        for c in checks {
            let target = c
                .target
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} {}{target}: {}\n",
                c.status.mark(),
                c.id.as_str(),
                one_line(&c.message)
            ));
            if let Some(hint) = &c.hint {
                out.push_str(&format!("      fix: {}\n", one_line(hint)));
            }
        }
    }
    let c = report.counts;
    out.push_str(&format!(
        "\n{} passed, {} warning{}, {} failed\n",
        c.passed,
        c.warnings,
        if c.warnings == 1 { "" } else { "s" },
        c.failed
    ));
    out
}

/// `text` on one line: control characters (a server's answer could hold
/// any) shown escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut f = Findings::default();
        f.add(
            CheckId::DnsResolves,
            Side::Outside,
            Some("matrix.example.org"),
            Status::Pass,
            "203.0.113.7, an address of this host",
            Some("never shown".into()),
        );
        f.add(
            CheckId::TlsExpiry,
            Side::Outside,
            Some("chat.example.org"),
            Status::Warn,
            "expires on 2026-12-31T23:59:59Z (in 10 days)",
            Some("check that Caddy renews it".into()),
        );
        f.add(
            CheckId::SecretsModes,
            Side::Inside,
            None,
            Status::Fail,
            "/var/lib/ospw-matrix/secrets has mode 0755\nsecond line",
            Some("chmod 0700 /var/lib/ospw-matrix/secrets".into()),
        );
        f.into_report("example.org", "2026-12-21T00:00:00Z".into())
    }

    #[test]
    fn counts_and_ok_follow_the_checks() {
        let r = sample();
        assert_eq!(
            r.counts,
            Counts {
                passed: 1,
                warnings: 1,
                failed: 1
            }
        );
        assert!(!r.ok);
        assert_eq!(r.checks[0].hint, None, "a passing check carries no hint");
        let only_warnings = Findings {
            checks: r.checks[..2].to_vec(),
        }
        .into_report("example.org", String::new());
        assert!(only_warnings.ok, "warnings alone do not fail the run");
    }

    #[test]
    fn text_has_one_line_per_check_with_its_mark_and_hint() {
        let text = to_text(&sample());
        assert!(text.contains("  ✓ dns.resolves [matrix.example.org]: 203.0.113.7"));
        assert!(text.contains("  ! tls.expiry [chat.example.org]: expires on"));
        assert!(text.contains(
            "  ✗ secrets.modes: /var/lib/ospw-matrix/secrets has mode 0755\\nsecond line\n      fix: chmod 0700"
        ));
        assert!(text.ends_with("1 passed, 1 warning, 1 failed\n"), "{text}");
    }

    #[test]
    fn json_round_trips_with_the_stable_identifiers() {
        let r = sample();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["format"], "ospw-matrix-doctor/1");
        assert_eq!(json["checks"][1]["id"], "tls.expiry");
        assert_eq!(json["checks"][1]["status"], "warn");
        assert_eq!(json["checks"][2]["side"], "inside");
        assert!(json["checks"][2].get("target").is_none());
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
