//! The handle a test or `kvproxy demo` holds: starts the server, sets up tenants, apps and vaults,
//! and turns the knobs (faults, latency, clock, counters) while the server runs.
//!
//! Knobs are plain synchronous methods on shared state so a test can flip them between two awaits
//! without any coordination with the server task.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use parking_lot::Mutex;

use crate::crypto;
use crate::error::{EmulatorError, Result};
use crate::model::{
    CertificateOptions, CertificateVersion, DEMO_APP_NAME, DEMO_CERTIFICATE, DEMO_CLIENT_ID, DEMO_SCOPE, DEMO_VAULT,
    DemoSeed, EmulatorConfig, Fault, Route, VaultPermissions,
};
use crate::server;
use crate::state::{App, Inner, RegisteredCert, Settings, Shared, SharedState, TokenSigningKey};
use crate::tls;

/// How long [`Emulator::shutdown`] lets in-flight requests finish.
const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(5);

/// Roles an app gets until [`Emulator::set_app_roles`] says otherwise.
const DEFAULT_ROLES: [&str; 1] = ["Demo.Read"];

/// A running emulator. Dropping it stops the server (abruptly); [`Emulator::shutdown`] stops it
/// gracefully and waits.
pub struct Emulator {
    shared: SharedState,
    ca_pem: String,
    ca_der: Vec<u8>,
    handle: Handle,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("port", &self.shared.settings.port)
            .field("tenant_id", &self.shared.settings.tenant_id)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Generates the TLS identity and the tenant's signing key, binds `127.0.0.1:{port}` and
    /// starts serving. Must be called inside a Tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator> {
        let tenant_id = uuid::Uuid::parse_str(&config.tenant_id)
            .map_err(|_| EmulatorError::InvalidName {
                what: "tenant id",
                value: config.tenant_id.clone(),
                reason: "must be a GUID",
            })?
            .to_string();
        let tenant_domain = config.tenant_domain.to_ascii_lowercase();
        if tenant_domain.is_empty() || tenant_domain.contains(['/', ' ', '?', '#']) {
            return Err(EmulatorError::InvalidName {
                what: "tenant domain",
                value: config.tenant_domain.clone(),
                reason: "must be a DNS name",
            });
        }

