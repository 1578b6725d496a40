//! A minimal blocking TURN client (RFC 5766 over UDP, TCP or TLS, long-term
//! credentials), for `doctor`: allocate a relay, ask for a permission to a
//! peer (reading the exact error code: 403 Forbidden IP for a private
//! peer), and release the allocation (Refresh with LIFETIME 0), so that
//! repeated runs leave nothing counting against coturn's per-user quota.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

const MAGIC: u32 = 0x2112_A442;
const ALLOCATE: u16 = 0x0003;
const REFRESH: u16 = 0x0004;
const CREATE_PERMISSION: u16 = 0x0008;
/// Success and error responses: the class bits added to the method.
const SUCCESS: u16 = 0x0100;
const ERROR: u16 = 0x0110;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_LIFETIME: u16 = 0x000D;
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;
/// The largest message read.
const MAX_MESSAGE: usize = 4096;

/// A TURN server's answer to one request: success, or an error code and
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A success response.
    Success,
    /// An error response (401, 403, 486, ...).
    Error(u16, String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Success => f.write_str("success"),
            Answer::Error(code, reason) if reason.is_empty() => write!(f, "error {code}"),
            Answer::Error(code, reason) => write!(f, "error {code} ({reason})"),
        }
    }
}

/// What one run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The relayed address, or the Allocate answer that refused it.
    pub relay: Result<SocketAddr, Answer>,
    /// The answer to CreatePermission for the peer (after a successful
    /// allocation).
    pub permission: Option<Answer>,
}

/// A stream or datagram connection to the server.
pub enum Conn {
    /// UDP: each message one datagram, retransmitted until answered.
    Udp(UdpSocket),
    /// TCP or TLS: messages back to back on the stream.
    Stream(Box<dyn ReadWrite>),
}

/// A readable and writable stream.
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Conn {
    /// A UDP "connection" to `server`.
    pub fn udp(server: SocketAddr, timeout: Duration) -> Result<Conn, String> {
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
        sock.connect(server).map_err(|e| format!("{server}: {e}"))?;
        sock.set_read_timeout(Some(timeout.min(Duration::from_secs(1))))
            .map_err(|e| e.to_string())?;
        Ok(Conn::Udp(sock))
    }

    /// Sends `msg` and returns the response with the same transaction ID.
    fn transact(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let txid = &msg[8..20];
        match self {
            Conn::Udp(sock) => {
                let mut buf = vec![0u8; MAX_MESSAGE];
                for _ in 0..5 {
                    sock.send(msg).map_err(|e| e.to_string())?;
                    loop {
                        match sock.recv(&mut buf) {
                            Ok(n) if n >= 20 && &buf[8..20] == txid => return Ok(buf[..n].to_vec()),
                            Ok(_) => continue,
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) =>
                            {
                                break
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
                Err("no answer over UDP after 5 tries".into())
            }
            Conn::Stream(s) => {
                s.write_all(msg).map_err(|e| e.to_string())?;
                s.flush().map_err(|e| e.to_string())?;
                loop {
                    let mut head = [0u8; 20];
                    s.read_exact(&mut head).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            "the server closed the connection".to_owned()
                        } else {
                            e.to_string()
                        }
                    })?;
                    if head[0] & 0xC0 != 0 {
                        return Err("the server sent something that is not STUN".into());
                    }
                    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                    if len > MAX_MESSAGE {
                        return Err("the server sent an oversized message".into());
                    }
                    let mut body = vec![0u8; len];
                    s.read_exact(&mut body).map_err(|e| e.to_string())?;
                    if &head[8..20] == txid {
                        let mut msg = head.to_vec();
                        msg.extend(body);
                        return Ok(msg);
                    }
                }
            }
        }
    }
}

fn random_txid() -> [u8; 12] {
    let mut id = [0u8; 12];
    if ospw_matrix::secrets::random_bytes(&mut id).is_err() {
        // Only uniqueness matters here, not secrecy.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        id.copy_from_slice(&t.to_be_bytes()[4..16]);
    }
    id
}

/// A request of `method` with `attrs`, signed with `key` (long-term
/// credentials) when given, under a new transaction ID.
pub fn request(method: u16, attrs: &[(u16, Vec<u8>)], key: Option<&[u8]>) -> Vec<u8> {
    build(method, &random_txid(), attrs, key)
}

