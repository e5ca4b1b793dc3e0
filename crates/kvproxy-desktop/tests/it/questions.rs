//! `confirm` profiles in the running app: a program's request waits while the user is asked in a
//! notification with buttons (played by the test's notification server, which clicks as a user would), an
//! Allow is remembered for that program, a Deny is a 403, and where notifications have no buttons the window
//! opens to ask and a question nobody answers ends in a 403 when the wait is over.

use crate::app::{App, Tenant, http_get, store};
use crate::bus::{NotificationServer, TrayHost};
use crate::session::Session;
use crate::{TIMEOUT, wait_until};
use std::thread::JoinHandle;

const KEY: &str = "confirm-test-key-0123456789-abcdefghijklmnopq";

/// A GET with the key from a thread of this test process (so the asking program is this test), answered
/// when the user has answered.
fn ask_for_token(port: u16, profile: &str) -> JoinHandle<(u16, String)> {
    let path = format!("/api/profiles/{profile}/token");
    std::thread::spawn(move || http_get(port, &path, Some(KEY)).expect("the API answers"))
}

fn confirm_profiles(session: &Session, tenant: &Tenant, names: &[&str]) {
    for name in names {
        let mut profile = tenant.profile(name);
        profile.confirm = true;
        store(session).upsert(profile, false).expect("save a confirm profile");
    }
}

#[test]
fn a_notification_asks_and_an_allow_is_remembered_for_the_program() {
    let session = Session::start();
    let _host = TrayHost::serve(&session);
    let notifications = NotificationServer::serve_with_buttons(&session);
    let tenant = Tenant::start(&session);
    confirm_profiles(&session, &tenant, &["asking", "strict"]);
    let app = App::start(&session, &[("KVPROXY_PORT", "0"), ("KVPROXY_API_KEY", KEY)]);
    let port = app.api_port();

    let waiting = ask_for_token(port, "asking");
    let question = notifications.wait_for(|n| n.summary == "Allow a token for asking?", TIMEOUT);
    let who = format!("(pid {})", std::process::id());
    assert!(question.body.contains(&who), "names this test process: {question:?}");
    assert!(question.body.contains("api://"), "names the scope: {question:?}");
    let keys: Vec<&str> = question.actions.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["allow-1h", "allow-quit", "deny", "default"], "{question:?}");
    assert!(!waiting.is_finished(), "the request waits for the answer");

    notifications.click(question.id, "allow-1h");
    let (status, body) = waiting.join().expect("the request thread");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("access_token"), "{body}");
    wait_until("the answered notification taken back", TIMEOUT, || {
        notifications.closed().contains(&question.id).then_some(())
    });

    // The same program again: no question.
    let asked = notifications.all().len();
    let (status, body) = ask_for_token(port, "asking").join().expect("the request thread");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        notifications.all().len(),
        asked,
        "an Allow holds for the program and the profile"
    );

    // Another profile is another question; Deny refuses with a 403 that says so.
    let waiting = ask_for_token(port, "strict");
    let question = notifications.wait_for(|n| n.summary == "Allow a token for strict?", TIMEOUT);
    notifications.click(question.id, "deny");
    let (status, body) = waiting.join().expect("the request thread");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("denied"), "{body}");
}

#[test]
fn without_buttons_the_window_asks_and_no_answer_is_a_403() {
    let session = Session::start();
    let _host = TrayHost::serve(&session);
    let notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    confirm_profiles(&session, &tenant, &["asking"]);
    let app = App::start(
        &session,
        &[
            ("KVPROXY_PORT", "0"),
            ("KVPROXY_API_KEY", KEY),
            ("KVPROXY_CONFIRM_TIMEOUT", "3"),
        ],
    );
    let port = app.api_port();
    let waiting = ask_for_token(port, "asking");
    app.wait_line("window: open");
    let (status, body) = waiting.join().expect("the request thread");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("did not answer within 3 s"), "{body}");
    assert!(
        notifications.all().iter().all(|n| !n.summary.starts_with("Allow")),
        "a server without buttons is not asked: {:?}",
        notifications.all()
    );
}
