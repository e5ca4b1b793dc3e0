//! Follows `profiles.toml`, so the tray menu changes when the CLI (or an editor) changes the profiles.
//!
//! The directory is watched, not the file: profiles are saved by writing a temporary file and renaming it
//! over the old one, which replaces the file a file-level watch would hold on to.

use crate::state::Desktop;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// Editors and `rename` produce bursts of events; one reload per burst is enough.
const QUIET: Duration = Duration::from_millis(150);

/// Starts watching; the returned watcher must be kept alive.
pub fn start(desktop: Desktop) -> notify::Result<notify::RecommendedWatcher> {
    let file = desktop.profile_store().path().to_path_buf();
    let dir = file.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(notify::Error::io)?;
    let file_name = file.file_name().map(|n| n.to_os_string());

    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
        if ours && !matches!(event.kind, EventKind::Access(_)) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    std::thread::Builder::new()
        .name("profiles-watch".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                while rx.recv_timeout(QUIET).is_ok() {}
                let read = desktop.reload_profiles();
                crate::say(format!(
                    "profiles: {}",
                    if read { "reloaded" } else { "unreadable, menu kept" }
                ));
                let desktop = desktop.clone();
                crate::runtime::spawn(async move {
                    if read {
                        desktop.demo_if_saved().await;
                        // A profile the CLI added or pointed at another certificate may be one to flag.
                        desktop.check_expiry().await;
                    }
                    desktop.changed();
                });
            }
        })
        .map_err(notify::Error::io)?;
    Ok(watcher)
}
