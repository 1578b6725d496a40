//! coturn: render a host description, materialize the runtime configuration
//! with a secret, and run the real `turnserver` with it.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ospw_matrix::components::coturn::{rest_api_password, TurnserverConf};
use support::{
    assert_fails_naming, assert_renders, free_port, require, run, stderr_of, which, TempDir,
    EXAMPLE_NAMES,
};

/// Kills the child process when dropped, so a failing assertion never leaves
/// a server behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A relay port range no other test is likely to use: in 10000–19999, below
/// the acceptance suite's reserved port blocks (20000–32767) and Linux's
/// ephemeral range (32768–60999).
fn relay_range() -> (u16, u16) {
    let base = 10000 + (std::process::id() % 100) as u16 * 100;
    (base, base + 49)
}

#[test]
fn the_relay_range_avoids_the_acceptance_blocks_and_ephemeral_ports() {
    let (first, last) = relay_range();
    assert!(
        (10000..20000).contains(&first) && (10000..20000).contains(&last),
        "{first}-{last}"
    );
}

fn write_host(dir: &Path, turn_port: u16) -> PathBuf {
    let (first, last) = relay_range();
    let host = format!(
        "{EXAMPLE_NAMES}turn:\n  host: turn.example.org\n  listening_ips: [127.0.0.1]\n  port: {turn_port}\n  \
         relay_ports: {first}-{last}\n"
    );
    let path = dir.join("host.yaml");
    std::fs::write(&path, host).unwrap();
    path
}

fn render(dir: &Path, turn_port: u16) -> PathBuf {
    let host = write_host(dir, turn_port);
    let out = dir.join("rendered");
    assert_renders(Some(&host), &out);
    out.join("coturn/turnserver.conf")
}

