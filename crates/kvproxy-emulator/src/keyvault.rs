//! The emulated Azure Key Vault data plane: `get certificate` and `sign`, the two operations
//! KeyVault Proxy needs, behind Key Vault's bearer challenge and RBAC-like permission checks.
//!
//! The private keys never leave this module's state, like non-exportable Key Vault keys; a
//! client can only ask for signatures over digests, which is the property KeyVault Proxy is
//! built around. Answers (JSON field names, encodings, error codes, the `WWW-Authenticate`
//! challenge) follow the real service closely enough for the official Azure SDK clients to work
//! against the emulator unmodified.

use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crypto::{self, SHA256_LEN, SignAlg};
use crate::http::{json_response, not_found, segments};
use crate::model::{DEVELOPER_CLIENT_ID, Route, VAULT_RESOURCE};
use crate::state::{Shared, StoredVersion};
use crate::tokens::{self, VerifiedToken};

const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
const CERT_NOT_FOUND_HINT: &str = "If you recently deleted this certificate you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182";
const KEY_NOT_FOUND_HINT: &str = "If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182";

/// A Key Vault error body: `{"error":{"code":…,"message":…}}`.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

pub(crate) fn handle(state: &Shared, vault: &str, parts: &Parts, body: &Bytes, route: Option<Route>) -> Response {
    let vault = vault.to_ascii_lowercase();
    let permissions = state.inner.lock().vaults.get(&vault).map(|v| v.permissions);
    let Some(permissions) = permissions else {
        return error_response(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            &format!("The vault '{vault}' does not exist in this emulator."),
        );
    };
    let Some(route) = route else {
        return not_found("no such Key Vault operation in the emulator");
    };

    let caller = match authenticate(state, parts) {
        Ok(caller) => caller,
        Err(message) => return challenge(state, &message),
    };

    let path_segments = segments(parts.uri.path());
    match (route, path_segments.as_slice()) {
        (Route::GetCertificate, ["certificates", name, rest @ ..]) => {
            if !caller_may_use_vault(&caller) || !permissions.get_certificate {
                return forbidden(
                    state,
                    &caller,
                    &vault,
                    "Microsoft.KeyVault/vaults/certificates/read",
                    &format!("certificates/{name}"),
                );
            }
            let Some(version) = version_in(rest) else {
                return not_found("no such Key Vault operation in the emulator");
            };
            get_certificate(state, &vault, name, version)
        }
        (Route::GetKey, ["keys", name, rest @ ..]) => {
            // Both roles a KeyVault Proxy user holds include `keys/read`: Key Vault Crypto User and
            // Key Vault Certificate User (the key behind a certificate is part of what it reads).
            if !caller_may_use_vault(&caller) || !(permissions.get_certificate || permissions.sign) {
                return forbidden(
                    state,
                    &caller,
                    &vault,
                    "Microsoft.KeyVault/vaults/keys/read",
                    &format!("keys/{name}"),
                );
            }
            let Some(version) = version_in(rest) else {
                return not_found("no such Key Vault operation in the emulator");
            };
            get_key(state, &vault, name, version)
        }
        (Route::Sign, ["keys", name, version, "sign"]) => {
            if !caller_may_use_vault(&caller) || !permissions.sign {
                return forbidden(
                    state,
                    &caller,
                    &vault,
                    "Microsoft.KeyVault/vaults/keys/sign/action",
                    &format!("keys/{name}"),
                );
            }
            sign(state, &vault, name, version, body)
        }
        _ => not_found("no such Key Vault operation in the emulator"),
    }
}

/// The 401 challenge for a request to an existing vault without a valid bearer token, if it lacks one.
pub(crate) fn challenge_if_unauthenticated(state: &Shared, vault: &str, parts: &Parts) -> Option<Response> {
    if !state.inner.lock().vaults.contains_key(&vault.to_ascii_lowercase()) {
        return None;
    }
    authenticate(state, parts)
        .err()
        .map(|message| challenge(state, &message))
}

/// Checks the bearer token; the `Err` is the message of the 401 challenge.
fn authenticate(state: &Shared, parts: &Parts) -> Result<VerifiedToken, String> {
    let token = tokens::bearer(&parts.headers)
        .ok_or_else(|| "AKV10000: Request is missing a Bearer or PoP token.".to_owned())?;
    tokens::verify(state, token, &[VAULT_RESOURCE]).map_err(|reason| format!("AKV10032: Invalid token: {reason}."))
}

