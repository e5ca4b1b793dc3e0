//! `kvproxy profile …` without any network: the happy paths, and every way of getting the input wrong.
//! Bad input always means exit code 2 and one `error:` line that names the field and says how to fix it;
//! and a profiles file we cannot read is reported with its path and never rewritten.

use crate::support::{TestEnv, assert_contains, input_error, run_fail, run_json, run_ok};
use assert_cmd::Command;
use serde_json::{Value, json};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "0b4c5f4e-1111-2222-3333-444455556666";
const VAULT: &str = "https://contoso.vault.azure.net";
const CERT: &str = "api-cert";
const SCOPE: &str = "api://x/.default";

/// `profile add NAME` of a valid public-cloud profile; `changes` replace a flag's value (or add the flag).
/// An empty value means a bare flag such as `--force`.
fn add(env: &TestEnv, name: &str, changes: &[(&str, &str)]) -> Command {
    let mut flags: Vec<(String, String)> = [
        ("--tenant", TENANT),
        ("--client-id", CLIENT_ID),
        ("--vault-url", VAULT),
        ("--certificate", CERT),
        ("--scope", SCOPE),
    ]
    .iter()
    .map(|(f, v)| (f.to_string(), v.to_string()))
    .collect();
    for (flag, value) in changes {
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(slot) => slot.1 = value.to_string(),
            None => flags.push((flag.to_string(), value.to_string())),
        }
    }
    let mut cmd = env.kvproxy();
    cmd.args(["profile", "add", name]);
    for (flag, value) in flags {
        cmd.arg(flag);
        if !value.is_empty() {
            cmd.arg(value);
        }
    }
    cmd
}

fn list_json(env: &TestEnv) -> Vec<Value> {
    match run_json(env.kvproxy().args(["profile", "list", "--json"])) {
        Value::Array(items) => items,
        other => panic!("`profile list --json` must print an array, got {other}"),
    }
}

fn names_and_defaults(env: &TestEnv) -> Vec<(String, bool)> {
    list_json(env)
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["default"] == json!(true),
            )
        })
        .collect()
}

fn read_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------------------
// Happy paths

#[test]
fn confirm_is_set_at_add_and_turned_on_and_off() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "asking", &[("--confirm", "")]));
    run_ok(&mut add(&env, "open", &[]));
    let shown = |name: &str| run_json(env.kvproxy().args(["profile", "show", name, "--json"]));
    assert_eq!(shown("asking")["confirm"], true);
    assert_eq!(shown("open")["confirm"], false);
    let (toml, _) = run_ok(env.kvproxy().args(["profile", "show", "asking"]));
    assert!(toml.contains("confirm = true"), "{toml}");
    let (toml, _) = run_ok(env.kvproxy().args(["profile", "show", "open"]));
    assert!(!toml.contains("confirm"), "off is the default and not written: {toml}");

    let (_, said) = run_ok(env.kvproxy().args(["profile", "confirm", "open", "on"]));
    assert!(said.contains("asks before a program gets its token"), "{said}");
    assert_eq!(shown("open")["confirm"], true);
    run_ok(env.kvproxy().args(["profile", "confirm", "asking", "off"]));
    assert_eq!(shown("asking")["confirm"], false);

    let error = run_fail(env.kvproxy().args(["profile", "confirm", "asking", "maybe"]), 2);
    assert!(error.contains("on or off, not 'maybe'"), "{error}");
    let error = run_fail(env.kvproxy().args(["profile", "confirm", "nosuch", "on"]), 2);
    assert!(error.contains("no profile named 'nosuch'"), "{error}");
}

