//! The agent: the running app (or `kvproxy serve`) answers the `kvproxy` CLI over a channel only this user
//! can open, so `kvproxy token` serves the app's cached token instead of signing in to Key Vault and minting
//! one per process.
//!
//! Not the TCP port: while the app is down any local process may listen on 127.0.0.1:5616, and a CLI that
//! sent its API key there would hand it over. On Unix the channel is a socket in a directory only the user
//! can enter (`$XDG_RUNTIME_DIR/kvproxy/`, mode 0700; the socket 0600), and both ends check the other's uid
//! (`SO_PEERCRED` / `getpeereid`). On Windows it is a named pipe whose ACL admits only the current user.

pub mod protocol;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
pub(crate) mod windows;

#[cfg(unix)]
use unix::open_stream;
#[cfg(unix)]
pub use unix::{AgentServer, ask, default_socket_path, desktop_socket_path};
#[cfg(windows)]
use windows::open_stream;
#[cfg(windows)]
pub use windows::{AgentServer, ask, default_socket_path, desktop_socket_path};

use kvproxy_app::{ApiKeyError, App, Caller, Channel, Identity, TokenRequest};
use protocol::{
    Envelope, FrameError, Hello, PROTOCOL_VERSION, Request, Response, TokenAnswer, WindowEvent, read_answer,
    read_message, write_message,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::time::timeout;

/// One end of a connection to an agent, as either platform opens it.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// How long a client waits for the agent's first line. Generous for a busy machine, short enough that a
/// hung agent costs a script one second before it falls back.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a client waits for an answer once the agent has greeted it: a cold token may take the broker's
/// own retries and timeouts; this only stops a client waiting forever on an agent that stalled.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the agent waits for a client's request after greeting it, so an idle connection cannot pin a task.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable that moves the socket (tests; several app instances).
pub const SOCKET_ENV: &str = "KVPROXY_AGENT_SOCKET";

/// The environment variable that moves the desktop app's own socket, where its window and a second start
/// of the app find the running one. The app sets it for the window it starts.
pub const DESKTOP_SOCKET_ENV: &str = "KVPROXY_DESKTOP_SOCKET";

/// What the desktop app's tray process does for its window, which runs as a process of its own (the tray
/// process loads no web view). Served only on the desktop app's socket; `kvproxy serve` has no window.
#[async_trait::async_trait]
pub trait WindowHost: Send + Sync + 'static {
    /// One command from the window: `{"command": NAME, "args": {...}}` as the web view sent it. The error
    /// is what the window shows (a message, and the field it belongs to).
    async fn call(&self, call: serde_json::Value) -> Result<serde_json::Value, serde_json::Value>;
    /// A window process has started. Its events, or `None` when another window is open: that one is then
    /// shown and the new process ends.
    fn attach(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<WindowEvent>>;
    /// The window process that attached has gone (closed, crashed or killed).
    fn detached(&self);
    /// Bring the window to the front, starting its process when none runs.
    fn show(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "{dir} is open to other users (mode {mode:o}): the agent socket needs a directory only you can enter; run `chmod 700 {dir}`"
    )]
    OpenDirectory { dir: PathBuf, mode: u32 },
    #[error("{dir} belongs to another user: the agent socket needs a directory of your own")]
    ForeignDirectory { dir: PathBuf },
    #[error("another KeyVault Proxy agent already answers on {0}")]
    AlreadyRunning(PathBuf),
    /// Windows: the pipe name is held by another process (a running app, `kvproxy serve`, or a squatter).
    #[error(
        "the agent pipe {0} is already held by another process (another KeyVault Proxy app or kvproxy serve, or a program squatting the name)"
    )]
    NameTaken(PathBuf),
    #[error("no place for the agent socket: {0}")]
    NoRuntimeDir(String),
    #[error("agent socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What became of a question to the agent.
#[derive(Debug)]
pub enum Outcome {
    Answered(Response),
    /// Nothing listens (no socket, or a stale one, now removed): the client does the work, silently.
    NoAgent,
    /// Something is there but did not answer properly: the client does the work and says why in one line.
    Failed(String),
}

