//! `kvproxy profile …`

use crate::args::{ProfileAddArgs, ProfileCommand};
use crate::exit::UsageError;
use kvproxy_core::{CloudName, CredentialSource, CustomCloud, Profile, ProfileFile, SigningAlgorithm};
use std::io::Read;

pub fn run(command: ProfileCommand) -> anyhow::Result<()> {
    let store = super::store()?;
    match command {
        ProfileCommand::Add(args) => {
            let (profile, force, make_default) = profile_from_args(args)?;
            let name = profile.name.clone();
            store.upsert(profile, force)?;
            if make_default {
                store.set_default(&name)?;
            }
            eprintln!("saved profile '{name}' in {}", store.path().display());
        }
        ProfileCommand::List { json } => {
            let file = store.load()?;
            if json {
                let list: Vec<_> = file
                    .profiles
                    .values()
                    .map(|p| profile_json(p, file.default.as_deref() == Some(p.name.as_str())))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if file.profiles.is_empty() {
                eprintln!("no profiles yet: add one with `kvproxy profile add`, or try `kvproxy demo`");
            } else {
                println!(
                    "{:<2}{:<20} {:<38} {:<40} SCOPE",
                    "", "NAME", "TENANT", "VAULT / CERTIFICATE"
                );
                for p in file.profiles.values() {
                    let mark = if file.default.as_deref() == Some(p.name.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    let location = format!("{}{}", p.vault_url.trim_start_matches("https://"), p.certificate);
                    println!(
                        "{:<2}{:<20} {:<38} {:<40} {}",
                        mark,
                        p.name,
                        p.tenant,
                        location,
                        p.scopes.first().map(String::as_str).unwrap_or("-")
                    );
                }
            }
        }
        ProfileCommand::Show { name, json } => {
            let file = store.load()?;
            let profile = store.get(&name)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&profile_json(
                        &profile,
                        file.default.as_deref() == Some(name.as_str())
                    ))?
                );
            } else {
                let mut one = ProfileFile::default();
                one.profiles.insert(profile.name.clone(), profile);
                print!("{}", one.to_toml()?);
            }
        }
        ProfileCommand::Rm { name } => {
            store.remove(&name)?;
            eprintln!("removed profile '{name}'");
        }
        ProfileCommand::Confirm { name, state } => {
            let on = match state.as_str() {
                "on" => true,
                "off" => false,
                other => {
                    return Err(
                        crate::exit::UsageError(format!("`profile confirm` takes on or off, not '{other}'")).into(),
                    );
                }
            };
            let mut profile = store.get(&name)?;
            profile.confirm = on;
            store.save_as(Some(&name), profile)?;
            if on {
                eprintln!("'{name}': the app now asks before a program gets its token");
            } else {
                eprintln!("'{name}': tokens go to any program with the API key, without asking");
            }
        }
        ProfileCommand::Default { name } => {
            store.set_default(&name)?;
            eprintln!("'{name}' is now the default profile");
        }
        ProfileCommand::Export { names, output } => {
            let file = store.load()?;
            let mut export = ProfileFile::default();
            for (name, profile) in &file.profiles {
                if names.is_empty() || names.contains(name) {
                    export.profiles.insert(name.clone(), profile.clone());
                }
            }
            if let Some(missing) = names.iter().find(|n| !file.profiles.contains_key(*n)) {
                return Err(kvproxy_core::Error::ProfileNotFound(missing.clone()).into());
            }
            let text = export.to_toml()?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
                    eprintln!("exported {} profile(s) to {}", export.profiles.len(), path.display());
                }
                None => print!("{text}"),
            }
        }
        ProfileCommand::Import { file, force } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| UsageError(format!("cannot read stdin: {e}")))?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?
            };
            let source = if file.as_os_str() == "-" {
                "stdin".to_string()
            } else {
                file.display().to_string()
            };
            let names = store
                .import(&text, force)
                .map_err(|e| anyhow::Error::new(e).context(format!("importing {source}")))?;
            eprintln!("imported {}: {}", names.len(), names.join(", "));
        }
    }
    Ok(())
}

fn profile_from_args(args: Box<ProfileAddArgs>) -> anyhow::Result<(Profile, bool, bool)> {
    let cloud = CloudName::parse(&args.cloud)?;
    let custom_cloud = match (cloud, args.authority_host) {
        (CloudName::Custom, Some(authority_host)) => Some(CustomCloud {
            authority_host,
            vault_suffixes: args.vault_suffixes,
            ca_file: args.ca_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
        }),
        (CloudName::Custom, None) => {
            return Err(UsageError("--cloud custom needs --authority-host and --vault-suffix".into()).into());
        }
        (_, Some(_)) => return Err(UsageError("--authority-host only applies with --cloud custom".into()).into()),
        (_, None) => None,
    };
    let profile = Profile {
        name: args.name,
        tenant: args.tenant,
        client_id: args.client_id,
        vault_url: args.vault_url,
        certificate: args.certificate,
        scopes: args.scopes,
        algorithm: SigningAlgorithm::parse(&args.algorithm)?,
        cloud,
        custom_cloud,
        credential: CredentialSource::parse(&args.credential)?,
        confirm: args.confirm,
    };
    Ok((profile, args.force, args.default))
}

fn profile_json(p: &Profile, is_default: bool) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "default": is_default,
        "tenant": p.tenant,
        "client_id": p.client_id,
        "vault_url": p.vault_url,
        "certificate": p.certificate,
        "scopes": p.scopes,
        "algorithm": p.algorithm.as_str(),
        "cloud": p.cloud.as_str(),
        "custom_cloud": p.custom_cloud,
        "credential": p.credential.as_str(),
        "confirm": p.confirm,
        "demo": p.is_demo(),
    })
}
