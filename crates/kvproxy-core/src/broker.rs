//! The broker turns "a token for this profile" into as few network calls as possible: cached tokens cost
//! nothing, known key info costs one sign and one token request, and concurrent callers asking for the same
//! cold token share a single fetch.

use crate::assertion::UnsignedAssertion;
use crate::cloud::Cloud;
use crate::credential::key_vault_credential;
use crate::entra::request_token;
use crate::error::{Error, KeyVaultOperation, Result};
use crate::http::{HttpTimeouts, build_client, read_ca_file};
use crate::keyinfo::{KeyInfo, KeyInfoStore, SigningKey};
use crate::keyvault::VaultClients;
use crate::profile::{CredentialSource, SigningAlgorithm, ValidProfile, VaultCertificate};
use crate::secret::SecretString;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// Retries of Key Vault calls on 429 (honouring `Retry-After`) and 5xx, done by the SDK's retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    pub max_retries: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub max_total: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(10),
            max_total: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// A cached token closer than this to expiry is refreshed in the background while still served. For a
    /// token that lives less than four times this, the margin is a quarter of its lifetime instead (see
    /// [`BrokerOptions::refresh_margin_for`]).
    pub refresh_margin: Duration,
    /// A token with less than this left is never served: the caller would get a token that dies in flight.
    /// For a token that lives less than ten times this, a tenth of its lifetime instead.
    pub min_remaining: Duration,
    pub timeouts: HttpTimeouts,
    pub key_vault_retry: RetrySettings,
    pub key_info_store: KeyInfoStore,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            min_remaining: Duration::from_secs(60),
            timeouts: HttpTimeouts::default(),
            key_vault_retry: RetrySettings::default(),
            key_info_store: KeyInfoStore::new(None),
        }
    }
}

/// Share of a token's lifetime left when it is refreshed ahead, for tokens too short for the fixed margin.
const REFRESH_AHEAD_DIVISOR: u32 = 4;
/// Share of a token's lifetime below which it is no longer served, for tokens too short for the fixed minimum.
const MIN_REMAINING_DIVISOR: u32 = 10;

impl BrokerOptions {
    /// When to start refreshing a token that lived `lifetime` when it was issued. Entra's tokens (60–90
    /// minutes) get the fixed margin; a short-lived token would otherwise be inside the margin from birth
    /// and be refreshed on every cached hit, so it is refreshed once a quarter of its life is left.
    pub fn refresh_margin_for(&self, lifetime: Duration) -> Duration {
        self.refresh_margin.min(lifetime / REFRESH_AHEAD_DIVISOR)
    }

    /// The least time left for which a token is still served. A fixed minute would make a token that lives
    /// a minute or less unusable from birth; a tenth of its life keeps it servable until the refresh ahead,
    /// which starts well before, has replaced it.
    pub fn min_remaining_for(&self, lifetime: Duration) -> Duration {
        self.min_remaining.min(lifetime / MIN_REMAINING_DIVISOR)
    }
}

/// An access token handed to a caller.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_on: OffsetDateTime,
    pub scope: String,
    pub profile: String,
    /// Minted by the local emulator, not by Azure.
    pub demo: bool,
    /// Served from the in-memory cache without any network call.
    pub from_cache: bool,
}

impl IssuedToken {
    pub fn lifetime(&self) -> time::Duration {
        self.expires_on - OffsetDateTime::now_utc()
    }
}

/// Options for one token request.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenOptions {
    /// Ignore a cached token and fetch a new one (the new one replaces it in the cache).
    pub skip_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    token_endpoint: String,
    client_id: String,
    vault_url: String,
    certificate: String,
    algorithm: SigningAlgorithm,
    scope: String,
    /// Key id and thumbprints when the caller supplied them (kept apart from certificate-based tokens).
    given_key: Option<SigningKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VaultKey {
    vault_url: String,
    credential: CredentialSource,
    cloud: Cloud,
    tenant: String,
    ca: CaKey,
}

/// The SHA-256 of a cloud's own CA certificate (custom clouds), `None` for the OS trust store.
type CaKey = Option<[u8; 32]>;

/// A cached token and how long it had to live when it arrived, which sets its refresh margins.
#[derive(Clone)]
struct CachedToken {
    token: IssuedToken,
    lifetime: Duration,
}