/// A 401 carrying the challenge from which the Azure SDK learns the authority and resource.
fn challenge(state: &Shared, message: &str) -> Response {
    state.count_challenge();
    let mut response = error_response(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let value = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{VAULT_RESOURCE}\"",
        state.settings.authority_host(),
        state.settings.tenant_id
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// RBAC's refusal, worded like Key Vault's `ForbiddenByRbac`. Only the developer principal holds
/// data-plane roles in the emulator, and only as far as the vault's permissions allow.
fn forbidden(state: &Shared, caller: &VerifiedToken, vault: &str, action: &str, resource: &str) -> Response {
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss={}\r\nAction: '{action}'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/kvproxy-emulator/providers/microsoft.keyvault/vaults/{vault}/{resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {vault};location=localhost\r\n",
        caller.str("appid"),
        caller.str("oid"),
        state.settings.issuer(),
    );
    json_response(
        StatusCode::FORBIDDEN,
        json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": "ForbiddenByRbac"}}}),
    )
}

fn caller_may_use_vault(caller: &VerifiedToken) -> bool {
    caller.str("appid").eq_ignore_ascii_case(DEVELOPER_CLIENT_ID)
}

/// The version in what follows `certificates/NAME` or `keys/NAME`: none (the latest, `""`), or one segment,
/// with or without a trailing slash; `None` for anything longer.
fn version_in<'a>(rest: &[&'a str]) -> Option<&'a str> {
    match rest {
        [] | [""] => Some(""),
        [version] | [version, ""] => Some(version),
        _ => None,
    }
}
fn get_certificate(state: &Shared, vault: &str, name: &str, version: &str) -> Response {
    let inner = state.inner.lock();
    let found = inner
        .vaults
        .get(vault)
        .and_then(|v| v.certificates.get(&name.to_ascii_lowercase()))
        .and_then(|c| c.version(version));
    let Some(stored) = found else {
        return item_not_found("certificate", "CertificateNotFound", name, version, CERT_NOT_FOUND_HINT);
    };
    json_response(StatusCode::OK, certificate_json(state, vault, stored))
}

fn certificate_json(state: &Shared, vault: &str, stored: &StoredVersion) -> Value {
    let cert = &stored.public;
    let base = state.settings.vault_base(vault);
    let (name, version) = (&cert.name, &cert.version);
    let created = stored.created.unix_timestamp();
    json!({
        "id": format!("{base}/certificates/{name}/{version}"),
        "kid": format!("{base}/keys/{name}/{version}"),
        "sid": format!("{base}/secrets/{name}/{version}"),
        "x5t": cert.x5t,
        "cer": crypto::b64std(&cert.cer_der),
        "attributes": {
            "enabled": stored.enabled,
            "nbf": cert.not_before.unix_timestamp(),
            "exp": cert.expires.unix_timestamp(),
            "created": created,
            "updated": created,
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": 90,
        },
        "tags": {},
        "policy": {
            "id": format!("{base}/certificates/{name}/policy"),
            "key_props": {"exportable": stored.exportable, "kty": "RSA", "key_size": 2048, "reuse_key": false},
            "secret_props": {"contentType": "application/x-pkcs12"},
            "x509_props": {
                "subject": format!("CN={}", stored.subject_cn),
                "ekus": ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
                "key_usage": ["digitalSignature", "keyEncipherment"],
                "validity_months": 12,
                "basic_constraints": {"ca": false},
            },
            "lifetime_actions": [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "AutoRenew"}}],
            "issuer": {"name": "Self"},
            "attributes": {"enabled": true, "created": created, "updated": created},
        },
    })
}

/// The key operations Key Vault gives the key of a certificate whose policy has the usages
/// `digitalSignature` (sign, verify) and `keyEncipherment` (the rest).
fn key_ops(stored: &StoredVersion) -> Vec<&'static str> {
    let mut ops = Vec::new();
    if stored.sign_allowed {
        ops.extend(["sign", "verify"]);
    }
    ops.extend(["wrapKey", "unwrapKey", "encrypt", "decrypt"]);
    ops
}

