//! The profile-based way: name a profile, get its token.

use super::extract::{ProfileName, QueryParams};
use super::with_profile;
use crate::guard::require_key;
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use kvproxy_core::{IssuedToken, TokenOptions};
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
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Vec<ProfileSummary>>> {
    require_key(&state, &headers)?;
    let file = state.profiles.load()?;
    Ok(Json(
        file.profiles
            .values()
            .map(|p| ProfileSummary {
                name: p.name.clone(),
                default: file.default.as_deref() == Some(p.name.as_str()),
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

/// A token with its expiry.
#[derive(Serialize, ToSchema)]
pub struct ProfileToken {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Expiry, seconds since the Unix epoch.
    #[schema(example = 1_795_996_460)]
    pub expires_on: i64,
    /// Seconds left.
    #[schema(example = 3599)]
    pub expires_in: i64,
    pub scope: String,
    pub profile: String,
    /// Minted by the local demo tenant; Azure does not accept it.
    pub demo: bool,
    /// Served from the in-memory cache.
    pub from_cache: bool,
}

impl From<&IssuedToken> for ProfileToken {
    fn from(t: &IssuedToken) -> Self {
        Self {
            access_token: t.access_token.expose().to_string(),
            token_type: "Bearer",
            expires_on: t.expires_on.unix_timestamp(),
            expires_in: t.lifetime().whole_seconds(),
            scope: t.scope.clone(),
            profile: t.profile.clone(),
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
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 502, body = Problem, description = "Entra ID or Key Vault refused"),
        (status = 504, body = Problem, description = "Entra ID or Key Vault unreachable")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    ProfileName(name): ProfileName,
    QueryParams(query): QueryParams<TokenQuery>,
) -> ApiResult<Response> {
    require_key(&state, &headers)?;
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
    let profile = state.profiles.get(&name)?.resolve()?;
    let issued = state
        .broker
        .token(
            &profile,
            query.scope.as_deref(),
            TokenOptions {
                skip_cache: query.skip_cache,
            },
        )
        .await?;
    let response = if raw {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            issued.access_token.expose().to_string(),
        )
            .into_response()
    } else {
        Json(ProfileToken::from(&issued)).into_response()
    };
    Ok(with_profile(response, &name))
}
