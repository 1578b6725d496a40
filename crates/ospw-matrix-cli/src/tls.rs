//! HTTPS for `doctor`: a TLS connection (rustls, ring) to a given address
//! under a given server name, that reports what a browser would decide
//! about the certificate instead of only refusing it.
//!
//! The certificate chain is verified by rustls' own WebPKI verifier against
//! the system trust store or a given CA file, exactly as a client would.
//! The verdict is recorded; nothing is sent over a connection whose
//! certificate a client would refuse ([`Https::request`] fails with
//! [`HttpsError::Certificate`]). The end-entity certificate's validity
//! period is read with `x509-cert`, for the expiry warnings.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ospw_matrix::backup::rfc3339;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::http::{self, Response};

/// The certificates a client trusts.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    /// Where they come from, for messages.
    pub source: String,
    /// Why there are none (an empty system trust store): every connection
    /// then fails with this.
    missing: Option<String>,
}

impl Trust {
    /// The system's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` or the
    /// distribution's bundle). When it is empty or unreadable, every
    /// connection fails saying so (a finding, not a crash).
    pub fn system() -> Trust {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        let missing = (added == 0).then(|| {
            let why = found
                .errors
                .first()
                .map_or_else(|| "no certificates found".to_owned(), ToString::to_string);
            format!(
                "the system trust store is empty or unreadable ({why}): install the CA certificates (ca-certificates) or pass --ca-cert"
            )
        });
        Trust {
            roots: Arc::new(roots),
            source: "the system trust store".into(),
            missing,
        }
    }

    /// Only the CA certificates in the PEM file `path`.
    pub fn from_pem_file(path: &Path) -> Result<Trust, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "--ca-cert {}: no usable certificate: expected PEM (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        Ok(Trust {
            roots: Arc::new(roots),
            source: path.display().to_string(),
            missing: None,
        })
    }
}

/// Why a client would refuse a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// Not issued by a trusted CA.
    Untrusted(String),
    /// Not valid for the name asked for; the names it holds.
    WrongName(Vec<String>),
    /// Expired (at the given time, seconds since the epoch, if known).
    Expired(Option<u64>),
    /// Not valid yet (from the given time, if known).
    NotYetValid(Option<u64>),
    /// Anything else rustls refuses.
    Other(String),
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProblem::Untrusted(why) => write!(f, "is not issued by a trusted CA ({why})"),
            CertProblem::WrongName(names) if names.is_empty() => {
                write!(f, "is not valid for this name")
            }
            CertProblem::WrongName(names) => {
                write!(
                    f,
                    "is not valid for this name (it is for {})",
                    names.join(", ")
                )
            }
            CertProblem::Expired(Some(t)) => write!(f, "expired on {}", rfc3339(*t)),
            CertProblem::Expired(None) => write!(f, "has expired"),
            CertProblem::NotYetValid(Some(t)) => write!(f, "is not valid before {}", rfc3339(*t)),
            CertProblem::NotYetValid(None) => write!(f, "is not valid yet"),
            CertProblem::Other(why) => write!(f, "is refused: {why}"),
        }
    }
}

fn problem_of(err: &rustls::Error) -> CertProblem {
    match err {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => CertProblem::Untrusted("unknown issuer".into()),
            CertificateError::BadSignature => CertProblem::Untrusted("bad signature".into()),
            CertificateError::NotValidForName => CertProblem::WrongName(Vec::new()),
            CertificateError::NotValidForNameContext { presented, .. } => {
                CertProblem::WrongName(presented.clone())
            }
            CertificateError::Expired => CertProblem::Expired(None),
            CertificateError::ExpiredContext { not_after, .. } => {
                CertProblem::Expired(Some(not_after.as_secs()))
            }
            CertificateError::NotValidYet => CertProblem::NotYetValid(None),
            CertificateError::NotValidYetContext { not_before, .. } => {
                CertProblem::NotYetValid(Some(not_before.as_secs()))
            }
            other => CertProblem::Other(format!("{other:?}")),
        },
        other => CertProblem::Other(other.to_string()),
    }
}

/// What one handshake showed about the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// `None` when a client accepts it; otherwise why not.
    pub problem: Option<CertProblem>,
    /// The end-entity certificate's validity period (seconds since the
    /// epoch), when it parses.
    pub not_before: Option<u64>,
    /// See `not_before`.
    pub not_after: Option<u64>,
}

/// Why an HTTPS request failed.
#[derive(Debug)]
pub enum HttpsError {
    /// No TCP connection, or the TLS handshake failed.
    Connect(String),
    /// A client would refuse the certificate; nothing was sent.
    Certificate(CertInfo),
    /// The connection broke, or the answer is not HTTP/1.1.
    Http(String),
}

impl fmt::Display for HttpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpsError::Connect(why) | HttpsError::Http(why) => f.write_str(why),
            HttpsError::Certificate(info) => match &info.problem {
                Some(p) => write!(f, "the certificate {p}"),
                None => f.write_str("the certificate was refused"),
            },
        }
    }
}

