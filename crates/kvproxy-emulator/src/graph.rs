//! The emulated Microsoft Graph, as far as a client needs it to check an app registration: `GET
//! /v1.0/applications(appId='…')` with the app's certificate credentials (`keyCredentials`).
//!
//! It answers like Graph: only a caller with a Graph token of this tenant (audience
//! [`GRAPH_RESOURCE`]) gets through, only the developer identity may read the directory (and
//! [`crate::Emulator::set_graph_access`] takes that away), an unknown app id is Graph's 404, and
//! errors have Graph's `{"error": {"code", "message", "innerError"}}` shape.

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto;
use crate::http::{json_response, not_found, segments};
use crate::model::{DEVELOPER_CLIENT_ID, GRAPH_RESOURCE, Route};
use crate::state::{RegisteredCert, Shared};
use crate::tokens;

/// Graph's well-known application id, which Graph also accepts as the audience of its tokens.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

pub(crate) fn handle(state: &Shared, parts: &Parts, route: Option<Route>) -> Response {
    let app_id = segments(parts.uri.path()).get(1).and_then(|entity| app_id_of(entity));
    let (Some(Route::GraphApplication), Some(app_id)) = (route, app_id) else {
        return not_found("the emulated Microsoft Graph only has GET /v1.0/applications(appId='…')");
    };

    let caller = match tokens::bearer(&parts.headers) {
        None => return unauthorized("Access token is empty."),
        Some(token) => match tokens::verify(state, token, &[GRAPH_RESOURCE, GRAPH_APP_ID]) {
            Ok(caller) => caller,
            Err(reason) => return unauthorized(&format!("Access token validation failure: {reason}.")),
        },
    };
    let denied = state.inner.lock().graph_denied;
    if denied || !caller.str("appid").eq_ignore_ascii_case(DEVELOPER_CLIENT_ID) {
        return error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }

    let application = {
        let inner = state.inner.lock();
        inner.apps.get(&app_id.to_ascii_lowercase()).map(|app| {
            let credentials: Vec<Value> = app.certificates.iter().map(key_credential).collect();
            json!({
                "id": app.object_id,
                "appId": app_id.to_ascii_lowercase(),
                "displayName": app.display_name,
                "signInAudience": "AzureADMyOrg",
                "keyCredentials": credentials,
                "passwordCredentials": [],
            })
        })
    };
    let Some(Value::Object(application)) = application else {
        return error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{app_id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };

    let selected = selection(parts.uri.query().unwrap_or_default());
    let base = state.settings.graph_base();
    let mut body = Map::new();
    let context = match &selected {
        Some(fields) => format!("{base}/v1.0/$metadata#applications({})/$entity", fields.join(",")),
        None => format!("{base}/v1.0/$metadata#applications/$entity"),
    };
    body.insert("@odata.context".into(), Value::String(context));
    for (name, value) in application {
        if selected.as_ref().is_none_or(|fields| fields.contains(&name)) {
            body.insert(name, value);
        }
    }
    json_response(StatusCode::OK, Value::Object(body))
}

/// The app id in `applications(appId='…')` (quotes and parentheses possibly percent-encoded).
pub(crate) fn app_id_of(entity: &str) -> Option<String> {
    let entity = percent_decode(entity)?;
    let inner = entity.strip_prefix("applications(appId=")?.strip_suffix(')')?;
    let id = inner.strip_prefix('\'')?.strip_suffix('\'')?;
    uuid::Uuid::parse_str(id).ok().map(|_| id.to_owned())
}

/// The fields of `$select=a,b`, if the query has one.
fn selection(query: &str) -> Option<Vec<String>> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "$select")
        .map(|(_, value)| {
            value
                .split(',')
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect()
        })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One certificate credential as Graph lists it. `customKeyIdentifier` is the SHA-1 thumbprint in
/// upper-case hex, as the portal and `az ad app credential reset --cert` set it.
fn key_credential(cert: &RegisteredCert) -> Value {
    let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    json!({
        "customKeyIdentifier": cert.sha1.iter().map(|b| format!("{b:02X}")).collect::<String>(),
        "displayName": cert.display_name,
        "endDateTime": time(cert.expires),
        "key": crypto::b64std(&cert.cer_der),
        "keyId": cert.key_id,
        "startDateTime": time(cert.not_before),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"\""));
    response
}

/// Graph's error body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let date = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default();
    json_response(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {"date": date, "request-id": request_id, "client-request-id": request_id},
        }}),
    )
}

/// The Graph-shaped answer for an injected 429/5xx fault.
pub(crate) fn transient_error(status: StatusCode) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS {
        error(
            status,
            "TooManyRequests",
            "Too many requests are being sent. Please retry after some time.",
        )
    } else {
        error(
            status,
            "generalException",
            "General exception while processing. (Fault injected by the KeyVault Proxy emulator.)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_entities_name_a_guid_app_id() {
        let id = "11111111-2222-3333-4444-555555555555";
        assert_eq!(app_id_of(&format!("applications(appId='{id}')")).as_deref(), Some(id));
        assert_eq!(
            app_id_of(&format!("applications(appId=%27{id}%27)")).as_deref(),
            Some(id)
        );
        assert_eq!(app_id_of("applications(appId='not-a-guid')"), None);
        assert_eq!(app_id_of(&format!("applications(appId={id})")), None);
        assert_eq!(app_id_of(&format!("servicePrincipals(appId='{id}')")), None);
        assert_eq!(app_id_of("applications(appId='%zz')"), None);
    }

    #[test]
    fn select_lists_fields() {
        assert_eq!(
            selection("$select=keyCredentials,appId"),
            Some(vec!["keyCredentials".to_owned(), "appId".to_owned()])
        );
        assert_eq!(
            selection("%24select=keyCredentials"),
            Some(vec!["keyCredentials".to_owned()])
        );
        assert_eq!(selection("api-version=1"), None);
    }
}
