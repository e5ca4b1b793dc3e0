//! Key info: which key version signs for a certificate and the thumbprints Entra matches it by. Fetching
//! it costs a Key Vault round trip, so it is cached in memory and in the OS keyring, which makes a new
//! process's first token cost one sign and one token request instead of three calls.

use crate::assertion::Thumbprints;
use crate::error::{Error, Result};
use crate::key_id::KeyId;
use keyring_core::{CredentialStore, Entry};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

/// The keyring service every KeyVault Proxy entry (key info, the API key) is filed under.
pub const KEYRING_SERVICE: &str = "kvproxy";

/// What the engine needs to know about a certificate to build and sign assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub vault_url: String,
    pub certificate: String,
    /// Versioned key id (`https://VAULT/keys/NAME/VERSION`); signing a pinned version keeps assertion
    /// and thumbprint consistent while a rotation is under way.
    pub key_id: String,
    pub certificate_version: String,
    pub thumbprints: Thumbprints,
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// What a signature needs and nothing more: the pinned key version that signs and the thumbprints the
/// assertion header names. Usually read from the certificate ([`KeyInfo::signing_key`]); a caller that knows
/// them (the .NET proxy's `kv-key` route) supplies them itself, so there are no certificate dates to make up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SigningKey {
    /// Versioned key id, `https://VAULT/keys/NAME/VERSION`.
    pub key_id: String,
    pub thumbprints: Thumbprints,
    /// The certificate (or key) name, for error messages.
    pub name: String,
}

impl SigningKey {
    /// The versioned key id, parsed.
    pub fn parsed_key_id(&self) -> Result<KeyId> {
        KeyId::parse(&self.key_id).map_err(|e| Error::Certificate(format!("key id {e}")))
    }
}

impl KeyInfo {
    pub fn signing_key(&self) -> SigningKey {
        SigningKey {
            key_id: self.key_id.clone(),
            thumbprints: self.thumbprints.clone(),
            name: self.certificate.clone(),
        }
    }

    /// The versioned key id, parsed.
    pub fn parsed_key_id(&self) -> Result<KeyId> {
        self.signing_key().parsed_key_id()
    }

    pub(crate) fn cache_id(vault_url: &str, certificate: &str) -> String {
        format!(
            "keyinfo:{}{}",
            vault_url.trim_end_matches('/'),
            format_args!("/certificates/{certificate}")
        )
    }
}

/// Persistent key info, in the OS keyring. Failures to reach the keyring are reported to the caller,
/// which decides whether they matter (for a cache, they don't: the engine goes on without it).
#[derive(Clone)]
pub struct KeyInfoStore {
    store: Option<Arc<CredentialStore>>,
}

impl std::fmt::Debug for KeyInfoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyInfoStore")
            .field("enabled", &self.store.is_some())
            .finish()
    }
}

impl KeyInfoStore {
    /// A store over the given keyring (`None`: no persistence, memory only).
    pub fn new(store: Option<Arc<CredentialStore>>) -> Self {
        Self { store }
    }

    fn entry(&self, id: &str) -> Result<Option<Entry>> {
        match &self.store {
            None => Ok(None),
            Some(store) => Entry::new_in_store(store, KEYRING_SERVICE, id)
                .map(Some)
                .map_err(|e| Error::Keyring(e.to_string())),
        }
    }

    pub async fn load(&self, vault_url: &str, certificate: &str) -> Result<Option<KeyInfo>> {
        let id = KeyInfo::cache_id(vault_url, certificate);
        let this = self.clone();
        blocking(move || {
            let Some(entry) = this.entry(&id)? else { return Ok(None) };
            match entry.get_password() {
                Ok(text) => Ok(serde_json::from_str(&text).ok()),
                Err(keyring_core::Error::NoEntry) => Ok(None),
                Err(e) => Err(Error::Keyring(e.to_string())),
            }
        })
        .await
    }

