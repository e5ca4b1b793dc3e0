//! `kvproxy key-info [PROFILE]`

use super::agent::ask_agent;
use crate::args::KeyInfoArgs;
use kvproxy_core::KeyInfo;
use kvproxy_server::agent::protocol::{Request, Response};
use time::format_description::well_known::Rfc3339;

pub async fn run(args: KeyInfoArgs) -> anyhow::Result<()> {
    if !args.no_agent {
        let request = Request::KeyInfo {
            profile: args.profile.clone(),
            refresh: args.refresh,
        };
        if let Some(Response::KeyInfo { profile, info }) = ask_agent(request).await? {
            return print(&profile, &info, args.json);
        }
    }
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?.resolve()?;
    let info = super::broker().key_info(&profile, args.refresh).await?;
    print(&profile.name, &info, args.json)
}

fn print(profile: &str, info: &KeyInfo, json: bool) -> anyhow::Result<()> {
    let not_before = info.not_before.format(&Rfc3339)?;
    let expires = info.expires.format(&Rfc3339)?;
    if json {
        let out = serde_json::json!({
            "profile": profile,
            "key_id": info.key_id,
            "certificate": info.certificate,
            "certificate_version": info.certificate_version,
            "subject": info.subject,
            "x5t": info.thumbprints.sha1,
            "x5t#S256": info.thumbprints.sha256,
            "thumbprint_sha1_hex": info.thumbprints.sha1_hex(),
            "not_before": not_before,
            "expires": expires,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("profile            {profile}");
        println!("key id             {}", info.key_id);
        println!("subject            {}", info.subject);
        println!("x5t (SHA-1)        {}", info.thumbprints.sha1);
        println!("x5t#S256 (SHA-256) {}", info.thumbprints.sha256);
        println!(
            "thumbprint (hex)   {}   <- as the Azure portal shows it",
            info.thumbprints.sha1_hex()
        );
        println!("valid              {not_before} .. {expires}");
    }
    Ok(())
}
