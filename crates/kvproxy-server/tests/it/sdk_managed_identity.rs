//! The Azure SDK's own `ManagedIdentityCredential`, unmodified, gets a profile's token from the
//! server through `IDENTITY_ENDPOINT` / `IDENTITY_HEADER`.
//!
//! The SDK reads those variables from the process environment, and setting environment variables in a
//! multi-threaded test process is unsound, so the SDK runs in a child process: this test binary
//! re-executed with `--exact` on the child test, which does nothing unless the marker variable is set.

use crate::common::{PROFILE, RESOURCE, SCOPE, TestServer};
use serde_json::Value;
use std::process::Command;

const MARKER: &str = "KVPROXY_SERVER_TEST_MSI_CHILD";
// The full path: this test lives in the `sdk_managed_identity` module of the `it` binary.
const CHILD_TEST: &str = "sdk_managed_identity::child_azure_sdk_managed_identity_credential";
const RESULT_PREFIX: &str = "KVPROXY_CHILD_RESULT=";

/// Runs the child and returns its parsed result line, or panics with its whole output.
async fn run_child(endpoint: String, header: String) -> Result<Value, String> {
    let exe = std::env::current_exe().expect("current test binary");
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(exe);
        command
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(MARKER, "1")
            .env("IDENTITY_ENDPOINT", endpoint)
            .env("IDENTITY_HEADER", header)
            // Other managed-identity sources would change which one the SDK picks.
            .env_remove("IDENTITY_SERVER_THUMBPRINT")
            .env_remove("IMDS_ENDPOINT")
            .env_remove("MSI_ENDPOINT")
            .env_remove("MSI_SECRET")
            // A developer's proxy must not be asked for localhost.
            .env("NO_PROXY", "localhost,127.0.0.1,::1")
            .env("no_proxy", "localhost,127.0.0.1,::1");
        command.output().expect("child runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    // libtest prints `test NAME ... ` on the same line before the test's own output.
    let line = stdout
        .lines()
        .find_map(|l| l.find(RESULT_PREFIX).map(|at| &l[at + RESULT_PREFIX.len()..]));
    match line {
        Some(json) if output.status.success() => Ok(serde_json::from_str(json).expect("child result JSON")),
        _ => Err(format!(
            "child failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            output.status
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_sdk_managed_identity_credential_gets_the_profiles_token() {
    let s = TestServer::start().await;
    let endpoint = s.localhost_url(&format!("/msi/{PROFILE}/token"));
    let result = run_child(endpoint, s.key.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result["aud"], RESOURCE, "{result}");
    assert_eq!(result["appid"], s.client_id.as_str(), "{result}");
    assert!(
        result["expires_on"].as_i64().unwrap_or_default() > crate::common::now_unix() + 3000,
        "{result}"
    );
    // The SDK's request was logged like any other, with the SDK's User-Agent.
    let activity = s.app.activity().snapshot();
    let record = activity
        .iter()
        .find(|r| r.action == "GET /msi/{profile}/token")
        .expect("the SDK's request is in the activity log");
    assert_eq!(record.status, 200);
    assert_eq!(record.profile.as_deref(), Some(PROFILE));

    // The default-profile endpoint works the same way.
    let endpoint = s.localhost_url("/msi/token");
    let result = run_child(endpoint, s.key.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result["appid"], s.client_id.as_str(), "{result}");

    // With a wrong IDENTITY_HEADER the SDK gets our 401 and fails.
    let endpoint = s.localhost_url(&format!("/msi/{PROFILE}/token"));
    let error = run_child(endpoint, "wrong".into())
        .await
        .expect_err("a wrong IDENTITY_HEADER must fail");
    assert!(error.contains("401") || error.contains("Unauthorized"), "{error}");
}

/// The child half: only does something when started by the test above.
#[tokio::test]
async fn child_azure_sdk_managed_identity_credential() {
    if std::env::var_os(MARKER).is_none() {
        return;
    }
    use azure_core::credentials::TokenCredential;
    let credential = azure_identity::ManagedIdentityCredential::new(None).expect("credential builds");
    let token = credential
        .get_token(&[SCOPE], None)
        .await
        .unwrap_or_else(|e| panic!("get_token failed: {e:?}"));
    let claims = kvproxy_core::decode_claims(token.token.secret()).expect("a JWT");
    let result = serde_json::json!({
        "aud": claims["aud"],
        "appid": claims["appid"],
        "expires_on": token.expires_on.unix_timestamp(),
    });
    println!("{RESULT_PREFIX}{result}");
}
