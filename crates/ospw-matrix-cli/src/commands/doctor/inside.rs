//! The checks on the host itself: services, Synapse's health, the
//! database, the secrets, the disk, the backups and the metrics endpoints.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ospw_matrix::host::SecretKind;
use ospw_matrix::secrets::SigningKey;

use super::report::{CheckId, Findings, Side, Status};
use super::{signing, Ctx, DoctorArgs};
use crate::admin_api::{endpoint_of, AdminClient};
use crate::commands::backup::Pg;
use crate::http::{self, Endpoint};

fn add(
    f: &mut Findings,
    id: CheckId,
    target: Option<&str>,
    status: Status,
    message: impl Into<String>,
    hint: Option<String>,
) {
    f.add(id, Side::Inside, target, status, message, hint);
}

/// Runs the inside checks.
pub fn run(
    ctx: &Ctx,
    args: &DoctorArgs,
    admin: &mut Result<AdminClient, String>,
    backup_max_age_ms: u64,
    f: &mut Findings,
) {
    listening(ctx, f);
    for unit in &args.units {
        systemd_unit(unit, f);
    }
    health(ctx, f);
    let pg = Pg::new(&args.pg, &ctx.host.synapse.database);
    collation(pg.as_ref().map_err(ToString::to_string), f);
    secret_modes(ctx, args, f);
    signing_key(ctx, admin, f);
    disk(ctx, args, pg.as_ref().ok(), f);
    if let Some(dir) = &args.backup_dir {
        backup_age(dir, backup_max_age_ms, f);
    }
    super::metrics::inside(ctx, f);
}

