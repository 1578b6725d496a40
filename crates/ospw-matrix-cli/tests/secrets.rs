//! `ospw-matrix keygen` and `ospw-matrix secrets init`, run as a binary.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ospw_matrix::host::SecretKind;
use ospw_matrix::secrets::{check_secret, SigningKey};
use support::{run, TempDir};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

/// Creates `<tmp>/secrets` with `mode`, returning its path.
fn secrets_dir(tmp: &TempDir, mode: u32) -> PathBuf {
    let dir = tmp.path().join("secrets");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

fn init(dir: &Path) -> std::process::Output {
    run(&["secrets", "init", "--dir", dir.to_str().expect("utf8")])
}

#[test]
fn init_creates_every_secret_privately_then_changes_nothing() {
    let tmp = TempDir::new("secrets-init");
    let dir = tmp.path().join("nested/secrets");
    let out = init(&dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir), 0o700);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for kind in SecretKind::ALL {
        let path = dir.join(kind.file_name());
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(check_secret(kind, &text), Ok(()), "{}", path.display());
        assert!(
            stdout.contains(&format!("created {}", path.display())),
            "{stdout}"
        );
        // The report never shows a secret value.
        assert!(!stdout.contains(text.trim()), "{stdout}");
    }
    let first = snapshot(&dir);
    assert_eq!(first.len(), SecretKind::ALL.len(), "{first:?}");
    let turn = String::from_utf8(first["turn_shared_secret"].clone()).expect("utf8");
    let form = String::from_utf8(first["form_secret"].clone()).expect("utf8");
    assert_ne!(turn, form, "each secret is drawn separately");
    assert!(turn.trim().len() >= 43, "at least 256 bits: {}", turn.len());

    let out = init(&dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(snapshot(&dir), first, "a second run changes nothing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("created"), "{stdout}");
    assert_eq!(
        stdout.matches("kept ").count(),
        SecretKind::ALL.len(),
        "{stdout}"
    );
}

#[test]
fn init_fills_only_the_missing_secrets() {
    let tmp = TempDir::new("secrets-partial");
    let dir = tmp.path().join("secrets");
    assert!(init(&dir).status.success());
    let key_before = std::fs::read(dir.join("signing_key")).expect("read");
    std::fs::remove_file(dir.join("macaroon_secret_key")).expect("remove");
    let out = init(&dir);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("created").count(), 1, "{stdout}");
    assert!(dir.join("macaroon_secret_key").exists());
    assert_eq!(
        std::fs::read(dir.join("signing_key")).expect("read"),
        key_before
    );
}

#[test]
fn loose_directory_is_tightened() {
    let tmp = TempDir::new("secrets-loose");
    let dir = secrets_dir(&tmp, 0o755);
    let out = init(&dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir), 0o700);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tightened"), "{stdout}");
    assert!(stdout.contains("0755"), "{stdout}");
}

#[test]
fn malformed_signing_key_is_refused_and_kept() {
    let tmp = TempDir::new("secrets-bad-key");
    let dir = secrets_dir(&tmp, 0o700);
    let key = dir.join("signing_key");
    std::fs::write(&key, "ed25519 a_abcd not-base64!\n").expect("write");
    let out = init(&dir);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("ed25519 <version> <seed>"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&key).expect("read"),
        "ed25519 a_abcd not-base64!\n",
        "not overwritten"
    );
    // Nothing else was created either: the check runs before any write.
    assert_eq!(snapshot(&dir).len(), 1);
}

#[test]
fn empty_shared_secret_is_refused() {
    let tmp = TempDir::new("secrets-empty");
    let dir = tmp.path().join("secrets");
    assert!(init(&dir).status.success());
    std::fs::write(dir.join("form_secret"), "").expect("truncate");
    let out = init(&dir);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("form_secret"), "{stderr}");
}

#[test]
fn keygen_output_parses() {
    let out = run(&["keygen"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf8");
    let key = SigningKey::parse(&text).expect("parses");
    assert!(
        key.version.starts_with("a_") && key.version.len() == 6,
        "{text}"
    );
    assert_eq!(key.to_file_string(), text);
    let again = String::from_utf8(run(&["keygen"]).stdout).expect("utf8");
    assert_ne!(again, text);
}
