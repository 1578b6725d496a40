//! Peer address ranges (`denied-peer-ip`, `allowed-peer-ip`) exactly as
//! coturn reads and applies them.
//!
//! coturn (`add_ip_list_range` in `src/apps/relay/userdb.c`) splits the
//! value at its first `-`, turns each side into an address with
//! `make_ioa_addr` (spaces trimmed; an empty side is 0.0.0.0; a literal
//! through `inet_pton`, anything else through a DNS look-up), and a peer is
//! in the range when `ioa_addr_in_range` says so
//! (`src/client/ns_turn_ioaddr.c`):
//!
//! - a bound that is the unspecified address (0.0.0.0 or `::`) is no bound
//!   at all (`addr_any`), so `::` alone covers every peer, IPv4 included;
//! - addresses of different families compare by family number: every IPv4
//!   address is "below" every IPv6 address (`addr_less_eq`);
//! - in 4.6 (Debian 12) to 4.8, IPv6 addresses compare byte by byte, each
//!   byte on its own: `a <= b` only when every byte of `a` is at most the
//!   same byte of `b`. A range is then a box of byte intervals, which equals
//!   the addresses between its ends only when it is a CIDR-like block (later
//!   releases compare them as numbers).
//!
//! This module reads a value the way coturn does and accepts it only when
//! every one of those versions applies exactly the addresses between its two
//! ends, so the privacy check can reason about plain intervals.

use std::net::IpAddr;

/// An inclusive interval of addresses of one family, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// IPv6 (true) or IPv4.
    pub v6: bool,
    /// The first address.
    pub first: u128,
    /// The last address (inclusive).
    pub last: u128,
}

impl Interval {
    /// The interval holding `first` to `last` (same family).
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        let (v6, a) = num(first);
        let (v6b, b) = num(last);
        (v6 == v6b && a <= b).then_some(Self {
            v6,
            first: a,
            last: b,
        })
    }

    /// Whether `addr` is in the interval.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (v6, n) = num(addr);
        v6 == self.v6 && self.first <= n && n <= self.last
    }

    /// The first address.
    pub fn first_addr(&self) -> IpAddr {
        addr(self.v6, self.first)
    }

    /// The last address.
    pub fn last_addr(&self) -> IpAddr {
        addr(self.v6, self.last)
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first_addr())
        } else {
            write!(f, "{}-{}", self.first_addr(), self.last_addr())
        }
    }
}

/// An address as a number, with its family.
pub fn num(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// The address of family `v6` with number `n` (an IPv4 number is cut to
/// 32 bits).
pub fn addr(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

/// Reads an address literal as coturn's `make_ioa_addr` would: spaces (and
/// only spaces) around it are trimmed. Only literals that `inet_pton` reads
/// the same way are accepted: a host name would be looked up in DNS when
/// coturn starts, and an empty text is 0.0.0.0 to coturn.
pub fn literal(text: &str) -> Result<IpAddr, String> {
    let t = text.trim_matches(' ');
    if t.is_empty() {
        return Err("an empty address, which coturn reads as 0.0.0.0 (no bound at all)".to_owned());
    }
    if t.contains('/') {
        return Err(format!(
            "{t:?} is in CIDR notation, which coturn does not read (it skips the whole line): \
             write the first and last address, FIRST-LAST"
        ));
    }
    t.parse::<IpAddr>().map_err(|_| {
        format!(
            "{t:?} is not an IP address: coturn would look it up as a host name; expected an \
             address such as 203.0.113.7 or 2001:db8::7"
        )
    })
}

/// Whether coturn treats `a` as "no bound" (`addr_any`).
fn is_any(a: IpAddr) -> bool {
    a.is_unspecified()
}

/// coturn 4.6–4.8's `addr_less_eq`.
fn less_eq_46(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => u32::from(x) <= u32::from(y),
        (IpAddr::V6(x), IpAddr::V6(y)) => x.octets().iter().zip(y.octets()).all(|(p, q)| *p <= q),
        // AF_INET (2) < AF_INET6 (10).
        (IpAddr::V4(_), IpAddr::V6(_)) => true,
        (IpAddr::V6(_), IpAddr::V4(_)) => false,
    }
}

/// A range as coturn stores it: two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoturnRange {
    /// The lower bound (`min`).
    pub min: IpAddr,
    /// The upper bound (`max`).
    pub max: IpAddr,
}

impl CoturnRange {
    /// Whether coturn 4.6–4.8 applies this range to `peer`
    /// (`ioa_addr_in_range`).
    pub fn contains_46(&self, peer: IpAddr) -> bool {
        (is_any(self.min) || less_eq_46(self.min, peer))
            && (is_any(self.max) || less_eq_46(peer, self.max))
    }
}

