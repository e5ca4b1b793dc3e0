//! A versioned Key Vault key id, `https://VAULT/keys/NAME/VERSION`: what signs an assertion. Parsed here
//! and nowhere else, whether it comes from a certificate (its `kid`), the keyring cache or a caller.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    vault: Url,
    name: String,
    version: String,
}

/// What is wrong with a key id; each says the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyIdError {
    #[error("'{0}' is not a URL; use https://VAULT.vault.azure.net/keys/NAME/VERSION")]
    NotUrl(String),
    #[error("'{0}' is not a key id; use https://VAULT.vault.azure.net/keys/NAME/VERSION")]
    NotKeyId(String),
    #[error("'{0}' has no key version; use https://VAULT.vault.azure.net/keys/NAME/VERSION")]
    NoVersion(String),
    #[error("'{0}' has a key name that is not 1-127 letters, digits and dashes")]
    BadName(String),
    #[error("'{0}' has a key version that is not 1-64 letters and digits")]
    BadVersion(String),
}

impl KeyId {
    /// The version is required: a signature must come from the key the certificate's thumbprint describes,
    /// not whatever version is current. Names and versions are what Key Vault itself allows, so a typo is
    /// found here rather than as a 404 from the vault.
    pub fn parse(text: &str) -> Result<Self, KeyIdError> {
        let text = text.trim();
        let url = Url::parse(text).map_err(|_| KeyIdError::NotUrl(text.into()))?;
        if url.scheme() != "https" || url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(KeyIdError::NotKeyId(text.into()));
        }
        let segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
        let (name, version) = match segments.as_slice() {
            ["keys", name] if !name.is_empty() => return Err(KeyIdError::NoVersion(text.into())),
            ["keys", name, version] if !name.is_empty() && !version.is_empty() => (*name, *version),
            _ => return Err(KeyIdError::NotKeyId(text.into())),
        };
        if name.len() > 127 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(KeyIdError::BadName(text.into()));
        }
        if version.len() > 64 || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyIdError::BadVersion(text.into()));
        }
        let mut vault = url.clone();
        vault.set_path("/");
        Ok(Self {
            vault,
            name: name.into(),
            version: version.into(),
        })
    }

    /// The vault root, `https://VAULT/`.
    pub fn vault(&self) -> &Url {
        &self.vault
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}keys/{}/{}", self.vault, self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_split_into_vault_name_and_version_and_print_back() {
        let id = KeyId::parse(" https://v.vault.azure.net/keys/app-cert/0123abcd ").unwrap();
        assert_eq!(
            (id.vault().as_str(), id.name(), id.version()),
            ("https://v.vault.azure.net/", "app-cert", "0123abcd")
        );
        assert_eq!(id.to_string(), "https://v.vault.azure.net/keys/app-cert/0123abcd");
        let local = KeyId::parse("https://demo.vault.localhost:5617/keys/c/1").unwrap();
        assert_eq!(local.vault().as_str(), "https://demo.vault.localhost:5617/");
    }

    #[test]
    fn every_wrong_shape_says_which() {
        let error = |text: &str| KeyId::parse(text).unwrap_err();
        assert!(matches!(error("not a url"), KeyIdError::NotUrl(_)));
        assert!(matches!(
            error("https://v.vault.azure.net/keys/k"),
            KeyIdError::NoVersion(_)
        ));
        assert!(matches!(
            error("https://v.vault.azure.net/secrets/k/1"),
            KeyIdError::NotKeyId(_)
        ));
        assert!(matches!(
            error("http://v.vault.azure.net/keys/k/1"),
            KeyIdError::NotKeyId(_)
        ));
        assert!(matches!(
            error("https://v.vault.azure.net/keys/k/1?x=1"),
            KeyIdError::NotKeyId(_)
        ));
        assert!(matches!(
            error("https://v.vault.azure.net/keys/k_k/1"),
            KeyIdError::BadName(_)
        ));
        assert!(matches!(
            error("https://v.vault.azure.net/keys/k/1.2"),
            KeyIdError::BadVersion(_)
        ));
        assert!(matches!(
            error(&format!("https://v.vault.azure.net/keys/k/{}", "a".repeat(65))),
            KeyIdError::BadVersion(_)
        ));
    }
}
