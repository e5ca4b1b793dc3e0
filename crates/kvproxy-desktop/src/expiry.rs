//! Certificates about to expire: a profile whose certificate ends within [`WARN_DAYS`] is flagged in the
//! window, and the tray says so in a notification at most once a day per profile, also across restarts.
//! Only what is cached is looked at (memory, the OS keyring): the check costs no call to Key Vault, so it
//! can run at start, every hour and after every token without anyone noticing.

use crate::state::Desktop;
use chrono::{DateTime, Local, NaiveDate};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;

/// Days of warning: enough to renew a certificate and register it on the app before Entra refuses it.
pub const WARN_DAYS: i64 = 30;
/// How often the running app looks again (a token copied or fetched also makes it look).
const EVERY: Duration = Duration::from_secs(3600);
/// The day format in the notices file: the user's local calendar day.
const DAY: &str = "%Y-%m-%d";

/// Whole days from `now` until `expires`, rounded down: negative once it has expired, so "expires in 0
/// days" means later today or tomorrow morning, never "already over".
pub fn days_left(expires: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (expires - now).whole_seconds().div_euclid(86_400)
}

/// True when fewer than [`WARN_DAYS`] whole days are left (or the certificate has ended): the same rule as
/// `kvproxy doctor`'s warning, so the window and Check never disagree.
pub fn flagged(expires: OffsetDateTime, now: OffsetDateTime) -> bool {
    days_left(expires, now) < WARN_DAYS
}

/// The profiles among `certificates` (profile, expiry) whose certificate is [`flagged`] at `now`.
pub fn expiry_flags(
    now: OffsetDateTime,
    certificates: impl IntoIterator<Item = (String, OffsetDateTime)>,
) -> BTreeMap<String, OffsetDateTime> {
    certificates
        .into_iter()
        .filter(|(_, expires)| flagged(*expires, now))
        .collect()
}

/// `Certificate for api expires in 12 days`, `… expires today`, `… has expired`.
pub fn summary(profile: &str, expires: OffsetDateTime, now: OffsetDateTime) -> String {
    match days_left(expires, now) {
        _ if expires <= now => format!("Certificate for {profile} has expired"),
        0 => format!("Certificate for {profile} expires today"),
        1 => format!("Certificate for {profile} expires tomorrow"),
        days => format!("Certificate for {profile} expires in {days} days"),
    }
}

/// The notification's body: when, in local time, and what to do about it.
pub fn advice(profile: &str, expires: OffsetDateTime) -> String {
    format!(
        "Valid until {}. Renew the certificate in Key Vault and upload the new version to the app registration; `kvproxy doctor {profile}` or Check in the window confirms the new one works.",
        crate::notify::local_date_time(expires)
    )
}

/// The user's calendar day at `now`: a notice a day means a day as the user counts them.
pub fn local_day(now: OffsetDateTime) -> NaiveDate {
    DateTime::<Local>::from(std::time::SystemTime::from(now)).date_naive()
}

/// Which of `flagged` profiles are due a notice on `today`, given the day each was last told, and the
/// record to keep afterwards. A profile is due when it was never told or told on an earlier day; a day
/// after `today` (the clock was set back) counts as told. The record keeps the days of the flagged
/// profiles and any day from `today` on: a certificate renewed and flagged again next year starts afresh,
/// a deleted profile is forgotten, but a flag that flickers off and on within a day is not told twice.
pub fn due_notices<'a>(
    told: &BTreeMap<String, String>,
    flagged: impl IntoIterator<Item = &'a str>,
    today: NaiveDate,
) -> (Vec<String>, BTreeMap<String, String>) {
    // An entry that is no date (edited by hand) is as good as none.
    let day_of = |name: &str| told.get(name).and_then(|day| NaiveDate::parse_from_str(day, DAY).ok());
    let mut keep: BTreeMap<String, String> = told
        .iter()
        .filter(|(name, _)| day_of(name).is_some_and(|day| day >= today))
        .map(|(name, day)| (name.clone(), day.clone()))
        .collect();
    let mut due = Vec::new();
    for name in flagged {
        match day_of(name) {
            Some(day) if day >= today => {
                keep.insert(name.to_string(), day.format(DAY).to_string());
            }
            _ => {
                due.push(name.to_string());
                keep.insert(name.to_string(), today.format(DAY).to_string());
            }
        }
    }
    (due, keep)
}

