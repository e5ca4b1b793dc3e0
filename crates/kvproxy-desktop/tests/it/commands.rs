//! The window's commands as plain functions: a `Desktop` over a temp config dir and the emulator, with a
//! shell that records notifications and clipboard writes instead of showing them. No display, no Tauri app:
//! what the window does is tested here, how it looks in `window.rs`.

use kvproxy_app::Channel;
use kvproxy_core::{EmulatedApp, Profile, ProfileStore};
use kvproxy_desktop::editor::ProfileForm;
use kvproxy_desktop::preferences::SettingsForm;
use kvproxy_desktop::shell::Shell;
use kvproxy_desktop::state::{Desktop, DesktopOptions, Level};
use kvproxy_emulator::{CertificateVersion, Emulator, EmulatorConfig, Route};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SCOPE: &str = "api://kvproxy-e2e/.default";
const VAULT: &str = "cmdvault";

/// What the app asked of the desktop.
#[derive(Default)]
struct RecordingShell {
    notifications: Mutex<Vec<(String, String)>>,
    clipboard: Mutex<Vec<(String, Option<Duration>)>>,
    changes: AtomicUsize,
    autostart: Mutex<bool>,
    windows_opened: AtomicUsize,
    quits: AtomicUsize,
}

impl Shell for RecordingShell {
    fn notify(&self, summary: &str, body: &str) {
        self.notifications.lock().push((summary.into(), body.into()));
    }

    fn copy_secret(&self, secret: &kvproxy_core::SecretString, clear_after: Option<Duration>) -> Result<(), String> {
        self.clipboard.lock().push((secret.expose().to_string(), clear_after));
        Ok(())
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    fn autostart(&self) -> Option<bool> {
        Some(*self.autostart.lock())
    }

    fn set_autostart(&self, enabled: bool) -> Result<(), String> {
        *self.autostart.lock() = enabled;
        Ok(())
    }

    fn open_window(&self) {
        self.windows_opened.fetch_add(1, Ordering::SeqCst);
    }

    fn quit(&self) {
        self.quits.fetch_add(1, Ordering::SeqCst);
    }
}

impl RecordingShell {
    fn last_copy(&self) -> (String, Option<Duration>) {
        self.clipboard.lock().last().cloned().expect("something was copied")
    }
}

struct World {
    emulator: Emulator,
    client_id: String,
    cert: CertificateVersion,
    ca_file: PathBuf,
    dir: tempfile::TempDir,
    shell: Arc<RecordingShell>,
    desktop: Desktop,
}

impl World {
    /// An emulated tenant with one registered app certificate, and the app's state over an empty config
    /// dir whose settings let the OS pick the API's port.
    async fn start() -> World {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("the emulator starts");
        let client_id = emulator.create_app("KeyVault Proxy window");
        let cert = emulator.create_certificate(VAULT, "window-cert", "kvproxy-window");
        emulator.register_certificate(&client_id, &cert);
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, emulator.ca_pem()).expect("write the CA");
        std::fs::write(
            dir.path().join("settings.toml"),
            "port = 0\nclipboard_clear_secs = 30\n",
        )
        .expect("write settings");
        let shell = Arc::new(RecordingShell::default());
        let desktop = Desktop::new(
            shell.clone(),
            DesktopOptions {
                config_dir: dir.path().to_path_buf(),
                keyring: None,
                tray: true,
                env_overrides: false,
                demo_port: 0,
            },
        );
        World {
            emulator,
            client_id,
            cert,
            ca_file,
            dir,
            shell,
            desktop,
        }
    }

    fn profile(&self, name: &str) -> Profile {
        let app = EmulatedApp {
            tenant: self.emulator.tenant_id(),
            client_id: self.client_id.clone(),
            vault_url: self.emulator.vault_url(VAULT),
            certificate: self.cert.name.clone(),
            scope: SCOPE.into(),
            authority_host: self.emulator.authority_host(),
            ca_file: self.ca_file.clone(),
        };
        Profile::emulated(name, app)
    }

    /// What another program (the CLI) sees in the same directory.
    fn store(&self) -> ProfileStore {
        ProfileStore::new(self.dir.path().join("profiles.toml"))
    }

