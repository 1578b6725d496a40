//! `render`, `check` and `schema`.

use std::path::Path;

use ospw_matrix::{
    example_host, load_host, render as derive, write_rendered, Error, RenderContext,
};

/// Renders the host description at `config` (or the embedded example) into `out`.
pub fn render(config: Option<&Path>, out: &Path) -> Result<(), Error> {
    let host = match config {
        Some(path) => load_host(path)?,
        None => example_host()?,
    };
    let output_dir = absolute(out)?;
    let rendered = derive(
        &host,
        &RenderContext {
            output_dir: output_dir.clone(),
        },
    )?;
    write_rendered(&rendered, &output_dir)?;
    eprintln!(
        "rendered {} files into {}",
        rendered.files.len(),
        output_dir.display()
    );
    Ok(())
}

/// Validates the host description at `config`; writes nothing.
pub fn check(config: &Path) -> Result<(), Error> {
    let host = load_host(config)?;
    // Rendering also checks the components' invariants; the output is dropped.
    let ctx = RenderContext {
        output_dir: "/nonexistent".into(),
    };
    derive(&host, &ctx)?;
    eprintln!("{}: valid", config.display());
    Ok(())
}

/// Prints the JSON Schema of the host description.
pub fn schema() -> Result<(), Error> {
    let schema = ospw_matrix::host_schema();
    let text = serde_json::to_string_pretty(&schema).map_err(|e| Error::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// `path` made absolute against the current directory (it need not exist).
fn absolute(path: &Path) -> Result<std::path::PathBuf, Error> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io(".", "read the current directory", e))?;
    Ok(cwd.join(path))
}
