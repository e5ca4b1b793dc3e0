//! What the window may ask of the app, over Tauri's IPC (never over the loopback API). Each command is a
//! thin call into [`Desktop`], whose methods the tests call directly.

use crate::editor::ProfileForm;
use crate::error::UiError;
use crate::inspect::{KeyInfoView, TokenView};
use crate::menu;
use crate::preferences::{SettingsForm, SettingsView};
use crate::state::{Desktop, StatusView};
use kvproxy_app::ActivityRecord;
use kvproxy_core::FieldError;
use tauri::{AppHandle, State, Wry};

#[tauri::command]
pub fn status(desktop: State<'_, Desktop>) -> StatusView {
    desktop.status()
}

#[tauri::command]
pub async fn try_demo(desktop: State<'_, Desktop>) -> Result<(), UiError> {
    desktop.start_demo().await
}

#[tauri::command]
pub fn new_profile_form() -> ProfileForm {
    ProfileForm::blank()
}

#[tauri::command]
pub fn profile_form(desktop: State<'_, Desktop>, name: String) -> Result<ProfileForm, UiError> {
    desktop.profile_form(&name)
}

#[tauri::command]
pub fn check_profile(desktop: State<'_, Desktop>, form: ProfileForm, original: Option<String>) -> Vec<FieldError> {
    desktop.check_profile(&form, original.as_deref())
}

#[tauri::command]
pub fn save_profile(
    desktop: State<'_, Desktop>,
    form: ProfileForm,
    original: Option<String>,
) -> Result<String, UiError> {
    desktop.save_profile(&form, original.as_deref())
}

#[tauri::command]
pub fn delete_profile(desktop: State<'_, Desktop>, name: String) -> Result<(), UiError> {
    desktop.delete_profile(&name)
}

#[tauri::command]
pub fn set_default_profile(desktop: State<'_, Desktop>, name: String) -> Result<(), UiError> {
    desktop.set_default_profile(&name)
}

#[tauri::command]
pub fn copy_name(desktop: State<'_, Desktop>, name: String) -> String {
    desktop.copy_name(&name)
}

#[tauri::command]
pub async fn get_token(
    desktop: State<'_, Desktop>,
    name: String,
    scope: Option<String>,
    skip_cache: bool,
) -> Result<TokenView, UiError> {
    desktop.get_token(&name, scope.as_deref(), skip_cache).await
}

#[tauri::command]
pub async fn key_info(desktop: State<'_, Desktop>, name: String, refresh: bool) -> Result<KeyInfoView, UiError> {
    desktop.key_info(&name, refresh).await
}

#[tauri::command]
pub fn copy_secret(desktop: State<'_, Desktop>, secret: String) -> Result<(), UiError> {
    desktop.copy_secret(secret)
}

#[tauri::command]
pub fn copy_text(desktop: State<'_, Desktop>, text: String) -> Result<(), UiError> {
    desktop.copy_text(text)
}

#[tauri::command]
pub fn activity(desktop: State<'_, Desktop>) -> Vec<ActivityRecord> {
    desktop.activity()
}

#[tauri::command]
pub fn settings(desktop: State<'_, Desktop>) -> SettingsView {
    desktop.settings_view()
}

#[tauri::command]
pub async fn save_settings(desktop: State<'_, Desktop>, form: SettingsForm) -> Result<SettingsView, UiError> {
    desktop.save_settings(form).await
}

#[tauri::command]
pub fn reveal_api_key(desktop: State<'_, Desktop>) -> String {
    desktop.reveal_api_key()
}

#[tauri::command]
pub fn rotate_api_key(desktop: State<'_, Desktop>) -> Result<(), UiError> {
    desktop.rotate_api_key()
}

#[tauri::command]
pub fn copy_sdk_environment(
    desktop: State<'_, Desktop>,
    profile: Option<String>,
    shell: String,
) -> Result<(), UiError> {
    desktop.copy_sdk_environment(profile.as_deref(), &shell)
}

#[tauri::command]
pub async fn copy_token(desktop: State<'_, Desktop>, name: String) -> Result<(), UiError> {
    desktop.copy_token(&name).await
}

/// The tray's actions, for the window's buttons that do the same (Copy API key, Pause/Resume API, Quit):
/// the window sends the menu item's id, read by the menu's own parser.
#[tauri::command]
pub fn run_action(app: AppHandle<Wry>, action: String) -> Result<(), UiError> {
    match menu::action(&action) {
        Some(action) => {
            crate::tray::perform(&app, action);
            Ok(())
        }
        None => Err(UiError::field("action", format!("unknown action '{action}'"))),
    }
}

#[tauri::command]
pub fn dismiss(desktop: State<'_, Desktop>, id: u64) {
    desktop.dismiss(id);
    desktop.changed();
}
