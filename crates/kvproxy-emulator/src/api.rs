//! A protected demo API, the "resource" end of the story: it accepts only tokens the emulated
//! tenant issued for `api://kvproxy-demo`, so `kvproxy demo` and the tests can show that a minted
//! token actually opens a door (and that a wrong or expired one does not).

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::http::{json_response, not_found};
use crate::model::{DEMO_API_RESOURCE, Route};
use crate::state::Shared;
use crate::tokens;

pub(crate) fn handle(state: &Shared, parts: &Parts, route: Option<Route>) -> Response {
    if route != Some(Route::Api) {
        return not_found("the demo API only has GET /me");
    }
    let verified = match tokens::bearer(&parts.headers) {
        None => Err("the request has no Bearer token".to_owned()),
        Some(token) => tokens::verify(state, token, &[DEMO_API_RESOURCE]),
    };
    match verified {
        Ok(token) => json_response(
            StatusCode::OK,
            json!({
                "message": "Hello from the KeyVault Proxy demo API",
                "appid": token.str("appid"),
                "roles": token.claims.get("roles").cloned().unwrap_or_else(|| Value::Array(Vec::new())),
                "aud": token.str("aud"),
            }),
        ),
        Err(reason) => {
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_token", "error_description": reason}),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
    }
}
