//! The engine's integration tests, one binary: the emulator over real HTTPS, the assertion checked
//! independently, and the real OS keyring.

mod assertion;
mod common;
mod doctor;
mod engine;
mod os_keyring;
mod props;
