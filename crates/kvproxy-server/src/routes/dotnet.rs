//! Drop-in for the .NET Key Vault token proxy: same routes, same JSON field names, so Postman and
//! Insomnia collections written for it only need the API key added.

use super::extract::JsonBody;
use crate::guard::HttpCaller;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::HttpState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kvproxy_core::cloud::AZURE_VAULT_SUFFIXES;
use kvproxy_core::{
    Cloud, CredentialSource, IssuedToken, KeyId, Profile, SigningAlgorithm, SigningKey, Thumbprints, ValidProfile,
    VaultCertificate,
};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

// What the handlers accept, as JSON Schema patterns, so the OpenAPI document promises no more and no less
// than the checks behind it. The vault hosts depend on the saved profiles (a custom cloud's vaults, such as
// the demo tenant's, are accepted too), so the document is made for the profiles of the moment.
const GUID: &str = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$";
const TENANT: &str = "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)$";
const PORT: &str = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
const CERTIFICATE_NAME: &str = "^[0-9A-Za-z-]{1,127}$";
const SCOPE: &str = "^[!-~]+/\\.default$";
/// SHA-1 or SHA-256 in hex (colons allowed), or base64url without padding (whose last character carries
/// no stray bits).
const THUMBPRINT: &str = "^([0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){19}|[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}|[A-Za-z0-9_-]{26}[AEIMQUYcgkosw048]|[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$";

/// The vault hosts ad-hoc requests may name, as a regular expression: Azure's Key Vault and Managed HSM
/// hosts, and those of the custom clouds of saved profiles (with their port).
fn vault_host_pattern(custom: &[Cloud]) -> String {
    let escape = |suffix: &str| -> String {
        suffix
            .chars()
            .flat_map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    vec![c]
                } else {
                    vec!['\\', c]
                }
            })
            .collect()
    };
    let azure: Vec<String> = AZURE_VAULT_SUFFIXES
        .iter()
        .flat_map(|(_, suffixes)| suffixes.iter())
        .map(|suffix| escape(suffix))
        .collect();
    let mut hosts = vec![format!("[A-Za-z0-9-]{{3,24}}\\.({})", azure.join("|"))];
    let mut custom_suffixes: Vec<String> = custom
        .iter()
        .flat_map(Cloud::vault_suffixes)
        .map(|suffix| escape(&suffix))
        .collect();
    custom_suffixes.sort();
    custom_suffixes.dedup();
    if !custom_suffixes.is_empty() {
        hosts.push(format!("[A-Za-z0-9-]{{1,24}}\\.({}):{PORT}", custom_suffixes.join("|")));
    }
    format!("({})", hosts.join("|"))
}

/// The pattern of each request field of these routes, by its JSON name (the same name means the same thing
/// in all three requests), for a server whose saved profiles name the custom clouds `custom`.
pub(crate) fn field_patterns(custom: &[Cloud]) -> [(&'static str, String); 6] {
    let host = vault_host_pattern(custom);
    [
        ("clientId", GUID.into()),
        ("tenantId", TENANT.into()),
        ("keyVaultUri", format!("^https://{host}/?$")),
        (
            "keyUri",
            format!("^https://{host}/keys/[0-9A-Za-z-]{{1,127}}/[0-9A-Za-z]{{1,64}}$"),
        ),
        ("keyThumbprint", THUMBPRINT.into()),
        ("certificateName", CERTIFICATE_NAME.into()),
    ]
}

/// One scope or a list with one scope (client credentials take a single `RESOURCE/.default`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Scopes {
    One(String),
    Many(Vec<String>),
}

impl utoipa::PartialSchema for Scopes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let scope = || ObjectBuilder::new().schema_type(Type::String).pattern(Some(SCOPE));
        OneOfBuilder::new()
            .item(scope())
            .item(ArrayBuilder::new().items(scope()).min_items(Some(1)).max_items(Some(1)))
            .description(Some(
                "One `RESOURCE/.default` scope, alone or in a list of one (client credentials take one resource)",
            ))
            .into()
    }
}

impl ToSchema for Scopes {}