    pub async fn save(&self, info: &KeyInfo) -> Result<()> {
        let id = KeyInfo::cache_id(&info.vault_url, &info.certificate);
        let text = serde_json::to_string(info).map_err(|e| Error::Keyring(e.to_string()))?;
        let this = self.clone();
        blocking(move || match this.entry(&id)? {
            Some(entry) => entry.set_password(&text).map_err(|e| Error::Keyring(e.to_string())),
            None => Ok(()),
        })
        .await
    }

    pub async fn remove(&self, vault_url: &str, certificate: &str) -> Result<()> {
        let id = KeyInfo::cache_id(vault_url, certificate);
        let this = self.clone();
        blocking(move || match this.entry(&id)? {
            Some(entry) => match entry.delete_credential() {
                Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                Err(e) => Err(Error::Keyring(e.to_string())),
            },
            None => Ok(()),
        })
        .await
    }
}

/// Keyring stores talk to D-Bus or OS APIs synchronously; keep that off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Keyring(format!("keyring task failed: {e}")))?
}

/// The OS keyring of this platform: Secret Service on Linux (gnome-keyring, KWallet), Keychain on macOS,
/// Credential Manager on Windows.
pub fn platform_keyring() -> Result<Arc<CredentialStore>> {
    #[cfg(target_os = "linux")]
    {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(|e| {
            Error::Keyring(format!("the Secret Service is not available ({e}); start gnome-keyring or KWallet, or run inside a desktop session"))
        })?;
        Ok(store)
    }
    #[cfg(target_os = "macos")]
    {
        let store = apple_native_keyring_store::keychain::Store::new()
            .map_err(|e| Error::Keyring(format!("the macOS keychain is not available ({e})")))?;
        Ok(store)
    }
    #[cfg(target_os = "windows")]
    {
        let store = windows_native_keyring_store::Store::new()
            .map_err(|e| Error::Keyring(format!("the Windows Credential Manager is not available ({e})")))?;
        Ok(store)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        Err(Error::Keyring("this build has no keyring store for this OS".into()))
    }
}

/// The OS keyring unless `KVPROXY_KEYRING=off` (tests and CI without a desktop session). `Ok(None)` means
/// switched off; an error means there should be one and there is not, which callers may downgrade to a
/// warning and run with a per-process cache.
pub fn keyring_from_env() -> Result<Option<Arc<CredentialStore>>> {
    if std::env::var("KVPROXY_KEYRING").as_deref() == Ok("off") {
        return Ok(None);
    }
    platform_keyring().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyInfo {
        KeyInfo {
            vault_url: "https://v.vault.azure.net/".into(),
            certificate: "c".into(),
            key_id: "https://v.vault.azure.net/keys/c/0123abcd".into(),
            certificate_version: "0123abcd".into(),
            thumbprints: Thumbprints::of_der(b"x"),
            subject: "CN=c".into(),
            not_before: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            expires: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        }
    }

    #[test]
    fn key_id_splits_into_name_and_version() {
        let id = sample().parsed_key_id().unwrap();
        assert_eq!((id.name(), id.version()), ("c", "0123abcd"));
        let mut bad = sample();
        bad.key_id = "https://v.vault.azure.net/keys/c".into();
        assert!(bad.parsed_key_id().is_err());
    }

    #[tokio::test]
    async fn mock_keyring_round_trip() {
        let store: Arc<CredentialStore> = keyring_core::mock::Store::new().unwrap();
        let kis = KeyInfoStore::new(Some(store));
        assert_eq!(kis.load("https://v.vault.azure.net/", "c").await.unwrap(), None);
        kis.save(&sample()).await.unwrap();
        assert_eq!(
            kis.load("https://v.vault.azure.net/", "c").await.unwrap(),
            Some(sample())
        );
        kis.remove("https://v.vault.azure.net/", "c").await.unwrap();
        assert_eq!(kis.load("https://v.vault.azure.net/", "c").await.unwrap(), None);
    }
}
