//! `make soak`: minutes of mixed clients against one `kvproxy serve` while the emulator misbehaves.
//!
//! The emulator runs in this process with 90-second tokens, so tokens expire and are refreshed many times. Three
//! profiles (three apps, three certificates) are saved in a private config dir and `kvproxy serve` runs as a
//! process with `RUST_LOG=debug`, its output captured to files. Clients run side by side for `SOAK_SECS`
//! (default 300): the profile token route, the OAuth2 token route, the managed-identity routes, the .NET routes
//! (`kv-key-info` then `kv-key`) and `kvproxy token` processes answered through the agent socket. Meanwhile a
//! schedule injects 429s (with `Retry-After`) and 5xx on Key Vault and Entra, slow responses, a long Entra
//! outage, clock skew and a certificate rotation.
//!
//! The run fails (non-zero exit, reasons printed) on: a panic or a dead server, a request past its timeout, an
//! error that is not typed (problem document, OAuth2 error body, or the CLI's one-line error and exit code), a
//! token served after its expiry, a token or other JWT in the server's output, no token minted with the
//! rotated certificate, or no recovery once the faults stop. Figures of the standard run go to the `soak`
//! section of `docs/benchmarks.md`.
//!
//! Knobs: `SOAK_SECS` (length), `SOAK_FAULTS=0` (same clients, calm emulator), `SOAK_LOG` (the server's
//! `RUST_LOG`, e.g. `trace`), `SOAK_KEEP=1` (keep the server's output; always kept when the run fails). A run
//! with any of the first three changed is printed only.

mod common;

use common::World;
use kvproxy_app::demo::emulator_profile;
use kvproxy_core::{ProfileStore, RetrySettings, SigningAlgorithm};
use kvproxy_emulator::{CertificateVersion, DemoSeed, Emulator, EmulatorConfig, Fault, Route};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A mutex that shrugs off poisoning: a client thread that panicked is reported on its own.
#[derive(Default)]
struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Short enough that a five-minute run sees every token expire several times.
const TOKEN_LIFETIME: Duration = Duration::from_secs(90);
const DEFAULT_SECS: u64 = 300;
/// The last stretch of the run has no faults, so the recovery probe starts from a calm emulator.
const QUIET_TAIL: Duration = Duration::from_secs(20);
/// The CLI's classed exit codes (input, auth, network, local); 1 would mean an error nobody classed.
const ACCEPTED_CLI_EXITS: [i32; 4] = [2, 3, 4, 5];
/// Violation messages kept for the report; the count goes on.
const MAX_VIOLATION_LINES: usize = 40;

/// A request that takes longer than the engine's own retry budget (SDK total, plus one capped `Retry-After`
/// wait that may start just before the budget runs out) has hung.
fn client_timeout() -> Duration {
    let retry = RetrySettings::default();
    retry.max_total + retry.max_delay + Duration::from_secs(5)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Profile,
    OAuth2,
    Msi,
    DotnetKeyInfo,
    DotnetKey,
    Cli,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Profile,
        Kind::OAuth2,
        Kind::Msi,
        Kind::DotnetKeyInfo,
        Kind::DotnetKey,
        Kind::Cli,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Profile => "profile route `GET /api/profiles/{name}/token`",
            Kind::OAuth2 => "OAuth2 `POST /oauth2/v2.0/token`",
            Kind::Msi => "managed identity `GET /msi[/{profile}]/token`",
            Kind::DotnetKeyInfo => ".NET `POST /api/Token/kv-key-info`",
            Kind::DotnetKey => ".NET `POST /api/Token/kv-key`",
            Kind::Cli => "`kvproxy token PROFILE` (agent socket)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Profile => "profile",
            Kind::OAuth2 => "oauth2",
            Kind::Msi => "msi",
            Kind::DotnetKeyInfo => "kv-key-info",
            Kind::DotnetKey => "kv-key",
            Kind::Cli => "cli",
        }
    }
}

/// A token as a client received it; the token itself is kept apart (first-seen map) for the log scan.
struct Received {
    kind: Kind,
    at: f64,
    iat: i64,
    exp: i64,
    app: String,
    /// No client had seen this token before.
    first: bool,
}

struct ErrorGroup {
    count: u64,
    example: String,
}

#[derive(Default)]
struct Tally {
    samples: BTreeMap<Kind, Vec<Duration>>,
    served: BTreeMap<Kind, u64>,
    from_cache: BTreeMap<Kind, u64>,
    errors: BTreeMap<(Kind, u16, String), ErrorGroup>,
    violations: Vec<String>,
    violation_count: u64,
    received: Vec<Received>,
    /// Every token a client saw, with the first time any client saw it.
    first_seen: HashMap<String, f64>,
    cli_fallbacks: u64,
    dotnet_key_refreshes: u64,
}

/// What all clients report into.
#[derive(Default)]
struct Recorder {
    tally: Mutex<Tally>,
}

impl Recorder {
    fn violation(&self, why: String) {
        eprintln!("VIOLATION: {why}");
        let mut tally = self.tally.lock();
        tally.violation_count += 1;
        if tally.violations.len() < MAX_VIOLATION_LINES {
            tally.violations.push(why);
        }
    }

    fn sample(&self, kind: Kind, elapsed: Duration) {
        self.tally.lock().samples.entry(kind).or_default().push(elapsed);
    }

    fn error(&self, kind: Kind, status: u16, class: String, example: &str) {
        let mut tally = self.tally.lock();
        let group = tally.errors.entry((kind, status, class)).or_insert(ErrorGroup {
            count: 0,
            example: example.chars().take(170).collect(),
        });
        group.count += 1;
    }

    fn served(&self, kind: Kind, cached: bool) {
        let mut tally = self.tally.lock();
        *tally.served.entry(kind).or_default() += 1;
        if cached {
            *tally.from_cache.entry(kind).or_default() += 1;
        }
    }

