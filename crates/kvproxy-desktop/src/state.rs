//! What the desktop app holds besides the app core: the API listener and the agent it runs, the shell
//! around it (tray, notifications, clipboard) and what the window should tell the user. The tray, the
//! window's commands and the file watcher all act through [`Desktop`], and every token goes through the same
//! [`App`], so one copied from the tray and one fetched over the API come from the same cache.

use crate::error::UiError;
use crate::menu::{Action, ApiState, MenuProfile};
use crate::notify;
use crate::shell::Shell;
use keyring_core::CredentialStore;
use kvproxy_app::demo::DEMO_PORT;
use kvproxy_app::settings::AppSettings;
use kvproxy_app::{ApiKeySource, App, AppEvent, AppOptions, Caller, Channel, DemoPolicy, TokenRequest};
use kvproxy_core::{SecretString, SettingsStore, keyring_from_env};
use kvproxy_server::agent::{self, AgentServer};
use kvproxy_server::{ApiListener, ServerConfig};
use parking_lot::Mutex;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// How much a notice matters; the window colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Info,
}

/// Something the window shows until the user dismisses it: a failed token, a port in use, a bad file.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub id: u64,
    pub level: Level,
    pub title: String,
    /// The whole story.
    pub detail: String,
    /// What to do, when the engine knows.
    pub hint: Option<String>,
    /// For Entra's refusals: what Microsoft support asks for.
    pub support: Option<crate::error::SupportIds>,
}

/// A profile as the window lists it. No secret in here.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub is_default: bool,
    pub demo: bool,
    /// Programs are asked about before they get its token.
    pub confirm: bool,
    /// When its certificate expires (RFC 3339), only when that is within 30 days.
    pub certificate_expires: Option<String>,
    /// Whole days left until then (negative once expired), only when within 30 days.
    pub expires_in_days: Option<i64>,
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
    /// Programs waiting for the user's Allow or Deny (profiles set to `confirm`), oldest first.
    pub questions: Vec<kvproxy_app::ApprovalRequest>,
}

