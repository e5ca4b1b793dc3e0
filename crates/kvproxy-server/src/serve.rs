//! Binding and serving. Loopback only unless explicitly forced, every route behind the guard.

use crate::guard::guard;
use crate::openapi::ApiDoc;
use crate::routes::{dotnet, misc, msi, oauth2, profiles};
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use kvproxy_core::settings::DEFAULT_PORT;
/// Where the API listens unless told otherwise: both loopback addresses, so `localhost` works whichever
/// one a client resolves it to.
pub const LOOPBACK: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
pub const MAX_BODY: usize = 64 * 1024;

/// Every route the server answers, as `(method, path)`: the OpenAPI document is tested against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/Token/kv-key"),
    ("post", "/api/Token/kv-key-info"),
    ("post", "/api/Token/kv-certificate"),
    ("get", "/api/profiles"),
    ("get", "/api/profiles/{name}/token"),
    ("post", "/oauth2/v2.0/token"),
    ("get", "/msi/token"),
    ("get", "/msi/{profile}/token"),
    ("get", "/api/activity"),
    ("get", "/health"),
];

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub port: u16,
    /// Addresses to listen on; default `127.0.0.1` and `::1`.
    pub binds: Vec<IpAddr>,
    /// Allow a non-loopback address (`--unsafe-bind`).
    pub allow_non_loopback: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            binds: LOOPBACK.to_vec(),
            allow_non_loopback: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    #[error(
        "{0} is not a loopback address: anyone on the network could ask for your tokens. Use 127.0.0.1 or ::1, or --unsafe-bind if you really mean it"
    )]
    NotLoopback(IpAddr),
    #[error("could not listen on {addr}: {source} (is another KeyVault Proxy running? pick another with --port)")]
    Io { addr: SocketAddr, source: std::io::Error },
}

/// Checks the addresses against the loopback rule.
pub fn bind_addresses(config: &ServerConfig) -> Result<Vec<SocketAddr>, BindError> {
    config
        .binds
        .iter()
        .map(|ip| {
            if ip.is_loopback() || config.allow_non_loopback {
                Ok(SocketAddr::new(*ip, config.port))
            } else {
                Err(BindError::NotLoopback(*ip))
            }
        })
        .collect()
}

/// The whole API, guard included.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/Token/kv-key", post(dotnet::kv_key))
        .route("/api/Token/kv-key-info", post(dotnet::kv_key_info))
        .route("/api/Token/kv-certificate", post(dotnet::kv_certificate))
        .route("/api/profiles", get(profiles::list))
        .route("/api/profiles/{name}/token", get(profiles::token))
        .route("/oauth2/v2.0/token", post(oauth2::token))
        .route("/msi/token", get(msi::default_token))
        .route("/msi/{profile}/token", get(msi::profile_token))
        .route("/api/activity", get(misc::activity))
        .route("/health", get(misc::health))
        .merge(SwaggerUi::new("/swagger").url("/openapi.json", ApiDoc::openapi()))
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY));
    api.layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves on all listeners until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    state: AppState,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let servers = listeners.into_iter().map(|listener| {
        let mut rx = rx.clone();
        let app = app.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        }
    });
    for result in futures::future::join_all(servers).await {
        result?;
    }
    Ok(())
}

/// Binds every address; an IPv6 loopback that the machine lacks is skipped with a warning.
pub async fn bind(config: &ServerConfig) -> Result<Vec<TcpListener>, BindError> {
    let mut listeners: Vec<TcpListener> = Vec::new();
    for mut addr in bind_addresses(config)? {
        // With port 0 the first bind picks the port; the other addresses must share it, or `localhost`
        // would mean different servers on IPv4 and IPv6.
        if addr.port() == 0
            && let Some(port) = listeners.first().and_then(|l| l.local_addr().ok()).map(|a| a.port())
        {
            addr.set_port(port);
        }
        match TcpListener::bind(addr).await {
            Ok(listener) => listeners.push(listener),
            Err(e) if addr.is_ipv6() && config.binds.len() > 1 && e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::warn!(%addr, "IPv6 loopback unavailable; serving on IPv4 only");
            }
            Err(source) => return Err(BindError::Io { addr, source }),
        }
    }
    Ok(listeners)
}
