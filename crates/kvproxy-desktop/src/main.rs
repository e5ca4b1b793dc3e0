// Release builds are GUI-only on Windows; without this a console window would open next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    kvproxy_desktop::run().context("KeyVault Proxy desktop app failed")
}
