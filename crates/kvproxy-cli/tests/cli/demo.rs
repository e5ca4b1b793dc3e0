//! Against a running `kvproxy demo` (emulated Entra ID + Key Vault over HTTPS, real RSA): tokens, key
//! info, and the exit codes for "Entra refused" (3) and "could not reach it" (4).

use crate::support::{
    DEMO_AUDIENCE, DEMO_CLIENT_ID, Demo, KVPROXY, TestEnv, assert_contains, b64url_decode, closed_port, decode_jwt,
    input_error, is_base64url, run_fail, run_json, run_ok,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A client id that is a GUID but no app of the emulated tenant.
const UNKNOWN_CLIENT_ID: &str = "99999999-8888-4777-8666-555555555555";

/// `kvproxy token ARGS…`: expects success, exactly one line on stdout, and returns it without the newline.
fn token_line(env: &TestEnv, args: &[&str]) -> (String, String) {
    let (stdout, stderr) = run_ok(env.kvproxy().arg("token").args(args));
    assert!(stdout.ends_with('\n'), "the token line ends with a newline: {stdout:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "`kvproxy token` prints exactly one line on stdout, got:\n{stdout}"
    );
    assert_eq!(lines[0], lines[0].trim(), "no stray whitespace around the token");
    (lines[0].to_string(), stderr)
}

/// `GET https://api.localhost:PORT/me` with a bearer token, trusting only the demo CA.
fn call_demo_api(env: &TestEnv, port: u16, token: &str) -> (u16, Value) {
    let ca = std::fs::read(env.demo_ca()).expect("demo-ca.pem written by `kvproxy demo`");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("demo CA is PEM")])
            .resolve("api.localhost", SocketAddr::from(([127, 0, 0, 1], port)))
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let response = client
            .get(format!("https://api.localhost:{port}/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("demo API reachable");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.expect("demo API answers JSON");
        (status, body)
    })
}

/// Adds a profile that copies the demo profile (cloud, CA, vault, certificate, scope) with another client
/// id and, optionally, another port for the authority and the vault.
fn add_demo_copy(env: &TestEnv, demo: &Demo, name: &str, client_id: &str, port: Option<u16>) {
    let profile = run_json(env.kvproxy().args(["profile", "show", "demo", "--json"]));
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("string field expected: {v} in {profile}"))
            .to_string()
    };
    let custom = &profile["custom_cloud"];
    let mut vault_url = text(&profile["vault_url"]);
    let mut authority = text(&custom["authority_host"]);
    if let Some(port) = port {
        let from = format!(":{}", demo.port);
        let to = format!(":{port}");
        assert!(
            vault_url.contains(&from) && authority.contains(&from),
            "demo URLs carry the port: {profile}"
        );
        vault_url = vault_url.replace(&from, &to);
        authority = authority.replace(&from, &to);
    }
    let mut cmd = env.kvproxy();
    cmd.args(["profile", "add", name, "--cloud", "custom", "--credential", "emulator"])
        .args(["--tenant", &text(&profile["tenant"])])
        .args(["--client-id", client_id])
        .args(["--vault-url", &vault_url])
        .args(["--certificate", &text(&profile["certificate"])])
        .args(["--scope", &text(&profile["scopes"][0])])
        .args(["--authority-host", &authority])
        .args(["--ca-file", &text(&custom["ca_file"])]);
    for suffix in custom["vault_suffixes"].as_array().expect("vault_suffixes") {
        cmd.args(["--vault-suffix", &text(suffix)]);
    }
    run_ok(&mut cmd);
}

#[test]
fn demo_writes_its_profile_and_ca() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    assert!(
        demo.banner.iter().any(|l| l.contains("DEMO")),
        "the banner says it is a demo: {:#?}",
        demo.banner
    );
    let ca = std::fs::read_to_string(env.demo_ca()).expect("demo-ca.pem");
    assert!(
        ca.starts_with("-----BEGIN CERTIFICATE-----"),
        "a PEM certificate (public part only): {ca}"
    );
    assert!(
        !ca.contains("PRIVATE KEY"),
        "the CA's private key never leaves the demo process"
    );
    let profile = run_json(env.kvproxy().args(["profile", "show", "demo", "--json"]));
    assert_eq!(profile["client_id"], DEMO_CLIENT_ID);
    assert_eq!(profile["demo"], true);
    assert_eq!(
        profile["default"], true,
        "the demo profile is the default of an empty config"
    );
    assert_eq!(
        profile["vault_url"],
        format!("https://demo.vault.localhost:{}/", demo.port)
    );
}

