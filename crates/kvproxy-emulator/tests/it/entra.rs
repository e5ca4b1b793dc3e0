//! The emulated Entra: assertion exchange end to end (Key Vault signs, Entra verifies), the
//! issued token checked against the JWKS with an independent JWT library, and every rejection
//! KeyVault Proxy maps to a hint.

use crate::common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kvproxy_emulator::{DEMO_CLIENT_ID, DEVELOPER_CLIENT_ID, Route};
use serde_json::{Value, json};

const SCOPE: &str = "api://kvproxy-demo/.default";

async fn jwks_key(ctx: &Ctx) -> (String, DecodingKey) {
    let response = ctx.http.get(ctx.emu.jwks_uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let jwks: Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    let decoding = DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    (key["kid"].as_str().unwrap().to_owned(), decoding)
}

fn decode_with(key: &DecodingKey, ctx: &Ctx, token: &str, aud: &str) -> Value {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[ctx.emu.issuer()]);
    jsonwebtoken::decode::<Value>(token, key, &validation).unwrap().claims
}

#[tokio::test]
async fn assertion_exchange_issues_token_verifiable_with_jwks() {
    let ctx = start().await;
    let seed = ctx.emu.seed_demo();
    let vault_token = vault_token(&ctx).await;

    for alg in ["PS256", "RS256"] {
        let header = assertion_header(&seed.certificate, alg);
        let claims = assertion_claims(&ctx, &seed.client_id);
        let assertion = signed_assertion(&ctx, &vault_token, &seed.certificate, &header, &claims).await;
        let (status, body) = exchange(&ctx, &seed.client_id, &assertion, &seed.scope).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);

        let token = body["access_token"].as_str().unwrap();
        let (kid, key) = jwks_key(&ctx).await;
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
        let claims = decode_with(&key, &ctx, token, "api://kvproxy-demo");
        assert_eq!(claims["appid"], DEMO_CLIENT_ID);
        assert_eq!(claims["azp"], DEMO_CLIENT_ID);
        assert_eq!(claims["tid"], ctx.emu.tenant_id());
        assert_eq!(claims["roles"], json!(["Demo.Read", "Demo.Write"]));
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["kvproxy_emulator"], true);
        assert_eq!(claims["oid"], claims["sub"]);
        let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
        assert_eq!(exp - iat, 3599);

        // The token opens the demo API.
        let me = ctx
            .http
            .get(format!("{}me", ctx.emu.api_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["message"], "Hello from the KeyVault Proxy demo API");
        assert_eq!(me["appid"], DEMO_CLIENT_ID);
        assert_eq!(me["aud"], "api://kvproxy-demo");
        assert_eq!(me["roles"], json!(["Demo.Read", "Demo.Write"]));
    }
    assert_eq!(ctx.emu.count(Route::Token), 2);
    assert_eq!(ctx.emu.count(Route::Api), 2);
}

#[tokio::test]
async fn roles_default_and_change() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "roles-app");
    let vault_token = vault_token(&ctx).await;
    let (key_kid, key) = jwks_key(&ctx).await;
    assert!(!key_kid.is_empty());

    let mut roles_seen = Vec::new();
    for change in [false, true] {
        if change {
            ctx.emu.set_app_roles(&client_id, &["Custom.Role"]);
        }
        let assertion = valid_assertion(&ctx, &vault_token, &cert, &client_id, "PS256").await;
        let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
        assert_eq!(status, 200, "{body}");
        let claims = decode_with(&key, &ctx, body["access_token"].as_str().unwrap(), "api://kvproxy-demo");
        roles_seen.push(claims["roles"].clone());
    }
    assert_eq!(roles_seen, vec![json!(["Demo.Read"]), json!(["Custom.Role"])]);
}

