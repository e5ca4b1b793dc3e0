//! The shell of the running app: notifications, the secret clipboard, start at login, the window process,
//! and the tray and window told when something changed.

use crate::clipboard::SecretClipboard;
use crate::shell::Shell;
use crate::tray::{UiEvent, UiSender};
use crate::window::WindowProcess;
use kvproxy_core::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// The name of the login item (`~/.config/autostart/KeyVault Proxy.desktop`, the Run key's value), as
/// earlier versions of the app named it, so an entry they made is found and kept.
const LOGIN_ITEM: &str = "KeyVault Proxy";

pub struct NativeShell {
    ui: UiSender,
    window: Arc<WindowProcess>,
    clipboard: SecretClipboard,
    #[cfg(target_os = "linux")]
    questions: crate::notify_question::NotificationQuestions,
}

impl NativeShell {
    pub fn new(ui: UiSender, window: Arc<WindowProcess>) -> Self {
        Self {
            ui,
            window,
            clipboard: SecretClipboard::default(),
            #[cfg(target_os = "linux")]
            questions: Default::default(),
        }
    }

    fn login_item() -> Result<auto_launch::AutoLaunch, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot tell where this program is: {e}"))?;
        let mut builder = auto_launch::AutoLaunchBuilder::new();
        builder
            .set_app_name(LOGIN_ITEM)
            .set_app_path(&exe.display().to_string());
        #[cfg(target_os = "macos")]
        builder.set_use_launch_agent(true);
        builder
            .build()
            .map_err(|e| format!("cannot set up start at login: {e}"))
    }
}

impl Shell for NativeShell {
    fn notify(&self, summary: &str, body: &str) {
        crate::notify::show(summary, body);
    }

    fn copy_secret(&self, secret: &SecretString, clear_after: Option<Duration>) -> Result<(), String> {
        self.clipboard.copy(secret, clear_after).map_err(|e| e.to_string())
    }

    fn changed(&self) {
        self.ui.send(UiEvent::Refresh);
        self.window.changed();
    }

    fn autostart(&self) -> Option<bool> {
        Self::login_item().ok()?.is_enabled().ok()
    }

    fn set_autostart(&self, enabled: bool) -> Result<(), String> {
        // The launcher writes `~/.config/autostart/NAME.desktop` but does not create the directory, which a
        // fresh account does not have.
        #[cfg(target_os = "linux")]
        if enabled && let Some(home) = std::env::var_os("HOME") {
            let dir = std::path::Path::new(&home).join(".config/autostart");
            std::fs::create_dir_all(&dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        }
        let launcher = Self::login_item()?;
        let result = if enabled { launcher.enable() } else { launcher.disable() };
        result.map_err(|e| format!("could not change start at login: {e}"))
    }

    #[cfg(target_os = "linux")]
    fn ask_in_notification(
        &self,
        request: &kvproxy_app::ApprovalRequest,
        answered: crate::questions::Answered,
    ) -> bool {
        self.questions.ask(request, answered)
    }

    #[cfg(target_os = "linux")]
    fn withdraw_question(&self, id: u64) {
        self.questions.withdraw(id);
    }

    fn open_window(&self) {
        self.window.show();
    }

    fn quit(&self) {
        self.ui.send(UiEvent::Quit);
    }
}
