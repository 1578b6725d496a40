//! Secret generation: the Synapse signing key and the random shared secrets,
//! all from the operating system's random number generator.
//!
//! [`init_dir`] fills a secrets directory: it creates every missing secret
//! (files mode 0600), never overwrites an existing one, and refuses an
//! existing file that does not hold a valid secret. The directory is created
//! with mode 0700; an existing directory with group or other permissions is
//! *tightened* to 0700 (and the report says so), because the secrets in it
//! must not be readable by other users.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;

use crate::error::{Error, Result};
use crate::host::SecretKind;

/// The characters of generated shared secrets and key versions.
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The length of a generated shared secret: 64 alphanumerics, about 381
/// bits. Alphanumerics need no quoting in any configuration format.
pub const SHARED_SECRET_LEN: usize = 64;

/// The shortest shared secret accepted in an existing file.
pub const MIN_SHARED_SECRET_LEN: usize = 32;

/// The form of a signing key file, for error messages.
pub const SIGNING_KEY_FORM: &str =
    "one line `ed25519 <version> <seed>` as Synapse writes it: a version such as a_Ab3x (letters, digits, _) and the unpadded base64 of a 32-byte seed";

/// Fills `buf` from the operating system's random number generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::Random(e.to_string()))
}

/// `len` random characters from `alphabet` (at most 256 characters),
/// without modulo bias (rejection sampling).
fn random_chars(len: usize, alphabet: &[u8]) -> Result<String> {
    let n = alphabet.len();
    if n == 0 || n > 256 {
        return Err(Error::Other("random_chars: bad alphabet".into()));
    }
    // The largest multiple of n that fits in a byte value range.
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf)?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    Ok(out)
}

/// `len` random alphanumerics (A-Z, a-z, 0-9), about 5.95 bits each.
pub fn random_alphanumeric(len: usize) -> Result<String> {
    random_chars(len, ALPHANUMERIC)
}

/// A new shared secret: [`SHARED_SECRET_LEN`] random alphanumerics.
pub fn generate_shared_secret() -> Result<String> {
    random_chars(SHARED_SECRET_LEN, ALPHANUMERIC)
}

/// A Synapse ed25519 signing key: its version (key ID `ed25519:<version>`)
/// and 32-byte seed. `Debug` does not show the seed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key version, e.g. `a_Ab3x`.
    pub version: String,
    seed: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("version", &self.version)
            .field("seed", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A new key: version `a_` plus 4 random alphanumerics, seed from the OS.
    pub fn generate() -> Result<SigningKey> {
        let mut seed = [0u8; 32];
        random_bytes(&mut seed)?;
        Ok(SigningKey {
            version: format!("a_{}", random_chars(4, ALPHANUMERIC)?),
            seed,
        })
    }

    /// A key from its parts. The version must be letters, digits and `_`.
    pub fn from_parts(version: &str, seed: [u8; 32]) -> std::result::Result<SigningKey, String> {
        if !valid_version(version) {
            return Err(format!(
                "{} is not a key version: expected letters, digits and _, such as a_Ab3x",
                crate::redact::quote_secret_field(version)
            ));
        }
        Ok(SigningKey {
            version: version.to_owned(),
            seed,
        })
    }

    /// Parses a signing key file: one line `ed25519 <version> <seed>`
    /// (trailing newline optional; the seed's base64 may be padded).
    pub fn parse(text: &str) -> std::result::Result<SigningKey, String> {
        let line = text.strip_suffix('\n').unwrap_or(text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.contains('\n') {
            return Err(format!(
                "holds more than one line: expected {SIGNING_KEY_FORM}"
            ));
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let [algorithm, version, seed] = parts.as_slice() else {
            return Err(format!(
                "holds {} space-separated fields: expected {SIGNING_KEY_FORM}",
                parts.len()
            ));
        };
        if *algorithm != "ed25519" {
            return Err(format!(
                "has algorithm {}: expected {SIGNING_KEY_FORM}",
                crate::redact::quote_secret_field(algorithm)
            ));
        }
        let bytes = if seed.ends_with('=') {
            STANDARD.decode(seed)
        } else {
            STANDARD_NO_PAD.decode(seed)
        }
        .map_err(|e| format!("has a seed that is not base64 ({e}): expected {SIGNING_KEY_FORM}"))?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "has a seed of {} bytes: expected {SIGNING_KEY_FORM}",
                bytes.len()
            )
        })?;
        Self::from_parts(version, seed).map_err(|m| format!("{m}; expected {SIGNING_KEY_FORM}"))
    }

    /// The key ID, `ed25519:<version>`.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.version)
    }

    /// The file contents, exactly as Synapse writes them:
    /// `ed25519 <version> <unpadded base64 seed>` and a newline.
    pub fn to_file_string(&self) -> String {
        format!(
            "ed25519 {} {}\n",
            self.version,
            STANDARD_NO_PAD.encode(self.seed)
        )
    }

    /// The public (verify) key, unpadded base64, as Synapse publishes it.
    pub fn verify_key_base64(&self) -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&self.seed);
        STANDARD_NO_PAD.encode(key.verifying_key().to_bytes())
    }

    /// Signs `message` (ed25519), returning the unpadded base64 signature.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&self.seed);
        STANDARD_NO_PAD.encode(key.sign(message).to_bytes())
    }
}

