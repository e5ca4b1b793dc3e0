//! The window's settings: the API's port (applied by restarting the listener), pausing the API, the API key
//! (reveal, copy, rotate), start at login, notifications and the clipboard delay. Saved in `settings.toml`
//! beside the profiles; the API key never goes there (it lives in the OS keyring).

use crate::error::UiError;
use crate::state::Desktop;
use kvproxy_app::sdk_env::{EnvShell, identity_endpoint, identity_env};
use kvproxy_app::{ApiKeySource, Channel};
use kvproxy_core::Settings;
use serde::{Deserialize, Serialize};

/// The settings as the window shows them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// The port saved in settings.toml.
    pub port: u16,
    /// Where the API listens now (`None` while paused or when it could not start).
    pub listening: Option<String>,
    pub clipboard_clear_secs: u64,
    pub notifications: bool,
    /// `None` where start at login cannot be told.
    pub autostart: Option<bool>,
    /// Where the API key comes from (and so whether Rotate can change it).
    pub api_key_source: String,
    pub api_key_rotatable: bool,
    /// Environment variables that override what is saved here, said so the window can explain.
    pub overridden_by_env: Vec<String>,
    pub settings_path: String,
}

/// What the settings form sends.
#[derive(Debug, Clone, Deserialize)]
pub struct SettingsForm {
    pub port: u16,
    pub clipboard_clear_secs: u64,
    pub notifications: bool,
    pub autostart: Option<bool>,
}

impl Desktop {
    pub fn settings_view(&self) -> SettingsView {
        let saved = self.inner.settings.saved();
        let effective = self.inner.settings.effective();
        let mut overridden_by_env = Vec::new();
        if effective.port != saved.port {
            overridden_by_env.push(kvproxy_core::settings::PORT_ENV.to_string());
        }
        if effective.clipboard_clear_secs != saved.clipboard_clear_secs {
            overridden_by_env.push(kvproxy_core::settings::CLIPBOARD_CLEAR_ENV.to_string());
        }
        SettingsView {
            port: saved.port,
            listening: self.listening_port().map(|port| format!("http://localhost:{port}")),
            clipboard_clear_secs: saved.clipboard_clear_secs,
            notifications: saved.notifications,
            autostart: self.inner.shell.autostart(),
            api_key_source: self.app().api_key_source().to_string(),
            api_key_rotatable: self.app().api_key_source() != ApiKeySource::Environment,
            overridden_by_env,
            settings_path: self.inner.settings.store().path().display().to_string(),
        }
    }

    /// Saves and applies the form. A new port is tried before anything is saved: when it cannot be
    /// listened on, the API goes back to its old port, nothing is saved, and the error names the field.
    pub async fn save_settings(&self, form: SettingsForm) -> Result<SettingsView, UiError> {
        let old = self.inner.settings.saved();
        let new = Settings {
            port: form.port,
            clipboard_clear_secs: form.clipboard_clear_secs,
            notifications: form.notifications,
        };
        let effective = self.inner.settings.effective_of(&new)?;
        let port_changed = effective.port != self.inner.settings.effective().port;
        if port_changed {
            let was_running = self.api_state() == crate::menu::ApiState::Running;
            if let Err(error) = self.restart_api_on(effective.port).await {
                let back = self.inner.settings.effective().port;
                if let Err(again) = self.restart_api_on(back).await {
                    tracing::warn!("the API could not go back to port {back}: {again}");
                }
                if !was_running {
                    self.stop_api().await;
                }
                return Err(UiError::field("port", error));
            }
            if !was_running {
                self.stop_api().await;
            }
        }
        self.inner.settings.save(new.clone())?;
        if let Some(enabled) = form.autostart
            && self.inner.shell.autostart() != Some(enabled)
        {
            self.inner
                .shell
                .set_autostart(enabled)
                .map_err(|e| UiError::field("autostart", e))?;
        }
        if old != new {
            crate::say("settings: saved");
        }
        self.changed();
        Ok(self.settings_view())
    }

    pub fn reveal_api_key(&self) -> String {
        self.api_key().expose().to_string()
    }

    /// Replaces the API key: the running API accepts only the new one from now on. Kept in the OS keyring
    /// when there is one; a key from `KVPROXY_API_KEY` is the environment's to change.
    pub fn rotate_api_key(&self) -> Result<(), UiError> {
        self.app().rotate_api_key(Channel::Window).map_err(|e| match e {
            kvproxy_app::ApiKeyError::Core(core) => UiError::from(core),
            other => UiError::message(other.to_string()),
        })
    }

    /// What `kvproxy env` prints for the default profile (or `profile`), for pasting into a shell.
    pub fn sdk_environment(&self, profile: Option<&str>, shell: &str) -> Result<String, UiError> {
        let profile = self.app().profile(profile.filter(|p| !p.is_empty()))?;
        let shell: EnvShell = shell
            .parse()
            .map_err(|_| UiError::field("shell", format!("'{shell}' is not one of sh, fish, powershell, cmd")))?;
        let port = self
            .listening_port()
            .unwrap_or_else(|| self.inner.settings.effective().port);
        let endpoint = identity_endpoint(port, &profile.name);
        Ok(identity_env(shell, &endpoint, self.api_key().expose()))
    }

    pub fn copy_sdk_environment(&self, profile: Option<&str>, shell: &str) -> Result<(), UiError> {
        let text = self.sdk_environment(profile, shell)?;
        self.copy_secret(text)
    }
}
