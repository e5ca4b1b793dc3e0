//! KeyVault Proxy's app core, without any user interface or transport: one cheap-to-clone [`App`] that
//! holds the engine, the profiles (kept in memory, re-read when the file changes), the API key and where it
//! comes from, the activity log and the demo tenant, and offers every operation as a typed call.
//!
//! The doors are adapters of these calls: `kvproxy-server` (the loopback HTTP API and the CLI agent), the
//! `kvproxy` CLI and the desktop app (tray and window).

pub mod activity;
pub mod api_key;
mod app;
pub mod approval;
pub mod demo;
pub mod invocation;
mod profiles;
pub mod sdk_env;
pub mod settings;

pub use activity::{Activity, ActivityRecord, Caller, Channel, Identity, Program};
pub use api_key::{ApiKeySource, ApiKeyStore, generate_api_key, resolve_api_key};
pub use app::{ApiKeyError, App, AppEvent, AppOptions, DemoPolicy, TokenRequest, status_of};
pub use approval::{ApprovalRequest, Approver, ConfirmPolicy, Decision, Remember};
pub use profiles::Profiles;

/// The broker a long-running process wants: key info cached in the OS keyring when there is one (so a restart
/// costs one sign and one token call, not a certificate read too), in memory otherwise. `KVPROXY_RETRIES`
/// (0-10, default 4) sets how often a failing Key Vault call is retried.
pub fn keyring_broker(keyring: Option<std::sync::Arc<keyring_core::CredentialStore>>) -> kvproxy_core::Broker {
    let mut options = kvproxy_core::BrokerOptions {
        key_info_store: kvproxy_core::KeyInfoStore::new(keyring),
        ..Default::default()
    };
    if let Some(retries) = retries_from_env(std::env::var("KVPROXY_RETRIES").ok().as_deref()) {
        options.key_vault_retry.max_retries = retries;
    }
    kvproxy_core::Broker::new(options)
}

/// A bad value is said and ignored: the process still starts, with the default.
fn retries_from_env(value: Option<&str>) -> Option<u32> {
    let value = value?.trim();
    match value.parse::<u32>() {
        Ok(retries) if retries <= 10 => Some(retries),
        _ => {
            tracing::warn!(
                "KVPROXY_RETRIES='{value}' is not a number from 0 to 10; Key Vault calls are retried 4 times"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retries_come_from_the_environment_within_bounds() {
        use super::retries_from_env;
        assert_eq!(retries_from_env(None), None);
        assert_eq!(retries_from_env(Some("0")), Some(0));
        assert_eq!(retries_from_env(Some(" 10 ")), Some(10));
        assert_eq!(retries_from_env(Some("11")), None);
        assert_eq!(retries_from_env(Some("many")), None);
    }
}
