//! The real `kvproxy-desktop` binary, driven as a panel and a user would: the tray menu over
//! `com.canonical.dbusmenu`, the clipboard with xclip, notifications on the private bus, windows on Xvfb, and
//! tokens from the emulator over real HTTPS.

use crate::bus::{DbusMenu, NotificationServer, TrayHost};
use crate::session::Session;
use crate::{TIMEOUT, wait_until, x11};
use kvproxy_core::{CloudName, CredentialSource, EmulatedApp, Profile, ProfileStore, SigningAlgorithm};
use kvproxy_emulator::{Emulator, EmulatorConfig, Route};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

const SCOPE: &str = "api://kvproxy-e2e/.default";

/// The app as a child process whose stdout lines (its status lines, never a token) the test can wait on.
pub struct App {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
}

impl App {
    pub fn start(session: &Session, env: &[(&str, &str)]) -> App {
        App::start_binary(session, env!("CARGO_BIN_EXE_kvproxy-desktop").as_ref(), env)
    }

    pub fn start_binary(session: &Session, binary: &std::path::Path, env: &[(&str, &str)]) -> App {
        App::start_with_args(session, binary, &[], env)
    }

    pub fn start_with_args(session: &Session, binary: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> App {
        let stderr = session.dir().join(format!("app-{}.err", std::process::id()));
        let mut command = session.command(binary);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("create the app's stderr file"));
        let mut child = command.spawn().expect("start kvproxy-desktop");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("the app's stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("app lines").push(line);
            }
        });
        App { child, lines, stderr }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("app lines").clone()
    }

    /// Waits for a stdout line starting with `prefix` and returns it.
    pub fn wait_line(&self, prefix: &str) -> String {
        self.wait_nth_line(prefix, 1)
    }

    /// Waits until `n` lines starting with `prefix` were printed and returns the last.
    pub fn wait_nth_line(&self, prefix: &str, n: usize) -> String {
        let what = format!("line #{n} starting with {prefix:?} from the app");
        crate::try_wait_until(TIMEOUT, || {
            let matching: Vec<String> = self.lines().into_iter().filter(|l| l.starts_with(prefix)).collect();
            (matching.len() >= n).then(|| matching[n - 1].clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}; stdout: {:#?}\nstderr: {}",
                self.lines(),
                self.stderr()
            )
        })
    }

    pub fn count_lines(&self, prefix: &str) -> usize {
        self.lines().iter().filter(|l| l.starts_with(prefix)).count()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The API's port from `api: listening on http://127.0.0.1:PORT`.
    pub fn api_port(&self) -> u16 {
        let line = self.wait_line("api: listening on http://127.0.0.1:");
        line.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the listening line")
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        crate::try_wait_until(TIMEOUT, || self.child.try_wait().expect("poll the app")).unwrap_or_else(|| {
            panic!(
                "the app did not exit; stdout: {:#?}\nstderr: {}",
                self.lines(),
                self.stderr()
            )
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll the app").is_none()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An emulated tenant with one app whose certificate is registered, and profiles that use it.
pub struct Tenant {
    runtime: tokio::runtime::Runtime,
    emulator: Option<Emulator>,
    client_id: String,
    ca_file: PathBuf,
}

impl Tenant {
    pub fn start(session: &Session) -> Tenant {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the emulator");
        let emulator = runtime
            .block_on(Emulator::start(EmulatorConfig::default()))
            .expect("start the emulator");
        let client_id = emulator.create_app("KeyVault Proxy E2E");
        let cert = emulator.create_certificate("e2evault", "e2e-cert", "kvproxy-e2e");
        emulator.register_certificate(&client_id, &cert);
        std::fs::create_dir_all(session.config_dir()).expect("create the config dir");
        let ca_file = session.config_dir().join("e2e-ca.pem");
        std::fs::write(&ca_file, emulator.ca_pem()).expect("write the emulator CA");
        Tenant {
            runtime,
            emulator: Some(emulator),
            client_id,
            ca_file,
        }
    }

    pub fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("the emulator runs")
    }

    pub fn profile(&self, name: &str) -> Profile {
        let emulator = self.emulator();
        let app = EmulatedApp {
            tenant: emulator.tenant_id(),
            client_id: self.client_id.clone(),
            vault_url: emulator.vault_url("e2evault"),
            certificate: "e2e-cert".into(),
            scope: SCOPE.into(),
            authority_host: emulator.authority_host(),
            ca_file: self.ca_file.clone(),
        };
        Profile::emulated(name, app)
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            self.runtime.block_on(emulator.shutdown());
        }
    }
}

pub fn store(session: &Session) -> ProfileStore {
    ProfileStore::new(session.config_dir().join("profiles.toml"))
}

/// A profile on Azure's public cloud: enough for the menu, never asked for a token.
fn public_profile(name: &str) -> Profile {
    Profile {
        name: name.into(),
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: "0b4c5f4e-1111-2222-3333-444455556666".into(),
        vault_url: "https://contoso-kv.vault.azure.net/".into(),
        certificate: "api-cert".into(),
        scopes: vec!["api://my-api/.default".into()],
        algorithm: SigningAlgorithm::PS256,
        cloud: CloudName::Public,
        custom_cloud: None,
        credential: CredentialSource::Auto,
        confirm: false,
    }
}

/// The window program the workspace build puts next to the app (the app starts it from there).
pub fn window_bin() -> PathBuf {
    let app = PathBuf::from(env!("CARGO_BIN_EXE_kvproxy-desktop"));
    let window = app.with_file_name("kvproxy-window");
    assert!(
        window.exists(),
        "{} is missing: build it with `cargo build -p kvproxy-window` (make test does)",
        window.display()
    );
    window
}

/// The `kvproxy` CLI the workspace build puts next to the app.
fn kvproxy_bin() -> PathBuf {
    let app = PathBuf::from(env!("CARGO_BIN_EXE_kvproxy-desktop"));
    let cli = app.with_file_name("kvproxy");
    assert!(
        cli.exists(),
        "{} is missing: build it with `cargo build -p kvproxy-cli` (cargo test --workspace does)",
        cli.display()
    );
    cli
}

/// A GET on the app's API, as curl would send it; `None` when nothing listens. The answer may wait for the
/// user (a profile that asks first), so it is waited for as long as a question can stay open.
pub fn http_get(port: u16, path: &str, api_key: Option<&str>) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(kvproxy_app::approval::CONFIRM_TIMEOUT))
        .ok()?;
    let auth = api_key.map(|k| format!("X-Api-Key: {k}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

pub fn is_jwt(text: &str) -> bool {
    text.starts_with("eyJ") && text.split('.').count() == 3
}

fn menu_labels(menu: &DbusMenu) -> Vec<String> {
    menu.items()
        .into_iter()
        .filter(|i| i.visible)
        .map(|i| if i.separator { "---".into() } else { i.label })
        .collect()
}

pub fn tray_menu(session: &Session, host: &TrayHost) -> DbusMenu {
    host.wait_for_item(TIMEOUT).menu(&session.bus())
}

#[test]
fn tray_copies_a_token_that_the_api_serves_from_the_same_cache() {
    let session = Session::start();
    let host = TrayHost::serve(&session);
    let notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    store(&session)
        .upsert(tenant.profile("my_api"), false)
        .expect("save my_api");
    store(&session)
        .upsert(tenant.profile("eu.prod-2"), false)
        .expect("save eu.prod-2");
    let app = App::start(
        &session,
        &[("KVPROXY_PORT", "0"), ("KVPROXY_CLIPBOARD_CLEAR_SECS", "2")],
    );

    let menu = tray_menu(&session, &host);
    let expected = [
        "Copy token — my_api",
        "Copy token — eu.prod-2",
        "---",
        "Open KeyVault Proxy",
        "Copy API key",
        "Pause API",
        "Quit",
    ];
    wait_until("the full tray menu", TIMEOUT, || {
        (menu_labels(&menu) == expected).then_some(())
    });
    assert!(
        x11::windows(&session).is_empty(),
        "with profiles saved the app starts in the tray only"
    );

    // Copy token: a JWT on the clipboard, marked as a secret, and a notification with the local expiry.
    menu.click_label("Copy token — my_api");
    let token = wait_until("a token on the clipboard", TIMEOUT, || {
        x11::clipboard_text(&session).filter(|t| is_jwt(t))
    });
    let claims = kvproxy_core::decode_claims(&token).expect("the token's claims");
    assert_eq!(claims["appid"], tenant.client_id, "{claims}");
    assert_eq!(claims["tid"], tenant.emulator().tenant_id(), "{claims}");
    assert_eq!(claims["aud"], "api://kvproxy-e2e", "{claims}");
    let targets = x11::clipboard_targets(&session);
    assert!(
        targets.iter().any(|t| t == "x-kde-passwordManagerHint"),
        "the token is not marked as a secret: {targets:?}"
    );
    let note = notifications.wait_for(|n| n.summary.starts_with("Token for my_api copied"), TIMEOUT);
    // "14:32" today; near midnight the expiry is tomorrow and names its day ("Tue 8 Dec 00:36").
    let until = note.summary.rsplit("valid until ").next().unwrap_or_default();
    let clock = until.rsplit(' ').next().unwrap_or_default();
    assert!(
        clock.len() == 5 && clock.as_bytes()[2] == b':' && clock.replace(':', "").parse::<u32>().is_ok(),
        "expected HH:MM in {:?}",
        note.summary
    );
    assert!(
        until == clock || until.split(' ').count() == 4,
        "expected HH:MM or DAY D MON HH:MM in {:?}",
        note.summary
    );
    assert!(note.body.contains("cleared in 2 s"), "{note:?}");

    // The API key from the tray, and the API serves the very same token: one sign for both.
    menu.click_label("Copy API key");
    let api_key = wait_until("the API key on the clipboard", TIMEOUT, || {
        x11::clipboard_text(&session).filter(|t| t.len() == 43 && !is_jwt(t))
    });
    let port = app.api_port();
    let (status, body) = http_get(port, "/api/profiles/my_api/token?format=raw", Some(&api_key)).expect("API answers");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.trim(),
        token,
        "the API minted another token instead of serving the cached one"
    );
    assert_eq!(tenant.emulator().count(Route::Sign), 1, "tray and API share one sign");
    assert_eq!(tenant.emulator().count(Route::Token), 1);
    // `kvproxy token` asks the app over its agent socket and prints the same cached token.
    let cli = session
        .command(kvproxy_bin())
        .args(["token", "my_api"])
        .output()
        .expect("run kvproxy token");
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), token);
    assert_eq!(
        tenant.emulator().count(Route::Sign),
        1,
        "the CLI was served from the app's cache"
    );
    assert_eq!(
        http_get(port, "/api/profiles/my_api/token", None).map(|r| r.0),
        Some(401)
    );

    // The API key leaves the clipboard after the delay.
    wait_until("the clipboard to be cleared", TIMEOUT, || {
        x11::clipboard_text(&session).is_none().then_some(())
    });
    app.wait_line("clipboard: cleared");

    // A cached token is copied again without a sign; what the user copies next is left alone.
    menu.click_label("Copy token — my_api");
    app.wait_line("copied: token for my_api (cached)");
    assert_eq!(x11::clipboard_text(&session).as_deref(), Some(token.as_str()));
    x11::set_clipboard(&session, "the user's own text");
    app.wait_line("clipboard: left alone");
    assert_eq!(x11::clipboard_text(&session).as_deref(), Some("the user's own text"));
    assert_eq!(tenant.emulator().count(Route::Sign), 1);
}

