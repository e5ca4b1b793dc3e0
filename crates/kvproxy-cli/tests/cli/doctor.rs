//! `kvproxy doctor` against a running `kvproxy demo`: a working profile passes with exit code 0, a broken one
//! shows the failing step with its fix and exits with the code of its class, `--json` is a report scripts
//! can read, and a missing profile is the usual one-line input error.

use crate::support::{Demo, TestEnv, assert_contains, input_error, output_of, run_ok};
use serde_json::Value;

const STEPS: [&str; 8] = [
    "authority",
    "credential",
    "vault",
    "certificate",
    "non-exportable",
    "sign",
    "app-registration",
    "token",
];

/// A copy of the demo profile under `name` whose tenant is one the demo tenant does not know.
fn add_unknown_tenant_copy(env: &TestEnv, name: &str) {
    let (profile, _) = run_ok(env.kvproxy().args(["profile", "show", "demo", "--json"]));
    let profile: Value = serde_json::from_str(&profile).expect("profile JSON");
    let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("a string: {v}")).to_string();
    let custom = &profile["custom_cloud"];
    let mut cmd = env.kvproxy();
    cmd.args(["profile", "add", name, "--cloud", "custom", "--credential", "emulator"])
        .args(["--tenant", "0badc0de-0000-4000-8000-000000000000"])
        .args(["--client-id", &text(&profile["client_id"])])
        .args(["--vault-url", &text(&profile["vault_url"])])
        .args(["--certificate", &text(&profile["certificate"])])
        .args(["--scope", &text(&profile["scopes"][0])])
        .args(["--authority-host", &text(&custom["authority_host"])])
        .args(["--ca-file", &text(&custom["ca_file"])]);
    for suffix in custom["vault_suffixes"].as_array().expect("vault_suffixes") {
        cmd.args(["--vault-suffix", &text(suffix)]);
    }
    run_ok(&mut cmd);
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("steps: {report}"))
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or("").into(),
                s["status"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

fn all(status: &str) -> Vec<(String, String)> {
    STEPS.iter().map(|s| (s.to_string(), status.to_string())).collect()
}

#[test]
fn doctor_passes_the_demo_profile_and_explains_a_broken_one() {
    let env = TestEnv::new();
    let _demo: Demo = env.start_demo();

    // The default profile (demo), human output: a line per step, no fix needed, exit code 0.
    let (stdout, stderr) = run_ok(env.kvproxy().arg("doctor"));
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with("PASS  ")).collect();
    assert_eq!(steps.len(), 8, "eight passed steps:\n{stdout}\nstderr: {stderr}");
    assert!(!stdout.contains("fix:"), "{stdout}");
    assert_contains(
        &stdout,
        &["Checking profile 'demo'", "days left", "All checks passed.", "DEMO"],
    );
    assert!(!stdout.contains("eyJ"), "no token is ever printed: {stdout}");

    let (stdout, _) = run_ok(env.kvproxy().args(["doctor", "demo", "--json"]));
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON ({e}): {stdout}"));
    assert_eq!(statuses(&report), all("pass"), "{report:#}");
    assert_eq!(report["profile"], "demo");
    assert_eq!(report["passed"], true);
    assert!(report["days_left"].as_i64().is_some_and(|d| d > 300), "{report:#}");
    assert!(
        report["expires"].as_str().is_some_and(|e| e.contains('T')),
        "{report:#}"
    );
    assert!(report["steps"][0]["title"].is_string() && report["steps"][0]["detail"].is_string());

    // A tenant the authority does not know: step 1 fails with its fix, the rest is skipped, exit code 2.
    add_unknown_tenant_copy(&env, "wrong-tenant");
    let out = output_of(env.kvproxy().args(["doctor", "wrong-tenant"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let failed = lines
        .iter()
        .position(|l| l.starts_with("FAIL  1. "))
        .unwrap_or_else(|| panic!("step 1 fails:\n{stdout}"));
    assert_contains(lines[failed], &["AADSTS90002"]);
    assert!(
        lines[failed + 1]
            .trim_start()
            .starts_with("fix: check the tenant id/domain in the profile"),
        "an indented fix line follows:\n{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("SKIP  ")).count(),
        7,
        "{stdout}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_contains(errors[0], &["error: ", "failed", "authority and tenant"]);

    let out = output_of(env.kvproxy().args(["doctor", "wrong-tenant", "--json"]));
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON even when a step fails");
    let mut want = all("skip");
    want[0].1 = "fail".into();
    assert_eq!(statuses(&report), want, "{report:#}");
    assert_eq!(report["passed"], false);
    assert_eq!(report["steps"][0]["class"], "input");
    assert!(report["steps"][0]["fix"].as_str().is_some_and(|f| f.contains("tenant")));
    assert!(
        report["expires"].is_null() && report["days_left"].is_null(),
        "{report:#}"
    );
}

#[test]
fn doctor_of_an_unknown_profile_is_the_usual_input_error() {
    let env = TestEnv::new();
    input_error(env.kvproxy().args(["doctor", "nope"]), &["no profile named 'nope'"]);
    input_error(env.kvproxy().arg("doctor"), &["no default profile"]);
}

#[test]
fn doctor_help_lists_the_steps_and_exit_codes() {
    let env = TestEnv::new();
    let (stdout, _) = run_ok(env.kvproxy().args(["doctor", "--help"]));
    assert_contains(
        &stdout,
        &[
            "PROFILE",
            "--json",
            "exportable",
            "app registration",
            "Exit codes",
            "warnings allowed",
        ],
    );
    let (stdout, _) = run_ok(env.kvproxy().arg("--help"));
    assert_contains(&stdout, &["doctor"]);
}