#[tokio::test]
async fn developer_token_has_no_roles_and_wrong_secret_is_rejected() {
    let ctx = start().await;
    let token = vault_token(&ctx).await;
    let (_, key) = jwks_key(&ctx).await;
    let claims = decode_with(&key, &ctx, &token, "https://vault.localhost");
    assert_eq!(claims["appid"], DEVELOPER_CLIENT_ID);
    assert!(claims.get("roles").is_none());
    assert_eq!(ctx.emu.count(Route::DeveloperToken), 1);
    assert_eq!(ctx.emu.count(Route::Token), 0);

    let response = ctx
        .http
        .post(ctx.emu.token_endpoint())
        .form(&[
            ("client_id", DEVELOPER_CLIENT_ID),
            ("client_secret", "wrong"),
            ("grant_type", "client_credentials"),
            ("scope", "https://vault.localhost/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(aadsts(&body), 7000215);
}

#[tokio::test]
async fn error_body_is_entra_shaped_with_correlation_id() {
    let ctx = start().await;
    let correlation = "0b1c2d3e-4f50-4617-8899-aabbccddeeff";
    let response = ctx
        .http
        .post(ctx.emu.token_endpoint())
        .header("client-request-id", correlation)
        .form(&[
            ("client_id", "9f9f9f9f-0000-4000-8000-000000000000"),
            ("scope", SCOPE),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", "a.b.c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(body["error_codes"], json!([700016]));
    assert_eq!(body["correlation_id"], correlation);
    let trace_id = body["trace_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(trace_id).is_ok());
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("AADSTS700016: Application with identifier '9f9f9f9f-0000-4000-8000-000000000000' was not found in the directory 'kvproxy-demo.onmicrosoft.localhost'."), "{description}");
    assert!(description.contains(&format!("Trace ID: {trace_id}")));
    assert!(description.contains(&format!("Correlation ID: {correlation}")));
    assert!(description.contains(&format!("Timestamp: {}", body["timestamp"].as_str().unwrap())));
    assert_eq!(
        body["error_uri"],
        format!("{}/error?code=700016", ctx.emu.authority_host())
    );
}

#[tokio::test]
async fn thumbprint_of_unregistered_certificate_is_700027() {
    let ctx = start().await;
    let (client_id, _registered) = app_with_certificate(&ctx, "thumb-app");
    let stranger = ctx.emu.create_certificate("demo", "stranger", "stranger");
    let vault_token = vault_token(&ctx).await;

    for alg in ["PS256", "RS256"] {
        // Signed by a real key whose certificate is not on the app.
        let assertion = signed_assertion(
            &ctx,
            &vault_token,
            &stranger,
            &assertion_header(&stranger, alg),
            &assertion_claims(&ctx, &client_id),
        )
        .await;
        let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(aadsts(&body), 700027);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("The key was not found")
        );
    }
}

#[tokio::test]
async fn bad_signature_is_700027() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "sig-app");
    let stranger = ctx.emu.create_certificate("demo", "sig-stranger", "x");
    let vault_token = vault_token(&ctx).await;

    // Right thumbprint, signature made with another key.
    let header = assertion_header(&cert, "PS256");
    let claims = assertion_claims(&ctx, &client_id);
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let foreign = sign(
        &ctx,
        &vault_token,
        &stranger.kid,
        "PS256",
        &sha256(signing_input.as_bytes()),
    )
    .await;
    let assertion = format!("{signing_input}.{}", b64url(&foreign));
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("failed signature validation")
    );

    // Valid signature, claims changed afterwards.
    let good = signed_assertion(&ctx, &vault_token, &cert, &header, &claims).await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut tampered = claims.clone();
    tampered["exp"] = json!(now() + 600);
    parts[1] = b64url(tampered.to_string().as_bytes());
    let (status, body) = exchange(&ctx, &client_id, &parts.join("."), SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");

    // PS256 signature presented as RS256: the padding must be checked, not just the key.
    let mut rs_header = header.clone();
    rs_header["alg"] = json!("RS256");
    let ps_signature = sign(
        &ctx,
        &vault_token,
        &cert.kid,
        "PS256",
        &sha256(
            format!(
                "{}.{}",
                b64url(rs_header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            )
            .as_bytes(),
        ),
    )
    .await;
    let assertion = format!(
        "{}.{}.{}",
        b64url(rs_header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(&ps_signature)
    );
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");

    // alg none is never accepted.
    let none_header = json!({"alg": "none", "x5t#S256": cert.x5t_s256});
    let assertion = format!(
        "{}.{}.",
        b64url(none_header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
}

#[tokio::test]
async fn time_window_is_700024() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "time-app");
    let vault_token = vault_token(&ctx).await;
    let header = assertion_header(&cert, "PS256");

    // Emulator clock 10 minutes ahead: a 5-minute assertion made now has expired (skew 5 min).
    let assertion = signed_assertion(&ctx, &vault_token, &cert, &header, &assertion_claims(&ctx, &client_id)).await;
    ctx.emu.set_clock_offset(601);
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700024), "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Client assertion is not within its valid time range")
    );

    // Emulator clock 6 minutes behind: the assertion is not yet valid.
    ctx.emu.set_clock_offset(-360);
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700024), "{body}");

    // Back in sync the same assertion works (it was never accepted, so its jti is unused).
    ctx.emu.set_clock_offset(0);
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!(status, 200, "{body}");

    // Lifetime longer than 10 minutes + skew.
    let mut claims = assertion_claims(&ctx, &client_id);
    claims["exp"] = json!(now() + 3600);
    let assertion = signed_assertion(&ctx, &vault_token, &cert, &header, &claims).await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700024), "{body}");

    // No exp at all.
    let mut claims = assertion_claims(&ctx, &client_id);
    claims.as_object_mut().unwrap().remove("exp");
    let assertion = signed_assertion(&ctx, &vault_token, &cert, &header, &claims).await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700024), "{body}");
}