/// A request with the transaction ID `txid`; MESSAGE-INTEGRITY (when `key`
/// is given) covers the header with the final length, as RFC 5389 says.
pub fn build(
    method: u16,
    txid: &[u8; 12],
    attrs: &[(u16, Vec<u8>)],
    key: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in attrs {
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let mut msg = Vec::with_capacity(20 + body.len() + 24);
    msg.extend_from_slice(&method.to_be_bytes());
    let len = body.len() + if key.is_some() { 24 } else { 0 };
    msg.extend_from_slice(&(len as u16).to_be_bytes());
    msg.extend_from_slice(&MAGIC.to_be_bytes());
    msg.extend_from_slice(txid);
    msg.extend_from_slice(&body);
    if let Some(key) = key {
        if let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) {
            mac.update(&msg);
            let tag = mac.finalize().into_bytes();
            msg.extend_from_slice(&ATTR_MESSAGE_INTEGRITY.to_be_bytes());
            msg.extend_from_slice(&20u16.to_be_bytes());
            msg.extend_from_slice(&tag);
        }
    }
    msg
}

/// The attributes of a message: (type, value).
pub fn attributes(msg: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 20;
    while pos + 4 <= msg.len() {
        let t = u16::from_be_bytes([msg[pos], msg[pos + 1]]);
        let l = usize::from(u16::from_be_bytes([msg[pos + 2], msg[pos + 3]]));
        let Some(v) = msg.get(pos + 4..pos + 4 + l) else {
            break;
        };
        out.push((t, v));
        pos += 4 + l.div_ceil(4) * 4;
    }
    out
}

fn attribute(msg: &[u8], t: u16) -> Option<&[u8]> {
    attributes(msg)
        .into_iter()
        .find(|(at, _)| *at == t)
        .map(|(_, v)| v)
}

/// The answer a response gives to a request of `method`.
pub fn answer(msg: &[u8], method: u16) -> Result<Answer, String> {
    if msg.len() < 20 {
        return Err("a truncated message".into());
    }
    let kind = u16::from_be_bytes([msg[0], msg[1]]);
    if kind == method | SUCCESS {
        return Ok(Answer::Success);
    }
    if kind != method | ERROR {
        return Err(format!("an unexpected message of type {kind:#06x}"));
    }
    let v = attribute(msg, ATTR_ERROR_CODE).ok_or("an error response without ERROR-CODE")?;
    if v.len() < 4 {
        return Err("a malformed ERROR-CODE".into());
    }
    let code = u16::from(v[2] & 0x7) * 100 + u16::from(v[3]);
    Ok(Answer::Error(
        code,
        String::from_utf8_lossy(&v[4..]).trim().to_owned(),
    ))
}

