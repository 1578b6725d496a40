//! TURN from the outside: the credentials Synapse hands to clients
//! (`/voip/turnServer`, asked with the CLI's admin service account) must
//! allocate a relay over UDP and over TCP (and TLS when configured), and a
//! permission for a private peer must be refused (403 Forbidden IP).
//!
//! The client is the CLI's own (`crate::turn_client`, about 300 lines of
//! std, HMAC-SHA1 and MD5), not coturn's `turnutils_uclient`: uclient leaves
//! its two UDP allocations (a probe and the real one) alive for their
//! 10-minute lifetime, and coturn counts allocations per user against
//! `user-quota`, so a few doctor runs in a row were refused with 486
//! (Allocation Quota Reached); uclient also needs the password on its
//! command line and prints no error code for a refused allocation. The
//! TURN crates (turn-client-proto, webrtc-rs' turn) would add some 20
//! crates to what NixOS users compile. This client releases its
//! allocation (Refresh, LIFETIME 0) and reads the exact error codes; the
//! acceptance suite checks it against the real coturn, and cross-checks
//! coturn with turnutils_uclient itself.

use std::net::{IpAddr, SocketAddr, TcpStream};

use super::report::{CheckId, Findings, Side, Status};
use super::Ctx;
use crate::admin_api::{expect_ok, AdminClient};
use crate::turn_client::{self, Answer, Conn};

/// The private peer a relay is asked for (RFC 1918).
pub const PRIVATE_PEER: &str = "10.0.0.1";

fn add(
    f: &mut Findings,
    id: CheckId,
    target: Option<&str>,
    status: Status,
    message: impl Into<String>,
    hint: Option<String>,
) {
    f.add(id, Side::Outside, target, status, message, hint);
}

/// One `turn:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUri {
    /// `turns:` (TLS).
    pub secure: bool,
    /// The host name or address.
    pub host: String,
    /// The port (3478, or 5349 for `turns:`, when absent).
    pub port: u16,
    /// `udp` or `tcp` (default: UDP for `turn:`, TCP for `turns:`).
    pub transport: String,
}

/// Parses `turn:HOST[:PORT][?transport=udp|tcp]` (RFC 7065).
pub fn parse_turn_uri(uri: &str) -> Option<TurnUri> {
    let (secure, rest) = if let Some(r) = uri.strip_prefix("turns:") {
        (true, r)
    } else {
        (false, uri.strip_prefix("turn:")?)
    };
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if secure => 5349,
        None => 3478,
    };
    let transport = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("transport="))
        .map_or_else(
            || if secure { "tcp" } else { "udp" }.to_owned(),
            str::to_ascii_lowercase,
        );
    if host.is_empty() || !matches!(transport.as_str(), "udp" | "tcp") {
        return None;
    }
    Some(TurnUri {
        secure,
        host,
        port,
        transport,
    })
}

/// Synapse's `/voip/turnServer` answer.
struct Credentials {
    uris: Vec<String>,
    username: String,
    password: String,
    ttl: u64,
}

fn credentials(admin: &mut Result<AdminClient, String>) -> Result<Credentials, String> {
    let client = admin.as_mut().map_err(|e| e.clone())?;
    let r = client
        .call("GET", "/_matrix/client/v3/voip/turnServer", None)
        .map_err(|e| e.to_string())?;
    expect_ok(&r, "GET /_matrix/client/v3/voip/turnServer").map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("/voip/turnServer answered something that is not JSON: {e}"))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let uris: Vec<String> = v
        .get("uris")
        .and_then(|u| u.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let creds = Credentials {
        uris,
        username: text("username"),
        password: text("password"),
        ttl: v.get("ttl").and_then(|t| t.as_u64()).unwrap_or(0),
    };
    if creds.uris.is_empty() || creds.username.is_empty() || creds.password.is_empty() {
        return Err(
            "/voip/turnServer hands out no TURN URIs or credentials (turn_uris and turn_shared_secret_path in homeserver.yaml)"
                .into(),
        );
    }
    Ok(creds)
}

