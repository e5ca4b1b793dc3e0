//! The desktop's side of `confirm` profiles: the app's question (may this program have this profile's
//! token?) goes to a notification with Allow/Deny buttons where the notification server has buttons, and to
//! the window in every case (opened when no notification can ask). The first answer, from either, wins.

use crate::state::{Desktop, Inner};
use kvproxy_app::{ApprovalRequest, Approver, Decision};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;

/// How the shell reports a click on a question's notification: `Some` for Allow/Deny, `None` for "choose in
/// the window".
pub type Answered = Arc<dyn Fn(u64, Option<Decision>) + Send + Sync>;

/// The questions open now, oldest first, with where each answer goes.
#[derive(Default)]
pub(crate) struct OpenQuestions {
    open: Mutex<Vec<(ApprovalRequest, oneshot::Sender<Decision>)>>,
}

impl OpenQuestions {
    pub(crate) fn list(&self) -> Vec<ApprovalRequest> {
        self.open.lock().iter().map(|(request, _)| request.clone()).collect()
    }

    /// Answers question `id`; false when it is no longer open (answered elsewhere, or timed out).
    pub(crate) fn answer(&self, id: u64, decision: Decision) -> bool {
        let mut open = self.open.lock();
        let Some(at) = open.iter().position(|(request, _)| request.id == id) else {
            return false;
        };
        let (_, answer) = open.remove(at);
        answer.send(decision).is_ok()
    }

    fn remove(&self, id: u64) {
        self.open.lock().retain(|(request, _)| request.id != id);
    }
}

/// The app's [`Approver`] in the desktop. Holds the desktop weakly: the app it is set on belongs to it.
pub(crate) struct DesktopApprover(pub(crate) Weak<Inner>);

#[async_trait::async_trait]
impl Approver for DesktopApprover {
    async fn ask(&self, request: ApprovalRequest) -> Option<Decision> {
        let desktop = Desktop {
            inner: self.0.upgrade()?,
        };
        let id = request.id;
        let (answer, answered) = oneshot::channel();
        desktop.inner.questions.open.lock().push((request.clone(), answer));
        // Whatever ends the wait (an answer, the app's timeout dropping this future) closes the question.
        let _open = Withdraw {
            desktop: desktop.clone(),
            id,
        };
        crate::say(format!(
            "question {id}: {} asks for {}",
            request.caller, request.profile
        ));
        desktop.changed();
        let on_click: Answered = {
            let desktop = Arc::downgrade(&desktop.inner);
            Arc::new(move |id, decision| {
                let Some(inner) = desktop.upgrade() else { return };
                match decision {
                    Some(decision) => {
                        Desktop { inner }.answer_question(id, decision);
                    }
                    None => inner.shell.open_window(),
                }
            })
        };
        let shell = desktop.inner.shell.clone();
        let asked = tokio::task::spawn_blocking(move || shell.ask_in_notification(&request, on_click))
            .await
            .unwrap_or(false);
        if !asked {
            desktop.inner.shell.open_window();
        }
        answered.await.ok()
    }
}

struct Withdraw {
    desktop: Desktop,
    id: u64,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.desktop.inner.questions.remove(self.id);
        self.desktop.inner.shell.withdraw_question(self.id);
        self.desktop.changed();
    }
}

impl Desktop {
    /// The user's answer to question `id`, from the window or a notification's button.
    pub fn answer_question(&self, id: u64, decision: Decision) -> bool {
        let answered = self.inner.questions.answer(id, decision);
        if answered {
            crate::say(format!("question {id}: {decision:?}"));
        }
        answered
    }

    /// The questions waiting for the user, oldest first.
    pub fn open_questions(&self) -> Vec<ApprovalRequest> {
        self.inner.questions.list()
    }
}
