//! kvproxy against the peer: what a developer writes without it (`scripts/peer/mint_token.py`: MSAL for the
//! token request, the Azure SDK for Python to read the certificate and have Key Vault sign the assertion).
//! Both mint tokens for the same app from the same demo tenant, which runs in this process, so its counters
//! say what each path asked of Key Vault and Entra.
//!
//! Rows: the peer as one process per token (what `$(python mint_token.py)` in a script costs) and as one
//! process minting many (the cost per token once started); then kvproxy as a process per token, in-process
//! with a fresh sign and token request each time (the same network work as the peer's loop), through the API
//! with the cache skipped and with it, and as a process asking the running app.
//!
//! The peer's Python packages live in `.tools/peer/` (`scripts/peer.sh --install` makes it, and so does this
//! bench when it is missing). Without them (no network to PyPI) the peer rows are left out and kvproxy's are
//! still written. Prints a Markdown table and rewrites the `peer` section of `docs/benchmarks.md`.

mod common;

use common::{Calls, World, emulator_of, measure, ms, percentile, seed_of, stamp, write_section};
use kvproxy_app::demo::DEMO_PROFILE;
use kvproxy_core::{Broker, ProfileStore, TokenOptions};
use kvproxy_emulator::{DEVELOPER_CLIENT_ID, DEVELOPER_CLIENT_SECRET, DemoSeed};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Processes started one after another for each per-process row.
const PROCESSES: usize = 30;
/// Tokens minted one after another for each per-token row.
const TOKENS: usize = 200;

struct Row {
    name: &'static str,
    samples: Vec<Duration>,
    calls: Calls,
}

impl Row {
    fn new(name: &'static str, (mut samples, calls): (Vec<Duration>, Calls)) -> Self {
        samples.sort();
        Self { name, samples, calls }
    }

    fn p50(&self) -> Duration {
        percentile(&self.samples, 0.5)
    }

    /// One table line; `peer` is the peer row it is compared with.
    fn line(&self, peer: Option<&Row>) -> String {
        let versus = match peer {
            Some(peer) if std::ptr::eq(peer, self) => "peer".to_string(),
            Some(peer) => format!("{:.1}× faster", peer.p50().as_secs_f64() / self.p50().as_secs_f64()),
            None => "—".to_string(),
        };
        let c = &self.calls;
        format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {versus} |",
            self.name,
            self.samples.len(),
            ms(self.p50()),
            ms(percentile(&self.samples, 0.95)),
            c.key_vault,
            c.challenges,
            c.sign_in,
            c.token,
            c.discovery,
        )
    }
}

/// The peer script and the venv it runs in.
struct Peer {
    python: PathBuf,
    script: PathBuf,
    ca_file: PathBuf,
    seed: DemoSeed,
}