#[tokio::test]
async fn replayed_jti_is_50013() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "replay-app");
    let vault_token = vault_token(&ctx).await;
    let assertion = valid_assertion(&ctx, &vault_token, &cert, &client_id, "RS256").await;
    let (status, _) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!(status, 200);
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 50013), "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("jti has already been used")
    );

    let mut claims = assertion_claims(&ctx, &client_id);
    claims.as_object_mut().unwrap().remove("jti");
    let assertion = signed_assertion(&ctx, &vault_token, &cert, &assertion_header(&cert, "RS256"), &claims).await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 50013), "{body}");
}

#[tokio::test]
async fn audience_and_issuer_are_checked() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "aud-app");
    let vault_token = vault_token(&ctx).await;
    let header = assertion_header(&cert, "PS256");

    let mut claims = assertion_claims(&ctx, &client_id);
    claims["aud"] = json!("https://login.microsoftonline.com/common/oauth2/v2.0/token");
    let assertion = signed_assertion(&ctx, &vault_token, &cert, &header, &claims).await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 50013), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("audience"));

    let mut claims = assertion_claims(&ctx, &client_id);
    claims["iss"] = json!("someone-else");
    let assertion = signed_assertion(&ctx, &vault_token, &cert, &header, &claims).await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700021), "{body}");

    // The tenant domain in the URL: aud may use the domain (as sent) or the GUID.
    let domain = ctx.emu.tenant_domain();
    for aud_tenant in [domain.clone(), ctx.emu.tenant_id()] {
        let mut claims = assertion_claims(&ctx, &client_id);
        claims["aud"] = json!(format!("{}/{aud_tenant}/oauth2/v2.0/token", ctx.emu.authority_host()));
        let assertion = signed_assertion(&ctx, &vault_token, &cert, &header, &claims).await;
        let (status, body) = exchange_at(&ctx, &domain, &client_id, &assertion, SCOPE).await;
        assert_eq!(status, 200, "{aud_tenant}: {body}");
    }
}

#[tokio::test]
async fn scope_without_default_is_1002012() {
    let ctx = start().await;
    let (client_id, cert) = app_with_certificate(&ctx, "scope-app");
    let vault_token = vault_token(&ctx).await;
    let assertion = valid_assertion(&ctx, &vault_token, &cert, &client_id, "PS256").await;
    let (status, body) = exchange(&ctx, &client_id, &assertion, "api://kvproxy-demo/Demo.Read").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_scope");
    assert_eq!(aadsts(&body), 1002012);
    assert!(body["error_description"].as_str().unwrap().contains("/.default"));
}

