//! `ospw-matrix user add`, run as a binary, against closed ports and a
//! scripted stand-in for Synapse's registration endpoint (TCP and Unix
//! socket). Creating users on a real Synapse is the acceptance suite's job.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;

use serde_json::Value;
use support::{assert_renders, bin, free_port, require, run, which, TempDir, EXAMPLE_NAMES};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A host description whose Synapse listens on `listen` (a YAML flow
/// mapping) with secrets in `<dir>/secrets`.
fn write_host(dir: &Path, listen: &str) -> PathBuf {
    let host = dir.join("host.yaml");
    std::fs::write(
        &host,
        format!(
            "{EXAMPLE_NAMES}synapse:
  listen: {listen}
secrets:
  dir: {}/secrets
",
            dir.display()
        ),
    )
    .expect("write host");
    host
}

/// The `listen` mapping of a TCP listener on `address`:`port`.
fn tcp_listen(address: &str, port: u16) -> String {
    format!("{{tcp: {{address: {address}, port: {port}}}}}")
}

/// The `listen` mapping of a Unix socket listener at `sock`.
fn unix_listen(sock: &Path) -> String {
    format!("{{unix: {{path: {}}}}}", sock.display())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// Asserts that the run failed with `needle` on stderr, returning stderr.
fn assert_fails_saying(out: &Output, needle: &str) -> String {
    assert!(!out.status.success(), "{needle}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(needle), "{needle}: {stderr}");
    stderr
}

/// Runs `user add NAME --synapse SYNAPSE --registration-secret-file SECRET`.
fn user_add_direct(name: &str, synapse: &str, secret: &Path) -> Output {
    user_add(&[
        name,
        "--synapse",
        synapse,
        "--registration-secret-file",
        s(secret),
    ])
}

fn init_secrets(dir: &Path) {
    let out = run(&["secrets", "init", "--dir", s(&dir.join("secrets"))]);
    assert!(out.status.success(), "{out:?}");
}

fn user_add(args: &[&str]) -> Output {
    bin()
        .args(["user", "add"])
        .args(args)
        .env_remove("OSPW_MATRIX_CONFIG")
        .env_remove("OSPW_MATRIX_REGISTRATION_SECRET_FILE")
        .env_remove("OSPW_MATRIX_SYNAPSE")
        .output()
        .expect("run")
}

/// One recorded request: the head and the body.
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// Answers one request per connection with the given (status, JSON body)
/// answers in order, the first chunked, the others with Content-Length.
fn answer(mut conn: impl Read + Write, status: u16, body: &str, chunked: bool) -> Seen {
    let mut reader = BufReader::new(&mut conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.trim().parse().expect("length"));
    let mut request_body = vec![0; len];
    reader.read_exact(&mut request_body).expect("body");
    let response = if chunked {
        let (a, b) = body.split_at(body.len() / 2);
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
    } else {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    conn.write_all(response.as_bytes()).expect("write");
    Seen {
        head,
        body: request_body,
    }
}

const NONCE: &str = r#"{"nonce":"0123456789abcdef"}"#;

fn fake_tcp(answers: Vec<(u16, &'static str)>) -> (u16, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        answers
            .into_iter()
            .enumerate()
            .map(|(i, (status, body))| {
                answer(listener.accept().expect("accept").0, status, body, i == 0)
            })
            .collect()
    });
    (port, handle)
}

/// The MAC Synapse expects, computed by CPython's hmac module.
fn python_mac(
    secret: &str,
    nonce: &str,
    user: &str,
    password: &str,
    admin: bool,
) -> Option<String> {
    let python = require("python3", which("python3"))?;
    let script = "import hmac, hashlib, sys
s, n, u, p, a = sys.argv[1:]
m = hmac.new(key=s.encode(), digestmod=hashlib.sha1)
for part in (n, u, p):
    m.update(part.encode()); m.update(b'\\x00')
m.update(b'admin' if a == '1' else b'notadmin')
print(m.hexdigest())";
    let out = Command::new(python)
        .args(["-c", script, secret, nonce, user, password])
        .arg(if admin { "1" } else { "0" })
        .current_dir(std::env::temp_dir())
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", text(&out.stderr));
    Some(text(&out.stdout).trim().to_owned())
}

#[test]
fn closed_port_is_unreachable_naming_the_address() {
    let tmp = TempDir::new("user-closed");
    init_secrets(tmp.path());
    let port = free_port();
    let host = write_host(tmp.path(), &tcp_listen("127.0.0.1", port));
    let out = user_add(&["alice", "--config", s(&host)]);
    let stderr = assert_fails_saying(&out, "server unreachable");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(out.stdout.is_empty(), "no password printed on failure");

    // The same through --synapse, and through the environment.
    let secret = tmp.path().join("secrets/registration_shared_secret");
    let out = user_add_direct("bob", &format!("127.0.0.1:{port}"), &secret);
    assert_fails_saying(&out, &format!("127.0.0.1:{port}"));
    let out = bin()
        .args(["user", "add", "carol"])
        .env("OSPW_MATRIX_CONFIG", &host)
        .env_remove("OSPW_MATRIX_SYNAPSE")
        .env_remove("OSPW_MATRIX_REGISTRATION_SECRET_FILE")
        .output()
        .expect("run");
    assert_fails_saying(&out, "server unreachable");
}

#[test]
fn missing_unix_socket_is_unreachable_naming_it() {
    let tmp = TempDir::new("user-nosock");
    init_secrets(tmp.path());
    let sock = tmp.path().join("synapse.sock");
    let host = write_host(tmp.path(), &unix_listen(&sock));
    let out = user_add(&["alice", "--config", s(&host)]);
    let stderr = assert_fails_saying(&out, "server unreachable");
    assert!(stderr.contains(&sock.display().to_string()), "{stderr}");
}

#[test]
fn bad_names_are_refused_before_anything_else() {
    for name in [
        "Alice", "al ice", "al:ice", "@alice", "", "_bridge", "émile",
    ] {
        // No host description at all: the name is checked first.
        let out = user_add(&[name]);
        assert!(!out.status.success(), "{name}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("invalid user name"), "{name}: {stderr}");
    }
    let out = user_add(&["Alice"]);
    assert!(text(&out.stderr).contains("\"alice\""));
}

#[test]
fn missing_secret_file_is_named() {
    let tmp = TempDir::new("user-nosecret");
    let port = free_port();
    let host = write_host(tmp.path(), &tcp_listen("127.0.0.1", port));
    let out = user_add(&["alice", "--config", s(&host)]);
    let expected = tmp.path().join("secrets/registration_shared_secret");
    let stderr = assert_fails_saying(&out, &expected.display().to_string());
    assert!(stderr.contains("registration shared secret"), "{stderr}");

    let other = tmp.path().join("elsewhere");
    let out = user_add(&[
        "alice",
        "--config",
        s(&host),
        "--registration-secret-file",
        s(&other),
    ]);
    assert!(text(&out.stderr).contains(&other.display().to_string()));
}

#[test]
fn no_host_description_is_explained() {
    let out = user_add(&["alice"]);
    assert_fails_saying(&out, "--config");
}

#[test]
fn creates_a_user_with_a_generated_password_printed_once() {
    let tmp = TempDir::new("user-ok");
    init_secrets(tmp.path());
    let (port, server) = fake_tcp(vec![
        (200, NONCE),
        (
            200,
            r#"{"user_id":"@alice:example.org","home_server":"example.org"}"#,
        ),
    ]);
    let host = write_host(tmp.path(), &tcp_listen("127.0.0.1", port));
    let out = user_add(&["alice", "--admin", "--config", s(&host)]);
    let seen = server.join().expect("server");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let password = stdout.strip_suffix('\n').expect("one line");
    assert_eq!(password.len(), 32, "{stdout:?}");
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("@alice:example.org"), "{stderr}");
    assert!(
        !stderr.contains(password),
        "the password appears only on stdout"
    );

    assert_eq!(seen.len(), 2);
    assert!(seen[0]
        .head
        .starts_with("GET /_synapse/admin/v1/register HTTP/1.1\r\n"));
    assert!(seen[1]
        .head
        .starts_with("POST /_synapse/admin/v1/register HTTP/1.1\r\n"));
    let body: Value = serde_json::from_slice(&seen[1].body).expect("json body");
    assert_eq!(body["nonce"], "0123456789abcdef");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["password"], password);
    assert_eq!(body["admin"], true);
    assert_eq!(body["inhibit_login"], true);
    let secret = std::fs::read_to_string(tmp.path().join("secrets/registration_shared_secret"))
        .expect("secret");
    if let Some(mac) = python_mac(secret.trim(), "0123456789abcdef", "alice", password, true) {
        assert_eq!(body["mac"], mac);
    }
}

#[test]
fn password_file_over_a_unix_socket() {
    let tmp = TempDir::new("user-unix");
    init_secrets(tmp.path());
    let sock = tmp.path().join("synapse.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let server = std::thread::spawn(move || {
        vec![
            answer(listener.accept().expect("accept").0, 200, NONCE, true),
            answer(
                listener.accept().expect("accept").0,
                200,
                r#"{"user_id":"@bob:example.org"}"#,
                false,
            ),
        ]
    });
    let host = write_host(tmp.path(), &unix_listen(&sock));
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "correct horse battery staple\n").expect("write");
    let out = user_add(&["bob", "--config", s(&host), "--password-file", s(&pw)]);
    let seen = server.join().expect("server");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        out.stdout.is_empty(),
        "no password printed when it was given"
    );
    let body: Value = serde_json::from_slice(&seen[1].body).expect("json");
    assert_eq!(body["password"], "correct horse battery staple");
    assert_eq!(body["admin"], false);
    assert!(seen[0].head.contains("Host: localhost"), "{}", seen[0].head);
}

