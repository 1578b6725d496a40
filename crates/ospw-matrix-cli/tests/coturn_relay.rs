//! TURN relaying with the production configuration, against the real
//! coturn, in network namespaces this test creates itself: a peer with an
//! ordinary public address gets a permission and a channel on UDP and TCP
//! allocations (IPv4 and IPv6), data flows both ways through the relay,
//! and every denied range is refused with 403, as are its first and last
//! addresses, while the addresses just outside each range are relayed to.
//!
//! Layout: namespace `T` runs coturn (started from the materialized
//! production configuration, listening on its veth addresses) and the TURN
//! clients; namespace `P` is the peer, running `turnutils_peer`. The two
//! share one veth link and have no other route, so nothing leaves them.
//! The addresses sit just outside denied ranges: 100.128.0.0/24 follows
//! CGNAT (100.64.0.0/10), 2001:200::/64 follows 2001::/23.

mod support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ospw_matrix::components::coturn::{ranges, rest_api_password, REQUIRED_DENIED_PEER_IPS};
use support::{require, stderr_of, which, TempDir, EXAMPLE_NAMES};

const SERVER_V4: &str = "100.128.0.1";
const PEER_V4: &str = "100.128.0.2";
const SERVER_V6: &str = "2001:200::1";
const PEER_V6: &str = "2001:200::2";

/// Runs `ip ARGS`, failing the test with its error output.
fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed (creating network namespaces needs root): {}",
        args.join(" "),
        stderr_of(&out)
    );
    out
}

/// Two network namespaces joined by a veth pair; removed when dropped,
/// after ending the processes this test started in them.
struct Namespaces {
    turn: String,
    peer: String,
}

impl Namespaces {
    fn create() -> Self {
        let id = std::process::id();
        let ns = Self {
            turn: format!("ospw-turn-{id}"),
            peer: format!("ospw-peer-{id}"),
        };
        // Left over from a killed run of the same pid: start clean.
        ns.remove();
        ip(&["netns", "add", &ns.turn]);
        ip(&["netns", "add", &ns.peer]);
        let (vt, vp) = (format!("ot{id}"), format!("op{id}"));
        ip(&["link", "add", &vt, "type", "veth", "peer", "name", &vp]);
        ip(&["link", "set", &vt, "netns", &ns.turn]);
        ip(&["link", "set", &vp, "netns", &ns.peer]);
        for (name, dev, v4, v6) in [
            (&ns.turn, &vt, SERVER_V4, SERVER_V6),
            (&ns.peer, &vp, PEER_V4, PEER_V6),
        ] {
            ip(&["-n", name, "link", "set", "lo", "up"]);
            ip(&["-n", name, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", name, "link", "set", dev, "up"]);
        }
        ns
    }

    /// A command running `program` inside namespace `ns`, killed by the
    /// kernel when the test thread that starts it ends.
    fn exec(ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "setpriv", "--pdeathsig=KILL", "--"])
            .arg(program);
        c
    }

