//! The profiles as the running app knows them: `profiles.toml` read and checked once, kept in memory, and read
//! again only when the file changed on disk (another program, the CLI, an editor) or the app changed it.
//! A request costs at most one `stat` of the file (one per millisecond under load), never a read or a parse.

use kvproxy_core::{Cloud, Error, ProfileFile, ProfileStore, Result, ValidProfile};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How long one look at the file's stamp holds: a burst of requests costs one `stat`, and an edit by another
/// program is seen by any request made a millisecond later (a program takes longer than that to start).
const STAMP_HOLDS: Duration = Duration::from_millis(1);

/// One reading of the profiles file.
#[derive(Debug, Default)]
pub struct Profiles {
    /// The last file that could be read: the tray menu keeps showing it while the file is broken.
    pub file: ProfileFile,
    /// Why the file on disk cannot be read now; `None` when `file` is what is on disk.
    pub error: Option<String>,
    resolved: HashMap<String, Arc<ValidProfile>>,
    custom_clouds: Vec<Cloud>,
}

impl Profiles {
    fn read(store: &ProfileStore, last_good: Option<&Profiles>) -> Self {
        match store.load() {
            Ok(file) => {
                let resolved: HashMap<String, Arc<ValidProfile>> = file
                    .profiles
                    .iter()
                    .filter_map(|(name, profile)| Some((name.clone(), Arc::new(profile.resolve().ok()?))))
                    .collect();
                let mut custom_clouds: Vec<Cloud> = Vec::new();
                for profile in resolved.values() {
                    let cloud = profile.cloud();
                    if cloud.custom.is_some() && !custom_clouds.contains(cloud) {
                        custom_clouds.push(cloud.clone());
                    }
                }
                Self {
                    file,
                    error: None,
                    resolved,
                    custom_clouds,
                }
            }
            Err(error) => {
                tracing::warn!("{error}");
                let mut kept = last_good.map(Profiles::keep).unwrap_or_default();
                kept.error = Some(error.to_string());
                kept
            }
        }
    }

    fn keep(&self) -> Self {
        Self {
            file: self.file.clone(),
            error: None,
            resolved: self.resolved.clone(),
            custom_clouds: self.custom_clouds.clone(),
        }
    }

    /// The name `name` stands for: itself, or the default profile's when `None`.
    pub fn name_of<'a>(&'a self, name: Option<&'a str>) -> Result<&'a str> {
        match (name, &self.file.default) {
            (Some(name), _) => Ok(name),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(Error::NoDefaultProfile),
        }
    }

    pub fn is_default(&self, name: &str) -> bool {
        self.file.default.as_deref() == Some(name)
    }

    /// Custom clouds of saved profiles (the demo tenant, Azure Stack): the vaults they name are allowed for
    /// ad-hoc requests too.
    pub fn custom_clouds(&self) -> &[Cloud] {
        &self.custom_clouds
    }

    /// The tenant of a saved profile on `vault_root`, else of one on the same (custom) cloud.
    pub fn tenant_for_vault(&self, cloud: &Cloud, vault_root: &url::Url) -> Option<String> {
        let mut profiles = self.resolved.values();
        profiles
            .clone()
            .find(|p| p.vault_root() == vault_root)
            .or_else(|| profiles.find(|p| p.cloud() == cloud))
            .map(|p| p.tenant.clone())
    }
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Saving replaces the file by a rename, which a new inode shows even within one clock tick.
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// The profiles file and what was last read from it.
pub(crate) struct ProfileCache {
    store: ProfileStore,
    current: RwLock<(Option<Stamp>, Arc<Profiles>)>,
    stamp_holds: Duration,
    epoch: Instant,
    /// When the stamp was last looked at, in nanoseconds since `epoch`.
    stamped_at: AtomicU64,
}

impl ProfileCache {
    pub(crate) fn new(store: ProfileStore) -> Self {
        Self::holding_stamps_for(store, STAMP_HOLDS)
    }

