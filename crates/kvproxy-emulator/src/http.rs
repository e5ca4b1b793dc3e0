//! Small HTTP helpers every emulated service uses. A leaf module: it imports nothing of the crate, so the
//! services and the router that dispatches to them do not import each other.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Path segments after the leading slash; empty segments are kept because the Azure SDK sends
/// `/keys/{name}//sign` when it wants the latest version.
pub(crate) fn segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The catch-all answer.
pub(crate) fn not_found(message: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"code": "NotFound", "message": message}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_segments_are_kept() {
        assert_eq!(segments("/keys/k//sign"), vec!["keys", "k", "", "sign"]);
        assert_eq!(segments("/certificates/c/"), vec!["certificates", "c", ""]);
    }
}
