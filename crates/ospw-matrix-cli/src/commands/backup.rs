//! `backup`: one archive with a consistent PostgreSQL dump, the secrets, the
//! media store and the host description, described by a manifest with the
//! SHA-256 of every member. Also the PostgreSQL helpers `restore` and
//! `import-compose` share.

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ospw_matrix::backup::{
    ArchiveWriter, DatabaseRecord, Manifest, ADMIN_STATE_MEMBER, DATABASE_MEMBER, FORMAT,
    FORMAT_VERSION, HOST_MEMBER, MEDIA_PREFIX, SECRETS_PREFIX,
};
use ospw_matrix::host::{DatabaseSettings, SecretKind};
use ospw_matrix::{Error, HostDescription};

/// How to reach PostgreSQL's client programs and as whom to run them.
#[derive(clap::Args, Clone, Debug)]
pub struct PgArgs {
    /// The directory holding pg_dump, pg_restore and psql (default: PATH).
    #[arg(long, env = "OSPW_MATRIX_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Run the PostgreSQL programs as this system user (peer authentication
    /// maps it to the database role of the same name), e.g. `synapse` when
    /// the command runs as root. Default: the current user.
    #[arg(long, env = "OSPW_MATRIX_DB_OS_USER")]
    pub db_os_user: Option<String>,
}

/// Arguments of `backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The host description the server was rendered from.
    #[arg(long, short, env = "OSPW_MATRIX_CONFIG")]
    pub config: PathBuf,
    /// The archive to write (atomically, mode 0600: it holds secrets).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Where the CLI keeps its admin service account (see `user list`);
    /// its state file goes into the archive too. Default: secrets.dir.
    #[arg(long, env = "OSPW_MATRIX_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub pg: PgArgs,
}

/// A system user's ids, from `getent passwd`.
fn lookup_user(name: &str) -> Result<(u32, u32), Error> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .map_err(|e| Error::Other(format!("--db-os-user {name}: cannot run getent: {e}")))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    match (out.status.success(), fields.get(2), fields.get(3)) {
        (true, Some(uid), Some(gid)) => match (uid.parse(), gid.parse()) {
            (Ok(uid), Ok(gid)) => Ok((uid, gid)),
            _ => Err(Error::Other(format!(
                "--db-os-user {name}: unexpected passwd entry"
            ))),
        },
        _ => Err(Error::Other(format!(
            "--db-os-user {name}: no such system user"
        ))),
    }
}

/// PostgreSQL's client programs, connected to the host's database.
pub(crate) struct Pg {
    bin_dir: Option<PathBuf>,
    os_user: Option<(String, u32, u32)>,
    /// The database settings of the host description.
    pub db: DatabaseSettings,
}

impl Pg {
    /// Connects to `db` as `args` say.
    pub fn new(args: &PgArgs, db: &DatabaseSettings) -> Result<Self, Error> {
        let os_user = match &args.db_os_user {
            Some(name) => {
                let (uid, gid) = lookup_user(name)?;
                Some((name.clone(), uid, gid))
            }
            None => None,
        };
        Ok(Self {
            bin_dir: args.pg_bin_dir.clone(),
            os_user,
            db: db.clone(),
        })
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// A command for `program` with the connection options set.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.program(program));
        cmd.arg("--no-password").arg("--host");
        // PostgreSQL on its own host: its address, the password file and
        // TLS mode Synapse uses (libpq's environment).
        match &self.db.remote {
            Some(r) => {
                cmd.arg(&r.address)
                    .env("PGPASSFILE", &r.password_file)
                    .env("PGSSLMODE", self.db.sslmode().unwrap_or("verify-full"));
                if let Some(ca) = &r.ca_file {
                    cmd.env("PGSSLROOTCERT", ca);
                }
            }
            None => {
                cmd.arg(&self.db.socket_dir);
            }
        }
        cmd.arg("--port")
            .arg(self.db.port.to_string())
            .arg("--username")
            .arg(&self.db.user)
            .arg("--dbname")
            .arg(&self.db.name)
            .current_dir("/")
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS");
        if let Some((_, uid, gid)) = &self.os_user {
            cmd.uid(*uid).gid(*gid);
        }
        cmd
    }