fn materialize(template: &Path, secret: &Path, out: &Path) -> std::process::Output {
    run(&[
        "materialize",
        "coturn",
        "--template",
        template.to_str().unwrap(),
        "--secret-file",
        secret.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Runs `turnutils_uclient` against the server; returns its verbose output.
fn uclient(uclient: &Path, port: u16, user: &str, password: &str, peer: &str) -> String {
    let mut child = Command::new(uclient)
        .args([
            "-v",
            "-n",
            "1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-w",
            password,
            "-e",
            peer,
            "127.0.0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start turnutils_uclient");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait for uclient").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.wait();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

fn credentials(secret: &str, user: &str, expiry_offset: i64) -> (String, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let username = format!("{}:{user}", now + expiry_offset);
    let password = rest_api_password(secret, &username);
    (username, password)
}

#[test]
fn materialized_config_runs_the_real_turnserver() {
    let Some(turnserver) = require("coturn (turnserver)", which("turnserver")) else {
        return;
    };
    let Some(uclient_bin) = require("coturn (turnutils_uclient)", which("turnutils_uclient"))
    else {
        return;
    };
    let dir = TempDir::new("coturn");
    let port = free_port();
    let template = render(dir.path(), port);
    let template_text = std::fs::read_to_string(&template).unwrap();

    let secret = format!("test-secret-{}-{port}-0123456789abcdef", std::process::id());
    let secret_file = dir.path().join("turn_shared_secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let runtime = dir.path().join("run/turnserver.conf");
    std::fs::create_dir_all(runtime.parent().unwrap()).unwrap();
    let o = materialize(&template, &secret_file, &runtime);
    assert!(o.status.success(), "materialize failed: {}", stderr_of(&o));

    // The template never holds the secret; the runtime file does, mode 0600.
    assert!(!template_text.contains(&secret));
    assert!(!template_text
        .lines()
        .any(|l| l.starts_with("static-auth-secret")));
    let mode = std::fs::metadata(&runtime).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "runtime config mode {mode:o}");
    let runtime_text = std::fs::read_to_string(&runtime).unwrap();
    assert!(runtime_text
        .lines()
        .any(|l| l == format!("static-auth-secret={secret}")));
    let conf = TurnserverConf::parse(&runtime_text).unwrap();
    assert!(conf.privacy_violations().is_empty());
    assert_eq!(conf.listening_ips, vec!["127.0.0.1"]);
    assert_eq!(conf.listening_port, Some(port));

    // Start the real server with the file as written; test-only flags on the
    // command line keep its pid file in the temp dir.
    let log = std::fs::File::create(dir.path().join("turnserver.log")).unwrap();
    let child = support::service(&turnserver)
        .arg("-c")
        .arg(&runtime)
        .arg("--pidfile")
        .arg(dir.path().join("turnserver.pid"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start turnserver");
    let mut server = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!(
                "turnserver exited with {status}: {}",
                std::fs::read_to_string(dir.path().join("turnserver.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "turnserver is not listening on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Valid REST API credentials allocate a relay; a peer in a private range
    // is refused (denied-peer-ip).
    let (user, password) = credentials(&secret, "alice", 3600);
    let out = uclient(&uclient_bin, port, &user, &password, "10.0.0.1");
    assert!(
        out.contains("Received relay addr"),
        "allocation with valid credentials failed:\n{out}"
    );
    assert!(
        out.contains("403"),
        "a peer in 10.0.0.0/8 was not refused:\n{out}"
    );
    // Loopback peers are refused too.
    let out = uclient(&uclient_bin, port, &user, &password, "127.0.0.1");
    assert!(out.contains("Received relay addr"), "{out}");
    assert!(
        out.contains("403"),
        "a loopback peer was not refused:\n{out}"
    );

    // A wrong password, an expired user name and a password made with
    // another secret are refused.
    let out = uclient(
        &uclient_bin,
        port,
        &user,
        "d3JvbmcgcGFzc3dvcmQ=",
        "10.0.0.1",
    );
    assert!(
        !out.contains("Received relay addr"),
        "wrong password accepted:\n{out}"
    );
    assert!(out.contains("Cannot complete Allocation"), "{out}");
    let (old_user, old_password) = credentials(&secret, "alice", -60);
    let out = uclient(&uclient_bin, port, &old_user, &old_password, "10.0.0.1");
    assert!(
        !out.contains("Received relay addr"),
        "expired user accepted:\n{out}"
    );
    let (user2, password2) = credentials("another-secret", "alice", 3600);
    let out = uclient(&uclient_bin, port, &user2, &password2, "10.0.0.1");
    assert!(
        !out.contains("Received relay addr"),
        "foreign secret accepted:\n{out}"
    );

    assert!(
        server.0.try_wait().unwrap().is_none(),
        "turnserver died during the test"
    );
    drop(server);
}

#[test]
fn materialize_refuses_a_tampered_template() {
    let dir = TempDir::new("coturn-tamper");
    let template = render(dir.path(), free_port());
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    for (addition, key) in [
        ("allow-loopback-peers\n", "allow-loopback-peers"),
        ("lt-cred-mech\nuser=bob:pw\n", "lt-cred-mech"),
        (
            "allowed-peer-ip=10.0.0.0-10.255.255.255\n",
            "allowed-peer-ip",
        ),
    ] {
        let tampered = dir.path().join("tampered.conf");
        let mut text = std::fs::read_to_string(&template).unwrap();
        text.push_str(addition);
        std::fs::write(&tampered, text).unwrap();
        let out = dir.path().join("out.conf");
        let o = materialize(&tampered, &secret_file, &out);
        assert!(!o.status.success(), "tampered template ({key}) accepted");
        assert_fails_naming(&o, &[key, "tampered.conf"]);
        assert!(!out.exists());
    }
    // Removing a required line is refused too.
    let text = std::fs::read_to_string(&template).unwrap();
    let stripped: String = text
        .lines()
        .filter(|l| *l != "no-cli")
        .map(|l| format!("{l}\n"))
        .collect();
    let tampered = dir.path().join("stripped.conf");
    std::fs::write(&tampered, stripped).unwrap();
    let o = materialize(&tampered, &secret_file, &dir.path().join("out.conf"));
    assert_fails_naming(&o, &["no-cli"]);
}

#[test]
fn materialize_names_the_bad_file() {
    let dir = TempDir::new("coturn-errors");
    let template = render(dir.path(), free_port());
    let out = dir.path().join("out.conf");

    let missing = dir.path().join("no-such-secret");
    let o = materialize(&template, &missing, &out);
    assert_fails_naming(&o, &["no-such-secret"]);

    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "").unwrap();
    let o = materialize(&template, &empty, &out);
    assert_fails_naming(&o, &["empty-secret", "empty"]);

    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let bad = dir.path().join("bad-template.conf");
    std::fs::write(&bad, "listening-port=notaport\n").unwrap();
    let o = materialize(&bad, &secret, &out);
    assert_fails_naming(&o, &["bad-template.conf", "listening-port"]);
    let o = materialize(&dir.path().join("missing.conf"), &secret, &out);
    assert!(stderr_of(&o).contains("missing.conf"));
    assert!(!out.exists());
}

/// Starts the real `turnserver` on `config` just long enough to read its
/// configuration, and returns what it logged.
fn turnserver_log(turnserver: &Path, dir: &Path, config: &Path) -> String {
    let log_path = dir.join(format!(
        "{}.log",
        config.file_name().unwrap().to_string_lossy()
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = support::service(turnserver)
        .arg("-c")
        .arg(config)
        .arg("--pidfile")
        .arg(dir.join("agree.pid"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start turnserver");
    let mut server = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("Total General servers") || server.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "turnserver did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    std::fs::read_to_string(&log_path).unwrap_or_default()
}

/// The values coturn logged after `marker` ("White listing: ", ...).
fn logged(log: &str, marker: &str) -> Vec<String> {
    let mut out: Vec<String> = log
        .lines()
        .filter_map(|l| l.split_once(marker).map(|(_, v)| v.trim_end().to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn our_reader_and_real_coturn_read_crafted_files_alike() {
    use ospw_matrix::components::coturn::{ranges, reader};
    let Some(turnserver) = require("coturn (turnserver)", which("turnserver")) else {
        return;
    };
    let dir = TempDir::new("coturn-agree");
    let port = free_port();
    let (first, last) = relay_range();
    let base = format!(
        "listening-ip=127.0.0.1\nlistening-port={port}\nmin-port={first}\nmax-port={last}\n\
         realm=turn.example.org\nuse-auth-secret\nstatic-auth-secret=0123456789abcdef\nno-cli\n\
         no-tls\nno-dtls\nlog-file=stdout\n"
    );
    let fill = |head: &str| "a".repeat(reader::MAX_LINE_BYTES - head.len());
    let crafted: Vec<(&str, Vec<u8>)> = vec![
        (
            // The bypass found: a value filling coturn's line buffer, so
            // the rest of the line is read as an option of its own.
            "long line smuggles an allowed-peer-ip",
            format!(
                "server-name={}allowed-peer-ip=10.0.0.0-10.255.255.255\n",
                fill("server-name=")
            )
            .into_bytes(),
        ),
        (
            "a line of exactly 1023 bytes is read whole",
            format!(
                "server-name={}\nallowed-peer-ip=10.11.0.1\n",
                fill("server-name=")
            )
            .into_bytes(),
        ),
        (
            "three pieces",
            format!(
                "server-name={}no-such-option={}denied-peer-ip=10.12.0.1\n",
                fill("server-name="),
                fill("no-such-option=")
            )
            .into_bytes(),
        ),
        (
            "a line break in a value",
            b"server-name=x\nallowed-peer-ip=10.3.0.1\n".to_vec(),
        ),
        (
            "a carriage return is no line break to coturn",
            b"server-name=x\rallowed-peer-ip=10.1.0.1\n".to_vec(),
        ),
        (
            "NUL ends the line",
            b"allowed-peer-ip=10.2.0.1\0denied-peer-ip=10.2.0.2\n".to_vec(),
        ),
        (
            "quotes and spaces around the value",
            b"allowed-peer-ip = \"10.4.0.1\"  \n".to_vec(),
        ),
        (
            "tab as separator",
            b"denied-peer-ip\t10.5.0.0-10.5.0.255\n".to_vec(),
        ),
        (
            "no comment after a value",
            b"denied-peer-ip=10.6.0.1 # no\n".to_vec(),
        ),
        ("CIDR", b"denied-peer-ip=10.7.0.0/16\n".to_vec()),
        ("misspelt option", b"denid-peer-ip=10.8.0.1\n".to_vec()),
        (
            "leading blanks",
            b"  \t allowed-peer-ip=10.9.0.1\n".to_vec(),
        ),
        ("doubled equals", b"allowed-peer-ip==10.10.0.1\n".to_vec()),
        ("comment", b"#allowed-peer-ip=10.13.0.1\n".to_vec()),
    ];
    let mut failures = Vec::new();
    for (i, (what, extra)) in crafted.iter().enumerate() {
        let mut text = base.clone().into_bytes();
        text.extend_from_slice(extra);
        let config = dir.path().join(format!("crafted-{i}.conf"));
        std::fs::write(&config, &text).unwrap();
        let log = turnserver_log(&turnserver, dir.path(), &config);

        // What our reader says coturn applies.
        let read = reader::read(&text);
        let ranges_of = |name: &str| -> Vec<String> {
            let mut v: Vec<String> = read
                .iter()
                .filter(|o| o.name_lossy() == name)
                .map(|o| o.value_lossy())
                .filter(|v| ranges::read(v).is_ok())
                .collect();
            v.sort();
            v
        };
        let mut unknown: Vec<String> = read
            .iter()
            .map(|o| o.name_lossy())
            .filter(|n| ospw_matrix::components::coturn::options::find(n).is_none())
            .collect();
        unknown.sort();
        unknown.dedup();
        for (ours, theirs, label) in [
            (
                ranges_of("allowed-peer-ip"),
                logged(&log, "White listing: "),
                "allowed",
            ),
            (
                ranges_of("denied-peer-ip"),
                logged(&log, "Black listing: "),
                "denied",
            ),
            (
                unknown,
                logged(&log, "Bad configuration format: "),
                "unknown",
            ),
        ] {
            if ours != theirs {
                failures.push(format!(
                    "{what}: {label} options: ours {ours:?}, coturn's {theirs:?}"
                ));
            }
        }

        // materialize refuses every one of them: each is read by coturn
        // differently from how it is written (or is no option at all).
        let out = dir.path().join(format!("out-{i}.conf"));
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
        let o = materialize(&config, &secret, &out);
        if o.status.success() || out.exists() {
            failures.push(format!("{what}: materialize accepted it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
