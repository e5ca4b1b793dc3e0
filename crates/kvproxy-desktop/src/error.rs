//! The one error the window sees: every wrong field next to its field, and for Entra's refusals what
//! Microsoft support asks for (the AADSTS code, trace id and correlation id) apart from the text.

use kvproxy_core::{Error as CoreError, FieldError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct UiError {
    /// The whole story, with the engine's hint.
    pub message: String,
    /// A few words for a heading.
    pub summary: String,
    /// Each wrong field with its message; empty when the error is about no field.
    pub fields: Vec<FieldError>,
    /// The engine's advice on what to change.
    pub hint: Option<String>,
    /// For Entra's refusals. Boxed: most errors have none, and every command's `Result` carries the size.
    pub support: Option<Box<SupportIds>>,
}

/// What Microsoft support asks for when Entra refused a token request.
#[derive(Debug, Clone, Serialize)]
pub struct SupportIds {
    pub aadsts: Option<u32>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl UiError {
    pub fn message(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            summary: message.clone(),
            message,
            fields: Vec::new(),
            hint: None,
            support: None,
        }
    }

    /// An error about one field of a form.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            fields: vec![FieldError {
                field,
                message: message.clone(),
            }],
            ..Self::message(message)
        }
    }
}

impl From<CoreError> for UiError {
    fn from(error: CoreError) -> Self {
        let mut ui = UiError::message(error.to_string());
        ui.summary = error.summary();
        match error {
            CoreError::Invalid(fields) => ui.fields = fields.into_iter().collect(),
            CoreError::ProfileExists(_) => ui.fields = UiError::field("name", ui.message.clone()).fields,
            CoreError::Entra(entra) => {
                ui.hint = entra.hint.map(str::to_string);
                ui.support = Some(Box::new(SupportIds {
                    aadsts: entra.code,
                    trace_id: entra.trace_id.clone(),
                    correlation_id: entra.correlation_id.clone(),
                }));
            }
            CoreError::KeyVault { hint, .. } => ui.hint = hint,
            CoreError::Credential { hint, .. } => ui.hint = Some(hint),
            _ => {}
        }
        ui
    }
}

impl From<String> for UiError {
    fn from(message: String) -> Self {
        UiError::message(message)
    }
}
