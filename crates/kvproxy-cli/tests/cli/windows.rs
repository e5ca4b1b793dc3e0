//! Windows only (run as Windows programs under Wine by `make test-windows`): the agent's named pipe when
//! another program holds its name first. A pipe name is first come, first served; `kvproxy` must not tell
//! a squatter anything (an `api-key rotate` would hand it the key), and `kvproxy serve` must say that the
//! name is taken instead of serving beside it.

use crate::support::{TestEnv, decode_jwt, run_ok, start_server_with};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::windows::named_pipe::ServerOptions;

/// What a squatter heard: it holds the pipe name, greets every caller like an agent would, and records
/// what each caller sends (nothing, if the caller checked who serves the pipe).
fn squat(runtime: &tokio::runtime::Runtime, pipe: &std::path::Path) -> Arc<Mutex<Vec<u8>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let record = heard.clone();
    let _in_runtime = runtime.enter();
    let mut server = ServerOptions::new()
        .first_pipe_instance(true)
        .create(pipe)
        .expect("the squatter creates the pipe first");
    let name = pipe.to_path_buf();
    runtime.spawn(async move {
        loop {
            if server.connect().await.is_err() {
                return;
            }
            let Ok(next) = ServerOptions::new().create(&name) else {
                return;
            };
            let mut caller = std::mem::replace(&mut server, next);
            let fake_hello = format!(
                "{{\"protocol\":1,\"version\":\"0.1.0\",\"pid\":{}}}\n",
                std::process::id()
            );
            let _ = caller.write_all(fake_hello.as_bytes()).await;
            let mut buffer = [0u8; 4096];
            // A caller that checked hangs up without a word: the read ends with 0 bytes or an error.
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), caller.read(&mut buffer)).await {
                record.lock().expect("not poisoned").extend_from_slice(&buffer[..n]);
            }
        }
    });
    heard
}

#[test]
fn a_squatter_on_the_agent_pipe_hears_nothing_and_serve_says_the_name_is_taken() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let squatter = squat(&runtime, &env.agent_socket());

    // The CLI sees a pipe served by a program that is not KeyVault Proxy, says so in one line and mints the
    // token itself.
    let (stdout, stderr) = run_ok(env.kvproxy().args(["token", "demo"]));
    let (_, claims) = decode_jwt(stdout.trim());
    assert_eq!(claims["aud"], "api://kvproxy-demo");
    let refusal: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("not using the running app"))
        .collect();
    assert_eq!(refusal.len(), 1, "one line about the pipe: {stderr}");
    assert!(refusal[0].contains("not by KeyVault Proxy"), "{stderr}");

    // `kvproxy serve` cannot take the name: it says so, and its HTTP API serves all the same.
    let mut command = std::process::Command::new(crate::support::KVPROXY);
    command
        .env("KVPROXY_KEYRING", "off")
        .env("KVPROXY_API_KEY", "windows-test-key-0123456789abcdef0123456789");
    let mut server = start_server_with(&env, command);
    assert_eq!(crate::support::http(server.port, "/health", &[]).0, 200);
    server.child.kill().expect("stop serve");
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("serve's stderr");
    assert!(stderr.contains("already held by another process"), "{stderr}");

    // And the squatter heard nothing from anyone (its reads end within a second of a caller hanging up).
    std::thread::sleep(Duration::from_secs(1));
    let heard = squatter.lock().expect("not poisoned").clone();
    assert!(
        heard.is_empty(),
        "the squatter heard {:?}",
        String::from_utf8_lossy(&heard)
    );
}
