//! coturn's configuration file reader, mirrored byte for byte
//! (`read_config_file`, `parse_arg_string` in `src/apps/relay/mainrelay.c`
//! and `skip_blanks` in `src/apps/common/apputils.c`; the same in 4.6.1,
//! 4.7 and 4.8):
//!
//! 1. The file is read with `fgets(sbuf, 1024, f)`: chunks of at most
//!    1023 bytes, each ending after a line feed or when the buffer is full.
//!    A longer line becomes two or more chunks, each read as an option of
//!    its own.
//! 2. Leading spaces, tabs and line feeds are skipped; a chunk starting with
//!    `#` is a comment (there are no comments after a value); a NUL byte
//!    ends the chunk (`strlen`); trailing white space (`isspace`: space,
//!    `\t`, `\n`, `\v`, `\f`, `\r`) is cut.
//! 3. The option name runs to the first space, `=` or tab; every following
//!    space, `=` and tab is skipped, and the rest is the value (empty when
//!    there is none).
//! 4. A value starting with `"` loses that quote, trailing white space and
//!    one trailing `"`.
//!
//! [`read`] returns the options exactly as coturn gets them. [`canonical`]
//! says whether a file is written so that reading it line by line as
//! `name=value` gives the same options, the only form this product writes
//! and accepts.

/// The most bytes one `fgets` call of coturn's reader returns: a line of
/// this length (without its line feed) is still read whole.
pub const MAX_LINE_BYTES: usize = 1023;

/// One option as coturn reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// The line of the file the chunk starts on (1-based).
    pub line: usize,
    /// The option name.
    pub name: Vec<u8>,
    /// The value (empty for a bare option).
    pub value: Vec<u8>,
}

