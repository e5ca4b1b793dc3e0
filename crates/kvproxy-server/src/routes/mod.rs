//! Route handlers, one module per dialect.

pub mod dotnet;
pub mod extract;
pub mod misc;
pub mod msi;
pub mod oauth2;
pub mod profiles;

use crate::guard::ActivityProfile;
use axum::response::{IntoResponse, Response};

/// Tags a response with the profile it served, for the activity log.
pub(crate) fn with_profile(response: impl IntoResponse, profile: &str) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(ActivityProfile(profile.to_string()));
    response
}
