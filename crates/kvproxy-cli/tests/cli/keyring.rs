//! Key info cached in the real OS keyring (Secret Service on Linux), across `kvproxy` processes.
//!
//! `make test` runs the suite inside a private D-Bus session with gnome-keyring unlocked
//! (scripts/with-keyring.sh) and sets `KVPROXY_REQUIRE_KEYRING=1`: then this test must pass, and a keyring
//! that does not work is a failure. Without that variable, the test runs when a Secret Service answers and
//! otherwise prints a note and passes without checking anything.

use crate::support::{TestEnv, run_fail, run_json};
use kvproxy_core::{KeyInfoStore, platform_keyring};
use std::sync::mpsc;
use std::time::Duration;

const CERTIFICATE: &str = "kvproxy-demo";

fn keyring_required() -> bool {
    std::env::var("KVPROXY_REQUIRE_KEYRING").is_ok_and(|v| v == "1")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether a Secret Service answers a lookup (bounded: a half-configured D-Bus must not hang the suite).
fn secret_service_answers() -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = platform_keyring().map_err(|e| e.to_string()).and_then(|store| {
            runtime()
                .block_on(KeyInfoStore::new(Some(store)).load("https://kvproxy-cli-probe.vault.localhost/", "probe"))
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        let _ = tx.send(result);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| Err("the keyring did not answer within 10 s".into()))
}

/// The key info the CLI stored in the keyring, read back through the engine's own store.
fn stored_key_id(vault_url: &str) -> Result<Option<String>, String> {
    let store = platform_keyring().map_err(|e| e.to_string())?;
    runtime()
        .block_on(KeyInfoStore::new(Some(store)).load(vault_url, CERTIFICATE))
        .map(|info| info.map(|i| i.key_id))
        .map_err(|e| e.to_string())
}

/// Removes the test's keyring entry however the test ends (ports differ per run, so entries would pile up).
struct KeyringEntry {
    vault_url: String,
}

impl Drop for KeyringEntry {
    fn drop(&mut self) {
        if let Ok(store) = platform_keyring() {
            let _ = runtime().block_on(KeyInfoStore::new(Some(store)).remove(&self.vault_url, CERTIFICATE));
        }
    }
}

#[test]
fn key_info_is_cached_in_the_os_keyring_and_served_from_it_when_the_vault_is_gone() {
    if !keyring_required()
        && let Err(why) = secret_service_answers()
    {
        eprintln!(
            "note: skipping the OS keyring test: no Secret Service ({why}). \
             Set KVPROXY_REQUIRE_KEYRING=1 (as `make test` does) to make that a failure."
        );
        return;
    }

    let env = TestEnv::new();
    let mut demo = env.start_demo();
    let vault_url = format!("https://demo.vault.localhost:{}/", demo.port);
    let _cleanup = KeyringEntry {
        vault_url: vault_url.clone(),
    };

    // 1st process: key info comes from Key Vault and is saved to the keyring, without complaint.
    let out = env
        .kvproxy_with_keyring()
        .args(["key-info", "demo", "--json"])
        .output()
        .expect("run kvproxy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "first key-info failed ({:?}): {stderr}",
        out.status
    );
    assert!(
        !stderr.to_lowercase().contains("keyring"),
        "the keyring must work here, but the CLI says: {stderr}"
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).expect("key-info --json");
    let key_id = first["key_id"].as_str().expect("key_id").to_string();
    assert_eq!(
        stored_key_id(&vault_url).expect("read the OS keyring"),
        Some(key_id.clone()),
        "the CLI must have saved the key info in the OS keyring"
    );

    // Vault gone: a new process still knows the key info, so it can only have come from the keyring.
    demo.stop();
    let second = run_json(env.kvproxy_with_keyring().args(["key-info", "demo", "--json"]));
    assert_eq!(second["key_id"], key_id.as_str(), "served from the keyring");
    assert_eq!(second["x5t#S256"], first["x5t#S256"]);

    // ... and --refresh really asks the vault, which is not there: a network failure.
    let line = run_fail(env.kvproxy_with_keyring().args(["key-info", "demo", "--refresh"]), 4);
    assert!(
        line.contains(&format!(":{}", demo.port)),
        "names the unreachable vault: {line}"
    );
    // a failed refresh keeps what was cached
    assert_eq!(stored_key_id(&vault_url).expect("read the OS keyring"), Some(key_id));
}
