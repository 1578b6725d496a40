//! Ports that cannot collide with another run: each run reserves a block of
//! [`BLOCK`] consecutive ports on 127.0.0.1 by holding an exclusive `flock`
//! on `/tmp/ospw-acceptance-ports/N.lock` for as long as it lives (the kernel
//! releases it when the process ends, however it ends). The blocks lie below
//! Linux's ephemeral range (32768–60999), so no port the kernel hands out for
//! an outgoing connection or a `bind(0)` falls in them; every port of a block
//! is checked free (TCP and UDP) before the block is taken.
//!
//! A block holds coturn's relay range (the first [`RELAY`] ports) and the
//! run's listeners (the rest, handed out in order by [`PortBlock::next`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

use anyhow::{bail, Context, Result};

/// The first port of the first block.
pub const FIRST: u16 = 20000;
/// Ports per block.
pub const BLOCK: u16 = 128;
/// Blocks, all below 32768.
pub const BLOCKS: u16 = (32768 - FIRST) / BLOCK;
/// The relay range's size, at the start of a block.
pub const RELAY: u16 = 100;

/// Where the lock files are: fixed (not `$TMPDIR`), so that every run on the
/// machine sees the same locks.
pub fn lock_dir() -> PathBuf {
    PathBuf::from("/tmp/ospw-acceptance-ports")
}

/// A reserved block of ports; released when dropped.
#[derive(Debug)]
pub struct PortBlock {
    /// The block's first port.
    pub first: u16,
    next: AtomicU16,
    _lock: File,
}

impl PortBlock {
    /// Reserves a free block, trying every block once, starting from one
    /// derived from the process id.
    pub fn reserve() -> Result<Self> {
        Self::reserve_in(&lock_dir())
    }

    /// [`PortBlock::reserve`] with the lock files in `dir`.
    pub fn reserve_in(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            // Shared by every user's runs, like /tmp itself.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
        }
        let start = (std::process::id() % u32::from(BLOCKS)) as u16;
        for i in 0..BLOCKS {
            let n = (start + i) % BLOCKS;
            let Some(lock) = try_lock(&dir.join(format!("{n}.lock")))? else {
                continue;
            };
            let first = FIRST + n * BLOCK;
            if (first..first + BLOCK).all(port_free) {
                return Ok(Self {
                    first,
                    next: AtomicU16::new(first + RELAY),
                    _lock: lock,
                });
            }
        }
        bail!(
            "no free block of {BLOCK} ports in {FIRST}-{} (locks in {})",
            FIRST + BLOCKS * BLOCK - 1,
            dir.display()
        )
    }

    /// coturn's relay range (inclusive).
    pub fn relay(&self) -> (u16, u16) {
        (self.first, self.first + RELAY - 1)
    }

    /// The next unused port of the block (listeners: TCP and UDP free).
    pub fn next(&self) -> u16 {
        let p = self.next.fetch_add(1, Ordering::SeqCst);
        assert!(
            p < self.first + BLOCK,
            "the run used all {} listener ports of its block",
            BLOCK - RELAY
        );
        p
    }
}

/// An exclusive, non-blocking `flock` on `path` (created when missing);
/// `None` when another process holds it.
fn try_lock(path: &Path) -> Result<Option<File>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .with_context(|| format!("create {}", path.display()))?,
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    Ok((r == 0).then_some(file))
}

/// Whether `port` on 127.0.0.1 is free for both TCP and UDP.
fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ports(b: &PortBlock, listeners: usize) -> BTreeSet<u16> {
        let (lo, hi) = b.relay();
        let mut s: BTreeSet<u16> = (lo..=hi).collect();
        for _ in 0..listeners {
            assert!(s.insert(b.next()), "a listener port is handed out twice");
        }
        s
    }

    #[test]
    fn two_runs_never_share_a_port() {
        let dir = std::env::temp_dir().join(format!("ospw-ports-test-{}", std::process::id()));
        // Removed also when an assertion fails.
        let _cleanup = crate::util::RemoveOnDrop(dir.clone());
        let a = PortBlock::reserve_in(&dir).unwrap();
        let b = PortBlock::reserve_in(&dir).unwrap();
        let (pa, pb) = (ports(&a, 10), ports(&b, 10));
        assert_eq!(pa.len(), 110);
        assert!(
            pa.is_disjoint(&pb),
            "blocks {} and {} overlap",
            a.first,
            b.first
        );
        assert!(*pa.iter().max().unwrap() < 32768, "in the ephemeral range");
        // Held while the block lives (even against this process), released
        // when it is dropped.
        let lock = dir.join(format!("{}.lock", (a.first - FIRST) / BLOCK));
        assert!(
            try_lock(&lock).unwrap().is_none(),
            "block {} is not locked",
            a.first
        );
        drop(a);
        // A child another test forks at this moment shares the lock until
        // it execs (the descriptor is close-on-exec): allow it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while try_lock(&lock).unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "block was not released"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(b);
    }
}
