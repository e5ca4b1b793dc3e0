//! One error type for the engine, so the CLI, the server and the tray can each turn a failure into an exit
//! code, an HTTP status or a message without matching on strings.

use crate::entra::EntraError;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure this is, from the point of view of the person who has to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input (a profile field, a flag, a file) is wrong: fix the input.
    Input,
    /// Entra ID or Key Vault refused us: fix a permission, a registration or a sign-in.
    Auth,
    /// A service could not be reached or kept failing: retry later or fix the network.
    Network,
    /// Local storage (config file, keyring) failed.
    Local,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },

    #[error("no profile named '{0}' (see `kvproxy profile list`)")]
    ProfileNotFound(String),

    #[error(
        "no profile given and no default profile; name one (e.g. `kvproxy token NAME`) or set a default with `kvproxy profile default NAME`"
    )]
    NoDefaultProfile,

    #[error("a profile named '{0}' already exists (remove it first or use --force)")]
    ProfileExists(String),

    #[error("the profile file {path} could not be read: {message}. It was left as it is; fix or move it")]
    CorruptProfileFile { path: PathBuf, message: String },

    #[error("the settings file {path} could not be read: {message}. It was left as it is; fix or remove it")]
    CorruptSettingsFile { path: PathBuf, message: String },

    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("OS keyring: {0}")]
    Keyring(String),

    /// Boxed: Entra errors carry several strings, and every `Result` would pay for their size.
    #[error(transparent)]
    Entra(Box<EntraError>),

    #[error("Key Vault {operation} failed ({status}): {}{hint}", .message.trim_end_matches('.'), hint = hint_suffix(.hint))]
    KeyVault {
        operation: &'static str,
        status: u16,
        message: String,
        hint: Option<String>,
    },

    #[error("could not obtain a Key Vault access token with credential source '{source_name}': {}. {hint}", .message.trim_end_matches('.'))]
    Credential {
        source_name: String,
        message: String,
        hint: String,
    },

    #[error("the certificate in Key Vault is unusable: {0}")]
    Certificate(String),

    #[error("network error calling {target}: {message}")]
    Network { target: String, message: String },

    #[error("unexpected response from {target}: {message}")]
    Protocol { target: String, message: String },
}

impl From<EntraError> for Error {
    fn from(e: EntraError) -> Self {
        Error::Entra(Box::new(e))
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_deref().map(|h| format!(". Hint: {h}")).unwrap_or_default()
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidField { .. }
            | Error::ProfileNotFound(_)
            | Error::NoDefaultProfile
            | Error::ProfileExists(_)
            | Error::CorruptProfileFile { .. }
            | Error::CorruptSettingsFile { .. } => ErrorClass::Input,
            Error::Io { .. } | Error::Keyring(_) => ErrorClass::Local,
            Error::Entra(e) if e.is_transient() => ErrorClass::Network,
            Error::Entra(_) | Error::Credential { .. } | Error::Certificate(_) => ErrorClass::Auth,
            Error::KeyVault { status, .. } if *status == 429 || *status >= 500 || *status == 0 => ErrorClass::Network,
            Error::KeyVault { .. } => ErrorClass::Auth,
            Error::Network { .. } | Error::Protocol { .. } => ErrorClass::Network,
        }
    }

    /// A few words for a notification or a status line; the `Display` form has the details and the fix.
    pub fn summary(&self) -> String {
        match self {
            Error::Entra(e) => e.summary(),
            Error::KeyVault { operation, status, .. } => format!("Key Vault {operation} failed ({status})"),
            Error::Credential { source_name, .. } => format!("Key Vault sign-in failed ({source_name})"),
            Error::Network { target, .. } => format!("{target} unreachable"),
            Error::CorruptProfileFile { .. } => "profiles.toml cannot be read".into(),
            Error::CorruptSettingsFile { .. } => "settings.toml cannot be read".into(),
            Error::InvalidField { field, .. } => format!("profile field '{field}' is invalid"),
            other => {
                let text = other.to_string();
                let first = text.split(". ").next().unwrap_or(&text);
                match first.char_indices().nth(100) {
                    Some((cut, _)) => format!("{}…", &first[..cut]),
                    None => first.to_string(),
                }
            }
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            message: message.into(),
        }
    }
}
