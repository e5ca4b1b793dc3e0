//! The shell of the running app: Tauri's notifications, the secret clipboard, start at login, and the tray
//! and window told when something changed.

use crate::clipboard::SecretClipboard;
use crate::shell::Shell;
use kvproxy_core::SecretString;
use std::time::Duration;
use tauri::{AppHandle, Emitter, Wry};
use tauri_plugin_autostart::ManagerExt;

/// The event the window listens to; it then asks for a fresh status.
pub const CHANGED_EVENT: &str = "kvproxy://changed";

/// The shell of the running app.
pub struct TauriShell {
    app: AppHandle<Wry>,
    clipboard: SecretClipboard,
}

impl TauriShell {
    pub fn new(app: AppHandle<Wry>) -> Self {
        Self {
            app,
            clipboard: SecretClipboard::default(),
        }
    }
}

impl Shell for TauriShell {
    fn notify(&self, summary: &str, body: &str) {
        crate::notify::show(&self.app, summary, body);
    }

    fn copy_secret(&self, secret: &SecretString, clear_after: Option<Duration>) -> Result<(), String> {
        self.clipboard.copy(secret, clear_after).map_err(|e| e.to_string())
    }

    fn changed(&self) {
        crate::tray::refresh(&self.app);
        if let Err(error) = self.app.emit(CHANGED_EVENT, ()) {
            tracing::debug!("no window to tell: {error}");
        }
    }

    fn autostart(&self) -> Option<bool> {
        self.app.autolaunch().is_enabled().ok()
    }

    fn set_autostart(&self, enabled: bool) -> Result<(), String> {
        // The launcher writes `~/.config/autostart/NAME.desktop` but does not create the directory, which a
        // fresh account does not have.
        #[cfg(target_os = "linux")]
        if enabled && let Some(home) = std::env::var_os("HOME") {
            let dir = std::path::Path::new(&home).join(".config/autostart");
            std::fs::create_dir_all(&dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        }
        let launcher = self.app.autolaunch();
        let result = if enabled { launcher.enable() } else { launcher.disable() };
        result.map_err(|e| format!("could not change start at login: {e}"))
    }
}
