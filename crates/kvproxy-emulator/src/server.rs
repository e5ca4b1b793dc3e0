//! The single HTTPS entry point: picks the emulated service from the `Host` header, then applies
//! the test knobs (counters, latency, injected faults) before the service handles the request.
//!
//! One listener with virtual hosts (instead of a port per service) is what lets clients use
//! realistic URLs (`https://login.localhost:P/…`, `https://demo.vault.localhost:P/…`) whose host
//! names the Azure SDK's checks accept, while tests only need to know one port.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use crate::http::{json_response, not_found, segments};
use crate::model::{Fault, Route};
use crate::state::SharedState;
use crate::{api, entra, graph, keyvault};

/// Largest request body accepted; every legitimate request is a few kilobytes.
const MAX_BODY: usize = 256 * 1024;

/// Which emulated service a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Service {
    Entra,
    Vault(String),
    Api,
    Graph,
    Unknown,
}

impl Service {
    fn from_host(host: &str) -> Self {
        match host {
            "login.localhost" => Self::Entra,
            "api.localhost" => Self::Api,
            "graph.localhost" => Self::Graph,
            _ => match host.strip_suffix(".vault.localhost") {
                Some(vault) if !vault.is_empty() && !vault.contains('.') => Self::Vault(vault.to_owned()),
                _ => Self::Unknown,
            },
        }
    }
}

pub(crate) fn router(state: SharedState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// The request's host without port, lowercased. HTTP/2 clients send `:authority` instead of `Host`,
/// which hyper exposes in the URI.
fn request_host(parts: &Parts) -> Option<String> {
    let raw = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal; never one of our virtual hosts, but keep it intact for error messages.
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.rsplit_once(':').map_or(raw, |(host, _port)| host)
    };
    Some(host.to_ascii_lowercase())
}

async fn dispatch(State(state): State<SharedState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let host = request_host(&parts).unwrap_or_default();
    let service = Service::from_host(&host);
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": {"code": "RequestTooLarge", "message": "The request body is too large or could not be read."}}),
            );
        }
    };

    let route = route_of(&service, &parts.method, parts.uri.path(), &body);
    // Real Key Vault authenticates before it throttles or fails, so the challenge comes first and is
    // not counted as an operation: counters then say how many signs and reads actually happened.
    if let (Service::Vault(vault), Some(_)) = (&service, route)
        && let Some(challenge) = keyvault::challenge_if_unauthenticated(&state, vault, &parts)
    {
        return challenge;
    }
    if let Some(route) = route {
        state.count(route);
    }
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(route) = route
        && let Some(fault) = state.take_fault(route)
    {
        return fault_response(&state, route, &fault, &parts.headers);
    }

    match &service {
        Service::Entra => entra::handle(&state, &parts, &body),
        Service::Vault(vault) => keyvault::handle(&state, vault, &parts, &body, route),
        Service::Api => api::handle(&state, &parts, route),
        Service::Graph => graph::handle(&state, &parts, route),
        Service::Unknown => not_found(&format!("no emulated service at host '{host}'")),
    }
}

fn route_of(service: &Service, method: &Method, path: &str, body: &Bytes) -> Option<Route> {
    let segs = segments(path);
    match service {
        Service::Entra => match (method, segs.as_slice()) {
            (&Method::POST, [_, "oauth2", "v2.0", "token"]) => Some(if has_client_secret(body) {
                Route::DeveloperToken
            } else {
                Route::Token
            }),
            (&Method::GET, [_, "v2.0", ".well-known", "openid-configuration"])
            | (&Method::GET, [_, "discovery", "v2.0", "keys"]) => Some(Route::Discovery),
            _ => None,
        },
        Service::Vault(_) => match (method, segs.as_slice()) {
            (&Method::GET, ["certificates", _, ..]) => Some(Route::GetCertificate),
            (&Method::GET, ["keys", _, ..]) => Some(Route::GetKey),
            (&Method::POST, ["keys", _, _, "sign"]) => Some(Route::Sign),
            _ => None,
        },
        Service::Api => match (method, segs.as_slice()) {
            (&Method::GET, ["me"]) => Some(Route::Api),
            _ => None,
        },
        Service::Graph => match (method, segs.as_slice()) {
            (&Method::GET, ["v1.0", entity]) if graph::app_id_of(entity).is_some() => Some(Route::GraphApplication),
            _ => None,
        },
        Service::Unknown => None,
    }
}

fn has_client_secret(body: &Bytes) -> bool {
    url::form_urlencoded::parse(body).any(|(k, v)| k == "client_secret" && !v.is_empty())
}

fn fault_response(state: &SharedState, route: Route, fault: &Fault, headers: &HeaderMap) -> Response {
    let (status, retry_after) = match fault {
        Fault::TooManyRequests { retry_after_secs } => (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after_secs)),
        Fault::ServerError(code) => (
            StatusCode::from_u16(*code)
                .ok()
                .filter(StatusCode::is_server_error)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            None,
        ),
    };
    let mut response = match route {
        Route::Token | Route::DeveloperToken | Route::Discovery => entra::transient_error(state, status, headers),
        Route::GraphApplication => graph::transient_error(status),
        Route::GetCertificate | Route::Sign | Route::GetKey => {
            let (code, message) = if status == StatusCode::TOO_MANY_REQUESTS {
                (
                    "Throttled",
                    "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                )
            } else {
                (
                    status.canonical_reason().unwrap_or("ServerError"),
                    "The service encountered an internal error. Please try again.",
                )
            };
            let code = code.replace(' ', "");
            keyvault::error_response(status, &code, message)
        }
        Route::Api => json_response(
            status,
            json!({"error": if retry_after.is_some() { "throttled" } else { "server_error" },
                   "error_description": "Fault injected by the KeyVault Proxy emulator."}),
        ),
    };
    if let Some(secs) = retry_after
        && let Ok(value) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_map_to_services() {
        assert_eq!(Service::from_host("login.localhost"), Service::Entra);
        assert_eq!(Service::from_host("api.localhost"), Service::Api);
        assert_eq!(Service::from_host("graph.localhost"), Service::Graph);
        assert_eq!(
            Service::from_host("demo.vault.localhost"),
            Service::Vault("demo".into())
        );
        assert_eq!(Service::from_host("vault.localhost"), Service::Unknown);
        assert_eq!(Service::from_host("a.b.vault.localhost"), Service::Unknown);
        assert_eq!(Service::from_host("localhost"), Service::Unknown);
    }
}