fn get_key(state: &Shared, vault: &str, name: &str, version: &str) -> Response {
    let inner = state.inner.lock();
    let found = inner
        .vaults
        .get(vault)
        .and_then(|v| v.certificates.get(&name.to_ascii_lowercase()))
        .and_then(|c| c.version(version));
    let Some(stored) = found else {
        return item_not_found("key", "KeyNotFound", name, version, KEY_NOT_FOUND_HINT);
    };
    let (n, e) = match crypto::rsa_components(&stored.key) {
        Ok(components) => components,
        Err(error) => {
            tracing::error!(%error, "cannot read the key's public components");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The emulator failed to read the key.",
            );
        }
    };
    let cert = &stored.public;
    let created = stored.created.unix_timestamp();
    json_response(
        StatusCode::OK,
        json!({
            "key": {"kid": cert.kid, "kty": "RSA", "key_ops": key_ops(stored), "n": n, "e": e},
            "attributes": {
                "enabled": stored.enabled,
                "nbf": cert.not_before.unix_timestamp(),
                "exp": cert.expires.unix_timestamp(),
                "created": created,
                "updated": created,
                "recoveryLevel": RECOVERY_LEVEL,
                "recoverableDays": 90,
                "exportable": stored.exportable,
            },
            "managed": true,
        }),
    )
}

#[derive(Deserialize)]
struct SignRequest {
    alg: Option<String>,
    value: Option<String>,
}

fn sign(state: &Shared, vault: &str, name: &str, version: &str, body: &Bytes) -> Response {
    let key = {
        let inner = state.inner.lock();
        inner
            .vaults
            .get(vault)
            .and_then(|v| v.certificates.get(&name.to_ascii_lowercase()))
            .and_then(|c| c.version(version))
            .map(|v| (v.key.clone(), v.public.kid.clone(), v.enabled, v.sign_allowed))
    };
    let Some((key, kid, enabled, sign_allowed)) = key else {
        return item_not_found("key", "KeyNotFound", name, version, KEY_NOT_FOUND_HINT);
    };
    if !enabled {
        return operation_forbidden("Operation \"sign\" is not allowed on a disabled key.", "KeyDisabled");
    }
    if !sign_allowed {
        return operation_forbidden(
            "Operation \"sign\" is not permitted by the key's key_ops.",
            "KeyOperationForbidden",
        );
    }

    let bad = |message: &str| error_response(StatusCode::BAD_REQUEST, "BadParameter", message);
    let Ok(request) = serde_json::from_slice::<SignRequest>(body) else {
        return bad("The request body is not a valid sign request: expected {\"alg\": …, \"value\": …}.");
    };
    let Some(alg_name) = request.alg else {
        return bad("The parameter 'alg' is required.");
    };
    let Some(alg) = SignAlg::parse(&alg_name) else {
        return bad(&format!(
            "Invalid algorithm '{alg_name}': the emulator signs with PS256 or RS256."
        ));
    };
    let Some(digest) = request.value.as_deref().and_then(crypto::b64url_decode) else {
        return bad("The parameter 'value' is required and must be base64url.");
    };
    if digest.len() != SHA256_LEN {
        return bad(&format!(
            "Invalid length of digest for algorithm '{}': expected {SHA256_LEN} bytes, got {}.",
            alg.name(),
            digest.len()
        ));
    }
    match crypto::sign_digest(&key, alg, &digest) {
        Ok(signature) => json_response(StatusCode::OK, json!({"kid": kid, "value": crypto::b64url(&signature)})),
        Err(e) => {
            tracing::error!(error = %e, "sign failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The emulator failed to sign.",
            )
        }
    }
}

/// Key Vault's 403 for an operation the key itself refuses (not the caller's role).
fn operation_forbidden(message: &str, inner: &str) -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": inner}}}),
    )
}

/// Key Vault's 404 for a missing certificate or key (version), worded as the service words it.
fn item_not_found(kind: &str, code: &str, name: &str, version: &str, hint: &str) -> Response {
    let id = if version.is_empty() {
        name.to_owned()
    } else {
        format!("{name}/{version}")
    };
    error_response(
        StatusCode::NOT_FOUND,
        code,
        &format!("A {kind} with (name/id) {id} was not found in this key vault. {hint}"),
    )
}
