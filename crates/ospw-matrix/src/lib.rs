//! # OSPW Matrix
//!
//! Typed, validated configuration for a private Matrix server: one
//! [`HostDescription`] becomes Synapse's `homeserver.yaml`, coturn's
//! `turnserver.conf`, Element Web's `config.json` and Caddy's site
//! configuration, consistently, with the privacy invariants (no federation,
//! no public registration, encryption by default, no phoning home) enforced.
//!
//! ```
//! use ospw_matrix::{example_host, render, RenderContext};
//!
//! let host = example_host()?;
//! let ctx = RenderContext { output_dir: "/etc/ospw-matrix".into() };
//! let rendered = render(&host, &ctx)?;
//! assert!(rendered.get("synapse/homeserver.yaml").is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layout: [`host`] (the model), [`mod@validate`] (field checks), [`components`]
//! (each program's own configuration model), [`mod@render`] (derivation and
//! atomic writing), [`secrets`], [`registration`], [`backup`] (archive
//! manifest and verification) and [`compose_import`] (migration from the
//! Docker Compose setup).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
pub mod components;
pub mod compose_import;
pub mod error;
pub mod fsutil;
pub mod host;
pub mod inline_secrets;
pub mod input;
pub mod load;
pub mod redact;
pub mod registration;
pub mod render;
pub mod secrets;
pub mod validate;
pub mod values;

pub use error::{Error, FieldError, Result, ValidationErrors};
pub use host::HostDescription;
pub use load::{example_host, load_host, parse_host, EXAMPLE_HOST_YAML};
pub use render::{render, write_rendered, RenderContext, Rendered};
pub use validate::validate;

/// The JSON Schema of the host description.
pub fn host_schema() -> schemars::Schema {
    schemars::schema_for!(HostDescription)
}
