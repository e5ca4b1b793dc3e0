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
mod windows;

#[cfg(unix)]
pub use unix::{AgentServer, ask, default_socket_path};
#[cfg(windows)]
pub use windows::{AgentServer, ask, default_socket_path};

use kvproxy_app::{ApiKeyError, App, Caller, Channel, TokenRequest};
use protocol::{
    Envelope, FrameError, Hello, PROTOCOL_VERSION, Request, Response, TokenAnswer, read_message, write_message,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::timeout;

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
    if envelope.protocol != PROTOCOL_VERSION {
        return Response::Unavailable {
            reason: format!(
                "the running app speaks agent protocol {PROTOCOL_VERSION}, this kvproxy {}",
                envelope.protocol
            ),
        };
    }
    let ours = app.profile_store().path();
    if !matches!(envelope.request, Request::ApiKeyRotated { .. }) && envelope.profiles_file != ours {
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
            match app.token(request, &Caller::agent("token")).await {
                Ok(token) => Response::Token(TokenAnswer::from(token)),
                Err(e) => failed(e),
            }
        }
        Request::KeyInfo { profile, refresh } => {
            match app
                .key_info(profile.as_deref(), refresh, &Caller::agent("key-info"))
                .await
            {
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
    }
}

/// The agent's side of one connection: greet, read one request, answer it.
pub(crate) async fn serve_stream(
    app: &App,
    reader: impl tokio::io::AsyncRead + Unpin,
    mut writer: impl tokio::io::AsyncWrite + Unpin,
) -> Result<(), FrameError> {
    let mut reader = tokio::io::BufReader::new(reader);
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
        Ok(Ok(envelope)) => answer(app, envelope).await,
    };
    write_message(&mut writer, &response).await
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
    if let Some(pid) = server_pid
        && hello.pid != pid
    {
        return Outcome::Failed(format!(
            "the agent greeting names process {} but process {pid} serves it; not using it",
            hello.pid
        ));
    }
    if hello.protocol != PROTOCOL_VERSION {
        return Outcome::Failed(format!(
            "the running app (version {}) speaks agent protocol {}, this kvproxy {PROTOCOL_VERSION}",
            hello.version, hello.protocol
        ));
    }
    if let Err(e) = timeout(HELLO_TIMEOUT, write_message(&mut writer, envelope))
        .await
        .unwrap_or(Err(FrameError::Closed))
    {
        return Outcome::Failed(format!("sending the request: {e}"));
    }
    match timeout(ANSWER_TIMEOUT, read_message::<Response>(&mut reader)).await {
        Err(_) => Outcome::Failed(format!("the running app did not answer within {ANSWER_TIMEOUT:?}")),
        Ok(Err(e)) => Outcome::Failed(format!("the running app's answer: {e}")),
        Ok(Ok(response)) => Outcome::Answered(response),
    }
}

/// Resolves once the agent's owner asks it to stop (or is gone).
pub(crate) async fn stop_requested(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
