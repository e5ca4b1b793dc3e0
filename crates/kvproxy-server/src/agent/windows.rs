//! The agent over a named pipe whose ACL admits only the user who created it. Written against tokio's
//! named-pipe API and windows-sys; this project's CI builds Linux only, so this file is not compiled there.

use super::protocol::Envelope;
use super::protocol::FrameError;
use super::{AgentContext, AgentError, HELLO_TIMEOUT, Outcome, SOCKET_ENV, converse, serve_stream, stop_requested};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeServer, ServerOptions};
use tokio::sync::watch;
use windows_sys::Win32::Foundation::{ERROR_PIPE_BUSY, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;

/// Protected DACL with one entry: full access for the object's owner (the user running the agent). No
/// inherited entries, so neither other users nor Everyone can open the pipe.
const OWNER_ONLY_SDDL: &str = "D:P(A;;GA;;;OW)";

/// `KVPROXY_AGENT_SOCKET`, else `\\.\pipe\kvproxy-agent-USERNAME`.
pub fn default_socket_path() -> Result<PathBuf, AgentError> {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let user = std::env::var("USERNAME").map_err(|_| AgentError::NoRuntimeDir("USERNAME is not set".into()))?;
    Ok(PathBuf::from(format!(r"\\.\pipe\kvproxy-agent-{user}")))
}

/// A security descriptor built from [`OWNER_ONLY_SDDL`], freed on drop.
struct OwnerOnly {
    attributes: SECURITY_ATTRIBUTES,
}

impl OwnerOnly {
    fn new() -> std::io::Result<Self> {
        let sddl: Vec<u16> = OWNER_ONLY_SDDL.encode_utf16().chain(Some(0)).collect();
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
    pub async fn start(context: AgentContext, path: PathBuf) -> Result<Self, AgentError> {
        let io = |source| AgentError::Io {
            path: path.clone(),
            source,
        };
        let mut acl = OwnerOnly::new().map_err(io)?;
        // The first instance claims the name: if someone else (a squatter) already holds it, we say so
        // rather than serve next to them.
        let mut server = acl.create(&path, true).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                AgentError::AlreadyRunning(path.clone())
            } else {
                io(e)
            }
        })?;
        let (stop, stopped) = watch::channel(false);
        let pipe = path.clone();
        tokio::spawn(async move {
            let stop_requested = stop_requested(stopped);
            tokio::pin!(stop_requested);
            loop {
                tokio::select! {
                    _ = &mut stop_requested => break,
                    connected = server.connect() => {
                        if let Err(e) = connected {
                            tracing::warn!(error = %e, "agent: pipe connect failed");
                            continue;
                        }
                        let next = match acl.create(&pipe, false) {
                            Ok(next) => next,
                            Err(e) => {
                                tracing::warn!(error = %e, "agent: cannot create the next pipe instance; stopping");
                                break;
                            }
                        };
                        let client = std::mem::replace(&mut server, next);
                        let context = context.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_connection(&context, client).await {
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

async fn serve_connection(context: &AgentContext, pipe: NamedPipeServer) -> Result<(), FrameError> {
    let (reader, writer) = tokio::io::split(pipe);
    serve_stream(context, reader, writer).await
}

pub async fn ask(path: &Path, envelope: &Envelope) -> Outcome {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    let pipe = loop {
        match ClientOptions::new().open(path) {
            Ok(pipe) => break pipe,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::NoAgent,
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Outcome::Failed(format!("{}: {e}", path.display())),
        }
    };
    let (reader, writer) = tokio::io::split(pipe);
    converse(reader, writer, envelope).await
}
