//! Who asked for which token: a bounded ring in memory, for the UI's activity log. Never a token value.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use utoipa::ToSchema;

/// One request to a token route.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityRecord {
    /// When the request arrived (RFC 3339).
    pub time: String,
    pub method: String,
    /// The route pattern, e.g. `/api/profiles/{name}/token`.
    pub route: String,
    /// The profile (or client id for ad-hoc requests), when known.
    pub profile: Option<String>,
    /// The caller's `User-Agent`.
    pub user_agent: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
    pub duration_ms: u64,
}

impl ActivityRecord {
    /// The current time as the `time` field wants it.
    pub fn now() -> String {
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
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
    fn ring_keeps_the_newest() {
        let activity = Activity::new(2);
        for i in 0..3 {
            activity.push(ActivityRecord {
                time: i.to_string(),
                method: "GET".into(),
                route: "/r".into(),
                profile: None,
                user_agent: None,
                status: 200,
                duration_ms: 0,
            });
        }
        let times: Vec<_> = activity.snapshot().into_iter().map(|r| r.time).collect();
        assert_eq!(times, ["2", "1"]);
    }
}
