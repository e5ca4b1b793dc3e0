//! KeyVault Proxy's window: a web view over `ui/`, started by the tray app when the user opens it and ended
//! when they close it, so the tray process never carries WebKit. It holds no state of its own: every
//! command of the page goes to the tray app over the desktop socket (`{"command", "args"}`, answered by the
//! tray app's typed calls), and the tray app's events (something changed, come to the front) come back on a
//! connection that stays open while the window lives. When the tray app quits, that connection ends and so
//! does the window.

// Release builds are GUI-only on Windows; without this a console window would open next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use kvproxy_server::agent::protocol::{Envelope, PROTOCOL_VERSION, Request, Response, WindowEvent};
use kvproxy_server::agent::{self, Attached, Outcome, WindowEvents};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tauri::ipc::{Invoke, InvokeBody, InvokeError};
use tauri::{Emitter, Manager, WebviewUrl, WebviewWindowBuilder, Wry};

/// The event the page listens to; it then asks for fresh views.
const CHANGED_EVENT: &str = "kvproxy://changed";
const MAIN: &str = "main";

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    skip_gdk_gl();
    init_logging();
    let socket = match agent::desktop_socket_path() {
        Ok(socket) => socket,
        Err(error) => {
            eprintln!("kvproxy-window: {error}");
            return ExitCode::FAILURE;
        }
    };
    let events = match tauri::async_runtime::block_on(agent::attach_window(&socket)) {
        Attached::Window(events) => events,
        Attached::AlreadyOpen => {
            say("window: already open; shown");
            return ExitCode::SUCCESS;
        }
        Attached::NoApp => return start_the_app(),
        Attached::Failed(reason) => {
            eprintln!("kvproxy-window: the KeyVault Proxy app did not take this window: {reason}");
            return ExitCode::FAILURE;
        }
    };
    match run(socket, events) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kvproxy-window: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(socket: PathBuf, events: WindowEvents) -> tauri::Result<()> {
    let (closing, closed) = tokio::sync::oneshot::channel::<()>();
    let closing = std::sync::Mutex::new(Some(closing));
    tauri::Builder::default()
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .invoke_handler(move |invoke| relay(&socket, invoke))
        .on_window_event(move |_, event| {
            // The tray app hears that the window has gone before the window disappears: a click on Open
            // right after closing must start a new window, not bring forward one that is going.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event
                && let Some(closing) = closing.lock().ok().and_then(|mut c| c.take())
            {
                api.prevent_close();
                let _ = closing.send(());
            }
        })
        .setup(move |app| {
            let window = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
                .title("KeyVault Proxy")
                .inner_size(1060.0, 740.0)
                .min_inner_size(720.0, 480.0)
                .center()
                .build()?;
            window.set_focus()?;
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(follow(handle, events, closed));
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"))
}

/// Passes the tray app's events to the page until the window is closed or the tray app goes; then ends the
/// connection first and the process after it.
async fn follow(app: tauri::AppHandle<Wry>, mut events: WindowEvents, mut closed: tokio::sync::oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(WindowEvent::Changed) => {
                    if let Err(error) = app.emit(CHANGED_EVENT, ()) {
                        tracing::debug!("could not tell the page: {error}");
                    }
                }
                Some(WindowEvent::Show) => {
                    if let Some(window) = app.get_webview_window(MAIN) {
                        let _ = window.show();
                        let _ = window.unminimize();
                        let _ = window.set_focus();
                    }
                }
                None => {
                    say("window: the app has quit; closing");
                    break;
                }
            },
            _ = &mut closed => {
                drop(events);
                break;
            }
        }
    }
    app.exit(0);
}

/// Every command of the page goes to the tray app as it is; its answer (or error, as the page shows errors)
/// comes back as the command's result.
fn relay(socket: &Path, invoke: Invoke<Wry>) -> bool {
    let command = invoke.message.command().to_string();
    if command == "painted" {
        say("window: painted");
        invoke.resolver.resolve(());
        return true;
    }
    let args = match invoke.message.payload() {
        InvokeBody::Json(args) => args.clone(),
        InvokeBody::Raw(_) => Value::Null,
    };
    let socket = socket.to_path_buf();
    invoke.resolver.respond_async(async move {
        let envelope = Envelope {
            protocol: PROTOCOL_VERSION,
            profiles_file: PathBuf::new(),
            request: Request::Window {
                call: json!({ "command": command, "args": args }),
            },
        };
        match agent::ask(&socket, &envelope).await {
            Outcome::Answered(Response::Window { result }) => Ok(result),
            Outcome::Answered(Response::WindowFailed { error }) => Err(InvokeError(error)),
            Outcome::Answered(other) => Err(problem(format!("the app answered {other:?}"))),
            Outcome::NoAgent => Err(problem("KeyVault Proxy has quit; start it again".into())),
            Outcome::Failed(reason) => Err(problem(reason)),
        }
    });
    true
}

/// An error shaped as the page shows the app's own.
fn problem(message: String) -> InvokeError {
    InvokeError(json!({ "message": message, "summary": message, "fields": [], "hint": null, "support": null }))
}

/// Opened with no app running (a launcher, a shortcut): start the app, which opens its window.
fn start_the_app() -> ExitCode {
    let program = std::env::current_exe()
        .map(|exe| exe.with_file_name(format!("kvproxy-desktop{}", std::env::consts::EXE_SUFFIX)));
    match program.and_then(|program| std::process::Command::new(program).arg("--window").spawn()) {
        Ok(_) => {
            say("window: KeyVault Proxy was not running; started it");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kvproxy-window: KeyVault Proxy is not running and could not be started: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One status line on stdout (the tray app's, which started this process), for the terminal and tests.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// GTK 3 on X11 probes OpenGL visuals when it opens the display, which loads the GL driver (with Mesa's
/// software renderer, LLVM too). WebKit composites with its own GL, so the window does not need GDK's. A
/// user's own GDK_GL setting wins.
#[cfg(target_os = "linux")]
fn skip_gdk_gl() {
    if std::env::var_os("GDK_GL").is_none() {
        // SAFETY: first thing in main, before any thread exists that could read the environment.
        unsafe { std::env::set_var("GDK_GL", "disable") };
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVPROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logging = tracing_subscriber::fmt().with_env_filter(filter);
    #[cfg(windows)]
    if let Some(file) = kvproxy_core::run_log_file("kvproxy-window") {
        let _ = logging
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
        return;
    }
    let _ = logging.with_writer(std::io::stderr).try_init();
}
