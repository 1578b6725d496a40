//! `restore`: puts a backup archive onto a fresh host.
//!
//! Expected state: PostgreSQL running with the configured database created
//! (empty) and owned by the configured role; **Synapse stopped** (the restore
//! refuses to run while Synapse answers on its listener). The archive is
//! verified completely (manifest, every checksum) before anything is changed;
//! a non-empty database and existing secrets or media files that differ from
//! the archive's are refused without `--force`. Then secrets (0600 in a 0700
//! directory), media and the database (`pg_restore --no-owner
//! --role=<db user>` in one transaction) are restored, and what was done is
//! reported.

use std::fs;
use std::io::BufReader;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use ospw_matrix::backup::{
    for_each_member, refusals, sha256_hex, verify_archive, Manifest, MemberKind, MemberVisit,
    TargetState,
};
use ospw_matrix::{Error, HostDescription};

use super::backup::{load_valid_host, stage_beside, Pg, PgArgs, WorkDir};

/// Arguments of `restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The archive written by `ospw-matrix backup`.
    pub archive: PathBuf,
    /// The host description of the host to restore onto.
    #[arg(long, short, env = "OSPW_MATRIX_CONFIG")]
    pub config: PathBuf,
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
    let (host, host_bytes) = load_valid_host(&args.config)?;
    let pg = Pg::new(&args.pg, &host.synapse.database)?;

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
    if !host_same {
        println!(
            "note: {} differs from the host description in the archive (kept as it is)",
            args.config.display()
        );
    }
    println!(
        "done: start Synapse again (on NixOS: systemctl start ospw-matrix-synapse); server {} keeps its signing key",
        manifest.server_name
    );
    Ok(())
}
