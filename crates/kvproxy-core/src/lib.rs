//! KeyVault Proxy's engine: app-only Entra ID access tokens for an app whose certificate lives in Azure
//! Key Vault with a non-exportable key. The engine builds the client assertion, has Key Vault sign its
//! digest, and exchanges it at the Entra token endpoint. No private key is ever held here.
//!
//! Entry points: [`Broker`] (cached, single-flight tokens for [`Profile`]s, used by the CLI, the loopback
//! server and the tray app) and [`KeyVaultAssertion`] (an `azure_identity::ClientAssertion` for
//! production services).

pub mod assertion;
pub mod broker;
pub mod client_assertion;
pub mod cloud;
pub mod credential;
pub mod doctor;
pub mod entra;
pub mod error;
pub mod http;
pub mod key_id;
pub mod keyinfo;
mod keyvault;
pub mod profile;
pub mod secret;
pub mod settings;

pub use assertion::{Thumbprints, decode_claims, decode_header};
pub use broker::{Broker, BrokerOptions, IssuedToken, RetrySettings, TokenOptions};
pub use client_assertion::{KeyVaultAssertion, KeyVaultAssertionOptions};
pub use cloud::{Cloud, CloudName, CustomCloud};
pub use doctor::{Check, CheckId, CheckStatus, DoctorOptions, DoctorReport, diagnose};
pub use error::{EntraError, Error, ErrorClass, FieldError, FieldErrors, KeyVaultOperation, Result, error_chain};
pub use key_id::{KeyId, KeyIdError};
pub use keyinfo::{KeyInfo, KeyInfoStore, SigningKey, keyring_from_env, platform_keyring};
pub use profile::{
    CredentialSource, EmulatedApp, Profile, ProfileFile, ProfileStore, SigningAlgorithm, ValidProfile,
    VaultCertificate, config_dir, run_log_file,
};
pub use secret::SecretString;
pub use settings::{Settings, SettingsStore};
