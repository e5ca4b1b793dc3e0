//! What the CLI and the agent (the running app or `kvproxy serve`) say to each other: one JSON line each
//! way per connection. The agent speaks first ([`Hello`]), so a client learns within a short timeout
//! whether anything is alive behind the socket before it sends a request that may take a while.

use kvproxy_core::{ErrorClass, KeyInfo, SecretString};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Bumped when a message changes incompatibly; an agent answers other versions with
/// [`Response::Unavailable`], so an old app and a new CLI fall back instead of misreading each other.
pub const PROTOCOL_VERSION: u32 = 1;

/// No request comes near this; a longer line is a broken or hostile peer.
pub const MAX_LINE: u64 = 64 * 1024;

/// The largest answer a client reads: the window's views (activity, profiles) are bigger than any request.
pub const MAX_ANSWER: u64 = 4 * 1024 * 1024;

/// The agent's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The version of the app or CLI that runs the agent.
    pub version: String,
    pub pid: u32,
}

/// The client's one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub protocol: u32,
    /// The profiles file the client reads. An agent reading another one answers
    /// [`Response::Unavailable`]: its `api` profile is not necessarily the client's.
    pub profiles_file: PathBuf,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// A token for a profile (the default profile when `None`), from the agent's cache when it can.
    Token {
        profile: Option<String>,
        scope: Option<String>,
    },
    /// Key info for a profile's certificate; `refresh` reads it from Key Vault again.
    KeyInfo { profile: Option<String>, refresh: bool },
    /// `kvproxy api-key rotate` stored a new key in the keyring: the running API takes it at once.
    ApiKeyRotated { api_key: SecretString },
    /// The desktop app's window asks its tray process: `call` is `{"command": NAME, "args": {...}}`, read by
    /// the tray process into its own typed calls. Only the desktop app's socket answers these.
    Window { call: serde_json::Value },
    /// The window process has started: the connection stays open and carries [`WindowEvent`]s until either
    /// side goes. Answered [`Response::WindowShown`] when a window is already open (which is then shown).
    AttachWindow,
    /// A second start of the app: show the window of the one already running.
    ShowWindow,
}

/// What the tray process tells its window, one line each, after [`Response::WindowAttached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WindowEvent {
    /// Something the window shows changed: it asks for fresh views.
    Changed,
    /// Come to the front (a tray click, a second start).
    Show,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Token(TokenAnswer),
    KeyInfo {
        profile: String,
        info: KeyInfo,
    },
    ApiKeyApplied,
    /// The answer to a [`Request::Window`] call, as the command returns it.
    Window {
        result: serde_json::Value,
    },
    /// A [`Request::Window`] call that failed: the error as the window shows it (message, field, hint).
    WindowFailed {
        error: serde_json::Value,
    },
    /// This process is now the window; [`WindowEvent`]s follow on this connection.
    WindowAttached,
    /// The running app's window was brought to the front.
    WindowShown,
    /// The request failed the way it would have failed in the client: the class decides the exit code
    /// and `message` is the line the client prints.
    Error {
        class: ErrorClass,
        message: String,
    },
    /// This agent cannot answer for this client (another profiles file, another protocol, a key it does
    /// not own); the client does the work itself.
    Unavailable {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    /// Redacted in `Debug`, wiped when dropped, like every token in this program.
    pub access_token: SecretString,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_on: OffsetDateTime,
    pub scope: String,
    pub profile: String,
    pub demo: bool,
    pub from_cache: bool,
}

impl From<kvproxy_core::IssuedToken> for TokenAnswer {
    fn from(token: kvproxy_core::IssuedToken) -> Self {
        Self {
            access_token: token.access_token,
            expires_on: token.expires_on,
            scope: token.scope,
            profile: token.profile,
            demo: token.demo,
            from_cache: token.from_cache,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection closed before a message arrived")]
    Closed,
    #[error("a message was longer than the protocol allows")]
    TooLong,
    #[error("a message was not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one line (at most [`MAX_LINE`] bytes) and parses it.
pub async fn read_message<T: serde::de::DeserializeOwned>(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> Result<T, FrameError> {
    read_limited(reader, MAX_LINE).await
}

/// Reads one answer (at most [`MAX_ANSWER`] bytes) and parses it.
pub async fn read_answer<T: serde::de::DeserializeOwned>(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> Result<T, FrameError> {
    read_limited(reader, MAX_ANSWER).await
}

async fn read_limited<T: serde::de::DeserializeOwned>(
    reader: &mut (impl AsyncBufRead + Unpin),
    limit: u64,
) -> Result<T, FrameError> {
    use tokio::io::AsyncReadExt;
    // Bytes, not a `String`: a line that is not UTF-8 is then an invalid message the peer is told about, not
    // an I/O error that drops the connection without an answer.
    let mut line = Vec::new();
    let read = reader.take(limit + 1).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Err(FrameError::Closed);
    }
    if read as u64 > limit {
        return Err(FrameError::TooLong);
    }
    Ok(serde_json::from_slice(line.trim_ascii_end())?)
}

/// Writes one message as one line.
pub async fn write_message<T: Serialize>(
    writer: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    writer.write_all(&line).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_as_single_lines() {
        let envelope = Envelope {
            protocol: PROTOCOL_VERSION,
            profiles_file: "/home/u/.config/kvproxy/profiles.toml".into(),
            request: Request::Token {
                profile: Some("api".into()),
                scope: None,
            },
        };
        let mut buffer = Vec::new();
        write_message(&mut buffer, &envelope).await.unwrap();
        assert_eq!(buffer.iter().filter(|b| **b == b'\n').count(), 1);
        let text = String::from_utf8(buffer.clone()).unwrap();
        assert!(text.contains(r#""kind":"token""#), "{text}");
        let back: Envelope = read_message(&mut buffer.as_slice()).await.unwrap();
        assert_eq!(back, envelope);
    }

    #[tokio::test]
    async fn an_overlong_or_broken_line_is_refused() {
        let long = vec![b'a'; MAX_LINE as usize + 10];
        assert!(matches!(
            read_message::<Hello>(&mut long.as_slice()).await,
            Err(FrameError::TooLong)
        ));
        assert!(matches!(
            read_message::<Hello>(&mut &b"{nope\n"[..]).await,
            Err(FrameError::Invalid(_))
        ));
        assert!(matches!(
            read_message::<Hello>(&mut &b""[..]).await,
            Err(FrameError::Closed)
        ));
    }
}