/// The commands `kvproxy demo` suggests run as printed: by the binary's path while the PATH does not find it
/// (a fresh `make run` build), as plain `kvproxy` once it does (`make install`).
#[test]
fn demo_prints_commands_that_run_as_printed() {
    let suggested = |demo: &Demo| {
        demo.banner
            .iter()
            .find(|line| line.trim_end().ends_with("key-info demo"))
            .unwrap_or_else(|| panic!("no key-info command in {:#?}", demo.banner))
            .trim()
            .to_string()
    };
    // A PATH with the system's own programs only, and the shell that runs what a user pastes.
    let (system_path, shell, shell_flag) = if cfg!(windows) {
        (r"C:\windows\system32;C:\windows", "cmd", "/c")
    } else {
        ("/usr/bin:/bin", "sh", "-c")
    };
    let env = TestEnv::new();
    let demo = env.start_demo_with(|command| {
        command.env("PATH", system_path);
    });
    let command = suggested(&demo);
    let binary = std::fs::canonicalize(KVPROXY).expect("the binary exists");
    let binary = binary.to_string_lossy();
    // Windows spells the path the way the program sees it (a drive letter; no \\?\ prefix).
    let printed_as = binary.strip_prefix(r"\\?\").unwrap_or(&binary);
    assert!(
        command.starts_with(KVPROXY) || command.starts_with(printed_as),
        "not on the PATH, so by its path: {command}"
    );
    let out = std::process::Command::new(shell)
        .args([shell_flag, &command])
        .env("PATH", system_path)
        .env("KVPROXY_CONFIG_DIR", env.config_dir())
        .env("KVPROXY_AGENT_SOCKET", env.agent_socket())
        .env("KVPROXY_KEYRING", "off")
        .output()
        .expect(shell);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("key id"), "{command}: {stdout}");
    drop(demo);

    let on_path = TestEnv::new();
    let dir = std::path::Path::new(KVPROXY).parent().expect("the binary's directory");
    let separator = if cfg!(windows) { ';' } else { ':' };
    let demo = on_path.start_demo_with(|command| {
        command.env("PATH", format!("{}{separator}{system_path}", dir.display()));
    });
    assert_eq!(suggested(&demo), "kvproxy key-info demo");
}

#[test]
fn token_prints_one_jwt_that_the_demo_api_accepts() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    let (token, stderr) = token_line(&env, &["demo"]);
    assert!(
        stderr.contains("DEMO"),
        "stderr says the token is a demo token: {stderr}"
    );

    let (header, claims) = decode_jwt(&token);
    assert_eq!(header["typ"], "JWT", "{header}");
    assert_eq!(claims["aud"], DEMO_AUDIENCE, "{claims}");
    assert_eq!(claims["kvproxy_emulator"], true, "{claims}");
    assert_eq!(claims["appid"], DEMO_CLIENT_ID, "{claims}");

    // `curl -H "Authorization: Bearer $(kvproxy token demo)" …`: the token opens the demo API.
    let (status, body) = call_demo_api(&env, demo.port, &token);
    assert_eq!(status, 200, "demo API refused the token: {body}");
    assert_eq!(body["appid"], DEMO_CLIENT_ID, "{body}");
    let roles: Vec<&str> = body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        roles.contains(&"Demo.Read") && roles.contains(&"Demo.Write"),
        "roles: {body}"
    );

    // ... and the API really checks it: a changed signature is refused.
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = signature.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let forged = format!("{signing_input}.{}", String::from_utf8(bytes).unwrap());
    let (status, body) = call_demo_api(&env, demo.port, &forged);
    assert_eq!(status, 401, "a forged token must be refused: {body}");
}

