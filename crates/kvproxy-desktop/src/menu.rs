//! The tray menu as data: what it shows for a set of profiles and the API's state, and what a click on each
//! item means. Kept apart from Tauri so the rules (order, labels, ids) are tested without a display.

/// One profile as the menu needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuProfile {
    pub name: String,
    pub is_default: bool,
}

/// Whether the loopback API listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiState {
    /// The app has just started and the API is being bound: the user's next move is still "pause".
    Starting,
    Running,
    /// Paused by the user, or not started because the port was taken.
    Stopped,
}

/// What a menu item does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CopyToken(String),
    OpenWindow,
    CopyApiKey,
    PauseApi,
    ResumeApi,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuEntry {
    Item { id: String, label: String },
    Separator,
}

const COPY_PREFIX: &str = "copy-token:";
const OPEN: &str = "open";
const API_KEY: &str = "copy-api-key";
const PAUSE: &str = "pause-api";
const RESUME: &str = "resume-api";
const QUIT: &str = "quit";

/// The label of a profile's item. Menu toolkits treat `_` as a mnemonic marker; escaping is theirs to do
/// (muda does it), so the label here is exactly what the user reads.
pub fn copy_label(profile: &str) -> String {
    format!("Copy token — {profile}")
}

/// The menu: one "Copy token" item per profile (the default first, then by name), a separator, and the app's
/// own items. Ids carry the profile name, so a click names its profile even after the menu changed.
pub fn build(profiles: &[MenuProfile], api: ApiState) -> Vec<MenuEntry> {
    let mut ordered: Vec<&MenuProfile> = profiles.iter().collect();
    ordered.sort_by(|a, b| b.is_default.cmp(&a.is_default).then_with(|| a.name.cmp(&b.name)));
    let mut entries: Vec<MenuEntry> = ordered
        .into_iter()
        .map(|p| MenuEntry::Item {
            id: format!("{COPY_PREFIX}{}", p.name),
            label: copy_label(&p.name),
        })
        .collect();
    if !entries.is_empty() {
        entries.push(MenuEntry::Separator);
    }
    let item = |id: &str, label: &str| MenuEntry::Item {
        id: id.into(),
        label: label.into(),
    };
    entries.push(item(OPEN, "Open KeyVault Proxy"));
    entries.push(item(API_KEY, "Copy API key"));
    entries.push(match api {
        ApiState::Starting | ApiState::Running => item(PAUSE, "Pause API"),
        ApiState::Stopped => item(RESUME, "Resume API"),
    });
    entries.push(item(QUIT, "Quit"));
    entries
}

/// The action of a clicked item's id; `None` for an id this menu never made.
pub fn action(id: &str) -> Option<Action> {
    if let Some(name) = id.strip_prefix(COPY_PREFIX) {
        return (!name.is_empty()).then(|| Action::CopyToken(name.to_string()));
    }
    Some(match id {
        OPEN => Action::OpenWindow,
        API_KEY => Action::CopyApiKey,
        PAUSE => Action::PauseApi,
        RESUME => Action::ResumeApi,
        QUIT => Action::Quit,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, is_default: bool) -> MenuProfile {
        MenuProfile {
            name: name.into(),
            is_default,
        }
    }

    fn labels(entries: &[MenuEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                MenuEntry::Item { label, .. } => label.clone(),
                MenuEntry::Separator => "---".into(),
            })
            .collect()
    }

    #[test]
    fn default_profile_comes_first_then_names_in_order() {
        let profiles = [profile("zeta", false), profile("prod", true), profile("alpha", false)];
        assert_eq!(
            labels(&build(&profiles, ApiState::Running)),
            [
                "Copy token — prod",
                "Copy token — alpha",
                "Copy token — zeta",
                "---",
                "Open KeyVault Proxy",
                "Copy API key",
                "Pause API",
                "Quit"
            ]
        );
    }

    #[test]
    fn stopped_api_offers_resume_and_no_profiles_means_no_separator() {
        assert_eq!(
            labels(&build(&[], ApiState::Stopped)),
            ["Open KeyVault Proxy", "Copy API key", "Resume API", "Quit"]
        );
    }

    #[test]
    fn every_item_maps_back_to_its_action_including_odd_names() {
        let names = ["my_profile", "__init__", "prod-eu", "zürich", "東京", "a:b"];
        let profiles: Vec<MenuProfile> = names.iter().map(|n| profile(n, false)).collect();
        for api in [ApiState::Starting, ApiState::Running, ApiState::Stopped] {
            let mut copied = Vec::new();
            for entry in build(&profiles, api) {
                let MenuEntry::Item { id, label } = entry else { continue };
                match action(&id) {
                    Some(Action::CopyToken(name)) => {
                        assert_eq!(label, copy_label(&name));
                        copied.push(name);
                    }
                    Some(Action::PauseApi) => assert_ne!(api, ApiState::Stopped),
                    Some(Action::ResumeApi) => assert_eq!(api, ApiState::Stopped),
                    Some(_) => {}
                    None => panic!("item {id} ({label}) has no action"),
                }
            }
            copied.sort();
            let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            expected.sort();
            assert_eq!(copied, expected);
        }
        assert_eq!(copy_label("my_profile"), "Copy token — my_profile");
    }

    #[test]
    fn unknown_ids_do_nothing() {
        assert_eq!(action("copy-token:"), None);
        assert_eq!(action("delete-everything"), None);
        assert_eq!(action(""), None);
    }
}