#[test]
fn synapse_refusals_are_explained() {
    let tmp = TempDir::new("user-refused");
    init_secrets(tmp.path());
    let secret = tmp.path().join("secrets/registration_shared_secret");
    for (answer_body, status, expected) in [
        (
            r#"{"errcode":"M_USER_IN_USE","error":"User ID already taken."}"#,
            400,
            "exists",
        ),
        (
            r#"{"errcode":"M_FORBIDDEN","error":"HMAC incorrect"}"#,
            403,
            "wrong registration shared secret",
        ),
        (
            r#"{"errcode":"M_INVALID_USERNAME","error":"Numeric user IDs are reserved for guest users."}"#,
            400,
            "M_INVALID_USERNAME",
        ),
    ] {
        let (port, server) = fake_tcp(vec![(200, NONCE), (status, answer_body)]);
        let out = user_add_direct("alice", &format!("127.0.0.1:{port}"), &secret);
        server.join().expect("server");
        assert_fails_saying(&out, expected);
        assert!(out.stdout.is_empty(), "no password printed on failure");
    }
}

/// Kills the Synapse it holds when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Renders `listen`, swaps PostgreSQL for SQLite through the typed model
/// (the acceptance suite runs the real PostgreSQL stack), starts Synapse and
/// waits until its listener answers.
fn start_synapse(python: &Path, dir: &Path, listen: &str) -> Option<(PathBuf, Running)> {
    use ospw_matrix::components::synapse::{
        DatabaseArgs, DatabaseConfig, DatabaseEngine, HomeserverConfig,
    };
    init_secrets(dir);
    let host = dir.join("host.yaml");
    let yaml = text(&std::fs::read(write_host(dir, listen)).expect("read")).replace(
        "synapse:\n",
        &format!("synapse:\n  data_dir: {}/data\n", dir.display()),
    );
    std::fs::write(&host, yaml).expect("write");
    assert_renders(Some(&host), &dir.join("out"));
    let mut config =
        HomeserverConfig::from_yaml_file(&dir.join("out/synapse/homeserver.yaml")).expect("load");
    config.database = Some(DatabaseConfig {
        name: Some(DatabaseEngine::Sqlite3),
        args: Some(DatabaseArgs {
            database: Some(dir.join("homeserver.db").display().to_string()),
            ..DatabaseArgs::default()
        }),
        extra: Default::default(),
    });
    assert!(config.privacy_violations().is_empty());
    let hs = dir.join("homeserver.yaml");
    std::fs::write(&hs, config.to_yaml_string().expect("emit")).expect("write");
    let child = support::service(python)
        .args(["-m", "synapse.app.homeserver", "-c"])
        .arg(&hs)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("synapse.log")).expect("log"))
        .spawn()
        .expect("start synapse");
    let mut running = Running(child);
    let listener = config.listeners.as_ref().and_then(|l| l.first()).cloned()?;
    for _ in 0..240 {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!(
                "Synapse exited ({status}): {}",
                std::fs::read_to_string(dir.join("synapse.log")).unwrap_or_default()
            );
        }
        let up = match (&listener.path, listener.port) {
            (Some(path), _) => std::os::unix::net::UnixStream::connect(path).is_ok(),
            (None, Some(port)) => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            _ => false,
        };
        if up {
            return Some((host, running));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!(
        "Synapse did not listen within 60 s: {}",
        std::fs::read_to_string(dir.join("synapse.log")).unwrap_or_default()
    );
}

