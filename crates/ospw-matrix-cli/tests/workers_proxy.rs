//! The proxy's routes to Synapse's workers, in a running Caddy: the
//! rendered Caddyfile of the `medium` preset (two sync workers, two client
//! workers, a stream writer, a media worker) in front of stand-in backends
//! that answer with their own name, one per worker socket and one for the
//! main process. Requests go where Synapse's worker documentation sends
//! them, with the stickiness it requires: every `/sync` of one user (all of
//! their tokens) on one sync worker, and different users spread; every
//! `/messages` of one room on one client worker; a route header a client
//! sends itself changes nothing; federation never reaches a backend.
//!
//! Needs `caddy` and `curl`; under CI a missing one fails.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::{assert_renders, free_port, require, which, TempDir, EXAMPLE_NAMES};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Answers every HTTP request on `stream` with `name`.
fn answer<S: std::io::Read + Write>(mut stream: S, name: &str) {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    // The request line and headers (no request bodies are sent here).
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
        name.len()
    );
}

/// A backend named `name` on the Unix socket `path`.
fn unix_backend(path: &Path, name: &str) {
    let l = UnixListener::bind(path).expect("bind a backend socket");
    let name = name.to_owned();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            answer(s, &name);
        }
    });
}

/// `(status, body)` of `curl` to the proxy (its local CA is not what this
/// test is about: `-k`).
fn get(https: u16, method: &str, path: &str, headers: &[String]) -> (String, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sk",
        "--path-as-is",
        "-X",
        method,
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--resolve")
    .arg(format!("matrix.example.org:{https}:127.0.0.1"));
    for h in headers {
        c.arg("-H").arg(h);
    }
    c.arg(format!("https://matrix.example.org:{https}{path}"));
    let out = c.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_owned(), body.to_owned())
}

/// How many more users and rooms the spread over two workers is checked
/// with, each landing on either at random.
const SPREAD_KEYS: u32 = 40;

/// A Synapse access token of `user` (`syt_<base64 localpart>_<random>_<crc>`).
fn token(user: &str, n: u32) -> String {
    format!("Authorization: Bearer syt_{user}_r{n}nd0mstr1ng_1a2b3c")
}

