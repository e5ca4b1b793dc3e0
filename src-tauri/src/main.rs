// Release builds are GUI-only on Windows; without this a console window would open next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    skip_gdk_gl();
    kvproxy_desktop::run().context("KeyVault Proxy desktop app failed")
}

/// GTK 3 on X11 probes OpenGL visuals when it opens the display, which loads the GL driver (with Mesa's
/// software renderer, LLVM too): about 30 MB for a tray app that draws nothing with GL. WebKit composites
/// with its own GL, so the window does not need GDK's. A user's own GDK_GL setting wins.
#[cfg(target_os = "linux")]
fn skip_gdk_gl() {
    if std::env::var_os("GDK_GL").is_none() {
        // SAFETY: first thing in main, before any thread exists that could read the environment.
        unsafe { std::env::set_var("GDK_GL", "disable") };
    }
}
