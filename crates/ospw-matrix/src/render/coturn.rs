//! Derives coturn's configuration from the host description.
//!
//! The result is a *template*: it has no `static-auth-secret`, which
//! `ospw-matrix materialize coturn` adds at service start
//! ([`crate::components::coturn::materialize`]).

use std::net::IpAddr;

use crate::components::coturn::{
    check_entry, is_exemptable_own_address, required_denied_peer_ips, ConfEntry, TurnserverConf,
    EXPORTER_OPTIONS,
};
use crate::error::ValidationErrors;
use crate::host::{HostDescription, METRICS_ADDRESS};
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
    // The typed fields go through the same check as any option: what
    // coturn reads must be what the field says (one line, no byte coturn
    // treats specially, within coturn's buffers).
    for entry in conf.to_entries() {
        if let Err(e) = check_entry(&entry) {
            errs.push(typed_field(&entry.key), e.message);
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let derived = conf.clone();
    merge_settings(host, &mut conf, &mut errs);
    check_contradictions(host, &derived, &conf, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    if !host.turn.settings.contains_key("allowed-peer-ip") {
        // Settings may have changed the server's addresses.
        conf.allowed_peer_ips = own_exemptions(&conf);
    }
    for v in conf.privacy_violations().errors {
        let path = if host.turn.settings.contains_key(&v.path) || derived_field(&v.path).is_none() {
            format!("turn.settings.{}", v.path)
        } else {
            typed_field(&v.path).to_owned()
        };
        errs.push(
            path,
            format!("breaks a privacy invariant: {} {}", v.path, v.message),
        );
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // Last, the file itself, read back as coturn will read it.
    match TurnserverConf::parse(&conf.to_conf_string()) {
        Ok(again) if again == conf => Ok(conf),
        Ok(_) => {
            errs.push(
                "turn.settings",
                "the rendered turnserver.conf would not read back as checked: expected plain \
                 values of coturn options",
            );
            Err(errs)
        }
        Err(e) => {
            for err in e.errors {
                errs.push(
                    "turn.settings",
                    format!("coturn would read turnserver.conf differently: {err}"),
                );
            }
            Err(errs)
        }
    }
}

/// The host-description field an option is derived from, when there is one.
pub fn derived_field(option: &str) -> Option<&'static str> {
    DERIVED
        .iter()
        .find(|(o, _)| *o == option)
        .map(|(_, field)| *field)
}

fn typed_field(option: &str) -> &'static str {
    derived_field(option).unwrap_or("turn")
}

/// Every option derived from a typed field, with that field. `turn.settings`
/// may restate these but not change them: Synapse hands the ports to
/// clients, the firewall opens them, validation checks them for collisions,
/// and a second spelling of one value would leave the typed field silently
/// overridden.
pub const DERIVED: [(&str, &str); 16] = [
    ("listening-port", "turn.port"),
    ("tls-listening-port", "turn.tls.port"),
    ("min-port", "turn.relay_ports"),
    ("max-port", "turn.relay_ports"),
    ("listening-ip", "turn.listening_ips"),
    ("relay-ip", "turn.relay_ip"),
    ("external-ip", "turn.external_ip"),
    ("realm", "turn.realm"),
    ("user-quota", "turn.user_quota"),
    ("total-quota", "turn.total_quota"),
    ("cert", "turn.tls.cert_file"),
    ("pkey", "turn.tls.key_file"),
    ("no-tls", "turn.tls"),
    ("no-dtls", "turn.tls"),
    ("no-tlsv1", "turn.tls"),
    ("no-tlsv1_1", "turn.tls"),
];

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
    if host.metrics.enable {
        // coturn's Prometheus exporter, on loopback only (without an
        // address it listens on every interface).
        conf.extra.push(ConfEntry::flag("prometheus"));
        conf.extra.push(ConfEntry::value(
            "prometheus-port",
            host.metrics.coturn_port.to_string(),
        ));
        conf.extra
            .push(ConfEntry::value("prometheus-address", METRICS_ADDRESS));
    }
    // Calls between two users of this server relay TURN to TURN: the
    // server's own (often private) addresses must stay reachable as peers,
    // as Synapse's TURN guide does with allowed-peer-ip.
    conf.allowed_peer_ips = own_exemptions(&conf);
    Some(conf)
}