#[test]
fn add_list_show_default_and_rm() {
    let env = TestEnv::new();
    let (stdout, stderr) = run_ok(&mut add(&env, "api", &[]));
    assert!(stdout.is_empty(), "`profile add` prints nothing on stdout: {stdout}");
    assert_contains(
        &stderr,
        &["saved profile 'api'", &env.profiles_file().display().to_string()],
    );
    assert!(env.profiles_file().is_file(), "profiles.toml written");

    // list (table): header, and the default marked with `*`
    let (table, _) = run_ok(env.kvproxy().args(["profile", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "header + one row:\n{table}");
    assert_contains(lines[0], &["NAME", "TENANT", "SCOPE"]);
    assert!(
        lines[1].starts_with("* api "),
        "default row starts with `* api`: {:?}",
        lines[1]
    );
    assert_contains(lines[1], &[TENANT, "contoso.vault.azure.net/api-cert", SCOPE]);

    // list --json: every field, the vault URL normalised
    let expected = json!({
        "name": "api",
        "default": true,
        "tenant": TENANT,
        "client_id": CLIENT_ID,
        "vault_url": "https://contoso.vault.azure.net/",
        "certificate": CERT,
        "scopes": [SCOPE],
        "algorithm": "PS256",
        "cloud": "public",
        "custom_cloud": null,
        "credential": "auto",
        "confirm": false,
        "demo": false,
    });
    assert_eq!(list_json(&env), vec![expected.clone()]);

    // show: the profile as TOML, in the export format
    let (toml, _) = run_ok(env.kvproxy().args(["profile", "show", "api"]));
    assert_contains(
        &toml,
        &[
            "[profiles.api]",
            &format!("tenant = \"{TENANT}\""),
            &format!("client_id = \"{CLIENT_ID}\""),
            "vault_url = \"https://contoso.vault.azure.net/\"",
            &format!("certificate = \"{CERT}\""),
            &format!("scopes = [\"{SCOPE}\"]"),
            "cloud = \"public\"",
        ],
    );
    assert_eq!(
        run_json(env.kvproxy().args(["profile", "show", "api", "--json"])),
        expected
    );

    // a second profile does not take the default; `default` moves it
    run_ok(&mut add(
        &env,
        "web",
        &[("--scope", "api://web/.default"), ("--algorithm", "RS256")],
    ));
    assert_eq!(
        names_and_defaults(&env),
        vec![("api".into(), true), ("web".into(), false)]
    );
    let web = run_json(env.kvproxy().args(["profile", "show", "web", "--json"]));
    assert_eq!(web["algorithm"], "RS256");
    assert_eq!(web["default"], false);

    let (_, stderr) = run_ok(env.kvproxy().args(["profile", "default", "web"]));
    assert_contains(&stderr, &["'web'", "default"]);
    assert_eq!(
        names_and_defaults(&env),
        vec![("api".into(), false), ("web".into(), true)]
    );
    let (table, _) = run_ok(env.kvproxy().args(["profile", "list"]));
    assert!(
        table.lines().any(|l| l.starts_with("* web ")),
        "web marked default:\n{table}"
    );
    assert_eq!(
        run_json(env.kvproxy().args(["profile", "show", "web", "--json"]))["default"],
        true
    );

    // rm the default: the other profile becomes the default, the removed one is gone
    let (_, stderr) = run_ok(env.kvproxy().args(["profile", "rm", "web"]));
    assert_contains(&stderr, &["removed profile 'web'"]);
    assert_eq!(names_and_defaults(&env), vec![("api".into(), true)]);
    input_error(env.kvproxy().args(["profile", "show", "web"]), &["'web'"]);
}

#[test]
fn export_to_stdout_and_file_then_import_from_file_and_stdin() {
    let source = TestEnv::new();
    run_ok(&mut add(&source, "api", &[]));
    run_ok(&mut add(
        &source,
        "web",
        &[
            ("--scope", "api://web/.default"),
            ("--algorithm", "RS256"),
            ("--tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ],
    ));

    // export all, to stdout
    let (all, _) = run_ok(source.kvproxy().args(["profile", "export"]));
    assert_contains(&all, &["[profiles.api]", "[profiles.web]"]);

    // export one, to a file: nothing on stdout
    let file = source.config_dir().join("web-export.toml");
    let (stdout, stderr) = run_ok(source.kvproxy().args(["profile", "export", "web", "-o"]).arg(&file));
    assert!(stdout.is_empty(), "`export -o` writes the file, not stdout: {stdout}");
    assert_contains(&stderr, &["exported 1 profile(s)", &file.display().to_string()]);
    let exported = std::fs::read_to_string(&file).expect("export file");
    assert!(
        exported.contains("[profiles.web]") && !exported.contains("[profiles.api]"),
        "only web:\n{exported}"
    );

    // import FILE into an empty config: same profile, and it becomes the default
    let target = TestEnv::new();
    let (_, stderr) = run_ok(target.kvproxy().args(["profile", "import"]).arg(&file));
    assert_contains(&stderr, &["imported 1", "web"]);
    let mut original = run_json(source.kvproxy().args(["profile", "show", "web", "--json"]));
    let mut imported = run_json(target.kvproxy().args(["profile", "show", "web", "--json"]));
    assert_eq!(
        imported["default"], true,
        "the first imported profile becomes the default of an empty config"
    );
    original["default"] = Value::Null;
    imported["default"] = Value::Null;
    assert_eq!(imported, original, "import(export(p)) == p");

    // import - (stdin), everything
    let piped = TestEnv::new();
    let (_, stderr) = run_ok(
        piped
            .kvproxy()
            .args(["profile", "import", "-"])
            .write_stdin(all.clone()),
    );
    assert_contains(&stderr, &["imported 2"]);
    let names: Vec<String> = names_and_defaults(&piped).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["api", "web"]);
    for name in ["api", "web"] {
        let mut a = run_json(source.kvproxy().args(["profile", "show", name, "--json"]));
        let mut b = run_json(piped.kvproxy().args(["profile", "show", name, "--json"]));
        a["default"] = Value::Null;
        b["default"] = Value::Null;
        assert_eq!(a, b, "profile {name} survives export | import -");
    }
}

#[test]
fn import_refuses_an_existing_profile_without_force_and_replaces_it_with_force() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "web", &[("--scope", "api://web/.default")]));

    // the same name, another scope, exported elsewhere
    let other = TestEnv::new();
    run_ok(&mut add(&other, "web", &[("--scope", "api://web-v2/.default")]));
    let file = other.config_dir().join("web.toml");
    run_ok(other.kvproxy().args(["profile", "export", "web", "-o"]).arg(&file));

    let before = read_bytes(&env.profiles_file());
    input_error(
        env.kvproxy().args(["profile", "import"]).arg(&file),
        &["'web'", "already exists", "--force"],
    );
    assert_eq!(
        read_bytes(&env.profiles_file()),
        before,
        "a refused import writes nothing"
    );

    run_ok(env.kvproxy().args(["profile", "import", "--force"]).arg(&file));
    let web = run_json(env.kvproxy().args(["profile", "show", "web", "--json"]));
    assert_eq!(
        web["scopes"],
        json!(["api://web-v2/.default"]),
        "--force replaced the profile"
    );

    // and the same through stdin
    let text = std::fs::read_to_string(&file).unwrap();
    input_error(
        env.kvproxy().args(["profile", "import", "-"]).write_stdin(text.clone()),
        &["already exists"],
    );
    run_ok(
        env.kvproxy()
            .args(["profile", "import", "--force", "-"])
            .write_stdin(text),
    );
}

