//! Shared setup: an emulator over real HTTPS, a profile pointing at it, and the server on a real
//! loopback port, talked to over plain HTTP like any local tool would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kvproxy_app::approval::CONFIRM_TIMEOUT;
use kvproxy_app::{ApiKeySource, App, AppOptions, ConfirmPolicy, DemoPolicy};
use kvproxy_core::{
    Broker, BrokerOptions, CredentialSource, EmulatedApp, KeyInfoStore, Profile, ProfileStore, RetrySettings,
    SecretString,
};
use kvproxy_emulator::{CertificateVersion, Emulator, EmulatorConfig, Route};
use kvproxy_server::{RunningServer, ServerConfig};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

pub const VAULT: &str = "testvault";
pub const CERT: &str = "app-cert";
pub const RESOURCE: &str = "api://kvproxy-test";
pub const SCOPE: &str = "api://kvproxy-test/.default";
/// The saved profile (and the default one).
pub const PROFILE: &str = "test";
/// How every key-missing/wrong 401 tells the user where the key is.
pub const KEY_HINT: &str = "kvproxy api-key show";

pub struct TestServer {
    pub emulator: Emulator,
    pub client_id: String,
    pub tenant: String,
    pub cert: CertificateVersion,
    pub key: String,
    pub port: u16,
    pub app: App,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    _server: RunningServer,
}

/// Fast, still bounded retries so fault paths finish quickly.
pub fn broker_options() -> BrokerOptions {
    BrokerOptions {
        key_vault_retry: RetrySettings {
            max_retries: 2,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_total: Duration::from_secs(5),
        },
        key_info_store: KeyInfoStore::new(None),
        ..Default::default()
    }
}

/// A client for the loopback server: no proxy (a developer's `HTTP_PROXY` must not see our key).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// The app the test server serves: the given profiles and key, fast retries, no keyring, no demo tenant.
pub fn app_of(profiles: ProfileStore, api_key: SecretString, api_key_source: ApiKeySource) -> App {
    confirming_app(
        profiles,
        api_key,
        api_key_source,
        ConfirmPolicy::Refuse,
        CONFIRM_TIMEOUT,
    )
}

/// [`app_of`], with `confirm` profiles handled by `confirm`, waiting `timeout` for the user.
pub fn confirming_app(
    profiles: ProfileStore,
    api_key: SecretString,
    api_key_source: ApiKeySource,
    confirm: ConfirmPolicy,
    timeout: Duration,
) -> App {
    App::new(AppOptions {
        profiles,
        broker: Broker::new(broker_options()),
        api_key,
        api_key_source,
        keyring: None,
        credential: CredentialSource::Auto,
        demo: DemoPolicy::Leave,
        confirm,
        confirm_timeout: timeout,
    })
}

impl TestServer {
    /// Another app over this server's profiles and key, whose key came from `source` (how an agent of a
    /// server started another way behaves).
    pub fn app_with_key_from(&self, source: ApiKeySource) -> App {
        let key = SecretString::new(self.key.clone());
        app_of(self.app.profile_store().clone(), key, source)
    }

    pub async fn start() -> TestServer {
        Self::start_confirming(ConfirmPolicy::Refuse, CONFIRM_TIMEOUT).await
    }

    /// A server whose app handles `confirm` profiles by `confirm`, waiting `timeout` for the user.
    pub async fn start_confirming(confirm: ConfirmPolicy, timeout: Duration) -> TestServer {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator starts");
        let client_id = emulator.create_app("Server Test App");
        let cert = emulator.create_certificate(VAULT, CERT, "server-test-app");
        emulator.register_certificate(&client_id, &cert);
        let tenant = emulator.tenant_id();

        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("emulator-ca.pem");
        std::fs::write(&ca_file, emulator.ca_pem()).expect("write CA");
        let store = ProfileStore::new(dir.path().join("profiles.toml"));
        let app = EmulatedApp {
            tenant: tenant.clone(),
            client_id: client_id.clone(),
            vault_url: emulator.vault_url(VAULT),
            certificate: CERT.into(),
            scope: SCOPE.into(),
            authority_host: emulator.authority_host(),
            ca_file,
        };
        let profile = Profile::emulated(PROFILE, app);
        store.upsert(profile, false).expect("profile saved");

        let key = kvproxy_app::generate_api_key().expect("api key");
        let app = confirming_app(store, key.clone(), ApiKeySource::Keyring, confirm, timeout);
        let config = ServerConfig {
            port: 0,
            binds: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            allow_non_loopback: false,
        };
        let server = RunningServer::start(app.clone(), &config).await.expect("server runs");
        let port = server.port();

        TestServer {
            emulator,
            client_id,
            tenant,
            cert,
            key: key.expose().to_string(),
            port,
            app,
            http: http_client(),
            _dir: dir,
            _server: server,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://localhost:PORT{path}`.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    pub fn vault_url(&self) -> String {
        self.emulator.vault_url(VAULT)
    }

    /// GET with the API key as a bearer token.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.key)
    }