/// Answers one request from the app's own operations, so the CLI shares the app's token cache, key info
/// and key; every failure is an answer too, so the client can print it as its own.
pub async fn answer(app: &App, envelope: Envelope) -> Response {
    answer_for(app, None, None, envelope).await
}

/// [`answer`] for the CLI process `client` (as the system names it), with the desktop app's window calls
/// when `host` is there.
pub async fn answer_for(
    app: &App,
    host: Option<&Arc<dyn WindowHost>>,
    client: Option<u32>,
    envelope: Envelope,
) -> Response {
    if envelope.protocol != PROTOCOL_VERSION {
        return Response::Unavailable {
            reason: format!(
                "the running app speaks agent protocol {PROTOCOL_VERSION}, this kvproxy {}",
                envelope.protocol
            ),
        };
    }
    let ours = app.profile_store().path();
    let reads_profiles = matches!(envelope.request, Request::Token { .. } | Request::KeyInfo { .. });
    if reads_profiles && envelope.profiles_file != ours {
        return Response::Unavailable {
            reason: format!(
                "the running app reads {}, this kvproxy {}",
                ours.display(),
                envelope.profiles_file.display()
            ),
        };
    }
    let failed = |e: kvproxy_core::Error| Response::Error {
        class: e.class(),
        message: kvproxy_core::error_chain(&e).replace(['\n', '\r'], " "),
    };
    match envelope.request {
        Request::Token { profile, scope } => {
            let request = TokenRequest {
                profile: profile.as_deref(),
                scope: scope.as_deref(),
                skip_cache: false,
            };
            let caller = Caller::agent("token").identified(cli_caller(client).await);
            match app.token(request, &caller).await {
                Ok(token) => Response::Token(TokenAnswer::from(token)),
                Err(e) => failed(e),
            }
        }
        Request::KeyInfo { profile, refresh } => {
            let caller = Caller::agent("key-info").identified(cli_caller(client).await);
            match app.key_info(profile.as_deref(), refresh, &caller).await {
                Ok((profile, info)) => Response::KeyInfo { profile, info },
                Err(e) => failed(e),
            }
        }
        Request::ApiKeyRotated { api_key } => match app.apply_api_key(api_key, Channel::Agent) {
            Ok(()) => {
                tracing::info!("agent: the API key was rotated by kvproxy api-key rotate");
                Response::ApiKeyApplied
            }
            Err(ApiKeyError::FromEnvironment) => Response::Unavailable {
                reason: "the running API's key comes from KVPROXY_API_KEY; change it there and restart it".into(),
            },
            Err(ApiKeyError::Core(e)) => failed(e),
            Err(e) => failed(kvproxy_core::Error::invalid("api_key", e.to_string())),
        },
        Request::Window { call } => match host {
            Some(host) => match host.call(call).await {
                Ok(result) => Response::Window { result },
                Err(error) => Response::WindowFailed { error },
            },
            None => no_window(),
        },
        Request::ShowWindow => match host {
            Some(host) => {
                host.show();
                Response::WindowShown
            }
            None => no_window(),
        },
        // Handled by the connection, which stays open for the events.
        Request::AttachWindow => no_window(),
    }
}

/// The program that ran the CLI process `client` (reading the system's tables off the async threads).
async fn cli_caller(client: Option<u32>) -> Identity {
    tokio::task::spawn_blocking(move || crate::peer::cli_parent(client))
        .await
        .unwrap_or_else(|e| Identity::Unknown(format!("the lookup failed ({e})")))
}

fn no_window() -> Response {
    Response::Unavailable {
        reason: "this agent has no window (it serves the kvproxy CLI only)".into(),
    }
}

