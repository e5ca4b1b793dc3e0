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
            eprintln!("the old API key no longer works once `kvproxy serve` is restarted");
        }
    }
    Ok(())
}

/// The key for this server run: `KVPROXY_API_KEY`, else the keyring's (created on first use), else a
/// random one for this run only.
pub(crate) fn for_server() -> anyhow::Result<(kvproxy_core::SecretString, &'static str)> {
    if let Ok(key) = std::env::var("KVPROXY_API_KEY")
        && !key.trim().is_empty()
    {
        if key.trim().len() < 32 {
            return Err(crate::exit::UsageError("KVPROXY_API_KEY must be at least 32 characters; better, let kvproxy generate one (`kvproxy api-key show`)".into()).into());
        }
        return Ok((
            kvproxy_core::SecretString::new(key.trim().to_string()),
            "from KVPROXY_API_KEY",
        ));
    }
    match super::keyring() {
        Some(store) => Ok((
            ApiKeyStore::new(store).get_or_create()?,
            "from the OS keyring: `kvproxy api-key show`",
        )),
        None => Ok((
            kvproxy_server::generate_api_key()?,
            "random, for this run only (no OS keyring)",
        )),
    }
}
