//! Windows: the TCP table with owning process ids (`GetExtendedTcpTable`) names the process of the client's
//! end, and the process snapshot names the parent of a CLI process.

use super::program_name;
use crate::agent::windows::{process_image, same_user};
use kvproxy_app::{Identity, Program};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, INVALID_HANDLE_VALUE, NO_ERROR};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetExtendedTcpTable, MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID, TCP_TABLE_OWNER_PID_CONNECTIONS,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};

const ERROR_INSUFFICIENT_BUFFER: u32 = 122;

/// True under Wine, whose connection table names each socket's process by scanning every process's files
/// on each reading: seconds per request with a few hundred connections open, where Windows answers in
/// well under a millisecond. The API then does not look callers up per request (the CLI's pipe still
/// names its client).
pub fn table_too_slow() -> bool {
    static WINE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WINE.get_or_init(|| {
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
        let ntdll: Vec<u16> = "ntdll.dll".encode_utf16().chain(Some(0)).collect();
        // SAFETY: a NUL-terminated name; ntdll is loaded in every process, and the handle needs no release.
        let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
        // SAFETY: a NUL-terminated export name on a module handle just obtained (or null, which fails).
        !module.is_null() && unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
    })
}

pub fn tcp_client(peer: SocketAddr, local: SocketAddr) -> Identity {
    let owner = match owner_of(peer, local) {
        // Process 0 is the system's idle process, never a client: the table did not name the owner.
        Ok(Some(0)) => return Identity::Unknown("Windows did not name the connection's process".into()),
        Ok(Some(pid)) => pid,
        Ok(None) => return Identity::Unknown("the connection had closed before it could be looked up".into()),
        Err(e) => return Identity::Unknown(format!("Windows did not say who holds the connection ({e})")),
    };
    match same_user(owner) {
        Ok(true) => program(owner),
        Ok(false) => Identity::Unknown(format!("a program of another user (pid {owner})")),
        Err(e) => Identity::Unknown(format!("process {owner}, whose user Windows did not tell ({e})")),
    }
}

pub fn parent_program(pid: u32) -> Identity {
    match parent_of(pid) {
        Some(parent) if parent != 0 => program(parent),
        _ => Identity::Unknown(format!("kvproxy CLI (pid {pid}), whose parent had gone")),
    }
}

fn program(pid: u32) -> Identity {
    match process_image(pid) {
        Ok(path) => {
            let path = path.to_string_lossy().into_owned();
            Identity::Program(Program {
                pid,
                name: program_name(&path),
                path: Some(path),
            })
        }
        Err(e) => Identity::Unknown(format!("process {pid}, whose program Windows did not tell ({e})")),
    }
}

/// One reading of a family's connection table: (local address, remote address, owning process).
struct Snapshot {
    taken: Instant,
    rows: Vec<(SocketAddr, SocketAddr, u32)>,
}

/// How long a reading answers for connections it lists. Connections that open at once (a client's burst)
/// are then looked up in one reading rather than one each: reading the table costs far more than a lookup
/// in it (under Wine, seconds when hundreds of connections are open). A listed connection's owner cannot
/// change within this time, and one the reading does not list makes a new reading.
const FRESH: Duration = Duration::from_secs(1);

/// The last reading per family (IPv4, IPv6). Its lock also makes concurrent lookups share one reading.
static SNAPSHOTS: [Mutex<Option<Snapshot>>; 2] = [Mutex::new(None), Mutex::new(None)];

/// The owning process of the client's end: the row whose local address is `peer` and remote is `local`.
fn owner_of(peer: SocketAddr, local: SocketAddr) -> std::io::Result<Option<u32>> {
    let find = |snapshot: &Snapshot| {
        snapshot
            .rows
            .iter()
            .find(|(row_local, row_remote, _)| *row_local == peer && *row_remote == local)
            .map(|(_, _, pid)| *pid)
    };
    let slot = &SNAPSHOTS[usize::from(peer.is_ipv6())];
    let mut last = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(snapshot) = last.as_ref().filter(|s| s.taken.elapsed() < FRESH)
        && let Some(pid) = find(snapshot)
    {
        return Ok(Some(pid));
    }
    let snapshot = Snapshot {
        taken: Instant::now(),
        rows: read_table(peer.is_ipv4())?,
    };
    let owner = find(&snapshot);
    *last = Some(snapshot);
    Ok(owner)
}

