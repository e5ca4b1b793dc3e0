//! The Azure App Service managed-identity protocol, so any Azure SDK's ManagedIdentityCredential (and
//! DefaultAzureCredential) gets the profile's app token with `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` set
//! and no code change. The profile is in the path, so each app on the machine can have its own identity.

use super::extract::{ProfileName, QueryParams};
use crate::guard::HttpCaller;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::HttpState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use kvproxy_app::TokenRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MsiQuery {
    /// Must be `2019-08-01`.
    #[serde(rename = "api-version")]
    #[param(required = true, value_type = String, pattern = "^2019-08-01$")]
    pub api_version: Option<String>,
    /// The resource, e.g. `https://management.azure.com`; the scope asked for is `{resource}/.default`.
    #[param(required = true, value_type = String, pattern = r"^[!-~]+$")]
    pub resource: Option<String>,
    /// Optional; the profile's client id. Another app's id is 404: this endpoint has no such identity.
    #[param(value_type = String, pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")]
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
#[utoipa::path(get, path = "/msi/token", tag = "managed-identity", operation_id = "msi_default_token", params(MsiQuery),
    responses((status = 200, body = MsiToken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("identity_header" = []), ("bearer" = []), ("api_key" = [])))]
pub async fn default_token(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    QueryParams(query): QueryParams<MsiQuery>,
) -> ApiResult<Response> {
    respond(state, caller, None, query).await
}

/// Managed-identity token for a named profile.
#[utoipa::path(get, path = "/msi/{profile}/token", tag = "managed-identity", operation_id = "msi_profile_token",
    params(("profile" = String, Path, description = "Profile name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), MsiQuery),
    responses((status = 200, body = MsiToken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("identity_header" = []), ("bearer" = []), ("api_key" = [])))]
pub async fn profile_token(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    // The query first: its errors (a missing `api-version`) are the ones MSI clients are told about first.
    QueryParams(query): QueryParams<MsiQuery>,
    ProfileName(profile): ProfileName,
) -> ApiResult<Response> {
    respond(state, caller, Some(profile), query).await
}

/// `profile` is `None` for `/msi/token`, which serves the default profile.
async fn respond(
    state: HttpState,
    caller: kvproxy_app::Caller,
    profile: Option<String>,
    query: MsiQuery,
) -> ApiResult<Response> {
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
    let profile = state.app.profile(profile.as_deref())?;
    if let Some(client_id) = &query.client_id
        && !client_id.eq_ignore_ascii_case(&profile.client_id)
    {
        // The managed-identity protocol's "no such identity here": the request is well formed.
        let mut error = ApiError::not_found(format!(
            "profile '{}' is app {}, not {client_id}: this endpoint has no identity {client_id}",
            profile.name, profile.client_id
        ));
        error.problem.field = Some("client_id".into());
        return Err(error);
    }
    let scope = format!("{resource}/.default");
    let request = TokenRequest {
        profile: Some(&profile.name),
        scope: Some(&scope),
        skip_cache: false,
    };
    let issued = state.app.token(request, &caller).await.map_err(|e| {
        // The scope is made from `resource`, the parameter the caller sent and has to fix.
        let mut error = ApiError::from(e);
        error.rename_fields(|field| if field == "scope" { "resource" } else { field });
        error
    })?;
    let body = MsiToken {
        access_token: issued.access_token.expose().to_string(),
        expires_on: issued.expires_on.unix_timestamp().to_string(),
        resource,
        token_type: "Bearer",
        client_id: profile.client_id.clone(),
    };
    Ok(Json(body).into_response())
}
