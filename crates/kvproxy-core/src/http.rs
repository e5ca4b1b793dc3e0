//! Outbound HTTPS. One client per trust setting, shared by the Azure SDK clients (as their transport)
//! and by our own token requests, so Key Vault, Entra and the credential share pools, proxy settings
//! (`HTTPS_PROXY`/`NO_PROXY`) and the OS certificate store (corporate TLS inspection is common).

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Timeouts for every outbound call.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// Builds a client trusting the OS store, or, when `only_ca_pem` is given, that CA alone (the emulator's:
/// a demo CA must never be able to vouch for a real Azure host).
pub fn build_client(timeouts: HttpTimeouts, only_ca_pem: Option<&[u8]>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kvproxy/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .https_only(true)
        .dns_resolver(Arc::new(LoopbackAwareResolver));
    if let Some(pem) = only_ca_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| Error::invalid("custom_cloud.ca_file", format!("not a PEM certificate: {e}")))?;
        builder = builder.tls_certs_only([cert]).no_proxy();
    }
    builder.build().map_err(|e| Error::Network {
        target: "HTTP client".into(),
        message: e.to_string(),
    })
}

/// Reads a custom cloud's CA file.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        context: "reading the cloud's CA certificate",
        path: path.to_path_buf(),
        source,
    })
}

/// `*.localhost` always means this machine (RFC 6761), but not every resolver says so; the emulator's
/// hosts (`login.localhost`, `NAME.vault.localhost`) depend on it. Everything else goes to the system
/// resolver.
#[derive(Debug)]
struct LoopbackAwareResolver;

impl reqwest::dns::Resolve for LoopbackAwareResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let addrs: reqwest::dns::Addrs =
                    Box::new(std::iter::once(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}
