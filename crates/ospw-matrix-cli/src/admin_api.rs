//! Synapse's admin API on Synapse's own loopback listener, with a dedicated
//! admin service account the CLI keeps for itself.
//!
//! The admin never handles an access token: the first admin command
//! registers a service account (`ospw-admin=svc`, a server administrator)
//! through shared-secret registration, which hands out its access token,
//! and keeps its user ID, password and token in
//! `<state dir>/admin-account.json` (0600, the directory 0700). When Synapse
//! rejects the token (it was revoked, the database was restored), the CLI
//! logs in again with the stored password; when that fails too (the account
//! is gone, or `sso.password_login` is false so no password signs in), it
//! registers a new service account and deactivates the old one.
//!
//! The name holds `=` followed by a letter that is not a hex digit, which
//! Synapse's single sign-on mapping never produces (it writes `=` only as
//! `=XX`, two hex digits): a provider with `allow_existing_users` can never
//! link someone's sign-in to the service account. An older account whose
//! name such a provider could produce (`ospw-admin`) is replaced as soon as
//! a provider links existing accounts.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ospw_matrix::components::synapse::ListenerType;
use ospw_matrix::host::SecretKind;
use ospw_matrix::registration::{
    interpret_register_response, parse_nonce, registration_body, RegisterFailure, REGISTER_PATH,
};
use ospw_matrix::{Error, HostDescription, RenderContext};
use serde::{Deserialize, Serialize};

use crate::http::{self, Endpoint, HttpError, Response};

/// The service account's localpart (a random suffix is added when taken).
pub const SERVICE_LOCALPART: &str = "ospw-admin=svc";

/// Whether Synapse's single sign-on mapping (`map_username_to_mxid_localpart`,
/// which escapes every other byte as `=XX` in lower-case hex) could produce
/// `localpart`, so that a provider with `allow_existing_users` could link a
/// sign-in to it.
pub fn sso_could_produce(localpart: &str) -> bool {
    let bytes = localpart.as_bytes();
    !localpart.starts_with('_')
        && bytes.iter().enumerate().all(|(i, b)| {
            *b != b'='
                || bytes.get(i + 1..i + 3).is_some_and(|h| {
                    h.iter()
                        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
                })
        })
}
/// The state file in the state directory.
pub const STATE_FILE: &str = "admin-account.json";
/// The device display name of the service account's session.
const DEVICE_NAME: &str = "ospw-matrix CLI";

/// Synapse's client listener, from the configuration derived from the host
/// description (so `synapse.settings` overrides are honoured).
pub fn endpoint_of(host: &HostDescription) -> Result<Endpoint, Error> {
    let ctx = RenderContext {
        output_dir: PathBuf::from("/nonexistent"),
    };
    let derived = ospw_matrix::render::synapse::homeserver(host, &ctx).map_err(|errs| {
        Error::Other(format!(
            "the host description does not give a valid Synapse configuration: {errs}"
        ))
    })?;
    derived
        .listeners
        .iter()
        .flatten()
        .filter(|l| l.kind == ListenerType::Http)
        .find_map(|l| {
            if let Some(path) = &l.path {
                return Some(Endpoint::Unix(PathBuf::from(path)));
            }
            let port = l.port?;
            let host = l
                .all_bind_addresses()
                .first()
                .map_or_else(|| "127.0.0.1".to_owned(), |a| (*a).to_owned());
            Some(Endpoint::Tcp { host, port })
        })
        .ok_or_else(|| Error::Other("the host description gives Synapse no listener".into()))
}

/// The listener, for messages.
pub fn listener_description(host: &HostDescription) -> String {
    endpoint_of(host).map_or_else(|_| "its listener".to_owned(), |e| e.to_string())
}

/// Whether something accepts connections on Synapse's listener.
pub fn listener_answers(host: &HostDescription) -> bool {
    let Ok(endpoint) = endpoint_of(host) else {
        return false;
    };
    match endpoint {
        Endpoint::Unix(path) => UnixStream::connect(path).is_ok(),
        Endpoint::Tcp { host, port } => (host.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| {
                addrs
                    .into_iter()
                    .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
            })
            .unwrap_or(false),
    }
}