fn valid_version(version: &str) -> bool {
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks the contents of an existing secret file of `kind`.
pub fn check_secret(kind: SecretKind, text: &str) -> std::result::Result<(), String> {
    if kind == SecretKind::SigningKey {
        return SigningKey::parse(text).map(|_| ());
    }
    let value = text.trim();
    if value.is_empty() {
        return Err(format!(
            "is empty: expected a random secret of at least {MIN_SHARED_SECRET_LEN} characters on one line"
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "holds whitespace or control characters inside the secret: expected one line without spaces"
                .to_owned(),
        );
    }
    if value.chars().count() < MIN_SHARED_SECRET_LEN {
        return Err(format!(
            "holds a secret of {} characters, too short to be strong: expected at least {MIN_SHARED_SECRET_LEN} (remove the file to have a new one generated)",
            value.chars().count()
        ));
    }
    Ok(())
}

/// Reads a shared secret file, returning the secret without surrounding
/// whitespace (as Synapse and coturn read it). Errors name the file.
pub fn read_shared_secret(path: &Path, kind: SecretKind) -> Result<String> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    check_secret(kind, &text).map_err(|message| Error::BadSecret {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(text.trim().to_owned())
}

/// New contents for a secret file of `kind`.
pub fn generate_secret_file(kind: SecretKind) -> Result<String> {
    match kind {
        SecretKind::SigningKey => Ok(SigningKey::generate()?.to_file_string()),
        _ => generate_shared_secret(),
    }
}

/// What [`init_dir`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitReport {
    /// The secrets directory.
    pub dir: PathBuf,
    /// Whether the directory was created.
    pub dir_created: bool,
    /// The directory's previous mode, when it was tightened to 0700.
    pub dir_tightened_from: Option<u32>,
    /// The secret files created.
    pub created: Vec<PathBuf>,
    /// The secret files that existed, were valid and were kept.
    pub kept: Vec<PathBuf>,
}

/// Creates every missing secret of [`SecretKind::ALL`] in `dir` (named by
/// [`SecretKind::file_name`]), mode 0600, never overwriting an existing
/// file. Existing files are checked first: if any is invalid, nothing is
/// created and the error names the file and the expected form.
pub fn init_dir(dir: &Path) -> Result<InitReport> {
    let mut report = InitReport {
        dir: dir.to_path_buf(),
        ..InitReport::default()
    };
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(Error::Other(format!(
                    "{} exists and is not a directory: expected the secrets directory",
                    dir.display()
                )));
            }
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                // Tightened once the existing files are known to be valid:
                // on an error, nothing is changed.
                report.dir_tightened_from = Some(mode);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create directory", e))?;
            }
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, "create directory", e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dir, "set permissions of", e))?;
            report.dir_created = true;
        }
        Err(e) => return Err(Error::io(dir, "read", e)),
    }

    let mut missing = Vec::new();
    for kind in SecretKind::ALL {
        let path = dir.join(kind.file_name());
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| Error::BadSecret {
                    path: path.clone(),
                    message: "is not UTF-8 text: expected a secret as Synapse reads it".into(),
                })?;
                check_secret(kind, &text).map_err(|message| Error::BadSecret {
                    path: path.clone(),
                    message,
                })?;
                report.kept.push(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push((kind, path)),
            Err(e) => return Err(Error::io(&path, "read", e)),
        }
    }
    if report.dir_tightened_from.is_some() {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, "tighten the permissions (to 0700) of", e))?;
    }
    for (kind, path) in missing {
        let contents = generate_secret_file(kind)?;
        crate::fsutil::create_file_exclusively(&path, contents.as_bytes(), 0o600)?;
        report.created.push(path);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_signing_key_has_synapse_form() {
        let key = SigningKey::generate().expect("key");
        let text = key.to_file_string();
        assert!(text.ends_with('\n'));
        let parts: Vec<&str> = text.trim_end().split(' ').collect();
        assert_eq!(parts.len(), 3, "{text}");
        assert_eq!(parts[0], "ed25519");
        assert_eq!(parts[1].len(), 6);
        assert!(parts[1].starts_with("a_"));
        assert!(parts[1][2..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(parts[2].len(), 43, "unpadded base64 of 32 bytes");
        assert!(!parts[2].contains('='));
        assert_eq!(SigningKey::parse(&text), Ok(key.clone()));
        assert_ne!(SigningKey::generate().expect("key"), key);
    }

    #[test]
    fn init_dir_changes_nothing_when_an_existing_secret_is_invalid() {
        let dir = std::env::temp_dir().join(format!("ospw-secrets-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.join("form_secret"), "short\n").expect("write");
        let err = init_dir(&dir).expect_err("invalid secret");
        assert!(err.to_string().contains("form_secret"), "{err}");
        let mode = fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o755,
            "the directory's mode is left alone on an error"
        );
        let names: Vec<_> = fs::read_dir(&dir).expect("list").collect();
        assert_eq!(names.len(), 1, "no secret created");
        // Once the file is fixed, the directory is tightened and filled.
        fs::remove_file(dir.join("form_secret")).expect("rm");
        let report = init_dir(&dir).expect("init");
        assert_eq!(report.dir_tightened_from, Some(0o755));
        assert_eq!(report.created.len(), SecretKind::ALL.len());
        let mode = fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn rfc8032_vector() {
        // RFC 8032, section 7.1, TEST 1: this seed has this public key, and
        // signs the empty message with this signature.
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let signature = hex(concat!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ));
        let seed: [u8; 32] = seed.try_into().expect("32 bytes");
        let key = SigningKey::from_parts("a_test", seed).expect("key");
        assert_eq!(key.verify_key_base64(), STANDARD_NO_PAD.encode(public));
        assert_eq!(key.sign_base64(b""), STANDARD_NO_PAD.encode(signature));
        let line = key.to_file_string();
        assert_eq!(
            line,
            format!("ed25519 a_test {}\n", STANDARD_NO_PAD.encode(seed))
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn signing_key_parser_refuses_malformed_files() {
        let good = "ed25519 a_Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
        assert!(SigningKey::parse(good).is_ok());
        assert!(SigningKey::parse(&format!("{good}\n")).is_ok());
        assert!(SigningKey::parse(&format!("{good}=\n")).is_ok(), "padded");
        for bad in [
            "",
            "\n",
            "not a key",
            "ed448 a_Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "ed25519 a-Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "ed25519 a_Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2",
            "ed25519 a_Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A extra",
            "ed25519  a_Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "ed25519 a_Ab3x !!!!ne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "ed25519 a_Ab3x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\ned25519 a_x y",
        ] {
            let err = SigningKey::parse(bad).expect_err(bad);
            assert!(err.contains("expected one line"), "{bad}: {err}");
        }
        let debug = format!("{:?}", SigningKey::parse(good).expect("key"));
        assert!(!debug.contains("nWGx"), "{debug}");
    }

    #[test]
    fn shared_secrets_are_strong_and_distinct() {
        let a = generate_shared_secret().expect("secret");
        let b = generate_shared_secret().expect("secret");
        assert_eq!(a.len(), SHARED_SECRET_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(check_secret(SecretKind::FormSecret, &a), Ok(()));
        assert!(check_secret(SecretKind::FormSecret, "").is_err());
        assert!(check_secret(SecretKind::FormSecret, "short").is_err());
        assert!(check_secret(SecretKind::FormSecret, &format!("{a} {b}")).is_err());
        assert_eq!(
            check_secret(SecretKind::FormSecret, &format!("{a}\n")),
            Ok(())
        );
    }

    #[test]
    fn random_chars_use_the_whole_alphabet() {
        let s = random_chars(4000, ALPHANUMERIC).expect("random");
        for c in ALPHANUMERIC {
            assert!(s.as_bytes().contains(c), "{}", char::from(*c));
        }
    }
}
