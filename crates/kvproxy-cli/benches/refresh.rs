//! Refresh ahead with short-lived tokens: the emulator issues tokens that live 70 s, and one client polls
//! the running `kvproxy serve` every 100 ms for three minutes (`REFRESH_SECS` overrides the duration). Every
//! answer after the first must come from the cache, unexpired, and the emulator must see one token request
//! per refresh. The slowest request is set next to the cached level (the median), which shows whether any
//! caller waited for the network.
//!
//! Prints a Markdown table and rewrites its section of `docs/benchmarks.md`. `make bench` runs it.

mod common;

use common::{World, ms, percentile, stamp, write_section};
use kvproxy_app::demo::emulator_profile;
use kvproxy_core::ProfileStore;
use kvproxy_emulator::{Emulator, EmulatorConfig, Route};
use std::time::{Duration, Instant};

const TOKEN_LIFETIME: Duration = Duration::from_secs(70);
const POLL_EVERY: Duration = Duration::from_millis(100);
const PROFILE: &str = "short";

struct Answer {
    elapsed: Duration,
    token: String,
    from_cache: bool,
    /// Seconds left when it arrived, by the token's own `expires_on`.
    seconds_left: i64,
}

async fn ask(client: &reqwest::Client, url: &str, api_key: &str) -> Answer {
    let started = Instant::now();
    let response = client
        .get(url)
        .header("X-Api-Key", api_key)
        .send()
        .await
        .expect("token request");
    assert!(response.status().is_success(), "status {}", response.status());
    let body: serde_json::Value = response.json().await.expect("JSON token");
    let elapsed = started.elapsed();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Answer {
        elapsed,
        token: body["access_token"].as_str().expect("access_token").to_string(),
        from_cache: body["from_cache"].as_bool().expect("from_cache"),
        seconds_left: body["expires_on"].as_i64().expect("expires_on") - now,
    }
}

fn main() {
    let duration = std::env::var("REFRESH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(180), Duration::from_secs);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::new(dir.path());
    let emulator = runtime
        .block_on(Emulator::start(EmulatorConfig {
            token_lifetime: TOKEN_LIFETIME,
            ..Default::default()
        }))
        .expect("emulator");
    let seed = emulator.seed_demo();
    std::fs::create_dir_all(&world.config).expect("config dir");
    let ca_file = world.config.join("emulator-ca.pem");
    std::fs::write(&ca_file, emulator.ca_pem()).expect("CA file");
    ProfileStore::new(world.profiles_file())
        .upsert(emulator_profile(PROFILE, &seed, &ca_file), true)
        .expect("profile");

    let serve = world.start_serve(&[]);
    let url = format!("{}/api/profiles/{PROFILE}/token?format=json", serve.base_url());
    let answers = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut answers = Vec::new();
        let mut ticks = tokio::time::interval(POLL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        while started.elapsed() < duration {
            ticks.tick().await;
            answers.push(ask(&client, &url, &world.api_key).await);
        }
        answers
    });
    let token_requests = emulator.count(Route::Token);
    let signs = emulator.count(Route::Sign);
    drop(serve);

    let (first, rest) = answers.split_first().expect("at least one answer");
    let fetched_by_a_caller = rest.iter().filter(|a| !a.from_cache).count();
    let least_left = answers.iter().map(|a| a.seconds_left).min().unwrap_or_default();
    let mut distinct: Vec<&str> = answers.iter().map(|a| a.token.as_str()).collect();
    distinct.dedup();
    let mut cached: Vec<Duration> = rest.iter().map(|a| a.elapsed).collect();
    cached.sort();
    let p50 = percentile(&cached, 0.5);
    let p99 = percentile(&cached, 0.99);
    let slowest = cached.last().copied().unwrap_or_default();
    // A refresh starts once a quarter of the lifetime is left: one per three quarters of a lifetime.
    let refresh_every = TOKEN_LIFETIME * 3 / 4;
    let expected = 1 + (duration.as_secs_f64() / refresh_every.as_secs_f64()).floor() as u64;

    let body = format!(
        "## Refresh ahead with short-lived tokens\n\n\
`cargo bench -p kvproxy-cli --bench refresh` (part of `make bench`), {stamp}. The emulator issues tokens \
that live {lifetime} s; one client asks `kvproxy serve` for `GET /api/profiles/{PROFILE}/token` every \
{poll} ms for {secs} s ({n} requests over one keep-alive connection). A token is refreshed in the background \
once a quarter of its life is left ({margin:.1} s) and served until a tenth is left ({least:.0} s).\n\n\
| measure | value |\n|---|---|\n\
| first request (cold: certificate, sign, token) | {first:.1} ms |\n\
| later requests: p50 / p99 / slowest | {p50:.2} / {p99:.2} / {slowest:.2} ms |\n\
| later requests a caller had to wait for the network for | {fetched_by_a_caller} |\n\
| distinct tokens served | {distinct} |\n\
| Entra token requests (expected {expected}: the first, then one per {every:.1} s) | {token_requests} |\n\
| Key Vault signs | {signs} |\n\
| least time left on a served token | {least_left} s |\n\n\
With the earlier fixed margins (refresh within 5 minutes of expiry, serve only with more than a minute \
left) a 70 s token was inside the refresh margin from birth and could be served for its first 10 s only.\n",
        stamp = stamp(),
        lifetime = TOKEN_LIFETIME.as_secs(),
        poll = POLL_EVERY.as_millis(),
        secs = duration.as_secs(),
        n = answers.len(),
        margin = TOKEN_LIFETIME.as_secs_f64() / 4.0,
        least = TOKEN_LIFETIME.as_secs_f64() / 10.0,
        first = ms(first.elapsed),
        p50 = ms(p50),
        p99 = ms(p99),
        slowest = ms(slowest),
        distinct = distinct.len(),
        every = refresh_every.as_secs_f64(),
    );
    write_section("refresh", &body);
    runtime.block_on(emulator.shutdown());

    let mut failures = Vec::new();
    if fetched_by_a_caller > 0 {
        failures.push(format!("{fetched_by_a_caller} requests waited for a fetch"));
    }
    if least_left <= 0 {
        failures.push("an expired token was served".to_string());
    }
    if token_requests != expected {
        failures.push(format!("{token_requests} token requests, expected {expected}"));
    }
    if !failures.is_empty() {
        eprintln!("refresh bench: {}", failures.join("; "));
        std::process::exit(1);
    }
}
