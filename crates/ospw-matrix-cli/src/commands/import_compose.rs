//! `import-compose`: migration from the old Docker Compose setup. Reads the
//! old layout, writes a host description and a secrets directory that keep
//! the server name and the signing key, lists every setting it could not
//! carry over, and optionally copies the media store and loads the dump.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ospw_matrix::compose_import::{
    dump_format, plan_import, read_layout, write_secrets, DumpFormat, NoteKind, SecretWrite,
};
use ospw_matrix::{Error, HostDescription};

use super::backup::{load_valid_host, walk_files, Pg, PgArgs, WorkDir};

/// Arguments of `import-compose`.
#[derive(clap::Args)]
pub struct ImportComposeArgs {
    /// The Compose directory (with synapse/homeserver.yaml, the signing key,
    /// synapse/media_store, .env and a pg_dump of the old database).
    pub dir: PathBuf,
    /// Where to write the new host description (must not exist).
    #[arg(long, value_name = "HOST.yaml")]
    pub out_config: PathBuf,
    /// The new secrets directory (created 0700; existing secrets are never
    /// overwritten).
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: PathBuf,
    /// Start from this host description (paths, listener, database
    /// connection, ports, proxy) instead of the defaults; the names, secrets
    /// and old settings replace its values.
    #[arg(long, value_name = "HOST")]
    pub base: Option<PathBuf>,
    /// The database dump (default: the one *.sql / *.dump / *.pgdump file in
    /// the Compose directory or its postgres/, backup/, backups/ or db/).
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Load the dump into the new host's (empty) database.
    #[arg(long)]
    pub restore_dump: bool,
    /// Copy the old media store into the new host's media store.
    #[arg(long)]
    pub copy_media: bool,
    #[command(flatten)]
    pub pg: PgArgs,
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io(".", "read the current directory", e))?;
    Ok(cwd.join(path))
}

/// `ALTER … OWNER TO …`, `GRANT` and `REVOKE` lines of a plain dump name the
/// old roles; they are left out (as `pg_restore --no-owner --no-privileges`
/// does for custom dumps).
pub(crate) fn is_owner_or_privilege_line(line: &str) -> bool {
    let t = line.trim_start();
    (t.starts_with("ALTER ") && t.contains(" OWNER TO "))
        || t.starts_with("GRANT ")
        || t.starts_with("REVOKE ")
        || (t.starts_with("ALTER DEFAULT PRIVILEGES"))
}

/// Copies `src` (the old media store) into `dst`, never overwriting a file
/// with other contents. Everything is checked before anything is copied.
fn copy_media(src: &Path, dst: &Path) -> Result<(usize, usize), Error> {
    let (files, skipped) = walk_files(src)?;
    for s in skipped {
        eprintln!(
            "warning: {} is not a regular file: not copied",
            src.join(s).display()
        );
    }
    let mut todo = Vec::new();
    let mut same = 0;
    for rel in &files {
        let target = dst.join(rel);
        let old = ospw_matrix::backup::hash_file(&src.join(rel))?;
        match ospw_matrix::backup::hash_file(&target)? {
            None => todo.push(rel),
            Some(existing) if Some(&existing) == old.as_ref() => same += 1,
            Some(_) => {
                return Err(Error::Other(format!(
                    "{} exists with other contents: refusing to overwrite it (nothing was copied)",
                    target.display()
                )))
            }
        }
    }
    for rel in &todo {
        let target = dst.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create directory", e))?;
        }
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".import-{}", std::process::id()));
        let tmp = target.with_file_name(name);
        fs::copy(src.join(rel), &tmp).map_err(|e| Error::io(&tmp, "copy to", e))?;
        fs::rename(&tmp, &target).map_err(|e| Error::io(&target, "rename into place", e))?;
    }
    Ok((todo.len(), same))
}

/// Loads the dump into the host's database (which must be empty).
fn load_dump(
    host: &HostDescription,
    pg: &Pg,
    dump: &Path,
    work_beside: &Path,
) -> Result<(), Error> {
    match dump_format(dump)? {
        DumpFormat::Custom => {
            let f = fs::File::open(dump).map_err(|e| Error::io(dump, "open", e))?;
            pg.restore_custom(f, false)
        }
        DumpFormat::PlainSql => {
            let work = WorkDir::beside(work_beside, "import")?;
            let filtered = work.0.join("dump.sql");
            let input = fs::File::open(dump).map_err(|e| Error::io(dump, "open", e))?;
            let out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&filtered)
                .map_err(|e| Error::io(&filtered, "create", e))?;
            let mut out = BufWriter::new(out);
            let mut dropped = 0usize;
            // A plain dump's COPY data may hold any text: only statement
            // lines outside COPY blocks are filtered.
            let mut in_copy = false;
            for line in BufReader::new(input).split(b'\n') {
                let line = line.map_err(|e| Error::io(dump, "read", e))?;
                let text = String::from_utf8_lossy(&line);
                if in_copy {
                    if text == "\\." {
                        in_copy = false;
                    }
                } else if text.starts_with("COPY ") && text.trim_end().ends_with("FROM stdin;") {
                    in_copy = true;
                } else if is_owner_or_privilege_line(&text) {
                    dropped += 1;
                    continue;
                }
                out.write_all(&line)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| Error::io(&filtered, "write", e))?;
            }
            let out = out
                .into_inner()
                .map_err(|e| Error::io(&filtered, "write", e.into_error()))?;
            drop(out);
            if dropped > 0 {
                eprintln!("left out {dropped} ownership/privilege statements naming the old roles (objects belong to {:?})", host.synapse.database.user);
            }
            let f = fs::File::open(&filtered).map_err(|e| Error::io(&filtered, "open", e))?;
            pg.load_sql(f)
        }
    }
}

