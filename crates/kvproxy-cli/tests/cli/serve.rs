//! `kvproxy serve`, `kvproxy env` and `kvproxy api-key`: start, answer, stop cleanly; refuse unsafe binds;
//! print what Azure SDKs need; keep the API key in the OS keyring.

use crate::support::{KVPROXY, Server, TestEnv, http, input_error, run_fail, run_ok, start_server_with};
use std::io::Read;
use std::time::{Duration, Instant};

const KEY: &str = "cli-test-key-0123456789abcdef0123456789abcdef";

fn start_server(env: &TestEnv) -> Server {
    let mut command = std::process::Command::new(KVPROXY);
    command.env("KVPROXY_KEYRING", "off").env("KVPROXY_API_KEY", KEY);
    // Windows sends console control events to process groups: a group of its own lets the test press
    // Ctrl-Break for this server alone.
    #[cfg(windows)]
    {
        share_a_console();
        std::os::windows::process::CommandExt::creation_flags(&mut command, 0x0000_0200); // CREATE_NEW_PROCESS_GROUP
    }
    start_server_with(env, command)
}

/// What a user's Ctrl-C in the server's terminal does: SIGINT on Unix; on Windows Ctrl-Break to the
/// server's process group (Windows delivers Ctrl-C only to a whole console, which is the test's too).
fn interrupt(child: &std::process::Child) {
    #[cfg(unix)]
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent};
        // SAFETY: plain call with a process group id (the child's pid, as it leads its own group).
        let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, child.id()) };
        assert_ne!(sent, 0, "Ctrl-Break: {}", std::io::Error::last_os_error());
    }
}

/// Console control events travel within a console. The test runner (its output piped to cargo) has none, so
/// it makes one, which the server it starts next shares, while its own output keeps going to cargo.
#[cfg(windows)]
fn share_a_console() {
    use windows_sys::Win32::System::Console::{
        AllocConsole, GetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, SetStdHandle,
    };
    static CONSOLE: std::sync::Once = std::sync::Once::new();
    CONSOLE.call_once(|| {
        let streams = [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE];
        // SAFETY: plain calls on this process's standard handles, put back as they were after AllocConsole
        // (which fails harmlessly when there is a console already).
        unsafe {
            let saved = streams.map(|stream| GetStdHandle(stream));
            AllocConsole();
            for (stream, handle) in streams.into_iter().zip(saved) {
                SetStdHandle(stream, handle);
            }
        }
    });
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine 8 does not deliver console control events to a child's process group (GenerateConsoleCtrlEvent \
              fails with ERROR_INVALID_ACCESS, or ERROR_INVALID_HANDLE on a terminal); on Windows run it with --ignored"
)]
fn serve_answers_tokens_and_stops_cleanly_on_ctrl_c() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let mut server = start_server(&env);
    let banner = server.banner.join("\n");
    assert!(banner.contains("/swagger/index.html"), "{banner}");
    assert!(banner.contains("API key"), "{banner}");

    assert_eq!(http(server.port, "/health", &[]).0, 200);
    assert_eq!(http(server.port, "/api/profiles/demo/token", &[]).0, 401);
    let (status, token) = http(
        server.port,
        "/api/profiles/demo/token?format=raw",
        &[("X-Api-Key", KEY)],
    );
    assert_eq!(status, 200, "{token}");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    interrupt(&server.child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit after Ctrl-C: {status:?}");
    let mut stderr = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(
        !stderr.contains(KEY) && !stderr.contains(&token),
        "no secrets on stderr: {stderr}"
    );
}

/// Nobody can answer a `confirm` question for a headless server: its tokens are refused over HTTP and to the
/// CLI through the agent, with how to get them; the CLI's own `--no-agent` signs with the user's sign-in.
/// Each answer is one log line naming the program that asked.
#[test]
fn serve_refuses_confirm_profiles_and_logs_who_asked() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    run_ok(env.kvproxy().args(["profile", "confirm", "demo", "on"]));
    let mut server = start_server(&env);

    let line = run_fail(env.kvproxy().args(["token", "demo"]), 3);
    assert!(line.contains("--no-confirm"), "{line}");
    let (own, _) = run_ok(env.kvproxy().args(["token", "demo", "--no-agent"]));
    assert_eq!(own.trim().split('.').count(), 3, "{own}");
    let (status, body) = http(server.port, "/api/profiles/demo/token", &[("X-Api-Key", KEY)]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("nobody can be asked"), "{body}");

    // Each line is on stderr once its answer is sent; how the server stops does not matter here.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut stderr = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let this_test = format!("(pid {})", std::process::id());
    assert!(
        stderr.lines().any(|l| l.contains("403 kvproxy token profile=demo by")
            && l.ends_with(&format!("{this_test} through the kvproxy CLI"))),
        "the CLI's request, named by the program that ran it: {stderr}"
    );
    // Under Wine the API does not look its callers up, and says so.
    let http_caller = if kvproxy_server::peer::table_too_slow() {
        "not looked up under Wine (its connection table is too slow to read per request)".to_string()
    } else {
        this_test.clone()
    };
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("403 GET /api/profiles/{name}/token profile=demo by") && l.ends_with(&http_caller)),
        "the HTTP request, named by this test's process: {stderr}"
    );
}

#[test]
fn serve_refuses_a_non_loopback_bind_unless_forced() {
    let env = TestEnv::new();
    let line = input_error(
        env.kvproxy()
            .args(["serve", "--port", "0", "--bind", "0.0.0.0"])
            .env("KVPROXY_API_KEY", KEY),
        &["0.0.0.0", "not a loopback address", "--unsafe-bind"],
    );
    assert!(!line.contains(KEY));
}