impl Peer {
    /// The venv's Python, after making the venv when it is missing (or a failed install left it without
    /// the packages); `None` when it cannot be made.
    fn find(repo: &Path, ca_file: PathBuf, seed: &DemoSeed) -> Option<Self> {
        let python = repo.join(".tools/peer/bin/python");
        let usable = |python: &Path| {
            Command::new(python)
                .args([
                    "-c",
                    "import msal, azure.identity, azure.keyvault.certificates, azure.keyvault.keys",
                ])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !usable(&python) {
            println!("peer: .tools/peer/ is missing or incomplete; running scripts/peer.sh --install to make it");
            let installed = Command::new(repo.join("scripts/peer.sh"))
                .arg("--install")
                .status()
                .is_ok_and(|s| s.success());
            if !installed || !usable(&python) {
                println!(
                    "peer: SKIPPED: scripts/peer.sh could not install the peer's packages (no network to PyPI?); \
only kvproxy's rows are measured"
                );
                return None;
            }
        }
        Some(Self {
            python,
            script: repo.join("scripts/peer/mint_token.py"),
            ca_file,
            seed: seed.clone(),
        })
    }

    fn command(&self, count: Option<usize>) -> Command {
        let seed = &self.seed;
        let mut command = Command::new(&self.python);
        command
            .arg(&self.script)
            .args(["--authority-host", &seed.authority_host])
            .args(["--tenant", &seed.tenant_id])
            .args(["--client-id", &seed.client_id])
            .args(["--vault-url", &seed.vault_url])
            .args(["--certificate", &seed.certificate_name])
            .args(["--scope", &seed.scope])
            .args(["--kv-client-id", DEVELOPER_CLIENT_ID])
            .args(["--kv-client-secret", DEVELOPER_CLIENT_SECRET])
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("NO_PROXY", "localhost,127.0.0.1,::1,.localhost")
            // Without the bytecode cache every process would compile the packages again: not what a
            // developer's machine does.
            .env_remove("PYTHONDONTWRITEBYTECODE");
        if let Some(count) = count {
            command.args(["--count", &count.to_string()]);
        }
        command
    }

    /// One process minting one token: its wall time, or what went wrong.
    fn one(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let out = self
            .command(None)
            .output()
            .map_err(|e| format!("could not start python: {e}"))?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let token = String::from_utf8_lossy(&out.stdout);
        if token.trim().split('.').count() != 3 {
            return Err(format!("not a JWT on stdout: {token}"));
        }
        Ok(elapsed)
    }

    /// One process minting `count` tokens: its report (per-token times, start-up, versions).
    fn many(&self, count: usize) -> Value {
        let out = self.command(Some(count)).output().expect("run the peer");
        assert!(out.status.success(), "peer: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("the peer's JSON report")
    }
}

/// "AMD EPYC 7B13" from /proc/cpuinfo, where there is one.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::new(dir.path());
    let store = ProfileStore::new(world.profiles_file());
    let demo = world.start_demo(&runtime);
    let (emulator, seed) = (emulator_of(&demo), seed_of(&demo));
    let ca_file = world.config.join("demo-ca.pem");

    // --- the peer -------------------------------------------------------------------------------------------
    let mut peer_rows = None;
    let mut peer_notes = String::new();
    if let Some(peer) = Peer::find(&repo, ca_file, seed) {
        // Warm-up: the first run compiles the packages' bytecode and fills the file cache.
        match peer.one() {
            Err(e) => println!(
                "peer: SKIPPED: the peer script failed (`scripts/peer.sh --install` repairs its venv): {}",
                e.trim()
            ),
            Ok(_) => {
                let processes = Row::new(
                    "peer: a process per token",
                    measure(emulator, PROCESSES, || peer.one().expect("the peer script")),
                );
                emulator.reset_counters();
                let report = peer.many(TOKENS);
                let calls = Calls::read(emulator, TOKENS);
                let samples: Vec<Duration> = report["token_ms"]
                    .as_array()
                    .expect("token_ms")
                    .iter()
                    .map(|t| Duration::from_secs_f64(t.as_f64().expect("a time in ms") / 1e3))
                    .collect();
                assert_eq!(report["signs"].as_u64(), Some(TOKENS as u64), "one sign per token");
                let in_process = Row::new("peer: one process, many tokens", (samples, calls));
                let versions = report["versions"]
                    .as_object()
                    .map(|v| {
                        v.iter()
                            .map(|(name, version)| format!("{name} {}", version.as_str().unwrap_or("?")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                peer_notes = format!(
                    "Peer: Python {}, {versions}. Its start-up before the first token: imports {:.0} ms, Key Vault \
credential + certificate read + MSAL app {:.0} ms; its first token {:.1} ms (a second Key Vault challenge: the \
keys package keeps its own challenge cache).\n\n",
                    report["python"].as_str().unwrap_or("?"),
                    report["import_ms"].as_f64().unwrap_or(0.0),
                    report["setup_ms"].as_f64().unwrap_or(0.0),
                    report["token_ms"][0].as_f64().unwrap_or(0.0),
                );
                peer_rows = Some((processes, in_process));
            }
        }
    }

    // --- kvproxy ----------------------------------------------------------------------------------------------
    world.token(DEMO_PROFILE, &["--no-agent"], false); // warm-up: cold file caches
    let own_process = Row::new(
        "kvproxy: a process per token (`kvproxy token --no-agent`)",
        measure(emulator, PROCESSES, || {
            world.token(DEMO_PROFILE, &["--no-agent"], false)
        }),
    );

    let broker = Broker::new(Default::default());
    let profile = store
        .get(DEMO_PROFILE)
        .and_then(|p| p.resolve())
        .expect("the demo profile");
    let fresh = TokenOptions { skip_cache: true };
    let mint = |options: TokenOptions| {
        runtime.block_on(async {
            let started = Instant::now();
            let token = broker.token(&profile, None, options).await.expect("engine token");
            assert!(!token.from_cache || !options.skip_cache);
            started.elapsed()
        })
    };
    mint(fresh); // key info, Key Vault sign-in and challenge: once per process, as for the peer
    let engine = Row::new(
        "kvproxy: in-process engine, cache skipped",
        measure(emulator, TOKENS, || mint(fresh)),
    );

    let serve = world.start_serve(&[]);
    let client = reqwest::Client::builder().no_proxy().build().expect("HTTP client");
    let api = |query: &str| {
        let url = format!(
            "{}/api/profiles/{DEMO_PROFILE}/token?format=raw{query}",
            serve.base_url()
        );
        runtime.block_on(async {
            let started = Instant::now();
            let response = client
                .get(&url)
                .header("X-Api-Key", &world.api_key)
                .send()
                .await
                .expect("API request");
            assert!(response.status().is_success(), "API answered {}", response.status());
            let token = response.text().await.expect("API body");
            let elapsed = started.elapsed();
            assert_eq!(token.trim().split('.').count(), 3);
            elapsed
        })
    };
    api(""); // the server mints once (key info, sign-in, challenge, sign, token)
    let api_fresh = Row::new(
        "kvproxy: API, cache skipped (`skip_cache=true`)",
        measure(emulator, TOKENS, || api("&skip_cache=true")),
    );
    let api_cached = Row::new("kvproxy: API, cached token", measure(emulator, TOKENS, || api("")));
    assert!(serve.has_agent(), "kvproxy serve did not start its agent");
    world.token(DEMO_PROFILE, &[], false);
    let agent = Row::new(
        "kvproxy: a process per token asking the running app (`kvproxy token`)",
        measure(emulator, PROCESSES, || world.token(DEMO_PROFILE, &[], false)),
    );
    drop(serve);

    // --- the section ------------------------------------------------------------------------------------------
    let (peer_process, peer_tokens) = match &peer_rows {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let mut lines = Vec::new();
    if let (Some(a), Some(b)) = (peer_process, peer_tokens) {
        lines.push(a.line(Some(a)));
        lines.push(b.line(Some(b)));
    }
    lines.push(own_process.line(peer_process));
    lines.push(agent.line(peer_process));
    lines.push(engine.line(peer_tokens));
    lines.push(api_fresh.line(peer_tokens));
    lines.push(api_cached.line(peer_tokens));
    let lines = lines.join("\n");
    let skipped = if peer_rows.is_none() {
        "**The peer rows are missing from this run**: its Python packages could not be installed or it failed \
(see the bench's output).\n\n"
    } else {
        ""
    };
    let body = format!(
        "## Against the peer: MSAL + Azure SDK for Python\n\n\
`cargo bench -p kvproxy-cli --bench peer` (part of `make bench`), {stamp}, {cpu}. The peer is \
`scripts/peer/mint_token.py`, what a developer writes without kvproxy: MSAL's `ConfidentialClientApplication` \
with a client-assertion callable, the assertion (RS256, `x5t`) signed by Key Vault through \
`azure-keyvault-keys`' `CryptographyClient`, the certificate read once per process with \
`azure-keyvault-certificates`, Key Vault signed in to with `azure-identity`. kvproxy uses the `demo` profile \
(PS256, `x5t#S256`; same calls). Both against the demo tenant in the bench's process (emulated Entra ID + Key \
Vault over local HTTPS, no added latency), signing in to Key Vault with the emulator's developer client secret \
(the stand-in for `az login`); OS keyring off, so every new process reads the certificate again.\n\n\
{skipped}{peer_notes}\
| path | n | p50 ms | p95 ms | Key Vault calls | auth challenges | Key Vault sign-ins | Entra token requests | Entra discovery | vs peer (p50) |\n\
|---|---|---|---|---|---|---|---|---|---|\n\
{lines}\n\n\
Calls are what the emulator counted, per token. What each row times:\n\n\
- **peer: a process per token**: `python mint_token.py …` started and waited for, {PROCESSES} times: \
interpreter start, imports, Key Vault sign-in, challenge, certificate read, OpenID discovery, one sign, one \
token request.\n\
- **peer: one process, many tokens**: `mint_token.py --count {TOKENS}`, timed inside the script around \
`acquire_token_for_client` with MSAL's cache emptied first: a fresh assertion, one sign, one token request.\n\
- **kvproxy: a process per token**: `kvproxy token demo --no-agent`, {PROCESSES} times: the same work as the \
peer's process. Compared with the peer's process row.\n\
- **kvproxy: a process per token asking the running app**: `kvproxy token demo` with `kvproxy serve` running: \
a process that asks the app over its socket and gets the cached token. Compared with the peer's process row.\n\
- **kvproxy: in-process engine, cache skipped**: `Broker::token` with `skip_cache`, {TOKENS} times in the bench's \
process: one sign, one token request, as the peer's loop. Compared with the peer's many-tokens row.\n\
- **kvproxy: API, cache skipped**: `GET /api/profiles/demo/token?skip_cache=true` on `kvproxy serve` with one \
reused HTTP client: the engine's work plus a loopback HTTP hop. Compared with the peer's many-tokens row.\n\
- **kvproxy: API, cached token**: the same route without `skip_cache`: what a caller pays while the token is \
valid. Its ratio to the peer's many-tokens row is what the cache saves, not like for like: MSAL's own cache \
would also serve a token within one process, and the peer's loop empties it on purpose.\n",
        stamp = stamp(),
        cpu = cpu_model(),
    );
    write_section("peer", &body);
    runtime.block_on(demo.shutdown());
}
