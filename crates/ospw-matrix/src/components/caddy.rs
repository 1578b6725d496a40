//! Caddy's configuration: a small typed model of Caddyfile site blocks,
//! directives and global options, with an emitter.
//!
//! Only what this product writes is modelled; there is no parser. Arguments
//! are quoted as the Caddyfile lexer expects: bare when they hold no white
//! space, quotes or braces, otherwise in backticks (when they hold double
//! quotes, as JSON bodies do) or in double quotes with escapes.

use std::fmt::Write as _;

/// One Caddyfile directive (or global option, or sub-directive): a name,
/// its arguments and an optional block of nested directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, e.g. `reverse_proxy`, `handle`, `header`.
    pub name: String,
    /// Its arguments, unquoted (the emitter quotes them).
    pub args: Vec<String>,
    /// Nested directives; emitted as a `{ ... }` block when not empty.
    pub block: Vec<Directive>,
}

impl Directive {
    /// A directive without a block.
    pub fn new<I, S>(name: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            block: Vec::new(),
        }
    }

    /// A directive with a block of nested directives.
    pub fn with_block<I, S>(name: &str, args: I, block: Vec<Directive>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            block,
            ..Self::new(name, args)
        }
    }

    fn emit(&self, out: &mut String, depth: usize) {
        let indent = "\t".repeat(depth);
        out.push_str(&indent);
        out.push_str(&quote(&self.name));
        for a in &self.args {
            out.push(' ');
            out.push_str(&quote(a));
        }
        if self.block.is_empty() {
            out.push('\n');
        } else {
            out.push_str(" {\n");
            for d in &self.block {
                d.emit(out, depth + 1);
            }
            out.push_str(&indent);
            out.push_str("}\n");
        }
    }

    /// Every directive below this one (depth first), itself included.
    pub fn walk(&self) -> Vec<&Directive> {
        let mut out = vec![self];
        for d in &self.block {
            out.extend(d.walk());
        }
        out
    }
}

/// Quotes one token for the Caddyfile lexer.
pub fn quote(token: &str) -> String {
    // `{` and `}` inside a token are fine (placeholders such as `{uri}`);
    // only a token that *is* a brace would open or close a block.
    let plain = !token.is_empty()
        && token != "{"
        && token != "}"
        && !token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '`' | '\\' | '#'));
    if plain {
        token.to_owned()
    } else if token.contains('"') && !token.contains('`') {
        format!("`{token}`")
    } else {
        let mut q = String::from("\"");
        for c in token.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    }
}

/// One site block: its addresses and its directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteBlock {
    /// The site addresses, e.g. `matrix.example.org` or `chat.example.org:8443`.
    pub addresses: Vec<String>,
    /// The directives inside the block.
    pub directives: Vec<Directive>,
}

impl SiteBlock {
    fn emit(&self, out: &mut String) {
        let addrs: Vec<String> = self.addresses.iter().map(|a| quote(a)).collect();
        let _ = writeln!(out, "{} {{", addrs.join(", "));
        for d in &self.directives {
            d.emit(out, 1);
        }
        out.push_str("}\n");
    }

    /// Every directive in this block (depth first).
    pub fn walk(&self) -> Vec<&Directive> {
        self.directives.iter().flat_map(Directive::walk).collect()
    }
}

/// The Caddyfile site blocks for the Matrix host, the Element host and the
/// base domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaddySites {
    /// The site blocks, in order.
    pub sites: Vec<SiteBlock>,
}

impl CaddySites {
    /// Emits the site blocks as Caddyfile text.
    pub fn to_caddyfile(&self) -> String {
        let mut out = String::new();
        for (i, site) in self.sites.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            site.emit(&mut out);
        }
        out
    }

    /// The site block whose first address starts with `host` (followed by
    /// the end or a port).
    pub fn site(&self, host: &str) -> Option<&SiteBlock> {
        self.sites.iter().find(|s| {
            s.addresses.first().is_some_and(|a| {
                a == host
                    || a.strip_prefix(host)
                        .is_some_and(|rest| rest.starts_with(':'))
            })
        })
    }
}

/// A complete Caddyfile: the global options block, then the sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caddyfile {
    /// The global options (`email`, `http_port`, `admin`, ...).
    pub global: Vec<Directive>,
    /// The site blocks.
    pub sites: CaddySites,
}

impl Caddyfile {
    /// Emits the whole Caddyfile.
    pub fn to_caddyfile(&self) -> String {
        let mut out = String::new();
        if !self.global.is_empty() {
            out.push_str("{\n");
            for d in &self.global {
                d.emit(&mut out, 1);
            }
            out.push_str("}\n\n");
        }
        out.push_str(&self.sites.to_caddyfile());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("reverse_proxy"), "reverse_proxy");
        assert_eq!(
            quote("https://chat.example.org{uri}"),
            "https://chat.example.org{uri}"
        );
        assert_eq!(
            quote("frame-ancestors 'self'"),
            "\"frame-ancestors 'self'\""
        );
        assert_eq!(quote(r#"{"a":"b"}"#), r#"`{"a":"b"}`"#);
        assert_eq!(quote(r#"a "b" `c`"#), r#""a \"b\" `c`""#);
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("{"), "\"{\"");
        assert_eq!(quote("/path with space"), "\"/path with space\"");
    }

    #[test]
    fn emits_nested_blocks() {
        let sites = CaddySites {
            sites: vec![SiteBlock {
                addresses: vec!["a.example.org:8443".into()],
                directives: vec![
                    Directive::new("tls", ["internal"]),
                    Directive::with_block(
                        "handle",
                        ["/x/*"],
                        vec![Directive::new("respond", ["404"])],
                    ),
                ],
            }],
        };
        assert_eq!(
            sites.to_caddyfile(),
            "a.example.org:8443 {\n\ttls internal\n\thandle /x/* {\n\t\trespond 404\n\t}\n}\n"
        );
        assert!(sites.site("a.example.org").is_some());
        assert!(sites.site("a.example").is_none());
        let file = Caddyfile {
            global: vec![Directive::new("admin", ["off"])],
            sites,
        };
        assert!(file
            .to_caddyfile()
            .starts_with("{\n\tadmin off\n}\n\na.example.org:8443 {"));
    }
}
