//! What the window may ask of the app, over Tauri's IPC (never over the loopback API).

use crate::menu::Action;
use crate::state::{Desktop, StatusView};
use kvproxy_core::{CloudName, CredentialSource, Error as CoreError, FieldError, Profile, SigningAlgorithm};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State, Wry};

/// An error as the window shows it: each field error next to its field, anything else in `message`.
#[derive(Debug, Serialize)]
pub struct UiError {
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl From<CoreError> for UiError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Invalid(fields) => UiError {
                message: fields.to_string(),
                fields: fields.into_iter().collect(),
            },
            CoreError::ProfileExists(_) => UiError {
                message: error.to_string(),
                fields: vec![FieldError {
                    field: "name",
                    message: error.to_string(),
                }],
            },
            other => UiError {
                message: other.to_string(),
                fields: Vec::new(),
            },
        }
    }
}

impl From<String> for UiError {
    fn from(message: String) -> Self {
        UiError {
            message,
            fields: Vec::new(),
        }
    }
}

#[tauri::command]
pub fn status(desktop: State<'_, Desktop>) -> StatusView {
    desktop.status()
}

#[tauri::command]
pub async fn try_demo(desktop: State<'_, Desktop>) -> Result<(), UiError> {
    Ok(desktop.start_demo().await?)
}

/// The fields of the minimal "Add profile" form.
#[derive(Debug, Deserialize)]
pub struct NewProfile {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub vault_url: String,
    pub certificate: String,
    pub scope: String,
    pub algorithm: String,
}

#[tauri::command]
pub fn add_profile(desktop: State<'_, Desktop>, profile: NewProfile) -> Result<(), UiError> {
    let algorithm = if profile.algorithm.trim().is_empty() {
        SigningAlgorithm::default()
    } else {
        SigningAlgorithm::parse(profile.algorithm.trim())?
    };
    let profile = Profile {
        name: profile.name.trim().to_string(),
        tenant: profile.tenant,
        client_id: profile.client_id,
        vault_url: profile.vault_url.trim().to_string(),
        certificate: profile.certificate.trim().to_string(),
        scopes: vec![profile.scope.trim().to_string()],
        algorithm,
        cloud: CloudName::Public,
        custom_cloud: None,
        credential: CredentialSource::Auto,
    };
    desktop.profile_store().upsert(profile, false)?;
    desktop.reload_profiles();
    desktop.changed();
    Ok(())
}

#[tauri::command]
pub async fn copy_token(desktop: State<'_, Desktop>, name: String) -> Result<(), UiError> {
    Ok(desktop.copy_token(&name).await?)
}

#[tauri::command]
pub fn run_action(app: AppHandle<Wry>, action: String) -> Result<(), UiError> {
    let action = match action.as_str() {
        "copy-api-key" => Action::CopyApiKey,
        "pause-api" => Action::PauseApi,
        "resume-api" => Action::ResumeApi,
        "quit" => Action::Quit,
        other => return Err(format!("unknown action '{other}'").into()),
    };
    crate::tray::perform(&app, action);
    Ok(())
}

#[tauri::command]
pub fn dismiss(desktop: State<'_, Desktop>, id: u64) {
    desktop.dismiss(id);
    desktop.changed();
}
