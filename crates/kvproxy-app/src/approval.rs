//! Asking the user before a `confirm` profile's token goes to a program: who asks is known from the door
//! (the program at the other end of the connection), the question is put by whoever shows the app (the
//! desktop: a notification with Allow/Deny, or the window), and an Allow is remembered per program and
//! profile for the time the user chose.

use crate::activity::{Caller, Channel, Program};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a program waits for the user's answer before it is refused.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an Allow holds for the same program and profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Remember {
    #[serde(rename = "15m")]
    Minutes15,
    #[default]
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "8h")]
    Hours8,
    /// Until KeyVault Proxy quits.
    #[serde(rename = "quit")]
    UntilQuit,
}

impl Remember {
    pub const ALL: [Remember; 4] = [Self::Minutes15, Self::Hour, Self::Hours8, Self::UntilQuit];

    fn duration(self) -> Option<Duration> {
        match self {
            Self::Minutes15 => Some(Duration::from_secs(15 * 60)),
            Self::Hour => Some(Duration::from_secs(3600)),
            Self::Hours8 => Some(Duration::from_secs(8 * 3600)),
            Self::UntilQuit => None,
        }
    }

    /// `for 1 hour`, `until KeyVault Proxy quits`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Minutes15 => "for 15 minutes",
            Self::Hour => "for 1 hour",
            Self::Hours8 => "for 8 hours",
            Self::UntilQuit => "until KeyVault Proxy quits",
        }
    }
}

/// The question put to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    /// Names the question among those open at the same time, for the answer.
    pub id: u64,
    pub profile: String,
    pub scope: String,
    /// Who asks, in a few words (`curl (pid 4242)`).
    pub caller: String,
    /// The program, when the system named it.
    pub program: Option<Program>,
    pub source: Channel,
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "remember", rename_all = "lowercase")]
pub enum Decision {
    Allow(Remember),
    Deny,
}

/// Whoever can put the question to the user (the desktop app).
#[async_trait::async_trait]
pub trait Approver: Send + Sync {
    /// Puts `request` to the user and waits for the answer; `None` when it could not be put. The app stops
    /// waiting after [`CONFIRM_TIMEOUT`] (dropping this future), so it need not time out itself.
    async fn ask(&self, request: ApprovalRequest) -> Option<Decision>;
}

/// What to do with a `confirm` profile when a program asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfirmPolicy {
    /// Ask the [`Approver`]; refuse while there is none.
    Ask,
    /// Nobody is there to ask (`kvproxy serve`): refuse, saying how to get the token.
    #[default]
    Refuse,
    /// Hand out without asking (`kvproxy serve --no-confirm`).
    Skip,
}

/// Program (its path, else its name) and profile.
type Key = (String, String);

pub(crate) struct Approvals {
    policy: ConfirmPolicy,
    timeout: Duration,
    approver: RwLock<Option<Arc<dyn Approver>>>,
    /// Until when each Allow holds (`None`: until quit).
    granted: Mutex<HashMap<Key, Option<Instant>>>,
    /// One question at a time per program and profile: a program that asks twice at once is asked once.
    asking: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    next_id: AtomicU64,
}

impl Approvals {
    pub(crate) fn new(policy: ConfirmPolicy, timeout: Duration) -> Self {
        Self {
            policy,
            timeout,
            approver: RwLock::new(None),
            granted: Mutex::new(HashMap::new()),
            asking: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn set_approver(&self, approver: Arc<dyn Approver>) {
        *self.approver.write() = Some(approver);
    }

    /// Ok when `caller` may have a token of the `confirm` profile `profile` for `scope`: asked now, or
    /// allowed before and still within the time the user chose.
    pub(crate) async fn check(&self, profile: &str, scope: &str, caller: &Caller) -> Result<(), String> {
        // The user's own clicks in the tray and the window are their answer already.
        if matches!(caller.channel, Channel::Tray | Channel::Window) || self.policy == ConfirmPolicy::Skip {
            return Ok(());
        }
        let who = caller.who();
        let approver = self.approver.read().clone();
        let Some(approver) = approver.filter(|_| self.policy == ConfirmPolicy::Ask) else {
            return Err(format!(
                "profile '{profile}' asks the user before handing out a token, and nobody can be asked here: use the KeyVault Proxy app, or start `kvproxy serve --no-confirm` to hand out its tokens without asking"
            ));
        };
        // A program the system did not name cannot be remembered: it is asked about every time.
        let key = caller.program().map(|program| {
            (
                program.path.clone().unwrap_or_else(|| program.name.clone()),
                profile.to_string(),
            )
        });
        let turn = key
            .as_ref()
            .map(|key| self.asking.lock().entry(key.clone()).or_default().clone());
        let _turn = match &turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        if let Some(key) = &key
            && self.still_granted(key)
        {
            return Ok(());
        }
        let request = ApprovalRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            profile: profile.to_string(),
            scope: scope.to_string(),
            caller: who.clone(),
            program: caller.program().cloned(),
            source: caller.channel,
        };
        let seconds = self.timeout.as_secs();
        match tokio::time::timeout(self.timeout, approver.ask(request)).await {
            Ok(Some(Decision::Allow(remember))) => {
                if let Some(key) = key {
                    let until = remember.duration().map(|d| Instant::now() + d);
                    self.granted.lock().insert(key, until);
                }
                Ok(())
            }
            Ok(Some(Decision::Deny)) => Err(format!(
                "the user denied {who} a token for profile '{profile}' (access_denied)"
            )),
            Ok(None) => Err(format!(
                "profile '{profile}' asks the user before handing out a token, and the question could not be shown (access_denied)"
            )),
            Err(_) => Err(format!(
                "the user did not answer within {seconds} s whether {who} may have a token for profile '{profile}' (access_denied)"
            )),
        }
    }

    fn still_granted(&self, key: &Key) -> bool {
        let mut granted = self.granted.lock();
        match granted.get(key) {
            Some(None) => true,
            Some(Some(until)) if Instant::now() < *until => true,
            Some(Some(_)) => {
                granted.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forgets every Allow (the user asked to, from the window).
    pub(crate) fn forget(&self) {
        self.granted.lock().clear();
    }

    /// The programs allowed now, per profile, with how long each holds (`None`: until quit).
    pub(crate) fn granted(&self) -> Vec<(String, String, Option<Duration>)> {
        let now = Instant::now();
        let granted = self.granted.lock();
        let mut list: Vec<_> = granted
            .iter()
            .filter(|(_, until)| until.is_none_or(|until| until > now))
            .map(|((program, profile), until)| {
                (
                    program.clone(),
                    profile.clone(),
                    until.map(|until| until.saturating_duration_since(now)),
                )
            })
            .collect();
        list.sort();
        list
    }
}

/// [`CONFIRM_TIMEOUT`], or `KVPROXY_CONFIRM_TIMEOUT` seconds (1-600) for a user who wants longer to find the
/// notification, or a test that cannot wait a minute. A bad value is said and ignored.
pub fn confirm_timeout_from_env() -> Duration {
    let Ok(value) = std::env::var("KVPROXY_CONFIRM_TIMEOUT") else {
        return CONFIRM_TIMEOUT;
    };
    match value.trim().parse::<u64>() {
        Ok(seconds @ 1..=600) => Duration::from_secs(seconds),
        _ => {
            tracing::warn!("KVPROXY_CONFIRM_TIMEOUT='{value}' is not a number of seconds from 1 to 600; using 60");
            CONFIRM_TIMEOUT
        }
    }
}
