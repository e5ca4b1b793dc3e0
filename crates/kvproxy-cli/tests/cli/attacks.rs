//! Attacks from docs/SECURITY.md that are the CLI's business: a squatter on the API port, profile names that
//! look like paths, CR/LF in names, and tokens or the API key written to disk.

use crate::support::{KVPROXY, Server, TestEnv, http, input_error, run_fail, run_ok, start_server_with};
use assert_cmd::Command;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEY: &str = "attack-test-key-0123456789abcdef0123456789abcdef";

/// `profile add NAME` of a valid public-cloud profile.
fn add(env: &TestEnv, name: &str) -> Command {
    let mut cmd = env.kvproxy();
    cmd.args(["profile", "add", name])
        .args(["--tenant", "contoso.onmicrosoft.com"])
        .args(["--client-id", "0b4c5f4e-1111-2222-3333-444455556666"])
        .args(["--vault-url", "https://contoso.vault.azure.net"])
        .args(["--certificate", "api-cert"])
        .args(["--scope", "api://x/.default"]);
    cmd
}

/// A plain TCP listener that never answers: whatever holds the port while the app is not running.
struct Squatter {
    listener: TcpListener,
}

impl Squatter {
    fn on(addr: &str) -> Option<Squatter> {
        let listener = TcpListener::bind(addr).ok()?;
        listener.set_nonblocking(true).expect("non-blocking");
        Some(Squatter { listener })
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("local addr").port()
    }

    /// Connections waiting in the backlog (the squatter accepts nothing until asked).
    fn connections(&self) -> usize {
        let mut count = 0;
        loop {
            match self.listener.accept() {
                Ok(_) => count += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return count,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// A squatter on the API port: `kvproxy serve` says so in one line and exits non-zero instead of serving
/// beside it, whether the squatter holds the IPv4 or the IPv6 loopback.
#[test]
fn serve_on_a_squatted_port_fails_in_one_line() {
    let env = TestEnv::new();
    let squatter = Squatter::on("127.0.0.1:0").expect("a free port");
    let port = squatter.port().to_string();
    let line = run_fail(
        env.kvproxy()
            .args(["serve", "--port", &port])
            .env("KVPROXY_API_KEY", KEY),
        1,
    );
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("--port"), "the line says what to do: {line}");
    assert!(!line.contains(KEY), "{line}");
    assert_eq!(squatter.connections(), 0, "serve talked to the squatter");

    // Only the IPv6 loopback taken (skipped where the machine has no IPv6 loopback).
    if let Some(squatter) = Squatter::on("[::1]:0") {
        let port = squatter.port().to_string();
        let line = run_fail(
            env.kvproxy()
                .args(["serve", "--port", &port])
                .env("KVPROXY_API_KEY", KEY),
            1,
        );
        assert!(line.contains(&format!("[::1]:{port}")), "{line}");
    } else {
        eprintln!("no IPv6 loopback here: the IPv6 half of this test did not run");
    }
}

/// The CLI never talks to the API port: `token` and `key-info` ask the running app over the agent socket
/// or do the work themselves, so a squatter on the port (named by `KVPROXY_PORT` and `--port`) gets no
/// connection and so never the API key.
#[test]
fn the_cli_never_connects_to_the_api_port() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let squatter = Squatter::on("127.0.0.1:0").expect("a free port");
    let port = squatter.port().to_string();
    let with_port = |args: &[&str]| {
        let mut cmd = env.kvproxy();
        cmd.args(args).env("KVPROXY_PORT", &port).env("KVPROXY_API_KEY", KEY);
        cmd
    };
    let (token, _) = run_ok(&mut with_port(&["token", "demo"]));
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    run_ok(&mut with_port(&["key-info", "demo"]));
    let (exports, _) = run_ok(&mut with_port(&["env", "demo", "--port", &port]));
    assert!(
        exports.contains(&format!("localhost:{port}/msi/demo/token")),
        "{exports}"
    );
    assert_eq!(squatter.connections(), 0, "the CLI connected to the API port");

    // Positive control: a connection to the squatter is counted.
    let _probe = std::net::TcpStream::connect(("127.0.0.1", squatter.port())).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while seen == 0 && Instant::now() < deadline {
        seen = squatter.connections();
    }
    assert_eq!(seen, 1, "the squatter counts connections");
}

/// Names that look like paths are not profile names: `add` refuses them (exit 2) and writes nothing
/// anywhere, `import` refuses a document holding one, and every command that takes a name finds none.
#[test]
fn path_like_profile_names_are_refused_and_write_nothing() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "api"));
    let before = std::fs::read(env.profiles_file()).expect("profiles.toml");
    let parent = env.config_dir().parent().expect("a parent").to_path_buf();
    let listing = |dir: &Path| -> Vec<PathBuf> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        entries
    };
    let config_before = listing(env.config_dir());
    let names = [
        "../evil",
        "../../evil",
        "..",
        ".",
        "%2e%2e%2fevil",
        "/tmp/evil",
        "a/b",
        "..\\evil",
        "C:\\evil",
        ".hidden",
        "api/../api",
        "api\0",
    ];
    for name in names {
        if name.contains('\0') {
            // The OS cannot pass a NUL in an argument; nothing to try.
            continue;
        }
        input_error(&mut add(&env, name), &["not a valid profile name"]);
        for args in [
            vec!["token", name],
            vec!["key-info", name],
            vec!["profile", "show", name],
            vec!["profile", "rm", name],
            vec!["profile", "default", name],
            vec!["profile", "export", name],
        ] {
            let line = run_fail(env.kvproxy().args(&args), 2);
            assert!(line.contains("no profile named"), "{args:?}: {line}");
        }
        let document = format!(
            "[profiles.\"{}\"]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"0b4c5f4e-1111-2222-3333-444455556666\"\nvault_url = \"https://contoso.vault.azure.net\"\ncertificate = \"api-cert\"\nscopes = [\"api://x/.default\"]\n",
            name.replace('\\', "\\\\")
        );
        let file = env.config_dir().join("import.toml");
        std::fs::write(&file, document).expect("write the import");
        run_fail(env.kvproxy().args(["profile", "import"]).arg(&file), 2);
        std::fs::remove_file(&file).expect("remove the import");
    }
    assert_eq!(
        std::fs::read(env.profiles_file()).unwrap(),
        before,
        "profiles.toml changed"
    );
    assert_eq!(
        listing(env.config_dir()),
        config_before,
        "files appeared in the config dir"
    );
    for stray in ["evil", "hidden"] {
        assert!(
            !parent.join(stray).exists(),
            "{stray} was written next to the config dir"
        );
    }
}

