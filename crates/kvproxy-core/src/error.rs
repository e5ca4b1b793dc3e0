//! One error type for the engine, so the CLI, the server and the tray can each turn a failure into an exit
//! code, an HTTP status or a message without matching on strings.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure this is, from the point of view of the person who has to fix it. Serialised in
/// lower case (`"input"`, `"auth"`, …), so it survives a trip over HTTP in a problem document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// One or more fields (of a profile, a request or a file) are wrong; each says how to fix it.
    #[error("{0}")]
    Invalid(FieldErrors),

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

    #[error("could not encode the {what}: {message}")]
    Encode { what: &'static str, message: String },

    #[error("OS keyring: {0}")]
    Keyring(String),

    /// Boxed: Entra errors carry several strings, and every `Result` would pay for their size.
    #[error(transparent)]
    Entra(Box<EntraError>),

    #[error("Key Vault {operation} failed ({status}): {}{hint}", .message.trim_end_matches('.'), hint = hint_suffix(.hint))]
    KeyVault {
        operation: KeyVaultOperation,
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

    /// A `confirm` profile's token was not handed out: the user said no, did not answer, or nobody could
    /// be asked. The message says which, and what to do.
    #[error("{0}")]
    NotApproved(String),

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

/// The Key Vault call that failed: the broker reacts to a failed `sign` (a stale pinned key version) unlike a
/// failed certificate read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyVaultOperation {
    GetCertificate,
    Sign,
    /// Reading a key's properties (`kvproxy doctor` checks its `key_ops`).
    GetKey,
}

impl fmt::Display for KeyVaultOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyVaultOperation::GetCertificate => "get certificate",
            KeyVaultOperation::Sign => "sign",
            KeyVaultOperation::GetKey => "get key",
        })
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_deref().map(|h| format!(". Hint: {h}")).unwrap_or_default()
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Invalid(_)
            | Error::ProfileNotFound(_)
            | Error::NoDefaultProfile
            | Error::ProfileExists(_)
            | Error::CorruptProfileFile { .. }
            | Error::CorruptSettingsFile { .. } => ErrorClass::Input,
            Error::Io { .. } | Error::Keyring(_) | Error::Encode { .. } => ErrorClass::Local,
            Error::Entra(e) if e.is_transient() => ErrorClass::Network,
            Error::Entra(_) | Error::Credential { .. } | Error::Certificate(_) | Error::NotApproved(_) => {
                ErrorClass::Auth
            }
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
            Error::Invalid(fields) => match fields.as_slice() {
                [one] => format!("profile field '{}' is invalid", one.field),
                many => format!("{} profile fields are invalid", many.len()),
            },
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
        Error::Invalid(FieldErrors::one(field, message))
    }

    /// The wrong fields, when this error is about input fields.
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            Error::Invalid(fields) => Some(fields),
            _ => None,
        }
    }
}

/// What is wrong with one field and how to fix it, as an editor shows it next to that field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's name as the profile file spells it (`vault_url`, `custom_cloud.authority_host`, …).
    pub field: &'static str,
    pub message: String,
}

/// Every wrong field found in one check, in the order the fields are declared. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field,
            message: message.into(),
        }])
    }

    /// `None` when nothing was wrong.
    pub fn from_vec(errors: Vec<FieldError>) -> Option<Self> {
        (!errors.is_empty()).then_some(Self(errors))
    }

    pub fn as_slice(&self) -> &[FieldError] {
        &self.0
    }

    /// The first error about `field`, if any.
    pub fn get(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|e| e.field == field)
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// An error answer from Entra ID, reduced to what helps: the AADSTS code, the ids support asks for,
/// and a hint. It never holds the assertion.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub struct EntraError {
    pub status: u16,
    /// The OAuth2 `error` value, e.g. `invalid_client`.
    pub error: String,
    /// The first line of `error_description` (Entra appends trace ids and a timestamp after it).
    pub description: String,
    /// The AADSTS code, when Entra gave one.
    pub code: Option<u32>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub hint: Option<&'static str>,
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entra's descriptions end with a full stop; ours adds its own before the hint.
        let description = self.description.trim_end_matches('.');
        write!(
            f,
            "Entra ID refused the token request ({} {}): {description}",
            self.status, self.error
        )?;
        if let Some(hint) = self.hint {
            write!(f, ". Hint: {hint}")?;
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " [trace id {trace}")?;
            if let Some(corr) = &self.correlation_id {
                write!(f, ", correlation id {corr}")?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

impl EntraError {
    /// Worth retrying: throttling and server errors.
    pub fn is_transient(&self) -> bool {
        self.status == 429 || self.status >= 500 || self.error == "temporarily_unavailable"
    }

    /// The certificate Entra knows does not match the one we signed with: our cached key info may be
    /// stale because the certificate was rotated.
    pub fn is_key_not_found(&self) -> bool {
        self.code == Some(700027)
    }

    /// A few words for a notification, e.g. `AADSTS700027: certificate not registered`; the full text
    /// (description, hint, trace and correlation ids) is the `Display` form.
    pub fn summary(&self) -> String {
        let what = match self.code {
            Some(700016) => "app not found in the tenant",
            Some(700027) => "certificate not registered",
            Some(700024) => "assertion outside its time window (clock skew?)",
            Some(700023) => "wrong audience",
            Some(700021) => "issuer is not the client id",
            Some(7000215) => "client secret sent",
            Some(7000218) => "no credential",
            Some(50013) => "assertion rejected",
            Some(90002) | Some(90023) => "tenant not found",
            Some(500011) => "resource not found in the tenant",
            Some(1002012) | Some(70011) => "scope must end in /.default",
            Some(700025) => "public client",
            _ if self.error == "invalid_scope" => "scope must end in /.default",
            _ => self.error.as_str(),
        };
        match self.code {
            Some(code) => format!("AADSTS{code}: {what}"),
            None => format!("Entra ID: {what} ({})", self.status),
        }
    }
}

/// An error and its sources as one line, each source once: the text users see and logs keep.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let piece = inner.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = inner.source();
    }
    text
}
