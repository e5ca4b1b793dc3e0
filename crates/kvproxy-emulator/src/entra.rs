//! The emulated Microsoft Entra ID: the v2.0 token endpoint (client credentials with a client
//! secret or a certificate-signed client assertion) and the discovery documents.
//!
//! The point of emulating Entra rather than stubbing it is that client assertions are verified
//! the way Entra does it — thumbprint lookup among the certificates registered on the app,
//! PS256/RS256 signature, audience, issuer/subject, time window, `jti` replay — and rejections come
//! back with Entra's error shape and AADSTS codes, so KeyVault Proxy's error mapping is exercised
//! against realistic answers.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::crypto::{self, Jwt, SignAlg};
use crate::http::{json_response, not_found, segments};
use crate::model::{DEVELOPER_CLIENT_ID, DEVELOPER_CLIENT_SECRET, DEVELOPER_OBJECT_ID};
use crate::state::{RegisteredCert, Shared};
use crate::tokens::{self, TokenRequest};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew Entra tolerates on client assertions.
const ASSERTION_SKEW_SECS: i64 = 300;
/// Longest client assertion lifetime Entra accepts (before skew).
const ASSERTION_MAX_LIFETIME_SECS: i64 = 600;
const CERT_CREDENTIALS_DOC: &str = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials";

/// An Entra error answer before the per-request ids are attached.
#[derive(Debug)]
pub(crate) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

impl EntraError {
    fn new(status: StatusCode, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90033,
            "A transient error has occurred. Please try again.",
        )
    }

    /// The JSON body and headers Entra sends: description with trace/correlation ids and
    /// timestamp appended, `error_codes`, `error_uri`.
    fn respond(self, state: &Shared, headers: &HeaderMap) -> Response {
        let trace_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = correlation_id(headers);
        let timestamp = entra_timestamp(OffsetDateTime::now_utc());
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            self.code, self.message
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{}/error?code={}", state.settings.authority_host(), self.code),
        });
        with_entra_headers(json_response(self.status, body), &trace_id, &correlation_id)
    }
}

/// Entra's timestamp format, e.g. `2024-05-01 12:34:56Z`.
fn entra_timestamp(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&format).unwrap_or_default()
}

/// Entra echoes the caller's `client-request-id` as the correlation id when it is a GUID.
fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .to_string()
}

