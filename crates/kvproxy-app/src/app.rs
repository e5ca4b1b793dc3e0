//! [`App`]: everything a running KeyVault Proxy holds, and every operation its doors (the HTTP API, the CLI
//! agent, the tray, the window) offer. Each operation finds the profile, makes sure the demo tenant runs
//! when the profile needs it, asks the broker, and records who asked, in one place.

use crate::activity::{Activity, Caller, Channel};
use crate::api_key::{ApiKeySource, ApiKeyStore, MIN_API_KEY_LEN, generate_api_key, matches};
use crate::approval::{Approvals, Approver, CONFIRM_TIMEOUT, ConfirmPolicy};
use crate::demo::{DemoError, DemoTenant, demo_port_of};
use crate::profiles::{ProfileCache, Profiles};
use keyring_core::CredentialStore;
use kvproxy_core::{
    Broker, CredentialSource, Error, ErrorClass, IssuedToken, KeyInfo, Profile, ProfileStore, Result, SecretString,
    SigningKey, TokenOptions, ValidProfile, VaultCertificate,
};
use parking_lot::RwLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How many requests the activity log keeps.
const ACTIVITY_CAPACITY: usize = 500;

/// Whether this app runs the demo tenant for a demo profile that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoPolicy {
    /// Started on demand on the port the demo profile names (the desktop app).
    Run,
    /// Left to whoever runs it (`kvproxy demo`, the app); a demo profile fails like any unreachable tenant.
    Leave,
}

pub struct AppOptions {
    pub profiles: ProfileStore,
    pub broker: Broker,
    pub api_key: SecretString,
    pub api_key_source: ApiKeySource,
    /// Where a rotated API key is kept; `None` keeps it in memory for this run.
    pub keyring: Option<Arc<CredentialStore>>,
    /// How the .NET routes' ad-hoc requests sign in to Key Vault.
    pub credential: CredentialSource,
    pub demo: DemoPolicy,
    /// What a `confirm` profile does when a program asks for its token.
    pub confirm: ConfirmPolicy,
    /// How long a program waits for the user's answer.
    pub confirm_timeout: Duration,
}

impl AppOptions {
    /// Options for tests and tools: the given profiles file, a broker without keyring, a given key.
    pub fn in_memory(profiles: ProfileStore, api_key: SecretString) -> Self {
        Self {
            profiles,
            broker: Broker::new(kvproxy_core::BrokerOptions::default()),
            api_key,
            api_key_source: ApiKeySource::Ephemeral,
            keyring: None,
            credential: CredentialSource::Auto,
            demo: DemoPolicy::Leave,
            confirm: ConfirmPolicy::Refuse,
            confirm_timeout: CONFIRM_TIMEOUT,
        }
    }
}

/// What the app tells whoever shows it (the desktop's tray and window) about changes it made itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// The API key was replaced through `channel` (the CLI over the agent, or the window).
    ApiKeyRotated { by: Channel },
    /// The profiles changed (saved through the app, or the demo tenant saved its profile).
    ProfilesChanged,
    /// This app started the demo tenant, on this port.
    DemoStarted { port: u16 },
    /// The demo tenant could not start; the reason, for the user.
    DemoFailed(String),
}

type Listener = Arc<dyn Fn(AppEvent) + Send + Sync>;

/// Why the API key could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    #[error("the API key comes from KVPROXY_API_KEY; change it there and restart")]
    FromEnvironment,
    #[error("the new API key is too short (at least {MIN_API_KEY_LEN} characters)")]
    TooShort,
    #[error(transparent)]
    Core(#[from] Error),
}

/// A token asked for by profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenRequest<'a> {
    /// The profile's name; the default profile when `None`.
    pub profile: Option<&'a str>,
    /// A scope instead of the profile's first.
    pub scope: Option<&'a str>,
    pub skip_cache: bool,
}

struct Inner {
    broker: Broker,
    profiles: ProfileCache,
    api_key: RwLock<SecretString>,
    api_key_source: ApiKeySource,
    keyring: Option<Arc<CredentialStore>>,
    credential: CredentialSource,
    activity: Activity,
    demo_policy: DemoPolicy,
    demo: tokio::sync::Mutex<Option<DemoTenant>>,
    /// True once the demo tenant is known to run (here or elsewhere): a token then costs no probe.
    demo_known: AtomicBool,
    /// The port of a demo tenant another process serves (0: none): only whether it still listens is checked.
    shared_demo_port: AtomicU16,
    listener: RwLock<Option<Listener>>,
    approvals: Approvals,
}

