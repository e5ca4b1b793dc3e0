//! The guard: API key, Host (DNS rebinding), Origin (CSRF), no CORS, body limits, JSON errors for
//! everything, and the vault allowlist that keeps Key Vault tokens and signing requests on Azure's
//! (or the profile's custom cloud's) hosts.

use crate::common::{KEY_HINT, PROFILE, RESOURCE, TestServer, oauth_error, ok_json, problem};
use reqwest::header::{HOST, ORIGIN, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every key-protected route, by its pattern in the server's route table, with a request that would succeed
/// with the key.
fn protected_requests(s: &TestServer) -> Vec<(&'static str, reqwest::RequestBuilder)> {
    let msi_query = format!("?api-version=2019-08-01&resource={RESOURCE}");
    vec![
        (
            "/api/Token/kv-key",
            s.http.post(s.url("/api/Token/kv-key")).json(&s.kv_key_body()),
        ),
        (
            "/api/Token/kv-key-info",
            s.http.post(s.url("/api/Token/kv-key-info")).json(&s.kv_key_info_body()),
        ),
        (
            "/api/Token/kv-certificate",
            s.http
                .post(s.url("/api/Token/kv-certificate"))
                .json(&s.kv_certificate_body()),
        ),
        ("/api/profiles", s.http.get(s.url("/api/profiles"))),
        (
            "/api/profiles/{name}/token",
            s.http.get(s.url(&format!("/api/profiles/{PROFILE}/token"))),
        ),
        (
            "/api/profiles/{name}/token",
            s.http.get(s.url(&format!("/api/profiles/{PROFILE}/token?format=raw"))),
        ),
        ("/msi/token", s.http.get(s.url(&format!("/msi/token{msi_query}")))),
        (
            "/msi/{profile}/token",
            s.http.get(s.url(&format!("/msi/{PROFILE}/token{msi_query}"))),
        ),
        ("/api/activity", s.http.get(s.url("/api/activity"))),
    ]
}

/// Routes that need no key: liveness, and OAuth2, whose key is the client secret (tested on its own).
const OPEN_OR_OWN_KEY: [&str; 2] = ["/health", "/oauth2/v2.0/token"];

/// A route added to the server is in the lockdown table too, or this fails: the table above is what the
/// key tests below walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_server_is_in_the_lockdown_table() {
    let s = TestServer::start().await;
    let tested: Vec<&str> = protected_requests(&s).into_iter().map(|(route, _)| route).collect();
    for (_, route) in kvproxy_server::serve::ROUTES {
        assert!(
            tested.contains(route) || OPEN_OR_OWN_KEY.contains(route),
            "{route} is served but not in the lockdown table"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_route_without_the_key_is_401_saying_how_to_get_it() {
    let s = TestServer::start().await;
    for (name, request) in protected_requests(&s) {
        let response = request.send().await.unwrap();
        let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
        let p = problem(response, 401, None).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains(KEY_HINT),
            "{name}: 401 should say `{KEY_HINT}`: {detail}"
        );
        assert!(challenge.is_some(), "{name}: 401 without WWW-Authenticate");
    }
    // The OAuth2 route takes the key as client_secret.
    let without_secret = s
        .http
        .post(s.url("/oauth2/v2.0/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", PROFILE)]);
    let (body, headers) = oauth_error(without_secret.send().await.unwrap(), 401, "invalid_client").await;
    assert!(body["error_description"].as_str().unwrap().contains(KEY_HINT), "{body}");
    assert!(headers.get(WWW_AUTHENTICATE).is_some());
    s.assert_emulator_untouched("requests without the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_401_in_every_form() {
    let s = TestServer::start().await;
    let wrong = kvproxy_app::generate_api_key().unwrap();
    let wrong = wrong.expose();
    let almost = format!("{}x", &s.key[..s.key.len() - 1]);
    for bad in [wrong, almost.as_str(), "", " "] {
        for (name, request) in protected_requests(&s) {
            let p = problem(request.bearer_auth(bad).send().await.unwrap(), 401, None).await;
            assert!(p["detail"].as_str().unwrap().contains(KEY_HINT), "{name}: {p}");
        }
        for header in ["X-Api-Key", "X-IDENTITY-HEADER"] {
            for (name, request) in protected_requests(&s) {
                let response = request.header(header, bad).send().await.unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{name} with {header}: {bad:?}"
                );
            }
        }
    }
    // The key with different letter case is a different key.
    let swapped: String = s
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if swapped != s.key {
        let response = s.http.get(s.url("/api/profiles")).bearer_auth(&swapped).send().await;
        problem(response.unwrap(), 401, None).await;
    }
    s.assert_emulator_untouched("requests with a wrong key");
}

/// The right key in one header does not excuse a wrong one in another (or a second, wrong copy of the
/// same header, or an Authorization header of another scheme): every credential presented must be the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_credential_next_to_the_right_key_is_401() {
    let s = TestServer::start().await;
    let wrong = kvproxy_app::generate_api_key().unwrap().expose().to_string();
    let mixes: [(&str, &str, &str, &str); 6] = [
        ("authorization", "bearer right", "x-api-key", "wrong"),
        ("x-api-key", "right", "authorization", "bearer wrong"),
        ("x-api-key", "right", "x-identity-header", "wrong"),
        ("x-identity-header", "right", "x-api-key", "wrong"),
        ("x-api-key", "right", "x-api-key", "wrong"),
        ("x-api-key", "right", "authorization", "basic wrong"),
    ];
    let value = |v: &str| {
        v.replace("right", &s.key)
            .replace("wrong", &wrong)
            .replace("bearer ", "Bearer ")
            .replace("basic ", "Basic ")
    };
    for (first, first_value, second, second_value) in mixes {
        for (name, request) in protected_requests(&s) {
            let response = request
                .header(first, value(first_value))
                .header(second, value(second_value))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{name}: {first}: {first_value} + {second}: {second_value}"
            );
        }
    }
    // OAuth2: a wrong secret in the form next to the right one in Basic, or a wrong X-Api-Key next to it.
    let basic_right_form_wrong = s.oauth2_token(&wrong, None).basic_auth(PROFILE, Some(&s.key));
    oauth_error(basic_right_form_wrong.send().await.unwrap(), 401, "invalid_client").await;
    let right_with_wrong_header = s.oauth2_token(&s.key, None).header("X-Api-Key", &wrong);
    oauth_error(right_with_wrong_header.send().await.unwrap(), 401, "invalid_client").await;
    let wrong_bearer = s.oauth2_token(&s.key, None).bearer_auth(&wrong);
    oauth_error(wrong_bearer.send().await.unwrap(), 401, "invalid_client").await;
    let other_scheme = s
        .oauth2_token(&s.key, None)
        .header("Authorization", format!("Digest {wrong}"));
    oauth_error(other_scheme.send().await.unwrap(), 401, "invalid_client").await;
    s.assert_emulator_untouched("requests with a wrong credential next to the key");
    // And the right key twice is still the right key (OAuth2 takes the API key as a Bearer token too).
    let twice = s
        .http
        .get(s.url("/api/profiles"))
        .bearer_auth(&s.key)
        .header("X-Api-Key", &s.key);
    assert_eq!(twice.send().await.unwrap().status(), StatusCode::OK);
    let oauth2_with_bearer = s.oauth2_token(&s.key, None).bearer_auth(&s.key);
    assert_eq!(oauth2_with_bearer.send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_accepted_as_bearer_x_api_key_and_x_identity_header() {
    let s = TestServer::start().await;
    for form in ["bearer", "x-api-key", "x-identity-header"] {
        for (name, request) in protected_requests(&s) {
            let request = match form {
                "bearer" => request.bearer_auth(&s.key),
                "x-api-key" => request.header("X-Api-Key", &s.key),
                _ => request.header("X-IDENTITY-HEADER", &s.key),
            };
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{name} with the key as {form}: {text}");
        }
    }
}

/// A request without the key must be refused as such before the server does any work for it; an
/// unauthenticated caller gets 401, not a parse error about its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_a_bad_body_is_still_401() {
    let s = TestServer::start().await;
    for route in [
        "/api/Token/kv-key",
        "/api/Token/kv-key-info",
        "/api/Token/kv-certificate",
    ] {
        let response = s
            .http
            .post(s.url(route))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        problem(response, 401, None).await;
        let response = s.http.post(s.url(route)).json(&json!({})).send().await.unwrap();
        problem(response, 401, None).await;
    }
    // A bad path or query string too: the key is checked before the route reads either.
    for path in [
        "/api/profiles/%FF%FE/token",
        "/api/profiles/test/token?format=bogus&skip_cache=maybe",
        "/msi/token?api-version=1999-01-01",
        "/msi/%FF/token",
    ] {
        let response = s.http.get(s.url(path)).send().await.unwrap();
        problem(response, 401, None).await;
    }
    s.assert_emulator_untouched("requests without the key");
}