/// Which day each profile's expiry was last told, kept in `expiry-notices.json` beside the settings so a
/// restart does not tell it again the same day. Only profile names and dates: nothing secret.
pub struct NoticeBook {
    path: PathBuf,
    told: Mutex<BTreeMap<String, String>>,
}

impl NoticeBook {
    /// The book at `path`. A missing file is an empty book; so is an unreadable one, since the worst that
    /// follows is one notice too many, which is better than none at all.
    pub fn load(path: PathBuf) -> Self {
        let told = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!("ignoring {}: {e}", path.display());
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", path.display());
                BTreeMap::new()
            }
        };
        Self {
            path,
            told: Mutex::new(told),
        }
    }

    /// The profiles among `flagged` not told yet on `today`; they count as told from now on (on disk too).
    pub fn take_turns<'a>(&self, flagged: impl IntoIterator<Item = &'a str>, today: NaiveDate) -> Vec<String> {
        let mut told = self.told.lock();
        let (due, keep) = due_notices(&told, flagged, today);
        if keep != *told {
            if let Err(e) = self.save(&keep) {
                // Kept in memory all the same: this run still tells each profile once a day.
                tracing::warn!(
                    "could not remember the certificate notices in {}: {e}",
                    self.path.display()
                );
            }
            *told = keep;
        }
        due
    }

    /// Written to a temporary file, flushed and renamed over the old one: a crash leaves the old book or
    /// the new one, never half of either.
    fn save(&self, told: &BTreeMap<String, String>) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(told).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &self.path)
    }
}

impl Desktop {
    /// Looks at every saved profile's cached certificate now, by the user's clock.
    pub async fn check_expiry(&self) {
        self.check_expiry_at(OffsetDateTime::now_utc()).await;
    }

    /// Looks at every saved profile's cached certificate as of `now`: updates what the window flags, and
    /// tells in a notification what was not told on `now`'s local day. One look at a time, so two looks
    /// racing (a token and the hourly timer) cannot both tell the same profile.
    pub async fn check_expiry_at(&self, now: OffsetDateTime) {
        let _one_at_a_time = self.inner.expiry_check.lock().await;
        let app = &self.inner.app;
        let mut certificates = Vec::new();
        for name in app.profiles().file.profiles.keys() {
            let Ok(profile) = app.profile(Some(name)) else { continue };
            if let Some(info) = app.broker().cached_key_info(&profile).await {
                certificates.push((name.clone(), info.expires));
            }
        }
        let expiring = expiry_flags(now, certificates);
        // With notifications off no turn is taken: turned on later the same day, they still tell it.
        if self.inner.settings.effective().notifications {
            let due = self
                .inner
                .expiry_notices
                .take_turns(expiring.keys().map(String::as_str), local_day(now));
            for name in due {
                let Some(expires) = expiring.get(&name).copied() else {
                    continue;
                };
                let summary = summary(&name, expires, now);
                crate::say(format!("certificate: {summary}"));
                self.notify(&summary, &advice(&name, expires));
            }
        }
        let changed = {
            let mut flagged = self.inner.expiring.lock();
            let changed = *flagged != expiring;
            *flagged = expiring;
            changed
        };
        if changed {
            self.changed();
        }
    }

    /// Looks now, off the caller's path (after a token was copied or fetched, or profiles changed).
    pub(crate) fn check_expiry_soon(&self) {
        let desktop = self.clone();
        crate::runtime::spawn(async move { desktop.check_expiry().await });
    }

    /// Looks at start and then every hour, for as long as the app runs.
    pub fn watch_expiry(&self) {
        let desktop = self.clone();
        crate::runtime::spawn(async move {
            loop {
                desktop.check_expiry().await;
                tokio::time::sleep(EVERY).await;
            }
        });
    }