    /// Checks what the JWT says about itself and keeps it for the expiry and log checks.
    fn token(&self, kind: Kind, token: &str, at: f64) {
        let claims = kvproxy_core::decode_claims(token);
        let field = |name: &str| claims.as_ref().and_then(|c| c.get(name)).and_then(|v| v.as_i64());
        let (Some(iat), Some(exp)) = (field("iat"), field("exp")) else {
            self.violation(format!(
                "{}: a 200 answer whose token is not a JWT with iat/exp",
                kind.short()
            ));
            return;
        };
        let app = claims
            .as_ref()
            .and_then(|c| c.get("appid"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let lifetime = TOKEN_LIFETIME.as_secs_f64();
        let stale = {
            let mut tally = self.tally.lock();
            let known = tally.first_seen.get(token).copied();
            let first = known.unwrap_or(at);
            if known.is_none() {
                tally.first_seen.insert(token.to_string(), at);
            }
            tally.received.push(Received {
                kind,
                at,
                iat,
                exp,
                app,
                first: known.is_none(),
            });
            // Issued no later than it was first seen, so this one is past its lifetime whatever the clocks say.
            at - first > lifetime
        };
        if stale {
            self.violation(format!(
                "{}: a token first seen more than {lifetime} s earlier was served again",
                kind.short()
            ));
        }
    }
}

/// One saved profile and what the emulator knows about it.
#[derive(Clone)]
struct ProfileInfo {
    name: String,
    client_id: String,
    vault: String,
    vault_url: String,
    certificate: String,
    scope: String,
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    api_key: String,
    tenant: String,
    profiles: Vec<ProfileInfo>,
    rec: Arc<Recorder>,
    end: Instant,
    timeout: Duration,
}

/// A 2xx answer's content type and body. A failure is recorded here: `Err(Some(type))` for a typed error,
/// `Err(None)` for a violation.
async fn call(ctx: &Ctx, kind: Kind, request: reqwest::RequestBuilder) -> Result<(String, String), Option<String>> {
    let started = Instant::now();
    let result = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.text().await?;
        Ok::<_, reqwest::Error>((status, content_type, body))
    }
    .await;
    let elapsed = started.elapsed();
    ctx.rec.sample(kind, elapsed);
    match result {
        Ok((status, content_type, body)) if (200..300).contains(&status) => Ok((content_type, body)),
        Ok((status, content_type, body)) => Err(record_http_error(ctx, kind, status, &content_type, &body)),
        Err(e) if e.is_timeout() => {
            ctx.rec
                .violation(format!("{}: no answer within {:?} (hung)", kind.short(), ctx.timeout));
            Err(None)
        }
        Err(e) => {
            ctx.rec.violation(format!(
                "{}: transport error after {elapsed:?}: {}",
                kind.short(),
                kvproxy_core::error_chain(&e)
            ));
            Err(None)
        }
    }
}

/// Groups an error answer by what it says it is and returns that; an answer that says nothing usable is a
/// violation.
fn record_http_error(ctx: &Ctx, kind: Kind, status: u16, content_type: &str, body: &str) -> Option<String> {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    match json {
        Some(problem) if content_type.starts_with("application/problem+json") && text(&problem, "title").is_some() => {
            let mut class = format!(
                "problem \"{}\", class {}",
                text(&problem, "title").unwrap_or_default(),
                text(&problem, "class").unwrap_or_else(|| "-".into())
            );
            if let Some(code) = problem.get("aadsts").and_then(|v| v.as_u64()) {
                class.push_str(&format!(", AADSTS{code}"));
            }
            ctx.rec.error(
                kind,
                status,
                class.clone(),
                &text(&problem, "detail").unwrap_or_default(),
            );
            Some(class)
        }
        Some(oauth) if text(&oauth, "error").is_some() && text(&oauth, "error_description").is_some() => {
            let class = format!("OAuth2 error `{}`", text(&oauth, "error").unwrap_or_default());
            ctx.rec.error(
                kind,
                status,
                class.clone(),
                &text(&oauth, "error_description").unwrap_or_default(),
            );
            Some(class)
        }
        _ => {
            ctx.rec.violation(format!(
                "{}: HTTP {status} with an untyped body ({content_type}): {}",
                kind.short(),
                body.chars().take(200).collect::<String>()
            ));
            None
        }
    }
}

fn json_field(body: &str, name: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(body).ok()?.get(name).cloned()
}

/// Takes the access token out of a 2xx answer and records it.
fn take_token(ctx: &Ctx, kind: Kind, content_type: &str, body: &str) -> bool {
    let at = unix_now();
    let (token, cached) = if content_type.starts_with("text/plain") {
        (Some(body.trim().to_string()), false)
    } else {
        (
            json_field(body, "access_token").and_then(|v| v.as_str().map(str::to_string)),
            json_field(body, "from_cache")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        )
    };
    match token {
        Some(token) => {
            ctx.rec.served(kind, cached);
            ctx.rec.token(kind, &token, at);
            true
        }
        None => {
            ctx.rec
                .violation(format!("{}: a 2xx answer without an access token", kind.short()));
            false
        }
    }
}

/// Varied but reproducible gaps between one client's requests.
fn pace(i: u64) -> Duration {
    Duration::from_millis(150 + (i * 37) % 120)
}

async fn profile_request(ctx: &Ctx, profile: &ProfileInfo, i: u64) -> bool {
    // Every eighth request forces a fetch, so faults are met even while a cached token would do.
    let skip = i % 8 == 7;
    let mut url = format!("{}/api/profiles/{}/token?skip_cache={skip}", ctx.base, profile.name);
    if i % 3 == 1 {
        url.push_str("&format=raw");
    }
    let request = ctx.http.get(url);
    let request = if i.is_multiple_of(2) {
        request.header("X-Api-Key", &ctx.api_key)
    } else {
        request.bearer_auth(&ctx.api_key)
    };
    match call(ctx, Kind::Profile, request).await {
        Ok((content_type, body)) => take_token(ctx, Kind::Profile, &content_type, &body),
        Err(_) => false,
    }
}

async fn oauth2_request(ctx: &Ctx, profile: &ProfileInfo, i: u64) -> bool {
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    if i.is_multiple_of(5) {
        form.push(("scope", "api://soak-oauth/.default"));
    }
    let request = ctx.http.post(format!("{}/oauth2/v2.0/token", ctx.base));
    let request = if i.is_multiple_of(2) {
        request.basic_auth(&profile.name, Some(&ctx.api_key))
    } else {
        form.push(("client_id", &profile.name));
        form.push(("client_secret", &ctx.api_key));
        request
    };
    match call(ctx, Kind::OAuth2, request.form(&form)).await {
        Ok((content_type, body)) => take_token(ctx, Kind::OAuth2, &content_type, &body),
        Err(_) => false,
    }
}

async fn msi_request(ctx: &Ctx, profile: &ProfileInfo, i: u64) -> bool {
    let path = if i.is_multiple_of(4) {
        "/msi/token".to_string()
    } else {
        format!("/msi/{}/token", profile.name)
    };
    let request = ctx
        .http
        .get(format!(
            "{}{path}?api-version=2019-08-01&resource=api%3A%2F%2Fsoak-msi",
            ctx.base
        ))
        .header("X-IDENTITY-HEADER", &ctx.api_key);
    match call(ctx, Kind::Msi, request).await {
        Ok((content_type, body)) => take_token(ctx, Kind::Msi, &content_type, &body),
        Err(_) => false,
    }
}

/// The .NET proxy's client: key info once (again now and then, and after Entra refuses the key), then
/// `kv-key` for every token.
struct DotnetClient {
    profile: ProfileInfo,
    key: Option<(String, String)>,
    refresh_info: bool,
    last_key_id: String,
}

impl DotnetClient {
    async fn key_info(&mut self, ctx: &Ctx, skip_cache: bool) -> bool {
        let body = serde_json::json!({
            "keyVaultUri": self.profile.vault_url,
            "certificateName": self.profile.certificate,
            "tenantId": ctx.tenant,
            "skipCache": skip_cache,
        });
        let request = ctx
            .http
            .post(format!("{}/api/Token/kv-key-info", ctx.base))
            .bearer_auth(&ctx.api_key)
            .json(&body);
        let Ok((_, body)) = call(ctx, Kind::DotnetKeyInfo, request).await else {
            return false;
        };
        let field = |name| json_field(&body, name).and_then(|v| v.as_str().map(str::to_string));
        match (field("keyId"), field("kid")) {
            (Some(key_id), Some(kid)) => {
                ctx.rec.served(Kind::DotnetKeyInfo, false);
                self.last_key_id = key_id.clone();
                self.key = Some((key_id, kid));
                true
            }
            _ => {
                ctx.rec
                    .violation("kv-key-info: a 2xx answer without keyId and kid".into());
                false
            }
        }
    }

