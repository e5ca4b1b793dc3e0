//! `kvproxy key-info [PROFILE]`

use crate::args::KeyInfoArgs;
use time::format_description::well_known::Rfc3339;

pub async fn run(args: KeyInfoArgs) -> anyhow::Result<()> {
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?.resolve()?;
    let info = super::broker().key_info(&profile, args.refresh).await?;
    let not_before = info.not_before.format(&Rfc3339)?;
    let expires = info.expires.format(&Rfc3339)?;
    if args.json {
        let out = serde_json::json!({
            "profile": profile.name,
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
        println!("profile            {}", profile.name);
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
