//! The window's token and key-info views: a token for the selected profile with its header and claims
//! decoded into rows a person can read, and the certificate's key info with what the Azure portal shows.

use crate::error::UiError;
use crate::state::Desktop;
use kvproxy_app::{ActivityRecord, Caller, TokenRequest};
use kvproxy_core::{KeyInfo, SecretString, decode_claims, decode_header};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One row of a decoded header or claims table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    /// The value as JSON text (strings without quotes).
    pub value: String,
    /// What the claim means, for the claims people look for.
    pub meaning: &'static str,
    /// For time claims (`iat`, `nbf`, `exp`): seconds since the epoch, which the window shows in local time.
    pub time: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub profile: String,
    pub scope: String,
    pub access_token: String,
    /// Seconds since the epoch.
    pub expires_on: i64,
    pub from_cache: bool,
    pub demo: bool,
    pub header: Vec<Row>,
    pub claims: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfoView {
    pub profile: String,
    pub key_id: String,
    pub certificate: String,
    pub certificate_version: String,
    pub subject: String,
    pub x5t: String,
    pub x5t_s256: String,
    /// The SHA-1 thumbprint in hex, as the Azure portal and the app registration show it.
    pub sha1_hex: String,
    pub not_before: String,
    pub expires: String,
    pub days_left: i64,
    /// Expires within 30 days (or has expired).
    pub expires_soon: bool,
}

/// The claims people look for first, in this order, with what they mean; the rest follow by name.
const KNOWN_CLAIMS: &[(&str, &str)] = &[
    ("aud", "audience: the API this token is for"),
    ("roles", "app roles granted to the app"),
    ("scp", "delegated scopes (absent in app-only tokens)"),
    ("appid", "the app (client) id that asked"),
    ("azp", "the app (client) id that asked"),
    ("tid", "tenant id"),
    ("iss", "issuer"),
    ("iat", "issued at"),
    ("nbf", "not valid before"),
    ("exp", "expires"),
    ("oid", "object id of the app's service principal"),
    ("sub", "subject"),
    ("ver", "token version"),
];

const TIME_CLAIMS: &[&str] = &["iat", "nbf", "exp"];