/// Records the WebPKI verdict instead of aborting the handshake on it.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<(Result<(), rustls::Error>, CertificateDer<'static>)>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((verdict, end_entity.clone().into_owned()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The validity period of a DER certificate (seconds since the epoch).
fn validity(der: &[u8]) -> (Option<u64>, Option<u64>) {
    use x509_cert::der::Decode;
    match x509_cert::Certificate::from_der(der) {
        Ok(cert) => {
            let v = &cert.tbs_certificate.validity;
            (
                Some(v.not_before.to_unix_duration().as_secs()),
                Some(v.not_after.to_unix_duration().as_secs()),
            )
        }
        Err(_) => (None, None),
    }
}

/// An HTTPS client for one trust setting.
pub struct Https {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    timeout: Duration,
}

/// An established TLS connection.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

impl Https {
    /// A client trusting `trust`, with `timeout` for each step.
    pub fn new(trust: Trust, timeout: Duration) -> Self {
        // rustls 0.23.48 deprecates ring's provider for lacking
        // post-quantum key exchange, which aws-lc-rs has; aws-lc-rs needs
        // cmake and a large C build on every NixOS install, and a health
        // check's connection carries nothing that needs long-term secrecy.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        Self {
            trust,
            provider: Arc::new(provider),
            timeout,
        }
    }

    /// Where the trusted CA certificates come from.
    pub fn trust_source(&self) -> &str {
        &self.trust.source
    }

    /// Connects to `addr`, asking for `name` (SNI), and completes the TLS
    /// handshake; returns the stream and what the certificate looks like.
    pub fn connect(&self, addr: SocketAddr, name: &str) -> Result<(Tls, CertInfo), HttpsError> {
        let connect_err = |what: String| HttpsError::Connect(format!("{addr}: {what}"));
        if let Some(why) = &self.trust.missing {
            return Err(HttpsError::Connect(why.clone()));
        }
        let inner = WebPkiServerVerifier::builder_with_provider(
            self.trust.roots.clone(),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| connect_err(format!("cannot build the certificate verifier: {e}")))?;
        let recorder = Arc::new(Recorder {
            inner,
            seen: Mutex::new(None),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| connect_err(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| connect_err(format!("{name:?} is not a server name: {e}")))?;
        let mut conn = ClientConnection::new(Arc::new(config), server_name)
            .map_err(|e| connect_err(e.to_string()))?;
        let mut tcp = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| {
            connect_err(if e.kind() == std::io::ErrorKind::TimedOut {
                format!("no answer within {:?}", self.timeout)
            } else {
                e.to_string()
            })
        })?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|()| tcp.set_write_timeout(Some(self.timeout)))
            .map_err(|e| connect_err(e.to_string()))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| connect_err(format!("TLS handshake failed: {e}")))?;
        }
        let seen = recorder.seen.lock().ok().and_then(|mut s| s.take());
        let Some((verdict, end_entity)) = seen else {
            return Err(connect_err(
                "the server presented no certificate".to_owned(),
            ));
        };
        let (not_before, not_after) = validity(end_entity.as_ref());
        let info = CertInfo {
            problem: verdict.err().map(|e| problem_of(&e)),
            not_before,
            not_after,
        };
        Ok((StreamOwned::new(conn, tcp), info))
    }

    /// The certificate `addr` presents for `name`, as a client would judge
    /// it now.
    pub fn certificate(&self, addr: SocketAddr, name: &str) -> Result<CertInfo, HttpsError> {
        let (mut tls, info) = self.connect(addr, name)?;
        tls.conn.send_close_notify();
        let _ = tls.flush();
        Ok(info)
    }

    /// Sends one request to `https://name:port{path}` at `addr` and reads
    /// the whole answer, unless a client would refuse the certificate.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        addr: SocketAddr,
        name: &str,
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpsError> {
        let (tls, info) = self.connect(addr, name)?;
        if info.problem.is_some() {
            return Err(HttpsError::Certificate(info));
        }
        let host = if port == 443 {
            name.to_owned()
        } else {
            format!("{name}:{port}")
        };
        let mut stream = CloseIsEof(tls);
        http::exchange(&mut stream, &host, method, path, headers, body)
            .map_err(|e| HttpsError::Http(format!("https://{host}{path} at {addr}: {e}")))
    }
}

/// A TLS stream on which the peer closing the TCP connection without a
/// TLS close_notify reads as the end of the data (the body's length is
/// known from the HTTP framing in every case that matters).
struct CloseIsEof(Tls);

impl Read for CloseIsEof {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for CloseIsEof {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = std::env::temp_dir().join(format!("ospw-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Trust::from_pem_file(&empty).err().unwrap();
        assert!(err.contains("empty.pem") && err.contains("PEM"), "{err}");
        let err = Trust::from_pem_file(&dir.join("missing.pem"))
            .err()
            .unwrap();
        assert!(err.contains("missing.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn certificate_problems_read_as_a_client_would_say_them() {
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("chat.example.test").unwrap(),
            presented: vec!["DnsName(\"other.test\")".into()],
        });
        assert!(matches!(problem_of(&e), CertProblem::WrongName(n) if n.len() == 1));
        let e = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(2_000_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_798_761_599)),
        });
        assert_eq!(
            problem_of(&e).to_string(),
            "expired on 2026-12-31T23:59:59Z"
        );
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(matches!(problem_of(&e), CertProblem::Untrusted(_)));
    }
}
