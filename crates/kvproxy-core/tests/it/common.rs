//! Shared setup: an emulator over real HTTPS, and profiles pointing at it.

use kvproxy_core::{
    Broker, BrokerOptions, EmulatedApp, KeyInfoStore, Profile, RetrySettings, SigningAlgorithm, ValidProfile,
};
use kvproxy_emulator::{CertificateVersion, Emulator, EmulatorConfig};
use std::time::Duration;

pub struct Fixture {
    pub emulator: Emulator,
    pub client_id: String,
    pub cert: CertificateVersion,
    _dir: tempfile::TempDir,
    pub ca_file: std::path::PathBuf,
}

pub const VAULT: &str = "testvault";
pub const CERT: &str = "app-cert";
pub const SCOPE: &str = "api://kvproxy-test/.default";

impl Fixture {
    pub async fn start() -> Fixture {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator starts");
        let client_id = emulator.create_app("Test App");
        let cert = emulator.create_certificate(VAULT, CERT, "test-app");
        emulator.register_certificate(&client_id, &cert);
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, emulator.ca_pem()).expect("write CA");
        Fixture {
            emulator,
            client_id,
            cert,
            _dir: dir,
            ca_file,
        }
    }

    pub fn profile(&self, algorithm: SigningAlgorithm) -> Profile {
        let app = EmulatedApp {
            tenant: self.emulator.tenant_id(),
            client_id: self.client_id.clone(),
            vault_url: self.emulator.vault_url(VAULT),
            certificate: CERT.into(),
            scope: SCOPE.into(),
            authority_host: self.emulator.authority_host(),
            ca_file: self.ca_file.clone(),
        };
        Profile {
            algorithm,
            ..Profile::emulated("test", app)
        }
    }
}

/// Fast retries so fault tests finish quickly, still bounded.
pub fn options(store: KeyInfoStore) -> BrokerOptions {
    BrokerOptions {
        key_vault_retry: RetrySettings {
            max_retries: 3,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_total: Duration::from_secs(8),
        },
        key_info_store: store,
        ..Default::default()
    }
}

pub fn broker() -> Broker {
    Broker::new(options(KeyInfoStore::new(None)))
}

/// The tests build valid profiles; one that fails its checks is a bug in the test.
pub trait Valid {
    fn valid(&self) -> ValidProfile;
}

impl Valid for Profile {
    fn valid(&self) -> ValidProfile {
        self.resolve().expect("a valid test profile")
    }
}