    /// When the profile's certificate expires, if it is within [`WARN_DAYS`].
    pub(crate) fn expiring(&self, profile: &str) -> Option<OffsetDateTime> {
        self.inner.expiring.lock().get(profile).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, DAY).unwrap()
    }

    #[test]
    fn fewer_than_thirty_whole_days_are_flagged_thirty_are_not() {
        let now = datetime!(2026-12-08 12:00 UTC);
        let days = time::Duration::days;
        assert!(!flagged(now + days(31), now), "31 days left");
        assert!(!flagged(now + days(30), now), "30 days left, as doctor: no warning");
        assert!(
            flagged(now + days(30) - time::Duration::seconds(1), now),
            "29 days and 23:59:59"
        );
        assert!(flagged(now + time::Duration::hours(1), now));
        assert!(flagged(now, now), "ends this very moment");
        assert!(flagged(now - days(2), now), "expired");
        assert_eq!(days_left(now + days(31) - time::Duration::seconds(1), now), 30);
        assert_eq!(days_left(now + time::Duration::hours(36), now), 1);
        assert_eq!(days_left(now + time::Duration::hours(1), now), 0);
        assert_eq!(days_left(now - time::Duration::hours(1), now), -1);
    }

    #[test]
    fn expiry_flags_keeps_only_the_profiles_within_the_window() {
        let now = datetime!(2026-12-08 00:00 UTC);
        let days = time::Duration::days;
        let flags = expiry_flags(
            now,
            [
                ("year".to_string(), now + days(365)),
                ("edge-out".to_string(), now + days(30)),
                ("edge-in".to_string(), now + days(30) - time::Duration::seconds(1)),
                ("soon".to_string(), now + days(3)),
                ("gone".to_string(), now - days(1)),
            ],
        );
        let names: Vec<&str> = flags.keys().map(String::as_str).collect();
        assert_eq!(names, ["edge-in", "gone", "soon"]);
        assert_eq!(flags["soon"], now + days(3));
    }

    #[test]
    fn the_summary_says_days_today_tomorrow_or_expired() {
        let now = datetime!(2026-12-08 12:00 UTC);
        assert_eq!(
            summary("api", now + time::Duration::days(12), now),
            "Certificate for api expires in 12 days"
        );
        assert_eq!(
            summary("api", now + time::Duration::hours(30), now),
            "Certificate for api expires tomorrow"
        );
        assert_eq!(
            summary("api", now + time::Duration::hours(2), now),
            "Certificate for api expires today"
        );
        assert_eq!(
            summary("api", now - time::Duration::hours(2), now),
            "Certificate for api has expired"
        );
        assert!(advice("api", now).contains("kvproxy doctor api"));
    }

    #[test]
    fn a_notice_is_due_once_a_day_and_again_the_next_day() {
        let none = BTreeMap::new();
        let (due, told) = due_notices(&none, ["api", "other"], day("2026-12-08"));
        assert_eq!(due, ["api", "other"], "never told: both due");

        let (due, same_day) = due_notices(&told, ["api", "other"], day("2026-12-08"));
        assert!(due.is_empty(), "told today: not again");
        assert_eq!(same_day, told);

        let (due, next_day) = due_notices(&told, ["api"], day("2026-12-09"));
        assert_eq!(due, ["api"], "told yesterday: due again");
        assert_eq!(next_day.get("api").map(String::as_str), Some("2026-12-09"));
        assert_eq!(
            next_day.get("other"),
            None,
            "no longer flagged and not told today: forgotten"
        );

        let (due, back) = due_notices(&next_day, ["api"], day("2026-12-08"));
        assert!(due.is_empty(), "the clock set back a day: already told");
        assert_eq!(back, next_day);

        let (_, flicker) = due_notices(&next_day, [], day("2026-12-09"));
        assert_eq!(
            flicker, next_day,
            "unflagged for a moment today: today's notice is still remembered"
        );
        let (due, _) = due_notices(&flicker, ["api"], day("2026-12-09"));
        assert!(due.is_empty(), "and not told twice");
    }

    #[test]
    fn the_book_survives_a_restart_and_a_broken_file_is_an_empty_book() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("expiry-notices.json");
        let book = NoticeBook::load(path.clone());
        assert_eq!(book.take_turns(["api"], day("2026-12-08")), ["api"]);
        assert!(book.take_turns(["api"], day("2026-12-08")).is_empty());
        assert!(
            !dir.path().join("expiry-notices.json.tmp").exists(),
            "no temporary file left"
        );

        let restarted = NoticeBook::load(path.clone());
        assert!(
            restarted.take_turns(["api"], day("2026-12-08")).is_empty(),
            "not again after a restart"
        );
        assert_eq!(
            restarted.take_turns(["api"], day("2026-12-09")),
            ["api"],
            "the next day again"
        );

        std::fs::write(&path, "not json").unwrap();
        assert_eq!(NoticeBook::load(path).take_turns(["api"], day("2026-12-09")), ["api"]);
    }
}
