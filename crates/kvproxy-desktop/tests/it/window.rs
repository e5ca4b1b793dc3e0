//! The window as a user drives it: the real app in a real WebKit window, through `tauri-driver` and
//! WebKitWebDriver, found by the names a screen reader would read (`<label for>` pairs, button texts). Each run
//! writes screenshots of every view to `target/screenshots/` (light and dark); `make screenshots` copies them
//! into `docs/`.

use crate::app::{App, Tenant, http_get, store, window_bin};
use crate::bus::{NotificationServer, TrayHost};
use crate::session::Session;
use crate::x11;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Longer than the harness's usual bound: a WebKit window, its network process and a WebDriver session start
/// on a loaded 2-core machine.
const UI_TIMEOUT: Duration = Duration::from_secs(30);

/// WebDriver's codes for the Enter and Escape keys.
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// `tauri-driver` from `KVPROXY_TAURI_DRIVER`, else where `make test` installs it.
fn tauri_driver() -> PathBuf {
    let path = std::env::var_os("KVPROXY_TAURI_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/tauri-driver/bin/tauri-driver")
        });
    assert!(
        path.exists(),
        "tauri-driver not found at {}: run `make test-deps` (or cargo install tauri-driver --version 2.1.0 --locked --root .tools/tauri-driver)",
        path.display()
    );
    path
}

/// Where screenshots go: `target/screenshots/`, beside the build the tests drive, never a tracked file.
fn screenshot_dir() -> PathBuf {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kvproxy-desktop"));
    let target = binary.parent().and_then(|p| p.parent()).expect("the target directory");
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The tray app, then `tauri-driver` in the session; tauri-driver starts WebKitWebDriver, which starts the
/// window program, which attaches to the tray app as the window the app itself would have started.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
    _app: App,
}

