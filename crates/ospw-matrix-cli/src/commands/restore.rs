//! `restore`: puts a backup archive onto a fresh host.
//!
//! Expected state: PostgreSQL running with the configured database created
//! (empty) and owned by the configured role; **Synapse stopped** (the restore
//! refuses to run while Synapse answers on its listener). The archive is
//! verified completely (manifest, every checksum) before anything is changed.
//! Without `--config`, the host description is the archive's own
//! (`host/host-description`), read only once the archive is verified and
//! validated like a `--config` file; `--host-out` writes the archive's host
//! description to a new file (0644, never overwritten) to render from. A
//! non-empty database and existing secrets or media files that differ from
//! the archive's are refused without `--force`. Then secrets (0600 in a 0700
//! directory), media and the database (`pg_restore --no-owner
//! --role=<db user>` in one transaction) are restored, and what was done is
//! reported.

use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ospw_matrix::backup::{
    for_each_member, read_verified_member, refusals, sha256_hex, verify_archive, Manifest,
    MemberKind, MemberVisit, TargetState, HOST_MEMBER,
};
use ospw_matrix::{Error, HostDescription};

use super::backup::{load_valid_host, parse_valid_host, stage_beside, Pg, PgArgs, WorkDir};

/// Arguments of `restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The archive written by `ospw-matrix backup`.
    pub archive: PathBuf,
    /// The host description of the host to restore onto. Default: the one in
    /// the archive (the host the backup was made on), read once the whole
    /// archive is verified and validated like a --config file.
    #[arg(long, short, env = "OSPW_MATRIX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also write the archive's host description to this new file (mode
    /// 0644; an existing file is never overwritten), to render from.
    #[arg(long, value_name = "FILE")]
    pub host_out: Option<PathBuf>,
    /// Overwrite a non-empty database (the archive's objects are dropped and
    /// recreated), and existing secrets and media files that differ.
    #[arg(long)]
    pub force: bool,
    /// Where the database dump is unpacked during the restore (default: the
    /// system's temporary directory).
    #[arg(long, env = "OSPW_MATRIX_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Where the CLI keeps its admin service account; the archive's state
    /// file is restored there. Default: secrets.dir.
    #[arg(long, env = "OSPW_MATRIX_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub pg: PgArgs,
}

/// The SHA-256 of the file at `path`, or `None` when it does not exist.
fn file_sha256(path: &Path) -> Result<Option<String>, Error> {
    Ok(ospw_matrix::backup::hash_file(path)?.map(|r| r.sha256))
}

/// Creates `dir` and its missing parents with `mode`, each owned like the
/// nearest existing ancestor (so that, run as root, restored media stay
/// Synapse's).
fn create_dirs(dir: &Path, mode: u32) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    let owner = fs::metadata(cur).map(|m| (m.uid(), m.gid())).ok();
    for d in missing.iter().rev() {
        fs::DirBuilder::new()
            .mode(mode)
            .create(d)
            .map_err(|e| Error::io(d, "create directory", e))?;
        if let Some((uid, gid)) = owner {
            let _ = std::os::unix::fs::chown(d, Some(uid), Some(gid));
        }
    }
    Ok(())
}

/// Gives `path` the owner of `like` (best effort: only root can).
fn own_like(path: &Path, like: &Path) {
    if let Ok(m) = fs::metadata(like) {
        let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
    }
}

fn open_archive(path: &Path) -> Result<BufReader<fs::File>, Error> {
    fs::File::open(path)
        .map(BufReader::new)
        .map_err(|e| Error::io(path, "open", e))
}

/// Refuses a `--host-out` path that exists (it is never overwritten).
fn refuse_existing_host_out(path: &Path) -> Result<(), Error> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Error::Other(format!(
            "refused: --host-out {} exists: it is never overwritten\nnothing was changed",
            path.display()
        )));
    }
    Ok(())
}

