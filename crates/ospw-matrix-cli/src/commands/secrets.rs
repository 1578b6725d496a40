//! `keygen` and `secrets init`.

use std::path::Path;

use ospw_matrix::secrets::{init_dir, SigningKey};
use ospw_matrix::Error;

/// Prints one new Synapse signing key (`ed25519 a_XXXX <seed>`) on standard
/// output.
pub fn keygen() -> Result<(), Error> {
    print!("{}", SigningKey::generate()?.to_file_string());
    Ok(())
}

/// Creates every missing secret in `dir` (mode 0700, files 0600), keeps
/// every valid existing one, and reports which is which. Secret values are
/// never printed.
pub fn init(dir: &Path) -> Result<(), Error> {
    let report = init_dir(dir)?;
    if report.dir_created {
        println!("created directory {} (mode 0700)", report.dir.display());
    }
    if let Some(mode) = report.dir_tightened_from {
        println!(
            "tightened {} from mode {mode:04o} to 0700",
            report.dir.display()
        );
    }
    for path in &report.created {
        println!("created {} (mode 0600)", path.display());
    }
    for path in &report.kept {
        println!("kept {}", path.display());
    }
    Ok(())
}