/// Whether something accepts TCP connections at `host:port`.
fn tcp_answers(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    let mut last = "no address".to_owned();
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok(a),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// An address to reach a listener bound to `bind` (the first, or
/// 127.0.0.1 when it binds every address).
fn reach(bind: &[String]) -> String {
    bind.first()
        .map_or_else(|| "127.0.0.1".to_owned(), |a| a.clone())
}

fn listening(ctx: &Ctx, f: &mut Findings) {
    let h = &ctx.host;
    let t = ctx.timeout;
    let synapse = endpoint_of(h).map_err(|e| e.to_string()).and_then(|ep| {
        let shown = ep.to_string();
        match &ep {
            Endpoint::Unix(path) => UnixStream::connect(path)
                .map(|_| shown)
                .map_err(|e| format!("{}: {e}", path.display())),
            Endpoint::Tcp { host, port } => tcp_answers(host, *port, t).map(|_| shown),
        }
    });
    let db = &h.synapse.database;
    let socket = db.socket_dir.join(format!(".s.PGSQL.{}", db.port));
    let postgres = UnixStream::connect(&socket)
        .map(|_| socket.display().to_string())
        .map_err(|e| format!("{}: {e}", socket.display()));
    let turn_ip = reach(&h.turn.listening_ips);
    let coturn = tcp_answers(&turn_ip, h.turn.port, t).map(|a| format!("TCP {a}"));
    let proxy_ip = reach(&h.proxy.bind);
    let caddy = tcp_answers(&proxy_ip, h.proxy.https_port, t).map(|a| format!("HTTPS {a}"));
    for (name, result, unit) in [
        ("synapse", synapse, "ospw-matrix-synapse"),
        ("postgresql", postgres, "postgresql"),
        ("coturn", coturn, "ospw-matrix-coturn"),
        ("caddy", caddy, "caddy"),
    ] {
        match result {
            Ok(at) => add(
                f,
                CheckId::ServicesListening,
                Some(name),
                Status::Pass,
                format!("accepts connections on {at}"),
                None,
            ),
            Err(e) => add(
                f,
                CheckId::ServicesListening,
                Some(name),
                Status::Fail,
                format!(
                    "{name} is not running or not listening where the host description says: {e}"
                ),
                Some(format!(
                    "start it (on NixOS: systemctl start {unit}; its log: journalctl -u {unit})"
                )),
            ),
        }
    }
}

fn systemd_unit(unit: &str, f: &mut Findings) {
    let out = Command::new("systemctl")
        .args(["is-active", "--", unit])
        .output();
    match out {
        Err(e) => add(
            f,
            CheckId::ServicesSystemd,
            Some(unit),
            Status::Warn,
            format!("not checked: cannot run systemctl: {e}"),
            None,
        ),
        Ok(o) => {
            let state = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if o.status.success() && state == "active" {
                add(
                    f,
                    CheckId::ServicesSystemd,
                    Some(unit),
                    Status::Pass,
                    "active",
                    None,
                );
            } else {
                let why = String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                add(
                    f,
                    CheckId::ServicesSystemd,
                    Some(unit),
                    Status::Fail,
                    match (state.is_empty(), why.is_empty()) {
                        (false, _) => format!("is {state}"),
                        (true, false) => format!("is unknown: {why}"),
                        (true, true) => "is unknown".to_owned(),
                    },
                    Some(format!(
                        "systemctl status {unit}; journalctl -u {unit}; then systemctl restart {unit}"
                    )),
                );
            }
        }
    }
}

fn health(ctx: &Ctx, f: &mut Findings) {
    let hint = Some(
        "Synapse does not answer on its own listener: systemctl status ospw-matrix-synapse, journalctl -u ospw-matrix-synapse"
            .to_owned(),
    );
    let endpoint = match endpoint_of(&ctx.host) {
        Ok(e) => e,
        Err(e) => {
            add(
                f,
                CheckId::SynapseHealth,
                None,
                Status::Fail,
                e.to_string(),
                hint,
            );
            return;
        }
    };
    match http::request(&endpoint, "GET", "/health", &[], None, ctx.timeout) {
        Ok(r) if r.status == 200 && r.body.trim_ascii() == b"OK" => add(
            f,
            CheckId::SynapseHealth,
            None,
            Status::Pass,
            format!("{endpoint}/health answers OK"),
            None,
        ),
        Ok(r) => add(
            f,
            CheckId::SynapseHealth,
            None,
            Status::Fail,
            format!("{endpoint}/health answered HTTP {}", r.status),
            hint,
        ),
        Err(e) => add(
            f,
            CheckId::SynapseHealth,
            None,
            Status::Fail,
            e.to_string(),
            hint,
        ),
    }
}

fn collation(pg: Result<&Pg, String>, f: &mut Findings) {
    let hint = Some(
        "Synapse needs its database created from template0 with LC_COLLATE and LC_CTYPE C (createdb -T template0 -E UTF8 --lc-collate=C --lc-ctype=C): dump it, create it again that way and restore it (ospw-matrix backup / restore)"
            .to_owned(),
    );
    let result = pg.and_then(|pg| {
        pg.query("SELECT datcollate || '|' || datctype || '|' || pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()")
            .map_err(|e| e.to_string())
    });
    match result {
        Err(e) => add(
            f,
            CheckId::DatabaseCollation,
            None,
            Status::Fail,
            format!("the database is not reachable: {e}"),
            Some("is PostgreSQL running (services.listening), and does doctor run as the database's system user or with --db-os-user?".into()),
        ),
        Ok(text) => {
            let parts: Vec<&str> = text.split('|').collect();
            if parts.len() == 3 && parts[0] == "C" && parts[1] == "C" {
                add(
                    f,
                    CheckId::DatabaseCollation,
                    None,
                    Status::Pass,
                    format!("reachable; collation C, ctype C, encoding {}", parts[2]),
                    None,
                );
            } else {
                add(
                    f,
                    CheckId::DatabaseCollation,
                    None,
                    Status::Fail,
                    format!("collation, ctype and encoding are {text:?}: expected C, C"),
                    hint,
                );
            }
        }
    }
}

fn mode(path: &Path) -> std::io::Result<u32> {
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777)
}

fn secret_modes(ctx: &Ctx, args: &DoctorArgs, f: &mut Findings) {
    let s = &ctx.host.secrets;
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let mut checked = 0;
    let mut dirs = vec![s.dir.clone()];
    dirs.extend(args.secrets_dir.clone());
    let uses_dir = SecretKind::ALL
        .iter()
        .any(|k| s.explicit_file(*k).is_none());
    for (i, dir) in dirs.iter().enumerate() {
        if i == 0 && !uses_dir {
            continue;
        }
        match mode(dir) {
            Err(e) => problems.push(format!("{}: {e}", dir.display())),
            Ok(m) if m & 0o077 != 0 => {
                problems.push(format!("{} has mode {m:04o}: expected 0700", dir.display()));
                fixes.push(format!("chmod 0700 {}", dir.display()));
            }
            Ok(_) => checked += 1,
        }
    }
    let mut files: Vec<PathBuf> = SecretKind::ALL.iter().map(|k| s.path(*k)).collect();
    if let Some(extra) = &args.secrets_dir {
        if let Ok(entries) = std::fs::read_dir(extra) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) && !files.contains(&e.path()) {
                    files.push(e.path());
                }
            }
        }
    }
    for file in &files {
        match mode(file) {
            Err(e) => problems.push(format!("{}: {e}", file.display())),
            Ok(m) if m & 0o077 != 0 => {
                problems.push(format!(
                    "{} has mode {m:04o}: expected 0600",
                    file.display()
                ));
                fixes.push(format!("chmod 0600 {}", file.display()));
            }
            Ok(_) => checked += 1,
        }
    }
    if problems.is_empty() {
        add(
            f,
            CheckId::SecretsModes,
            None,
            Status::Pass,
            format!("{checked} secret files and directories, none readable by group or others"),
            None,
        );
    } else {
        let mut hint = if fixes.is_empty() {
            "create the missing secrets with `ospw-matrix secrets init` (on NixOS: systemctl restart ospw-matrix-secrets)".to_owned()
        } else {
            fixes.join("; ")
        };
        hint.push_str(" — and consider the secrets exposed: other local users could read them");
        add(
            f,
            CheckId::SecretsModes,
            None,
            Status::Fail,
            problems.join("; "),
            Some(hint),
        );
    }
}

