//! The engine end to end against the emulator: real HTTPS, real RSA, Entra-like verification.

use crate::common::{CERT, Fixture, VAULT, Valid, broker, options};
use futures::future::join_all;
use kvproxy_core::{Error, ErrorClass, KeyInfoStore, SigningAlgorithm, TokenOptions, decode_claims};
use kvproxy_emulator::{Fault, Route, VaultPermissions};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn both_algorithms_mint_tokens_with_the_apps_identity() {
    let fx = Fixture::start().await;
    for alg in [SigningAlgorithm::PS256, SigningAlgorithm::RS256] {
        let token = broker()
            .token(&fx.profile(alg).valid(), None, TokenOptions::default())
            .await
            .expect("token");
        let claims = decode_claims(token.access_token.expose()).expect("claims");
        assert_eq!(claims["appid"], fx.client_id.as_str(), "{alg:?}");
        assert_eq!(claims["aud"], "api://kvproxy-test");
        assert_eq!(claims["tid"], fx.emulator.tenant_id().as_str());
        assert!(token.demo, "emulator tokens are marked as demo");
        assert!(!token.from_cache);
        let lifetime = token.lifetime().whole_seconds();
        assert!((3500..=3600).contains(&lifetime), "lifetime {lifetime}");
    }
}

#[tokio::test]
async fn tenant_may_be_given_as_domain() {
    let fx = Fixture::start().await;
    let mut profile = fx.profile(SigningAlgorithm::PS256);
    profile.tenant = fx.emulator.tenant_domain();
    let token = broker()
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .expect("token");
    assert_eq!(
        decode_claims(token.access_token.expose()).unwrap()["tid"],
        fx.emulator.tenant_id().as_str()
    );
}

#[tokio::test]
async fn fifty_concurrent_cold_callers_share_one_sign_and_one_token_request() {
    let fx = Fixture::start().await;
    let broker = broker();
    let profile = fx.profile(SigningAlgorithm::PS256).valid();
    let calls = (0..50).map(|_| broker.token(&profile, None, TokenOptions::default()));
    let results = join_all(calls).await;
    let tokens: Vec<_> = results.into_iter().map(|r| r.expect("token")).collect();
    assert!(
        tokens.iter().all(|t| t.access_token == tokens[0].access_token),
        "all callers got the same token"
    );
    assert_eq!(fx.emulator.count(Route::GetCertificate), 1);
    assert_eq!(fx.emulator.count(Route::Sign), 1);
    assert_eq!(fx.emulator.count(Route::Token), 1);
    assert_eq!(
        tokens.iter().filter(|t| !t.from_cache).count(),
        1,
        "exactly one caller fetched"
    );
}

#[tokio::test]
async fn cached_token_costs_no_request_and_skip_cache_fetches_again() {
    let fx = Fixture::start().await;
    let broker = broker();
    let profile = fx.profile(SigningAlgorithm::PS256);
    let first = broker
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap();
    fx.emulator.reset_counters();
    let second = broker
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap();
    assert!(second.from_cache);
    assert_eq!(second.access_token, first.access_token);
    for route in Route::ALL {
        assert_eq!(fx.emulator.count(route), 0, "{route:?}");
    }
    let third = broker
        .token(&profile.valid(), None, TokenOptions { skip_cache: true })
        .await
        .unwrap();
    assert_ne!(third.access_token, first.access_token);
    assert_eq!(
        (
            fx.emulator.count(Route::GetCertificate),
            fx.emulator.count(Route::Sign),
            fx.emulator.count(Route::Token)
        ),
        (0, 1, 1)
    );
    // Another scope is another token.
    let other = broker
        .token(&profile.valid(), Some("api://other/.default"), TokenOptions::default())
        .await
        .unwrap();
    assert_eq!(
        decode_claims(other.access_token.expose()).unwrap()["aud"],
        "api://other"
    );
}

#[tokio::test]
async fn warm_start_uses_key_info_from_the_keyring() {
    let fx = Fixture::start().await;
    let keyring: Arc<keyring_core::CredentialStore> = keyring_core::mock::Store::new().unwrap();
    let profile = fx.profile(SigningAlgorithm::PS256);
    kvproxy_core::Broker::new(options(KeyInfoStore::new(Some(keyring.clone()))))
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap();
    fx.emulator.reset_counters();
    // A new broker is a new process as far as caches go; only the keyring survives.
    let warm = kvproxy_core::Broker::new(options(KeyInfoStore::new(Some(keyring))));
    warm.token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap();
    assert_eq!(fx.emulator.count(Route::GetCertificate), 0);
    assert_eq!(fx.emulator.count(Route::Sign), 1);
    assert_eq!(fx.emulator.count(Route::Token), 1);
}

