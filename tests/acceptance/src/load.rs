//! A closed-loop load generator for a Matrix homeserver, with plain
//! client-server API calls (no client library, so the generator itself
//! stays light): users registered through Synapse's shared-secret admin
//! API, private rooms, concurrent senders that each send their next message
//! as soon as the previous one is acknowledged, and one `/sync` receiver
//! per room that records when each message arrives.
//!
//! [`run`] reports sends per second, send latency (request to
//! acknowledgement) and delivery latency (request to the receiver's `/sync`
//! returning it), each as p50/p99, messages acknowledged but never
//! delivered, errors, and the generator's own CPU time. Only sends started
//! inside the measured window (after the warm-up) count.
//!
//! `src/bin/ospw-load.rs` is the command; `scripts/bench-stack.sh` uses it
//! through `src/bin/ospw-bench.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

/// What to run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The client API's base URL (through the proxy).
    pub homeserver: String,
    /// Synapse's own listener for the shared-secret admin registration.
    pub admin_url: String,
    /// The registration shared secret.
    pub registration_secret: String,
    /// Host names resolved to an address (the proxy's), as `HOST=IP:PORT`.
    pub resolve: Vec<(String, SocketAddr)>,
    /// A PEM CA certificate to trust (the proxy's local CA), else the system's.
    pub ca: Option<PathBuf>,
    /// Users (each a sender).
    pub users: usize,
    /// Private rooms; user `i` is in room `i % rooms`.
    pub rooms: usize,
    /// Concurrent senders (users `0..senders`).
    pub senders: usize,
    /// The measured window.
    pub duration: Duration,
    /// Sends before the window (not counted).
    pub warmup: Duration,
    /// How long to wait after the window for the last messages to arrive.
    pub drain: Duration,
    /// A prefix for the user names.
    pub prefix: String,
}

/// The results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Results {
    /// Sends started in the window and acknowledged.
    pub sends: u64,
    /// Sends started in the window that failed.
    pub errors: u64,
    /// The window, in seconds.
    pub duration_s: f64,
    /// Acknowledged sends per second.
    pub sends_per_s: f64,
    /// Send latency p50, ms.
    pub send_p50_ms: f64,
    /// Send latency p99, ms.
    pub send_p99_ms: f64,
    /// Delivery latency p50, ms.
    pub delivery_p50_ms: f64,
    /// Delivery latency p99, ms.
    pub delivery_p99_ms: f64,
    /// Acknowledged sends of the window no receiver saw.
    pub lost: u64,
    /// `/sync` responses with a `limited` (gappy) timeline.
    pub limited_syncs: u64,
    /// The generator's CPU time in the window (user + system), seconds.
    pub load_cpu_s: f64,
    /// The first error message, if any.
    pub first_error: Option<String>,
}

/// Percentile `p` (0..=100) of `v` (sorted in place), nearest rank.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This process's CPU time (user + system), seconds.
pub fn own_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// A registered user.
#[derive(Debug, Clone)]
struct User {
    id: String,
    token: String,
}

/// One send, by (sender, sequence number).
#[derive(Debug, Clone, Copy)]
struct Send {
    start: Instant,
    acked: Option<Instant>,
    measured: bool,
}

#[derive(Default)]
struct Shared {
    sends: HashMap<(usize, u64), Send>,
    seen: HashMap<(usize, u64), Instant>,
    errors: u64,
    first_error: Option<String>,
    limited: u64,
}

fn client(w: &Workload) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256);
    if let Some(ca) = &w.ca {
        let pem = std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?;
        b = b.tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
    }
    for (host, addr) in &w.resolve {
        b = b.resolve(host, *addr);
    }
    Ok(b.build()?)
}

