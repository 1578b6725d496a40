//! coturn's `turnserver.conf`: a typed model that parses and emits the file,
//! keeps options it does not know (in order), and lists the ways a
//! configuration breaks this product's privacy invariants.
//!
//! The format is one option per line: `key=value`, or a bare `key` for a
//! flag. Lines starting with `#` are comments (dropped on parsing). Some
//! options may be repeated (`listening-ip`, `denied-peer-ip`, ...).
//!
//! What is checked is what coturn applies: [`reader`] mirrors coturn's own
//! line reader (fixed-size chunks, its separators, quotes and comments),
//! [`options`] lists the options coturn knows and how it reads each value,
//! and [`ranges`] reads peer address ranges as coturn matches them. A file
//! is accepted only when coturn reads it exactly as written.
//!
//! The rendered file is a *template* without `static-auth-secret`;
//! [`materialize`] adds the secret at service start, after checking the
//! template again, so the secret never lands in a world-readable place.

pub mod options;
pub mod ranges;
pub mod reader;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::error::{Error, FieldError, ValidationErrors};

/// One line of `turnserver.conf`: an option and its value (`None` for a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfEntry {
    /// The option name, e.g. `listening-port`.
    pub key: String,
    /// The value after `=`, or `None` for a bare flag.
    pub value: Option<String>,
}

impl ConfEntry {
    /// A `key=value` entry.
    pub fn value(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A bare flag.
    pub fn flag(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
        }
    }
}

/// coturn's `turnserver.conf`.
///
/// The fields are the options this product sets or checks; every other
/// option is kept in [`TurnserverConf::extra`] in its original order, so a
/// parse/emit round trip keeps every option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnserverConf {
    /// `listening-port`: the TURN port (UDP and TCP).
    pub listening_port: Option<u16>,
    /// `tls-listening-port`: the TURN-over-TLS port (TLS and DTLS).
    pub tls_listening_port: Option<u16>,
    /// `listening-ip` (repeated): the addresses to listen on; none means all.
    pub listening_ips: Vec<String>,
    /// `relay-ip` (repeated): the addresses relayed traffic leaves from.
    pub relay_ips: Vec<String>,
    /// `external-ip` (repeated): the public address, `PUBLIC` or
    /// `PUBLIC/PRIVATE`, when the host is behind NAT.
    pub external_ips: Vec<String>,
    /// `min-port`: the first UDP relay port.
    pub min_port: Option<u16>,
    /// `max-port`: the last UDP relay port.
    pub max_port: Option<u16>,
    /// `realm`: the TURN realm.
    pub realm: Option<String>,
    /// `use-auth-secret`: time-limited credentials (TURN REST API) derived
    /// from a shared secret, as Synapse hands them out.
    pub use_auth_secret: bool,
    /// `static-auth-secret`: the shared secret. Absent in the rendered
    /// template; added by [`materialize`].
    pub static_auth_secret: Option<String>,
    /// `cert`: the TLS certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `pkey`: the TLS private key (PEM).
    pub pkey: Option<PathBuf>,
    /// `user-quota`: allocations one user may hold at once.
    pub user_quota: Option<u32>,
    /// `total-quota`: allocations the server holds at once.
    pub total_quota: Option<u32>,
    /// `fingerprint`: add FINGERPRINT to messages (WebRTC expects it).
    pub fingerprint: bool,
    /// `no-cli`: no telnet admin console.
    pub no_cli: bool,
    /// `no-multicast-peers`: refuse multicast peer addresses.
    pub no_multicast_peers: bool,
    /// `no-tcp-relay`: relay UDP only (WebRTC needs nothing else; TCP
    /// relaying would let clients reach TCP services).
    pub no_tcp_relay: bool,
    /// `no-tls`: no TLS listener.
    pub no_tls: bool,
    /// `no-dtls`: no DTLS listener.
    pub no_dtls: bool,
    /// `no-tlsv1`: refuse TLS 1.0.
    pub no_tlsv1: bool,
    /// `no-tlsv1_1`: refuse TLS 1.1.
    pub no_tlsv1_1: bool,
    /// `denied-peer-ip` (repeated): peer address ranges never relayed to,
    /// as `ADDRESS` or `FIRST-LAST` (coturn 4.6 does not read CIDR).
    pub denied_peer_ips: Vec<String>,
    /// `allowed-peer-ip` (repeated): exceptions to `denied-peer-ip`.
    pub allowed_peer_ips: Vec<String>,
    /// `log-file`: the log file; `stdout` sends everything to standard
    /// output (the journal under systemd), `syslog` to syslog.
    pub log_file: Option<String>,
    /// `simple-log`: one log file without a date in its name.
    pub simple_log: bool,
    /// `syslog`: log to syslog.
    pub syslog: bool,
    /// `no-software-attribute`: do not announce coturn's version.
    pub no_software_attribute: bool,
    /// `pidfile`: where coturn writes its process id.
    pub pidfile: Option<PathBuf>,
    /// Every other option, in order.
    pub extra: Vec<ConfEntry>,
}

/// Single-valued options this model keeps as typed fields.
const SCALARS: [&str; 12] = [
    "listening-port",
    "tls-listening-port",
    "min-port",
    "max-port",
    "realm",
    "static-auth-secret",
    "cert",
    "pkey",
    "user-quota",
    "total-quota",
    "log-file",
    "pidfile",
];

/// Flags this model keeps as typed booleans.
const FLAGS: [&str; 12] = [
    "use-auth-secret",
    "fingerprint",
    "no-cli",
    "no-multicast-peers",
    "no-tcp-relay",
    "no-tls",
    "no-dtls",
    "no-tlsv1",
    "no-tlsv1_1",
    "simple-log",
    "syslog",
    "no-software-attribute",
];

/// Options that would open the server up (or break the credentials Synapse
/// hands out); each is refused with the reason.
const REFUSED: [(&str, &str); 15] = [
    (
        "alternate-server",
        "would redirect clients to another TURN server: calls use only this host's coturn",
    ),
    (
        "tls-alternate-server",
        "would redirect clients to another TURN server: calls use only this host's coturn",
    ),
    (
        "rest-api-separator",
        "would change how coturn reads the user names Synapse hands out (EXPIRY:USER)",
    ),
    (
        "allow-loopback-peers",
        "would let clients relay to services on the server's loopback interface",
    ),
    (
        "lt-cred-mech",
        "enables static long-term accounts: only the time-limited credentials Synapse hands out (use-auth-secret) are allowed",
    ),
    (
        "user",
        "defines a static TURN account: only the time-limited credentials Synapse hands out (use-auth-secret) are allowed",
    ),
    (
        "no-auth",
        "would let anyone relay through the server without credentials",
    ),
    ("cli-password", "enables the telnet admin console: keep no-cli"),
    ("web-admin", "enables the web admin console"),
    (
        "server-relay",
        "lets the server relay to any address (coturn marks it unsafe, for testing only)",
    ),
    (
        "userdb",
        "enables a database of TURN accounts: only use-auth-secret with the shared secret is allowed",
    ),
    (
        "psql-userdb",
        "enables a database of TURN accounts: only use-auth-secret with the shared secret is allowed",
    ),
    (
        "mysql-userdb",
        "enables a database of TURN accounts: only use-auth-secret with the shared secret is allowed",
    ),
    (
        "mongo-userdb",
        "enables a database of TURN accounts: only use-auth-secret with the shared secret is allowed",
    ),
    (
        "redis-userdb",
        "enables a database of TURN accounts: only use-auth-secret with the shared secret is allowed",
    ),
];

