//! Reading the old Docker Compose layout (Synapse + PostgreSQL + Element Web +
//! coturn behind Caddy) and turning it into a host description plus secrets.
//!
//! The layout, relative to the Compose directory:
//!
//! ```text
//! .env                               KEY=VALUE settings of the Compose file
//! synapse/homeserver.yaml            Synapse's configuration (container paths under /data)
//! synapse/<server_name>.signing.key  the signing key
//! synapse/media_store/               uploaded media
//! *.sql | *.dump | *.pgdump          a pg_dump of the old database (top level,
//!                                    or under postgres/, backup/, backups/, db/)
//! ```
//!
//! [`plan_import`] keeps the server name and the signing key (so existing
//! accounts, rooms and devices keep working), turns secrets that the old
//! configuration holds inline into secret files (never into the host
//! description), carries over what maps onto the host description, and
//! lists every other setting as an [`ImportNote`]: nothing is dropped
//! silently, and settings that break the privacy invariants (open
//! registration, federation) are reported as deliberately not carried over.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::{Error, Result};
use crate::host::{EncryptionDefault, HostDescription, SecretKind};

/// The directory the Synapse container mounts `./synapse` at.
pub const CONTAINER_DATA_DIR: &str = "/data";

/// The old layout, read from disk.
#[derive(Debug, Clone)]
pub struct ComposeLayout {
    /// The Compose directory.
    pub root: PathBuf,
    /// `synapse/homeserver.yaml`.
    pub homeserver_yaml: PathBuf,
    /// Its top-level keys.
    pub config: serde_yaml::Mapping,
    /// The `.env` settings (empty when there is no `.env`).
    pub env: BTreeMap<String, String>,
    /// The signing key file on the host.
    pub signing_key_file: PathBuf,
    /// The media store on the host, when it exists.
    pub media_store: Option<PathBuf>,
    /// The database dump, when one was found or given.
    pub dump: Option<PathBuf>,
}

/// Parses a Compose `.env` file: `KEY=VALUE` lines, `#` comments, optional
/// `export `, optional single or double quotes around the value.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            // An unquoted value ends at a ` #` comment.
            value.split(" #").next().unwrap_or(value).trim_end()
        };
        out.insert(key.trim().to_owned(), value.to_owned());
    }
    out
}

/// Maps a path as the Synapse container sees it (`/data/…`) to the host,
/// relative to the Compose directory. Relative paths are taken relative to
/// `synapse/`. Paths outside `/data` cannot be mapped.
pub fn host_path(root: &Path, container_path: &str) -> Option<PathBuf> {
    let synapse = root.join("synapse");
    if let Some(rest) = container_path.strip_prefix(CONTAINER_DATA_DIR) {
        if rest.is_empty() {
            return Some(synapse);
        }
        return rest.strip_prefix('/').map(|r| synapse.join(r));
    }
    let p = Path::new(container_path);
    if p.is_relative() {
        return Some(synapse.join(p));
    }
    None
}

/// Extensions taken for a database dump.
const DUMP_EXTENSIONS: [&str; 4] = ["sql", "dump", "pgdump", "backup"];
/// Subdirectories searched for a dump besides the top level.
const DUMP_DIRS: [&str; 5] = [".", "postgres", "backup", "backups", "db"];

