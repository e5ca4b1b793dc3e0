//! The tray icon's menu and click handling.
//!
//! Tauri creates the icon itself from `app.trayIcon` in `tauri.conf.json`, which keeps the icon path in the
//! one config file; this module only attaches the menu and the handlers to it.

use std::error::Error;

use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconEvent};
use tauri::{AppHandle, Runtime};

use crate::window;

/// The id of the tray icon declared in `tauri.conf.json`.
const TRAY_ID: &str = "main";

const OPEN: &str = "open";
const QUIT: &str = "quit";

/// Attaches the menu and the event handlers to the tray icon Tauri created from the config.
pub fn install<R: Runtime>(app: &AppHandle<R>) -> Result<(), Box<dyn Error>> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Err(format!("no tray icon `{TRAY_ID}`: tauri.conf.json must declare app.trayIcon").into());
    };

    let open = MenuItem::with_id(app, OPEN, "Open KeyVault Proxy", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    // Not PredefinedMenuItem::quit: Linux has no native quit item, and an explicit exit also covers
    // the hidden window, which a plain "close the last window" would not.
    let quit = MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &separator, &quit])?;

    tray.set_menu(Some(menu))?;
    tray.on_menu_event(on_menu_event);
    tray.on_tray_icon_event(on_tray_icon_event);
    Ok(())
}

fn on_menu_event<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    match event.id().as_ref() {
        OPEN => open_window(app),
        QUIT => app.exit(0),
        _ => {}
    }
}

/// A left click opens the window on the platforms that report tray clicks (Windows, macOS); on Linux the
/// indicator only ever shows the menu.
fn on_tray_icon_event<R: Runtime>(tray: &TrayIcon<R>, event: TrayIconEvent) {
    if let TrayIconEvent::Click {
        button: MouseButton::Left,
        button_state: MouseButtonState::Up,
        ..
    } = event
    {
        open_window(tray.app_handle());
    }
}

fn open_window<R: Runtime>(app: &AppHandle<R>) {
    // A menu handler has nowhere to return an error to; the log is the only place it can surface.
    if let Err(error) = window::show_main(app) {
        eprintln!("kvproxy-desktop: could not open the window: {error}");
    }
}
