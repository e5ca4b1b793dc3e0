//! Whether anything will show the tray icon. On Linux the icon is a StatusNotifierItem, and only a panel that
//! owns `org.kde.StatusNotifierWatcher` shows one (KDE, most others; stock GNOME only with the AppIndicator
//! extension). Without it the app would run with no visible way in, so the window takes over.

#[cfg(target_os = "linux")]
pub fn present() -> bool {
    const WATCHER: &str = "org.kde.StatusNotifierWatcher";
    let Ok(connection) = zbus::blocking::Connection::session() else {
        return false;
    };
    let Ok(dbus) = zbus::blocking::fdo::DBusProxy::new(&connection) else {
        return false;
    };
    match zbus::names::BusName::try_from(WATCHER) {
        Ok(name) => dbus.name_has_owner(name).unwrap_or(false),
        Err(_) => false,
    }
}

/// Windows and macOS always have a notification area / menu bar.
#[cfg(not(target_os = "linux"))]
pub fn present() -> bool {
    true
}
