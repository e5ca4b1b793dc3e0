//! The three paths of a token (cold, warm, cached) against the network floor: the emulator delays every
//! call by 0 ms and then by 25 ms, its counters say how many calls each path made, and what is left of
//! the wall time once the calls' delays are taken off is the overhead of KeyVault Proxy itself (process
//! start, TLS, signatures, JSON).
//!
//! - cold: nothing known, so get certificate + sign + token with new clients: a new `kvproxy token
//!   --no-agent` process with the keyring off, and a new engine in this process;
//! - warm: key info known from the keyring, so sign + token: a new `kvproxy token --no-agent` process reading
//!   the OS keyring (only under `scripts/with-keyring.sh`, so a developer's own keyring is never written),
//!   and a new engine in this process reading a keyring store that already holds the key info;
//! - cached: `kvproxy serve` running, HTTP GET of `/api/profiles/demo/token` over a kept-alive connection.
//!
//! Prints a Markdown table per latency and rewrites the `paths` section of `docs/benchmarks.md`.

mod common;

use common::{Calls, World, emulator_of, measure, ms, percentile, stamp, write_section};
use kvproxy_core::{Broker, BrokerOptions, KeyInfoStore, ProfileStore, TokenOptions, ValidProfile};

use kvproxy_app::demo::DEMO_PROFILE;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LATENCIES_MS: [u64; 2] = [0, 25];
const PROCESS_RUNS: usize = 20;
const ENGINE_RUNS: usize = 20;
const CACHED_RUNS: usize = 200;

fn row(path: &str, samples: &[Duration], calls: &Calls, latency: Duration) -> String {
    let p50 = percentile(samples, 0.5);
    let floor = latency.mul_f64(calls.delayed);
    format!(
        "| {path} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} |",
        samples.len(),
        ms(p50),
        ms(percentile(samples, 0.95)),
        calls.key_vault,
        calls.challenges,
        calls.sign_in,
        calls.token,
        ms(floor),
        ms(p50) - ms(floor),
    )
}

/// A token from a new engine (new HTTP and SDK clients, empty memory caches) over `key_info_store`.
fn token_engine(runtime: &tokio::runtime::Runtime, profile: &ValidProfile, key_info_store: &KeyInfoStore) -> Duration {
    let started = Instant::now();
    let broker = Broker::new(BrokerOptions {
        key_info_store: key_info_store.clone(),
        ..Default::default()
    });
    let token = runtime
        .block_on(broker.token(profile, None, TokenOptions::default()))
        .expect("token from a new engine");
    let elapsed = started.elapsed();
    assert!(!token.from_cache);
    elapsed
}