/// Runs the import.
pub fn import_compose(args: ImportComposeArgs) -> Result<(), Error> {
    let dir = absolute(&args.dir)?;
    let secrets_dir = absolute(&args.secrets_dir)?;
    let out_config = absolute(&args.out_config)?;
    let base = match &args.base {
        Some(path) => Some(load_valid_host(path)?.0),
        None => None,
    };
    let layout = read_layout(&dir, args.dump.as_deref())?;
    let plan = plan_import(&layout, &secrets_dir, base.as_ref())?;
    let host = &plan.host;

    // Check everything first.
    let yaml = plan.host_yaml()?;
    let config_present = match fs::read(&out_config) {
        Ok(existing) if existing == yaml.as_bytes() => true,
        Ok(_) => {
            return Err(Error::Other(format!(
            "{} exists with other contents: refusing to overwrite it (choose another --out-config)",
            out_config.display()
        )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(&out_config, "read", e)),
    };
    let pg = if args.restore_dump {
        let dump = layout.dump.as_ref().ok_or_else(|| {
            Error::Other(format!(
                "--restore-dump: no database dump found in {}: give --dump FILE",
                dir.display()
            ))
        })?;
        dump_format(dump)?;
        let pg = Pg::new(&args.pg, &host.synapse.database)?;
        let tables = pg.table_count()?;
        if tables > 0 {
            return Err(Error::Other(format!(
                "--restore-dump: database {:?} is not empty ({tables} tables): refusing to load the dump into it (nothing was written)",
                host.synapse.database.name
            )));
        }
        Some(pg)
    } else {
        None
    };
    if args.copy_media && layout.media_store.is_none() {
        return Err(Error::Other(format!(
            "--copy-media: {} has no media store (synapse/media_store)",
            dir.display()
        )));
    }

    // The secrets (create-only), then the host description.
    let written = write_secrets(&plan, &secrets_dir)?;
    if !config_present {
        ospw_matrix::fsutil::create_file_exclusively(&out_config, yaml.as_bytes(), 0o640)?;
    }

    println!(
        "imported {} (server name {})",
        dir.display(),
        host.server_name
    );
    println!("  host description: {}", out_config.display());
    for (kind, what) in &written {
        let what = match what {
            SecretWrite::Written => "written",
            SecretWrite::AlreadyPresent => "already present, identical",
        };
        println!(
            "  secret {}: {what}",
            secrets_dir.join(kind.file_name()).display()
        );
    }
    for kind in [
        NoteKind::PrivacyRefused,
        NoteKind::NotCarried,
        NoteKind::Replaced,
    ] {
        let notes: Vec<_> = plan.notes_of(kind).collect();
        if notes.is_empty() {
            continue;
        }
        println!("{}:", match kind {
            NoteKind::PrivacyRefused => "deliberately NOT carried over (they break the privacy invariants)",
            NoteKind::NotCarried => "NOT carried over (no place in the host description; review them; also written at the top of the host description)",
            _ => "replaced by ospw-matrix's own settings",
        });
        for n in notes {
            println!("  - {n}");
        }
    }

    if args.copy_media {
        if let Some(src) = &layout.media_store {
            let dst = host.synapse.media_store_path();
            let (copied, same) = copy_media(src, &dst)?;
            println!(
                "copied {copied} media files into {} ({same} already there)",
                dst.display()
            );
        }
    }
    match (&pg, &layout.dump) {
        (Some(pg), Some(dump)) => {
            load_dump(host, pg, dump, &out_config)?;
            println!(
                "loaded {} into database {:?} ({} tables)",
                dump.display(),
                host.synapse.database.name,
                pg.table_count()?
            );
        }
        (None, Some(dump)) => {
            let how = match dump_format(dump) {
                Ok(DumpFormat::Custom) => "pg_restore --no-owner --no-privileges --single-transaction",
                _ => "psql --single-transaction -v ON_ERROR_STOP=1 -f (ownership lines removed)",
            };
            println!(
                "the database dump {} is not loaded yet: run this command again with --restore-dump \
                 against the new host's empty database (it uses {how}), or load it yourself",
                dump.display()
            );
        }
        _ => println!(
            "no database dump found: take one in the old setup (docker compose exec db pg_dump -U <user> <db> > synapse.sql) and give it with --dump"
        ),
    }
    if !args.copy_media {
        if let Some(src) = &layout.media_store {
            println!(
                "media: copy {} into {} (or run again with --copy-media)",
                src.display(),
                host.synapse.media_store_path().display()
            );
        }
    }
    println!("next: `ospw-matrix secrets init --dir {}` (creates only the missing secrets), render, start", secrets_dir.display());
    Ok(())
}