#[test]
fn menu_follows_the_cli_and_a_broken_file_keeps_it() {
    let session = Session::start();
    let host = TrayHost::serve(&session);
    let notifications = NotificationServer::serve(&session);
    store(&session)
        .upsert(public_profile("alpha"), false)
        .expect("save alpha");
    let app = App::start(&session, &[("KVPROXY_PORT", "0")]);
    let menu = tray_menu(&session, &host);
    menu.wait_for_labels(|l| l.first().map(String::as_str) == Some("Copy token — alpha"), TIMEOUT);

    let status = session
        .command(kvproxy_bin())
        .args(["profile", "add", "new_one", "--tenant", "contoso.onmicrosoft.com"])
        .args(["--client-id", "0b4c5f4e-1111-2222-3333-444455556666"])
        .args([
            "--vault-url",
            "https://contoso-kv.vault.azure.net/",
            "--certificate",
            "api-cert",
        ])
        .args(["--scope", "api://my-api/.default", "--default"])
        .status()
        .expect("run kvproxy profile add");
    assert!(status.success());
    let labels = menu.wait_for_labels(|l| l.iter().any(|x| x == "Copy token — new_one"), TIMEOUT);
    assert_eq!(
        labels[..2],
        ["Copy token — new_one", "Copy token — alpha"],
        "the new default comes first"
    );

    // A file that does not parse leaves the last good menu.
    let path = session.config_dir().join("profiles.toml");
    let good = std::fs::read_to_string(&path).expect("read profiles.toml");
    std::fs::write(&path, "[profiles.broken\n").expect("break profiles.toml");
    app.wait_line("profiles: unreadable, menu kept");
    notifications.wait_for(|n| n.summary == "profiles.toml cannot be read", TIMEOUT);
    assert_eq!(menu_labels(&menu)[..2], ["Copy token — new_one", "Copy token — alpha"]);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "[profiles.broken\n",
        "the broken file is kept"
    );

    let fixed = good.replace("[profiles.alpha]", "[profiles.beta]");
    std::fs::write(&path, fixed).expect("fix profiles.toml");
    menu.wait_for_labels(
        |l| l.iter().any(|x| x == "Copy token — beta") && !l.iter().any(|x| x.ends_with("alpha")),
        TIMEOUT,
    );

    // Pause closes the port, Resume opens the same one again.
    let port = app.api_port();
    assert_eq!(http_get(port, "/health", None).map(|r| r.0), Some(200));
    menu.click_label("Pause API");
    menu.wait_for_labels(|l| l.iter().any(|x| x == "Resume API"), TIMEOUT);
    wait_until("the API port to close", TIMEOUT, || {
        http_get(port, "/health", None).is_none().then_some(())
    });
    menu.click_label("Resume API");
    menu.wait_for_labels(|l| l.iter().any(|x| x == "Pause API"), TIMEOUT);
    assert_eq!(
        app.wait_nth_line("api: listening on http://127.0.0.1:", 2),
        format!("api: listening on http://127.0.0.1:{port}")
    );
    assert_eq!(http_get(port, "/health", None).map(|r| r.0), Some(200));
}

