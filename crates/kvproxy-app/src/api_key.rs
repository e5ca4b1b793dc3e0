//! The API key every token route requires: 256 random bits, created on first start and kept in the OS
//! keyring (never in a file). Compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyring_core::{CredentialStore, Entry};
use kvproxy_core::keyinfo::KEYRING_SERVICE;
use kvproxy_core::{Error, Result, SecretString};
use std::sync::Arc;

const USER: &str = "api-key";

/// A new random API key: 32 bytes from the OS RNG, base64url (43 characters).
pub fn generate_api_key() -> Result<SecretString> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Keyring(format!("no OS randomness: {e}")))?;
    Ok(SecretString::new(URL_SAFE_NO_PAD.encode(bytes)))
}

/// Constant-time comparison, so response timing does not leak how much of a guess was right.
pub fn matches(expected: &SecretString, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (expected.expose().as_bytes(), presented.as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Where the API key lives.
#[derive(Clone)]
pub struct ApiKeyStore {
    store: Arc<CredentialStore>,
}

impl ApiKeyStore {
    pub fn new(store: Arc<CredentialStore>) -> Self {
        Self { store }
    }

    fn entry(&self) -> Result<Entry> {
        Entry::new_in_store(&self.store, KEYRING_SERVICE, USER).map_err(|e| Error::Keyring(e.to_string()))
    }

    /// The stored key, creating and storing one on first use.
    pub fn get_or_create(&self) -> Result<SecretString> {
        let entry = self.entry()?;
        match entry.get_password() {
            Ok(key) if !key.is_empty() => Ok(SecretString::new(key)),
            Ok(_) | Err(keyring_core::Error::NoEntry) => {
                let key = generate_api_key()?;
                entry
                    .set_password(key.expose())
                    .map_err(|e| Error::Keyring(e.to_string()))?;
                Ok(key)
            }
            Err(e) => Err(Error::Keyring(e.to_string())),
        }
    }

    /// Replaces the key; the old one stops working at once in a running server that reloads it.
    pub fn rotate(&self) -> Result<SecretString> {
        let key = generate_api_key()?;
        self.entry()?
            .set_password(key.expose())
            .map_err(|e| Error::Keyring(e.to_string()))?;
        Ok(key)
    }
}

/// Where a running server's API key came from, for the line that tells the user how to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeySource {
    /// `KVPROXY_API_KEY`.
    Environment,
    /// The OS keyring (created there on first use).
    Keyring,
    /// Random, for this process only: there is no keyring to keep it in.
    Ephemeral,
}

impl ApiKeySource {
    /// Where the key came from and how to get it, with `kvproxy` written as `kvproxy` (see
    /// [`crate::invocation`]) so the command is runnable as printed.
    pub fn describe(&self, kvproxy: &str) -> String {
        match self {
            ApiKeySource::Environment => "from KVPROXY_API_KEY".into(),
            ApiKeySource::Keyring => format!("from the OS keyring: `{kvproxy} api-key show`"),
            ApiKeySource::Ephemeral => "random, for this run only (no OS keyring)".into(),
        }
    }
}

impl std::fmt::Display for ApiKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe("kvproxy"))
    }
}

/// Shorter keys are refused: the key is the only thing between a local process and the user's tokens.
pub const MIN_API_KEY_LEN: usize = 32;

/// The key a server run uses: `KVPROXY_API_KEY`, else the keyring's (created on first use), else a random
/// one for this run only.
pub fn resolve_api_key(keyring: Option<&Arc<CredentialStore>>) -> Result<(SecretString, ApiKeySource)> {
    if let Ok(key) = std::env::var("KVPROXY_API_KEY")
        && !key.trim().is_empty()
    {
        let key = key.trim();
        if key.len() < MIN_API_KEY_LEN {
            return Err(Error::invalid(
                "KVPROXY_API_KEY",
                "must be at least 32 characters; better, let kvproxy generate one (`kvproxy api-key show`)",
            ));
        }
        return Ok((SecretString::new(key.to_string()), ApiKeySource::Environment));
    }
    match keyring {
        Some(store) => Ok((ApiKeyStore::new(store.clone()).get_or_create()?, ApiKeySource::Keyring)),
        None => Ok((generate_api_key()?, ApiKeySource::Ephemeral)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_compared_exactly() {
        let (a, b) = (generate_api_key().unwrap(), generate_api_key().unwrap());
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert!(matches(&a, a.expose()));
        assert!(!matches(&a, b.expose()));
        assert!(!matches(&a, &a.expose()[..42]));
        assert!(!matches(&a, ""));
    }

    #[test]
    fn stored_key_is_reused_until_rotated() {
        let store = ApiKeyStore::new(keyring_core::mock::Store::new().unwrap());
        let first = store.get_or_create().unwrap();
        assert_eq!(store.get_or_create().unwrap(), first);
        let rotated = store.rotate().unwrap();
        assert_ne!(rotated, first);
        assert_eq!(store.get_or_create().unwrap(), rotated);
    }
}