    fn where_(&self) -> String {
        format!(
            "database {:?} as role {:?} over {}{}",
            self.db.name,
            self.db.user,
            match &self.db.remote {
                Some(r) => format!("TCP to {}:{}", r.address, self.db.port),
                None => format!("{}/.s.PGSQL.{}", self.db.socket_dir.display(), self.db.port),
            },
            self.os_user
                .as_ref()
                .map(|(n, _, _)| format!(" (running as system user {n})"))
                .unwrap_or_default()
        )
    }

    /// Runs `cmd`, returning its standard output; a failure names the
    /// program, the connection and PostgreSQL's message.
    pub fn run(&self, what: &str, mut cmd: Command) -> Result<Vec<u8>, Error> {
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
            Error::Other(format!(
                "cannot run {what}: {e} (install PostgreSQL's client programs or pass --pg-bin-dir)"
            ))
        })?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "{what} failed on {}: {}{}",
                self.where_(),
                String::from_utf8_lossy(&out.stderr).trim(),
                self.hint(&out.stderr)
            )));
        }
        Ok(out.stdout)
    }

    /// Advice for PostgreSQL's common refusals.
    fn hint(&self, stderr: &[u8]) -> String {
        let text = String::from_utf8_lossy(stderr);
        if text.contains("Peer authentication failed") {
            format!(
                "\nhint: with peer authentication the system user must be the role: run this as {:?} or pass --db-os-user {:?}",
                self.db.user, self.db.user
            )
        } else if text.contains("No such file or directory") && text.contains(".s.PGSQL.") {
            "\nhint: is PostgreSQL running, and are synapse.database.socket_dir and port right?"
                .into()
        } else {
            String::new()
        }
    }

    /// Runs one SQL query with psql, returning its unaligned output.
    pub fn query(&self, sql: &str) -> Result<String, Error> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = self.run("psql", cmd)?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// PostgreSQL's server version.
    pub fn server_version(&self) -> Result<String, Error> {
        self.query("SHOW server_version")
    }

    /// The number of tables outside the system schemas.
    pub fn table_count(&self) -> Result<u64, Error> {
        let text = self.query(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )?;
        text.parse()
            .map_err(|_| Error::Other(format!("psql answered {text:?} for a table count")))
    }

    /// `pg_dump --format=custom` into `file`.
    pub fn dump_to(&self, file: fs::File) -> Result<(), Error> {
        let mut cmd = self.command("pg_dump");
        cmd.arg("--format=custom").stdout(Stdio::from(file));
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|c| c.wait_with_output())
            .map_err(|e| {
                Error::Other(format!(
                    "cannot run pg_dump: {e} (install PostgreSQL's client programs or pass --pg-bin-dir)"
                ))
            })?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "pg_dump failed on {}: {}{}",
                self.where_(),
                String::from_utf8_lossy(&out.stderr).trim(),
                self.hint(&out.stderr)
            )));
        }
        Ok(())
    }

    /// `pg_restore` of a custom-format dump read from `file`, in one
    /// transaction (a failure leaves the database as it was), objects owned
    /// by the configured role. `clean` drops the dump's objects first.
    pub fn restore_custom(&self, file: fs::File, clean: bool) -> Result<(), Error> {
        let mut cmd = self.command("pg_restore");
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
        ])
        .arg(format!("--role={}", self.db.user));
        if clean {
            cmd.args(["--clean", "--if-exists"]);
        }
        self.feed("pg_restore", cmd, file)
    }

    /// Loads a plain SQL dump with psql in one transaction, stopping at the
    /// first error.
    pub fn load_sql(&self, file: fs::File) -> Result<(), Error> {
        let mut cmd = self.command("psql");
        cmd.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
            "-",
        ]);
        self.feed("psql", cmd, file)
    }

    fn feed(&self, what: &str, mut cmd: Command, file: fs::File) -> Result<(), Error> {
        let out = cmd
            .stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|c| c.wait_with_output())
            .map_err(|e| {
                Error::Other(format!(
                    "cannot run {what}: {e} (install PostgreSQL's client programs or pass --pg-bin-dir)"
                ))
            })?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "{what} failed on {} (in one transaction: the database is unchanged): {}",
                self.where_(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// Loads and validates the host description at `config`, returning it and
/// the file's bytes.
pub(crate) fn load_valid_host(config: &Path) -> Result<(HostDescription, Vec<u8>), Error> {
    let bytes = fs::read(config).map_err(|e| Error::io(config, "read", e))?;
    let host = parse_valid_host(&bytes, &config.display().to_string())?;
    Ok((host, bytes))
}

/// Parses and validates a host description's bytes as [`load_valid_host`]
/// does a file's; `source_name` names them in errors.
pub(crate) fn parse_valid_host(bytes: &[u8], source_name: &str) -> Result<HostDescription, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::Parse {
        source_name: source_name.to_owned(),
        path: ".".into(),
        message: "not UTF-8".into(),
    })?;
    let host = ospw_matrix::parse_host(text, source_name)?;
    ospw_matrix::validate(&host)?;
    Ok(host)
}

