//! A tiny HTTP/1.1 client for talking to Synapse's own listener on
//! loopback TCP or a Unix socket: one request per connection
//! (`Connection: close`), `Content-Length`, chunked and read-to-end bodies,
//! timeouts on connect, read and write. No TLS: Synapse's listener is plain
//! HTTP behind the proxy.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest response body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address (`HOST:PORT`; the host may be a name or an address).
    Tcp {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `HOST:PORT`, `[V6]:PORT`, `unix:/PATH` or an absolute `/PATH`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(path) = text
            .strip_prefix("unix:")
            .or_else(|| text.starts_with('/').then_some(text))
        {
            if !path.starts_with('/') {
                return Err(format!(
                    "{text:?}: expected an absolute socket path, such as unix:/run/synapse.sock"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let expected = "expected HOST:PORT (such as 127.0.0.1:8008) or unix:/PATH";
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?}: {expected}"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{text:?} has no valid port: {expected}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?} has no host: {expected}"));
        }
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(_) => "localhost".to_owned(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { .. } => write!(f, "{}", self.host_header()),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// The server could not be reached (refused, timed out, no socket).
    Unreachable {
        /// The address tried.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// The connection broke or timed out after connecting.
    Io {
        /// The address.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// The answer is not valid HTTP/1.1.
    Protocol {
        /// The address.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Unreachable { endpoint, reason } => {
                write!(f, "server unreachable at {endpoint}: {reason}")
            }
            HttpError::Io { endpoint, reason } => {
                write!(f, "connection to {endpoint} failed: {reason}")
            }
            HttpError::Protocol { endpoint, reason } => {
                write!(f, "{endpoint} did not answer in HTTP/1.1: {reason}")
            }
        }
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A connection to either kind of endpoint.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Stream, HttpError> {
    let unreachable = |reason: String| HttpError::Unreachable {
        endpoint: endpoint.to_string(),
        reason,
    };
    let stream = match endpoint {
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path).map_err(|e| unreachable(e.to_string()))?;
            s.set_read_timeout(Some(timeout))
                .and_then(|()| s.set_write_timeout(Some(timeout)))
                .map_err(|e| unreachable(e.to_string()))?;
            Stream::Unix(s)
        }
        Endpoint::Tcp { host, port } => {
            let addrs: Vec<SocketAddr> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
                .collect();
            let mut last = format!("{host} has no address");
            let mut found = None;
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        last = format!("no answer within {timeout:?}");
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            let s = found.ok_or_else(|| unreachable(last))?;
            s.set_read_timeout(Some(timeout))
                .and_then(|()| s.set_write_timeout(Some(timeout)))
                .map_err(|e| unreachable(e.to_string()))?;
            Stream::Tcp(s)
        }
    };
    Ok(stream)
}

/// Sends one request with the extra `headers` (name, value) and reads the
/// whole response. `body`, when given, is sent as `application/json`.
pub fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut stream = connect(endpoint, timeout)?;
    let io = |e: std::io::Error| {
        let reason = if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            format!("no answer within {timeout:?}")
        } else {
            e.to_string()
        };
        HttpError::Io {
            endpoint: endpoint.to_string(),
            reason,
        }
    };
    write_request(
        &mut stream,
        &endpoint.host_header(),
        method,
        path,
        headers,
        body,
    )
    .map_err(io)?;
    read_response(BufReader::new(stream), method == "HEAD").map_err(|e| match e {
        ReadError::Io(e) => io(e),
        ReadError::Protocol(reason) => HttpError::Protocol {
            endpoint: endpoint.to_string(),
            reason,
        },
    })
}

/// Writes one request (`Connection: close`) with the extra `headers`;
/// `body`, when given, is sent as `application/json`.
fn write_request(
    stream: &mut impl Write,
    host_header: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: ospw-matrix\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&message)?;
    stream.flush()
}

/// Sends one request over an established `stream` (such as a TLS
/// connection) and reads the whole response; errors are described in
/// words.
pub fn exchange<S: Read + Write>(
    stream: &mut S,
    host_header: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let describe = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            "no answer in time".to_owned()
        } else {
            e.to_string()
        }
    };
    write_request(stream, host_header, method, path, headers, body).map_err(describe)?;
    read_response(BufReader::new(stream), method == "HEAD").map_err(|e| match e {
        ReadError::Io(e) => describe(e),
        ReadError::Protocol(reason) => format!("not an HTTP/1.1 answer: {reason}"),
    })
}

/// Why reading a response failed.
#[derive(Debug)]
pub enum ReadError {
    /// The connection failed.
    Io(std::io::Error),
    /// The bytes are not an HTTP/1.1 response.
    Protocol(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn protocol<T>(reason: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Protocol(reason.into()))
}

/// Reads one line ending in CRLF (or LF), without the line ending.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> Result<String, ReadError> {
    let mut line = Vec::new();
    let limit = (*budget as u64).saturating_add(1);
    let n = reader.take(limit).read_until(b'\n', &mut line)?;
    if n == 0 {
        return protocol("the connection closed early");
    }
    if n > *budget {
        return protocol("the response head is too large");
    }
    *budget -= n;
    if line.last() != Some(&b'\n') {
        return protocol("the connection closed in the middle of a line");
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).or_else(|_| protocol("a header line is not text"))
}

