//! `ospw-matrix backup` and `restore` against a real PostgreSQL cluster of
//! the test's own (a temporary directory, Unix socket only, run as an
//! unprivileged user, stopped at the end and killed on failure):
//! backup of a database with data → wipe → restore → same rows, secrets and
//! media; a corrupted archive refused before anything is touched; a
//! non-empty database refused without `--force`; existing secrets never
//! overwritten.

mod pg;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use pg::{both, pg_bin, Cluster};
use support::{free_port, require, run, TempDir};

const SIGNING_KEY: &str = "ed25519 a_T3st 8jmEkWk6aQ8pVq0D1Tz0ni6Mu+VlEwN0F1B1lf0tV9s\n";

/// One test host: a host description pointing at the cluster and at
/// directories in `dir`.
struct Host {
    config: PathBuf,
    secrets: PathBuf,
    media: PathBuf,
    db: String,
}

fn host(dir: &Path, cluster: &Cluster, db: &str) -> Host {
    let secrets = dir.join("secrets");
    let data = dir.join("synapse");
    let yaml = format!(
        "base_domain: example.test
server_name: example.test
matrix_host: matrix.example.test
element_host: chat.example.test
synapse:
  listen:
    tcp:
      address: 127.0.0.1
      port: {listen}
  database:
    name: {db}
    user: {db}
    socket_dir: {sock}
    port: {port}
  data_dir: {data}
proxy:
  tls: internal
secrets:
  dir: {secrets}
",
        listen = free_port(),
        sock = cluster.sock.display(),
        port = cluster.port,
        data = data.display(),
        secrets = secrets.display(),
    );
    let config = dir.join("host.yaml");
    std::fs::write(&config, yaml).unwrap();
    Host {
        config,
        secrets,
        media: data.join("media_store"),
        db: db.to_owned(),
    }
}

fn secret_files() -> Vec<(&'static str, String)> {
    vec![
        ("signing_key", SIGNING_KEY.to_owned()),
        (
            "registration_shared_secret",
            "R".repeat(40) + "egistration\n",
        ),
        ("macaroon_secret_key", "M".repeat(48) + "\n"),
        ("form_secret", "F".repeat(48) + "\n"),
        ("turn_shared_secret", "T".repeat(48) + "\n"),
    ]
}