fn with_entra_headers(mut response: Response, trace_id: &str, correlation_id: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(trace_id) {
        headers.insert("x-ms-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(correlation_id) {
        headers.insert("client-request-id", v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    response
}

/// The Entra-shaped answer for an injected 429/5xx fault.
pub(crate) fn transient_error(state: &Shared, status: StatusCode, headers: &HeaderMap) -> Response {
    let error = if status == StatusCode::TOO_MANY_REQUESTS {
        EntraError::new(
            status,
            "temporarily_unavailable",
            50196,
            "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.",
        )
    } else {
        let mut error = EntraError::server_error();
        error.status = status;
        error
    };
    error.respond(state, headers)
}

pub(crate) fn handle(state: &Shared, parts: &Parts, body: &Bytes) -> Response {
    let path_segments = segments(parts.uri.path());
    match (&parts.method, path_segments.as_slice()) {
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => match token(state, tenant, body) {
            Ok(response) => {
                let trace_id = uuid::Uuid::new_v4().to_string();
                with_entra_headers(
                    json_response(StatusCode::OK, response),
                    &trace_id,
                    &correlation_id(&parts.headers),
                )
            }
            Err(error) => error.respond(state, &parts.headers),
        },
        (&Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            if !state.settings.is_tenant(tenant) {
                return tenant_not_found(tenant).respond(state, &parts.headers);
            }
            json_response(StatusCode::OK, openid_configuration(state))
        }
        (&Method::GET, [tenant, "discovery", "v2.0", "keys"]) => {
            let multi_tenant = ["common", "organizations"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(tenant));
            if !multi_tenant && !state.settings.is_tenant(tenant) {
                return tenant_not_found(tenant).respond(state, &parts.headers);
            }
            json_response(StatusCode::OK, jwks(state))
        }
        _ => not_found("no such Entra endpoint in the emulator"),
    }
}

fn tenant_not_found(tenant: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn openid_configuration(state: &Shared) -> Value {
    let authority = state.settings.authority_host();
    let tenant = &state.settings.tenant_id;
    json!({
        "issuer": state.settings.issuer(),
        "token_endpoint": format!("{authority}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{authority}/{tenant}/discovery/v2.0/keys"),
        "authorization_endpoint": format!("{authority}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "azp", "roles", "ver"],
        "request_uri_parameter_supported": false,
        "tenant_region_scope": null,
        "cloud_instance_name": "localhost",
        "kvproxy_emulator": true,
    })
}

fn jwks(state: &Shared) -> Value {
    let key = &state.token_key;
    json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": key.kid,
            "n": key.n,
            "e": key.e,
            "issuer": state.settings.issuer(),
        }]
    })
}

/// Handles one token request; `Ok` is the success body.
fn token(state: &Shared, tenant: &str, body: &Bytes) -> Result<Value, EntraError> {
    if !state.settings.is_tenant(tenant) {
        return Err(tenant_not_found(tenant));
    }
    // First value wins for repeated parameters.
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        form.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());

    let grant_type = field("grant_type").ok_or_else(|| EntraError::missing_parameter("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{grant_type}'. The emulator implements client_credentials only."
            ),
        ));
    }
    let client_id = field("client_id").ok_or_else(|| EntraError::missing_parameter("client_id"))?;
    let credential = match (field("client_secret"), field("client_assertion")) {
        (Some(secret), _) => Credential::Secret(secret),
        (None, Some(assertion)) => Credential::Assertion(assertion),
        (None, None) => {
            return Err(EntraError::invalid_client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    };
    let scope = field("scope").ok_or_else(|| EntraError::missing_parameter("scope"))?;

    match credential {
        Credential::Secret(secret) => developer_token(state, client_id, secret, scope),
        Credential::Assertion(assertion) => {
            let assertion_type =
                field("client_assertion_type").ok_or_else(|| EntraError::missing_parameter("client_assertion_type"))?;
            if assertion_type != JWT_BEARER {
                return Err(EntraError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    format!("Invalid client_assertion_type '{assertion_type}'; expected '{JWT_BEARER}'."),
                ));
            }
            let forced = state.inner.lock().forced_token_error;
            if let Some(code) = forced {
                return Err(forced_error(state, code, client_id, scope));
            }
            assertion_token(state, tenant, client_id, assertion, scope)
        }
    }
}

enum Credential<'a> {
    Secret(&'a str),
    Assertion(&'a str),
}

/// The single resource of a client-credentials scope (`{resource}/.default`).
fn resource_of(scope: &str) -> Result<&str, EntraError> {
    let mut scopes = scope.split_whitespace();
    let (Some(single), None) = (scopes.next(), scopes.next()) else {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' must name exactly one resource for client credential flows."
            ),
        ));
    };
    match single.strip_suffix("/.default") {
        Some(resource) if !resource.is_empty() => Ok(resource),
        _ => Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {single} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )),
    }
}

fn app_not_found(state: &Shared, client_id: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            state.settings.tenant_domain
        ),
    )
}

fn developer_token(state: &Shared, client_id: &str, secret: &str, scope: &str) -> Result<Value, EntraError> {
    if !client_id.eq_ignore_ascii_case(DEVELOPER_CLIENT_ID) {
        let known_app = state.inner.lock().apps.contains_key(&client_id.to_ascii_lowercase());
        if !known_app {
            return Err(app_not_found(state, client_id));
        }
    }
    if !client_id.eq_ignore_ascii_case(DEVELOPER_CLIENT_ID) || secret != DEVELOPER_CLIENT_SECRET {
        return Err(invalid_secret(client_id));
    }
    let resource = resource_of(scope)?;
    issue(
        state,
        &TokenRequest {
            client_id: DEVELOPER_CLIENT_ID,
            object_id: DEVELOPER_OBJECT_ID,
            resource,
            roles: None,
            azpacr: "1",
        },
    )
}

fn invalid_secret(client_id: &str) -> EntraError {
    EntraError::invalid_client(
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
}

fn issue(state: &Shared, request: &TokenRequest<'_>) -> Result<Value, EntraError> {
    let issued = tokens::issue(state, request).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an access token");
        EntraError::server_error()
    })?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "ext_expires_in": issued.expires_in,
        "access_token": issued.access_token,
    }))
}

fn signature_failed(reason: Option<&str>) -> EntraError {
    let message = match reason {
        Some(reason) => format!("Client assertion failed signature validation. [Reason - {reason}]"),
        None => "Client assertion failed signature validation.".to_owned(),
    };
    EntraError::invalid_client(700027, message)
}

