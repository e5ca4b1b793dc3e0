//! The demo tenant: the emulator on a fixed local port and a `demo` profile pointing at it, so a new user can
//! get a token before touching Azure. `kvproxy demo` and the desktop app both start it through here.
//!
//! The emulator's CA key is made at start and never written anywhere; only its public certificate goes to
//! `demo-ca.pem` in the config directory, which the demo profile (and nothing else) trusts. Because the
//! certificate changes with every start, a second program that finds the port taken checks whether the
//! server there is the demo tenant the saved certificate belongs to, and then simply uses it.

use kvproxy_core::http::HttpTimeouts;
use kvproxy_core::{EmulatedApp, Profile, ProfileStore};
use kvproxy_emulator::{DemoSeed, Emulator, EmulatorConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The emulator's port for the demo tenant: next to the API's 5616.
pub const DEMO_PORT: u16 = 5617;
/// Fixed so the saved demo profile stays valid across restarts of the demo tenant.
pub const DEMO_TENANT_ID: &str = "dec0de00-0000-4000-8000-00000000de70";
pub const DEMO_PROFILE: &str = "demo";
const CA_FILE: &str = "demo-ca.pem";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error("could not start the demo tenant on port {port}: {source}")]
    Start {
        port: u16,
        source: kvproxy_emulator::EmulatorError,
    },
    #[error(
        "port {port} is taken by something that is not the demo tenant; stop it, or run the demo on another port (`kvproxy demo --port N`)"
    )]
    PortTaken { port: u16 },
    #[error(transparent)]
    Core(#[from] kvproxy_core::Error),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The profile for an emulator's seeded demo app, trusting `ca_file` for its connections only.
pub fn emulator_profile(name: &str, seed: &DemoSeed, ca_file: &Path) -> Profile {
    let app = EmulatedApp {
        tenant: seed.tenant_id.clone(),
        client_id: seed.client_id.clone(),
        vault_url: seed.vault_url.clone(),
        certificate: seed.certificate_name.clone(),
        scope: seed.scope.clone(),
        authority_host: seed.authority_host.clone(),
        ca_file: ca_file.to_path_buf(),
    };
    Profile::emulated(name, app)
}

/// A demo tenant this process serves, or one another process (`kvproxy demo`, another app) already serves.
pub enum DemoTenant {
    Owned { emulator: Emulator, seed: Box<DemoSeed> },
    Shared { port: u16 },
}

impl DemoTenant {
    /// Starts the demo tenant on `port` and saves the `demo` profile for it (the default profile when
    /// `make_default`, or when there is none yet). When the port is taken by a demo tenant whose certificate
    /// is the saved one, that tenant is used as it is.
    pub async fn start(port: u16, store: &ProfileStore, make_default: bool) -> Result<Self, DemoError> {
        // Beside the profiles file, so a store in a test directory keeps everything there.
        let ca_file = store.path().parent().unwrap_or(Path::new(".")).join(CA_FILE);
        let config = EmulatorConfig {
            port,
            tenant_id: DEMO_TENANT_ID.into(),
            ..Default::default()
        };
        // A taken port is found out before the emulator spends time making its keys.
        let taken = port != 0
            && matches!(
                std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
            );
        if taken {
            return Self::shared(port, store, &ca_file).await;
        }
        let emulator = match Emulator::start(config).await {
            Ok(emulator) => emulator,
            Err(source) if is_addr_in_use(&source) => return Self::shared(port, store, &ca_file).await,
            Err(source) => return Err(DemoError::Start { port, source }),
        };
        let seed = emulator
            .try_seed_demo()
            .map_err(|source| DemoError::Start { port, source })?;
        if let Some(dir) = ca_file.parent() {
            std::fs::create_dir_all(dir).map_err(|source| DemoError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&ca_file, emulator.ca_pem()).map_err(|source| DemoError::Write {
            path: ca_file.clone(),
            source,
        })?;
        store.upsert(emulator_profile(DEMO_PROFILE, &seed, &ca_file), true)?;
        if make_default {
            store.set_default(DEMO_PROFILE)?;
        }
        Ok(DemoTenant::Owned {
            emulator,
            seed: Box::new(seed),
        })
    }

    /// The port is taken: fine if the demo tenant of the saved profile serves there.
    async fn shared(port: u16, store: &ProfileStore, ca_file: &Path) -> Result<Self, DemoError> {
        if serves_demo(port, ca_file).await && store.get(DEMO_PROFILE).is_ok() {
            Ok(DemoTenant::Shared { port })
        } else {
            Err(DemoError::PortTaken { port })
        }
    }

    /// True for a profile of the demo tenant (as saved by [`DemoTenant::start`]), which a running app keeps
    /// working; other profiles on an emulator (tests, a private emulator) are left to whoever runs it.
    pub fn is_demo_profile(profile: &Profile) -> bool {
        profile.is_demo() && profile.tenant == DEMO_TENANT_ID
    }

    pub fn port(&self) -> u16 {
        match self {
            DemoTenant::Owned { emulator, .. } => emulator.port(),
            DemoTenant::Shared { port } => *port,
        }
    }

    /// Stops a tenant this process serves; a shared one is left running.
    pub async fn shutdown(self) {
        if let DemoTenant::Owned { emulator, .. } = self {
            emulator.shutdown().await;
        }
    }
}

/// The port a saved demo profile expects its tenant on, from its authority (`https://login.localhost:PORT`).
pub fn demo_port_of(profile: &Profile) -> Option<u16> {
    let authority = profile.custom_cloud.as_ref()?.authority_host.as_str();
    url::Url::parse(authority).ok()?.port()
}

fn is_addr_in_use(error: &kvproxy_emulator::EmulatorError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::AddrInUse
        {
            return true;
        }
        source = e.source();
    }
    error
        .to_string()
        .to_ascii_lowercase()
        .contains("address already in use")
}

/// True when the server on `port` proves it holds the CA key of the saved `demo-ca.pem` (its TLS certificate
/// chains to it) and answers as the demo tenant.
async fn serves_demo(port: u16, ca_file: &Path) -> bool {
    let Ok(pem) = std::fs::read(ca_file) else {
        return false;
    };
    let timeouts = HttpTimeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(5),
    };
    let Ok(client) = kvproxy_core::http::build_client(timeouts, Some(&pem)) else {
        return false;
    };
    let url = format!("https://login.localhost:{port}/{DEMO_TENANT_ID}/v2.0/.well-known/openid-configuration");
    matches!(client.get(url).send().await, Ok(response) if response.status().is_success())
}
