//! The window's profile editor: every field of a profile as the form holds it, checked by the engine's own
//! rules (each wrong field reported, so the window can show every message next to its field), and saved to
//! `profiles.toml`, which stays the one truth the CLI and the tray read too.

use crate::error::UiError;
use crate::state::Desktop;
use kvproxy_core::{
    CloudName, CredentialSource, CustomCloud, Error as CoreError, FieldError, Profile, SigningAlgorithm,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A profile as the editor's fields hold it: text, possibly wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub vault_url: String,
    pub certificate: String,
    /// One scope per line (spaces also separate); the first is the default.
    pub scopes: String,
    pub algorithm: String,
    pub cloud: String,
    /// Custom clouds only.
    pub authority_host: String,
    /// Custom clouds only: vault host suffixes, separated by spaces, commas or lines.
    pub vault_suffixes: String,
    /// Custom clouds only: a CA certificate (PEM) to trust for this cloud.
    pub ca_file: String,
    pub credential: String,
    /// Ask the user before a program gets this profile's token.
    pub confirm: bool,
}

impl ProfileForm {
    /// What a new profile starts with.
    pub fn blank() -> Self {
        Self {
            algorithm: SigningAlgorithm::default().as_str().into(),
            cloud: CloudName::default().as_str().into(),
            credential: CredentialSource::default().as_str().into(),
            ..Self::default()
        }
    }

    pub fn of(profile: &Profile) -> Self {
        let custom = profile.custom_cloud.as_ref();
        Self {
            name: profile.name.clone(),
            tenant: profile.tenant.clone(),
            client_id: profile.client_id.clone(),
            vault_url: profile.vault_url.clone(),
            certificate: profile.certificate.clone(),
            scopes: profile.scopes.join("\n"),
            algorithm: profile.algorithm.as_str().into(),
            cloud: profile.cloud.as_str().into(),
            authority_host: custom.map(|c| c.authority_host.clone()).unwrap_or_default(),
            vault_suffixes: custom.map(|c| c.vault_suffixes.join(" ")).unwrap_or_default(),
            ca_file: custom
                .and_then(|c| c.ca_file.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            credential: profile.credential.as_str().into(),
            confirm: profile.confirm,
        }
    }

    /// The profile these fields describe, or the fields whose value is not even one of the choices.
    pub fn to_profile(&self) -> Result<Profile, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut choice = |result: kvproxy_core::Result<()>| {
            if let Err(CoreError::Invalid(fields)) = result {
                errors.extend(fields);
            }
        };
        let mut algorithm = SigningAlgorithm::default();
        choice(or_default(&self.algorithm, SigningAlgorithm::parse).map(|a| algorithm = a));
        let mut cloud = CloudName::default();
        choice(or_default(&self.cloud, CloudName::parse).map(|c| cloud = c));
        let mut credential = CredentialSource::default();
        choice(or_default(&self.credential, CredentialSource::parse).map(|c| credential = c));
        if !errors.is_empty() {
            return Err(errors);
        }
        let custom_cloud = (cloud == CloudName::Custom).then(|| CustomCloud {
            authority_host: self.authority_host.trim().to_string(),
            vault_suffixes: words(&self.vault_suffixes),
            ca_file: Some(self.ca_file.trim())
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
        });
        Ok(Profile {
            name: self.name.trim().to_string(),
            tenant: self.tenant.trim().to_string(),
            client_id: self.client_id.trim().to_string(),
            vault_url: self.vault_url.trim().to_string(),
            certificate: self.certificate.trim().to_string(),
            scopes: words(&self.scopes),
            algorithm,
            cloud,
            custom_cloud,
            credential,
            confirm: self.confirm,
        })
    }
}

/// An empty choice is the default; anything else must parse.
fn or_default<T: Default>(value: &str, parse: fn(&str) -> kvproxy_core::Result<T>) -> kvproxy_core::Result<T> {
    if value.trim().is_empty() {
        Ok(T::default())
    } else {
        parse(value)
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl Desktop {
    pub fn profile_form(&self, name: &str) -> Result<ProfileForm, UiError> {
        Ok(ProfileForm::of(&self.profile_store().get(name)?))
    }

    /// Every problem with the form as the engine sees it, for showing next to each field while the user
    /// types. `original` is the profile being edited (`None` for a new one), so keeping its name is fine.
    pub fn check_profile(&self, form: &ProfileForm, original: Option<&str>) -> Vec<FieldError> {
        let profile = match form.to_profile() {
            Ok(profile) => profile,
            Err(errors) => return errors,
        };
        let mut errors = match profile.resolve() {
            Ok(_) => Vec::new(),
            Err(error) => error
                .field_errors()
                .map(|fields| fields.as_slice().to_vec())
                .unwrap_or_else(|| UiError::field("profile", error.to_string()).fields),
        };
        let renamed = original != Some(profile.name.as_str());
        let taken = self.app().profiles().file.profiles.contains_key(&profile.name);
        if renamed && !errors.iter().any(|e| e.field == "name") && taken {
            errors.insert(
                0,
                FieldError {
                    field: "name",
                    message: format!("a profile named '{}' already exists; choose another name", profile.name),
                },
            );
        }
        errors
    }

    /// Saves the form (a new profile, or `original` edited or renamed) and returns the saved name. Nothing is
    /// written unless every field is right.
    pub fn save_profile(&self, form: &ProfileForm, original: Option<&str>) -> Result<String, UiError> {
        let profile = form.to_profile().map_err(|fields| UiError {
            fields,
            ..UiError::message("some fields are not one of their choices")
        })?;
        let name = profile.name.clone();
        self.app().save_profile(original, profile)?;
        self.after_profiles_change();
        crate::say(format!("profiles: saved {name}"));
        Ok(name)
    }

    pub fn delete_profile(&self, name: &str) -> Result<(), UiError> {
        self.app().remove_profile(name)?;
        self.after_profiles_change();
        crate::say(format!("profiles: deleted {name}"));
        Ok(())
    }

    pub fn set_default_profile(&self, name: &str) -> Result<(), UiError> {
        self.app().set_default_profile(name)?;
        self.after_profiles_change();
        Ok(())
    }

    /// A free name for a copy of `name`: `NAME-copy`, then `NAME-copy-2`, …
    pub fn copy_name(&self, name: &str) -> String {
        let profiles = self.app().profiles();
        let taken = |candidate: &str| profiles.file.profiles.contains_key(candidate);
        let base = format!("{name}-copy");
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|candidate| !taken(candidate))
            .unwrap_or(base)
    }

    /// The file watcher would notice too, but the window should not wait for it.
    fn after_profiles_change(&self) {
        self.changed();
        // A profile renamed, removed or pointed at another certificate changes what is flagged.
        self.check_expiry_soon();
    }
}
