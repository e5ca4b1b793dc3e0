//! One file per command; this one dispatches and builds what they share.

mod agent;
mod api_key;
mod demo;
mod doctor;
mod env;
mod key_info;
mod profile;
mod serve;
mod token;
mod user_path;

use crate::args::{Cli, Command};
use kvproxy_core::{Broker, ProfileStore, keyring_from_env};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Profile(command) => profile::run(command),
        Command::Token(args) => token::run(args).await,
        Command::KeyInfo(args) => key_info::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Env(args) => env::run(args),
        Command::ApiKey(command) => api_key::run(command).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::UserPath(command) => user_path::run(command),
    }
}

pub(crate) fn store() -> anyhow::Result<ProfileStore> {
    Ok(ProfileStore::default_location()?)
}

/// The OS keyring unless `KVPROXY_KEYRING=off`; `None` (with a warning) when there is none.
pub(crate) fn keyring() -> Option<std::sync::Arc<keyring_core::CredentialStore>> {
    keyring_from_env().unwrap_or_else(|e| {
        tracing::warn!("{e}; key info will not be cached between runs");
        None
    })
}

/// A broker whose key info cache persists in the OS keyring when there is one. Without a keyring it
/// still works, with a warning: the cache then lasts for this process only.
pub(crate) fn broker() -> Broker {
    kvproxy_app::keyring_broker(keyring())
}
