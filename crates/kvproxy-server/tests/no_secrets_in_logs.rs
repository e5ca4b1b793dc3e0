//! Tokens, assertions and the API key never reach the logs, even at TRACE for every crate.
//!
//! Its own test binary: it installs the process-wide tracing subscriber (and the `log` bridge), and
//! runs a single test so that nothing else writes to the capture concurrently.

// Shared with the `it` binary, which uses all of it; this one only a part.
#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use common::{PROFILE, TestServer};
use parking_lot::Mutex;
use std::io::Write;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_is_logged_even_at_trace() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace"))
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_target(true)
        .init();

    let s = TestServer::start().await;
    let token = TestServer::access_token;
    let tokens = vec![
        token(s.get(&format!("/api/profiles/{PROFILE}/token"))).await,
        s.get(&format!(
            "/api/profiles/{PROFILE}/token?format=raw&scope=api://raw/.default"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
        token(s.oauth2_token(&s.key, Some("api://oauth2/.default"))).await,
        token(s.msi("/msi/token?api-version=2019-08-01&resource=api://msi")).await,
        token(s.post_json("/api/Token/kv-certificate", &s.kv_certificate_body())).await,
        token(s.post_json("/api/Token/kv-key", &s.kv_key_body())).await,
    ];
    // Failing ones: wrong key on every dialect, and an upstream refusal.
    let wrong = "wrong-key-0123456789";
    let status = |response: reqwest::Response| response.status().as_u16();
    let profile_route = s.url(&format!("/api/profiles/{PROFILE}/token"));
    let with_wrong_bearer = s.http.get(profile_route).bearer_auth(wrong);
    assert_eq!(status(with_wrong_bearer.send().await.unwrap()), 401);
    assert_eq!(status(s.oauth2_token(wrong, None).send().await.unwrap()), 401);
    let mut refused = s.kv_certificate_body();
    refused["clientId"] = serde_json::json!("00000000-0000-4000-8000-000000000001");
    let refused = s.post_json("/api/Token/kv-certificate", &refused);
    assert_eq!(status(refused.send().await.unwrap()), 502);
    assert_eq!(tokens.len(), 6);
    for t in &tokens {
        assert_eq!(
            common::claims(t)["aud"].as_str().map(|a| a.starts_with("api://")),
            Some(true)
        );
    }

    // Stop the server and emulator. The server logs a connection as it closes, which the client's pool does in
    // its own time (under Wine noticeably later): wait, within bounds, for the server's lines.
    let api_key = s.key.clone();
    drop(s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !capture.text().contains("kvproxy_server::serve") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = capture.text();
    if let Some(path) = std::env::var_os("KVPROXY_TEST_DUMP_LOG") {
        std::fs::write(path, &log).expect("dump the captured log");
    }

    // The capture works: the HTTP client's and the server's own trace lines are in it.
    assert!(log.len() > 1000, "the capture is (nearly) empty: {log}");
    assert!(log.contains("TRACE"), "no TRACE lines captured");
    for target in ["reqwest::", "kvproxy_server::serve"] {
        assert!(log.contains(target), "no {target} log lines captured");
    }

    for (i, token) in tokens.iter().enumerate() {
        assert!(!log.contains(token.as_str()), "token #{i} is in the log");
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "token #{i}'s signature is in the log");
    }
    assert!(!log.contains(api_key.as_str()), "the API key is in the log");
    assert!(!log.contains(wrong), "a presented (wrong) key is in the log");
    // No JWT at all: access tokens, client assertions and Key Vault tokens all start with `eyJ`.
    if let Some(at) = log.find("eyJ") {
        let start = log[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = log[at..].find('\n').map_or(log.len(), |i| at + i);
        panic!(
            "something JWT-like is in the log: {}",
            &log[start..end.min(start + 400)]
        );
    }
    assert!(!log.contains("client_assertion="), "a token request body is in the log");
}