#[test]
fn add_with_force_replaces_and_with_default_takes_the_default() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "api", &[]));
    run_ok(&mut add(
        &env,
        "api",
        &[("--scope", "api://y/.default"), ("--force", "")],
    ));
    assert_eq!(
        run_json(env.kvproxy().args(["profile", "show", "api", "--json"]))["scopes"],
        json!(["api://y/.default"])
    );
    run_ok(&mut add(&env, "web", &[("--default", "")]));
    assert_eq!(
        names_and_defaults(&env),
        vec![("api".into(), false), ("web".into(), true)]
    );
}

// ---------------------------------------------------------------------------------------------------------
// Bad input: exit 2, one line naming the field and the fix, and nothing written.

/// `profile add` with one bad flag: refused, and no profiles file appears.
fn refused_add(changes: &[(&str, &str)], needles: &[&str]) {
    let env = TestEnv::new();
    input_error(&mut add(&env, "api", changes), needles);
    assert!(
        !env.profiles_file().exists(),
        "a refused profile must not create profiles.toml"
    );
}

#[test]
fn client_id_must_be_a_guid() {
    refused_add(
        &[("--client-id", "not-a-guid")],
        &["client_id", "'not-a-guid'", "GUID", "Application (client) ID"],
    );
}

#[test]
fn every_wrong_flag_is_named_in_one_line() {
    refused_add(
        &[
            ("--client-id", "not-a-guid"),
            ("--tenant", "common"),
            ("--certificate", "a_b"),
        ],
        &["tenant: 'common'", "; client_id: 'not-a-guid'", "; certificate: 'a_b'"],
    );
}

