//! Errors of the emulator's own API.
//!
//! Errors that a *client* of the emulator provokes (a bad assertion, a missing permission) are not
//! Rust errors: they are HTTP answers shaped like Entra's or Key Vault's. This module only covers
//! what can go wrong when a test or `kvproxy demo` drives the emulator itself: binding the port,
//! building the TLS identity, generating keys.

/// Shorthand for results of the emulator's API.
pub type Result<T, E = EmulatorError> = std::result::Result<T, E>;

/// Why the emulator could not do what its caller asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The listener could not be bound (port in use, no loopback interface, ...).
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port that was asked for (0 = any).
        port: u16,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// The in-memory CA or the server certificate could not be generated.
    #[error("cannot generate the emulator's TLS certificates: {0}")]
    TlsCertificate(#[from] rcgen::Error),

    /// rustls refused the generated server identity.
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),

    /// OpenSSL failed to generate a key, build a certificate or sign.
    #[error("crypto operation failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),

    /// A certificate that the caller named does not exist in the vault.
    #[error("certificate '{name}' not found in vault '{vault}'")]
    CertificateNotFound {
        /// The vault that was searched.
        vault: String,
        /// The certificate name that was asked for.
        name: String,
    },

    /// The named app registration does not exist.
    #[error("app registration '{0}' not found")]
    AppNotFound(String),

    /// A name the caller chose cannot be used in a host name or URL path.
    #[error("invalid {what} '{value}': {reason}")]
    InvalidName {
        /// What kind of name (vault, certificate).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A certificate validity window that ends before it starts.
    #[error("a certificate cannot expire ({expires}) before it becomes valid ({not_before})")]
    InvalidValidity {
        /// The asked start of validity.
        not_before: time::OffsetDateTime,
        /// The asked end of validity.
        expires: time::OffsetDateTime,
    },

    /// Start-up work died unexpectedly (a panic in the key-generation task).
    #[error("emulator start-up failed: {0}")]
    Startup(String),

    /// The HTTP client preconfigured for the emulator could not be built.
    #[error("cannot build an HTTP client for the emulator: {0}")]
    HttpClient(#[from] reqwest::Error),
}
