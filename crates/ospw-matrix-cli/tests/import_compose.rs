//! `ospw-matrix import-compose`: the old Docker Compose layout becomes a
//! valid host description (same server name, notes at the top, no secret in
//! it) and a secrets directory (same signing key, inline secrets copied into
//! files, 0600/0700, never overwritten); with a real PostgreSQL cluster, the
//! old plain-SQL dump (owned by the old role) is loaded with `--restore-dump`
//! and the media store copied with `--copy-media`.

mod pg;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use pg::{both, pg_bin, Cluster};
use support::{free_port, require, run, TempDir};

const SIGNING_KEY: &str = "ed25519 a_OlDk 8jmEkWk6aQ8pVq0D1Tz0ni6Mu+VlEwN0F1B1lf0tV9s";
const REG_SECRET: &str = "old-registration-secret-0123456789abcdefghij";
const MACAROON: &str = "old-macaroon-secret-0123456789abcdefghijklmn";

/// The old layout, in the shape the Compose setup left on disk.
fn compose_dir(root: &Path) -> PathBuf {
    let dir = root.join("compose");
    std::fs::create_dir_all(dir.join("synapse/media_store/local_content/aa/bb")).unwrap();
    std::fs::write(
        dir.join("synapse/media_store/local_content/aa/bb/cdefgh"),
        b"old picture",
    )
    .unwrap();
    std::fs::write(
        dir.join("synapse/homeserver.yaml"),
        format!(
            r##"server_name: "matrix.old.test"
pid_file: /data/homeserver.pid
public_baseurl: https://matrix.old.test/
listeners:
  - port: 8008
    tls: false
    type: http
    x_forwarded: true
    resources:
      - names: [client, federation]
        compress: false
database:
  name: psycopg2
  args:
    user: synapse
    password: "db-password-in-compose"
    database: synapse
    host: postgres
    cp_min: 5
    cp_max: 10
log_config: "/data/matrix.old.test.log.config"
media_store_path: /data/media_store
registration_shared_secret: "{REG_SECRET}"
macaroon_secret_key: "{MACAROON}"
report_stats: false
signing_key_path: "/data/matrix.old.test.signing.key"
trusted_key_servers:
  - server_name: "matrix.org"
enable_registration: true
enable_registration_without_verification: true
max_upload_size: 200M
url_preview_enabled: false
auto_join_rooms: ["#lobby:matrix.old.test"]
retention:
  enabled: true
"##
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("synapse/matrix.old.test.signing.key"),
        format!("{SIGNING_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "POSTGRES_PASSWORD=db-password-in-compose\nELEMENT_HOST=chat.old.test\nCOMPOSE_PROJECT_NAME=matrix\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("backups")).unwrap();
    std::fs::write(
        dir.join("backups/synapse.sql"),
        "--\n-- PostgreSQL database dump\n--\n\
         SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
         CREATE TABLE public.users (name text NOT NULL, password_hash text);\n\
         ALTER TABLE public.users OWNER TO old_compose_role;\n\
         CREATE TABLE public.events (id bigint, body text);\n\
         ALTER TABLE public.events OWNER TO old_compose_role;\n\
         COPY public.users (name, password_hash) FROM stdin;\n\
         @alice:matrix.old.test\t$2b$12$hash\n\
         ALTER TABLE looks like a statement OWNER TO nobody; but is data\t\\N\n\
         \\.\n\
         COPY public.events (id, body) FROM stdin;\n\
         1\thello from compose\n\
         \\.\n\
         GRANT ALL ON TABLE public.users TO old_compose_role;\n",
    )
    .unwrap();
    dir
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs `import-compose DIR --out-config CONFIG --secrets-dir SECRETS`.
fn import(dir: &Path, config: &Path, secrets: &Path) -> Output {
    run(&[
        "import-compose",
        dir.to_str().unwrap(),
        "--out-config",
        config.to_str().unwrap(),
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ])
}

/// Asserts that the output of a run mentions `needle`.
fn assert_says(out: &Output, needle: &str) {
    assert!(both(out).contains(needle), "{}", both(out));
}

/// Asserts that none of the old secrets appears in `text` (`what`).
fn assert_no_secret_in(text: &str, what: &str) {
    for secret in ["db-password-in-compose", REG_SECRET, MACAROON, "8jmEkWk6"] {
        assert!(!text.contains(secret), "{secret} {what}:\n{text}");
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn import_writes_a_valid_host_and_secrets_and_lists_what_it_did_not_carry() {
    let tmp = TempDir::new("import");
    let dir = compose_dir(tmp.path());
    let out_config = tmp.path().join("host.yaml");
    let secrets = tmp.path().join("secrets");
    let out = import(&dir, &out_config, &secrets);
    let text = both(&out);
    assert!(out.status.success(), "{text}");
    // Reported: privacy settings deliberately dropped, the rest listed.
    for expected in [
        "deliberately NOT carried over",
        "enable_registration",
        "trusted_key_servers",
        "NOT carried over",
        "auto_join_rooms",
        "retention",
        "COMPOSE_PROJECT_NAME",
        "--restore-dump",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert_no_secret_in(&text, "printed");

    let yaml = read(&out_config);
    assert!(
        yaml.starts_with("# Imported from a Docker Compose setup"),
        "{yaml}"
    );
    assert!(
        yaml.contains("#   - homeserver.yaml: auto_join_rooms"),
        "{yaml}"
    );
    assert!(
        yaml.contains("#   - homeserver.yaml: enable_registration"),
        "{yaml}"
    );
    assert_no_secret_in(&yaml, "in the host description");
    let host: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(host["server_name"].as_str(), Some("matrix.old.test"));
    assert_eq!(host["element_host"].as_str(), Some("chat.old.test"));
    assert_eq!(host["synapse"]["max_upload_size"].as_str(), Some("200M"));
    // It validates and renders.
    let check = run(&["check", "--config", out_config.to_str().unwrap()]);
    assert!(check.status.success(), "{}", both(&check));

    // The secrets: same signing key, inline secrets as files, 0600 in 0700.
    assert_eq!(mode(&secrets), 0o700);
    assert_eq!(
        read(&secrets.join("signing_key")),
        format!("{SIGNING_KEY}\n")
    );
    assert_eq!(
        read(&secrets.join("registration_shared_secret")),
        REG_SECRET
    );
    assert_eq!(read(&secrets.join("macaroon_secret_key")), MACAROON);
    for name in [
        "signing_key",
        "registration_shared_secret",
        "macaroon_secret_key",
    ] {
        assert_eq!(mode(&secrets.join(name)), 0o600, "{name}");
    }
    assert!(
        !secrets.join("form_secret").exists(),
        "not in the old config"
    );

    // Running it again is harmless (same files); a different existing
    // secret is refused and nothing is written.
    let again = import(&dir, &out_config, &secrets);
    assert!(again.status.success(), "{}", both(&again));
    let other = tmp.path().join("other-secrets");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("signing_key"),
        "ed25519 a_new 9jmEkWk6aQ8pVq0D1Tz0ni6Mu+VlEwN0F1B1lf0tV9s\n",
    )
    .unwrap();
    let other_config = tmp.path().join("other.yaml");
    let refused = import(&dir, &other_config, &other);
    assert!(!refused.status.success());
    assert_says(&refused, "refusing to overwrite");
    assert!(!other_config.exists());
    assert!(!other.join("registration_shared_secret").exists());
    assert!(read(&other.join("signing_key")).contains("a_new"));
}

#[test]
fn a_missing_signing_key_or_sqlite_is_a_clear_error() {
    let tmp = TempDir::new("import-bad");
    let dir = compose_dir(tmp.path());
    std::fs::remove_file(dir.join("synapse/matrix.old.test.signing.key")).unwrap();
    let out_config = tmp.path().join("host.yaml");
    let out = import(&dir, &out_config, &tmp.path().join("s"));
    assert!(!out.status.success());
    assert_says(&out, "matrix.old.test.signing.key");
    assert!(!out_config.exists());
    assert!(!tmp.path().join("s").exists());
}

#[test]
fn restore_dump_and_copy_media_with_a_real_postgresql() {
    let Some(bin) = require("PostgreSQL 15 (initdb)", pg_bin()) else {
        return;
    };
    let tmp = TempDir::new("import-pg");
    let pg = Cluster::start(bin, tmp.path());
    pg.fresh_db("synapse_new");
    let dir = compose_dir(tmp.path());
    // The new host's own paths and database, given as the base.
    let base = tmp.path().join("base.yaml");
    let data = tmp.path().join("new-synapse");
    std::fs::write(
        &base,
        format!(
            "base_domain: placeholder.test\nserver_name: placeholder.test\nmatrix_host: matrix.placeholder.test\nelement_host: chat.placeholder.test\n\
             synapse:\n  listen:\n    tcp:\n      address: 127.0.0.1\n      port: {}\n  database:\n    name: synapse_new\n    user: synapse_new\n    socket_dir: {}\n    port: {}\n  data_dir: {}\n\
             proxy:\n  tls: internal\n",
            free_port(),
            pg.sock.display(),
            pg.port,
            data.display()
        ),
    )
    .unwrap();
    let out_config = tmp.path().join("host.yaml");
    let import_into_pg = |config: &Path| {
        let args = vec![
            "import-compose".to_owned(),
            dir.display().to_string(),
            "--out-config".into(),
            config.display().to_string(),
            "--secrets-dir".into(),
            tmp.path().join("secrets").display().to_string(),
            "--base".into(),
            base.display().to_string(),
            "--restore-dump".into(),
            "--copy-media".into(),
            "--pg-bin-dir".into(),
            pg.bin.display().to_string(),
        ];
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = import_into_pg(&out_config);
    assert!(out.status.success(), "{}", both(&out));
    assert_says(&out, "ownership/privilege statements");
    // The rows are there, owned by the new role; COPY data that looks like
    // a statement was kept as data.
    let sql = |query: &str| pg.sql("synapse_new", "synapse_new", query);
    let users = sql("SELECT string_agg(name, ',' ORDER BY name) FROM users");
    assert_eq!(
        users,
        "@alice:matrix.old.test,ALTER TABLE looks like a statement OWNER TO nobody; but is data"
    );
    assert_eq!(sql("SELECT body FROM events"), "hello from compose");
    assert_eq!(
        sql("SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'"),
        "synapse_new"
    );
    // The base's paths and database were kept, the names are the old ones.
    let yaml = read(&out_config);
    assert!(yaml.contains("server_name: matrix.old.test"), "{yaml}");
    assert!(yaml.contains("name: synapse_new"), "{yaml}");
    assert_eq!(
        std::fs::read(data.join("media_store/local_content/aa/bb/cdefgh")).unwrap(),
        b"old picture"
    );

    // Into a non-empty database: refused, nothing written.
    let second = tmp.path().join("host2.yaml");
    let out = import_into_pg(&second);
    assert!(!out.status.success());
    assert_says(&out, "not empty");
    assert!(!second.exists());
}
