//! Caddy: the rendered Caddyfiles are accepted by the real `caddy`, adapt to
//! the expected routes, and a running Caddy answers as intended.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{assert_renders, free_port, require, which, TempDir, EXAMPLE_NAMES as NAMES};

/// Kills the child process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Renders `yaml` into `<dir>/rendered`.
fn render(dir: &Path, yaml: &str) -> PathBuf {
    let host = dir.join("host.yaml");
    std::fs::write(&host, yaml).unwrap();
    let out = dir.join("rendered");
    assert_renders(Some(&host), &out);
    out
}

/// Renders the built-in example into `<dir>/rendered`.
fn render_example(dir: &Path) -> PathBuf {
    let out = dir.join("rendered");
    assert_renders(None, &out);
    out
}

/// `caddy` with its state (local CA, certificates) kept in `dir`.
fn caddy(bin: &Path, dir: &Path) -> Command {
    let mut c = support::service(bin);
    c.env("HOME", dir.join("home"))
        .env("XDG_DATA_HOME", dir.join("home/data"))
        .env("XDG_CONFIG_HOME", dir.join("home/config"));
    c
}

fn validate(bin: &Path, dir: &Path, file: &Path) -> Output {
    caddy(bin, dir)
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(file)
        .output()
        .expect("run caddy validate")
}

/// Runs `caddy adapt` on the rendered sites file (NixOS imports it alone).
fn adapt_sites(bin: &Path, dir: &Path, out: &Path) -> Output {
    caddy(bin, dir)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(out.join("caddy/sites.caddy"))
        .output()
        .expect("run caddy adapt")
}

fn assert_valid(bin: &Path, dir: &Path, file: &Path) {
    let o = validate(bin, dir, file);
    assert!(
        o.status.success(),
        "caddy refused {}:\n{}\n{}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn standalone_caddyfiles_validate() {
    let Some(bin) = require("caddy", which("caddy")) else {
        return;
    };
    let variants = [
        ("example", String::new()),
        (
            "internal-tls-custom-ports",
            format!(
                "{NAMES}proxy:\n  tls: internal\n  http_port: {}\n  https_port: {}\n  \
                 bind: [127.0.0.1, \"::1\"]\n  admin: \"off\"\n",
                free_port(),
                free_port()
            ),
        ),
        (
            "unix-socket",
            format!(
                "{NAMES}synapse:\n  listen:\n    unix:\n      path: /run/synapse/client.sock\n"
            ),
        ),
        (
            "server-name-is-matrix-host",
            "base_domain: matrix.example.org\n\
             server_name: matrix.example.org\n\
             matrix_host: matrix.example.org\n\
             element_host: chat.example.org\n"
                .to_owned(),
        ),
        (
            "element-on-base-domain",
            "base_domain: example.org\n\
             server_name: example.org\n\
             matrix_host: matrix.example.org\n\
             element_host: example.org\n"
                .to_owned(),
        ),
        (
            "server-name-is-matrix-host-with-base",
            "base_domain: example.org\n\
             server_name: matrix.example.org\n\
             matrix_host: matrix.example.org\n\
             element_host: chat.example.org\n\
             proxy:\n  serve_base_domain: false\n"
                .to_owned(),
        ),
        (
            "metrics",
            format!(
                "{NAMES}metrics:\n  enable: true\n  caddy_port: {}\n",
                free_port()
            ),
        ),
    ];
    for (name, yaml) in variants {
        let dir = TempDir::new(&format!("caddy-{name}"));
        let out = if yaml.is_empty() {
            render_example(dir.path())
        } else {
            render(dir.path(), &yaml)
        };
        let caddyfile = out.join("caddy/Caddyfile");
        assert_valid(&bin, dir.path(), &caddyfile);
        // The sites file alone adapts too (NixOS imports it).
        let o = adapt_sites(&bin, dir.path(), &out);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(&caddyfile).unwrap();
        match name {
            "internal-tls-custom-ports" => {
                assert!(text.contains("local_certs") && text.contains("tls internal"));
                assert!(text.contains("bind 127.0.0.1 [::1]"), "{text}");
                assert!(text.contains("admin off"), "{text}");
            }
            "unix-socket" => {
                assert!(
                    text.contains("reverse_proxy unix//run/synapse/client.sock"),
                    "{text}"
                )
            }
            "element-on-base-domain" => {
                assert_eq!(text.matches("\nexample.org {").count(), 1, "{text}");
                assert!(text.contains("handle /.well-known/matrix/client"), "{text}");
            }
            "metrics" => {
                assert!(text.contains("\nhttp://127.0.0.1:"), "{text}");
                assert!(text.contains("\tbind 127.0.0.1\n\tmetrics\n"), "{text}");
            }
            "server-name-is-matrix-host" | "server-name-is-matrix-host-with-base" => {
                assert!(!text.contains("\nexample.org {"), "{text}")
            }
            _ => assert!(text.contains("\nexample.org {"), "{text}"),
        }
    }
}

/// A broken Caddyfile is refused: the validation test can fail.
#[test]
fn caddy_validate_refuses_a_broken_file() {
    let Some(bin) = require("caddy", which("caddy")) else {
        return;
    };
    let dir = TempDir::new("caddy-broken");
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, "example.org {\n\tno_such_directive\n}\n").unwrap();
    assert!(!validate(&bin, dir.path(), &file).status.success());
}