pub(crate) struct Inner {
    pub(crate) shell: Arc<dyn Shell>,
    pub(crate) app: App,
    pub(crate) settings: AppSettings,
    demo_port: u16,
    pub(crate) api: ApiListener,
    /// Answers `kvproxy token` / `key-info` / `api-key rotate` over the user's own socket.
    agent: tokio::sync::Mutex<Option<AgentServer>>,
    /// True while profiles.toml cannot be read: the user is told once when it breaks.
    profiles_broken: AtomicBool,
    notices: Mutex<Vec<Notice>>,
    next_notice: AtomicU64,
    tray: bool,
    pub(crate) questions: crate::questions::OpenQuestions,
    /// Profiles whose certificate ends within 30 days, and when.
    pub(crate) expiring: Mutex<std::collections::BTreeMap<String, time::OffsetDateTime>>,
    /// Which day each of them was last told in a notification.
    pub(crate) expiry_notices: crate::expiry::NoticeBook,
    pub(crate) expiry_check: tokio::sync::Mutex<()>,
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
            desktop.notice(Level::Warning, title, detail);
        }
        desktop
    }

    /// Reads settings and profiles and prepares the app. Problems become notices for the window rather than
    /// a refusal to start: the tray must come up even when something is off.
    pub fn new(shell: Arc<dyn Shell>, options: DesktopOptions) -> Self {
        let DesktopOptions {
            config_dir,
            keyring,
            tray,
            env_overrides,
            demo_port,
        } = options;
        let mut warnings = Vec::new();
        let (settings, problem) =
            AppSettings::load(SettingsStore::new(config_dir.join("settings.toml")), env_overrides);
        if let Some(problem) = problem {
            warnings.push(("Settings not applied; using the defaults", problem));
        }
        let (api_key, api_key_source) = kvproxy_app::resolve_api_key(keyring.as_ref()).unwrap_or_else(|e| {
            warnings.push(("API key", format!("{e}. A random key is used for this run.")));
            let key = kvproxy_app::generate_api_key().unwrap_or_else(|_| SecretString::new(String::new()));
            (key, ApiKeySource::Ephemeral)
        });
        let app = App::new(AppOptions {
            profiles: kvproxy_core::ProfileStore::new(config_dir.join("profiles.toml")),
            broker: kvproxy_app::keyring_broker(keyring.clone()),
            api_key,
            api_key_source,
            keyring,
            credential: kvproxy_core::CredentialSource::Auto,
            demo: DemoPolicy::Run,
            confirm: kvproxy_app::ConfirmPolicy::Ask,
            confirm_timeout: kvproxy_app::approval::confirm_timeout_from_env(),
        });
        let api = ApiListener::new(
            app.clone(),
            ServerConfig {
                port: settings.effective().port,
                ..Default::default()
            },
        );
        let desktop = Desktop {
            inner: Arc::new(Inner {
                shell,
                app,
                settings,
                demo_port,
                api,
                agent: tokio::sync::Mutex::new(None),
                profiles_broken: AtomicBool::new(false),
                notices: Mutex::new(Vec::new()),
                next_notice: AtomicU64::new(1),
                tray,
                questions: Default::default(),
                expiring: Mutex::new(Default::default()),
                expiry_notices: crate::expiry::NoticeBook::load(config_dir.join("expiry-notices.json")),
                expiry_check: tokio::sync::Mutex::new(()),
            }),
        };
        for (title, detail) in warnings {
            desktop.notice(Level::Warning, title, detail);
        }
        // Weak: the listener lives inside the app, which the desktop holds.
        let weak = Arc::downgrade(&desktop.inner);
        desktop.inner.app.listen(move |event| {
            if let Some(inner) = weak.upgrade() {
                Desktop { inner }.on_app_event(event);
            }
        });
        desktop
            .inner
            .app
            .set_approver(Arc::new(crate::questions::DesktopApprover(Arc::downgrade(
                &desktop.inner,
            ))));
        desktop.reload_profiles();
        desktop
    }

    fn on_app_event(&self, event: AppEvent) {
        match event {
            AppEvent::ApiKeyRotated { by } => {
                crate::say("api: key rotated");
                let body = match by {
                    Channel::Agent => "kvproxy api-key rotate: clients need the new key.",
                    _ => "Clients need the new key (Copy API key).",
                };
                self.notify("API key rotated", body);
            }
            AppEvent::ProfilesChanged => {}
            AppEvent::DemoStarted { port } => crate::say(format!("demo: tenant running on 127.0.0.1:{port}")),
            AppEvent::DemoFailed(reason) => {
                self.notice(Level::Error, "The demo tenant could not start", reason);
            }
        }
        self.changed();
    }

    pub fn app(&self) -> &App {
        &self.inner.app
    }

    pub fn shell(&self) -> &dyn Shell {
        self.inner.shell.as_ref()
    }

    /// Shows a notification unless the user turned notifications off.
    pub(crate) fn notify(&self, summary: &str, body: &str) {
        if self.inner.settings.effective().notifications {
            self.inner.shell.notify(summary, body);
        }
    }

    pub fn profile_store(&self) -> &kvproxy_core::ProfileStore {
        self.inner.app.profile_store()
    }

    /// True while profiles.toml cannot be read (the menu shows the last good profiles).
    pub fn profiles_unreadable(&self) -> bool {
        self.inner.app.profiles().error.is_some()
    }

    pub fn has_profiles(&self) -> bool {
        !self.inner.app.profiles().file.profiles.is_empty()
    }

    /// Profiles for the tray menu: from the last readable file.
    pub fn menu_profiles(&self) -> Vec<MenuProfile> {
        let profiles = self.inner.app.profiles();
        profiles
            .file
            .profiles
            .keys()
            .map(|name| MenuProfile {
                name: name.clone(),
                is_default: profiles.is_default(name),
            })
            .collect()
    }

    /// The port the API listens on now; `None` while paused or when it could not start.
    pub(crate) fn listening_port(&self) -> Option<u16> {
        self.inner.api.port()
    }

    pub fn api_state(&self) -> ApiState {
        match self.inner.api.state() {
            kvproxy_server::ApiState::Starting => ApiState::Starting,
            kvproxy_server::ApiState::Running { .. } => ApiState::Running,
            kvproxy_server::ApiState::Stopped => ApiState::Stopped,
        }
    }

    /// Re-reads profiles.toml. A file that cannot be read keeps the last good profiles and says why, once.
    /// Returns true when the file was read.
    pub fn reload_profiles(&self) -> bool {
        let readable = self.inner.app.reload_profiles().error.is_none();
        let was_broken = self.inner.profiles_broken.swap(!readable, Ordering::SeqCst);
        if !readable && !was_broken {
            self.notify(
                "profiles.toml cannot be read",
                "The menu keeps the last good profiles. Open KeyVault Proxy for what is wrong with the file.",
            );
        }
        readable
    }

    /// Tells the tray and the window that something changed.
    pub fn changed(&self) {
        self.inner.shell.changed();
    }

    pub fn notice(&self, level: Level, title: impl Into<String>, detail: impl Into<String>) {
        self.push_notice(level, title.into(), detail.into(), None, None);
    }

    /// A notice for a failure, with the engine's hint and the ids support asks for.
    pub(crate) fn error_notice(&self, title: impl Into<String>, error: UiError) {
        self.push_notice(
            Level::Error,
            title.into(),
            error.message,
            error.hint,
            error.support.map(|ids| *ids),
        );
    }

    fn push_notice(
        &self,
        level: Level,
        title: String,
        detail: String,
        hint: Option<String>,
        support: Option<crate::error::SupportIds>,
    ) {
        let id = self.inner.next_notice.fetch_add(1, Ordering::SeqCst);
        let mut notices = self.inner.notices.lock();
        notices.push(Notice {
            id,
            level,
            title,
            detail,
            hint,
            support,
        });
        // The window is not a log: old news goes.
        let excess = notices.len().saturating_sub(20);
        notices.drain(..excess);
    }

    pub fn dismiss(&self, id: u64) {
        self.inner.notices.lock().retain(|n| n.id != id);
    }

    pub fn status(&self) -> StatusView {
        let profiles = self.inner.app.profiles();
        let views = profiles
            .file
            .profiles
            .values()
            .map(|p| ProfileView {
                name: p.name.clone(),
                is_default: profiles.is_default(&p.name),
                demo: p.is_demo(),
                confirm: p.confirm,
                certificate_expires: self
                    .expiring(&p.name)
                    .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
                expires_in_days: self
                    .expiring(&p.name)
                    .map(|at| crate::expiry::days_left(at, time::OffsetDateTime::now_utc())),
                tenant: p.tenant.clone(),
                client_id: p.client_id.clone(),
                vault_url: p.vault_url.clone(),
                certificate: p.certificate.clone(),
                scope: p.scopes.first().cloned().unwrap_or_default(),
            })
            .collect();
        let port = self.listening_port();
        let settings = self.inner.settings.effective();
        StatusView {
            profiles: views,
            profiles_error: profiles.error.clone(),
            profiles_path: self.profile_store().path().display().to_string(),
            api: ApiView {
                running: port.is_some(),
                url: port.map(|p| format!("http://localhost:{p}")),
                port: port.unwrap_or(settings.port),
                key_source: self
                    .inner
                    .app
                    .api_key_source()
                    .describe(&kvproxy_app::invocation::cli_beside_this_program()),
            },
            tray: self.inner.tray,
            notices: self.inner.notices.lock().clone(),
            clipboard_clear_secs: settings.clipboard_clear_secs,
            questions: self.open_questions(),
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
        match AgentServer::start(self.inner.app.clone(), path).await {
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
        match self.inner.api.start().await {
            Ok(addrs) => {
                for addr in addrs {
                    crate::say(format!("api: listening on http://{addr}"));
                }
                true
            }
            Err(error) => {
                let title = format!("The API could not start on port {}", self.inner.api.next_port());
                eprintln!("api: {error}");
                self.notify(&title, "Tokens from the tray still work. Details in the window.");
                self.notice(
                    Level::Error,
                    title,
                    format!(
                        "{error}. Choose another port in Settings (or set KVPROXY_PORT and restart), or stop the other program and choose Resume API."
                    ),
                );
                false
            }
        }
    }

    /// Starts the API on `port` now, instead of where it listens (Settings); the error says why it could
    /// not listen there, and the API is then stopped.
    pub(crate) async fn restart_api_on(&self, port: u16) -> Result<(), String> {
        match self.inner.api.restart_on(port).await {
            Ok(addrs) => {
                for addr in addrs {
                    crate::say(format!("api: listening on http://{addr}"));
                }
                Ok(())
            }
            Err(error) => Err(format!("port {port} cannot be used: {error}")),
        }
    }

    pub async fn stop_api(&self) {
        self.inner.api.stop().await;
        crate::say("api: paused");
    }

    // ---- the tray's actions -------------------------------------------------------------------------------

    /// Does what a tray menu item (or the window's button for the same) says; what waits on the network runs
    /// on the runtime, so the tray's loop never waits.
    pub fn perform(&self, action: Action) {
        let desktop = self.clone();
        match action {
            Action::CopyToken(name) => {
                crate::runtime::spawn(async move {
                    let _ = desktop.copy_token(&name).await;
                });
            }
            Action::OpenWindow => self.inner.shell.open_window(),
            Action::CopyApiKey => {
                let _ = self.copy_api_key();
            }
            Action::PauseApi => {
                crate::runtime::spawn(async move {
                    desktop.stop_api().await;
                    desktop.changed();
                });
            }
            Action::ResumeApi => {
                crate::runtime::spawn(async move {
                    desktop.start_api().await;
                    desktop.changed();
                });
            }
            Action::Quit => self.inner.shell.quit(),
        }
    }

    // ---- tokens and the clipboard -----------------------------------------------------------------------

    /// Copies the profile's token (from the cache when it can) and says so in a notification; a failure is
    /// a notification with the short reason and a notice with the details.
    pub async fn copy_token(&self, name: &str) -> Result<(), UiError> {
        let request = TokenRequest {
            profile: Some(name),
            ..Default::default()
        };
        let token = match self.inner.app.token(request, &Caller::tray("Copy token")).await {
            Ok(token) => token,
            Err(error) => {
                let summary = error.summary();
                let error = UiError::from(error);
                self.fail(name, &summary, error.clone());
                return Err(error);
            }
        };
        let clear_after = self.inner.settings.effective().clipboard_clear_after();
        if let Err(error) = self.inner.shell.copy_secret(&token.access_token, clear_after) {
            self.fail(name, "clipboard unavailable", UiError::message(error.clone()));
            return Err(UiError::message(error));
        }
        let body = match clear_after {
            Some(delay) => format!("The clipboard is cleared in {} s.", delay.as_secs()),
            None => String::new(),
        };
        self.notify(&notify::token_copied(name, token.expires_on), &body);
        self.check_expiry_soon();
        crate::say(format!(
            "copied: token for {name}{}",
            if token.from_cache { " (cached)" } else { "" }
        ));
        Ok(())
    }

    fn fail(&self, profile: &str, reason: &str, error: UiError) {
        let title = format!("No token for {profile}");
        self.notify(&title, reason);
        self.error_notice(format!("{title}: {reason}"), error);
        self.changed();
    }

    /// The key the API accepts right now.
    pub fn api_key(&self) -> SecretString {
        self.inner.app.api_key()
    }

    pub fn copy_api_key(&self) -> Result<(), UiError> {
        let clear_after = self.inner.settings.effective().clipboard_clear_after();
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
                self.notice(Level::Error, "Could not copy the API key", error.clone());
                self.changed();
                Err(UiError::message(error))
            }
        }
    }

    // ---- the demo tenant --------------------------------------------------------------------------------

    /// "Try the demo tenant": starts it and saves the `demo` profile as the default.
    pub async fn start_demo(&self) -> Result<(), UiError> {
        let port = self
            .inner
            .app
            .start_demo(self.inner.demo_port)
            .await
            .map_err(|e| UiError::message(e.to_string()))?;
        crate::say(format!("demo: tenant running on 127.0.0.1:{port}"));
        // Runnable as shown: the CLI beside this app by its path when the PATH does not find it.
        let cli = kvproxy_app::invocation::cli_beside_this_program();
        self.notice(
            Level::Info,
            "The demo tenant is running",
            format!("Its tokens work only with it, not with Azure. From a terminal: {cli} token demo"),
        );
        self.changed();
        Ok(())
    }

    /// Starts the demo tenant at launch when a demo profile is saved.
    pub async fn demo_if_saved(&self) {
        self.inner.app.demo_if_saved().await;
    }

    pub async fn shutdown(&self) {
        self.inner.agent.lock().await.take();
        self.stop_api().await;
        self.inner.app.shutdown().await;
    }
}
