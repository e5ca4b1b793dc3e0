//! Asking the running app (or `kvproxy serve`) first: its token cache and Key Vault sign-in are warm, so a
//! cached token costs a socket round trip instead of a sign-in and a signature.

use crate::exit::AgentFailure;
use kvproxy_server::agent::protocol::{Envelope, PROTOCOL_VERSION, Request, Response};
use kvproxy_server::agent::{Outcome, ask, default_socket_path};

/// The agent's answer, `None` when there is nobody to ask (or they cannot answer for us): the caller then
/// does the work itself. An error the agent reports is returned as ours, with its class (the exit code).
pub(crate) async fn ask_agent(request: Request) -> anyhow::Result<Option<Response>> {
    let path = match default_socket_path() {
        Ok(path) => path,
        Err(e) => {
            tracing::debug!("no agent socket: {e}");
            return Ok(None);
        }
    };
    let envelope = Envelope {
        protocol: PROTOCOL_VERSION,
        profiles_file: super::store()?.path().to_path_buf(),
        request,
    };
    match ask(&path, &envelope).await {
        Outcome::NoAgent => Ok(None),
        Outcome::Failed(why) => {
            eprintln!("kvproxy: not using the running app ({why}); doing it here");
            Ok(None)
        }
        Outcome::Answered(Response::Unavailable { reason }) => {
            tracing::info!("the running app cannot answer: {reason}");
            Ok(None)
        }
        Outcome::Answered(Response::Error { class, message }) => Err(AgentFailure { class, message }.into()),
        Outcome::Answered(response) => Ok(Some(response)),
    }
}
