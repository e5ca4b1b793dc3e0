//! The loopback API as a value: bind, learn the address, stop, start again.
//!
//! `kvproxy serve` and the desktop app both run the API through [`RunningServer`]; the app pauses it by
//! stopping it and resumes it by starting a new one over the same [`AppState`], so the token cache, the API
//! key and the activity log carry over a pause.

use crate::serve::{BindError, ServerConfig, bind, serve};
use crate::state::AppState;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A server that is listening. Dropping it without [`RunningServer::stop`] also stops it (the listeners close
/// once in-flight requests are done).
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Binds every address of `config` and serves `state` on them. With port 0 the OS picks a free port and
    /// the state's Origin allowlist gets the real one.
    pub async fn start(mut state: AppState, config: &ServerConfig) -> Result<Self, BindError> {
        let listeners = bind(config).await?;
        let addrs: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        if let Some(addr) = addrs.first() {
            state.port = addr.port();
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(serve(state, listeners, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Ok(Self {
            addrs,
            stop,
            task: Some(task),
        })
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn port(&self) -> u16 {
        self.addrs.first().map(SocketAddr::port).unwrap_or_default()
    }

    /// `http://localhost:PORT`, the address users type (and the Host the guard accepts).
    pub fn base_url(&self) -> String {
        format!("http://localhost:{}", self.port())
    }

    /// Closes the listeners, lets in-flight requests finish and returns how serving ended.
    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }

    /// Serves until `signal` resolves, then stops as [`RunningServer::stop`] does.
    pub async fn stop_on(self, signal: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        self.stop().await
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The broker a long-running server wants: key info cached in the OS keyring when there is one (so a restart
/// costs one sign and one token call, not a certificate read too), in memory otherwise. `KVPROXY_RETRIES`
/// (0-10, default 4) sets how often a failing Key Vault call is retried.
pub fn keyring_broker(keyring: Option<std::sync::Arc<keyring_core::CredentialStore>>) -> kvproxy_core::Broker {
    let mut options = kvproxy_core::BrokerOptions {
        key_info_store: kvproxy_core::KeyInfoStore::new(keyring),
        ..Default::default()
    };
    if let Some(retries) = retries_from_env(std::env::var("KVPROXY_RETRIES").ok().as_deref()) {
        options.key_vault_retry.max_retries = retries;
    }
    kvproxy_core::Broker::new(options)
}

/// A bad value is said and ignored: the server still starts, with the default.
fn retries_from_env(value: Option<&str>) -> Option<u32> {
    let value = value?.trim();
    match value.parse::<u32>() {
        Ok(retries) if retries <= 10 => Some(retries),
        _ => {
            tracing::warn!(
                "KVPROXY_RETRIES='{value}' is not a number from 0 to 10; Key Vault calls are retried 4 times"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproxy_core::{Broker, BrokerOptions, ProfileStore, SecretString};
    use std::net::{IpAddr, Ipv4Addr};

    fn state(dir: &std::path::Path) -> AppState {
        AppState::new(
            Broker::new(BrokerOptions::default()),
            ProfileStore::new(dir.join("profiles.toml")),
            SecretString::new("k".repeat(43)),
            0,
        )
    }

    fn config(port: u16) -> ServerConfig {
        ServerConfig {
            port,
            binds: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            allow_non_loopback: false,
        }
    }

    async fn health(addr: SocketAddr) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[test]
    fn retries_come_from_the_environment_within_bounds() {
        assert_eq!(retries_from_env(None), None);
        assert_eq!(retries_from_env(Some("0")), Some(0));
        assert_eq!(retries_from_env(Some(" 10 ")), Some(10));
        assert_eq!(retries_from_env(Some("11")), None);
        assert_eq!(retries_from_env(Some("many")), None);
    }

    #[tokio::test]
    async fn stops_and_starts_again_on_the_same_port() {
        let dir = tempfile::tempdir().unwrap();
        let server = RunningServer::start(state(dir.path()), &config(0)).await.unwrap();
        let addr = server.local_addrs()[0];
        assert_ne!(addr.port(), 0);
        assert_eq!(server.base_url(), format!("http://localhost:{}", addr.port()));
        assert!(health(addr).await.unwrap().starts_with("HTTP/1.1 200"));

        server.stop().await.unwrap();
        assert!(health(addr).await.is_err(), "the port still answers after stop");

        let again = RunningServer::start(state(dir.path()), &config(addr.port()))
            .await
            .unwrap();
        assert!(health(addr).await.unwrap().starts_with("HTTP/1.1 200"));
        // A second server on a port in use is a bind error that names the address.
        let Err(busy) = RunningServer::start(state(dir.path()), &config(addr.port())).await else {
            panic!("bound a port that is in use");
        };
        assert!(busy.to_string().contains(&addr.to_string()), "{busy}");
        drop(again);
    }
}
