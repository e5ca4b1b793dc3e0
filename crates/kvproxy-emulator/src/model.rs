//! The emulator's public vocabulary: configuration, the knobs' argument types and what the
//! emulator hands back (certificate versions, the demo seed).
//!
//! Kept apart from the server code so that a reader of the public API sees it in one place.

use std::time::Duration;

/// The identity a developer's tool uses to call Key Vault, i.e. what `az login` would give.
///
/// Only this identity may use the client-secret grant and only it is granted Key Vault data-plane
/// access (see [`VaultPermissions`]).
pub const DEVELOPER_CLIENT_ID: &str = "de7e1000-0000-4000-8000-00000000de70";

/// The client secret of [`DEVELOPER_CLIENT_ID`].
///
/// Deliberately a well-known string: it protects nothing but the local emulator, and tests in any
/// crate must be able to use it.
pub const DEVELOPER_CLIENT_SECRET: &str = "kvproxy-emulator-developer-secret-not-a-real-secret";

/// Object id of the developer principal, stable so that error messages and tokens are
/// reproducible.
pub(crate) const DEVELOPER_OBJECT_ID: &str = "d3ae1a1e-0000-4000-8000-00000000d3ae";

/// Client id of the app that [`crate::Emulator::seed_demo`] registers.
pub const DEMO_CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// Display name of the demo app.
pub const DEMO_APP_NAME: &str = "KeyVault Proxy Demo";
/// Vault that [`crate::Emulator::seed_demo`] creates.
pub const DEMO_VAULT: &str = "demo";
/// Certificate that [`crate::Emulator::seed_demo`] creates.
pub const DEMO_CERTIFICATE: &str = "kvproxy-demo";
/// Resource (application ID URI) of the demo API; tokens for it are accepted by `GET /me`.
pub const DEMO_API_RESOURCE: &str = "api://kvproxy-demo";
/// Scope a client-credentials request for the demo API uses.
pub const DEMO_SCOPE: &str = "api://kvproxy-demo/.default";

/// Resource (audience) of Key Vault tokens in the emulated cloud.
///
/// The Key Vault SDK checks that the vault host ends with `.` + the challenge resource's host, and
/// vaults live at `{name}.vault.localhost`, so this passes unmodified.
pub const VAULT_RESOURCE: &str = "https://vault.localhost";

/// Resource (audience) of Microsoft Graph tokens in the emulated cloud; Graph itself answers at
/// `https://graph.localhost:{port}` ([`crate::Emulator::graph_url`]).
pub const GRAPH_RESOURCE: &str = "https://graph.localhost";

/// How to start an [`crate::Emulator`].
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// TCP port on 127.0.0.1; 0 picks any free port (see [`crate::Emulator::port`]).
    pub port: u16,
    /// The tenant's id, a GUID.
    pub tenant_id: String,
    /// The tenant's verified domain, accepted in place of the id in token URLs.
    pub tenant_domain: String,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_lifetime: Duration,
}

impl Default for EmulatorConfig {
    /// Any free port, a random tenant GUID, domain `kvproxy-demo.onmicrosoft.localhost`,
    /// tokens valid for 3599 s (what Entra answers for app-only tokens).
    fn default() -> Self {
        Self {
            port: 0,
            tenant_id: uuid::Uuid::new_v4().to_string(),
            tenant_domain: "kvproxy-demo.onmicrosoft.localhost".to_owned(),
            token_lifetime: Duration::from_secs(3599),
        }
    }
}

/// One version of a Key Vault certificate, as a client would learn it (public parts only).
///
/// The private key stays inside the emulator, like a non-exportable Key Vault key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateVersion {
    /// Vault name.
    pub vault: String,
    /// Certificate (and key) name.
    pub name: String,
    /// Version: 32 lowercase hex characters.
    pub version: String,
    /// Versioned key URL, `https://{vault}.vault.localhost:{port}/keys/{name}/{version}`.
    pub kid: String,
    /// The X.509 certificate, DER.
    pub cer_der: Vec<u8>,
    /// base64url (no padding) SHA-1 of [`Self::cer_der`]: the JWT `x5t` header.
    pub x5t: String,
    /// base64url (no padding) SHA-256 of [`Self::cer_der`]: the JWT `x5t#S256` header.
    pub x5t_s256: String,
    /// Start of the certificate's validity.
    pub not_before: time::OffsetDateTime,
    /// End of the certificate's validity.
    pub expires: time::OffsetDateTime,
}

