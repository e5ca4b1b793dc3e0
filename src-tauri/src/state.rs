//! Everything the app holds while it runs, in one place: the engine, the loopback API, the demo tenant, the
//! clipboard and what the window should tell the user. The tray, the window's commands and the file watcher
//! all act through [`Desktop`], so a token copied from the tray and one fetched over the API come from the
//! same broker and the same cache.

use crate::menu::{ApiState, MenuProfile};
use crate::notify;
use crate::shell::Shell;
use keyring_core::CredentialStore;
use kvproxy_core::{
    Broker, Error as CoreError, Profile, ProfileFile, ProfileStore, SecretString, Settings, SettingsStore,
    TokenOptions, keyring_from_env,
};
use kvproxy_server::agent::{self, AgentContext, AgentServer};
use kvproxy_server::demo::{DEMO_PORT, DemoTenant, demo_port_of};
use kvproxy_server::{ActivityRecord, ApiKeySource, AppState, RunningServer, ServerConfig, resolve_api_key};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Where the app keeps its files and secrets, and what is around it.
pub struct DesktopOptions {
    /// `profiles.toml` and `settings.toml` live here.
    pub config_dir: PathBuf,
    /// Key info and the API key; `None` keeps both in memory for this run.
    pub keyring: Option<Arc<CredentialStore>>,
    /// False when no tray host is on the desktop.
    pub tray: bool,
    /// Apply `KVPROXY_PORT` and `KVPROXY_CLIPBOARD_CLEAR_SECS` over `settings.toml`.
    pub env_overrides: bool,
    /// Where "Try the demo tenant" runs it (0: any free port).
    pub demo_port: u16,
}

/// Something the window shows until the user dismisses it: a failed token, a port in use, a bad file.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub id: u64,
    /// `error`, `warning` or `info`.
    pub level: &'static str,
    pub title: String,
    /// The whole story: the error with its hint, trace id and correlation id.
    pub detail: String,
}

/// A profile as the window lists it. No secret in here.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub is_default: bool,
    pub demo: bool,
    pub tenant: String,
    pub client_id: String,
    pub vault_url: String,
    pub certificate: String,
    pub scope: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiView {
    pub running: bool,
    pub url: Option<String>,
    pub port: u16,
    pub key_source: String,
}

/// What the window renders.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub profiles: Vec<ProfileView>,
    /// Why the profiles file could not be read; the list above is the last one that could.
    pub profiles_error: Option<String>,
    pub profiles_path: String,
    pub api: ApiView,
    /// False when no tray host is on the desktop: the window is then the way in, and closing it quits.
    pub tray: bool,
    pub notices: Vec<Notice>,
    pub clipboard_clear_secs: u64,
}

pub(crate) struct Inner {
    pub(crate) shell: Arc<dyn Shell>,
    pub(crate) broker: Broker,
    pub(crate) profiles: ProfileStore,
    pub(crate) settings_store: SettingsStore,
    /// What `settings.toml` says; the window edits this.
    pub(crate) saved_settings: RwLock<Settings>,
    /// What is in effect: the saved settings with the environment's overrides.
    pub(crate) settings: RwLock<Settings>,
    pub(crate) env_overrides: bool,
    demo_port: u16,
    pub(crate) keyring: Option<Arc<CredentialStore>>,
    /// Shared by every start of the API, so a pause keeps the cache, the key and the activity log.
    pub(crate) server_state: AppState,
    server_config: RwLock<ServerConfig>,
    api: tokio::sync::Mutex<Option<RunningServer>>,
    /// Answers `kvproxy token` / `key-info` / `api-key rotate` over the user's own socket.
    agent: tokio::sync::Mutex<Option<AgentServer>>,
    api_port: RwLock<Option<u16>>,
    /// The port of the first successful start: a resumed API comes back where clients expect it, also
    /// when the setting was 0 (any free port).
    first_port: RwLock<Option<u16>>,
    /// False until the first start of the API has been tried.
    api_tried: AtomicBool,
    pub(crate) api_key_source: ApiKeySource,
    /// The last profiles file that could be read; the menu keeps showing it while the file is broken.
    last_good: RwLock<ProfileFile>,
    profiles_error: RwLock<Option<String>>,
    demo: tokio::sync::Mutex<Option<DemoTenant>>,
    notices: Mutex<Vec<Notice>>,
    next_notice: AtomicU64,
    tray: bool,
}

/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Desktop {
    pub(crate) inner: Arc<Inner>,
}

