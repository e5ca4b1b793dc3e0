//! The KeyVault Proxy desktop app: a tray icon that copies tokens, the loopback API, and a window made on
//! demand. This crate holds only what needs Tauri (menu, commands, window, clipboard, notifications): the
//! app itself is `kvproxy-app`'s [`kvproxy_app::App`], served over HTTP and the agent socket by
//! `kvproxy-server`; the rules worth testing on their own live in [`menu`] and in those crates.

mod clipboard;
mod commands;
pub mod editor;
pub mod error;
pub mod inspect;
pub mod menu;
mod notify;
pub mod preferences;
pub mod shell;
pub mod state;
mod tauri_shell;
mod tray;
mod trayhost;
mod watch;
mod webkit;
mod window;

use state::Desktop;
use std::sync::Arc;
use tauri::{Manager, RunEvent};

/// Builds and runs the app until "Quit" (or, with no tray host, until the window is closed).
pub fn run() -> tauri::Result<()> {
    init_logging();
    let tray_host = trayhost::present();

    let app = tauri::Builder::default()
        // First: a second start must hand over to the running app before it does anything else.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            say("second start: showing the window");
            window::show(app);
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::try_demo,
            commands::new_profile_form,
            commands::profile_form,
            commands::check_profile,
            commands::save_profile,
            commands::delete_profile,
            commands::set_default_profile,
            commands::copy_name,
            commands::get_token,
            commands::key_info,
            commands::copy_secret,
            commands::copy_text,
            commands::activity,
            commands::settings,
            commands::save_settings,
            commands::reveal_api_key,
            commands::rotate_api_key,
            commands::copy_sdk_environment,
            commands::copy_token,
            commands::run_action,
            commands::dismiss,
        ])
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::Destroyed = event
                && window.app_handle().webview_windows().keys().all(|label| label == window.label())
            {
                webkit::end_idle_network_process(window.app_handle().clone());
            }
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            let desktop = Desktop::from_environment(Arc::new(tauri_shell::TauriShell::new(handle.clone())), tray_host);
            app.manage(desktop.clone());
            if tray_host {
                tray::install(&handle, &desktop)?;
            } else {
                // An icon nobody shows is no use, and the indicator library's fallback for it can block.
                let _ = handle.remove_tray_by_id(tray::TRAY_ID);
                desktop.notice(
                    state::Level::Warning,
                    "No tray on this desktop",
                    "Nothing on this desktop shows tray icons (on GNOME, install the AppIndicator extension). This window is the way in; closing it quits KeyVault Proxy.",
                );
                say("tray: no StatusNotifierWatcher on the session bus; the window stays open");
            }
            match watch::start(desktop.clone()) {
                Ok(watcher) => {
                    app.manage(watcher);
                }
                Err(error) => desktop.notice(
                    state::Level::Warning,
                    "Profile changes are not followed",
                    format!("{error}. Restart the app after editing profiles."),
                ),
            }
            let asked = std::env::args().any(|arg| arg == "--window");
            if asked || !tray_host || !desktop.has_profiles() || desktop.profiles_unreadable() {
                window::show(&handle);
            }
            let started = desktop.clone();
            tauri::async_runtime::spawn(async move {
                started.start_agent().await;
                started.start_api().await;
                started.demo_if_saved().await;
                started.changed();
                say("ready");
            });
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"))?;

    app.run(move |handle, event| match event {
        // Closing the window ends the app only when there is no tray to come back from.
        RunEvent::ExitRequested { code: None, api, .. } if tray_host => {
            api.prevent_exit();
        }
        RunEvent::Exit => {
            let desktop = handle.state::<Desktop>().inner().clone();
            tauri::async_runtime::block_on(desktop.shutdown());
        }
        _ => {}
    });
    Ok(())
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
    if let Some(file) = windows_log_file() {
        let _ = logging
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
        return;
    }
    let _ = logging.with_writer(std::io::stderr).try_init();
}

/// A Windows GUI program has no stderr, so the app logs to `%LOCALAPPDATA%\kvproxy\data\kvproxy-desktop.log`
/// (this run) and keeps the last run's as `kvproxy-desktop.previous.log`. Tokens are never logged.
#[cfg(windows)]
fn windows_log_file() -> Option<std::fs::File> {
    let dir = directories::ProjectDirs::from("", "", "kvproxy")?
        .data_local_dir()
        .to_path_buf();
    std::fs::create_dir_all(&dir).ok()?;
    let log = dir.join("kvproxy-desktop.log");
    let _ = std::fs::rename(&log, dir.join("kvproxy-desktop.previous.log"));
    std::fs::File::create(log).ok()
}