#[test]
fn token_json_has_expiry_scope_and_claims() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let out = run_json(env.kvproxy().args(["token", "demo", "--json"]));
    let token = out["access_token"].as_str().expect("access_token");
    let (_, claims) = decode_jwt(token);
    assert_eq!(out["claims"], claims, "claims are the decoded access token");
    assert_eq!(out["claims"]["aud"], DEMO_AUDIENCE);
    assert_eq!(out["demo"], true);
    assert_eq!(out["scope"], "api://kvproxy-demo/.default");
    assert_eq!(out["profile"], "demo");
    assert_eq!(out["token_type"], "Bearer");

    let expires_in = out["expires_in"].as_i64().expect("expires_in is a number");
    assert!((3000..=3600).contains(&expires_in), "expires_in {expires_in}");
    let expires_on = OffsetDateTime::parse(out["expires_on"].as_str().expect("expires_on"), &Rfc3339)
        .expect("expires_on is RFC 3339");
    let from_now = (expires_on - OffsetDateTime::now_utc()).whole_seconds();
    assert!(
        (expires_in - from_now).abs() <= 60,
        "expires_on ({expires_on}) and expires_in ({expires_in}) agree"
    );
    let exp = claims["exp"].as_i64().expect("exp claim");
    assert!(
        (exp - expires_on.unix_timestamp()).abs() <= 60,
        "expires_on matches the token's exp"
    );
}

#[test]
fn token_scope_override_changes_the_audience() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let (token, _) = token_line(&env, &["demo", "--scope", "api://other/.default"]);
    let (_, claims) = decode_jwt(&token);
    assert_eq!(claims["aud"], "api://other", "{claims}");
    assert_eq!(claims["appid"], DEMO_CLIENT_ID, "{claims}");

    let out = run_json(
        env.kvproxy()
            .args(["token", "demo", "--json", "--scope", "api://other/.default"]),
    );
    assert_eq!(out["scope"], "api://other/.default");
    assert_eq!(out["claims"]["aud"], "api://other");

    // the profile's own scope is untouched
    let (token, _) = token_line(&env, &["demo"]);
    assert_eq!(decode_jwt(&token).1["aud"], DEMO_AUDIENCE);
}

#[test]
fn token_with_a_delegated_scope_is_bad_input() {
    let env = TestEnv::new();
    let _demo = env.start_demo();
    input_error(
        env.kvproxy().args(["token", "demo", "--scope", "https://x/User.Read"]),
        &["scope", "/.default"],
    );
    input_error(
        env.kvproxy()
            .args(["token", "demo", "--scope", "api://a/.default api://b/.default"]),
        &["scope"],
    );
}

#[test]
fn token_and_key_info_without_a_name_use_the_default_profile() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    add_demo_copy(&env, &demo, "stranger", UNKNOWN_CLIENT_ID, None);

    let (token, _) = token_line(&env, &[]);
    assert_eq!(decode_jwt(&token).1["appid"], DEMO_CLIENT_ID, "demo is the default");
    let info = run_json(env.kvproxy().args(["key-info", "--json"]));
    assert_eq!(info["profile"], "demo");

    // move the default: a bare `token` now uses the other profile (whose app the tenant does not know)
    run_ok(env.kvproxy().args(["profile", "default", "stranger"]));
    let line = run_fail(env.kvproxy().arg("token"), 3);
    assert_contains(&line, &["AADSTS700016", UNKNOWN_CLIENT_ID]);
    run_ok(env.kvproxy().args(["profile", "default", "demo"]));
    let (token, _) = token_line(&env, &[]);
    assert_eq!(decode_jwt(&token).1["appid"], DEMO_CLIENT_ID);
}