/// Reports each [`DERIVED`] option that `turn.settings` changes, naming the
/// setting and the typed field. The addresses (`listening-ip`, `relay-ip`,
/// `external-ip`) may be set through `settings` while the typed field is
/// empty.
fn check_contradictions(
    host: &HostDescription,
    derived: &TurnserverConf,
    merged: &TurnserverConf,
    errs: &mut ValidationErrors,
) {
    let values = |c: &TurnserverConf, key: &str| -> Vec<Option<String>> {
        c.to_entries()
            .into_iter()
            .filter(|e| e.key == key)
            .map(|e| e.value)
            .collect()
    };
    for (key, field) in DERIVED {
        if !host.turn.settings.contains_key(key) {
            continue;
        }
        let before = values(derived, key);
        let after = values(merged, key);
        let address = matches!(key, "listening-ip" | "relay-ip" | "external-ip");
        if before == after || (address && before.is_empty()) {
            continue;
        }
        let shown = |v: &[Option<String>]| -> String {
            match v {
                [] => "unset".to_owned(),
                [None] => "on".to_owned(),
                v => v
                    .iter()
                    .map(|x| x.as_deref().unwrap_or("on"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        };
        let zero = key.ends_with("-quota") && after == [Some("0".to_owned())];
        let note = if zero {
            " (0 means no limit to coturn)"
        } else {
            ""
        };
        errs.push(
            format!("turn.settings.{key}"),
            format!(
                "contradicts {field}: the setting says {}{note}, {field} gives {}; set {field} \
                 instead, so Synapse, the firewall and the checks agree with coturn",
                shown(&after),
                shown(&before)
            ),
        );
    }
}

/// The server's own addresses worth exempting from `denied-peer-ip`: an
/// address in a denied range only when coturn proves it is this host's
/// ([`TurnserverConf::proves_own`]), so a relay-ip or an external address
/// naming another machine never opens it.
fn own_exemptions(conf: &TurnserverConf) -> Vec<String> {
    conf.own_addresses()
        .into_iter()
        .filter(|a| is_exemptable_own_address(*a))
        .filter(|a| !TurnserverConf::in_required_denied_range(*a) || conf.proves_own(*a))
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
        if EXPORTER_OPTIONS.contains(&key.as_str()) {
            errs.push(
                path,
                "is set by metrics.enable and metrics.coturn_port (coturn's Prometheus exporter, \
                 on 127.0.0.1 only): set those instead",
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
        // Removing an option coturn does not know removes nothing: the
        // setting would be silently ignored (`No-Tcp-Relay: false`).
        if values.is_empty() && crate::components::coturn::options::find(key).is_none() {
            if let Err(e) = check_entry(&ConfEntry::flag(key)) {
                errs.push(path, e.message);
            }
            continue;
        }
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
    fn metrics_turn_on_the_exporter_on_loopback_only() {
        let text = turnserver(&host()).unwrap().to_conf_string();
        assert!(!text.contains("prometheus"), "off by default");
        let mut h = host();
        h.metrics.enable = true;
        h.metrics.coturn_port = 9700;
        let conf = turnserver(&h).unwrap();
        assert!(conf.exporter_enabled());
        let text = conf.to_conf_string();
        for line in [
            "prometheus",
            "prometheus-port=9700",
            "prometheus-address=127.0.0.1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // turn.settings may not set the exporter's options (not even
        // restate them): metrics.* do.
        for (key, value) in [
            ("prometheus-port", serde_json::json!(9700)),
            ("prometheus-port", serde_json::json!(9999)),
            ("prometheus-address", serde_json::json!("0.0.0.0")),
            ("prometheus-address", serde_json::json!(null)),
            ("prometheus", serde_json::json!(true)),
        ] {
            let mut bad = h.clone();
            bad.turn.settings.insert(key.into(), value);
            let errs = turnserver(&bad).unwrap_err();
            assert!(
                errs.mentions(&format!("turn.settings.{key}")),
                "{key}: {errs}"
            );
        }
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
        // Own addresses, loopback left out, and an address in a denied
        // range (here the documentation range standing in for a public
        // address) only when coturn proves it is this host's.
        assert_eq!(conf.allowed_peer_ips, vec!["10.1.2.3", "10.1.2.4"]);
        assert!(conf.privacy_violations().is_empty());
        // Two relay addresses in a denied range: neither is proven to be
        // this host's, so neither is exempted (one could be the router).
        let mut h = host();
        h.turn.settings.insert(
            "relay-ip".into(),
            serde_json::json!(["10.0.0.5", "192.168.1.1"]),
        );
        let conf = turnserver(&h).unwrap();
        assert!(
            conf.allowed_peer_ips.is_empty(),
            "{:?}",
            conf.allowed_peer_ips
        );
        h.turn.listening_ips = vec!["10.0.0.5".into()];
        let conf = turnserver(&h).unwrap();
        assert_eq!(conf.allowed_peer_ips, vec!["10.0.0.5"]);
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
        let mut denied = crate::components::coturn::required_denied_peer_ips();
        denied.push("203.0.114.0-203.0.114.255".into());
        s.insert("denied-peer-ip".into(), serde_json::json!(denied));
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
        assert_eq!(conf.denied_peer_ips.len(), 33);

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
    fn settings_contradicting_a_typed_field_name_both() {
        for (key, value, field) in [
            (
                "realm",
                serde_json::json!("other.example.org"),
                "turn.realm",
            ),
            ("user-quota", serde_json::json!(0), "turn.user_quota"),
            ("total-quota", serde_json::json!("5000"), "turn.total_quota"),
            ("no-tls", serde_json::json!(false), "turn.tls"),
            ("min-port", serde_json::json!(40000), "turn.relay_ports"),
        ] {
            let mut h = host();
            h.turn.settings.insert(key.into(), value);
            let err = turnserver(&h).unwrap_err();
            let e = &err.errors[0];
            assert_eq!(e.path, format!("turn.settings.{key}"), "{err}");
            assert!(e.message.contains(field), "{key}: {err}");
        }
        let mut h = host();
        h.turn
            .settings
            .insert("user-quota".into(), serde_json::json!(0));
        let err = turnserver(&h).unwrap_err();
        assert!(err.errors[0].message.contains("no limit"), "{err}");
        // Restating the typed value is fine.
        let mut h = host();
        h.turn
            .settings
            .insert("user-quota".into(), serde_json::json!(12));
        h.turn
            .settings
            .insert("realm".into(), serde_json::json!("turn.example.org"));
        assert!(turnserver(&h).is_ok());
        // A typed address list set: settings may not replace it.
        let mut h = host();
        h.turn.listening_ips = vec!["10.0.0.5".into()];
        h.turn
            .settings
            .insert("listening-ip".into(), serde_json::json!("10.0.0.6"));
        let err = turnserver(&h).unwrap_err();
        assert!(
            err.errors[0].message.contains("turn.listening_ips"),
            "{err}"
        );
    }

    #[test]
    fn typed_fields_coturn_would_read_differently() {
        for (cert, why) in [
            ("/etc/turn/cert.pem\nallowed-peer-ip=10.0.0.1", "line break"),
            ("/etc/turn/cert.pem\rx", "line break"),
            ("/etc/turn/\0cert.pem", "NUL"),
            ("/etc/turn/cert.pem ", "space"),
        ] {
            let mut h = host();
            h.turn.tls = Some(TurnTls {
                port: 5349,
                cert_file: cert.into(),
                key_file: "/etc/turn/key.pem".into(),
            });
            let err = turnserver(&h).unwrap_err();
            assert!(err.mentions("turn.tls.cert_file"), "{cert:?}: {err}");
            assert!(err.errors[0].message.contains(why), "{cert:?}: {err}");
        }
        let mut h = host();
        h.turn.realm = Some(format!("{}.example.org", "r".repeat(120)));
        let err = turnserver(&h).unwrap_err();
        assert!(err.mentions("turn.realm"), "{err}");
    }

    #[test]
    fn injection_through_settings_is_refused() {
        let filler = "a".repeat(1011);
        for (key, value) in [
            (
                "server-name",
                serde_json::json!(format!("{filler}allowed-peer-ip=10.0.0.0-10.255.255.255")),
            ),
            (
                "server-name",
                serde_json::json!("x\nallowed-peer-ip=10.0.0.1"),
            ),
            ("server-name", serde_json::json!(["ok", "x\nno-auth"])),
            ("cipher-list", serde_json::json!("x\u{0}y")),
            ("server-name", serde_json::json!("-x")),
            ("server-name", serde_json::json!("\"quoted\"")),
            ("stale-nonce", serde_json::json!("10m")),
            ("denied-peer-ip", serde_json::json!(["10.0.0.0/8"])),
            ("no-tcp-relay", serde_json::json!("nope")),
            (
                "denid-peer-ip",
                serde_json::json!("10.0.0.0-10.255.255.255"),
            ),
            ("tlsv1", serde_json::json!(true)),
            ("prometheus", serde_json::json!(true)),
        ] {
            let mut h = host();
            h.turn.settings.insert(key.into(), value.clone());
            let err = turnserver(&h).unwrap_err();
            assert!(
                err.mentions(&format!("turn.settings.{key}")),
                "{key} {value}: {err}"
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
