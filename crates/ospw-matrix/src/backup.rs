//! Backup archives: one uncompressed tar file holding a PostgreSQL dump
//! (custom format), the secrets, the media store and the host description,
//! described by a manifest that records the SHA-256 of every member.
//!
//! The manifest (`manifest.json`) is the archive's **last** member, so an
//! archive can be written in one streaming pass (each member is hashed while
//! it is copied) and verified in one streaming pass ([`verify_archive`]). A
//! restore verifies the whole archive before changing anything, then reads it
//! again ([`for_each_member`]), checking every member's hash once more while
//! extracting it.
//!
//! Member names are fixed by this module: `host/host-description`,
//! `database/synapse.pgdump`, `secrets/<name>` (the names of
//! [`SecretKind::file_name`]) and `media/<relative path>`. Any other name,
//! an absolute path, `..`, a link or a device in an archive is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::SecretKind;

/// The value of [`Manifest::format`].
pub const FORMAT: &str = "ospw-matrix-backup";
/// The archive format version this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The name of the manifest member (always the last member).
pub const MANIFEST_NAME: &str = "manifest.json";
/// The member holding the host description the server was rendered from.
pub const HOST_MEMBER: &str = "host/host-description";
/// The member holding the PostgreSQL dump (`pg_dump --format=custom`).
pub const DATABASE_MEMBER: &str = "database/synapse.pgdump";
/// The prefix of secret members (`secrets/signing_key`, …).
pub const SECRETS_PREFIX: &str = "secrets/";
/// The member holding the CLI's admin service account (its state file
/// `admin-account.json`, 0600), so that admin commands keep working with the
/// same account after a restore.
pub const ADMIN_STATE_MEMBER: &str = "state/admin-account.json";
/// The prefix of media store members (`media/local_content/…`).
pub const MEDIA_PREFIX: &str = "media/";

/// The largest manifest accepted (a bound on memory for hostile input).
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// The largest secret or host description member read into memory.
const MAX_SMALL_MEMBER_BYTES: u64 = 1024 * 1024;

/// What went wrong reading, writing or verifying an archive.
#[derive(Debug)]
pub enum BackupError {
    /// Reading or writing failed; `what` names the archive, member or file.
    Io {
        /// The archive, member or file concerned.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The archive is not a valid backup; nothing was changed.
    Invalid {
        /// The member concerned (or `archive` / `manifest.json`).
        member: String,
        /// What is wrong.
        message: String,
    },
}

impl BackupError {
    fn invalid(member: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            member: member.into(),
            message: message.into(),
        }
    }

    fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::Invalid { member, message } => write!(f, "{member}: {message}"),
        }
    }
}

impl std::error::Error for BackupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Invalid { .. } => None,
        }
    }
}

impl From<BackupError> for crate::Error {
    fn from(e: BackupError) -> Self {
        crate::Error::Other(format!("backup archive: {e}"))
    }
}

/// One member's record in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    /// The size in bytes.
    pub size: u64,
    /// The SHA-256 of the contents, lower-case hexadecimal.
    pub sha256: String,
}

/// The database the dump was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRecord {
    /// The database name.
    pub name: String,
    /// The role that owned the objects (restores use `--role` with the
    /// target's own role).
    pub user: String,
    /// How the dump was made (`pg_dump --format=custom`).
    pub dump_format: String,
}

/// The manifest: what the archive holds and the checksum of every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The archive format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The version of ospw-matrix that wrote the archive.
    pub ospw_matrix_version: String,
    /// Synapse's version, when the server answered.
    pub synapse_version: Option<String>,
    /// PostgreSQL's server version, when obtainable.
    pub postgresql_version: Option<String>,
    /// The Matrix server name (it can never change).
    pub server_name: String,
    /// When the archive was made, RFC 3339 in UTC.
    pub created: String,
    /// The database the dump came from.
    pub database: DatabaseRecord,
    /// Every member except the manifest, by name.
    pub members: BTreeMap<String, MemberRecord>,
}

