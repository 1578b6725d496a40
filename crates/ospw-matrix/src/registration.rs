//! Synapse's shared-secret registration (`/_synapse/admin/v1/register`):
//! the HMAC-SHA1 request body, localpart checks and the interpretation of
//! Synapse's answers.
//!
//! The protocol: `GET` the endpoint for a one-time `nonce`, then `POST` the
//! account with `mac` = hex HMAC-SHA1, keyed with the registration shared
//! secret, over `nonce \0 username \0 password \0 (admin|notadmin)`.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::error::{Error, Result};

/// The endpoint, on Synapse's client listener.
pub const REGISTER_PATH: &str = "/_synapse/admin/v1/register";

/// The longest user ID Synapse accepts (`@localpart:server_name`).
pub const MAX_USER_ID_LEN: usize = 255;

/// The hex HMAC-SHA1 Synapse expects in `mac`.
pub fn registration_mac(
    shared_secret: &str,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
) -> Result<String> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(shared_secret.as_bytes())
        .map_err(|e| Error::Other(format!("cannot key HMAC-SHA1: {e}")))?;
    mac.update(nonce.as_bytes());
    mac.update(b"\x00");
    mac.update(username.as_bytes());
    mac.update(b"\x00");
    mac.update(password.as_bytes());
    mac.update(b"\x00");
    mac.update(if admin { b"admin" } else { b"notadmin" });
    let digest = mac.finalize().into_bytes();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The JSON body of the registration `POST`. `inhibit_login` keeps Synapse
/// from creating a device and access token nobody would use.
pub fn registration_body(
    shared_secret: &str,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
) -> Result<serde_json::Value> {
    let mac = registration_mac(shared_secret, nonce, username, password, admin)?;
    Ok(serde_json::json!({
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": mac,
        "inhibit_login": true,
    }))
}

/// Checks `name` as a Matrix localpart for a new account: lower-case
/// `a-z 0-9 . _ = - /`, not empty, not starting with `_` (Synapse reserves
/// those), and short enough for the user ID to fit 255 characters.
pub fn check_localpart(name: &str, server_name: Option<&str>) -> std::result::Result<(), String> {
    let expected =
        "expected a Matrix localpart of lower-case letters, digits and . _ = - / (such as alice)";
    if name.is_empty() {
        return Err(format!("the user name is empty: {expected}"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(*c)))
    {
        let hint = if name.chars().any(|c| c.is_ascii_uppercase()) {
            format!(" (did you mean {:?}?)", name.to_ascii_lowercase())
        } else {
            String::new()
        };
        return Err(format!("{name:?} contains {bad:?}: {expected}{hint}"));
    }
    if name.starts_with('_') {
        return Err(format!(
            "{name:?} starts with _, which Synapse reserves for bridges and services: {expected}"
        ));
    }
    if let Some(server) = server_name {
        let len = name.len() + server.len() + 2;
        if len > MAX_USER_ID_LEN {
            return Err(format!(
                "@{name}:{server} is {len} characters long: expected at most {MAX_USER_ID_LEN}"
            ));
        }
    }
    Ok(())
}

/// Reads the nonce from the answer to the `GET`.
pub fn parse_nonce(body: &[u8]) -> std::result::Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    value
        .get("nonce")
        .and_then(|n| n.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the answer has no nonce".to_owned())
}

/// Why a registration failed, from Synapse's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterFailure {
    /// The user exists (`M_USER_IN_USE`).
    UserInUse(String),
    /// The shared secret is wrong (403 "HMAC incorrect").
    WrongSecret(String),
    /// Synapse no longer knew the nonce ("unrecognised nonce"): it expires
    /// after 60 seconds and does not survive a restart.
    StaleNonce(String),
    /// Synapse has no registration shared secret configured.
    NotEnabled(String),
    /// Anything else, with Synapse's errcode and message.
    Other {
        /// The HTTP status.
        status: u16,
        /// Synapse's `errcode`, if any.
        errcode: Option<String>,
        /// Synapse's `error` message, or the body.
        message: String,
    },
}

impl std::fmt::Display for RegisterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UserInUse(m) => write!(f, "the user exists already (M_USER_IN_USE: {m})"),
            Self::WrongSecret(m) => write!(
                f,
                "wrong registration shared secret: Synapse answered {m:?}; check that the secret file is the one Synapse reads (registration_shared_secret_path)"
            ),
            Self::StaleNonce(m) => write!(
                f,
                "Synapse no longer knew the registration nonce ({m}): it expires after 60 s and is forgotten when Synapse restarts; try again"
            ),
            Self::NotEnabled(m) => write!(
                f,
                "Synapse has no registration shared secret configured ({m}): set registration_shared_secret_path"
            ),
            Self::Other {
                status,
                errcode,
                message,
            } => match errcode {
                Some(code) => write!(f, "Synapse refused (HTTP {status}, {code}): {message}"),
                None => write!(f, "Synapse refused (HTTP {status}): {message}"),
            },
        }
    }
}