fn key_not_found(client_id: &str, thumbprint_hex: &str) -> EntraError {
    EntraError::invalid_client(
        700027,
        format!(
            "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint_hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://learn.microsoft.com/graph/deployments to determine the corresponding service endpoint and https://learn.microsoft.com/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']"
        ),
    )
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Verifies a certificate-signed client assertion and issues an app token.
fn assertion_token(
    state: &Shared,
    tenant_in_url: &str,
    client_id: &str,
    assertion: &str,
    scope: &str,
) -> Result<Value, EntraError> {
    let (object_id, roles, certificates) = {
        let inner = state.inner.lock();
        let app = inner
            .apps
            .get(&client_id.to_ascii_lowercase())
            .ok_or_else(|| app_not_found(state, client_id))?;
        (app.object_id.clone(), app.roles.clone(), app.certificates.clone())
    };

    let jwt = Jwt::parse(assertion).map_err(|_| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    })?;

    let alg_name = jwt.header_str("alg").unwrap_or("");
    let alg = SignAlg::parse(alg_name).ok_or_else(|| {
        signature_failed(Some(&format!(
            "The signing algorithm '{alg_name}' is not supported; use PS256 or RS256."
        )))
    })?;

    let certificate = find_certificate(&jwt, &certificates, client_id)?;
    // Entra refuses a credential outside its validity before it looks at the signature.
    let now = state.now();
    if now > certificate.expires {
        return Err(signature_failed(Some("The key used is expired.")));
    }
    if now + time::Duration::seconds(ASSERTION_SKEW_SECS) < certificate.not_before {
        return Err(signature_failed(Some("The key used is not yet valid.")));
    }
    if !crypto::verify(
        &certificate.public_key,
        alg,
        jwt.signing_input.as_bytes(),
        &jwt.signature,
    ) {
        return Err(signature_failed(None));
    }

    check_audience(state, &jwt, tenant_in_url)?;

    if jwt.claim_str("iss") != Some(client_id) || jwt.claim_str("sub") != Some(client_id) {
        return Err(EntraError::invalid_client(
            700021,
            format!(
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at {CERT_CREDENTIALS_DOC} ."
            ),
        ));
    }

    let exp = check_time_window(state, &jwt)?;

    let jti = jwt
        .claim_str("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| {
            EntraError::invalid_client(
                50013,
                "Assertion failed signature validation. [Reason - The assertion has no 'jti' claim; each client assertion must carry a unique jti.]",
            )
        })?;

    let resource = resource_of(scope)?;

    {
        let now = state.now().unix_timestamp();
        let mut inner = state.inner.lock();
        // Forget assertions that could no longer pass the time check anyway.
        inner
            .seen_jti
            .retain(|_, seen_exp| *seen_exp + ASSERTION_SKEW_SECS >= now);
        let key = format!("{}|{jti}", client_id.to_ascii_lowercase());
        if inner.seen_jti.contains_key(&key) {
            return Err(EntraError::invalid_client(
                50013,
                "Assertion failed signature validation. [Reason - The provided client assertion was already used: its jti has already been used.]",
            ));
        }
        inner.seen_jti.insert(key, exp);
    }

    issue(
        state,
        &TokenRequest {
            client_id: &client_id.to_ascii_lowercase(),
            object_id: &object_id,
            resource,
            roles: Some(&roles),
            azpacr: "2",
        },
    )
}

/// Finds the registered certificate named by the assertion header: `x5t#S256` when present
/// (current guidance), else the legacy SHA-1 `x5t`.
fn find_certificate<'a>(
    jwt: &Jwt,
    certificates: &'a [RegisteredCert],
    client_id: &str,
) -> Result<&'a RegisteredCert, EntraError> {
    if let Some(s256) = jwt.header_str("x5t#S256") {
        let bytes = crypto::b64url_decode(s256).unwrap_or_default();
        return certificates
            .iter()
            .find(|c| c.sha256.as_slice() == bytes.as_slice())
            .ok_or_else(|| key_not_found(client_id, &hex_upper(&bytes)));
    }
    if let Some(x5t) = jwt.header_str("x5t") {
        let bytes = crypto::b64url_decode(x5t).unwrap_or_default();
        return certificates
            .iter()
            .find(|c| c.sha1.as_slice() == bytes.as_slice())
            .ok_or_else(|| key_not_found(client_id, &hex_upper(&bytes)));
    }
    Err(key_not_found(client_id, ""))
}