/// The agent's side of one connection: greet, read one request, answer it.
pub(crate) async fn serve_stream(
    app: &App,
    host: Option<&Arc<dyn WindowHost>>,
    client: Option<u32>,
    reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
) -> Result<(), FrameError> {
    let mut reader = BufReader::new(reader);
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
    };
    write_message(&mut writer, &hello).await?;
    let response = match timeout(REQUEST_TIMEOUT, read_message::<Envelope>(&mut reader)).await {
        Err(_) => return Ok(()),
        Ok(Err(FrameError::Invalid(e))) => Response::Unavailable {
            reason: format!("the running app could not read the request: {e}"),
        },
        Ok(Err(e)) => return Err(e),
        Ok(Ok(envelope)) if envelope.request == Request::AttachWindow && envelope.protocol == PROTOCOL_VERSION => {
            return match host {
                Some(host) => serve_window(host, reader, writer).await,
                None => write_message(&mut writer, &no_window()).await,
            };
        }
        Ok(Ok(envelope)) => answer_for(app, host, client, envelope).await,
    };
    write_message(&mut writer, &response).await
}

/// The window's connection: the events for it until it goes. The window sends nothing after attaching, so
/// anything readable (end of file, above all) means it has gone.
async fn serve_window(
    host: &Arc<dyn WindowHost>,
    mut reader: BufReader<impl AsyncRead + Unpin>,
    mut writer: impl AsyncWrite + Unpin,
) -> Result<(), FrameError> {
    let Some(mut events) = host.attach() else {
        return write_message(&mut writer, &Response::WindowShown).await;
    };
    let result = async {
        write_message(&mut writer, &Response::WindowAttached).await?;
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => write_message(&mut writer, &event).await?,
                    None => return Ok(()),
                },
                _ = reader.read(&mut probe) => return Ok(()),
            }
        }
    }
    .await;
    drop(events);
    host.detached();
    result
}

/// How a window process's attach went.
pub enum Attached {
    /// This process is the window: its events follow.
    Window(WindowEvents),
    /// Another window was open; the app has shown it.
    AlreadyOpen,
    /// No desktop app answers on the socket.
    NoApp,
    Failed(String),
}

/// The events the tray process sends its window. The connection stays open while this lives; dropping it
/// tells the tray process the window has gone.
pub struct WindowEvents {
    reader: BufReader<ReadHalf>,
    _writer: WriteHalf,
}

impl WindowEvents {
    /// The next event; `None` once the tray process has gone (the app quit).
    pub async fn next(&mut self) -> Option<WindowEvent> {
        read_message(&mut self.reader).await.ok()
    }
}

/// The window process's first words to the desktop app at `path`.
pub async fn attach_window(path: &Path) -> Attached {
    let (reader, mut writer, server_pid) = match open_stream(path).await {
        Ok(stream) => stream,
        Err(Outcome::NoAgent) => return Attached::NoApp,
        Err(Outcome::Failed(reason)) => return Attached::Failed(reason),
        Err(Outcome::Answered(_)) => return Attached::Failed("unexpected answer".into()),
    };
    let mut reader = BufReader::new(reader);
    let envelope = Envelope {
        protocol: PROTOCOL_VERSION,
        profiles_file: PathBuf::new(),
        request: Request::AttachWindow,
    };
    if let Err(reason) = greet_and_send(&mut reader, &mut writer, &envelope, server_pid).await {
        return Attached::Failed(reason);
    }
    match timeout(HELLO_TIMEOUT, read_message::<Response>(&mut reader)).await {
        Ok(Ok(Response::WindowAttached)) => Attached::Window(WindowEvents {
            reader,
            _writer: writer,
        }),
        Ok(Ok(Response::WindowShown)) => Attached::AlreadyOpen,
        Ok(Ok(Response::Unavailable { reason })) => Attached::Failed(reason),
        Ok(Ok(other)) => Attached::Failed(format!("unexpected answer {other:?}")),
        Ok(Err(e)) => Attached::Failed(format!("the running app's answer: {e}")),
        Err(_) => Attached::Failed(format!("the running app did not answer within {HELLO_TIMEOUT:?}")),
    }
}