/// The peer address ranges that must be denied, as in Synapse's TURN guide
/// (`docs/setup/turn/coturn.md`), plus multicast, documentation and
/// benchmarking ranges: private, loopback, link-local, CGNAT, documentation,
/// benchmarking, multicast and reserved ranges for IPv4 and IPv6 (IPv4-mapped
/// and IPv4-compatible IPv6 included). Written as
/// coturn reads them (`FIRST-LAST` or a single address; see [`ranges`]): no
/// entry starts or ends at the unspecified address (coturn would read it as
/// no bound and deny every peer; coturn refuses the peers 0.0.0.0/8 and `::`
/// by itself), and every IPv6 range is a prefix-aligned block.
pub const REQUIRED_DENIED_PEER_IPS: [&str; 32] = [
    // IPv4
    "0.0.0.0-0.255.255.255",       // 0.0.0.0/8 "this network"
    "10.0.0.0-10.255.255.255",     // 10/8 private
    "100.64.0.0-100.127.255.255",  // 100.64/10 CGNAT
    "127.0.0.0-127.255.255.255",   // 127/8 loopback
    "169.254.0.0-169.254.255.255", // 169.254/16 link-local
    "172.16.0.0-172.31.255.255",   // 172.16/12 private
    "192.0.0.0-192.0.0.255",       // 192.0.0/24 IETF protocol assignments
    "192.0.2.0-192.0.2.255",       // 192.0.2/24 TEST-NET-1
    "192.88.99.0-192.88.99.255",   // 192.88.99/24 6to4 relay anycast
    "192.168.0.0-192.168.255.255", // 192.168/16 private
    "198.18.0.0-198.19.255.255",   // 198.18/15 benchmarking
    "198.51.100.0-198.51.100.255", // 198.51.100/24 TEST-NET-2
    "203.0.113.0-203.0.113.255",   // 203.0.113/24 TEST-NET-3
    "224.0.0.0-239.255.255.255",   // 224/4 multicast
    "240.0.0.0-255.255.255.254",   // 240/4 reserved
    "255.255.255.255",             // limited broadcast
    // IPv6
    // ::1 (loopback) and ::/96 IPv4-compatible (deprecated; routed to the
    // IPv4 address by a sit tunnel), without :: itself (which coturn
    // refuses by itself), in four byte-aligned blocks: coturn
    // 4.6–4.8 compare IPv6 bytes one by one, so `::0.0.0.1-::255.255.255.255`
    // would miss every address whose last byte is 0.
    "::1-::ff",
    "::100-::ffff",
    "::1:0-::ff:ffff",
    "::100:0-::ffff:ffff",
    "64:ff9b::-64:ff9b::ffff:ffff", // 64:ff9b::/96 NAT64
    "64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff", // 64:ff9b:1::/48 local NAT64
    "::ffff:0.0.0.0-::ffff:255.255.255.255", // ::ffff:0:0/96 IPv4-mapped
    "100::-100::ffff:ffff:ffff:ffff", // 100::/64 discard
    "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", // 2001::/23 IETF assignments
    "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", // 2001:db8::/32 documentation
    "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", // 2002::/16 6to4
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", // fc00::/7 unique local
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", // fe80::/10 link-local
    "fec0::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", // fec0::/10 site-local (deprecated)
    "3fff::-3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", // 3fff::/20 documentation
    "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", // ff00::/8 multicast
];

