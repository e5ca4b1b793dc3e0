//! The agent over a Unix socket in a directory only the user can enter.

use super::protocol::Envelope;
use super::protocol::FrameError;
use super::{
    AgentError, DESKTOP_SOCKET_ENV, HELLO_TIMEOUT, Outcome, ReadHalf, SOCKET_ENV, WindowHost, WriteHalf, converse,
    serve_stream, stop_requested,
};
use kvproxy_app::App;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::time::timeout;

fn own_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// `KVPROXY_AGENT_SOCKET`, else `$XDG_RUNTIME_DIR/kvproxy/agent.sock`, else `kvproxy-UID/agent.sock` in the
/// temporary directory (macOS has no `XDG_RUNTIME_DIR`, and its `$TMPDIR` is per user already).
pub fn default_socket_path() -> Result<PathBuf, AgentError> {
    socket_path(SOCKET_ENV, "agent.sock")
}

/// The desktop app's own socket (its window, a second start): `KVPROXY_DESKTOP_SOCKET`, else `desktop.sock`
/// beside the agent's.
pub fn desktop_socket_path() -> Result<PathBuf, AgentError> {
    socket_path(DESKTOP_SOCKET_ENV, "desktop.sock")
}

fn socket_path(variable: &str, file: &str) -> Result<PathBuf, AgentError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = non_empty(variable) {
        return Ok(PathBuf::from(path));
    }
    let dir = match non_empty("XDG_RUNTIME_DIR") {
        Some(runtime) => PathBuf::from(runtime).join("kvproxy"),
        None => std::env::temp_dir().join(format!("kvproxy-{}", own_uid())),
    };
    Ok(dir.join(file))
}

fn parent_of(path: &Path) -> Result<&Path, AgentError> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| AgentError::NoRuntimeDir(format!("'{}' has no directory", path.display())))
}

/// The directory must be ours and closed to everyone else: that, not the socket's own mode (which some
/// systems ignore), is what keeps other users out.
fn check_private_dir(dir: &Path) -> Result<(), AgentError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| AgentError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() || meta.uid() != own_uid() {
        return Err(AgentError::ForeignDirectory { dir: dir.to_path_buf() });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AgentError::OpenDirectory {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), AgentError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(AgentError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    check_private_dir(dir)
}

/// The agent, listening. Dropping it stops it and removes its socket (unless another agent has since
/// replaced the file).
pub struct AgentServer {
    path: PathBuf,
    /// Device and inode of the socket we bound, so we never remove someone else's.
    identity: (u64, u64),
    stop: watch::Sender<bool>,
}

impl AgentServer {
    /// Listens on `path`. A socket left behind by an agent that died is replaced; a live agent is not.
    pub async fn start(app: App, path: PathBuf) -> Result<Self, AgentError> {
        Self::start_with(app, path, None).await
    }

    /// The desktop app's socket: the agent's answers, and its window's calls and events through `host`.
    pub async fn start_for_window(app: App, path: PathBuf, host: Arc<dyn WindowHost>) -> Result<Self, AgentError> {
        Self::start_with(app, path, Some(host)).await
    }

    async fn start_with(app: App, path: PathBuf, host: Option<Arc<dyn WindowHost>>) -> Result<Self, AgentError> {
        create_private_dir(parent_of(&path)?)?;
        let io = |source| AgentError::Io {
            path: path.clone(),
            source,
        };
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if UnixStream::connect(&path).await.is_ok() {
                    return Err(AgentError::AlreadyRunning(path));
                }
                tracing::info!(socket = %path.display(), "removing the socket of an agent that is gone");
                std::fs::remove_file(&path).map_err(io)?;
                UnixListener::bind(&path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let meta = std::fs::symlink_metadata(&path).map_err(io)?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            let stop_requested = stop_requested(stopped);
            tokio::pin!(stop_requested);
            loop {
                tokio::select! {
                    _ = &mut stop_requested => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let app = app.clone();
                            let host = host.clone();
                            tokio::spawn(async move {
                                if let Err(e) = serve_connection(&app, host.as_ref(), stream).await {
                                    tracing::debug!(error = %e, "agent connection ended early");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "agent: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        });
        Ok(Self {
            path,
            identity: (meta.dev(), meta.ino()),
            stop,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn serve_connection(app: &App, host: Option<&Arc<dyn WindowHost>>, stream: UnixStream) -> Result<(), FrameError> {
    let peer = stream.peer_cred()?;
    if peer.uid() != own_uid() {
        // The directory's mode should make this impossible; if it happens, say so once and answer nothing.
        tracing::warn!(peer_uid = peer.uid(), "agent: refused a connection from another user");
        return Ok(());
    }
    let client = peer.pid().and_then(|pid| u32::try_from(pid).ok());
    let (reader, writer) = stream.into_split();
    serve_stream(app, host, client, reader, writer).await
}

/// Asks the agent at `path`. Never waits longer than [`HELLO_TIMEOUT`] for a sign of life, nor longer than
/// [`ANSWER_TIMEOUT`](super::ANSWER_TIMEOUT) for the answer.
pub async fn ask(path: &Path, envelope: &Envelope) -> Outcome {
    match open_stream(path).await {
        Ok((reader, writer, server_pid)) => converse(reader, writer, envelope, server_pid).await,
        Err(outcome) => outcome,
    }
}

/// Connects to the agent at `path` once its directory and its owner check out.
pub(crate) async fn open_stream(path: &Path) -> Result<(ReadHalf, WriteHalf, Option<u32>), Outcome> {
    let Ok(dir) = parent_of(path) else {
        return Err(Outcome::NoAgent);
    };
    match check_private_dir(dir) {
        Ok(()) => {}
        Err(AgentError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Outcome::NoAgent);
        }
        Err(e) => return Err(Outcome::Failed(e.to_string())),
    }
    let stream = match timeout(HELLO_TIMEOUT, UnixStream::connect(path)).await {
        Err(_) => {
            return Err(Outcome::Failed(format!(
                "{} did not accept within {HELLO_TIMEOUT:?}",
                path.display()
            )));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Err(Outcome::NoAgent),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            // The app that made this socket is gone.
            let _ = std::fs::remove_file(path);
            return Err(Outcome::NoAgent);
        }
        Ok(Err(e)) => return Err(Outcome::Failed(format!("{}: {e}", path.display()))),
        Ok(Ok(stream)) => stream,
    };
    match stream.peer_cred() {
        Ok(peer) if peer.uid() == own_uid() => {}
        Ok(peer) => {
            return Err(Outcome::Failed(format!(
                "the agent socket is served by uid {}, not you",
                peer.uid()
            )));
        }
        Err(e) => {
            return Err(Outcome::Failed(format!(
                "could not check who serves the agent socket: {e}"
            )));
        }
    }
    let (reader, writer) = stream.into_split();
    Ok((Box::new(reader), Box::new(writer), None))
}
