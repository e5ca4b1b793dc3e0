//! The emulated Microsoft Graph and the certificate policy over HTTPS with a plain HTTP client: what a
//! client checking an app registration and a certificate sees, and each way those checks can go wrong.

use crate::common::*;
use kvproxy_emulator::{CertificateOptions, GRAPH_RESOURCE, Route, VaultPermissions};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

fn graph_client(ctx: &Ctx) -> reqwest::Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ctx.emu.port()));
    let ca = reqwest::Certificate::from_pem(ctx.emu.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .resolve("graph.localhost", addr)
        .build()
        .unwrap()
}

async fn graph_token(ctx: &Ctx) -> String {
    developer_token(ctx, &format!("{GRAPH_RESOURCE}/.default")).await
}

async fn get_application(ctx: &Ctx, token: Option<&str>, app_id: &str, query: &str) -> (u16, Value) {
    let mut request = graph_client(ctx).get(format!(
        "{}/v1.0/applications(appId='{app_id}'){query}",
        ctx.emu.graph_url()
    ));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn graph_lists_the_certificates_registered_on_an_app() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "graph-app");
    let unregistered = ctx.emu.create_certificate("demo", "other-cert", "other");
    let token = graph_token(&ctx).await;

    let (status, body) = get_application(&ctx, Some(&token), &client_id, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["appId"], client_id.as_str());
    assert_eq!(body["displayName"], "graph-app");
    assert!(
        body["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{body}"
    );
    let credentials = body["keyCredentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1, "{body}");
    let credential = &credentials[0];
    assert_eq!(
        credential["customKeyIdentifier"],
        hex(&openssl::sha::sha1(&cert.cer_der))
    );
    assert_ne!(
        credential["customKeyIdentifier"],
        hex(&openssl::sha::sha1(&unregistered.cer_der))
    );
    assert_eq!(credential["type"], "AsymmetricX509Cert");
    assert_eq!(credential["usage"], "Verify");
    assert_eq!(credential["displayName"], "CN=graph-app");
    assert!(
        credential["keyId"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );
    let end = OffsetDateTime::parse(
        credential["endDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(end, cert.expires);
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        credential["key"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(key, cert.cer_der);

    // `$select` narrows the answer as Graph does; the app id may come in upper case.
    let (status, body) =
        get_application(&ctx, Some(&token), &client_id.to_uppercase(), "?$select=keyCredentials").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("displayName").is_none(), "{body}");
    assert_eq!(body["keyCredentials"].as_array().map(Vec::len), Some(1));
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("applications(keyCredentials)")
    );

    ctx.emu.unregister_certificate(&client_id, &cert);
    let (_, body) = get_application(&ctx, Some(&token), &client_id, "?$select=keyCredentials").await;
    assert_eq!(body["keyCredentials"], serde_json::json!([]));
    assert_eq!(ctx.emu.count(Route::GraphApplication), 3);
}

#[tokio::test]
async fn graph_refuses_without_a_graph_token_of_the_developer() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "guarded");

    let (status, body) = get_application(&ctx, None, &client_id, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );

    // A Key Vault token is for another audience.
    let vault = vault_token(&ctx).await;
    let (status, body) = get_application(&ctx, Some(&vault), &client_id, "").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("audience"),
        "{body}"
    );

    // The app's own token (client credentials for Graph) has no directory rights.
    let assertion = valid_assertion(&ctx, &vault, &cert, &client_id, "PS256").await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, &format!("{GRAPH_RESOURCE}/.default")).await;
    assert_eq!(status, 200, "{body}");
    let app_token = body["access_token"].as_str().unwrap();
    let (status, body) = get_application(&ctx, Some(app_token), &client_id, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );

    // The knob takes the developer's rights away, and gives them back.
    let developer = graph_token(&ctx).await;
    ctx.emu.set_graph_access(false);
    let (status, body) = get_application(&ctx, Some(&developer), &client_id, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
    ctx.emu.set_graph_access(true);
    let (status, _) = get_application(&ctx, Some(&developer), &client_id, "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn graph_answers_404_for_an_unknown_app_and_for_other_paths() {
    let ctx = start().await;
    let token = graph_token(&ctx).await;
    let unknown = "99999999-8888-4777-8666-555555555555";
    let (status, body) = get_application(&ctx, Some(&token), unknown, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("Request_ResourceNotFound"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains(unknown));

    let response = graph_client(&ctx)
        .get(format!("{}/v1.0/me", ctx.emu.graph_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(ctx.emu.count(Route::GraphApplication), 1);
}

async fn certificate_json(ctx: &Ctx, name: &str) -> Value {
    let token = vault_token(ctx).await;
    let response = ctx
        .http
        .get(format!(
            "{}certificates/{name}?api-version=7.5",
            ctx.emu.vault_url("demo")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn key_json(ctx: &Ctx, kid: &str) -> (u16, Value) {
    let token = vault_token(ctx).await;
    let response = ctx
        .http
        .get(format!("{kid}?api-version=7.5"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn certificate_policy_and_attributes_follow_the_knobs() {
    let ctx = start().await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let cert = ctx.emu.create_certificate_with(
        "demo",
        "exportable",
        "exportable",
        &CertificateOptions {
            exportable: true,
            not_before: Some(now - Duration::days(400)),
            expires: Some(now - Duration::days(2)),
            ..Default::default()
        },
    );
    assert_eq!(
        (cert.not_before, cert.expires),
        (now - Duration::days(400), now - Duration::days(2))
    );
    let body = certificate_json(&ctx, "exportable").await;
    assert_eq!(body["policy"]["key_props"]["exportable"], true);
    assert_eq!(body["attributes"]["enabled"], true);
    assert_eq!(body["attributes"]["exp"], cert.expires.unix_timestamp());
    assert_eq!(body["attributes"]["nbf"], cert.not_before.unix_timestamp());
    let x509 = openssl::x509::X509::from_der(&cert.cer_der).unwrap();
    let expired = openssl::asn1::Asn1Time::from_unix(cert.expires.unix_timestamp()).unwrap();
    assert_eq!(x509.not_after().compare(&expired).unwrap(), std::cmp::Ordering::Equal);

    ctx.emu.create_certificate("demo", "plain", "plain");
    assert_eq!(
        certificate_json(&ctx, "plain").await["policy"]["key_props"]["exportable"],
        false
    );

    let bad = ctx.emu.try_create_certificate_with(
        "demo",
        "backwards",
        "backwards",
        &CertificateOptions {
            not_before: Some(now),
            expires: Some(now - Duration::days(1)),
            ..Default::default()
        },
    );
    assert!(bad.is_err());
}

#[tokio::test]
async fn a_disabled_certificate_is_readable_but_its_key_does_not_sign() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "switch", "switch");
    ctx.emu.set_certificate_enabled("demo", "switch", false);
    assert_eq!(certificate_json(&ctx, "switch").await["attributes"]["enabled"], false);
    let (_, key) = key_json(&ctx, &cert.kid).await;
    assert_eq!(key["attributes"]["enabled"], false);
    let token = vault_token(&ctx).await;
    let response = sign_raw(&ctx, &token, &cert.kid, "PS256", &sha256(b"m")).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("disabled"),
        "{body}"
    );

    ctx.emu.set_certificate_enabled("demo", "switch", true);
    assert_eq!(
        sign_raw(&ctx, &token, &cert.kid, "PS256", &sha256(b"m")).await.status(),
        200
    );
}

#[tokio::test]
async fn keys_list_their_operations_and_refuse_to_sign_without_sign() {
    let ctx = start().await;
    let cert = ctx.emu.create_certificate("demo", "signer", "signer");
    let (status, body) = key_json(&ctx, &cert.kid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"]["kid"], cert.kid);
    assert_eq!(body["key"]["kty"], "RSA");
    let ops: Vec<&str> = body["key"]["key_ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ops.contains(&"sign") && ops.contains(&"verify"), "{ops:?}");
    assert_eq!(body["managed"], true);
    // The key's public part is the certificate's.
    let x509 = openssl::x509::X509::from_der(&cert.cer_der).unwrap();
    let n = x509.public_key().unwrap().rsa().unwrap().n().to_vec();
    assert_eq!(b64url_decode(body["key"]["n"].as_str().unwrap()), n);

    let no_sign = ctx.emu.create_certificate_with(
        "demo",
        "no-sign",
        "no-sign",
        &CertificateOptions {
            sign_allowed: false,
            ..Default::default()
        },
    );
    let (_, body) = key_json(&ctx, &no_sign.kid).await;
    let ops: Vec<&str> = body["key"]["key_ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!ops.contains(&"sign"), "{ops:?}");
    let token = vault_token(&ctx).await;
    let response = sign_raw(&ctx, &token, &no_sign.kid, "RS256", &sha256(b"m")).await;
    assert_eq!(response.status(), 403);

    // Reading a key needs one of the roles a user of the vault holds; neither means 403.
    ctx.emu.set_permissions(
        "demo",
        VaultPermissions {
            get_certificate: false,
            sign: false,
        },
    );
    let (status, body) = key_json(&ctx, &cert.kid).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("keys/read"));
    ctx.emu.set_permissions(
        "demo",
        VaultPermissions {
            get_certificate: false,
            sign: true,
        },
    );
    assert_eq!(key_json(&ctx, &cert.kid).await.0, 200);
    assert_eq!(
        key_json(
            &ctx,
            &format!("{}/keys/missing", ctx.emu.vault_url("demo").trim_end_matches('/'))
        )
        .await
        .0,
        404
    );
    assert_eq!(ctx.emu.count(Route::GetKey), 5);
}

#[tokio::test]
async fn entra_refuses_an_expired_or_not_yet_valid_registered_certificate() {
    let ctx = start().await;
    let client_id = ctx.emu.create_app("dated");
    let now = OffsetDateTime::now_utc();
    let token = vault_token(&ctx).await;
    for (name, not_before, expires, reason) in [
        (
            "expired",
            now - Duration::days(30),
            now - Duration::minutes(1),
            "expired",
        ),
        (
            "future",
            now + Duration::days(1),
            now + Duration::days(30),
            "not yet valid",
        ),
    ] {
        let cert = ctx.emu.create_certificate_with(
            "demo",
            name,
            name,
            &CertificateOptions {
                not_before: Some(not_before),
                expires: Some(expires),
                ..Default::default()
            },
        );
        ctx.emu.register_certificate(&client_id, &cert);
        let assertion = valid_assertion(&ctx, &token, &cert, &client_id, "PS256").await;
        let (status, body) = exchange(&ctx, &client_id, &assertion, "api://x/.default").await;
        assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
        assert!(body["error_description"].as_str().unwrap().contains(reason), "{body}");
    }
}
