//! Binding and serving. Loopback only unless explicitly forced, every route behind the guard.

use crate::guard::{guard, require_key};
use crate::openapi;
use crate::peer::Connection;
use crate::problem::ApiError;
use crate::routes::{dotnet, misc, msi, oauth2, profiles};
use crate::state::HttpState;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_swagger_ui::SwaggerUi;

pub use kvproxy_core::settings::DEFAULT_PORT;
/// Where the API listens unless told otherwise: both loopback addresses, so `localhost` works whichever
/// one a client resolves it to.
pub const LOOPBACK: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a request's headers, counted from the first byte it is waited for
/// (so also how long an idle keep-alive connection stays open). Any local tool sends its headers at once;
/// without a limit a client that dribbles them (slowloris) would hold its connection open forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body once its headers are in, for the same reason.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
pub fn router(state: HttpState) -> Router {
    // Every route that hands out a token or tells about them, except OAuth2 (whose key may be the form's
    // client_secret): the key is checked before the route reads anything of the request.
    let keyed = Router::new()
        .route("/api/Token/kv-key", post(dotnet::kv_key))
        .route("/api/Token/kv-key-info", post(dotnet::kv_key_info))
        .route("/api/Token/kv-certificate", post(dotnet::kv_certificate))
        .route("/api/profiles", get(profiles::list))
        .route("/api/profiles/{name}/token", get(profiles::token))
        .route("/msi/token", get(msi::default_token))
        .route("/msi/{profile}/token", get(msi::profile_token))
        .route("/api/activity", get(misc::activity))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_key));
    let api = Router::new()
        .merge(keyed)
        .route("/oauth2/v2.0/token", post(oauth2::token))
        .route("/health", get(misc::health))
        .route("/openapi.json", get(openapi::document))
        .merge(SwaggerUi::new("/swagger").config(utoipa_swagger_ui::Config::from("/openapi.json")))
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(read_body_in_time));
    api.layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Reads the request body within [`BODY_READ_TIMEOUT`], keeping at most one byte more than [`MAX_BODY`] so
/// that each route still answers an oversized body with its own 413.
async fn read_body_in_time(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let mut chunks = body.into_data_stream();
    let mut buffer = Vec::new();
    let read = async {
        while buffer.len() <= MAX_BODY
            && let Some(chunk) = chunks.next().await
        {
            buffer.extend_from_slice(&chunk?);
        }
        Ok::<_, axum::Error>(())
    };
    let outcome = tokio::time::timeout(BODY_READ_TIMEOUT, read).await;
    let refusal = match outcome {
        Ok(Ok(())) => return next.run(Request::from_parts(parts, Body::from(buffer))).await,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "Request timeout",
            format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"),
        ),
        Ok(Err(e)) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            format!("the request body could not be read: {e}"),
        ),
    };
    let mut response = refusal.into_response();
    // The rest of the body may still be on its way: this connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Serves on all listeners until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    state: HttpState,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let servers = listeners
        .into_iter()
        .map(|listener| serve_listener(listener, app.clone(), rx.clone()));
    for result in futures::future::join_all(servers).await {
        result?;
    }
    Ok(())
}

/// Accepts connections until `stop`, then waits for the open ones to finish their requests. Connections are
/// served by hyper directly rather than `axum::serve`, which has no timer and so no header read timeout.
async fn serve_listener(listener: TcpListener, app: Router, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    // Each connection task holds a receiver; `closed()` on the sender resolves once all are gone.
    let (open_tx, open_rx) = watch::channel(());
    let stop_accepting = stopped(stop.clone());
    tokio::pin!(stop_accepting);
    loop {
        let stream = tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Per-connection failures (a reset before accept) and running out of file descriptors
                    // must not end serving; pausing briefly keeps the latter from spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A token answer is small: sent at once rather than held back for the client's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = match (stream.peer_addr(), stream.local_addr()) {
            (Ok(peer), Ok(local)) => app.clone().layer(axum::Extension(Connection::new(peer, local))),
            _ => app.clone(),
        };
        let service = TowerToHyperService::new(service);
        let stop = stop.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            match result {
                Ok(()) => tracing::trace!("connection closed"),
                Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Resolves once a stop is asked for, or the sender is gone.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
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