fn check_audience(state: &Shared, jwt: &Jwt, tenant_in_url: &str) -> Result<(), EntraError> {
    let authority = state.settings.authority_host();
    let accepted = [tenant_in_url, state.settings.tenant_id.as_str()]
        .map(|t| format!("{authority}/{t}/oauth2/v2.0/token").to_ascii_lowercase());
    // Entra expects a single string; a one-element array is tolerated as most JWT libraries do.
    let aud = match jwt.claims.get("aud") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Array(items)) if items.len() == 1 => items[0].as_str(),
        _ => None,
    };
    match aud {
        Some(aud) if accepted.contains(&aud.to_ascii_lowercase()) => Ok(()),
        _ => Err(EntraError::invalid_client(
            50013,
            format!(
                "Assertion failed signature validation. [Reason - The audience of the client assertion is invalid: '{}'. Expected '{}'.]",
                aud.unwrap_or(""),
                accepted[0]
            ),
        )),
    }
}

/// Checks `nbf`/`exp` against the emulator's clock; returns `exp` for the replay cache.
fn check_time_window(state: &Shared, jwt: &Jwt) -> Result<i64, EntraError> {
    let now = state.now().unix_timestamp();
    let exp = jwt.claim_time("exp");
    let start = jwt.claim_time("nbf").or_else(|| jwt.claim_time("iat"));
    let fmt = |t: Option<i64>| {
        t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .map(entra_timestamp)
            .unwrap_or_else(|| "(none)".to_owned())
    };
    let ok = match (exp, start) {
        (Some(exp), start) => {
            let not_expired = now <= exp + ASSERTION_SKEW_SECS;
            let started = start.is_none_or(|s| now + ASSERTION_SKEW_SECS >= s);
            let short_enough = start.is_none_or(|s| exp - s <= ASSERTION_MAX_LIFETIME_SECS + ASSERTION_SKEW_SECS);
            not_expired && started && short_enough
        }
        (None, _) => false,
    };
    match (ok, exp) {
        (true, Some(exp)) => Ok(exp),
        _ => Err(EntraError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at {CERT_CREDENTIALS_DOC} .",
                fmt(Some(now)),
                fmt(start),
                fmt(exp)
            ),
        )),
    }
}

/// The answer for a code set with `force_token_error`; codes without a known shape get a generic
/// `invalid_request`.
fn forced_error(state: &Shared, code: u32, client_id: &str, scope: &str) -> EntraError {
    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    match code {
        700023 => EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            code,
            format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at {CERT_CREDENTIALS_DOC} ."
            ),
        ),
        7000215 => invalid_secret(client_id),
        7000218 => EntraError::invalid_client(
            code,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ),
        7000222 => EntraError::invalid_client(
            code,
            format!("The provided client secret keys for app '{client_id}' are expired."),
        ),
        500011 => EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            code,
            format!(
                "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                state.settings.tenant_domain
            ),
        ),
        700016 => app_not_found(state, client_id),
        700027 => signature_failed(None),
        700024 => EntraError::invalid_client(code, "Client assertion is not within its valid time range."),
        90002 => tenant_not_found(&state.settings.tenant_id),
        53003 => EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            code,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        ),
        _ => EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            code,
            "Error forced by the KeyVault Proxy emulator.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_rules() {
        assert_eq!(resource_of("api://x/.default").unwrap(), "api://x");
        assert_eq!(
            resource_of("https://vault.localhost/.default").unwrap(),
            "https://vault.localhost"
        );
        assert_eq!(resource_of("api://x/read").unwrap_err().code, 1002012);
        assert_eq!(resource_of("/.default").unwrap_err().code, 1002012);
        assert_eq!(resource_of("a/.default b/.default").unwrap_err().code, 70011);
    }

    #[test]
    fn timestamp_is_entra_formatted() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(entra_timestamp(t), "2023-11-14 22:13:20Z");
    }

    #[test]
    fn correlation_id_echoes_guid_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "client-request-id",
            HeaderValue::from_static("6f1c1c1e-0000-4000-8000-000000000001"),
        );
        assert_eq!(correlation_id(&headers), "6f1c1c1e-0000-4000-8000-000000000001");
        headers.insert("client-request-id", HeaderValue::from_static("not a guid"));
        assert_ne!(correlation_id(&headers), "not a guid");
    }
}
