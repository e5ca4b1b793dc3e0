//! The desktop shell of KeyVault Proxy: a tray icon and one window over the `kvproxy` engine.
//!
//! This crate only glues Tauri to the library crates (DESIGN.md §2); anything worth testing on its own
//! belongs in `crates/`, which build without WebKit.

mod tray;
mod window;

use tauri::WindowEvent;

/// Builds and runs the app until the user picks "Quit" in the tray menu.
pub fn run() -> tauri::Result<()> {
    tauri::Builder::default()
        .setup(|app| {
            tray::install(app.handle())?;
            Ok(())
        })
        .on_window_event(|window, event| {
            // The app lives in the tray, so closing the window must not end it: the server and the token
            // cache stay up until "Quit".
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.label() == window::MAIN
            {
                api.prevent_close();
                if let Err(error) = window.hide() {
                    eprintln!("kvproxy-desktop: could not hide the window: {error}");
                }
            }
        })
        // The path is relative to this crate; relative paths inside the file resolve from the repository root.
        .run(tauri::generate_context!("../tauri.conf.json"))
}
