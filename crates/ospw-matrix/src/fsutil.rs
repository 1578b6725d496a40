//! File-system helpers: atomic writes that never leave a half-written file
//! or directory behind, and never overwrite what they must not.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("{} has no file name", path.display())))?;
    let mut staged = name.to_os_string();
    staged.push(format!(".{tag}-{}", std::process::id()));
    Ok(path.with_file_name(staged))
}

/// Creates `tmp` (which must not exist) with `mode`, writes `contents` and
/// syncs it to disk.
fn write_new_synced(tmp: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| Error::io(tmp, "create", e))?;
    // The umask may have narrowed `mode` at creation; set it exactly.
    fs::set_permissions(tmp, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(tmp, "set permissions of", e))?;
    file.write_all(contents)
        .map_err(|e| Error::io(tmp, "write", e))?;
    file.sync_all().map_err(|e| Error::io(tmp, "sync", e))
}

/// Writes `contents` to `path` with `mode`, atomically: a temporary file in
/// the same directory is written, synced and renamed over `path`.
pub fn write_file_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = sibling(path, "tmp")?;
    let result = write_new_synced(&tmp, contents, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename into place", e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `contents` to a new file at `path` with `mode`, refusing if `path`
/// exists. The file appears whole or not at all (written beside it, then
/// hard-linked into place, which fails if the name is taken).
pub fn create_file_exclusively(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = sibling(path, "new")?;
    let result = write_new_synced(&tmp, contents, mode)
        .and_then(|()| fs::hard_link(&tmp, path).map_err(|e| Error::io(path, "create", e)));
    let _ = fs::remove_file(&tmp);
    result
}

/// Fills a staging directory beside `out` with `fill`, then puts it in place
/// of `out` in one rename. An existing `out` must be empty or hold `marker`
/// (it was made by this function); otherwise nothing is written.
pub fn replace_dir_atomically(
    out: &Path,
    marker: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let existing = match fs::read_dir(out) {
        Ok(mut entries) => Some(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(out, "read directory", e)),
    };
    if existing == Some(false) && !out.join(marker).exists() {
        return Err(Error::Other(format!(
            "{} exists and was not written by ospw-matrix render: refusing to replace it (choose an empty or new directory)",
            out.display()
        )));
    }
    let staging = sibling(out, "staging")?;
    let _ = fs::remove_dir_all(&staging);
    let result = (|| {
        fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, "create directory", e))?;
        fill(&staging)?;
        fs::write(staging.join(marker), b"")
            .map_err(|e| Error::io(staging.join(marker), "write", e))?;
        if existing.is_some() {
            let old = sibling(out, "old")?;
            fs::rename(out, &old).map_err(|e| Error::io(out, "move aside", e))?;
            if let Err(e) = fs::rename(&staging, out) {
                let _ = fs::rename(&old, out);
                return Err(Error::io(out, "rename into place", e));
            }
            fs::remove_dir_all(&old).map_err(|e| Error::io(&old, "remove", e))
        } else {
            fs::rename(&staging, out).map_err(|e| Error::io(out, "rename into place", e))
        }
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}
