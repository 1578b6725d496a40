//! A PostgreSQL cluster of the test's own, for the tests of `backup`,
//! `restore` and `import-compose`: a temporary directory, Unix socket only,
//! trust authentication, run as an unprivileged user when the tests run as
//! root (PostgreSQL refuses root), stopped when dropped (killed if it does
//! not stop).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::support::free_port;

/// PostgreSQL's binaries (`OSPW_PG_BIN`, default `/usr/lib/postgresql/15/bin`).
pub fn pg_bin() -> Option<PathBuf> {
    let dir = std::env::var_os("OSPW_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    dir.join("initdb").is_file().then_some(dir)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The unprivileged user PostgreSQL runs as when the tests run as root
/// (`OSPW_TEST_USER`, default `ospw_test`, as for the acceptance suite), created when missing.
fn pg_user() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let name = std::env::var("OSPW_TEST_USER").unwrap_or_else(|_| "ospw_test".into());
    let lookup = || {
        let out = Command::new("getent")
            .args(["passwd", &name])
            .output()
            .ok()?;
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let f: Vec<&str> = line.trim().split(':').collect();
        Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
    };
    if let Some(ids) = lookup() {
        return Some(ids);
    }
    // Idempotent: another test may create it at the same moment.
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ])
        .status();
    Some(lookup().expect("create the unprivileged PostgreSQL user"))
}

/// A PostgreSQL cluster in a temporary directory; stopped when dropped.
pub struct Cluster {
    pub bin: PathBuf,
    ids: Option<(u32, u32)>,
    pub sock: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Cluster {
    pub fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        // The server gets SIGKILL when the test's thread ends, so that a
        // killed test run leaves no PostgreSQL behind.
        let mut c = if program == "postgres" {
            super::support::service(self.bin.join(program))
        } else {
            Command::new(self.bin.join(program))
        };
        c.current_dir("/");
        if let Some((uid, gid)) = self.ids {
            c.uid(uid).gid(gid);
        }
        c
    }

    pub fn start(bin: PathBuf, dir: &Path) -> Cluster {
        let ids = pg_user();
        let root = dir.join("pg");
        std::fs::create_dir_all(root.join("sock")).unwrap();
        if let Some((uid, gid)) = ids {
            for p in [dir, &root, &root.join("sock")] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        }
        let mut c = Cluster {
            bin,
            ids,
            sock: root.join("sock"),
            port: free_port(),
            child: None,
        };
        let out = c
            .command("initdb")
            .args(["-D"])
            .arg(root.join("data"))
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "--locale=C",
                "-E",
                "UTF8",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", both(&out));
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        let child = c
            .command("postgres")
            .arg("-D")
            .arg(root.join("data"))
            .arg("-k")
            .arg(&c.sock)
            .arg("-p")
            .arg(c.port.to_string())
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        c.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = c
                .command("pg_isready")
                .arg("-h")
                .arg(&c.sock)
                .arg("-p")
                .arg(c.port.to_string())
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    /// Runs SQL as `role` in `db`, returning the unaligned output.
    pub fn sql(&self, role: &str, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sock)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", role, "-d", db, "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", both(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A fresh, empty database `name` owned by the role `name`.
    pub fn fresh_db(&self, name: &str) {
        self.sql(
            "postgres",
            "postgres",
            &format!(
                "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE \"{name}\" LOGIN; END IF; END$$"
            ),
        );
        self.sql(
            "postgres",
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        );
        self.sql(
            "postgres",
            "postgres",
            &format!("CREATE DATABASE \"{name}\" OWNER \"{name}\" TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"),
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A fast shutdown (SIGINT); killed if it does not stop.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