/// The app. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("profiles", &self.inner.profiles.store().path())
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(options: AppOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                broker: options.broker,
                profiles: ProfileCache::new(options.profiles),
                api_key: RwLock::new(options.api_key),
                api_key_source: options.api_key_source,
                keyring: options.keyring,
                credential: options.credential,
                activity: Activity::new(ACTIVITY_CAPACITY),
                demo_policy: options.demo,
                demo: tokio::sync::Mutex::new(None),
                demo_known: AtomicBool::new(false),
                shared_demo_port: AtomicU16::new(0),
                listener: RwLock::new(None),
                approvals: Approvals::new(options.confirm, options.confirm_timeout),
            }),
        }
    }

    /// Who hears about [`AppEvent`]s; one listener (the desktop), replaced by a second call.
    pub fn listen(&self, listener: impl Fn(AppEvent) + Send + Sync + 'static) {
        *self.inner.listener.write() = Some(Arc::new(listener));
    }

    fn tell(&self, event: AppEvent) {
        let listener = self.inner.listener.read().clone();
        if let Some(listener) = listener {
            listener(event);
        }
    }

    /// Who puts a `confirm` profile's question to the user (the desktop app).
    pub fn set_approver(&self, approver: Arc<dyn Approver>) {
        self.inner.approvals.set_approver(approver);
    }

    /// Forgets every program the user allowed, so each is asked again.
    pub fn forget_approvals(&self) {
        self.inner.approvals.forget();
    }

    /// The programs allowed now: (program, profile, time left; `None` until quit).
    pub fn approvals(&self) -> Vec<(String, String, Option<Duration>)> {
        self.inner.approvals.granted()
    }

    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    pub fn activity(&self) -> &Activity {
        &self.inner.activity
    }

    /// How the .NET routes' ad-hoc requests sign in to Key Vault.
    pub fn credential(&self) -> CredentialSource {
        self.inner.credential
    }

    // ---- profiles ----------------------------------------------------------------------------------------

    pub fn profile_store(&self) -> &ProfileStore {
        self.inner.profiles.store()
    }

    /// The profiles as the file says now, read again only when it changed.
    pub fn profiles(&self) -> Arc<Profiles> {
        self.inner.profiles.current()
    }

    /// Reads the profiles file again now (a watcher saw it change).
    pub fn reload_profiles(&self) -> Arc<Profiles> {
        self.inner.profiles.reload()
    }

    /// The checked profile `name`, or the default profile.
    pub fn profile(&self, name: Option<&str>) -> Result<Arc<ValidProfile>> {
        self.inner.profiles.get(name)
    }

    /// Saves a new profile, or `original` edited or renamed.
    pub fn save_profile(&self, original: Option<&str>, profile: Profile) -> Result<()> {
        self.profile_store().save_as(original, profile)?;
        self.profiles_written();
        Ok(())
    }

    pub fn remove_profile(&self, name: &str) -> Result<Profile> {
        let removed = self.profile_store().remove(name)?;
        self.profiles_written();
        Ok(removed)
    }

    pub fn set_default_profile(&self, name: &str) -> Result<()> {
        self.profile_store().set_default(name)?;
        self.profiles_written();
        Ok(())
    }

    fn profiles_written(&self) {
        self.inner.profiles.reload();
        self.tell(AppEvent::ProfilesChanged);
    }

    // ---- tokens and key info -----------------------------------------------------------------------------

    /// A token for a saved profile, from the cache when it can be; recorded as `caller`'s.
    pub async fn token(&self, request: TokenRequest<'_>, caller: &Caller) -> Result<IssuedToken> {
        let started = Instant::now();
        let options = TokenOptions {
            skip_cache: request.skip_cache,
        };
        let result = self
            .on_profile(request.profile, |profile| {
                let broker = self.inner.broker.clone();
                let approvals = &self.inner.approvals;
                async move {
                    if profile.confirm {
                        let scope = profile.scope(request.scope)?;
                        approvals
                            .check(&profile.name, scope, caller)
                            .await
                            .map_err(Error::NotApproved)?;
                    }
                    broker.token(&profile, request.scope, options).await
                }
            })
            .await;
        self.record(caller, request.profile, &result, |t| t.profile.clone(), started);
        result
    }

    /// The key info of a saved profile's certificate (with `refresh`, read from Key Vault again).
    pub async fn key_info(&self, profile: Option<&str>, refresh: bool, caller: &Caller) -> Result<(String, KeyInfo)> {
        let started = Instant::now();
        let result = self
            .on_profile(profile, |profile| {
                let broker = self.inner.broker.clone();
                async move {
                    let info = broker.key_info(&profile, refresh).await?;
                    Ok((profile.name.clone(), info))
                }
            })
            .await;
        self.record(caller, profile, &result, |(name, _)| name.clone(), started);
        result
    }

    /// Runs `operation` on the profile, with the demo tenant running when it needs it. When the demo tenant
    /// another process served has gone away, this app starts its own and tries once more.
    async fn on_profile<T, F, Fut>(&self, name: Option<&str>, operation: F) -> Result<T>
    where
        F: Fn(Arc<ValidProfile>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let profile = self.ready_profile(name).await?;
        match operation(profile.clone()).await {
            Err(e) if self.demo_went_away(&profile, &e).await => {
                let profile = self.ready_profile(name).await?;
                operation(profile).await
            }
            other => other,
        }
    }

    /// True (and the demo tenant no longer known) when `error` says the demo tenant of another process is
    /// unreachable: the next look starts one here.
    async fn demo_went_away(&self, profile: &ValidProfile, error: &Error) -> bool {
        if self.inner.demo_policy != DemoPolicy::Run
            || error.class() != ErrorClass::Network
            || !DemoTenant::is_demo_profile(profile)
        {
            return false;
        }
        let demo = self.inner.demo.lock().await;
        if matches!(*demo, Some(DemoTenant::Owned { .. })) {
            return false;
        }
        self.inner.demo_known.store(false, Ordering::Release);
        true
    }

    /// A token for a profile made up for one request (the .NET routes), optionally signed with a key the
    /// caller named; recorded under the app's client id.
    pub async fn adhoc_token(
        &self,
        profile: &ValidProfile,
        key: Option<SigningKey>,
        skip_cache: bool,
        caller: &Caller,
    ) -> Result<IssuedToken> {
        let started = Instant::now();
        let options = TokenOptions { skip_cache };
        let result = match key {
            Some(key) => self.inner.broker.token_with_key(profile, key, None, options).await,
            None => self.inner.broker.token(profile, None, options).await,
        };
        self.record(
            caller,
            Some(&profile.client_id),
            &result,
            |_| profile.client_id.clone(),
            started,
        );
        result
    }

    /// Key info of a certificate named by its vault (the .NET routes).
    pub async fn certificate_key_info(
        &self,
        certificate: &VaultCertificate,
        refresh: bool,
        caller: &Caller,
    ) -> Result<KeyInfo> {
        let started = Instant::now();
        let result = self.inner.broker.certificate_key_info(certificate, refresh).await;
        self.record(
            caller,
            Some(certificate.certificate()),
            &result,
            |i| i.certificate.clone(),
            started,
        );
        result
    }

    /// The profile, with the demo tenant running when it is the demo profile and this app runs it.
    async fn ready_profile(&self, name: Option<&str>) -> Result<Arc<ValidProfile>> {
        let profile = self.profile(name)?;
        if self.inner.demo_policy == DemoPolicy::Run && DemoTenant::is_demo_profile(&profile) {
            // A tenant of another process (`kvproxy demo`) can stop at any time: a connect to its port (no TLS,
            // no request) tells, and this app then runs the tenant itself.
            let shared = self.inner.shared_demo_port.load(Ordering::Acquire);
            if shared != 0 && !listens(shared).await {
                self.inner.demo_known.store(false, Ordering::Release);
            }
            if !self.inner.demo_known.load(Ordering::Acquire) {
                self.ensure_demo(&profile).await;
            }
        }
        Ok(profile)
    }

    fn record<T>(
        &self,
        caller: &Caller,
        asked: Option<&str>,
        result: &Result<T>,
        served: impl FnOnce(&T) -> String,
        started: Instant,
    ) {
        let (profile, status) = match result {
            Ok(value) => (Some(served(value)), 200),
            // Only a saved profile's name: what a caller typed (a typo, or control characters) is not logged.
            Err(e) => {
                let saved = asked.filter(|name| self.profiles().file.profiles.contains_key(*name));
                (saved.map(str::to_string), status_of(e))
            }
        };
        self.inner.activity.record(caller, profile.as_deref(), status, started);
    }

    // ---- the API key -------------------------------------------------------------------------------------

    /// The key the API accepts now.
    pub fn api_key(&self) -> SecretString {
        self.inner.api_key.read().clone()
    }

    pub fn api_key_source(&self) -> ApiKeySource {
        self.inner.api_key_source
    }

    /// True when every credential presented is the key (compared in constant time), and there is one.
    pub fn api_key_accepts<'a>(&self, presented: impl IntoIterator<Item = &'a str>) -> bool {
        let key = self.inner.api_key.read();
        let mut any = false;
        for candidate in presented {
            any = true;
            if !matches(&key, candidate) {
                return false;
            }
        }
        any
    }

    /// Replaces the key with a new random one (kept in the OS keyring when the key lives there).
    pub fn rotate_api_key(&self, by: Channel) -> std::result::Result<(), ApiKeyError> {
        let key = match (self.inner.api_key_source, &self.inner.keyring) {
            (ApiKeySource::Environment, _) => return Err(ApiKeyError::FromEnvironment),
            (ApiKeySource::Keyring, Some(keyring)) => ApiKeyStore::new(keyring.clone()).rotate()?,
            _ => generate_api_key()?,
        };
        *self.inner.api_key.write() = key;
        self.tell(AppEvent::ApiKeyRotated { by });
        Ok(())
    }

    /// Takes a key another program already stored (`kvproxy api-key rotate`).
    pub fn apply_api_key(&self, key: SecretString, by: Channel) -> std::result::Result<(), ApiKeyError> {
        if self.inner.api_key_source == ApiKeySource::Environment {
            return Err(ApiKeyError::FromEnvironment);
        }
        if key.expose().len() < MIN_API_KEY_LEN {
            return Err(ApiKeyError::TooShort);
        }
        *self.inner.api_key.write() = key;
        self.tell(AppEvent::ApiKeyRotated { by });
        Ok(())
    }

    // ---- the demo tenant ---------------------------------------------------------------------------------

    /// Makes the demo profile work: runs the demo tenant in this process, or uses the one another process
    /// (`kvproxy demo`) serves on its port. Probed once; known from then on.
    async fn ensure_demo(&self, profile: &ValidProfile) {
        let mut demo = self.inner.demo.lock().await;
        if self.inner.demo_known.load(Ordering::Acquire) {
            return;
        }
        if let Some(tenant) = demo.take() {
            tenant.shutdown().await;
        }
        let port = demo_port_of(profile).unwrap_or(crate::demo::DEMO_PORT);
        match DemoTenant::start(port, self.profile_store(), false).await {
            Ok(tenant) => {
                let started = matches!(tenant, DemoTenant::Owned { .. }).then(|| tenant.port());
                let shared = if started.is_some() { 0 } else { tenant.port() };
                self.inner.shared_demo_port.store(shared, Ordering::Release);
                *demo = Some(tenant);
                self.inner.demo_known.store(true, Ordering::Release);
                drop(demo);
                if let Some(port) = started {
                    self.tell(AppEvent::DemoStarted { port });
                }
            }
            Err(error) => self.tell(AppEvent::DemoFailed(error.to_string())),
        }
    }

    /// Starts the demo tenant on `port` (0: any free port) and saves the `demo` profile as the default
    /// ("Try the demo tenant"). Returns the port it runs on.
    pub async fn start_demo(&self, port: u16) -> std::result::Result<u16, DemoError> {
        let mut demo = self.inner.demo.lock().await;
        if let Some(tenant) = demo.take() {
            tenant.shutdown().await;
        }
        let tenant = DemoTenant::start(port, self.profile_store(), true).await?;
        let port = tenant.port();
        let shared = if matches!(tenant, DemoTenant::Owned { .. }) {
            0
        } else {
            port
        };
        self.inner.shared_demo_port.store(shared, Ordering::Release);
        *demo = Some(tenant);
        self.inner.demo_known.store(true, Ordering::Release);
        drop(demo);
        self.profiles_written();
        Ok(port)
    }

    /// Starts the demo tenant when a demo profile is saved (at launch, and when the profiles change).
    pub async fn demo_if_saved(&self) {
        if self.inner.demo_policy != DemoPolicy::Run || self.inner.demo_known.load(Ordering::Acquire) {
            return;
        }
        let profiles = self.profiles();
        let saved = profiles
            .file
            .profiles
            .keys()
            .find_map(|name| self.profile(Some(name)).ok().filter(|p| DemoTenant::is_demo_profile(p)));
        if let Some(profile) = saved {
            self.ensure_demo(&profile).await;
        }
    }

    /// Stops what this app runs (the demo tenant); the caller stops its own listeners.
    pub async fn shutdown(&self) {
        if let Some(tenant) = self.inner.demo.lock().await.take() {
            tenant.shutdown().await;
        }
        self.inner.demo_known.store(false, Ordering::Release);
        self.inner.shared_demo_port.store(0, Ordering::Release);
    }
}

/// True when something accepts connections on the loopback `port`.
async fn listens(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port));
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

/// The HTTP status a failed operation is answered with, on the API and in the activity log of every door.
pub fn status_of(error: &Error) -> u16 {
    match (error, error.class()) {
        // No such profile, or none named and no default: what is asked for is not here (for the
        // managed-identity routes, "this endpoint has no such identity").
        (Error::ProfileNotFound(_) | Error::NoDefaultProfile, _) => 404,
        (Error::NotApproved(_), _) => 403,
        (_, ErrorClass::Input) => 400,
        (_, ErrorClass::Auth) => 502,
        (_, ErrorClass::Network) => 504,
        (_, ErrorClass::Local) => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_door_answers_a_missing_profile_as_not_here() {
        assert_eq!(status_of(&Error::ProfileNotFound("api".into())), 404);
        assert_eq!(status_of(&Error::NoDefaultProfile), 404);
        assert_eq!(status_of(&Error::invalid("scope", "not RESOURCE/.default")), 400);
    }
}
