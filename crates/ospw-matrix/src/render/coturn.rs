//! Derives coturn's configuration from the host description.
//!
//! The result is a *template*: it has no `static-auth-secret`, which
//! `ospw-matrix materialize coturn` adds at service start
//! ([`crate::components::coturn::materialize`]).

use std::net::IpAddr;

use crate::components::coturn::{
    is_exemptable_own_address, required_denied_peer_ips, TurnserverConf,
};
use crate::error::ValidationErrors;
use crate::host::HostDescription;
use crate::values::parse_port_range;

/// Derives `turnserver.conf` (without its secret), merges `turn.settings`
/// last, and checks the privacy invariants. Errors name the host-description
/// field at fault (`turn.settings.<option>` for a setting that breaks an
/// invariant).
pub fn turnserver(host: &HostDescription) -> Result<TurnserverConf, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let conf = derive(host, &mut errs);
    let Some(mut conf) = conf else {
        return Err(errs);
    };
    let derived = conf.clone();
    merge_settings(host, &mut conf, &mut errs);
    check_derived_ports(&derived, &conf, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    if !host.turn.settings.contains_key("allowed-peer-ip") {
        // Settings may have changed the server's addresses.
        conf.allowed_peer_ips = own_exemptions(&conf);
    }
    for v in conf.privacy_violations().errors {
        errs.push(
            format!("turn.settings.{}", v.path),
            format!("breaks a privacy invariant: {} {}", v.path, v.message),
        );
    }
    errs.into_result(conf)
}

/// The configuration derived from the typed host-description fields.
fn derive(host: &HostDescription, errs: &mut ValidationErrors) -> Option<TurnserverConf> {
    let t = &host.turn;
    let range = match parse_port_range(&t.relay_ports) {
        Ok(r) => r,
        Err(message) => {
            errs.push("turn.relay_ports", message);
            return None;
        }
    };
    let mut conf = TurnserverConf {
        listening_port: Some(t.port),
        listening_ips: t.listening_ips.clone(),
        relay_ips: t.relay_ip.iter().cloned().collect(),
        external_ips: t.external_ip.iter().cloned().collect(),
        min_port: Some(range.first),
        max_port: Some(range.last),
        realm: Some(host.turn_realm().to_owned()),
        use_auth_secret: true,
        static_auth_secret: None,
        user_quota: Some(t.user_quota),
        total_quota: Some(t.total_quota),
        // WebRTC expects FINGERPRINT attributes.
        fingerprint: true,
        no_cli: true,
        no_multicast_peers: true,
        no_tcp_relay: true,
        no_software_attribute: true,
        denied_peer_ips: required_denied_peer_ips(),
        // Everything to standard output: the journal under systemd, and no
        // log file left in /var/log or /tmp.
        log_file: Some("stdout".to_owned()),
        ..TurnserverConf::default()
    };
    match &t.tls {
        Some(tls) => {
            conf.tls_listening_port = Some(tls.port);
            conf.cert = Some(tls.cert_file.clone());
            conf.pkey = Some(tls.key_file.clone());
            conf.no_tlsv1 = true;
            conf.no_tlsv1_1 = true;
        }
        None => {
            // No certificate: no TLS or DTLS listener at all, rather than
            // coturn's warnings about a missing certificate.
            conf.no_tls = true;
            conf.no_dtls = true;
        }
    }
    // Calls between two users of this server relay TURN to TURN: the
    // server's own (often private) addresses must stay reachable as peers,
    // as Synapse's TURN guide does with allowed-peer-ip.
    conf.allowed_peer_ips = own_exemptions(&conf);
    Some(conf)
}

/// coturn's ports, each with the host-description field that sets it:
/// Synapse hands the listening ports to clients, the firewall opens them and
/// validation checks them for collisions, so `turn.settings` may restate
/// them but not change them.
pub const DERIVED_PORTS: [(&str, &str); 4] = [
    ("listening-port", "turn.port"),
    ("tls-listening-port", "turn.tls.port"),
    ("min-port", "turn.relay_ports"),
    ("max-port", "turn.relay_ports"),
];

/// Reports each [`DERIVED_PORTS`] option that `turn.settings` changed.
fn check_derived_ports(
    derived: &TurnserverConf,
    merged: &TurnserverConf,
    errs: &mut ValidationErrors,
) {
    let ports = |c: &TurnserverConf| {
        [
            c.listening_port,
            c.tls_listening_port,
            c.min_port,
            c.max_port,
        ]
    };
    for ((key, field), (before, after)) in DERIVED_PORTS
        .iter()
        .zip(ports(derived).into_iter().zip(ports(merged)))
    {
        if before != after {
            errs.push(
                format!("turn.settings.{key}"),
                format!(
                    "changes a port derived from {field}: set {field} instead, so Synapse, the \
                     firewall and the collision checks agree with coturn"
                ),
            );
        }
    }
}

