//! The options coturn understands and how it reads each value, from
//! coturn's own source (`long_options` and `set_option` in
//! `src/apps/relay/mainrelay.c`) in the versions this product runs on:
//! 4.6.1 (Debian 12, built with PostgreSQL, MySQL and Redis but without
//! Prometheus or MongoDB) and 4.7–4.8 (nixos-25.11, built with Prometheus
//! and SQLite only).
//!
//! coturn ignores a line whose option it does not know (it logs "Bad
//! configuration format"), reads most numbers with `atoi` (so `1h` is 1 and
//! `ten` is 0), copies text into fixed-size buffers (cutting what does not
//! fit), reads a flag's value by its first letter and stops on a value it
//! cannot read (`get_bool_value`), and ignores the value of a few flags
//! altogether. An option is accepted here only when every supported version
//! and build knows it and reads its value as written.

/// How coturn reads an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A flag read with `get_bool_value` (no value: on).
    Bool,
    /// A flag whose value coturn ignores: present means on.
    On,
    /// A number read with `atoi`.
    Int,
    /// Text copied into a buffer of this many bytes (one for the NUL).
    Text(usize),
    /// One IP address (coturn would look a host name up in DNS).
    Addr,
    /// An address range (`ADDRESS` or `FIRST-LAST`).
    Range,
    /// One of the listed words.
    Word(&'static [&'static str]),
}

/// Which supported coturn versions and builds know an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avail {
    /// All of them.
    All,
    /// Only 4.6; 4.7 removed it, and 4.7's default is what the option sets
    /// when switched on (`no-tlsv1`: TLS 1.0 is off from 4.7 on).
    OnIsLaterDefault,
    /// Only 4.6 (4.7 removed it).
    Until46,
    /// Only 4.7 and later.
    Since47,
    /// Only some builds (Debian's or nixpkgs').
    SomeBuilds,
}

/// One coturn option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The long option name, as written in `turnserver.conf`.
    pub name: &'static str,
    /// How its value is read.
    pub kind: Kind,
    /// Which versions know it.
    pub avail: Avail,
}

const fn o(name: &'static str, kind: Kind) -> Opt {
    Opt {
        name,
        kind,
        avail: Avail::All,
    }
}

const fn v(name: &'static str, kind: Kind, avail: Avail) -> Opt {
    Opt { name, kind, avail }
}

/// Text buffers of 1025 bytes; a line holds at most 1023 bytes anyway.
const T: Kind = Kind::Text(1025);