/// Matches a request path against a Caddy path pattern (`/a/*`, exact).
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// The terminal handler a request for `path` reaches in `routes` (a
/// subroute's route list): routes in order, one per group, nested
/// subroutes followed, header handlers skipped.
fn resolve<'a>(routes: &'a [serde_json::Value], path: &str) -> Option<&'a serde_json::Value> {
    let mut groups_done: Vec<&str> = Vec::new();
    for route in routes {
        if let Some(matchers) = route.get("match").and_then(|m| m.as_array()) {
            // Host matchers were applied when the site was picked.
            let hit = matchers
                .iter()
                .any(|m| match m.get("path").and_then(|p| p.as_array()) {
                    Some(ps) => ps.iter().any(|p| path_matches(p.as_str().unwrap(), path)),
                    None => true,
                });
            if !hit {
                continue;
            }
        }
        if let Some(group) = route.get("group").and_then(|g| g.as_str()) {
            if groups_done.contains(&group) {
                continue;
            }
            groups_done.push(group);
        }
        for h in route["handle"].as_array().into_iter().flatten() {
            match h["handler"].as_str() {
                Some("subroute") => {
                    if let Some(found) = resolve(h["routes"].as_array().unwrap(), path) {
                        return Some(found);
                    }
                }
                Some("headers") | Some("vars") | Some("rewrite") => {}
                _ => return Some(h),
            }
        }
    }
    None
}

/// The route list of the site for `host` in adapted JSON.
fn site_routes<'a>(config: &'a serde_json::Value, host: &str) -> &'a [serde_json::Value] {
    let servers = config["apps"]["http"]["servers"].as_object().unwrap();
    for server in servers.values() {
        for route in server["routes"].as_array().unwrap() {
            let hosts = route["match"][0]["host"].as_array();
            if hosts.is_some_and(|hs| hs.iter().any(|h| h == host)) {
                return std::slice::from_ref(route);
            }
        }
    }
    panic!("no site for {host}")
}