/// The server's own addresses worth exempting from `denied-peer-ip`.
fn own_exemptions(conf: &TurnserverConf) -> Vec<String> {
    conf.own_addresses()
        .into_iter()
        .filter(|a| is_exemptable_own_address(*a))
        .map(|a: IpAddr| a.to_string())
        .collect()
}

/// Merges `turn.settings`: a string or number sets `key=value`, `true` sets
/// the flag, `false` or `null` removes the option, a list repeats it.
fn merge_settings(host: &HostDescription, conf: &mut TurnserverConf, errs: &mut ValidationErrors) {
    for (key, value) in &host.turn.settings {
        let path = format!("turn.settings.{key}");
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errs.push(
                path,
                "is not a coturn option name: expected letters, digits and hyphens, such as stale-nonce",
            );
            continue;
        }
        // Secrets by shape (crate::inline_secrets): the key's name or the value.
        if key == "static-auth-secret" || !crate::inline_secrets::find(value, &path, key).is_empty()
        {
            errs.push(
                path,
                if key == "static-auth-secret" {
                    "secret values may not be written inline (they would end up in world-readable files): \
                     use secrets.turn_shared_secret_file"
                } else {
                    "holds a secret inline, which would end up in world-readable files: coturn reads \
                     its only secret from secrets.turn_shared_secret_file (added at service start); \
                     leave this option out"
                },
            );
            continue;
        }
        let values = match setting_values(value) {
            Ok(v) => v,
            Err(message) => {
                errs.push(path, message);
                continue;
            }
        };
        if let Err(e) = conf.set(key, values) {
            for err in e.errors {
                errs.push(format!("turn.settings.{}", err.path), err.message);
            }
        }
    }
}

