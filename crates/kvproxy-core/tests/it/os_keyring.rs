//! Key info through the real OS keyring (Secret Service on Linux). `make test` runs the suite inside a
//! D-Bus session with gnome-keyring unlocked and sets KVPROXY_REQUIRE_KEYRING=1, so there a missing
//! keyring fails the test instead of skipping it.

use crate::common::{Fixture, Valid, options};
use kvproxy_core::{Broker, KeyInfoStore, SigningAlgorithm, TokenOptions, platform_keyring};
use kvproxy_emulator::Route;

#[tokio::test]
async fn key_info_survives_a_new_broker_through_the_os_keyring() {
    let keyring = match platform_keyring() {
        Ok(store) => store,
        Err(e) if std::env::var("KVPROXY_REQUIRE_KEYRING").as_deref() != Ok("1") => {
            eprintln!("skipped: no OS keyring here ({e}); `make test` provides one");
            return;
        }
        Err(e) => panic!("KVPROXY_REQUIRE_KEYRING=1 but the OS keyring is unavailable: {e}"),
    };
    let fx = Fixture::start().await;
    let profile = fx.profile(SigningAlgorithm::RS256);
    let store = KeyInfoStore::new(Some(keyring));
    let cold = Broker::new(options(store.clone()))
        .key_info(&profile.valid(), false)
        .await
        .expect("key info");
    assert_eq!(
        store
            .load(&profile.vault_url, &profile.certificate)
            .await
            .expect("keyring read"),
        Some(cold.clone()),
        "saved in the keyring"
    );
    fx.emulator.reset_counters();
    let warm = Broker::new(options(store.clone()));
    warm.token(&profile.valid(), None, TokenOptions::default())
        .await
        .expect("warm token");
    assert_eq!(
        fx.emulator.count(Route::GetCertificate),
        0,
        "key info came from the keyring"
    );
    assert_eq!(fx.emulator.count(Route::Sign), 1);
    assert_eq!(fx.emulator.count(Route::Token), 1);
    store
        .remove(&profile.vault_url, &profile.certificate)
        .await
        .expect("cleanup");
    assert_eq!(
        store.load(&profile.vault_url, &profile.certificate).await.unwrap(),
        None
    );
}
