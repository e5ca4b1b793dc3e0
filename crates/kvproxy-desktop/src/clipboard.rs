//! The clipboard for secrets: tokens and the API key.
//!
//! A write is marked as a secret (on Linux the `x-kde-passwordManagerHint` target, which clipboard managers
//! such as Klipper and GPaste honour by keeping no history of it), and is taken back after a delay, but only if
//! the clipboard still holds what we put there: whatever the user copied since is theirs.
//!
//! On X11 the clipboard's content lives in the program that owns it, so the `arboard::Clipboard` is kept
//! for the life of the app; dropping it would empty the clipboard.

use kvproxy_core::SecretString;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("the clipboard is not available: {0}")]
pub struct ClipboardError(String);

#[derive(Clone, Default)]
pub struct SecretClipboard {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    clipboard: Mutex<Option<arboard::Clipboard>>,
    /// Bumped on every write, so the timer of an older write leaves a newer one alone.
    generation: AtomicU64,
}

impl SecretClipboard {
    /// Puts `secret` on the clipboard; with `clear_after`, removes it then if it is still there.
    pub fn copy(&self, secret: &SecretString, clear_after: Option<Duration>) -> Result<(), ClipboardError> {
        self.with_clipboard(|clipboard| set_secret(clipboard, secret.expose()))?;
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(delay) = clear_after {
            let this = self.clone();
            let secret = secret.clone();
            crate::runtime::spawn(async move {
                tokio::time::sleep(delay).await;
                if this.inner.generation.load(Ordering::SeqCst) == generation {
                    this.clear_if_holds(&secret);
                }
            });
        }
        Ok(())
    }

    fn clear_if_holds(&self, secret: &SecretString) {
        let result = self.with_clipboard(|clipboard| {
            let holds = clipboard.get_text().is_ok_and(|text| text == secret.expose());
            if holds {
                clipboard.clear().map(|_| true)
            } else {
                Ok(false)
            }
        });
        match result {
            Ok(true) => crate::say("clipboard: cleared"),
            Ok(false) => crate::say("clipboard: left alone (it holds something else now)"),
            Err(error) => tracing::warn!("could not clear the clipboard: {error}"),
        }
    }

    fn with_clipboard<T>(
        &self,
        f: impl FnOnce(&mut arboard::Clipboard) -> Result<T, arboard::Error>,
    ) -> Result<T, ClipboardError> {
        let mut slot = self.inner.clipboard.lock();
        if slot.is_none() {
            *slot = Some(arboard::Clipboard::new().map_err(|e| ClipboardError(e.to_string()))?);
        }
        let clipboard = slot.as_mut().ok_or_else(|| ClipboardError("not initialised".into()))?;
        f(clipboard).map_err(|e| ClipboardError(e.to_string()))
    }
}

#[cfg(target_os = "linux")]
fn set_secret(clipboard: &mut arboard::Clipboard, text: &str) -> Result<(), arboard::Error> {
    use arboard::SetExtLinux;
    clipboard.set().exclude_from_history().text(text)
}

#[cfg(target_os = "windows")]
fn set_secret(clipboard: &mut arboard::Clipboard, text: &str) -> Result<(), arboard::Error> {
    use arboard::SetExtWindows;
    clipboard.set().exclude_from_history().exclude_from_cloud().text(text)
}

#[cfg(not(any(target_os = "linux", target_os = "windows")))]
fn set_secret(clipboard: &mut arboard::Clipboard, text: &str) -> Result<(), arboard::Error> {
    clipboard.set_text(text)
}