/// Finds the database dump in the Compose directory. More than one candidate
/// is an error asking for `--dump`.
pub fn find_dump(root: &Path) -> Result<Option<PathBuf>> {
    let mut found = Vec::new();
    for dir in DUMP_DIRS {
        let dir = root.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if path.is_file() && DUMP_EXTENSIONS.contains(&ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Other(format!(
            "more than one database dump found ({}): name the one to use with --dump",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The format of a database dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// `pg_dump --format=custom` (starts with `PGDMP`): load with `pg_restore`.
    Custom,
    /// Plain SQL (`pg_dump` without `--format`): load with `psql`.
    PlainSql,
}

/// Detects a dump's format from its first bytes. Compressed dumps are
/// refused with a message saying to decompress them first.
pub fn dump_format(path: &Path) -> Result<DumpFormat> {
    use std::io::Read;
    let mut head = [0u8; 5];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let n = file
        .read(&mut head)
        .map_err(|e| Error::io(path, "read", e))?;
    let head = &head[..n];
    if head.starts_with(b"PGDMP") {
        Ok(DumpFormat::Custom)
    } else if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(Error::Other(format!(
            "{}: the dump is compressed; decompress it first (gunzip / zstd -d)",
            path.display()
        )))
    } else if head.is_empty() {
        Err(Error::Other(format!(
            "{}: the dump is empty",
            path.display()
        )))
    } else {
        Ok(DumpFormat::PlainSql)
    }
}

/// Reads the old layout from `root`. `dump` overrides the dump search.
pub fn read_layout(root: &Path, dump: Option<&Path>) -> Result<ComposeLayout> {
    let homeserver_yaml = root.join("synapse/homeserver.yaml");
    let text = std::fs::read_to_string(&homeserver_yaml)
        .map_err(|e| Error::io(&homeserver_yaml, "read", e))?;
    let parse_err = |message: String| Error::Parse {
        source_name: homeserver_yaml.display().to_string(),
        path: ".".into(),
        message,
    };
    // Read strictly (merge keys, duplicate keys and tags refused), so the
    // settings looked at are the ones Synapse read.
    let tree =
        crate::input::read_tree(&text, crate::input::Format::Yaml).map_err(|e| Error::Parse {
            source_name: homeserver_yaml.display().to_string(),
            path: e.path,
            message: e.message,
        })?;
    let config: serde_yaml::Mapping = match serde_yaml::to_value(tree) {
        Ok(Value::Mapping(m)) => m,
        Ok(_) => return Err(parse_err("expected a mapping of settings".into())),
        Err(e) => return Err(parse_err(crate::redact::message(&e.to_string()))),
    };
    let env_path = root.join(".env");
    let env = match std::fs::read_to_string(&env_path) {
        Ok(text) => parse_env(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(Error::io(&env_path, "read", e)),
    };
    let server_name = str_key(&config, "server_name").ok_or_else(|| Error::Parse {
        source_name: homeserver_yaml.display().to_string(),
        path: "server_name".into(),
        message: "missing: the old server name is required".into(),
    })?;
    let signing_key_file = match str_key(&config, "signing_key_path") {
        Some(p) => host_path(root, p).ok_or_else(|| Error::Parse {
            source_name: homeserver_yaml.display().to_string(),
            path: "signing_key_path".into(),
            message: format!(
                "{p:?} is outside the container's {CONTAINER_DATA_DIR}: cannot find it on the host"
            ),
        })?,
        None => root
            .join("synapse")
            .join(format!("{server_name}.signing.key")),
    };
    let media_store = str_key(&config, "media_store_path")
        .and_then(|p| host_path(root, p))
        .unwrap_or_else(|| root.join("synapse/media_store"));
    let media_store = media_store.is_dir().then_some(media_store);
    let dump = match dump {
        Some(p) => Some(p.to_path_buf()),
        None => find_dump(root)?,
    };
    Ok(ComposeLayout {
        root: root.to_path_buf(),
        homeserver_yaml,
        config,
        env,
        signing_key_file,
        media_store,
        dump,
    })
}

fn str_key<'a>(config: &'a serde_yaml::Mapping, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

/// How one old setting was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteKind {
    /// Carried over into the host description.
    Carried,
    /// A secret, copied into a file in the secrets directory.
    Secret,
    /// Replaced by what ospw-matrix manages itself (listeners, database
    /// connection, logging, paths).
    Replaced,
    /// Deliberately not carried over: it would break the privacy invariants.
    PrivacyRefused,
    /// Not carried over: the host description has no place for it. Review it.
    NotCarried,
}

impl NoteKind {
    fn heading(self) -> &'static str {
        match self {
            Self::Carried => "carried over",
            Self::Secret => "secret, copied into the secrets directory",
            Self::Replaced => "replaced by ospw-matrix's own setting",
            Self::PrivacyRefused => "DELIBERATELY NOT CARRIED OVER (breaks the privacy invariants)",
            Self::NotCarried => "NOT CARRIED OVER (no place in the host description; review)",
        }
    }
}

/// One old setting and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNote {
    /// How it was handled.
    pub kind: NoteKind,
    /// The setting, e.g. `homeserver.yaml: enable_registration` or `.env: POSTGRES_PASSWORD`.
    pub setting: String,
    /// What happened, or why.
    pub message: String,
}

impl fmt::Display for ImportNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// A secret to write into the new secrets directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSecret {
    /// Which secret.
    pub kind: SecretKind,
    /// Its contents (a trailing newline for the signing key).
    pub contents: Vec<u8>,
    /// Where it came from (`homeserver.yaml: macaroon_secret_key`, a file).
    pub origin: String,
}

/// The result of [`plan_import`]: the new host description, the secrets and
/// the notes. Nothing has been written yet.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// The host description (validated).
    pub host: HostDescription,
    /// The secrets to write.
    pub secrets: Vec<ImportedSecret>,
    /// What happened to every old setting.
    pub notes: Vec<ImportNote>,
}

impl ImportPlan {
    /// The notes of one kind.
    pub fn notes_of(&self, kind: NoteKind) -> impl Iterator<Item = &ImportNote> {
        self.notes.iter().filter(move |n| n.kind == kind)
    }