/// Synapse's version from `/_synapse/admin/v1/server_version` (no token
/// needed), or `None` when it does not answer.
pub fn synapse_version(host: &HostDescription) -> Option<String> {
    let endpoint = endpoint_of(host).ok()?;
    let r = send(
        &endpoint,
        "GET",
        "/_synapse/admin/v1/server_version",
        None,
        None,
        Duration::from_secs(5),
    )
    .ok()?;
    if r.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v.get("server_version")?.as_str().map(str::to_owned)
}

/// Sends one request with an optional bearer token and reads the response.
pub fn send(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| ("Authorization", value))
        .into_iter()
        .collect();
    http::request(endpoint, method, path, &headers, body, timeout)
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the CLI keeps about its service account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminState {
    /// The account's full user ID.
    pub user_id: String,
    /// Its localpart.
    pub localpart: String,
    /// Its password (random).
    pub password: String,
    /// The current access token, when logged in.
    pub access_token: Option<String>,
}

/// The `errcode` and `error` of a Matrix error answer.
pub fn matrix_error(r: &Response) -> (Option<String>, String) {
    let v: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|x| x.as_str())
            .map(str::to_owned)
    };
    let message = field("error").unwrap_or_else(|| {
        String::from_utf8_lossy(&r.body)
            .chars()
            .take(300)
            .collect::<String>()
    });
    (field("errcode"), message)
}

/// Connection settings shared by every admin command.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// The host description (YAML or JSON, such as the rendered host.json).
    #[arg(long, short, env = "OSPW_MATRIX_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// The registration shared secret file, used once to create the CLI's
    /// admin service account (default: from the host description).
    #[arg(
        long,
        env = "OSPW_MATRIX_REGISTRATION_SECRET_FILE",
        value_name = "FILE"
    )]
    pub registration_secret_file: Option<PathBuf>,
    /// Where the CLI keeps its admin service account (0700; the file
    /// admin-account.json is 0600). Default: the host description's
    /// secrets.dir.
    #[arg(long, env = "OSPW_MATRIX_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Synapse's listener, HOST:PORT or unix:/PATH (default: from the host
    /// description).
    #[arg(long, env = "OSPW_MATRIX_SYNAPSE", value_name = "ADDRESS")]
    pub synapse: Option<String>,
    /// How long to wait for Synapse, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

/// An authenticated admin API client.
pub struct AdminClient {
    endpoint: Endpoint,
    timeout: Duration,
    state_path: PathBuf,
    secret_file: PathBuf,
    /// The server name.
    pub server_name: String,
    /// Whether passwords sign in (`sso.password_login`).
    password_login: bool,
    /// Whether a provider links first sign-ins to existing accounts.
    sso_links_existing: bool,
    state: Option<AdminState>,
}

impl AdminClient {
    /// Reads the host description and the stored service account.
    pub fn new(args: &AdminArgs) -> Result<Self, Error> {
        let host = ospw_matrix::load_host(&args.config)?;
        let endpoint = match &args.synapse {
            Some(text) => {
                Endpoint::parse(text).map_err(|m| Error::Other(format!("--synapse: {m}")))?
            }
            None => endpoint_of(&host)
                .map_err(|e| Error::Other(format!("{}: {e}", args.config.display())))?,
        };
        let secret_file = match &args.registration_secret_file {
            Some(p) => p.clone(),
            None => {
                let ctx = RenderContext {
                    output_dir: PathBuf::from("/nonexistent"),
                };
                ospw_matrix::render::synapse::homeserver(&host, &ctx)
                    .ok()
                    .and_then(|d| d.registration_shared_secret_path)
                    .map(PathBuf::from)
                    .filter(|p| p.exists())
                    .unwrap_or_else(|| host.secrets.path(SecretKind::RegistrationSharedSecret))
            }
        };
        let state_dir = args
            .state_dir
            .clone()
            .unwrap_or_else(|| host.secrets.dir.clone());
        let state_path = state_dir.join(STATE_FILE);
        let state = match std::fs::read(&state_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::Other(format!(
                    "{}: not a valid state file ({e}); remove it to have a new service account registered",
                    state_path.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&state_path, "read", e)),
        };
        Ok(Self {
            endpoint,
            timeout: Duration::from_secs(args.timeout.max(1)),
            state_path,
            secret_file,
            password_login: host.sso.password_login,
            sso_links_existing: host.sso.providers.iter().any(|p| p.allow_existing_users),
            server_name: host.server_name,
            state,
        })
    }

