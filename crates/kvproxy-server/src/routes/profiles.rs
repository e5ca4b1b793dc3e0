//! The profile-based way: name a profile, get its token.

use super::extract::{ProfileName, QueryParams};
use crate::guard::HttpCaller;
use crate::problem::{ApiResult, Problem};
use crate::state::HttpState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kvproxy_app::TokenRequest;
use kvproxy_core::IssuedToken;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A profile as the API shows it: no secrets (there are none in a profile anyway).
#[derive(Serialize, ToSchema)]
pub struct ProfileSummary {
    pub name: String,
    /// Used when no profile is named (e.g. `/msi/token`).
    pub default: bool,
    pub tenant: String,
    pub client_id: String,
    pub vault_url: String,
    pub certificate: String,
    pub scopes: Vec<String>,
    /// `PS256` or `RS256`.
    pub algorithm: String,
    pub cloud: String,
    /// Points at the local demo tenant, not Azure.
    pub demo: bool,
}

/// All profiles.
#[utoipa::path(get, path = "/api/profiles", tag = "profiles",
    responses((status = 200, body = [ProfileSummary]), (status = 401, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(state): State<HttpState>) -> ApiResult<Json<Vec<ProfileSummary>>> {
    let profiles = state.app.profiles();
    if profiles.error.is_some() {
        // While the file is broken the API says so (with its path) rather than list the last good one.
        state.app.profile_store().load()?;
    }
    Ok(Json(
        profiles
            .file
            .profiles
            .values()
            .map(|p| ProfileSummary {
                name: p.name.clone(),
                default: profiles.is_default(&p.name),
                tenant: p.tenant.clone(),
                client_id: p.client_id.clone(),
                vault_url: p.vault_url.clone(),
                certificate: p.certificate.clone(),
                scopes: p.scopes.clone(),
                algorithm: p.algorithm.as_str().into(),
                cloud: p.cloud.as_str().into(),
                demo: p.is_demo(),
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Scope instead of the profile's first, e.g. `api://my-api/.default`.
    #[param(pattern = r"^[!-~]+/\.default$")]
    pub scope: Option<String>,
    /// `raw`: answer the bare token as text/plain, for scripts. Default: `json`.
    #[param(pattern = "^(raw|json)$")]
    pub format: Option<String>,
    /// Ignore the cached token and fetch a new one (`true` or `false`).
    #[serde(default)]
    pub skip_cache: bool,
}

/// A token with its expiry. Borrowed from the issued token: the answer is the one copy made of it.
#[derive(Serialize, ToSchema)]
pub struct ProfileToken<'a> {
    pub access_token: &'a str,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Expiry, seconds since the Unix epoch.
    #[schema(example = 1_795_996_460)]
    pub expires_on: i64,
    /// Seconds left.
    #[schema(example = 3599)]
    pub expires_in: i64,
    pub scope: &'a str,
    pub profile: &'a str,
    /// Minted by the local demo tenant; Azure does not accept it.
    pub demo: bool,
    /// Served from the in-memory cache.
    pub from_cache: bool,
}

impl<'a> From<&'a IssuedToken> for ProfileToken<'a> {
    fn from(t: &'a IssuedToken) -> Self {
        Self {
            access_token: t.access_token.expose(),
            token_type: "Bearer",
            expires_on: t.expires_on.unix_timestamp(),
            expires_in: t.lifetime().whole_seconds(),
            scope: &t.scope,
            profile: &t.profile,
            demo: t.demo,
            from_cache: t.from_cache,
        }
    }
}

/// A token for a profile.
#[utoipa::path(get, path = "/api/profiles/{name}/token", tag = "profiles", operation_id = "profile_token",
    params(("name" = String, Path, description = "Profile name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), TokenQuery),
    responses(
        (status = 200, description = "JSON, or the bare token as text/plain with `format=raw`",
            content((ProfileToken = "application/json"), (String = "text/plain"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 502, body = Problem, description = "Entra ID or Key Vault refused"),
        (status = 504, body = Problem, description = "Entra ID or Key Vault unreachable")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn token(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    ProfileName(name): ProfileName,
    QueryParams(query): QueryParams<TokenQuery>,
) -> ApiResult<Response> {
    // Checked before minting: a typo must not cost a sign and a token request.
    let raw = match query.format.as_deref() {
        Some("raw") => true,
        None | Some("json") => false,
        Some(other) => {
            return Err(crate::problem::ApiError::bad_field(
                "format",
                format!("unknown format '{other}'; use raw or json"),
            ));
        }
    };
    let request = TokenRequest {
        profile: Some(&name),
        scope: query.scope.as_deref(),
        skip_cache: query.skip_cache,
    };
    let issued = state.app.token(request, &caller).await?;
    let response = if raw {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            issued.access_token.expose().to_string(),
        )
            .into_response()
    } else {
        Json(ProfileToken::from(&issued)).into_response()
    };
    Ok(response)
}