    async fn request(&mut self, ctx: &Ctx, i: u64) -> bool {
        if self.key.is_none() || self.refresh_info || i % 40 == 39 {
            // Only a refusal makes it read Key Vault again: a periodic re-read could pick up the rotated
            // certificate before the old one is removed, and the engine would never meet Entra's refusal.
            if !self.key_info(ctx, self.refresh_info).await {
                return false;
            }
            self.refresh_info = false;
        }
        let Some((key_uri, kid)) = self.key.clone() else {
            return false;
        };
        let body = serde_json::json!({
            "clientId": self.profile.client_id,
            "tenantId": ctx.tenant,
            "scopes": [self.profile.scope],
            "keyUri": key_uri,
            "keyThumbprint": kid,
            "skipCache": i % 8 == 3,
        });
        let request = ctx
            .http
            .post(format!("{}/api/Token/kv-key", ctx.base))
            .header("X-Api-Key", &ctx.api_key)
            .json(&body);
        match call(ctx, Kind::DotnetKey, request).await {
            Ok((content_type, body)) => take_token(ctx, Kind::DotnetKey, &content_type, &body),
            // Entra no longer knows the certificate (rotated): ask for the key info again, as the .NET proxy's
            // clients do.
            Err(Some(class)) if class.contains("AADSTS700027") => {
                self.refresh_info = true;
                ctx.rec.tally.lock().dotnet_key_refreshes += 1;
                false
            }
            Err(_) => false,
        }
    }
}

/// One client looping until the end of the run; the .NET one returns the key id it used last.
async fn http_worker(ctx: Arc<Ctx>, kind: Kind, offset: usize) -> String {
    let mut dotnet = DotnetClient {
        profile: ctx.profiles[1].clone(),
        key: None,
        refresh_info: false,
        last_key_id: String::new(),
    };
    let mut i = offset as u64;
    while Instant::now() < ctx.end {
        let profile = ctx.profiles[(i as usize) % ctx.profiles.len()].clone();
        match kind {
            Kind::Profile => {
                profile_request(&ctx, &ctx.profiles[offset % ctx.profiles.len()], i).await;
            }
            Kind::OAuth2 => {
                oauth2_request(&ctx, &profile, i).await;
            }
            Kind::Msi => {
                msi_request(&ctx, &profile, i).await;
            }
            Kind::DotnetKey | Kind::DotnetKeyInfo => {
                dotnet.request(&ctx, i).await;
            }
            Kind::Cli => unreachable!("CLI clients run on threads"),
        }
        i += 1;
        tokio::time::sleep(pace(i)).await;
    }
    dotnet.last_key_id
}

/// `kvproxy token PROFILE`, killed if it outlives `timeout`.
fn cli_request(world: &World, rec: &Recorder, profile: &str, timeout: Duration) -> bool {
    let started = Instant::now();
    let child = world
        .command()
        .args(["token", profile])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            rec.violation(format!("cli: could not start kvproxy: {e}"));
            return false;
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                rec.violation(format!("cli: waiting for kvproxy failed: {e}"));
                break None;
            }
        }
    };
    let elapsed = started.elapsed();
    rec.sample(Kind::Cli, elapsed);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        rec.violation(format!("cli: kvproxy token still running after {timeout:?} (hung)"));
        return false;
    };
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(e) => {
            rec.violation(format!("cli: reading kvproxy's output failed: {e}"));
            return false;
        }
    };
    let at = unix_now();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("panicked") {
        rec.violation(format!("cli: kvproxy token panicked: {}", stderr.trim()));
    }
    if stderr.contains("not using the running app") {
        rec.tally.lock().cli_fallbacks += 1;
    }
    if stderr.contains("eyJ") {
        rec.violation("cli: something JWT-like on kvproxy token's stderr".into());
    }
    if status.success() {
        let token = stdout.trim();
        if token.split('.').count() != 3 || token.lines().count() != 1 {
            rec.violation("cli: exit 0 without a single JWT on stdout".into());
            return false;
        }
        rec.served(Kind::Cli, false);
        rec.token(Kind::Cli, token, at);
        return true;
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let error_lines: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error: ")).collect();
    match (status.code(), error_lines.as_slice()) {
        (Some(code), [line]) if ACCEPTED_CLI_EXITS.contains(&code) => {
            let class = match code {
                2 => "exit 2 (input)",
                3 => "exit 3 (auth)",
                4 => "exit 4 (network)",
                _ => "exit 5 (local)",
            };
            rec.error(Kind::Cli, 0, class.into(), line.trim_start_matches("error: "));
        }
        (code, _) => rec.violation(format!(
            "cli: exit {code:?} without one typed `error:` line: {}",
            stderr.trim().chars().take(300).collect::<String>()
        )),
    }
    false
}

fn cli_worker(world: Arc<World>, rec: Arc<Recorder>, profiles: Vec<String>, end: Instant, timeout: Duration, n: usize) {
    let mut i = n;
    while Instant::now() < end {
        cli_request(&world, &rec, &profiles[i % profiles.len()], timeout);
        i += 1;
        std::thread::sleep(pace(i as u64));
    }
}

