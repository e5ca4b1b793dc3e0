//! Attacks from docs/SECURITY.md that no other module covers: slow clients, hostile bodies and content
//! types, path-like profile names, CR/LF in reflected values, duplicated credentials, vault URLs that try to
//! leave the allowlist, non-loopback binds, and other users on the agent socket.
//!
//! Raw HTTP goes over a plain socket wherever a client library would "fix" the request first (it would
//! resolve `..` and `%2e%2e` in paths, refuse CR/LF, or send its headers at once).

use crate::common::{PROFILE, TestServer, oauth_error, problem};
use kvproxy_server::serve::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long past the server's own timeout a test waits before calling a connection "held forever": far
/// more than a loaded two-core machine needs, far less than forever.
const MARGIN: Duration = Duration::from_secs(30);

/// One raw HTTP exchange: sends `request` as is and reads until the server closes.
/// Returns (status, head, body); status 0 when the server closed without answering.
async fn raw(port: u16, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream.write_all(request).await.expect("send the request");
    let mut answer = Vec::new();
    // A reset after a refusal is an answer too: what arrived before it counts.
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let _ = stream.read_to_end(&mut answer).await;
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed within 60 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A GET with the API key, `Connection: close`, and the raw (unnormalised) `target`.
fn get_request(s: &TestServer, target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.port, s.key
    )
    .into_bytes()
}

