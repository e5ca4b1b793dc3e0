//! Wall time of one `kvproxy token` process on a cached token: minting in its own process (no app running,
//! and `--no-agent` next to a running one) against asking the running `kvproxy serve` over the agent socket.
//! Each process is started and waited for, as a script's `$(kvproxy token demo)` is. The demo tenant runs in
//! this process, so its counters say how many calls each path made to Key Vault and Entra.
//!
//! Prints a Markdown table and rewrites its own section of `docs/benchmarks.md`. `make bench` runs it.

use kvproxy_core::ProfileStore;
use kvproxy_emulator::{Emulator, Route};
use kvproxy_server::demo::DemoTenant;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KVPROXY: &str = env!("CARGO_BIN_EXE_kvproxy");
const RUNS: usize = 30;
const SECTION_START: &str = "<!-- bench:agent:start -->";
const SECTION_END: &str = "<!-- bench:agent:end -->";

struct Env {
    config: PathBuf,
    socket: PathBuf,
    api_key: String,
}

impl Env {
    fn command(&self) -> Command {
        let mut command = Command::new(KVPROXY);
        command
            .env("KVPROXY_CONFIG_DIR", &self.config)
            .env("KVPROXY_AGENT_SOCKET", &self.socket)
            .env("KVPROXY_KEYRING", "off")
            .env("KVPROXY_API_KEY", &self.api_key)
            .env("NO_PROXY", "localhost,127.0.0.1,::1,.localhost")
            .env_remove("RUST_LOG");
        command
    }

    fn token(&self, extra: &[&str]) -> Duration {
        let started = Instant::now();
        let out = self
            .command()
            .args(["token", "demo"])
            .args(extra)
            .output()
            .expect("run kvproxy token");
        let elapsed = started.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim().split('.').count(), 3);
        elapsed
    }
}

/// Calls the emulator saw, per `kvproxy token` process.
struct Calls {
    key_vault: f64,
    challenges: f64,
    sign_in: f64,
    token: f64,
}

fn measure(emulator: &Emulator, runs: usize, mut call: impl FnMut() -> Duration) -> (Vec<Duration>, Calls) {
    emulator.reset_counters();
    let samples: Vec<Duration> = (0..runs).map(|_| call()).collect();
    let per = |n: u64| n as f64 / runs as f64;
    let calls = Calls {
        key_vault: per(emulator.count(Route::GetCertificate) + emulator.count(Route::Sign)),
        challenges: per(emulator.count_challenges()),
        sign_in: per(emulator.count(Route::DeveloperToken)),
        token: per(emulator.count(Route::Token)),
    };
    (samples, calls)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

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

fn start_serve(env: &Env) -> Child {
    let mut child = env
        .command()
        .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kvproxy serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut agent = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        agent |= line.starts_with("CLI agent:");
        if line.starts_with("ready.") {
            break;
        }
    }
    assert!(agent, "kvproxy serve did not start its agent");
    child
}

/// Replaces the text between this bench's markers (appending the section the first time).
fn write_section(file: &Path, body: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let section = format!("{SECTION_START}\n{body}{SECTION_END}");
    let updated = match (text.find(SECTION_START), text.find(SECTION_END)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{section}{}", &text[..start], &text[end + SECTION_END.len()..])
        }
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(file, updated)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env {
        config: dir.path().join("config"),
        socket: dir.path().join("run").join("agent.sock"),
        api_key: "bench-api-key-0123456789abcdef0123456789".into(),
    };
    let store = ProfileStore::new(env.config.join("profiles.toml"));
    let demo = runtime
        .block_on(DemoTenant::start(0, &store, true))
        .expect("demo tenant");
    let DemoTenant::Owned { emulator, .. } = &demo else {
        panic!("port 0 always starts a tenant of our own");
    };

    // Warm-up: the first process pays for cold file caches.
    env.token(&["--no-agent"]);
    let (mut alone, alone_calls) = measure(emulator, RUNS, || env.token(&[]));
    let mut serve = start_serve(&env);
    env.token(&[]); // the server mints once; every call after it is a cached token
    let (mut served, served_calls) = measure(emulator, RUNS, || env.token(&[]));
    let (mut own, own_calls) = measure(emulator, RUNS, || env.token(&["--no-agent"]));
    let _ = serve.kill();
    let _ = serve.wait();

    let (alone_row, _) = row("in its own process, no app running", &mut alone, &alone_calls);
    let (own_row, own_p50) = row("in its own process (`--no-agent`), app running", &mut own, &own_calls);
    let (served_row, served_p50) = row(
        "asking the running app (agent socket), cached token",
        &mut served,
        &served_calls,
    );
    let ratio = own_p50.as_secs_f64() / served_p50.as_secs_f64();
    let date = time::OffsetDateTime::now_utc().date();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let body = format!(
        "## `kvproxy token`: with and without the running app\n\n\
`cargo bench -p kvproxy-cli --bench agent` (part of `make bench`), {date}, {cores} cores. Each row starts \
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
    print!("{body}");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    if let Err(e) = write_section(&docs, &body) {
        eprintln!("could not update {}: {e}", docs.display());
    }
    runtime.block_on(demo.shutdown());
}
