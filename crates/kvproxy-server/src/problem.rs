//! Errors as RFC 9457 problem documents, so every 4xx and 5xx says what went wrong and what to do.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvproxy_core::{Error, ErrorClass};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A short, stable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong and how to fix it.
    pub detail: String,
    /// The request field at fault, when one is (the first, when several are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault with what is wrong with it, when the request or profile was checked field by field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The AADSTS code, for errors from Entra ID.
    #[schema(example = 700027)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aadsts: Option<u32>,
    /// Who has to act: `input` (fix the request or profile), `auth` (a permission, registration or sign-in
    /// in Azure), `network` (retry later), `local` (storage on this machine). Absent for the API's own
    /// refusals (key, Host, Origin).
    #[schema(value_type = Option<String>, example = "auth")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<ErrorClass>,
}

/// One wrong field of a problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    #[schema(example = "vault_url")]
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: handlers return `Result<_, ApiError>` everywhere, and the success path should not pay for it.
    pub problem: Box<Problem>,
    /// For 401s: the auth scheme to announce.
    pub www_authenticate: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            problem: Box::new(Problem {
                title: title.into(),
                status: status.as_u16(),
                detail: detail.into(),
                field: None,
                errors: Vec::new(),
                aadsts: None,
                // The API's own refusals (key, Host, Origin) are not about the request's content.
                class: (status.is_client_error()
                    && status != StatusCode::UNAUTHORIZED
                    && status != StatusCode::FORBIDDEN)
                    .then_some(ErrorClass::Input),
            }),
            www_authenticate: None,
        }
    }

    pub fn bad_field(field: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "Invalid request", detail);
        e.problem.field = Some(field.into());
        e
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "API key required", detail);
        e.www_authenticate = Some("Bearer realm=\"kvproxy\"");
        e
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    /// Renames the fields at fault (the engine's names) to the names the request used, in `field`, `errors`
    /// and `detail`.
    pub fn rename_fields(&mut self, rename: impl Fn(&str) -> &str) {
        let problem = &mut self.problem;
        if let Some(field) = &mut problem.field {
            *field = rename(field).to_string();
        }
        let mut detail = Vec::with_capacity(problem.errors.len());
        for error in &mut problem.errors {
            error.field = rename(&error.field).to_string();
            detail.push(format!("{}: {}", error.field, error.message));
        }
        if !detail.is_empty() {
            problem.detail = detail.join("; ");
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let title = match (&e, e.class()) {
            (Error::ProfileNotFound(_), _) => "Profile not found",
            (Error::NoDefaultProfile, _) => "No default profile",
            (Error::NotApproved(_), _) => "Not approved by the user",
            (_, ErrorClass::Input) => "Invalid request",
            (_, ErrorClass::Auth) => "Entra ID or Key Vault refused the request",
            (_, ErrorClass::Network) => "Entra ID or Key Vault unreachable",
            (_, ErrorClass::Local) => "Local storage failed",
        };
        // The status every door records in the activity log for this error.
        let status = StatusCode::from_u16(kvproxy_app::status_of(&e)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut api = ApiError::new(status, title, e.to_string());
        api.problem.class = Some(e.class());
        if let Some(fields) = e.field_errors() {
            api.problem.field = fields.as_slice().first().map(|f| f.field.to_string());
            api.problem.errors = fields
                .as_slice()
                .iter()
                .map(|f| FieldProblem {
                    field: f.field.to_string(),
                    message: f.message.clone(),
                })
                .collect();
        }
        if let Error::Entra(entra) = &e {
            api.problem.aadsts = entra.code;
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(&*self.problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(scheme) = self.www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
