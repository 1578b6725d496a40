//! What every test binary of the suite does around its checks: an async
//! runtime (two workers), a time limit, Ctrl-C and SIGTERM ending the run
//! early, every process of the run stopped at the end (leftovers killed and
//! reported), the run's directory kept or removed, the summary line and the
//! exit code.
//!
//! The report-based suites (`acceptance`, `doctor`, `sso`) use [`Harness`]
//! (or [`main`]) and [`must`]; the `#[test]` functions (`operations`,
//! `multihost`) use [`test`].

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::proc::{self, RunAs};
use crate::report::Report;
use crate::stack::{find_cli, Options, Stack, Tools};

/// A failed setup step ([`must`], [`abort`]): the run stops there. The
/// harness prints it instead of recording a failed "run completed" check,
/// since the step itself was recorded.
#[derive(Debug)]
pub struct SetupAborted {
    step: String,
    cause: Option<String>,
}

impl std::fmt::Display for SetupAborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "aborted after a failed setup step ({})", self.step)?;
        match &self.cause {
            Some(cause) => write!(f, ": {cause}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for SetupAborted {}

/// Records a setup step; a failure aborts the run (a [`SetupAborted`]
/// error).
pub fn must<T>(report: &mut Report, name: &str, r: Result<T>) -> Result<T> {
    match r {
        Ok(v) => {
            report.check(name, Ok(""));
            Ok(v)
        }
        Err(e) => {
            let cause = format!("{e:#}");
            report.check::<&str>(name, Err(e));
            Err(SetupAborted {
                step: name.to_owned(),
                cause: Some(cause),
            }
            .into())
        }
    }
}

/// Ends the run after a failed setup step already recorded; `why` says
/// which, and why the rest would mean nothing.
pub fn abort(why: &str) -> anyhow::Error {
    SetupAborted {
        step: why.to_owned(),
        cause: None,
    }
    .into()
}

/// The first setup steps of a report-based suite: the service account, the
/// CLI, and the programs `opts` starts (the check named `installed`).
pub fn tools(report: &mut Report, opts: &Options, installed: &str) -> Result<Tools> {
    let user = must(report, "unprivileged service user exists", RunAs::detect())?;
    let cli = must(report, "ospw-matrix binary found", find_cli())?;
    println!("  CLI: {}; services run as {}", cli.display(), user.name);
    let tools = Tools::new(user, cli);
    must(report, installed, tools.check_installed(opts))?;
    Ok(tools)
}

/// The run's stack, put into `slot` (where the harness stops it), with a
/// fresh run directory.
pub fn new_stack<'a>(
    report: &mut Report,
    slot: &'a mut Option<Stack>,
    opts: Options,
    tools: Tools,
) -> Result<&'a mut Stack> {
    let st = slot.insert(Stack::new(opts, tools)?);
    println!("  run directory: {}", st.p.root.display());
    must(report, "fresh run directory", st.make_dirs())?;
    Ok(st)
}

