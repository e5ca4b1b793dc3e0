//! The agent over a named pipe whose ACL admits only the user who created it.
//!
//! A pipe name is not a directory with a mode: whoever creates `\\.\pipe\kvproxy-agent-USER` first owns
//! it, and could be another user's program waiting for a `kvproxy api-key rotate`. So both ends check the
//! other before anything is said: the agent creates its pipe as the first instance (and says so when
//! someone else holds the name), and the client asks Windows which process serves the pipe, and talks only
//! to a KeyVault Proxy program (`kvproxy.exe`, `kvproxy-desktop.exe`) running as the same user, whose
//! greeting then carries that same process id. Run as Windows programs under Wine by `make test-windows`.

use super::protocol::Envelope;
use super::protocol::FrameError;
use super::{
    AgentError, DESKTOP_SOCKET_ENV, GreetingLost, HELLO_TIMEOUT, Outcome, ReadHalf, SOCKET_ENV, WindowHost, WriteHalf,
    converse_once, serve_stream, stop_requested,
};
use kvproxy_app::App;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeServer, ServerOptions};
use tokio::sync::watch;
use windows_sys::Win32::Foundation::{CloseHandle, ERROR_PIPE_BUSY, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    EqualSid, GetTokenInformation, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcessId, OpenProcess, OpenProcessToken, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
    QueryFullProcessImageNameW,
};

/// The programs that serve the agent: the CLI's `kvproxy serve` and the desktop app.
const AGENT_PROGRAMS: [&str; 2] = ["kvproxy", "kvproxy-desktop"];

/// Protected DACL with one entry: full access for the user running the agent, by SID (not OWNER RIGHTS:
/// an elevated process's objects are owned by Administrators, which would let every elevated process in).
/// No inherited entries, so neither other users nor Everyone can open the pipe.
fn owner_only_sddl() -> std::io::Result<String> {
    Ok(format!("D:P(A;;GA;;;{})", own_sid_string()?))
}

/// `KVPROXY_AGENT_SOCKET`, else `\\.\pipe\kvproxy-agent-USERNAME`.
pub fn default_socket_path() -> Result<PathBuf, AgentError> {
    pipe_path(SOCKET_ENV, "agent")
}

/// The desktop app's own pipe (its window, a second start): `KVPROXY_DESKTOP_SOCKET`, else
/// `\\.\pipe\kvproxy-desktop-USERNAME`.
pub fn desktop_socket_path() -> Result<PathBuf, AgentError> {
    pipe_path(DESKTOP_SOCKET_ENV, "desktop")
}

fn pipe_path(variable: &str, role: &str) -> Result<PathBuf, AgentError> {
    if let Some(path) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let user = std::env::var("USERNAME").map_err(|_| AgentError::NoRuntimeDir("USERNAME is not set".into()))?;
    Ok(PathBuf::from(format!(r"\\.\pipe\kvproxy-{role}-{user}")))
}

/// A security descriptor built from [`owner_only_sddl`], freed on drop.
struct OwnerOnly {
    attributes: SECURITY_ATTRIBUTES,
}

impl OwnerOnly {
    fn new() -> std::io::Result<Self> {
        let sddl: Vec<u16> = owner_only_sddl()?.encode_utf16().chain(Some(0)).collect();
        let mut descriptor = std::ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated UTF-16 that outlives the call; on success the OS allocates the
        // descriptor, which `Drop` frees with LocalFree.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            attributes: SECURITY_ATTRIBUTES {
                nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
                lpSecurityDescriptor: descriptor,
                bInheritHandle: 0,
            },
        })
    }

    fn create(&mut self, name: &Path, first: bool) -> std::io::Result<NamedPipeServer> {
        let mut options = ServerOptions::new();
        options.first_pipe_instance(first).reject_remote_clients(true);
        // SAFETY: the attributes and their descriptor live as long as `self`, which outlives the call.
        unsafe {
            options.create_with_security_attributes_raw(name, (&mut self.attributes as *mut SECURITY_ATTRIBUTES).cast())
        }
    }
}

impl Drop for OwnerOnly {
    fn drop(&mut self) {
        // SAFETY: the descriptor was allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe {
            LocalFree(self.attributes.lpSecurityDescriptor);
        }
    }
}

// The descriptor is only read by the OS while creating pipes, from the accept task that owns it.
unsafe impl Send for OwnerOnly {}

pub struct AgentServer {
    path: PathBuf,
    stop: watch::Sender<bool>,
}

impl AgentServer {
    pub async fn start(app: App, path: PathBuf) -> Result<Self, AgentError> {
        Self::start_with(app, path, None).await
    }

    /// The desktop app's pipe: the agent's answers, and its window's calls and events through `host`.
    pub async fn start_for_window(app: App, path: PathBuf, host: Arc<dyn WindowHost>) -> Result<Self, AgentError> {
        Self::start_with(app, path, Some(host)).await
    }