/// Reads `value` as coturn's `add_ip_list_range` does: `ADDRESS` or
/// `FIRST-LAST`, split at the first `-`.
pub fn read(value: &str) -> Result<CoturnRange, String> {
    match value.split_once('-') {
        Some((a, b)) => Ok(CoturnRange {
            min: literal(a)?,
            max: literal(b)?,
        }),
        None => {
            let a = literal(value)?;
            Ok(CoturnRange { min: a, max: a })
        }
    }
}

/// Reads `value` and returns the addresses coturn applies it to, when that
/// is exactly the interval between its two ends in every supported coturn
/// version; otherwise says what coturn would make of it.
pub fn interval(value: &str) -> Result<Interval, String> {
    let r = read(value)?;
    let (min, max) = (r.min, r.max);
    if min.is_ipv4() != max.is_ipv4() {
        return Err(format!(
            "{value:?} mixes IPv4 and IPv6: coturn would compare the two families by number and \
             apply it to addresses of both; expected FIRST-LAST of one family"
        ));
    }
    if is_any(max) {
        return Err(format!(
            "{value:?} ends at the unspecified address {max}, which coturn reads as no upper bound: \
             it would apply to every address from {min} up, both families included"
        ));
    }
    if is_any(min) && min.is_ipv6() {
        return Err(format!(
            "{value:?} starts at ::, which coturn reads as no lower bound: it would apply to every \
             IPv4 address too (coturn refuses the peer :: by itself)"
        ));
    }
    let Some(iv) = Interval::new(min, max) else {
        return Err(format!(
            "{value:?} is empty (its first address is above its last): coturn would apply it to \
             no address"
        ));
    };
    if let (IpAddr::V6(a), IpAddr::V6(b)) = (min, max) {
        // The byte-wise box equals the interval exactly when, after the
        // first byte where the ends differ, the first end has only 0x00 and
        // the last only 0xff bytes.
        let (a, b) = (a.octets(), b.octets());
        if let Some(k) = (0..16).find(|&i| a[i] != b[i]) {
            let aligned =
                a[k + 1..].iter().all(|x| *x == 0) && b[k + 1..].iter().all(|x| *x == 0xff);
            if !aligned {
                return Err(format!(
                    "{value:?} is not a prefix-aligned IPv6 block: coturn 4.6–4.8 compare IPv6 \
                     addresses byte by byte and would apply it to fewer addresses than lie between \
                     its ends; expected the first and last address of a CIDR block, such as \
                     fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                ));
            }
        }
    }
    Ok(iv)
}

/// Merges overlapping or adjacent intervals (sorted by family and start).
pub fn merge(mut ranges: Vec<Interval>) -> Vec<Interval> {
    ranges.sort();
    let mut merged: Vec<Interval> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(m) if m.v6 == r.v6 && r.first <= m.last.saturating_add(1) => {
                m.last = m.last.max(r.last);
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// Whether the merged intervals `cover` hold every address of `target`.
pub fn covers(cover: &[Interval], target: &Interval) -> bool {
    cover
        .iter()
        .any(|c| c.v6 == target.v6 && c.first <= target.first && target.last <= c.last)
}

/// The parts of `whole` not in any of the merged intervals `minus`.
pub fn subtract(whole: Interval, minus: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut next = whole.first;
    for m in minus.iter().filter(|m| m.v6 == whole.v6) {
        if m.last < next || m.first > whole.last {
            continue;
        }
        if m.first > next {
            out.push(Interval {
                v6: whole.v6,
                first: next,
                last: m.first - 1,
            });
        }
        if m.last >= whole.last {
            return out;
        }
        next = m.last + 1;
    }
    out.push(Interval {
        v6: whole.v6,
        first: next,
        last: whole.last,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unspecified_bounds_cover_everything_as_coturn_reads_them() {
        // The rendered list of earlier releases had `::`: every IPv4 peer.
        let r = read("::").unwrap();
        for peer in ["192.0.2.77", "100.128.0.2", "2001:200::2", "::1"] {
            assert!(r.contains_46(ip(peer)), "{peer}");
        }
        assert!(interval("::").is_err());
        assert!(interval("0.0.0.0").is_err());
        assert!(interval("::-::ffff").unwrap_err().contains("IPv4"));
        assert!(interval("10.0.0.0-0.0.0.0")
            .unwrap_err()
            .contains("upper bound"));
        // 0.0.0.0 as the first end of an IPv4 range is read as meant.
        let r = read("0.0.0.0-0.255.255.255").unwrap();
        assert!(r.contains_46(ip("0.1.2.3")));
        assert!(!r.contains_46(ip("1.0.0.0")));
        assert!(!r.contains_46(ip("2001:200::1")));
        assert!(interval("0.0.0.0-0.255.255.255").is_ok());
    }

    #[test]
    fn mixed_families_compare_by_family() {
        let r = read("203.0.113.1-::1").unwrap();
        assert!(r.contains_46(ip("203.0.113.9")));
        assert!(r.contains_46(ip("255.255.255.255")));
        assert!(r.contains_46(ip("::1")));
        assert!(interval("203.0.113.1-::1").is_err());
    }

    #[test]
    fn ipv6_compares_byte_by_byte_in_coturn_4_6() {
        // Not prefix-aligned: coturn misses addresses between the ends.
        let r = read("2001:db8::2-2001:db8::1:0").unwrap();
        assert!(!r.contains_46(ip("2001:db8::ff01")));
        assert!(Interval::new(ip("2001:db8::2"), ip("2001:db8::1:0"))
            .unwrap()
            .contains(ip("2001:db8::ff01")));
        assert!(interval("2001:db8::2-2001:db8::1:0").is_err());
        // Prefix-aligned blocks are read as meant, also for partial bytes.
        for (block, inside, outside) in [
            (
                "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "fd12::1",
                "fe00::",
            ),
            (
                "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "febf::1",
                "fec0::",
            ),
            (
                "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001:1ab::",
                "2001:200::",
            ),
        ] {
            let iv = interval(block).unwrap();
            let r = read(block).unwrap();
            for a in [inside, outside] {
                assert_eq!(iv.contains(ip(a)), r.contains_46(ip(a)), "{block} {a}");
            }
            assert!(iv.contains(ip(inside)) && !iv.contains(ip(outside)));
        }
    }

    #[test]
    fn ipv4_compatible_addresses_need_four_blocks_in_coturn_4_6() {
        // One range from ::0.0.0.1 misses every address whose last byte is
        // 0, as coturn 4.6 compares bytes one by one.
        let naive = read("::0.0.0.1-::255.255.255.255").unwrap();
        assert!(naive.contains_46(ip("::10.0.0.1")));
        assert!(!naive.contains_46(ip("::10.0.0.0")));
        assert!(!naive.contains_46(ip("::127.0.1.0")));
        // The four byte-aligned blocks the required list holds cover
        // every address of ::/96 but :: in every version.
        let blocks: Vec<CoturnRange> = [
            "::1-::ff",
            "::100-::ffff",
            "::1:0-::ff:ffff",
            "::100:0-::ffff:ffff",
        ]
        .iter()
        .map(|b| {
            assert!(interval(b).is_ok(), "{b}");
            read(b).unwrap()
        })
        .collect();
        for peer in [
            "::1",
            "::10.0.0.0",
            "::127.0.0.1",
            "::127.0.1.0",
            "::0.1.0.0",
            "::255.255.255.255",
            "::1.0.0.0",
        ] {
            assert!(blocks.iter().any(|b| b.contains_46(ip(peer))), "{peer}");
        }
        for peer in ["::1:0:0", "::ffff:0:1", "2001:db8::1"] {
            assert!(!blocks.iter().any(|b| b.contains_46(ip(peer))), "{peer}");
        }
    }

    #[test]
    fn only_literals() {
        for bad in [
            "10.0.0.0/8",
            "localhost",
            "",
            " ",
            "010.0.0.1",
            "10.0.0.1\t",
            "1.2.3",
        ] {
            assert!(interval(bad).is_err(), "{bad:?}");
        }
        assert!(interval("10.0.0.0/8").unwrap_err().contains("CIDR"));
        assert_eq!(
            interval(" 10.0.0.1 - 10.0.0.9 ").unwrap().to_string(),
            "10.0.0.1-10.0.0.9"
        );
        assert!(interval("10.0.0.9-10.0.0.1").unwrap_err().contains("empty"));
    }

    #[test]
    fn subtract_and_cover() {
        let whole = Interval::new(ip("0.0.0.0"), ip("255.255.255.255")).unwrap();
        let minus = merge(vec![
            interval("10.0.0.0-10.255.255.255").unwrap(),
            interval("0.0.0.0-0.255.255.255").unwrap(),
            interval("240.0.0.0-255.255.255.255").unwrap(),
        ]);
        let rest = subtract(whole, &minus);
        assert_eq!(
            rest.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            vec!["1.0.0.0-9.255.255.255", "11.0.0.0-239.255.255.255"]
        );
        assert!(covers(&minus, &interval("10.1.0.0-10.2.0.0").unwrap()));
        assert!(!covers(&minus, &interval("9.1.0.0-10.2.0.0").unwrap()));
        assert!(subtract(whole, &[whole]).is_empty());
    }
}