/// Writes the archive's host description to the new file `path` (created
/// exclusively, 0644), removing it again when writing fails.
fn write_host_out(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Other(format!(
                    "refused: --host-out {} exists: it is never overwritten\nnothing was changed",
                    path.display()
                ))
            } else {
                Error::io(path, "create", e)
            }
        })?;
    let result = fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(path, "set permissions of", e))
        .and_then(|()| {
            file.write_all(bytes)
                .map_err(|e| Error::io(path, "write", e))
        })
        .and_then(|()| file.sync_all().map_err(|e| Error::io(path, "sync", e)));
    if let Err(e) = result {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// What the target holds, compared with the archive.
fn target_state(
    host: &HostDescription,
    manifest: &Manifest,
    pg: &Pg,
    state_file: &Path,
) -> Result<TargetState, Error> {
    let database_tables = pg.table_count().map_err(|e| {
        Error::Other(format!(
            "{e}\nrestore needs PostgreSQL running with the database created (empty) and owned by role {:?}",
            host.synapse.database.user
        ))
    })?;
    let mut state = TargetState {
        database_tables,
        ..TargetState::default()
    };
    if manifest.server_name != host.server_name {
        state.server_name_mismatch = Some((manifest.server_name.clone(), host.server_name.clone()));
    }
    let media = host.synapse.media_store_path();
    for (name, record) in &manifest.members {
        let target = match ospw_matrix::backup::classify_member(name)? {
            MemberKind::Secret(kind) => host.secrets.path(kind),
            MemberKind::AdminState => state_file.to_path_buf(),
            MemberKind::Media(rel) => media.join(rel),
            _ => continue,
        };
        if let Some(existing) = file_sha256(&target)? {
            if existing != record.sha256 {
                if !name.starts_with(ospw_matrix::backup::MEDIA_PREFIX) {
                    state.differing_secrets.push(target);
                } else {
                    state.differing_media.push(target);
                }
            }
        }
    }
    Ok(state)
}

/// Restores the archive onto the host.
pub fn restore(args: RestoreArgs) -> Result<(), Error> {
    if let Some(out) = &args.host_out {
        refuse_existing_host_out(out)?;
    }
    let configured = match &args.config {
        Some(config) => {
            let (host, host_bytes) = load_valid_host(config)?;
            let pg = Pg::new(&args.pg, &host.synapse.database)?;
            Some((host, host_bytes, pg))
        }
        None => None,
    };

    // 1. Verify everything before touching anything.
    let manifest = verify_archive(open_archive(&args.archive)?).map_err(|e| {
        Error::Other(format!(
            "refused: {} is not a valid backup: {e}\nnothing was changed",
            args.archive.display()
        ))
    })?;
    println!(
        "{}: verified {} members (format {}, made {} by ospw-matrix {}, Synapse {}, PostgreSQL {}) of server {}",
        args.archive.display(),
        manifest.members.len(),
        manifest.format_version,
        manifest.created,
        manifest.ospw_matrix_version,
        manifest.synapse_version.as_deref().unwrap_or("unknown"),
        manifest.postgresql_version.as_deref().unwrap_or("unknown"),
        manifest.server_name
    );

    // The archive's host description, only now that the archive is verified
    // (its checksum is checked once more while it is read).
    let archive_host = if args.config.is_none() || args.host_out.is_some() {
        let bytes = read_verified_member(open_archive(&args.archive)?, &manifest, HOST_MEMBER)
            .map_err(|e| {
                Error::Other(format!(
                    "refused: {} is not a valid backup: {e}\nnothing was changed",
                    args.archive.display()
                ))
            })?;
        Some(bytes)
    } else {
        None
    };
    let (host, host_bytes, pg) = match (configured, &archive_host) {
        (Some(configured), _) => configured,
        (None, Some(bytes)) => {
            let source = format!("{}:{HOST_MEMBER}", args.archive.display());
            let host = parse_valid_host(bytes, &source).map_err(|e| {
                Error::Other(format!(
                    "refused: the host description in the archive ({source}) is not valid; pass --config HOST:\n{e}\nnothing was changed"
                ))
            })?;
            println!(
                "using the host description in the archive ({source}, server {}); --config HOST restores onto another",
                host.server_name
            );
            let pg = Pg::new(&args.pg, &host.synapse.database)?;
            (host, bytes.clone(), pg)
        }
        (None, None) => {
            return Err(Error::Other(
                "internal error: no host description to restore onto".into(),
            ))
        }
    };

    // 2. The refusal rules.
    if crate::admin_api::listener_answers(&host) {
        return Err(Error::Other(format!(
            "refused: Synapse is answering on {}: stop it first (on NixOS: systemctl stop ospw-matrix-synapse)\nnothing was changed",
            crate::admin_api::listener_description(&host)
        )));
    }
    let state_file = args
        .state_dir
        .clone()
        .unwrap_or_else(|| host.secrets.dir.clone())
        .join(crate::admin_api::STATE_FILE);
    let state = target_state(&host, &manifest, &pg, &state_file)?;
    let refused = refusals(&state, args.force);
    if !refused.is_empty() {
        return Err(Error::Other(format!(
            "refused:\n  {}\nnothing was changed",
            refused.join("\n  ")
        )));
    }
    if let (Some(out), Some(bytes)) = (&args.host_out, &archive_host) {
        write_host_out(out, bytes)?;
        println!(
            "wrote the archive's host description to {} (0644): render from it with ospw-matrix render --config {} --out DIR",
            out.display(),
            out.display()
        );
    }

    // 3. Secrets and media, each put in place once its hash is checked; the
    //    dump unpacked into a private work directory.
    let work_base = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::beside(&work_base.join("ospw-matrix-restore"), "work")?;
    let dump_path = work.0.join("synapse.pgdump");
    let media_root = host.synapse.media_store_path();
    let mut secrets_written = Vec::new();
    let mut secrets_same = Vec::new();
    let (mut media_written, mut media_same) = (0usize, 0usize);
    let mut host_same = true;
    for_each_member(
        open_archive(&args.archive)?,
        &manifest,
        |name, kind, reader| {
            let record = &manifest.members[name];
            match kind {
                MemberKind::HostDescription => {
                    host_same = sha256_hex(&host_bytes) == record.sha256;
                    Ok(MemberVisit::Done)
                }
                MemberKind::Database => {
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&dump_path)
                        .map_err(|e| Error::io(&dump_path, "create", e))?;
                    std::io::copy(reader, &mut file)
                        .map_err(|e| Error::io(&dump_path, "write", e))?;
                    Ok(MemberVisit::Done)
                }
                MemberKind::Secret(_) | MemberKind::AdminState => {
                    let target = match kind {
                        MemberKind::Secret(kind) => host.secrets.path(*kind),
                        _ => state_file.clone(),
                    };
                    if file_sha256(&target)?.as_deref() == Some(record.sha256.as_str()) {
                        secrets_same.push(target);
                        return Ok(MemberVisit::Done);
                    }
                    let parent = target.parent().unwrap_or(Path::new("/"));
                    create_dirs(parent, 0o700)?;
                    let staged = stage_beside(&target, reader, 0o600)?;
                    own_like(&staged.staged, parent);
                    secrets_written.push(target);
                    Ok(MemberVisit::Staged(staged))
                }
                MemberKind::Media(rel) => {
                    let target = media_root.join(rel);
                    if file_sha256(&target)?.as_deref() == Some(record.sha256.as_str()) {
                        media_same += 1;
                        return Ok(MemberVisit::Done);
                    }
                    let parent = target.parent().unwrap_or(&media_root);
                    create_dirs(parent, 0o750)?;
                    let staged = stage_beside(&target, reader, 0o640)?;
                    own_like(&staged.staged, parent);
                    media_written += 1;
                    Ok(MemberVisit::Staged(staged))
                }
                MemberKind::Manifest => Ok(MemberVisit::Done),
            }
        },
    )?;
    for path in &secrets_written {
        println!("restored secret {} (0600)", path.display());
    }
    for path in &secrets_same {
        println!("kept secret {} (identical)", path.display());
    }
    println!(
        "restored {media_written} media files into {} ({media_same} already there, identical)",
        media_root.display()
    );

    // 4. The database, in one transaction.
    let dump = fs::File::open(&dump_path).map_err(|e| Error::io(&dump_path, "open", e))?;
    let clean = args.force && state.database_tables > 0;
    pg.restore_custom(dump, clean)?;
    let tables = pg.table_count()?;
    println!(
        "restored database {:?} ({tables} tables, objects owned by role {:?}{})",
        host.synapse.database.name,
        host.synapse.database.user,
        if clean {
            "; the previous contents were replaced (--force)"
        } else {
            ""
        }
    );
    if let (false, Some(config)) = (host_same, &args.config) {
        println!(
            "note: {} differs from the host description in the archive (kept as it is)",
            config.display()
        );
    }
    println!(
        "done: start Synapse again (on NixOS: systemctl start ospw-matrix-synapse); server {} keeps its signing key",
        manifest.server_name
    );
    Ok(())
}