/// What the schedule does to the emulator.
#[derive(Debug, Clone)]
enum Action {
    Queue(Route, Vec<Fault>),
    Always(Route, Fault, Duration),
    Latency(Duration, Duration),
    Clock(i64, Duration),
    Rotate,
    Unregister,
}

struct Event {
    at: Duration,
    action: Action,
}

fn route_name(route: Route) -> &'static str {
    match route {
        Route::Token => "Entra token (client assertion)",
        Route::DeveloperToken => "Entra token (developer sign-in to Key Vault)",
        Route::GetCertificate => "Key Vault get certificate",
        Route::Sign => "Key Vault sign",
        _ => "other",
    }
}

fn fault_name(fault: &Fault) -> String {
    match fault {
        Fault::TooManyRequests { retry_after_secs } => format!("429 Retry-After {retry_after_secs}"),
        Fault::ServerError(status) => status.to_string(),
        other => format!("{other:?}"),
    }
}

fn too_many(secs: u64) -> Fault {
    Fault::TooManyRequests { retry_after_secs: secs }
}

/// Long enough that tokens minted before it reach the end of their servable life (the engine refreshes a
/// 90-second token with a quarter of it left and serves it down to a tenth) while Entra still fails.
fn outage_len(total: Duration) -> Duration {
    Duration::from_secs(60).min(total / 5)
}

/// A 60-second round of short faults repeated through the run, plus one-off events at fixed fractions of it:
/// clock skew Entra accepts, a long Entra outage, a certificate rotation, clock skew Entra refuses.
fn schedule(total: Duration) -> Vec<Event> {
    let secs = |s: u64| Duration::from_secs(s);
    let at = |fraction: f64| total.mul_f64(fraction);
    let outage_start = at(0.6);
    let outage = (outage_start, outage_start + outage_len(total));
    let mut events = vec![
        Event {
            at: at(0.15),
            action: Action::Clock(200, secs(20).min(total / 8)),
        },
        Event {
            at: outage.0,
            action: Action::Always(Route::Token, Fault::ServerError(503), outage.1 - outage.0),
        },
        Event {
            at: at(0.4),
            action: Action::Rotate,
        },
        Event {
            at: at(0.4) + secs(15).min(total / 10),
            action: Action::Unregister,
        },
        Event {
            at: at(0.85),
            action: Action::Clock(-900, secs(6)),
        },
    ];
    let round: [(u64, Action); 10] = [
        (
            4,
            Action::Queue(Route::Sign, vec![too_many(1), Fault::ServerError(503)]),
        ),
        (8, Action::Always(Route::Token, Fault::ServerError(503), secs(3))),
        (14, Action::Latency(secs(2), secs(4))),
        (21, Action::Queue(Route::Token, vec![too_many(2), too_many(1)])),
        (25, Action::Always(Route::Sign, Fault::ServerError(500), secs(4))),
        (33, Action::Always(Route::Token, too_many(1), secs(5))),
        (
            41,
            Action::Queue(Route::GetCertificate, vec![Fault::ServerError(503), too_many(1)]),
        ),
        (
            44,
            Action::Always(Route::DeveloperToken, Fault::ServerError(503), secs(3)),
        ),
        (50, Action::Queue(Route::Token, vec![Fault::ServerError(502)])),
        (53, Action::Latency(secs(3), secs(3))),
    ];
    let quiet_from = total.saturating_sub(QUIET_TAIL);
    let mut base = 0;
    while secs(base) < quiet_from {
        for (offset, action) in &round {
            let start = secs(base + offset);
            let action = match action {
                // Rounds differ a little: the first slow window is 2, 3 or 5 s.
                Action::Latency(_, len) if *offset == 14 => {
                    Action::Latency(secs([2, 3, 5][(base / 60) as usize % 3]), *len)
                }
                other => other.clone(),
            };
            let len = match &action {
                Action::Always(_, _, len) | Action::Latency(_, len) | Action::Clock(_, len) => *len,
                _ => Duration::ZERO,
            };
            let overlaps_outage = start < outage.1 + secs(5) && start + len + secs(5) > outage.0;
            if start + len < quiet_from && !overlaps_outage {
                events.push(Event { at: start, action });
            }
        }
        base += 60;
    }
    events.retain(|e| e.at < quiet_from);
    events.sort_by_key(|e| e.at);
    events
}

