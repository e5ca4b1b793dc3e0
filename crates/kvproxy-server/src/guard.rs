//! The guard in front of every route. The threat is not Azure but everything else that can reach
//! `localhost`: web pages (CSRF, DNS rebinding), other users and processes. So: `Host` must name this
//! machine, a foreign `Origin` is refused, no CORS headers are ever sent, and every route that hands out
//! tokens or tells about them needs the API key, checked by [`require_key`] before the route reads its path,
//! query or body (the OAuth2 route, whose key may be the form's `client_secret`, asks [`check_key`] itself).

use crate::peer::Connection;
use crate::problem::ApiError;
use crate::state::HttpState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kvproxy_app::{App, Caller};
use std::time::Instant;

pub async fn guard(State(state): State<HttpState>, mut request: Request, next: Next) -> Response {
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
    let Some(route) = route.filter(|route| is_logged_route(route)) else {
        return next.run(request).await;
    };
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut caller = Caller::http(request.method().as_str(), &route, user_agent);
    if let Some(connection) = request.extensions().get::<Connection>() {
        caller = caller.identified(connection.identity().await);
    }
    let (caller, receipt) = caller.with_receipt();
    request.extensions_mut().insert(caller.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    // Refused before it reached the app (no key, a bad parameter): the app did not record it, so we do.
    if !receipt.recorded() {
        state
            .app
            .activity()
            .record(&caller, None, response.status().as_u16(), started);
    }
    response
}

/// The caller of a token route, as the guard saw it, for the app's activity log.
pub struct HttpCaller(pub Caller);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for HttpCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned().unwrap_or_else(|| {
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map_or(parts.uri.path(), |p| p.as_str());
            Caller::http(parts.method.as_str(), route, None)
        });
        Ok(Self(caller))
    }
}

fn is_logged_route(route: &str) -> bool {
    route.starts_with("/api/Token/") || route.ends_with("/token")
}

fn check_host(state: &HttpState, headers: &HeaderMap) -> Result<(), ApiError> {
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

fn check_origin(state: &HttpState, headers: &HeaderMap) -> Result<(), ApiError> {
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

/// Every credential the request presents in its headers, in any of the forms the supported protocols use:
/// each `Authorization` header (its Bearer token, or the whole value for any other scheme, which can never
/// be the key), each `X-Api-Key` and each `X-IDENTITY-HEADER`, repeated headers included. A header that is
/// not text is presented too, as one that cannot match.
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

/// Why a request's credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Missing,
    Wrong,
}

/// The one check of the API key. Every credential presented must be the key: a wrong one next to the right
/// one is refused, so a caller never gets a token on the strength of one header while another says
/// something else.
pub fn check_key<'a>(app: &App, presented: impl IntoIterator<Item = &'a str>) -> Result<(), KeyRefusal> {
    let mut presented = presented.into_iter().peekable();
    if presented.peek().is_none() {
        return Err(KeyRefusal::Missing);
    }
    if app.api_key_accepts(presented) {
        Ok(())
    } else {
        Err(KeyRefusal::Wrong)
    }
}

/// Layered on every route that needs the key (but OAuth2's): runs before the route's extractors, so a
/// request without the key is a 401 whatever its path, query or body say.
pub async fn require_key(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    match check_key(&state.app, presented_keys(request.headers())) {
        Ok(()) => next.run(request).await,
        Err(KeyRefusal::Missing) => ApiError::unauthorized(format!("missing API key: {KEY_HELP}")).into_response(),
        Err(KeyRefusal::Wrong) => ApiError::unauthorized(format!("wrong API key: {KEY_HELP}")).into_response(),
    }
}