#[test]
fn tenant_common_is_refused() {
    refused_add(
        &[("--tenant", "common")],
        &["tenant", "'common'", "app-only", "GUID or verified domain"],
    );
}

#[test]
fn vault_host_outside_the_cloud_is_refused() {
    refused_add(
        &[("--vault-url", "https://evil.example/")],
        &["vault_url", "evil.example", "*.vault.azure.net"],
    );
}

#[test]
fn vault_over_http_is_refused() {
    refused_add(
        &[("--vault-url", "http://contoso.vault.azure.net/")],
        &["vault_url", "must use https://"],
    );
}

#[test]
fn vault_of_another_cloud_is_refused() {
    refused_add(
        &[("--vault-url", "https://contoso.vault.usgovcloudapi.net/")],
        &[
            "vault_url",
            "contoso.vault.usgovcloudapi.net",
            "public cloud",
            "*.vault.azure.net",
            "cloud",
        ],
    );
    // ... and accepted once the cloud says us-gov
    let env = TestEnv::new();
    run_ok(&mut add(
        &env,
        "gov",
        &[
            ("--vault-url", "https://contoso.vault.usgovcloudapi.net/"),
            ("--cloud", "us-gov"),
        ],
    ));
}

#[test]
fn scope_without_dot_default_is_refused() {
    refused_add(
        &[("--scope", "api://x")],
        &["scope", "'api://x'", "/.default", "e.g. api://x/.default"],
    );
}

#[test]
fn unknown_algorithm_is_refused() {
    refused_add(&[("--algorithm", "ES256")], &["algorithm", "'ES256'", "PS256", "RS256"]);
}

#[test]
fn unknown_cloud_is_refused() {
    refused_add(
        &[("--cloud", "mars")],
        &["cloud", "'mars'", "public, us-gov, china, custom"],
    );
}

#[test]
fn unknown_credential_source_is_refused() {
    refused_add(
        &[("--credential", "magic")],
        &["credential", "'magic'", "azure-cli", "managed-identity"],
    );
}

#[test]
fn duplicate_profile_without_force_is_refused_and_nothing_changes() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "api", &[]));
    let before = read_bytes(&env.profiles_file());
    input_error(
        &mut add(&env, "api", &[("--scope", "api://y/.default")]),
        &["'api'", "already exists", "--force"],
    );
    assert_eq!(read_bytes(&env.profiles_file()), before);
}

#[test]
fn show_of_a_missing_profile() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "api", &[]));
    input_error(
        env.kvproxy().args(["profile", "show", "nope"]),
        &["'nope'", "kvproxy profile list"],
    );
    input_error(env.kvproxy().args(["profile", "show", "nope", "--json"]), &["'nope'"]);
    input_error(env.kvproxy().args(["profile", "rm", "nope"]), &["'nope'"]);
    input_error(env.kvproxy().args(["profile", "default", "nope"]), &["'nope'"]);
    input_error(env.kvproxy().args(["profile", "export", "nope"]), &["'nope'"]);
}

#[test]
fn token_and_key_info_of_a_missing_profile() {
    let env = TestEnv::new();
    run_ok(&mut add(&env, "api", &[]));
    input_error(
        env.kvproxy().args(["token", "nope"]),
        &["'nope'", "kvproxy profile list"],
    );
    input_error(
        env.kvproxy().args(["key-info", "nope"]),
        &["'nope'", "kvproxy profile list"],
    );
}

