//! `kvproxy demo`: a local Entra ID + Key Vault with real keys and real verification, and a `demo` profile
//! pointing at it, so a new user can try everything before touching Azure.

use crate::args::DemoArgs;
use crate::exit::UsageError;
use kvproxy_core::{CloudName, CredentialSource, CustomCloud, Profile, SigningAlgorithm, config_dir};
use kvproxy_emulator::{Emulator, EmulatorConfig};

/// Fixed so the demo profile stays valid across demo restarts.
const DEMO_TENANT_ID: &str = "dec0de00-0000-4000-8000-00000000de70";
pub const DEMO_PROFILE: &str = "demo";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = EmulatorConfig {
        port: args.port,
        tenant_id: DEMO_TENANT_ID.into(),
        ..Default::default()
    };
    let emulator = Emulator::start(config).await.map_err(|e| {
        UsageError(format!(
            "could not start the demo tenant on port {}: {e} (pick another with --port)",
            args.port
        ))
    })?;
    let seed = emulator.seed_demo();

    // The CA's public certificate only; its private key lives and dies with this process.
    let ca_file = config_dir()?.join("demo-ca.pem");
    if let Some(dir) = ca_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&ca_file, emulator.ca_pem())?;

    let profile = Profile {
        name: DEMO_PROFILE.into(),
        tenant: seed.tenant_id.clone(),
        client_id: seed.client_id.clone(),
        vault_url: seed.vault_url.clone(),
        certificate: seed.certificate_name.clone(),
        scopes: vec![seed.scope.clone()],
        algorithm: SigningAlgorithm::PS256,
        cloud: CloudName::Custom,
        custom_cloud: Some(CustomCloud {
            authority_host: seed.authority_host.clone(),
            vault_suffixes: vec!["vault.localhost".into()],
            ca_file: Some(ca_file.clone()),
        }),
        credential: CredentialSource::Emulator,
    };
    let store = super::store()?;
    store.upsert(profile, true)?;

    println!(
        "KeyVault Proxy DEMO tenant is running (emulated Entra ID + Key Vault on 127.0.0.1:{}).",
        emulator.port()
    );
    println!("Tokens minted here are DEMO tokens: Azure does not accept them.");
    println!();
    println!("  tenant        {}", seed.tenant_id);
    println!(
        "  app           {} (client id {})",
        kvproxy_emulator::DEMO_APP_NAME,
        seed.client_id
    );
    println!("  vault         {}", seed.vault_url);
    println!("  certificate   {} (non-exportable RSA key)", seed.certificate_name);
    println!("  profile       '{DEMO_PROFILE}' saved in {}", store.path().display());
    println!();
    println!("Try, in another terminal:");
    println!("  kvproxy key-info {DEMO_PROFILE}");
    println!("  kvproxy token {DEMO_PROFILE}");
    println!("  kvproxy token {DEMO_PROFILE} --json");
    println!(
        "  curl --cacert {} --resolve api.localhost:{}:127.0.0.1 -H \"Authorization: Bearer $(kvproxy token {DEMO_PROFILE})\" {}me",
        ca_file.display(),
        emulator.port(),
        seed.api_url
    );
    println!();
    println!("ready. Press Ctrl-C to stop the demo tenant.");
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    eprintln!("demo tenant stopped");
    Ok(())
}