fn rows(value: Option<Value>, known: &[(&str, &'static str)]) -> Vec<Row> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    let row = |name: &str, value: &Value, meaning: &'static str| Row {
        name: name.to_string(),
        value: match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        },
        meaning,
        time: TIME_CLAIMS.contains(&name).then(|| value.as_i64()).flatten(),
    };
    let mut out: Vec<Row> = known
        .iter()
        .filter_map(|(name, meaning)| map.get(*name).map(|v| row(name, v, meaning)))
        .collect();
    let mut rest: Vec<_> = map
        .iter()
        .filter(|(name, _)| !known.iter().any(|(k, _)| k == name))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    out.extend(rest.into_iter().map(|(name, value)| row(name, value, "")));
    out
}

impl Desktop {
    /// A token for `name` (and `scope`, else the profile's first), as the window shows it. Recorded in the
    /// activity log as the window's.
    pub async fn get_token(&self, name: &str, scope: Option<&str>, skip_cache: bool) -> Result<TokenView, UiError> {
        let request = TokenRequest {
            profile: Some(name),
            scope: scope.map(str::trim).filter(|s| !s.is_empty()),
            skip_cache,
        };
        let token = self.app().token(request, &Caller::window("Get token")).await?;
        self.check_expiry_soon();
        let jwt = token.access_token.expose();
        Ok(TokenView {
            profile: token.profile.clone(),
            scope: token.scope.clone(),
            access_token: jwt.to_string(),
            expires_on: token.expires_on.unix_timestamp(),
            from_cache: token.from_cache,
            demo: token.demo,
            header: rows(
                decode_header(jwt),
                &[
                    ("alg", "signature algorithm"),
                    ("typ", ""),
                    ("kid", "signing key id"),
                    ("x5t", "signing certificate thumbprint"),
                ],
            ),
            claims: rows(decode_claims(jwt), KNOWN_CLAIMS),
        })
    }

    /// Key info for `name`: from memory or the OS keyring, or with `refresh` from Key Vault.
    pub async fn key_info(&self, name: &str, refresh: bool) -> Result<KeyInfoView, UiError> {
        let (name, info) = self
            .app()
            .key_info(Some(name), refresh, &Caller::window("Key info"))
            .await?;
        self.check_expiry_soon();
        Ok(key_info_view(&name, &info, OffsetDateTime::now_utc()))
    }

    /// `kvproxy doctor`'s checks for the saved profile `name`: each step tried afresh, nothing cached, so a
    /// fix shows at once. An unknown or unreadable profile is the error; anything that fails after that is
    /// a step of the report.
    pub async fn check_setup(&self, name: &str) -> Result<kvproxy_core::DoctorReport, UiError> {
        let profile = self.app().profile(Some(name))?;
        if profile.is_demo() {
            // The demo tenant runs on demand, and asking for key info is what starts it. Its error is
            // dropped: the doctor's own steps say what is wrong, with the fix.
            let _ = self.app().key_info(Some(name), false, &Caller::window("Check")).await;
        }
        let report = kvproxy_core::diagnose(&profile, &kvproxy_core::DoctorOptions::default()).await;
        crate::say(format!(
            "check: {name}: {}",
            if report.passed() { "passed" } else { "failed" }
        ));
        Ok(report)
    }

    /// Copies a secret the window shows (a token) the way the tray copies one: marked as secret and cleared
    /// after the configured delay.
    pub fn copy_secret(&self, secret: String) -> Result<(), UiError> {
        let clear_after = self.inner.settings.effective().clipboard_clear_after();
        self.inner
            .shell
            .copy_secret(&SecretString::new(secret), clear_after)
            .map_err(UiError::message)
    }

    /// Copies text that is no secret (ids for a support ticket).
    pub fn copy_text(&self, text: String) -> Result<(), UiError> {
        self.inner
            .shell
            .copy_secret(&SecretString::new(text), None)
            .map_err(UiError::message)
    }

    /// Every token handed out (API, tray, window), newest first. Never a token.
    pub fn activity(&self) -> Vec<ActivityRecord> {
        self.app().activity().snapshot()
    }
}

fn key_info_view(profile: &str, info: &KeyInfo, now: OffsetDateTime) -> KeyInfoView {
    // The same count and threshold as the profile list's flag, so the two never disagree.
    let days_left = crate::expiry::days_left(info.expires, now);
    KeyInfoView {
        profile: profile.to_string(),
        key_id: info.key_id.clone(),
        certificate: info.certificate.clone(),
        certificate_version: info.certificate_version.clone(),
        subject: info.subject.clone(),
        x5t: info.thumbprints.sha1.clone(),
        x5t_s256: info.thumbprints.sha256.clone(),
        sha1_hex: info.thumbprints.sha1_hex(),
        not_before: info.not_before.format(&Rfc3339).unwrap_or_default(),
        expires: info.expires.format(&Rfc3339).unwrap_or_default(),
        days_left,
        expires_soon: crate::expiry::flagged(info.expires, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_claims_come_first_in_their_order_and_times_are_marked() {
        let claims = json!({"zzz": 1, "exp": 200, "aud": "api://x", "roles": ["A", "B"], "iat": 100, "appid": "c"});
        let rows = rows(Some(claims), KNOWN_CLAIMS);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["aud", "roles", "appid", "iat", "exp", "zzz"]);
        assert_eq!(rows[0].value, "api://x");
        assert_eq!(rows[1].value, r#"["A","B"]"#);
        assert_eq!(rows[3].time, Some(100));
        assert_eq!(rows[0].time, None);
        assert!(rows[0].meaning.contains("audience"));
    }
}
