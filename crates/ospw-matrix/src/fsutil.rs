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

/// Fills a staging directory with `fill`, then puts it in place of `out`.
/// An existing `out` must be empty or hold `marker` (it was made by this
/// function); otherwise nothing is written.
///
/// - An existing `out` is replaced by a staging directory filled beside it,
///   swapped in by renames, so that `out` is always either the old or the
///   new whole directory.
/// - A new `out` is filled in a private directory of the temporary directory
///   (`$TMPDIR`), never beside `out`: in a Nix build, `out` is `$out` in the
///   store, where the build may create nothing else. It is then renamed into
///   place (it appears whole); when the temporary directory is on another
///   file system, its contents are copied into a new `out` instead, which is
///   removed again if the copy fails.
pub fn replace_dir_atomically(
    out: &Path,
    marker: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    replace_dir_staged_in(out, marker, &std::env::temp_dir(), fill)
}

/// [`replace_dir_atomically`], staging a new `out` below `tmp`.
fn replace_dir_staged_in(
    out: &Path,
    marker: &str,
    tmp: &Path,
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
    let fill = |staging: &Path| -> Result<()> {
        fill(staging)?;
        fs::write(staging.join(marker), b"")
            .map_err(|e| Error::io(staging.join(marker), "write", e))
    };
    if existing.is_none() {
        return create_dir_staged_in(out, tmp, fill);
    }
    let staging = sibling(out, "staging")?;
    let _ = fs::remove_dir_all(&staging);
    let result = (|| {
        fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, "create directory", e))?;
        fill(&staging)?;
        let old = sibling(out, "old")?;
        fs::rename(out, &old).map_err(|e| Error::io(out, "move aside", e))?;
        if let Err(e) = fs::rename(&staging, out) {
            let _ = fs::rename(&old, out);
            return Err(Error::io(out, "rename into place", e));
        }
        fs::remove_dir_all(&old).map_err(|e| Error::io(&old, "remove", e))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Creates the new directory `out`: filled by `fill` in a fresh private
/// directory below `tmp`, then renamed into place, or copied when `tmp` is
/// on another file system. Nothing is written beside `out`.
fn create_dir_staged_in(
    out: &Path,
    tmp: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create directory", e))?;
    }
    let staging = private_dir_in(tmp)?;
    let result = fill(&staging).and_then(|()| move_dir_into_place(&staging, out));
    // After a rename there is nothing left to remove.
    let _ = fs::remove_dir_all(&staging);
    result
}

/// A new directory below `tmp`, created (not taken over: an existing name is
/// skipped) with mode 0755.
fn private_dir_in(tmp: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = None;
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tmp.join(format!(
            "ospw-matrix-staging-{}-{nanos:x}-{n}",
            std::process::id()
        ));
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(Error::io(&dir, "create directory", e)),
        }
    }
    Err(Error::io(
        tmp,
        "create a staging directory in",
        last.unwrap_or_else(|| std::io::Error::other("no free name")),
    ))
}

/// Renames `staging` to the new `out`; across file systems, copies it into a
/// new `out` (which must not exist) instead, removing `out` if that fails.
fn move_dir_into_place(staging: &Path, out: &Path) -> Result<()> {
    match fs::rename(staging, out) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => copy_dir_into_new(staging, out),
        Err(e) => Err(Error::io(out, "rename into place", e)),
    }
}

/// Copies the directory tree `from` (directories and regular files, with
/// their permissions) into `to`, which is created and must not exist. On
/// failure `to` is removed again.
fn copy_dir_into_new(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).map_err(|e| Error::io(to, "create directory", e))?;
    let result = copy_dir_contents(from, to);
    if result.is_err() {
        let _ = fs::remove_dir_all(to);
    }
    result
}