    /// GET `path` with the API key; the answer must be a problem document with `status` (naming `field`).
    pub async fn get_problem(&self, path: &str, status: u16, field: Option<&str>) -> Value {
        problem(self.get(path).send().await.expect("request sent"), status, field).await
    }

    /// POST a client-credentials form to the OAuth2 token route with `secret` in the form (and `scope` when
    /// given).
    pub fn oauth2_token(&self, secret: &str, scope: Option<&str>) -> reqwest::RequestBuilder {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", PROFILE),
            ("client_secret", secret),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        self.http.post(self.url("/oauth2/v2.0/token")).form(&form)
    }

    /// GET an MSI route (`path` with its query) with the API key in `X-IDENTITY-HEADER`.
    pub fn msi(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).header("X-IDENTITY-HEADER", &self.key)
    }

    /// Sends `request`, expects a 200 JSON answer and returns its `access_token`.
    pub async fn access_token(request: reqwest::RequestBuilder) -> String {
        let body = ok_json(request.send().await.expect("request sent")).await;
        body["access_token"].as_str().expect("an access_token").to_string()
    }

    /// POST a JSON body with the API key as a bearer token.
    pub fn post_json(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.key).json(body)
    }

    /// A complete, valid kv-certificate request body.
    pub fn kv_certificate_body(&self) -> Value {
        serde_json::json!({
            "clientId": self.client_id,
            "tenantId": self.tenant,
            "scopes": [SCOPE],
            "keyVaultUri": self.vault_url(),
            "certificateName": CERT,
        })
    }

    /// A complete, valid kv-key request body (versioned kid and SHA-1 hex thumbprint).
    pub fn kv_key_body(&self) -> Value {
        serde_json::json!({
            "clientId": self.client_id,
            "tenantId": self.tenant,
            "scopes": [SCOPE],
            "keyUri": self.cert.kid,
            "keyThumbprint": sha1_hex(&self.cert),
        })
    }

    /// A kv-key-info request body as the .NET proxy's clients send it (vault and certificate, nothing else).
    pub fn kv_key_info_body(&self) -> Value {
        serde_json::json!({
            "keyVaultUri": self.vault_url(),
            "certificateName": CERT,
        })
    }

    pub fn assert_emulator_untouched(&self, context: &str) {
        for route in Route::ALL {
            assert_eq!(
                self.emulator.count(route),
                0,
                "{context}: emulator route {route:?} was called"
            );
        }
    }
}

/// The certificate's SHA-1 thumbprint as the Azure portal shows it (uppercase hex), from the `x5t`.
pub fn sha1_hex(cert: &CertificateVersion) -> String {
    URL_SAFE_NO_PAD
        .decode(&cert.x5t)
        .expect("x5t is base64url")
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The claims of a JWT (unverified), panicking if it is not one.
pub fn claims(jwt: &str) -> Value {
    assert_eq!(jwt.split('.').count(), 3, "not a JWT: {jwt:.40}");
    kvproxy_core::decode_claims(jwt).unwrap_or_else(|| panic!("JWT claims do not decode: {jwt:.40}"))
}

pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Asserts a 200 JSON answer and returns its body.
pub async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let ctype = content_type(&response);
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "expected 200, got {status}: {text}");
    assert!(ctype.starts_with("application/json"), "content-type {ctype}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an RFC 9457 problem document with this status (and `field`, when given) and returns it.
pub async fn problem(response: reqwest::Response, status: u16, field: Option<&str>) -> Value {
    let got = response.status().as_u16();
    let ctype = content_type(&response);
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "expected {status}, got {got}: {text}");
    assert_eq!(ctype, "application/problem+json", "content-type of a {status}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("problem is not JSON ({e}): {text}"));
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "problem without title: {text}"
    );
    assert_eq!(body["status"], status, "problem status member: {text}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "problem without detail: {text}"
    );
    if let Some(field) = field {
        assert_eq!(body["field"], field, "problem should name field '{field}': {text}");
    }
    body
}

/// Like [`problem`], but returns what is wrong instead of panicking, so a test can report every
/// failing case at once.
pub async fn problem_mismatch(response: reqwest::Response, status: u16, field: &str) -> Option<String> {
    let got = response.status().as_u16();
    let ctype = content_type(&response);
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let ok = got == status
        && ctype == "application/problem+json"
        && body["status"] == status
        && body["detail"].is_string()
        && body["field"] == field;
    (!ok).then(|| format!("expected {status} problem with field '{field}', got {got} {ctype}: {text}"))
}

/// Asserts an RFC 6749 §5.2 error with this status and code and returns the body.
pub async fn oauth_error(response: reqwest::Response, status: u16, error: &str) -> (Value, reqwest::header::HeaderMap) {
    let got = response.status().as_u16();
    let headers = response.headers().clone();
    let ctype = content_type(&response);
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "expected {status} {error}, got {got}: {text}");
    assert!(ctype.starts_with("application/json"), "content-type {ctype}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(body["error"], error, "{text}");
    assert!(
        body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
        "no error_description: {text}"
    );
    assert_eq!(
        headers
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "OAuth2 errors must not be cached: {text}"
    );
    (body, headers)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
