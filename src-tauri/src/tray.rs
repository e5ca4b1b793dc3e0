//! The tray icon: its menu, built from [`crate::menu`], and what its clicks do.

use crate::menu::{self, Action, MenuEntry};
use crate::state::Desktop;
use crate::window;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

/// The tray icon's id in `tauri.conf.json`. Fixed, so the icon's D-Bus path on Linux is predictable
/// (`/org/ayatana/NotificationItem/kvproxy`).
pub const TRAY_ID: &str = "kvproxy";

/// Gives the icon Tauri made from `app.trayIcon` in `tauri.conf.json` its menu and handlers.
pub fn install(app: &AppHandle<Wry>, desktop: &Desktop) -> tauri::Result<()> {
    let tray = app
        .tray_by_id(TRAY_ID)
        .ok_or_else(|| tauri::Error::AssetNotFound(format!("tray icon '{TRAY_ID}' in tauri.conf.json")))?;
    tray.set_menu(Some(build_menu(app, desktop)?))?;
    tray.on_menu_event(on_menu_event);
    tray.on_tray_icon_event(on_tray_icon_event);
    Ok(())
}

/// Rebuilds the menu from the current profiles and API state.
pub fn refresh(app: &AppHandle<Wry>) {
    let Some(desktop) = app.try_state::<Desktop>() else {
        return;
    };
    let desktop = desktop.inner();
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    let result = build_menu(app, desktop).and_then(|menu| tray.set_menu(Some(menu)));
    if let Err(error) = result {
        tracing::warn!("could not rebuild the tray menu: {error}");
    }
}

fn build_menu(app: &AppHandle<Wry>, desktop: &Desktop) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    for entry in menu::build(&desktop.menu_profiles(), desktop.api_state()) {
        match entry {
            MenuEntry::Item { id, label } => menu.append(&MenuItem::with_id(app, id, label, true, None::<&str>)?)?,
            MenuEntry::Separator => menu.append(&PredefinedMenuItem::separator(app)?)?,
        }
    }
    Ok(menu)
}

fn on_menu_event(app: &AppHandle<Wry>, event: MenuEvent) {
    match menu::action(event.id().as_ref()) {
        Some(action) => perform(app, action),
        None => tracing::debug!(id = event.id().as_ref(), "menu event for an unknown item"),
    }
}

/// Where the OS reports clicks on the icon (Windows, macOS), a left click copies the default profile's
/// token. Linux indicators report no clicks: the menu is the way there.
fn on_tray_icon_event(tray: &TrayIcon<Wry>, event: TrayIconEvent) {
    if let TrayIconEvent::Click {
        button: MouseButton::Left,
        button_state: MouseButtonState::Up,
        ..
    } = event
    {
        let app = tray.app_handle();
        let default = app
            .state::<Desktop>()
            .menu_profiles()
            .into_iter()
            .find(|p| p.is_default);
        match default {
            Some(profile) => perform(app, Action::CopyToken(profile.name)),
            None => perform(app, Action::OpenWindow),
        }
    }
}

/// Runs an action off the UI thread where it waits on the network.
pub fn perform(app: &AppHandle<Wry>, action: Action) {
    let desktop = app.state::<Desktop>().inner().clone();
    match action {
        Action::CopyToken(name) => {
            tauri::async_runtime::spawn(async move {
                let _ = desktop.copy_token(&name).await;
            });
        }
        Action::OpenWindow => window::show(app),
        Action::CopyApiKey => {
            let _ = desktop.copy_api_key();
        }
        Action::PauseApi => {
            tauri::async_runtime::spawn(async move {
                desktop.stop_api().await;
                desktop.changed();
            });
        }
        Action::ResumeApi => {
            tauri::async_runtime::spawn(async move {
                desktop.start_api().await;
                desktop.changed();
            });
        }
        Action::Quit => app.exit(0),
    }
}
