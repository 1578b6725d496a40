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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ospw-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_dir_refuses_a_foreign_directory_and_touches_nothing() {
        let root = temp("foreign");
        let out = root.join("out");
        fs::create_dir(&out).expect("mkdir");
        fs::write(out.join("precious"), b"data").expect("write");
        let err = replace_dir_atomically(&out, ".marker", |_| Ok(())).expect_err("refused");
        assert!(err.to_string().contains("refusing to replace"), "{err}");
        assert_eq!(entries(&out), vec!["precious"]);
        assert_eq!(entries(&root), vec!["out"]);
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn replace_dir_swaps_a_marked_directory_and_keeps_it_on_failure() {
        let root = temp("marked");
        let out = root.join("out");
        replace_dir_atomically(&out, ".marker", |d| {
            fs::write(d.join("a"), b"1").map_err(|e| Error::io(d, "write", e))
        })
        .expect("first write");
        assert_eq!(entries(&out), vec![".marker", "a"]);
        let failed = replace_dir_atomically(&out, ".marker", |d| {
            fs::write(d.join("b"), b"2").map_err(|e| Error::io(d, "write", e))?;
            Err(Error::Other("fill failed".into()))
        });
        assert!(failed.is_err());
        assert_eq!(
            entries(&out),
            vec![".marker", "a"],
            "a failed fill must leave the old output"
        );
        assert_eq!(
            entries(&root),
            vec!["out"],
            "no staging directory left behind"
        );
        replace_dir_atomically(&out, ".marker", |d| {
            fs::write(d.join("c"), b"3").map_err(|e| Error::io(d, "write", e))
        })
        .expect("second write");
        assert_eq!(entries(&out), vec![".marker", "c"]);
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn exclusive_creation_never_overwrites() {
        let root = temp("exclusive");
        let file = root.join("secret");
        create_file_exclusively(&file, b"first", 0o600).expect("created");
        assert!(create_file_exclusively(&file, b"second", 0o600).is_err());
        assert_eq!(fs::read(&file).expect("read"), b"first");
        assert_eq!(
            fs::metadata(&file).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(entries(&root), vec!["secret"]);
        write_file_atomically(&file, b"third", 0o640).expect("replaced");
        assert_eq!(fs::read(&file).expect("read"), b"third");
        assert_eq!(
            fs::metadata(&file).expect("stat").permissions().mode() & 0o777,
            0o640
        );
        fs::remove_dir_all(&root).expect("cleanup");
    }
}
