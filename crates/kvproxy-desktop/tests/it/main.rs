//! End-to-end tests of the real desktop binary. Every test builds its own world with [`session::Session`]
//! (private D-Bus bus, Xvfb, unlocked keyring, temp HOME), so tests run in parallel threads without sharing
//! anything but the machine. The harness itself is proved by `harness_selftest`, which needs no app.
//!
//! Linux only: the world is made of X11, D-Bus and the Secret Service. (On Windows the app is built, and its
//! engine, server and CLI are tested as Windows programs by `make test-windows`.)
#![cfg(target_os = "linux")]

mod app;
mod bus;
mod commands;
mod harness_selftest;
mod install;
mod measure;
mod questions;
mod session;
mod window;
mod x11;

use std::time::{Duration, Instant};

/// The bound for "the other side is up": generous for a loaded 2-core CI machine, short enough to fail fast.
pub const TIMEOUT: Duration = Duration::from_secs(10);

const POLL: Duration = Duration::from_millis(50);

/// Polls `f` every 50 ms until it yields a value; `None` when `timeout` passes first.
pub fn try_wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Like [`try_wait_until`], but a timeout is a test failure that names what never happened.
pub fn wait_until<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    try_wait_until(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}