    /// Whether passwords sign in on this server (`sso.password_login`).
    pub fn password_login(&self) -> bool {
        self.password_login
    }

    /// The service account's user ID, once known.
    pub fn service_user_id(&self) -> Option<&str> {
        self.state.as_ref().map(|s| s.user_id.as_str())
    }

    /// The full user ID for `name` (`alice` or `@alice:example.org`).
    pub fn user_id(&self, name: &str) -> Result<String, Error> {
        if name.starts_with('@') {
            let server = name.rsplit_once(':').map(|(_, s)| s);
            if server != Some(self.server_name.as_str()) {
                return Err(Error::Other(format!(
                    "{name:?} is not an account of this server ({})",
                    self.server_name
                )));
            }
            return Ok(name.to_owned());
        }
        if name.is_empty() || name.contains(':') {
            return Err(Error::Other(format!(
                "invalid user name {name:?}: expected a localpart such as alice or a user ID such as @alice:{}",
                self.server_name
            )));
        }
        Ok(format!("@{name}:{}", self.server_name))
    }

    fn unreachable(&self, e: HttpError) -> Error {
        match e {
            HttpError::Unreachable { .. } => Error::Other(format!(
                "{e}\nSynapse is not running or not listening there: start it (on NixOS: systemctl start ospw-matrix-synapse) and try again"
            )),
            other => Error::Other(other.to_string()),
        }
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, Error> {
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Other(e.to_string()))?;
        send(
            &self.endpoint,
            method,
            path,
            token,
            bytes.as_deref(),
            self.timeout,
        )
        .map_err(|e| self.unreachable(e))
    }