/// Every option of the supported versions.
pub const OPTIONS: &[Opt] = &[
    o("CA-file", T),
    o("Verbose", Kind::Bool),
    o("acme-redirect", T),
    o(
        "allocation-default-address-family",
        Kind::Word(&["ipv4", "ipv6", "keep"]),
    ),
    o("allow-loopback-peers", Kind::Bool),
    o("allowed-peer-ip", Kind::Range),
    o("alt-listening-port", Kind::Int),
    o("alt-tls-listening-port", Kind::Int),
    o("alternate-server", T),
    o("aux-server", T),
    o("bps-capacity", Kind::Int),
    o("cert", T),
    o("channel-lifetime", Kind::Int),
    o("check-origin-consistency", Kind::Bool),
    o("cipher-list", T),
    o("cli-ip", Kind::Addr),
    o("cli-max-output-sessions", Kind::Int),
    o("cli-password", Kind::Text(129)),
    o("cli-port", Kind::Int),
    o("daemon", Kind::Bool),
    o("db", T),
    o("denied-peer-ip", Kind::Range),
    o("dh-file", T),
    o("dh1066", Kind::Bool),
    o("dh566", Kind::Bool),
    o("ec-curve-name", Kind::Text(33)),
    // PUBLIC or PUBLIC/PRIVATE; checked by the model.
    o("external-ip", T),
    o("fingerprint", Kind::Bool),
    o("keep-address-family", Kind::Bool),
    o("listening-device", T),
    o("listening-ip", Kind::Addr),
    o("listening-port", Kind::Int),
    o("log-binding", Kind::Bool),
    o("log-file", T),
    o("lt-cred-mech", Kind::Bool),
    o("max-allocate-lifetime", Kind::Int),
    o("max-allocate-timeout", Kind::Int),
    o("max-bps", Kind::Int),
    o("max-port", Kind::Int),
    o("min-port", Kind::Int),
    o("mobility", Kind::Bool),
    o("ne", Kind::Int),
    o("new-log-timestamp", Kind::On),
    o("new-log-timestamp-format", T),
    o("no-auth", Kind::Bool),
    o("no-auth-pings", Kind::On),
    o("no-cli", Kind::Bool),
    o("no-dtls", Kind::Bool),
    o("no-dynamic-ip-list", Kind::On),
    o("no-dynamic-realms", Kind::On),
    o("no-multicast-peers", Kind::Bool),
    o("no-rfc5780", Kind::On),
    o("no-software-attribute", Kind::Bool),
    o("no-stdout-log", Kind::Bool),
    o("no-stun", Kind::Bool),
    o("no-tcp", Kind::Bool),
    o("no-tcp-relay", Kind::Bool),
    o("no-tls", Kind::Bool),
    o("no-tlsv1_2", Kind::Bool),
    o("no-udp", Kind::Bool),
    o("no-udp-relay", Kind::Bool),
    o("oauth", Kind::Bool),
    o("permission-lifetime", Kind::Int),
    o("pidfile", T),
    o("pkey", T),
    o("pkey-pwd", Kind::Text(513)),
    o("proc-group", T),
    o("proc-user", T),
    // STUN_MAX_REALM_SIZE + 1.
    o("realm", Kind::Text(128)),
    o("relay-device", T),
    o("relay-ip", Kind::Addr),
    o("relay-threads", Kind::Int),
    o("response-origin-only-with-rfc5780", Kind::Bool),
    o("rest-api-separator", Kind::Text(2)),
    o("secret-key-file", T),
    o("secure-stun", Kind::Bool),
    o("server-name", T),
    o("server-relay", Kind::Bool),
    o("simple-log", Kind::Bool),
    o("stale-nonce", Kind::Int),
    o("static-auth-secret", T),
    o("stun-only", Kind::Bool),
    o("syslog", Kind::Bool),
    o("syslog-facility", T),
    o("tcp-proxy-port", Kind::Int),
    o("tls-alternate-server", T),
    o("tls-listening-port", Kind::Int),
    o("total-quota", Kind::Int),
    o("udp-self-balance", Kind::Bool),
    o("use-auth-secret", Kind::On),
    o("user", T),
    o("user-quota", Kind::Int),
    o("userdb", T),
    o("verbose", Kind::Bool),
    o("web-admin", Kind::Bool),
    o("web-admin-ip", Kind::Addr),
    o("web-admin-listen-on-workers", Kind::Bool),
    o("web-admin-port", Kind::Int),
    // Known to 4.6 only.
    v("no-tlsv1", Kind::Bool, Avail::OnIsLaterDefault),
    v("no-tlsv1_1", Kind::Bool, Avail::OnIsLaterDefault),
    v("no-sslv2", Kind::On, Avail::Until46),
    v("no-sslv3", Kind::On, Avail::Until46),
    v("no-stun-backward-compatibility", Kind::Bool, Avail::Until46),
    v("prod", Kind::Bool, Avail::Until46),
    v("secret-ts-exp-time", Kind::On, Avail::Until46),
    // Known from 4.7 on.
    v("raw-public-keys", Kind::Bool, Avail::Since47),
    v("respond-http-unsupported", Kind::Bool, Avail::Since47),
    v("rfc5780", Kind::On, Avail::Since47),
    v("software-attribute", Kind::Bool, Avail::Since47),
    v("stun-backward-compatibility", Kind::Bool, Avail::Since47),
    v("tlsv1", Kind::Bool, Avail::Since47),
    v("tlsv1_1", Kind::Bool, Avail::Since47),
    // Only in some builds.
    v("prometheus", Kind::On, Avail::SomeBuilds),
    v("prometheus-port", Kind::Int, Avail::SomeBuilds),
    v("prometheus-username-labels", Kind::On, Avail::SomeBuilds),
    v("prometheus-address", T, Avail::SomeBuilds),
    v("prometheus-path", T, Avail::SomeBuilds),
    v("psql-userdb", T, Avail::SomeBuilds),
    v("sql-userdb", T, Avail::SomeBuilds),
    v("mysql-userdb", T, Avail::SomeBuilds),
    v("mongo-userdb", T, Avail::SomeBuilds),
    v("redis-userdb", T, Avail::SomeBuilds),
    v("redis-statsdb", T, Avail::SomeBuilds),
];