#[test]
fn adapted_sites_route_as_intended() {
    let Some(bin) = require("caddy", which("caddy")) else {
        return;
    };
    let dir = TempDir::new("caddy-adapt");
    let out = render_example(dir.path());
    let o = adapt_sites(&bin, dir.path(), &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let matrix = site_routes(&config, "matrix.example.org");
    let proxied = |path: &str| {
        let h = resolve(matrix, path).unwrap_or_else(|| panic!("{path} reaches nothing"));
        h["handler"] == "reverse_proxy" && h["upstreams"][0]["dial"] == "127.0.0.1:8008"
    };
    let status = |routes: &[serde_json::Value], path: &str| {
        let h = resolve(routes, path).unwrap_or_else(|| panic!("{path} reaches nothing"));
        assert_eq!(h["handler"], "static_response", "{path}: {h}");
        h["status_code"].as_u64()
    };
    for path in [
        "/_matrix/client/versions",
        "/_matrix/media/v3/download/x/y",
        "/_synapse/client/password_reset/email/submit_token",
    ] {
        assert!(proxied(path), "{path} does not reach Synapse");
    }
    for path in [
        "/_matrix/federation/v1/version",
        "/_matrix/key/v2/server",
        "/_synapse/admin/v1/users",
        "/.well-known/matrix/server",
        "/",
        "/index.html",
    ] {
        assert_eq!(status(matrix, path), Some(404), "{path}");
    }
    let wk = resolve(matrix, "/.well-known/matrix/client").unwrap();
    let body: serde_json::Value = serde_json::from_str(wk["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );

    let base = site_routes(&config, "example.org");
    assert_eq!(status(base, "/.well-known/matrix/server"), Some(404));
    assert_eq!(status(base, "/.well-known/matrix/client"), Some(200));
    let redirect = resolve(base, "/anything").unwrap();
    assert_eq!(
        redirect["headers"]["Location"][0],
        "https://chat.example.org/"
    );

    let element = site_routes(&config, "chat.example.org");
    for path in [
        "/config.json",
        "/config.chat.example.org.json",
        "/index.html",
    ] {
        let h = resolve(element, path).unwrap();
        assert_eq!(h["handler"], "file_server", "{path}: {h}");
    }
}

/// A minimal upstream standing in for Synapse: answers every request with
/// `upstream <path>`.
fn fake_synapse() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_one(stream));
        }
    });
    port
}

/// The same on a Unix socket at `path`.
fn fake_synapse_unix(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let reader = BufReader::new(stream.try_clone().unwrap());
                serve(reader, stream)
            });
        }
    });
}

fn serve_one(stream: TcpStream) {
    let reader = BufReader::new(stream.try_clone().unwrap());
    serve(reader, stream)
}

fn serve(mut reader: impl BufRead, mut stream: impl Write) {
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let body = format!("upstream {path}");
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn curl_get(curl: &Path, https_port: u16, host: &str, path: &str) -> Response {
    let dir = TempDir::new("curl");
    let headers = dir.path().join("headers");
    let o = Command::new(curl)
        .args([
            "-sS",
            "-k",
            "--http1.1",
            "--path-as-is",
            "--max-time",
            "10",
            "--resolve",
        ])
        .arg(format!("{host}:{https_port}:127.0.0.1"))
        .arg("-D")
        .arg(&headers)
        .arg(format!("https://{host}:{https_port}{path}"))
        .stderr(Stdio::piped())
        .output()
        .expect("run curl");
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&o.stdout).into_owned(),
    }
}

#[test]
fn running_caddy_serves_the_sites() {
    run_caddy(false);
}

#[test]
fn running_caddy_proxies_to_a_unix_socket() {
    run_caddy(true);
}

