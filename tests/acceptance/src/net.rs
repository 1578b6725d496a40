//! Which addresses a run's processes listen on, from `/proc/net`: every
//! listening TCP socket and every UDP socket they hold must be on loopback.

use std::collections::BTreeSet;

/// The socket inodes `pid` holds (`/proc/PID/fd/* -> socket:[INODE]`).
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(e.path()) {
            let l = link.to_string_lossy();
            if let Some(n) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = n.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Whether the hexadecimal address of `/proc/net/{tcp,udp}[6]` is loopback
/// (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104).
pub fn is_loopback_hex(addr: &str) -> bool {
    match addr.len() {
        // IPv4, one little-endian word: the first octet is the last byte.
        8 => addr.ends_with("7F"),
        32 => {
            addr == "00000000000000000000000001000000"
                || (addr.starts_with("0000000000000000FFFF0000") && addr.ends_with("7F"))
        }
        _ => false,
    }
}

/// A socket line of `/proc/net/*` whose owner is one of `inodes`, as
/// (local address in hex, port, state, inode).
fn entries(table: &str) -> Vec<(String, u16, String, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            Some((
                addr.to_owned(),
                u16::from_str_radix(port, 16).ok()?,
                (*f.get(3)?).to_owned(),
                f.get(9)?.parse().ok()?,
            ))
        })
        .collect()
}

/// The listening TCP sockets and the UDP sockets of `pids` that are not on
/// loopback, described (`PID tcp ADDR:PORT`), and how many sockets were seen.
pub fn non_loopback_sockets(pids: &[u32]) -> (Vec<String>, usize) {
    let owners: Vec<(u32, BTreeSet<u64>)> = pids.iter().map(|p| (*p, socket_inodes(*p))).collect();
    let mut bad = Vec::new();
    let mut seen = 0;
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        for (addr, port, state, inode) in entries(table) {
            // TCP: only listeners (0A); UDP: every socket.
            if table.starts_with("tcp") && state != "0A" {
                continue;
            }
            let Some((pid, _)) = owners.iter().find(|(_, set)| set.contains(&inode)) else {
                continue;
            };
            seen += 1;
            if !is_loopback_hex(&addr) {
                bad.push(format!("{pid} {table} {addr}:{port}"));
            }
        }
    }
    (bad, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_in_proc_net_form() {
        assert!(is_loopback_hex("0100007F")); // 127.0.0.1
        assert!(!is_loopback_hex("00000000")); // 0.0.0.0
        assert!(!is_loopback_hex("0101A8C0")); // 192.168.1.1
        assert!(is_loopback_hex("00000000000000000000000001000000")); // ::1
        assert!(!is_loopback_hex("00000000000000000000000000000000")); // ::
        assert!(is_loopback_hex("0000000000000000FFFF00000100007F")); // ::ffff:127.0.0.1
    }

    #[test]
    fn a_socket_on_all_addresses_is_seen() {
        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let lo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (bad, seen) = non_loopback_sockets(&[std::process::id()]);
        let any_port = any.local_addr().unwrap().port();
        let lo_port = lo.local_addr().unwrap().port();
        assert!(seen >= 2, "seen {seen}");
        assert!(
            bad.iter()
                .any(|b| b.ends_with(&format!("00000000:{any_port}"))),
            "{bad:?}"
        );
        assert!(
            !bad.iter().any(|b| b.ends_with(&format!(":{lo_port}"))),
            "{bad:?}"
        );
    }
}