    fn remove(&self) {
        for ns in [&self.turn, &self.peer] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.remove();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn credentials(secret: &str, user: &str) -> (String, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let username = format!("{}:{user}", now + 3600);
    let password = rest_api_password(secret, &username);
    (username, password)
}

/// Runs `turnutils_uclient ARGS` inside the TURN namespace (at most 40 s);
/// returns its output.
fn uclient(ns: &str, bin: &Path, args: &[String]) -> String {
    let mut child = Namespaces::exec(ns, bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start turnutils_uclient");
    let deadline = Instant::now() + Duration::from_secs(40);
    while child.try_wait().expect("wait for uclient").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("uclient output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One client run: `tcp` for a TCP connection to the server, `v6` for an
/// IPv6 relay, `send` for CreatePermission + Send (else ChannelBind +
/// ChannelData), `messages` to send to `peer`.
struct Run {
    tcp: bool,
    v6: bool,
    send: bool,
    messages: u32,
    peer: String,
}

impl Run {
    fn args(&self, user: &str, password: &str) -> Vec<String> {
        let mut a: Vec<String> = vec!["-v".into(), "-c".into()];
        if self.tcp {
            a.push("-t".into());
        }
        if self.v6 {
            a.push("-x".into());
        }
        if self.send {
            a.push("-s".into());
        }
        for (flag, value) in [
            ("-n", self.messages.to_string()),
            ("-p", "3478".to_owned()),
            ("-u", user.to_owned()),
            ("-w", password.to_owned()),
            ("-e", self.peer.clone()),
        ] {
            a.push(flag.into());
            a.push(value);
        }
        a.push(SERVER_V4.into());
        a
    }

    fn describe(&self) -> String {
        format!(
            "{} allocation over {}, {} to {}",
            if self.v6 { "IPv6" } else { "IPv4" },
            if self.tcp { "TCP" } else { "UDP" },
            if self.send {
                "permission + send"
            } else {
                "channel"
            },
            self.peer
        )
    }
}

/// Runs every run (at most `parallel` at once, each with a user name of
/// its own, so no run meets another's quota) and returns the outputs.
fn run_all(
    ns: &str,
    bin: &Path,
    secret: &str,
    runs: &[Run],
    parallel: usize,
    tag: &str,
) -> Vec<String> {
    let mut outputs = Vec::new();
    for (c, chunk) in runs.chunks(parallel).enumerate() {
        let chunk_out: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, run)| {
                    let (user, password) = credentials(secret, &format!("{tag}{c}x{i}"));
                    s.spawn(move || uclient(ns, bin, &run.args(&user, &password)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("client thread"))
                .collect()
        });
        outputs.extend(chunk_out);
    }
    outputs
}

/// The first and last address of each required range, and the addresses
/// just outside it that no required range denies.
fn probes() -> (Vec<IpAddr>, Vec<IpAddr>) {
    let required: Vec<ranges::Interval> = REQUIRED_DENIED_PEER_IPS
        .iter()
        .map(|r| ranges::interval(r).expect("required range reads as written"))
        .collect();
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    let max = |v6: bool| if v6 { u128::MAX } else { u128::from(u32::MAX) };
    for r in &required {
        denied.push(r.first_addr());
        if r.last != r.first {
            denied.push(r.last_addr());
        }
        let mut outside = Vec::new();
        if r.first > 0 {
            outside.push(r.first - 1);
        }
        if r.last < max(r.v6) {
            outside.push(r.last + 1);
        }
        for n in outside {
            let a = ranges::addr(r.v6, n);
            let taken = required.iter().any(|q| q.contains(a))
                || a.is_unspecified()
                || allowed.contains(&a)
                || [SERVER_V4, SERVER_V6].contains(&a.to_string().as_str());
            if !taken {
                allowed.push(a);
            }
        }
    }
    (denied, allowed)
}

fn render_and_materialize(dir: &Path) -> (PathBuf, String) {
    let host = dir.join("host.yaml");
    std::fs::write(
        &host,
        format!(
            "{EXAMPLE_NAMES}turn:\n  host: turn.example.org\n  listening_ips: [{SERVER_V4}, \
             '{SERVER_V6}']\n"
        ),
    )
    .expect("write host");
    let out = dir.join("rendered");
    support::assert_renders(Some(&host), &out);
    let secret = format!("relay-test-{}-0123456789abcdef", std::process::id());
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).expect("write secret");
    let runtime = dir.join("turnserver.conf");
    let o = support::run(&[
        "materialize",
        "coturn",
        "--template",
        &out.join("coturn/turnserver.conf").display().to_string(),
        "--secret-file",
        &secret_file.display().to_string(),
        "--out",
        &runtime.display().to_string(),
    ]);
    assert!(o.status.success(), "materialize: {}", stderr_of(&o));
    let text = std::fs::read_to_string(&runtime).expect("read runtime config");
    assert!(
        !text.lines().any(|l| l == "allow-loopback-peers"),
        "the production config must not allow loopback peers"
    );
    (runtime, secret)
}

#[test]
fn relays_to_an_ordinary_peer_and_refuses_every_denied_range() {
    let Some(_ip) = require("iproute2 (ip)", which("ip")) else {
        return;
    };
    let Some(turnserver) = require("coturn (turnserver)", which("turnserver")) else {
        return;
    };
    let Some(client) = require("coturn (turnutils_uclient)", which("turnutils_uclient")) else {
        return;
    };
    let Some(peer_bin) = require("coturn (turnutils_peer)", which("turnutils_peer")) else {
        return;
    };
    let dir = TempDir::new("coturn-relay");
    let (runtime, secret) = render_and_materialize(dir.path());
    let ns = Namespaces::create();

    // The peer: echoes every datagram back to where it came from (the relay).
    let mut peers = Vec::new();
    for addr in [PEER_V4, PEER_V6] {
        let child = Namespaces::exec(&ns.peer, &peer_bin)
            .args(["-L", addr, "-p", "3480"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnutils_peer");
        peers.push(KillOnDrop(child));
    }
    // coturn with the materialized production file as it is; only its pid
    // file goes to the temp dir.
    let log_path = dir.path().join("turnserver.log");
    let log = std::fs::File::create(&log_path).expect("create log");
    let server = Namespaces::exec(&ns.turn, &turnserver)
        .arg("-c")
        .arg(&runtime)
        .arg("--pidfile")
        .arg(dir.path().join("turnserver.pid"))
        .stdout(Stdio::from(log.try_clone().expect("log handle")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start turnserver");
    let mut server = KillOnDrop(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("IO method (admin thread)") || text.contains("Total General servers") {
            break;
        }
        if let Some(status) = server.0.try_wait().expect("poll turnserver") {
            panic!("turnserver exited with {status}: {text}");
        }
        assert!(
            Instant::now() < deadline,
            "turnserver did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));

    // 1. The ordinary peer: permission and channel succeed, data flows
    //    both ways through the relay, on UDP and TCP, IPv4 and IPv6.
    let mut flows = Vec::new();
    for tcp in [false, true] {
        for v6 in [false, true] {
            for send in [false, true] {
                flows.push(Run {
                    tcp,
                    v6,
                    send,
                    messages: 5,
                    peer: if v6 { PEER_V6 } else { PEER_V4 }.to_owned(),
                });
            }
        }
    }
    let outputs = run_all(&ns.turn, &client, &secret, &flows, 8, "flow");
    let mut failures = Vec::new();
    for (run, out) in flows.iter().zip(&outputs) {
        let ok_step = if run.send {
            out.contains("create perm sent") && !out.contains("create permission error")
        } else {
            out.contains("channel bind sent") && !out.contains("channel bind: error")
        };
        let flowed = out.contains("tot_send_msgs=5, tot_recv_msgs=5")
            && out.contains("Total lost packets 0 ");
        if !ok_step || !flowed {
            failures.push(format!("{}:\n{out}", run.describe()));
        }
    }

    // 2. Every required range is refused (its first and last address), on
    //    UDP and TCP allocations.
    let (denied, allowed) = probes();
    let denied_runs: Vec<Run> = [false, true]
        .into_iter()
        .flat_map(|tcp| {
            denied.iter().map(move |a| Run {
                tcp,
                v6: a.is_ipv6(),
                send: true,
                messages: 0,
                peer: a.to_string(),
            })
        })
        .collect();
    let outputs = run_all(&ns.turn, &client, &secret, &denied_runs, 16, "deny");
    for (run, out) in denied_runs.iter().zip(&outputs) {
        if !out.contains("create permission error 403") {
            failures.push(format!("not refused with 403: {}:\n{out}", run.describe()));
        }
    }

    // 3. The addresses just outside each range are relayed to (a
    //    permission is granted; nothing is sent to them).
    let allowed_runs: Vec<Run> = allowed
        .iter()
        .map(|a| Run {
            tcp: false,
            v6: a.is_ipv6(),
            send: true,
            messages: 0,
            peer: a.to_string(),
        })
        .collect();
    let outputs = run_all(&ns.turn, &client, &secret, &allowed_runs, 16, "edge");
    for (run, out) in allowed_runs.iter().zip(&outputs) {
        let granted = out.contains("create perm sent")
            && out.contains("cp response received")
            && !out.contains("create permission error");
        if !granted {
            failures.push(format!("refused: {}:\n{out}", run.describe()));
        }
    }
    assert!(
        server.0.try_wait().expect("poll turnserver").is_none(),
        "turnserver died during the test"
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n\nturnserver log:\n{log}",
        failures.len(),
        failures.join("\n---\n")
    );
    // Sanity: the probes above covered every required range.
    assert!(denied.len() >= REQUIRED_DENIED_PEER_IPS.len());
    assert!(allowed.len() >= 10, "{allowed:?}");
}
