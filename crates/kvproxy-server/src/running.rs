//! The loopback API as a value: bind, learn the address, stop, start again.
//!
//! `kvproxy serve` runs one [`RunningServer`]; the desktop app runs the API through an [`ApiListener`], which
//! the user pauses (the server stops) and resumes (a new one starts over the same [`App`], so the token
//! cache, the API key and the activity log carry over a pause).

use crate::serve::{BindError, ServerConfig, bind, serve};
use crate::state::HttpState;
use kvproxy_app::App;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Binds every address of `config` and serves `app` on them. With port 0 the OS picks a free port and
    /// the Origin allowlist gets the real one. The addresses of a forced non-loopback bind may appear in
    /// `Host`.
    pub async fn start(app: App, config: &ServerConfig) -> Result<Self, BindError> {
        let listeners = bind(config).await?;
        let addrs: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let mut state = HttpState::new(app, addrs.first().map_or(config.port, SocketAddr::port));
        state.extra_hosts = config.binds.iter().copied().filter(|ip| !ip.is_loopback()).collect();
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

/// Whether the API listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiState {
    /// Not tried yet (the app has just started): the user's next move is still "pause".
    Starting,
    Running {
        port: u16,
    },
    /// Paused by the user, or not started because the port was taken.
    Stopped,
}

/// The API as the desktop app runs it: started at launch, paused and resumed by the user, moved to another
/// port from the settings. A resumed API comes back on the port of its first start, where clients expect
/// it, also when the setting was 0 (any free port).
pub struct ApiListener {
    app: App,
    config: RwLock<ServerConfig>,
    server: tokio::sync::Mutex<Option<RunningServer>>,
    port: RwLock<Option<u16>>,
    first_port: RwLock<Option<u16>>,
    tried: AtomicBool,
}

impl ApiListener {
    pub fn new(app: App, config: ServerConfig) -> Self {
        Self {
            app,
            config: RwLock::new(config),
            server: tokio::sync::Mutex::new(None),
            port: RwLock::new(None),
            first_port: RwLock::new(None),
            tried: AtomicBool::new(false),
        }
    }

    /// Starts listening unless it already does; returns the addresses it listens on.
    pub async fn start(&self) -> Result<Vec<SocketAddr>, BindError> {
        let mut slot = self.server.lock().await;
        if let Some(server) = &*slot {
            return Ok(server.local_addrs().to_vec());
        }
        let started = RunningServer::start(self.app.clone(), &self.next_config()).await;
        self.tried.store(true, Ordering::SeqCst);
        let server = started?;
        self.first_port.write().get_or_insert(server.port());
        *self.port.write() = Some(server.port());
        let addrs = server.local_addrs().to_vec();
        *slot = Some(server);
        Ok(addrs)
    }

    /// Stops, and starts again on `port` from now on; when that port cannot be used the API stays stopped.
    pub async fn restart_on(&self, port: u16) -> Result<Vec<SocketAddr>, BindError> {
        self.stop().await;
        self.config.write().port = port;
        *self.first_port.write() = None;
        self.start().await
    }

    /// Closes the listeners once in-flight requests are done.
    pub async fn stop(&self) {
        let server = self.server.lock().await.take();
        *self.port.write() = None;
        if let Some(server) = server
            && let Err(error) = server.stop().await
        {
            tracing::warn!("the API ended with an error: {error}");
        }
    }

    /// The port it listens on now; `None` while stopped.
    pub fn port(&self) -> Option<u16> {
        *self.port.read()
    }

    /// The port the next start listens on.
    pub fn next_port(&self) -> u16 {
        self.next_config().port
    }

    pub fn state(&self) -> ApiState {
        match self.port() {
            Some(port) => ApiState::Running { port },
            None if !self.tried.load(Ordering::SeqCst) => ApiState::Starting,
            None => ApiState::Stopped,
        }
    }

    fn next_config(&self) -> ServerConfig {
        let mut config = self.config.read().clone();
        if let Some(port) = *self.first_port.read() {
            config.port = port;
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproxy_app::AppOptions;
    use kvproxy_core::{ProfileStore, SecretString};
    use std::net::{IpAddr, Ipv4Addr};

    fn state(dir: &std::path::Path) -> App {
        App::new(AppOptions::in_memory(
            ProfileStore::new(dir.join("profiles.toml")),
            SecretString::new("k".repeat(43)),
        ))
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

    #[tokio::test]
    async fn a_paused_listener_resumes_on_the_port_of_its_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let listener = ApiListener::new(state(dir.path()), config(0));
        assert_eq!(listener.state(), ApiState::Starting);
        let first = listener.start().await.unwrap()[0];
        assert_eq!(listener.state(), ApiState::Running { port: first.port() });
        listener.stop().await;
        assert_eq!(listener.state(), ApiState::Stopped);
        assert!(health(first).await.is_err(), "a paused API still answers");
        let again = listener.start().await.unwrap()[0];
        assert_eq!(again.port(), first.port(), "resumed on another port");
        assert!(health(again).await.unwrap().starts_with("HTTP/1.1 200"));
        listener.stop().await;
    }
}