/// A private working directory (0700) removed when dropped.
pub(crate) struct WorkDir(pub PathBuf);

impl WorkDir {
    /// Creates `<beside>.<tag>-<pid>`.
    pub fn beside(path: &Path, tag: &str) -> Result<Self, Error> {
        let mut name = path
            .file_name()
            .ok_or_else(|| Error::Other(format!("{} has no file name", path.display())))?
            .to_os_string();
        name.push(format!(".{tag}-{}", std::process::id()));
        let dir = path.with_file_name(name);
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, "create directory", e))?;
        Ok(Self(dir))
    }
}

use std::os::unix::fs::DirBuilderExt;

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every regular file under `root`, relative, sorted. Other entries
/// (symbolic links, sockets) are returned separately.
pub(crate) fn walk_files(root: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Error> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, "read directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, "read directory", e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io(entry.path(), "read", e))?;
            let child = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(child);
            } else if kind.is_file() {
                files.push(child);
            } else {
                skipped.push(child);
            }
        }
    }
    files.sort();
    skipped.sort();
    Ok((files, skipped))
}

/// Writes the backup archive.
pub fn backup(args: BackupArgs) -> Result<(), Error> {
    let (host, host_bytes) = load_valid_host(&args.config)?;
    let pg = Pg::new(&args.pg, &host.synapse.database)?;
    let out = &args.out;
    if out.is_dir() {
        return Err(Error::Other(format!(
            "--out {} is a directory: expected the archive's file name",
            out.display()
        )));
    }
    let work = WorkDir::beside(out, "work")?;

    // 1. The database, while the server runs: pg_dump takes one snapshot.
    let postgresql_version = pg.server_version()?;
    let dump_path = work.0.join("synapse.pgdump");
    let dump_file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&dump_path)
        .map_err(|e| Error::io(&dump_path, "create", e))?;
    pg.dump_to(dump_file)?;

    let synapse_version = crate::admin_api::synapse_version(&host);

    // 2. The archive, beside its final name, 0600 from the start.
    let mut tmp_name = out
        .file_name()
        .ok_or_else(|| Error::Other(format!("{} has no file name", out.display())))?
        .to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = out.with_file_name(tmp_name);
    let result = (|| {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "create", e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&tmp, "set permissions of", e))?;
        let mut writer = ArchiveWriter::new(BufWriter::new(file));
        writer.add_bytes(HOST_MEMBER, &host_bytes, 0o600)?;
        writer.add_file(DATABASE_MEMBER, &dump_path, 0o600)?;
        let mut secrets = Vec::new();
        for kind in SecretKind::ALL {
            let path = host.secrets.path(kind);
            match fs::metadata(&path) {
                Ok(_) => {
                    writer.add_file(
                        &format!("{SECRETS_PREFIX}{}", kind.file_name()),
                        &path,
                        0o600,
                    )?;
                    secrets.push(kind.file_name());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    eprintln!(
                        "warning: {} ({}) does not exist: not in the backup",
                        path.display(),
                        kind.file_name()
                    );
                }
                Err(e) => return Err(Error::io(&path, "read", e)),
            }
        }
        let state_file = args
            .state_dir
            .clone()
            .unwrap_or_else(|| host.secrets.dir.clone())
            .join(crate::admin_api::STATE_FILE);
        if state_file.is_file() {
            writer.add_file(ADMIN_STATE_MEMBER, &state_file, 0o600)?;
            secrets.push("admin service account");
        }
        let media = host.synapse.media_store_path();
        let (files, skipped) = if media.exists() {
            walk_files(&media)?
        } else {
            eprintln!(
                "warning: the media store {} does not exist: no media in the backup",
                media.display()
            );
            (Vec::new(), Vec::new())
        };
        for s in &skipped {
            eprintln!(
                "warning: {} is not a regular file: not in the backup",
                media.join(s).display()
            );
        }
        for rel in &files {
            let name = format!("{MEDIA_PREFIX}{}", rel.display());
            let mode = fs::metadata(media.join(rel))
                .map(|m| m.mode() & 0o777)
                .unwrap_or(0o600);
            writer.add_file(&name, &media.join(rel), mode)?;
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            ospw_matrix_version: env!("CARGO_PKG_VERSION").into(),
            synapse_version: synapse_version.clone(),
            postgresql_version: Some(postgresql_version.clone()),
            server_name: host.server_name.clone(),
            created: ospw_matrix::backup::now_rfc3339(),
            database: DatabaseRecord {
                name: host.synapse.database.name.clone(),
                user: host.synapse.database.user.clone(),
                dump_format: "pg_dump --format=custom".into(),
            },
            members: Default::default(),
        };
        let (buf, manifest) = writer.finish(manifest)?;
        let file = buf
            .into_inner()
            .map_err(|e| Error::io(&tmp, "write", e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, "sync", e))?;
        fs::rename(&tmp, out).map_err(|e| Error::io(out, "rename into place", e))?;
        Ok((manifest, secrets, files.len()))
    })();
    let (manifest, secrets, media_files) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let size = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup of {} written to {} ({} bytes, mode 0600)",
        manifest.server_name,
        out.display(),
        size
    );
    println!(
        "  database {:?} (PostgreSQL {}), Synapse {}",
        manifest.database.name,
        postgresql_version,
        synapse_version
            .as_deref()
            .unwrap_or("version unknown (not answering)")
    );
    println!("  secrets: {}", secrets.join(", "));
    println!(
        "  media: {media_files} files, {} bytes",
        manifest.media_totals().1
    );
    println!(
        "  {} members, each with its SHA-256 in manifest.json",
        manifest.members.len()
    );
    Ok(())
}

/// Copies what `reader` yields into a new file beside `target` (mode
/// `mode`), returning the staged file to be renamed into place.
pub(crate) fn stage_beside(
    target: &Path,
    reader: &mut dyn Read,
    mode: u32,
) -> Result<ospw_matrix::backup::StagedFile, Error> {
    let mut name = target
        .file_name()
        .ok_or_else(|| Error::Other(format!("{} has no file name", target.display())))?
        .to_os_string();
    name.push(format!(".restore-{}", std::process::id()));
    let staged = target.with_file_name(name);
    let _ = fs::remove_file(&staged);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&staged)
            .map_err(|e| Error::io(&staged, "create", e))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&staged, "set permissions of", e))?;
        std::io::copy(reader, &mut file).map_err(|e| Error::io(&staged, "write", e))?;
        file.flush().map_err(|e| Error::io(&staged, "write", e))?;
        file.sync_all().map_err(|e| Error::io(&staged, "sync", e))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&staged);
        return Err(e);
    }
    Ok(ospw_matrix::backup::StagedFile {
        staged,
        target: target.to_path_buf(),
    })
}
