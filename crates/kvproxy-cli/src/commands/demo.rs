//! `kvproxy demo`: a local Entra ID + Key Vault with real keys and real verification, and a `demo` profile
//! pointing at it, so a new user can try everything before touching Azure.

use crate::args::DemoArgs;
use crate::exit::UsageError;
use kvproxy_app::demo::{DEMO_PROFILE, DemoError, DemoTenant};

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let store = super::store()?;
    let tenant = DemoTenant::start(args.port, &store, false).await.map_err(|e| match e {
        DemoError::Core(core) => anyhow::Error::new(core),
        other => UsageError(format!("{other} (pick another port with --port)")).into(),
    })?;
    let (emulator, seed) = match &tenant {
        DemoTenant::Owned { emulator, seed } => (emulator, seed),
        DemoTenant::Shared { port } => {
            return Err(UsageError(format!(
                "the demo tenant already runs on port {port} (KeyVault Proxy or another `kvproxy demo`); its '{DEMO_PROFILE}' profile works as it is"
            ))
            .into());
        }
    };
    let ca_file = store.path().with_file_name("demo-ca.pem");

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
    // Runnable as printed: with this binary's path when the PATH does not find it (`make run` builds).
    let kvproxy = kvproxy_app::invocation::this_cli();
    println!("Try, in another terminal:");
    println!("  {kvproxy} key-info {DEMO_PROFILE}");
    println!("  {kvproxy} token {DEMO_PROFILE}");
    println!("  {kvproxy} token {DEMO_PROFILE} --json");
    println!(
        "  curl --cacert {} --resolve api.localhost:{}:127.0.0.1 -H \"Authorization: Bearer $({kvproxy} token {DEMO_PROFILE})\" {}me",
        ca_file.display(),
        emulator.port(),
        seed.api_url
    );
    println!();
    println!("ready. Press Ctrl-C to stop the demo tenant.");
    super::serve::shutdown_signal().await;
    tenant.shutdown().await;
    eprintln!("demo tenant stopped");
    Ok(())
}