/// The option called `name`, if coturn knows it.
pub fn find(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// What coturn makes of a flag's value (`get_bool_value`), for the values it
/// reads unambiguously: no value, `1`/`0`, `yes`/`no`, `true`/`false` (in
/// any case: coturn looks at the first letter), `on`/`off` (as `on`, `On`,
/// `ON`). Anything else is refused: coturn would read `nonsense` as off,
/// `tomorrow` as on, and stop on `oN`.
pub fn flag_value(value: &str) -> Option<bool> {
    match value {
        "" | "1" | "on" | "On" | "ON" => Some(true),
        "0" | "off" | "Off" | "OFF" => Some(false),
        v => match v.to_ascii_lowercase().as_str() {
            "yes" | "true" => Some(true),
            "no" | "false" => Some(false),
            _ => None,
        },
    }
}

/// The expected forms of a flag's value, for messages.
pub const FLAG_FORMS: &str = "the bare option, or true/false, yes/no, on/off, 1/0";

/// Checks `value` of option `opt` against how coturn reads it; returns the
/// problem in words (never quoting more than a short prefix of the value).
pub fn check_value(opt: &Opt, value: &str) -> Result<(), String> {
    match opt.kind {
        Kind::Bool => flag_value(value).map(|_| ()).ok_or_else(|| {
            format!(
                "{} is not a flag value coturn reads as meant: expected {FLAG_FORMS}",
                quote_prefix(value)
            )
        }),
        Kind::On => match flag_value(value) {
            Some(true) => Ok(()),
            Some(false) => Err(
                "coturn ignores the value of this option and switches it on: remove the option \
                 instead"
                    .to_owned(),
            ),
            None => Err(format!(
                "{} is not a flag value: expected the bare option",
                quote_prefix(value)
            )),
        },
        Kind::Int => {
            if !value.is_empty() && value.len() <= 9 && value.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err(format!(
                    "{} is not a whole number: coturn reads numbers with atoi, so anything but \
                     digits (a unit, a sign, a fraction) is cut or read as 0; expected digits only, \
                     such as 600",
                    quote_prefix(value)
                ))
            }
        }
        Kind::Text(size) => {
            if value.is_empty() {
                Err("has no value: expected key=value".to_owned())
            } else if value.len() >= size {
                Err(format!(
                    "is {} bytes long: coturn keeps at most {} bytes of it and would cut the rest",
                    value.len(),
                    size - 1
                ))
            } else {
                Ok(())
            }
        }
        Kind::Addr => super::ranges::literal(value).map(|_| ()),
        Kind::Range => super::ranges::interval(value).map(|_| ()),
        Kind::Word(words) => {
            if words.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{} is not one of {}",
                    quote_prefix(value),
                    words.join(", ")
                ))
            }
        }
    }
}

/// A value for an error message: quoted, at most 40 characters (a value
/// may be a secret pasted in the wrong place, or very long).
pub fn quote_prefix(value: &str) -> String {
    let short: String = value.chars().take(40).collect();
    if short.len() < value.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

/// Why an option is not available everywhere, or `None` when it is.
pub fn availability_problem(opt: &Opt) -> Option<&'static str> {
    match opt.avail {
        Avail::All | Avail::OnIsLaterDefault => None,
        Avail::Until46 => Some(
            "is known to coturn 4.6 (Debian 12) only: coturn 4.7 and later (nixos-25.11) ignore it",
        ),
        Avail::Since47 => Some(
            "is known to coturn 4.7 and later (nixos-25.11) only: coturn 4.6 (Debian 12) ignores it",
        ),
        Avail::SomeBuilds => Some(
            "is not built into every supported coturn (Debian 12's has no Prometheus or MongoDB, \
             nixpkgs' no PostgreSQL, MySQL, MongoDB or Redis): where missing, coturn ignores it",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in OPTIONS.iter().enumerate() {
            assert!(
                OPTIONS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
    }

    #[test]
    fn flag_values_as_coturn_reads_them() {
        for (v, want) in [
            ("", Some(true)),
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("Yes", Some(true)),
            ("on", Some(true)),
            ("ON", Some(true)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("off", Some(false)),
            ("No", Some(false)),
            ("false", Some(false)),
            ("oN", None),
            ("nonsense", None),
            ("2", None),
            ("enabled", None),
        ] {
            assert_eq!(flag_value(v), want, "{v:?}");
        }
    }

    #[test]
    fn values() {
        let int = find("stale-nonce").unwrap();
        assert!(check_value(int, "600").is_ok());
        for bad in ["1h", "-1", "+5", "", "1234567890", "6 00"] {
            assert!(check_value(int, bad).is_err(), "{bad:?}");
        }
        let on = find("use-auth-secret").unwrap();
        assert!(check_value(on, "").is_ok());
        assert!(check_value(on, "false").unwrap_err().contains("ignores"));
        let realm = find("realm").unwrap();
        assert!(check_value(realm, &"r".repeat(127)).is_ok());
        assert!(check_value(realm, &"r".repeat(128)).is_err());
        assert!(check_value(find("listening-ip").unwrap(), "turn.example.org").is_err());
        let fam = find("allocation-default-address-family").unwrap();
        assert!(check_value(fam, "ipv6").is_ok());
        assert!(check_value(fam, "IPv6").is_err());
        assert!(availability_problem(find("tlsv1").unwrap()).is_some());
        assert!(availability_problem(find("prometheus").unwrap()).is_some());
        assert!(availability_problem(find("no-tlsv1").unwrap()).is_none());
        assert!(quote_prefix(&"x".repeat(100)).ends_with('…'));
    }
}
