//! Parsers for the value forms the host description uses: sizes, durations
//! and port ranges. Each error message says what form was expected.

use std::fmt;

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Parses `FIRST-LAST` (both 1 to 65535, first below last).
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let expected = "expected FIRST-LAST such as 49152-65535";
    let Some((a, b)) = text.split_once('-') else {
        return Err(format!(
            "{} is not a port range: {expected}",
            crate::redact::quote(text)
        ));
    };
    let parse = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p != 0);
    let (Some(first), Some(last)) = (parse(a), parse(b)) else {
        return Err(format!(
            "{} is not a port range of ports 1 to 65535: {expected}",
            crate::redact::quote(text)
        ));
    };
    if first >= last {
        return Err(format!(
            "{text} is empty: the first port must be below the last"
        ));
    }
    Ok(PortRange { first, last })
}

/// Parses a size such as `50M` into bytes. Suffixes K, M, G and T are powers
/// of 1024; a bare number is bytes.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let expected = "expected a number with an optional suffix K, M, G or T, such as 50M";
    let (digits, factor) = match text.char_indices().last() {
        Some((i, 'K')) => (&text[..i], 1u64 << 10),
        Some((i, 'M')) => (&text[..i], 1u64 << 20),
        Some((i, 'G')) => (&text[..i], 1u64 << 30),
        Some((i, 'T')) => (&text[..i], 1u64 << 40),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{} is not a size: {expected}",
            crate::redact::quote(text)
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{} is too large: {expected}", crate::redact::quote(text)))?;
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{} is too large: {expected}", crate::redact::quote(text)))?;
    if bytes == 0 {
        return Err(format!(
            "{} is zero: {expected}",
            crate::redact::quote(text)
        ));
    }
    Ok(bytes)
}

/// Parses a duration such as `1h` into milliseconds. Suffixes: ms, s, m, h,
/// d, w, y (as Synapse reads them); a bare number is milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let expected = "expected a number with a suffix ms, s, m, h, d, w or y, such as 1h";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let factor: u64 = match suffix {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => {
            return Err(format!(
                "{} is not a duration: {expected}",
                crate::redact::quote(text)
            ))
        }
    };
    if digits.is_empty() {
        return Err(format!(
            "{} is not a duration: {expected}",
            crate::redact::quote(text)
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{} is too long: {expected}", crate::redact::quote(text)))?;
    let ms = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{} is too long: {expected}", crate::redact::quote(text)))?;
    if ms == 0 {
        return Err(format!(
            "{} is zero: {expected}",
            crate::redact::quote(text)
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_port_range("49152-65535"),
            Ok(PortRange {
                first: 49152,
                last: 65535
            })
        );
        assert_eq!(
            parse_port_range("60000-50000").unwrap_err(),
            "60000-50000 is empty: the first port must be below the last"
        );
        assert!(parse_port_range("5000").is_err());
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("1-70000").is_err());
        assert!(parse_port_range("10-10").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("50M"), Ok(50 * 1024 * 1024));
        assert_eq!(parse_size_bytes("1024"), Ok(1024));
        assert_eq!(parse_size_bytes("2G"), Ok(2 << 30));
        for bad in [
            "",
            "M",
            "50 M",
            "50MB",
            "-1",
            "0",
            "1.5M",
            "99999999999999T",
        ] {
            assert!(parse_size_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        for bad in ["", "h", "1 h", "1hour", "0s", "-1s", "1.5h"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
