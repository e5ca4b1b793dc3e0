//! The Entra ID token endpoint: one form POST, and careful reading of what comes back. Entra's errors are
//! precise but cryptic (`AADSTS700027`), so each known code carries a hint a developer can act on.

pub use crate::error::EntraError;
use crate::error::{Error, Result, error_chain};
use crate::secret::SecretString;
use serde::Deserialize;
use std::time::Duration;
use time::OffsetDateTime;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MAX_ATTEMPTS: u32 = 3;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// An access token as Entra issued it.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: SecretString,
    pub expires_on: OffsetDateTime,
}

/// What a developer should do about a given AADSTS code (or OAuth2 error).
pub fn hint_for(code: Option<u32>, error: &str) -> Option<&'static str> {
    Some(match code {
        Some(700016) => {
            "the client id is not an app in this tenant; check client_id and tenant (the app may live in another tenant, or was deleted)"
        }
        Some(700027) => {
            "the certificate is not registered on the app registration, or its thumbprint differs; upload the Key Vault certificate's public part (.cer) under Certificates & secrets (after a rotation, upload the new version)"
        }
        Some(700024) => {
            "the assertion's time window was rejected; check this machine's clock (timedatectl) - it must be within a few minutes of real time"
        }
        Some(700023) => {
            "the assertion's audience does not match the token endpoint; check the tenant and cloud of the profile"
        }
        Some(700021) => "the assertion's issuer/subject is not the client id; check client_id",
        Some(7000215) => {
            "an invalid client secret was sent; this app authenticates with a certificate, remove any secret-based configuration"
        }
        Some(7000218) => "the request carried no credential; the app must be given a certificate credential",
        Some(50013) => {
            "the assertion was rejected (invalid, replayed or expired); retry, and check the machine's clock"
        }
        Some(90002) | Some(90023) => {
            "the tenant was not found; check the tenant GUID or domain and the profile's cloud"
        }
        Some(500011) => {
            "the resource in the scope is not known in this tenant; check the scope's application ID URI (api://...) and that the API's app is consented in this tenant"
        }
        Some(1002012) | Some(70011) => "app-only tokens need a scope of the form RESOURCE/.default",
        Some(700025) => {
            "the client is public; app-only tokens need a confidential client (app registration with a certificate)"
        }
        _ if error == "invalid_scope" => "app-only tokens need a scope of the form RESOURCE/.default",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
struct SuccessBody {
    access_token: SecretString,
    expires_in: serde_json::Value,
}

/// Parses an Entra error response body.
pub fn parse_error(status: u16, body: &[u8]) -> EntraError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.error.is_empty() => {
            let first_line = b.error_description.lines().next().unwrap_or_default();
            let description = first_line
                .split(" Trace ID:")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let code = b
                .error_codes
                .first()
                .copied()
                .or_else(|| code_from_description(&description));
            EntraError {
                status,
                hint: hint_for(code, &b.error),
                error: b.error,
                description,
                code,
                trace_id: b.trace_id,
                correlation_id: b.correlation_id,
            }
        }
        _ => EntraError {
            status,
            error: "unexpected_response".into(),
            description: format!("HTTP {status} without an OAuth2 error body"),
            code: None,
            trace_id: None,
            correlation_id: None,
            hint: if status >= 500 || status == 429 {
                Some("Entra ID is unavailable or throttling; retry shortly")
            } else {
                None
            },
        },
    }
}

fn code_from_description(description: &str) -> Option<u32> {
    let rest = description.strip_prefix("AADSTS")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Exchanges a signed assertion for an access token. Throttling and server errors are retried a bounded
/// number of times; the assertion stays valid for minutes, so reusing it is safe, but Entra rejects a
/// reused `jti` once one attempt has succeeded, which can't happen here because we stop at success.
pub async fn request_token(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    scope: &str,
    assertion: &str,
) -> Result<TokenResponse> {
    let form = [
        ("client_id", client_id),
        ("scope", scope),
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent_at = OffsetDateTime::now_utc();
        let response = http
            .post(token_endpoint)
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .form(&form)
            .send()
            .await
            .map_err(|e| network_error(token_endpoint, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| network_error(token_endpoint, e))?;
        if (200..300).contains(&status) {
            let parsed: SuccessBody = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                target: token_endpoint.to_string(),
                message: format!("token response is not the expected JSON: {e}"),
            })?;
            let expires_in = match &parsed.expires_in {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| Error::Protocol {
                target: token_endpoint.to_string(),
                message: "expires_in missing".into(),
            })?;
            return Ok(TokenResponse {
                access_token: parsed.access_token,
                expires_on: sent_at + time::Duration::seconds(expires_in),
            });
        }
        let error = parse_error(status, &body);
        if error.is_transient() && attempt < MAX_ATTEMPTS {
            let delay = retry_after
                .unwrap_or(Duration::from_millis(250 * u64::from(attempt)))
                .min(MAX_RETRY_AFTER);
            tracing::warn!(status, attempt, ?delay, "Entra ID is throttling or failing; retrying");
            tokio::time::sleep(delay).await;
            continue;
        }
        return Err(error.into());
    }
}

pub(crate) fn network_error(target: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // reqwest errors can carry the URL, never the body, so they are safe to show.
    Error::Network {
        target: target.to_string(),
        message: format!("{kind}: {}", error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_error_bodies_are_reduced_to_code_ids_and_hint() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700027: Client assertion failed signature validation. Trace ID: t-1 Correlation ID: c-1 Timestamp: 2026-01-01 00:00:00Z","error_codes":[700027],"trace_id":"t-1","correlation_id":"c-1"}"#;
        let e = parse_error(401, body);
        assert_eq!(e.code, Some(700027));
        assert!(e.is_key_not_found());
        assert_eq!(
            e.description,
            "AADSTS700027: Client assertion failed signature validation."
        );
        let text = e.to_string();
        assert!(text.contains("Hint: the certificate is not registered"), "{text}");
        assert!(text.contains("trace id t-1, correlation id c-1"), "{text}");

        let no_codes = parse_error(
            400,
            br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#,
        );
        assert_eq!(no_codes.code, Some(90002));
        assert!(no_codes.hint.unwrap().contains("tenant"));

        let html = parse_error(503, b"<html>busy</html>");
        assert!(html.is_transient());
    }
}