/// The OS keyring when this bench runs under `scripts/with-keyring.sh` (which sets
/// `KVPROXY_REQUIRE_KEYRING=1`); otherwise `None`, since the bench would leave entries in the user's own.
fn private_os_keyring() -> Option<Arc<keyring_core::CredentialStore>> {
    std::env::var_os("KVPROXY_REQUIRE_KEYRING")?;
    Some(kvproxy_core::platform_keyring().expect("scripts/with-keyring.sh promised a Secret Service"))
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::new(dir.path());
    let store = ProfileStore::new(world.profiles_file());
    let demo = world.start_demo(&runtime);
    let emulator = emulator_of(&demo);
    let profile = store
        .get(DEMO_PROFILE)
        .expect("demo profile")
        .resolve()
        .expect("demo profile is valid");

    let os_keyring = private_os_keyring();
    let (warm_store, warm_name, keyring_note) = match &os_keyring {
        Some(keyring) => (
            KeyInfoStore::new(Some(keyring.clone())),
            "warm, new engine in this process (key info from the OS keyring)",
            "The OS keyring is a private gnome-keyring on a private D-Bus (`scripts/with-keyring.sh`), so the warm \
process reads its key info over D-Bus as it would on a desktop.",
        ),
        None => (
            KeyInfoStore::new(Some(keyring_core::mock::Store::new().expect("in-memory keyring store"))),
            "warm, new engine in this process (key info from an in-memory keyring store)",
            "**No OS keyring in this run** (not under `scripts/with-keyring.sh`): the warm path in a new process \
is left out and warm is measured in this process, over an in-memory keyring store, which saves the D-Bus \
round trip a real keyring costs.",
        ),
    };
    if os_keyring.is_none() {
        println!("paths: no OS keyring (run under scripts/with-keyring.sh for one); warm is measured in-process only");
    }
    // The warm paths' key info: one cold token saves it in the store the warm runs read.
    token_engine(&runtime, &profile, &warm_store);
    if os_keyring.is_some() {
        world.token(DEMO_PROFILE, &["--no-agent"], true);
    }
    // The first process pays for cold file caches.
    world.token(DEMO_PROFILE, &["--no-agent"], false);
    let keyring_read = os_keyring.as_ref().map(|_| {
        let certificate = profile.vault_certificate();
        let mut samples: Vec<Duration> = (0..ENGINE_RUNS)
            .map(|_| {
                let started = Instant::now();
                let info = runtime
                    .block_on(warm_store.load(certificate.vault_root().as_str(), certificate.certificate()))
                    .expect("read key info from the OS keyring");
                assert!(info.is_some(), "the key info saved above is in the keyring");
                started.elapsed()
            })
            .collect();
        samples.sort();
        percentile(&samples, 0.5)
    });

    let serve = world.start_serve(&[]);
    let http = reqwest::Client::builder().no_proxy().build().expect("reqwest client");
    let url = format!("{}/api/profiles/{DEMO_PROFILE}/token", serve.base_url());
    let cached_get = || {
        let started = Instant::now();
        let status = runtime.block_on(async {
            let response = http
                .get(&url)
                .bearer_auth(&world.api_key)
                .send()
                .await
                .expect("GET the profile token route");
            let status = response.status();
            response.bytes().await.expect("body");
            status
        });
        let elapsed = started.elapsed();
        assert!(status.is_success(), "profile token route answered {status}");
        elapsed
    };
    cached_get(); // the server mints once; every request after it is served from its cache

    let cold_store = KeyInfoStore::new(None);
    let mut tables = String::new();
    for latency_ms in LATENCIES_MS {
        let latency = Duration::from_millis(latency_ms);
        emulator.set_latency(latency);
        let mut rows = Vec::new();
        let (samples, calls) = measure(emulator, PROCESS_RUNS, || {
            world.token(DEMO_PROFILE, &["--no-agent"], false)
        });
        rows.push(row(
            "cold, new `kvproxy token --no-agent` process (keyring off)",
            &samples,
            &calls,
            latency,
        ));
        let (samples, calls) = measure(emulator, ENGINE_RUNS, || token_engine(&runtime, &profile, &cold_store));
        rows.push(row("cold, new engine in this process", &samples, &calls, latency));
        if os_keyring.is_some() {
            let (samples, calls) = measure(emulator, PROCESS_RUNS, || {
                world.token(DEMO_PROFILE, &["--no-agent"], true)
            });
            rows.push(row(
                "warm, new `kvproxy token --no-agent` process (key info from the OS keyring)",
                &samples,
                &calls,
                latency,
            ));
        }
        let (samples, calls) = measure(emulator, ENGINE_RUNS, || token_engine(&runtime, &profile, &warm_store));
        rows.push(row(warm_name, &samples, &calls, latency));
        let (samples, calls) = measure(emulator, CACHED_RUNS, cached_get);
        rows.push(row(
            "cached, `kvproxy serve` + HTTP GET of the profile token route",
            &samples,
            &calls,
            latency,
        ));
        tables.push_str(&format!(
            "\n**{latency_ms} ms per call**\n\n\
| path | runs | p50 ms | p95 ms | Key Vault calls | auth challenges | sign-ins | Entra token requests | floor ms | overhead ms (p50 − floor) |\n\
|---|---|---|---|---|---|---|---|---|---|\n{}\n",
            rows.join("\n")
        ));
    }
    emulator.set_latency(Duration::ZERO);
    drop(serve);
    if os_keyring.is_some() {
        // The key info the runs saved: the private keyring goes away anyway, this keeps a rerun honest.
        let certificate = profile.vault_certificate();
        let _ = runtime.block_on(warm_store.remove(certificate.vault_root().as_str(), certificate.certificate()));
    }

    let keyring_read = keyring_read.map_or(String::new(), |p50| {
        format!(
            " Reading the key info from that keyring alone takes {:.1} ms (p50 of {ENGINE_RUNS}), which is what a \
warm start pays instead of a certificate read.",
            ms(p50)
        )
    });
    let body = format!(
        "## Token paths against the network floor\n\n\
`cargo bench -p kvproxy-cli --bench paths` (part of `make bench`), {stamp}. The demo tenant runs in the \
bench's process and delays every call by 0 ms, then by 25 ms, standing in for the round trip to Azure. \
Calls are what the emulator counted, per token: Key Vault calls are certificate reads and signs; auth \
challenges are Key Vault's 401s that tell the SDK where to sign in (the emulator answers them before its \
delay, so they are not in the floor; against Azure each is one more round trip); sign-ins are the \
developer credential's token requests (credential source `emulator`: one HTTPS call, where `az` would spawn \
a process); Entra token requests are the client-assertion grants. Floor = delayed calls × latency; \
overhead = p50 − floor: process start, TLS handshakes, RSA signatures, JSON. A process row includes \
starting `kvproxy`; an engine row builds a new engine (new HTTP and SDK clients) each run. \
{keyring_note}{keyring_read}\n\
{tables}\n\
Against Azure the floor is what matters: a cached token costs no call at all, a warm one costs the sign-in \
(when the developer credential has none cached), a sign and a token request, and a cold one adds the \
certificate read.\n",
        stamp = stamp(),
    );
    write_section("paths", &body);
    runtime.block_on(demo.shutdown());
}
