//! What the window may ask of the app. The window runs as a process of its own and sends each of its
//! commands over the desktop socket as `{"command": NAME, "args": {...}}`; they are read here into
//! [`WindowCall`] and answered by [`Desktop`], whose methods the tests also call directly.

use crate::editor::ProfileForm;
use crate::error::UiError;
use crate::menu;
use crate::preferences::SettingsForm;
use crate::state::Desktop;
use crate::window::WindowProcess;
use kvproxy_app::Decision;
use kvproxy_server::agent::WindowHost;
use kvproxy_server::agent::protocol::WindowEvent;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Every command of the window, with its arguments as the web view names them.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "command",
    content = "args",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum WindowCall {
    Status {},
    TryDemo {},
    NewProfileForm {},
    ProfileForm {
        name: String,
    },
    CheckProfile {
        form: ProfileForm,
        original: Option<String>,
    },
    SaveProfile {
        form: ProfileForm,
        original: Option<String>,
    },
    DeleteProfile {
        name: String,
    },
    SetDefaultProfile {
        name: String,
    },
    CopyName {
        name: String,
    },
    GetToken {
        name: String,
        scope: Option<String>,
        skip_cache: bool,
    },
    KeyInfo {
        name: String,
        refresh: bool,
    },
    CopySecret {
        secret: String,
    },
    CopyText {
        text: String,
    },
    Activity {},
    Settings {},
    SaveSettings {
        form: SettingsForm,
    },
    RevealApiKey {},
    RotateApiKey {},
    CopySdkEnvironment {
        profile: Option<String>,
        shell: String,
    },
    CopyToken {
        name: String,
    },
    /// The tray's actions, for the window's buttons that do the same (Copy API key, Pause/Resume API, Quit):
    /// the menu item's id, read by the menu's own parser.
    RunAction {
        action: String,
    },
    Dismiss {
        id: u64,
    },
    /// The user's answer to a program's request for a `confirm` profile's token.
    AnswerQuestion {
        id: u64,
        decision: Decision,
    },
    /// Every program allowed so far is asked again.
    ForgetApprovals {},
    /// `kvproxy doctor`'s checks for a saved profile.
    CheckSetup {
        name: String,
    },
}

fn json<T: serde::Serialize>(value: T) -> Result<Value, UiError> {
    serde_json::to_value(value).map_err(|e| UiError::message(format!("the app could not encode its answer: {e}")))
}

impl Desktop {
    /// Answers one window command.
    pub async fn answer_window(&self, call: WindowCall) -> Result<Value, UiError> {
        match call {
            WindowCall::Status {} => json(self.status()),
            WindowCall::TryDemo {} => json(self.start_demo().await?),
            WindowCall::NewProfileForm {} => json(ProfileForm::blank()),
            WindowCall::ProfileForm { name } => json(self.profile_form(&name)?),
            WindowCall::CheckProfile { form, original } => json(self.check_profile(&form, original.as_deref())),
            WindowCall::SaveProfile { form, original } => json(self.save_profile(&form, original.as_deref())?),
            WindowCall::DeleteProfile { name } => json(self.delete_profile(&name)?),
            WindowCall::SetDefaultProfile { name } => json(self.set_default_profile(&name)?),
            WindowCall::CopyName { name } => json(self.copy_name(&name)),
            WindowCall::GetToken {
                name,
                scope,
                skip_cache,
            } => json(self.get_token(&name, scope.as_deref(), skip_cache).await?),
            WindowCall::KeyInfo { name, refresh } => json(self.key_info(&name, refresh).await?),
            WindowCall::CopySecret { secret } => json(self.copy_secret(secret)?),
            WindowCall::CopyText { text } => json(self.copy_text(text)?),
            WindowCall::Activity {} => json(self.activity()),
            WindowCall::Settings {} => json(self.settings_view()),
            WindowCall::SaveSettings { form } => json(self.save_settings(form).await?),
            WindowCall::RevealApiKey {} => json(self.reveal_api_key()),
            WindowCall::RotateApiKey {} => json(self.rotate_api_key()?),
            WindowCall::CopySdkEnvironment { profile, shell } => {
                json(self.copy_sdk_environment(profile.as_deref(), &shell)?)
            }
            WindowCall::CopyToken { name } => json(self.copy_token(&name).await?),
            WindowCall::RunAction { action } => match menu::action(&action) {
                Some(action) => {
                    self.perform(action);
                    json(())
                }
                None => Err(UiError::field("action", format!("unknown action '{action}'"))),
            },
            WindowCall::AnswerQuestion { id, decision } => json(self.answer_question(id, decision)),
            WindowCall::CheckSetup { name } => json(self.check_setup(&name).await?),
            WindowCall::ForgetApprovals {} => {
                self.inner.app.forget_approvals();
                json(())
            }
            WindowCall::Dismiss { id } => {
                self.dismiss(id);
                self.changed();
                json(())
            }
        }
    }

    /// Answers a window command as it came over the socket: an unknown command or wrong arguments are an
    /// error the window shows, never a dropped connection.
    pub async fn answer_window_json(&self, call: Value) -> Result<Value, Value> {
        let answer = match serde_json::from_value::<WindowCall>(call) {
            Ok(call) => self.answer_window(call).await,
            Err(error) => Err(UiError::message(format!(
                "the window sent a command this app does not know ({error}); the window and the tray app are from different versions: quit and start KeyVault Proxy again"
            ))),
        };
        answer.map_err(|error| serde_json::to_value(error).unwrap_or(Value::Null))
    }
}

/// The desktop socket's side of the window: its calls go to [`Desktop`], its presence to [`WindowProcess`].
pub struct WindowDoor {
    pub desktop: Desktop,
    pub window: Arc<WindowProcess>,
}

#[async_trait::async_trait]
impl WindowHost for WindowDoor {
    async fn call(&self, call: Value) -> Result<Value, Value> {
        self.desktop.answer_window_json(call).await
    }

    fn attach(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<WindowEvent>> {
        self.window.attach()
    }

    fn detached(&self) {
        self.window.detached();
    }

    fn show(&self) {
        crate::say("second start: showing the window");
        self.window.show();
    }
}
