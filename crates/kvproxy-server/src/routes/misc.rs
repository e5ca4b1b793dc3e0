//! Liveness, the activity log and the JSON 404/405.

use crate::problem::{ApiError, Problem};
use crate::state::HttpState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use kvproxy_app::ActivityRecord;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness. Needs no API key and tells nothing about profiles or tokens.
#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Recent token requests (newest first): time, route, profile, client, outcome, duration. No token values.
#[utoipa::path(get, path = "/api/activity", tag = "meta",
    responses((status = 200, body = [ActivityRecord]), (status = 401, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn activity(State(state): State<HttpState>) -> Json<Vec<ActivityRecord>> {
    Json(state.app.activity().snapshot())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; the routes are listed at /swagger/index.html",
        uri.path()
    ))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this route exists but not with this method; see /swagger/index.html",
    )
}