fn signing_key(ctx: &Ctx, admin: &mut Result<AdminClient, String>, f: &mut Findings) {
    let path = ctx.host.secrets.path(SecretKind::SigningKey);
    let key = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| SigningKey::parse(&t))
    {
        Ok(k) => k,
        Err(e) => {
            add(
                f,
                CheckId::SecretsSigningKey,
                None,
                Status::Fail,
                format!("{}: {e}", path.display()),
                Some("restore the signing key from a backup (a new key breaks the devices' trust in old messages' origin)".into()),
            );
            return;
        }
    };
    let event = match admin
        .as_mut()
        .map_err(|e| e.clone())
        .and_then(signing::fresh_signed_event)
    {
        Ok(e) => e,
        Err(e) => {
            add(
                f,
                CheckId::SecretsSigningKey,
                None,
                Status::Fail,
                format!(
                    "{} holds {}, but Synapse could not be asked to sign: {e}",
                    path.display(),
                    key.key_id()
                ),
                Some("run doctor as root while Synapse runs (see synapse.health)".into()),
            );
            return;
        }
    };
    let sigs = signing::signatures(&event, &ctx.host.server_name);
    match sigs.iter().find(|(id, _)| *id == key.key_id()) {
        Some((id, sig)) if signing::verifies(&key, &event, sig) => add(
            f,
            CheckId::SecretsSigningKey,
            None,
            Status::Pass,
            format!("Synapse signs with {id}, the key in {}", path.display()),
            None,
        ),
        Some((id, _)) => add(
            f,
            CheckId::SecretsSigningKey,
            None,
            Status::Fail,
            format!("Synapse's signature by {id} does not verify with the key in {}: Synapse runs with another key of the same ID", path.display()),
            Some("Synapse reads another key file than this host description names: restart it, and check synapse.settings and secrets.signing_key_file".into()),
        ),
        None => add(
            f,
            CheckId::SecretsSigningKey,
            None,
            Status::Fail,
            format!(
                "Synapse signs with {}, but {} holds {}",
                if sigs.is_empty() { "no key of this server".to_owned() } else { sigs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ") },
                path.display(),
                key.key_id()
            ),
            Some("Synapse runs with another signing key: restart it after restoring the key, and check synapse.settings and secrets.signing_key_file".into()),
        ),
    }
}

