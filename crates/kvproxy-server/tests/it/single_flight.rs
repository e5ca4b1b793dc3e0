//! Single flight through the API: a burst of requests for profiles nobody has asked for yet costs each
//! profile one sign and one token request, however many callers arrive while that fetch is under way.

use crate::common::{PROFILE, TestServer, VAULT};
use kvproxy_core::Profile;
use kvproxy_emulator::Route;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const PROFILES: usize = 10;
const REQUESTS: usize = 1_000;
/// Each call to the emulator waits this long, so the first fetch of a profile is still under way while the
/// rest of the burst arrives. The assertions below do not depend on it: they hold for any interleaving
/// when single flight works, and an engine without it fails them for almost every interleaving.
const EMULATOR_LATENCY: Duration = Duration::from_millis(150);
/// Descriptors the test keeps for itself (emulator, runtime, log files) besides the two per connection.
#[cfg(unix)]
const SPARE_FDS: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_cold_profiles_fetches_each_once() {
    // Client and server live in this process: every connection costs two descriptors here, and a closed one
    // is held until both ends have noticed, hence a quarter of the limit when it is too low for all at once.
    let in_flight = max_in_flight();
    let s = TestServer::start().await;
    let names = add_cold_profiles(&s);
    s.emulator.reset_counters();
    s.emulator.set_latency(EMULATOR_LATENCY);

    // Every request is spawned before any is awaited; the semaphore only matters where the descriptor limit
    // is too low for 1,000 connections at once.
    let gate = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let name = names[i % PROFILES].clone();
            let request = s.get(&format!("/api/profiles/{name}/token"));
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore open");
                let response = request.send().await.expect("request sent");
                let status = response.status();
                let body: serde_json::Value = response.json().await.expect("JSON body");
                (name, status, body)
            })
        })
        .collect();

    let mut tokens: HashMap<String, Vec<String>> = HashMap::new();
    for task in tasks {
        let (name, status, body) = task.await.expect("request task");
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        let token = body["access_token"].as_str().expect("an access_token").to_string();
        tokens.entry(name).or_default().push(token);
    }
    s.emulator.set_latency(Duration::ZERO);

    assert_eq!(tokens.len(), PROFILES, "every profile answered");
    assert_eq!(
        tokens.values().map(Vec::len).sum::<usize>(),
        REQUESTS,
        "every request answered"
    );
    for (name, answers) in &tokens {
        assert!(
            answers.iter().all(|t| t == &answers[0]),
            "{name}: requests for the same profile got different tokens"
        );
    }
    let mut distinct: Vec<&String> = tokens.values().map(|answers| &answers[0]).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), PROFILES, "each profile has a token of its own");

    assert_eq!(s.emulator.count(Route::Sign), PROFILES as u64, "Key Vault signs");
    assert_eq!(s.emulator.count(Route::Token), PROFILES as u64, "Entra token requests");
    assert_eq!(
        s.emulator.count(Route::GetCertificate),
        PROFILES as u64,
        "certificate reads (one per certificate)"
    );
}

/// Ten profiles, each with an app and a certificate of its own in the emulator, none asked for yet.
fn add_cold_profiles(s: &TestServer) -> Vec<String> {
    let template = s.app.profile_store().get(PROFILE).expect("the saved test profile");
    (0..PROFILES)
        .map(|i| {
            let name = format!("cold-{i}");
            let client_id = s.emulator.create_app(&name);
            let cert = s.emulator.create_certificate(VAULT, &name, &name);
            s.emulator.register_certificate(&client_id, &cert);
            let profile = Profile {
                name: name.clone(),
                client_id,
                certificate: name.clone(),
                ..template.clone()
            };
            s.app.profile_store().upsert(profile, false).expect("profile saved");
            name
        })
        .collect()
}

/// How many requests may be open at once: all of them, unless the open-files limit is too low for that.
#[cfg(unix)]
fn max_in_flight() -> usize {
    usize::try_from(raise_fd_limit().saturating_sub(SPARE_FDS) / 4)
        .unwrap_or(REQUESTS)
        .clamp(1, REQUESTS)
}

/// Windows (run under Wine): a thousand loopback connections opened at once by one process overrun the
/// listen backlog (200 on Windows) and Wine's socket layer, and connects time out. A hundred in flight
/// still puts ten callers behind every cold fetch, which is what single flight is about.
#[cfg(windows)]
fn max_in_flight() -> usize {
    100
}

/// Raises the soft limit on open files to the hard one and returns the limit now in force.
#[cfg(unix)]
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, wanted) {
        Ok(()) => limit.maximum.unwrap_or(u64::MAX),
        Err(_) => limit.current.unwrap_or(u64::MAX),
    }
}