#[tokio::test]
async fn key_info_matches_the_vault_certificate() {
    let fx = Fixture::start().await;
    let info = broker()
        .key_info(&fx.profile(SigningAlgorithm::PS256).valid(), false)
        .await
        .unwrap();
    assert_eq!(info.key_id, fx.cert.kid);
    assert_eq!(info.thumbprints.sha1, fx.cert.x5t);
    assert_eq!(info.thumbprints.sha256, fx.cert.x5t_s256);
    assert_eq!(info.certificate_version, fx.cert.version);
    assert_eq!(info.expires.unix_timestamp(), fx.cert.expires.unix_timestamp());
    assert!(info.subject.contains("test-app"), "{}", info.subject);
}

#[tokio::test]
async fn rotated_certificate_recovers_with_one_key_info_refresh() {
    let fx = Fixture::start().await;
    let broker = broker();
    let profile = fx.profile(SigningAlgorithm::PS256);
    broker
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap();
    let new = fx.emulator.rotate_certificate(VAULT, CERT);
    fx.emulator.register_certificate(&fx.client_id, &new);
    fx.emulator.unregister_certificate(&fx.client_id, &fx.cert);
    fx.emulator.reset_counters();
    let token = broker
        .token(&profile.valid(), None, TokenOptions { skip_cache: true })
        .await
        .expect("recovers");
    assert!(!token.from_cache);
    assert_eq!(fx.emulator.count(Route::GetCertificate), 1, "key info refreshed once");
    assert_eq!(fx.emulator.count(Route::Token), 2, "one refused, one accepted");
    assert_eq!(broker.key_info(&profile.valid(), false).await.unwrap().key_id, new.kid);
}

#[tokio::test]
async fn throttled_sign_is_retried_after_retry_after() {
    let fx = Fixture::start().await;
    let broker = broker();
    let profile = fx.profile(SigningAlgorithm::PS256);
    broker.key_info(&profile.valid(), false).await.unwrap();
    fx.emulator.reset_counters();
    fx.emulator
        .inject_faults(Route::Sign, vec![Fault::TooManyRequests { retry_after_secs: 1 }]);
    let started = Instant::now();
    broker
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .expect("retried");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    assert_eq!(fx.emulator.count(Route::Sign), 2);
}

#[tokio::test]
async fn persistent_server_errors_give_a_network_class_error_in_bounded_time() {
    let fx = Fixture::start().await;
    let broker = broker();
    let profile = fx.profile(SigningAlgorithm::PS256);
    broker.key_info(&profile.valid(), false).await.unwrap();
    fx.emulator.fail_always(Route::Sign, Some(Fault::ServerError(503)));
    let started = Instant::now();
    let err = broker
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Network, "{err}");
    assert!(matches!(err, Error::KeyVault { status: 503, .. }), "{err}");
    assert!(err.to_string().contains("Hint:"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by the retry budget"
    );
    assert_eq!(fx.emulator.count(Route::Sign), 4, "first try plus three retries");
}