fn scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn setting_values(value: &serde_json::Value) -> Result<Vec<Option<String>>, String> {
    let expected =
        "expected a string, a number, true (a flag), false (remove) or a list of strings";
    match value {
        serde_json::Value::Bool(true) => Ok(vec![None]),
        serde_json::Value::Bool(false) | serde_json::Value::Null => Ok(vec![]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                scalar(item)
                    .map(Some)
                    .ok_or_else(|| format!("{item} is not a string or a number: {expected}"))
            })
            .collect(),
        other => match scalar(other) {
            Some(s) if s.contains('\n') || s.contains('\r') => {
                Err(format!("{s:?} holds a line break: {expected}"))
            }
            Some(s) => Ok(vec![Some(s)]),
            None => Err(format!("{other} is not a value coturn reads: {expected}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::TurnTls;

    fn host() -> HostDescription {
        crate::load::example_host().unwrap()
    }

    #[test]
    fn example_derivation() {
        let conf = turnserver(&host()).unwrap();
        assert_eq!(conf.listening_port, Some(3478));
        assert_eq!(conf.realm.as_deref(), Some("turn.example.org"));
        assert_eq!((conf.min_port, conf.max_port), (Some(49152), Some(65535)));
        assert_eq!((conf.user_quota, conf.total_quota), (Some(12), Some(1200)));
        assert!(conf.use_auth_secret && conf.no_cli && conf.no_tcp_relay);
        assert!(conf.no_tls && conf.no_dtls);
        assert_eq!(conf.tls_listening_port, None);
        assert_eq!(conf.static_auth_secret, None);
        assert!(conf.allowed_peer_ips.is_empty());
        assert!(conf.privacy_violations().is_empty());
        let text = conf.to_conf_string();
        assert!(!text.contains("static-auth-secret"));
        assert!(text
            .lines()
            .any(|l| l == "denied-peer-ip=10.0.0.0-10.255.255.255"));
    }

    #[test]
    fn realm_ports_tls_and_own_addresses() {
        let mut h = host();
        h.turn.realm = Some("realm.example.org".into());
        h.turn.port = 3479;
        h.turn.relay_ports = "50000-50100".into();
        h.turn.listening_ips = vec!["10.1.2.3".into(), "127.0.0.1".into()];
        h.turn.relay_ip = Some("10.1.2.4".into());
        h.turn.external_ip = Some("198.51.100.9/10.1.2.3".into());
        h.turn.tls = Some(TurnTls {
            port: 5350,
            cert_file: "/etc/turn/cert.pem".into(),
            key_file: "/etc/turn/key.pem".into(),
        });
        let conf = turnserver(&h).unwrap();
        assert_eq!(conf.realm.as_deref(), Some("realm.example.org"));
        assert_eq!(conf.listening_port, Some(3479));
        assert_eq!((conf.min_port, conf.max_port), (Some(50000), Some(50100)));
        assert_eq!(conf.tls_listening_port, Some(5350));
        assert_eq!(conf.cert, Some("/etc/turn/cert.pem".into()));
        assert_eq!(conf.pkey, Some("/etc/turn/key.pem".into()));
        assert!(conf.no_tlsv1 && conf.no_tlsv1_1 && !conf.no_tls);
        assert_eq!(conf.relay_ips, vec!["10.1.2.4"]);
        assert_eq!(conf.external_ips, vec!["198.51.100.9/10.1.2.3"]);
        // Own addresses, loopback left out.
        assert_eq!(
            conf.allowed_peer_ips,
            vec!["10.1.2.3", "10.1.2.4", "198.51.100.9"]
        );
        assert!(conf.privacy_violations().is_empty());
    }

    #[test]
    fn realm_defaults_to_matrix_host() {
        let mut h = host();
        h.turn.host = None;
        h.turn.realm = None;
        let conf = turnserver(&h).unwrap();
        assert_eq!(conf.realm.as_deref(), Some("matrix.example.org"));
    }

    #[test]
    fn settings_merge() {
        let mut h = host();
        let s = &mut h.turn.settings;
        s.insert("stale-nonce".into(), serde_json::json!(600));
        s.insert("server-name".into(), serde_json::json!("turn.example.org"));
        s.insert("mobility".into(), serde_json::json!(true));
        s.insert("fingerprint".into(), serde_json::json!(false));
        // Restating a derived port is fine.
        s.insert("listening-port".into(), serde_json::json!(3478));
        s.insert(
            "denied-peer-ip".into(),
            serde_json::json!([
                "0.0.0.0-255.255.255.255",
                "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            ]),
        );
        let conf = turnserver(&h).unwrap();
        let text = conf.to_conf_string();
        for line in [
            "stale-nonce=600",
            "server-name=turn.example.org",
            "mobility",
            "listening-port=3478",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(!conf.fingerprint);
        assert_eq!(conf.denied_peer_ips.len(), 2);

        // Addresses set through settings are exempted as the typed ones are.
        let mut h = host();
        h.turn
            .settings
            .insert("relay-ip".into(), serde_json::json!("10.9.8.7"));
        let conf = turnserver(&h).unwrap();
        assert_eq!(conf.allowed_peer_ips, vec!["10.9.8.7"]);
    }

    #[test]
    fn settings_may_not_change_derived_ports() {
        let mut h = host();
        for (key, value) in [
            ("listening-port", serde_json::json!(3490)),
            ("tls-listening-port", serde_json::json!(5350)),
            ("min-port", serde_json::json!(40000)),
            ("max-port", false.into()),
        ] {
            h.turn.settings.insert(key.into(), value);
        }
        let errs = turnserver(&h).unwrap_err();
        let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "turn.settings.listening-port",
                "turn.settings.tls-listening-port",
                "turn.settings.min-port",
                "turn.settings.max-port",
            ]
        );
        assert!(errs.errors[0].message.contains("turn.port"), "{errs}");
    }

    #[test]
    fn breaking_settings_are_refused_with_their_path() {
        let cases: [(&str, serde_json::Value); 8] = [
            ("allow-loopback-peers", serde_json::json!(true)),
            ("no-cli", serde_json::json!(false)),
            ("use-auth-secret", serde_json::json!(false)),
            ("no-tcp-relay", serde_json::json!(false)),
            ("no-multicast-peers", serde_json::json!(false)),
            ("lt-cred-mech", serde_json::json!(true)),
            (
                "denied-peer-ip",
                serde_json::json!(["10.0.0.0-10.255.255.255"]),
            ),
            (
                "allowed-peer-ip",
                serde_json::json!("192.168.0.0-192.168.255.255"),
            ),
        ];
        for (key, value) in cases {
            let mut h = host();
            h.turn.settings.insert(key.into(), value);
            let err = turnserver(&h).unwrap_err();
            assert!(
                err.mentions(&format!("turn.settings.{key}")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn bad_setting_values() {
        for (key, value) in [
            ("listening-port", serde_json::json!("http")),
            ("stale-nonce", serde_json::json!({"a": 1})),
            ("realm", serde_json::json!(["a.org", "b.org"])),
            ("bad key", serde_json::json!(1)),
            ("static-auth-secret", serde_json::json!("x")),
            ("server-name", serde_json::json!("a\nallow-loopback-peers")),
        ] {
            let mut h = host();
            h.turn.settings.insert(key.into(), value);
            let err = turnserver(&h).unwrap_err();
            assert!(
                err.mentions(&format!("turn.settings.{key}")),
                "{key}: {err}"
            );
        }
    }
}