        // Two RSA/EC key generations: keep them off the async worker.
        let (identity, token_key) =
            tokio::task::spawn_blocking(|| -> Result<_> { Ok((tls::generate()?, TokenSigningKey::generate()?)) })
                .await
                .map_err(|e| EmulatorError::Startup(e.to_string()))??;

        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port))).map_err(|source| {
            EmulatorError::Bind {
                port: config.port,
                source,
            }
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                port: config.port,
                source,
            })?
            .port();

        let shared = Arc::new(Shared {
            settings: Settings {
                port,
                tenant_id,
                tenant_domain,
                token_lifetime: config.token_lifetime,
            },
            token_key,
            inner: Mutex::new(Inner::default()),
        });

        let handle = Handle::new();
        // Without TCP_NODELAY a response written in two TLS records waits for the client's delayed ACK (40 ms
        // on Linux) on a fresh connection: a stall Azure's front ends do not have, which would show up in every
        // timing measured against the emulator.
        let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(identity.server_config))
            .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
            .handle(handle.clone());
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = server.serve(app.into_make_service()).await {
                tracing::error!(%error, "the emulator's HTTPS server stopped");
            }
        });
        tracing::info!(port, "KeyVault Proxy emulator listening on 127.0.0.1");

        Ok(Emulator {
            shared,
            ca_pem: identity.ca_pem,
            ca_der: identity.ca_der,
            handle,
            task: Some(task),
        })
    }

    /// The port the emulator listens on (useful when started with port 0).
    pub fn port(&self) -> u16 {
        self.shared.settings.port
    }

    /// PEM of the CA certificate that signed the server certificate (no private key: it was
    /// discarded after signing). Add it as a trusted root in clients.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// DER of the CA certificate.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    /// `https://login.localhost:{port}`: the authority host of the emulated cloud.
    pub fn authority_host(&self) -> String {
        self.shared.settings.authority_host()
    }

    /// `https://{vault}.vault.localhost:{port}/`.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("{}/", self.shared.settings.vault_base(&vault.to_ascii_lowercase()))
    }

    /// `https://api.localhost:{port}/`: the demo API (`GET /me`).
    pub fn api_url(&self) -> String {
        self.shared.settings.api_url()
    }

    /// The tenant GUID (lowercase).
    pub fn tenant_id(&self) -> String {
        self.shared.settings.tenant_id.clone()
    }

    /// The tenant's domain (lowercase).
    pub fn tenant_domain(&self) -> String {
        self.shared.settings.tenant_domain.clone()
    }

    /// `{authority_host}/{tenant_id}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host(),
            self.shared.settings.tenant_id
        )
    }

    /// `{authority_host}/{tenant_id}/v2.0`: the `iss` of issued access tokens.
    pub fn issuer(&self) -> String {
        self.shared.settings.issuer()
    }

    /// `{authority_host}/{tenant_id}/discovery/v2.0/keys`: the JWKS with the token-signing key.
    pub fn jwks_uri(&self) -> String {
        format!(
            "{}/{}/discovery/v2.0/keys",
            self.authority_host(),
            self.shared.settings.tenant_id
        )
    }

    /// Registers a new app and returns its client id (a new GUID).
    pub fn create_app(&self, display_name: &str) -> String {
        let client_id = uuid::Uuid::new_v4().to_string();
        self.create_app_with_id(&client_id, display_name);
        client_id
    }

    /// Registers an app with a chosen client id, or renames it if it exists (keeping its
    /// certificates and roles).
    pub fn create_app_with_id(&self, client_id: &str, display_name: &str) {
        let mut inner = self.shared.inner.lock();
        inner
            .apps
            .entry(client_id.to_ascii_lowercase())
            .and_modify(|app| app.display_name = display_name.to_owned())
            .or_insert_with(|| App {
                display_name: display_name.to_owned(),
                object_id: uuid::Uuid::new_v4().to_string(),
                roles: DEFAULT_ROLES.iter().map(|r| (*r).to_owned()).collect(),
                certificates: Vec::new(),
            });
    }

    /// Sets the `roles` claim of tokens issued to the app.
    ///
    /// # Panics
    /// If the app does not exist (a mistake in the calling test).
    pub fn set_app_roles(&self, client_id: &str, roles: &[&str]) {
        self.with_app(client_id, |app| {
            app.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        });
    }

    /// Creates a certificate with a fresh non-exportable RSA 2048 key, self-signed with
    /// `CN={subject_cn}`, creating the vault if new. If the certificate exists, this adds a new
    /// version that becomes the latest.
    ///
    /// # Panics
    /// If the names break Key Vault's naming rules or OpenSSL fails; see
    /// [`Emulator::try_create_certificate`] for the fallible form.
    pub fn create_certificate(&self, vault: &str, name: &str, subject_cn: &str) -> CertificateVersion {
        match self.try_create_certificate(vault, name, subject_cn) {
            Ok(version) => version,
            Err(error) => panic!("create_certificate({vault}, {name}): {error}"),
        }
    }

    /// Fallible form of [`Emulator::create_certificate`].
    pub fn try_create_certificate(&self, vault: &str, name: &str, subject_cn: &str) -> Result<CertificateVersion> {
        self.try_create_certificate_with(vault, name, subject_cn, &CertificateOptions::default())
    }

    /// Like [`Emulator::create_certificate`], with a policy and validity of the caller's choosing: an
    /// exportable key, a certificate that expired or expires soon, a key whose `key_ops` lack `sign`.
    ///
    /// # Panics
    /// If the names break Key Vault's naming rules, the validity window ends before it starts, or OpenSSL
    /// fails; see [`Emulator::try_create_certificate_with`].
    pub fn create_certificate_with(
        &self,
        vault: &str,
        name: &str,
        subject_cn: &str,
        options: &CertificateOptions,
    ) -> CertificateVersion {
        match self.try_create_certificate_with(vault, name, subject_cn, options) {
            Ok(version) => version,
            Err(error) => panic!("create_certificate_with({vault}, {name}): {error}"),
        }
    }

    /// Fallible form of [`Emulator::create_certificate_with`].
    pub fn try_create_certificate_with(
        &self,
        vault: &str,
        name: &str,
        subject_cn: &str,
        options: &CertificateOptions,
    ) -> Result<CertificateVersion> {
        self.shared
            .add_certificate_version(vault, name, Some(subject_cn), options)
    }

    /// Enables or disables the latest version of a certificate (and its key), as the portal's
    /// "Enabled" switch does: a disabled certificate is still readable, says `enabled: false`, and
    /// Key Vault refuses to sign with its key.
    ///
    /// # Panics
    /// If the certificate does not exist.
    pub fn set_certificate_enabled(&self, vault: &str, name: &str, enabled: bool) {
        let mut inner = self.shared.inner.lock();
        let latest = inner
            .vaults
            .get_mut(&vault.to_ascii_lowercase())
            .and_then(|v| v.certificates.get_mut(&name.to_ascii_lowercase()))
            .and_then(|c| c.versions.last_mut());
        match latest {
            Some(version) => version.enabled = enabled,
            None => {
                drop(inner);
                panic!(
                    "{}",
                    EmulatorError::CertificateNotFound {
                        vault: vault.to_owned(),
                        name: name.to_owned(),
                    }
                );
            }
        }
    }

    /// Adds a new version with a new key to an existing certificate; it becomes the latest.
    ///
    /// # Panics
    /// If the certificate does not exist; see [`Emulator::try_rotate_certificate`].
    pub fn rotate_certificate(&self, vault: &str, name: &str) -> CertificateVersion {
        match self.try_rotate_certificate(vault, name) {
            Ok(version) => version,
            Err(error) => panic!("rotate_certificate({vault}, {name}): {error}"),
        }
    }

    /// Fallible form of [`Emulator::rotate_certificate`].
    pub fn try_rotate_certificate(&self, vault: &str, name: &str) -> Result<CertificateVersion> {
        self.shared
            .add_certificate_version(vault, name, None, &CertificateOptions::default())
    }

    /// The latest version of a certificate, if it exists.
    pub fn latest_certificate(&self, vault: &str, name: &str) -> Option<CertificateVersion> {
        self.shared
            .inner
            .lock()
            .vaults
            .get(&vault.to_ascii_lowercase())
            .and_then(|v| v.certificates.get(&name.to_ascii_lowercase()))
            .and_then(|c| c.versions.last())
            .map(|v| v.public.clone())
    }

    /// Uploads the certificate's public part to the app registration, so assertions signed with
    /// its key are accepted. Registering the same certificate twice is a no-op.
    ///
    /// # Panics
    /// If the app does not exist or the certificate cannot be parsed.
    pub fn register_certificate(&self, client_id: &str, cert: &CertificateVersion) {
        let public_key = match crypto::certificate_public_key(&cert.cer_der) {
            Ok(key) => key,
            Err(error) => panic!("register_certificate: cannot parse the certificate: {error}"),
        };
        let registered = RegisteredCert {
            sha1: crypto::sha1(&cert.cer_der),
            sha256: crypto::sha256(&cert.cer_der),
            public_key,
            cer_der: cert.cer_der.clone(),
            key_id: uuid::Uuid::new_v4().to_string(),
            display_name: crypto::certificate_subject(&cert.cer_der).unwrap_or_else(|_| format!("CN={}", cert.name)),
            not_before: cert.not_before,
            expires: cert.expires,
        };
        self.with_app(client_id, |app| {
            if !app.certificates.iter().any(|c| c.sha256 == registered.sha256) {
                app.certificates.push(registered);
            }
        });
    }

    /// Removes the certificate from the app registration; assertions signed with its key then
    /// fail with AADSTS700027.
    ///
    /// # Panics
    /// If the app does not exist.
    pub fn unregister_certificate(&self, client_id: &str, cert: &CertificateVersion) {
        let sha256 = crypto::sha256(&cert.cer_der);
        self.with_app(client_id, |app| {
            app.certificates.retain(|c| c.sha256 != sha256);
        });
    }

    fn with_app(&self, client_id: &str, change: impl FnOnce(&mut App)) {
        let mut inner = self.shared.inner.lock();
        match inner.apps.get_mut(&client_id.to_ascii_lowercase()) {
            Some(app) => change(app),
            None => {
                drop(inner);
                panic!("{}", EmulatorError::AppNotFound(client_id.to_owned()));
            }
        }
    }

    /// Creates an empty vault (no-op if it exists).
    ///
    /// # Panics
    /// If the name breaks Key Vault's naming rules.
    pub fn create_vault(&self, vault: &str) {
        if let Err(error) = self.shared.ensure_vault(vault) {
            panic!("create_vault: {error}");
        }
    }

    /// Sets what the developer principal may do in the vault (creating it if new). Default: all.
    ///
    /// # Panics
    /// If the name breaks Key Vault's naming rules.
    pub fn set_permissions(&self, vault: &str, perms: VaultPermissions) {
        self.create_vault(vault);
        if let Some(v) = self.shared.inner.lock().vaults.get_mut(&vault.to_ascii_lowercase()) {
            v.permissions = perms;
        }
    }

    /// Requests that reached `route` since start or the last [`Emulator::reset_counters`],
    /// including faulted ones. Key Vault's 401 challenges are not operations and are counted apart,
    /// in [`Emulator::count_challenges`].
    pub fn count(&self, route: Route) -> u64 {
        self.shared.inner.lock().counters.get(&route).copied().unwrap_or(0)
    }

    /// 401 challenges Key Vault answered (they are also counted in their route).
    pub fn count_challenges(&self) -> u64 {
        self.shared.inner.lock().challenges
    }

    /// Sets all counters to zero.
    pub fn reset_counters(&self) {
        let mut inner = self.shared.inner.lock();
        inner.counters.clear();
        inner.challenges = 0;
    }

    /// Delay added before every response (all hosts and routes).
    pub fn set_latency(&self, d: Duration) {
        self.shared.inner.lock().latency = d;
    }

    /// The next `faults.len()` requests to `route` answer these faults, in order (appended to any
    /// still queued). Queued faults take precedence over [`Emulator::fail_always`].
    pub fn inject_faults(&self, route: Route, faults: Vec<Fault>) {
        self.shared
            .inner
            .lock()
            .queued_faults
            .entry(route)
            .or_default()
            .extend(faults);
    }

    /// Every request to `route` answers `fault` until called again with `None`.
    pub fn fail_always(&self, route: Route, fault: Option<Fault>) {
        let mut inner = self.shared.inner.lock();
        match fault {
            Some(fault) => inner.persistent_faults.insert(route, fault),
            None => inner.persistent_faults.remove(&route),
        };
    }

    /// Shifts the emulator's clock by `secs` (positive = ahead). It is used for assertion time
    /// windows (AADSTS700024) and for issuing and checking access tokens.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.inner.lock().clock_offset_secs = secs;
    }

    /// While `false`, Microsoft Graph answers the developer's reads of app registrations with 403
    /// `Authorization_RequestDenied`, as for a developer without directory read rights. Default: `true`.
    pub fn set_graph_access(&self, allowed: bool) {
        self.shared.inner.lock().graph_denied = !allowed;
    }

    /// `https://graph.localhost:{port}`: the emulated Microsoft Graph (no trailing slash, as Graph's
    /// base URLs are written).
    pub fn graph_url(&self) -> String {
        self.shared.settings.graph_base()
    }

    /// While set, client-assertion token requests (after basic request validation) answer the
    /// Entra error with this AADSTS code, e.g. 700023, 7000215, 7000218, 500011; `None` clears.
    /// Client-secret requests (the developer identity) are not affected, so Key Vault stays
    /// reachable.
    pub fn force_token_error(&self, code: Option<u32>) {
        self.shared.inner.lock().forced_token_error = code;
    }

    /// Sets up the deterministic demo: vault `demo`, certificate `kvproxy-demo`, app
    /// `11111111-2222-3333-4444-555555555555` ("KeyVault Proxy Demo") with the certificate
    /// registered and roles `Demo.Read`, `Demo.Write`. Calling it again reuses what exists.
    ///
    /// # Panics
    /// If key generation fails; see [`Emulator::try_seed_demo`].
    pub fn seed_demo(&self) -> DemoSeed {
        match self.try_seed_demo() {
            Ok(seed) => seed,
            Err(error) => panic!("seed_demo: {error}"),
        }
    }

    /// Fallible form of [`Emulator::seed_demo`].
    pub fn try_seed_demo(&self) -> Result<DemoSeed> {
        let certificate = match self.latest_certificate(DEMO_VAULT, DEMO_CERTIFICATE) {
            Some(existing) => existing,
            None => self.try_create_certificate(DEMO_VAULT, DEMO_CERTIFICATE, DEMO_CERTIFICATE)?,
        };
        self.create_app_with_id(DEMO_CLIENT_ID, DEMO_APP_NAME);
        self.set_app_roles(DEMO_CLIENT_ID, &["Demo.Read", "Demo.Write"]);
        self.register_certificate(DEMO_CLIENT_ID, &certificate);
        Ok(DemoSeed {
            tenant_id: self.tenant_id(),
            client_id: DEMO_CLIENT_ID.to_owned(),
            vault_url: self.vault_url(DEMO_VAULT),
            certificate_name: DEMO_CERTIFICATE.to_owned(),
            scope: DEMO_SCOPE.to_owned(),
            authority_host: self.authority_host(),
            api_url: self.api_url(),
            certificate,
        })
    }

    /// A `reqwest::Client` that trusts only the emulator's CA, resolves `localhost` and every
    /// `*.localhost` name to 127.0.0.1 and ignores proxy settings: what a test needs to talk to
    /// the emulator, and what the Azure SDK clients can use as their transport.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        Ok(self.http_client_builder()?.build()?)
    }

    /// The builder behind [`Emulator::http_client`], for callers that want to add settings.
    pub fn http_client_builder(&self) -> Result<reqwest::ClientBuilder> {
        let ca = reqwest::Certificate::from_der(&self.ca_der)?;
        Ok(reqwest::Client::builder()
            .tls_certs_only([ca])
            .dns_resolver(LocalhostResolver)
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30)))
    }

    /// Stops accepting connections, lets in-flight requests finish (up to 5 s) and waits for the
    /// server task to end.
    pub async fn shutdown(mut self) {
        self.handle.graceful_shutdown(Some(GRACEFUL_SHUTDOWN));
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the emulator's server task ended abnormally");
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.handle.shutdown();
        }
    }
}

/// Resolves `localhost` and `*.localhost` to 127.0.0.1 (RFC 6761 reserves them for loopback)
/// without asking the system resolver, which may not know `demo.vault.localhost`. Other names
/// fail: a client built for the emulator must not reach anything else.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalhostResolver;

impl reqwest::dns::Resolve for LocalhostResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let result: std::result::Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> =
            if host == "localhost" || host.ends_with(".localhost") {
                // Port 0: reqwest substitutes the URL's port.
                Ok(Box::new(std::iter::once(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))))
            } else {
                Err(format!("'{host}' is not a .localhost name; the emulator client resolves nothing else").into())
            };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_can_be_shared_across_tasks() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Emulator>();
    }

    #[test]
    fn resolver_only_knows_localhost_names() {
        use reqwest::dns::Resolve as _;
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let resolve = |name: &str| runtime.block_on(LocalhostResolver.resolve(name.parse().unwrap()));
        let addrs: Vec<_> = resolve("demo.vault.localhost").unwrap().collect();
        assert_eq!(addrs, vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))]);
        assert!(resolve("LOGIN.localhost").is_ok());
        assert!(resolve("localhost").is_ok());
        assert!(resolve("example.com").is_err());
        assert!(resolve("localhost.example.com").is_err());
    }
}
