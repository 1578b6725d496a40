//! Every external program the tests (and the CLI) spawn by name is one that
//! `scripts/install-test-deps.sh` installs and checks: a fresh Debian 12
//! machine running `.ci/run` has nothing else. The script lists them in
//! `PROGRAMS` (on PATH) and `PG_PROGRAMS` (PostgreSQL's own directory) and
//! fails when one is missing after installing its packages; this test fails
//! when a Rust source spawns a program missing from those lists.
//!
//! The script and the acceptance suite are outside the package's source
//! (nix/package.nix's fileset), so the tests that read them go through
//! `support::require_repo_file`: they skip in the Nix build sandbox and fail
//! under CI when the files are missing.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The words of the bash array `NAME=( ... )` (possibly over several lines).
fn bash_array(script: &str, name: &str) -> BTreeSet<String> {
    let start = script
        .find(&format!("\n{name}=("))
        .unwrap_or_else(|| panic!("install-test-deps.sh has no {name}=( ... ) array"));
    let rest = &script[start + name.len() + 3..];
    let end = rest.find(')').expect("unterminated array");
    rest[..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The program names spawned in `text`: `Command::new("X")`, the suites'
/// helpers that run a named program (`.command("X"`, `.pg("X")`,
/// `pg_client("X")`, `which("X")`, `support::service("X")`), and the
/// `check_installed` lists.
fn spawned(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for pat in [
        "Command::new(\"",
        ".command(\"",
        ".pg(\"",
        "pg_client(\"",
        "which(\"",
        "programs.push(\"",
        "support::service(\"",
    ] {
        for (i, _) in text.match_indices(pat) {
            let rest = &text[i + pat.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    for (i, _) in text.match_indices("programs.extend([") {
        let rest = &text[i..];
        let end = rest.find(']').unwrap_or(rest.len());
        for w in rest[..end].split('"').skip(1).step_by(2) {
            out.insert(w.to_owned());
        }
    }
    out
}

#[test]
fn every_spawned_program_is_installed_by_install_test_deps() {
    let (Some(script), Some(_)) = (
        support::require_repo_file("scripts/install-test-deps.sh"),
        support::require_repo_file("tests/acceptance"),
    ) else {
        return;
    };
    let root = repo();
    let script = std::fs::read_to_string(script).unwrap();
    let programs = bash_array(&script, "PROGRAMS");
    let pg_programs = bash_array(&script, "PG_PROGRAMS");
    assert!(
        script.contains("command -v \"$prog\"")
            && script.contains("/usr/lib/postgresql/15/bin/$prog"),
        "install-test-deps.sh does not check PROGRAMS and PG_PROGRAMS after installing"
    );
    let mut files = Vec::new();
    for dir in ["crates", "tests/acceptance/src", "tests/acceptance/tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} Rust files", files.len());
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    // This file's own examples are not programs.
    files.retain(|f| !f.ends_with("ospw-matrix-cli/tests/test_deps.rs"));
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for prog in spawned(&text) {
            if !programs.contains(&prog) && !pg_programs.contains(&prog) {
                missing.push(format!(
                    "{prog} ({})",
                    f.strip_prefix(&root).unwrap_or(f).display()
                ));
            }
            seen.insert(prog);
        }
    }
    // The scan must see the programs it is meant to see.
    for p in [
        "curl",
        "setpriv",
        "turnutils_uclient",
        "caddy",
        "pg_dump",
        "kill",
    ] {
        assert!(seen.contains(p), "the scan no longer finds {p}: {seen:?}");
    }
    assert!(
        missing.is_empty(),
        "spawned by a test or the CLI but not in install-test-deps.sh's PROGRAMS/PG_PROGRAMS: {}",
        missing.join(", ")
    );
}

#[test]
fn the_scan_finds_each_form() {
    let text = r#"Command::new("a"); st.user.command("b", &home); st.pg("c"); st.pg_client("d");
        which("e"); programs.extend(["f", "g"]); programs.push("h"); support::service("i");"#;
    let got: Vec<String> = spawned(text).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
    let script = "x\nPROGRAMS=(a b # c\n  d)\n";
    let got: Vec<String> = bash_array(script, "PROGRAMS").into_iter().collect();
    assert_eq!(got, ["a", "b", "d"]);
}

/// `major.minor` as a pair.
fn version(v: &str) -> (u32, u32) {
    let mut it = v.trim().trim_matches('"').split('.');
    let mut n = || it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (n(), n())
}

#[test]
fn install_test_deps_installs_a_new_enough_rust_when_missing() {
    let Some(script) = support::require_repo_file("scripts/install-test-deps.sh") else {
        return;
    };
    let root = repo();
    let script = std::fs::read_to_string(script).unwrap();
    let packages = bash_array(&script, "RUST_PACKAGES");
    for p in ["rustc-web", "cargo-web", "rustfmt-web", "rust-web-clippy"] {
        assert!(
            packages.contains(p),
            "RUST_PACKAGES lacks {p}: {packages:?}"
        );
    }
    let min = script
        .lines()
        .find_map(|l| l.strip_prefix("MIN_RUST="))
        .expect("install-test-deps.sh has no MIN_RUST=");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let workspace = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml");
    assert!(
        version(min) >= version(workspace),
        "MIN_RUST {min} is below the workspace's rust-version {workspace}"
    );
    // matrix-sdk 0.18 (the acceptance suite) needs 1.93.
    assert!(
        version(min) >= (1, 93),
        "MIN_RUST {min} is below matrix-sdk's 1.93"
    );
}
