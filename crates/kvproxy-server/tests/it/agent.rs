//! The CLI's agent over its Unix socket or named pipe: it shares the API's token cache, carries errors with
//! their class, keeps other users' and other configurations' requests out, survives a stale socket, keeps a
//! live agent's pipe name and never lets a hung agent hang its client.

use crate::common::{PROFILE, TestServer, ok_json};
use kvproxy_app::ApiKeySource;
use kvproxy_core::ErrorClass;
use kvproxy_emulator::Route;
use kvproxy_server::agent::protocol::{Envelope, PROTOCOL_VERSION, Request, Response};
use kvproxy_server::agent::{AgentError, AgentServer, HELLO_TIMEOUT, Outcome, ask};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A private runtime directory, as `$XDG_RUNTIME_DIR/kvproxy` would be, and the socket in it.
#[cfg(unix)]
fn runtime_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kvproxy").join("agent.sock");
    (dir, socket)
}

/// A pipe name of this test's own (pipes live in one namespace for the whole machine); the temporary
/// directory only lends its unique name.
#[cfg(windows)]
fn runtime_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let unique = dir
        .path()
        .file_name()
        .expect("a temp dir has a name")
        .to_string_lossy()
        .into_owned();
    let pipe = PathBuf::from(format!(r"\\.\pipe\kvproxy-test-{unique}"));
    (dir, pipe)
}

fn envelope(s: &TestServer, request: Request) -> Envelope {
    Envelope {
        protocol: PROTOCOL_VERSION,
        profiles_file: s.app.profile_store().path().to_path_buf(),
        request,
    }
}

fn token_request(profile: &str) -> Request {
    Request::Token {
        profile: Some(profile.into()),
        scope: None,
    }
}

