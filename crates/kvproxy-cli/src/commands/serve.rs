//! `kvproxy serve`: the loopback token API, headless.

use crate::args::ServeArgs;
use kvproxy_app::{App, AppOptions, ConfirmPolicy, DemoPolicy};
use kvproxy_core::CredentialSource;
use kvproxy_server::agent::{self, AgentServer};
use kvproxy_server::{BindError, RunningServer, ServerConfig};
use std::net::IpAddr;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let binds = if args.binds.is_empty() {
        kvproxy_server::serve::LOOPBACK.to_vec()
    } else {
        args.binds.clone()
    };
    let config = ServerConfig {
        port: args.port,
        binds: binds.clone(),
        allow_non_loopback: args.unsafe_bind,
    };
    let exposed: Vec<IpAddr> = binds.iter().copied().filter(|ip| !ip.is_loopback()).collect();
    if !exposed.is_empty() && args.unsafe_bind {
        eprintln!(
            "WARNING: --unsafe-bind: listening on a non-loopback address. Anyone who can reach it and learns the API key"
        );
        eprintln!(
            "         gets tokens of your apps; Host checks are relaxed for these addresses. Prefer SSH port forwarding."
        );
    }
    let (api_key, key_source) = super::api_key::for_server()?;
    let keyring = super::keyring();
    let app = App::new(AppOptions {
        profiles: super::store()?,
        broker: kvproxy_app::keyring_broker(keyring.clone()),
        api_key,
        api_key_source: key_source,
        keyring,
        credential: CredentialSource::Auto,
        // The demo tenant is `kvproxy demo`'s (or the app's) to run: a server has no business starting one.
        demo: DemoPolicy::Leave,
        confirm: if args.no_confirm {
            ConfirmPolicy::Skip
        } else {
            ConfirmPolicy::Refuse
        },
        confirm_timeout: kvproxy_app::approval::CONFIRM_TIMEOUT,
    });
    let server = RunningServer::start(app.clone(), &config).await.map_err(|e| match e {
        BindError::NotLoopback(_) => anyhow::Error::new(crate::exit::UsageError(e.to_string())),
        other => anyhow::Error::new(other),
    })?;
    for addr in server.local_addrs() {
        println!("listening on http://{addr}");
    }
    println!("Swagger UI:  {}/swagger/index.html", server.base_url());
    println!(
        "API key:     {}",
        key_source.describe(&kvproxy_app::invocation::this_cli())
    );
    // The CLI's agent: `kvproxy token` on this machine asks this server first. Serving goes on without it.
    let _agent = match agent::default_socket_path() {
        Ok(path) => match AgentServer::start(app, path).await {
            Ok(agent) => {
                println!(
                    "CLI agent:   {} (kvproxy token uses this server's cache)",
                    agent.path().display()
                );
                Some(agent)
            }
            Err(e) => {
                eprintln!("note: {e}; kvproxy token will mint in its own process");
                None
            }
        },
        Err(e) => {
            eprintln!("note: {e}; kvproxy token will mint in its own process");
            None
        }
    };
    println!("ready. Press Ctrl-C to stop.");
    server.stop_on(shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(())
}

/// Ctrl-C, or what the OS sends a console program it wants gone (SIGTERM; Ctrl-Break, console closed).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    // Windows: Ctrl-Break (what a parent can send to a process group it started) and the console window
    // being closed end the server as cleanly as Ctrl-C.
    #[cfg(windows)]
    let term = async {
        use tokio::signal::windows::{ctrl_break, ctrl_close};
        let (Ok(mut brk), Ok(mut close)) = (ctrl_break(), ctrl_close()) else {
            return std::future::pending::<()>().await;
        };
        tokio::select! { _ = brk.recv() => {}, _ = close.recv() => {} }
    };
    #[cfg(not(any(unix, windows)))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
