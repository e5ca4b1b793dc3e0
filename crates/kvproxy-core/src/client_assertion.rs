//! For production services that don't run this app: a Key Vault backed [`ClientAssertion`], so the
//! Azure SDK's own `ClientAssertionCredential` can authenticate an app whose certificate key is
//! non-exportable.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use azure_core::credentials::TokenCredential;
//! use azure_identity::{ClientAssertionCredential, DeveloperToolsCredential};
//! use kvproxy_core::{Cloud, KeyVaultAssertion, KeyVaultAssertionOptions};
//!
//! let tenant = "contoso.onmicrosoft.com";
//! let client_id = "0b4c5f4e-1111-2222-3333-444455556666";
//! // Whatever may use the vault: a managed identity in production, the Azure CLI on a laptop.
//! let vault_credential = DeveloperToolsCredential::new(None)?;
//! let assertion = KeyVaultAssertion::from_certificate(
//!     "https://contoso.vault.azure.net/",
//!     "api-cert",
//!     tenant,
//!     client_id,
//!     vault_credential,
//!     KeyVaultAssertionOptions { cloud: Cloud::public(), ..Default::default() },
//! )
//! .await?;
//! let credential = ClientAssertionCredential::new(tenant.into(), client_id.into(), assertion, None)?;
//! let token = credential.get_token(&["api://my-api/.default"], None).await?;
//! # let _ = token; Ok(()) }
//! ```

use crate::assertion::UnsignedAssertion;
use crate::broker::{RetrySettings, sdk_client_options};
use crate::cloud::Cloud;
use crate::error::{Error, Result};
use crate::http::{HttpTimeouts, build_client};
use crate::keyinfo::KeyInfo;
use crate::keyvault::VaultClients;
use crate::profile::SigningAlgorithm;
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use std::sync::Arc;
use time::OffsetDateTime;

/// Options for [`KeyVaultAssertion`].
#[derive(Debug, Clone)]
pub struct KeyVaultAssertionOptions {
    pub algorithm: SigningAlgorithm,
    pub cloud: Cloud,
    /// The HTTP client for Key Vault calls; by default one trusting the OS certificate store.
    pub http_client: Option<reqwest::Client>,
    pub retry: RetrySettings,
}

impl Default for KeyVaultAssertionOptions {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::PS256,
            cloud: Cloud::public(),
            http_client: None,
            retry: RetrySettings::default(),
        }
    }
}

/// Signs client assertions with a Key Vault key. Each call to `secret` makes one Key Vault `sign`
/// request; `ClientAssertionCredential` caches the resulting access token, so that is once per token.
pub struct KeyVaultAssertion {
    vault: VaultClients,
    key: KeyInfo,
    algorithm: SigningAlgorithm,
    client_id: String,
    audience: String,
}

impl std::fmt::Debug for KeyVaultAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultAssertion")
            .field("key_id", &self.key.key_id)
            .field("client_id", &self.client_id)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl KeyVaultAssertion {
    /// Reads the certificate's current version from Key Vault (one request) and signs with its key.
    pub async fn from_certificate(
        vault_url: &str,
        certificate: &str,
        tenant: &str,
        client_id: &str,
        vault_credential: Arc<dyn TokenCredential>,
        options: KeyVaultAssertionOptions,
    ) -> Result<Self> {
        let vault_url = options.cloud.check_vault_url(vault_url)?.to_string();
        let http = match options.http_client {
            Some(client) => client,
            None => build_client(HttpTimeouts::default(), None)?,
        };
        let vault = VaultClients::new(
            &vault_url,
            None,
            vault_credential,
            sdk_client_options(http, options.retry),
        )?;
        let key = vault.key_info(certificate).await?;
        if tenant.trim().is_empty() || client_id.trim().is_empty() {
            return Err(Error::invalid("client_id", "tenant and client id must not be empty"));
        }
        Ok(Self {
            vault,
            key,
            algorithm: options.algorithm,
            client_id: client_id.to_string(),
            audience: options.cloud.token_endpoint(tenant),
        })
    }

    /// The key info this assertion signs with.
    pub fn key_info(&self) -> &KeyInfo {
        &self.key
    }
}

#[async_trait::async_trait]
impl ClientAssertion for KeyVaultAssertion {
    async fn secret(&self, _options: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let unsigned = UnsignedAssertion::new(
            self.algorithm,
            &self.key.thumbprints,
            &self.client_id,
            &self.audience,
            OffsetDateTime::now_utc(),
        );
        let signature = self
            .vault
            .sign(&self.key.signing_key(), self.algorithm, &unsigned.digest())
            .await
            .map_err(|e| azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string()))?;
        Ok(unsigned.with_signature(&signature))
    }
}
