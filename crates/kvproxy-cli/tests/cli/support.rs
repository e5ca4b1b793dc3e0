//! What every CLI test needs: a private config directory, the `kvproxy` command pointed at it, a running
//! `kvproxy demo` that is killed with its guard, and checks for the error contract (exit code, one
//! `error:` line on stderr, nothing on stdout).

use assert_cmd::Command;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../shared/mod.rs"]
mod shared;
pub use shared::{KVPROXY, Serve as Server};

/// Upper bound for any single `kvproxy` run; assert_cmd kills the process after it (and the test fails,
/// since a killed process has no exit code).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// How long `kvproxy demo` may take to print its `ready.` line (two cores, tests in parallel).
pub const DEMO_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The emulator's demo app (kvproxy_emulator::DEMO_CLIENT_ID), spelled out: the CLI prints it to users.
pub const DEMO_CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const DEMO_AUDIENCE: &str = "api://kvproxy-demo";

/// A private `KVPROXY_CONFIG_DIR`, deleted when the test ends.
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("kvproxy-cli-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn profiles_file(&self) -> PathBuf {
        self.config_dir().join("profiles.toml")
    }

    pub fn demo_ca(&self) -> PathBuf {
        self.config_dir().join("demo-ca.pem")
    }

    /// Where this test's `kvproxy serve` listens for the CLI, instead of the user's own runtime directory
    /// (a KeyVault Proxy app running on the test machine must not answer the tests).
    #[cfg(unix)]
    pub fn agent_socket(&self) -> PathBuf {
        self.config_dir().join("run").join("agent.sock")
    }

    /// Windows: a named pipe of this test's own (the temp dir lends its unique name).
    #[cfg(windows)]
    pub fn agent_socket(&self) -> PathBuf {
        let unique = self
            .config_dir()
            .file_name()
            .expect("a temp dir has a name")
            .to_string_lossy();
        PathBuf::from(format!(r"\\.\pipe\kvproxy-test-{unique}"))
    }

    /// `kvproxy` with this config dir, this test's agent socket and the OS keyring off.
    pub fn kvproxy(&self) -> Command {
        let mut cmd = std::process::Command::new(KVPROXY);
        shared::isolate(&mut cmd, self.config_dir(), &self.agent_socket());
        let mut cmd = Command::from_std(cmd);
        cmd.timeout(COMMAND_TIMEOUT);
        cmd
    }

    /// `kvproxy` with this config dir and the OS keyring on (whatever the test runner's environment says).
    pub fn kvproxy_with_keyring(&self) -> Command {
        let mut cmd = self.kvproxy();
        cmd.env_remove("KVPROXY_KEYRING");
        cmd
    }

    /// Starts `kvproxy demo --port 0` (keyring off) and waits for its `ready.` line.
    pub fn start_demo(&self) -> Demo {
        self.start_demo_with(|_| {})
    }

    /// [`TestEnv::start_demo`], with `configure` changing its command first (its environment, say).
    pub fn start_demo_with(&self, configure: impl FnOnce(&mut std::process::Command)) -> Demo {
        let mut command = std::process::Command::new(KVPROXY);
        configure(&mut command);
        shared::isolate(&mut command, self.config_dir(), &self.agent_socket());
        Demo::start(command)
    }
}

