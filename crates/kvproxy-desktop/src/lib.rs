//! The KeyVault Proxy desktop app's resident process: the tray icon that copies tokens, the loopback API,
//! the CLI's agent, notifications and the clipboard. It loads no web view: the window is a process of its
//! own (`kvproxy-window`), started on demand, that asks this one for everything over the desktop socket.
//! The app itself is `kvproxy-app`'s [`kvproxy_app::App`], served over HTTP and the sockets by
//! `kvproxy-server`; the rules worth testing on their own live in [`menu`] and in those crates.

mod calls;
mod clipboard;
pub mod editor;
pub mod error;
pub mod expiry;
pub mod inspect;
pub mod menu;
mod native_shell;
mod notify;
#[cfg(target_os = "linux")]
mod notify_question;
pub mod preferences;
pub mod questions;
pub mod runtime;
pub mod shell;
pub mod state;
mod tray;
mod trayhost;
mod watch;
pub mod window;

pub use calls::WindowCall;

use anyhow::Context as _;
use kvproxy_server::agent::protocol::{Envelope, PROTOCOL_VERSION, Request, Response};
use kvproxy_server::agent::{self, AgentServer, Outcome};
use state::{Desktop, Level};
use std::sync::Arc;

/// Runs the app until Quit (or, with no tray host, until the window is closed).
pub fn run() -> anyhow::Result<()> {
    init_logging();
    let socket = agent::desktop_socket_path().context("no place for the desktop app's socket")?;
    // A second start hands over to the running app before it does anything else.
    if second_start(&socket) {
        say("second start: the running app shows its window");
        return Ok(());
    }
    let tray_host = trayhost::present();
    let (ui, sender) = tray::UiLoop::new();

    let quit = sender.clone();
    let window = Arc::new(window::WindowProcess::new(socket.clone(), move || {
        // Without a tray the window is the only way in: closing it ends the app.
        if !tray_host {
            quit.send(tray::UiEvent::Quit);
        }
    }));
    let shell = Arc::new(native_shell::NativeShell::new(sender.clone(), window.clone()));
    let desktop = {
        let _entered = runtime::handle().enter();
        Desktop::from_environment(shell, tray_host)
    };
    let door = Arc::new(calls::WindowDoor {
        desktop: desktop.clone(),
        window: window.clone(),
    });
    let window_socket = match runtime::block_on(AgentServer::start_for_window(
        desktop.app().clone(),
        socket.clone(),
        door,
    )) {
        Ok(server) => Some(server),
        Err(error) => {
            eprintln!("kvproxy-desktop: {error}");
            desktop.notice(
                Level::Error,
                "The window cannot reach the app",
                format!("{error}. The tray works; restart KeyVault Proxy to open the window."),
            );
            None
        }
    };

    if !tray_host {
        desktop.notice(
            Level::Warning,
            "No tray on this desktop",
            "Nothing on this desktop shows tray icons (on GNOME, install the AppIndicator extension). This window is the way in; closing it quits KeyVault Proxy.",
        );
        say("tray: no StatusNotifierWatcher on the session bus; the window stays open");
    }
    let watcher = match watch::start(desktop.clone()) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            desktop.notice(
                Level::Warning,
                "Profile changes are not followed",
                format!("{error}. Restart the app after editing profiles."),
            );
            None
        }
    };
    desktop.watch_expiry();
    let asked = std::env::args().any(|arg| arg == "--window");
    // `--no-window`: straight to the tray even on a first start (a login item, a script, the window's tests).
    let quiet = std::env::args().any(|arg| arg == "--no-window");
    let first_start = !desktop.has_profiles() || desktop.profiles_unreadable();
    if asked || !tray_host || (first_start && !quiet) {
        window.show();
    }
    let started = desktop.clone();
    runtime::spawn(async move {
        started.start_agent().await;
        started.start_api().await;
        started.demo_if_saved().await;
        started.changed();
        say("ready");
    });

    let ending = desktop.clone();
    ui.run(desktop, tray_host, sender, move || {
        drop(watcher);
        runtime::block_on(async move {
            ending.shutdown().await;
            // Last: the window (if open) sees its connection end and closes itself.
            drop(window_socket);
        });
        say("quit");
    });
    Ok(())
}

/// Whether another instance of the app answers on the desktop socket (and has been asked to show its window).
fn second_start(socket: &std::path::Path) -> bool {
    let envelope = Envelope {
        protocol: PROTOCOL_VERSION,
        profiles_file: Default::default(),
        request: Request::ShowWindow,
    };
    matches!(
        runtime::block_on(agent::ask(socket, &envelope)),
        Outcome::Answered(Response::WindowShown)
    )
}

/// One status line on stdout for whoever started the app from a terminal (and for tests); a closed or
/// broken stdout is not the app's problem.
pub(crate) fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVPROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logging = tracing_subscriber::fmt().with_env_filter(filter);
    #[cfg(windows)]
    if let Some(file) = kvproxy_core::run_log_file("kvproxy-desktop") {
        let _ = logging
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
        return;
    }
    let _ = logging.with_writer(std::io::stderr).try_init();
}