/// Reads the agent's greeting, checks it, and sends `envelope`.
async fn greet_and_send(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    writer: &mut (impl AsyncWrite + Unpin),
    envelope: &Envelope,
    server_pid: Option<u32>,
) -> Result<(), String> {
    let hello = match timeout(HELLO_TIMEOUT, read_message::<Hello>(reader)).await {
        Err(_) => return Err(format!("the running app did not answer within {HELLO_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(format!("the running app's greeting: {e}")),
        Ok(Ok(hello)) => hello,
    };
    check_hello(&hello, server_pid)?;
    timeout(HELLO_TIMEOUT, write_message(writer, envelope))
        .await
        .unwrap_or(Err(FrameError::Closed))
        .map_err(|e| format!("sending the request: {e}"))
}

fn check_hello(hello: &Hello, server_pid: Option<u32>) -> Result<(), String> {
    if let Some(pid) = server_pid
        && hello.pid != pid
    {
        return Err(format!(
            "the agent greeting names process {} but process {pid} serves it; not using it",
            hello.pid
        ));
    }
    if hello.protocol != PROTOCOL_VERSION {
        return Err(format!(
            "the running app (version {}) speaks agent protocol {}, this kvproxy {PROTOCOL_VERSION}",
            hello.version, hello.protocol
        ));
    }
    Ok(())
}

/// The connection ended before the agent's greeting: nothing was sent, so asking again is safe.
#[derive(Debug)]
pub(crate) struct GreetingLost;

/// The client's side of one connection: wait briefly for the greeting, send the request, wait for the answer.
#[cfg(unix)]
pub(crate) async fn converse(
    reader: impl tokio::io::AsyncRead + Unpin,
    writer: impl tokio::io::AsyncWrite + Unpin,
    envelope: &Envelope,
    server_pid: Option<u32>,
) -> Outcome {
    converse_once(reader, writer, envelope, server_pid)
        .await
        .unwrap_or_else(|GreetingLost| Outcome::Failed(format!("the running app's greeting: {}", FrameError::Closed)))
}

/// [`converse`], telling a connection that closed before the greeting apart from every other failure.
pub(crate) async fn converse_once(
    reader: impl tokio::io::AsyncRead + Unpin,
    writer: impl tokio::io::AsyncWrite + Unpin,
    envelope: &Envelope,
    server_pid: Option<u32>,
) -> Result<Outcome, GreetingLost> {
    let mut reader = tokio::io::BufReader::new(reader);
    let hello = match timeout(HELLO_TIMEOUT, read_message::<Hello>(&mut reader)).await {
        Err(_) => {
            return Ok(Outcome::Failed(format!(
                "the running app did not answer within {HELLO_TIMEOUT:?}"
            )));
        }
        Ok(Err(FrameError::Closed)) => return Err(GreetingLost),
        Ok(Err(e)) => return Ok(Outcome::Failed(format!("the running app's greeting: {e}"))),
        Ok(Ok(hello)) => hello,
    };
    Ok(converse_greeted(reader, writer, envelope, server_pid, hello).await)
}

async fn converse_greeted(
    mut reader: tokio::io::BufReader<impl tokio::io::AsyncRead + Unpin>,
    mut writer: impl tokio::io::AsyncWrite + Unpin,
    envelope: &Envelope,
    server_pid: Option<u32>,
    hello: Hello,
) -> Outcome {
    if let Err(reason) = check_hello(&hello, server_pid) {
        return Outcome::Failed(reason);
    }
    if let Err(e) = timeout(HELLO_TIMEOUT, write_message(&mut writer, envelope))
        .await
        .unwrap_or(Err(FrameError::Closed))
    {
        return Outcome::Failed(format!("sending the request: {e}"));
    }
    match timeout(ANSWER_TIMEOUT, read_answer::<Response>(&mut reader)).await {
        Err(_) => Outcome::Failed(format!("the running app did not answer within {ANSWER_TIMEOUT:?}")),
        Ok(Err(e)) => Outcome::Failed(format!("the running app's answer: {e}")),
        Ok(Ok(response)) => Outcome::Answered(response),
    }
}

/// Resolves once the agent's owner asks it to stop (or is gone).
pub(crate) async fn stop_requested(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
