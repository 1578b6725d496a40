//! Running programs: long-lived services in their own process group (killed
//! when dropped, also when a step fails or panics), and one-shot commands with
//! a timeout. Services run as an unprivileged user when the suite runs as root.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::process::CommandExt;

/// The unprivileged account the services run as (or the current user when
/// the suite is not run as root).
#[derive(Debug, Clone)]
pub struct RunAs {
    /// The account name; also the PostgreSQL role (peer authentication).
    pub name: String,
    /// `Some((uid, gid))` when the suite is root and must switch users.
    pub ids: Option<(u32, u32)>,
}

impl RunAs {
    /// `OSPW_TEST_USER` (default `ospw_test`, created by
    /// `scripts/install-test-deps.sh`) when root; otherwise the current user.
    pub fn detect() -> Result<Self> {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            let name = std::env::var("OSPW_TEST_USER").unwrap_or_else(|_| "ospw_test".into());
            let uid = id_of(&name, "-u")?;
            let gid = id_of(&name, "-g")?;
            Ok(Self {
                name,
                ids: Some((uid, gid)),
            })
        } else {
            let out = Command::new("id")
                .arg("-un")
                .output()
                .context("run id -un")?;
            Ok(Self {
                name: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                ids: None,
            })
        }
    }

    /// A command running `program` as this account, with a clean environment
    /// (PATH, LANG and HOME=`home`). It is killed (SIGKILL) when the thread
    /// that starts it ends, so that nothing outlives a suite that is itself
    /// killed (a CI timeout, SIGKILL) before it can stop its processes: start
    /// it from a thread that lives as long as the run (the runtime's
    /// `block_on` thread).
    pub fn command(&self, program: impl AsRef<OsStr>, home: &Path) -> Command {
        let mut cmd = match self.ids {
            Some((uid, gid)) => {
                // setpriv sets the parent-death signal after switching users
                // (a switch clears one set before).
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--pdeathsig=KILL")
                    .arg("--")
                    .arg(program);
                c
            }
            None => {
                let mut c = Command::new(program);
                // SAFETY: prctl is async-signal-safe; nothing else runs here.
                unsafe {
                    c.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                c
            }
        };
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", home);
        cmd
    }

    /// Gives `path` (and nothing below it) to this account.
    pub fn chown(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    }
}

fn id_of(name: &str, flag: &str) -> Result<u32> {
    let out = Command::new("id")
        .arg(flag)
        .arg(name)
        .output()
        .context("run id")?;
    if !out.status.success() {
        bail!(
            "the unprivileged user {name:?} does not exist: run scripts/install-test-deps.sh \
             (or set OSPW_TEST_USER)"
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("parse id {flag} {name}"))
}

/// A long-running program in its own process group, with its output appended
/// to a log file. Dropping it stops the whole group.
pub struct Service {
    /// A short name for messages (`synapse`, `postgres`, ...).
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Option<Child>,
    stop_signal: libc::c_int,
}

impl Service {
    /// Starts `cmd` in a new process group. `stop_signal` asks it to shut
    /// down cleanly (e.g. SIGINT for PostgreSQL's fast shutdown).
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        stop_signal: libc::c_int,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let err = file.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name} ({cmd:?})"))?;
        println!(
            "  started {name} (pid {}), log {}",
            child.id(),
            log.display()
        );
        Ok(Self {
            name: name.to_owned(),
            log: log.to_owned(),
            child: Some(child),
            stop_signal,
        })
    }

    /// Whether the program is still running; an error naming its exit status otherwise.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.as_mut() {
            None => bail!("{} was stopped", self.name),
            Some(c) => match c.try_wait()? {
                None => Ok(()),
                Some(status) => bail!(
                    "{} exited ({status}); see {}",
                    self.name,
                    self.log.display()
                ),
            },
        }
    }

    /// Asks the program to stop, waits up to `grace`, then kills its whole
    /// process group. Returns the exit status when it stopped by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id() as libc::pid_t;
        let mut status = child.try_wait().ok().flatten();
        if status.is_none() {
            // SAFETY: plain signal delivery to a child we started.
            unsafe { libc::kill(pid, self.stop_signal) };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Whatever is left in the group (PostgreSQL's backends, a stuck child).
        // SAFETY: signal to the process group we created (pgid = pid).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        if status.is_none() {
            let _ = child.wait();
        }
        status
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(10));
        }
    }
}

