//! The window, made on demand. A tray app runs all day; a WebKit view costs far more memory than the rest of
//! the app together, so the window exists only while it is open: closing it destroys the webview, and the
//! tray builds a new one the next time.

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder, Wry};

pub const MAIN: &str = "main";

/// Shows the window, creating it if it is closed; a failure is logged, since a menu click has no caller to
/// report to.
pub fn show(app: &AppHandle<Wry>) {
    if let Err(error) = try_show(app) {
        tracing::error!("could not open the window: {error}");
        eprintln!("kvproxy-desktop: could not open the window: {error}");
    }
}

fn try_show(app: &AppHandle<Wry>) -> tauri::Result<()> {
    if let Some(window) = app.get_webview_window(MAIN) {
        window.show()?;
        window.unminimize()?;
        return window.set_focus();
    }
    let window = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .title("KeyVault Proxy")
        .inner_size(1060.0, 740.0)
        .min_inner_size(720.0, 480.0)
        .center()
        .build()?;
    window.set_focus()
}