/// How [`crate::Emulator::create_certificate_with`] makes a certificate version. The default is what
/// [`crate::Emulator::create_certificate`] makes: Key Vault's default policy with a non-exportable key,
/// enabled, valid from five minutes ago for twelve months, key operations `sign` and `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateOptions {
    /// The policy's `key_props.exportable`. The emulator never hands out a private key either way;
    /// this only changes what the policy says, which is what a client can check.
    pub exportable: bool,
    /// Start of the validity window (`nbf`); `None`: five minutes before creation.
    pub not_before: Option<time::OffsetDateTime>,
    /// End of the validity window (`exp`); `None`: 365 days after creation.
    pub expires: Option<time::OffsetDateTime>,
    /// Whether the key's `key_ops` include `sign` (Key Vault refuses to sign with a key that lacks it).
    pub sign_allowed: bool,
}

impl Default for CertificateOptions {
    fn default() -> Self {
        Self {
            exportable: false,
            not_before: None,
            expires: None,
            sign_allowed: true,
        }
    }
}

/// Key Vault data-plane rights of the developer principal on one vault (RBAC-like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultPermissions {
    /// `Microsoft.KeyVault/vaults/certificates/read`.
    pub get_certificate: bool,
    /// `Microsoft.KeyVault/vaults/keys/sign/action`.
    pub sign: bool,
}

impl Default for VaultPermissions {
    fn default() -> Self {
        Self {
            get_certificate: true,
            sign: true,
        }
    }
}

/// The emulator's routes, for counters and fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// Entra token endpoint, `client_assertion` grants (the path KeyVault Proxy uses).
    Token,
    /// Entra token endpoint, `client_secret` grants (the developer identity).
    DeveloperToken,
    /// Key Vault `GET /certificates/{name}[/{version}]`.
    GetCertificate,
    /// Key Vault `POST /keys/{name}/{version}/sign`.
    Sign,
    /// Entra OpenID configuration and JWKS.
    Discovery,
    /// Demo API `GET /me`.
    Api,
    /// Key Vault `GET /keys/{name}[/{version}]`.
    GetKey,
    /// Microsoft Graph `GET /v1.0/applications(appId='…')`.
    GraphApplication,
}

impl Route {
    /// Every route, for iterating counters.
    pub const ALL: [Route; 8] = [
        Route::Token,
        Route::DeveloperToken,
        Route::GetCertificate,
        Route::Sign,
        Route::Discovery,
        Route::Api,
        Route::GetKey,
        Route::GraphApplication,
    ];
}

/// A failure the emulator answers instead of handling a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// HTTP 429 with `Retry-After: {retry_after_secs}`.
    TooManyRequests {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// A server error with this status (500, 502, 503, ...; anything outside 500..=599 becomes 500).
    ServerError(u16),
}

/// What [`crate::Emulator::seed_demo`] set up: everything a client needs to mint a demo token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSeed {
    /// Tenant GUID.
    pub tenant_id: String,
    /// The demo app's client id, [`DEMO_CLIENT_ID`].
    pub client_id: String,
    /// `https://demo.vault.localhost:{port}/`.
    pub vault_url: String,
    /// [`DEMO_CERTIFICATE`].
    pub certificate_name: String,
    /// [`DEMO_SCOPE`].
    pub scope: String,
    /// `https://login.localhost:{port}`.
    pub authority_host: String,
    /// `https://api.localhost:{port}/`.
    pub api_url: String,
    /// The certificate version registered on the app.
    pub certificate: CertificateVersion,
}