#[test]
fn import_of_a_file_that_is_not_toml() {
    let env = TestEnv::new();
    let file = env.config_dir().join("notes.txt");
    std::fs::write(&file, "this is { not toml\n").unwrap();
    input_error(
        env.kvproxy().args(["profile", "import"]).arg(&file),
        &["import", "not a profiles document"],
    );
    input_error(
        env.kvproxy()
            .args(["profile", "import", "-"])
            .write_stdin("this is { not toml\n"),
        &["import"],
    );
    input_error(
        env.kvproxy()
            .args(["profile", "import", "-"])
            .write_stdin("[other]\nx = 1\n"),
        &["import", "[profiles.NAME]"],
    );
    let missing = env.config_dir().join("missing.toml");
    input_error(
        env.kvproxy().args(["profile", "import"]).arg(&missing),
        &[&missing.display().to_string()],
    );
    assert!(!env.profiles_file().exists(), "a failed import writes nothing");
}

#[test]
fn import_validates_every_profile_before_writing_any() {
    let env = TestEnv::new();
    let doc = format!(
        "[profiles.good]\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nvault_url = \"{VAULT}\"\ncertificate = \"{CERT}\"\nscopes = [\"{SCOPE}\"]\n\n\
         [profiles.bad]\ntenant = \"common\"\nclient_id = \"{CLIENT_ID}\"\nvault_url = \"{VAULT}\"\ncertificate = \"{CERT}\"\nscopes = [\"{SCOPE}\"]\n"
    );
    input_error(
        env.kvproxy().args(["profile", "import", "-"]).write_stdin(doc),
        &["'bad'", "tenant", "common"],
    );
    assert!(
        !env.profiles_file().exists(),
        "nothing written when one profile of the document is bad"
    );
}

// ---------------------------------------------------------------------------------------------------------
// A corrupt profiles.toml: reported with its path, exit 2, and kept byte for byte.

const CORRUPT_FILES: [&str; 3] = [
    "default = \"api\"\n[profiles.api\ntenant = \"contoso.onmicrosoft.com\"\n",
    "# hand-edited\nprofiles = \"oops\"\n",
    "[profiles.api]\ntenant = \"contoso.onmicrosoft.com\"\n",
];

fn corrupt_env(content: &str) -> TestEnv {
    let env = TestEnv::new();
    std::fs::write(env.profiles_file(), content).unwrap();
    env
}