/// Runs the TURN checks.
pub fn run(ctx: &Ctx, admin: &mut Result<AdminClient, String>, f: &mut Findings) {
    let creds = match credentials(admin) {
        Ok(c) => c,
        Err(e) => {
            add(
                f,
                CheckId::TurnCredentials,
                None,
                Status::Fail,
                format!("no TURN credentials from Synapse: {e}"),
                Some("run doctor as root (it uses the CLI's admin service account, like `ospw-matrix user list`) while Synapse runs".into()),
            );
            return;
        }
    };
    let expected = ctx.homeserver.turn_uris.clone().unwrap_or_default();
    let mut unexpected: Vec<&String> = creds
        .uris
        .iter()
        .filter(|u| !expected.contains(u))
        .collect();
    unexpected.sort();
    if unexpected.is_empty() {
        add(
            f,
            CheckId::TurnCredentials,
            None,
            Status::Pass,
            format!(
                "/voip/turnServer hands out {} with credentials valid for {} s",
                creds.uris.join(", "),
                creds.ttl
            ),
            None,
        );
    } else {
        add(
            f,
            CheckId::TurnCredentials,
            None,
            Status::Fail,
            format!(
                "/voip/turnServer hands out {} that the host description does not give ({})",
                unexpected
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                expected.join(", ")
            ),
            Some("Synapse runs with an older configuration: restart it (systemctl restart ospw-matrix-synapse)".into()),
        );
    }
    let peer: IpAddr = PRIVATE_PEER.parse().unwrap_or(IpAddr::from([10, 0, 0, 1]));
    let mut seen = Vec::new();
    for uri in &creds.uris {
        let Some(t) = parse_turn_uri(uri) else {
            continue;
        };
        let target = if t.secure {
            format!("{} over TLS", t.transport)
        } else {
            t.transport.clone()
        };
        if seen.contains(&target) {
            continue;
        }
        seen.push(target.clone());
        let addr: Option<SocketAddr> = ctx
            .resolver
            .socket_addrs(&t.host, t.port)
            .ok()
            .and_then(|a| a.into_iter().next());
        let Some(addr) = addr else {
            add(
                f,
                CheckId::TurnAllocate,
                Some(&target),
                Status::Fail,
                format!("{uri}: {} does not resolve", t.host),
                Some("see dns.resolves".into()),
            );
            continue;
        };
        let probe = connect(ctx, &t, addr).and_then(|mut conn| {
            turn_client::probe(&mut conn, &creds.username, &creds.password, peer)
        });
        let hint = Some(format!(
            "is coturn running and reachable on {} port {} (see services.listening), and does it share Synapse's TURN secret (restart both after changing it)?",
            if t.transport == "udp" { "UDP" } else { "TCP" },
            t.port
        ));
        let probe = match probe {
            Ok(p) => p,
            Err(e) => {
                add(
                    f,
                    CheckId::TurnAllocate,
                    Some(&target),
                    Status::Fail,
                    format!("{uri} at {addr}: {e}"),
                    hint,
                );
                add(
                    f,
                    CheckId::TurnPrivatePeer,
                    Some(&target),
                    Status::Warn,
                    "not checked: no relay allocated",
                    None,
                );
                continue;
            }
        };
        match &probe.relay {
            Ok(relay) => add(
                f,
                CheckId::TurnAllocate,
                Some(&target),
                Status::Pass,
                format!("{uri} at {addr}: relay {relay} allocated with Synapse's credentials (and released)"),
                None,
            ),
            Err(answer) => {
                let hint = match answer {
                    Answer::Error(401, _) => Some("coturn refuses Synapse's credentials: both must read the same TURN secret (turn_shared_secret): restart ospw-matrix-coturn and ospw-matrix-synapse".to_owned()),
                    Answer::Error(486, _) => Some("the allocation quota (turn.user_quota, per user) is used up: other sessions of the CLI's service account hold allocations; they expire within 10 minutes".to_owned()),
                    _ => hint,
                };
                add(f, CheckId::TurnAllocate, Some(&target), Status::Fail, format!("{uri} at {addr}: Allocate refused: {answer}"), hint);
                add(f, CheckId::TurnPrivatePeer, Some(&target), Status::Warn, "not checked: no relay allocated", None);
                continue;
            }
        }
        match probe.permission {
            Some(Answer::Error(403, reason)) => add(
                f,
                CheckId::TurnPrivatePeer,
                Some(&target),
                Status::Pass,
                format!("a relay to {PRIVATE_PEER} is refused: 403 {reason}"),
                None,
            ),
            other => add(
                f,
                CheckId::TurnPrivatePeer,
                Some(&target),
                Status::Fail,
                match other {
                    Some(Answer::Success) | None => format!(
                        "coturn permits a relay to {PRIVATE_PEER}: calls could reach the host's private network"
                    ),
                    Some(answer) => format!("a permission for {PRIVATE_PEER} got {answer}, not 403 Forbidden IP"),
                },
                Some("turnserver.conf must deny private and loopback peers (denied-peer-ip): render the configuration again and restart coturn; never add allowed-peer-ip for them".into()),
            ),
        }
    }
}

/// A connection to the TURN server at `addr` for `uri`'s transport.
fn connect(ctx: &Ctx, uri: &TurnUri, addr: SocketAddr) -> Result<Conn, String> {
    if uri.transport == "udp" {
        return Conn::udp(addr, ctx.timeout);
    }
    if uri.secure {
        let (tls, info) = ctx
            .https
            .connect(addr, &uri.host)
            .map_err(|e| e.to_string())?;
        if let Some(problem) = info.problem {
            return Err(format!("the TURN server's certificate {problem}"));
        }
        return Ok(Conn::Stream(Box::new(tls)));
    }
    let tcp = TcpStream::connect_timeout(&addr, ctx.timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(ctx.timeout))
        .and_then(|()| tcp.set_write_timeout(Some(ctx.timeout)))
        .map_err(|e| e.to_string())?;
    Ok(Conn::Stream(Box::new(tcp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_uris_are_parsed() {
        assert_eq!(
            parse_turn_uri("turn:turn.example.org:3478?transport=udp"),
            Some(TurnUri {
                secure: false,
                host: "turn.example.org".into(),
                port: 3478,
                transport: "udp".into()
            })
        );
        let t = parse_turn_uri("turns:[2001:db8::1]?transport=TCP").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.transport.as_str()),
            ("2001:db8::1", 5349, "tcp")
        );
        assert_eq!(parse_turn_uri("turn:h").unwrap().transport, "udp");
        for bad in [
            "stun:h:3478",
            "turn::3478",
            "turn:h:x",
            "turn:h?transport=sctp",
        ] {
            assert_eq!(parse_turn_uri(bad), None, "{bad}");
        }
    }
}