impl Driver {
    fn start(session: &Session, env: &[(&str, &str)]) -> Driver {
        let app = App::start_with_args(
            session,
            env!("CARGO_BIN_EXE_kvproxy-desktop").as_ref(),
            &["--no-window"],
            env,
        );
        app.wait_line("ready");
        let port = free_port();
        let log_path = session.dir().join(format!("tauri-driver-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("driver log");
        let child = session
            .command(tauri_driver())
            .args(["--port", &port.to_string(), "--native-port", &free_port().to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("driver log"))
            .stderr(log)
            .spawn()
            .expect("start tauri-driver");
        Driver {
            child,
            port,
            log: log_path,
            _app: app,
        }
    }

    async fn connect(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": window_bin(), "args": [] }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let mut builder = ClientBuilder::new(connector);
            builder.capabilities(capabilities.clone());
            let error = match tokio::time::timeout(UI_TIMEOUT, builder.connect(&url)).await {
                Ok(Ok(client)) => return client,
                Ok(Err(error)) => error.to_string(),
                Err(_) => "no answer".to_string(),
            };
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("no WebDriver session with the app: {error}\ntauri-driver's log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The window, as a user sees it: views reached by the navigation, controls found by their names.
struct Window<'a> {
    client: Client,
    session: &'a Session,
    theme: &'static str,
}

impl Window<'_> {
    fn view_xpath(&self, view: &str) -> String {
        format!("//section[@id='view-{view}']")
    }

    async fn find(&self, xpath: &str) -> Element {
        self.client
            .wait()
            .at_most(UI_TIMEOUT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("no element {xpath}: {e}"))
    }

    /// The button named `name` in `view` (or in an open dialog when `view` is `dialog`).
    async fn button(&self, view: &str, name: &str) -> Element {
        let scope = if view == "dialog" {
            "//dialog[@open]".to_string()
        } else {
            self.view_xpath(view)
        };
        self.find(&format!("{scope}//button[normalize-space()='{name}']")).await
    }

    /// Clicks the button once it is enabled, as a user can only then (a form disables its button while it
    /// waits for the app).
    async fn click(&self, view: &str, name: &str) {
        let button = self.button(view, name).await;
        self.enabled(&button, name).await;
        button.click().await.unwrap_or_else(|e| panic!("click {name}: {e}"));
    }

    async fn enabled(&self, button: &Element, name: &str) {
        self.until(&format!("{name} to be enabled"), || async {
            button.is_enabled().await.ok().filter(|enabled| *enabled)
        })
        .await;
    }

    /// The form control whose `<label for>` reads `label`, in `view`.
    async fn field(&self, view: &str, label: &str) -> Element {
        let scope = self.view_xpath(view);
        self.find(&format!(
            "{scope}//*[@id=({scope}//label[normalize-space()='{label}'])[1]/@for]"
        ))
        .await
    }

    async fn type_into(&self, view: &str, label: &str, text: &str) {
        let field = self.field(view, label).await;
        field.clear().await.unwrap_or_else(|e| panic!("clear {label}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {label}: {e}"));
    }

    async fn choose(&self, view: &str, label: &str, value: &str) {
        let field = self.field(view, label).await;
        field
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choose {value} in {label}: {e}"));
    }

    /// The message shown next to the field labelled `label`.
    async fn message_of(&self, view: &str, label: &str) -> String {
        let field = self.field(view, label).await;
        let id = field.attr("id").await.ok().flatten().expect("the field has an id");
        let script = "const d = document.getElementById(arguments[0]).closest('.field').querySelector('.field-error'); return d ? d.textContent : '';";
        let value = self
            .client
            .execute(script, vec![id.into()])
            .await
            .expect("read the field's message");
        value.as_str().unwrap_or_default().to_string()
    }

    async fn go(&self, view_name: &str) {
        self.find(&format!("//nav//button[normalize-space()='{view_name}']"))
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("open {view_name}: {e}"));
    }

    async fn text(&self, xpath: &str) -> String {
        self.find(xpath).await.text().await.unwrap_or_default()
    }

    /// Polls until `f` yields a value; a timeout names what never happened.
    async fn until<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            if let Some(value) = f().await {
                return value;
            }
            if Instant::now() >= deadline {
                self.screenshot("failure").await;
                let messages = self
                    .client
                    .execute(
                        "return [...document.querySelectorAll('.field-error, #editor-status')].map(e => e.id + '=' + e.textContent).filter(t => !t.endsWith('='));",
                        vec![],
                    )
                    .await;
                eprintln!("messages in the window: {messages:?}");
                panic!(
                    "timed out waiting for {what} (the window is in target/screenshots/{}-failure.png)",
                    self.theme
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The window as X11 shows it. Not WebDriver's screenshot command: WebKitWebDriver's snapshot can wait
    /// forever for a paint under Xvfb without GL.
    async fn screenshot(&self, view: &str) {
        let _ = self
            .client
            .execute("document.querySelector('main').scrollTo(0, 0);", vec![])
            .await;
        self.screenshot_where_it_is(view).await;
    }

    /// [`Self::screenshot`] without scrolling back to the top: for what the page itself scrolled to.
    async fn screenshot_where_it_is(&self, view: &str) {
        // Let the view settle (fonts, the countdown's first tick) so the picture shows what a user sees.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (id, _) = x11::windows(self.session)
            .into_iter()
            .find(|(_, title)| title == "KeyVault Proxy")
            .expect("the app's window");
        let path = screenshot_dir().join(format!("{}-{view}.png", self.theme));
        x11::screenshot_window(self.session, id, &path);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn the_window_manages_profiles_shows_tokens_and_rotates_the_key() {
    let session = Session::start();
    let _host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    let profile = tenant.profile("api");
    let driver = Driver::start(&session, &[("KVPROXY_PORT", "0")]);
    let token_requests = || tenant.emulator().count(kvproxy_emulator::Route::Token);

    runtime().block_on(async {
        let w = Window {
            client: driver.connect().await,
            session: &session,
            theme: "light",
        };
        w.find("//h2[normalize-space()='Profiles']").await;
        w.screenshot("welcome").await;

        // Add a profile with one wrong field: its message appears next to it and nothing is saved.
        w.click("profiles", "Add profile").await;
        w.type_into("profiles", "Name", "api").await;
        w.type_into("profiles", "Tenant", &profile.tenant).await;
        w.type_into("profiles", "Client ID", "not-a-guid").await;
        w.type_into("profiles", "Vault URL", &profile.vault_url).await;
        w.type_into("profiles", "Certificate", &profile.certificate).await;
        w.type_into("profiles", "Scope", &profile.scopes[0]).await;
        w.choose("profiles", "Cloud", "custom").await;
        let custom = profile.custom_cloud.clone().expect("the emulator is a custom cloud");
        w.type_into("profiles", "Authority host", &custom.authority_host).await;
        w.type_into("profiles", "Vault host suffixes", &custom.vault_suffixes.join(" "))
            .await;
        let ca = custom.ca_file.expect("a CA file").display().to_string();
        w.type_into("profiles", "CA certificate file", &ca).await;
        w.choose("profiles", "Credential", "emulator").await;
        w.click("profiles", "Save").await;
        let message = w
            .until("the client id's message", || async {
                Some(w.message_of("profiles", "Client ID").await).filter(|m| !m.is_empty())
            })
            .await;
        assert!(message.contains("GUID"), "{message}");
        assert!(
            w.message_of("profiles", "Tenant").await.is_empty(),
            "only the wrong field has a message"
        );
        assert!(
            store(&session).load().map(|f| f.profiles.is_empty()).unwrap_or(true),
            "nothing saved"
        );
        w.screenshot("profile-error").await;

        // Fixed and saved: the file has it, the list shows it as the default.
        // Fixed, and saved from the keyboard: Enter in a field submits the form.
        w.type_into("profiles", "Client ID", &profile.client_id).await;
        w.enabled(&w.button("profiles", "Save").await, "Save").await;
        w.field("profiles", "Client ID")
            .await
            .send_keys(ENTER)
            .await
            .expect("press Enter");
        w.until("the saved profile", || async { store(&session).get("api").ok() })
            .await;
        w.find("//ul[@id='profile-list']//button[contains(., 'api') and contains(., 'default')]")
            .await;
        w.screenshot("profiles").await;

        // Get token: the decoded audience, and a countdown that moves.
        w.go("Token").await;
        w.click("token", "Get token").await;
        let aud = "//tbody[@id='claims']//tr[th[normalize-space()='aud']]/td";
        let audience = w.text(aud).await;
        assert!(audience.starts_with("api://kvproxy-e2e"), "{audience}");
        let first = w.text("//*[@id='countdown']").await;
        w.until("the countdown to move", || async {
            let now = w.text("//*[@id='countdown']").await;
            (now != first && !now.is_empty()).then_some(())
        })
        .await;
        assert_eq!(token_requests(), 1);
        w.screenshot("token").await;

        // Key info, from the cache the token just filled.
        w.go("Key info").await;
        let key_id = w
            .text("//tbody[@id='key-rows']//tr[th[normalize-space()='Key id']]/td")
            .await;
        assert!(key_id.contains("/keys/e2e-cert/"), "{key_id}");
        w.screenshot("keyinfo").await;

        // Activity lists the window's request.
        w.go("Activity").await;
        let row = w.text("//tbody[@id='activity-rows']/tr[1]").await;
        assert!(
            row.contains("window") && row.contains("api") && row.contains("200"),
            "{row}"
        );
        w.screenshot("activity").await;

        // Rotate the key: the running API takes the new one at once, the old one gets 401.
        w.go("Settings").await;
        w.click("settings", "Reveal").await;
        let key_field = w.field("settings", "API key").await;
        let old = w
            .until("the revealed key", || async {
                key_field.prop("value").await.ok().flatten().filter(|v| v.len() == 43)
            })
            .await;
        let api_line = w.text("//*[@id='api-line']").await;
        let base = api_line
            .split_whitespace()
            .find(|word| word.starts_with("http://localhost:"))
            .expect("the API's address in Settings")
            .to_string();
        let http = reqwest::Client::new();
        let status = |key: String| {
            let request = http.get(format!("{base}/api/profiles/api/token")).bearer_auth(key);
            async move { request.send().await.expect("the API answers").status().as_u16() }
        };
        assert_eq!(status(old.clone()).await, 200);
        w.screenshot("settings").await;
        w.click("settings", "Rotate").await;
        w.click("dialog", "Yes, rotate").await;
        let new = w
            .until("the rotated key", || async {
                key_field
                    .prop("value")
                    .await
                    .ok()
                    .flatten()
                    .filter(|v| v.len() == 43 && *v != old)
            })
            .await;
        assert_eq!(status(old).await, 401);
        assert_eq!(status(new).await, 200);

        // Start at login: the desktop's own autostart entry appears.
        w.field("settings", "Start at login")
            .await
            .click()
            .await
            .expect("tick Start at login");
        w.click("settings", "Save settings").await;
        let autostart = session.dir().join("home/.config/autostart");
        w.until("an autostart entry", || async {
            std::fs::read_dir(&autostart)
                .ok()?
                .flatten()
                .find(|e| e.path().extension().is_some_and(|x| x == "desktop"))
        })
        .await;

        // Delete asks first, then the profile is gone from the file.
        w.go("Profiles").await;
        w.find("//ul[@id='profile-list']//button[contains(., 'api')]")
            .await
            .click()
            .await
            .expect("select api");
        // Check: every step of a token tried afresh, each shown with its status in words.
        w.click("profiles", "Check").await;
        let summary = w.text("//section[@id='check-report'][not(@hidden)]//h3").await;
        assert_eq!(summary, "All 8 checks passed");
        let steps = w
            .client
            .find_all(Locator::XPath("//ol[@id='check-steps']/li[contains(@class, 'pass')]"))
            .await
            .expect("the report's steps");
        assert_eq!(steps.len(), 8);
        w.screenshot_where_it_is("check").await;
        // Delete asks first; Escape says no.
        w.click("profiles", "Delete").await;
        w.button("dialog", "Cancel").await;
        w.client
            .active_element()
            .await
            .expect("the focused button")
            .send_keys(ESCAPE)
            .await
            .expect("press Escape");
        w.until("the dialog to close", || async {
            w.client
                .find(Locator::XPath("//dialog[@open]"))
                .await
                .is_err()
                .then_some(())
        })
        .await;
        assert!(store(&session).get("api").is_ok(), "Escape deletes nothing");
        w.click("profiles", "Delete").await;
        w.click("dialog", "Yes, delete").await;
        w.until("the profile to be deleted", || async {
            store(&session).get("api").is_err().then_some(())
        })
        .await;
        w.client.close().await.expect("end the WebDriver session");
    });
    drop(driver);
    drop(tenant);
}

#[test]
fn every_view_in_dark() {
    let session = Session::start();
    let _host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    store(&session)
        .upsert(tenant.profile("api"), false)
        .expect("save a profile");
    let driver = Driver::start(&session, &[("KVPROXY_PORT", "0"), ("GTK_THEME", "Adwaita:dark")]);

    runtime().block_on(async {
        let w = Window {
            client: driver.connect().await,
            session: &session,
            theme: "dark",
        };
        // The window follows the desktop's dark preference.
        let dark = w
            .client
            .execute("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![])
            .await
            .expect("ask the page");
        assert_eq!(dark, serde_json::Value::Bool(true));
        w.find("//ul[@id='profile-list']//button[contains(., 'api')]").await;
        w.field("profiles", "Client ID").await;
        w.screenshot("profiles").await;
        w.go("Token").await;
        w.click("token", "Get token").await;
        w.text("//tbody[@id='claims']//tr[th[normalize-space()='aud']]/td")
            .await;
        w.screenshot("token").await;
        w.go("Key info").await;
        w.text("//tbody[@id='key-rows']//tr[th[normalize-space()='Key id']]/td")
            .await;
        w.screenshot("keyinfo").await;
        w.go("Activity").await;
        w.text("//tbody[@id='activity-rows']/tr[1]").await;
        w.screenshot("activity").await;
        w.go("Settings").await;
        w.find("//*[@id='api-line'][contains(., 'Listening')]").await;
        w.screenshot("settings").await;
        w.client.close().await.expect("end the WebDriver session");
    });
    drop(driver);
    drop(tenant);
}

/// A program asks for the token of a profile that asks first, with the window open and notifications without
/// buttons: the window shows the question (program, profile, scope), the user picks how long and clicks
/// Allow, and the waiting request gets its token.
#[test]
fn a_question_shows_in_the_window_and_allow_lets_the_program_through() {
    const KEY: &str = "window-question-key-0123456789-abcdefghijk";
    let session = Session::start();
    let _host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    let mut profile = tenant.profile("asking");
    profile.confirm = true;
    store(&session).upsert(profile, false).expect("save a confirm profile");
    let driver = Driver::start(&session, &[("KVPROXY_PORT", "0"), ("KVPROXY_API_KEY", KEY)]);
    let port = driver._app.api_port();

    runtime().block_on(async {
        let w = Window {
            client: driver.connect().await,
            session: &session,
            theme: "light",
        };
        w.find("//ul[@id='profile-list']//button[contains(., 'asking')][contains(., 'asks first')]")
            .await;
        let waiting = std::thread::spawn(move || http_get(port, "/api/profiles/asking/token", Some(KEY)));
        let title = w
            .text("//dialog[@id='question'][@open]//h3[@id='question-title']")
            .await;
        assert_eq!(title, "Allow a token for asking?");
        let question = w.text("//dialog[@id='question'][@open]//p[@id='question-text']").await;
        assert!(
            question.contains(&format!("(pid {})", std::process::id())),
            "{question}"
        );
        assert!(question.contains("api://"), "{question}");
        w.screenshot("question").await;
        w.find("//dialog[@open]//select[@id='question-remember']")
            .await
            .select_by_value("15m")
            .await
            .expect("choose 15 minutes");
        w.click("dialog", "Allow").await;
        let (status, body) = waiting.join().expect("the request thread").expect("the API answers");
        assert_eq!(status, 200, "{body}");
        w.until("the dialog to close", || async {
            let open = w
                .client
                .execute("return document.getElementById('question').open;", vec![])
                .await
                .ok()?;
            (open == serde_json::Value::Bool(false)).then_some(())
        })
        .await;
        w.client.close().await.expect("end the WebDriver session");
    });
    drop(driver);
    drop(tenant);
}