impl Manifest {
    /// Checks the manifest's own fields (format, version, member names).
    pub fn check(&self) -> Result<(), BackupError> {
        if self.format != FORMAT {
            return Err(BackupError::invalid(
                MANIFEST_NAME,
                format!("format is {:?}, expected {FORMAT:?}", self.format),
            ));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(BackupError::invalid(
                MANIFEST_NAME,
                format!(
                    "format_version {} is not supported by this ospw-matrix (it reads version {FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        if !crate::validate::is_dns_name(&self.server_name) {
            return Err(BackupError::invalid(
                MANIFEST_NAME,
                format!("server_name {:?} is not a host name", self.server_name),
            ));
        }
        for (name, record) in &self.members {
            classify_member(name)?;
            if !is_sha256_hex(&record.sha256) {
                return Err(BackupError::invalid(
                    MANIFEST_NAME,
                    format!("member {name}: sha256 must be 64 lower-case hex digits"),
                ));
            }
        }
        for required in [HOST_MEMBER, DATABASE_MEMBER] {
            if !self.members.contains_key(required) {
                return Err(BackupError::invalid(
                    MANIFEST_NAME,
                    format!("the archive has no {required}"),
                ));
            }
        }
        Ok(())
    }

    /// The secrets the archive holds.
    pub fn secrets(&self) -> Vec<SecretKind> {
        self.members
            .keys()
            .filter_map(|name| match classify_member(name) {
                Ok(MemberKind::Secret(kind)) => Some(kind),
                _ => None,
            })
            .collect()
    }

    /// The number and total size of the media files.
    pub fn media_totals(&self) -> (usize, u64) {
        self.members
            .iter()
            .filter(|(name, _)| name.starts_with(MEDIA_PREFIX))
            .fold((0, 0), |(n, size), (_, r)| (n + 1, size + r.size))
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a member is, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    /// The manifest.
    Manifest,
    /// The host description.
    HostDescription,
    /// The PostgreSQL dump.
    Database,
    /// One secret.
    Secret(SecretKind),
    /// The CLI's admin service account ([`ADMIN_STATE_MEMBER`]).
    AdminState,
    /// One media store file, by its path relative to the media store.
    Media(PathBuf),
}

/// Classifies a member name, refusing any name this module does not write
/// (absolute paths, `..`, unknown prefixes, unknown secrets).
pub fn classify_member(name: &str) -> Result<MemberKind, BackupError> {
    let bad = |why: &str| BackupError::invalid(name, format!("unexpected member name: {why}"));
    match name {
        MANIFEST_NAME => return Ok(MemberKind::Manifest),
        HOST_MEMBER => return Ok(MemberKind::HostDescription),
        DATABASE_MEMBER => return Ok(MemberKind::Database),
        ADMIN_STATE_MEMBER => return Ok(MemberKind::AdminState),
        _ => {}
    }
    if let Some(secret) = name.strip_prefix(SECRETS_PREFIX) {
        return SecretKind::ALL
            .into_iter()
            .find(|k| k.file_name() == secret)
            .map(MemberKind::Secret)
            .ok_or_else(|| bad("not a known secret"));
    }
    if let Some(rel) = name.strip_prefix(MEDIA_PREFIX) {
        let path = Path::new(rel);
        if rel.is_empty()
            || rel.contains('\0')
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad("media paths must be relative, without `..`"));
        }
        return Ok(MemberKind::Media(path.to_path_buf()));
    }
    Err(bad(
        "expected manifest.json, host/, database/, secrets/, state/ or media/",
    ))
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The SHA-256 of `bytes`, lower-case hexadecimal.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The size and SHA-256 of the file at `path`, read in a stream, or `None`
/// when the file does not exist.
pub fn hash_file(path: &Path) -> crate::Result<Option<MemberRecord>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::Error::io(path, "read", e)),
    };
    let mut reader = HashingReader::new(file);
    io::copy(&mut reader, &mut io::sink()).map_err(|e| crate::Error::io(path, "read", e))?;
    Ok(Some(reader.finish()))
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> MemberRecord {
        MemberRecord {
            size: self.count,
            sha256: hex(&self.hasher.finalize()),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Writes an archive member by member; [`ArchiveWriter::finish`] appends the
/// manifest with every member's checksum.
pub struct ArchiveWriter<W: Write> {
    builder: tar::Builder<W>,
    members: BTreeMap<String, MemberRecord>,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self {
            builder: tar::Builder::new(out),
            members: BTreeMap::new(),
        }
    }

    fn header(size: u64, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn check_new(&self, name: &str) -> Result<(), BackupError> {
        match classify_member(name)? {
            MemberKind::Manifest => Err(BackupError::invalid(
                name,
                "the manifest is written by finish()",
            )),
            _ if self.members.contains_key(name) => {
                Err(BackupError::invalid(name, "member added twice"))
            }
            _ => Ok(()),
        }
    }

    /// Adds a member from memory.
    pub fn add_bytes(&mut self, name: &str, contents: &[u8], mode: u32) -> Result<(), BackupError> {
        self.check_new(name)?;
        let mut header = Self::header(contents.len() as u64, mode);
        self.builder
            .append_data(&mut header, name, contents)
            .map_err(|e| BackupError::io(format!("writing {name}"), e))?;
        self.members.insert(
            name.to_owned(),
            MemberRecord {
                size: contents.len() as u64,
                sha256: sha256_hex(contents),
            },
        );
        Ok(())
    }

    /// Adds a member from the file at `path`, hashing it while it is copied.
    /// The file must not change size while it is read.
    pub fn add_file(&mut self, name: &str, path: &Path, mode: u32) -> Result<(), BackupError> {
        self.check_new(name)?;
        let what = || path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| BackupError::io(what(), e))?;
        let size = file
            .metadata()
            .map_err(|e| BackupError::io(what(), e))?
            .len();
        let mut reader = HashingReader::new(file.take(size));
        let mut header = Self::header(size, mode);
        self.builder
            .append_data(&mut header, name, &mut reader)
            .map_err(|e| BackupError::io(format!("writing {name} from {}", what()), e))?;
        let record = reader.finish();
        if record.size != size {
            return Err(BackupError::invalid(
                name,
                format!("{} changed size while it was read", what()),
            ));
        }
        self.members.insert(name.to_owned(), record);
        Ok(())
    }

    /// The records of the members added so far.
    pub fn members(&self) -> &BTreeMap<String, MemberRecord> {
        &self.members
    }

    /// Appends the manifest (its `members` replaced by what was written),
    /// finishes the archive and returns the writer and the manifest.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<(W, Manifest), BackupError> {
        manifest.members = std::mem::take(&mut self.members);
        manifest.check()?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::invalid(MANIFEST_NAME, e.to_string()))?;
        let mut header = Self::header(json.len() as u64, 0o600);
        self.builder
            .append_data(&mut header, MANIFEST_NAME, json.as_slice())
            .map_err(|e| BackupError::io(format!("writing {MANIFEST_NAME}"), e))?;
        let out = self
            .builder
            .into_inner()
            .map_err(|e| BackupError::io("finishing the archive", e))?;
        Ok((out, manifest))
    }
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, BackupError> {
    let bytes = entry.path_bytes();
    let name = std::str::from_utf8(&bytes)
        .map_err(|_| BackupError::invalid("archive", "a member name is not UTF-8"))?
        .to_owned();
    let kind = entry.header().entry_type();
    if !kind.is_file() {
        return Err(BackupError::invalid(
            name,
            "only regular files are allowed (no links, directories or devices)",
        ));
    }
    Ok(name)
}

/// Reads the whole archive from `reader`, hashing every member, and checks
/// it against the manifest: the manifest is present, last, valid and of a
/// supported version; every member is listed with the same size and SHA-256;
/// no member is missing, extra or repeated. Nothing is written anywhere.
pub fn verify_archive<R: Read>(reader: R) -> Result<Manifest, BackupError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| BackupError::io("reading the archive", e))?;
    let mut seen: BTreeMap<String, MemberRecord> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| BackupError::io("reading the archive", e))?;
        let name = entry_name(&entry)?;
        if manifest.is_some() {
            return Err(BackupError::invalid(
                name,
                "member after manifest.json (the manifest must be last)",
            ));
        }
        if classify_member(&name)? == MemberKind::Manifest {
            if entry.size() > MAX_MANIFEST_BYTES {
                return Err(BackupError::invalid(MANIFEST_NAME, "too large"));
            }
            let mut json = Vec::new();
            entry
                .read_to_end(&mut json)
                .map_err(|e| BackupError::io(MANIFEST_NAME, e))?;
            let parsed: Manifest = serde_json::from_slice(&json).map_err(|e| {
                BackupError::invalid(MANIFEST_NAME, format!("not a valid manifest: {e}"))
            })?;
            parsed.check()?;
            manifest = Some(parsed);
            continue;
        }
        if seen.contains_key(&name) {
            return Err(BackupError::invalid(name, "member appears twice"));
        }
        let mut hashing = HashingReader::new(&mut entry);
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| BackupError::io(name.clone(), e))?;
        seen.insert(name, hashing.finish());
    }
    let manifest = manifest.ok_or_else(|| {
        BackupError::invalid(
            "archive",
            "no manifest.json: not an ospw-matrix backup, or truncated",
        )
    })?;
    compare_members(&manifest.members, &seen)?;
    Ok(manifest)
}

