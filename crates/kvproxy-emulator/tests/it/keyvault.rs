//! The emulated Key Vault over HTTPS with a plain HTTP client: certificate JSON, signatures
//! checked with an independent library, the bearer challenge, permissions, 404s, faults,
//! latency and counters.

use std::time::{Duration, Instant};

use crate::common::*;
use jsonwebtoken::{Algorithm, DecodingKey};
use kvproxy_emulator::{Fault, Route, VaultPermissions};
use serde_json::Value;

/// Verifies a JOSE signature over `message` with the certificate's public key, using the
/// `jsonwebtoken` crate (RustCrypto) rather than the emulator's OpenSSL code.
fn verify_with_certificate(cer_der: &[u8], alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    let cert = openssl::x509::X509::from_der(cer_der).unwrap();
    let rsa = cert.public_key().unwrap().rsa().unwrap();
    let key = DecodingKey::from_rsa_raw_components(&rsa.n().to_vec(), &rsa.e().to_vec());
    jsonwebtoken::crypto::verify(&b64url(signature), message, &key, alg).unwrap()
}

#[tokio::test]
async fn get_certificate_returns_key_vault_json() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "app-cert", "kvproxy test");
    let token = vault_token(&ctx).await;

    for path in [
        "certificates/app-cert?api-version=7.5".to_owned(),
        "certificates/app-cert/?api-version=7.5".to_owned(),
        format!("certificates/app-cert/{}?api-version=7.5", cert.version),
    ] {
        let response = ctx
            .http
            .get(format!("{}{path}", ctx.emu.vault_url("demo")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        let base = format!("https://demo.vault.localhost:{}", ctx.emu.port());
        assert_eq!(body["id"], format!("{base}/certificates/app-cert/{}", cert.version));
        assert_eq!(body["kid"], cert.kid);
        assert_eq!(body["kid"], format!("{base}/keys/app-cert/{}", cert.version));
        assert_eq!(body["sid"], format!("{base}/secrets/app-cert/{}", cert.version));
        assert_eq!(body["x5t"], cert.x5t);
        let cer = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            body["cer"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(cer, cert.cer_der);
        assert_eq!(b64url(&openssl::sha::sha1(&cer)), cert.x5t);
        assert_eq!(b64url(&openssl::sha::sha256(&cer)), cert.x5t_s256);
        assert_eq!(body["attributes"]["enabled"], true);
        assert_eq!(body["attributes"]["nbf"], cert.not_before.unix_timestamp());
        assert_eq!(body["attributes"]["exp"], cert.expires.unix_timestamp());
        assert_eq!(body["policy"]["key_props"]["exportable"], false);
        assert_eq!(body["policy"]["key_props"]["kty"], "RSA");
        assert_eq!(body["policy"]["key_props"]["key_size"], 2048);
        let x509 = openssl::x509::X509::from_der(&cer).unwrap();
        let cn = x509
            .subject_name()
            .entries()
            .next()
            .unwrap()
            .data()
            .to_string()
            .unwrap();
        assert_eq!(cn, "kvproxy test");
    }
    assert_eq!(ctx.emu.count(Route::GetCertificate), 3);
}

#[tokio::test]
async fn sign_ps256_and_rs256_verify_with_certificate() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "signer", "signer");
    let token = vault_token(&ctx).await;
    let message = b"eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJ4In0";
    let digest = sha256(message);

    for (alg, jwt_alg) in [("PS256", Algorithm::PS256), ("RS256", Algorithm::RS256)] {
        let signature = sign(&ctx, &token, &cert.kid, alg, &digest).await;
        assert_eq!(signature.len(), 256);
        assert!(
            verify_with_certificate(&cert.cer_der, jwt_alg, message, &signature),
            "{alg}"
        );
        assert!(
            !verify_with_certificate(&cert.cer_der, jwt_alg, b"something else", &signature),
            "{alg}"
        );
    }
    // RS256 is deterministic, PS256 is salted.
    let a = sign(&ctx, &token, &cert.kid, "RS256", &digest).await;
    let b = sign(&ctx, &token, &cert.kid, "RS256", &digest).await;
    assert_eq!(a, b);
    let a = sign(&ctx, &token, &cert.kid, "PS256", &digest).await;
    let b = sign(&ctx, &token, &cert.kid, "PS256", &digest).await;
    assert_ne!(a, b);

    // Empty version = latest: after rotation the latest key signs and the response names it.
    let rotated = ctx.emu.rotate_certificate("demo", "signer");
    let response = ctx
        .http
        .post(format!("{}keys/signer//sign", ctx.emu.vault_url("demo")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"alg": "PS256", "value": b64url(&digest)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kid"], rotated.kid);
    let signature = b64url_decode(body["value"].as_str().unwrap());
    assert!(verify_with_certificate(
        &rotated.cer_der,
        Algorithm::PS256,
        message,
        &signature
    ));
    assert!(!verify_with_certificate(
        &cert.cer_der,
        Algorithm::PS256,
        message,
        &signature
    ));
    // The old version still signs with the old key.
    let old = sign(&ctx, &token, &cert.kid, "PS256", &digest).await;
    assert!(verify_with_certificate(&cert.cer_der, Algorithm::PS256, message, &old));
    assert_eq!(ctx.emu.count(Route::Sign), 8);
}

#[tokio::test]
async fn sign_rejects_bad_parameters() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "params", "params");
    let token = vault_token(&ctx).await;

    let response = sign_raw(&ctx, &token, &cert.kid, "PS256", &[0u8; 20]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadParameter");

    let response = sign_raw(&ctx, &token, &cert.kid, "ES256", &[0u8; 32]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadParameter");

    let response = ctx
        .http
        .post(format!("{}/sign", cert.kid))
        .bearer_auth(&token)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn missing_or_bad_token_gets_the_challenge() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "challenged", "c");
    let expected = format!(
        "Bearer authorization=\"{}/{}\", resource=\"https://vault.localhost\"",
        ctx.emu.authority_host(),
        ctx.emu.tenant_id()
    );
    let url = format!("{}certificates/challenged", ctx.emu.vault_url("demo"));

    let response = ctx.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], expected.as_str());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");

    // Garbage, a token for another audience, a token signed by someone else.
    let wrong_audience = developer_token(&ctx, "api://kvproxy-demo/.default").await;
    let good = vault_token(&ctx).await;
    let mut forged: Vec<&str> = good.split('.').collect();
    let other_sig = b64url(&[7u8; 256]);
    forged[2] = &other_sig;
    let forged = forged.join(".");
    for token in ["garbage", wrong_audience.as_str(), forged.as_str()] {
        let response = ctx.http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], expected.as_str());
    }
    let response = sign_raw(&ctx, "garbage", &cert.kid, "PS256", &[0; 32]).await;
    assert_eq!(response.status(), 401);

    // Expired by the emulator's clock.
    ctx.emu.set_clock_offset(3600);
    let response = ctx.http.get(&url).bearer_auth(&good).send().await.unwrap();
    assert_eq!(response.status(), 401);
    ctx.emu.set_clock_offset(0);
    let response = ctx.http.get(&url).bearer_auth(&good).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(ctx.emu.count_challenges(), 6);
}