impl Desktop {
    /// The app as users run it: the OS config directory (or `KVPROXY_CONFIG_DIR`), the OS keyring (unless
    /// `KVPROXY_KEYRING=off`) and the environment's overrides.
    pub fn from_environment(shell: Arc<dyn Shell>, tray: bool) -> Self {
        let mut problems = Vec::new();
        let config_dir = kvproxy_core::config_dir().unwrap_or_else(|e| {
            problems.push(("No config directory", format!("{e}. Using the current directory.")));
            PathBuf::from(".")
        });
        let keyring = keyring_from_env().unwrap_or_else(|e| {
            problems.push((
                "No OS keyring",
                format!("{e}. Key info is cached for this run only, and the API key changes at every start."),
            ));
            None
        });
        let options = DesktopOptions {
            config_dir,
            keyring,
            tray,
            env_overrides: true,
            demo_port: DEMO_PORT,
        };
        let desktop = Self::new(shell, options);
        for (title, detail) in problems {
            desktop.notice("warning", title, detail);
        }
        desktop
    }

    /// Reads settings and profiles and prepares the engine. Problems become notices for the window rather
    /// than a refusal to start: the tray must come up even when something is off.
    pub fn new(shell: Arc<dyn Shell>, options: DesktopOptions) -> Self {
        let DesktopOptions {
            config_dir,
            keyring,
            tray,
            env_overrides,
            demo_port,
        } = options;
        let mut notices = Vec::new();
        let mut warn = |title: &str, detail: String| {
            notices.push(Notice {
                id: notices.len() as u64 + 1,
                level: "warning",
                title: title.into(),
                detail,
            })
        };
        let settings_store = SettingsStore::new(config_dir.join("settings.toml"));
        let saved_settings = settings_store.load().unwrap_or_else(|e| {
            warn("Settings not applied; using the defaults", e.to_string());
            Settings::default()
        });
        let settings = effective_settings(&saved_settings, env_overrides).unwrap_or_else(|e| {
            warn("Settings not applied; using the defaults", e.to_string());
            saved_settings.clone()
        });
        let broker = kvproxy_server::keyring_broker(keyring.clone());
        let (api_key, api_key_source) = resolve_api_key(keyring.as_ref()).unwrap_or_else(|e| {
            warn("API key", format!("{e}. A random key is used for this run."));
            let key = kvproxy_server::generate_api_key().unwrap_or_else(|_| SecretString::new(String::new()));
            (key, ApiKeySource::Ephemeral)
        });
        let profiles = ProfileStore::new(config_dir.join("profiles.toml"));
        let server_state = AppState::new(broker.clone(), profiles.clone(), api_key, settings.port);
        let server_config = ServerConfig {
            port: settings.port,
            ..Default::default()
        };
        let next_notice = AtomicU64::new(notices.len() as u64 + 1);
        let desktop = Desktop {
            inner: Arc::new(Inner {
                shell,
                broker,
                profiles,
                settings_store,
                saved_settings: RwLock::new(saved_settings),
                settings: RwLock::new(settings),
                env_overrides,
                demo_port,
                keyring,
                server_state,
                server_config: RwLock::new(server_config),
                api: tokio::sync::Mutex::new(None),
                agent: tokio::sync::Mutex::new(None),
                api_port: RwLock::new(None),
                first_port: RwLock::new(None),
                api_tried: AtomicBool::new(false),
                api_key_source,
                last_good: RwLock::new(ProfileFile::default()),
                profiles_error: RwLock::new(None),
                demo: tokio::sync::Mutex::new(None),
                notices: Mutex::new(notices),
                next_notice,
                tray,
            }),
        };
        desktop.reload_profiles();
        desktop
    }

    pub fn shell(&self) -> &dyn Shell {
        self.inner.shell.as_ref()
    }

    /// Shows a notification unless the user turned notifications off.
    pub(crate) fn notify(&self, summary: &str, body: &str) {
        if self.inner.settings.read().notifications {
            self.inner.shell.notify(summary, body);
        }
    }

    pub fn profile_store(&self) -> &ProfileStore {
        &self.inner.profiles
    }

    /// True while profiles.toml cannot be read (the menu shows the last good profiles).
    pub fn profiles_unreadable(&self) -> bool {
        self.inner.profiles_error.read().is_some()
    }

    pub fn has_profiles(&self) -> bool {
        !self.inner.last_good.read().profiles.is_empty()
    }

    /// Profiles for the tray menu: from the last readable file.
    pub fn menu_profiles(&self) -> Vec<MenuProfile> {
        let file = self.inner.last_good.read();
        file.profiles
            .keys()
            .map(|name| MenuProfile {
                name: name.clone(),
                is_default: file.default.as_deref() == Some(name.as_str()),
            })
            .collect()
    }

