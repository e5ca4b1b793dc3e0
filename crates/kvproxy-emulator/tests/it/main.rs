//! The emulator's integration tests, one binary: Entra ID and Key Vault over real HTTPS, also through the
//! Azure SDK's own clients.

mod azure_sdk;
mod common;
mod entra;
mod graph;
mod keyvault;