    async fn start_with(app: App, path: PathBuf, host: Option<Arc<dyn WindowHost>>) -> Result<Self, AgentError> {
        let io = |source| AgentError::Io {
            path: path.clone(),
            source,
        };
        // FILE_FLAG_FIRST_PIPE_INSTANCE (below) is the real guard on Windows; Wine ignores it. Knocking first
        // finds a live holder there too (at the cost of a race nobody wins by accident).
        match ClientOptions::new().open(&path) {
            Ok(_) => return Err(AgentError::NameTaken(path)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => return Err(AgentError::NameTaken(path)),
            Err(_) => {}
        }
        let mut acl = OwnerOnly::new().map_err(io)?;
        // The first instance claims the name: if someone else (a squatter) already holds it, we say so
        // rather than serve next to them.
        let mut server = acl.create(&path, true).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                AgentError::NameTaken(path.clone())
            } else {
                io(e)
            }
        })?;
        tracing::debug!(pipe = %path.display(), "agent: listening");
        let (stop, stopped) = watch::channel(false);
        let pipe = path.clone();
        tokio::spawn(async move {
            let stop_requested = stop_requested(stopped);
            tokio::pin!(stop_requested);
            loop {
                tokio::select! {
                    _ = &mut stop_requested => break,
                    connected = server.connect() => {
                        // Whether or not the client made it, this instance is spent: the next one takes its place
                        // (retrying a broken instance would fail again at once, forever).
                        let next = match acl.create(&pipe, false) {
                            Ok(next) => next,
                            Err(e) => {
                                tracing::warn!(error = %e, "agent: cannot create the next pipe instance; stopping");
                                break;
                            }
                        };
                        let client = std::mem::replace(&mut server, next);
                        if let Err(e) = connected {
                            tracing::warn!(error = %e, "agent: pipe connect failed");
                            continue;
                        }
                        let app = app.clone();
                        let host = host.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_connection(&app, host.as_ref(), client).await {
                                tracing::debug!(error = %e, "agent connection ended early");
                            }
                        });
                    }
                }
            }
        });
        Ok(Self { path, stop })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve_connection(
    app: &App,
    host: Option<&Arc<dyn WindowHost>>,
    pipe: NamedPipeServer,
) -> Result<(), FrameError> {
    // The ACL should make another user's client impossible; if one gets through, answer nothing.
    let mut client_pid = 0u32;
    // SAFETY: the handle is the live pipe instance owned by `pipe`; the pid is written to a local.
    let known = unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle() as HANDLE, &mut client_pid) } != 0;
    // Only a definite "another user" is refused: the pipe's ACL is the guard, this is a second look.
    if known && matches!(same_user(client_pid), Ok(false)) {
        tracing::warn!(client_pid, "agent: refused a connection from another user");
        return Ok(());
    }
    let (reader, writer) = tokio::io::split(pipe);
    serve_stream(app, host, known.then_some(client_pid), reader, writer).await
}

/// The process at the other end of a client's pipe, if it is one we may talk to: a KeyVault Proxy program
/// of this user. Checked before a byte is read or written, so a squatter learns nothing.
fn check_pipe_server(pipe: &tokio::net::windows::named_pipe::NamedPipeClient) -> Result<u32, String> {
    let mut pid = 0u32;
    // SAFETY: the handle is the live client end owned by `pipe`; the pid is written to a local.
    if unsafe { GetNamedPipeServerProcessId(pipe.as_raw_handle() as HANDLE, &mut pid) } == 0 {
        return Err(format!(
            "could not ask Windows who serves the agent pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: no arguments; reads this process's id.
    if pid == unsafe { GetCurrentProcessId() } {
        return Ok(pid);
    }
    match same_user(pid) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "the agent pipe is served by another user's process (pid {pid}); not using it"
            ));
        }
        Err(e) => return Err(format!("could not check who serves the agent pipe (pid {pid}): {e}")),
    }
    let image = process_image(pid)
        .map_err(|e| format!("could not check the program serving the agent pipe (pid {pid}): {e}"))?;
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !AGENT_PROGRAMS.contains(&stem.as_str()) {
        return Err(format!(
            "the agent pipe is held by {} (pid {pid}), not by KeyVault Proxy; not using it",
            image.display()
        ));
    }
    Ok(pid)
}

/// A handle closed on drop.
struct Owned(HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by this module and is closed once.
        unsafe { CloseHandle(self.0) };
    }
}

fn open_process(pid: u32) -> std::io::Result<Owned> {
    // SAFETY: plain call; a null handle is an error.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Owned(process))
}

/// A process's `TOKEN_USER`, in a buffer aligned for it; the SID it points to lives in the same buffer.
struct TokenUserBuffer(Vec<u64>);

