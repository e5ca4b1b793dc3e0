//! Wall time of one `kvproxy token` process on a cached token: minting in its own process (no app running,
//! and `--no-agent` next to a running one) against asking the running `kvproxy serve` over the agent socket.
//! Each process is started and waited for, as a script's `$(kvproxy token demo)` is. The demo tenant runs in
//! this process, so its counters say how many calls each path made to Key Vault and Entra.
//!
//! Prints a Markdown table and rewrites its own section of `docs/benchmarks.md`. `make bench` runs it.

mod common;

use common::{Calls, World, emulator_of, measure, ms, percentile, stamp, write_section};
use kvproxy_app::demo::DEMO_PROFILE;
use std::time::Duration;

const RUNS: usize = 30;

fn row(name: &str, samples: &mut [Duration], calls: &Calls) -> (String, Duration) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let p50 = percentile(samples, 0.5);
    let line = format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(mean),
        ms(p50),
        ms(percentile(samples, 0.95)),
        calls.key_vault,
        calls.challenges,
        calls.sign_in,
        calls.token
    );
    (line, p50)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::new(dir.path());
    let demo = world.start_demo(&runtime);
    let emulator = emulator_of(&demo);

    // Warm-up: the first process pays for cold file caches.
    let token = |extra: &[&str]| world.token(DEMO_PROFILE, extra, false);
    token(&["--no-agent"]);
    let (mut alone, alone_calls) = measure(emulator, RUNS, || token(&[]));
    let serve = world.start_serve(&[]);
    assert!(serve.has_agent(), "kvproxy serve did not start its agent");
    token(&[]); // the server mints once; every call after it is a cached token
    let (mut served, served_calls) = measure(emulator, RUNS, || token(&[]));
    let (mut own, own_calls) = measure(emulator, RUNS, || token(&["--no-agent"]));
    drop(serve);

    let (alone_row, _) = row("in its own process, no app running", &mut alone, &alone_calls);
    let (own_row, own_p50) = row("in its own process (`--no-agent`), app running", &mut own, &own_calls);
    let (served_row, served_p50) = row(
        "asking the running app (agent socket), cached token",
        &mut served,
        &served_calls,
    );
    let ratio = own_p50.as_secs_f64() / served_p50.as_secs_f64();
    let stamp = stamp();
    let body = format!(
        "## `kvproxy token`: with and without the running app\n\n\
`cargo bench -p kvproxy-cli --bench agent` (part of `make bench`), {stamp}. Each row starts \
{RUNS} `kvproxy token demo` processes one after another and waits for each, as `$(kvproxy token demo)` in \
a script does. Profile `demo` (the demo tenant, in the bench's process); credential source `emulator` (a \
client secret to the emulated Entra ID: one HTTPS call, where `az` would spawn a process costing 0.5–1.5 s \
on real machines); OS keyring off, so a process of its own also reads the certificate each time (with the \
keyring that one call is saved). Calls are what the emulator counted, per process.\n\n\
| path | runs | mean ms | p50 ms | p95 ms | Key Vault calls | auth challenges | Key Vault sign-ins | Entra token requests |\n\
|---|---|---|---|---|---|---|---|---|\n\
{alone_row}\n{own_row}\n{served_row}\n\n\
Through the agent a call is **{ratio:.1}×** faster (p50, same run) and makes no call to Key Vault or Entra.\n"
    );
    write_section("agent", &body);
    runtime.block_on(demo.shutdown());
}