    /// The port the API listens on now; `None` while paused or when it could not start.
    pub(crate) fn listening_port(&self) -> Option<u16> {
        *self.inner.api_port.read()
    }

    pub fn api_state(&self) -> ApiState {
        match *self.inner.api_port.read() {
            Some(_) => ApiState::Running,
            None if !self.inner.api_tried.load(Ordering::SeqCst) => ApiState::Starting,
            None => ApiState::Stopped,
        }
    }

    /// Re-reads profiles.toml. A file that cannot be read keeps the last good profiles and says why.
    /// Returns true when the file was read.
    pub fn reload_profiles(&self) -> bool {
        match self.inner.profiles.load() {
            Ok(file) => {
                *self.inner.last_good.write() = file;
                *self.inner.profiles_error.write() = None;
                true
            }
            Err(error) => {
                tracing::warn!("{error}");
                let was_readable = self.inner.profiles_error.write().replace(error.to_string()).is_none();
                if was_readable {
                    self.notify(
                        "profiles.toml cannot be read",
                        "The menu keeps the last good profiles. Open KeyVault Proxy for what is wrong with the file.",
                    );
                }
                false
            }
        }
    }

    /// Tells the tray and the window that something changed.
    pub fn changed(&self) {
        self.inner.shell.changed();
    }

    pub fn notice(&self, level: &'static str, title: impl Into<String>, detail: impl Into<String>) {
        let id = self.inner.next_notice.fetch_add(1, Ordering::SeqCst);
        let mut notices = self.inner.notices.lock();
        notices.push(Notice {
            id,
            level,
            title: title.into(),
            detail: detail.into(),
        });
        // The window is not a log: old news goes.
        let excess = notices.len().saturating_sub(20);
        notices.drain(..excess);
    }

    pub fn dismiss(&self, id: u64) {
        self.inner.notices.lock().retain(|n| n.id != id);
    }

    pub fn status(&self) -> StatusView {
        let file = self.inner.last_good.read();
        let profiles = file
            .profiles
            .values()
            .map(|p| ProfileView {
                name: p.name.clone(),
                is_default: file.default.as_deref() == Some(p.name.as_str()),
                demo: p.is_demo(),
                tenant: p.tenant.clone(),
                client_id: p.client_id.clone(),
                vault_url: p.vault_url.clone(),
                certificate: p.certificate.clone(),
                scope: p.scopes.first().cloned().unwrap_or_default(),
            })
            .collect();
        let port = *self.inner.api_port.read();
        StatusView {
            profiles,
            profiles_error: self.inner.profiles_error.read().clone(),
            profiles_path: self.inner.profiles.path().display().to_string(),
            api: ApiView {
                running: port.is_some(),
                url: port.map(|p| format!("http://localhost:{p}")),
                port: port.unwrap_or(self.inner.settings.read().port),
                key_source: self
                    .inner
                    .api_key_source
                    .describe(&kvproxy_server::invocation::cli_beside_this_program()),
            },
            tray: self.inner.tray,
            notices: self.inner.notices.lock().clone(),
            clipboard_clear_secs: self.inner.settings.read().clipboard_clear_secs,
        }
    }

    // ---- the CLI's agent --------------------------------------------------------------------------------

    /// Lets `kvproxy token` and `kvproxy key-info` use this app's caches, and `kvproxy api-key rotate` change
    /// the running API's key. Independent of the API's pause: the socket is the user's own. When it cannot
    /// start (another agent, an unsafe directory) the CLI still works, in-process; the reason is logged.
    pub async fn start_agent(&self) {
        let mut slot = self.inner.agent.lock().await;
        if slot.is_some() {
            return;
        }
        let path = match agent::default_socket_path() {
            Ok(path) => path,
            Err(e) => {
                eprintln!("agent: {e}");
                return;
            }
        };
        let mut context = AgentContext::new(self.inner.server_state.clone(), self.inner.api_key_source);
        // Weak: the agent lives inside the app's state, and must not keep it alive.
        let app = Arc::downgrade(&self.inner);
        context.on_key_rotated = Some(Arc::new(move || {
            if let Some(inner) = app.upgrade() {
                let desktop = Desktop { inner };
                desktop.notify("API key rotated", "kvproxy api-key rotate: clients need the new key.");
                desktop.changed();
            }
        }));
        match AgentServer::start(context, path).await {
            Ok(server) => {
                crate::say(format!("agent: listening on {}", server.path().display()));
                *slot = Some(server);
            }
            Err(e) => eprintln!("agent: {e}; kvproxy commands will mint tokens themselves"),
        }
    }

