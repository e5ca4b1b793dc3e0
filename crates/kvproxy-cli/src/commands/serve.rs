//! `kvproxy serve`: the loopback token API, headless.

use crate::args::ServeArgs;
use kvproxy_core::CredentialSource;
use kvproxy_server::{AppState, ServerConfig, serve};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let binds = if args.binds.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
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
    let listeners = kvproxy_server::serve::bind(&config).await.map_err(|e| match e {
        kvproxy_server::BindError::NotLoopback(_) => anyhow::Error::new(crate::exit::UsageError(e.to_string())),
        other => anyhow::Error::new(other),
    })?;
    let (api_key, key_source) = super::api_key::for_server()?;
    // With --port 0 the OS picks the port; the Origin allowlist needs the real one.
    let port = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .unwrap_or(args.port);
    let mut state = AppState::new(super::broker(), super::store()?, api_key, port);
    state.extra_hosts = exposed;
    state.credential = CredentialSource::Auto;
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            println!("listening on http://{addr}");
        }
    }
    println!("Swagger UI:  http://localhost:{port}/swagger/index.html");
    println!("API key:     {key_source}");
    println!("ready. Press Ctrl-C to stop.");
    serve(state, listeners, shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(())
}

async fn shutdown_signal() {
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
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
