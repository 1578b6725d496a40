//! Reading Synapse's log (format `NAME - LINENO - LEVEL - REQUEST - MESSAGE`,
//! as the rendered `log.yaml` writes it): error lines, and lines that show
//! Synapse reaching (or getting ready to reach) another server.

/// What in a line shows an outgoing request or a plan to make one: the
/// loggers of Synapse's outgoing HTTP clients (federation, the plain client
/// used for push gateways, identity servers, stats and URL previews, the
/// well-known resolver and federation agent) and their INFO messages, key
/// requests to notary servers, stats reporting, and the public servers a
/// default configuration would contact.
pub const OUTBOUND: &[&str] = &[
    "matrix.org",
    "vector.im",
    "element.io",
    "matrixfederationclient",
    "federation_client",
    "matrix_federation_agent",
    "well_known_resolver",
    "synapse.http.client ",
    "synapse.http.proxyagent",
    "Sending request",
    "Received response to",
    "Error sending request",
    "report-usage-stats",
    "Reporting stats",
    "Scheduling stats reporting",
    "Requesting keys",
    "perspectives",
    "DNS lookup failed",
];

/// The lines of `log` that show an attempt to reach another server.
pub fn outbound_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| OUTBOUND.iter().any(|p| l.contains(p)))
        .collect()
}

/// The level of a line in Synapse's format (`NAME - LINENO - LEVEL - ...`).
fn level(line: &str) -> Option<&str> {
    let mut parts = line.splitn(4, " - ");
    let (_name, lineno, level) = (parts.next()?, parts.next()?, parts.next()?);
    (!lineno.is_empty() && lineno.bytes().all(|b| b.is_ascii_digit())).then_some(level)
}

/// The lines of `log` that are errors: in Synapse's format, those logged at
/// ERROR or CRITICAL (not a WARNING that merely mentions an error, such as
/// `[TXN OPERROR]` for a serialization conflict Synapse retries); any other
/// line (what the process wrote to stderr) naming ERROR or CRITICAL; and the
/// start of a Python traceback.
pub fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| match level(l) {
            Some(level) => level == "ERROR" || level == "CRITICAL",
            None => {
                l.contains("ERROR")
                    || l.contains("CRITICAL")
                    || l.contains("Traceback (most recent call last)")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: &str = "\
synapse.storage.databases.main - 139 - INFO - main - [database connection pool] Checking database
synapse.app.homeserver - 447 - INFO - main - Server hostname: example.test
synapse.access.http.8008 - 515 - INFO - POST-7 - 127.0.0.1 - 8008 - {@alice:example.test} Processed request: 0.005sec/0.000sec (0.002sec, 0.000sec) (0.001sec/0.002sec/2) 2B 200 \"POST /_matrix/client/v3/keys/upload HTTP/1.1\" \"matrix-rust-sdk\" [0 dbevts]
synapse.handlers.auth - 1234 - INFO - POST-3 - Logging in user @bob:example.test on device ABC
";

    #[test]
    fn a_quiet_log_passes() {
        assert!(
            outbound_lines(QUIET).is_empty(),
            "{:?}",
            outbound_lines(QUIET)
        );
        assert!(error_lines(QUIET).is_empty());
    }

    #[test]
    fn outgoing_requests_are_seen() {
        // What Synapse logs at INFO when it reaches out (synapse/http/client.py,
        // matrixfederationclient.py, app/phone_stats_home.py, crypto/keyring.py).
        for line in [
            "synapse.http.client - 453 - INFO - httppush-1 - Received response to POST https://push.example.net/_matrix/push/v1/notify: 200",
            "synapse.http.client - 466 - INFO - httppush-1 - Error sending request to  POST https://push.example.net/_matrix/push/v1/notify: DNSLookupError ...",
            "synapse.http.matrixfederationclient - 793 - INFO - PUT-5 - {PUT-O-1} [other.example] Got response headers: 200 OK",
            "synapse.http.federation.well_known_resolver - 282 - INFO - - Fetching https://other.example/.well-known/matrix/server",
            "synapse.app.phone_stats_home - 312 - INFO - main - Scheduling stats reporting for 3 hour intervals",
            "synapse.app.phone_stats_home - 202 - INFO - - Reporting stats to https://stats.example: {}",
            "synapse.crypto.keyring - 780 - INFO - - Requesting keys {} from notary server notary.example",
        ] {
            assert_eq!(outbound_lines(line), vec![line], "not seen: {line}");
        }
    }

    #[test]
    fn a_retried_serialization_conflict_is_a_warning_not_an_error() {
        // Seen in a passing run: PostgreSQL's serializable isolation made one
        // background update retry.
        let line = "synapse.storage.txn - 840 - WARNING - background_updates-0 - [TXN OPERROR] {update_stats_delta-10a} could not serialize access due to concurrent update";
        assert!(error_lines(line).is_empty());
    }

    #[test]
    fn errors_are_seen() {
        for line in [
            "synapse.http.server - 130 - ERROR - GET-1 - Failed handle request",
            "synapse.app.homeserver - 40 - CRITICAL - main - Exception during startup",
            "Traceback (most recent call last):",
            "ERROR: something written to stderr",
        ] {
            assert_eq!(error_lines(&format!("{QUIET}{line}\n")), vec![line]);
        }
    }
}