/// `POST /api/Token/kv-key`: sign with a known key version and certificate thumbprint.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KvKeyRequest {
    pub client_id: String,
    pub tenant_id: String,
    pub scopes: Scopes,
    /// Versioned key id, `https://VAULT.vault.azure.net/keys/NAME/VERSION`.
    pub key_uri: String,
    /// The certificate's SHA-1 thumbprint (hex as the portal shows it, or base64url `x5t`); a SHA-256
    /// thumbprint (hex or base64url) makes the assertion PS256 with `x5t#S256`.
    pub key_thumbprint: String,
    #[serde(default)]
    pub skip_cache: bool,
}

/// `POST /api/Token/kv-key-info`: the certificate's key info, asked for once; its `keyId` and `kid` then go
/// to `kv-key` as `keyUri` and `keyThumbprint` for every token.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KvKeyInfoRequest {
    /// `https://VAULT.vault.azure.net/`
    pub key_vault_uri: String,
    pub certificate_name: String,
    /// Read the certificate from Key Vault again instead of the cache (after a rotation).
    #[serde(default)]
    pub skip_cache: bool,
    /// The tenant to sign in to Key Vault in. Optional: the developer tools (`az`, `azd`) use the tenant they
    /// are signed in to; the demo tenant's vaults default to the tenant of a saved demo profile.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// The .NET proxy's `CertificateInfo`, plus the certificate's validity, SHA-256 thumbprint and subject.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    pub certificate_name: String,
    /// The certificate's SHA-1 thumbprint, base64url (the `x5t`): pass it to `kv-key` as `keyThumbprint`.
    #[schema(example = "cwdgNopl1C8jIswB7-8UfLVjFzY")]
    pub kid: String,
    /// The versioned key id that signs: pass it to `kv-key` as `keyUri`.
    #[schema(example = "https://my-vault.vault.azure.net/keys/my-cert/0123456789abcdef0123456789abcdef")]
    pub key_id: String,
    /// The certificate's expiry, RFC 3339.
    pub expires_on: String,
    /// Start of the certificate's validity, RFC 3339.
    pub not_before: String,
    /// The certificate's SHA-256 thumbprint, base64url (the `x5t#S256`); also accepted as `keyThumbprint`.
    pub x5t_s256: String,
    /// The certificate's subject, as Key Vault reports it.
    pub subject: String,
}

/// `POST /api/Token/kv-certificate`: a certificate by vault and name.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KvCertificateRequest {
    pub client_id: String,
    pub tenant_id: String,
    pub scopes: Scopes,
    /// `https://VAULT.vault.azure.net/`
    pub key_vault_uri: String,
    pub certificate_name: String,
    #[serde(default)]
    pub skip_cache: bool,
}

/// The .NET proxy's answer.
#[derive(Serialize, ToSchema)]
pub struct DotnetTokenResponse {
    pub access_token: String,
    /// Seconds the token is still valid.
    #[schema(example = 3599)]
    pub lifetime: i64,
    /// Expiry, RFC 3339.
    pub expires_on: String,
    pub scopes: Vec<String>,
}

