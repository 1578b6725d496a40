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

/// The scheme of Synapse's replication requests between its own
/// processes (`synapse-replication://INSTANCE/_synapse/replication/...`,
/// over the instance's listener in `instance_map`): not another server.
pub const REPLICATION_SCHEME: &str = "synapse-replication://";

/// The lines of `log` that show an attempt to reach another server
/// (Synapse's processes calling each other over replication are not one).
pub fn outbound_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| OUTBOUND.iter().any(|p| l.contains(p)))
        .filter(|l| !is_replication_request(l))
        .collect()
}

/// Whether `line` is the HTTP client's line about a replication request:
/// its only URL is a `synapse-replication://` one.
fn is_replication_request(line: &str) -> bool {
    line.contains("synapse.http.client ")
        && line.contains(REPLICATION_SCHEME)
        && line.matches("://").count() == 1
}

/// What one Synapse process logs when it starts its shutdown (SIGTERM).
const SHUTDOWN_START: &str = "Received SIGTERM, shutting down.";
/// What a Synapse process logs when it starts (each listener).
const STARTUP: &str = "SynapseSite starting on";
/// The error Synapse logs when a command to Redis fails.
const SEND_CMD_FAILED: &str = "Background process 'send-cmd' threw an exception";
/// The last line of that error's traceback when Redis's connection was closed.
const LOST_CONNECTION: &str = "txredisapi.ConnectionError: Lost connection";

/// The errors of [`error_lines`] minus Synapse's own shutdown noise: a
/// process stopping logs, after `Received SIGTERM`, that a command it was
/// sending to Redis failed because its Redis connection was already closed
/// (`Background process 'send-cmd' threw an exception` and a traceback
/// ending `txredisapi.ConnectionError: Lost connection`; Synapse's restart
/// noise, matrix-org/synapse#12722). Returns the remaining error lines and
/// how many noise lines were left out. Anything else after SIGTERM, and this
/// error at any other time, still counts.
pub fn error_lines_but_shutdown_noise(log: &str) -> (Vec<&str>, usize) {
    let lines: Vec<&str> = log.lines().collect();
    let mut noise = vec![false; lines.len()];
    let mut stopping = false;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.contains(SHUTDOWN_START) {
            stopping = true;
        } else if l.contains(STARTUP) {
            stopping = false;
        }
        if stopping && level(l) == Some("ERROR") && l.contains(SEND_CMD_FAILED) {
            // Its traceback: every line up to the next one in Synapse's format.
            let end = (i + 1..lines.len())
                .find(|j| level(lines[*j]).is_some())
                .unwrap_or(lines.len());
            if lines[i + 1..end].last().map(|t| t.trim()) == Some(LOST_CONNECTION) {
                noise[i..end].iter_mut().for_each(|n| *n = true);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    let kept = lines
        .iter()
        .zip(&noise)
        .filter(|(l, n)| !**n && !error_lines(l).is_empty())
        .map(|(l, _)| *l)
        .collect();
    (kept, noise.iter().filter(|n| **n).count())
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
    fn replication_between_synapse_processes_is_not_outbound() {
        let line = "synapse.http.client - 978 - INFO - POST-11 - Received response to POST synapse-replication://master/_synapse/replication/send_events/nUIwGGNiaU: 200";
        assert!(outbound_lines(line).is_empty());
        // A replication URL naming another server in the same line still counts.
        let line = "synapse.http.client - 978 - INFO - POST-11 - Received response to POST synapse-replication://master/x?next=https://evil.example/: 200";
        assert_eq!(outbound_lines(line), vec![line]);
    }

    const SHUTDOWN_NOISE: &str = "\
twisted - 273 - INFO - sentinel - Received SIGTERM, shutting down.
synapse.app._base - 741 - INFO - log_shutdown - Shutting down...
synapse.metrics.background_process_metrics - 381 - ERROR - send-cmd-7 - Background process 'send-cmd' threw an exception
Traceback (most recent call last):
  File \"/x/synapse/replication/tcp/redis.py\", line 279, in _async_send_command
    raise r
txredisapi.ConnectionError: Lost connection
twisted - 273 - INFO - sentinel - Main loop terminated.
";

    #[test]
    fn the_redis_race_at_shutdown_is_left_out_and_nothing_else() {
        let log = format!("{QUIET}{SHUTDOWN_NOISE}");
        let (errors, noise) = error_lines_but_shutdown_noise(&log);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(noise, 5);
        // The same error while running (no SIGTERM before it) counts.
        let running = SHUTDOWN_NOISE.replacen("Received SIGTERM, shutting down.", "running", 1);
        assert_eq!(error_lines_but_shutdown_noise(&running).0.len(), 2);
        // After a restart the process is running again.
        let restarted = format!(
            "{}twisted - 273 - INFO - call_when_running - SynapseSite starting on '/s'\n{}",
            SHUTDOWN_NOISE,
            SHUTDOWN_NOISE.replacen("Received SIGTERM, shutting down.", "running", 1)
        );
        assert_eq!(error_lines_but_shutdown_noise(&restarted).0.len(), 2);
        // Another error at shutdown counts, and so does another traceback.
        let other = SHUTDOWN_NOISE.replace("Lost connection", "Timeout");
        assert_eq!(error_lines_but_shutdown_noise(&other).0.len(), 2);
        let other = format!("{SHUTDOWN_NOISE}synapse.x - 1 - ERROR - main - Failed\n");
        assert_eq!(
            error_lines_but_shutdown_noise(&other).0,
            vec!["synapse.x - 1 - ERROR - main - Failed"]
        );
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
