//! Which program asked: the lookup of a TCP client's process, against real processes of this user and of
//! another one, over IPv4 and IPv6 loopback (Linux), and this process's own connection (Linux and Windows).

use kvproxy_app::Identity;
use kvproxy_server::peer::tcp_client;
use std::net::{SocketAddr, TcpListener};
#[cfg(target_os = "linux")]
use std::os::unix::process::CommandExt;
#[cfg(target_os = "linux")]
use std::process::{Child, Command};

/// `nobody` on Debian and most other systems.
#[cfg(target_os = "linux")]
const OTHER_UID: u32 = 65534;

/// Starts `sleep` as `uid` (ours when `None`) with a TCP connection to `listener` opened before it runs, so
/// the connection belongs to the `sleep` process; returns it with our end's peer and local addresses.
#[cfg(target_os = "linux")]
fn sleeper_connected_to(listener: &TcpListener, uid: Option<u32>) -> (Child, SocketAddr, SocketAddr) {
    let server = listener.local_addr().expect("the listener's address");
    let address: rustix::net::SocketAddrAny = server.into();
    let mut command = Command::new("sleep");
    command.arg("60");
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    // SAFETY: system calls only, on memory allocated before the fork. The socket is left open (no
    // close-on-exec) so that `sleep` holds it.
    unsafe {
        command.pre_exec(move || {
            use rustix::net::{AddressFamily, SocketType};
            let family = if server.is_ipv4() {
                AddressFamily::INET
            } else {
                AddressFamily::INET6
            };
            let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
            rustix::net::connect(&fd, &address)?;
            std::mem::forget(fd);
            Ok(())
        });
    }
    let child = command.spawn().expect("start sleep with a connection");
    let (stream, peer) = listener.accept().expect("the sleeper connects");
    let local = stream.local_addr().expect("our end's address");
    std::mem::forget(stream);
    (child, peer, local)
}

#[cfg(target_os = "linux")]
fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
#[cfg(target_os = "linux")]
fn a_local_program_is_named_with_its_pid_and_path() {
    for loopback in ["127.0.0.1:0", "[::1]:0"] {
        let Ok(listener) = TcpListener::bind(loopback) else {
            assert!(loopback.starts_with('['), "IPv4 loopback must be there");
            continue;
        };
        let (child, peer, local) = sleeper_connected_to(&listener, None);
        let identity = tcp_client(peer, local);
        let pid = child.id();
        stop(child);
        let Identity::Program(program) = identity else {
            panic!("{loopback}: the sleeper is not named: {identity:?}");
        };
        assert_eq!(program.pid, pid, "{loopback}");
        assert_eq!(program.name, "sleep", "{loopback}");
        let path = program.path.unwrap_or_default();
        assert!(path.ends_with("/sleep"), "{loopback}: {path}");
    }
}

/// Also on Windows (`GetExtendedTcpTable`), and under Wine: one reading of the table is quick enough there.
#[test]
#[cfg(any(target_os = "linux", windows))]
fn our_own_connection_is_ours() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server_end, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    let identity = tcp_client(peer, listener.local_addr().unwrap());
    // Wine's table leaves the owner of some connections unnamed (process 0); Windows and Linux name it.
    if kvproxy_server::peer::table_too_slow()
        && let Identity::Unknown(why) = &identity
    {
        assert!(why.contains("did not name"), "{why}");
        return;
    }
    let Identity::Program(program) = identity else {
        panic!("not named: {identity:?}");
    };
    assert_eq!(program.pid, std::process::id());
    let exe = std::env::current_exe().unwrap();
    assert_eq!(program.path.as_deref(), exe.to_str());
}

#[test]
#[cfg(any(target_os = "linux", windows))]
fn a_connection_that_is_gone_or_never_was_is_unknown_not_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let identity = tcp_client(nobody, listener.local_addr().unwrap());
    assert!(
        matches!(&identity, Identity::Unknown(why) if why.contains("closed")),
        "{identity:?}"
    );
}

/// As root (here and in CI) a program of another user is said to be one, with its uid, and not looked into.
#[test]
#[cfg(target_os = "linux")]
fn another_user_s_program_is_said_to_be_one() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("not root: cannot start a program as another user; the lookup of our own is tested above");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (child, peer, local) = sleeper_connected_to(&listener, Some(OTHER_UID));
    let identity = tcp_client(peer, local);
    stop(child);
    assert_eq!(
        identity,
        Identity::Unknown(format!("a program of another user (uid {OTHER_UID})"))
    );
}