impl TurnserverConf {
    /// Parses `turnserver.conf` text as coturn reads it ([`reader`]). Every
    /// problem is reported, each naming the option or its line: a line coturn
    /// would read differently from how it is written (too long, a byte it
    /// treats specially, a separator other than `=`), an option coturn does
    /// not know or would ignore, or a value it would not read as written.
    pub fn parse(text: &str) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let mut bad_lines = BTreeSet::new();
        for (line, message) in reader::canonical(text) {
            errs.push(format!("line {line}"), message);
            bad_lines.insert(line);
        }
        let mut entries = Vec::new();
        for raw in reader::read(text.as_bytes()) {
            if bad_lines.contains(&raw.line) {
                continue;
            }
            let (Ok(key), Ok(value)) = (String::from_utf8(raw.name), String::from_utf8(raw.value))
            else {
                continue;
            };
            entries.push(if value.is_empty() {
                ConfEntry::flag(key)
            } else {
                ConfEntry::value(key, value)
            });
        }
        match Self::from_entries(entries) {
            Ok(conf) => errs.into_result(conf),
            Err(more) => {
                errs.extend(more);
                Err(errs)
            }
        }
    }

    /// Builds the model from options in file order. Errors name the option.
    pub fn from_entries(entries: Vec<ConfEntry>) -> Result<Self, ValidationErrors> {
        let mut conf = Self::default();
        let mut errs = ValidationErrors::new();
        let mut seen: Vec<String> = Vec::new();
        for entry in entries {
            if let Err(e) = conf.apply(entry, &mut seen) {
                errs.errors.push(e);
            }
        }
        errs.into_result(conf)
    }

    fn apply(&mut self, entry: ConfEntry, seen: &mut Vec<String>) -> Result<(), FieldError> {
        let key = entry.key.as_str();
        check_entry(&entry)?;
        let is_typed_scalar = SCALARS.contains(&key);
        if is_typed_scalar || FLAGS.contains(&key) {
            if seen.iter().any(|k| k == key) {
                return Err(FieldError::new(
                    key,
                    "is given twice: expected it once (coturn would silently use one of them)",
                ));
            }
            seen.push(key.to_owned());
        }
        let need_value = |entry: &ConfEntry| -> Result<String, FieldError> {
            match &entry.value {
                Some(v) if !v.is_empty() => Ok(v.clone()),
                _ => Err(FieldError::new(
                    &entry.key,
                    "has no value: expected key=value",
                )),
            }
        };
        let port = |entry: &ConfEntry| -> Result<u16, FieldError> {
            let v = need_value(entry)?;
            v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                FieldError::new(
                    &entry.key,
                    format!("{v:?} is not a port: expected 1 to 65535"),
                )
            })
        };
        let count = |entry: &ConfEntry| -> Result<u32, FieldError> {
            let v = need_value(entry)?;
            v.parse::<u32>().map_err(|_| {
                FieldError::new(
                    &entry.key,
                    format!("{v:?} is not a number: expected 0 or more"),
                )
            })
        };
        // check_entry made sure coturn reads the value as a flag.
        let flag = |entry: &ConfEntry| -> Result<bool, FieldError> {
            Ok(options::flag_value(entry.value.as_deref().unwrap_or("")).unwrap_or(true))
        };
        match key {
            "listening-port" => self.listening_port = Some(port(&entry)?),
            "tls-listening-port" => self.tls_listening_port = Some(port(&entry)?),
            "min-port" => self.min_port = Some(port(&entry)?),
            "max-port" => self.max_port = Some(port(&entry)?),
            "listening-ip" => self.listening_ips.push(need_value(&entry)?),
            "relay-ip" => self.relay_ips.push(need_value(&entry)?),
            "external-ip" => self.external_ips.push(need_value(&entry)?),
            "denied-peer-ip" => self.denied_peer_ips.push(need_value(&entry)?),
            "allowed-peer-ip" => self.allowed_peer_ips.push(need_value(&entry)?),
            "realm" => self.realm = Some(need_value(&entry)?),
            "static-auth-secret" => self.static_auth_secret = Some(need_value(&entry)?),
            "cert" => self.cert = Some(PathBuf::from(need_value(&entry)?)),
            "pkey" => self.pkey = Some(PathBuf::from(need_value(&entry)?)),
            "user-quota" => self.user_quota = Some(count(&entry)?),
            "total-quota" => self.total_quota = Some(count(&entry)?),
            "log-file" => self.log_file = Some(need_value(&entry)?),
            "pidfile" => self.pidfile = Some(PathBuf::from(need_value(&entry)?)),
            "use-auth-secret" => self.use_auth_secret = flag(&entry)?,
            "fingerprint" => self.fingerprint = flag(&entry)?,
            "no-cli" => self.no_cli = flag(&entry)?,
            "no-multicast-peers" => self.no_multicast_peers = flag(&entry)?,
            "no-tcp-relay" => self.no_tcp_relay = flag(&entry)?,
            "no-tls" => self.no_tls = flag(&entry)?,
            "no-dtls" => self.no_dtls = flag(&entry)?,
            "no-tlsv1" => self.no_tlsv1 = flag(&entry)?,
            "no-tlsv1_1" => self.no_tlsv1_1 = flag(&entry)?,
            "simple-log" => self.simple_log = flag(&entry)?,
            "syslog" => self.syslog = flag(&entry)?,
            "no-software-attribute" => self.no_software_attribute = flag(&entry)?,
            _ => self.extra.push(entry),
        }
        Ok(())
    }

    /// The options in emission order: the typed fields in a fixed order,
    /// then [`TurnserverConf::extra`] in its order.
    pub fn to_entries(&self) -> Vec<ConfEntry> {
        let mut out = Vec::new();
        let scalar = |out: &mut Vec<ConfEntry>, key: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push(ConfEntry::value(key, v));
            }
        };
        let port = |p: Option<u16>| p.map(|p| p.to_string());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        scalar(&mut out, "listening-port", port(self.listening_port));
        scalar(
            &mut out,
            "tls-listening-port",
            port(self.tls_listening_port),
        );
        for (key, list) in [
            ("listening-ip", &self.listening_ips),
            ("relay-ip", &self.relay_ips),
            ("external-ip", &self.external_ips),
        ] {
            out.extend(list.iter().map(|v| ConfEntry::value(key, v)));
        }
        scalar(&mut out, "min-port", port(self.min_port));
        scalar(&mut out, "max-port", port(self.max_port));
        scalar(&mut out, "realm", self.realm.clone());
        scalar(
            &mut out,
            "static-auth-secret",
            self.static_auth_secret.clone(),
        );
        scalar(&mut out, "cert", path(&self.cert));
        scalar(&mut out, "pkey", path(&self.pkey));
        scalar(
            &mut out,
            "user-quota",
            self.user_quota.map(|n| n.to_string()),
        );
        scalar(
            &mut out,
            "total-quota",
            self.total_quota.map(|n| n.to_string()),
        );
        scalar(&mut out, "log-file", self.log_file.clone());
        scalar(&mut out, "pidfile", path(&self.pidfile));
        let flags = [
            ("use-auth-secret", self.use_auth_secret),
            ("fingerprint", self.fingerprint),
            ("no-cli", self.no_cli),
            ("no-multicast-peers", self.no_multicast_peers),
            ("no-tcp-relay", self.no_tcp_relay),
            ("no-tls", self.no_tls),
            ("no-dtls", self.no_dtls),
            ("no-tlsv1", self.no_tlsv1),
            ("no-tlsv1_1", self.no_tlsv1_1),
            ("simple-log", self.simple_log),
            ("syslog", self.syslog),
            ("no-software-attribute", self.no_software_attribute),
        ];
        for (key, on) in flags {
            if on {
                out.push(ConfEntry::flag(key));
            }
        }
        for r in &self.denied_peer_ips {
            out.push(ConfEntry::value("denied-peer-ip", r));
        }
        for r in &self.allowed_peer_ips {
            out.push(ConfEntry::value("allowed-peer-ip", r));
        }
        out.extend(self.extra.iter().cloned());
        out
    }

    /// Emits the `turnserver.conf` text, one option per line.
    pub fn to_conf_string(&self) -> String {
        let mut text = String::from(
            "# coturn configuration generated by ospw-matrix. Do not edit: change the host\n\
             # description and render again. The shared secret is added at service start.\n",
        );
        for e in self.to_entries() {
            match e.value {
                Some(v) => text.push_str(&format!("{}={}\n", e.key, v)),
                None => text.push_str(&format!("{}\n", e.key)),
            }
        }
        text
    }

    /// Sets `key` from a free-form setting, replacing every existing
    /// occurrence: `values` empty removes the option, `[None]` sets a flag,
    /// several values repeat it. Errors name the option.
    pub fn set(&mut self, key: &str, values: Vec<Option<String>>) -> Result<(), ValidationErrors> {
        let mut entries: Vec<ConfEntry> = self
            .to_entries()
            .into_iter()
            .filter(|e| e.key != key)
            .collect();
        // Unknown options may be repeated (coturn has more repeatable options
        // than this model types); the typed single-valued ones may not.
        if values.len() > 1 && (SCALARS.contains(&key) || FLAGS.contains(&key)) {
            let mut errs = ValidationErrors::new();
            errs.push(
                key,
                "takes a single value: expected a string, a number or a boolean, not a list",
            );
            return Err(errs);
        }
        for value in values {
            entries.push(ConfEntry {
                key: key.to_owned(),
                value,
            });
        }
        *self = Self::from_entries(entries)?;
        Ok(())
    }

    /// The server's own addresses (listening, relay and external, both
    /// parts of `PUBLIC/PRIVATE`): the only addresses `allowed-peer-ip` may
    /// name.
    pub fn own_addresses(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let all = self
            .listening_ips
            .iter()
            .chain(&self.relay_ips)
            .map(String::as_str)
            .chain(self.external_ips.iter().flat_map(|s| s.split('/')));
        for s in all {
            if let Ok(addr) = s.trim().parse::<IpAddr>() {
                if !out.contains(&addr) {
                    out.push(addr);
                }
            }
        }
        out
    }

    /// Lists every way this configuration breaks the privacy invariants,
    /// each naming the option at fault.
    pub fn privacy_violations(&self) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        let need = [
            (
                "use-auth-secret",
                self.use_auth_secret,
                "must be set: only time-limited credentials from Synapse (TURN REST API) may relay",
            ),
            (
                "no-cli",
                self.no_cli,
                "must be set: the telnet admin console must stay off",
            ),
            (
                "no-multicast-peers",
                self.no_multicast_peers,
                "must be set: relaying to multicast addresses is refused",
            ),
            (
                "no-tcp-relay",
                self.no_tcp_relay,
                "must be set: calls relay UDP only; TCP relaying would reach TCP services",
            ),
        ];
        for (key, ok, message) in need {
            if !ok {
                errs.push(key, message);
            }
        }
        let mut denied = Vec::new();
        for d in &self.denied_peer_ips {
            match ranges::interval(d) {
                Ok(iv) => denied.push(iv),
                Err(m) => errs.push("denied-peer-ip", m),
            }
        }
        let denied = ranges::merge(denied);
        let required = required_intervals();
        let missing: Vec<&str> = REQUIRED_DENIED_PEER_IPS
            .iter()
            .zip(&required)
            .filter(|(_, r)| !ranges::covers(&denied, r))
            .map(|(text, _)| *text)
            .collect();
        if !missing.is_empty() {
            errs.push(
                "denied-peer-ip",
                format!(
                    "must deny every private, loopback, link-local, CGNAT, documentation, benchmarking, \
                     multicast and reserved range; missing: {}",
                    missing.join(", ")
                ),
            );
        }
        // The other way round: a list that refuses every ordinary peer
        // makes every relayed call fail.
        let required = ranges::merge(required);
        for (whole, family) in [
            ("0.0.0.0-255.255.255.255", "IPv4"),
            ("2000::-3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "IPv6"),
        ] {
            let Some(whole) = whole
                .split_once('-')
                .and_then(|(a, b)| ranges::Interval::new(a.parse().ok()?, b.parse().ok()?))
            else {
                continue;
            };
            let public = ranges::subtract(whole, &required);
            if !public.is_empty() && public.iter().all(|p| ranges::covers(&denied, p)) {
                errs.push(
                    "denied-peer-ip",
                    format!(
                        "denies every public {family} peer, as coturn reads the list: relayed calls \
                         would fail; expected only the required ranges and other ranges of \
                         addresses never to be relayed to"
                    ),
                );
            }
        }
        let own = self.own_addresses();
        // coturn exempts the private part of external-ip=PUBLIC/PRIVATE from
        // denied-peer-ip as if it were an allowed-peer-ip.
        let external_private = self.external_ips.iter().filter_map(|e| {
            e.split_once('/')
                .map(|(_, private)| ("external-ip", private))
        });
        let exemptions = self
            .allowed_peer_ips
            .iter()
            .map(|a| ("allowed-peer-ip", a.as_str()))
            .chain(external_private);
        for (key, allowed) in exemptions {
            let iv = match ranges::interval(allowed) {
                Ok(iv) => iv,
                Err(m) => {
                    errs.push(key, m);
                    continue;
                }
            };
            let addr = iv.first_addr();
            if iv.first != iv.last {
                errs.push(
                    key,
                    format!(
                        "{allowed:?} is a range: only single own addresses (listening-ip, relay-ip, \
                         external-ip) may be exempted from denied-peer-ip"
                    ),
                );
            } else if !is_exemptable_own_address(addr) {
                errs.push(
                    key,
                    format!(
                        "{allowed:?} would let clients relay to this host's loopback or unspecified \
                         address (its local services): expected only a routable own address"
                    ),
                );
            } else if !own.contains(&addr) {
                errs.push(
                    key,
                    format!(
                        "{allowed:?} is not one of the server's own addresses (listening-ip, relay-ip, \
                         external-ip): only those may be exempted from denied-peer-ip"
                    ),
                );
            } else if Self::in_required_denied_range(addr) && !self.proves_own(addr) {
                errs.push(
                    key,
                    format!(
                        "{allowed:?} lies in a denied range and is exempted from it, but nothing shows it \
                         is this host's (it could be another machine on the network, such as the \
                         router): expected it also as a listening-ip (coturn does not start without \
                         it) or as the only relay-ip"
                    ),
                );
            }
        }
        for (key, addrs) in [
            ("listening-ip", &self.listening_ips),
            ("relay-ip", &self.relay_ips),
        ] {
            for a in addrs {
                match ranges::literal(a) {
                    Err(m) => errs.push(key, m),
                    Ok(ip) if embeds_ipv4(ip) => errs.push(key, embedded_message(a)),
                    Ok(_) => {}
                }
            }
        }
        for e in &self.external_ips {
            let (public, private) = match e.split_once('/') {
                Some((p, q)) => (p, Some(q)),
                None => (e.as_str(), None),
            };
            match ranges::literal(public) {
                Err(m) => errs.push("external-ip", m),
                Ok(ip) if embeds_ipv4(ip) => errs.push("external-ip", embedded_message(public)),
                Ok(_) => {}
            }
            // The private part is read as an exemption above.
            if let Some(Ok(ip)) = private.map(ranges::literal) {
                if embeds_ipv4(ip) {
                    errs.push("external-ip", embedded_message(private.unwrap_or_default()));
                }
            }
            if private.is_some_and(|p| p.contains('/')) {
                errs.push(
                    "external-ip",
                    format!("{e:?} has more than one `/`: expected PUBLIC or PUBLIC/PRIVATE"),
                );
            }
        }
        if let Some(message) = self.exporter_violation() {
            errs.push("prometheus-address", message);
        }
        for e in &self.extra {
            if let Some((key, why)) = REFUSED.iter().find(|(k, _)| *k == e.key) {
                if !key_is_off(e) {
                    errs.push(*key, format!("is not allowed: it {why}"));
                }
            }
        }
        errs
    }
}

