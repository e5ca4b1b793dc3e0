//! What every handler shares: the app, and what the guard needs to know about where the server listens.

use kvproxy_app::App;
use std::net::IpAddr;

#[derive(Clone)]
pub struct HttpState {
    pub app: App,
    /// The port we listen on, for the Origin allowlist.
    pub port: u16,
    /// Extra addresses that may appear in `Host` (only with an explicitly forced non-loopback bind).
    pub extra_hosts: Vec<IpAddr>,
}

impl HttpState {
    pub fn new(app: App, port: u16) -> Self {
        Self {
            app,
            port,
            extra_hosts: Vec::new(),
        }
    }
}