impl TokenUserBuffer {
    fn of(process: HANDLE) -> std::io::Result<Self> {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: `process` is a live handle with query rights; the token handle is written to a local.
        if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let token = Owned(token);
        let mut needed = 0u32;
        // SAFETY: a size query with no buffer; it fails with ERROR_INSUFFICIENT_BUFFER and sets `needed`.
        unsafe { GetTokenInformation(token.0, TokenUser, std::ptr::null_mut(), 0, &mut needed) };
        if needed == 0 {
            return Err(std::io::Error::last_os_error());
        }
        // u64 elements keep the buffer aligned for TOKEN_USER's pointer.
        let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
        let size = (buffer.len() * 8) as u32;
        // SAFETY: the buffer holds `size` >= `needed` bytes.
        if unsafe { GetTokenInformation(token.0, TokenUser, buffer.as_mut_ptr().cast(), size, &mut needed) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(buffer))
    }

    /// The SID, valid while `self` lives.
    fn sid(&self) -> windows_sys::Win32::Security::PSID {
        // SAFETY: the buffer was filled by GetTokenInformation(TokenUser) and is aligned for TOKEN_USER.
        unsafe { (*(self.0.as_ptr() as *const TOKEN_USER)).User.Sid }
    }
}

/// Whether process `pid` runs as the same user as this process.
pub(crate) fn same_user(pid: u32) -> std::io::Result<bool> {
    let theirs = TokenUserBuffer::of(open_process(pid)?.0)?;
    // SAFETY: the pseudo handle of this process needs no closing.
    let ours = TokenUserBuffer::of(unsafe { windows_sys::Win32::System::Threading::GetCurrentProcess() })?;
    // SAFETY: both SIDs point into buffers that live until the end of this function.
    Ok(unsafe { EqualSid(theirs.sid(), ours.sid()) } != 0)
}

/// This process's user SID as text (`S-1-5-21-…`), for the pipe's DACL.
fn own_sid_string() -> std::io::Result<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    // SAFETY: the pseudo handle of this process needs no closing.
    let user = TokenUserBuffer::of(unsafe { windows_sys::Win32::System::Threading::GetCurrentProcess() })?;
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: the SID is valid while `user` lives; the OS allocates `text`, freed below with LocalFree.
    if unsafe { ConvertSidToStringSidW(user.sid(), &mut text) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `text` is a NUL-terminated UTF-16 string from the OS.
    let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
    // SAFETY: `len` u16s were just read from it.
    let sid = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
    // SAFETY: allocated by ConvertSidToStringSidW.
    unsafe { LocalFree(text.cast()) };
    Ok(sid)
}

/// The full path of process `pid`'s program.
pub(crate) fn process_image(pid: u32) -> std::io::Result<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    let process = open_process(pid)?;
    let mut buffer = vec![0u16; 32_768];
    let mut len = buffer.len() as u32;
    // SAFETY: `len` is the buffer's length in u16s; the call writes at most that many and updates `len`.
    if unsafe { QueryFullProcessImageNameW(process.0, PROCESS_NAME_WIN32, buffer.as_mut_ptr(), &mut len) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    buffer.truncate(len as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_wide(&buffer)))
}

pub async fn ask(path: &Path, envelope: &Envelope) -> Outcome {
    // Under Wine a pipe connection made right behind another one now and then ends before the agent's
    // greeting; nothing was sent on it, so the client asks again (a few times, within the greeting timeout).
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    loop {
        let pipe = match open_pipe(path, deadline).await {
            Ok(pipe) => pipe,
            Err(outcome) => return outcome,
        };
        let server_pid = match check_pipe_server(&pipe) {
            Ok(pid) => pid,
            Err(reason) => return Outcome::Failed(reason),
        };
        let (reader, writer) = tokio::io::split(pipe);
        match converse_once(reader, writer, envelope, Some(server_pid)).await {
            Ok(outcome) => return outcome,
            Err(GreetingLost) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("agent: the pipe closed before the greeting; asking again");
            }
            Err(GreetingLost) => {
                return Outcome::Failed(format!("the running app's greeting: {}", FrameError::Closed));
            }
        }
    }
}

/// Connects to the agent at `path` once Windows says a KeyVault Proxy program of this user serves it.
pub(crate) async fn open_stream(path: &Path) -> Result<(ReadHalf, WriteHalf, Option<u32>), Outcome> {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    let pipe = open_pipe(path, deadline).await?;
    let server_pid = check_pipe_server(&pipe).map_err(Outcome::Failed)?;
    let (reader, writer) = tokio::io::split(pipe);
    Ok((Box::new(reader), Box::new(writer), Some(server_pid)))
}

async fn open_pipe(
    path: &Path,
    deadline: tokio::time::Instant,
) -> Result<tokio::net::windows::named_pipe::NamedPipeClient, Outcome> {
    loop {
        match ClientOptions::new().open(path) {
            Ok(pipe) => return Ok(pipe),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Outcome::NoAgent),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(Outcome::Failed(format!("{}: {e}", path.display()))),
        }
    }
}
