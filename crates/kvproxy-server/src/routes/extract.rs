//! JSON and form bodies whose rejections are problem documents naming the field, not axum's plain text.

use crate::problem::ApiError;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, "Request too large", "the request body is over 64 KiB");
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return ApiError::new(
            status,
            "Unsupported media type",
            "send the body as JSON with 'Content-Type: application/json'",
        );
    }
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, "Invalid request", text.clone());
    error.problem.field = field_in(&text);
    error
}

/// The field a deserialisation error is about. serde_path_to_error (used by axum) prefixes type errors
/// with the path ("…target type: skipCache: invalid type…"); serde names missing or unknown fields in
/// backticks ("missing field `clientId`").
fn field_in(message: &str) -> Option<String> {
    const PREFIXES: [&str; 2] = [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to deserialize query string: ",
    ];
    for prefix in PREFIXES {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((path, _)) = rest.split_once(": ")
            && !path.contains(' ')
        {
            let first = path.split(['.', '[']).next().unwrap_or(path);
            if !first.is_empty() {
                return Some(first.to_string());
            }
        }
    }
    if !message.contains("field") {
        return None;
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// Query parameters whose rejection is a problem document naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let mut error = ApiError::new(StatusCode::BAD_REQUEST, "Invalid query string", text.clone());
                error.problem.field = field_in(&text);
                Err(error)
            }
        }
    }
}

pub struct FormBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormBody<T> {
    type Rejection = FormRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(v)| Self(v))
    }
}

/// The profile name of a `/…/{name}/…` route. axum's own rejection (a name that is not UTF-8 once
/// percent-decoded) is plain text; callers get a problem document naming `profile`.
pub struct ProfileName(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ProfileName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(name)) => Ok(Self(name)),
            Err(rejection) => Err(ApiError::bad_field(
                "profile",
                format!("the profile name in the path is not valid: {}", rejection.body_text()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_names_are_pulled_from_serde_messages() {
        assert_eq!(
            super::field_in("Failed to deserialize: missing field `clientId` at line 1").as_deref(),
            Some("clientId")
        );
        assert_eq!(super::field_in("expected value at line 1 column 1"), None);
        assert_eq!(
            super::field_in("Failed to deserialize the JSON body into the target type: skipCache: invalid type: string \"yes\", expected a boolean at line 1 column 20").as_deref(),
            Some("skipCache")
        );
        assert_eq!(
            super::field_in(
                "Failed to deserialize query string: skip_cache: provided string was not `true` or `false`"
            )
            .as_deref(),
            Some("skip_cache")
        );
    }
}