#[test]
fn busy_port_second_start_window_and_quit() {
    let session = Session::start();
    let host = TrayHost::serve(&session);
    let notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    store(&session).upsert(tenant.profile("api"), false).expect("save api");
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("take a port");
    let port = squatter.local_addr().expect("port").port().to_string();
    let mut app = App::start(&session, &[("KVPROXY_PORT", &port)]);
    let menu = tray_menu(&session, &host);

    // The port is taken: a notification says so, the menu offers Resume, and tokens still come.
    notifications.wait_for(
        |n| n.summary == format!("The API could not start on port {port}"),
        TIMEOUT,
    );
    menu.wait_for_labels(|l| l.iter().any(|x| x == "Resume API"), TIMEOUT);
    menu.click_label("Copy token — api");
    wait_until("a token on the clipboard", TIMEOUT, || {
        x11::clipboard_text(&session).filter(|t| is_jwt(t))
    });

    // A certificate the app registration does not know: the notification gives the short reason.
    tenant.emulator().create_certificate("e2evault", "stray-cert", "stray");
    let mut stray = tenant.profile("stray");
    stray.certificate = "stray-cert".into();
    store(&session).upsert(stray, false).expect("save stray");
    menu.wait_for_labels(|l| l.iter().any(|x| x == "Copy token — stray"), TIMEOUT);
    menu.click_label("Copy token — stray");
    let failure = notifications.wait_for(|n| n.summary == "No token for stray", TIMEOUT);
    assert_eq!(failure.body, "AADSTS700027: certificate not registered");

    // A second start hands over to the first (which shows its window) and exits 0.
    let second = session
        .command(env!("CARGO_BIN_EXE_kvproxy-desktop"))
        .env("KVPROXY_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run a second instance");
    assert!(second.success(), "second instance: {second}");
    app.wait_line("second start: showing the window");
    let (window, _) = wait_until("the window", TIMEOUT, || {
        x11::windows(&session)
            .into_iter()
            .find(|(_, title)| title == "KeyVault Proxy")
    });
    assert!(app.is_running());

    // The window is a process of its own: WebKit (and GTK) are loaded there, never in the tray process.
    let maps = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let tray_maps = maps(app.pid());
    assert!(!tray_maps.is_empty(), "the tray process's maps are readable");
    for library in ["libwebkit2gtk", "libjavascriptcoregtk", "libgtk-3"] {
        assert!(!tray_maps.contains(library), "the tray process has {library} mapped");
    }
    let window_pid = wait_until("the window process", TIMEOUT, || {
        crate::measure::process_tree(app.pid())
            .into_iter()
            .find(|(_, name)| name == "kvproxy-window")
            .map(|(pid, _)| pid)
    });
    assert!(
        maps(window_pid).contains("libwebkit2gtk"),
        "the window process draws with WebKit"
    );

    // Closing the window leaves the app in the tray; Quit ends it with 0.
    x11::close_window(&session, window);
    wait_until("the window to close", TIMEOUT, || {
        (!x11::windows(&session).iter().any(|(_, t)| t == "KeyVault Proxy")).then_some(())
    });
    assert!(
        app.is_running(),
        "closing the window ended the tray app; stderr: {}",
        app.stderr()
    );
    // Neither the window's process nor WebKit's helpers outlive the window: the tray app alone is left.
    wait_until("the window's processes to end", TIMEOUT, || {
        (crate::measure::process_tree(app.pid()).len() == 1).then_some(())
    });
    assert!(
        app.is_running(),
        "the app ended with its window's helpers; stderr: {}",
        app.stderr()
    );
    menu.click_label("Quit");
    let status = app.wait_exit();
    assert!(status.success(), "Quit exited with {status}; stderr: {}", app.stderr());
    drop(squatter);
}

