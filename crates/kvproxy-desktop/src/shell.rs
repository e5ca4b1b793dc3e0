//! What the app's state asks of the desktop around it: notifications, the clipboard for secrets, start at
//! login, the window, and telling the tray and the window that something changed.
//!
//! Behind a trait so that [`crate::state::Desktop`] and every window call run in tests without a display,
//! against a shell that records what it was asked to do. The running app's shell is
//! `native_shell::NativeShell`.

use crate::questions::Answered;
use kvproxy_app::ApprovalRequest;
use kvproxy_core::SecretString;
use std::time::Duration;

pub trait Shell: Send + Sync + 'static {
    fn notify(&self, summary: &str, body: &str);
    /// Puts a secret on the clipboard, marked so clipboard managers keep no history of it, and takes it back
    /// after `clear_after` if it is still there.
    fn copy_secret(&self, secret: &SecretString, clear_after: Option<Duration>) -> Result<(), String>;
    /// The tray menu and the window should show the current state.
    fn changed(&self);
    /// Whether the app starts at login; `None` where that cannot be told.
    fn autostart(&self) -> Option<bool>;
    fn set_autostart(&self, enabled: bool) -> Result<(), String>;
    /// Brings the window to the front, starting its process when none runs.
    fn open_window(&self);
    /// Ends the app (the tray's Quit, the window's Quit button).
    fn quit(&self);
    /// Puts a `confirm` question in a notification with Allow and Deny buttons and reports the click through
    /// `answered`; false where notifications have no buttons (the window asks then). May wait on the
    /// notification service: called off the async threads.
    fn ask_in_notification(&self, request: &ApprovalRequest, answered: Answered) -> bool {
        let _ = (request, answered);
        false
    }
    /// Takes back the notification of question `id`: answered elsewhere, or no longer waited for.
    fn withdraw_question(&self, id: u64) {
        let _ = id;
    }
}
