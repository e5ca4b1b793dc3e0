//! Token latency by path, against the local emulator over real HTTPS: cached (no network), warm (key
//! info known: sign + token) and cold (get certificate + sign + token, new SDK clients). Prints a
//! Markdown table; `make bench` runs it. Figures include the emulator's own RSA work on the same machine.

// Shared with the integration tests, which use all of it; the bench only the fixture.
#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

use common::{Fixture, Valid, options};
use kvproxy_core::{Broker, KeyInfoStore, SigningAlgorithm, TokenOptions};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "| {name} | {} | {:.3} | {:.3} | {:.3} |",
        samples.len(),
        mean.as_secs_f64() * 1e3,
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let fx = Fixture::start().await;
    let profile = fx.profile(SigningAlgorithm::PS256);
    println!("| path | runs | mean ms | p50 ms | p95 ms |");
    println!("|---|---|---|---|---|");

    let mut cold = Vec::new();
    for _ in 0..20 {
        let broker = Broker::new(options(KeyInfoStore::new(None)));
        let started = Instant::now();
        broker
            .token(&profile.valid(), None, TokenOptions::default())
            .await
            .expect("cold token");
        cold.push(started.elapsed());
    }
    row("cold (get certificate + sign + token, new clients)", cold);

    let broker = Broker::new(options(KeyInfoStore::new(None)));
    broker.key_info(&profile.valid(), false).await.expect("key info");
    let mut warm = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        broker
            .token(&profile.valid(), None, TokenOptions { skip_cache: true })
            .await
            .expect("warm token");
        warm.push(started.elapsed());
    }
    row("warm (sign + token)", warm);

    let mut cached = Vec::new();
    for _ in 0..10_000 {
        let started = Instant::now();
        broker
            .token(&profile.valid(), None, TokenOptions::default())
            .await
            .expect("cached token");
        cached.push(started.elapsed());
    }
    row("cached (memory)", cached);
}
