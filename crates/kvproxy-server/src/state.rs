//! What every handler shares.

use crate::activity::Activity;
use kvproxy_core::{Broker, Cloud, CredentialSource, ProfileStore, SecretString};
use parking_lot::RwLock;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub broker: Broker,
    pub profiles: ProfileStore,
    /// Behind a lock so a rotation takes effect in a running server.
    pub api_key: Arc<RwLock<SecretString>>,
    pub activity: Activity,
    /// The port we listen on, for the Origin allowlist.
    pub port: u16,
    /// Extra addresses that may appear in `Host` (only with an explicitly forced non-loopback bind).
    pub extra_hosts: Vec<IpAddr>,
    /// How ad-hoc (.NET-style) requests sign in to Key Vault.
    pub credential: CredentialSource,
}

impl AppState {
    pub fn new(broker: Broker, profiles: ProfileStore, api_key: SecretString, port: u16) -> Self {
        Self {
            broker,
            profiles,
            api_key: Arc::new(RwLock::new(api_key)),
            activity: Activity::new(500),
            port,
            extra_hosts: Vec::new(),
            credential: CredentialSource::Auto,
        }
    }

    /// The tenant to sign in to a demo vault in, for a .NET key-info request that names none: that of a
    /// saved profile on the same vault, else of one on the same (emulated) cloud.
    pub(crate) fn tenant_for_vault(&self, cloud: &kvproxy_core::Cloud, vault_root: &url::Url) -> Option<String> {
        let file = self.profiles.load().ok()?;
        let profiles: Vec<_> = file.profiles.values().filter_map(|p| p.resolve().ok()).collect();
        profiles
            .iter()
            .find(|p| p.vault_root() == vault_root)
            .or_else(|| profiles.iter().find(|p| p.cloud() == cloud))
            .map(|p| p.tenant.clone())
    }

    /// Custom clouds known from profiles (the demo tenant, Azure Stack), for ad-hoc vault URLs.
    pub(crate) fn custom_clouds(&self) -> Vec<Cloud> {
        self.profiles
            .load()
            .map(|file| {
                file.profiles
                    .values()
                    .filter_map(|p| p.cloud().ok())
                    .filter(|c| c.custom.is_some())
                    .collect()
            })
            .unwrap_or_default()
    }
}
