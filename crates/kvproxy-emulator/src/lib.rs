//! A local HTTPS emulator of Microsoft Entra ID and Azure Key Vault, with real RSA crypto and
//! real verification.
//!
//! KeyVault Proxy mints Entra app-only tokens by having Key Vault sign a client-assertion JWT.
//! Testing that end to end against Azure needs a tenant, an app registration and a vault; this
//! crate provides all three in-process so that tests (and `kvproxy demo`) can run offline:
//!
//! - `https://login.localhost:{port}` — Entra: client-credentials token endpoint (client secret for
//!   the [`DEVELOPER_CLIENT_ID`] identity, certificate-signed client assertions for apps),
//!   OpenID configuration and JWKS. Assertions are verified like Entra does and rejected with
//!   Entra's error shape and AADSTS codes.
//! - `https://{vault}.vault.localhost:{port}` — Key Vault: `get certificate` and `sign` (PS256,
//!   RS256) with non-exportable keys, the bearer challenge, RBAC-like 403s, 404s.
//! - `https://api.localhost:{port}/me` — a demo API that accepts tokens for `api://kvproxy-demo`.
//! - `https://graph.localhost:{port}/v1.0/applications(appId='…')` — Microsoft Graph's view of the
//!   app registrations: their certificate `keyCredentials`, for the developer identity only.
//!
//! All names resolve to 127.0.0.1 (RFC 6761); clients resolve them themselves, e.g. with
//! [`Emulator::http_client`] or [`LocalhostResolver`]. TLS uses an in-memory CA made at start
//! ([`Emulator::ca_pem`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kvproxy_emulator::{Emulator, EmulatorConfig, Route};
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! let seed = emulator.seed_demo();
//! let client = emulator.http_client()?;
//! // ... mint a token for seed.scope with seed.client_id ...
//! assert_eq!(emulator.count(Route::Token), 0);
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod api;
mod crypto;
mod emulator;
mod entra;
mod error;
mod graph;
mod http;
mod keyvault;
mod model;
mod server;
mod state;
mod tls;
mod tokens;

pub use emulator::{Emulator, LocalhostResolver};
pub use error::{EmulatorError, Result};
pub use model::{
    CertificateOptions, CertificateVersion, DEMO_API_RESOURCE, DEMO_APP_NAME, DEMO_CERTIFICATE, DEMO_CLIENT_ID,
    DEMO_SCOPE, DEMO_VAULT, DEVELOPER_CLIENT_ID, DEVELOPER_CLIENT_SECRET, DemoSeed, EmulatorConfig, Fault,
    GRAPH_RESOURCE, Route, VAULT_RESOURCE, VaultPermissions,
};
