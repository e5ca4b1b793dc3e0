//! `kvproxy api-key show|rotate`

use crate::args::ApiKeyCommand;
use kvproxy_core::Error;
use kvproxy_server::ApiKeyStore;

pub fn run(command: ApiKeyCommand) -> anyhow::Result<()> {
    let store = super::keyring().ok_or_else(|| {
        Error::Keyring("no OS keyring: the API key lives there. Start a desktop session (gnome-keyring/KWallet), or set KVPROXY_API_KEY for `kvproxy serve`".into())
    })?;
    let keys = ApiKeyStore::new(store);
    match command {
        ApiKeyCommand::Show => println!("{}", keys.get_or_create()?.expose()),
        ApiKeyCommand::Rotate => {
            println!("{}", keys.rotate()?.expose());
            eprintln!("the old API key no longer works once `kvproxy serve` or the KeyVault Proxy app is restarted");
        }
    }
    Ok(())
}

/// The key for this server run: `KVPROXY_API_KEY`, else the keyring's (created on first use), else a
/// random one for this run only.
pub(crate) fn for_server() -> anyhow::Result<(kvproxy_core::SecretString, kvproxy_server::ApiKeySource)> {
    Ok(kvproxy_server::resolve_api_key(super::keyring().as_ref())?)
}
