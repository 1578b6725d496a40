//! The workspace's `rust-version` (Cargo.toml) is at least what every crate
//! in Cargo.lock declares it needs, dev-dependencies included (`cargo test`
//! builds them, also in the Nix package's check phase): an older rustc
//! cannot build the workspace's tests. Cargo reads each dependency's own
//! manifest, so `cargo metadata` reports their `rust-version` fields.
//! (Clippy's `incompatible_msrv` lint checks the workspace's own code against
//! the same field.)

use std::process::Command;

/// `major.minor.patch` as numbers (missing parts are 0).
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().expect("packages");
    let mut workspace = None;
    let mut needs = Vec::new();
    for p in packages {
        let rv = p["rust_version"].as_str().and_then(version);
        let id = p["id"].as_str().unwrap_or_default();
        let name = format!(
            "{} {}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?")
        );
        if members.contains(&id) {
            let rv = rv.unwrap_or_else(|| panic!("{name} has no rust-version"));
            assert!(
                workspace.is_none_or(|w| w == rv),
                "the workspace members disagree on rust-version"
            );
            workspace = Some(rv);
        } else if let Some(rv) = rv {
            needs.push((rv, name));
        }
    }
    let workspace = workspace.expect("the workspace's rust-version");
    // The scan must see the dependencies it is meant to see.
    assert!(
        needs.len() > 30,
        "only {} crates declare a rust-version",
        needs.len()
    );
    assert!(
        needs.iter().any(|(_, n)| n.starts_with("clap ")),
        "clap not found"
    );
    assert!(
        needs.iter().any(|(_, n)| n.starts_with("proptest ")),
        "proptest not found"
    );
    let mut above: Vec<String> = needs
        .iter()
        .filter(|(rv, _)| *rv > workspace)
        .map(|((a, b, c), name)| format!("{name} needs {a}.{b}.{c}"))
        .collect();
    above.sort();
    assert!(
        above.is_empty(),
        "rust-version in Cargo.toml ({}.{}.{}) is below what Cargo.lock needs: {}",
        workspace.0,
        workspace.1,
        workspace.2,
        above.join(", ")
    );
}

#[test]
fn versions_compare_as_numbers() {
    assert_eq!(version("1.88"), Some((1, 88, 0)));
    assert_eq!(version("1.85.1"), Some((1, 85, 1)));
    assert!(version("1.9") < version("1.10"));
    assert_eq!(version("x"), None);
}
