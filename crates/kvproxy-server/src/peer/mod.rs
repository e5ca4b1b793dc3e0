//! Which local program is at the other end of a connection: for the activity log, and for asking the user
//! before a `confirm` profile's token goes to a program not yet allowed. Never a reason to refuse on its own:
//! a program that cannot be told is recorded as such.

use kvproxy_app::Identity;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as system;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use self::windows as system;

/// One accepted TCP connection, as every request on it sees it. Its program is looked up once, when a
/// request first needs it: a client that keeps its connection open (Postman, the SDKs) costs one lookup.
#[derive(Debug, Clone)]
pub struct Connection {
    peer: SocketAddr,
    local: SocketAddr,
    identity: Arc<OnceLock<Identity>>,
}

impl Connection {
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        Self {
            peer,
            local,
            identity: Arc::new(OnceLock::new()),
        }
    }

    /// The program at the other end (reading the system's tables off the async threads).
    pub async fn identity(&self) -> Identity {
        if let Some(identity) = self.identity.get() {
            return identity.clone();
        }
        if table_too_slow() {
            return Identity::Unknown(
                "not looked up under Wine (its connection table is too slow to read per request)".into(),
            );
        }
        let connection = self.clone();
        let looked_up = tokio::task::spawn_blocking(move || {
            connection
                .identity
                .get_or_init(|| tcp_client(connection.peer, connection.local))
                .clone()
        })
        .await;
        looked_up.unwrap_or_else(|e| Identity::Unknown(format!("the lookup failed ({e})")))
    }
}

/// True where reading the connection table per request would cost too much (Wine), so the API records its
/// callers as unknown there.
pub fn table_too_slow() -> bool {
    #[cfg(windows)]
    {
        system::table_too_slow()
    }
    #[cfg(not(windows))]
    {
        false
    }
}

/// The program that opened the TCP connection from `peer` to our `local` address.
pub fn tcp_client(peer: SocketAddr, local: SocketAddr) -> Identity {
    #[cfg(any(target_os = "linux", windows))]
    {
        system::tcp_client(unmapped(peer), unmapped(local))
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (peer, local);
        Identity::Unknown("telling callers apart is not supported on this system yet".into())
    }
}

/// The program that ran the `kvproxy` CLI whose process is `cli_pid` (the CLI only relays its request).
pub fn cli_parent(cli_pid: Option<u32>) -> Identity {
    let Some(pid) = cli_pid else {
        return Identity::Unknown("the system did not say which process connected".into());
    };
    #[cfg(any(target_os = "linux", windows))]
    {
        system::parent_program(pid)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Identity::Unknown(format!(
            "kvproxy CLI (pid {pid}); telling its parent is not supported on this system yet"
        ))
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:127.0.0.1`) as the IPv4 address the tables list.
fn unmapped(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => address,
        },
        SocketAddr::V4(_) => address,
    }
}

/// The file name of an executable's path, without Windows' `.exe`.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
fn program_name(path: &str) -> String {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let name = name
        .strip_suffix(".exe")
        .or_else(|| name.strip_suffix(".EXE"))
        .unwrap_or(name);
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_path_without_the_windows_suffix() {
        assert_eq!(program_name("/usr/bin/curl"), "curl");
        assert_eq!(program_name(r"C:\Program Files\Postman\Postman.exe"), "Postman");
        assert_eq!(program_name("python3"), "python3");
    }

    #[test]
    fn mapped_ipv4_is_looked_up_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5616".parse().unwrap();
        assert_eq!(unmapped(mapped), "127.0.0.1:5616".parse::<SocketAddr>().unwrap());
        let v6: SocketAddr = "[::1]:5616".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
    }
}
