//! The guard in front of every route. The threat is not Azure but everything else that can reach
//! `localhost`: web pages (CSRF, DNS rebinding), other users and processes. So: `Host` must name this
//! machine, a foreign `Origin` is refused, no CORS headers are ever sent, and token routes need the key.

use crate::activity::ActivityRecord;
use crate::api_key;
use crate::problem::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Set by token handlers on their response, so the activity log knows the profile.
#[derive(Clone, Debug)]
pub struct ActivityProfile(pub String);

pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(e) = check_host(&state, request.headers()) {
        return e.into_response();
    }
    if let Err(e) = check_origin(&state, request.headers()) {
        return e.into_response();
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let logged = route.as_deref().is_some_and(is_logged_route);
    let method = request.method().to_string();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let started = Instant::now();
    let response = next.run(request).await;
    if logged {
        state.activity.push(ActivityRecord {
            time: ActivityRecord::now(),
            method,
            route: route.unwrap_or_default(),
            profile: response.extensions().get::<ActivityProfile>().map(|p| p.0.clone()),
            user_agent,
            status: response.status().as_u16(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    response
}

fn is_logged_route(route: &str) -> bool {
    route.starts_with("/api/Token/") || route.ends_with("/token")
}

fn check_host(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    let allowed = matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
        || state.extra_hosts.iter().any(|ip| ip.to_string() == name);
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Host not allowed",
            format!(
                "this server only answers requests for localhost, 127.0.0.1 or [::1], not '{host}' (DNS rebinding protection)"
            ),
        ))
    }
}

fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let port = state.port;
    let own = [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    ];
    if own.iter().any(|o| o == origin) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Origin not allowed",
            format!(
                "requests from web pages of other origins ('{origin}') are refused (CSRF protection); call the API from a tool, a script or the Swagger page"
            ),
        ))
    }
}

/// Every credential the request presents, in any of the forms the supported protocols use: each
/// `Authorization` header (its Bearer token, or the whole value for any other scheme, which can never be
/// the key), each `X-Api-Key` and each `X-IDENTITY-HEADER`, repeated headers included. A header that is not
/// text is presented too, as one that cannot match.
pub fn presented_keys(headers: &HeaderMap) -> Vec<&str> {
    let bearer = headers.get_all(header::AUTHORIZATION).iter().map(|v| {
        let v = text(v);
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map_or(v, str::trim)
    });
    bearer.chain(presented_key_headers(headers)).collect()
}

/// The values of `X-Api-Key` and `X-IDENTITY-HEADER`, repeated headers included.
pub fn presented_key_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let api_key = headers.get_all("x-api-key").iter().map(text);
    let identity = headers.get_all("x-identity-header").iter().map(text);
    api_key.chain(identity)
}

/// A header value as text; one that is not text is a credential that cannot match.
fn text(value: &axum::http::HeaderValue) -> &str {
    value.to_str().unwrap_or("\u{0}")
}

pub const KEY_HELP: &str = "send the API key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>' (managed identity clients: 'X-IDENTITY-HEADER'); print it with `kvproxy api-key show`";

/// Extractor form of [`require_key`]: listed before a body extractor, it refuses a request without the
/// key before its body is read or parsed.
pub struct Authorized;

impl axum::extract::FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        require_key(state, &parts.headers).map(|()| Authorized)
    }
}

/// Every credential presented must be the key: a wrong one next to the right one is refused, so a caller
/// never gets a token on the strength of one header while another says something else.
pub fn require_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = presented_keys(headers);
    if presented.is_empty() {
        return Err(ApiError::unauthorized(format!("missing API key: {KEY_HELP}")));
    }
    let key = state.api_key.read();
    if presented.iter().all(|p| api_key::matches(&key, p)) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!("wrong API key: {KEY_HELP}")))
    }
}