    fn save_state(&self) -> Result<(), Error> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if let Some(dir) = self.state_path.parent() {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| Error::io(dir, "create directory", e))?;
            }
        }
        let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Other(e.to_string()))?;
        ospw_matrix::fsutil::write_file_atomically(&self.state_path, &json, 0o600)
    }

    fn login(&self, state: &AdminState) -> Result<Option<String>, Error> {
        if !self.password_login {
            // Synapse offers no password login (sso.password_login: false).
            return Ok(None);
        }
        let body = serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": state.localpart},
            "password": state.password,
            "initial_device_display_name": DEVICE_NAME,
        });
        let r = self.raw("POST", "/_matrix/client/v3/login", None, Some(&body))?;
        if r.status == 200 {
            let v: serde_json::Value =
                serde_json::from_slice(&r.body).map_err(|e| Error::Other(e.to_string()))?;
            return Ok(v
                .get("access_token")
                .and_then(|t| t.as_str())
                .map(str::to_owned));
        }
        if r.status == 403 {
            return Ok(None);
        }
        let (code, message) = matrix_error(&r);
        Err(Error::Other(format!(
            "logging in the service account {} failed (HTTP {}, {}): {message}",
            state.user_id,
            r.status,
            code.unwrap_or_default()
        )))
    }

    fn register(&self) -> Result<AdminState, Error> {
        let text = std::fs::read_to_string(&self.secret_file).map_err(|e| {
            Error::io(
                &self.secret_file,
                "read the registration shared secret (needed once, to create the CLI's admin service account)",
                e,
            )
        })?;
        let secret = text.trim();
        let password = ospw_matrix::secrets::random_alphanumeric(40)?;
        for attempt in 0..4 {
            let localpart = if attempt == 0 {
                SERVICE_LOCALPART.to_owned()
            } else {
                format!(
                    "{SERVICE_LOCALPART}-{}",
                    ospw_matrix::secrets::random_alphanumeric(6)?.to_ascii_lowercase()
                )
            };
            let r = self.raw("GET", REGISTER_PATH, None, None)?;
            let nonce = parse_nonce(&r.body).map_err(|m| {
                Error::Other(format!(
                    "Synapse at {} did not hand out a registration nonce (HTTP {}): {m}",
                    self.endpoint, r.status
                ))
            })?;
            let mut body = registration_body(secret, &nonce, &localpart, &password, true)?;
            // The answer carries the access token: no password login needed
            // (there may be none, with sso.password_login false).
            body["inhibit_login"] = serde_json::Value::Bool(false);
            let r = self.raw("POST", REGISTER_PATH, None, Some(&body))?;
            match interpret_register_response(r.status, &r.body) {
                Ok(user_id) => {
                    eprintln!(
                        "registered the CLI's admin service account {user_id} (kept in {})",
                        self.state_path.display()
                    );
                    let access_token = serde_json::from_slice::<serde_json::Value>(&r.body)
                        .ok()
                        .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned));
                    return Ok(AdminState {
                        user_id,
                        localpart,
                        password,
                        access_token,
                    });
                }
                Err(RegisterFailure::UserInUse(_)) => continue,
                Err(failure) => {
                    return Err(Error::Other(format!(
                        "cannot create the CLI's admin service account: {failure}"
                    )))
                }
            }
        }
        Err(Error::Other(
            "cannot create the CLI's admin service account: every name tried is taken".into(),
        ))
    }

    /// Makes sure a token is at hand: the stored one, a new login, or a new
    /// service account (the old one, if any, is then deactivated).
    fn ensure_token(&mut self, stale: bool) -> Result<String, Error> {
        let mut replaced = None;
        if let Some(state) = &self.state {
            let linkable = self.sso_links_existing && sso_could_produce(&state.localpart);
            if linkable {
                eprintln!(
                    "the service account {} has a name a single sign-on provider with \
                     allow_existing_users could link to: replacing it",
                    state.user_id
                );
                replaced = Some(state.clone());
            } else {
                if !stale {
                    if let Some(token) = &state.access_token {
                        return Ok(token.clone());
                    }
                }
                let state = state.clone();
                if let Some(token) = self.login(&state)? {
                    self.state = Some(AdminState {
                        access_token: Some(token.clone()),
                        ..state
                    });
                    self.save_state()?;
                    return Ok(token);
                }
                eprintln!(
                    "the service account {} cannot log in any more: registering a new one",
                    state.user_id
                );
                replaced = Some(state);
            }
        }
        let mut state = self.register()?;
        self.state = Some(state.clone());
        self.save_state()?;
        let token = match state.access_token.clone() {
            Some(token) => token,
            None => self.login(&state)?.ok_or_else(|| {
                Error::Other(format!(
                    "the new service account {} cannot log in",
                    state.user_id
                ))
            })?,
        };
        state.access_token = Some(token.clone());
        self.state = Some(state);
        self.save_state()?;
        if let Some(old) = replaced {
            self.deactivate_replaced(&old, &token);
        }
        Ok(token)
    }

    /// Deactivates a replaced service account (best effort: it may be gone
    /// already, after a restore).
    fn deactivate_replaced(&self, old: &AdminState, token: &str) {
        let path = format!(
            "/_synapse/admin/v1/deactivate/{}",
            encode_segment(&old.user_id)
        );
        let body = serde_json::json!({"erase": false});
        match self.raw("POST", &path, Some(token), Some(&body)) {
            Ok(r) if r.status == 200 => {
                eprintln!("deactivated the old service account {}", old.user_id)
            }
            Ok(r) if r.status == 404 => {}
            Ok(r) => {
                let (_, message) = matrix_error(&r);
                eprintln!(
                    "could not deactivate the old service account {} (HTTP {}): {message}; \
                     deactivate it with ospw-matrix user deactivate",
                    old.user_id, r.status
                );
            }
            Err(e) => eprintln!(
                "could not deactivate the old service account {}: {e}",
                old.user_id
            ),
        }
    }

    /// Calls the admin API, re-obtaining the token once if Synapse rejects it.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, Error> {
        let token = self.ensure_token(false)?;
        let r = self.raw(method, path, Some(&token), body)?;
        let (code, _) = matrix_error(&r);
        if r.status == 401 || code.as_deref() == Some("M_UNKNOWN_TOKEN") {
            let token = self.ensure_token(true)?;
            return self.raw(method, path, Some(&token), body);
        }
        Ok(r)
    }

    /// The account's admin record, or a clear error when it does not exist.
    pub fn get_user(&mut self, user_id: &str) -> Result<serde_json::Value, Error> {
        let path = format!("/_synapse/admin/v2/users/{}", encode_segment(user_id));
        let r = self.call("GET", &path, None)?;
        if r.status == 404 {
            return Err(Error::Other(format!(
                "no such account: {user_id} does not exist on this server"
            )));
        }
        expect_ok(&r, &format!("reading {user_id}"))?;
        serde_json::from_slice(&r.body)
            .map_err(|e| Error::Other(format!("Synapse's answer for {user_id}: {e}")))
    }
}

