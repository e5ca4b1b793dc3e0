//! Helpers shared by the integration tests: a started emulator with an HTTP client that trusts
//! it, and the client-side steps KeyVault Proxy performs (developer token, sign, assertion,
//! token exchange), written independently of the emulator's internals.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kvproxy_emulator::{CertificateVersion, DEVELOPER_CLIENT_ID, DEVELOPER_CLIENT_SECRET, Emulator, EmulatorConfig};
use serde_json::{Value, json};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub struct Ctx {
    pub emu: Emulator,
    pub http: reqwest::Client,
}

/// Starts an emulator and builds a client the way the brief describes (extra root + `.resolve()`),
/// rather than through `Emulator::http_client`, so the public URLs are exercised as a stranger
/// would use them.
pub async fn start() -> Ctx {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let http = client_for(&emu, &["demo", "other", "empty", "nosuchvault"]);
    Ctx { emu, http }
}

pub fn client_for(emu: &Emulator, vaults: &[&str]) -> reqwest::Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], emu.port()));
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .resolve("login.localhost", addr)
        .resolve("api.localhost", addr);
    for vault in vaults {
        builder = builder.resolve(&format!("{vault}.vault.localhost"), addr);
    }
    builder.build().unwrap()
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    openssl::sha::sha256(data).to_vec()
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The first AADSTS code of an Entra error body.
pub fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

/// Requests a token with the developer's client secret.
pub async fn developer_token(ctx: &Ctx, scope: &str) -> String {
    let response = ctx
        .http
        .post(ctx.emu.token_endpoint())
        .form(&[
            ("client_id", DEVELOPER_CLIENT_ID),
            ("client_secret", DEVELOPER_CLIENT_SECRET),
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub async fn vault_token(ctx: &Ctx) -> String {
    developer_token(ctx, "https://vault.localhost/.default").await
}

/// Calls Key Vault's sign on the versioned key and returns the raw response.
pub async fn sign_raw(ctx: &Ctx, token: &str, kid: &str, alg: &str, digest: &[u8]) -> reqwest::Response {
    ctx.http
        .post(format!("{kid}/sign?api-version=7.5"))
        .bearer_auth(token)
        .json(&json!({"alg": alg, "value": b64url(digest)}))
        .send()
        .await
        .unwrap()
}

pub async fn sign(ctx: &Ctx, token: &str, kid: &str, alg: &str, digest: &[u8]) -> Vec<u8> {
    let response = sign_raw(ctx, token, kid, alg, digest).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kid"], kid);
    b64url_decode(body["value"].as_str().unwrap())
}

/// Standard assertion claims for `client_id` addressed to the emulator's token endpoint.
pub fn assertion_claims(ctx: &Ctx, client_id: &str) -> Value {
    let now = now();
    json!({
        "aud": ctx.emu.token_endpoint(),
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + 300,
    })
}

/// The header KeyVault Proxy sends for each algorithm.
pub fn assertion_header(cert: &CertificateVersion, alg: &str) -> Value {
    match alg {
        "PS256" => json!({"alg": "PS256", "typ": "JWT", "x5t#S256": cert.x5t_s256}),
        _ => json!({"alg": alg, "typ": "JWT", "x5t": cert.x5t}),
    }
}

/// A well-formed assertion for `client_id`, signed with `cert` under `alg`: what a correct client sends.
pub async fn valid_assertion(
    ctx: &Ctx,
    vault_token: &str,
    cert: &CertificateVersion,
    client_id: &str,
    alg: &str,
) -> String {
    let header = assertion_header(cert, alg);
    signed_assertion(ctx, vault_token, cert, &header, &assertion_claims(ctx, client_id)).await
}

/// Builds a client assertion and has the emulator's Key Vault sign it, like KeyVault Proxy does.
pub async fn signed_assertion(
    ctx: &Ctx,
    vault_token: &str,
    cert: &CertificateVersion,
    header: &Value,
    claims: &Value,
) -> String {
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let alg = header["alg"].as_str().unwrap();
    let signature = sign(ctx, vault_token, &cert.kid, alg, &sha256(signing_input.as_bytes())).await;
    format!("{signing_input}.{}", b64url(&signature))
}

/// Posts a client-assertion token request to `{authority}/{tenant}/oauth2/v2.0/token`.
pub async fn exchange_at(ctx: &Ctx, tenant: &str, client_id: &str, assertion: &str, scope: &str) -> (u16, Value) {
    let response = ctx
        .http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", ctx.emu.authority_host()))
        .form(&[
            ("client_id", client_id),
            ("scope", scope),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub async fn exchange(ctx: &Ctx, client_id: &str, assertion: &str, scope: &str) -> (u16, Value) {
    exchange_at(ctx, &ctx.emu.tenant_id(), client_id, assertion, scope).await
}

/// An app with one registered certificate in vault `demo`.
pub fn app_with_certificate(ctx: &Ctx, name: &str) -> (String, CertificateVersion) {
    let client_id = ctx.emu.create_app(name);
    let cert = ctx.emu.create_certificate("demo", name, name);
    ctx.emu.register_certificate(&client_id, &cert);
    (client_id, cert)
}