/// Stops every process of the run: the stack's services, then any process
/// still having its HOME (or working directory, or an argument) in the
/// run's directory, which gets SIGKILL. Returns those leftovers.
pub fn stop_every_process(stack: &mut Stack) -> Vec<(u32, String)> {
    stack.stop_all();
    let left = proc::processes_with_home_under(&stack.p.root);
    for (pid, _) in &left {
        // SAFETY: a plain signal to a process of this run.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    left
}

/// Builds the runtime every suite runs on: two worker threads.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Resolves when SIGTERM arrives (never, if it cannot be watched).
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut t) => {
            t.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// A report-based suite binary: its runtime and its report of checks.
pub struct Harness {
    suite: &'static str,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
    /// The checks of every run so far.
    pub report: Report,
}

impl Harness {
    /// The runtime for suite `suite` (the name its messages start with),
    /// each run limited to `timeout`. If the runtime cannot start, says so
    /// and returns the exit code to end with.
    pub fn new(suite: &'static str, timeout: Duration) -> Result<Self, ExitCode> {
        match runtime() {
            Ok(runtime) => Ok(Self {
                suite,
                timeout,
                runtime,
                report: Report::new(),
            }),
            Err(e) => {
                eprintln!("{suite}: cannot start the async runtime: {e}");
                Err(ExitCode::FAILURE)
            }
        }
    }

    /// Runs `run` (which puts the stack it starts into its second
    /// argument) within the time limit, records how it ended ("run
    /// completed" unless a setup step aborted it), stops every process of
    /// the run ("every process of the run stopped") and keeps or removes
    /// its directory. Returns whether a signal interrupted the run.
    pub fn run<F>(&mut self, run: F) -> bool
    where
        F: AsyncFnOnce(&mut Report, &mut Option<Stack>) -> Result<()>,
    {
        let report = &mut self.report;
        let before = report.failed().len();
        let mut stack: Option<Stack> = None;
        let timeout = self.timeout;
        // Ctrl-C or SIGTERM ends the run early; the processes are still stopped below.
        let outcome = self.runtime.block_on(async {
            tokio::select! {
                r = tokio::time::timeout(timeout, run(&mut *report, &mut stack)) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
                _ = terminated() => None,
            }
        });
        let interrupted = outcome.is_none();
        match outcome {
            None => {
                report.check::<&str>("run completed", Err(anyhow!("interrupted by a signal")));
            }
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) if e.downcast_ref::<SetupAborted>().is_some() => {
                println!("\n{}: {e:#}", self.suite);
            }
            Some(Ok(Err(e))) => {
                report.check::<&str>("run completed", Err(e));
            }
            Some(Err(_)) => {
                report.check::<&str>(
                    "run completed",
                    Err(anyhow!("the suite exceeded its {timeout:?} time limit")),
                );
            }
        }
        // Stop every process before reading the logs, then decide what to keep.
        // Every process of the run stopped: none has its HOME in the run's directory.
        if let Some(st) = stack.as_mut() {
            let left = stop_every_process(st);
            report.check(
                "every process of the run stopped",
                if left.is_empty() {
                    Ok("")
                } else {
                    Err(anyhow!("still running after the run: {left:?}"))
                },
            );
        }
        let failed = report.failed().len() > before;
        if let Some(stack) = stack.take() {
            stack.finish(failed);
        }
        interrupted
    }

    /// Stops the runtime, prints the summary line (`acceptance: N passed,
    /// N failed`) and returns the exit code: failure if any check failed.
    pub fn finish(self) -> ExitCode {
        let failed = !self.report.failed().is_empty();
        drop(self.runtime);
        self.report.summary();
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// The whole `main` of a suite binary with one run: [`Harness::new`],
/// [`Harness::run`], [`Harness::finish`].
pub fn main<F>(suite: &'static str, timeout: Duration, run: F) -> ExitCode
where
    F: AsyncFnOnce(&mut Report, &mut Option<Stack>) -> Result<()>,
{
    let mut harness = match Harness::new(suite, timeout) {
        Ok(h) => h,
        Err(code) => return code,
    };
    harness.run(run);
    harness.finish()
}

/// The body of a `#[test]` that runs one stack: `run` within `timeout`,
/// then every process of the run stopped (a leftover fails the test) and
/// the run's directory kept or removed. Panics with `name: cause` when the
/// run failed.
pub fn test<F>(name: &str, timeout: Duration, run: F)
where
    F: AsyncFnOnce(&mut Option<Stack>) -> Result<()>,
{
    let runtime = runtime().expect("tokio runtime");
    let mut slot: Option<Stack> = None;
    let mut result = runtime.block_on(async {
        tokio::time::timeout(timeout, run(&mut slot))
            .await
            .map_err(|_| anyhow!("the {name} test exceeded {timeout:?}"))?
    });
    // Every process of the run stopped: none has its HOME in the run's directory.
    if let Some(st) = slot.as_mut() {
        let left = stop_every_process(st);
        if !left.is_empty() && result.is_ok() {
            result = Err(anyhow!("still running after the run: {left:?}"));
        }
    }
    if let Some(stack) = slot.take() {
        stack.finish(result.is_err());
    }
    drop(runtime);
    if let Err(e) = result {
        panic!("{name}: {e:#}");
    }
}
