//! Linux: the kernel's socket table names the connection's inode and owner (one exact sock_diag lookup
//! over netlink, not a read of `/proc/net/tcp`, whose cost grows with the machine's memory), and the process
//! holding that inode is found among this user's processes in `/proc`.

use super::program_name;
use kvproxy_app::{Identity, Program};
use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddress};
use procfs::process::{FDTarget, Process};
use std::io;
use std::net::SocketAddr;

/// The kernel's record of one TCP socket: who owns it and its inode.
struct SocketEntry {
    uid: u32,
    inode: u64,
}

pub fn tcp_client(peer: SocketAddr, local: SocketAddr) -> Identity {
    let entry = match client_socket(peer, local) {
        Ok(Some(entry)) => entry,
        Ok(None) => return Identity::Unknown("the connection had closed before it could be looked up".into()),
        Err(e) => return Identity::Unknown(format!("the kernel did not say who holds the connection ({e})")),
    };
    let own = rustix::process::getuid().as_raw();
    if entry.uid != own {
        return Identity::Unknown(format!("a program of another user (uid {})", entry.uid));
    }
    match holder_of(entry.inode, own) {
        Some(pid) => program(pid),
        None => Identity::Unknown("none of this user's processes holds the connection".into()),
    }
}

pub fn parent_program(pid: u32) -> Identity {
    let parent = i32::try_from(pid)
        .ok()
        .and_then(|pid| Process::new(pid).ok())
        .and_then(|process| process.stat().ok())
        .map(|stat| stat.ppid);
    match parent.and_then(|ppid| u32::try_from(ppid).ok()) {
        Some(ppid) if ppid > 0 => program(ppid),
        _ => Identity::Unknown(format!("kvproxy CLI (pid {pid}), whose parent had gone")),
    }
}

/// The client's end of the connection, looked up by its exact address pair: from its side, `peer` is the
/// source and our `local` address the destination.
fn client_socket(peer: SocketAddr, local: SocketAddr) -> io::Result<Option<SocketEntry>> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NetlinkAddress::new(0, 0))?;
    let family = if peer.is_ipv4() { AF_INET } else { AF_INET6 };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: peer.port(),
                destination_port: local.port(),
                source_address: peer.ip(),
                destination_address: local.ip(),
                interface_id: 0,
                // No cookie: the address pair alone names the socket.
                cookie: [0xff; 8],
            },
        })
        .into(),
    );
    request.finalize();
    let mut buffer = vec![0; request.buffer_len()];
    request.serialize(&mut buffer);
    socket.send(&buffer, 0)?;
    let (answer, _) = socket.recv_from_full()?;
    let message = NetlinkMessage::<SockDiagMessage>::deserialize(&answer)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    match message.payload {
        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => Ok(Some(SocketEntry {
            uid: response.header.uid,
            inode: u64::from(response.header.inode),
        })),
        NetlinkPayload::Error(error) => {
            let error = error.to_io();
            if error.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(error)
            }
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer {other:?}"),
        )),
    }
}

/// The process of user `uid` that holds socket `inode`. Newest processes first: a caller is usually younger
/// than most of the session's processes, and a short-lived one (`curl`) is among the newest.
fn holder_of(inode: u64, uid: u32) -> Option<u32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable_by(|a, b| b.cmp(a));
    pids.into_iter().find_map(|pid| {
        let process = Process::new(pid).ok()?;
        if process.uid().ok()? != uid {
            return None;
        }
        let holds = process
            .fd()
            .ok()?
            .filter_map(Result::ok)
            .any(|fd| matches!(fd.target, FDTarget::Socket(held) if held == inode));
        if holds { u32::try_from(pid).ok() } else { None }
    })
}

/// The program running as `pid`: its executable's path when we may read it, else the name the kernel keeps.
fn program(pid: u32) -> Identity {
    let Some(process) = i32::try_from(pid).ok().and_then(|pid| Process::new(pid).ok()) else {
        return Identity::Unknown(format!("process {pid} had ended"));
    };
    let path = process.exe().ok().map(|path| {
        let path = path.to_string_lossy().into_owned();
        // A program replaced on disk while it runs (an upgrade) is still the same program.
        path.strip_suffix(" (deleted)").map(str::to_string).unwrap_or(path)
    });
    let name = match &path {
        Some(path) => program_name(path),
        None => match process.stat() {
            Ok(stat) => stat.comm,
            Err(_) => return Identity::Unknown(format!("process {pid} had ended")),
        },
    };
    Identity::Program(Program { pid, name, path })
}