    // ---- the loopback API ------------------------------------------------------------------------------

    /// Starts the API on the configured port. A port in use is reported (notification and window) and the
    /// rest of the app carries on.
    pub async fn start_api(&self) -> bool {
        let mut api = self.inner.api.lock().await;
        if api.is_some() {
            return true;
        }
        let config = self.server_config();
        let started = RunningServer::start(self.inner.server_state.clone(), &config).await;
        self.inner.api_tried.store(true, Ordering::SeqCst);
        match started {
            Ok(server) => {
                self.take_server(&mut api, server);
                true
            }
            Err(error) => {
                let title = format!("The API could not start on port {}", config.port);
                eprintln!("api: {error}");
                self.notify(&title, "Tokens from the tray still work. Details in the window.");
                self.notice(
                    "error",
                    title,
                    format!(
                        "{error}. Choose another port in Settings (or set KVPROXY_PORT and restart), or stop the other program and choose Resume API."
                    ),
                );
                false
            }
        }
    }

    /// Where the next start listens: the port of the first successful start once there was one (a resumed
    /// API comes back where clients expect it, also when the setting was 0).
    pub(crate) fn server_config(&self) -> ServerConfig {
        let mut config = self.inner.server_config.read().clone();
        if let Some(port) = *self.inner.first_port.read() {
            config.port = port;
        }
        config
    }

    /// Starts the API on `port` now, instead of where it listens (Settings); the error says why it could
    /// not listen there, and the API is then stopped.
    pub(crate) async fn restart_api_on(&self, port: u16) -> Result<(), String> {
        self.stop_api().await;
        self.inner.server_config.write().port = port;
        *self.inner.first_port.write() = None;
        let mut api = self.inner.api.lock().await;
        let started = RunningServer::start(self.inner.server_state.clone(), &self.server_config()).await;
        self.inner.api_tried.store(true, Ordering::SeqCst);
        match started {
            Ok(server) => {
                self.take_server(&mut api, server);
                Ok(())
            }
            Err(error) => Err(format!("port {port} cannot be used: {error}")),
        }
    }

    fn take_server(&self, slot: &mut Option<RunningServer>, server: RunningServer) {
        self.inner.first_port.write().get_or_insert(server.port());
        for addr in server.local_addrs() {
            crate::say(format!("api: listening on http://{addr}"));
        }
        *self.inner.api_port.write() = Some(server.port());
        *slot = Some(server);
    }

    pub async fn stop_api(&self) {
        let server = self.inner.api.lock().await.take();
        *self.inner.api_port.write() = None;
        if let Some(server) = server
            && let Err(error) = server.stop().await
        {
            tracing::warn!("the API ended with an error: {error}");
        }
        crate::say("api: paused");
    }

    // ---- tokens and the clipboard -----------------------------------------------------------------------

    /// Copies the profile's token (from the cache when it can) and says so in a notification; a failure is
    /// a notification with the short reason and a notice with the details.
    pub async fn copy_token(&self, name: &str) -> Result<(), String> {
        let started = Instant::now();
        let result = self.token_for(name).await;
        self.record_tray_activity(name, result.is_ok(), started);
        match result {
            Ok(token) => {
                let clear_after = self.inner.settings.read().clipboard_clear_after();
                if let Err(error) = self.inner.shell.copy_secret(&token.access_token, clear_after) {
                    self.fail(name, "clipboard unavailable", error.clone());
                    return Err(error);
                }
                let body = match clear_after {
                    Some(delay) => format!("The clipboard is cleared in {} s.", delay.as_secs()),
                    None => String::new(),
                };
                self.notify(&notify::token_copied(name, token.expires_on), &body);
                crate::say(format!(
                    "copied: token for {name}{}",
                    if token.from_cache { " (cached)" } else { "" }
                ));
                Ok(())
            }
            Err(error) => {
                self.fail(name, &error.summary(), error.to_string());
                Err(error.to_string())
            }
        }
    }

    fn fail(&self, profile: &str, reason: &str, detail: String) {
        let title = format!("No token for {profile}");
        self.notify(&title, reason);
        self.notice("error", format!("{title}: {reason}"), detail);
        self.changed();
    }

    async fn token_for(&self, name: &str) -> Result<kvproxy_core::IssuedToken, CoreError> {
        let profile = self.valid_profile(name).await?;
        self.inner.broker.token(&profile, None, TokenOptions::default()).await
    }

    /// The saved profile `name`, checked; for the demo profile, with the demo tenant running.
    pub(crate) async fn valid_profile(&self, name: &str) -> Result<kvproxy_core::ValidProfile, CoreError> {
        let profile = self.inner.profiles.get(name)?.resolve()?;
        if DemoTenant::is_demo_profile(&profile) {
            self.ensure_demo(&profile).await;
        }
        Ok(profile)
    }