    fn holding_stamps_for(store: ProfileStore, stamp_holds: Duration) -> Self {
        let stamp = stamp(store.path());
        let profiles = Arc::new(Profiles::read(&store, None));
        Self {
            store,
            current: RwLock::new((stamp, profiles)),
            stamp_holds,
            epoch: Instant::now(),
            stamped_at: AtomicU64::new(0),
        }
    }

    pub(crate) fn store(&self) -> &ProfileStore {
        &self.store
    }

    /// The profiles as the file says now: the kept reading while the file is unchanged.
    pub(crate) fn current(&self) -> Arc<Profiles> {
        let elapsed = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.stamped_at.load(Ordering::Acquire);
        let holds = u64::try_from(self.stamp_holds.as_nanos()).unwrap_or(u64::MAX);
        if last != 0 && elapsed.saturating_sub(last) < holds {
            return self.current.read().1.clone();
        }
        let now = stamp(self.store.path());
        let unchanged = {
            let current = self.current.read();
            (current.0 == now).then(|| current.1.clone())
        };
        let profiles = unchanged.unwrap_or_else(|| self.read_at(now));
        // Only once the reading above is in place: a request that skips the stat within the next millisecond
        // must get this reading, not the one before it.
        self.stamped_at.store(elapsed.max(1), Ordering::Release);
        profiles
    }

    /// Reads the file again whatever its stamp says (after the app wrote it, or when told it changed).
    pub(crate) fn reload(&self) -> Arc<Profiles> {
        self.read_at(stamp(self.store.path()))
    }

    fn read_at(&self, stamp: Option<Stamp>) -> Arc<Profiles> {
        let mut current = self.current.write();
        // Stamped before reading: a change made while reading shows as a new stamp on the next request.
        let profiles = Arc::new(Profiles::read(&self.store, Some(&current.1)));
        *current = (stamp, profiles.clone());
        profiles
    }

    /// The checked profile `name` (the default when `None`).
    pub(crate) fn get(&self, name: Option<&str>) -> Result<Arc<ValidProfile>> {
        let profiles = self.current();
        if profiles.error.is_some() {
            // The error with its path, as the store reports it; read again only while the file is broken.
            self.store.load()?;
        }
        let name = profiles.name_of(name)?;
        if let Some(profile) = profiles.resolved.get(name) {
            return Ok(profile.clone());
        }
        match profiles.file.profiles.get(name) {
            // Saved by hand with a mistake: the same error a save would have given.
            Some(profile) => Err(profile
                .resolve()
                .err()
                .unwrap_or_else(|| Error::ProfileNotFound(name.into()))),
            None => Err(Error::ProfileNotFound(name.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
[profiles.api]
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000001"
vault_url = "https://kv.vault.azure.net/"
certificate = "app-cert"
scopes = ["api://x/.default"]
"#;

    #[test]
    fn edits_on_disk_are_seen_and_a_broken_file_keeps_the_last_good_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        // Every look reads the stamp: the writes below follow each other within a millisecond.
        let cache = ProfileCache::holding_stamps_for(ProfileStore::new(path.clone()), Duration::ZERO);
        assert!(matches!(cache.get(Some("api")), Err(Error::ProfileNotFound(_))));

        std::fs::write(&path, PROFILE).unwrap();
        let first = cache.get(Some("api")).unwrap();
        assert_eq!(first.certificate, "app-cert");
        assert!(
            Arc::ptr_eq(&first, &cache.get(Some("api")).unwrap()),
            "read again while unchanged"
        );

        std::fs::write(&path, PROFILE.replace("app-cert", "app-cert-2")).unwrap();
        assert_eq!(cache.get(Some("api")).unwrap().certificate, "app-cert-2");

        std::fs::write(&path, "[profiles.api\n").unwrap();
        let broken = cache.current();
        assert!(
            broken
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("could not be read")
        );
        assert!(
            broken.file.profiles.contains_key("api"),
            "the last good profiles are kept"
        );
        assert!(matches!(cache.get(Some("api")), Err(Error::CorruptProfileFile { .. })));
    }
}