/// Reads a response (status line, headers, body) from `reader`. Interim
/// 1xx responses are skipped.
pub fn read_response(mut reader: impl BufRead, head_only: bool) -> Result<Response, ReadError> {
    let mut budget = MAX_HEAD;
    loop {
        let status_line = read_line(&mut reader, &mut budget)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return protocol(format!("unexpected status line {status_line:?}"));
        }
        let status: u16 = match parts.next().and_then(|s| s.parse().ok()) {
            Some(s) if (100..1000).contains(&s) => s,
            _ => return protocol(format!("unexpected status line {status_line:?}")),
        };
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut budget)?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return protocol(format!("malformed header {line:?}"));
            };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        if (100..200).contains(&status) {
            continue;
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            response.body = read_chunked(&mut reader)?;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = match len.parse() {
                Ok(n) if n <= MAX_BODY => n,
                Ok(_) => return protocol("the body is too large"),
                Err(_) => return protocol(format!("bad Content-Length {len:?}")),
            };
            let mut body = vec![0; len];
            reader.read_exact(&mut body).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    ReadError::Protocol("the connection closed before the whole body".into())
                } else {
                    ReadError::Io(e)
                }
            })?;
            response.body = body;
        } else {
            let mut body = Vec::new();
            reader.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return protocol("the body is too large");
            }
            response.body = body;
        }
        return Ok(response);
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line(reader, &mut budget)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = match usize::from_str_radix(size_text, 16) {
            Ok(n) => n,
            Err(_) => return protocol(format!("bad chunk size {line:?}")),
        };
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(reader, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if size > MAX_BODY.saturating_sub(body.len()) {
            return protocol("the body is too large");
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ReadError::Protocol("the connection closed inside a chunk".into())
            } else {
                ReadError::Io(e)
            }
        })?;
        if !read_line(reader, &mut budget)?.is_empty() {
            return protocol("a chunk is longer than its size");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(raw: &str) -> Result<Response, ReadError> {
        read_response(Cursor::new(raw.as_bytes().to_vec()), false)
    }

    #[test]
    fn content_length() {
        let r = parse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"nonce\":\"x\"}trailing")
            .expect("parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{\"nonce\":\"x\"}");
    }

    #[test]
    fn huge_chunk_size_is_an_error_not_a_panic() {
        let err = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nffffffffffffffff\r\nx\r\n0\r\n\r\n")
            .expect_err("refused");
        assert!(matches!(err, ReadError::Protocol(_)));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r = parse("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n")
            .expect("parses");
        assert_eq!(r.status, 400);
        assert_eq!(r.body, b"hello, world");
    }

    #[test]
    fn read_to_end_and_interim_responses() {
        let r =
            parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\nServer: x\n\nbody until close")
                .expect("parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"body until close");
    }

    #[test]
    fn malformed_answers_are_errors() {
        for raw in [
            "",
            "SSH-2.0-OpenSSH\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        ] {
            assert!(parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:8008"),
            Ok(Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 8008
            })
        );
        assert_eq!(
            Endpoint::parse("[::1]:8008"),
            Ok(Endpoint::Tcp {
                host: "::1".into(),
                port: 8008
            })
        );
        assert_eq!(
            Endpoint::parse("unix:/run/s.sock"),
            Ok(Endpoint::Unix("/run/s.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("/run/s.sock"),
            Ok(Endpoint::Unix("/run/s.sock".into()))
        );
        for bad in ["", "localhost", "host:0", "host:x", ":80", "unix:relative"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Endpoint::parse("[::1]:8008").expect("v6").to_string(),
            "[::1]:8008"
        );
    }

    #[test]
    fn round_trip_over_tcp_and_unix() {
        use std::net::TcpListener;
        use std::os::unix::net::UnixListener;
        fn serve(mut conn: impl Read + Write) -> String {
            let mut reader = BufReader::new(&mut conn);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("read");
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.trim().parse().expect("len"));
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("body");
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            )
            .expect("write");
            head + &String::from_utf8(body).expect("utf8")
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || serve(listener.accept().expect("accept").0));
        let endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).expect("endpoint");
        let r = request(
            &endpoint,
            "POST",
            "/x",
            &[("Authorization", "Bearer t0ken")],
            Some(b"{}"),
            Duration::from_secs(5),
        )
        .expect("request");
        assert_eq!(r.body, b"ok");
        let seen = server.join().expect("server");
        assert!(seen.starts_with("POST /x HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains(&format!("Host: 127.0.0.1:{port}")), "{seen}");
        assert!(
            seen.contains("\r\nAuthorization: Bearer t0ken\r\n"),
            "{seen}"
        );
        assert!(seen.ends_with("{}"), "{seen}");

        let dir = std::env::temp_dir().join(format!("ospw-http-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join("s.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).expect("bind unix");
        let server = std::thread::spawn(move || serve(listener.accept().expect("accept").0));
        let r = request(
            &Endpoint::Unix(sock.clone()),
            "GET",
            "/y",
            &[],
            None,
            Duration::from_secs(5),
        )
        .expect("request");
        assert_eq!(r.status, 200);
        assert!(server
            .join()
            .expect("server")
            .starts_with("GET /y HTTP/1.1\r\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn closed_port_is_unreachable_and_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).expect("endpoint");
        let err =
            request(&endpoint, "GET", "/", &[], None, Duration::from_secs(2)).expect_err("closed");
        assert!(matches!(err, HttpError::Unreachable { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).expect("endpoint");
        let err = request(&endpoint, "GET", "/", &[], None, Duration::from_millis(300))
            .expect_err("silent");
        assert!(err.to_string().contains("no answer"), "{err}");
        drop(listener);
    }
}
