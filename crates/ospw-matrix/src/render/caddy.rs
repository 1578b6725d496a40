//! Derives Caddy's site configuration from the host description.
// STUB: owned by the Caddy work.

use crate::components::caddy::CaddySites;
use crate::error::ValidationErrors;
use crate::host::HostDescription;
use crate::render::RenderContext;

/// Derives the site blocks for the Matrix host, the Element host and the base domain.
pub fn sites(
    _host: &HostDescription,
    _ctx: &RenderContext,
) -> Result<CaddySites, ValidationErrors> {
    Ok(CaddySites::default())
}

/// A complete Caddyfile: global options, then the sites.
pub fn standalone_caddyfile(_host: &HostDescription, _ctx: &RenderContext) -> String {
    String::new()
}
