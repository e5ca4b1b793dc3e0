//! The Azure App Service managed-identity protocol, so any Azure SDK's ManagedIdentityCredential (and
//! DefaultAzureCredential) gets the profile's app token with `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` set
//! and no code change. The profile is in the path, so each app on the machine can have its own identity.

use super::extract::QueryParams;
use super::with_profile;
use crate::guard::require_key;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use kvproxy_core::TokenOptions;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct MsiQuery {
    /// Must be `2019-08-01`.
    #[serde(rename = "api-version")]
    pub api_version: Option<String>,
    /// The resource, e.g. `https://management.azure.com`; the scope asked for is `{resource}/.default`.
    pub resource: Option<String>,
    /// Optional; when given it must be the profile's client id.
    pub client_id: Option<String>,
}

/// The App Service managed-identity answer.
#[derive(Serialize, ToSchema)]
pub struct MsiToken {
    pub access_token: String,
    /// Expiry in seconds since the Unix epoch, as a string (the protocol's format).
    pub expires_on: String,
    pub resource: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub client_id: String,
}

/// Managed-identity token for the default profile.
#[utoipa::path(get, path = "/msi/token", tag = "managed-identity", params(MsiQuery),
    responses((status = 200, body = MsiToken), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("identity_header" = [])))]
pub async fn default_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<MsiQuery>,
) -> ApiResult<Response> {
    respond(state, headers, None, query).await
}

/// Managed-identity token for a named profile.
#[utoipa::path(get, path = "/msi/{profile}/token", tag = "managed-identity",
    params(("profile" = String, Path, description = "Profile name"), MsiQuery),
    responses((status = 200, body = MsiToken), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("identity_header" = [])))]
pub async fn profile_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(profile): Path<String>,
    QueryParams(query): QueryParams<MsiQuery>,
) -> ApiResult<Response> {
    respond(state, headers, Some(profile), query).await
}

/// `profile` is `None` for `/msi/token`, which serves the default profile.
async fn respond(state: AppState, headers: HeaderMap, profile: Option<String>, query: MsiQuery) -> ApiResult<Response> {
    require_key(&state, &headers)?;
    match query.api_version.as_deref() {
        Some("2019-08-01") => {}
        Some(other) => {
            return Err(ApiError::bad_field(
                "api-version",
                format!("api-version '{other}' is not supported; use 2019-08-01"),
            ));
        }
        None => return Err(ApiError::bad_field("api-version", "api-version=2019-08-01 is required")),
    }
    let resource = query.resource.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_field(
            "resource",
            "resource is required, e.g. resource=https://management.azure.com",
        )
    })?;
    let profile = state.profiles.get_or_default(profile.as_deref())?.resolve()?;
    if let Some(client_id) = &query.client_id
        && !client_id.eq_ignore_ascii_case(&profile.client_id)
    {
        return Err(ApiError::bad_field(
            "client_id",
            format!(
                "profile '{}' is app {}, not {client_id}",
                profile.name, profile.client_id
            ),
        ));
    }
    let scope = format!("{resource}/.default");
    let issued = state
        .broker
        .token(&profile, Some(&scope), TokenOptions::default())
        .await?;
    let body = MsiToken {
        access_token: issued.access_token.expose().to_string(),
        expires_on: issued.expires_on.unix_timestamp().to_string(),
        resource,
        token_type: "Bearer",
        client_id: profile.client_id.clone(),
    };
    Ok(with_profile(Json(body), &profile.name))
}