fn run_caddy(unix: bool) {
    let Some(bin) = require("caddy", which("caddy")) else {
        return;
    };
    let Some(curl) = require("curl", which("curl")) else {
        return;
    };
    let dir = TempDir::new("caddy-run");
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    std::fs::write(webroot.join("index.html"), "ELEMENT INDEX").unwrap();
    std::fs::write(webroot.join("config.json"), "{\"stale\": true}").unwrap();
    std::fs::write(webroot.join("bundle.js"), "console.log(1)").unwrap();
    std::fs::write(webroot.join("welcome.html"), "ELEMENT'S OWN WELCOME").unwrap();
    let branding = dir.path().join("branding");
    std::fs::create_dir_all(&branding).unwrap();
    std::fs::write(branding.join("logo.svg"), "<svg>LOGO</svg>").unwrap();
    std::fs::write(branding.join("private.txt"), "NOT SERVED").unwrap();
    let listen = if unix {
        let socket = dir.path().join("synapse.sock");
        fake_synapse_unix(&socket);
        format!("    unix:\n      path: {}\n", socket.display())
    } else {
        let port = fake_synapse();
        format!("    tcp:\n      address: 127.0.0.1\n      port: {port}\n")
    };
    let (http_port, https_port) = (free_port(), free_port());
    let yaml = format!(
        "{NAMES}synapse:\n  listen:\n{listen}\
         element:\n  webroot: {}\n  branding:\n    welcome_text: Hello from the test\n    \
         logo_file: {}/logo.svg\n\
         proxy:\n  tls: internal\n  http_port: {http_port}\n  https_port: {https_port}\n  \
         bind: [127.0.0.1]\n  admin: \"off\"\n",
        webroot.display(),
        branding.display()
    );
    let out = render(dir.path(), &yaml);
    let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
    let child = caddy(&bin, dir.path())
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(out.join("caddy/Caddyfile"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start caddy");
    let mut server = KillOnDrop(child);
    let get = |host: &str, path: &str| curl_get(&curl, https_port, host, path);
    // Wait until the HTTPS listener answers with a certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!(
                "caddy exited with {status}: {}",
                std::fs::read_to_string(dir.path().join("caddy.log")).unwrap_or_default()
            );
        }
        if get("matrix.example.org", "/_matrix/client/versions").status != 0 {
            break;
        }
        assert!(Instant::now() < deadline, "caddy never answered");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Matrix host.
    let r = get("matrix.example.org", "/_matrix/client/versions");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream /_matrix/client/versions")
    );
    let r = get("matrix.example.org", "/_synapse/client/new_user_consent");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("upstream /_synapse/client/"));
    for path in [
        "/_matrix/federation/v1/version",
        "/_matrix/key/v2/server",
        "/_synapse/admin/v1/server_version",
        "/.well-known/matrix/server",
        "/",
        // Spellings that must not slip past the path matchers.
        "/_matrix//federation/v1/version",
        "/_matrix/%66ederation/v1/version",
        "/_MATRIX/federation/v1/version",
        "/_matrix/Federation/v1/version",
        "/_matrix/client/../federation/v1/version",
        "/_matrix/client/../../_synapse/admin/v1/server_version",
        "/_synapse/client/../admin/v1/server_version",
        "/_synapse/%61dmin/v1/server_version",
    ] {
        let r = get("matrix.example.org", path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(!r.body.contains("upstream"), "{path} reached Synapse");
    }
    let r = get("matrix.example.org", "/.well-known/matrix/client");
    assert_eq!(r.status, 200);
    let expected_base = format!("https://matrix.example.org:{https_port}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["m.homeserver"]["base_url"], expected_base.as_str());

    // Base domain.
    let r = get("example.org", "/.well-known/matrix/client");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["m.homeserver"]["base_url"], expected_base.as_str());
    assert_eq!(get("example.org", "/.well-known/matrix/server").status, 404);
    let r = get("example.org", "/some/page");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("Location"),
        Some(format!("https://chat.example.org:{https_port}/").as_str())
    );

    // Element host: config.json from the rendered output, not the webroot.
    let rendered_config = std::fs::read_to_string(out.join("element/config.json")).unwrap();
    for path in ["/config.json", "/config.chat.example.org.json"] {
        let r = get("chat.example.org", path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, rendered_config, "{path}");
        assert_eq!(r.header("Cache-Control"), Some("no-cache"), "{path}");
    }
    let r = get("chat.example.org", "/");
    assert_eq!((r.status, r.body.as_str()), (200, "ELEMENT INDEX"));
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    assert_eq!(r.header("X-Frame-Options"), Some("SAMEORIGIN"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"));
    assert_eq!(
        r.header("Content-Security-Policy"),
        Some("frame-ancestors 'self'")
    );
    assert!(r.header("Strict-Transport-Security").is_some());
    assert_eq!(r.header("Server"), None);
    // The welcome page and the logo from the rendered output and the
    // logo file, nothing else of the logo's directory.
    let r = get("chat.example.org", "/welcome.html");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read_to_string(out.join("element/welcome.html")).unwrap()
    );
    assert!(r.body.contains("Hello from the test"), "{}", r.body);
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    let r = get("chat.example.org", "/branding/logo.svg");
    assert_eq!((r.status, r.body.as_str()), (200, "<svg>LOGO</svg>"));
    for path in ["/branding/private.txt", "/branding/logo.svg/../private.txt"] {
        let r = get("chat.example.org", path);
        assert!(!r.body.contains("NOT SERVED"), "{path}: {}", r.body);
    }
    let r = get("chat.example.org", "/bundle.js");
    assert_eq!((r.status, r.body.as_str()), (200, "console.log(1)"));
    assert_eq!(
        r.header("Cache-Control"),
        None,
        "static assets may be cached"
    );

    assert!(
        server.0.try_wait().unwrap().is_none(),
        "caddy died during the test"
    );
    drop(server);
}