/// Token from a key id and thumbprint (no certificate read): step 2 of the .NET proxy's fast path.
///
/// `keyUri` and `keyThumbprint` are the `keyId` and `kid` that `kv-key-info` answers, unchanged (a SHA-1
/// thumbprint in hex as the portal shows it, or a SHA-256 one, work too).
#[utoipa::path(post, path = "/api/Token/kv-key", tag = "dotnet-compatible", request_body = KvKeyRequest,
    responses((status = 200, body = DotnetTokenResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 413, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn kv_key(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    JsonBody(req): JsonBody<KvKeyRequest>,
) -> ApiResult<Response> {
    let key_id = KeyId::parse(&req.key_uri).map_err(|e| ApiError::bad_field("keyUri", e.to_string()))?;
    let (thumbprints, algorithm) = parse_thumbprint(&req.key_thumbprint)?;
    let target = Target {
        vault_url: key_id.vault().as_str(),
        certificate: key_id.name(),
        by: Located::ByKey,
        algorithm,
    };
    let profile = adhoc_profile(&state, &req.client_id, &req.tenant_id, &req.scopes, target)?;
    let key = SigningKey {
        key_id: key_id.to_string(),
        thumbprints,
        name: key_id.name().to_string(),
    };
    let issued = state
        .app
        .adhoc_token(&profile, Some(key), req.skip_cache, &caller)
        .await?;
    Ok(respond(&issued))
}

/// Key info of a certificate: step 1 of the .NET proxy's fast path.
///
/// Ask once, then call `kv-key` for every token with `keyUri` = this answer's `keyId` and `keyThumbprint` =
/// its `kid`: a token then costs one Key Vault sign and one Entra request, and the certificate is not read
/// again. Key info is cached in memory and the OS keyring; `skipCache` reads it again (after a rotation).
#[utoipa::path(post, path = "/api/Token/kv-key-info", tag = "dotnet-compatible", request_body = KvKeyInfoRequest,
    responses((status = 200, body = CertificateInfo), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 413, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn kv_key_info(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    JsonBody(req): JsonBody<KvKeyInfoRequest>,
) -> ApiResult<Response> {
    let by = Located::ByCertificate;
    let profiles = state.app.profiles();
    let (cloud, url) =
        Cloud::for_vault_url(&req.key_vault_uri, profiles.custom_clouds()).map_err(|e| dotnet_error(e, by))?;
    let credential = if cloud.is_emulator() {
        CredentialSource::Emulator
    } else {
        state.app.credential()
    };
    let saved_tenant;
    let tenant = match req.tenant_id.as_deref() {
        Some(given) => Some(given),
        None if credential == CredentialSource::Emulator => {
            saved_tenant = profiles.tenant_for_vault(&cloud, &url).ok_or_else(|| {
                ApiError::bad_field(
                    "tenantId",
                    "no saved profile uses this demo tenant, so its tenant id is unknown: give tenantId",
                )
            })?;
            Some(saved_tenant.as_str())
        }
        None => None,
    };
    let target = VaultCertificate::new(cloud, url, &req.certificate_name, credential, tenant)
        .map_err(|e| dotnet_error(e, by))?;
    let info = state.app.certificate_key_info(&target, req.skip_cache, &caller).await?;
    let format = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let body = CertificateInfo {
        certificate_name: info.certificate.clone(),
        kid: info.thumbprints.sha1.clone(),
        key_id: info.key_id.clone(),
        expires_on: format(info.expires),
        not_before: format(info.not_before),
        x5t_s256: info.thumbprints.sha256.clone(),
        subject: info.subject.clone(),
    };
    Ok(Json(body).into_response())
}

/// Token from a vault and certificate name.
#[utoipa::path(post, path = "/api/Token/kv-certificate", tag = "dotnet-compatible", request_body = KvCertificateRequest,
    responses((status = 200, body = DotnetTokenResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 413, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn kv_certificate(
    State(state): State<HttpState>,
    HttpCaller(caller): HttpCaller,
    JsonBody(req): JsonBody<KvCertificateRequest>,
) -> ApiResult<Response> {
    let target = Target {
        vault_url: &req.key_vault_uri,
        certificate: &req.certificate_name,
        by: Located::ByCertificate,
        algorithm: SigningAlgorithm::PS256,
    };
    let profile = adhoc_profile(&state, &req.client_id, &req.tenant_id, &req.scopes, target)?;
    let issued = state.app.adhoc_token(&profile, None, req.skip_cache, &caller).await?;
    Ok(respond(&issued))
}

fn respond(issued: &IssuedToken) -> Response {
    let body = DotnetTokenResponse {
        access_token: issued.access_token.expose().to_string(),
        lifetime: issued.lifetime().whole_seconds(),
        expires_on: issued.expires_on.format(&Rfc3339).unwrap_or_default(),
        scopes: vec![issued.scope.clone()],
    };
    Json(body).into_response()
}

/// Whether the request named the key (`keyUri`) or the certificate (`keyVaultUri` + `certificateName`),
/// so problem documents name the field the caller actually sent.
#[derive(Clone, Copy)]
enum Located {
    ByKey,
    ByCertificate,
}

struct Target<'a> {
    vault_url: &'a str,
    certificate: &'a str,
    by: Located,
    /// PS256 unless the caller's thumbprint is a SHA-1 one (`x5t` goes with RS256).
    algorithm: SigningAlgorithm,
}

/// A profile for one request. The vault URL must belong to a known cloud (Azure's, or a custom one
/// from a saved profile): that is the allowlist, checked before anything is sent.
fn adhoc_profile(
    state: &HttpState,
    client_id: &str,
    tenant: &str,
    scopes: &Scopes,
    target: Target<'_>,
) -> ApiResult<ValidProfile> {
    let by = target.by;
    let scope = match scopes {
        Scopes::One(s) => s.clone(),
        Scopes::Many(list) if list.len() == 1 => list[0].clone(),
        Scopes::Many(_) => {
            return Err(ApiError::bad_field(
                "scopes",
                "give exactly one scope of the form RESOURCE/.default (client credentials take one resource)",
            ));
        }
    };
    let (cloud, url) = Cloud::for_vault_url(target.vault_url, state.app.profiles().custom_clouds())
        .map_err(|e| dotnet_error(e, by))?;
    let credential = if cloud.is_emulator() {
        CredentialSource::Emulator
    } else {
        state.app.credential()
    };
    let profile = Profile {
        name: "adhoc".into(),
        tenant: tenant.to_string(),
        client_id: client_id.to_string(),
        vault_url: url.to_string(),
        certificate: target.certificate.to_string(),
        scopes: vec![scope],
        algorithm: target.algorithm,
        cloud: cloud.name,
        custom_cloud: cloud.custom.clone(),
        credential,
        confirm: false,
    };
    profile.resolve_in(cloud, url).map_err(|e| dotnet_error(e, by))
}

/// Field errors renamed to the request's own field names; the first names the problem's `field`.
fn dotnet_error(e: kvproxy_core::Error, by: Located) -> ApiError {
    match e {
        kvproxy_core::Error::Invalid(fields) => {
            let mut api = ApiError::from(kvproxy_core::Error::Invalid(fields));
            api.rename_fields(|field| dotnet_field(field, by));
            api
        }
        other => other.into(),
    }
}

/// Problem documents name the field as the caller spelled it.
fn dotnet_field(field: &str, by: Located) -> &str {
    match (field, by) {
        ("tenant", _) => "tenantId",
        ("client_id", _) => "clientId",
        ("vault_url" | "certificate", Located::ByKey) => "keyUri",
        ("vault_url", Located::ByCertificate) => "keyVaultUri",
        ("certificate", Located::ByCertificate) => "certificateName",
        ("scopes" | "scope", _) => "scopes",
        (other, _) => other,
    }
}

/// Accepts SHA-1 or SHA-256 thumbprints, hex (any case, `:` allowed) or base64url.
fn parse_thumbprint(value: &str) -> ApiResult<(Thumbprints, SigningAlgorithm)> {
    let cleaned: String = value.trim().chars().filter(|c| *c != ':' && *c != ' ').collect();
    let bytes = if cleaned.chars().all(|c| c.is_ascii_hexdigit()) && (cleaned.len() == 40 || cleaned.len() == 64) {
        (0..cleaned.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&cleaned[i..i + 2], 16).ok())
            .collect()
    } else {
        URL_SAFE_NO_PAD
            .decode(cleaned.trim_end_matches('='))
            .unwrap_or_default()
    };
    let encoded = URL_SAFE_NO_PAD.encode(&bytes);
    match bytes.len() {
        20 => Ok((
            Thumbprints {
                sha1: encoded,
                sha256: String::new(),
            },
            SigningAlgorithm::RS256,
        )),
        32 => Ok((
            Thumbprints {
                sha1: String::new(),
                sha256: encoded,
            },
            SigningAlgorithm::PS256,
        )),
        _ => Err(ApiError::bad_field(
            "keyThumbprint",
            "give the certificate's SHA-1 thumbprint (40 hex digits, as the Azure portal shows it) or SHA-256 (64 hex digits), or its base64url x5t",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_in_every_common_spelling() {
        let hex = "730760368A65D42F2322CC01EFEF147CB5631736";
        let (tp, alg) = parse_thumbprint(hex).unwrap();
        assert_eq!(alg, SigningAlgorithm::RS256);
        assert_eq!(tp.sha1_hex(), hex);
        assert_eq!(parse_thumbprint(&hex.to_lowercase()).unwrap().0, tp);
        assert_eq!(parse_thumbprint(&tp.sha1).unwrap().0, tp);
        let (_, alg) = parse_thumbprint(&"ab".repeat(32)).unwrap();
        assert_eq!(alg, SigningAlgorithm::PS256);
        assert!(parse_thumbprint("xyz").is_err());
    }
}
