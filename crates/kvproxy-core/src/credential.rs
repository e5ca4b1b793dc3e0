//! The credential that authenticates us to Key Vault (not to be confused with the app identity whose
//! token we mint). The Rust SDK has no DefaultAzureCredential, so each source is composed here.

use crate::cloud::Cloud;
use crate::error::{Error, Result};
use crate::profile::CredentialSource;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureDeveloperCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, DeveloperToolsCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::sync::Arc;

/// The emulator's built-in developer sign-in, the local stand-in for `az login`. Not a secret: it only
/// opens the local demo vault.
pub const EMULATOR_DEVELOPER_CLIENT_ID: &str = "de7e1000-0000-4000-8000-00000000de70";
pub const EMULATOR_DEVELOPER_CLIENT_SECRET: &str = "kvproxy-emulator-developer-secret-not-a-real-secret";

pub(crate) fn key_vault_credential(
    source: CredentialSource,
    cloud: &Cloud,
    tenant: &str,
    client_options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let failed = |e: azure_core::Error| credential_error(Some(source), &e);
    let mut client_options = client_options;
    client_options.cloud = Some(Arc::new(cloud.sdk_cloud()));
    Ok(match source {
        CredentialSource::Auto => DeveloperToolsCredential::new(None).map_err(failed)?,
        CredentialSource::AzureCli => AzureCliCredential::new(None).map_err(failed)?,
        CredentialSource::Azd => AzureDeveloperCliCredential::new(None).map_err(failed)?,
        CredentialSource::ManagedIdentity => ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            client_options,
            ..Default::default()
        }))
        .map_err(failed)?,
        CredentialSource::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                ..Default::default()
            }))
            .map_err(failed)?
        }
        CredentialSource::ServicePrincipal => {
            let var = |name: &str| {
                std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| Error::Credential {
                    source_name: source.as_str().into(),
                    message: format!("{name} is not set"),
                    hint: "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for the principal that may read the certificate and sign with its key".into(),
                })
            };
            let tenant = var("AZURE_TENANT_ID")?;
            let client = var("AZURE_CLIENT_ID")?;
            let secret = var("AZURE_CLIENT_SECRET")?;
            ClientSecretCredential::new(
                &tenant,
                client,
                Secret::new(secret),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(failed)?
        }
        CredentialSource::Emulator => ClientSecretCredential::new(
            tenant,
            EMULATOR_DEVELOPER_CLIENT_ID.into(),
            Secret::new(EMULATOR_DEVELOPER_CLIENT_SECRET),
            Some(ClientSecretCredentialOptions { client_options }),
        )
        .map_err(failed)?,
    })
}

/// `source` is `None` for a credential the library caller built (`KeyVaultAssertion`): we cannot tell
/// them which sign-in to repeat.
pub(crate) fn credential_error(source: Option<CredentialSource>, e: &azure_core::Error) -> Error {
    let Some(source) = source else {
        return Error::Credential {
            source_name: "caller-supplied".into(),
            message: crate::error::error_chain(e),
            hint: "check the Key Vault credential passed to KeyVaultAssertion".into(),
        };
    };
    let hint = sign_in_hint(source);
    let message = crate::error::error_chain(e);
    if is_unreachable(e) || looks_unreachable(&message) {
        // The sign-in endpoint could not be reached: a network problem, not a refused credential.
        return Error::Network {
            target: format!("the '{}' sign-in", source.as_str()),
            message: format!("{message}. {hint}"),
        };
    }
    Error::Credential {
        source_name: source.as_str().into(),
        message,
        hint: hint.into(),
    }
}

/// The sign-in to repeat (or what to check) when a credential source fails.
pub(crate) fn sign_in_hint(source: CredentialSource) -> &'static str {
    match source {
        CredentialSource::Auto => "sign in with `az login` (or `azd auth login`), or choose another credential source",
        CredentialSource::AzureCli => "sign in with `az login`; check `az account show` lists the right tenant",
        CredentialSource::Azd => "sign in with `azd auth login`",
        CredentialSource::ManagedIdentity => "managed identity only works on Azure compute (VM, App Service, ...)",
        CredentialSource::ServicePrincipal => "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
        CredentialSource::WorkloadIdentity => "check AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID",
        CredentialSource::Emulator => "is `kvproxy demo` still running?",
    }
}

/// Some credentials flatten the transport error into text (`ClientSecretCredential` does in 1.0), so
/// the structured check below can miss it; these phrases are reqwest's and hyper's own.
fn looks_unreachable(message: &str) -> bool {
    [
        "error sending request",
        "tcp connect error",
        "dns error",
        "operation timed out",
    ]
    .iter()
    .any(|p| message.contains(p))
}

/// The SDK wraps transport failures in credential errors; dig for the reqwest error underneath.
fn is_unreachable(e: &azure_core::Error) -> bool {
    use azure_core::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Io) {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && (r.is_connect() || r.is_timeout())
        {
            return true;
        }
        source = err.source();
    }
    false
}