/// What the schedule did, for the report and the checks.
#[derive(Default)]
struct FaultLog {
    queued: BTreeMap<(&'static str, String), u64>,
    /// Per route: windows, requests answered with the fault.
    windows: BTreeMap<&'static str, (u64, u64, String)>,
    slow: Vec<Duration>,
    skews: Vec<(i64, Duration)>,
    /// (real time it took effect, offset): starts at 0.
    offsets: Vec<(f64, i64)>,
    rotated: Option<(CertificateVersion, CertificateVersion)>,
    rotated_at: Option<f64>,
    unregistered_at: Option<f64>,
}

struct Rotation {
    client_id: String,
    vault: String,
    certificate: String,
}

async fn run_schedule(
    emulator: Arc<Emulator>,
    events: Vec<Event>,
    start: Instant,
    log: Arc<Mutex<FaultLog>>,
    rotation: Rotation,
) {
    log.lock().offsets.push((unix_now(), 0));
    let mut ends: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    for event in events {
        tokio::time::sleep_until((start + event.at).into()).await;
        eprintln!("soak: t={:>5.1}s {:?}", event.at.as_secs_f64(), event.action);
        match event.action {
            Action::Queue(route, faults) => {
                let mut log = log.lock();
                for fault in &faults {
                    *log.queued.entry((route_name(route), fault_name(fault))).or_default() += 1;
                }
                emulator.inject_faults(route, faults);
            }
            Action::Always(route, fault, len) => {
                let before = emulator.count(route);
                emulator.fail_always(route, Some(fault.clone()));
                let (emulator, log) = (emulator.clone(), log.clone());
                ends.push(tokio::spawn(async move {
                    tokio::time::sleep(len).await;
                    emulator.fail_always(route, None);
                    let faulted = emulator.count(route).saturating_sub(before);
                    let mut log = log.lock();
                    let entry = log.windows.entry(route_name(route)).or_default();
                    entry.0 += 1;
                    entry.1 += faulted;
                    let name = fault_name(&fault);
                    if !entry.2.contains(&name) {
                        if !entry.2.is_empty() {
                            entry.2.push_str(", ");
                        }
                        entry.2.push_str(&name);
                    }
                }));
            }
            Action::Latency(delay, len) => {
                emulator.set_latency(delay);
                log.lock().slow.push(delay);
                let emulator = emulator.clone();
                ends.push(tokio::spawn(async move {
                    tokio::time::sleep(len).await;
                    emulator.set_latency(Duration::ZERO);
                }));
            }
            Action::Clock(offset, len) => {
                emulator.set_clock_offset(offset);
                {
                    let mut log = log.lock();
                    log.offsets.push((unix_now(), offset));
                    log.skews.push((offset, len));
                }
                let (emulator, log) = (emulator.clone(), log.clone());
                ends.push(tokio::spawn(async move {
                    tokio::time::sleep(len).await;
                    emulator.set_clock_offset(0);
                    log.lock().offsets.push((unix_now(), 0));
                }));
            }
            Action::Rotate => {
                let Some(old) = emulator.latest_certificate(&rotation.vault, &rotation.certificate) else {
                    continue;
                };
                let new = emulator.rotate_certificate(&rotation.vault, &rotation.certificate);
                emulator.register_certificate(&rotation.client_id, &new);
                let mut log = log.lock();
                log.rotated = Some((old, new));
                log.rotated_at = Some(unix_now());
            }
            Action::Unregister => {
                let old = log.lock().rotated.as_ref().map(|(old, _)| old.clone());
                if let Some(old) = old {
                    emulator.unregister_certificate(&rotation.client_id, &old);
                    log.lock().unregistered_at = Some(unix_now());
                }
            }
        }
    }
    for end in ends {
        let _ = end.await;
    }
}

/// The real time a token was issued: its `iat` is on the emulator's clock, shifted by the offset in force then.
/// Of the readings consistent with the offset log, the latest one not after receipt is taken.
fn issued_at(iat: i64, received: f64, offsets: &[(f64, i64)]) -> Option<(f64, i64)> {
    let offset_at = |t: f64| {
        offsets
            .iter()
            .take_while(|(from, _)| *from <= t)
            .last()
            .map_or(0, |(_, o)| *o)
    };
    let distinct: HashSet<i64> = offsets.iter().map(|(_, o)| *o).collect();
    distinct
        .into_iter()
        .filter_map(|offset| {
            let t = (iat - offset) as f64;
            let consistent = [-2.0, -1.0, 0.0, 1.0, 2.0].iter().any(|d| offset_at(t + d) == offset);
            (consistent && t <= received + 2.0).then_some((t, offset))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// A `kvproxy serve` with debug logging, its output in files; killed when dropped, even on a failed run.
struct Server {
    child: Child,
    base_url: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(world: &World, dir: &Path) -> Server {
    let stdout = dir.join("serve.stdout");
    let stderr = dir.join("serve.stderr");
    let child = world
        .command()
        .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
        .env("RUST_LOG", std::env::var("SOAK_LOG").unwrap_or_else(|_| "debug".into()))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).expect("create serve.stdout"))
        .stderr(File::create(&stderr).expect("create serve.stderr"))
        .spawn()
        .expect("start kvproxy serve");
    let mut server = Server {
        child,
        base_url: String::new(),
        stdout,
        stderr,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&server.stdout).unwrap_or_default();
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
            server.base_url = line.trim().to_string();
        }
        if text.lines().any(|l| l.starts_with("ready.")) {
            assert!(
                text.contains("CLI agent:"),
                "kvproxy serve did not start its agent:\n{text}"
            );
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "kvproxy serve exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(&server.stderr).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "kvproxy serve was not ready within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the log scan found.
struct LogScan {
    bytes: u64,
    jwt_like: u64,
    leaked: u64,
    panicked: bool,
}

/// Looks for every token a client saw (its payload or signature segment) and for anything shaped like a JWT
/// (an assertion or a developer token would be one) in the server's output.
fn scan_logs(files: &[&Path], seen: &HashMap<String, f64>) -> LogScan {
    let mut scan = LogScan {
        bytes: 0,
        jwt_like: 0,
        leaked: 0,
        panicked: false,
    };
    let mut segments: HashSet<Vec<u8>> = HashSet::new();
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    for file in files {
        let Ok(handle) = File::open(file) else {
            continue;
        };
        for line in BufReader::new(handle).split(b'\n').map_while(Result::ok) {
            scan.bytes += line.len() as u64 + 1;
            if line.windows(8).any(|w| w == b"panicked") {
                scan.panicked = true;
            }
            for run in line.split(|b| !(is_b64(*b) || *b == b'.')) {
                if run.len() < 20 {
                    continue;
                }
                let parts: Vec<&[u8]> = run.split(|b| *b == b'.').collect();
                if parts
                    .windows(3)
                    .any(|w| w[0].starts_with(b"eyJ") && w[1].starts_with(b"eyJ") && w[2].len() >= 16)
                {
                    scan.jwt_like += 1;
                }
                for part in parts.into_iter().filter(|p| p.len() >= 24) {
                    segments.insert(part.to_vec());
                }
            }
        }
    }
    for token in seen.keys() {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() == 3 && (segments.contains(parts[1].as_bytes()) || segments.contains(parts[2].as_bytes())) {
            scan.leaked += 1;
        }
    }
    scan
}

fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    (
        common::ms(common::percentile(samples, 0.5)),
        common::ms(common::percentile(samples, 0.99)),
        common::ms(samples.last().copied().unwrap_or_default()),
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| format!(", {} GiB", kib / (1024 * 1024)));
    format!("{}, {cpu}{memory}", common::stamp())
}

fn seed_profiles(emulator: &Emulator, store: &ProfileStore, ca_file: &Path) -> Vec<ProfileInfo> {
    let demo = emulator.seed_demo();
    let mut seeds = vec![("soak-a", demo.clone(), SigningAlgorithm::PS256)];
    for (name, app, algorithm) in [
        ("soak-b", "Soak B", SigningAlgorithm::PS256),
        ("soak-c", "Soak C", SigningAlgorithm::RS256),
    ] {
        let client_id = emulator.create_app(app);
        let certificate = emulator.create_certificate("soak", name, name);
        emulator.register_certificate(&client_id, &certificate);
        let seed = DemoSeed {
            client_id,
            vault_url: emulator.vault_url("soak"),
            certificate_name: name.into(),
            scope: format!("api://{name}/.default"),
            certificate,
            ..demo.clone()
        };
        seeds.push((name, seed, algorithm));
    }
    seeds
        .into_iter()
        .map(|(name, seed, algorithm)| {
            let profile = kvproxy_core::Profile {
                algorithm,
                ..emulator_profile(name, &seed, ca_file)
            };
            store.upsert(profile, true).expect("save a soak profile");
            ProfileInfo {
                name: name.into(),
                client_id: seed.client_id.clone(),
                vault: seed.certificate.vault.clone(),
                vault_url: seed.vault_url.clone(),
                certificate: seed.certificate_name.clone(),
                scope: seed.scope.clone(),
            }
        })
        .collect()
}

fn main() {
    let total = Duration::from_secs(
        std::env::var("SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SECS),
    );
    let timeout = client_timeout();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let world = Arc::new(World::new(dir.path()));
    std::fs::create_dir_all(&world.config).expect("config dir");
    let store = ProfileStore::new(world.profiles_file());
    let ca_file = world.config.join("soak-ca.pem");

    let emulator = Arc::new(
        runtime
            .block_on(Emulator::start(EmulatorConfig {
                token_lifetime: TOKEN_LIFETIME,
                ..Default::default()
            }))
            .expect("start the emulator"),
    );
    std::fs::write(&ca_file, emulator.ca_pem()).expect("write the emulator's CA");
    let profiles = seed_profiles(&emulator, &store, &ca_file);
    store.set_default("soak-a").expect("default profile");

    let server = start_server(&world, dir.path());
    let server_pid = server.child.id();
    let rec = Arc::new(Recorder::default());
    // The warm-up's answers stay out of the figures, but its tokens are looked for in the logs too.
    let warm_rec = Arc::new(Recorder::default());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("HTTP client");
    let warm_ctx = Ctx {
        http: http.clone(),
        base: server.base_url.clone(),
        api_key: world.api_key.clone(),
        tenant: emulator.tenant_id(),
        profiles: profiles.clone(),
        rec: warm_rec.clone(),
        end: Instant::now(),
        timeout,
    };
    for profile in &profiles {
        assert!(
            runtime.block_on(profile_request(&warm_ctx, profile, 0)),
            "warm-up: no token for {}; server log in {}",
            profile.name,
            server.stderr.display()
        );
    }
    let rss_before = common::rss_kib(server_pid).unwrap_or(0);
    emulator.reset_counters();

    println!(
        "soak: {} s, clients timeout {timeout:?}, server log {}",
        total.as_secs(),
        server.stderr.display()
    );
    let start = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let end = start + total;
    let ctx = Arc::new(Ctx {
        end,
        rec: rec.clone(),
        ..warm_ctx
    });
    let log = Arc::new(Mutex::new(FaultLog::default()));
    // SOAK_FAULTS=0: the same clients on a calm emulator, as a baseline.
    let calm = std::env::var("SOAK_FAULTS").is_ok_and(|v| v == "0");
    let events = if calm { Vec::new() } else { schedule(total) };
    let rotation = Rotation {
        client_id: profiles[1].client_id.clone(),
        vault: profiles[1].vault.clone(),
        certificate: profiles[1].certificate.clone(),
    };
    let scheduler = runtime.spawn(run_schedule(emulator.clone(), events, start, log.clone(), rotation));
    let workers: Vec<_> = [
        (Kind::Profile, 0),
        (Kind::Profile, 1),
        (Kind::Profile, 2),
        (Kind::OAuth2, 0),
        (Kind::OAuth2, 1),
        (Kind::Msi, 0),
        (Kind::Msi, 1),
        (Kind::DotnetKey, 0),
    ]
    .into_iter()
    .map(|(kind, n)| runtime.spawn(http_worker(ctx.clone(), kind, n)))
    .collect();
    let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
    let cli_threads: Vec<_> = (0..2)
        .map(|n| {
            let (world, rec, names) = (world.clone(), rec.clone(), names.clone());
            std::thread::spawn(move || cli_worker(world, rec, names, end, timeout + Duration::from_secs(5), n))
        })
        .collect();
    let mut dotnet_key_id = String::new();
    for worker in workers {
        match runtime.block_on(worker) {
            Ok(key_id) if !key_id.is_empty() => dotnet_key_id = key_id,
            Ok(_) => {}
            Err(e) => rec.violation(format!("a client task failed: {e}")),
        }
    }
    for thread in cli_threads {
        if thread.join().is_err() {
            rec.violation("a CLI client thread panicked".into());
        }
    }
    if let Err(e) = runtime.block_on(scheduler) {
        rec.violation(format!("the fault schedule failed: {e}"));
    }
    let ran = start.elapsed();
    let counts: Vec<(Route, u64)> = [Route::Token, Route::DeveloperToken, Route::GetCertificate, Route::Sign]
        .into_iter()
        .map(|r| (r, emulator.count(r)))
        .collect();
    let challenges = emulator.count_challenges();

    // Recovery: with the faults gone, every kind of client gets a token again.
    emulator.set_latency(Duration::ZERO);
    emulator.set_clock_offset(0);
    for route in Route::ALL {
        emulator.fail_always(route, None);
    }
    let probe = Ctx {
        http,
        base: ctx.base.clone(),
        api_key: ctx.api_key.clone(),
        tenant: ctx.tenant.clone(),
        profiles: profiles.clone(),
        rec: rec.clone(),
        end: Instant::now(),
        timeout,
    };
    let mut unrecovered = Vec::new();
    for kind in Kind::ALL {
        let mut dotnet = DotnetClient {
            profile: profiles[1].clone(),
            key: None,
            refresh_info: true,
            last_key_id: String::new(),
        };
        let recovered = (0..5).any(|attempt| {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2));
            }
            let profile = &profiles[attempt % profiles.len()];
            match kind {
                Kind::Profile => runtime.block_on(profile_request(&probe, profile, 7)),
                Kind::OAuth2 => runtime.block_on(oauth2_request(&probe, profile, 1)),
                Kind::Msi => runtime.block_on(msi_request(&probe, profile, 1)),
                Kind::DotnetKeyInfo => runtime.block_on(dotnet.key_info(&probe, true)),
                Kind::DotnetKey => runtime.block_on(dotnet.request(&probe, 3)),
                Kind::Cli => cli_request(&world, &rec, &profile.name, timeout),
            }
        });
        if !recovered {
            unrecovered.push(kind.short());
        }
    }

    let mut server = server;
    let alive = matches!(server.child.try_wait(), Ok(None));
    let rss_after = common::rss_kib(server_pid).unwrap_or(0);
    // Let the last log lines reach the files before they are read.
    std::thread::sleep(Duration::from_millis(500));
    let _ = server.child.kill();
    let _ = server.child.wait();

    let log = std::mem::take(&mut *log.lock());
    let tally = std::mem::take(&mut *rec.tally.lock());
    let mut seen = tally.first_seen.clone();
    seen.extend(warm_rec.tally.lock().first_seen.drain());
    let scan = scan_logs(&[&server.stdout, &server.stderr], &seen);
    // The scan must be able to fail: a log line holding a token the clients saw is caught.
    if let Some(token) = seen.keys().next() {
        let planted = dir.path().join("planted.log");
        std::fs::write(&planted, format!("DEBUG answer {{\"access_token\":\"{token}\"}}\n"))
            .expect("write planted.log");
        let check = scan_logs(&[&planted], &seen);
        assert!(
            check.leaked == 1 && check.jwt_like == 1,
            "the log scan missed a planted token"
        );
    }
    let stderr_text = std::fs::read_to_string(&server.stderr).unwrap_or_default();
    let engine_retries = stderr_text
        .lines()
        .filter(|l| l.contains("Entra ID is throttling or failing; retrying"))
        .count();
    let sdk_retries = stderr_text
        .lines()
        .filter(|l| l.contains("server returned error status which requires retry"))
        .count();
    let key_info_refreshes = stderr_text
        .lines()
        .filter(|l| l.contains("refreshing key info and retrying once"))
        .count();
    let refresh_failures = stderr_text
        .lines()
        .filter(|l| l.contains("background token refresh failed"))
        .count();
    drop(stderr_text);

    // Expiry: each token's exp on real time, from the clock offset in force when it was issued.
    let mut expired = 0u64;
    let mut expired_examples: Vec<String> = Vec::new();
    let mut unattributed = 0u64;
    let mut min_left = f64::MAX;
    let mut rotated_app_after = 0u64;
    for token in &tally.received {
        let Some((issued, offset)) = issued_at(token.iat, token.at, &log.offsets) else {
            unattributed += 1;
            continue;
        };
        let real_exp = (token.exp - offset) as f64;
        min_left = min_left.min(real_exp - token.at);
        if token.at >= real_exp {
            expired += 1;
            if expired_examples.len() < 5 {
                expired_examples.push(format!(
                    "  - {}: a token served {:.1} s after its expiry",
                    token.kind.short(),
                    token.at - real_exp
                ));
            }
        }
        if let Some(unregistered) = log.unregistered_at
            && token.first
            && token.app == profiles[1].client_id
            && issued > unregistered + 1.0
        {
            rotated_app_after += 1;
        }
    }

    let mut reasons: Vec<String> = Vec::new();
    if !alive {
        reasons.push("kvproxy serve was not running at the end".into());
    }
    if scan.panicked {
        reasons.push("\"panicked\" in kvproxy serve's output".into());
    }
    if scan.leaked > 0 {
        reasons.push(format!(
            "{} token(s) a client received appear in kvproxy serve's output",
            scan.leaked
        ));
    }
    if scan.jwt_like > 0 {
        reasons.push(format!(
            "{} JWT-shaped string(s) (token or client assertion) in kvproxy serve's output",
            scan.jwt_like
        ));
    }
    if expired > 0 {
        reasons.push(format!("{expired} token(s) served after their expiry:"));
        reasons.extend(expired_examples);
    }
    if unattributed > 0 {
        reasons.push(format!(
            "{unattributed} token(s) whose iat matches no clock offset in force (cannot check their expiry)"
        ));
    }
    if let (Some((_, new)), Some(_)) = (&log.rotated, log.unregistered_at) {
        if key_info_refreshes == 0 {
            reasons.push("the engine never refreshed key info after Entra refused the removed certificate".into());
        }
        if rotated_app_after == 0 {
            reasons.push("no token for the rotated app was minted after its old certificate was removed".into());
        }
        if !dotnet_key_id.ends_with(&new.version) {
            reasons.push(format!(
                "the .NET client still signs with {dotnet_key_id}, not the rotated version {}",
                new.version
            ));
        }
    }
    if !unrecovered.is_empty() {
        reasons.push(format!("no recovery after the faults for: {}", unrecovered.join(", ")));
    }
    if tally.violation_count > 0 {
        reasons.push(format!("{} client-side violation(s):", tally.violation_count));
        reasons.extend(tally.violations.iter().map(|v| format!("  - {v}")));
    }

    let body = report(&Report {
        total,
        ran,
        started_at,
        timeout,
        tally: &tally,
        log: &log,
        counts: &counts,
        challenges,
        rss: (rss_before, rss_after),
        alive,
        scan: &scan,
        engine_retries,
        sdk_retries,
        key_info_refreshes,
        refresh_failures,
        rotated_app_after,
        dotnet_key_id: dotnet_key_id.clone(),
        min_left,
        reasons: &reasons,
    });
    // Only the standard run (full length, faults, debug log) stands for the project's figures; a quick or
    // special run is printed and leaves them alone.
    if total.as_secs() == DEFAULT_SECS && !calm && std::env::var_os("SOAK_LOG").is_none() {
        common::write_section("soak", &body);
    } else {
        print!("{body}");
        println!("(not written to docs/benchmarks.md: not the standard run)");
    }
    drop(server);
    runtime.block_on(async {
        if let Ok(emulator) = Arc::try_unwrap(emulator) {
            emulator.shutdown().await;
        }
    });
    if !reasons.is_empty() || std::env::var_os("SOAK_KEEP").is_some() {
        // The server's logs are the evidence: keep them.
        let kept = dir.keep();
        eprintln!("soak: server output kept in {}", kept.display());
    }
    if !reasons.is_empty() {
        eprintln!("soak FAILED:");
        for reason in &reasons {
            eprintln!("  {reason}");
        }
        std::process::exit(1);
    }
}

struct Report<'a> {
    total: Duration,
    ran: Duration,
    started_at: time::OffsetDateTime,
    timeout: Duration,
    tally: &'a Tally,
    log: &'a FaultLog,
    counts: &'a [(Route, u64)],
    challenges: u64,
    rss: (u64, u64),
    alive: bool,
    scan: &'a LogScan,
    engine_retries: usize,
    sdk_retries: usize,
    key_info_refreshes: usize,
    refresh_failures: usize,
    rotated_app_after: u64,
    /// The key id the .NET client used last.
    dotnet_key_id: String,
    min_left: f64,
    reasons: &'a [String],
}

