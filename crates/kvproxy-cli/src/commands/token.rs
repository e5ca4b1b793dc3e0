//! `kvproxy token [PROFILE]`: the token alone on stdout, so `$(kvproxy token api)` works.

use crate::args::TokenArgs;
use kvproxy_core::{TokenOptions, decode_claims};
use time::format_description::well_known::Rfc3339;

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?.resolve()?;
    let broker = super::broker();
    let token = broker
        .token(&profile, args.scope.as_deref(), TokenOptions::default())
        .await?;
    if token.demo {
        eprintln!("note: DEMO token from the local emulator (kvproxy demo); Azure will not accept it");
    }
    if args.json {
        let out = serde_json::json!({
            "access_token": token.access_token.expose(),
            "token_type": "Bearer",
            "expires_on": token.expires_on.format(&Rfc3339)?,
            "expires_in": token.lifetime().whole_seconds(),
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