    /// Saves `name` the way the window does, from a form.
    fn save(&self, name: &str) {
        let form = ProfileForm::of(&self.profile(name));
        self.desktop.save_profile(&form, None).expect("a valid profile saves");
    }

    async fn api_base(&self) -> String {
        assert!(self.desktop.start_api().await, "the API starts");
        self.desktop.status().api.url.expect("the API listens")
    }
}

fn fields(errors: &[kvproxy_core::FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_checks_every_field_saves_renames_duplicates_and_deletes() {
    let w = World::start().await;
    let d = &w.desktop;
    let blank = ProfileForm::blank();
    assert_eq!((blank.algorithm.as_str(), blank.cloud.as_str()), ("PS256", "public"));

    // One wrong field: named, with its message, and nothing is written.
    let mut form = ProfileForm::of(&w.profile("api"));
    form.client_id = "not-a-guid".into();
    let errors = d.check_profile(&form, None);
    assert_eq!(fields(&errors), ["client_id"]);
    assert!(errors[0].message.contains("GUID"), "{errors:?}");
    let refused = d.save_profile(&form, None).unwrap_err();
    assert_eq!(fields(&refused.fields), ["client_id"]);
    assert!(
        !w.dir.path().join("profiles.toml").exists(),
        "a refused save writes nothing"
    );

    // Several wrong fields at once, each named; a choice that is not one is named too.
    form.tenant = "common".into();
    form.scopes = "api://x/read".into();
    assert_eq!(fields(&d.check_profile(&form, None)), ["tenant", "client_id", "scopes"]);
    let mut odd = form.clone();
    odd.algorithm = "HS256".into();
    assert_eq!(fields(&d.check_profile(&odd, None)), ["algorithm"]);

    // Fixed: saved, first profile is the default, the CLI's store sees it, the tray and window are told.
    let changes = w.shell.changes.load(Ordering::SeqCst);
    w.save("api");
    assert!(w.shell.changes.load(Ordering::SeqCst) > changes);
    assert_eq!(w.store().load().unwrap().default.as_deref(), Some("api"));
    let listed = d.status().profiles;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].is_default && listed[0].name == "api");

    // Round trip through the form: every field comes back, custom cloud included.
    let again = d.profile_form("api").unwrap();
    assert_eq!(again.to_profile().unwrap(), w.store().get("api").unwrap());
    assert!(again.authority_host.starts_with("https://login.localhost"), "{again:?}");

    // A new profile may not take an existing name; the edited one may keep its own.
    let same = ProfileForm::of(&w.profile("api"));
    assert_eq!(fields(&d.check_profile(&same, None)), ["name"]);
    assert!(d.check_profile(&same, Some("api")).is_empty());

    // Duplicate: a free name, saved as a new profile.
    assert_eq!(d.copy_name("api"), "api-copy");
    let mut copy = d.profile_form("api").unwrap();
    copy.name = d.copy_name("api");
    d.save_profile(&copy, None).unwrap();
    assert_eq!(d.copy_name("api"), "api-copy-2");

    // Rename keeps the default with it; set as default; delete.
    let mut renamed = d.profile_form("api").unwrap();
    renamed.name = "main".into();
    d.save_profile(&renamed, Some("api")).unwrap();
    let file = w.store().load().unwrap();
    assert_eq!(file.default.as_deref(), Some("main"));
    assert_eq!(file.profiles.keys().collect::<Vec<_>>(), ["api-copy", "main"]);
    d.set_default_profile("api-copy").unwrap();
    assert!(d.status().profiles.iter().any(|p| p.name == "api-copy" && p.is_default));
    d.delete_profile("main").unwrap();
    assert!(w.store().get("main").is_err());
    assert!(
        d.delete_profile("main").is_err(),
        "deleting what is gone is an error, not a no-op"
    );

    // A profile the CLI adds shows up once the file is read again (the watcher's job in the app).
    w.store().upsert(w.profile("from-cli"), false).unwrap();
    d.reload_profiles();
    assert!(d.status().profiles.iter().any(|p| p.name == "from-cli"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_token_decodes_the_token_uses_the_cache_and_logs_the_window() {
    let w = World::start().await;
    w.save("api");
    let d = &w.desktop;

    let first = d.get_token("api", None, false).await.unwrap();
    assert!(!first.from_cache && first.demo);
    assert_eq!(first.scope, SCOPE);
    let claim = |name: &str| first.claims.iter().find(|r| r.name == name).map(|r| r.value.clone());
    assert_eq!(claim("aud").as_deref(), Some("api://kvproxy-e2e"));
    assert_eq!(claim("appid").as_deref(), Some(w.client_id.as_str()));
    assert_eq!(first.claims[0].name, "aud", "the claims people look for come first");
    let exp = first.claims.iter().find(|r| r.name == "exp").and_then(|r| r.time);
    assert_eq!(exp, Some(first.expires_on));
    assert!(first.header.iter().any(|r| r.name == "alg"));
    assert_eq!(first.access_token.split('.').count(), 3);

    let cached = d.get_token("api", None, false).await.unwrap();
    assert!(cached.from_cache);
    assert_eq!(cached.access_token, first.access_token);
    let fresh = d.get_token("api", None, true).await.unwrap();
    assert!(!fresh.from_cache);
    assert_ne!(fresh.access_token, first.access_token);
    assert_eq!(
        w.emulator.count(Route::Token),
        2,
        "Skip cache asks Entra again; the cache does not"
    );

    let other = d.get_token("api", Some("api://other/.default"), false).await.unwrap();
    assert_eq!(other.scope, "api://other/.default");

    let records = d.activity();
    assert_eq!(records.len(), 4);
    assert!(
        records
            .iter()
            .all(|r| r.source == Channel::Window && r.action == "Get token" && r.status == 200),
        "{records:?}"
    );
    assert_eq!(records[0].profile.as_deref(), Some("api"));

    // Copy token: the shown token goes to the clipboard as a secret, cleared after the setting's delay.
    d.copy_secret(other.access_token.clone()).unwrap();
    assert_eq!(w.shell.last_copy(), (other.access_token, Some(Duration::from_secs(30))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_carries_what_support_asks_for() {
    let w = World::start().await;
    w.save("api");
    w.emulator.unregister_certificate(&w.client_id, &w.cert);
    let error = w.desktop.get_token("api", None, false).await.unwrap_err();
    let support = error.support.as_ref().expect("support ids");
    assert_eq!(support.aadsts, Some(700027));
    assert!(
        support.trace_id.is_some() && support.correlation_id.is_some(),
        "{error:?}"
    );
    assert!(error.hint.as_deref().is_some_and(|h| !h.is_empty()), "{error:?}");
    assert!(error.summary.starts_with("AADSTS700027"), "{}", error.summary);
    assert_eq!(w.desktop.activity()[0].status, 502);

    // Copy ids: plain text, not a secret, so never cleared.
    w.desktop.copy_text("Trace ID: x".into()).unwrap();
    assert_eq!(w.shell.last_copy(), ("Trace ID: x".to_string(), None));

    let bad_scope = w
        .desktop
        .get_token("api", Some("api://x/read"), false)
        .await
        .unwrap_err();
    assert_eq!(fields(&bad_scope.fields), ["scope"]);
    assert!(w.desktop.get_token("nope", None, false).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_info_shows_what_the_portal_shows_and_refreshes_from_key_vault() {
    let w = World::start().await;
    w.save("api");
    let info = w.desktop.key_info("api", false).await.unwrap();
    assert_eq!(info.key_id, w.cert.kid);
    assert_eq!(
        (info.x5t.as_str(), info.x5t_s256.as_str()),
        (w.cert.x5t.as_str(), w.cert.x5t_s256.as_str())
    );
    assert_eq!(info.sha1_hex.len(), 40);
    assert!(
        info.sha1_hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert!(info.subject.contains("kvproxy-window"), "{}", info.subject);
    assert!(info.days_left > 30 && !info.expires_soon, "{info:?}");
    let reads = w.emulator.count(Route::GetCertificate);
    w.desktop.key_info("api", false).await.unwrap();
    assert_eq!(w.emulator.count(Route::GetCertificate), reads, "cached");
    w.desktop.key_info("api", true).await.unwrap();
    assert_eq!(
        w.emulator.count(Route::GetCertificate),
        reads + 1,
        "Refresh from Key Vault reads it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_takes_effect_at_once_in_the_running_api() {
    let w = World::start().await;
    w.save("api");
    let base = w.api_base().await;
    let http = reqwest::Client::new();
    let get = |key: String| {
        let http = http.clone();
        let url = format!("{base}/api/profiles/api/token");
        async move { http.get(url).bearer_auth(key).send().await.unwrap().status().as_u16() }
    };
    let old = w.desktop.reveal_api_key();
    assert_eq!(old.len(), 43);
    assert_eq!(get(old.clone()).await, 200);
    w.desktop.rotate_api_key().unwrap();
    let new = w.desktop.reveal_api_key();
    assert_ne!(new, old);
    assert_eq!(get(old).await, 401);
    assert_eq!(get(new.clone()).await, 200);
    assert!(
        w.shell
            .notifications
            .lock()
            .iter()
            .any(|(title, _)| title == "API key rotated")
    );

    // Copy environment for Azure SDKs: what `kvproxy env` prints, with the new key and the real port.
    w.desktop.copy_sdk_environment(None, "sh").unwrap();
    let (text, _) = w.shell.last_copy();
    let port = base.rsplit(':').next().unwrap();
    assert!(
        text.contains(&format!("IDENTITY_ENDPOINT='http://localhost:{port}/msi/api/token'")),
        "{text}"
    );
    assert!(text.contains(&format!("IDENTITY_HEADER='{new}'")), "{text}");
    assert!(w.desktop.copy_sdk_environment(None, "tcsh").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_apply_at_once_persist_and_refuse_a_busy_port() {
    let w = World::start().await;
    w.save("api");
    let base = w.api_base().await;
    let http = reqwest::Client::new();
    let health = |url: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/health"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }
    };
    assert_eq!(health(base.clone()).await, Some(200));

    // A port another program holds: refused next to the field, nothing saved, the API stays where it was.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let form = |port: u16| SettingsForm {
        port,
        clipboard_clear_secs: 5,
        notifications: false,
        autostart: Some(true),
    };
    let refused = w.desktop.save_settings(form(busy_port)).await.unwrap_err();
    assert_eq!(fields(&refused.fields), ["port"]);
    assert!(refused.message.contains(&busy_port.to_string()), "{}", refused.message);
    assert_eq!(w.desktop.settings_view().port, 0);
    let settings_file = w.dir.path().join("settings.toml");
    assert!(
        !std::fs::read_to_string(&settings_file)
            .unwrap()
            .contains("notifications")
    );
    let still = w.desktop.status().api.url.expect("the API still listens");
    assert_eq!(health(still).await, Some(200));

    // A free port: the API moves there now, and everything else is saved and applied.
    drop(busy);
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let view = w.desktop.save_settings(form(free)).await.unwrap();
    assert_eq!(view.port, free);
    assert_eq!(
        view.listening.as_deref(),
        Some(format!("http://localhost:{free}").as_str())
    );
    assert_eq!(health(format!("http://localhost:{free}")).await, Some(200));
    assert_eq!(health(base).await, None, "the old port is closed");
    assert_eq!(view.autostart, Some(true));
    let saved = kvproxy_core::SettingsStore::new(settings_file).load().unwrap();
    assert_eq!(
        (saved.port, saved.clipboard_clear_secs, saved.notifications),
        (free, 5, false)
    );

    // Notifications off: a copy from the tray tells nobody, and the clipboard delay is the new one.
    let before = w.shell.notifications.lock().len();
    w.desktop.copy_token("api").await.unwrap();
    assert_eq!(w.shell.notifications.lock().len(), before);
    assert_eq!(w.shell.last_copy().1, Some(Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_stay_until_dismissed_and_are_bounded() {
    let w = World::start().await;
    for i in 0..25 {
        w.desktop.notice(Level::Warning, format!("notice {i}"), "detail");
    }
    let notices = w.desktop.status().notices;
    assert_eq!(notices.len(), 20, "the window is not a log");
    assert_eq!(notices[0].title, "notice 5", "the oldest go first");
    w.desktop.dismiss(notices[0].id);
    let left = w.desktop.status().notices;
    assert_eq!(left.len(), 19);
    assert!(left.iter().all(|n| n.id != notices[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_the_demo_tenant_saves_a_default_profile_that_gets_tokens() {
    let w = World::start().await;
    w.desktop.start_demo().await.unwrap();
    let profiles = w.desktop.status().profiles;
    assert_eq!(profiles.len(), 1);
    assert!(
        profiles[0].name == "demo" && profiles[0].is_default && profiles[0].demo,
        "{profiles:?}"
    );
    // The window says how to use it from a terminal, with a command that runs as shown: the CLI built
    // beside this test binary is not on the PATH, so it is named by its path.
    let notices = w.desktop.status().notices;
    let hint = notices
        .iter()
        .find(|n| n.title.contains("demo tenant is running"))
        .unwrap_or_else(|| panic!("no demo notice in {notices:?}"));
    assert_eq!(hint.level, Level::Info);
    let command = hint.detail.rsplit("From a terminal: ").next().unwrap_or_default();
    assert!(command.ends_with(" token demo"), "{}", hint.detail);
    let program = command.trim_end_matches(" token demo").trim_matches('\'');
    assert!(
        program == "kvproxy" || std::path::Path::new(program).is_file(),
        "not runnable as shown: {command}"
    );
    let token = w.desktop.get_token("demo", None, false).await.unwrap();
    assert!(token.demo && !token.from_cache);
    let info = w.desktop.key_info("demo", false).await.unwrap();
    assert!(info.key_id.contains("/keys/"), "{info:?}");
    w.desktop.shutdown().await;
}

/// The window runs as its own process and sends its commands as the web view names them; these are the
/// same commands, as JSON, through the same entry the desktop socket uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_s_wire_commands_reach_the_same_desktop() {
    let w = World::start().await;
    w.save("api");
    let d = &w.desktop;
    let call = |command: &str, args: serde_json::Value| serde_json::json!({ "command": command, "args": args });

    let status = d
        .answer_window_json(call("status", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(status["profiles"][0]["name"], "api");

    // Arguments arrive in the web view's camelCase.
    let token = d
        .answer_window_json(call(
            "get_token",
            serde_json::json!({ "name": "api", "scope": null, "skipCache": true }),
        ))
        .await
        .unwrap();
    assert_eq!(token["access_token"].as_str().map(|t| t.split('.').count()), Some(3));
    assert_eq!(token["from_cache"], false);

    // A failure is the error the window shows, with its field.
    let error = d
        .answer_window_json(call("profile_form", serde_json::json!({ "name": "nope" })))
        .await
        .unwrap_err();
    assert!(error["message"].as_str().is_some_and(|m| m.contains("nope")), "{error}");

    // The tray's actions from the window's buttons: Open and Quit go to the shell, an unknown id is refused.
    d.answer_window_json(call("run_action", serde_json::json!({ "action": "open" })))
        .await
        .unwrap();
    d.answer_window_json(call("run_action", serde_json::json!({ "action": "quit" })))
        .await
        .unwrap();
    assert_eq!(w.shell.windows_opened.load(Ordering::SeqCst), 1);
    assert_eq!(w.shell.quits.load(Ordering::SeqCst), 1);
    let unknown = d
        .answer_window_json(call("run_action", serde_json::json!({ "action": "format-disk" })))
        .await
        .unwrap_err();
    assert_eq!(unknown["fields"][0]["field"], "action", "{unknown}");

    // A command from another version of the window, or a wrong argument: an error that says so.
    for wrong in [
        call("launch_missiles", serde_json::json!({})),
        call("get_token", serde_json::json!({ "name": 7 })),
        call("status", serde_json::json!({ "extra": true })),
        serde_json::json!("status"),
    ] {
        let error = d.answer_window_json(wrong.clone()).await.unwrap_err();
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains("does not know")),
            "{wrong} -> {error}"
        );
    }
}

/// The window's Check: `kvproxy doctor`'s report for a saved profile, every step; an unknown profile is the
/// error the window shows. The answers to a program's question arrive the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_every_step_and_questions_are_answered_over_the_wire() {
    let w = World::start().await;
    w.save("api");
    let d = &w.desktop;
    let call = |command: &str, args: serde_json::Value| serde_json::json!({ "command": command, "args": args });

    let report = d
        .answer_window_json(call("check_setup", serde_json::json!({ "name": "api" })))
        .await
        .unwrap();
    assert_eq!(report["passed"], true, "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["pass"; 8], "{report}");
    assert!(!report.to_string().contains("eyJ"), "no token in the report");
    let error = d
        .answer_window_json(call("check_setup", serde_json::json!({ "name": "nope" })))
        .await
        .unwrap_err();
    assert!(error["message"].as_str().is_some_and(|m| m.contains("nope")), "{error}");

    // No question is open: an answer to one is refused quietly (false), and the status lists none.
    let answered = d
        .answer_window_json(call(
            "answer_question",
            serde_json::json!({ "id": 7, "decision": { "decision": "allow", "remember": "15m" } }),
        ))
        .await
        .unwrap();
    assert_eq!(answered, false);
    assert_eq!(d.status().questions.len(), 0);
    let wrong = d
        .answer_window_json(call(
            "answer_question",
            serde_json::json!({ "id": 7, "decision": { "decision": "allow", "remember": "forever" } }),
        ))
        .await
        .unwrap_err();
    assert!(error_text(&wrong).contains("forever"), "{wrong}");
    d.answer_window_json(call("forget_approvals", serde_json::json!({})))
        .await
        .unwrap();
}

fn error_text(error: &serde_json::Value) -> String {
    error["message"].as_str().unwrap_or_default().to_string()
}

/// A certificate that ends within 30 days: after a token, the profile is flagged in the status with the days
/// left, and the shell got one notification; looking again the same day adds none, and a profile whose
/// certificate has a year left is not flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_ending_within_thirty_days_is_flagged_and_told_once_a_day() {
    let w = World::start().await;
    w.save("api");
    let short = w.emulator.create_certificate_with(
        VAULT,
        "short-cert",
        "kvproxy-short",
        &kvproxy_emulator::CertificateOptions {
            expires: Some(time::OffsetDateTime::now_utc() + time::Duration::days(10)),
            ..Default::default()
        },
    );
    w.emulator.register_certificate(&w.client_id, &short);
    let mut form = ProfileForm::of(&w.profile("short"));
    form.certificate = "short-cert".into();
    w.desktop.save_profile(&form, None).expect("save short");
    let d = &w.desktop;
    d.get_token("short", None, false).await.expect("a token for short");
    d.get_token("api", None, false).await.expect("a token for api");

    d.check_expiry().await;
    let expiring = |name: &str| {
        let status = d.status();
        let view = status
            .profiles
            .into_iter()
            .find(|p| p.name == name)
            .expect("the profile");
        (view.expires_in_days, view.certificate_expires)
    };
    let (days, expires) = expiring("short");
    assert_eq!(days, Some(9), "10 days less the moments since, rounded down");
    assert!(expires.is_some());
    assert_eq!(expiring("api"), (None, None), "a year left is not flagged");
    let told = || {
        w.shell
            .notifications
            .lock()
            .iter()
            .filter(|(summary, _)| summary.starts_with("Certificate for"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let notices = told();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "Certificate for short expires in 9 days");
    assert!(notices[0].1.contains("kvproxy doctor short"), "{notices:?}");

    d.check_expiry().await;
    assert_eq!(told().len(), 1, "at most once a day");
    let book = std::fs::read_to_string(w.dir.path().join("expiry-notices.json")).expect("the notices book");
    assert!(book.contains("\"short\""), "{book}");

    // A restart the same day (a new app over the same config dir and keyring-less caches filled again by a
    // token) tells nothing new: the book on disk remembers the day.
    let restarted = Desktop::new(
        w.shell.clone(),
        DesktopOptions {
            config_dir: w.dir.path().to_path_buf(),
            keyring: None,
            tray: true,
            env_overrides: false,
            demo_port: 0,
        },
    );
    restarted
        .get_token("short", None, false)
        .await
        .expect("a token after the restart");
    restarted.check_expiry().await;
    assert_eq!(told().len(), 1, "not again after a restart the same day");

    // The next day, by the clock handed in, it is told again, a day closer.
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    d.check_expiry_at(tomorrow).await;
    let notices = told();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(notices[1].0, "Certificate for short expires in 8 days");

    // Notifications turned off: still flagged in the window, but the tray says nothing.
    d.save_settings(SettingsForm {
        port: 0,
        clipboard_clear_secs: 30,
        notifications: false,
        autostart: None,
    })
    .await
    .expect("notifications off");
    d.check_expiry_at(tomorrow + time::Duration::days(1)).await;
    assert_eq!(told().len(), 2, "no notice with notifications off");
    assert!(expiring("short").0.is_some(), "still flagged");
}