fn dir_listing(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.config_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn corrupt_profiles_file_is_reported_with_its_path_and_left_unchanged_by_list() {
    for content in CORRUPT_FILES {
        let env = corrupt_env(content);
        let path = env.profiles_file().display().to_string();
        let line = input_error(env.kvproxy().args(["profile", "list"]), &[&path]);
        assert_contains(&line, &["could not be read"]);
        input_error(env.kvproxy().args(["profile", "list", "--json"]), &[&path]);
        input_error(env.kvproxy().args(["profile", "show", "api"]), &[&path]);
        input_error(env.kvproxy().args(["token"]), &[&path]);
        input_error(env.kvproxy().args(["token", "api"]), &[&path]);
        input_error(env.kvproxy().args(["key-info", "api"]), &[&path]);
        input_error(env.kvproxy().args(["profile", "export"]), &[&path]);
        assert_eq!(
            read_bytes(&env.profiles_file()),
            content.as_bytes(),
            "file must be byte-for-byte unchanged"
        );
        assert_eq!(dir_listing(&env), ["profiles.toml"], "no stray files next to it");
    }
}

#[test]
fn corrupt_profiles_file_is_left_unchanged_by_commands_that_write() {
    for content in CORRUPT_FILES {
        let env = corrupt_env(content);
        let path = env.profiles_file().display().to_string();
        input_error(&mut add(&env, "web", &[]), &[&path]);
        input_error(&mut add(&env, "api", &[("--force", "")]), &[&path]);
        input_error(env.kvproxy().args(["profile", "rm", "api"]), &[&path]);
        input_error(env.kvproxy().args(["profile", "default", "api"]), &[&path]);
        let import = format!(
            "[profiles.web]\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nvault_url = \"{VAULT}\"\ncertificate = \"{CERT}\"\nscopes = [\"{SCOPE}\"]\n"
        );
        input_error(
            env.kvproxy()
                .args(["profile", "import", "--force", "-"])
                .write_stdin(import),
            &[&path],
        );
        assert_eq!(
            read_bytes(&env.profiles_file()),
            content.as_bytes(),
            "file must be byte-for-byte unchanged"
        );
        assert_eq!(dir_listing(&env), ["profiles.toml"], "no temp files left behind");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Message quality. These pin what the messages should say; see the notes on each for the current gap.

/// A TOML syntax error must read as one sentence: position and reason, not the parser's multi-line
/// snippet with `|` gutters and a `^` caret squashed onto one line. The import error must also say which
/// file it was.
#[test]
fn toml_errors_read_as_one_clean_sentence() {
    let env = corrupt_env(CORRUPT_FILES[0]);
    let line = run_fail(env.kvproxy().args(["profile", "list"]), 2);
    assert_contains(&line, &["line 2"]);
    assert!(
        !line.contains(" | ") && !line.contains('^'),
        "parser snippet squashed into the message: {line}"
    );
    assert!(
        !line.contains("   "),
        "runs of spaces left from the parser's layout: {line}"
    );

    let env = TestEnv::new();
    let file = env.config_dir().join("notes.txt");
    std::fs::write(&file, "this is { not toml\n").unwrap();
    let line = run_fail(env.kvproxy().args(["profile", "import"]).arg(&file), 2);
    assert_contains(&line, &[&file.display().to_string(), "line 1"]);
    assert!(
        !line.contains(" | ") && !line.contains('^'),
        "parser snippet squashed into the message: {line}"
    );
}

/// `kvproxy token` with no name and no default must say how to choose a profile, not "no profile named ''".
#[test]
fn token_without_a_name_and_no_default_profile_says_how_to_pick_one() {
    let env = TestEnv::new();
    for args in [&["token"][..], &["key-info"][..]] {
        let line = run_fail(env.kvproxy().args(args), 2);
        assert!(
            !line.contains("''"),
            "an empty profile name is not a helpful message: {line}"
        );
        assert_contains(&line, &["default", "profile"]);
    }
}

/// The fix for a scope that names a permission (`…/User.Read`) is the resource's `/.default`, not
/// `…/User.Read/.default` (which Entra rejects too).
#[test]
fn scope_fix_suggests_the_resource_default_scope() {
    let env = TestEnv::new();
    let line = input_error(
        &mut add(&env, "graph", &[("--scope", "https://graph.microsoft.com/User.Read")]),
        &["scope"],
    );
    assert!(
        line.contains("https://graph.microsoft.com/.default"),
        "suggest the resource's /.default: {line}"
    );
    assert!(
        !line.contains("User.Read/.default"),
        "suggests an invalid scope: {line}"
    );

    run_ok(&mut add(&env, "api", &[]));
    let line = input_error(
        env.kvproxy().args(["token", "api", "--scope", "https://x/User.Read"]),
        &["scope"],
    );
    assert!(
        line.contains("https://x/.default"),
        "suggest the resource's /.default: {line}"
    );
    assert!(
        !line.contains("User.Read/.default"),
        "suggests an invalid scope: {line}"
    );
}

/// `profile add --help` lists every value each enum flag takes, the demo-only `emulator` source included.
#[test]
fn help_lists_every_value_of_each_enum_flag() {
    use kvproxy_core::{CloudName, CredentialSource, SigningAlgorithm};
    use strum::VariantNames;
    let env = TestEnv::new();
    let output = env
        .kvproxy()
        .args(["profile", "add", "--help"])
        .output()
        .expect("run kvproxy");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let every: Vec<&str> = CredentialSource::VARIANTS
        .iter()
        .chain(CloudName::VARIANTS)
        .chain(SigningAlgorithm::VARIANTS)
        .copied()
        .collect();
    assert_contains(&help, &every);
    assert!(help.contains("emulator"), "{help}");
}