#[tokio::test]
async fn key_vault_permission_and_name_errors_say_what_to_grant_or_fix() {
    let fx = Fixture::start().await;
    fx.emulator.set_permissions(
        VAULT,
        VaultPermissions {
            get_certificate: true,
            sign: false,
        },
    );
    let err = broker()
        .token(
            &fx.profile(SigningAlgorithm::PS256).valid(),
            None,
            TokenOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyVault { status: 403, .. }), "{err}");
    assert!(err.to_string().contains("Key Vault Crypto User"), "{err}");
    assert_eq!(err.class(), ErrorClass::Auth);

    fx.emulator.set_permissions(
        VAULT,
        VaultPermissions {
            get_certificate: false,
            sign: true,
        },
    );
    let err = broker()
        .key_info(&fx.profile(SigningAlgorithm::PS256).valid(), true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Key Vault Certificate User"), "{err}");

    fx.emulator.set_permissions(VAULT, VaultPermissions::default());
    let mut profile = fx.profile(SigningAlgorithm::PS256);
    profile.certificate = "no-such-cert".into();
    let err = broker().key_info(&profile.valid(), false).await.unwrap_err();
    assert!(matches!(err, Error::KeyVault { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("no-such-cert"), "{err}");
}

#[tokio::test]
async fn vault_outside_the_clouds_allowlist_sends_nothing() {
    let fx = Fixture::start().await;
    let mut profile = fx.profile(SigningAlgorithm::PS256);
    profile.vault_url = "https://evil.example/".into();
    // The broker takes only checked profiles, so the check is all that stands between the URL and a request.
    let err = profile.resolve().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Input);
    assert!(err.to_string().starts_with("vault_url:"), "{err}");
    for route in Route::ALL {
        assert_eq!(fx.emulator.count(route), 0, "{route:?}");
    }
}

/// Every Entra error code that has a hint (`hint_for` in entra.rs) reaches the caller with its code, ids and
/// hint.
#[tokio::test]
async fn entra_errors_carry_code_and_hint() {
    let fx = Fixture::start().await;
    let base = fx.profile(SigningAlgorithm::PS256);

    let expect = |err: Error, code: u32, hint_word: &str| {
        let Error::Entra(entra) = &err else {
            panic!("expected an Entra error, got {err}")
        };
        assert_eq!(entra.code, Some(code), "{err}");
        assert!(entra.trace_id.is_some() && entra.correlation_id.is_some(), "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("AADSTS{code}")), "{text}");
        assert!(
            text.contains("Hint:") && text.to_lowercase().contains(hint_word),
            "{code}: {text}"
        );
        assert_eq!(err.class(), ErrorClass::Auth, "{text}");
    };

    // Provoked for real.
    let mut unknown_app = base.clone();
    unknown_app.client_id = "00000000-0000-4000-8000-0000000000aa".into();
    expect(
        broker()
            .token(&unknown_app.valid(), None, TokenOptions::default())
            .await
            .unwrap_err(),
        700016,
        "client id",
    );

    fx.emulator.unregister_certificate(&fx.client_id, &fx.cert);
    expect(
        broker()
            .token(&base.valid(), None, TokenOptions::default())
            .await
            .unwrap_err(),
        700027,
        "certificate",
    );
    fx.emulator.register_certificate(&fx.client_id, &fx.cert);

    fx.emulator.set_clock_offset(3600);
    expect(
        broker()
            .token(&base.valid(), None, TokenOptions::default())
            .await
            .unwrap_err(),
        700024,
        "clock",
    );
    fx.emulator.set_clock_offset(0);

    // Rows the engine never provokes itself (it always sends a certificate assertion with the right
    // audience), so the emulator is told to answer them.
    for (code, word) in [
        (700023, "audience"),
        (7000215, "secret"),
        (7000218, "credential"),
        (50013, "assertion"),
        (500011, "resource"),
        // Our Key Vault sign-in shares the profile's tenant, so an unknown tenant fails there first.
        (90002, "tenant"),
        (1002012, "/.default"),
    ] {
        fx.emulator.force_token_error(Some(code));
        expect(
            broker()
                .token(&base.valid(), None, TokenOptions::default())
                .await
                .unwrap_err(),
            code,
            word,
        );
    }
    fx.emulator.force_token_error(None);
    broker()
        .token(&base.valid(), None, TokenOptions::default())
        .await
        .expect("healthy again");

    // A scope without /.default never leaves the machine.
    let err = broker()
        .token(
            &base.valid(),
            Some("https://graph.microsoft.com/User.Read"),
            TokenOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Input);
    assert!(err.to_string().contains("/.default"), "{err}");
}

#[tokio::test]
async fn unreachable_authority_is_a_network_error() {
    let fx = Fixture::start().await;
    let mut profile = fx.profile(SigningAlgorithm::PS256);
    // Key info comes from the vault; the token endpoint is a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    if let Some(custom) = profile.custom_cloud.as_mut() {
        custom.authority_host = format!("https://login.localhost:{closed}");
    }
    let err = broker()
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Network, "{err}");
}

/// An emulator issuing tokens that live `lifetime`, and a profile for it.
async fn short_lived_tokens(
    lifetime: Duration,
) -> (kvproxy_emulator::Emulator, kvproxy_core::Profile, tempfile::TempDir) {
    use kvproxy_emulator::{Emulator, EmulatorConfig};
    let emulator = Emulator::start(EmulatorConfig {
        token_lifetime: lifetime,
        ..Default::default()
    })
    .await
    .unwrap();
    let client_id = emulator.create_app("Short-lived");
    let cert = emulator.create_certificate(VAULT, CERT, "short");
    emulator.register_certificate(&client_id, &cert);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, emulator.ca_pem()).unwrap();
    let app = kvproxy_core::EmulatedApp {
        tenant: emulator.tenant_id(),
        client_id,
        vault_url: emulator.vault_url(VAULT),
        certificate: CERT.into(),
        scope: "api://short/.default".into(),
        authority_host: emulator.authority_host(),
        ca_file,
    };
    let profile = kvproxy_core::Profile::emulated("short", app);
    (emulator, profile, dir)
}

#[tokio::test]
async fn token_near_expiry_is_served_while_a_background_refresh_replaces_it() {
    // A 4 s token: refreshed once 1 s is left (a quarter), served down to 0.4 s (a tenth). With the fixed
    // 60 s minimum it could never be served at all.
    let (emulator, profile, _dir) = short_lived_tokens(Duration::from_secs(4)).await;
    let broker = broker();
    let first = broker
        .token(&profile.valid(), None, TokenOptions::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let refreshed = loop {
        let t = broker
            .token(&profile.valid(), None, TokenOptions::default())
            .await
            .unwrap();
        assert!(t.from_cache, "a caller waited for the network");
        assert!(
            t.expires_on > time::OffsetDateTime::now_utc(),
            "an expired token was served"
        );
        if t.access_token != first.access_token {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the refreshed token never replaced the old one"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refreshed.expires_on > first.expires_on);
    assert_eq!(emulator.count(Route::Token), 2, "one token request for the refresh");
}
