//! `confirm` profiles: a program's request waits for the user's answer (given here by a scripted approver,
//! the desktop's place), an Allow is remembered per program and profile, a Deny or no answer is a 403, and a
//! server with nobody to ask refuses unless told not to ask.

use crate::common::{PROFILE, SCOPE, TestServer, ok_json, problem};
use kvproxy_app::approval::CONFIRM_TIMEOUT;
use kvproxy_app::{ApprovalRequest, Approver, Caller, Channel, ConfirmPolicy, Decision, Remember, TokenRequest};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Answers every question with `answer` (none: never answers), after `release` is notified when `hold`.
struct ScriptedUser {
    answer: Option<Decision>,
    asked: Mutex<Vec<ApprovalRequest>>,
    hold: bool,
    release: Notify,
}

impl ScriptedUser {
    fn answering(answer: Option<Decision>) -> Arc<Self> {
        Arc::new(Self {
            answer,
            asked: Mutex::new(Vec::new()),
            hold: false,
            release: Notify::new(),
        })
    }

    fn asked(&self) -> Vec<ApprovalRequest> {
        self.asked.lock().clone()
    }
}

#[async_trait::async_trait]
impl Approver for ScriptedUser {
    async fn ask(&self, request: ApprovalRequest) -> Option<Decision> {
        self.asked.lock().push(request);
        match self.answer {
            None => std::future::pending().await,
            Some(answer) => {
                if self.hold {
                    self.release.notified().await;
                }
                Some(answer)
            }
        }
    }
}

async fn confirming_server(policy: ConfirmPolicy, timeout: Duration) -> TestServer {
    let s = TestServer::start_confirming(policy, timeout).await;
    let mut profile = s.app.profile_store().get(PROFILE).unwrap();
    profile.confirm = true;
    s.app.save_profile(Some(PROFILE), profile).unwrap();
    s
}

fn profile_token(s: &TestServer) -> reqwest::RequestBuilder {
    s.get(&format!("/api/profiles/{PROFILE}/token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_program_is_asked_once_and_remembered() {
    let s = confirming_server(ConfirmPolicy::Ask, CONFIRM_TIMEOUT).await;
    let user = ScriptedUser::answering(Some(Decision::Allow(Remember::Hour)));
    s.app.set_approver(user.clone());

    let first = ok_json(profile_token(&s).send().await.unwrap()).await;
    assert!(first["access_token"].is_string());
    let asked = user.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let question = &asked[0];
    assert_eq!((question.profile.as_str(), question.scope.as_str()), (PROFILE, SCOPE));
    assert_eq!(question.source, Channel::Http);
    if kvproxy_server::peer::table_too_slow() {
        // Under Wine the caller is not looked up: a program not named is asked about every time.
        assert_eq!(question.program, None);
        ok_json(profile_token(&s).send().await.unwrap()).await;
        assert_eq!(user.asked().len(), 2, "an unnamed program is not remembered");
        return;
    }
    let program = question.program.as_ref().expect("the asking program is named");
    assert_eq!(program.pid, std::process::id(), "this test process asked");
    assert!(
        question.caller.ends_with(&format!("(pid {})", std::process::id())),
        "{question:?}"
    );

    // The same program again, by another route of the same profile: not asked again.
    ok_json(
        s.msi("/msi/token?api-version=2019-08-01&resource=api://kvproxy-test")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user.asked().len(), 1, "an Allow holds for the program and profile");
    let allowed = s.app.approvals();
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert_eq!(allowed[0].1, PROFILE);
    assert!(
        allowed[0]
            .2
            .is_some_and(|left| left <= Duration::from_secs(3600) && left > Duration::from_secs(3500))
    );

    // Forgotten: asked again.
    s.app.forget_approvals();
    ok_json(profile_token(&s).send().await.unwrap()).await;
    assert_eq!(user.asked().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_asking_twice_at_once_is_asked_about_once() {
    if kvproxy_server::peer::table_too_slow() {
        eprintln!("under Wine callers are not named, and only a named program's questions are shared");
        return;
    }
    let s = confirming_server(ConfirmPolicy::Ask, CONFIRM_TIMEOUT).await;
    let user = Arc::new(ScriptedUser {
        answer: Some(Decision::Allow(Remember::Minutes15)),
        asked: Mutex::new(Vec::new()),
        hold: true,
        release: Notify::new(),
    });
    s.app.set_approver(user.clone());
    let requests = [profile_token(&s).send(), profile_token(&s).send()];
    let both = tokio::spawn(futures::future::join_all(requests));
    // The first question is open; the second request waits behind it rather than asking too.
    while user.asked().is_empty() {
        tokio::task::yield_now().await;
    }
    user.release.notify_one();
    for response in both.await.unwrap() {
        ok_json(response.unwrap()).await;
    }
    assert_eq!(user.asked().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_and_no_answer_are_403_and_oauth2_access_denied() {
    let s = confirming_server(ConfirmPolicy::Ask, Duration::from_secs(1)).await;
    let user = ScriptedUser::answering(Some(Decision::Deny));
    s.app.set_approver(user.clone());
    let body = problem(profile_token(&s).send().await.unwrap(), 403, None).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("denied") && detail.contains(PROFILE), "{detail}");
    // A Deny is not remembered: the next request asks again.
    let response = s.oauth2_token(&s.key, None).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "access_denied", "{body}");
    assert_eq!(user.asked().len(), 2);

    let silent = ScriptedUser::answering(None);
    s.app.set_approver(silent.clone());
    let body = problem(profile_token(&s).send().await.unwrap(), 403, None).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("did not answer within 1 s"), "{detail}");
    assert_eq!(silent.asked().len(), 1);

    // Each refusal is in the activity log as a 403 of this program.
    let activity = ok_json(s.get("/api/activity").send().await.unwrap()).await;
    let refused: Vec<_> = activity
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == json!(403))
        .collect();
    assert_eq!(refused.len(), 3, "{activity}");
    if !kvproxy_server::peer::table_too_slow() {
        assert!(refused.iter().all(|r| r["program"]["pid"] == json!(std::process::id())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_to_ask_refuses_unless_told_not_to_ask() {
    let s = confirming_server(ConfirmPolicy::Refuse, CONFIRM_TIMEOUT).await;
    let body = problem(profile_token(&s).send().await.unwrap(), 403, None).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("--no-confirm"),
        "says how to get the token anyway: {detail}"
    );
    // A profile without `confirm` is not affected.
    let mut profile = s.app.profile_store().get(PROFILE).unwrap();
    profile.confirm = false;
    s.app.save_profile(Some(PROFILE), profile).unwrap();
    ok_json(profile_token(&s).send().await.unwrap()).await;

    let skipping = confirming_server(ConfirmPolicy::Skip, CONFIRM_TIMEOUT).await;
    ok_json(profile_token(&skipping).send().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_s_own_clicks_need_no_answer() {
    let s = confirming_server(ConfirmPolicy::Ask, CONFIRM_TIMEOUT).await;
    let user = ScriptedUser::answering(None);
    s.app.set_approver(user.clone());
    for caller in [Caller::tray("Copy token"), Caller::window("Get token")] {
        let request = TokenRequest {
            profile: Some(PROFILE),
            ..Default::default()
        };
        s.app.token(request, &caller).await.expect("a token without asking");
    }
    assert!(user.asked().is_empty());
}
