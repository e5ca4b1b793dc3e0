//! The app's settings as it runs: what `settings.toml` says (the window edits this) and what is in effect
//! (the saved settings with the environment's overrides).

use kvproxy_core::{Result, Settings, SettingsStore};
use parking_lot::RwLock;

pub struct AppSettings {
    store: SettingsStore,
    saved: RwLock<Settings>,
    effective: RwLock<Settings>,
    env_overrides: bool,
}

impl AppSettings {
    /// Reads `store`; with `env_overrides`, `KVPROXY_PORT` and `KVPROXY_CLIPBOARD_CLEAR_SECS` apply over it.
    /// A file or variable that cannot be used gives the defaults and the reason, for the user: the app
    /// starts either way.
    pub fn load(store: SettingsStore, env_overrides: bool) -> (Self, Option<String>) {
        let mut problem = None;
        let saved = store.load().unwrap_or_else(|e| {
            problem = Some(e.to_string());
            Settings::default()
        });
        let effective = effective(&saved, env_overrides).unwrap_or_else(|e| {
            problem = Some(e.to_string());
            saved.clone()
        });
        let settings = Self {
            store,
            saved: RwLock::new(saved),
            effective: RwLock::new(effective),
            env_overrides,
        };
        (settings, problem)
    }

    pub fn store(&self) -> &SettingsStore {
        &self.store
    }

    pub fn saved(&self) -> Settings {
        self.saved.read().clone()
    }

    pub fn effective(&self) -> Settings {
        self.effective.read().clone()
    }

    /// What `new` would be in effect, or why it cannot be (a bad override in the environment).
    pub fn effective_of(&self, new: &Settings) -> Result<Settings> {
        effective(new, self.env_overrides)
    }

    /// Saves `new` and puts it in effect.
    pub fn save(&self, new: Settings) -> Result<Settings> {
        let effective = self.effective_of(&new)?;
        self.store.save(&new)?;
        *self.saved.write() = new;
        *self.effective.write() = effective.clone();
        Ok(effective)
    }
}

fn effective(saved: &Settings, env_overrides: bool) -> Result<Settings> {
    if env_overrides {
        saved.clone().with_env_overrides()
    } else {
        Ok(saved.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_gives_the_defaults_and_says_why_and_saving_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, "port = \"many\"\n").unwrap();
        let (settings, problem) = AppSettings::load(SettingsStore::new(path.clone()), false);
        assert!(problem.unwrap_or_default().contains("could not be read"));
        assert_eq!(settings.effective(), Settings::default());
        let new = Settings {
            port: 7000,
            ..Settings::default()
        };
        assert_eq!(settings.save(new.clone()).unwrap(), new);
        assert_eq!(settings.saved(), new);
        assert_eq!(SettingsStore::new(path).load().unwrap(), new);
    }
}