async fn answered(path: &Path, envelope: &Envelope) -> Response {
    match ask(path, envelope).await {
        Outcome::Answered(response) => response,
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_over_the_agent_costs_no_call_to_azure() {
    let s = TestServer::start().await;
    let (_dir, socket) = runtime_dir();
    let agent = AgentServer::start(s.app.clone(), socket.clone())
        .await
        .expect("agent starts");
    #[cfg(unix)]
    {
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(socket.parent().unwrap()),
            0o700,
            "the directory is the user's alone"
        );
        assert_eq!(mode(&socket), 0o600);
    }

    // The HTTP API mints; the agent serves the same token from the shared cache.
    let http = ok_json(s.get(&format!("/api/profiles/{PROFILE}/token")).send().await.unwrap()).await;
    s.emulator.reset_counters();
    let Response::Token(token) = answered(&socket, &envelope(&s, token_request(PROFILE))).await else {
        panic!("not a token");
    };
    assert_eq!(token.access_token.expose(), http["access_token"].as_str().unwrap());
    assert!(token.from_cache);
    assert_eq!(token.profile, PROFILE);
    s.assert_emulator_untouched("a cached token over the agent");

    // Key info from the same caches.
    let Response::KeyInfo { profile, info } = answered(
        &socket,
        &envelope(
            &s,
            Request::KeyInfo {
                profile: None,
                refresh: false,
            },
        ),
    )
    .await
    else {
        panic!("not key info");
    };
    assert_eq!((profile.as_str(), info.key_id.as_str()), (PROFILE, s.cert.kid.as_str()));
    assert_eq!(s.emulator.count(Route::GetCertificate), 0);

    // What the agent did shows in the activity log, without a token.
    let activity = ok_json(s.get("/api/activity").send().await.unwrap()).await.to_string();
    assert!(activity.contains(r#""action":"kvproxy token""#), "{activity}");
    // The CLI only relays: the program recorded is the one that ran it (here, whoever ran this test).
    #[cfg(target_os = "linux")]
    {
        let records: Vec<serde_json::Value> = serde_json::from_str(&activity).unwrap();
        let agent = records.iter().find(|r| r["source"] == "agent").unwrap();
        assert_eq!(
            agent["program"]["pid"],
            serde_json::json!(std::os::unix::process::parent_id()),
            "{agent}"
        );
        assert!(
            agent["caller"].as_str().unwrap().ends_with("through the kvproxy CLI"),
            "{agent}"
        );
    }
    assert!(!activity.contains(token.access_token.expose()));
    assert!(
        !format!("{token:?}").contains(token.access_token.expose()),
        "a token in Debug output"
    );

    drop(agent);
    #[cfg(unix)]
    assert!(!socket.exists(), "a stopped agent removes its socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_their_class_and_other_configurations_are_not_served() {
    let s = TestServer::start().await;
    let (_dir, socket) = runtime_dir();
    let _agent = AgentServer::start(s.app.clone(), socket.clone()).await.unwrap();
    match answered(&socket, &envelope(&s, token_request("nope"))).await {
        Response::Error { class, message } => {
            assert_eq!(class, ErrorClass::Input);
            assert!(message.contains("'nope'"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A CLI with another config directory must not get this app's profile of the same name.
    let mut elsewhere = envelope(&s, token_request(PROFILE));
    elsewhere.profiles_file = "/somewhere/else/profiles.toml".into();
    assert!(matches!(
        answered(&socket, &elsewhere).await,
        Response::Unavailable { .. }
    ));
    let mut future = envelope(&s, token_request(PROFILE));
    future.protocol = PROTOCOL_VERSION + 1;
    assert!(matches!(answered(&socket, &future).await, Response::Unavailable { .. }));
    s.assert_emulator_untouched("refused agent requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_applies_to_the_running_api_at_once() {
    let s = TestServer::start().await;
    let (_dir, socket) = runtime_dir();
    let _agent = AgentServer::start(s.app.clone(), socket.clone()).await.unwrap();
    let new_key = kvproxy_app::generate_api_key().unwrap().expose().to_string();
    let rotated = Request::ApiKeyRotated {
        api_key: new_key.clone().into(),
    };
    assert_eq!(answered(&socket, &envelope(&s, rotated)).await, Response::ApiKeyApplied);
    let with_key = |key: &str| s.http.get(s.url("/api/profiles")).bearer_auth(key.to_string()).send();
    assert_eq!(with_key(&s.key).await.unwrap().status(), 401, "the old key is refused");
    assert_eq!(with_key(&new_key).await.unwrap().status(), 200);

    // A key from KVPROXY_API_KEY is the environment's: the agent says so and keeps it.
    let (_dir2, socket2) = runtime_dir();
    let _env_agent = AgentServer::start(s.app_with_key_from(ApiKeySource::Environment), socket2.clone())
        .await
        .unwrap();
    let again = Request::ApiKeyRotated {
        api_key: kvproxy_app::generate_api_key().unwrap(),
    };
    assert!(matches!(
        answered(&socket2, &envelope(&s, again)).await,
        Response::Unavailable { .. }
    ));
    assert_eq!(with_key(&new_key).await.unwrap().status(), 200);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_sockets_are_replaced_and_live_agents_are_not() {
    let s = TestServer::start().await;
    let (_dir, socket) = runtime_dir();
    std::fs::create_dir(socket.parent().unwrap()).unwrap();
    std::fs::set_permissions(socket.parent().unwrap(), std::fs::Permissions::from_mode(0o700)).unwrap();

    // A socket whose app is gone: the client removes it and does the work itself.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let request = envelope(&s, token_request(PROFILE));
    assert!(matches!(ask(&socket, &request).await, Outcome::NoAgent));
    assert!(!socket.exists(), "the stale socket was removed");

    // An agent starting over a stale socket takes its place.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let context = s.app.clone();
    let agent = AgentServer::start(context.clone(), socket.clone())
        .await
        .expect("replaces a stale socket");
    assert!(matches!(answered(&socket, &request).await, Response::Token(_)));

    // A second agent leaves a live one alone.
    match AgentServer::start(context, socket.clone()).await {
        Err(AgentError::AlreadyRunning(path)) => assert_eq!(path, socket),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a second agent took over a live socket"),
    }
    assert!(matches!(answered(&socket, &request).await, Response::Token(_)));
    drop(agent);
}

/// Something that accepts connections at `path` and never says a word, until dropped.
#[cfg(unix)]
fn hung_agent(path: &Path) -> Box<dyn std::any::Any> {
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    std::fs::set_permissions(path.parent().unwrap(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // The kernel accepts from the backlog; nobody reads.
    Box::new(std::os::unix::net::UnixListener::bind(path).unwrap())
}

#[cfg(windows)]
fn hung_agent(path: &Path) -> Box<dyn std::any::Any> {
    let hung = tokio::net::windows::named_pipe::ServerOptions::new()
        .first_pipe_instance(true)
        .create(path)
        .expect("pipe");
    let accepting = tokio::spawn(async move {
        let _ = hung.connect().await;
        std::future::pending::<()>().await;
        drop(hung);
    });
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    Box::new(Abort(accepting))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_agent_makes_the_client_give_up_quickly() {
    let s = TestServer::start().await;
    let (_dir, socket) = runtime_dir();
    let _hung = hung_agent(&socket);
    let started = Instant::now();
    let outcome = ask(&socket, &envelope(&s, token_request(PROFILE))).await;
    let Outcome::Failed(why) = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(why.contains("did not answer"), "{why}");
    // Bounded by the greeting timeout, not the answer timeout (two minutes): a generous margin for a busy
    // machine, far below what a hang would take.
    assert!(
        started.elapsed() < HELLO_TIMEOUT + Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_open_to_others_is_refused_by_both_ends() {
    let s = TestServer::start().await;
    let (_dir, socket) = runtime_dir();
    let dir = socket.parent().unwrap();
    std::fs::create_dir(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let context = s.app.clone();
    match AgentServer::start(context, socket.clone()).await {
        Err(e @ AgentError::OpenDirectory { .. }) => assert!(e.to_string().contains("chmod 700"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("listened in a directory others can enter"),
    }
    assert!(!socket.exists());
    // A client will not send its request into such a directory either.
    let _planted = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let outcome = ask(&socket, &envelope(&s, token_request(PROFILE))).await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("open to other users")),
        "{outcome:?}"
    );
}

/// Windows: the first agent owns the pipe name; a second one is told so and the first keeps answering.
#[cfg(windows)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_agent_keeps_its_pipe_name() {
    let s = TestServer::start().await;
    let (_dir, pipe) = runtime_dir();
    let context = s.app.clone();
    let agent = AgentServer::start(context.clone(), pipe.clone())
        .await
        .expect("agent starts");
    let request = envelope(&s, token_request(PROFILE));
    assert!(matches!(answered(&pipe, &request).await, Response::Token(_)));
    match AgentServer::start(context.clone(), pipe.clone()).await {
        Err(e @ AgentError::NameTaken(_)) => assert!(e.to_string().contains("already held"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a second agent took over a live pipe"),
    }
    // Several clients in a row: every connection gets a fresh pipe instance.
    for _ in 0..3 {
        assert!(matches!(answered(&pipe, &request).await, Response::Token(_)));
    }
    drop(agent);
    // Once the agent is gone, the client finds nothing and works alone; the name is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ask(&pipe, &request).await {
            Outcome::NoAgent => break,
            other => assert!(
                Instant::now() < deadline,
                "still answered after the agent stopped: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _again = AgentServer::start(context, pipe.clone())
        .await
        .expect("the name is free again");
}