#[test]
fn key_info_shows_the_versioned_key_id_and_both_thumbprints() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    let (text, _) = run_ok(env.kvproxy().args(["key-info", "demo"]));
    let field = |label: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"));
        line[label.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let key_id = field("key id");
    let prefix = format!("https://demo.vault.localhost:{}/keys/kvproxy-demo/", demo.port);
    let version = key_id
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("key id {key_id} under {prefix}"));
    assert!(
        version.len() == 32 && version.bytes().all(|c| c.is_ascii_hexdigit()),
        "key id ends with a 32-hex version: {key_id}"
    );
    let sha1 = field("x5t (SHA-1)");
    let sha256 = field("x5t#S256 (SHA-256)");
    assert!(
        sha1.len() == 27 && is_base64url(&sha1),
        "x5t is 27 base64url chars: {sha1}"
    );
    assert!(
        sha256.len() == 43 && is_base64url(&sha256),
        "x5t#S256 is 43 base64url chars: {sha256}"
    );

    let json = run_json(env.kvproxy().args(["key-info", "demo", "--json"]));
    assert_eq!(json["profile"], "demo");
    assert_eq!(json["key_id"], key_id.as_str());
    assert_eq!(json["x5t"], sha1.as_str());
    assert_eq!(json["x5t#S256"], sha256.as_str());
    assert_eq!(json["certificate"], "kvproxy-demo");
    assert_eq!(
        json["certificate_version"], version,
        "the key id pins the certificate's version"
    );
    let hex: String = b64url_decode(&sha1).iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(
        json["thumbprint_sha1_hex"],
        hex.as_str(),
        "hex thumbprint is the SHA-1 x5t"
    );
    assert_eq!(b64url_decode(&sha256).len(), 32);
    let when = |k: &str| OffsetDateTime::parse(json[k].as_str().expect(k), &Rfc3339).expect(k);
    let now = OffsetDateTime::now_utc();
    assert!(
        when("not_before") <= now && now < when("expires"),
        "the demo certificate is valid now: {json}"
    );
}

#[test]
fn token_for_an_app_the_tenant_does_not_know_exits_3_with_aadsts700016_and_a_hint() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    add_demo_copy(&env, &demo, "stranger", UNKNOWN_CLIENT_ID, None);
    let line = run_fail(env.kvproxy().args(["token", "stranger"]), 3);
    assert_contains(&line, &["AADSTS700016", UNKNOWN_CLIENT_ID, "Hint:", "client id"]);
    assert!(!line.contains("eyJ"), "no token or assertion in an error: {line}");
}

/// Entra's descriptions end with a full stop; the hint appended after one must not double it
/// ("… wrong tenant.. Hint: …").
#[test]
fn entra_refusal_reads_cleanly() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    add_demo_copy(&env, &demo, "stranger", UNKNOWN_CLIENT_ID, None);
    let line = run_fail(env.kvproxy().args(["token", "stranger"]), 3);
    assert!(!line.contains(".."), "doubled full stop: {line}");
}

#[test]
fn unreachable_endpoints_exit_4_within_the_timeout() {
    let env = TestEnv::new();
    let demo = env.start_demo();
    let port = closed_port();
    add_demo_copy(&env, &demo, "offline", DEMO_CLIENT_ID, Some(port));
    for command in ["token", "key-info"] {
        let started = Instant::now();
        let line = run_fail(
            env.kvproxy()
                .args([command, "offline"])
                .timeout(Duration::from_secs(60)),
            4,
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(45),
            "`{command}` took {took:?} to give up on a closed port"
        );
        assert_contains(&line, &["network", &format!(":{port}")]);
    }
    // the demo itself is unaffected
    token_line(&env, &["demo"]);
}

/// `kvproxy token | head -c 20`: when the reader has gone away, the command ends the way Unix tools do (by
/// SIGPIPE, nothing on stderr but its own lines), never with a panic about a failed print.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_token_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let env = TestEnv::new();
    let _demo = env.start_demo();
    let (reader, writer) = std::io::pipe().expect("a pipe");
    // Closed before the command starts: its first write to stdout finds nobody reading.
    drop(reader);
    let child = std::process::Command::new(KVPROXY)
        .args(["token", "demo", "--json"])
        .env("KVPROXY_CONFIG_DIR", env.config_dir())
        .env("KVPROXY_AGENT_SOCKET", env.agent_socket())
        .env("KVPROXY_KEYRING", "off")
        .env_remove("RUST_LOG")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kvproxy token");
    let out = child.wait_with_output().expect("wait for kvproxy token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{:?}: {stderr}", out.status);
}