impl TurnserverConf {
    /// Whether coturn's Prometheus exporter is on: any `prometheus` entry
    /// turns it on (coturn ignores its value), so does a true
    /// `prometheus-tls`.
    pub fn exporter_enabled(&self) -> bool {
        self.extra.iter().any(|e| {
            e.key == "prometheus"
                || (e.key == "prometheus-tls"
                    && options::flag_value(e.value.as_deref().unwrap_or("")) != Some(false))
        })
    }

    /// The exporter must listen on loopback only: without
    /// `prometheus-address` coturn listens on every interface; the last
    /// one given counts.
    fn exporter_violation(&self) -> Option<String> {
        if !self.exporter_enabled() {
            return None;
        }
        let address = self
            .extra
            .iter()
            .rev()
            .find(|e| e.key == "prometheus-address")
            .and_then(|e| e.value.as_deref());
        match address.map(|a| (a, a.trim().parse::<IpAddr>())) {
            Some((_, Ok(ip))) if ip.is_loopback() => None,
            Some((a, _)) => Some(format!(
                "{a:?} is not a loopback address: the Prometheus exporter would be reachable from other hosts; expected 127.0.0.1 or ::1"
            )),
            None => Some(
                "is missing while the Prometheus exporter is on: coturn would serve metrics on every interface; expected 127.0.0.1 or ::1".into(),
            ),
        }
    }
}

