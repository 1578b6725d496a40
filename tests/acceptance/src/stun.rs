//! A minimal TURN client (RFC 5766 Allocate over UDP with long-term
//! credentials), enough to read the exact error code coturn answers
//! (`turnutils_uclient` does not print it for a failed allocation).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

const MAGIC: u32 = 0x2112_A442;
const ALLOCATE: u16 = 0x0003;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;

/// What the server answered to an authenticated Allocate.
#[derive(Debug, PartialEq, Eq)]
pub enum AllocateOutcome {
    /// Allocate success response.
    Allocated,
    /// Error response with this code (401, 403, 437, ...) and reason.
    Error(u16, String),
}

/// Sends Allocate to `server` with `username`/`password` (long-term
/// credentials: the first, unauthenticated request fetches realm and nonce).
pub async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<AllocateOutcome> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(server).await?;
    // 1. Unauthenticated: expect 401 with REALM and NONCE.
    let first = exchange(&sock, &request(&[], None)).await?;
    let (code, _) = error_code(&first).context("first Allocate: no error response")?;
    if code != 401 {
        bail!("unauthenticated Allocate answered {code}, expected 401");
    }
    let realm = attr(&first, ATTR_REALM)
        .context("401 without REALM")?
        .to_vec();
    let nonce = attr(&first, ATTR_NONCE)
        .context("401 without NONCE")?
        .to_vec();
    // 2. Authenticated.
    let realm_s = String::from_utf8_lossy(&realm).into_owned();
    let key = Md5::digest(format!("{username}:{realm_s}:{password}").as_bytes());
    let attrs = vec![
        (ATTR_USERNAME, username.as_bytes().to_vec()),
        (ATTR_REALM, realm),
        (ATTR_NONCE, nonce),
    ];
    let resp = exchange(&sock, &request(&attrs, Some(&key))).await?;
    let mtype = u16::from_be_bytes([resp[0], resp[1]]);
    match mtype {
        0x0103 => Ok(AllocateOutcome::Allocated),
        0x0113 => {
            let (code, reason) = error_code(&resp).context("error response without ERROR-CODE")?;
            Ok(AllocateOutcome::Error(code, reason))
        }
        other => bail!("unexpected STUN message type {other:#06x}"),
    }
}

fn random_bytes() -> [u8; 12] {
    let mut out = [0u8; 12];
    for chunk in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        let v = h.finish().to_be_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

fn request(extra: &[(u16, Vec<u8>)], key: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    let push = |body: &mut Vec<u8>, t: u16, v: &[u8]| {
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
    };
    push(&mut body, ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    for (t, v) in extra {
        push(&mut body, *t, v);
    }
    let mut msg = Vec::new();
    msg.extend_from_slice(&ALLOCATE.to_be_bytes());
    let len_with_mi = body.len() + if key.is_some() { 24 } else { 0 };
    msg.extend_from_slice(&(len_with_mi as u16).to_be_bytes());
    msg.extend_from_slice(&MAGIC.to_be_bytes());
    msg.extend_from_slice(&random_bytes());
    msg.extend_from_slice(&body);
    if let Some(key) = key {
        let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key length");
        mac.update(&msg);
        let tag = mac.finalize().into_bytes();
        msg.extend_from_slice(&ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        msg.extend_from_slice(&20u16.to_be_bytes());
        msg.extend_from_slice(&tag);
    }
    msg
}

async fn exchange(sock: &tokio::net::UdpSocket, msg: &[u8]) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    for _ in 0..5 {
        sock.send(msg).await?;
        if let Ok(n) = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
            let n = n?;
            if n < 20 || buf[8..20] != msg[8..20] {
                continue;
            }
            buf.truncate(n);
            return Ok(buf);
        }
    }
    bail!("no STUN answer after 5 tries")
}

fn attrs(msg: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut pos = 20;
    std::iter::from_fn(move || {
        if pos + 4 > msg.len() {
            return None;
        }
        let t = u16::from_be_bytes([msg[pos], msg[pos + 1]]);
        let l = u16::from_be_bytes([msg[pos + 2], msg[pos + 3]]) as usize;
        let v = msg.get(pos + 4..pos + 4 + l)?;
        pos += 4 + l.div_ceil(4) * 4;
        Some((t, v))
    })
}

fn attr(msg: &[u8], t: u16) -> Option<&[u8]> {
    attrs(msg).find(|(at, _)| *at == t).map(|(_, v)| v)
}

fn error_code(msg: &[u8]) -> Option<(u16, String)> {
    let v = attr(msg, ATTR_ERROR_CODE)?;
    if v.len() < 4 {
        return None;
    }
    let code = (v[2] & 0x7) as u16 * 100 + v[3] as u16;
    Some((code, String::from_utf8_lossy(&v[4..]).into_owned()))
}
