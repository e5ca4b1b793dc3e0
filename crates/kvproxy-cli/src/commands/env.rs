//! `kvproxy env PROFILE`: point an app's Azure SDK at the proxy with no code change.

use crate::args::EnvArgs;
use kvproxy_app::sdk_env::{EnvShell, identity_endpoint, identity_env};

pub fn run(args: EnvArgs) -> anyhow::Result<()> {
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?;
    let (key, _) = super::api_key::for_server()?;
    let endpoint = identity_endpoint(args.port, &profile.name);
    let shell: EnvShell = args.shell.parse().unwrap_or_default();
    print!("{}", identity_env(shell, &endpoint, key.expose()));
    eprintln!(
        "# ManagedIdentityCredential / DefaultAzureCredential now get profile '{}' tokens from `kvproxy serve` on port {}",
        profile.name, args.port
    );
    Ok(())
}
