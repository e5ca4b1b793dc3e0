//! What the `kvproxy-cli` benches share: a private world for `kvproxy` processes (config dir, agent socket,
//! API key, no keyring), `kvproxy serve` started and waited for, percentiles, and the writer that replaces
//! a bench's own section of `docs/benchmarks.md`. Each bench includes this file with `mod common;`, so an
//! item one bench does not use is not dead code.
#![allow(dead_code)]

use kvproxy_app::demo::DemoTenant;
use kvproxy_core::ProfileStore;
use kvproxy_emulator::{Emulator, Route};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/shared/mod.rs"]
mod shared;
pub use shared::{KVPROXY, Serve};

/// A config dir, agent socket and API key of the bench's own; the user's are never read.
pub struct World {
    pub config: PathBuf,
    pub socket: PathBuf,
    pub api_key: String,
}

impl World {
    pub fn new(dir: &Path) -> Self {
        Self {
            config: dir.join("config"),
            socket: dir.join("run").join("agent.sock"),
            api_key: "bench-api-key-0123456789abcdef0123456789".into(),
        }
    }

    pub fn profiles_file(&self) -> PathBuf {
        self.config.join("profiles.toml")
    }

    /// `kvproxy` with this world's environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(KVPROXY);
        shared::isolate(&mut command, &self.config, &self.socket)
            .env("KVPROXY_API_KEY", &self.api_key)
            .env("NO_PROXY", "localhost,127.0.0.1,::1,.localhost");
        command
    }

    /// Starts the demo tenant in this process (its counters are then ours to read) and saves the `demo`
    /// profile for it as this world's default.
    pub fn start_demo(&self, runtime: &tokio::runtime::Runtime) -> DemoTenant {
        let store = ProfileStore::new(self.profiles_file());
        let demo = runtime
            .block_on(DemoTenant::start(0, &store, true))
            .expect("demo tenant");
        assert!(
            matches!(demo, DemoTenant::Owned { .. }),
            "port 0 always starts a tenant of our own"
        );
        demo
    }

    /// One `kvproxy token PROFILE EXTRA…` process, started and waited for, as `$(kvproxy token)` in a
    /// script is; its wall time. With `keyring`, the process uses the OS keyring (see `scripts/with-keyring.sh`).
    pub fn token(&self, profile: &str, extra: &[&str], keyring: bool) -> Duration {
        let mut command = self.command();
        if keyring {
            command.env_remove("KVPROXY_KEYRING");
        }
        let started = Instant::now();
        let out = command
            .args(["token", profile])
            .args(extra)
            .output()
            .expect("run kvproxy token");
        let elapsed = started.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim().split('.').count(), 3);
        elapsed
    }

    /// `kvproxy serve` on a free loopback port, returned once it says `ready.`.
    pub fn start_serve(&self, extra: &[&str]) -> Serve {
        let mut command = self.command();
        command.stderr(Stdio::null());
        shared::start_serve(command, extra)
    }
}

/// The emulator of a demo tenant this process started.
pub fn emulator_of(demo: &DemoTenant) -> &Emulator {
    match demo {
        DemoTenant::Owned { emulator, .. } => emulator,
        DemoTenant::Shared { .. } => panic!("the demo tenant runs in another process"),
    }
}

/// The seed (app, vault, certificate) of a demo tenant this process started.
pub fn seed_of(demo: &DemoTenant) -> &kvproxy_emulator::DemoSeed {
    match demo {
        DemoTenant::Owned { seed, .. } => seed,
        DemoTenant::Shared { .. } => panic!("the demo tenant runs in another process"),
    }
}

/// Calls the emulator counted, per token (or per process, for rows that start one per token).
#[derive(Debug, Default, Clone)]
pub struct Calls {
    /// Certificate reads and signs.
    pub key_vault: f64,
    /// Key Vault's 401 challenges (answered before any injected latency).
    pub challenges: f64,
    /// Sign-ins of the Key Vault credential (the emulator's developer app).
    pub sign_in: f64,
    /// Entra token requests for the app.
    pub token: f64,
    /// Entra's instance discovery.
    pub discovery: f64,
    /// Every call that waited for the injected latency, all routes together.
    pub delayed: f64,
}

impl Calls {
    /// What the emulator counted since its counters were reset, divided over `per`.
    pub fn read(emulator: &Emulator, per: usize) -> Self {
        let per = |n: u64| n as f64 / per.max(1) as f64;
        Self {
            key_vault: per(emulator.count(Route::GetCertificate) + emulator.count(Route::Sign)),
            challenges: per(emulator.count_challenges()),
            sign_in: per(emulator.count(Route::DeveloperToken)),
            token: per(emulator.count(Route::Token)),
            discovery: per(emulator.count(Route::Discovery)),
            delayed: per(Route::ALL.iter().map(|r| emulator.count(*r)).sum()),
        }
    }
}

/// Runs `call` `runs` times from zeroed counters (each call returns its own wall time): the samples, sorted,
/// and the calls per run.
pub fn measure(emulator: &Emulator, runs: usize, mut call: impl FnMut() -> Duration) -> (Vec<Duration>, Calls) {
    emulator.reset_counters();
    let mut samples: Vec<Duration> = (0..runs).map(|_| call()).collect();
    samples.sort();
    (samples, Calls::read(emulator, runs))
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=1).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// "2026-11-30, 2 cores": the line every section starts with, next to its command.
pub fn stamp() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{date}, {cores} cores")
}

/// Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` in
/// `docs/benchmarks.md` (appending the section the first time) and prints the body.
pub fn write_section(name: &str, body: &str) {
    print!("{body}");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    if let Err(e) = replace_section(&file, name, body) {
        eprintln!("could not update {}: {e}", file.display());
    }
}

fn replace_section(file: &Path, name: &str, body: &str) -> std::io::Result<()> {
    let start_marker = format!("<!-- bench:{name}:start -->");
    let end_marker = format!("<!-- bench:{name}:end -->");
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let section = format!("{start_marker}\n{body}{end_marker}");
    let updated = match (text.find(&start_marker), text.find(&end_marker)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{section}{}", &text[..start], &text[end + end_marker.len()..])
        }
        _ => format!("{}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(file, updated)
}