#[test]
fn against_a_real_synapse_over_tcp_and_unix_socket() {
    let Some(python) = require(
        "Synapse's Python (OSPW_SYNAPSE_PYTHON)",
        support::synapse_python(),
    ) else {
        return;
    };
    let port = free_port();
    let tcp = TempDir::new("user-live-tcp");
    let unix = TempDir::new("user-live-unix");
    let sock = unix.path().join("synapse.sock");
    for (dir, listen) in [
        (tcp.path(), tcp_listen("127.0.0.1", port)),
        (unix.path(), unix_listen(&sock)),
    ] {
        let Some((host, _synapse)) = start_synapse(&python, dir, &listen) else {
            panic!("no listener");
        };
        let host = s(&host);
        let out = user_add(&["alice", "--admin", "--config", host]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("@alice:example.org"));
        let password = text(&out.stdout).trim().to_owned();
        assert_eq!(password.len(), 32);

        if dir == tcp.path() {
            // The printed password logs in.
            let body = serde_json::json!({"type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"}, "password": password})
            .to_string();
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            write!(
                conn,
                "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("send");
            let mut answer = String::new();
            conn.read_to_string(&mut answer).expect("read");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.contains("@alice:example.org"), "{answer}");
        }

        let again = user_add(&["alice", "--config", host]);
        assert_fails_saying(&again, "exists");

        let wrong = dir.join("wrong");
        std::fs::write(&wrong, "x".repeat(40)).expect("write");
        let out = user_add(&[
            "bob",
            "--config",
            host,
            "--registration-secret-file",
            s(&wrong),
        ]);
        assert_fails_saying(&out, "wrong registration shared secret");
    }
}