#[test]
fn env_prints_managed_identity_variables_for_each_shell() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let (stdout, _) = run_ok(
        env.kvproxy()
            .args(["env", "demo", "--port", "5616"])
            .env("KVPROXY_API_KEY", KEY),
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "export IDENTITY_ENDPOINT='http://localhost:5616/msi/demo/token'",
            &format!("export IDENTITY_HEADER='{KEY}'")
        ]
    );
    let (stdout, _) = run_ok(
        env.kvproxy()
            .args(["env", "--shell", "powershell"])
            .env("KVPROXY_API_KEY", KEY),
    );
    assert!(
        stdout.contains("$env:IDENTITY_ENDPOINT = 'http://localhost:5616/msi/demo/token'"),
        "{stdout}"
    );
    run_fail(env.kvproxy().args(["env", "nope"]).env("KVPROXY_API_KEY", KEY), 2);
}

#[test]
fn api_key_lives_in_the_os_keyring_and_rotates() {
    if std::env::var("KVPROXY_REQUIRE_KEYRING").as_deref() != Ok("1") {
        // Without the throwaway keyring of `make test` this would read or rotate the developer's own key.
        eprintln!("skipped: runs only inside scripts/with-keyring.sh (KVPROXY_REQUIRE_KEYRING=1)");
        return;
    }
    let env = TestEnv::new();
    let show = || {
        run_ok(env.kvproxy_with_keyring().args(["api-key", "show"]))
            .0
            .trim()
            .to_string()
    };
    let first = show();
    assert_eq!(first.len(), 43, "256 bits, base64url: {first}");
    assert_eq!(show(), first, "created once, then reused");
    let (rotated, note) = run_ok(env.kvproxy_with_keyring().args(["api-key", "rotate"]));
    let rotated = rotated.trim().to_string();
    assert_ne!(rotated, first);
    assert_eq!(show(), rotated);
    assert!(note.contains("no running app"), "{note}");

    // With a server running on the keyring's key, a rotation reaches it at once over the agent socket.
    let mut command = std::process::Command::new(KVPROXY);
    command.env_remove("KVPROXY_API_KEY");
    let server = start_server_with(&env, command);
    let token_route = "/api/profiles/none/token";
    assert_eq!(
        http(server.port, token_route, &[("X-Api-Key", &rotated)]).0,
        404,
        "the key in use"
    );
    let (newest, note) = run_ok(env.kvproxy_with_keyring().args(["api-key", "rotate"]));
    let newest = newest.trim().to_string();
    assert!(note.contains("took the new key"), "{note}");
    assert_eq!(
        http(server.port, token_route, &[("X-Api-Key", &rotated)]).0,
        401,
        "the old key is refused"
    );
    assert_eq!(http(server.port, token_route, &[("X-Api-Key", &newest)]).0, 404);
}

/// `kvproxy token` and `key-info` ask the running server first (same output, same exit codes), fall back to
/// minting in-process when it is gone, and `--no-agent` skips it.
#[test]
fn token_and_key_info_are_served_by_the_running_server() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let mut server = start_server(&env);
    assert!(server.banner.join("\n").contains("CLI agent:"), "{:?}", server.banner);
    let agent_calls = || {
        let (status, body) = http(server.port, "/api/activity", &[("X-Api-Key", KEY)]);
        assert_eq!(status, 200, "{body}");
        body.matches("\"action\":\"kvproxy token\"").count()
    };

    let token = |extra: &[&str]| run_ok(env.kvproxy().args(["token", "demo"]).args(extra));
    let (first, note) = token(&[]);
    let (second, _) = token(&[]);
    assert_eq!(first, second, "the server's cached token");
    assert!(note.contains("DEMO token"), "{note}");
    assert_eq!(agent_calls(), 2);
    let (own, own_note) = token(&["--no-agent"]);
    assert_ne!(own, first, "--no-agent mints in this process");
    assert_eq!(own_note, note, "the same notes either way");
    assert_eq!(agent_calls(), 2);
    let json = crate::support::run_json(env.kvproxy().args(["token", "demo", "--json"]));
    assert_eq!(json["access_token"].as_str(), Some(first.trim()));
    assert!(json["expires_in"].as_i64().is_some_and(|s| s > 0), "{json}");

    // Errors: the same line and exit code as in-process.
    let served = run_fail(env.kvproxy().args(["token", "nope"]), 2);
    let own = run_fail(env.kvproxy().args(["token", "nope", "--no-agent"]), 2);
    assert_eq!(served, own);

    let (info, _) = run_ok(env.kvproxy().args(["key-info", "demo"]));
    let (own_info, _) = run_ok(env.kvproxy().args(["key-info", "demo", "--no-agent"]));
    assert_eq!(info, own_info);
    assert!(info.contains("x5t#S256"), "{info}");

    // The server dies without cleaning up: its socket is stale, the CLI removes it and mints itself. (A
    // Windows pipe goes with its server: there is nothing stale to remove.)
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    #[cfg(unix)]
    assert!(env.agent_socket().exists());
    let (after, note) = token(&[]);
    assert_eq!(after.trim().split('.').count(), 3, "{after}");
    assert!(
        !note.contains("not using the running app"),
        "a gone app is no news: {note}"
    );
    #[cfg(unix)]
    assert!(!env.agent_socket().exists(), "the stale socket was removed");
}

#[test]
fn api_key_without_a_keyring_says_what_to_do() {
    let env = TestEnv::new();
    let line = run_fail(env.kvproxy().args(["api-key", "show"]), 5);
    assert!(line.contains("KVPROXY_API_KEY"), "{line}");
}