fn copy_dir_contents(from: &Path, to: &Path) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| Error::io(from, "read directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(from, "read directory", e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(&source, "inspect", e))?;
        if kind.is_dir() {
            fs::create_dir(&target).map_err(|e| Error::io(&target, "create directory", e))?;
            copy_dir_contents(&source, &target)?;
        } else if kind.is_file() {
            fs::copy(&source, &target).map_err(|e| Error::io(&target, "copy", e))?;
        } else {
            return Err(Error::Other(format!(
                "{}: only directories and regular files are copied",
                source.display()
            )));
        }
        let mode = fs::metadata(&source)
            .map_err(|e| Error::io(&source, "inspect", e))?
            .permissions();
        fs::set_permissions(&target, mode)
            .map_err(|e| Error::io(&target, "set permissions of", e))?;
    }
    Ok(())
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
    #[test]
    fn a_new_directory_is_staged_in_the_temporary_directory_not_beside_it() {
        let root = temp("new-out");
        let tmp = temp("new-out-tmp");
        let out = root.join("store").join("out");
        fs::create_dir(root.join("store")).expect("mkdir");
        let mut staged_in = None;
        replace_dir_staged_in(&out, ".marker", &tmp, |d| {
            // While the files are written, nothing is beside `out` (in a
            // Nix build: nothing in the store but `$out`).
            assert_eq!(entries(&root.join("store")), Vec::<String>::new());
            staged_in = d.parent().map(Path::to_path_buf);
            fs::write(d.join("a"), b"1").map_err(|e| Error::io(d, "write", e))
        })
        .expect("render");
        assert_eq!(staged_in.as_deref(), Some(tmp.as_path()));
        assert_eq!(entries(&root.join("store")), vec!["out"]);
        assert_eq!(entries(&out), vec![".marker", "a"]);
        assert_eq!(
            entries(&tmp),
            Vec::<String>::new(),
            "the staging directory is gone"
        );
        fs::remove_dir_all(&root).expect("cleanup");
        fs::remove_dir_all(&tmp).expect("cleanup");
    }

    #[test]
    fn a_failed_fill_of_a_new_directory_leaves_nothing() {
        let root = temp("new-fail");
        let tmp = temp("new-fail-tmp");
        let out = root.join("out");
        let failed = replace_dir_staged_in(&out, ".marker", &tmp, |d| {
            fs::write(d.join("a"), b"1").map_err(|e| Error::io(d, "write", e))?;
            Err(Error::Other("fill failed".into()))
        });
        assert!(failed.is_err());
        assert_eq!(entries(&root), Vec::<String>::new());
        assert_eq!(entries(&tmp), Vec::<String>::new());
        fs::remove_dir_all(&root).expect("cleanup");
        fs::remove_dir_all(&tmp).expect("cleanup");
    }

    #[test]
    fn a_copy_into_a_new_directory_keeps_modes_and_refuses_an_existing_one() {
        use std::os::unix::fs::PermissionsExt;
        let root = temp("copy");
        let from = root.join("from");
        fs::create_dir_all(from.join("sub")).expect("mkdir");
        fs::write(from.join("sub/file"), b"data").expect("write");
        fs::set_permissions(from.join("sub/file"), fs::Permissions::from_mode(0o640))
            .expect("chmod");
        let to = root.join("to");
        copy_dir_into_new(&from, &to).expect("copy");
        assert_eq!(fs::read(to.join("sub/file")).expect("read"), b"data");
        assert_eq!(
            fs::metadata(to.join("sub/file"))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        assert!(copy_dir_into_new(&from, &to).is_err(), "an existing target");
        assert_eq!(fs::read(to.join("sub/file")).expect("read"), b"data");
        // Something that cannot be copied: the new target is removed again.
        std::os::unix::fs::symlink("/nonexistent", from.join("link")).expect("symlink");
        let to2 = root.join("to2");
        assert!(copy_dir_into_new(&from, &to2).is_err());
        assert!(!to2.exists(), "a failed copy leaves no target");
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn a_new_directory_staged_on_another_file_system_is_copied_into_place() {
        // /dev/shm is a tmpfs wherever these tests run (also in the Nix
        // build sandbox); the test directory is not.
        use std::os::unix::fs::MetadataExt;
        let shm = Path::new("/dev/shm");
        let root = temp("xdev");
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if dev(shm).is_none() || dev(shm) == dev(&root) {
            eprintln!("SKIP: /dev/shm is missing or on the test directory's file system");
            fs::remove_dir_all(&root).expect("cleanup");
            return;
        }
        let tmp = shm.join(format!("ospw-fsutil-xdev-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        if let Err(e) = fs::create_dir(&tmp) {
            eprintln!("SKIP: cannot create {}: {e}", tmp.display());
            fs::remove_dir_all(&root).expect("cleanup");
            return;
        }
        let out = root.join("out");
        replace_dir_staged_in(&out, ".marker", &tmp, |d| {
            fs::create_dir(d.join("sub")).map_err(|e| Error::io(d, "mkdir", e))?;
            fs::write(d.join("sub/a"), b"1").map_err(|e| Error::io(d, "write", e))
        })
        .expect("render across file systems");
        assert_eq!(entries(&root), vec!["out"]);
        assert_eq!(entries(&out), vec![".marker", "sub"]);
        assert_eq!(fs::read(out.join("sub/a")).expect("read"), b"1");
        assert_eq!(entries(&tmp), Vec::<String>::new());
        fs::remove_dir_all(&root).expect("cleanup");
        fs::remove_dir_all(&tmp).expect("cleanup");
    }
}