/// A name with CR/LF cannot forge a second output line: every error is exactly one `error:` line.
#[test]
fn cr_lf_in_names_cannot_forge_lines() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "api"));
    for name in ["nope\nerror: forged", "nope\r\nok: forged", "nope\rforged"] {
        for args in [
            vec!["token", name],
            vec!["key-info", name],
            vec!["profile", "show", name],
            vec!["profile", "add", name],
        ] {
            let mut cmd = if args[1] == "add" {
                add(&env, name)
            } else {
                let mut cmd = env.kvproxy();
                cmd.args(&args);
                cmd
            };
            // run_fail asserts exactly one stderr line and an empty stdout.
            let line = run_fail(&mut cmd, 2);
            assert!(!line.contains('\r'), "{args:?}: {line:?}");
        }
    }
}

/// Every place a per-user program might write, as environment variables pointing inside `home`.
fn home_env(home: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut vars = Vec::new();
    for (var, dir) in [
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_RUNTIME_DIR", "run"),
        ("TMPDIR", "tmp"),
    ] {
        let path = home.join(dir);
        std::fs::create_dir_all(&path).expect("create a home directory");
        vars.push((var, path));
    }
    vars
}

/// `kvproxy serve` with the API key, the keyring off and every per-user directory inside `home`.
fn start_serve(env: &TestEnv, home: &Path) -> Server {
    let mut command = std::process::Command::new(KVPROXY);
    command
        .envs(home_env(home))
        .env("KVPROXY_KEYRING", "off")
        .env("KVPROXY_API_KEY", KEY);
    start_server_with(env, command)
}

/// `GET path` with the API key; the body of its 200 answer.
fn http_body(port: u16, path: &str) -> String {
    let (status, body) = http(port, path, &[("X-Api-Key", KEY)]);
    assert_eq!(status, 200, "{body}");
    body
}

/// Every regular file under `dir`, with its bytes.
fn files_under(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file()
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push((path, bytes));
        }
    }
}

/// Tokens minted every way (in-process, through the agent, over HTTP) and the API key: none of them is
/// written to any file, in the config dir or anywhere in a private HOME and XDG tree.
#[test]
fn tokens_and_the_api_key_never_reach_the_disk() {
    let env = TestEnv::new();
    let home = tempfile::tempdir().expect("a private home");
    let _demo = env.start_demo_with(|cmd| {
        cmd.envs(home_env(home.path()));
    });
    let serve = start_serve(&env, home.path());
    let kvproxy = |args: &[&str]| {
        let mut cmd = env.kvproxy();
        cmd.args(args).env("KVPROXY_API_KEY", KEY).envs(home_env(home.path()));
        run_ok(&mut cmd).0.trim().to_string()
    };
    let mut tokens = vec![
        kvproxy(&["token", "demo"]),
        kvproxy(&["token", "demo", "--no-agent"]),
        http_body(serve.port, "/api/profiles/demo/token?format=raw&skip_cache=true"),
    ];
    let json: serde_json::Value =
        serde_json::from_str(&kvproxy(&["token", "demo", "--json", "--no-agent"])).expect("JSON");
    tokens.push(json["access_token"].as_str().expect("a token").to_string());
    kvproxy(&["key-info", "demo", "--refresh"]);
    drop(serve);

    let mut files = Vec::new();
    files_under(env.config_dir(), &mut files);
    files_under(home.path(), &mut files);
    assert!(
        files.iter().any(|(path, _)| path.ends_with("profiles.toml")),
        "the scan sees the config dir: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for (i, token) in tokens.iter().enumerate() {
            assert_eq!(token.split('.').count(), 3, "token #{i} is a JWT");
            let signature = token.rsplit('.').next().unwrap_or_default();
            assert!(!text.contains(signature), "token #{i} is in {}", path.display());
        }
        assert!(!text.contains(KEY), "the API key is in {}", path.display());
        assert!(!text.contains("eyJ"), "something JWT-like is in {}", path.display());
    }
}