#[derive(Default)]
struct Slot {
    current: RwLock<Option<CachedToken>>,
    fetch: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    /// Bumped on every store, so a waiter can tell a token fetched while it waited from an old one.
    generation: AtomicU64,
}

impl Slot {
    fn store(&self, token: IssuedToken) {
        let lifetime = (token.expires_on - OffsetDateTime::now_utc()).unsigned_abs();
        *self.current.write() = Some(CachedToken { token, lifetime });
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

struct Inner {
    options: BrokerOptions,
    http: Mutex<HashMap<CaKey, reqwest::Client>>,
    vaults: Mutex<HashMap<VaultKey, Arc<VaultClients>>>,
    key_info: Mutex<HashMap<String, KeyInfo>>,
    key_info_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tokens: Mutex<HashMap<TokenKey, Arc<Slot>>>,
}

/// Mints and caches tokens. Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(options: BrokerOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                http: Mutex::default(),
                vaults: Mutex::default(),
                key_info: Mutex::default(),
                key_info_locks: Mutex::default(),
                tokens: Mutex::default(),
            }),
        }
    }

    /// A token for `profile` and `scope` (the profile's first scope when `None`).
    pub async fn token(
        &self,
        profile: &ValidProfile,
        scope: Option<&str>,
        options: TokenOptions,
    ) -> Result<IssuedToken> {
        self.token_impl(profile, scope, options, None).await
    }

    /// A token signed with key info the caller supplies (key id and thumbprint, as the .NET proxy's
    /// `kv-key` route takes them) instead of reading the certificate. The supplied key info is used for
    /// this request only: it never replaces cached key info other callers rely on, and its tokens are
    /// cached apart.
    pub async fn token_with_key(
        &self,
        profile: &ValidProfile,
        key: SigningKey,
        scope: Option<&str>,
        options: TokenOptions,
    ) -> Result<IssuedToken> {
        self.token_impl(profile, scope, options, Some(Arc::new(key))).await
    }

    async fn token_impl(
        &self,
        profile: &ValidProfile,
        scope: Option<&str>,
        options: TokenOptions,
        given: Option<Arc<SigningKey>>,
    ) -> Result<IssuedToken> {
        let scope = profile.scope(scope)?.to_string();
        let key = TokenKey {
            token_endpoint: profile.token_endpoint().to_string(),
            client_id: profile.client_id.clone(),
            vault_url: profile.vault_root().to_string(),
            certificate: profile.certificate.clone(),
            algorithm: profile.algorithm,
            scope: scope.clone(),
            given_key: given.as_deref().cloned(),
        };
        let slot = self.inner.tokens.lock().entry(key).or_default().clone();

        if !options.skip_cache
            && let Some(CachedToken { token, lifetime }) = self.usable(&slot)
        {
            if token.expires_on - OffsetDateTime::now_utc() < self.inner.options.refresh_margin_for(lifetime)
                && !slot.refreshing.swap(true, Ordering::SeqCst)
            {
                self.refresh_in_background(slot.clone(), profile.clone(), scope.clone(), given.clone());
            }
            return Ok(IssuedToken {
                from_cache: true,
                ..token
            });
        }

        let seen = slot.generation.load(Ordering::SeqCst);
        let _guard = slot.fetch.lock().await;
        // Whoever held the lock before us may have just fetched what we need (single flight).
        if let Some(CachedToken { token, .. }) = self.usable(&slot)
            && (!options.skip_cache || slot.generation.load(Ordering::SeqCst) != seen)
        {
            return Ok(IssuedToken {
                from_cache: true,
                ..token
            });
        }
        let token = self.fetch(profile, &scope, given.as_deref()).await?;
        slot.store(token.clone());
        Ok(token)
    }

    fn usable(&self, slot: &Slot) -> Option<CachedToken> {
        let current = slot.current.read();
        let cached = current.as_ref()?;
        let left = cached.token.expires_on - OffsetDateTime::now_utc();
        (left > self.inner.options.min_remaining_for(cached.lifetime)).then(|| cached.clone())
    }

    fn refresh_in_background(
        &self,
        slot: Arc<Slot>,
        profile: ValidProfile,
        scope: String,
        given: Option<Arc<SigningKey>>,
    ) {
        let broker = self.clone();
        tokio::spawn(async move {
            let result = async {
                let _guard = slot.fetch.lock().await;
                let token = broker.fetch(&profile, &scope, given.as_deref()).await?;
                slot.store(token);
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(profile = %profile.name, error = %e, "background token refresh failed; the cached token is served until it expires");
            }
            slot.refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Key info for the profile's certificate: memory, then the OS keyring, then Key Vault.
    /// `refresh` goes to Key Vault and replaces what was cached.
    pub async fn key_info(&self, profile: &ValidProfile, refresh: bool) -> Result<KeyInfo> {
        self.certificate_key_info(&profile.vault_certificate(), refresh).await
    }

    /// The profile's key info if it is known already (memory, then the OS keyring), never asking Key Vault:
    /// for looks that must cost nothing, like the desktop's check of certificates about to expire.
    pub async fn cached_key_info(&self, profile: &ValidProfile) -> Option<KeyInfo> {
        let target = profile.vault_certificate();
        let vault_url = target.vault_root().as_str();
        let certificate = target.certificate();
        let id = KeyInfo::cache_id(vault_url, certificate);
        if let Some(info) = self.inner.key_info.lock().get(&id).cloned() {
            return Some(info);
        }
        let info = self
            .inner
            .options
            .key_info_store
            .load(vault_url, certificate)
            .await
            .ok()??;
        self.inner.key_info.lock().insert(id, info.clone());
        Some(info)
    }

    /// Key info for any certificate on an allowed vault, from the same caches as [`Broker::key_info`] (the
    /// .NET proxy's `kv-key-info` route names a vault and a certificate, no profile).
    pub async fn certificate_key_info(&self, certificate: &VaultCertificate, refresh: bool) -> Result<KeyInfo> {
        let vault = self.vault_clients(certificate)?;
        self.key_info_with(certificate, &vault, refresh).await
    }

    async fn key_info_with(&self, target: &VaultCertificate, vault: &VaultClients, refresh: bool) -> Result<KeyInfo> {
        let vault_url = target.vault_root().as_str();
        let certificate = target.certificate();
        let id = KeyInfo::cache_id(vault_url, certificate);
        let lock = self.inner.key_info_locks.lock().entry(id.clone()).or_default().clone();
        let _guard = lock.lock().await;
        let store = &self.inner.options.key_info_store;
        if !refresh {
            if let Some(info) = self.inner.key_info.lock().get(&id).cloned() {
                return Ok(info);
            }
            match store.load(vault_url, certificate).await {
                Ok(Some(info)) => {
                    self.inner.key_info.lock().insert(id, info.clone());
                    return Ok(info);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not read key info from the OS keyring; asking Key Vault"),
            }
        }
        let info = vault.key_info(certificate).await?;
        if info.expires < OffsetDateTime::now_utc() {
            tracing::warn!(certificate = %certificate, expires = %info.expires, "the certificate has expired; Entra will refuse it");
        }
        self.inner.key_info.lock().insert(id, info.clone());
        if let Err(e) = store.save(&info).await {
            tracing::warn!(error = %e, "could not save key info to the OS keyring; it is cached for this process only");
        }
        Ok(info)
    }

    async fn fetch(&self, profile: &ValidProfile, scope: &str, given: Option<&SigningKey>) -> Result<IssuedToken> {
        let target = profile.vault_certificate();
        let vault = self.vault_clients(&target)?;
        let (http, _) = self.http_for(profile.cloud())?;
        if let Some(key) = given {
            // The caller's key info is theirs to fix; refreshing ours would not help them.
            return self.sign_and_exchange(profile, &vault, &http, key, scope).await;
        }
        let info = self.key_info_with(&target, &vault, false).await?;
        match self
            .sign_and_exchange(profile, &vault, &http, &info.signing_key(), scope)
            .await
        {
            // The certificate was rotated (Entra knows only the new one) or the pinned key version is
            // gone: our key info is stale. Refresh it once; a second failure is real.
            Err(Error::Entra(e)) if e.is_key_not_found() => {
                tracing::info!(profile = %profile.name, "Entra did not accept the cached certificate; refreshing key info and retrying once");
                let info = self.key_info_with(&target, &vault, true).await?;
                self.sign_and_exchange(profile, &vault, &http, &info.signing_key(), scope)
                    .await
            }
            Err(Error::KeyVault {
                status: 404,
                operation: KeyVaultOperation::Sign,
                ..
            }) => {
                let info = self.key_info_with(&target, &vault, true).await?;
                self.sign_and_exchange(profile, &vault, &http, &info.signing_key(), scope)
                    .await
            }
            other => other,
        }
    }

    async fn sign_and_exchange(
        &self,
        profile: &ValidProfile,
        vault: &VaultClients,
        http: &reqwest::Client,
        key: &SigningKey,
        scope: &str,
    ) -> Result<IssuedToken> {
        let endpoint = profile.token_endpoint();
        let unsigned = UnsignedAssertion::new(
            profile.algorithm,
            &key.thumbprints,
            &profile.client_id,
            endpoint,
            OffsetDateTime::now_utc(),
        );
        let signature = vault.sign(key, profile.algorithm, &unsigned.digest()).await?;
        let assertion = SecretString::new(unsigned.with_signature(&signature));
        let response = request_token(http, endpoint, &profile.client_id, scope, assertion.expose()).await?;
        Ok(IssuedToken {
            access_token: response.access_token,
            expires_on: response.expires_on,
            scope: scope.to_string(),
            profile: profile.name.clone(),
            demo: profile.is_demo(),
            from_cache: false,
        })
    }

    /// One client per trusted CA. Keyed by the CA's content, not its path: the demo tenant writes a new CA
    /// certificate to the same file each time it starts, and a client trusting the old one would fail.
    fn http_for(&self, cloud: &Cloud) -> Result<(reqwest::Client, CaKey)> {
        let pem = cloud.ca_file().map(|path| read_ca_file(path)).transpose()?;
        let key: CaKey = pem.as_deref().map(|pem| Sha256::digest(pem).into());
        if let Some(client) = self.inner.http.lock().get(&key) {
            return Ok((client.clone(), key));
        }
        let client = build_client(self.inner.options.timeouts, pem.as_deref())?;
        self.inner.http.lock().insert(key, client.clone());
        Ok((client, key))
    }

    fn vault_clients(&self, target: &VaultCertificate) -> Result<Arc<VaultClients>> {
        let cloud = target.cloud();
        let vault_url = target.vault_root().to_string();
        let (http, ca) = self.http_for(cloud)?;
        let key = VaultKey {
            vault_url: vault_url.clone(),
            credential: target.credential(),
            cloud: cloud.clone(),
            tenant: target.tenant().to_string(),
            ca,
        };
        if let Some(clients) = self.inner.vaults.lock().get(&key) {
            return Ok(clients.clone());
        }
        let options = sdk_client_options(http, self.inner.options.key_vault_retry);
        let credential = key_vault_credential(target.credential(), cloud, target.tenant(), options.clone())?;
        let clients = Arc::new(VaultClients::new(
            &vault_url,
            Some(target.credential()),
            credential,
            options,
        )?);
        self.inner.vaults.lock().insert(key, clients.clone());
        Ok(clients)
    }
}

/// SDK client options that route through our shared HTTP client and retry policy.
pub(crate) fn sdk_client_options(http: reqwest::Client, retry: RetrySettings) -> ClientOptions {
    let to_time = |d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::seconds(30));
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: to_time(retry.initial_delay),
            max_retries: retry.max_retries,
            max_total_elapsed: to_time(retry.max_total),
            max_delay: to_time(retry.max_delay),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margins_scale_down_for_short_tokens_only() {
        let options = BrokerOptions::default();
        let minutes = |m: u64| Duration::from_secs(m * 60);
        // Entra's 60–90 minute tokens keep the fixed margins.
        for lifetime in [minutes(60), minutes(75), minutes(90), minutes(24 * 60)] {
            assert_eq!(options.refresh_margin_for(lifetime), minutes(5));
            assert_eq!(options.min_remaining_for(lifetime), minutes(1));
        }
        // A 200 s token would be "near expiry" from birth with a 5 minute margin.
        assert_eq!(
            options.refresh_margin_for(Duration::from_secs(200)),
            Duration::from_secs(50)
        );
        assert_eq!(
            options.min_remaining_for(Duration::from_secs(200)),
            Duration::from_secs(20)
        );
        // 70 s: refreshed with 17.5 s left, served down to 7 s; the refresh always starts first.
        let lifetime = Duration::from_secs(70);
        assert_eq!(options.refresh_margin_for(lifetime), Duration::from_millis(17_500));
        assert_eq!(options.min_remaining_for(lifetime), Duration::from_secs(7));
        for seconds in [1, 10, 70, 300, 1200, 3600, 5400] {
            let lifetime = Duration::from_secs(seconds);
            assert!(options.refresh_margin_for(lifetime) > options.min_remaining_for(lifetime));
        }
    }
}