fn embedded_message(address: &str) -> String {
    format!(
        "{address:?} is an IPv6 address around an IPv4 one (IPv4-mapped or -compatible), which \
         no host has as its own: write the IPv4 address"
    )
}

/// The required ranges as intervals.
fn required_intervals() -> Vec<ranges::Interval> {
    REQUIRED_DENIED_PEER_IPS
        .iter()
        .filter_map(|r| ranges::interval(r).ok())
        .collect()
}

/// Whether a refused option is explicitly switched off: only a flag coturn
/// reads with its value (`get_bool_value`) can be; any other refused option
/// takes effect whatever its value.
fn key_is_off(e: &ConfEntry) -> bool {
    options::find(&e.key).is_some_and(|o| o.kind == options::Kind::Bool)
        && options::flag_value(e.value.as_deref().unwrap_or("")) == Some(false)
}

/// coturn's Prometheus exporter, which `metrics.enable` writes: the one
/// exception to "known to every supported build". A coturn built without
/// Prometheus (Debian 12's) ignores all three lines together, so there is
/// no exporter at all rather than one on the wrong address; `ospw-matrix
/// doctor` (`metrics.endpoint`) names the missing exporter. The address
/// must be loopback ([`TurnserverConf::privacy_violations`]).
pub const EXPORTER_OPTIONS: [&str; 3] = ["prometheus", "prometheus-port", "prometheus-address"];

/// Checks one option against how coturn reads it: an option coturn knows in
/// every supported version (or one of [`EXPORTER_OPTIONS`]), a value it reads as written (see
/// [`reader::value_problem`] and [`options::check_value`]) on a line short
/// enough to be read whole. Errors name the option and never quote more
/// than a short prefix of the value.
pub fn check_entry(entry: &ConfEntry) -> Result<(), FieldError> {
    let key = entry.key.as_str();
    let Some(opt) = options::find(key) else {
        return Err(FieldError::new(
            key,
            "is not an option coturn knows: coturn would skip the line (\"Bad configuration \
             format\"); expected an option of coturn's turnserver.conf, spelt as there",
        ));
    };
    if let Some(why) = options::availability_problem(opt) {
        if !EXPORTER_OPTIONS.contains(&key) {
            return Err(FieldError::new(key, why));
        }
    }
    let value = entry.value.as_deref().unwrap_or("");
    if let Some(problem) = reader::value_problem(value) {
        return Err(FieldError::new(key, format!("the value {problem}")));
    }
    let line = key.len() + entry.value.as_ref().map_or(0, |v| v.len() + 1);
    if line > reader::MAX_LINE_BYTES {
        return Err(FieldError::new(
            key,
            format!(
                "would be a line of {line} bytes: coturn reads lines in pieces of {} bytes and \
                 would read the rest as another option",
                reader::MAX_LINE_BYTES
            ),
        ));
    }
    if opt.avail == options::Avail::OnIsLaterDefault && options::flag_value(value) == Some(false) {
        return Err(FieldError::new(
            key,
            "may only be switched on: coturn 4.7 and later do not know it and keep TLS 1.0 and 1.1 \
             off",
        ));
    }
    options::check_value(opt, value).map_err(|m| FieldError::new(key, m))
}

/// The full `denied-peer-ip` list this product sets.
pub fn required_denied_peer_ips() -> Vec<String> {
    REQUIRED_DENIED_PEER_IPS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Whether `addr` is worth exempting from `denied-peer-ip`: loopback and
/// unspecified addresses never are (coturn refuses loopback peers anyway),
/// nor an IPv6 address that embeds an IPv4 one (IPv4-mapped or
/// -compatible), which no host has as its own.
pub fn is_exemptable_own_address(addr: IpAddr) -> bool {
    !(addr.is_loopback()
        || addr.is_unspecified()
        || addr == IpAddr::V4(Ipv4Addr::BROADCAST)
        || embeds_ipv4(addr))
}

/// Whether `addr` is an IPv6 address written around an IPv4 one:
/// IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`, but
/// `::` and `::1`).
pub fn embeds_ipv4(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(_) => false,
        IpAddr::V6(a) => {
            a.to_ipv4_mapped().is_some()
                || (a.to_ipv4().is_some() && !a.is_unspecified() && !a.is_loopback())
        }
    }
}

impl TurnserverConf {
    /// Whether coturn itself proves `addr` is this host's: it is a
    /// `listening-ip` (coturn does not start when it cannot bind one), or
    /// the only `relay-ip` (an allocation is bound to it, so when it is not
    /// this host's nothing is relayed at all).
    pub fn proves_own(&self, addr: IpAddr) -> bool {
        let is = |s: &String| s.trim().parse::<IpAddr>().ok() == Some(addr);
        self.listening_ips.iter().any(is) || (self.relay_ips.len() == 1 && is(&self.relay_ips[0]))
    }

    /// Whether `addr` lies in one of the ranges this product denies.
    pub fn in_required_denied_range(addr: IpAddr) -> bool {
        required_intervals().iter().any(|r| r.contains(addr))
    }
}

/// Fills the rendered template with the shared secret: parses `template`
/// (named `template_name` in errors), refuses it if it breaks a privacy
/// invariant (a tampered template), sets `static-auth-secret` and emits the
/// runtime configuration. `secret` is the shared secret as read by
/// [`crate::secrets::read_shared_secret`] (one line, no white space).
pub fn materialize(template: &str, template_name: &str, secret: &str) -> Result<String, Error> {
    let prefix = |errs: ValidationErrors, what: &str| {
        let mut out = ValidationErrors::new();
        for e in errs.errors {
            out.push(
                format!("{template_name}: {}", e.path),
                format!("{what}{}", e.message),
            );
        }
        Error::Invalid(out)
    };
    let mut conf = TurnserverConf::parse(template).map_err(|e| prefix(e, ""))?;
    let violations = conf.privacy_violations();
    if !violations.is_empty() {
        return Err(prefix(
            violations,
            "refusing the template (was it edited after rendering?): ",
        ));
    }
    if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Other(
            "the TURN shared secret is empty or holds white space".to_owned(),
        ));
    }
    conf.static_auth_secret = Some(secret.to_owned());
    let text = conf.to_conf_string();
    // The file coturn will read, read as coturn reads it, must be the
    // configuration just checked: nothing added, split or cut on the way.
    match TurnserverConf::parse(&text) {
        Ok(again) if again == conf && again.privacy_violations().is_empty() => Ok(text),
        Ok(_) => Err(Error::Other(format!(
            "{template_name}: the runtime configuration does not read back as the checked template"
        ))),
        Err(errs) => Err(prefix(
            errs,
            "the runtime configuration would be read differently by coturn: ",
        )),
    }
}

