//! The main window, declared in `tauri.conf.json` and reopened from the tray.

use tauri::{AppHandle, Manager, Runtime};

/// The label of the window declared in `tauri.conf.json`.
pub const MAIN: &str = "main";

/// Brings the main window back from the tray: shown, restored if minimised, and focused.
pub fn show_main<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    // The window is hidden, never destroyed, so it is missing only if the config lost its declaration.
    let Some(window) = app.get_webview_window(MAIN) else {
        return Err(tauri::Error::WebviewNotFound);
    };
    window.show()?;
    window.unminimize()?;
    window.set_focus()
}