#[tokio::test]
async fn unknown_tenant_is_90002() {
    let ctx = start().await;
    let (client_id, _) = app_with_certificate(&ctx, "tenant-app");
    let (status, body) = exchange_at(&ctx, "00000000-0000-0000-0000-000000000001", &client_id, "a.b.c", SCOPE).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(aadsts(&body), 90002);

    let response = ctx
        .http
        .get(format!(
            "{}/contoso.example/v2.0/.well-known/openid-configuration",
            ctx.emu.authority_host()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(aadsts(&body), 90002);
}

#[tokio::test]
async fn missing_credential_and_wrong_grant() {
    let ctx = start().await;
    let post = |form: Vec<(&'static str, &'static str)>| {
        let request = ctx.http.post(ctx.emu.token_endpoint()).form(&form);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(vec![
        ("client_id", DEMO_CLIENT_ID),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ])
    .await;
    assert_eq!((status, aadsts(&body)), (401, 7000218), "{body}");
    assert_eq!(body["error"], "invalid_client");

    let (status, body) = post(vec![
        ("client_id", DEMO_CLIENT_ID),
        ("grant_type", "password"),
        ("scope", SCOPE),
    ])
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn rotation_and_unregistration() {
    let ctx = start().await;
    let seed = ctx.emu.seed_demo();
    let vault_token = vault_token(&ctx).await;
    let rotated = ctx.emu.rotate_certificate("demo", &seed.certificate_name);
    assert_ne!(rotated.version, seed.certificate.version);
    assert_ne!(rotated.x5t_s256, seed.certificate.x5t_s256);

    // The new version is not on the app yet: 700027, the case KeyVault Proxy retries on.
    let assertion = signed_assertion(
        &ctx,
        &vault_token,
        &rotated,
        &assertion_header(&rotated, "PS256"),
        &assertion_claims(&ctx, &seed.client_id),
    )
    .await;
    let (status, body) = exchange(&ctx, &seed.client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");

    ctx.emu.register_certificate(&seed.client_id, &rotated);
    let assertion = signed_assertion(
        &ctx,
        &vault_token,
        &rotated,
        &assertion_header(&rotated, "PS256"),
        &assertion_claims(&ctx, &seed.client_id),
    )
    .await;
    let (status, body) = exchange(&ctx, &seed.client_id, &assertion, SCOPE).await;
    assert_eq!(status, 200, "{body}");

    ctx.emu.unregister_certificate(&seed.client_id, &rotated);
    let assertion = signed_assertion(
        &ctx,
        &vault_token,
        &rotated,
        &assertion_header(&rotated, "PS256"),
        &assertion_claims(&ctx, &seed.client_id),
    )
    .await;
    let (status, body) = exchange(&ctx, &seed.client_id, &assertion, SCOPE).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
}

#[tokio::test]
async fn forced_errors_and_token_faults() {
    let ctx = start().await;
    let seed = ctx.emu.seed_demo();
    let vault_token = vault_token(&ctx).await;
    let new_assertion = async || {
        signed_assertion(
            &ctx,
            &vault_token,
            &seed.certificate,
            &assertion_header(&seed.certificate, "PS256"),
            &assertion_claims(&ctx, &seed.client_id),
        )
        .await
    };

    for (code, error) in [
        (700023, "invalid_request"),
        (500011, "invalid_resource"),
        (7000215, "invalid_client"),
    ] {
        ctx.emu.force_token_error(Some(code));
        let (_, body) = exchange(&ctx, &seed.client_id, &new_assertion().await, SCOPE).await;
        assert_eq!(aadsts(&body), u64::from(code), "{body}");
        assert_eq!(body["error"], error);
    }
    ctx.emu.force_token_error(None);

    ctx.emu.inject_faults(
        Route::Token,
        vec![
            kvproxy_emulator::Fault::TooManyRequests { retry_after_secs: 2 },
            kvproxy_emulator::Fault::ServerError(503),
        ],
    );
    let assertion = new_assertion().await;
    let form = [
        ("client_id", seed.client_id.as_str()),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let first = ctx
        .http
        .post(ctx.emu.token_endpoint())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "2");
    let body: Value = first.json().await.unwrap();
    assert!(body["error_codes"].is_array());
    let second = ctx
        .http
        .post(ctx.emu.token_endpoint())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    // Faults answer before verification, so the same assertion is still fresh.
    let third = ctx
        .http
        .post(ctx.emu.token_endpoint())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
}

#[tokio::test]
async fn discovery_documents() {
    let ctx = start().await;
    let tenant = ctx.emu.tenant_id();
    let config: Value = ctx
        .http
        .get(format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            ctx.emu.authority_host()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["issuer"], ctx.emu.issuer());
    assert_eq!(config["token_endpoint"], ctx.emu.token_endpoint());
    assert_eq!(config["jwks_uri"], ctx.emu.jwks_uri());
    let jwks: Value = ctx
        .http
        .get(ctx.emu.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(ctx.emu.count(Route::Discovery), 2);
}

#[tokio::test]
async fn demo_api_rejects_other_tokens() {
    let ctx = start().await;
    let me = format!("{}me", ctx.emu.api_url());

    let response = ctx.http.get(&me).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    // A valid token for another resource.
    let vault_token = vault_token(&ctx).await;
    let response = ctx.http.get(&me).bearer_auth(&vault_token).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // The right audience but expired by the emulator's clock.
    let api_token = developer_token(&ctx, SCOPE).await;
    let response = ctx.http.get(&me).bearer_auth(&api_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    ctx.emu.set_clock_offset(3600);
    let response = ctx.http.get(&me).bearer_auth(&api_token).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(ctx.emu.count(Route::Api), 4);

    // Unknown paths and hosts are JSON 404s.
    let response = ctx.http.get(format!("{}nope", ctx.emu.api_url())).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let _: Value = response.json().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let ctx = start().await;
    let url = ctx.emu.jwks_uri();
    assert_eq!(ctx.http.get(&url).send().await.unwrap().status(), 200);
    let Ctx { emu, http } = ctx;
    drop(http);
    // A client with no pooled connection, so the attempt after shutdown must connect anew.
    let fresh = client_for(&emu, &[]);
    emu.shutdown().await;
    let error = fresh.get(&url).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}