async fn json_of(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "HTTP {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// Registers `name` through the shared-secret admin API; its access token.
async fn register(http: &reqwest::Client, w: &Workload, name: &str) -> Result<User> {
    let url = format!("{}/_synapse/admin/v1/register", w.admin_url);
    let nonce = json_of(http.get(&url).send().await?).await?["nonce"]
        .as_str()
        .context("no nonce")?
        .to_owned();
    let password = format!("load-{name}-password");
    let mut mac = Hmac::<Sha1>::new_from_slice(w.registration_secret.trim().as_bytes())
        .map_err(|e| anyhow!("{e}"))?;
    mac.update(format!("{nonce}\0{name}\0{password}\0notadmin").as_bytes());
    let body = json!({"nonce": nonce, "username": name, "password": password,
        "admin": false, "mac": hex(&mac.finalize().into_bytes())});
    let v = json_of(http.post(&url).json(&body).send().await?).await?;
    Ok(User {
        id: v["user_id"].as_str().context("no user_id")?.to_owned(),
        token: v["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned(),
    })
}

fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sets up users and rooms; returns the users and each room's id.
async fn setup(http: &reqwest::Client, w: &Workload) -> Result<(Vec<User>, Vec<String>)> {
    let mut users = Vec::new();
    for i in 0..w.users {
        users.push(register(http, w, &format!("{}{i}", w.prefix)).await?);
    }
    let hs = &w.homeserver;
    let mut rooms = Vec::new();
    for r in 0..w.rooms {
        let members: Vec<&User> = (0..w.users)
            .filter(|i| i % w.rooms == r)
            .map(|i| &users[i])
            .collect();
        let owner = members.first().context("a room without members")?;
        let invite: Vec<&str> = members[1..].iter().map(|u| u.id.as_str()).collect();
        let v = json_of(
            http.post(format!("{hs}/_matrix/client/v3/createRoom"))
                .bearer_auth(&owner.token)
                .json(&json!({"preset": "private_chat", "invite": invite, "name": format!("load {r}")}))
                .send()
                .await?,
        )
        .await?;
        let room = v["room_id"].as_str().context("no room_id")?.to_owned();
        for m in &members[1..] {
            json_of(
                http.post(format!("{hs}/_matrix/client/v3/rooms/{}/join", seg(&room)))
                    .bearer_auth(&m.token)
                    .json(&json!({}))
                    .send()
                    .await?,
            )
            .await?;
        }
        rooms.push(room);
    }
    Ok((users, rooms))
}

/// The (sender, sequence) of a message body `ospw-load S N ...`.
fn marker(body: &str) -> Option<(usize, u64)> {
    let mut it = body.split(' ');
    (it.next()? == "ospw-load").then_some(())?;
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

async fn receiver(
    http: reqwest::Client,
    hs: String,
    token: String,
    room: String,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let filter = json!({"room": {"rooms": [room], "timeline": {"limit": 1000}}}).to_string();
    let url = format!("{hs}/_matrix/client/v3/sync");
    let filter = seg(&filter);
    let first = json_of(
        http.get(format!("{url}?filter={filter}&timeout=0"))
            .bearer_auth(&token)
            .send()
            .await?,
    )
    .await?;
    let mut since = first["next_batch"]
        .as_str()
        .context("no next_batch")?
        .to_owned();
    while !stop.load(Ordering::Relaxed) {
        let r = http
            .get(format!(
                "{url}?filter={filter}&timeout=2000&since={}",
                seg(&since)
            ))
            .bearer_auth(&token)
            .send()
            .await;
        let v = match r {
            Ok(r) => match json_of(r).await {
                Ok(v) => v,
                Err(e) => {
                    note_error(&shared, format!("sync: {e:#}"));
                    continue;
                }
            },
            Err(e) => {
                note_error(&shared, format!("sync: {e}"));
                continue;
            }
        };
        let now = Instant::now();
        if let Some(s) = v["next_batch"].as_str() {
            since = s.to_owned();
        }
        let timeline = &v["rooms"]["join"][&room]["timeline"];
        let mut sh = shared.lock().map_err(|_| anyhow!("poisoned"))?;
        if timeline["limited"] == true {
            sh.limited += 1;
        }
        for ev in timeline["events"].as_array().into_iter().flatten() {
            if let Some(key) = ev["content"]["body"].as_str().and_then(marker) {
                sh.seen.entry(key).or_insert(now);
            }
        }
    }
    Ok(())
}

fn note_error(shared: &Mutex<Shared>, e: String) {
    if let Ok(mut sh) = shared.lock() {
        sh.errors += 1;
        sh.first_error.get_or_insert(e);
    }
}

/// Runs the workload: set-up, warm-up, the measured window, the drain.
/// `on_window(true)` is called when the window opens and
/// `on_window(false)` when it closes (to sample other processes then).
pub async fn run(w: &Workload, mut on_window: impl FnMut(bool)) -> Result<Results> {
    ensure!(
        w.rooms > 0 && w.users >= w.rooms,
        "need at least one user per room"
    );
    ensure!(w.senders <= w.users, "more senders than users");
    let http = client(w)?;
    let (users, rooms) = setup(&http, w).await?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let stop_recv = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        let owner = users[r].token.clone();
        receivers.push(tokio::spawn(receiver(
            http.clone(),
            w.homeserver.clone(),
            owner,
            room.clone(),
            shared.clone(),
            stop_recv.clone(),
        )));
    }
    // Let every receiver have its first sync.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    let window_start = t0 + w.warmup;
    let window_end = window_start + w.duration;
    let stop_send = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in 0..w.senders {
        let (http, shared, stop) = (http.clone(), shared.clone(), stop_send.clone());
        let url_base = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message",
            w.homeserver,
            seg(&rooms[s % w.rooms])
        );
        let token = users[s].token.clone();
        senders.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let start = Instant::now();
                let measured = start >= window_start && start < window_end;
                if let Ok(mut sh) = shared.lock() {
                    sh.sends.insert(
                        (s, seq),
                        Send {
                            start,
                            acked: None,
                            measured,
                        },
                    );
                }
                let body = json!({"msgtype": "m.text",
                    "body": format!("ospw-load {s} {seq} a message of about the length people type in a chat")});
                let r = http
                    .put(format!("{url_base}/l{s}-{seq}"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) if r.status().is_success() => true,
                    Ok(r) => {
                        let st = r.status();
                        let text = r.text().await.unwrap_or_default();
                        if measured {
                            note_error(&shared, format!("send: HTTP {st}: {text}"));
                        }
                        false
                    }
                    Err(e) => {
                        if measured {
                            note_error(&shared, format!("send: {e}"));
                        }
                        false
                    }
                };
                if ok {
                    let now = Instant::now();
                    if let Ok(mut sh) = shared.lock() {
                        if let Some(x) = sh.sends.get_mut(&(s, seq)) {
                            x.acked = Some(now);
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep_until(window_start.into()).await;
    let cpu0 = own_cpu_s();
    on_window(true);
    tokio::time::sleep_until(window_end.into()).await;
    let cpu1 = own_cpu_s();
    on_window(false);
    stop_send.store(true, Ordering::Relaxed);
    for s in senders {
        s.await?;
    }
    // Drain: until every measured, acknowledged send was seen, or the limit.
    let drain_end = Instant::now() + w.drain;
    loop {
        let missing = {
            let sh = shared.lock().map_err(|_| anyhow!("poisoned"))?;
            sh.sends
                .iter()
                .filter(|(k, v)| v.measured && v.acked.is_some() && !sh.seen.contains_key(k))
                .count()
        };
        if missing == 0 || Instant::now() > drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_recv.store(true, Ordering::Relaxed);
    for r in receivers {
        r.await??;
    }
    let sh = shared.lock().map_err(|_| anyhow!("poisoned"))?;
    let mut send_ms = Vec::new();
    let mut delivery_ms = Vec::new();
    let mut lost = 0;
    let mut sends = 0;
    for (k, v) in &sh.sends {
        if !v.measured {
            continue;
        }
        let Some(acked) = v.acked else { continue };
        sends += 1;
        send_ms.push((acked - v.start).as_secs_f64() * 1000.0);
        match sh.seen.get(k) {
            Some(seen) => {
                delivery_ms.push((seen.saturating_duration_since(v.start)).as_secs_f64() * 1000.0)
            }
            None => lost += 1,
        }
    }
    if sends == 0 {
        bail!(
            "no send was acknowledged in the window ({} errors; first: {:?})",
            sh.errors,
            sh.first_error
        );
    }
    let duration_s = w.duration.as_secs_f64();
    Ok(Results {
        sends,
        errors: sh.errors,
        duration_s,
        sends_per_s: sends as f64 / duration_s,
        send_p50_ms: percentile(&mut send_ms, 50.0),
        send_p99_ms: percentile(&mut send_ms, 99.0),
        delivery_p50_ms: percentile(&mut delivery_ms, 50.0),
        delivery_p99_ms: percentile(&mut delivery_ms, 99.0),
        lost,
        limited_syncs: sh.limited,
        load_cpu_s: cpu1 - cpu0,
        first_error: sh.first_error.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        let mut one = vec![7.0];
        assert_eq!(percentile(&mut one, 99.0), 7.0);
        assert!(percentile(&mut [], 50.0).is_nan());
    }

    #[test]
    fn markers_round_trip() {
        assert_eq!(marker("ospw-load 3 17 a message"), Some((3, 17)));
        assert_eq!(marker("hello 3 17"), None);
        assert_eq!(marker("ospw-load x 17"), None);
    }
}
