//! `kvproxy api-key show|rotate`

use super::agent::ask_agent;
use crate::args::ApiKeyCommand;
use kvproxy_app::ApiKeyStore;
use kvproxy_core::Error;
use kvproxy_server::agent::protocol::{Request, Response};

pub async fn run(command: ApiKeyCommand) -> anyhow::Result<()> {
    let store = super::keyring().ok_or_else(|| {
        Error::Keyring("no OS keyring: the API key lives there. Start a desktop session (gnome-keyring/KWallet), or set KVPROXY_API_KEY for `kvproxy serve`".into())
    })?;
    let keys = ApiKeyStore::new(store);
    match command {
        ApiKeyCommand::Show => println!("{}", keys.get_or_create()?.expose()),
        ApiKeyCommand::Rotate => {
            let key = keys.rotate()?;
            println!("{}", key.expose());
            let told = ask_agent(Request::ApiKeyRotated { api_key: key.clone() }).await?;
            if matches!(told, Some(Response::ApiKeyApplied)) {
                eprintln!("the running app (or kvproxy serve) took the new key: the old one no longer works");
            } else {
                eprintln!(
                    "no running app or kvproxy serve took the new key: one that is running keeps the old key until restarted"
                );
            }
        }
    }
    Ok(())
}

/// The key for this server run: `KVPROXY_API_KEY`, else the keyring's (created on first use), else a
/// random one for this run only.
pub(crate) fn for_server() -> anyhow::Result<(kvproxy_core::SecretString, kvproxy_app::ApiKeySource)> {
    Ok(kvproxy_app::resolve_api_key(super::keyring().as_ref())?)
}
