//! Access tokens the emulated tenant issues, and their verification by the emulated resources
//! (Key Vault and the demo API).
//!
//! Issuing and checking live together so that both sides agree on the claims; the checks are
//! the ones a real resource makes (signature with the published key, issuer, tenant, audience,
//! lifetime), so a client that mangles or reuses a token fails here as it would in Azure.

use serde_json::{Value, json};

use crate::crypto::{self, Jwt, SignAlg};
use crate::error::Result;
use crate::state::Shared;

/// Tolerance for `nbf` when a resource checks a token: a token used right after the emulator's
/// clock was moved back should not look "not yet valid". Expiry is checked without tolerance so
/// tests can provoke it predictably.
const NBF_SKEW_SECS: i64 = 300;

/// Who a token is for and about.
pub(crate) struct TokenRequest<'a> {
    pub client_id: &'a str,
    pub object_id: &'a str,
    pub resource: &'a str,
    /// `None` omits the claim (the developer identity has no app roles).
    pub roles: Option<&'a [String]>,
    /// `"1"` client secret, `"2"` certificate, as Entra's `azpacr`.
    pub azpacr: &'static str,
}

/// An issued token and its lifetime in seconds.
pub(crate) struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

pub(crate) fn issue(state: &Shared, request: &TokenRequest<'_>) -> Result<IssuedToken> {
    let now = state.now().unix_timestamp();
    let lifetime = state.settings.token_lifetime.as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": state.token_key.kid});
    let mut claims = json!({
        "aud": request.resource,
        "iss": state.settings.issuer(),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        "appid": request.client_id,
        "azp": request.client_id,
        "azpacr": request.azpacr,
        "idtyp": "app",
        "oid": request.object_id,
        "sub": request.object_id,
        "tid": state.settings.tenant_id,
        "uti": crypto::b64url(uuid::Uuid::new_v4().as_bytes()),
        "ver": "2.0",
        "kvproxy_emulator": true,
    });
    if let (Some(roles), Some(map)) = (request.roles, claims.as_object_mut()) {
        map.insert("roles".into(), json!(roles));
    }
    Ok(IssuedToken {
        access_token: crypto::encode_jwt_rs256(&state.token_key.key, &header, &claims)?,
        expires_in: lifetime,
    })
}

/// The claims of a token that passed [`verify`].
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    pub claims: serde_json::Map<String, Value>,
}

impl VerifiedToken {
    pub(crate) fn str(&self, name: &str) -> &str {
        self.claims.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// Checks a bearer token like a resource server would. The error is a human-readable reason,
/// safe to return to the caller (it never contains the token).
pub(crate) fn verify(state: &Shared, token: &str, accepted_audiences: &[&str]) -> Result<VerifiedToken, String> {
    let jwt = Jwt::parse(token).map_err(|e| format!("the token is malformed: {e}"))?;
    if jwt.header_str("alg") != Some("RS256") {
        return Err("the token is not signed with RS256".into());
    }
    if jwt.header_str("kid") != Some(state.token_key.kid.as_str()) {
        return Err("the token was not signed by a key of this tenant".into());
    }
    if !crypto::verify(
        &state.token_key.key,
        SignAlg::Rs256,
        jwt.signing_input.as_bytes(),
        &jwt.signature,
    ) {
        return Err("the token signature is invalid".into());
    }
    let issuer = state.settings.issuer();
    if jwt.claim_str("iss") != Some(issuer.as_str()) {
        return Err(format!("invalid issuer, expected '{issuer}'"));
    }
    if jwt.claim_str("tid") != Some(state.settings.tenant_id.as_str()) {
        return Err("the token is from another tenant".into());
    }
    let aud = jwt.claim_str("aud").unwrap_or("");
    let aud_matches = accepted_audiences
        .iter()
        .any(|a| aud == *a || aud.strip_suffix('/') == Some(a));
    if !aud_matches {
        return Err(format!(
            "invalid audience '{aud}', expected '{}'",
            accepted_audiences.join("' or '")
        ));
    }
    let now = state.now().unix_timestamp();
    match jwt.claim_time("exp") {
        Some(exp) if now < exp => {}
        _ => return Err("the token is expired".into()),
    }
    if let Some(nbf) = jwt.claim_time("nbf")
        && now + NBF_SKEW_SECS < nbf
    {
        return Err("the token is not yet valid".into());
    }
    Ok(VerifiedToken { claims: jwt.claims })
}

/// The token from an `Authorization: Bearer …` header, if there is one.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