// ---------------------------------------------------------------------------------------------
// Host and Origin
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_headers_are_refused() {
    let s = TestServer::start().await;
    let port = s.port;
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("192.168.1.10:{port}"),
        format!("[::2]:{port}"),
    ] {
        let p = problem(
            s.http.get(s.url("/health")).header(HOST, &host).send().await.unwrap(),
            403,
            None,
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("DNS rebinding"), "{p}");
        problem(
            s.get(&format!("/api/profiles/{PROFILE}/token"))
                .header(HOST, &host)
                .send()
                .await
                .unwrap(),
            403,
            None,
        )
        .await;
        problem(
            s.post_json("/api/Token/kv-certificate", &s.kv_certificate_body())
                .header(HOST, &host)
                .send()
                .await
                .unwrap(),
            403,
            None,
        )
        .await;
    }
    s.assert_emulator_untouched("foreign Host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_host_headers_are_allowed_with_and_without_port() {
    let s = TestServer::start().await;
    let port = s.port;
    for host in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
        format!("[::1]:{port}"),
    ] {
        let response = s.http.get(s.url("/health")).header(HOST, &host).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "Host: {host}");
        let response = s.get("/api/profiles").header(HOST, &host).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "Host: {host}");
    }
    // And the real thing, by name.
    ok_json(s.http.get(s.localhost_url("/health")).send().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_are_refused_even_on_health() {
    let s = TestServer::start().await;
    let port = s.port;
    for origin in [
        "http://evil.example".to_string(),
        format!("http://evil.example:{port}"),
        "null".to_string(),
        format!("http://localhost:{}", port.wrapping_add(1).max(1)),
        format!("https://localhost:{port}"),
        format!("http://localhost.evil.example:{port}"),
        "http://localhost".to_string(),
        // The desktop app's window talks to the app over IPC, so a webview origin has no business here.
        "tauri://localhost".to_string(),
        "http://tauri.localhost".to_string(),
    ] {
        let p = problem(
            s.http
                .get(s.url("/health"))
                .header(ORIGIN, &origin)
                .send()
                .await
                .unwrap(),
            403,
            None,
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("CSRF"), "{p}");
        problem(
            s.get(&format!("/api/profiles/{PROFILE}/token"))
                .header(ORIGIN, &origin)
                .send()
                .await
                .unwrap(),
            403,
            None,
        )
        .await;
        problem(
            s.post_json("/api/Token/kv-certificate", &s.kv_certificate_body())
                .header(ORIGIN, &origin)
                .send()
                .await
                .unwrap(),
            403,
            None,
        )
        .await;
        let response = s
            .oauth2_token(&s.key, None)
            .header(ORIGIN, &origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "oauth2 with Origin {origin}");
    }
    s.assert_emulator_untouched("foreign Origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_origins_are_allowed() {
    let s = TestServer::start().await;
    let port = s.port;
    for origin in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    ] {
        ok_json(
            s.http
                .get(s.url("/health"))
                .header(ORIGIN, &origin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        ok_json(
            s.get(&format!("/api/profiles/{PROFILE}/token"))
                .header(ORIGIN, &origin)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cors_headers_on_any_response_and_preflights_fail() {
    let s = TestServer::start().await;
    let own = format!("http://localhost:{}", s.port);
    let mut responses = Vec::new();
    let preflight = |origin: &str, path: &str| {
        s.http
            .request(Method::OPTIONS, s.url(path))
            .header(ORIGIN, origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type")
    };
    for (name, request) in [
        (
            "preflight foreign token",
            preflight("http://evil.example", "/api/Token/kv-certificate"),
        ),
        ("preflight own token", preflight(&own, "/api/Token/kv-certificate")),
        (
            "preflight foreign oauth2",
            preflight("http://evil.example", "/oauth2/v2.0/token"),
        ),
        ("preflight own profile", preflight(&own, "/api/profiles/test/token")),
        ("preflight own health", preflight(&own, "/health")),
        (
            "options without origin",
            s.http.request(Method::OPTIONS, s.url("/api/profiles")),
        ),
    ] {
        let response = request.send().await.unwrap();
        assert!(
            !response.status().is_success(),
            "{name}: a CORS preflight must not succeed, got {}",
            response.status()
        );
        responses.push((name, response));
    }
    for (name, request) in [
        ("health", s.http.get(s.url("/health"))),
        ("health own origin", s.http.get(s.url("/health")).header(ORIGIN, &own)),
        (
            "health foreign origin",
            s.http.get(s.url("/health")).header(ORIGIN, "http://evil.example"),
        ),
        (
            "token",
            s.get(&format!("/api/profiles/{PROFILE}/token")).header(ORIGIN, &own),
        ),
        ("raw token", s.get(&format!("/api/profiles/{PROFILE}/token?format=raw"))),
        ("401", s.http.get(s.url("/api/profiles")).header(ORIGIN, &own)),
        ("404", s.http.get(s.url("/nope")).header(ORIGIN, &own)),
        ("405", s.http.delete(s.url("/health")).header(ORIGIN, &own)),
        ("openapi", s.http.get(s.url("/openapi.json")).header(ORIGIN, &own)),
        ("swagger", s.http.get(s.url("/swagger/index.html")).header(ORIGIN, &own)),
        (
            "oauth2",
            s.http.post(s.url("/oauth2/v2.0/token")).header(ORIGIN, &own).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", PROFILE),
                ("client_secret", s.key.as_str()),
            ]),
        ),
    ] {
        responses.push((name, request.send().await.unwrap()));
    }
    for (name, response) in responses {
        let cors: Vec<_> = response
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{name}: CORS headers {cors:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies, unknown routes and methods
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_413() {
    let s = TestServer::start().await;
    let mut body = s.kv_certificate_body();
    body["certificateName"] = json!("a".repeat(70 * 1024));
    for route in [
        "/api/Token/kv-certificate",
        "/api/Token/kv-key",
        "/api/Token/kv-key-info",
    ] {
        let p = problem(s.post_json(route, &body).send().await.unwrap(), 413, None).await;
        assert!(p["detail"].as_str().unwrap().contains("64 KiB"), "{p}");
    }
    // Chunked (no Content-Length) is limited too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = s
        .http
        .post(s.url("/api/Token/kv-certificate"))
        .bearer_auth(&s.key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    problem(response, 413, None).await;

    let big = "x".repeat(70 * 1024);
    let oversized = s.oauth2_token(&s.key, Some(&big)).send().await.unwrap();
    oauth_error(oversized, 413, "invalid_request").await;
    s.assert_emulator_untouched("oversized bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_wrong_content_type_are_problems() {
    let s = TestServer::start().await;
    for raw in ["{not json", "", "[1, 2", "{\"clientId\": \"x\",}"] {
        let response = s
            .http
            .post(s.url("/api/Token/kv-certificate"))
            .bearer_auth(&s.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let p = problem(response, 400, None).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("JSON"),
            "{raw:?}: the detail should say the JSON is malformed: {detail}"
        );
        assert!(
            detail.contains("line") || detail.contains("EOF"),
            "{raw:?}: the detail should say where: {detail}"
        );
    }
    // Valid JSON of the wrong shape.
    problem(
        s.post_json("/api/Token/kv-certificate", &json!([1, 2]))
            .send()
            .await
            .unwrap(),
        400,
        None,
    )
    .await;
    let response = s
        .http
        .post(s.url("/api/Token/kv-certificate"))
        .bearer_auth(&s.key)
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(s.kv_certificate_body().to_string())
        .send()
        .await
        .unwrap();
    let p = problem(response, 415, None).await;
    assert!(p["detail"].as_str().unwrap().contains("application/json"), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_is_named_in_camel_case() {
    let s = TestServer::start().await;
    let routes: [(&str, Value, &[&str]); 3] = [
        (
            "/api/Token/kv-certificate",
            s.kv_certificate_body(),
            &["clientId", "tenantId", "scopes", "keyVaultUri", "certificateName"],
        ),
        (
            "/api/Token/kv-key",
            s.kv_key_body(),
            &["clientId", "tenantId", "scopes", "keyUri", "keyThumbprint"],
        ),
        (
            "/api/Token/kv-key-info",
            s.kv_key_info_body(),
            &["keyVaultUri", "certificateName"],
        ),
    ];
    for (route, full, fields) in routes {
        for field in fields {
            let mut body = full.clone();
            body.as_object_mut().unwrap().remove(*field);
            let p = problem(s.post_json(route, &body).send().await.unwrap(), 400, Some(field)).await;
            assert!(p["detail"].as_str().unwrap().contains(field), "{route} {field}: {p}");
        }
    }
    s.assert_emulator_untouched("missing fields");
}

/// A field of the wrong JSON type is a field at fault: the problem names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_of_the_wrong_type_is_named() {
    let s = TestServer::start().await;
    let mut failures = Vec::new();
    for (field, value) in [
        ("skipCache", json!("yes")),
        ("clientId", json!(42)),
        ("certificateName", json!(["a"])),
        ("scopes", json!(5)),
    ] {
        let mut body = s.kv_certificate_body();
        body[field] = value;
        let response = s.post_json("/api/Token/kv-certificate", &body).send().await.unwrap();
        if let Some(wrong) = crate::common::problem_mismatch(response, 400, field).await {
            failures.push(wrong);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405_as_problems() {
    let s = TestServer::start().await;
    for path in ["/nope", "/api/Token/kv-nothing", "/api/profiles/test", "/msi", "/"] {
        let p = s.get_problem(path, 404, None).await;
        assert!(p["detail"].as_str().unwrap().contains(path), "{p}");
    }
    for (method, path, allowed) in [
        (Method::GET, "/api/Token/kv-certificate", "POST"),
        (Method::PUT, "/api/Token/kv-key", "POST"),
        (Method::POST, "/api/profiles", "GET"),
        (Method::DELETE, "/api/profiles/test/token", "GET"),
        (Method::GET, "/oauth2/v2.0/token", "POST"),
        (Method::POST, "/msi/token", "GET"),
        (Method::POST, "/health", "GET"),
    ] {
        let response = s
            .http
            .request(method.clone(), s.url(path))
            .bearer_auth(&s.key)
            .send()
            .await
            .unwrap();
        // RFC 9110 §15.5.6: a 405 lists the methods the route does take.
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        problem(response, 405, None).await;
        assert!(
            allow.contains(allowed),
            "{method} {path}: Allow {allow:?} should list {allowed}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Vault allowlist
// ---------------------------------------------------------------------------------------------

/// Counts TCP connections to a loopback port, without ever answering.
struct ConnectionCounter {
    port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectionCounter {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (count, stop) = (count.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            held.push(stream);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the count reaches `n`.
    fn wait_for(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_urls_off_the_allowlist_are_refused_before_anything_is_sent() {
    let s = TestServer::start().await;
    let counter = ConnectionCounter::start();
    let emulator_port = s.emulator.port();
    let cases = [
        "https://evil.example/".to_string(),
        format!("http://demo.vault.localhost:{emulator_port}/"),
        format!("http://{}.vault.localhost:{emulator_port}/", crate::common::VAULT),
        format!("https://evil.localhost:{}/", counter.port),
        format!("https://evil.vault.localhost.evil.localhost:{}/", counter.port),
        format!("https://a.b.vault.localhost:{}/", counter.port),
        format!(
            "https://user@{}.vault.localhost:{}/",
            crate::common::VAULT,
            counter.port
        ),
        "https://contoso.vault.azure.net.evil.example/".to_string(),
    ];
    for vault in &cases {
        let mut body = s.kv_certificate_body();
        body["keyVaultUri"] = json!(vault);
        problem(
            s.post_json("/api/Token/kv-certificate", &body).send().await.unwrap(),
            400,
            Some("keyVaultUri"),
        )
        .await;
    }
    // Same for the key routes (whatever field they name).
    let evil = format!("https://evil.localhost:{}/", counter.port);
    let mut kv_key = s.kv_key_body();
    kv_key["keyUri"] = json!(format!("{evil}keys/app-cert/0123456789abcdef0123456789abcdef"));
    let mut kv_key_info = s.kv_key_info_body();
    kv_key_info["keyVaultUri"] = json!(evil);
    for (route, body) in [("/api/Token/kv-key", kv_key), ("/api/Token/kv-key-info", kv_key_info)] {
        let response = s.post_json(route, &body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{route}");
    }
    assert_eq!(counter.count(), 0, "a request left for a host off the allowlist");
    s.assert_emulator_untouched("off-allowlist vaults");

    // Positive control: the counter does see connections, so the zero above means something.
    let _probe = std::net::TcpStream::connect(("127.0.0.1", counter.port)).expect("connect to the counter");
    assert!(counter.wait_for(1), "the connection counter works");
}
