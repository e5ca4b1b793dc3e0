//! What the CLI's tests and benches share (each includes this file with `#[path]`): a `kvproxy` command
//! isolated in a world of its own, and `kvproxy serve` started and waited for.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const KVPROXY: &str = env!("CARGO_BIN_EXE_kvproxy");

/// How long `kvproxy serve` may take to say `ready.` (two cores, tests in parallel).
pub const SERVE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Points `command` at a config directory and agent socket of its own, with the OS keyring off and no log
/// level inherited from whoever runs the tests: the user's profiles, keyring and running app are never used.
pub fn isolate<'a>(command: &'a mut Command, config: &Path, agent_socket: &Path) -> &'a mut Command {
    command
        .env("KVPROXY_CONFIG_DIR", config)
        .env("KVPROXY_AGENT_SOCKET", agent_socket)
        .env("KVPROXY_KEYRING", "off")
        .env_remove("RUST_LOG")
}

/// A running `kvproxy serve`, killed (and reaped) when dropped, so a failing test never leaks it.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    /// What it printed up to `ready.`.
    pub banner: Vec<String>,
}

impl Serve {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// True when it said it answers the CLI over its agent socket.
    pub fn has_agent(&self) -> bool {
        self.banner.iter().any(|line| line.starts_with("CLI agent:"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` (an isolated `kvproxy`) as `serve` on a free port of 127.0.0.1, with `extra` arguments,
/// and waits for its `ready.` line. Its stderr goes where the command sends it.
pub fn start_serve(mut command: Command, extra: &[&str]) -> Serve {
    let mut child = command
        .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kvproxy serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    // A thread of its own, so the wait below is bounded even when serve prints nothing.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut serve = Serve {
        child,
        port: 0,
        banner: Vec::new(),
    };
    let deadline = Instant::now() + SERVE_START_TIMEOUT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no `ready.` from kvproxy serve; it printed {:?}", serve.banner));
        if let Some(port) = line.strip_prefix("listening on http://127.0.0.1:") {
            serve.port = port.trim().parse().expect("a port after `listening on`");
        }
        let ready = line.starts_with("ready.");
        serve.banner.push(line);
        if ready {
            assert_ne!(
                serve.port, 0,
                "kvproxy serve printed no `listening on` line: {:?}",
                serve.banner
            );
            return serve;
        }
    }
}
