//! Who asked for which token, through which door: a bounded ring in memory, for the window's activity view
//! and `GET /api/activity`. Never a token value.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use utoipa::ToSchema;

/// The door a request came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The loopback HTTP API.
    Http,
    /// The CLI, over the agent socket or pipe.
    Agent,
    /// A click in the tray menu.
    Tray,
    /// The app's window.
    Window,
}

/// A local program, as the operating system knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub struct Program {
    pub pid: u32,
    /// The executable's file name (`curl`, `python3.12`, `Postman`).
    pub name: String,
    /// The executable's full path, when the system tells it.
    pub path: Option<String>,
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.name, self.pid)
    }
}

/// Which program is at the other end of a door, as far as the operating system says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Program(Program),
    /// Could not be told; why, in words for the activity view (`a program of another user (uid 1001)`).
    Unknown(String),
}

/// Who is asking: the door, what they asked for there, and the program that asked.
#[derive(Debug, Clone)]
pub struct Caller {
    pub channel: Channel,
    /// HTTP: method and route pattern (`GET /api/profiles/{name}/token`); agent: the CLI command
    /// (`kvproxy token`); tray and window: what the user did (`Copy token`).
    pub action: String,
    /// HTTP: the `User-Agent`; agent: the CLI; the app's own doors name none.
    pub client: Option<String>,
    /// The program that asked, for the doors other programs use (HTTP, agent); `None` for the app's own.
    pub identity: Option<Identity>,
    receipt: Option<Receipt>,
}

/// Tells a door whether the app recorded its call, so a door that refused a request before it reached the
/// app (no API key, a bad parameter) records the refusal itself, and nothing is recorded twice.
#[derive(Debug, Clone, Default)]
pub struct Receipt(Arc<AtomicBool>);

impl Receipt {
    pub fn recorded(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Caller {
    /// This caller, with a receipt that says once the app recorded a call made as it.
    pub fn with_receipt(mut self) -> (Self, Receipt) {
        let receipt = Receipt::default();
        self.receipt = Some(receipt.clone());
        (self, receipt)
    }

    /// This caller, known to be `identity`.
    #[must_use]
    pub fn identified(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The program that asked, when it is known.
    pub fn program(&self) -> Option<&Program> {
        match &self.identity {
            Some(Identity::Program(program)) => Some(program),
            _ => None,
        }
    }

    /// Who asked, in a few words: `curl (pid 4242)`, `the tray menu`, or why the program is not known.
    pub fn who(&self) -> String {
        match (&self.identity, self.channel) {
            (Some(Identity::Program(program)), Channel::Agent) => format!("{program} through the kvproxy CLI"),
            (Some(Identity::Program(program)), _) => program.to_string(),
            (Some(Identity::Unknown(why)), _) => format!("unidentified program: {why}"),
            (None, Channel::Tray) => "the tray menu".into(),
            (None, Channel::Window) => "the window".into(),
            (None, Channel::Http | Channel::Agent) => "unidentified program".into(),
        }
    }

    pub fn http(method: &str, route: &str, user_agent: Option<String>) -> Self {
        Self {
            channel: Channel::Http,
            action: format!("{method} {route}"),
            client: user_agent,
            identity: None,
            receipt: None,
        }
    }

    /// `command` is what the user typed after `kvproxy` (`token`, `key-info`).
    pub fn agent(command: &str) -> Self {
        Self {
            channel: Channel::Agent,
            action: format!("kvproxy {command}"),
            client: Some("kvproxy CLI".into()),
            identity: None,
            receipt: None,
        }
    }

    pub fn tray(action: &str) -> Self {
        Self {
            channel: Channel::Tray,
            action: action.into(),
            client: None,
            identity: None,
            receipt: None,
        }
    }

    pub fn window(action: &str) -> Self {
        Self {
            channel: Channel::Window,
            action: action.into(),
            client: None,
            identity: None,
            receipt: None,
        }
    }
}

/// One request for a token or key info.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityRecord {
    /// When the request was answered (RFC 3339). Formatted when the log is read, not on every request.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: time::OffsetDateTime,
    pub source: Channel,
    /// What was asked for, as the door names it (see [`Caller::action`]).
    pub action: String,
    /// The profile (or client id for the .NET routes' ad-hoc requests), when known.
    pub profile: Option<String>,
    /// The calling program as it names itself (HTTP `User-Agent`, `kvproxy CLI`); none for the app's own doors.
    pub client: Option<String>,
    /// Who asked, in a few words (`curl (pid 4242)`, `the tray menu`), or why the program is not known.
    pub caller: String,
    /// The program that asked, as the operating system knows it (HTTP and CLI callers, when it could be told).
    /// For the CLI, the program that ran `kvproxy`.
    pub program: Option<Program>,
    /// HTTP status of the answer, or the status the API would have answered with.
    pub status: u16,
    pub duration_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Activity {
    records: Arc<Mutex<VecDeque<ActivityRecord>>>,
    capacity: usize,
}

impl Activity {
    pub fn new(capacity: usize) -> Self {
        Self {
            records: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    /// Records an answer to `caller` that took since `started`.
    pub fn record(&self, caller: &Caller, profile: Option<&str>, status: u16, started: Instant) {
        // The log's line of the same record: who, what, the answer; never a token.
        tracing::info!(
            target: "kvproxy::activity",
            "{status} {} profile={} by {}",
            caller.action,
            profile.unwrap_or("-"),
            caller.who()
        );
        self.push(ActivityRecord {
            time: time::OffsetDateTime::now_utc(),
            source: caller.channel,
            action: caller.action.clone(),
            profile: profile.map(str::to_string),
            client: caller.client.clone(),
            caller: caller.who(),
            program: caller.program().cloned(),
            status,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(receipt) = &caller.receipt {
            receipt.0.store(true, Ordering::Release);
        }
    }

    pub fn push(&self, record: ActivityRecord) {
        let mut records = self.records.lock();
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Newest first.
    pub fn snapshot(&self) -> Vec<ActivityRecord> {
        self.records.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_with_source_and_client_apart() {
        let activity = Activity::new(2);
        let callers = [
            Caller::tray("Copy token"),
            Caller::agent("token"),
            Caller::http("GET", "/msi/token", Some("curl/8".into())),
        ];
        for caller in &callers {
            activity.record(caller, Some("api"), 200, Instant::now());
        }
        let records = activity.snapshot();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].source, Channel::Http);
        assert_eq!(records[0].action, "GET /msi/token");
        assert_eq!(records[0].client.as_deref(), Some("curl/8"));
        assert_eq!(records[1].source, Channel::Agent);
        assert_eq!(records[1].action, "kvproxy token");
    }
}
