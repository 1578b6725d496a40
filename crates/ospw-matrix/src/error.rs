//! Typed errors. Every error that comes from user input names the field (or
//! file) at fault and the form that was expected.

use std::fmt;
use std::path::PathBuf;

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The dotted path of the field, e.g. `turn.relay_ports`.
    pub path: String,
    /// What is wrong and what form is expected.
    pub message: String,
}

impl FieldError {
    /// A new error for `path`. The path and the message are shortened as
    /// every message of this crate is ([`crate::redact::path`],
    /// [`crate::redact::message`]): a key or a quoted value that may be a
    /// secret, or is very long, is never printed back whole, however the
    /// message was written.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: crate::redact::path(&path.into()),
            message: crate::redact::message(&message.into()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one validation pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The problems, in the order they were found.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds all errors of `other`.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.errors.extend(other.errors);
    }

    /// `Ok(value)` when empty, otherwise `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Whether any error concerns `path` (exactly or a sub-field of it).
    pub fn mentions(&self, path: &str) -> bool {
        self.errors.iter().any(|e| {
            e.path == path
                || e.path.starts_with(&format!("{path}."))
                || e.path.starts_with(&format!("{path}["))
        })
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(f, "{n} problem{} found:", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Any error of this library.
#[derive(Debug)]
pub enum Error {
    /// The input could not be parsed (syntax, type, unknown key).
    Parse {
        /// The file or source the input came from.
        source_name: String,
        /// The field path, when known.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The input parsed but is not valid.
    Invalid(ValidationErrors),
    /// A file could not be read or written.
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    Random(String),
    /// A secret file exists but does not hold a valid secret.
    BadSecret {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong and the expected form.
        message: String,
    },
    /// Any other problem, described.
    Other(String),
}

impl Error {
    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse {
                source_name,
                path,
                message,
            } => {
                let message = crate::redact::message(message);
                if path.is_empty() || path == "." {
                    write!(f, "{source_name}: {message}")
                } else {
                    write!(f, "{source_name}: {}: {message}", crate::redact::path(path))
                }
            }
            Self::Invalid(errors) => write!(f, "{errors}"),
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::Random(message) => {
                write!(f, "the system random number generator failed: {message}")
            }
            Self::BadSecret { path, message } => {
                write!(f, "{}: {}", path.display(), crate::redact::message(message))
            }
            Self::Other(message) => write!(f, "{}", crate::redact::message(message)),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Invalid(errors) => Some(errors),
            _ => None,
        }
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Self::Invalid(errors)
    }
}

/// This library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
