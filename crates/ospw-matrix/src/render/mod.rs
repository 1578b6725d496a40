//! Deriving every component's configuration from one host description, and
//! writing the result atomically.
//!
//! [`render()`] validates the host description first; then each component
//! builder derives its typed model, merges the component's free-form
//! `settings` last and checks that the result still keeps the privacy
//! invariants. Nothing is written unless everything succeeded.

pub mod caddy;
pub mod coturn;
pub mod element;
pub mod synapse;
pub mod synapse_auth;
pub mod well_known;
pub mod workers;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, ValidationErrors};
use crate::host::HostDescription;
use crate::validate::validate;

/// Where the rendered files will live, which some files refer to (Synapse's
/// log configuration, Element's `config.json` served by Caddy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// The absolute directory the files are written to (for NixOS, the
    /// derivation's `$out`).
    pub output_dir: PathBuf,
}

/// One rendered file, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path relative to the output directory, e.g. `synapse/homeserver.yaml`.
    pub path: PathBuf,
    /// The file's contents.
    pub contents: String,
}

/// Every file derived from one host description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The files, in a fixed order.
    pub files: Vec<RenderedFile>,
}

impl Rendered {
    /// The contents of the file at `path` (relative), if rendered.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == Path::new(path))
            .map(|f| f.contents.as_str())
    }
}

/// Relative paths of the rendered files.
pub mod paths {
    /// Synapse's configuration.
    pub const HOMESERVER_YAML: &str = "synapse/homeserver.yaml";
    /// Synapse's logging configuration.
    pub const SYNAPSE_LOG_CONFIG: &str = "synapse/log.yaml";
    /// The directory of the workers' configurations (`NAME.yaml`) and
    /// logging configurations (`NAME.log.yaml`), with `synapse.workers`.
    pub const SYNAPSE_WORKERS_DIR: &str = "synapse/workers";
    /// The workers' manifest (names, kinds, configurations, listeners),
    /// with `synapse.workers`.
    pub const SYNAPSE_WORKERS_MANIFEST: &str = "synapse/workers.json";
    /// coturn's configuration without its secret; `ospw-matrix materialize
    /// coturn` adds the secret at service start.
    pub const TURNSERVER_TEMPLATE: &str = "coturn/turnserver.conf";
    /// Element Web's configuration.
    pub const ELEMENT_CONFIG: &str = "element/config.json";
    /// Element's welcome page (self-contained, served in place of Element's own).
    pub const ELEMENT_WELCOME: &str = "element/welcome.html";
    /// Caddy's site blocks, to import into a Caddyfile that has its own
    /// global options (as NixOS's `services.caddy` does).
    pub const CADDY_SITES: &str = "caddy/sites.caddy";
    /// A complete standalone Caddyfile: global options plus the sites.
    pub const CADDYFILE: &str = "caddy/Caddyfile";
    /// The client discovery document served at `/.well-known/matrix/client`.
    pub const WELL_KNOWN_CLIENT: &str = "well-known/matrix/client";
    /// The validated host description as JSON, for the admin commands.
    pub const HOST_JSON: &str = "host.json";
}

/// Marks a directory written by [`write_rendered`], so that a re-render may
/// replace it and nothing else.
pub const RENDER_MARKER: &str = ".ospw-matrix-render";

/// Validates `host` and derives every file. Returns every problem found.
pub fn render(host: &HostDescription, ctx: &RenderContext) -> Result<Rendered, ValidationErrors> {
    // The component builders run even when a field is invalid, so that one
    // pass also reports the free-form settings that break an invariant.
    let mut field_errors = validate(host).err();
    let output = output_dir_errors(host, ctx);
    if !output.is_empty() {
        field_errors
            .get_or_insert_with(ValidationErrors::new)
            .extend(output);
    }
    let mut errs = ValidationErrors::new();
    let homeserver = synapse::homeserver(host, ctx)
        .map_err(|e| errs.extend(e))
        .ok();
    let turnserver = coturn::turnserver(host).map_err(|e| errs.extend(e)).ok();
    let element = element::config(host).map_err(|e| errs.extend(e)).ok();
    let sites = caddy::sites(host, ctx).map_err(|e| errs.extend(e)).ok();
    if let Some(mut field_errors) = field_errors {
        // With invalid fields, the builders' own findings about those fields
        // would repeat the field errors: add only what concerns `settings`.
        let settings_errors: Vec<_> = errs
            .errors
            .into_iter()
            .filter(|e| {
                is_settings_path(&e.path) && !field_errors.errors.iter().any(|f| f.path == e.path)
            })
            .collect();
        field_errors.errors.extend(settings_errors);
        return Err(field_errors);
    }
    let (Some(homeserver), Some(turnserver), Some(element), Some(sites)) =
        (homeserver, turnserver, element, sites)
    else {
        return Err(errs);
    };
    let homeserver_yaml = homeserver.to_yaml_string().map_err(|e| {
        let mut errs = ValidationErrors::new();
        errs.push("synapse", e.to_string());
        errs
    })?;
    let host_json = serde_json::to_string_pretty(host).map_err(|e| {
        let mut errs = ValidationErrors::new();
        errs.push(".", format!("cannot serialise the host description: {e}"));
        errs
    })?;
    let worker_files = match &host.synapse.workers {
        Some(w) => workers::files(host, w, &homeserver, ctx)?,
        None => Vec::new(),
    };
    let file = |path: &str, contents: String| RenderedFile {
        path: PathBuf::from(path),
        contents,
    };
    let mut files = vec![
        file(paths::HOMESERVER_YAML, homeserver_yaml),
        file(paths::SYNAPSE_LOG_CONFIG, synapse::log_config(host)),
    ];
    files.extend(worker_files);
    files.extend([
        file(paths::TURNSERVER_TEMPLATE, turnserver.to_conf_string()),
        file(paths::ELEMENT_CONFIG, element.to_json_string()),
        file(paths::ELEMENT_WELCOME, element::welcome_page(host)),
        file(paths::CADDY_SITES, sites.to_caddyfile()),
        file(paths::CADDYFILE, caddy::standalone_caddyfile(host, ctx)),
        file(paths::WELL_KNOWN_CLIENT, well_known::client(host)),
        file(paths::HOST_JSON, host_json + "\n"),
    ]);
    if synapse_auth::uses_templates(host) {
        for (name, text) in synapse_auth::TEMPLATES {
            files.push(file(
                &format!("{}/{name}", synapse_auth::TEMPLATES_DIR),
                text.to_owned(),
            ));
        }
    }
    Ok(Rendered { files })
}