/// `Ok` for a 2xx answer; otherwise an error with Synapse's message.
pub fn expect_ok(r: &Response, what: &str) -> Result<(), Error> {
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    let (code, message) = matrix_error(r);
    Err(Error::Other(match code {
        Some(code) => format!(
            "{what}: Synapse refused (HTTP {}, {code}): {message}",
            r.status
        ),
        None => format!("{what}: Synapse refused (HTTP {}): {message}", r.status),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(
            encode_segment("@alice:example.org"),
            "%40alice%3Aexample.org"
        );
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn user_ids_are_checked_against_the_server_name() {
        let client = AdminClient {
            endpoint: Endpoint::Unix(PathBuf::from("/nonexistent")),
            timeout: Duration::from_secs(1),
            state_path: PathBuf::from("/nonexistent/admin-account.json"),
            secret_file: PathBuf::from("/nonexistent/secret"),
            server_name: "example.org".into(),
            password_login: true,
            sso_links_existing: false,
            state: None,
        };
        assert_eq!(client.user_id("alice").unwrap(), "@alice:example.org");
        assert_eq!(
            client.user_id("@alice:example.org").unwrap(),
            "@alice:example.org"
        );
        assert!(client.user_id("@alice:other.org").is_err());
        assert!(client.user_id("alice:x").is_err());
        assert!(client.user_id("").is_err());
    }

    #[test]
    fn an_unreachable_server_says_to_start_synapse() {
        let mut client = AdminClient {
            endpoint: Endpoint::Unix(PathBuf::from("/nonexistent/synapse.sock")),
            timeout: Duration::from_secs(1),
            state_path: PathBuf::from("/nonexistent/admin-account.json"),
            secret_file: PathBuf::from("/nonexistent/secret"),
            server_name: "example.org".into(),
            password_login: true,
            sso_links_existing: false,
            state: Some(AdminState {
                user_id: "@ospw-admin:example.org".into(),
                localpart: "ospw-admin".into(),
                password: "p".into(),
                access_token: Some("t".into()),
            }),
        };
        let err = client
            .call("GET", "/_synapse/admin/v2/users", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not running"), "{err}");
        assert!(err.contains("/nonexistent/synapse.sock"), "{err}");
    }

    #[test]
    fn the_service_account_is_out_of_reach_of_sso_linking() {
        for producible in ["ospw-admin", "alice", "a=c2=ad", "x=ff", "ospw-admin-1"] {
            assert!(sso_could_produce(producible), "{producible}");
        }
        for unreachable in [
            SERVICE_LOCALPART,
            "ospw-admin=svc-x1y2z3",
            "a=",
            "a=f",
            "a=fg",
            "_x",
        ] {
            assert!(!sso_could_produce(unreachable), "{unreachable}");
        }
        assert!(ospw_matrix::registration::check_localpart(SERVICE_LOCALPART, None).is_ok());
    }

    #[test]
    fn matrix_errors_are_read() {
        let r = Response {
            status: 404,
            headers: vec![],
            body: br#"{"errcode":"M_NOT_FOUND","error":"User not found"}"#.to_vec(),
        };
        assert_eq!(
            matrix_error(&r),
            (Some("M_NOT_FOUND".into()), "User not found".into())
        );
        let e = expect_ok(&r, "x").unwrap_err().to_string();
        assert!(
            e.contains("M_NOT_FOUND") && e.contains("User not found"),
            "{e}"
        );
    }
}
