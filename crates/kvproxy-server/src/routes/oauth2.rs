//! A standard OAuth2 client-credentials token endpoint (RFC 6749 §4.4), so the OAuth2 helpers built into
//! Postman, Insomnia and Bruno work unchanged: client id = profile name, client secret = API key.

use super::extract::FormBody;
use crate::guard::{HttpCaller, check_key};
use crate::state::HttpState;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kvproxy_app::TokenRequest;
use kvproxy_core::{Error, ErrorClass};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Form fields of a client-credentials request. Client id and secret go either here or as HTTP Basic.
#[derive(Deserialize, ToSchema)]
pub struct ClientCredentialsForm {
    /// Must be `client_credentials`.
    #[schema(required = true, value_type = String, pattern = "^client_credentials$")]
    pub grant_type: Option<String>,
    /// The profile name (or send it with the secret as HTTP Basic).
    #[schema(required = false, value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub client_id: Option<String>,
    /// The API key (or send it as HTTP Basic).
    #[schema(required = false, value_type = String)]
    pub client_secret: Option<String>,
    /// One `RESOURCE/.default`; empty or absent: the profile's first scope.
    #[schema(required = false, value_type = String, pattern = r"^([!-~]+/\.default)?$")]
    pub scope: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OAuthToken {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds left.
    #[schema(example = 3599)]
    pub expires_in: i64,
    pub scope: String,
}

/// RFC 6749 §5.2 error.
#[derive(Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_grant`, `access_denied` (a `confirm` profile the user did not approve), `server_error` or `temporarily_unavailable`.
    pub error: &'static str,
    pub error_description: String,
}

fn oauth_error(status: StatusCode, error: &'static str, description: impl Into<String>, basic: bool) -> Response {
    let mut response = (
        status,
        Json(OAuthError {
            error,
            error_description: description.into(),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        let scheme = if basic {
            "Basic realm=\"kvproxy\""
        } else {
            "Bearer realm=\"kvproxy\""
        };
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
    }
    response
}

/// OAuth2 client credentials: `client_id` = profile name, `client_secret` = API key.
#[utoipa::path(post, path = "/oauth2/v2.0/token", tag = "oauth2", operation_id = "oauth2_token",
    request_body(content = ClientCredentialsForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = OAuthToken), (status = 400, body = OAuthError), (status = 401, body = OAuthError), (status = 403, body = OAuthError),
        (status = 502, body = OAuthError), (status = 504, body = OAuthError)),
    security((), ("basic" = []), ("bearer" = [])))]
pub async fn token(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    headers: HeaderMap,
    form: Result<FormBody<ClientCredentialsForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(FormBody(form)) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return oauth_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is over 64 KiB",
                false,
            );
        }
        Err(rejection) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!(
                    "send an application/x-www-form-urlencoded body: {}",
                    rejection.body_text()
                ),
                false,
            );
        }
    };
    let authorizations: Vec<&str> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect();
    let basic = basic_credentials(&headers);
    let using_basic = basic.is_some();
    let refused = |description: &str| {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            description.to_string(),
            using_basic,
        )
    };
    // Every credential presented must be right. One Authorization header: HTTP Basic (client id and
    // secret), or the API key as a Bearer token as on the other routes; the X-Api-Key and
    // X-IDENTITY-HEADER headers, when sent here too, must carry the key as well.
    let bearer = match authorizations.as_slice() {
        [] => None,
        [_] if using_basic => None,
        [value] => match value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
            Some(token) => Some(token.trim()),
            None => return refused("the Authorization header must be HTTP Basic (client id and secret)"),
        },
        _ => return refused("send one Authorization header"),
    };
    let (basic_id, basic_secret) = basic.map_or((None, None), |(id, secret)| (Some(id), Some(secret)));
    let Some(client_id) = basic_id.clone().or(form.client_id.clone()) else {
        return refused("client_id is required: the name of a KeyVault Proxy profile");
    };
    if form
        .client_id
        .as_ref()
        .is_some_and(|id| Some(id) != basic_id.as_ref() && basic_id.is_some())
    {
        return refused("client_id in the form and in the Basic header differ");
    }
    let secrets: Vec<&str> = basic_secret
        .as_deref()
        .into_iter()
        .chain(form.client_secret.as_deref())
        .chain(bearer)
        .chain(crate::guard::presented_key_headers(&headers))
        .collect();
    if basic_secret.is_none() && form.client_secret.is_none() {
        return refused("client_secret is required: the API key (`kvproxy api-key show`)");
    }
    if check_key(&state.app, secrets).is_err() {
        return refused("wrong client_secret: it must be the API key (`kvproxy api-key show`)");
    }
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required and must be client_credentials",
                using_basic,
            );
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type '{other}' is not supported; use client_credentials"),
                using_basic,
            );
        }
    }
    let profile = match state.app.profile(Some(&client_id)) {
        Ok(profile) => profile,
        Err(Error::ProfileNotFound(_)) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                format!("client_id '{client_id}' is not a profile name (see GET /api/profiles)"),
                using_basic,
            );
        }
        Err(e) => {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
                using_basic,
            );
        }
    };
    let scope = form.scope.filter(|s| !s.trim().is_empty());
    let request = TokenRequest {
        profile: Some(&profile.name),
        scope: scope.as_deref(),
        skip_cache: false,
    };
    match state.app.token(request, &caller).await {
        Ok(issued) => {
            let mut response = Json(OAuthToken {
                access_token: issued.access_token.expose().to_string(),
                token_type: "Bearer",
                expires_in: issued.lifetime().whole_seconds(),
                scope: issued.scope.clone(),
            })
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            let (status, code) = match (&e, e.class()) {
                (Error::Invalid(fields), _) if fields.get("scope").is_some() => {
                    (StatusCode::BAD_REQUEST, "invalid_scope")
                }
                (Error::NotApproved(_), _) => (StatusCode::FORBIDDEN, "access_denied"),
                (_, ErrorClass::Input) => (StatusCode::BAD_REQUEST, "invalid_request"),
                (_, ErrorClass::Auth) => (StatusCode::BAD_GATEWAY, "invalid_grant"),
                (_, ErrorClass::Network) => (StatusCode::GATEWAY_TIMEOUT, "temporarily_unavailable"),
                (_, ErrorClass::Local) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            };
            oauth_error(status, code, e.to_string(), using_basic)
        }
    }
}

/// `Authorization: Basic base64(client_id:client_secret)`, form-urlencoded inside as RFC 6749 §2.3.1 says.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}
