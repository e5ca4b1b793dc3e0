//! A `confirm` question as a notification with buttons (Linux): the Desktop Notifications service's
//! actions, spoken over the session bus with zbus, since notify-rust can only wait for a click by blocking
//! until the notification closes, and cannot take one back from another thread.

use crate::questions::Answered;
use kvproxy_app::{ApprovalRequest, Decision, Remember};
use parking_lot::Mutex;
use std::collections::HashMap;
use zbus::blocking::{Connection, MessageIterator, Proxy};
use zbus::zvariant::Value;

const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
const APP_NAME: &str = "KeyVault Proxy";

/// The buttons, as (action key, label). `default` is the spec's key for a click on the notification itself.
const ACTIONS: [(&str, &str); 4] = [
    ("allow-1h", "Allow for 1 hour"),
    ("allow-quit", "Allow until quit"),
    ("deny", "Deny"),
    ("default", "Choose in the window"),
];

fn decision_of(action: &str) -> Option<Decision> {
    match action {
        "allow-1h" => Some(Decision::Allow(Remember::Hour)),
        "allow-quit" => Some(Decision::Allow(Remember::UntilQuit)),
        "deny" => Some(Decision::Deny),
        _ => None,
    }
}

/// The questions on screen: question id → notification id.
#[derive(Default)]
pub struct NotificationQuestions {
    shown: Mutex<HashMap<u64, u32>>,
}

impl NotificationQuestions {
    /// Shows `request` with its buttons and reports clicks through `answered`; false when the service has
    /// no buttons or is not there.
    pub fn ask(&self, request: &ApprovalRequest, answered: Answered) -> bool {
        match self.try_ask(request, answered) {
            Ok(asked) => asked,
            Err(e) => {
                tracing::warn!("could not ask in a notification: {e}");
                false
            }
        }
    }

    fn try_ask(&self, request: &ApprovalRequest, answered: Answered) -> zbus::Result<bool> {
        let bus = Connection::session()?;
        let service = Proxy::new(&bus, SERVICE, PATH, SERVICE)?;
        let capabilities: Vec<String> = service.call("GetCapabilities", &())?;
        if !capabilities.iter().any(|c| c == "actions") {
            return Ok(false);
        }
        // Listening before the notification is shown, so that no click can come before we hear.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(SERVICE)?
            .path(PATH)?
            .build();
        let signals = MessageIterator::for_match_rule(rule, &bus, None)?;
        let actions: Vec<&str> = ACTIONS.iter().flat_map(|(key, label)| [*key, *label]).collect();
        // Critical: a question waits for its answer rather than sliding out of view after a few seconds.
        let hints = HashMap::from([("urgency", Value::U8(2))]);
        let summary = format!("Allow a token for {}?", request.profile);
        let notification: u32 = service.call(
            "Notify",
            &(
                APP_NAME,
                0u32,
                "dev.kvproxy.KeyVaultProxy",
                summary.as_str(),
                escape(&body(request)).as_str(),
                actions,
                hints,
                0i32,
            ),
        )?;
        self.shown.lock().insert(request.id, notification);
        let question = request.id;
        std::thread::Builder::new()
            .name("question".into())
            .spawn(move || listen(signals, notification, question, answered))
            .map_err(|e| zbus::Error::Failure(format!("no thread for the notification: {e}")))?;
        Ok(true)
    }

    /// Closes question `id`'s notification (its listener ends when the service says it closed).
    pub fn withdraw(&self, id: u64) {
        let Some(notification) = self.shown.lock().remove(&id) else {
            return;
        };
        let closed = std::thread::Builder::new().name("question".into()).spawn(move || {
            let close = || -> zbus::Result<()> {
                let bus = Connection::session()?;
                Proxy::new(&bus, SERVICE, PATH, SERVICE)?.call::<_, _, ()>("CloseNotification", &(notification,))
            };
            if let Err(e) = close() {
                tracing::debug!("could not close notification {notification}: {e}");
            }
        });
        if let Err(e) = closed {
            tracing::debug!("could not close notification {notification}: {e}");
        }
    }
}

/// Hears the clicks on `notification` until it is closed.
fn listen(signals: MessageIterator, notification: u32, question: u64, answered: Answered) {
    for message in signals.flatten() {
        let header = message.header();
        let Some(member) = header.member() else { continue };
        match member.as_str() {
            "ActionInvoked" => {
                if let Ok((id, action)) = message.body().deserialize::<(u32, String)>()
                    && id == notification
                {
                    answered(question, decision_of(&action));
                }
            }
            "NotificationClosed" => {
                if let Ok((id, _reason)) = message.body().deserialize::<(u32, u32)>()
                    && id == notification
                {
                    return;
                }
            }
            _ => {}
        }
    }
}

fn body(request: &ApprovalRequest) -> String {
    let mut body = format!(
        "{} asks for a token of '{}' ({}).",
        request.caller, request.profile, request.scope
    );
    if let Some(path) = request.program.as_ref().and_then(|p| p.path.as_deref()) {
        body.push('\n');
        body.push_str(path);
    }
    body
}

/// Servers may read the body as markup: a program's path or name must not become some.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_button_but_choose_is_an_answer() {
        assert_eq!(decision_of("allow-1h"), Some(Decision::Allow(Remember::Hour)));
        assert_eq!(decision_of("allow-quit"), Some(Decision::Allow(Remember::UntilQuit)));
        assert_eq!(decision_of("deny"), Some(Decision::Deny));
        assert_eq!(decision_of("default"), None);
        assert_eq!(escape("a <b> & c"), "a &lt;b&gt; &amp; c");
    }
}