/// An XOR-MAPPED-style address (RFC 5389 section 15.2).
pub fn xor_address(value: &[u8], txid: &[u8]) -> Option<SocketAddr> {
    if value.len() < 8 {
        return None;
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC >> 16) as u16;
    let mut key = MAGIC.to_be_bytes().to_vec();
    key.extend_from_slice(txid);
    let ip = match value[1] {
        0x01 => {
            let b: Vec<u8> = value[4..8].iter().zip(&key).map(|(a, k)| a ^ k).collect();
            IpAddr::from([b[0], b[1], b[2], b[3]])
        }
        0x02 if value.len() >= 20 => {
            let mut b = [0u8; 16];
            for (i, x) in b.iter_mut().enumerate() {
                *x = value[4 + i] ^ key[i];
            }
            IpAddr::from(b)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// `addr` as an XOR-PEER-ADDRESS value for a request with `txid`.
pub fn encode_xor_address(addr: SocketAddr, txid: &[u8]) -> Vec<u8> {
    let mut key = MAGIC.to_be_bytes().to_vec();
    key.extend_from_slice(txid);
    let mut v = vec![0u8];
    let port = addr.port() ^ (MAGIC >> 16) as u16;
    match addr.ip() {
        IpAddr::V4(ip) => {
            v.push(0x01);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend(ip.octets().iter().zip(&key).map(|(a, k)| a ^ k));
        }
        IpAddr::V6(ip) => {
            v.push(0x02);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend(ip.octets().iter().zip(&key).map(|(a, k)| a ^ k));
        }
    }
    v
}

/// The long-term credential key: MD5(username ":" realm ":" password).
fn long_term_key(username: &str, realm: &[u8], password: &str) -> Vec<u8> {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm);
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().to_vec()
}

/// Allocates a relay on `conn` with `username`/`password`, asks for a
/// permission to `peer`, and releases the allocation.
pub fn probe(
    conn: &mut Conn,
    username: &str,
    password: &str,
    peer: IpAddr,
) -> Result<Probe, String> {
    let transport = (ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    // 1. Unauthenticated: the server answers 401 with its realm and nonce.
    let first = conn.transact(&request(ALLOCATE, std::slice::from_ref(&transport), None))?;
    match answer(&first, ALLOCATE)? {
        Answer::Error(401, _) => {}
        Answer::Success => {
            return Err("the server allocated a relay without credentials".into());
        }
        other => {
            return Ok(Probe {
                relay: Err(other),
                permission: None,
            })
        }
    }
    let realm = attribute(&first, ATTR_REALM)
        .ok_or("401 without REALM")?
        .to_vec();
    let mut nonce = attribute(&first, ATTR_NONCE)
        .ok_or("401 without NONCE")?
        .to_vec();
    let key = long_term_key(username, &realm, password);
    let auth = |nonce: &[u8]| {
        vec![
            (ATTR_USERNAME, username.as_bytes().to_vec()),
            (ATTR_REALM, realm.clone()),
            (ATTR_NONCE, nonce.to_vec()),
        ]
    };
    // 2. Authenticated (once more with a fresh nonce after 438 Stale Nonce).
    let mut response = Vec::new();
    for _ in 0..2 {
        let mut attrs = vec![transport.clone()];
        attrs.extend(auth(&nonce));
        let req = request(ALLOCATE, &attrs, Some(&key));
        response = conn.transact(&req)?;
        match answer(&response, ALLOCATE)? {
            Answer::Error(438, _) => {
                nonce = attribute(&response, ATTR_NONCE)
                    .ok_or("438 without NONCE")?
                    .to_vec();
            }
            _ => break,
        }
    }
    let relay = match answer(&response, ALLOCATE)? {
        Answer::Success => attribute(&response, ATTR_XOR_RELAYED_ADDRESS)
            .and_then(|v| xor_address(v, &response[8..20]))
            .ok_or("an Allocate success without XOR-RELAYED-ADDRESS")?,
        other => {
            return Ok(Probe {
                relay: Err(other),
                permission: None,
            })
        }
    };
    // 3. A permission for the peer (its address is XORed with the
    // request's own transaction ID).
    let txid = random_txid();
    let mut attrs = vec![(
        ATTR_XOR_PEER_ADDRESS,
        encode_xor_address(SocketAddr::new(peer, 0), &txid),
    )];
    attrs.extend(auth(&nonce));
    let reply = conn.transact(&build(CREATE_PERMISSION, &txid, &attrs, Some(&key)))?;
    let permission = answer(&reply, CREATE_PERMISSION)?;
    // 4. Release the allocation (best effort).
    let mut attrs = vec![(ATTR_LIFETIME, 0u32.to_be_bytes().to_vec())];
    attrs.extend(auth(&nonce));
    let _ = conn.transact(&request(REFRESH, &attrs, Some(&key)));
    Ok(Probe {
        relay: Ok(relay),
        permission: Some(permission),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_addresses_round_trip() {
        let txid = [7u8; 12];
        for a in ["10.0.0.1:0", "203.0.113.7:49152", "[2001:db8::1]:3478"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(xor_address(&encode_xor_address(a, &txid), &txid), Some(a));
        }
        assert_eq!(xor_address(&[0, 1, 0], &txid), None);
    }

    #[test]
    fn requests_carry_integrity_over_the_header_with_its_final_length() {
        let key = long_term_key("u", b"r", "p");
        let msg = request(
            ALLOCATE,
            &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
            Some(&key),
        );
        assert_eq!(msg.len(), 20 + 8 + 24);
        assert_eq!(
            usize::from(u16::from_be_bytes([msg[2], msg[3]])),
            msg.len() - 20
        );
        let mut mac = Hmac::<Sha1>::new_from_slice(&key).unwrap();
        mac.update(&msg[..msg.len() - 24]);
        assert_eq!(
            &msg[msg.len() - 20..],
            mac.finalize().into_bytes().as_slice()
        );
        let txid: [u8; 12] = msg[8..20].try_into().unwrap();
        let again = build(
            ALLOCATE,
            &txid,
            &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
            Some(&key),
        );
        assert_eq!(again, msg, "the same request with the same ID");
    }

    #[test]
    fn error_answers_are_read() {
        let mut msg = vec![0x01, 0x18, 0, 20];
        msg.extend_from_slice(&MAGIC.to_be_bytes());
        msg.extend_from_slice(&[1u8; 12]);
        msg.extend_from_slice(&[0x00, 0x09, 0x00, 0x10, 0, 0, 4, 3]);
        msg.extend_from_slice(b"Forbidden IP");
        assert_eq!(
            answer(&msg, CREATE_PERMISSION),
            Ok(Answer::Error(403, "Forbidden IP".into()))
        );
        assert!(
            answer(&msg, ALLOCATE).is_err(),
            "an answer to another method"
        );
        assert!(answer(&msg[..10], CREATE_PERMISSION).is_err());
    }
}