#[test]
fn without_a_tray_host_the_window_is_the_way_in() {
    let session = Session::start();
    let _notifications = NotificationServer::serve(&session);
    store(&session)
        .upsert(public_profile("alpha"), false)
        .expect("save alpha");
    let mut app = App::start(&session, &[("KVPROXY_PORT", "0")]);
    app.wait_line("tray: no StatusNotifierWatcher");
    let (window, _) = wait_until("the window", TIMEOUT, || {
        x11::windows(&session)
            .into_iter()
            .find(|(_, title)| title == "KeyVault Proxy")
    });
    x11::close_window(&session, window);
    let status = app.wait_exit();
    assert!(
        status.success(),
        "closing the only way in should quit cleanly: {status}; {}",
        app.stderr()
    );
}

#[test]
fn first_start_opens_the_window() {
    let session = Session::start();
    let host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);
    let _app = App::start(&session, &[("KVPROXY_PORT", "0")]);
    let menu = tray_menu(&session, &host);
    assert_eq!(
        menu.wait_for_labels(|l| l.len() == 4, TIMEOUT),
        ["Open KeyVault Proxy", "Copy API key", "Pause API", "Quit"]
    );
    wait_until("the first-start window", TIMEOUT, || {
        x11::windows(&session)
            .into_iter()
            .find(|(_, title)| title == "KeyVault Proxy")
    });
}