/// A running `kvproxy demo`. Killed (and reaped) on drop, so a failing test never leaks it.
pub struct Demo {
    child: Child,
    /// The port printed on the first line (`... on 127.0.0.1:PORT)`).
    pub port: u16,
    /// Everything printed up to and including the `ready.` line.
    pub banner: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Demo {
    fn start(mut command: std::process::Command) -> Demo {
        command
            .args(["demo", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn `kvproxy demo`");
        let stdout = child.stdout.take().expect("demo stdout");
        let stderr_pipe = child.stderr.take().expect("demo stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        // The guard exists from here on: any panic below kills the child.
        let mut demo = Demo {
            child,
            port: 0,
            banner: Vec::new(),
            stderr: stderr.clone(),
            stderr_reader: None,
        };

        demo.stderr_reader = Some(std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                stderr.lock().unwrap().push_str(&line);
                line.clear();
            }
        }));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining after `ready.` (the receiver is gone by then) so the demo never writes into a
            // closed pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + DEMO_START_TIMEOUT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let ready = line.starts_with("ready.");
                    demo.banner.push(line);
                    if ready {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "`kvproxy demo` printed no `ready.` line within {DEMO_START_TIMEOUT:?}; stdout so far: {:#?}; stderr: {}",
                    demo.banner,
                    demo.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = demo.child.wait();
                    // The child is gone, so its stderr is at EOF: collect the whole reason.
                    if let Some(reader) = demo.stderr_reader.take() {
                        let _ = reader.join();
                    }
                    panic!(
                        "`kvproxy demo` closed stdout before `ready.` ({status:?}); stdout: {:#?}; stderr: {}",
                        demo.banner,
                        demo.stderr()
                    )
                }
            }
        }
        let first = demo.banner.first().cloned().unwrap_or_default();
        demo.port = port_after_loopback(&first)
            .unwrap_or_else(|| panic!("no 127.0.0.1:PORT on the demo's first line: {first:?}"));
        assert_ne!(
            demo.port, 0,
            "the demo must report the port it really listens on: {first:?}"
        );
        demo
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Kills the demo and waits until it is gone (its ports are closed when this returns).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
    }
}

fn port_after_loopback(line: &str) -> Option<u16> {
    let rest = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs the command and expects success; returns (stdout, stderr).
pub fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = output_of(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    (stdout, stderr)
}

/// Runs the command to its end. Under Wine, starting a process now and then fails with
/// ERROR_INTERNAL_ERROR (1359) before the program runs at all; that start, and only that, is tried again.
pub fn output_of(cmd: &mut Command) -> std::process::Output {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut attempts = 0;
    loop {
        match cmd.output() {
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && attempts < 3 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            result => return result.expect("run kvproxy"),
        }
    }
}

/// Runs the command and expects success with JSON on stdout.
pub fn run_json(cmd: &mut Command) -> Value {
    let (stdout, stderr) = run_ok(cmd);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"))
}

/// Runs the command and expects it to fail with `code`, nothing on stdout, and exactly one non-empty stderr
/// line that starts with `error: `. Returns that line.
pub fn run_fail(cmd: &mut Command, code: i32) -> String {
    let out = output_of(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code (None = killed by the timeout)\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.is_empty(),
        "nothing belongs on stdout when a command fails, got: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one stderr line, got:\n{stderr}");
    assert!(
        lines[0].starts_with("error: "),
        "the stderr line must start with `error: `: {stderr}"
    );
    lines[0].to_string()
}

/// Bad input: exit code 2 and one `error:` line containing every needle.
pub fn input_error(cmd: &mut Command, needles: &[&str]) -> String {
    let line = run_fail(cmd, 2);
    assert_contains(&line, needles);
    line
}

pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

pub fn is_base64url(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

pub fn b64url_decode(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("not base64url without padding ({e}): {s}"))
}

/// Splits a compact JWT and decodes its header and claims, failing the test if it is not one.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three dot-separated parts: {token}");
    for part in &parts {
        assert!(is_base64url(part), "JWT part is not base64url: {part}");
    }
    let json = |part: &str| -> Value {
        serde_json::from_slice(&b64url_decode(part)).unwrap_or_else(|e| panic!("JWT part is not JSON ({e}): {part}"))
    };
    (json(parts[0]), json(parts[1]))
}

/// A loopback port nobody listens on (bound, read, released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// `kvproxy serve` on a free port with this test's config dir and agent socket; `command` brings the API
/// key and keyring settings. Its stderr is piped, for tests that read it.
pub fn start_server_with(env: &TestEnv, mut command: std::process::Command) -> Server {
    command
        .env("KVPROXY_CONFIG_DIR", env.config_dir())
        .env("KVPROXY_AGENT_SOCKET", env.agent_socket())
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped());
    shared::start_serve(command, &[])
}

/// One HTTP/1.1 request over a plain socket: (status, body).
pub fn http(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    std::io::Write::write_all(&mut stream, request.as_bytes()).expect("send");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).expect("read response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