fn write_secrets(h: &Host) {
    std::fs::create_dir_all(&h.secrets).unwrap();
    std::fs::set_permissions(&h.secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    for (name, value) in secret_files() {
        let p = h.secrets.join(name);
        std::fs::write(&p, value).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

const MEDIA: [(&str, &[u8]); 2] = [
    (
        "local_content/ab/cd/efghijklmnop",
        b"\x89PNG\r\n\x1a\n picture bytes",
    ),
    (
        "local_thumbnails/ab/cd/efghijklmnop/32-32-image-png",
        b"thumb",
    ),
];

fn write_media(h: &Host) {
    for (rel, bytes) in MEDIA {
        let p = h.media.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

fn cli(args: &[&str], pg: &Cluster) -> Output {
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.push("--pg-bin-dir".into());
    full.push(pg.bin.display().to_string());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    run(&refs)
}

fn rows(pg: &Cluster, h: &Host) -> String {
    pg.sql(
        &h.db,
        &h.db,
        "SELECT string_agg(name || '=' || body, ',' ORDER BY id) FROM events",
    )
}

fn table_count(pg: &Cluster, h: &Host) -> String {
    pg.sql(
        &h.db,
        &h.db,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    )
}

/// The byte offset and size of `member`'s data in a tar archive.
fn member_offset(archive: &[u8], member: &str) -> (usize, usize) {
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&header[..name_end]).unwrap();
        let size_text = std::str::from_utf8(&header[124..136])
            .unwrap()
            .trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size_text, 8).unwrap();
        if name == member {
            return (at + 512, size);
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    panic!("{member} not in the archive");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Creates the `events` table in `h`'s database with `values` as its rows.
fn seed_events(pg: &Cluster, h: &Host, values: &str) {
    pg.fresh_db(&h.db);
    pg.sql(
        &h.db,
        &h.db,
        &format!(
            "CREATE TABLE events (id serial PRIMARY KEY, name text NOT NULL, body text NOT NULL);
         INSERT INTO events (name, body) VALUES {values};"
        ),
    );
}

/// Adds one row to the `events` table.
fn insert_event(pg: &Cluster, h: &Host, name: &str, body: &str) {
    pg.sql(
        &h.db,
        &h.db,
        &format!("INSERT INTO events (name, body) VALUES ('{name}', '{body}')"),
    );
}

/// Runs `backup --config HOST --out ARCHIVE`.
fn backup(pg: &Cluster, h: &Host, archive: &Path) -> Output {
    cli(
        &["backup", "--config", s(&h.config), "--out", s(archive)],
        pg,
    )
}

/// Runs `restore ARCHIVE --config HOST EXTRA...`.
fn restore(pg: &Cluster, h: &Host, archive: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["restore", s(archive), "--config", s(&h.config)];
    args.extend_from_slice(extra);
    cli(&args, pg)
}

/// Writes a copy of `bytes` with one byte flipped in the middle of
/// `member`'s data to `DIR/corrupted.tar`, returning its path.
fn corrupted(bytes: &[u8], member: &str, dir: &Path) -> PathBuf {
    let (at, size) = member_offset(bytes, member);
    let mut bad = bytes.to_vec();
    bad[at + size / 2] ^= 0x20;
    let bad_path = dir.join("corrupted.tar");
    std::fs::write(&bad_path, &bad).unwrap();
    bad_path
}

/// The refusal of a corrupted `member`: it is named, nothing was changed.
fn assert_checksum_refusal(out: &Output, member: &str) -> String {
    assert!(
        !out.status.success(),
        "{member}: restore accepted a corrupted archive"
    );
    let text = both(out);
    assert!(
        text.contains("checksum mismatch") && text.contains(member),
        "{member}: {text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    text
}

/// The wiped host is still wiped: empty database, no secrets, no media.
fn assert_untouched(pg: &Cluster, h: &Host, what: &str) {
    assert_eq!(table_count(pg, h), "0", "{what}: the database was touched");
    assert!(!h.secrets.exists(), "{what}: secrets were written");
    assert!(!h.media.exists(), "{what}: media were written");
}

/// The secrets (0600) and media of the archive are back in place.
fn assert_secrets_and_media_restored(h: &Host) {
    for (name, value) in secret_files() {
        let p = h.secrets.join(name);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), value, "{name}");
        assert_eq!(mode(&p), 0o600, "{name}");
    }
    for (rel, content) in MEDIA {
        assert_eq!(std::fs::read(h.media.join(rel)).unwrap(), content, "{rel}");
    }
}

/// A valid archive built with the library: `host_description` and a dummy
/// dump.
fn library_archive(host_description: &[u8], path: &Path) {
    let mut w = ospw_matrix::backup::ArchiveWriter::new(Vec::new());
    w.add_bytes("host/host-description", host_description, 0o600)
        .unwrap();
    w.add_bytes("database/synapse.pgdump", b"PGDMP", 0o600)
        .unwrap();
    let manifest = ospw_matrix::backup::Manifest {
        format: ospw_matrix::backup::FORMAT.into(),
        format_version: ospw_matrix::backup::FORMAT_VERSION,
        ospw_matrix_version: "0".into(),
        synapse_version: None,
        postgresql_version: None,
        server_name: "example.test".into(),
        created: ospw_matrix::backup::now_rfc3339(),
        database: ospw_matrix::backup::DatabaseRecord {
            name: "synapse".into(),
            user: "synapse".into(),
            dump_format: "custom".into(),
        },
        members: Default::default(),
    };
    let (bytes, _) = w.finish(manifest).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

#[test]
fn backup_wipe_restore_and_refusals_with_a_real_postgresql() {
    let Some(bin) = require("PostgreSQL 15 (initdb)", pg_bin()) else {
        return;
    };
    let tmp = TempDir::new("backup");
    let pg = Cluster::start(bin, tmp.path());
    let h = host(tmp.path(), &pg, "synapse_b");
    seed_events(
        &pg,
        &h,
        "('alice', 'hello'), ('bob', 'héllo ☃'), ('carol', E'tab\\there')",
    );
    let before = rows(&pg, &h);
    assert!(before.contains("carol=tab"), "{before}");
    write_secrets(&h);
    write_media(&h);
    // The CLI's admin service account state goes along.
    let admin_state = r#"{"user_id":"@ospw-admin:example.test","localpart":"ospw-admin","password":"p","access_token":"t"}"#;
    std::fs::write(h.secrets.join("admin-account.json"), admin_state).unwrap();
    let check = run(&["check", "--config", s(&h.config)]);
    assert!(check.status.success(), "check: {}", both(&check));

    // Backup.
    let archive = tmp.path().join("out/backup.tar");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let out = backup(&pg, &h, &archive);
    assert!(out.status.success(), "backup: {}", both(&out));
    assert_eq!(mode(&archive), 0o600, "the archive holds secrets");
    let leftovers = entries(archive.parent().unwrap());
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    let bytes = std::fs::read(&archive).unwrap();
    let manifest = ospw_matrix::backup::verify_archive(bytes.as_slice()).unwrap();
    assert_eq!(manifest.server_name, "example.test");
    assert!(manifest
        .postgresql_version
        .as_deref()
        .unwrap()
        .starts_with("15"));
    assert_eq!(manifest.synapse_version, None, "no Synapse is running");
    assert_eq!(manifest.secrets().len(), 5);
    assert!(manifest.members.contains_key("state/admin-account.json"));
    assert_eq!(manifest.media_totals().0, 2);
    assert_eq!(
        manifest.members["secrets/signing_key"].sha256,
        ospw_matrix::backup::sha256_hex(SIGNING_KEY.as_bytes())
    );

    // Wipe: a fresh empty database, no secrets, no media.
    let wipe = || {
        pg.fresh_db(&h.db);
        let _ = std::fs::remove_dir_all(&h.secrets);
        let _ = std::fs::remove_dir_all(&h.media);
    };
    wipe();
    assert_eq!(table_count(&pg, &h), "0");

    // A corrupted archive (one byte flipped in the dump, then in a media
    // file) is refused before anything is touched.
    for member in [
        "database/synapse.pgdump",
        "media/local_content/ab/cd/efghijklmnop",
        "secrets/signing_key",
    ] {
        let bad = corrupted(&bytes, member, tmp.path());
        let out = restore(&pg, &h, &bad, &[]);
        assert_checksum_refusal(&out, member);
        assert_untouched(&pg, &h, member);
    }
    // Garbage and truncation, too.
    let truncated = tmp.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = restore(&pg, &h, &truncated, &[]);
    assert!(!out.status.success());
    assert!(both(&out).contains("nothing was changed"), "{}", both(&out));
    assert!(!h.secrets.exists());

    // Restore onto the wiped host: same rows, secrets and media.
    let out = restore(&pg, &h, &archive, &[]);
    assert!(out.status.success(), "restore: {}", both(&out));
    assert_eq!(rows(&pg, &h), before);
    assert_secrets_and_media_restored(&h);
    assert_eq!(mode(&h.secrets), 0o700);
    let state = h.secrets.join("admin-account.json");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), admin_state);
    assert_eq!(mode(&state), 0o600);
    // The objects belong to the configured role.
    assert_eq!(
        pg.sql(
            &h.db,
            &h.db,
            "SELECT tableowner FROM pg_tables WHERE tablename = 'events'"
        ),
        h.db
    );

    // A non-empty database is refused without --force, and nothing changes.
    insert_event(&pg, &h, "mallory", "later");
    let changed = rows(&pg, &h);
    let out = restore(&pg, &h, &archive, &[]);
    assert!(!out.status.success(), "restore over a non-empty database");
    assert!(both(&out).contains("not empty"), "{}", both(&out));
    assert!(both(&out).contains("--force"), "{}", both(&out));
    assert_eq!(rows(&pg, &h), changed);
    // With --force it is replaced by the archive's contents.
    let out = restore(&pg, &h, &archive, &["--force"]);
    assert!(out.status.success(), "restore --force: {}", both(&out));
    assert_eq!(rows(&pg, &h), before);

    // Existing secrets are never overwritten without --force: an empty
    // database, but another signing key in place.
    pg.fresh_db(&h.db);
    let other_key = "ed25519 a_0ther 9jmEkWk6aQ8pVq0D1Tz0ni6Mu+VlEwN0F1B1lf0tV9s\n";
    std::fs::write(h.secrets.join("signing_key"), other_key).unwrap();
    let out = restore(&pg, &h, &archive, &[]);
    assert!(!out.status.success(), "restore over another signing key");
    let text = both(&out);
    assert!(
        text.contains("signing_key") && text.contains("different secret"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(h.secrets.join("signing_key")).unwrap(),
        other_key
    );
    assert_eq!(table_count(&pg, &h), "0", "the database was touched");
    // Identical secrets are fine: put the original back, restore succeeds.
    // With --config, --host-out still writes the archive's host description.
    std::fs::write(h.secrets.join("signing_key"), SIGNING_KEY).unwrap();
    let host_out = tmp.path().join("archived-host.yaml");
    let out = restore(&pg, &h, &archive, &["--host-out", s(&host_out)]);
    assert!(out.status.success(), "restore: {}", both(&out));
    assert!(both(&out).contains("kept secret"), "{}", both(&out));
    assert!(
        !both(&out).contains("using the host description in the archive"),
        "{}",
        both(&out)
    );
    assert_eq!(
        std::fs::read(&host_out).unwrap(),
        std::fs::read(&h.config).unwrap()
    );
    assert_eq!(mode(&host_out), 0o644);
    assert_eq!(rows(&pg, &h), before);
}

#[test]
fn a_running_synapse_listener_blocks_restore() {
    // Refused before PostgreSQL is contacted: no cluster needed. Something
    // listening on Synapse's port stands for a running Synapse.
    let tmp = TempDir::new("restore-running");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = tmp.path().join("host.yaml");
    std::fs::write(
        &config,
        format!(
            "base_domain: example.test\nserver_name: example.test\nmatrix_host: matrix.example.test\nelement_host: chat.example.test\nsynapse:\n  listen:\n    tcp:\n      address: 127.0.0.1\n      port: {port}\nproxy:\n  tls: internal\nsecrets:\n  dir: {}\n",
            tmp.path().join("secrets").display()
        ),
    )
    .unwrap();
    // A valid archive, built with the library.
    let archive = tmp.path().join("a.tar");
    library_archive(b"x", &archive);
    let out = run(&[
        "restore",
        archive.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let text = both(&out);
    assert!(text.contains("stop it first"), "{text}");
    assert!(!tmp.path().join("secrets").exists());
    drop(listener);
}

#[test]
fn backup_reports_an_unreachable_database_and_writes_nothing() {
    // The CLI runs PostgreSQL's psql to reach the database; only that
    // program can report the socket it could not connect to.
    let Some(bin) = require("PostgreSQL 15 client programs (psql)", pg_bin()) else {
        return;
    };
    let tmp = TempDir::new("backup-nodb");
    let config = tmp.path().join("host.yaml");
    std::fs::write(
        &config,
        format!(
            "base_domain: example.test\nserver_name: example.test\nmatrix_host: matrix.example.test\nelement_host: chat.example.test\nsynapse:\n  database:\n    socket_dir: {}\n    port: {}\nproxy:\n  tls: internal\n",
            tmp.path().display(),
            free_port()
        ),
    )
    .unwrap();
    let archive = tmp.path().join("b.tar");
    let bin = bin.display().to_string();
    let out = run(&[
        "backup",
        "--config",
        config.to_str().unwrap(),
        "--out",
        archive.to_str().unwrap(),
        "--pg-bin-dir",
        &bin,
    ]);
    assert!(!out.status.success());
    let text = both(&out);
    assert!(text.contains(".s.PGSQL."), "names the socket: {text}");
    let left = entries(tmp.path());
    assert_eq!(left, vec![std::ffi::OsString::from("host.yaml")]);
}

/// Runs `ospw-matrix ARGS --pg-bin-dir …` with no host description from the
/// environment.
fn cli_without_env_config(args: &[&str], pg: &Cluster) -> Output {
    support::bin()
        .args(args)
        .arg("--pg-bin-dir")
        .arg(&pg.bin)
        .env_remove("OSPW_MATRIX_CONFIG")
        .output()
        .expect("run ospw-matrix")
}

/// Runs `restore ARCHIVE EXTRA... --host-out HOST_OUT` with no `--config`.
fn restore_without_config(pg: &Cluster, archive: &Path, host_out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["restore", s(archive)];
    args.extend_from_slice(extra);
    args.extend(["--host-out", s(host_out)]);
    cli_without_env_config(&args, pg)
}

#[test]
fn restore_without_config_uses_the_archives_host_description() {
    let Some(bin) = require("PostgreSQL 15 (initdb)", pg_bin()) else {
        return;
    };
    let tmp = TempDir::new("restore-noconfig");
    let pg = Cluster::start(bin, tmp.path());
    let h = host(tmp.path(), &pg, "synapse_n");
    seed_events(&pg, &h, "('alice', 'hello'), ('bob', 'bye')");
    let before = rows(&pg, &h);
    write_secrets(&h);
    write_media(&h);
    let archive = tmp.path().join("backup.tar");
    let out = backup(&pg, &h, &archive);
    assert!(out.status.success(), "backup: {}", both(&out));
    let bytes = std::fs::read(&archive).unwrap();
    let host_bytes = std::fs::read(&h.config).unwrap();

    // The fresh host has no host description of its own.
    pg.fresh_db(&h.db);
    std::fs::remove_dir_all(&h.secrets).unwrap();
    std::fs::remove_dir_all(&h.media).unwrap();
    std::fs::remove_file(&h.config).unwrap();
    let host_out = tmp.path().join("restored-host.yaml");

    // A corrupted archive is refused before its host description is read
    // (a flipped byte in the host description itself is a checksum
    // mismatch, not a parse error) and before anything is written.
    for member in [
        "host/host-description",
        "database/synapse.pgdump",
        "secrets/signing_key",
    ] {
        let bad = corrupted(&bytes, member, tmp.path());
        let out = restore_without_config(&pg, &bad, &host_out, &[]);
        let text = assert_checksum_refusal(&out, member);
        assert!(!text.contains("using the host description"), "{text}");
        assert!(!host_out.exists(), "{member}: --host-out was written");
        assert_untouched(&pg, &h, member);
    }

    // An existing --host-out is never overwritten: refused, nothing changed.
    let existing = tmp.path().join("existing.yaml");
    std::fs::write(&existing, "keep me\n").unwrap();
    let out = restore_without_config(&pg, &archive, &existing, &[]);
    assert!(!out.status.success(), "overwrote --host-out");
    let text = both(&out);
    assert!(
        text.contains("exists") && text.contains("never overwritten"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me\n");
    assert_eq!(table_count(&pg, &h), "0", "the database was touched");
    assert!(!h.secrets.exists(), "secrets were written");

    // Without --config: the archive's host description, written out too.
    let out = restore_without_config(&pg, &archive, &host_out, &[]);
    assert!(out.status.success(), "restore: {}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("using the host description in the archive")
            && text.contains("host/host-description"),
        "{text}"
    );
    assert!(!text.contains("differs"), "{text}");
    assert_eq!(rows(&pg, &h), before);
    assert_secrets_and_media_restored(&h);
    assert_eq!(std::fs::read(&host_out).unwrap(), host_bytes);
    assert_eq!(mode(&host_out), 0o644);
    let check = run(&["check", "--config", host_out.to_str().unwrap()]);
    assert!(check.status.success(), "check: {}", both(&check));

    // Again (with --force): the written host description is not overwritten.
    std::fs::write(&host_out, "edited\n").unwrap();
    insert_event(&pg, &h, "x", "y");
    let changed = rows(&pg, &h);
    let out = restore_without_config(&pg, &archive, &host_out, &["--force"]);
    assert!(!out.status.success(), "overwrote --host-out");
    assert!(both(&out).contains("never overwritten"), "{}", both(&out));
    assert_eq!(std::fs::read_to_string(&host_out).unwrap(), "edited\n");
    assert_eq!(rows(&pg, &h), changed, "the database was touched");
}

#[test]
fn an_invalid_host_description_in_the_archive_is_refused_naming_the_member() {
    // Refused before PostgreSQL is contacted: no cluster needed.
    let tmp = TempDir::new("restore-badhost");
    let archive = tmp.path().join("a.tar");
    library_archive(
        b"base_domain: example.test\nserver_name: example.test\nmatrix_host: [not, a, host]\n",
        &archive,
    );
    let host_out = tmp.path().join("host.yaml");
    let out = support::bin()
        .args([
            "restore",
            archive.to_str().unwrap(),
            "--host-out",
            host_out.to_str().unwrap(),
        ])
        .env_remove("OSPW_MATRIX_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = both(&out);
    assert!(
        text.contains("host/host-description") && text.contains("not valid"),
        "{text}"
    );
    assert!(text.contains("matrix_host"), "names the field: {text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(!host_out.exists(), "--host-out was written");
}