#[test]
fn demo_profile_uses_a_running_kvproxy_demo_then_its_own_tenant() {
    let session = Session::start();
    let host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);

    // `kvproxy demo` on a free port saves the demo profile and its CA.
    let mut demo = session
        .command(kvproxy_bin())
        .args(["demo", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kvproxy demo");
    let mut banner = BufReader::new(demo.stdout.take().expect("demo stdout"));
    let mut first = String::new();
    banner.read_line(&mut first).expect("the demo banner");
    assert!(first.contains("DEMO tenant is running"), "{first}");
    std::thread::spawn(move || for _ in banner.lines() {});
    wait_until("the demo profile", TIMEOUT, || store(&session).get("demo").ok());

    let app = App::start(&session, &[("KVPROXY_PORT", "0")]);
    let menu = tray_menu(&session, &host);
    menu.wait_for_labels(|l| l.iter().any(|x| x == "Copy token — demo"), TIMEOUT);
    menu.click_label("Copy token — demo");
    let shared = wait_until("a demo token", TIMEOUT, || {
        x11::clipboard_text(&session).filter(|t| is_jwt(t))
    });
    assert_eq!(
        kvproxy_core::decode_claims(&shared).expect("claims")["kvproxy_emulator"],
        true
    );
    assert_eq!(
        app.count_lines("demo: tenant running"),
        0,
        "the app must use the running demo, not start one"
    );

    // The CLI demo goes away: the app starts the tenant itself, on the same port, with a new CA, and a
    // fresh token (past the cache) comes from it. Only whether the tenant's port still listens is checked
    // per request; the tenant's identity was probed once, when the app first used it.
    let _ = demo.kill();
    let _ = demo.wait();
    menu.click_label("Copy token — demo");
    app.wait_line("demo: tenant running");
    // The copy ends once the tenant runs; a Copy API key clicked before that would be overwritten by it.
    app.wait_nth_line("copied: token for demo", 2);
    menu.click_label("Copy API key");
    let api_key = wait_until("the API key on the clipboard", TIMEOUT, || {
        x11::clipboard_text(&session).filter(|t| t.len() == 43 && !is_jwt(t))
    });
    let (status, fresh) = http_get(
        app.api_port(),
        "/api/profiles/demo/token?format=raw&skip_cache=true",
        Some(&api_key),
    )
    .expect("the API answers");
    assert_eq!(status, 200, "{fresh}");
    assert!(is_jwt(fresh.trim()) && fresh.trim() != shared, "{fresh}");
    assert_eq!(
        kvproxy_core::decode_claims(fresh.trim()).expect("claims")["kvproxy_emulator"],
        true
    );
}

#[test]
fn the_window_opens_again_at_the_size_it_was_left() {
    let session = Session::start();
    let _host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);
    let app = App::start(&session, &[("KVPROXY_PORT", "0")]);
    let find = || {
        x11::windows(&session)
            .into_iter()
            .find(|(_, title)| title == "KeyVault Proxy")
            .map(|(id, _)| id)
    };
    let window = wait_until("the first-start window", TIMEOUT, find);
    let first = wait_until("the window's size", TIMEOUT, || x11::size(&session, window));
    let wanted = (first.0 - 130, first.1 - 90);
    x11::move_resize(&session, window, 40, 30, wanted.0.into(), wanted.1.into());
    wait_until("the new size", TIMEOUT, || {
        (x11::size(&session, window) == Some(wanted)).then_some(())
    });

    // Closed (the app stays in the tray), then opened again by a second start.
    x11::close_window(&session, window);
    wait_until("the window to close", TIMEOUT, || find().is_none().then_some(()));
    let mut second = App::start(&session, &[("KVPROXY_PORT", "0")]);
    assert!(second.wait_exit().success());
    app.wait_line("second start: showing the window");
    let again = wait_until("the window again", TIMEOUT, find);
    wait_until("the size it was left at", TIMEOUT, || {
        (x11::size(&session, again) == Some(wanted)).then_some(())
    });
}