/// The whole table of one family, as (local, remote, owner) rows.
fn read_table(ipv4_family: bool) -> std::io::Result<Vec<(SocketAddr, SocketAddr, u32)>> {
    if ipv4_family {
        let table = tcp_table(AF_INET)?;
        Ok(rows::<MIB_TCPROW_OWNER_PID>(&table)
            .map(|row| {
                (
                    endpoint(ipv4(row.dwLocalAddr), row.dwLocalPort),
                    endpoint(ipv4(row.dwRemoteAddr), row.dwRemotePort),
                    row.dwOwningPid,
                )
            })
            .collect())
    } else {
        let table = tcp_table(AF_INET6)?;
        Ok(rows::<MIB_TCP6ROW_OWNER_PID>(&table)
            .map(|row| {
                (
                    endpoint(Ipv6Addr::from(row.ucLocalAddr).into(), row.dwLocalPort),
                    endpoint(Ipv6Addr::from(row.ucRemoteAddr).into(), row.dwRemotePort),
                    row.dwOwningPid,
                )
            })
            .collect())
    }
}

/// The table's address words hold the bytes in network order.
fn ipv4(word: u32) -> IpAddr {
    Ipv4Addr::from(word.to_ne_bytes()).into()
}

/// The table's port words hold the port in network order in their low 16 bits.
fn endpoint(ip: IpAddr, port_word: u32) -> SocketAddr {
    let low = (port_word & 0xffff) as u16;
    SocketAddr::new(ip, u16::from_be(low))
}

/// The whole table of `family`'s TCP connections with their owners, as the system wrote it (u32 words,
/// aligned for its rows).
fn tcp_table(family: u16) -> std::io::Result<Vec<u32>> {
    let mut size = 0u32;
    let mut table: Vec<u32> = Vec::new();
    // A connection may open between asking the size and reading the table: ask again then.
    for _ in 0..4 {
        // SAFETY: `table` has `size` bytes of room (none the first time, with a null pointer); the call
        // writes at most that many and says how many it needs.
        let status = unsafe {
            GetExtendedTcpTable(
                if table.is_empty() {
                    std::ptr::null_mut()
                } else {
                    table.as_mut_ptr().cast()
                },
                &mut size,
                0,
                u32::from(family),
                TCP_TABLE_OWNER_PID_CONNECTIONS,
                0,
            )
        };
        match status {
            NO_ERROR => return Ok(table),
            ERROR_INSUFFICIENT_BUFFER => table = vec![0u32; (size as usize).div_ceil(4) + 1],
            other => return Err(std::io::Error::from_raw_os_error(other as i32)),
        }
    }
    Err(std::io::Error::other("the connection table kept growing"))
}

/// The rows of a table that starts with its row count; a table the system wrote short yields what fits.
fn rows<Row: Copy + 'static>(table: &[u32]) -> impl Iterator<Item = Row> + '_ {
    let count = table.first().copied().unwrap_or(0) as usize;
    let bytes = std::mem::size_of_val(table).saturating_sub(4);
    let fits = bytes / std::mem::size_of::<Row>();
    // Rows start right after the count: every row type here is made of u32 and byte arrays, so 4-byte
    // alignment is theirs.
    let first = table
        .get(1..)
        .map_or(std::ptr::null(), |rest| rest.as_ptr().cast::<Row>());
    (0..count.min(fits)).map(move |i| {
        // SAFETY: `i` < the rows that fit in the buffer, which the system filled; `Row` is plain data.
        unsafe { first.add(i).read_unaligned() }
    })
}

/// The parent process id of `pid`, from a snapshot of the running processes.
fn parent_of(pid: u32) -> Option<u32> {
    // SAFETY: plain call; an invalid handle is an error.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snapshot == INVALID_HANDLE_VALUE || snapshot.is_null() {
        return None;
    }
    let mut entry = PROCESSENTRY32W {
        dwSize: std::mem::size_of::<PROCESSENTRY32W>() as u32,
        ..Default::default()
    };
    let mut parent = None;
    // SAFETY: `snapshot` is live until closed below; `entry` has its size set, as the calls require.
    let mut more = unsafe { Process32FirstW(snapshot, &mut entry) } != 0;
    while more {
        if entry.th32ProcessID == pid {
            parent = Some(entry.th32ParentProcessID);
            break;
        }
        // SAFETY: as above.
        more = unsafe { Process32NextW(snapshot, &mut entry) } != 0;
    }
    // SAFETY: the snapshot handle is ours and closed once.
    unsafe { CloseHandle(snapshot) };
    parent
}