#[tokio::test]
async fn permissions_are_enforced() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "guarded", "g");
    let token = vault_token(&ctx).await;
    let cert_url = format!("{}certificates/guarded", ctx.emu.vault_url("demo"));

    ctx.emu.set_permissions(
        "demo",
        VaultPermissions {
            get_certificate: true,
            sign: false,
        },
    );
    let response = sign_raw(&ctx, &token, &cert.kid, "PS256", &[1; 32]).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Caller is not authorized to perform action on resource."));
    assert!(message.contains("Action: 'Microsoft.KeyVault/vaults/keys/sign/action'"));
    let response = ctx.http.get(&cert_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);

    ctx.emu.set_permissions(
        "demo",
        VaultPermissions {
            get_certificate: false,
            sign: true,
        },
    );
    let response = ctx.http.get(&cert_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Microsoft.KeyVault/vaults/certificates/read")
    );
    let response = sign_raw(&ctx, &token, &cert.kid, "PS256", &[1; 32]).await;
    assert_eq!(response.status(), 200);

    // A valid vault token of an app (not the developer) has no data-plane role at all.
    ctx.emu.set_permissions("demo", VaultPermissions::default());
    let seed = ctx.emu.seed_demo();
    let assertion = signed_assertion(
        &ctx,
        &token,
        &seed.certificate,
        &assertion_header(&seed.certificate, "PS256"),
        &assertion_claims(&ctx, &seed.client_id),
    )
    .await;
    let (status, body) = exchange(&ctx, &seed.client_id, &assertion, "https://vault.localhost/.default").await;
    assert_eq!(status, 200, "{body}");
    let app_token = body["access_token"].as_str().unwrap();
    let response = sign_raw(&ctx, app_token, &cert.kid, "PS256", &[1; 32]).await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn unknown_things_are_404() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "known", "k");
    ctx.emu.create_vault("empty");
    let token = vault_token(&ctx).await;
    let demo = ctx.emu.vault_url("demo");

    let response = ctx
        .http
        .get(format!("{demo}certificates/unknown"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "CertificateNotFound");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("A certificate with (name/id) unknown was not found in this key vault.")
    );

    let response = ctx
        .http
        .get(format!("{demo}certificates/known/0123456789abcdef0123456789abcdef"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "CertificateNotFound");

    let response = sign_raw(
        &ctx,
        &token,
        &format!("{demo}keys/unknown/{}", cert.version),
        "PS256",
        &[0; 32],
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "KeyNotFound");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("A key with (name/id) unknown/")
    );

    let response = ctx
        .http
        .get(format!("{}certificates/known", ctx.emu.vault_url("nosuchvault")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VaultNotFound");

    let response = ctx
        .http
        .get(format!("{}certificates/known", ctx.emu.vault_url("empty")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let response = ctx
        .http
        .get(format!("{demo}secrets/known"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let _: Value = response.json().await.unwrap();
}

#[tokio::test]
async fn injected_faults_then_success() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "faulty", "f");
    let token = vault_token(&ctx).await;
    let url = format!("{}certificates/faulty", ctx.emu.vault_url("demo"));

    ctx.emu.inject_faults(
        Route::GetCertificate,
        vec![Fault::TooManyRequests { retry_after_secs: 7 }, Fault::ServerError(502)],
    );
    let response = ctx.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Throttled");
    let response = ctx.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string());
    let response = ctx.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(ctx.emu.count(Route::GetCertificate), 3);

    // Persistent faults until cleared; queued ones win over them.
    ctx.emu.fail_always(Route::Sign, Some(Fault::ServerError(500)));
    ctx.emu
        .inject_faults(Route::Sign, vec![Fault::TooManyRequests { retry_after_secs: 1 }]);
    assert_eq!(sign_raw(&ctx, &token, &cert.kid, "PS256", &[0; 32]).await.status(), 429);
    for _ in 0..2 {
        assert_eq!(sign_raw(&ctx, &token, &cert.kid, "PS256", &[0; 32]).await.status(), 500);
    }
    ctx.emu.fail_always(Route::Sign, None);
    assert_eq!(sign_raw(&ctx, &token, &cert.kid, "PS256", &[0; 32]).await.status(), 200);

    // Counters are per route and reset together.
    assert_eq!(ctx.emu.count(Route::Sign), 4);
    assert_eq!(ctx.emu.count(Route::DeveloperToken), 1);
    assert_eq!(ctx.emu.count(Route::Token), 0);
    ctx.emu.reset_counters();
    for route in Route::ALL {
        assert_eq!(ctx.emu.count(route), 0, "{route:?}");
    }
}

#[tokio::test]
async fn latency_is_added() {
    let ctx = start().await;
    let token = vault_token(&ctx).await;
    ctx.emu.create_certificate("demo", "slow", "s");
    let url = format!("{}certificates/slow", ctx.emu.vault_url("demo"));
    ctx.emu.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    let response = ctx.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    ctx.emu.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn emulator_http_client_reaches_every_host() {
    let ctx = start().await;
    let seed = ctx.emu.seed_demo();
    let client = ctx.emu.http_client().unwrap();
    let response = client
        .get(format!("{}certificates/{}", seed.vault_url, seed.certificate_name))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client.get(ctx.emu.jwks_uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = client.get(format!("{}me", seed.api_url)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // Only *.localhost resolves through this client.
    assert!(client.get("https://example.com/").send().await.is_err());
}
