//! Caddy's site configuration (Caddyfile).
// STUB: owned by the Caddy work; replaced by the typed model.

/// The Caddyfile site blocks for the Matrix host, the Element host and the base domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaddySites {}

impl CaddySites {
    /// Emits the site blocks as Caddyfile text.
    pub fn to_caddyfile(&self) -> String {
        String::new()
    }
}
