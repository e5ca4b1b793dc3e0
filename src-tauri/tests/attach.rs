//! The window program's first moments, before any web view: it attaches to the tray app on the desktop
//! socket, and goes away quietly when a window is already open or when what answers is not an app it can
//! work with. A stand-in app on a real socket plays the tray app's part; no display is needed because the
//! window program never gets as far as opening one.
#![cfg(unix)]

use kvproxy_server::agent::protocol::{Envelope, Hello, PROTOCOL_VERSION, Request, Response};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// Serves one connection on `socket` as a tray app would: greets with `hello`, reads the request, answers
/// `answer`. Returns the request it read.
async fn stand_in(listener: UnixListener, hello: Hello, answer: Response) -> Option<Envelope> {
    let (stream, _) = listener.accept().await.ok()?;
    let (reader, mut writer) = stream.into_split();
    let mut line = serde_json::to_vec(&hello).ok()?;
    line.push(b'\n');
    writer.write_all(&line).await.ok()?;
    let mut request = String::new();
    BufReader::new(reader).read_line(&mut request).await.ok()?;
    let mut line = serde_json::to_vec(&answer).ok()?;
    line.push(b'\n');
    writer.write_all(&line).await.ok()?;
    serde_json::from_str(&request).ok()
}

/// Runs the window program against a stand-in app; `None` for the request when it never sent one.
fn run_window(hello: Hello, answer: Response) -> (Output, Option<Envelope>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let socket = dir.path().join("desktop.sock");
    // A worker thread: the stand-in must answer while this thread waits for the window program.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = runtime
        .block_on(async { UnixListener::bind(&socket) })
        .expect("bind the socket");
    let served = runtime.spawn(stand_in(listener, hello, answer));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kvproxy-window"))
        .env("KVPROXY_DESKTOP_SOCKET", &socket)
        // No display: a window program that tried to open one would fail loudly, not pass by accident.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run kvproxy-window");
    let request = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), served).await })
        .ok()
        .and_then(|joined| joined.ok())
        .flatten();
    (output, request)
}

fn hello(protocol: u32) -> Hello {
    Hello {
        protocol,
        version: "test".into(),
        pid: std::process::id(),
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_second_window_hands_over_to_the_open_one_and_ends() {
    let (output, request) = run_window(hello(PROTOCOL_VERSION), Response::WindowShown);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("window: already open; shown"),
        "{}",
        text(&output)
    );
    assert_eq!(request.map(|e| e.request), Some(Request::AttachWindow));
}

#[test]
fn an_app_of_another_protocol_is_not_used() {
    let (output, _) = run_window(hello(PROTOCOL_VERSION + 1), Response::WindowShown);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("did not take this window") && text(&output).contains("protocol"),
        "{}",
        text(&output)
    );
}

#[test]
fn an_agent_without_a_window_says_so() {
    let unavailable = Response::Unavailable {
        reason: "this agent has no window (it serves the kvproxy CLI only)".into(),
    };
    let (output, _) = run_window(hello(PROTOCOL_VERSION), unavailable);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("has no window"), "{}", text(&output));
}

#[test]
fn the_socket_path_must_be_a_private_directory() {
    // A directory others may enter is refused before anything is said on it.
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kvproxy-window"))
        .env("KVPROXY_DESKTOP_SOCKET", dir.path().join("desktop.sock"))
        .env_remove("DISPLAY")
        .output()
        .expect("run kvproxy-window");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("chmod 700"), "{}", text(&output));
    assert!(!Path::new(&dir.path().join("desktop.sock")).exists());
}
