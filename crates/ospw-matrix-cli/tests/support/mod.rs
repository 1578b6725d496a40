//! Shared helpers for the tests that run the `ospw-matrix` binary and real
//! programs (Synapse, coturn, Caddy).
//!
//! A real program that is missing makes a test *fail* under CI (`CI` set)
//! and skip with a message elsewhere: CI installs everything
//! (`scripts/install-test-deps.sh`), so a skip there would hide a gap.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The `ospw-matrix` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ospw-matrix"))
}

/// Runs `ospw-matrix ARGS`, returning its output.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run ospw-matrix")
}

/// The Python interpreter of the virtual environment holding Synapse
/// (`OSPW_SYNAPSE_PYTHON`, default `/opt/ospw-venv/bin/python`).
pub fn synapse_python() -> Option<PathBuf> {
    let path = std::env::var_os("OSPW_SYNAPSE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/ospw-venv/bin/python"));
    path.exists().then_some(path)
}

/// A command for a long-running `program` (a server) that gets SIGKILL from
/// the kernel when the thread that starts it ends: a test killed before its
/// guards run (a CI timeout, SIGKILL) leaves no server behind
/// (`setpriv --pdeathsig=KILL`, util-linux).
pub fn service(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--pdeathsig=KILL", "--"]).arg(program);
    c
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Returns `Some(path)` for an available program; otherwise fails under CI
/// and returns `None` (the caller returns early) with a printed skip message.
///
/// Every test that runs a program outside the Nix build sandbox's stdenv
/// (coreutils, findutils, diffutils, sed, grep, gawk, tar, gzip, bzip2,
/// make, bash, patch, xz, file, cc, and the Rust toolchain) must go
/// through this: `nix build` runs the tests without `CI`, so they skip there
/// (see DEVELOPERS.md; `scripts/nix-sandbox.sh` checks it).
pub fn require(what: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    found.or_else(|| {
        missing(
            &format!("{what} is not installed"),
            "CI must install it (scripts/install-test-deps.sh)",
        )
    })
}

/// The file or directory `relative` (to the repository's root) for a test
/// that reads a part of the repository outside the package's source (the
/// `lib.fileset` of `nix/package.nix`), such as `scripts/` or
/// `tests/acceptance/`: `Some(path)` when it is there; otherwise the test
/// fails under CI and skips elsewhere, as in the Nix build sandbox, which
/// holds only the package's fileset.
pub fn require_repo_file(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    missing(
        &format!("{relative} is not in this source tree (it is outside nix/package.nix's fileset)"),
        "CI runs from a full checkout",
    )
}

/// Fails under CI; elsewhere prints a skip message and returns `None`.
fn missing(what: &str, ci: &str) -> Option<PathBuf> {
    if std::env::var_os("CI").is_some() {
        panic!("{what}: {ci}");
    }
    eprintln!("SKIP: {what}");
    None
}

/// Where the tests look for Synapse's published config schema
/// (`synapse-config.schema.yaml`, with `v1/meta.schema.json`), in order:
/// `OSPW_SYNAPSE_SCHEMA_DIR`; `../shared/reference/synapse-schema` beside
/// the checkout; the cache `scripts/install-test-deps.sh` downloads it into
/// (`${XDG_CACHE_HOME:-$HOME/.cache}/ospw-matrix/synapse-schema`, from
/// Synapse's repository at the pinned release, checked by SHA-256).
pub fn synapse_schema_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("OSPW_SYNAPSE_SCHEMA_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dirs.push(repo.join("../shared/reference/synapse-schema"));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        dirs.push(cache.join("ospw-matrix/synapse-schema"));
    }
    dirs
}

/// The first of [`synapse_schema_candidates`] that holds
/// `synapse-config.schema.yaml`.
pub fn synapse_schema_dir() -> Option<PathBuf> {
    synapse_schema_candidates()
        .into_iter()
        .find(|dir| dir.join("synapse-config.schema.yaml").is_file())
}

/// [`synapse_schema_dir`], or: under CI a failure naming the file, the places
/// looked in and how to get it; elsewhere a skip.
pub fn require_synapse_schema() -> Option<PathBuf> {
    synapse_schema_dir().or_else(|| {
        let looked: Vec<String> = synapse_schema_candidates()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        missing(
            &format!(
                "Synapse's config schema synapse-config.schema.yaml is in none of {}",
                looked.join(", ")
            ),
            "scripts/install-test-deps.sh downloads it from https://raw.githubusercontent.com/element-hq/synapse/v<the pinned Synapse>/schema/synapse-config.schema.yaml (with v1/meta.schema.json) into the last of these; or put both files into a directory and set OSPW_SYNAPSE_SCHEMA_DIR to it",
        )
    })
}

