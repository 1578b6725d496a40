//! Class 3 for systemd: what systemd makes of the values the NixOS modules
//! write into unit files, read by the real systemd (`systemd-analyze
//! verify`, whose debug log prints each parsed command line).
//!
//! The modules quote `ExecStart=` arguments with `escapeExecArg`
//! (`modules/lib.nix`; `checks/eval/tests.nix` pins its output, such as
//! `--keys-directory "/srv/chät"` and the escaping of `%`, `$`, quotes and
//! backslashes) and refuse, at evaluation, paths that are not plain
//! (`isPlainPath`). This test shows that systemd reads the quoted form as
//! one literal argument, and that the unquoted forms the assertions keep out
//! would be read as something else.

mod support;

use std::path::Path;
use std::process::Command;

use support::{require, which, TempDir};

/// The command lines and working directory systemd parses from `unit`.
fn parsed(bin: &Path, dir: &Path, name: &str, unit: &str) -> Vec<String> {
    let file = dir.join(name);
    std::fs::write(&file, unit).unwrap();
    let o = Command::new(bin)
        .args(["verify", "--man=no"])
        .arg(&file)
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut out = Vec::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix("-> ") {
            section = s.trim_end_matches(':').to_owned();
        } else if let Some(cmd) = line.strip_prefix("Command Line: ") {
            out.push(format!("{section}: {cmd}"));
        } else if let Some(wd) = line.strip_prefix("WorkingDirectory: ") {
            out.push(format!("WorkingDirectory: {wd}"));
        }
    }
    out
}

#[test]
fn systemd_reads_quoted_arguments_literally_and_plain_ones_otherwise() {
    let Some(bin) = require("systemd-analyze", which("systemd-analyze")) else {
        return;
    };
    let dir = TempDir::new("systemd-units");
    // The module's form (escapeExecArg: a JSON string, % and $ doubled).
    let quoted = parsed(
        &bin,
        dir.path(),
        "quoted.service",
        "[Service]\nExecStart=/bin/echo --keys-directory \"/srv/ch\\u00e4t\" \"a b%%c$$d\" \"e\\\\f\\\"g\"\n\
         WorkingDirectory=/var/lib/ospw-matrix/synapse\n",
    );
    assert!(
        quoted.contains(
            &"ExecStart: /bin/echo --keys-directory /srv/chät \"a b%c\\$\\$d\" \"e\\\\f\\\"g\""
                .to_owned()
        ),
        "{quoted:?}"
    );
    assert!(
        quoted.contains(&"WorkingDirectory: /var/lib/ospw-matrix/synapse".to_owned()),
        "{quoted:?}"
    );
    // What the refused paths would do unquoted: a space splits the
    // argument, % is a specifier, a line break adds a directive.
    let raw = parsed(
        &bin,
        dir.path(),
        "raw.service",
        "[Service]\nExecStart=/bin/echo --keys-directory /srv/ospw matrix/%d\n\
         WorkingDirectory=/var/lib/synapse\nExecStartPre=/bin/sh -c id\n",
    );
    assert!(
        raw.iter().any(|l| l
            .starts_with("ExecStart: /bin/echo --keys-directory /srv/ospw matrix/")
            && l.ends_with("/raw.service")),
        "{raw:?}"
    );
    assert!(
        raw.contains(&"ExecStartPre: /bin/sh -c id".to_owned()),
        "a line break in a path becomes a directive: {raw:?}"
    );
}
