//! Small helpers: files and directories with modes, random names, time.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::proc::RunAs;

/// Creates `path` (and its parents) with `mode`, owned by `user` when given.
pub fn mkdir(path: &Path, mode: u32, user: Option<&RunAs>) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(u) = user {
        u.chown(path)?;
    }
    Ok(())
}

/// Writes `text` to `path`, mode 0600, owned by `user` when given.
pub fn write_private(path: &Path, text: &str, user: Option<&RunAs>) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if let Some(u) = user {
        u.chown(path)?;
    }
    Ok(())
}

/// Every file below `dir` (recursively), appended to `out`; nothing when
/// `dir` cannot be read.
pub fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// The permission bits of `path`.
pub fn mode_of(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .permissions()
        .mode()
        & 0o777)
}

/// `path` as UTF-8, for command-line arguments given as `&str`.
pub fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` hex digits, different on every call (passwords and unique texts).
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    while s.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(n);
    s
}

/// The last `n` lines of `text`, joined with ` | `, for messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The byte offset and size of `member`'s data in a (ustar) tar archive.
pub fn tar_member(archive: &[u8], member: &str) -> Option<(usize, usize)> {
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            return None;
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&header[..name_end]).ok()?;
        let size_text = std::str::from_utf8(&header[124..136])
            .ok()?
            .trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size_text, 8).ok()?;
        if name == member {
            return Some((at + 512, size));
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    None
}

/// Removes a directory when dropped, also when a test's assertion fails.
#[derive(Debug)]
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
