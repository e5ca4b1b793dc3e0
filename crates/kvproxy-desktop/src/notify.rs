//! Desktop notifications and the wording in them.

use chrono::{DateTime, Local, TimeZone};
use time::OffsetDateTime;

/// The name notification servers show and group by.
const APP_NAME: &str = "KeyVault Proxy";

/// Shows a notification from a thread of its own (the D-Bus call may wait on a slow server); where the
/// desktop has no notification service it is only logged, since the window carries the same news.
pub fn show(summary: &str, body: &str) {
    let mut notification = notify_rust::Notification::new();
    notification.appname(APP_NAME).summary(summary).body(body);
    #[cfg(target_os = "linux")]
    notification.icon("dev.kvproxy.KeyVaultProxy");
    let spawned = std::thread::Builder::new().name("notification".into()).spawn(move || {
        if let Err(error) = notification.show() {
            tracing::warn!("could not show a notification: {error}");
        }
    });
    if let Err(error) = spawned {
        tracing::warn!("could not show a notification: {error}");
    }
}

/// `Token for NAME copied — valid until 14:32`, in the user's local time.
pub fn token_copied(profile: &str, expires_on: OffsetDateTime) -> String {
    let now = Local::now();
    format!(
        "Token for {profile} copied — valid until {}",
        until(to_local(expires_on), now)
    )
}

/// A moment as the user's clock and calendar show it: `Mon 4 Jan 2027 14:00`.
pub fn local_date_time(at: OffsetDateTime) -> String {
    to_local(at).format("%a %-d %b %Y %H:%M").to_string()
}

fn to_local(at: OffsetDateTime) -> DateTime<Local> {
    DateTime::<Local>::from(std::time::SystemTime::from(at))
}

/// The clock time alone when it is today, otherwise with the day, so "14:32" never means tomorrow's.
pub fn until<Tz: TimeZone>(at: DateTime<Tz>, now: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M").to_string()
    } else {
        at.format("%a %-d %b %H:%M").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn same_day_shows_the_local_clock_time() {
        let zone = FixedOffset::east_opt(3600).unwrap();
        let now = zone.with_ymd_and_hms(2026, 11, 30, 13, 40, 0).unwrap();
        let at = zone.with_ymd_and_hms(2026, 11, 30, 14, 32, 59).unwrap();
        assert_eq!(until(at, now), "14:32");
    }

    #[test]
    fn another_day_names_the_day() {
        let zone = FixedOffset::west_opt(5 * 3600).unwrap();
        let now = zone.with_ymd_and_hms(2026, 11, 30, 23, 50, 0).unwrap();
        let at = zone.with_ymd_and_hms(2026, 12, 1, 0, 50, 0).unwrap();
        assert_eq!(until(at, now), "Tue 1 Dec 00:50");
    }

    #[test]
    fn utc_instant_is_shown_in_local_time() {
        let expires = OffsetDateTime::now_utc() + time::Duration::minutes(30);
        let text = token_copied("my_api", expires);
        let local = to_local(expires).format("%H:%M").to_string();
        assert!(text.starts_with("Token for my_api copied — valid until "), "{text}");
        assert!(text.ends_with(&local), "{text} should end with {local}");
    }
}
