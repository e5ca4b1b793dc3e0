//! `kvproxy token [PROFILE]`: the token alone on stdout, so `$(kvproxy token api)` works.

use super::agent::ask_agent;
use crate::args::TokenArgs;
use kvproxy_core::{TokenOptions, decode_claims};
use kvproxy_server::agent::protocol::{Request, Response, TokenAnswer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    if !args.no_agent {
        let request = Request::Token {
            profile: args.profile.clone(),
            scope: args.scope.clone(),
        };
        if let Some(Response::Token(token)) = ask_agent(request).await? {
            tracing::debug!(from_cache = token.from_cache, "token from the running app");
            return print(&token, args.json);
        }
    }
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?.resolve()?;
    let token = super::broker()
        .token(&profile, args.scope.as_deref(), TokenOptions::default())
        .await?;
    print(&TokenAnswer::from(token), args.json)
}

/// The same lines whoever minted the token.
fn print(token: &TokenAnswer, json: bool) -> anyhow::Result<()> {
    if token.demo {
        eprintln!("note: DEMO token from the local emulator (kvproxy demo); Azure will not accept it");
    }
    if json {
        let out = serde_json::json!({
            "access_token": token.access_token.expose(),
            "token_type": "Bearer",
            "expires_on": token.expires_on.format(&Rfc3339)?,
            "expires_in": (token.expires_on - OffsetDateTime::now_utc()).whole_seconds().max(0),
            "scope": token.scope,
            "profile": token.profile,
            "demo": token.demo,
            "claims": decode_claims(token.access_token.expose()),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", token.access_token.expose());
    }
    Ok(())
}