/// Compares the manifest's records with what was read.
pub fn compare_members(
    expected: &BTreeMap<String, MemberRecord>,
    found: &BTreeMap<String, MemberRecord>,
) -> Result<(), BackupError> {
    for (name, record) in expected {
        match found.get(name) {
            None => {
                return Err(BackupError::invalid(
                    name,
                    "listed in the manifest but missing from the archive",
                ))
            }
            Some(got) if got != record => {
                return Err(BackupError::invalid(
                    name,
                    format!(
                        "checksum mismatch: manifest says {} bytes sha256 {}, archive holds {} bytes sha256 {}",
                        record.size, record.sha256, got.size, got.sha256
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = found.keys().find(|k| !expected.contains_key(*k)) {
        return Err(BackupError::invalid(
            extra,
            "in the archive but not listed in the manifest",
        ));
    }
    Ok(())
}

/// Reads the archive again after [`verify_archive`], calling `visit` with
/// each member (except the manifest) and a reader of its contents. Each
/// member's hash is checked against `manifest` once `visit` has consumed
/// it; a mismatch (the file changed since it was verified) is an error, and
/// `visit` is told through [`StagedFile::commit`] (for a [`MemberVisit::Staged`] result) only when the hash matched,
/// so it can stage a member and put it in place only then.
pub fn for_each_member<R: Read>(
    reader: R,
    manifest: &Manifest,
    mut visit: impl FnMut(&str, &MemberKind, &mut dyn Read) -> Result<MemberVisit, crate::Error>,
) -> Result<(), crate::Error> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| BackupError::io("reading the archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BackupError::io("reading the archive", e))?;
        let name = entry_name(&entry)?;
        let kind = classify_member(&name)?;
        if kind == MemberKind::Manifest {
            continue;
        }
        let expected = manifest
            .members
            .get(&name)
            .ok_or_else(|| BackupError::invalid(&name, "not listed in the manifest"))?;
        let mut hashing = HashingReader::new(&mut entry);
        let outcome = visit(&name, &kind, &mut hashing)?;
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| BackupError::io(name.clone(), e))?;
        let got = hashing.finish();
        if &got != expected {
            if let MemberVisit::Staged(undo) = outcome {
                undo.discard();
            }
            return Err(BackupError::invalid(
                name,
                "changed since it was verified (checksum mismatch): nothing more restored",
            )
            .into());
        }
        if let MemberVisit::Staged(staged) = outcome {
            staged.commit()?;
        }
    }
    Ok(())
}

/// What a visitor of [`for_each_member`] did with a member.
pub enum MemberVisit {
    /// Nothing to commit (skipped, or used only after the whole pass).
    Done,
    /// A file staged beside its target, renamed into place once the
    /// member's hash has been checked.
    Staged(StagedFile),
}

/// A file written beside its target, put in place by [`StagedFile::commit`].
pub struct StagedFile {
    /// The staged file.
    pub staged: PathBuf,
    /// Where it goes.
    pub target: PathBuf,
}

impl StagedFile {
    /// Renames the staged file onto its target.
    pub fn commit(self) -> Result<(), crate::Error> {
        std::fs::rename(&self.staged, &self.target)
            .map_err(|e| crate::Error::io(&self.target, "rename into place", e))
    }

    /// Removes the staged file.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.staged);
    }
}

/// Reads the small member `member` (at most 1 MiB, e.g. [`HOST_MEMBER`]) of
/// an archive that [`verify_archive`] accepted with `manifest`, checking its
/// size and SHA-256 against the manifest once more. Reading stops at that
/// member; nothing is written anywhere.
pub fn read_verified_member<R: Read>(
    reader: R,
    manifest: &Manifest,
    member: &str,
) -> Result<Vec<u8>, BackupError> {
    let expected = manifest
        .members
        .get(member)
        .ok_or_else(|| BackupError::invalid(member, "not listed in the manifest"))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| BackupError::io("reading the archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BackupError::io("reading the archive", e))?;
        if entry_name(&entry)? != member {
            continue;
        }
        let mut hashing = HashingReader::new(&mut entry);
        let bytes = read_small(member, &mut hashing)?;
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| BackupError::io(member, e))?;
        if &hashing.finish() != expected {
            return Err(BackupError::invalid(
                member,
                "changed since it was verified (checksum mismatch)",
            ));
        }
        return Ok(bytes);
    }
    Err(BackupError::invalid(
        member,
        "listed in the manifest but missing from the archive",
    ))
}

/// Reads a small member (a secret, the host description) into memory.
pub fn read_small(name: &str, reader: &mut dyn Read) -> Result<Vec<u8>, BackupError> {
    let mut buf = Vec::new();
    reader
        .take(MAX_SMALL_MEMBER_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| BackupError::io(name, e))?;
    if buf.len() as u64 > MAX_SMALL_MEMBER_BYTES {
        return Err(BackupError::invalid(name, "larger than 1 MiB"));
    }
    Ok(buf)
}

/// What the target host holds before a restore, for [`refusals`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetState {
    /// The number of tables in the target database (outside the system schemas).
    pub database_tables: u64,
    /// Secrets present on the host whose contents differ from the archive's.
    pub differing_secrets: Vec<PathBuf>,
    /// Media files present on the host whose contents differ from the archive's.
    pub differing_media: Vec<PathBuf>,
    /// The archive's server name differs from the host description's.
    pub server_name_mismatch: Option<(String, String)>,
}

/// The reasons a restore must not proceed. Without `force`, a non-empty
/// database and any existing secret or media file that differs from the
/// archive's are refused; a different server name is refused even with
/// `force` (a server name can never change).
pub fn refusals(state: &TargetState, force: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((archive, host)) = &state.server_name_mismatch {
        out.push(format!(
            "the archive is of server {archive:?} but the host description says server_name {host:?}; a server name can never change"
        ));
    }
    if force {
        return out;
    }
    if state.database_tables > 0 {
        out.push(format!(
            "the database is not empty ({} tables): refusing to overwrite it without --force",
            state.database_tables
        ));
    }
    for path in &state.differing_secrets {
        out.push(format!(
            "{} exists with a different secret: refusing to overwrite it without --force",
            path.display()
        ));
    }
    if let Some(first) = state.differing_media.first() {
        out.push(format!(
            "{} media file(s) exist with different contents (first: {}): refusing to overwrite them without --force",
            state.differing_media.len(),
            first.display()
        ));
    }
    out
}

/// The current time as RFC 3339 in UTC (`2026-11-25T15:21:57Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// `secs` since the Unix epoch as RFC 3339 in UTC.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            ospw_matrix_version: "0.1.0".into(),
            synapse_version: Some("1.163.0".into()),
            postgresql_version: Some("15.8".into()),
            server_name: "example.org".into(),
            created: rfc3339(0),
            database: DatabaseRecord {
                name: "synapse".into(),
                user: "synapse".into(),
                dump_format: "custom".into(),
            },
            members: BTreeMap::new(),
        }
    }

    fn archive() -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new());
        w.add_bytes(HOST_MEMBER, b"server_name: example.org\n", 0o600)
            .unwrap();
        w.add_bytes(DATABASE_MEMBER, b"PGDMP fake dump data", 0o600)
            .unwrap();
        w.add_bytes("secrets/signing_key", b"ed25519 a_abcd seed", 0o600)
            .unwrap();
        w.add_bytes("media/local_content/ab/cd/ef", b"\x89PNG media", 0o600)
            .unwrap();
        w.finish(manifest()).unwrap().0
    }

    fn position_of(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    }

    #[test]
    fn round_trip_verifies_and_lists_every_member() {
        let bytes = archive();
        let m = verify_archive(bytes.as_slice()).unwrap();
        assert_eq!(m.members.len(), 4);
        assert_eq!(m.secrets(), vec![SecretKind::SigningKey]);
        assert_eq!(m.media_totals(), (1, 10));
        assert_eq!(
            m.members["secrets/signing_key"].sha256,
            sha256_hex(b"ed25519 a_abcd seed")
        );
    }

    #[test]
    fn a_flipped_byte_in_any_member_is_refused() {
        let bytes = archive();
        for needle in [
            &b"fake dump"[..],
            b"a_abcd",
            b"PNG media",
            b"server_name: ex",
        ] {
            let mut corrupted = bytes.clone();
            let at = position_of(&corrupted, needle) + 2;
            corrupted[at] ^= 0x01;
            let err = verify_archive(corrupted.as_slice()).unwrap_err();
            assert!(
                err.to_string().contains("checksum mismatch"),
                "{needle:?}: {err}"
            );
        }
    }

    #[test]
    fn a_tampered_manifest_is_refused() {
        let bytes = archive();
        let mut corrupted = bytes.clone();
        let at = position_of(&corrupted, b"\"format_version\"") + 1;
        corrupted[at] = b'X';
        let err = verify_archive(corrupted.as_slice()).unwrap_err();
        assert!(err.to_string().starts_with("manifest.json:"), "{err}");
    }

    #[test]
    fn a_truncated_archive_is_refused() {
        let bytes = archive();
        let cut = position_of(&bytes, b"\"format\"");
        let err = verify_archive(&bytes[..cut]).unwrap_err();
        assert!(!err.to_string().is_empty());
        let err = verify_archive(&bytes[..1024]).unwrap_err();
        assert!(err.to_string().contains("no manifest.json"), "{err}");
    }

    #[test]
    fn missing_extra_and_unknown_members_are_refused() {
        let mut expected = BTreeMap::new();
        let rec = MemberRecord {
            size: 1,
            sha256: sha256_hex(b"x"),
        };
        expected.insert("media/a".to_owned(), rec.clone());
        let found = BTreeMap::new();
        assert!(compare_members(&expected, &found)
            .unwrap_err()
            .to_string()
            .contains("missing"));
        let mut extra = expected.clone();
        extra.insert("media/b".to_owned(), rec);
        assert!(compare_members(&expected, &extra)
            .unwrap_err()
            .to_string()
            .contains("not listed"));
        for bad in [
            "media/../etc/passwd",
            "/etc/passwd",
            "secrets/other",
            "media/",
            "x",
        ] {
            assert!(classify_member(bad).is_err(), "{bad}");
        }
        assert!(classify_member("state/other.json").is_err());
        assert_eq!(
            classify_member(ADMIN_STATE_MEMBER).unwrap(),
            MemberKind::AdminState
        );
        assert_eq!(
            classify_member("media/local_content/a").unwrap(),
            MemberKind::Media(PathBuf::from("local_content/a"))
        );
    }

    #[test]
    fn manifest_checks_version_and_required_members() {
        let mut m = manifest();
        assert!(m.check().unwrap_err().to_string().contains("no host/"));
        let rec = MemberRecord {
            size: 0,
            sha256: sha256_hex(b""),
        };
        m.members.insert(HOST_MEMBER.into(), rec.clone());
        m.members.insert(DATABASE_MEMBER.into(), rec.clone());
        m.check().unwrap();
        m.format_version = 2;
        assert!(m.check().unwrap_err().to_string().contains("not supported"));
        m.format_version = FORMAT_VERSION;
        m.members.get_mut(HOST_MEMBER).unwrap().sha256 = "ABC".into();
        assert!(m.check().unwrap_err().to_string().contains("sha256"));
    }

    #[test]
    fn writer_refuses_bad_and_duplicate_names() {
        let mut w = ArchiveWriter::new(Vec::new());
        assert!(w.add_bytes("../x", b"", 0o600).is_err());
        assert!(w.add_bytes(MANIFEST_NAME, b"", 0o600).is_err());
        w.add_bytes(HOST_MEMBER, b"a", 0o600).unwrap();
        assert!(w.add_bytes(HOST_MEMBER, b"a", 0o600).is_err());
    }

    #[test]
    fn second_pass_rechecks_hashes_and_discards_staged_files() {
        let bytes = archive();
        let m = verify_archive(bytes.as_slice()).unwrap();
        let mut names = Vec::new();
        for_each_member(bytes.as_slice(), &m, |name, _, r| {
            names.push(name.to_owned());
            let _ = read_small(name, r)?;
            Ok(MemberVisit::Done)
        })
        .unwrap();
        assert_eq!(names.len(), 4);
        // The same archive with a different manifest: the pass fails.
        let mut other = m.clone();
        other.members.get_mut(DATABASE_MEMBER).unwrap().sha256 = sha256_hex(b"other");
        let err =
            for_each_member(bytes.as_slice(), &other, |_, _, _| Ok(MemberVisit::Done)).unwrap_err();
        assert!(err.to_string().contains("changed since"), "{err}");
    }

    #[test]
    fn reading_one_verified_member() {
        let bytes = archive();
        let m = verify_archive(bytes.as_slice()).unwrap();
        assert_eq!(
            read_verified_member(bytes.as_slice(), &m, HOST_MEMBER).unwrap(),
            b"server_name: example.org\n"
        );
        let mut other = m.clone();
        other.members.get_mut(HOST_MEMBER).unwrap().sha256 = sha256_hex(b"other");
        let err = read_verified_member(bytes.as_slice(), &other, HOST_MEMBER).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let err = read_verified_member(bytes.as_slice(), &m, "secrets/form_secret").unwrap_err();
        assert!(err.to_string().contains("not listed"), "{err}");
    }

    #[test]
    fn refusal_rules() {
        assert!(refusals(&TargetState::default(), false).is_empty());
        let state = TargetState {
            database_tables: 3,
            differing_secrets: vec![PathBuf::from("/s/signing_key")],
            differing_media: vec![PathBuf::from("/m/a")],
            server_name_mismatch: None,
        };
        let r = refusals(&state, false);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r[0].contains("3 tables"));
        assert!(r[1].contains("/s/signing_key"));
        assert!(refusals(&state, true).is_empty());
        let renamed = TargetState {
            server_name_mismatch: Some(("a.org".into(), "b.org".into())),
            ..TargetState::default()
        };
        assert_eq!(refusals(&renamed, true).len(), 1);
    }

    #[test]
    fn hashing_a_file() {
        let path = std::env::temp_dir().join(format!("ospw-hash-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let r = hash_file(&path).unwrap().unwrap();
        assert_eq!(r.size, 3);
        assert_eq!(
            r.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(hash_file(&path).unwrap(), None);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_620_117), "2026-11-25T15:21:57Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