/// Waits (bounded by `limit`) until the server closes `stream`; returns what it sent before closing.
async fn closed_within(stream: &mut TcpStream, limit: Duration, what: &str) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{what}: the server still held the connection after {limit:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------------------

/// Slowloris: connections whose headers never complete (half a request, one byte at a time, or nothing at
/// all) are closed once the header timeout has passed, and other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_while_others_are_served() {
    let s = TestServer::start().await;
    let connect = || TcpStream::connect(("127.0.0.1", s.port));
    let mut silent = connect().await.expect("connect");
    let mut half = connect().await.expect("connect");
    half.write_all(format!("GET /health HTTP/1.1\r\nHost: localhost:{}\r\n", s.port).as_bytes())
        .await
        .expect("send half a request");
    let dribbled = connect().await.expect("connect");
    let (mut dribble_read, mut dribble_write) = dribbled.into_split();
    // The attack itself: one header byte every 200 ms, for as long as the server keeps listening.
    let dribbler = tokio::spawn(async move {
        let _ = dribble_write.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ").await;
        while dribble_write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // Meanwhile the API works, over new connections.
    for _ in 0..3 {
        let health = s.http.get(s.url("/health")).send().await.expect("health");
        assert_eq!(health.status(), StatusCode::OK);
        let token = s.get(&format!("/api/profiles/{PROFILE}/token")).send().await.unwrap();
        assert_eq!(token.status(), StatusCode::OK);
    }

    let limit = HEADER_READ_TIMEOUT + MARGIN;
    for (what, stream) in [("no bytes at all", &mut silent), ("half a request", &mut half)] {
        let said = closed_within(stream, limit, what).await;
        assert!(!said.contains(" 200 "), "{what}: answered as if complete: {said}");
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, dribble_read.read_to_end(&mut answer)).await;
    dribbler.abort();
    assert!(
        read.is_ok(),
        "a client dribbling its headers held the connection for {limit:?}"
    );
    assert!(!String::from_utf8_lossy(&answer).contains(" 200 "));
}

/// The body's turn: headers complete, the body dribbled byte by byte. The server answers 408 once the body
/// timeout has passed and closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dribbled_byte_by_byte_is_cut_off_with_408() {
    let s = TestServer::start().await;
    let stream = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
    let (mut read_half, mut write_half) = stream.into_split();
    let head = format!(
        "POST /api/Token/kv-certificate HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{",
        s.port, s.key
    );
    write_half.write_all(head.as_bytes()).await.expect("send the head");
    let dribbler = tokio::spawn(async move {
        while write_half.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    let limit = BODY_READ_TIMEOUT + MARGIN;
    let read = tokio::time::timeout(limit, read_half.read_to_end(&mut answer)).await;
    dribbler.abort();
    assert!(
        read.is_ok(),
        "a client dribbling its body held the connection for {limit:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    s.assert_emulator_untouched("a dribbled body");
}

// ---------------------------------------------------------------------------------------------
// Hostile bodies and content types
// ---------------------------------------------------------------------------------------------

/// JSON nested far past serde_json's recursion limit, at the top and inside fields (the `scopes` field is
/// an untagged enum, which buffers what it reads), plus other malformed JSON: always a 400 problem, never a
/// 500 or a crash, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_and_malformed_json_is_400() {
    let s = TestServer::start().await;
    let deep = |open: &str, close: &str, depth: usize| format!("{}{}", open.repeat(depth), close.repeat(depth));
    let arrays = deep("[", "]", 20_000);
    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let in_scopes = format!(
        r#"{{"clientId":"{}","tenantId":"{}","scopes":{},"keyVaultUri":"{}","certificateName":"app-cert"}}"#,
        s.client_id,
        s.tenant,
        deep("[", "]", 20_000),
        s.vault_url()
    );
    let in_unknown_field = format!(r#"{{"zzz":{}}}"#, deep("[", "]", 20_000));
    let bodies: Vec<(&str, String)> = vec![
        ("nested arrays", arrays),
        ("nested objects", objects),
        ("nested in scopes", in_scopes),
        ("nested in an unknown field", in_unknown_field),
        ("unclosed string", r#"{"clientId":"abc"#.into()),
        ("lone surrogate", r#"{"clientId":"\ud800"}"#.into()),
        ("huge number", r#"{"skipCache":1e999999}"#.into()),
        ("NaN", r#"{"skipCache":NaN}"#.into()),
        ("duplicate key", r#"{"clientId":"a","clientId":"b"}"#.into()),
        ("byte order mark", format!("\u{feff}{}", s.kv_certificate_body())),
        ("trailing garbage", format!("{} {{}}", s.kv_certificate_body())),
        (
            "invalid UTF-8",
            String::from_utf8_lossy(b"{\"clientId\":\"\xff\xfe\"}").into_owned(),
        ),
    ];
    for route in [
        "/api/Token/kv-certificate",
        "/api/Token/kv-key",
        "/api/Token/kv-key-info",
    ] {
        for (what, body) in &bodies {
            let response = s
                .http
                .post(s.url(route))
                .bearer_auth(&s.key)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{route} {what}: the server dropped the request: {e}"));
            problem(response, 400, None).await;
        }
        // Raw invalid UTF-8 bytes, which `String` above cannot carry.
        let response = s
            .http
            .post(s.url(route))
            .bearer_auth(&s.key)
            .header(CONTENT_TYPE, "application/json")
            .body(b"{\"clientId\":\"\xff\xfe\"}".to_vec())
            .send()
            .await
            .unwrap();
        problem(response, 400, None).await;
    }
    // A form that is not a form, and one whose bytes are not UTF-8, on the OAuth2 route.
    for body in [b"grant_type=%zz%&client_id".to_vec(), b"client_id=\xff\xfe".to_vec()] {
        let response = s
            .http
            .post(s.url("/oauth2/v2.0/token"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "a broken form: {}",
            response.status()
        );
    }
    let health = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server survived");
    s.assert_emulator_untouched("hostile bodies");
}

/// The JSON routes take JSON only: what an HTML form can send (urlencoded, multipart, text/plain) is 415
/// even with the key, and 403 when a web page sends it (its Origin gives it away). The OAuth2 route takes
/// a form only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_types_are_refused_and_form_posts_never_reach_json_routes() {
    let s = TestServer::start().await;
    let body = s.kv_certificate_body().to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("text/json"),
    ] {
        let mut request = s
            .http
            .post(s.url("/api/Token/kv-certificate"))
            .bearer_auth(&s.key)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        problem(request.send().await.unwrap(), 415, None).await;
        // The same from a web page: refused before the key or the body matter.
        let mut from_page = s
            .http
            .post(s.url("/api/Token/kv-certificate"))
            .header(ORIGIN, "https://evil.example")
            .body(body.clone());
        if let Some(content_type) = content_type {
            from_page = from_page.header(CONTENT_TYPE, content_type);
        }
        problem(from_page.send().await.unwrap(), 403, None).await;
    }
    // Positive control: JSON with a charset parameter is JSON.
    let response = s
        .http
        .post(s.url("/api/Token/kv-certificate"))
        .bearer_auth(&s.key)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let as_json = s
        .http
        .post(s.url("/oauth2/v2.0/token"))
        .json(&json!({"grant_type": "client_credentials", "client_id": PROFILE, "client_secret": s.key}));
    oauth_error(as_json.send().await.unwrap(), 400, "invalid_request").await;
}

// ---------------------------------------------------------------------------------------------
// Path-like profile names
// ---------------------------------------------------------------------------------------------

/// Profile names are keys in profiles.toml, never file names; a name that looks like a path finds no
/// profile, and is never normalised into another profile's name. Sent raw, so nothing resolves `..` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_like_profile_names_find_nothing() {
    let s = TestServer::start().await;
    let names = [
        "..",
        "%2e%2e",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2fprofiles.toml",
        "%2fetc%2fpasswd",
        "%2F..%2Fprofiles.toml",
        "C:%5cWindows%5cwin.ini",
        "..%5c..%5cprofiles.toml",
        "nope%2f..%2f{PROFILE}",
        "{PROFILE}%2f.",
        "{PROFILE}%00",
        ".",
    ];
    for name in names {
        let name = name.replace("{PROFILE}", PROFILE);
        for target in [
            format!("/api/profiles/{name}/token"),
            format!("/msi/{name}/token?api-version=2019-08-01&resource=api://x"),
        ] {
            let (status, _, body) = raw(s.port, &get_request(&s, &target)).await;
            assert_eq!(status, 404, "{target}: {body}");
            assert!(!body.contains("access_token"), "{target}: {body}");
            assert!(!body.contains("root:"), "{target}: {body}");
        }
    }
    // The same path tricks in a plain route path are 404 too, not a file.
    for target in [
        "/../../etc/passwd",
        "/swagger/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let (status, _, body) = raw(s.port, &get_request(&s, target)).await;
        assert_eq!(status, 404, "{target}: {body}");
        assert!(!body.contains("root:"), "{target}: {body}");
    }
    s.assert_emulator_untouched("path-like profile names");
}

// ---------------------------------------------------------------------------------------------
// CR/LF in reflected values
// ---------------------------------------------------------------------------------------------

/// Values the server reflects (a profile name, a query parameter, the Host header) can carry encoded CR/LF
/// or markup; they come back only inside JSON strings, never as a header or an HTML page, and never make
/// the activity log's records more than one line each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cr_lf_in_reflected_values_never_becomes_a_header() {
    let s = TestServer::start().await;
    let injected = "%0d%0aSet-Cookie:%20pwned=1%0d%0aX-Injected:%201";
    for target in [
        format!("/api/profiles/a{injected}/token"),
        format!("/api/profiles/{PROFILE}/token?format=raw{injected}"),
        format!("/api/profiles/{PROFILE}/token?scope=api://x{injected}/.default"),
        format!("/msi/token?api-version=2019-08-01{injected}&resource=api://x"),
        format!("/msi/token?api-version=2019-08-01&resource=api://x{injected}"),
        format!("/nope{injected}"),
    ] {
        let (status, head, body) = raw(s.port, &get_request(&s, &target)).await;
        assert!((400..500).contains(&status), "{target}: {status} {body}");
        let head = head.to_ascii_lowercase();
        assert!(
            !head.contains("set-cookie") && !head.contains("x-injected") && !head.contains("pwned"),
            "{target}: reflected into the headers: {head}"
        );
        assert!(
            head.contains("content-type: application/problem+json"),
            "{target}: {head}"
        );
        let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: not JSON ({e}): {body}"));
        assert!(parsed["detail"].is_string(), "{target}: {body}");
    }
    // A bare CR, an obsolete folded line or a control character in a header value: refused by the HTTP
    // parser (with the right key, so that anything but a refusal would be a 200).
    for header in [
        "User-Agent: a\rSet-Cookie: pwned=1",
        "User-Agent: a\r\n Set-Cookie: pwned=1",
        "User-Agent: a\u{1b}[31mred",
    ] {
        let request = format!(
            "GET /api/profiles HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\n{header}\r\nConnection: close\r\n\r\n",
            s.port, s.key
        );
        let (status, head, _) = raw(s.port, request.as_bytes()).await;
        assert!(status == 400 || status == 0, "{header:?}: {status}");
        assert!(!head.to_ascii_lowercase().contains("pwned"), "{header:?}: {head}");
    }
    // Markup in Host comes back JSON-escaped in a problem document, not as a page.
    let request =
        b"GET /health HTTP/1.1\r\nHost: evil.example\"><script>alert(1)</script>\r\nConnection: close\r\n\r\n";
    let (status, head, body) = raw(s.port, request).await;
    assert_eq!(status, 403, "{body}");
    assert!(head.to_ascii_lowercase().contains("application/problem+json"), "{head}");
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");
    s.assert_emulator_untouched("CR/LF injection");
    // A User-Agent of non-ASCII bytes is served, and logged as no user agent rather than as mangled text.
    let request = format!(
        "GET /api/profiles/{PROFILE}/token HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\nUser-Agent: caf\u{e9}\r\nConnection: close\r\n\r\n",
        s.port, s.key
    );
    let (status, _, body) = raw(s.port, request.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let activity = s.get("/api/activity").send().await.unwrap().text().await.unwrap();
    let records: Vec<Value> = serde_json::from_str(&activity).expect("activity is JSON");
    assert!(!records.is_empty(), "the activity log records token requests");
    for record in &records {
        for value in record.as_object().expect("a record is an object").values() {
            if let Some(text) = value.as_str() {
                assert!(
                    !text.contains(['\r', '\n', '\u{1b}']),
                    "control characters in the activity log: {record}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// Each credential header twice (right and wrong, in both orders), a comma-joined pair as a proxy would
/// fold it, other schemes, and bytes that are not text: 401, never a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_folded_and_garbled_credentials_are_401() {
    let s = TestServer::start().await;
    let wrong = kvproxy_app::generate_api_key().unwrap().expose().to_string();
    let right = s.key.clone();
    let route = format!("/api/profiles/{PROFILE}/token");
    let mut cases: Vec<Vec<(&str, String)>> = Vec::new();
    for (name, as_value) in [
        ("Authorization", (|k: &str| format!("Bearer {k}")) as fn(&str) -> String),
        ("X-Api-Key", |k: &str| k.to_string()),
        ("X-IDENTITY-HEADER", |k: &str| k.to_string()),
    ] {
        cases.push(vec![(name, as_value(&right)), (name, as_value(&wrong))]);
        cases.push(vec![(name, as_value(&wrong)), (name, as_value(&right))]);
        cases.push(vec![(name, format!("{}, {}", as_value(&right), as_value(&wrong)))]);
        cases.push(vec![(name, format!("{}{}", as_value(&right), as_value(&right)))]);
        cases.push(vec![(name, as_value(&right[..right.len() - 1]))]);
    }
    cases.push(vec![("Authorization", format!("Bearer  {wrong}"))]);
    cases.push(vec![("Authorization", format!("Basic {right}"))]);
    cases.push(vec![("Authorization", "Bearer".into())]);
    for case in &cases {
        let mut request = format!("GET {route} HTTP/1.1\r\nHost: localhost:{}\r\n", s.port);
        for (name, value) in case {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        let (status, _, body) = raw(s.port, request.as_bytes()).await;
        assert_eq!(status, 401, "{case:?}: {body}");
        assert!(!body.contains("access_token"), "{case:?}");
    }
    // A header value that is not text next to the right key.
    let mut request = format!(
        "GET {route} HTTP/1.1\r\nHost: localhost:{}\r\nX-Api-Key: {right}\r\n",
        s.port
    )
    .into_bytes();
    request.extend_from_slice(b"X-Api-Key: \xff\xfe\r\nConnection: close\r\n\r\n");
    let (status, _, _) = raw(s.port, &request).await;
    assert!(status == 401 || status == 400, "{status}");

    // OAuth2: the secret twice in the form, right and wrong.
    for form in [
        format!("grant_type=client_credentials&client_id={PROFILE}&client_secret={right}&client_secret={wrong}"),
        format!("grant_type=client_credentials&client_id={PROFILE}&client_secret={wrong}&client_secret={right}"),
    ] {
        let response = s
            .http
            .post(s.url("/oauth2/v2.0/token"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status == 400 || status == 401, "{status}: {text}");
        assert!(!text.contains("access_token"), "{text}");
    }
    s.assert_emulator_untouched("duplicated credentials");
}

// ---------------------------------------------------------------------------------------------
// Vault URLs (SSRF)
// ---------------------------------------------------------------------------------------------

/// Ad-hoc vault URLs that try to leave Azure's vault hosts: look-alike hosts, user info, IP literals,
/// plain HTTP, ports, and vaults of clouds that no profile names. Each is a 400 naming the field, and
/// nothing is sent anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_urls_cannot_point_anywhere_else() {
    let s = TestServer::start().await;
    let vaults = [
        "https://vault.azure.net.evil.example/",
        "https://contoso.vault.azure.net.evil.example/",
        "https://contoso.vault.azure.net./",
        "https://x@vault.azure.net/",
        "https://x@contoso.vault.azure.net/",
        "https://contoso.vault.azure.net@evil.example/",
        "https://contoso.vault.azure.net:pw@evil.example/",
        "https://evil.example\\@contoso.vault.azure.net/",
        "https://evil.example#.vault.azure.net/",
        "https://evil.example?.vault.azure.net/",
        "https://evil.example/contoso.vault.azure.net/",
        "https://127.0.0.1/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/",
        "https://localhost/",
        "http://contoso.vault.azure.net/",
        "ftp://contoso.vault.azure.net/",
        "file:///etc/passwd",
        "https://contoso.vault.azure.net:8443/",
        "https://contoso.vault.azure.net:1/",
        "https://contoso.vault.local.azurestack.external/",
        "https://contoso.vault.example.cloud/",
        "https://contoso%2eevil.example/",
        "//contoso.vault.azure.net/",
        "contoso.vault.azure.net",
    ];
    let mut failures = Vec::new();
    for vault in vaults {
        let mut certificate = s.kv_certificate_body();
        certificate["keyVaultUri"] = json!(vault);
        let mut info = s.kv_key_info_body();
        info["keyVaultUri"] = json!(vault);
        let mut key = s.kv_key_body();
        key["keyUri"] = json!(format!(
            "{}/keys/app-cert/0123456789abcdef0123456789abcdef",
            vault.trim_end_matches('/')
        ));
        for (route, body, field) in [
            ("/api/Token/kv-certificate", certificate, "keyVaultUri"),
            ("/api/Token/kv-key-info", info, "keyVaultUri"),
            ("/api/Token/kv-key", key, "keyUri"),
        ] {
            let response = s.post_json(route, &body).send().await.unwrap();
            if let Some(wrong) = crate::common::problem_mismatch(response, 400, field).await {
                failures.push(format!("{route} {vault}: {wrong}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    s.assert_emulator_untouched("vault URLs off the allowlist");
}

// ---------------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------------

/// Only loopback addresses are bound without `--unsafe-bind`; an IPv4-mapped loopback or a wildcard is not
/// loopback.
#[test]
fn only_loopback_addresses_are_bound_unless_forced() {
    use kvproxy_server::{BindError, ServerConfig, bind_addresses};
    use std::net::IpAddr;
    let config = |ip: &str, force: bool| ServerConfig {
        port: 5616,
        binds: vec![ip.parse::<IpAddr>().expect("an address")],
        allow_non_loopback: force,
    };
    for ip in [
        "0.0.0.0",
        "::",
        "192.168.1.10",
        "::ffff:127.0.0.1",
        "fe80::1",
        "100.64.0.1",
    ] {
        match bind_addresses(&config(ip, false)) {
            Err(e @ BindError::NotLoopback(_)) => assert!(e.to_string().contains("--unsafe-bind"), "{e}"),
            other => panic!("{ip} was accepted: {other:?}"),
        }
        assert!(bind_addresses(&config(ip, true)).is_ok(), "{ip} with --unsafe-bind");
    }
    for ip in ["127.0.0.1", "127.0.0.2", "::1"] {
        assert!(bind_addresses(&config(ip, false)).is_ok(), "{ip}");
    }
}

// ---------------------------------------------------------------------------------------------
// The agent socket and other users
// ---------------------------------------------------------------------------------------------

#[cfg(unix)]
mod other_users {
    use crate::common::{PROFILE, TestServer};
    use kvproxy_server::agent::protocol::{Envelope, PROTOCOL_VERSION, Request};
    use kvproxy_server::agent::{AgentError, AgentServer, Outcome, ask};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// `nobody` on Debian and most other systems; any uid other than ours does.
    const OTHER_UID: u32 = 65534;
    /// Chosen to mean "connected, and the agent hung up without a word" in [`connect_as`].
    const SILENT_HANGUP: i32 = rustix::io::Errno::CONNABORTED.raw_os_error();
    const EACCES: i32 = rustix::io::Errno::ACCESS.raw_os_error();

    fn own_uid() -> u32 {
        rustix::process::getuid().as_raw()
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("stat").mode() & 0o777
    }

    /// A temporary directory others may pass through (as `/run/user` is), with the agent socket path
    /// inside, so only the agent's own directory stands between another user and the socket.
    fn open_parent() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        let socket = dir.path().join("kvproxy").join("agent.sock");
        (dir, socket)
    }

    fn envelope(s: &TestServer) -> Envelope {
        Envelope {
            protocol: PROTOCOL_VERSION,
            profiles_file: s.app.profile_store().path().to_path_buf(),
            request: Request::Token {
                profile: Some(PROFILE.into()),
                scope: None,
            },
        }
    }

    /// Connects to `socket` from a child process running as `uid` (ours when `None`) and reads the agent's
    /// first bytes. Ok: it was greeted; Err: the system call that failed (EACCES: the file system refused
    /// the connect), or [`SILENT_HANGUP`] when the agent closed without a word.
    ///
    /// The attempt runs between fork and exec (after the uid switch), where only raw system calls are
    /// safe; the socket address is built before the fork, and the error reaches us through `spawn`.
    fn connect_as(uid: Option<u32>, socket: &Path) -> std::io::Result<()> {
        let address = rustix::net::SocketAddrUnix::new(socket).expect("a socket address");
        let mut command = std::process::Command::new("/bin/true");
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        // SAFETY: the closure makes system calls only, on memory allocated before the fork.
        unsafe {
            command.pre_exec(move || {
                use rustix::net::{AddressFamily, SocketType, sockopt};
                let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
                rustix::net::connect(&fd, &address)?;
                sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(Duration::from_secs(30)))?;
                let mut greeting = [0u8; 16];
                match rustix::io::read(&fd, &mut greeting)? {
                    0 => Err(std::io::Error::from_raw_os_error(SILENT_HANGUP)),
                    _ => Ok(()),
                }
            });
        }
        let mut child = command.spawn()?;
        let status = child.wait().expect("wait for /bin/true");
        assert!(status.success(), "/bin/true failed: {status:?}");
        Ok(())
    }

    fn errno(result: &std::io::Result<()>) -> Option<i32> {
        result.as_ref().err().and_then(std::io::Error::raw_os_error)
    }

    /// The agent's directory is 0700 and the socket 0600, both ours. As root (here and in CI) a process of
    /// another uid is then refused by the file system (EACCES); with the directory and socket opened up by
    /// hand it gets in, and the agent's own peer-uid check hangs up on it without a word. Without root the
    /// modes, the ownership and the refusal of an open directory are checked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_user_cannot_talk_to_the_agent() {
        let s = TestServer::start().await;
        let (_parent, socket) = open_parent();
        let dir = socket.parent().expect("a directory").to_path_buf();
        let context = s.app.clone();
        let agent = AgentServer::start(context.clone(), socket.clone())
            .await
            .expect("agent starts");
        assert_eq!(mode(&dir), 0o700, "the agent's directory");
        assert_eq!(mode(&socket), 0o600, "the agent socket");
        for path in [&dir, &socket] {
            let owner = std::fs::symlink_metadata(path).unwrap().uid();
            assert_eq!(owner, own_uid(), "{} belongs to us", path.display());
        }

        if own_uid() == 0 {
            let ours = connect_as(None, &socket);
            assert!(ours.is_ok(), "positive control: we are greeted: {ours:?}");
            let theirs = connect_as(Some(OTHER_UID), &socket);
            assert_eq!(
                errno(&theirs),
                Some(EACCES),
                "uid {OTHER_UID} must be refused by the 0700 directory: {theirs:?}"
            );
            // Even with the directory and the socket open to all, the agent talks to its own user only.
            set_mode(&dir, 0o711);
            set_mode(&socket, 0o666);
            let theirs = connect_as(Some(OTHER_UID), &socket);
            assert_eq!(
                errno(&theirs),
                Some(SILENT_HANGUP),
                "the agent must hang up on uid {OTHER_UID}: {theirs:?}"
            );
            let ours = connect_as(None, &socket);
            assert!(ours.is_ok(), "the agent still greets its own user: {ours:?}");
        }
        drop(agent);

        // Either way: an agent will not start in a directory others can enter, and a client will not ask
        // through one.
        set_mode(&dir, 0o711);
        match AgentServer::start(context, socket.clone()).await {
            Err(AgentError::OpenDirectory { mode, .. }) => assert_eq!(mode, 0o711),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an agent listened in a directory others can enter"),
        }
        let outcome = ask(&socket, &envelope(&s)).await;
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains("open to other users")),
            "{outcome:?}"
        );
    }

    /// A socket whose directory belongs to someone else, or that another user's process serves, is not
    /// asked: the client checks the directory's owner and the serving process's uid before it sends a word.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_socket_of_another_user_is_not_asked() {
        let s = TestServer::start().await;
        let request = envelope(&s);
        if own_uid() != 0 {
            // "/" belongs to root, so to someone else.
            let outcome = ask(Path::new("/kvproxy-attack-test.sock"), &request).await;
            assert!(
                matches!(&outcome, Outcome::Failed(why) if why.contains("belongs to another user")),
                "{outcome:?}"
            );
            return;
        }
        let (_parent, socket) = open_parent();
        let dir = socket.parent().unwrap().to_path_buf();
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(OTHER_UID), None).expect("chown");
        let outcome = ask(&socket, &request).await;
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains("belongs to another user")),
            "a directory of uid {OTHER_UID}: {outcome:?}"
        );

        // A process of uid 65534 listens; its socket is then moved into our own private directory.
        std::os::unix::fs::chown(&dir, Some(own_uid()), None).expect("chown back");
        let (_theirs, their_dir) = {
            let parent = tempfile::tempdir().expect("tempdir");
            set_mode(parent.path(), 0o755);
            let their_dir = parent.path().join("theirs");
            std::fs::create_dir(&their_dir).unwrap();
            std::os::unix::fs::chown(&their_dir, Some(OTHER_UID), None).expect("chown");
            (parent, their_dir)
        };
        let their_socket = their_dir.join("agent.sock");
        let address = rustix::net::SocketAddrUnix::new(&their_socket).expect("a socket address");
        let mut command = std::process::Command::new("/bin/cat");
        command
            .uid(OTHER_UID)
            .gid(OTHER_UID)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        // SAFETY: system calls only, on memory allocated before the fork. The listening socket is not
        // close-on-exec, so `cat` (which waits on its stdin) keeps it open.
        unsafe {
            command.pre_exec(move || {
                use rustix::net::{AddressFamily, SocketType};
                let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
                rustix::net::bind(&fd, &address)?;
                rustix::net::listen(&fd, 8)?;
                std::mem::forget(fd);
                Ok(())
            });
        }
        let mut squatter = command.spawn().expect("a listener as another user");
        std::fs::rename(&their_socket, &socket).expect("move the socket into our directory");
        let outcome = ask(&socket, &request).await;
        let _ = squatter.kill();
        let _ = squatter.wait();
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains(&format!("uid {OTHER_UID}"))),
            "a socket served by uid {OTHER_UID}: {outcome:?}"
        );
    }
}