/// `df -Pk` of `path` (its nearest existing ancestor): (size, available)
/// in bytes.
fn disk_space(path: &Path) -> Result<(u64, u64), String> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    let out = Command::new("df")
        .arg("-Pk")
        .arg(&p)
        .output()
        .map_err(|e| format!("cannot run df: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).ok_or_else(|| {
        format!(
            "df {} answered nothing: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
    match (num(1), num(3)) {
        (Some(size), Some(avail)) => Ok((size * 1024, avail * 1024)),
        _ => Err(format!("df answered {line:?}")),
    }
}

/// The status for `avail` bytes free of `size`: failure below 5 % or
/// 512 MiB, warning below 10 % or 2 GiB.
pub fn disk_status(size: u64, avail: u64) -> Status {
    const MIB: u64 = 1 << 20;
    let percent = avail.saturating_mul(100).checked_div(size).unwrap_or(0);
    if percent < 5 || avail < 512 * MIB {
        Status::Fail
    } else if percent < 10 || avail < 2048 * MIB {
        Status::Warn
    } else {
        Status::Pass
    }
}

fn disk(ctx: &Ctx, args: &DoctorArgs, pg: Option<&Pg>, f: &mut Findings) {
    let media = ctx.host.synapse.media_store_path();
    let db_dir = match &args.db_data_dir {
        Some(d) => Ok(d.clone()),
        None => pg
            .ok_or_else(|| "no database connection".to_owned())
            .and_then(|pg| pg.query("SHOW data_directory").map_err(|e| e.to_string()))
            .map(PathBuf::from),
    };
    for (what, dir) in [("media store", Ok(media)), ("database", db_dir)] {
        let dir = match dir {
            Ok(d) => d,
            Err(e) => {
                add(
                    f,
                    CheckId::DiskFree,
                    Some(what),
                    Status::Warn,
                    format!("not checked: PostgreSQL's data directory is unknown ({e})"),
                    Some("pass --db-data-dir".into()),
                );
                continue;
            }
        };
        match disk_space(&dir) {
            Err(e) => add(
                f,
                CheckId::DiskFree,
                Some(what),
                Status::Warn,
                format!("not checked: {e}"),
                None,
            ),
            Ok((size, avail)) => {
                let status = disk_status(size, avail);
                add(
                    f,
                    CheckId::DiskFree,
                    Some(what),
                    status,
                    format!(
                        "{}: {:.1} GiB free of {:.1} GiB ({} %)",
                        dir.display(),
                        avail as f64 / f64::from(1u32 << 30),
                        size as f64 / f64::from(1u32 << 30),
                        avail.saturating_mul(100).checked_div(size).unwrap_or(0)
                    ),
                    Some(format!(
                        "free space on the file system of {} (old media: Synapse's purge_media_cache admin API; old backups)",
                        dir.display()
                    )),
                );
            }
        }
    }
}

fn backup_age(dir: &Path, max_age_ms: u64, f: &mut Findings) {
    let target = Some(dir.display().to_string());
    let hint = Some(
        "backups are not being made: systemctl status ospw-matrix-backup.timer ospw-matrix-backup.service; journalctl -u ospw-matrix-backup"
            .to_owned(),
    );
    let newest = std::fs::read_dir(dir).map(|entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tar"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file().then(|| (m.modified().ok(), e.path(), m))
            })
            .max_by_key(|(t, _, _)| *t)
    });
    match newest {
        Err(e) => add(
            f,
            CheckId::BackupAge,
            target.as_deref(),
            Status::Fail,
            format!("{}: {e}", dir.display()),
            hint,
        ),
        Ok(None) => add(
            f,
            CheckId::BackupAge,
            target.as_deref(),
            Status::Fail,
            format!("no backup archive (*.tar) in {}", dir.display()),
            hint,
        ),
        Ok(Some((modified, path, meta))) => {
            let age = modified
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let hours = age.as_secs() / 3600;
            if meta.mode() & 0o077 != 0 {
                add(
                    f,
                    CheckId::BackupAge,
                    target.as_deref(),
                    Status::Fail,
                    format!(
                        "{} has mode {:04o}: it holds the secrets; expected 0600",
                        path.display(),
                        meta.mode() & 0o7777
                    ),
                    Some(format!("chmod 0600 {}", path.display())),
                );
            } else if meta.len() == 0 {
                add(
                    f,
                    CheckId::BackupAge,
                    target.as_deref(),
                    Status::Fail,
                    format!("{} is empty", path.display()),
                    hint,
                );
            } else if age_ms > max_age_ms {
                add(
                    f,
                    CheckId::BackupAge,
                    target.as_deref(),
                    Status::Fail,
                    format!(
                        "the newest archive, {}, is {hours} hours old",
                        path.display()
                    ),
                    hint,
                );
            } else {
                add(
                    f,
                    CheckId::BackupAge,
                    target.as_deref(),
                    Status::Pass,
                    format!(
                        "the newest archive, {}, is {hours} hours old",
                        path.display()
                    ),
                    None,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_thresholds() {
        const GIB: u64 = 1 << 30;
        assert_eq!(disk_status(100 * GIB, 50 * GIB), Status::Pass);
        assert_eq!(disk_status(100 * GIB, 8 * GIB), Status::Warn);
        assert_eq!(disk_status(100 * GIB, 4 * GIB), Status::Fail);
        assert_eq!(
            disk_status(10 * GIB, GIB + GIB / 2),
            Status::Warn,
            "above 10 % but under 2 GiB"
        );
        assert_eq!(disk_status(4 * GIB, GIB / 4), Status::Fail, "under 512 MiB");
        assert_eq!(disk_status(0, 0), Status::Fail);
    }

    #[test]
    fn df_of_an_existing_ancestor() {
        let (size, avail) = disk_space(Path::new("/tmp/ospw-doctor-no-such/dir")).unwrap();
        assert!(size > 0 && avail <= size);
    }
}