/// [`require_synapse_schema`]'s `synapse-config.schema.yaml`.
pub fn require_synapse_schema_file() -> Option<PathBuf> {
    require_synapse_schema().map(|d| d.join("synapse-config.schema.yaml"))
}

/// Python (for Synapse's interpreter, with PyYAML and jsonschema) defining
/// `schema_problems(schema, instance)`: what Synapse's published schema
/// finds wrong in a configuration as PyYAML read it, validated with Draft
/// 2020-12 (the schema's own `$schema` is a custom meta-schema, not
/// consulted), plus every key, at any depth, that the schema does not
/// define where it lists properties. Tests that run their own probe put it
/// in front of it; [`synapse_schema_problems`] runs it on one file.
pub const SYNAPSE_SCHEMA_PROBLEMS_PY: &str = r#"
import yaml
from jsonschema import Draft202012Validator
def schema_problems(schema, instance):
    problems = ["schema: %s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message)
                for e in Draft202012Validator(schema).iter_errors(instance)]
    def resolve(s):
        while isinstance(s, dict) and "$ref" in s:
            node = schema
            for part in s["$ref"][2:].split("/"):
                node = node[part]
            s = node
        return s
    def walk(inst, s, path):
        s = resolve(s)
        if not isinstance(s, dict):
            return
        if isinstance(inst, dict) and "properties" in s:
            for k, v in inst.items():
                if k in s["properties"]:
                    walk(v, s["properties"][k], path + [k])
                elif "additionalProperties" not in s:
                    problems.append("unknown key: %s" % "/".join(path + [str(k)]))
        elif isinstance(inst, list) and isinstance(s.get("items"), dict):
            for i, item in enumerate(inst):
                walk(item, s["items"], path + [str(i)])
    walk(instance, schema, [])
    return problems
"#;

/// [`SYNAPSE_SCHEMA_PROBLEMS_PY`] on the YAML file `config` against the
/// schema file `schema`, run with `python` (Synapse's): one line a problem,
/// none when the schema accepts it. Panics when the probe itself fails.
pub fn synapse_schema_problems(python: &Path, schema: &Path, config: &Path) -> Vec<String> {
    let script = format!(
        "{SYNAPSE_SCHEMA_PROBLEMS_PY}\nimport sys\nfor p in schema_problems(yaml.safe_load(open(sys.argv[1])), yaml.safe_load(open(sys.argv[2]))):\n    print(p)\n"
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(schema)
        .arg(config)
        // Out of any directory whose modules could shadow the standard library.
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the schema probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A fresh temporary directory, removed when dropped (kept when the
/// environment sets `OSPW_KEEP_TMP`).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/ospw-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ospw-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    /// The path of the directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("OSPW_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

/// The names of the example host (`example.org`, Matrix on `matrix.`,
/// Element on `chat.`): the first lines of a host description.
pub const EXAMPLE_NAMES: &str = "base_domain: example.org\n\
                                 server_name: example.org\n\
                                 matrix_host: matrix.example.org\n\
                                 element_host: chat.example.org\n";

/// A program's standard error, as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `ospw-matrix render --config HOST --out OUT`, or
/// `ospw-matrix render --out OUT` (the built-in example) without `host`.
pub fn render_to(host: Option<&Path>, out: &Path) -> Output {
    let out = out.to_str().expect("utf8 path");
    match host {
        Some(host) => run(&[
            "render",
            "--config",
            host.to_str().expect("utf8 path"),
            "--out",
            out,
        ]),
        None => run(&["render", "--out", out]),
    }
}

/// [`render_to`], failing the test with render's standard error when it
/// does not succeed.
pub fn assert_renders(host: Option<&Path>, out: &Path) {
    let o = render_to(host, out);
    assert!(o.status.success(), "render failed: {}", stderr_of(&o));
}

/// Asserts that a run failed, with every one of `needles` on its standard
/// error (the error names what is wrong); returns the standard error.
pub fn assert_fails_naming(out: &Output, needles: &[&str]) -> String {
    let stderr = stderr_of(out);
    assert!(!out.status.success(), "succeeded: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle} not named: {stderr}");
    }
    stderr
}