    /// The tray's requests belong in the same activity log as the API's.
    fn record_tray_activity(&self, profile: &str, ok: bool, started: Instant) {
        self.record_activity(Source::Tray, profile, if ok { 200 } else { 502 }, started);
    }

    /// A token handed out by the app itself (tray or window), in the log the API's requests go to.
    pub(crate) fn record_activity(&self, source: Source, profile: &str, status: u16, started: Instant) {
        let (method, route, client) = match source {
            Source::Tray => ("TRAY", "Copy token", "KeyVault Proxy tray"),
            Source::Window => ("WINDOW", "Get token", "KeyVault Proxy window"),
        };
        self.inner.server_state.activity.push(ActivityRecord {
            time: ActivityRecord::now(),
            method: method.into(),
            route: route.into(),
            profile: Some(profile.to_string()),
            user_agent: Some(client.into()),
            status,
            duration_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        });
    }

    /// The key the API accepts right now.
    pub fn api_key(&self) -> SecretString {
        self.inner.server_state.api_key.read().clone()
    }

    pub fn copy_api_key(&self) -> Result<(), String> {
        let clear_after = self.inner.settings.read().clipboard_clear_after();
        match self.inner.shell.copy_secret(&self.api_key(), clear_after) {
            Ok(()) => {
                crate::say("copied: API key");
                self.notify(
                    "API key copied",
                    "Send it as Authorization: Bearer, X-Api-Key or client_secret.",
                );
                Ok(())
            }
            Err(error) => {
                self.notice("error", "Could not copy the API key", error.clone());
                self.changed();
                Err(error)
            }
        }
    }

    // ---- the demo tenant --------------------------------------------------------------------------------

    /// Makes the demo profile work: runs the demo tenant in this process, or uses the one another process
    /// (`kvproxy demo`) serves on its port.
    pub async fn ensure_demo(&self, profile: &Profile) {
        let mut demo = self.inner.demo.lock().await;
        if matches!(*demo, Some(DemoTenant::Owned { .. })) {
            return;
        }
        let port = demo_port_of(profile).unwrap_or(DEMO_PORT);
        match DemoTenant::start(port, &self.inner.profiles, false).await {
            Ok(tenant) => {
                if let DemoTenant::Owned { .. } = tenant {
                    crate::say(format!("demo: tenant running on 127.0.0.1:{}", tenant.port()));
                }
                *demo = Some(tenant);
            }
            Err(error) => {
                self.notice("error", "The demo tenant could not start", error.to_string());
            }
        }
    }

    /// "Try the demo tenant": starts it and saves the `demo` profile as the default.
    pub async fn start_demo(&self) -> Result<(), String> {
        let mut demo = self.inner.demo.lock().await;
        if let Some(tenant) = demo.take() {
            tenant.shutdown().await;
        }
        let tenant = DemoTenant::start(self.inner.demo_port, &self.inner.profiles, true)
            .await
            .map_err(|e| e.to_string())?;
        crate::say(format!("demo: tenant running on 127.0.0.1:{}", tenant.port()));
        *demo = Some(tenant);
        drop(demo);
        // Runnable as shown: the CLI beside this app by its path when the PATH does not find it.
        let cli = kvproxy_server::invocation::cli_beside_this_program();
        self.notice(
            "info",
            "The demo tenant is running",
            format!("Its tokens work only with it, not with Azure. From a terminal: {cli} token demo"),
        );
        self.reload_profiles();
        self.changed();
        Ok(())
    }

    /// Starts the demo tenant at launch when a demo profile is saved.
    pub async fn demo_if_saved(&self) {
        let demo = self
            .inner
            .last_good
            .read()
            .profiles
            .values()
            .find(|p| DemoTenant::is_demo_profile(p))
            .cloned();
        if let Some(profile) = demo {
            self.ensure_demo(&profile).await;
        }
    }

    pub async fn shutdown(&self) {
        self.inner.agent.lock().await.take();
        self.stop_api().await;
        if let Some(tenant) = self.inner.demo.lock().await.take() {
            tenant.shutdown().await;
        }
    }
}

/// Who in the app handed out a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Tray,
    Window,
}

/// The saved settings with the environment's overrides, when those apply.
pub(crate) fn effective_settings(saved: &Settings, env_overrides: bool) -> kvproxy_core::Result<Settings> {
    if env_overrides {
        saved.clone().with_env_overrides()
    } else {
        Ok(saved.clone())
    }
}