impl RawOption {
    /// The name as text (bytes that are not UTF-8 replaced).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The value as text (bytes that are not UTF-8 replaced).
    pub fn value_lossy(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// The chunks `fgets(buf, 1024, f)` returns, each with the line it starts on.
fn chunks(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut rest = bytes;
    while !rest.is_empty() {
        let take = match rest.iter().take(MAX_LINE_BYTES).position(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => rest.len().min(MAX_LINE_BYTES),
        };
        let (chunk, tail) = rest.split_at(take);
        out.push((line, chunk));
        if chunk.ends_with(b"\n") {
            line += 1;
        }
        rest = tail;
    }
    out
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The options coturn reads from `bytes`, in order.
pub fn read(bytes: &[u8]) -> Vec<RawOption> {
    let mut out = Vec::new();
    for (line, chunk) in chunks(bytes) {
        // skip_blanks
        let start = chunk
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n'))
            .unwrap_or(chunk.len());
        let mut s = &chunk[start..];
        // strlen
        if let Some(nul) = s.iter().position(|b| *b == 0) {
            s = &s[..nul];
        }
        if s.first() == Some(&b'#') || s.is_empty() {
            continue;
        }
        while let Some((last, head)) = s.split_last() {
            if is_c_space(*last) {
                s = head;
            } else {
                break;
            }
        }
        if s.is_empty() {
            continue;
        }
        // parse_arg_string
        let sep = |b: &u8| matches!(b, b' ' | b'=' | b'\t');
        let (name, mut value) = match s.iter().position(sep) {
            Some(i) => {
                let rest = &s[i..];
                let skip = rest.iter().position(|b| !sep(b)).unwrap_or(rest.len());
                (&s[..i], &rest[skip..])
            }
            None => (s, &s[s.len()..]),
        };
        if value.first() == Some(&b'"') {
            value = &value[1..];
            while let Some((last, head)) = value.split_last() {
                if matches!(last, b'\n' | b'\r' | b' ' | b'\t') {
                    value = head;
                } else {
                    break;
                }
            }
            if value.last() == Some(&b'"') {
                value = &value[..value.len() - 1];
            }
        }
        out.push(RawOption {
            line,
            name: name.to_vec(),
            value: value.to_vec(),
        });
    }
    out
}

/// Why `value` would not reach coturn as written on a `name=value` line,
/// or `None` when it would.
pub fn value_problem(value: &str) -> Option<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        let what = match c {
            '\n' | '\r' => "a line break, which would start another option".to_owned(),
            '\0' => "a NUL byte, where coturn would cut the line".to_owned(),
            '\t' => "a tab, which coturn reads as white space".to_owned(),
            c => format!("the control character {:?}", c),
        };
        return Some(format!("holds {what}: expected one line of printable text"));
    }
    if value.starts_with([' ', '=']) || value.ends_with(' ') {
        return Some(
            "begins with a space or `=`, or ends with a space, which coturn would drop: expected \
             the value without them"
                .to_owned(),
        );
    }
    if value.starts_with('"') {
        return Some("begins with a quote, which coturn would strip with a closing one".to_owned());
    }
    if value.starts_with('-') {
        return Some(
            "begins with `-`, like a command-line option: expected a value that does not"
                .to_owned(),
        );
    }
    None
}

/// Checks that `text` is written so that coturn reads exactly the options
/// a plain `name=value` reading of its lines gives: no byte it would read
/// differently (NUL, carriage return, control characters), no line longer
/// than [`MAX_LINE_BYTES`], and every option line written as `name` or
/// `name=value` with nothing coturn would strip or split. Returns each
/// problem with its line number (1-based).
pub fn canonical(text: &str) -> Vec<(usize, String)> {
    let mut errs = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let at = i + 1;
        if line.len() > MAX_LINE_BYTES {
            errs.push((
                at,
                format!(
                    "is {} bytes long: coturn reads lines in pieces of {MAX_LINE_BYTES} bytes and \
                     would read the rest as another option",
                    line.len()
                ),
            ));
            continue;
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.starts_with('#') || trimmed.is_empty() {
            if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
                errs.push((
                    at,
                    format!("holds the control character {c:?}: expected printable text"),
                ));
            }
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (line, None),
        };
        let name_ok = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            // Quote only the part that looks like a name: the rest of the
            // line may be a secret.
            let shown: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(60)
                .collect();
            errs.push((
                at,
                format!("the option {shown:?} is not written as name=value or a bare option name"),
            ));
            continue;
        }
        if let Some(problem) = value.and_then(value_problem) {
            errs.push((at, format!("the value of {name} {problem}")));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_values(text: &[u8]) -> Vec<(String, String)> {
        read(text)
            .into_iter()
            .map(|o| (o.name_lossy(), o.value_lossy()))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn reads_like_coturn() {
        let text =
            b"# comment\n  \t realm = example.org  \nno-cli\nuser-quota==12\nstale-nonce\t600\n\
                     server-name=\"quoted\"  \nlog-file=stdout # not a comment\nfingerprint=\r\n\
                     a\0b=c\n   \n";
        assert_eq!(
            names_values(text),
            pairs(&[
                ("realm", "example.org"),
                ("no-cli", ""),
                ("user-quota", "12"),
                ("stale-nonce", "600"),
                ("server-name", "quoted"),
                ("log-file", "stdout # not a comment"),
                ("fingerprint", ""),
                ("a", ""),
            ])
        );
    }

    #[test]
    fn long_lines_become_two_options() {
        // The smuggling case: a value that fills coturn's buffer exactly.
        let head = "server-name=";
        let filler = "a".repeat(MAX_LINE_BYTES - head.len());
        let text = format!("{head}{filler}allowed-peer-ip=10.0.0.0-10.255.255.255\nno-cli\n");
        let read = read(text.as_bytes());
        assert_eq!(read.len(), 3);
        assert_eq!(read[1].name_lossy(), "allowed-peer-ip");
        assert_eq!(read[1].value_lossy(), "10.0.0.0-10.255.255.255");
        assert_eq!(read[1].line, 1);
        assert_eq!(read[2].line, 2);
        assert!(canonical(&text)[0].1.contains("1023"));
        // A line of exactly 1023 bytes is read whole (its line feed alone is
        // a blank chunk).
        let exact = format!(
            "server-name={}\nno-cli\n",
            "b".repeat(MAX_LINE_BYTES - head.len())
        );
        let read2 = super::read(exact.as_bytes());
        assert_eq!(read2.len(), 2, "{read2:?}");
        assert!(canonical(&exact).is_empty());
    }

    #[test]
    fn canonical_refuses_what_coturn_reads_differently() {
        for bad in [
            "realm = example.org",
            "realm=\"x\"",
            "realm=x\r",
            "realm= x",
            "realm==x",
            "realm=x ",
            "realm=a\tb",
            "realm=a\0b",
            "realm x",
            "--no-auth",
            "denied-peer-ip=-10.0.0.1",
        ] {
            assert!(!canonical(bad).is_empty(), "{bad:?}");
        }
        for good in [
            "# comment",
            "",
            "realm=example.org",
            "no-cli",
            "x=a=b",
            "  # x",
        ] {
            assert!(
                canonical(good).is_empty(),
                "{good:?}: {:?}",
                canonical(good)
            );
        }
    }
}