/// Addresses Caddy listens on (TCP, LISTEN state) for `port`, from
/// /proc/net/tcp and tcp6, as `ip` text.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 || fields[3] != "0A" {
                continue;
            }
            let Some((addr, p)) = fields[1].split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            let bytes: Vec<u8> = (0..addr.len() / 2)
                .filter_map(|i| u8::from_str_radix(&addr[2 * i..2 * i + 2], 16).ok())
                .collect();
            // The kernel prints each 32-bit word in host (little-endian) order.
            let fixed: Vec<u8> = bytes
                .chunks(4)
                .flat_map(|w| w.iter().rev().copied().collect::<Vec<u8>>())
                .collect();
            let ip = if v6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&fixed[..16]);
                std::net::IpAddr::from(a)
            } else {
                std::net::IpAddr::from([fixed[0], fixed[1], fixed[2], fixed[3]])
            };
            out.push(ip.to_string());
        }
    }
    out
}

/// Runs `caddy run` on `caddyfile` (environment `env`) until its admin
/// endpoint listens on `port`, and returns the addresses it listens on.
fn admin_listens_on(
    bin: &Path,
    dir: &Path,
    caddyfile: &Path,
    port: u16,
    env: &[(&str, &str)],
) -> Vec<String> {
    let log = std::fs::File::create(dir.join("caddy-admin.log")).unwrap();
    let mut cmd = caddy(bin, dir);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(caddyfile)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = KillOnDrop(cmd.spawn().expect("start caddy"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = listening_addresses(port);
        if !found.is_empty() {
            drop(server);
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "caddy never listened on {port}: {}",
            std::fs::read_to_string(dir.join("caddy-admin.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Class 9: Caddy's admin endpoint (no authentication) stays on loopback,
/// a Unix socket, or off. What the renderer accepts is what Caddy uses; what
/// it refuses Caddy really would expose (checked with the real Caddy).
#[test]
fn admin_endpoint_stays_off_the_network() {
    let Some(bin) = require("caddy", which("caddy")) else {
        return;
    };
    let dir = TempDir::new("caddy-admin");
    let port = free_port();
    let sock = dir.path().join("admin.sock");
    let accepted = [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("unix/{}", sock.display()),
        "off".to_owned(),
    ];
    for admin in &accepted {
        let sub = TempDir::new("caddy-admin-ok");
        let out = render(
            sub.path(),
            &format!("{NAMES}proxy:\n  admin: \"{admin}\"\n"),
        );
        let o = caddy(&bin, sub.path())
            .args(["adapt", "--adapter", "caddyfile", "--config"])
            .arg(out.join("caddy/Caddyfile"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{admin}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if admin == "off" {
            assert_eq!(v["admin"]["disabled"], true, "{v}");
        } else {
            assert_eq!(v["admin"]["listen"], admin.as_str(), "{admin}");
        }
    }
    // The rendered loopback address is where the running Caddy listens.
    let sub = TempDir::new("caddy-admin-run");
    let out = render(
        sub.path(),
        &format!(
            "{NAMES}proxy:\n  tls: internal\n  http_port: {}\n  https_port: {}\n  \
             bind: [127.0.0.1]\n  admin: \"127.0.0.1:{port}\"\n",
            free_port(),
            free_port()
        ),
    );
    let found = admin_listens_on(&bin, sub.path(), &out.join("caddy/Caddyfile"), port, &[]);
    assert_eq!(
        found,
        vec!["127.0.0.1"],
        "admin endpoint listens on {found:?}"
    );

    // Refused, naming proxy.admin: each would take the endpoint elsewhere.
    let wide = free_port();
    for admin in [
        format!(":{wide}"),
        format!("0.0.0.0:{wide}"),
        format!("[::]:{wide}"),
        "{env.OSPW_ADMIN}".to_owned(),
        format!("tcp4/0.0.0.0:{wide}"),
        format!("example.org:{wide}"),
    ] {
        let sub = TempDir::new("caddy-admin-bad");
        let host = sub.path().join("host.yaml");
        std::fs::write(&host, format!("{NAMES}proxy:\n  admin: \"{admin}\"\n")).unwrap();
        let o = support::render_to(Some(&host), &sub.path().join("out"));
        support::assert_fails_naming(&o, &["proxy.admin"]);
    }
    // What Caddy itself makes of two of them: the wildcard address, and a
    // placeholder filled from the environment when Caddy starts.
    for (admin, env) in [
        (format!(":{wide}"), vec![]),
        (
            "{env.OSPW_ADMIN}".to_owned(),
            vec![("OSPW_ADMIN", format!(":{wide}"))],
        ),
    ] {
        let sub = TempDir::new("caddy-admin-wide");
        let file = sub.path().join("Caddyfile");
        std::fs::write(&file, format!("{{\n\tadmin {admin}\n}}\n")).unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let found = admin_listens_on(&bin, sub.path(), &file, wide, &env);
        assert!(
            found.iter().all(|a| a == "0.0.0.0" || a == "::"),
            "{admin}: {found:?}"
        );
    }
}

/// Every string value in `v` under a key named `key`.
fn values_named(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                match item {
                    serde_json::Value::String(s) if k == key => out.push(s.clone()),
                    _ => values_named(item, key, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| values_named(i, key, out)),
        _ => {}
    }
}

/// Class 3 for the Caddyfile: every value written into it is read back by
/// the real Caddy exactly as written, and what Caddy would read otherwise
/// (placeholders, `{$VAR}`, line breaks) is refused naming the field.
#[test]
fn caddy_reads_every_written_value_back() {
    let Some(bin) = require("caddy", which("caddy")) else {
        return;
    };
    let dir = TempDir::new("caddy-values");
    // Odd but plain: quotes, apostrophes, #, a backslash, a backtick,
    // spaces, non-ASCII letters.
    let webroot = dir.path().join("element web/it's #1 \"chät\" a\\b `c`");
    let socket = dir.path().join("synapse sock/client's.sock");
    let email = "o'brien+chat@example.org";
    let out = dir.path().join("rendered out #1");
    let yaml = format!(
        "{NAMES}synapse:\n  listen:\n    unix:\n      path: {}\n\
         element:\n  webroot: {}\n\
         proxy:\n  acme_email: {}\n",
        serde_json::to_string(&socket.display().to_string()).unwrap(),
        serde_json::to_string(&webroot.display().to_string()).unwrap(),
        serde_json::to_string(email).unwrap(),
    );
    let host = dir.path().join("host.yaml");
    std::fs::write(&host, yaml).unwrap();
    assert_renders(Some(&host), &out);
    let o = caddy(&bin, dir.path())
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(out.join("caddy/Caddyfile"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut roots = Vec::new();
    values_named(&v, "root", &mut roots);
    assert!(roots.contains(&webroot.display().to_string()), "{roots:?}");
    assert!(
        roots.contains(&out.join("element").display().to_string()),
        "{roots:?}"
    );
    let mut dials = Vec::new();
    values_named(&v, "dial", &mut dials);
    assert!(
        dials.contains(&format!("unix/{}", socket.display())),
        "{dials:?}"
    );
    let mut emails = Vec::new();
    values_named(&v, "email", &mut emails);
    assert!(
        !emails.is_empty() && emails.iter().all(|e| e == email),
        "{emails:?}"
    );

    // Refused, naming the field: each would be read differently by Caddy.
    for (field, yaml) in [
        (
            "element.webroot",
            "element:\n  webroot: \"/srv/{header.X-Root}\"\n",
        ),
        (
            "element.webroot",
            "element:\n  webroot: \"/srv/{$HOME}/element\"\n",
        ),
        (
            "element.webroot",
            "element:\n  webroot: \"/srv/el\\nement\"\n",
        ),
        (
            "element.webroot",
            "element:\n  webroot: \"/srv/{env.WEBROOT}\"\n",
        ),
        (
            "synapse.listen.unix.path",
            "synapse:\n  listen:\n    unix:\n      path: \"/run/{query.s}.sock\"\n",
        ),
        (
            "synapse.listen.unix.path",
            "synapse:\n  listen:\n    unix:\n      path: \"/run/s.sock|0777\"\n",
        ),
        (
            "proxy.acme_email",
            "proxy:\n  acme_email: \"{$EMAIL}@example.org\"\n",
        ),
        (
            "proxy.acme_email",
            "proxy:\n  acme_email: \"#me@example.org\"\n",
        ),
        (
            "element.branding.logo_file",
            "element:\n  branding:\n    logo_file: \"/srv/{path}/logo.svg\"\n",
        ),
    ] {
        let sub = TempDir::new("caddy-values-bad");
        let host = sub.path().join("host.yaml");
        std::fs::write(&host, format!("{NAMES}{yaml}")).unwrap();
        let o = support::render_to(Some(&host), &sub.path().join("out"));
        support::assert_fails_naming(&o, &[field]);
    }

    // Why: a running Caddy given a placeholder in `root` serves whatever
    // directory the client names, and `{$VAR}` is replaced even in quotes.
    let Some(curl) = require("curl", which("curl")) else {
        return;
    };
    let run = TempDir::new("caddy-values-run");
    std::fs::create_dir_all(run.path().join("webroot")).unwrap();
    std::fs::create_dir_all(run.path().join("private")).unwrap();
    std::fs::write(run.path().join("webroot/index.html"), "PUBLIC").unwrap();
    std::fs::write(run.path().join("private/index.html"), "PRIVATE").unwrap();
    let (http, https) = (free_port(), free_port());
    let file = run.path().join("Caddyfile");
    std::fs::write(
        &file,
        format!(
            "{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {http}\n\thttps_port {https}\n}}\n\
             chat.example.org:{https} {{\n\tbind 127.0.0.1\n\ttls internal\n\
             \troot * \"{}/{{header.X-Root}}\"\n\theader X-Env \"{{$OSPW_CADDY_PROBE}}\"\n\tfile_server\n}}\n",
            run.path().display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(run.path().join("caddy.log")).unwrap();
    let server = KillOnDrop(
        caddy(&bin, run.path())
            .env("OSPW_CADDY_PROBE", "from the environment")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let get = |root: &str| {
        let o = Command::new(&curl)
            .args(["-sS", "-k", "-i", "--max-time", "5", "-H"])
            .arg(format!("X-Root: {root}"))
            .arg("--resolve")
            .arg(format!("chat.example.org:{https}:127.0.0.1"))
            .arg(format!("https://chat.example.org:{https}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get("webroot").contains("PUBLIC") {
        assert!(
            Instant::now() < deadline,
            "caddy never answered: {}",
            std::fs::read_to_string(run.path().join("caddy.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = get("private");
    assert!(r.contains("PRIVATE"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("x-env: from the environment"),
        "{r}"
    );
    drop(server);
}
