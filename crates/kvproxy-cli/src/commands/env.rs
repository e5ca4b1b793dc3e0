//! `kvproxy env PROFILE`: point an app's Azure SDK at the proxy with no code change.

use crate::args::EnvArgs;

pub fn run(args: EnvArgs) -> anyhow::Result<()> {
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?;
    let (key, _) = super::api_key::for_server()?;
    let endpoint = format!("http://localhost:{}/msi/{}/token", args.port, profile.name);
    let key = key.expose();
    match args.shell.as_str() {
        "fish" => {
            println!("set -gx IDENTITY_ENDPOINT '{endpoint}';");
            println!("set -gx IDENTITY_HEADER '{key}';");
        }
        "powershell" => {
            println!("$env:IDENTITY_ENDPOINT = '{endpoint}'");
            println!("$env:IDENTITY_HEADER = '{key}'");
        }
        "cmd" => {
            println!("set IDENTITY_ENDPOINT={endpoint}");
            println!("set IDENTITY_HEADER={key}");
        }
        _ => {
            println!("export IDENTITY_ENDPOINT='{endpoint}'");
            println!("export IDENTITY_HEADER='{key}'");
        }
    }
    eprintln!(
        "# ManagedIdentityCredential / DefaultAzureCredential now get profile '{}' tokens from `kvproxy serve` on port {}",
        profile.name, args.port
    );
    Ok(())
}