fn report(r: &Report<'_>) -> String {
    use std::fmt::Write as _;
    let profile = if cfg!(debug_assertions) {
        "dev profile (unoptimised)"
    } else {
        "bench profile (optimised)"
    };
    let secs_env = if r.total.as_secs() == DEFAULT_SECS {
        String::new()
    } else {
        format!("SOAK_SECS={} ", r.total.as_secs())
    };
    let mut out = String::new();
    let _ = writeln!(out, "## Soak: mixed clients under injected faults\n");
    let _ = writeln!(
        out,
        "`{secs_env}make soak` (`cargo bench --locked -p kvproxy-cli --bench soak`), {profile}; {}; started {} UTC, \
ran {:.0} s. Emulator tokens live {} s; clients give up after {:.0} s (the engine's Key Vault retry budget \
plus one capped `Retry-After`). Server: `kvproxy serve` with `RUST_LOG=debug`. Clients side by side: 3 on \
the profile route (one per profile, every 8th with `skip_cache=true`), 2 OAuth2, 2 managed identity, 1 .NET \
(`kv-key-info`, then `kv-key`, every 8th with `skipCache`), 2 threads running `kvproxy token`.\n",
        machine(),
        format_args!(
            "{} {:02}:{:02}",
            r.started_at.date(),
            r.started_at.hour(),
            r.started_at.minute()
        ),
        r.ran.as_secs_f64(),
        TOKEN_LIFETIME.as_secs(),
        r.timeout.as_secs_f64(),
    );
    let verdict = if r.reasons.is_empty() {
        "**passed**: no panic, server alive, no request past its timeout, every error typed, no token served after its expiry, no token or assertion in the server's output".to_string()
    } else {
        format!("**FAILED**: {}", r.reasons.join("; "))
    };
    let _ = writeln!(out, "Result: {verdict}.\n");

    let _ = writeln!(
        out,
        "| client | requests | served | from cache | errors | p50 ms | p99 ms | max ms |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for kind in Kind::ALL {
        let mut samples = r.tally.samples.get(&kind).cloned().unwrap_or_default();
        let errors: u64 = r
            .tally
            .errors
            .iter()
            .filter(|((k, _, _), _)| *k == kind)
            .map(|(_, g)| g.count)
            .sum();
        let (p50, p99, max) = percentiles(&mut samples);
        let cached = match kind {
            Kind::Profile => r.tally.from_cache.get(&kind).copied().unwrap_or(0).to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {cached} | {errors} | {p50:.1} | {p99:.1} | {max:.1} |",
            kind.name(),
            samples.len(),
            r.tally.served.get(&kind).copied().unwrap_or(0),
        );
    }

    let _ = writeln!(
        out,
        "\nErrors returned, by client, status and type (all typed; an example each):\n"
    );
    let _ = writeln!(out, "| client | status | type | count | example |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for ((kind, status, class), group) in &r.tally.errors {
        let status = if *status == 0 {
            "-".to_string()
        } else {
            status.to_string()
        };
        let example = group.example.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| {} | {status} | {class} | {} | {example} |",
            kind.short(),
            group.count
        );
    }
    if r.tally.errors.is_empty() {
        let _ = writeln!(out, "| - | - | none | 0 | |");
    }

    let _ = writeln!(out, "\nFaults injected:\n");
    for ((route, fault), n) in &r.log.queued {
        let _ = writeln!(out, "- {route}: {n} × {fault} (queued, one request each)");
    }
    for (route, (windows, faulted, faults)) in &r.log.windows {
        let _ = writeln!(
            out,
            "- {route}: {windows} window(s) failing every request ({faults}); {faulted} requests answered so"
        );
    }
    let slow: Vec<String> = r.log.slow.iter().map(|d| format!("{} s", d.as_secs())).collect();
    let _ = writeln!(
        out,
        "- slow responses on every route: {} window(s) of added latency ({})",
        slow.len(),
        slow.join(", ")
    );
    for (offset, len) in &r.log.skews {
        let _ = writeln!(
            out,
            "- emulator clock {offset:+} s for {} s{}",
            len.as_secs(),
            if offset.abs() > 300 {
                " (outside Entra's 5-minute assertion tolerance)"
            } else {
                " (within Entra's tolerance)"
            }
        );
    }
    if let Some((old, new)) = &r.log.rotated {
        let removed = match (r.log.rotated_at, r.log.unregistered_at) {
            (Some(rotated), Some(removed)) => format!("the old one removed {:.0} s later", removed - rotated),
            _ => "the old one left registered (the run was too short to remove it)".into(),
        };
        let _ = writeln!(
            out,
            "- certificate `{}` rotated ({}… → {}…), the new one registered on the app, {removed}; {} distinct \
token(s) for that app minted after the removal; the engine refreshed key info after Entra's refusal {} time(s); the .NET \
client asked `kv-key-info` again {} time(s) and ended on the {} key version",
            old.name,
            &old.version[..8],
            &new.version[..8],
            r.rotated_app_after,
            r.key_info_refreshes,
            r.tally.dotnet_key_refreshes,
            if r.dotnet_key_id.ends_with(&new.version) {
                "new"
            } else {
                "OLD"
            },
        );
    }

    let served: u64 = r.tally.served.values().sum();
    let distinct = r.tally.first_seen.len();
    let count = |route: Route| r.counts.iter().find(|(x, _)| *x == route).map_or(0, |(_, n)| *n);
    let _ = writeln!(
        out,
        "\nEmulator requests during the run: Entra token {}, developer sign-in {}, get certificate {}, sign {}, \
Key Vault 401 challenges {}. Clients received {served} tokens, {distinct} distinct (background refreshes mint \
more than clients see). Retries: the engine retried Entra {} time(s) and the Azure SDK saw {} retryable \
Key Vault/sign-in answers (from the server's debug log); {} background refresh(es) failed while the cached \
token was still served.",
        count(Route::Token),
        count(Route::DeveloperToken),
        count(Route::GetCertificate),
        count(Route::Sign),
        r.challenges,
        r.engine_retries,
        r.sdk_retries,
        r.refresh_failures,
    );
    let min_left = if r.min_left == f64::MAX { 0.0 } else { r.min_left };
    let _ = writeln!(
        out,
        "\nChecks: server RSS {} KiB after warm-up, {} KiB at the end; server alive at the end: {}; \
\"panicked\" in its output: {}; least lifetime left on a served token: {min_left:.0} s (the engine serves a \
token down to a tenth of its lifetime, {:.0} s here); server output scanned: \
{:.1} MiB, tokens clients received found in it: {}, JWT-shaped strings: {}; `kvproxy token` falling back to \
minting in its own process: {}.\n",
        r.rss.0,
        r.rss.1,
        if r.alive { "yes" } else { "no" },
        if r.scan.panicked { "yes" } else { "no" },
        TOKEN_LIFETIME.as_secs_f64() / 10.0,
        r.scan.bytes as f64 / (1024.0 * 1024.0),
        r.scan.leaked,
        r.scan.jwt_like,
        r.tally.cli_fallbacks,
    );
    out
}