/// The processes (pid and command line) of a run in `dir`: those whose
/// environment has a `HOME` under `dir` (every program [`RunAs::command`]
/// starts for a run has), whose working directory is under `dir`
/// (PostgreSQL's backends, which overwrite their environment with their
/// process title, work in the data directory) or whose command line names
/// `dir`. After the run stopped everything this is empty. Processes that
/// cannot be inspected are not seen (run as root, the suite sees them all).
pub fn processes_with_home_under(dir: &Path) -> Vec<(u32, String)> {
    let me = std::process::id();
    let root = dir.display().to_string();
    let prefix = format!("HOME={root}");
    let under = |p: &str| p == root || p.starts_with(&format!("{root}/"));
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let home = env.split(|b| *b == 0).any(|v| {
            let v = String::from_utf8_lossy(v);
            v == prefix || v.starts_with(&format!("{prefix}/"))
        });
        let cwd = std::fs::read_link(e.path().join("cwd"))
            .map(|c| under(&c.to_string_lossy()))
            .unwrap_or(false);
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if home || cwd || cmd.contains(&format!("{root}/")) {
            found.push((pid, cmd.trim().to_owned()));
        }
    }
    found
}

/// The result of a one-shot command.
#[derive(Debug)]
pub struct Output {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for messages.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr).trim().to_owned()
    }
}

/// Runs `cmd` to completion, killing it (and its process group) after `timeout`.
pub async fn run(cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = format!("{cmd:?}");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("start {desc}"))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.with_context(|| format!("run {desc}"))?;
            Ok(Output {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: signal to the process group we created.
                unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            }
            Err(anyhow!("timed out after {timeout:?}: {desc}"))
        }
    }
}

/// Runs `cmd` and fails unless it exits successfully.
pub async fn run_ok(cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = format!("{cmd:?}");
    let out = run(cmd, timeout).await?;
    if !out.status.success() {
        bail!("{desc} failed ({}): {}", out.status, out.both());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_service_of_a_run_is_found_and_a_stopped_one_not() {
        let dir = std::env::temp_dir().join(format!("ospw-leftover-test-{}", std::process::id()));
        let _cleanup = crate::util::RemoveOnDrop(dir.clone());
        let home = dir.join("state/home");
        std::fs::create_dir_all(&home).unwrap();
        let user = RunAs::detect().expect("the service user");
        let mut c = user.command("sleep", &home);
        c.arg("60").stdin(Stdio::null());
        let log = dir.join("sleep.log");
        let mut svc = Service::spawn("sleep", c, &log, libc::SIGTERM).unwrap();
        let pid = svc.child.as_ref().unwrap().id();
        let deadline = Instant::now() + Duration::from_secs(5);
        // setpriv execs sleep with the same environment.
        while !processes_with_home_under(&dir)
            .iter()
            .any(|(p, _)| *p == pid)
        {
            assert!(
                Instant::now() < deadline,
                "the running service was not found"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        svc.stop(Duration::from_secs(5));
        assert!(processes_with_home_under(&dir).is_empty());
    }

    /// A service whose starting thread ends (as when the suite is killed
    /// before it can stop it) does not keep running.
    #[test]
    fn a_service_dies_with_the_thread_that_started_it() {
        let user = RunAs::detect().expect("the service user (scripts/install-test-deps.sh)");
        let home = std::env::temp_dir();
        let child = std::thread::spawn(move || {
            let mut c = user.command("sleep", &home);
            c.arg("120").stdin(Stdio::null());
            let child = c.spawn().expect("start sleep");
            // Time for setpriv to set the signal and exec (a thread that
            // ends before is not noticed: the suite's threads live long).
            std::thread::sleep(Duration::from_millis(500));
            child
        })
        .join()
        .expect("thread");
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        use std::os::unix::process::ExitStatusExt;
        let status = status.expect("the service outlived the thread that started it");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }
}
