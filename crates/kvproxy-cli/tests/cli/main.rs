//! End-to-end tests of the `kvproxy` binary: what a user types, what they see, and the exit codes scripts
//! branch on. One test binary (`cargo test -p kvproxy-cli --test cli`), one module per area:
//!
//! - `profiles`: the profile commands and every way of getting their input wrong;
//! - `demo`: tokens and key info against a running `kvproxy demo` (the emulated tenant), and the auth and
//!   network failure exit codes;
//! - `keyring`: key info cached in the real OS keyring (Secret Service or Credential Manager; see that module);
//! - `windows`: the agent's named pipe against a program squatting its name (Windows only).
//!
//! Every test gets its own config directory; the OS keyring is off unless a test is about it.

mod attacks;
mod demo;
mod doctor;
mod keyring;
mod profiles;
mod serve;
mod support;
#[cfg(windows)]
mod windows;