/// Interprets Synapse's answer to the registration `POST`: `Ok(user_id)`
/// for a 200, the reason otherwise.
pub fn interpret_register_response(
    status: u16,
    body: &[u8],
) -> std::result::Result<String, RegisterFailure> {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if status == 200 {
        return field("user_id").ok_or_else(|| RegisterFailure::Other {
            status,
            errcode: None,
            message: "the answer has no user_id".into(),
        });
    }
    let errcode = field("errcode");
    let message =
        field("error").unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    match (status, errcode.as_deref(), message.as_str()) {
        (_, Some("M_USER_IN_USE"), _) => Err(RegisterFailure::UserInUse(message)),
        (403, _, _) => Err(RegisterFailure::WrongSecret(message)),
        (400, _, "unrecognised nonce") => Err(RegisterFailure::StaleNonce(message)),
        (400, _, m) if m.contains("Shared secret registration is not enabled") => {
            Err(RegisterFailure::NotEnabled(message))
        }
        _ => Err(RegisterFailure::Other {
            status,
            errcode,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected MACs computed independently with CPython's `hmac` module,
    /// following the algorithm of Synapse's admin API documentation
    /// (docs/admin_api/register_api.md) and its server-side check in
    /// `synapse/rest/admin/users.py`, for the documentation's example
    /// inputs (nonce "thisisanonce", user "pepper_roni", password "pizza")
    /// with the secret "shared_secret", and for non-ASCII inputs:
    ///
    /// ```text
    /// m = hmac.new(key=secret.encode(), digestmod=hashlib.sha1)
    /// m.update(nonce.encode()); m.update(b"\x00"); m.update(user.encode())
    /// m.update(b"\x00"); m.update(password.encode()); m.update(b"\x00")
    /// m.update(b"admin" if admin else b"notadmin"); m.hexdigest()
    /// ```
    #[test]
    fn mac_matches_independent_computation() {
        assert_eq!(
            registration_mac(
                "shared_secret",
                "thisisanonce",
                "pepper_roni",
                "pizza",
                true
            )
            .expect("mac"),
            "48715842ad67d5dc9a9ee938a3bda4fcfae8d7c7"
        );
        assert_eq!(
            registration_mac(
                "shared_secret",
                "thisisanonce",
                "pepper_roni",
                "pizza",
                false
            )
            .expect("mac"),
            "cf2391885316861a8e3871bfdcd223ab3913221d"
        );
        assert_eq!(
            registration_mac("s3cr3t-ü", "n0nce", "alice", "pässwörd", false).expect("mac"),
            "23a0021c8927fd7cbdc707ce24f3b0ae45617840"
        );
    }

    #[test]
    fn body_has_every_field() {
        let body = registration_body(
            "shared_secret",
            "thisisanonce",
            "pepper_roni",
            "pizza",
            true,
        )
        .expect("body");
        assert_eq!(body["nonce"], "thisisanonce");
        assert_eq!(body["username"], "pepper_roni");
        assert_eq!(body["password"], "pizza");
        assert_eq!(body["admin"], true);
        assert_eq!(body["inhibit_login"], true);
        assert_eq!(body["mac"], "48715842ad67d5dc9a9ee938a3bda4fcfae8d7c7");
    }

    #[test]
    fn localparts() {
        for good in ["alice", "a.b_c=d-e/f", "0bob"] {
            assert_eq!(check_localpart(good, Some("example.org")), Ok(()), "{good}");
        }
        for bad in [
            "", "Alice", "al ice", "al:ice", "@alice", "_bridge", "émile",
        ] {
            assert!(check_localpart(bad, None).is_err(), "{bad}");
        }
        assert!(check_localpart("Alice", None)
            .expect_err("upper")
            .contains("\"alice\""));
        assert!(check_localpart(&"a".repeat(250), Some("example.org")).is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(
            interpret_register_response(200, br#"{"user_id":"@a:example.org"}"#),
            Ok("@a:example.org".into())
        );
        assert!(matches!(
            interpret_register_response(
                400,
                br#"{"errcode":"M_USER_IN_USE","error":"User ID already taken."}"#
            ),
            Err(RegisterFailure::UserInUse(_))
        ));
        assert!(matches!(
            interpret_register_response(
                403,
                br#"{"errcode":"M_FORBIDDEN","error":"HMAC incorrect"}"#
            ),
            Err(RegisterFailure::WrongSecret(_))
        ));
        assert!(matches!(
            interpret_register_response(
                400,
                br#"{"errcode":"M_UNKNOWN","error":"unrecognised nonce"}"#
            ),
            Err(RegisterFailure::StaleNonce(_))
        ));
        assert!(matches!(
            interpret_register_response(
                400,
                br#"{"errcode":"M_UNKNOWN","error":"Shared secret registration is not enabled"}"#
            ),
            Err(RegisterFailure::NotEnabled(_))
        ));
        let other = interpret_register_response(
            400,
            br#"{"errcode":"M_INVALID_USERNAME","error":"Numeric user IDs are reserved"}"#,
        )
        .expect_err("other");
        assert_eq!(
            other.to_string(),
            "Synapse refused (HTTP 400, M_INVALID_USERNAME): Numeric user IDs are reserved"
        );
        assert_eq!(parse_nonce(br#"{"nonce":"abc"}"#), Ok("abc".into()));
        assert!(parse_nonce(b"<html>").is_err());
    }
}