#[test]
fn the_proxy_routes_each_endpoint_to_its_worker_with_the_required_stickiness() {
    let Some(caddy) = require("caddy", which("caddy")) else {
        return;
    };
    let Some(_curl) = require("curl", which("curl")) else {
        return;
    };
    let tmp = TempDir::new("workers-proxy");
    let dir = tmp.path();
    let sock = dir.join("s");
    std::fs::create_dir_all(&sock).expect("mkdir");
    let (main_port, http, https) = (free_port(), free_port(), free_port());
    let host = dir.join("host.yaml");
    std::fs::write(
        &host,
        format!(
            "{EXAMPLE_NAMES}synapse:
  listen: {{tcp: {{address: 127.0.0.1, port: {main_port}}}}}
  workers:
    preset: medium
    socket_dir: {sock}
proxy:
  tls: internal
  http_port: {http}
  https_port: {https}
  bind: [127.0.0.1]
  admin: 'off'
",
            sock = sock.display()
        ),
    )
    .expect("write host");
    let out = dir.join("out");
    assert_renders(Some(&host), &out);

    // The stand-ins: every worker's client-facing socket, and the main process.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("synapse/workers.json")).expect("manifest"),
    )
    .expect("json");
    for w in manifest["workers"].as_array().expect("workers") {
        if let Some(p) = w["http"].as_str().and_then(|h| h.strip_prefix("unix:")) {
            unix_backend(Path::new(p), w["name"].as_str().expect("name"));
        }
    }
    let main = TcpListener::bind(("127.0.0.1", main_port)).expect("bind main");
    std::thread::spawn(move || {
        for s in main.incoming().flatten() {
            answer(s, "main");
        }
    });

    let mut c = support::service(&caddy);
    c.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(out.join("caddy/Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _caddy = KillOnDrop(c.spawn().expect("start caddy"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(https, "GET", "/_matrix/client/versions", &[]).0 != "200" {
        assert!(Instant::now() < deadline, "Caddy did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }

    let who = |method: &str, path: &str, headers: &[String]| {
        let (code, body) = get(https, method, path, headers);
        assert_eq!(code, "200", "{method} {path}: {code} {body}");
        body
    };

    // /sync: one user's requests, from every one of their tokens, on one
    // sync worker; users spread over both.
    let users = [
        "YWxpY2U", "Ym9i", "Y2Fyb2w", "ZGF2ZQ", "ZXJpbg", "ZnJhbms", "Z3JhY2U", "aGVpZGk",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for u in users {
        let first = who("GET", "/_matrix/client/v3/sync?since=s1", &[token(u, 1)]);
        assert!(first.starts_with("sync"), "{u}: /sync went to {first}");
        for n in 2..5 {
            let path = [
                "/_matrix/client/v3/sync?since=s2",
                "/_matrix/client/r0/sync",
                "/_matrix/client/v3/events",
            ][(n % 3) as usize];
            assert_eq!(who("GET", path, &[token(u, n)]), first, "{u}: {path} moved");
        }
        // The access token in the query (older clients) counts the same.
        let q = format!("/_matrix/client/v3/sync?access_token=syt_{u}_q_1");
        assert_eq!(who("GET", &q, &[]), first, "{u}: query token");
        // A route header sent by the client is replaced.
        let forged = [token(u, 9), "X-Ospw-Route: other".to_owned()];
        assert_eq!(
            who("GET", "/_matrix/client/v3/sync", &forged),
            first,
            "{u}: forged header"
        );
        seen.insert(first);
    }
    // Caddy hashes the key with each upstream's address (here in a fresh
    // temporary directory), so which worker a user lands on changes from
    // run to run: 40 more users make both workers all but certain
    // (1 in 2^39 that one gets none).
    for n in 0..SPREAD_KEYS {
        seen.insert(who(
            "GET",
            "/_matrix/client/v3/sync",
            &[token(&format!("dXNlcj{n}"), 1)],
        ));
    }
    assert_eq!(
        seen.len(),
        2,
        "users not spread over both sync workers: {seen:?}"
    );

    // /messages: one room on one client worker; rooms spread.
    let mut seen = std::collections::BTreeSet::new();
    for r in [
        "!a:example.org",
        "!b:example.org",
        "!c:example.org",
        "!d:example.org",
        "!e:example.org",
        "!f:example.org",
    ] {
        let path = |from: u32| format!("/_matrix/client/v3/rooms/{r}/messages?from=t{from}&dir=b");
        let first = who("GET", &path(1), &[token("YWxpY2U", 1)]);
        assert!(first.starts_with("client"), "{r}: {first}");
        for from in 2..5 {
            assert_eq!(
                who("GET", &path(from), &[token("Ym9i", from)]),
                first,
                "{r} moved"
            );
        }
        seen.insert(first);
    }
    for n in 0..SPREAD_KEYS {
        let path = format!("/_matrix/client/v3/rooms/!room{n}:example.org/messages");
        seen.insert(who("GET", &path, &[token("YWxpY2U", 1)]));
    }
    assert_eq!(
        seen.len(),
        2,
        "rooms not spread over both client workers: {seen:?}"
    );

    // Event sending spread over the client workers.
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..4 {
        let path = format!("/_matrix/client/v3/rooms/!a:example.org/send/m.room.message/t{n}");
        seen.insert(who("PUT", &path, &[token("YWxpY2U", 1)]));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["client1", "client2"]);

    // Each stream's endpoints to its writer; device lists stay with main.
    for (method, path, expected) in [
        (
            "PUT",
            "/_matrix/client/v3/rooms/!a:example.org/typing/@alice:example.org",
            "stream_writer1",
        ),
        (
            "PUT",
            "/_matrix/client/v3/sendToDevice/m.test/t1",
            "stream_writer1",
        ),
        ("GET", "/_matrix/client/v3/pushrules/", "stream_writer1"),
        (
            "PUT",
            "/_matrix/client/v3/presence/@alice:example.org/status",
            "stream_writer1",
        ),
        (
            "POST",
            "/_matrix/client/v3/rooms/!a:example.org/receipt/m.read/$e",
            "stream_writer1",
        ),
        (
            "GET",
            "/_matrix/client/v3/user/@alice:example.org/account_data/m.x",
            "stream_writer1",
        ),
        ("POST", "/_matrix/client/v3/keys/upload", "main"),
        ("GET", "/_matrix/client/v3/devices", "main"),
        ("POST", "/_matrix/media/v3/upload", "media1"),
        (
            "GET",
            "/_matrix/client/v1/media/download/example.org/abc",
            "media1",
        ),
        ("POST", "/_matrix/client/v3/keys/query", "client1"),
        ("POST", "/_matrix/client/v3/logout", "main"),
        ("POST", "/_matrix/client/v3/account/password", "main"),
        ("GET", "/_synapse/client/pick_idp", "main"),
    ] {
        let got = who(method, path, &[token("YWxpY2U", 1)]);
        if expected == "client1" {
            assert!(got.starts_with("client"), "{method} {path} went to {got}");
        } else {
            assert_eq!(got, expected, "{method} {path}");
        }
    }

    // Federation and the admin API never reach a backend.
    for path in [
        "/_matrix/federation/v1/version",
        "/_matrix/federation/v1/media/download/abc",
        "/_matrix/key/v2/server",
        "/_synapse/admin/v1/server_version",
        "/_synapse/admin/v1/rooms/!a:example.org",
    ] {
        let (code, body) = get(https, "GET", path, &[]);
        assert_eq!((code.as_str(), body.as_str()), ("404", ""), "{path}");
    }
}