/// The TURN REST API password for `username` (`<expiry>:<user>`): base64 of
/// HMAC-SHA1 keyed with the shared secret, as Synapse computes it and coturn
/// checks it with `use-auth-secret`.
pub fn rest_api_password(secret: &str, username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    match <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration keeping every invariant.
    fn good() -> TurnserverConf {
        TurnserverConf {
            listening_port: Some(3478),
            listening_ips: vec!["10.0.0.5".into()],
            realm: Some("turn.example.org".into()),
            use_auth_secret: true,
            no_cli: true,
            no_multicast_peers: true,
            no_tcp_relay: true,
            denied_peer_ips: required_denied_peer_ips(),
            allowed_peer_ips: vec!["10.0.0.5".into()],
            ..Default::default()
        }
    }

    #[test]
    fn good_has_no_violations() {
        assert_eq!(good().privacy_violations(), ValidationErrors::new());
    }

    #[test]
    fn the_exporter_options_parse_in_every_build() {
        let template = good().to_conf_string();
        let text =
            format!("{template}prometheus\nprometheus-port=9641\nprometheus-address=127.0.0.1\n");
        let conf = TurnserverConf::parse(&text).expect("the exporter's options are read");
        assert!(conf.exporter_enabled());
        assert!(conf.privacy_violations().is_empty());
        let open = TurnserverConf::parse(&format!("{template}prometheus\n")).expect("parses");
        assert!(open.privacy_violations().mentions("prometheus-address"));
    }

    #[test]
    fn the_prometheus_exporter_must_listen_on_loopback() {
        let with = |entries: &[(&str, Option<&str>)]| {
            let mut c = good();
            c.extra = entries
                .iter()
                .map(|(k, v)| ConfEntry {
                    key: (*k).to_owned(),
                    value: v.map(str::to_owned),
                })
                .collect();
            c.privacy_violations()
                .errors
                .iter()
                .map(|e| e.path.clone())
                .collect::<Vec<_>>()
        };
        let none: Vec<String> = Vec::new();
        let address = vec!["prometheus-address".to_owned()];
        // Off: an address alone changes nothing.
        assert_eq!(with(&[("prometheus-address", Some("0.0.0.0"))]), none);
        assert_eq!(with(&[("prometheus-tls", Some("false"))]), none);
        // On, on loopback.
        for ok in ["127.0.0.1", "::1", " 127.0.0.1 "] {
            assert_eq!(
                with(&[("prometheus", None), ("prometheus-address", Some(ok))]),
                none,
                "{ok}"
            );
        }
        // On without an address (coturn then listens everywhere), or with
        // any other address; any value of `prometheus` turns it on, as
        // does a true prometheus-tls; the last address counts.
        for entries in [
            vec![("prometheus", None)],
            vec![("prometheus", Some("false"))],
            vec![
                ("prometheus", None),
                ("prometheus-address", Some("0.0.0.0")),
            ],
            vec![("prometheus", None), ("prometheus-address", Some("::"))],
            vec![
                ("prometheus", None),
                ("prometheus-address", Some("localhost")),
            ],
            vec![
                ("prometheus", None),
                ("prometheus-address", Some("203.0.113.7")),
            ],
            vec![
                ("prometheus-tls", Some("1")),
                ("prometheus-address", Some("10.0.0.5")),
            ],
            vec![
                ("prometheus", None),
                ("prometheus-address", Some("127.0.0.1")),
                ("prometheus-address", Some("0.0.0.0")),
            ],
        ] {
            assert_eq!(with(&entries), address, "{entries:?}");
        }
    }

    #[test]
    fn round_trip_keeps_unknown_keys_in_order() {
        let text = "# comment\n\
                    listening-port=3478\n\
                    stale-nonce=600\n\
                    listening-ip=10.0.0.5\n\
                    listening-ip=10.0.0.6\n\
                    use-auth-secret\n\
                    mobility\n\
                    denied-peer-ip=10.0.0.0-10.255.255.255\n\
                    server-name=turn.example.org\n\
                    cipher-list=ECDHE\n\
                    max-bps=0\n";
        let conf = TurnserverConf::parse(text).unwrap();
        assert_eq!(conf.listening_port, Some(3478));
        assert_eq!(conf.listening_ips, vec!["10.0.0.5", "10.0.0.6"]);
        assert!(conf.use_auth_secret);
        assert_eq!(
            conf.extra,
            vec![
                ConfEntry::value("stale-nonce", "600"),
                ConfEntry::flag("mobility"),
                ConfEntry::value("server-name", "turn.example.org"),
                ConfEntry::value("cipher-list", "ECDHE"),
                ConfEntry::value("max-bps", "0"),
            ]
        );
        let emitted = conf.to_conf_string();
        let again = TurnserverConf::parse(&emitted).unwrap();
        assert_eq!(again, conf);
        for line in [
            "stale-nonce=600",
            "mobility",
            "max-bps=0",
            "listening-ip=10.0.0.6",
        ] {
            assert!(emitted.lines().any(|l| l == line), "{line} in {emitted}");
        }
    }

    #[test]
    fn parse_errors_name_the_option() {
        let err = TurnserverConf::parse("listening-port=http\nrealm\nmin-port=1\nmin-port=2\n")
            .unwrap_err();
        assert!(err.mentions("listening-port"), "{err}");
        assert!(err.mentions("realm"), "{err}");
        assert!(err.mentions("min-port"), "{err}");
        let err = TurnserverConf::parse("denied-peer-ip=10.0.0.0/x\n").unwrap_err();
        assert!(err.mentions("denied-peer-ip"), "{err}");
        let err = TurnserverConf::parse("no-cli=maybe\n").unwrap_err();
        assert!(err.mentions("no-cli"), "{err}");
        let err = TurnserverConf::parse("=3\n").unwrap_err();
        assert!(err.mentions("line 1"), "{err}");
        for bad in ["--lt-cred-mech\n", "no cli\n", "realm x=y\n"] {
            let err = TurnserverConf::parse(bad).unwrap_err();
            assert!(err.mentions("line 1"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_with_values() {
        let conf = TurnserverConf::parse("no-cli=true\nfingerprint=0\n").unwrap();
        assert!(conf.no_cli);
        assert!(!conf.fingerprint);
    }

    #[test]
    fn each_missing_flag_is_a_violation() {
        for key in [
            "use-auth-secret",
            "no-cli",
            "no-multicast-peers",
            "no-tcp-relay",
        ] {
            let mut conf = good();
            conf.set(key, vec![]).unwrap();
            let v = conf.privacy_violations();
            assert!(v.mentions(key), "{key}: {v}");
            assert_eq!(v.errors.len(), 1, "{v}");
        }
    }

    #[test]
    fn each_required_denied_range_is_checked() {
        for required in REQUIRED_DENIED_PEER_IPS {
            let mut conf = good();
            conf.denied_peer_ips.retain(|r| r != required);
            let v = conf.privacy_violations();
            assert!(v.mentions("denied-peer-ip"), "{required}: {v}");
            assert!(v.errors[0].message.contains(required), "{v}");
        }
    }

    #[test]
    fn denied_ranges_may_be_written_differently() {
        let mut conf = good();
        // Replace the /8 with two halves: still covered.
        conf.denied_peer_ips
            .retain(|r| r != "10.0.0.0-10.255.255.255");
        conf.denied_peer_ips.push("10.0.0.0-10.127.255.255".into());
        conf.denied_peer_ips
            .push("10.128.0.0-10.255.255.255".into());
        assert!(conf.privacy_violations().is_empty());
        // CIDR is not read by coturn: the /8 would be missing.
        conf.denied_peer_ips.retain(|r| !r.starts_with("10."));
        conf.denied_peer_ips.push("10.0.0.0/8".into());
        let v = conf.privacy_violations();
        assert!(v.errors.iter().any(|e| e.message.contains("CIDR")), "{v}");
        assert!(
            v.errors
                .iter()
                .any(|e| e.message.contains("missing: 10.0.0.0-10.255.255.255")),
            "{v}"
        );
    }

    #[test]
    fn a_list_coturn_reads_as_everything_is_refused() {
        // `::` (as rendered before) covers every peer as coturn reads it.
        for everything in [
            "::",
            "0.0.0.0",
            "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "100.128.0.0-0.0.0.0",
            "0.0.0.0-255.255.255.255",
            "1.0.0.0-223.255.255.255",
        ] {
            let mut conf = good();
            conf.denied_peer_ips.push(everything.into());
            let v = conf.privacy_violations();
            assert!(v.mentions("denied-peer-ip"), "{everything}: {v}");
        }
        // Two halves that together deny every public IPv4 peer.
        let mut conf = good();
        conf.denied_peer_ips.push("1.0.0.0-127.255.255.255".into());
        conf.denied_peer_ips
            .push("128.0.0.0-223.255.255.255".into());
        let v = conf.privacy_violations();
        assert!(v.errors[0].message.contains("every public IPv4"), "{v}");
        // An extra public range of the admin's choice is fine.
        let mut conf = good();
        conf.denied_peer_ips
            .push("203.0.114.0-203.0.114.255".into());
        conf.denied_peer_ips
            .push("2a00:1450::-2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff".into());
        assert!(
            conf.privacy_violations().is_empty(),
            "{}",
            conf.privacy_violations()
        );
        // Ranges that would deny nothing, or not what they say.
        for odd in [
            "10.0.0.9-10.0.0.1",
            "2001:db8::2-2001:db8::1:0",
            "10.0.0.1-::1",
        ] {
            let mut conf = good();
            conf.denied_peer_ips.push(odd.into());
            assert!(
                conf.privacy_violations().mentions("denied-peer-ip"),
                "{odd}"
            );
        }
    }

    #[test]
    fn the_required_list_is_read_by_coturn_as_written() {
        for r in REQUIRED_DENIED_PEER_IPS {
            let iv = ranges::interval(r).unwrap_or_else(|e| panic!("{r}: {e}"));
            let read = ranges::read(r).unwrap();
            // The ends and the addresses just outside are classified alike
            // by coturn 4.6's byte-wise comparison and by the interval.
            for n in [
                iv.first.wrapping_sub(1),
                iv.first,
                iv.last,
                iv.last.wrapping_add(1),
            ] {
                if !iv.v6 && n > u128::from(u32::MAX) {
                    continue;
                }
                let a = ranges::addr(iv.v6, n);
                assert_eq!(read.contains_46(a), iv.contains(a), "{r}: {a}");
            }
        }
        // An ordinary peer is not denied by any entry.
        for peer in [
            "192.0.3.1",
            "100.128.0.2",
            "198.20.0.1",
            "2001:200::2",
            "2a00::1",
        ] {
            let a: IpAddr = peer.parse().unwrap();
            for r in REQUIRED_DENIED_PEER_IPS {
                assert!(
                    !ranges::read(r).unwrap().contains_46(a),
                    "{peer} denied by {r}"
                );
            }
        }
    }

    #[test]
    fn external_ip_private_part_is_an_exemption() {
        for bad in [
            "203.0.113.9/::",
            "203.0.113.9/0.0.0.0",
            "203.0.113.9/127.0.0.1",
        ] {
            let mut conf = good();
            conf.external_ips = vec![bad.into()];
            let v = conf.privacy_violations();
            assert!(v.mentions("external-ip"), "{bad}: {v}");
        }
        let mut conf = good();
        conf.external_ips = vec!["turn.example.org".into()];
        assert!(conf.privacy_violations().mentions("external-ip"));
        conf.external_ips = vec!["198.51.100.7/10.0.0.5".into()];
        assert!(conf.privacy_violations().is_empty());
    }

    #[test]
    fn refused_options() {
        for (key, value) in [
            ("allow-loopback-peers", None),
            ("lt-cred-mech", None),
            ("user", Some("alice:secret")),
            ("user", Some("no")),
            ("no-auth", None),
            ("cli-password", Some("x")),
            ("web-admin", None),
            ("userdb", Some("/var/lib/turn/turndb")),
            ("psql-userdb", Some("host=localhost")),
            ("redis-userdb", Some("ip=127.0.0.1")),
            ("server-relay", None),
            ("alternate-server", Some("203.0.113.5:3478")),
            ("rest-api-separator", Some(";")),
        ] {
            let mut conf = good();
            match conf.set(key, vec![value.map(str::to_owned)]) {
                Err(e) => assert!(e.mentions(key), "{key}: {e}"),
                Ok(()) => {
                    let v = conf.privacy_violations();
                    assert!(v.mentions(key), "{key}: {v}");
                }
            }
        }
        let mut conf = good();
        conf.set("allow-loopback-peers", vec![Some("false".into())])
            .unwrap();
        assert!(conf.privacy_violations().is_empty());
        // A flag coturn reads by its first letter: "nope" is off to coturn
        // but not a value this model guesses at.
        assert!(conf
            .set("allow-loopback-peers", vec![Some("nope".into())])
            .is_err());
    }

    #[test]
    fn parse_reads_what_coturn_reads() {
        let template = good().to_conf_string();
        // A value filling coturn's 1023-byte buffer smuggles an option.
        let filler = "a".repeat(reader::MAX_LINE_BYTES - "server-name=".len());
        let smuggled =
            format!("{template}server-name={filler}allowed-peer-ip=10.0.0.0-10.255.255.255\n");
        let err = TurnserverConf::parse(&smuggled).unwrap_err();
        assert!(err.errors[0].message.contains("1023"), "{err}");
        for (bad, named) in [
            ("realm=a\rallowed-peer-ip=10.0.0.1\n", "line"),
            ("server-name=a\0b\n", "line"),
            ("server-name=\"quoted\"\n", "line"),
            ("realm = spaced\n", "line"),
            ("denied-peer-ip=10.0.0.0/8\n", "denied-peer-ip"),
            ("denid-peer-ip=10.0.0.0-10.255.255.255\n", "denid-peer-ip"),
            ("tlsv1\n", "tlsv1"),
            // Only the exporter's own options are written for every build
            // (EXPORTER_OPTIONS); the others of some builds are refused.
            ("prometheus-path=/m\n", "prometheus-path"),
            ("prometheus-username-labels\n", "prometheus-username-labels"),
            ("use-auth-secret=false\n", "use-auth-secret"),
            ("no-tlsv1=false\n", "no-tlsv1"),
            ("stale-nonce=10m\n", "stale-nonce"),
            ("listening-ip=turn.example.org\n", "listening-ip"),
            ("realm=", "realm"),
        ] {
            let err = TurnserverConf::parse(&format!("{template}{bad}")).unwrap_err();
            assert!(
                err.mentions(named) || err.errors.iter().any(|e| e.path.starts_with(named)),
                "{bad:?}: {err}"
            );
        }
        // An over-long line of an exactly-1023-byte value is read whole.
        let fits = format!("server-name={}\n", "b".repeat(reader::MAX_LINE_BYTES - 12));
        assert!(TurnserverConf::parse(&format!("{template}{fits}")).is_ok());
    }

    #[test]
    fn materialize_refuses_what_coturn_would_read_differently() {
        let template = good().to_conf_string();
        let filler = "a".repeat(reader::MAX_LINE_BYTES - "server-name=".len());
        for tampered in [
            format!("{template}server-name={filler}allowed-peer-ip=10.0.0.0-10.255.255.255\n"),
            format!("{template}server-name=x\rallowed-peer-ip=10.0.0.1\n"),
            template.replace("denied-peer-ip=::1-::ff\n", "denied-peer-ip=::\n"),
        ] {
            assert!(
                materialize(&tampered, "t.conf", "s3cret").is_err(),
                "{tampered}"
            );
        }
        // A secret coturn would read differently is refused without being
        // echoed.
        let err = materialize(&template, "t.conf", "\"s3cretvalue\"").unwrap_err();
        assert!(!err.to_string().contains("s3cretvalue"), "{err}");
    }

    #[test]
    fn allowed_peer_ip_never_loopback_or_unspecified_even_if_own() {
        for own in ["0.0.0.0", "127.0.0.1", "::", "::1"] {
            let mut conf = good();
            conf.listening_ips = vec![own.into()];
            conf.allowed_peer_ips = vec![own.into()];
            let v = conf.privacy_violations();
            assert_eq!(
                v.errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
                vec!["allowed-peer-ip"],
                "{own}: {v}"
            );
        }
    }

    #[test]
    fn allowed_peer_ip_only_own_addresses() {
        for bad in ["10.0.0.6", "10.0.0.0-10.255.255.255", "192.168.1.1"] {
            let mut conf = good();
            conf.allowed_peer_ips = vec![bad.into()];
            let v = conf.privacy_violations();
            assert!(v.mentions("allowed-peer-ip"), "{bad}: {v}");
        }
        let mut conf = good();
        conf.listening_ips = vec![];
        conf.relay_ips = vec!["10.0.0.5".into()];
        assert!(conf.privacy_violations().is_empty());
        conf.relay_ips = vec![];
        conf.external_ips = vec!["198.51.100.7/10.0.0.5".into()];
        // coturn exempts the private part itself: it must be an address
        // coturn proves is this host's, not any machine of the network.
        let v = conf.privacy_violations();
        assert!(v.mentions("external-ip"), "{v}");
        assert!(v.errors[0].message.contains("router"), "{v}");
        conf.listening_ips = vec!["10.0.0.5".into()];
        assert!(conf.privacy_violations().is_empty());
        conf.listening_ips = vec![];
        conf.relay_ips = vec!["10.0.0.5".into()];
        assert!(conf.privacy_violations().is_empty());
        // Two relay addresses: one may be another machine's (allocations
        // on the first would reach it).
        conf.external_ips = vec![];
        conf.relay_ips = vec!["10.0.0.5".into(), "192.168.1.1".into()];
        conf.allowed_peer_ips = vec!["10.0.0.5".into(), "192.168.1.1".into()];
        let v = conf.privacy_violations();
        assert_eq!(v.errors.len(), 2, "{v}");
        // Addresses written around an IPv4 one are no host's own.
        for (key, value) in [
            ("listening-ip", "::ffff:10.0.0.5"),
            ("relay-ip", "::10.0.0.5"),
            ("external-ip", "198.51.100.7/::ffff:127.0.0.1"),
        ] {
            let mut conf = good();
            conf.set(key, vec![Some(value.into())]).unwrap();
            let v = conf.privacy_violations();
            assert!(v.mentions(key), "{key}={value}: {v}");
        }
    }

    #[test]
    fn set_replaces_and_removes() {
        let mut conf = good();
        conf.set("listening-port", vec![Some("3479".into())])
            .unwrap();
        assert_eq!(conf.listening_port, Some(3479));
        conf.set(
            "listening-ip",
            vec![Some("10.0.0.7".into()), Some("10.0.0.8".into())],
        )
        .unwrap();
        assert_eq!(conf.listening_ips, vec!["10.0.0.7", "10.0.0.8"]);
        conf.set("fingerprint", vec![None]).unwrap();
        assert!(conf.fingerprint);
        conf.set("fingerprint", vec![]).unwrap();
        assert!(!conf.fingerprint);
        let err = conf
            .set("realm", vec![Some("a".into()), Some("b".into())])
            .unwrap_err();
        assert!(err.mentions("realm"));
        let err = conf
            .set("listening-port", vec![Some("x".into())])
            .unwrap_err();
        assert!(err.mentions("listening-port"));
    }

    #[test]
    fn materialize_sets_the_secret_and_refuses_tampering() {
        let template = good().to_conf_string();
        assert!(!template.contains("static-auth-secret"));
        let out = materialize(&template, "t.conf", "s3cret").unwrap();
        assert!(materialize(&template, "t.conf", "").is_err());
        assert!(materialize(&template, "t.conf", "a b").is_err());
        assert!(
            out.lines().any(|l| l == "static-auth-secret=s3cret"),
            "{out}"
        );
        let tampered = format!("{template}allow-loopback-peers\n");
        let err = materialize(&tampered, "t.conf", "s3cret").unwrap_err();
        assert!(
            err.to_string().contains("t.conf: allow-loopback-peers"),
            "{err}"
        );
        let broken = format!("{template}listening-port=x\n");
        let err = materialize(&broken, "t.conf", "s3cret").unwrap_err();
        assert!(err.to_string().contains("t.conf: listening-port"), "{err}");
    }

    #[test]
    fn rest_api_password_matches_rfc2202_vector() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            rest_api_password("Jefe", "what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD.encode([
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ])
        );
    }
}