#[test]
fn reads_the_rendered_host_json() {
    let tmp = TempDir::new("user-hostjson");
    init_secrets(tmp.path());
    let port = free_port();
    let host = write_host(tmp.path(), &tcp_listen("'::1'", port));
    let out_dir = tmp.path().join("out");
    assert_renders(Some(&host), &out_dir);
    let out = user_add(&["alice", "--config", s(&out_dir.join("host.json"))]);
    let stderr = assert_fails_saying(&out, "server unreachable");
    assert!(stderr.contains(&format!("[::1]:{port}")), "{stderr}");
}

/// Runs `ospw-matrix ARGS` and returns its output.
fn cli(args: &[&str]) -> Output {
    bin().args(args).output().expect("run ospw-matrix")
}

/// Synapse's default login rate limit (`rc_login`: a burst of 5 per address
/// and per account, then about one per 5 minutes) is hit by ordinary use if
/// every admin command logs in. The CLI's service account logs in once and
/// keeps its token: many admin commands in a row against a real Synapse
/// with its default limits all succeed, on one session.
#[test]
fn admin_commands_reuse_one_session_under_default_login_limits() {
    let Some(python) = require(
        "Synapse's Python (OSPW_SYNAPSE_PYTHON)",
        support::synapse_python(),
    ) else {
        return;
    };
    let dir = TempDir::new("admin-session");
    let port = free_port();
    let Some((host, _synapse)) = start_synapse(&python, dir.path(), &tcp_listen("127.0.0.1", port))
    else {
        panic!("no listener");
    };
    let hs = std::fs::read_to_string(dir.path().join("homeserver.yaml")).expect("read");
    assert!(!hs.contains("rc_login"), "Synapse's default limits apply");
    let host = s(&host);
    for name in ["alice", "bob"] {
        let out = user_add(&[name, "--config", host]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let state_file = dir.path().join("secrets/admin-account.json");
    let mut token = None;
    // Twice the burst Synapse allows before refusing logins with 429.
    for i in 0..12 {
        let args: Vec<&str> = match i % 3 {
            0 => vec!["user", "list", "--config", host],
            1 => vec!["user", "admin", "bob", "on", "--config", host],
            _ => vec!["user", "admin", "bob", "off", "--config", host],
        };
        let out = cli(&args);
        assert!(
            out.status.success(),
            "command {i} {args:?} failed: {}",
            text(&out.stderr)
        );
        let state: Value =
            serde_json::from_slice(&std::fs::read(&state_file).expect("state file")).expect("json");
        let now = state["access_token"].as_str().expect("token").to_owned();
        if let Some(first) = &token {
            assert_eq!(&now, first, "command {i} logged in again");
        }
        token = Some(now);
    }
    // One device (one login) for the service account, seen by Synapse itself.
    let state: Value =
        serde_json::from_slice(&std::fs::read(&state_file).expect("state file")).expect("json");
    let user = state["user_id"].as_str().expect("user id");
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        conn,
        "GET /_synapse/admin/v2/users/{}/devices HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\n\r\n",
        user.replace('@', "%40").replace(':', "%3A"),
        token.expect("token")
    )
    .expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The JSON body (possibly sent in chunks): its "total".
    let total = answer.split("\"total\":").nth(1).map(|rest| {
        rest.trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    });
    assert_eq!(total.as_deref(), Some("1"), "{answer}");
}