/// The data, web-root and secret paths that lie in (or are) the output
/// directory: [`write_rendered`] replaces that directory whole, so the
/// next render would delete them.
fn output_dir_errors(host: &HostDescription, ctx: &RenderContext) -> ValidationErrors {
    let mut errs = ValidationErrors::new();
    let Some(out) = crate::validate::normal_path(&ctx.output_dir) else {
        return errs;
    };
    let mut ignored = ValidationErrors::new();
    let mut paths = crate::validate::configured_paths(host, &mut ignored);
    let data_dir_inside = paths
        .iter()
        .any(|p| p.field == "synapse.data_dir" && crate::validate::path_within(&p.normal, &out));
    if host.synapse.media_store_path.is_none() && !data_dir_inside {
        if let Some(normal) = crate::validate::normal_path(&host.synapse.media_store_path()) {
            paths.push(crate::validate::ConfiguredPath::derived(
                "synapse.media_store_path (default: <data_dir>/media_store)",
                normal,
            ));
        }
    }
    for p in paths {
        if crate::validate::path_within(&p.normal, &out) {
            errs.push(
                p.field.clone(),
                format!(
                    "lies in the render output directory {}, which every render replaces whole \
                     (it would be deleted): expected it outside, or render into another directory",
                    crate::redact::quote(&out)
                ),
            );
        }
    }
    errs
}

/// Whether `path` names a component's free-form settings (or Element's
/// `setting_defaults`), which the component builders check.
fn is_settings_path(path: &str) -> bool {
    [
        "synapse.settings",
        "turn.settings",
        "element.settings",
        "element.setting_defaults",
    ]
    .iter()
    .any(|prefix| {
        path == *prefix
            || path.starts_with(&format!("{prefix}."))
            || path.starts_with(&format!("{prefix}["))
    })
}

/// Writes `rendered` to `out` atomically. An existing `out` is replaced only
/// if it is empty or was written by this function (it holds
/// [`RENDER_MARKER`]; anything else is refused), by a staging directory
/// written beside it and swapped in. A new `out` is written in a private
/// directory of `$TMPDIR` and renamed into place (or copied, when `$TMPDIR`
/// is on another file system), so that nothing but `out` is ever created
/// beside it: in a Nix build `out` is `$out` in the store (see
/// [`crate::fsutil::replace_dir_atomically`]).
pub fn write_rendered(rendered: &Rendered, out: &Path) -> Result<()> {
    crate::fsutil::replace_dir_atomically(out, RENDER_MARKER, |staging| {
        for f in &rendered.files {
            let target = staging.join(&f.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(parent, "create directory", e))?;
            }
            std::fs::write(&target, &f.contents).map_err(|e| Error::io(&target, "write", e))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_for_output(out: &str) -> Vec<String> {
        let host = crate::load::example_host().expect("example");
        let ctx = RenderContext {
            output_dir: out.into(),
        };
        render(&host, &ctx)
            .err()
            .map_or_else(Vec::new, |e| e.errors.into_iter().map(|e| e.path).collect())
    }

    #[test]
    fn data_and_secrets_may_not_lie_in_the_output_directory() {
        assert_eq!(
            errors_for_output("/var/lib/ospw-matrix"),
            vec!["synapse.data_dir", "element.webroot", "secrets.dir"]
        );
        assert_eq!(
            errors_for_output("/var/lib/ospw-matrix/secrets/"),
            vec!["secrets.dir"]
        );
        assert_eq!(
            errors_for_output("/var/lib/ospw-matrix/synapse/media_store"),
            vec!["synapse.media_store_path (default: <data_dir>/media_store)"]
        );
        assert!(errors_for_output("/etc/ospw-matrix").is_empty());
        assert!(errors_for_output("/var/lib/ospw-matrix/rendered").is_empty());
    }
}
