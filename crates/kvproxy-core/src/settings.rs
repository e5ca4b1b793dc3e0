//! App settings that are not profiles: the API port and how long a copied token stays on the clipboard.
//!
//! They live in `settings.toml` beside `profiles.toml` and never hold a secret (the API key is in the OS
//! keyring). Environment variables override the file, so a test or a second setup can use a free port and a
//! short clipboard delay without touching the user's file.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The loopback API's port unless the settings say otherwise: the .NET proxy's, so existing Postman
/// collections keep working.
pub const DEFAULT_PORT: u16 = 5616;
/// Long enough to paste into Postman or a terminal, short enough that a token does not linger.
pub const DEFAULT_CLIPBOARD_CLEAR_SECS: u64 = 60;
/// Overrides `port` (0 lets the OS pick a free port).
pub const PORT_ENV: &str = "KVPROXY_PORT";
/// Overrides `clipboard_clear_secs` (0 never clears).
pub const CLIPBOARD_CLEAR_ENV: &str = "KVPROXY_CLIPBOARD_CLEAR_SECS";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Port of the loopback API on 127.0.0.1 and [::1].
    pub port: u16,
    /// Seconds after which a copied token is removed from the clipboard, if it is still there; 0 = never.
    pub clipboard_clear_secs: u64,
    /// Desktop notifications for copies and failures (the window shows failures either way).
    pub notifications: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            clipboard_clear_secs: DEFAULT_CLIPBOARD_CLEAR_SECS,
            notifications: true,
        }
    }
}

impl Settings {
    pub fn clipboard_clear_after(&self) -> Option<Duration> {
        (self.clipboard_clear_secs > 0).then(|| Duration::from_secs(self.clipboard_clear_secs))
    }

    /// Applies `KVPROXY_PORT` and `KVPROXY_CLIPBOARD_CLEAR_SECS` when set.
    pub fn with_env_overrides(mut self) -> Result<Self> {
        self.apply_overrides(|name| std::env::var(name).ok())?;
        Ok(self)
    }

    fn apply_overrides(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(value) = var(PORT_ENV) {
            self.port = value.trim().parse().map_err(|_| {
                Error::invalid(
                    PORT_ENV,
                    format!("'{value}' is not a port; use a number from 0 to 65535"),
                )
            })?;
        }
        if let Some(value) = var(CLIPBOARD_CLEAR_ENV) {
            self.clipboard_clear_secs = value.trim().parse().map_err(|_| {
                Error::invalid(
                    CLIPBOARD_CLEAR_ENV,
                    format!("'{value}' is not a number of seconds; use e.g. 60, or 0 to never clear"),
                )
            })?;
        }
        Ok(())
    }
}

/// `settings.toml` in the config directory.
#[derive(Debug, Clone)]
pub struct SettingsStore {
    path: PathBuf,
}

impl SettingsStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn default_location() -> Result<Self> {
        Ok(Self::new(crate::profile::config_dir()?.join("settings.toml")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved settings (defaults when there is no file), without environment overrides. A file that does
    /// not parse is an error naming it; it is left as it is.
    pub fn load(&self) -> Result<Settings> {
        let Some(text) = crate::profile::read_if_present(&self.path, "reading settings")? else {
            return Ok(Settings::default());
        };
        toml::from_str(&text).map_err(|e| Error::CorruptSettingsFile {
            path: self.path.clone(),
            message: e.message().trim().to_string(),
        })
    }

    /// Writes the settings (atomically, like profiles). They hold no secret.
    pub fn save(&self, settings: &Settings) -> Result<()> {
        let text = toml::to_string_pretty(settings).map_err(|e| Error::Encode {
            what: "settings",
            message: e.to_string(),
        })?;
        let header = "# KeyVault Proxy settings. No secrets live here: the API key is in the OS keyring.\n";
        crate::profile::write_config_file(&self.path, &format!("{header}{text}"), "replacing the settings file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults_and_partial_file_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::new(dir.path().join("settings.toml"));
        assert_eq!(store.load().unwrap(), Settings::default());
        std::fs::write(store.path(), "port = 6000\n").unwrap();
        let settings = store.load().unwrap();
        assert_eq!(settings.port, 6000);
        assert_eq!(settings.clipboard_clear_secs, DEFAULT_CLIPBOARD_CLEAR_SECS);
    }

    #[test]
    fn saved_settings_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::new(dir.path().join("sub").join("settings.toml"));
        let settings = Settings {
            port: 6001,
            clipboard_clear_secs: 0,
            notifications: false,
        };
        store.save(&settings).unwrap();
        assert_eq!(store.load().unwrap(), settings);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with("# KeyVault Proxy settings"), "{text}");
    }

    #[test]
    fn bad_file_names_itself_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::new(dir.path().join("settings.toml"));
        std::fs::write(store.path(), "port = \"high\"\n").unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains("settings.toml"), "{error}");
        assert_eq!(std::fs::read_to_string(store.path()).unwrap(), "port = \"high\"\n");
        std::fs::write(store.path(), "prot = 1\n").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("prot"));
    }

    #[test]
    fn environment_overrides_the_file_and_is_checked() {
        let mut settings = Settings::default();
        settings
            .apply_overrides(|name| match name {
                PORT_ENV => Some("0".into()),
                CLIPBOARD_CLEAR_ENV => Some(" 2 ".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(settings.port, 0);
        assert_eq!(settings.clipboard_clear_after(), Some(Duration::from_secs(2)));
        let error = Settings::default()
            .apply_overrides(|name| (name == PORT_ENV).then(|| "70000".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains(PORT_ENV) && error.contains("70000"), "{error}");
        let mut never = Settings::default();
        never
            .apply_overrides(|name| (name == CLIPBOARD_CLEAR_ENV).then(|| "0".into()))
            .unwrap();
        assert_eq!(never.clipboard_clear_after(), None);
    }
}