    /// The host description as YAML, with every note that needs attention
    /// written as comments at the top.
    pub fn host_yaml(&self) -> Result<String> {
        let body = serde_yaml::to_string(&self.host)
            .map_err(|e| Error::Other(format!("cannot serialise the host description: {e}")))?;
        let mut out = String::from(
            "# Imported from a Docker Compose setup by `ospw-matrix import-compose`.\n\
             # The server name and signing key are unchanged; secrets are in the\n\
             # secrets directory, never here.\n",
        );
        for kind in [
            NoteKind::PrivacyRefused,
            NoteKind::NotCarried,
            NoteKind::Replaced,
            NoteKind::Secret,
            NoteKind::Carried,
        ] {
            let notes: Vec<_> = self.notes_of(kind).collect();
            if notes.is_empty() {
                continue;
            }
            out.push_str(&format!("#\n# {}:\n", kind.heading()));
            for note in notes {
                for (i, line) in note.to_string().lines().enumerate() {
                    let lead = if i == 0 { "#   - " } else { "#     " };
                    out.push_str(lead);
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.push('\n');
        out.push_str(&body);
        Ok(out)
    }
}

/// Settings that ospw-matrix manages itself.
const REPLACED: [(&str, &str); 14] = [
    ("listeners", "Synapse listens where synapse.listen says (loopback only, client API)"),
    ("database", "PostgreSQL over its Unix socket with peer authentication (synapse.database); name and user carried over, host/password dropped"),
    ("log_config", "logging to the journal at synapse.log_level"),
    ("pid_file", "managed by systemd"),
    ("media_store_path", "synapse.media_store_path (copy the old media store there, see --copy-media)"),
    ("signing_key_path", "the signing key is copied to the secrets directory"),
    ("report_stats", "always off"),
    ("suppress_key_server_warning", "no key servers are used"),
    ("enable_metrics", "not exposed"),
    ("web_client_location", "Element Web is served on element_host"),
    ("serve_server_wellknown", "no /.well-known/matrix/server (no federation)"),
    ("turn_allow_guests", "managed with coturn"),
    ("use_presence", "synapse.presence"),
    ("data_dir", "synapse.data_dir"),
];

/// Settings that would break the privacy invariants when set as below.
fn privacy_issue(key: &str, value: &Value) -> Option<String> {
    let truthy = matches!(value, Value::Bool(true));
    match key {
        "enable_registration" | "enable_registration_without_verification" if truthy => Some(
            "open registration: accounts are created by the admin with `ospw-matrix user add`"
                .into(),
        ),
        "federation_domain_whitelist" => {
            Some("federation: ospw-matrix never federates (an empty whitelist is enforced)".into())
        }
        "trusted_key_servers" => {
            Some("key servers are a federation feature: none are trusted".into())
        }
        "allow_public_rooms_over_federation"
        | "allow_public_rooms_without_auth"
        | "allow_guest_access" => Some("exposes the server beyond its accounts: off".into()),
        "registrations_require_3pid" | "registration_requires_token" | "allowed_local_3pids" => {
            Some("registration settings have no effect: registration is closed".into())
        }
        "send_federation"
        | "federation_sender_instances"
        | "federation_client_minimum_tls_version" => {
            Some("federation: ospw-matrix never federates".into())
        }
        _ => None,
    }
}

/// `value` with every value under a secret-looking key and every value
/// that looks like a secret ([`crate::inline_secrets`]) replaced, so that
/// notes never repeat a secret.
fn redacted(value: &Value) -> Value {
    match value {
        Value::String(s) if crate::inline_secrets::looks_like_secret(s) => {
            Value::String("(secret, not shown)".into())
        }
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| {
                    let secret = k.as_str().is_some_and(crate::inline_secrets::is_secret_key)
                        && matches!(v, Value::String(_) | Value::Number(_));
                    let v = if secret {
                        Value::String("(secret, not shown)".into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

fn describe(value: &Value) -> String {
    match serde_yaml::to_string(&redacted(value)) {
        Ok(s) => {
            let s = s.trim_end().replace('\n', " ");
            if s.len() > 120 {
                format!(
                    "{}…",
                    &s[..s.char_indices().nth(117).map_or(s.len(), |(i, _)| i)]
                )
            } else {
                s
            }
        }
        Err(_) => "(unprintable)".into(),
    }
}

/// The inline and `_path` keys of each secret in `homeserver.yaml`.
const SECRET_KEYS: [(SecretKind, &str); 4] = [
    (
        SecretKind::RegistrationSharedSecret,
        "registration_shared_secret",
    ),
    (SecretKind::MacaroonSecretKey, "macaroon_secret_key"),
    (SecretKind::FormSecret, "form_secret"),
    (SecretKind::TurnSharedSecret, "turn_shared_secret"),
];

/// Reads a signing key file in Synapse's format (`ed25519 a_XXXX <seed>`,
/// one key a line) and returns the first key line, newline-terminated.
pub fn read_signing_key(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| Error::BadSecret {
            path: path.to_path_buf(),
            message: "empty: expected `ed25519 a_XXXX <base64 seed>`".into(),
        })?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    let valid = parts.len() == 3
        && parts[0] == "ed25519"
        && parts[1].starts_with("a_")
        && parts[1].len() > 2
        && parts[1][2..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && parts[2].len() >= 43
        && parts[2]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    if !valid {
        return Err(Error::BadSecret {
            path: path.to_path_buf(),
            message: "not a Synapse signing key: expected `ed25519 a_XXXX <base64 seed>`".into(),
        });
    }
    Ok(format!("{line}\n").into_bytes())
}

fn host_from_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            authority
        }
    });
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `.env` keys read for the Element host name, in order.
const ELEMENT_ENV: [&str; 3] = ["ELEMENT_HOST", "ELEMENT_DOMAIN", "ELEMENT_SERVER_NAME"];
/// `.env` keys that name the server (checked against `server_name`).
const SERVER_NAME_ENV: [&str; 3] = ["SYNAPSE_SERVER_NAME", "SERVER_NAME", "MATRIX_SERVER_NAME"];
/// `.env` keys read for the ACME e-mail address, in order.
const ACME_ENV: [&str; 3] = ["ACME_EMAIL", "LETSENCRYPT_EMAIL", "EMAIL"];

/// Builds the host description, secrets and notes from the old layout.
/// `secrets_dir` becomes `secrets.dir`. With `base`, the new host starts
/// from that host description (its paths, listener, database connection,
/// ports, proxy) and only the names, the secrets directory and the settings
/// carried over from the old configuration replace its values; without it,
/// from the defaults (and the old database name and user). The result is
/// validated; a layout whose values do not fit (an unparsable size, say) is
/// reported naming the old setting.
pub fn plan_import(
    layout: &ComposeLayout,
    secrets_dir: &Path,
    base: Option<&HostDescription>,
) -> Result<ImportPlan> {
    let source = layout.homeserver_yaml.display().to_string();
    let cfg = &layout.config;
    let mut notes = Vec::new();
    let mut note = |kind, setting: String, message: String| {
        notes.push(ImportNote {
            kind,
            setting,
            message,
        })
    };
    let server_name = str_key(cfg, "server_name")
        .unwrap_or_default()
        .to_ascii_lowercase();

    // Names.
    let public_host = str_key(cfg, "public_baseurl").and_then(host_from_url);
    let (base_domain, matrix_host) = match public_host {
        Some(h) if h != server_name => (server_name.clone(), h),
        _ => (server_name.clone(), server_name.clone()),
    };
    let element_host = ELEMENT_ENV
        .iter()
        .find_map(|k| layout.env.get(*k).filter(|v| !v.is_empty()).cloned())
        .map(|v| host_from_url(&v).unwrap_or(v))
        .unwrap_or_else(|| {
            let parent = base_domain
                .split_once('.')
                .filter(|(_, rest)| rest.contains('.'))
                .map_or(base_domain.as_str(), |(_, rest)| rest);
            format!("chat.{parent}")
        });

    let mut host = match base {
        Some(base) => HostDescription {
            base_domain,
            server_name: server_name.clone(),
            matrix_host,
            element_host,
            ..base.clone()
        },
        None => HostDescription {
            base_domain,
            server_name: server_name.clone(),
            matrix_host,
            element_host,
            synapse: Default::default(),
            turn: Default::default(),
            element: Default::default(),
            proxy: Default::default(),
            secrets: Default::default(),
            sso: Default::default(),
            email: None,
            metrics: Default::default(),
        },
    };
    host.secrets = crate::host::SecretsSettings {
        dir: secrets_dir.to_path_buf(),
        ..Default::default()
    };
    note(
        NoteKind::Carried,
        "homeserver.yaml: server_name".into(),
        format!("server_name: {server_name} (unchanged: accounts, rooms and devices keep working)"),
    );
    note(
        NoteKind::Carried,
        "names".into(),
        format!(
            "matrix_host: {} (from public_baseurl or server_name), base_domain: {}, element_host: {} (from .env {} or chosen; check it)",
            host.matrix_host,
            host.base_domain,
            host.element_host,
            ELEMENT_ENV.join("/")
        ),
    );

    // Secrets.
    let mut secrets = vec![ImportedSecret {
        kind: SecretKind::SigningKey,
        contents: read_signing_key(&layout.signing_key_file)?,
        origin: layout.signing_key_file.display().to_string(),
    }];
    for (kind, key) in SECRET_KEYS {
        let path_key = format!("{key}_path");
        if let Some(value) = cfg.get(key) {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => {
                    return Err(Error::Parse {
                        source_name: source.clone(),
                        path: key.into(),
                        message: "expected a string".into(),
                    })
                }
            };
            if text.trim().is_empty() {
                return Err(Error::Parse {
                    source_name: source.clone(),
                    path: key.into(),
                    message: "empty secret".into(),
                });
            }
            secrets.push(ImportedSecret {
                kind,
                contents: text.into_bytes(),
                origin: format!("homeserver.yaml: {key}"),
            });
        } else if let Some(p) = str_key(cfg, &path_key) {
            let file = host_path(&layout.root, p).ok_or_else(|| Error::Parse {
                source_name: source.clone(),
                path: path_key.clone(),
                message: format!(
                    "{p:?} is outside the container's {CONTAINER_DATA_DIR}: copy the secret to {} yourself",
                    secrets_dir.join(kind.file_name()).display()
                ),
            })?;
            let contents = std::fs::read(&file).map_err(|e| Error::io(&file, "read", e))?;
            let trimmed = String::from_utf8_lossy(&contents).trim_end().to_owned();
            secrets.push(ImportedSecret {
                kind,
                contents: trimmed.into_bytes(),
                origin: file.display().to_string(),
            });
        }
    }
    let copied: Vec<SecretKind> = secrets.iter().map(|s| s.kind).collect();
    for s in &secrets {
        note(
            NoteKind::Secret,
            s.origin.clone(),
            format!(
                "copied to {}",
                secrets_dir.join(s.kind.file_name()).display()
            ),
        );
    }
    for kind in SecretKind::ALL {
        if !copied.contains(&kind) {
            note(
                NoteKind::Secret,
                kind.file_name().into(),
                "not in the old configuration: `ospw-matrix secrets init` generates it".into(),
            );
        }
    }

    // Every top-level key.
    for (key, value) in cfg {
        let Some(key) = key.as_str() else {
            note(
                NoteKind::NotCarried,
                format!("homeserver.yaml: {}", describe(key)),
                "a non-string key".into(),
            );
            continue;
        };
        let setting = format!("homeserver.yaml: {key}");
        let field_err = |message: String| Error::Parse {
            source_name: source.clone(),
            path: key.to_owned(),
            message,
        };
        if key == "server_name" || key == "public_baseurl" {
            if key == "public_baseurl" {
                note(
                    NoteKind::Carried,
                    setting,
                    format!("matrix_host: {}", host.matrix_host),
                );
            }
            continue;
        }
        if SECRET_KEYS
            .iter()
            .any(|(_, k)| key == *k || key == format!("{k}_path"))
        {
            continue; // noted with the secrets
        }
        let holds_secret = match value {
            Value::String(s) => {
                crate::inline_secrets::is_secret_key(key)
                    || crate::inline_secrets::looks_like_secret(s)
            }
            Value::Number(_) => crate::inline_secrets::is_secret_key(key),
            _ => false,
        };
        if holds_secret {
            note(
                NoteKind::NotCarried,
                setting,
                "a secret value (not shown): put it in a file outside the host description and \
                 use the option's *_path form in synapse.settings"
                    .into(),
            );
            continue;
        }
        if matches!(
            key,
            "enable_registration" | "enable_registration_without_verification"
        ) && !matches!(value, Value::Bool(true))
        {
            note(
                NoteKind::Replaced,
                setting,
                format!(
                    "{}: registration stays closed (ospw-matrix enforces it)",
                    describe(value)
                ),
            );
            continue;
        }
        if let Some(why) = privacy_issue(key, value) {
            note(
                NoteKind::PrivacyRefused,
                setting,
                format!("{} ({why})", describe(value)),
            );
            continue;
        }
        if key == "listeners" {
            let federation = serde_yaml::to_string(value)
                .map(|text| text.contains("federation"))
                .unwrap_or(false);
            if federation {
                note(
                    NoteKind::PrivacyRefused,
                    setting.clone(),
                    "the old listeners served federation: ospw-matrix never does".into(),
                );
            }
        }
        if key == "database" && base.is_none() {
            if let Some(args) = value.get("args") {
                if let Some(name) = args
                    .get("database")
                    .or(args.get("dbname"))
                    .and_then(Value::as_str)
                {
                    host.synapse.database.name = name.to_owned();
                }
                if let Some(user) = args.get("user").and_then(Value::as_str) {
                    host.synapse.database.user = user.to_owned();
                }
            }
        }
        if key == "database" && value.get("name").and_then(Value::as_str) == Some("sqlite3") {
            return Err(field_err(
                "the old server uses SQLite: port it to PostgreSQL first (synapse_port_db), then import".into(),
            ));
        }
        if key == "database" && base.is_some() {
            note(
                NoteKind::Replaced,
                setting,
                "PostgreSQL over its Unix socket with peer authentication, as the base host description says (synapse.database); the old host/password are dropped".into(),
            );
            continue;
        }
        if let Some((_, why)) = REPLACED.iter().find(|(k, _)| *k == key) {
            note(NoteKind::Replaced, setting, (*why).to_owned());
            continue;
        }
        match key {
            "max_upload_size" => {
                let size = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(field_err("expected a size such as 50M".into())),
                };
                crate::values::parse_size_bytes(&size).map_err(field_err)?;
                host.synapse.max_upload_size = size.clone();
                note(
                    NoteKind::Carried,
                    setting,
                    format!("synapse.max_upload_size: {size}"),
                );
            }
            "presence" => match value.get("enabled").and_then(Value::as_bool) {
                Some(on) => {
                    host.synapse.presence = on;
                    note(
                        NoteKind::Carried,
                        setting,
                        format!("synapse.presence: {on}"),
                    );
                }
                None => note(NoteKind::NotCarried, setting, describe(value)),
            },
            "url_preview_enabled" => match value.as_bool() {
                Some(on) => {
                    host.synapse.url_previews = on;
                    note(
                        NoteKind::Carried,
                        setting,
                        format!("synapse.url_previews: {on} (private ranges are always refused)"),
                    );
                }
                None => return Err(field_err("expected true or false".into())),
            },
            "encryption_enabled_by_default_for_room_type" => {
                let mode = match value.as_str() {
                    Some("all") => EncryptionDefault::All,
                    Some("invite") => EncryptionDefault::Invite,
                    Some("off") => EncryptionDefault::Off,
                    _ => return Err(field_err("expected all, invite or off".into())),
                };
                host.synapse.encryption_by_default = mode;
                note(
                    NoteKind::Carried,
                    setting,
                    format!("synapse.encryption_by_default: {}", describe(value)),
                );
            }
            "turn_uris" => {
                let first = value
                    .as_sequence()
                    .and_then(|s| s.iter().find_map(Value::as_str))
                    .and_then(parse_turn_uri);
                match first {
                    Some((turn_host, port)) => {
                        host.turn.host = Some(turn_host.clone());
                        if let Some(port) = port {
                            host.turn.port = port;
                        }
                        note(
                            NoteKind::Carried,
                            setting,
                            format!("turn.host: {turn_host}, turn.port: {}", host.turn.port),
                        );
                    }
                    None => note(NoteKind::NotCarried, setting, describe(value)),
                }
            }
            "turn_user_lifetime" => {
                // Synapse reads a bare number as milliseconds; the host
                // description wants the unit written out.
                let lifetime = match value {
                    Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                        format!("{s}ms")
                    }
                    Value::String(s) => s.clone(),
                    Value::Number(n) => format!("{n}ms"),
                    _ => return Err(field_err("expected a duration such as 1h".into())),
                };
                crate::values::parse_lifetime_ms(&lifetime).map_err(field_err)?;
                host.turn.credential_lifetime = lifetime.clone();
                note(
                    NoteKind::Carried,
                    setting,
                    format!("turn.credential_lifetime: {lifetime}"),
                );
            }
            _ => note(NoteKind::NotCarried, setting, describe(value)),
        }
    }

    // The .env.
    for (key, value) in &layout.env {
        let setting = format!(".env: {key}");
        if SERVER_NAME_ENV.contains(&key.as_str()) {
            if value.eq_ignore_ascii_case(&server_name) {
                note(
                    NoteKind::Carried,
                    setting,
                    format!("server_name: {server_name} (the same)"),
                );
            } else {
                note(
                    NoteKind::NotCarried,
                    setting,
                    format!("{value:?} differs from homeserver.yaml's server_name {server_name:?}, which is kept"),
                );
            }
        } else if ELEMENT_ENV.contains(&key.as_str()) {
            note(
                NoteKind::Carried,
                setting,
                format!("element_host: {}", host.element_host),
            );
        } else if ACME_ENV.contains(&key.as_str()) && value.contains('@') {
            host.proxy.acme_email = Some(value.clone());
            note(
                NoteKind::Carried,
                setting,
                format!("proxy.acme_email: {value}"),
            );
        } else if key.contains("PASSWORD") || key.contains("SECRET") || key.contains("TOKEN") {
            note(
                NoteKind::Replaced,
                setting,
                "(value not shown) PostgreSQL uses peer authentication; secrets are generated or copied into the secrets directory".into(),
            );
        } else {
            note(NoteKind::NotCarried, setting, value.clone());
        }
    }

    crate::validate::validate(&host).map_err(|errors| {
        Error::Other(format!(
            "the imported host description is not valid (fix the old setting or edit the result):\n{errors}"
        ))
    })?;
    Ok(ImportPlan {
        host,
        secrets,
        notes,
    })
}

/// Parses `turn:host:port?transport=udp` (or `turns:`) into host and port.
fn parse_turn_uri(uri: &str) -> Option<(String, Option<u16>)> {
    let rest = uri
        .strip_prefix("turn:")
        .or_else(|| uri.strip_prefix("turns:"))?;
    let rest = rest.split('?').next()?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()),
        None => (rest, None),
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// What happened to one secret file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    /// Written (0600).
    Written,
    /// Already there with the same contents.
    AlreadyPresent,
}

/// Writes the plan's secrets into `dir` (created 0700), never overwriting:
/// an existing file with other contents is an error naming it, and nothing
/// is written unless every secret can be.
pub fn write_secrets(plan: &ImportPlan, dir: &Path) -> Result<Vec<(SecretKind, SecretWrite)>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for s in &plan.secrets {
        let path = dir.join(s.kind.file_name());
        if let Ok(existing) = std::fs::read(&path) {
            if existing != s.contents {
                return Err(Error::Other(format!(
                    "{} exists with a different secret: refusing to overwrite it (choose an empty secrets directory)",
                    path.display()
                )));
            }
        }
    }
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, "create directory", e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, "set permissions of", e))?;
    }
    let mut out = Vec::new();
    for s in &plan.secrets {
        let path = dir.join(s.kind.file_name());
        if path.exists() {
            out.push((s.kind, SecretWrite::AlreadyPresent));
            continue;
        }
        crate::fsutil::create_file_exclusively(&path, &s.contents, 0o600)?;
        out.push((s.kind, SecretWrite::Written));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519 a_AbCd 8jmEkWk6aQ8pVq0D1Tz0ni6Mu+VlEwN0F1B1lf0tV9s\n";

    fn layout(dir: &Path, yaml: &str, env: &str) -> ComposeLayout {
        std::fs::create_dir_all(dir.join("synapse/media_store")).unwrap();
        std::fs::write(dir.join("synapse/homeserver.yaml"), yaml).unwrap();
        std::fs::write(dir.join(".env"), env).unwrap();
        std::fs::write(dir.join("synapse/matrix.example.org.signing.key"), KEY).unwrap();
        read_layout(dir, None).unwrap()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ospw-compose-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const YAML: &str = r##"
server_name: "matrix.example.org"
public_baseurl: "https://matrix.example.org/"
pid_file: /data/homeserver.pid
listeners:
  - port: 8008
    tls: false
    type: http
    x_forwarded: true
    bind_addresses: ['::', '0.0.0.0']
    resources:
      - names: [client]
        compress: false
      - names: [federation]
        compress: false
database:
  name: psycopg2
  args:
    user: synapse_user
    password: hunter2
    database: synapse_db
    host: db
log_config: "/data/matrix.example.org.log.config"
media_store_path: /data/media_store
registration_shared_secret: "reg-secret-value"
macaroon_secret_key: "macaroon-value"
form_secret: "form-value"
signing_key_path: "/data/matrix.example.org.signing.key"
enable_registration: true
enable_registration_without_verification: false
max_upload_size: 100M
turn_uris: ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]
turn_shared_secret: "turn-value"
turn_user_lifetime: 86400000
auto_join_rooms: ["#general:matrix.example.org"]
trusted_key_servers:
  - server_name: "matrix.org"
report_stats: false
"##;

    #[test]
    fn env_parsing() {
        let env = parse_env(
            "# c\nA=1\nexport B=\"two words\"\nC='x' \nD=plain # comment\nnot a line\nE=\n",
        );
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x");
        assert_eq!(env["D"], "plain");
        assert_eq!(env["E"], "");
        assert_eq!(env.len(), 5);
    }

    #[test]
    fn container_paths_map_to_the_synapse_directory() {
        let root = Path::new("/old");
        assert_eq!(
            host_path(root, "/data/media_store"),
            Some(PathBuf::from("/old/synapse/media_store"))
        );
        assert_eq!(
            host_path(root, "/data"),
            Some(PathBuf::from("/old/synapse"))
        );
        assert_eq!(host_path(root, "/database"), None);
        assert_eq!(host_path(root, "/etc/x"), None);
        assert_eq!(
            host_path(root, "k.key"),
            Some(PathBuf::from("/old/synapse/k.key"))
        );
    }

    #[test]
    fn notes_never_repeat_a_secret() {
        let dir = tmp("notes-secrets");
        let yaml = format!(
            "{YAML}email: {{smtp_host: mail.example.org, smtp_pass: hunter2-smtp}}\n\
             redis: {{enabled: true, password: hunter2-redis}}\n\
             worker_replication_secret: hunter2-worker\n"
        );
        let l = layout(&dir, &yaml, "");
        let plan = plan_import(&l, Path::new("/var/lib/ospw-matrix/secrets"), None).unwrap();
        let text = plan.host_yaml().unwrap();
        for secret in ["hunter2-smtp", "hunter2-redis", "hunter2-worker"] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        assert!(text.contains("mail.example.org"), "{text}");
        assert!(text.contains("worker_replication_secret"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn imports_names_secrets_and_settings_and_lists_everything_else() {
        let dir = tmp("full");
        let l = layout(&dir, YAML, "ELEMENT_HOST=chat.example.org\nPOSTGRES_PASSWORD=hunter2\nACME_EMAIL=ops@example.org\nTZ=Europe/Berlin\nSYNAPSE_SERVER_NAME=matrix.example.org\n");
        let plan = plan_import(&l, Path::new("/var/lib/ospw-matrix/secrets"), None).unwrap();
        let h = &plan.host;
        assert_eq!(h.server_name, "matrix.example.org");
        assert_eq!(h.matrix_host, "matrix.example.org");
        assert_eq!(h.element_host, "chat.example.org");
        assert_eq!(h.synapse.database.name, "synapse_db");
        assert_eq!(h.synapse.database.user, "synapse_user");
        assert_eq!(h.synapse.max_upload_size, "100M");
        assert_eq!(h.turn.host.as_deref(), Some("turn.example.org"));
        assert_eq!(h.turn.credential_lifetime, "86400000ms");
        assert_eq!(h.proxy.acme_email.as_deref(), Some("ops@example.org"));
        let kinds: Vec<_> = plan.secrets.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, SecretKind::ALL.to_vec());
        assert_eq!(plan.secrets[0].contents, KEY.as_bytes());
        assert_eq!(plan.secrets[2].contents, b"macaroon-value");

        let privacy: Vec<_> = plan
            .notes_of(NoteKind::PrivacyRefused)
            .map(|n| n.setting.clone())
            .collect();
        assert!(
            privacy.contains(&"homeserver.yaml: enable_registration".to_owned()),
            "{privacy:?}"
        );
        assert!(privacy.contains(&"homeserver.yaml: trusted_key_servers".to_owned()));
        assert!(privacy.contains(&"homeserver.yaml: listeners".to_owned()));
        assert!(plan.notes_of(NoteKind::Replaced).any(|n| n.setting
            == "homeserver.yaml: enable_registration_without_verification"
            && n.message.contains("stays closed")));
        let not: Vec<_> = plan
            .notes_of(NoteKind::NotCarried)
            .map(|n| n.setting.clone())
            .collect();
        assert_eq!(not, vec!["homeserver.yaml: auto_join_rooms", ".env: TZ"]);

        let yaml = plan.host_yaml().unwrap();
        // No secret value reaches the host description, not even in comments.
        for secret in [
            "hunter2",
            "reg-secret-value",
            "macaroon-value",
            "form-value",
            "turn-value",
            "8jmEkWk6",
        ] {
            assert!(!yaml.contains(secret), "{secret} leaked:\n{yaml}");
        }
        assert!(
            yaml.contains("#   - homeserver.yaml: auto_join_rooms"),
            "{yaml}"
        );
        assert!(yaml.contains("DELIBERATELY NOT CARRIED OVER"));
        // The YAML parses back to the same host description.
        let back = crate::parse_host(&yaml, "imported").unwrap();
        assert_eq!(&back, h);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn delegated_server_name_and_secret_paths() {
        let dir = tmp("deleg");
        std::fs::create_dir_all(dir.join("synapse")).unwrap();
        std::fs::write(dir.join("synapse/reg"), "from-file\n").unwrap();
        let yaml = "server_name: example.org\npublic_baseurl: https://matrix.example.org:8448/\nregistration_shared_secret_path: /data/reg\nsigning_key_path: /data/matrix.example.org.signing.key\n";
        let l = layout(&dir, yaml, "");
        let plan = plan_import(&l, Path::new("/s"), None).unwrap();
        assert_eq!(plan.host.base_domain, "example.org");
        assert_eq!(plan.host.matrix_host, "matrix.example.org");
        assert_eq!(plan.host.element_host, "chat.example.org");
        assert_eq!(plan.secrets[1].contents, b"from-file");
        let generated = plan
            .notes_of(NoteKind::Secret)
            .filter(|n| n.message.contains("generates"))
            .count();
        assert_eq!(generated, 3);
        // With a base host description: its listener, database and paths
        // are kept; the names and the secrets directory are the old ones.
        let mut base = crate::example_host().unwrap();
        base.synapse.database.name = "new_db".into();
        base.synapse.listen = crate::host::SynapseListen::Tcp {
            address: "127.0.0.1".into(),
            port: 18008,
        };
        let plan = plan_import(&l, Path::new("/s2"), Some(&base)).unwrap();
        assert_eq!(plan.host.synapse.database.name, "new_db");
        assert_eq!(plan.host.synapse.listen, base.synapse.listen);
        assert_eq!(plan.host.server_name, "example.org");
        assert_eq!(plan.host.matrix_host, "matrix.example.org");
        assert_eq!(plan.host.secrets.dir, PathBuf::from("/s2"));
        assert_eq!(plan.host.element.brand, base.element.brand);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_name_the_old_setting() {
        let dir = tmp("bad");
        let l = layout(
            &dir,
            "server_name: matrix.example.org\nmax_upload_size: lots\n",
            "",
        );
        let err = plan_import(&l, Path::new("/s"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_upload_size"), "{err}");
        std::fs::write(
            dir.join("synapse/matrix.example.org.signing.key"),
            "garbage\n",
        )
        .unwrap();
        let l = read_layout(&dir, None).unwrap();
        let err = plan_import(&l, Path::new("/s"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Synapse signing key"), "{err}");
        std::fs::write(dir.join("synapse/homeserver.yaml"), "- a list\n").unwrap();
        assert!(read_layout(&dir, None).is_err());
        std::fs::write(dir.join("synapse/homeserver.yaml"), "report_stats: false\n").unwrap();
        let err = read_layout(&dir, None).unwrap_err().to_string();
        assert!(err.contains("server_name"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dump_discovery_and_format() {
        let dir = tmp("dump");
        std::fs::create_dir_all(dir.join("backups")).unwrap();
        assert_eq!(find_dump(&dir).unwrap(), None);
        std::fs::write(dir.join("backups/synapse.sql"), "-- PostgreSQL dump\n").unwrap();
        let found = find_dump(&dir).unwrap().unwrap();
        assert_eq!(dump_format(&found).unwrap(), DumpFormat::PlainSql);
        std::fs::write(dir.join("db.dump"), b"PGDMP\x01").unwrap();
        assert!(find_dump(&dir).unwrap_err().to_string().contains("--dump"));
        assert_eq!(
            dump_format(&dir.join("db.dump")).unwrap(),
            DumpFormat::Custom
        );
        std::fs::write(dir.join("db.dump"), [0x1f, 0x8b, 8]).unwrap();
        assert!(dump_format(&dir.join("db.dump"))
            .unwrap_err()
            .to_string()
            .contains("decompress"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secrets_are_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp("secrets");
        let l = layout(&dir, YAML, "");
        let plan = plan_import(&l, &dir.join("s"), None).unwrap();
        let out = write_secrets(&plan, &dir.join("s")).unwrap();
        assert!(out.iter().all(|(_, w)| *w == SecretWrite::Written));
        let mode = std::fs::metadata(dir.join("s/signing_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(dir.join("s"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // Again: identical, fine.
        let out = write_secrets(&plan, &dir.join("s")).unwrap();
        assert!(out.iter().all(|(_, w)| *w == SecretWrite::AlreadyPresent));
        // A different secret: refused, and nothing changed.
        std::fs::write(dir.join("s/form_secret"), "other").unwrap();
        std::fs::remove_file(dir.join("s/macaroon_secret_key")).unwrap();
        let err = write_secrets(&plan, &dir.join("s"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("form_secret"), "{err}");
        assert_eq!(std::fs::read(dir.join("s/form_secret")).unwrap(), b"other");
        assert!(!dir.join("s/macaroon_secret_key").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
