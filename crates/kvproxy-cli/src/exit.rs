//! Exit codes scripts can branch on: bad input, authentication refused, network trouble.

use kvproxy_core::{Error, ErrorClass};

pub const FAILURE: u8 = 1;
/// Bad input: a flag, a profile field, a file (clap uses 2 for usage errors too).
pub const INPUT: u8 = 2;
/// Entra ID or Key Vault refused: a permission, a registration, a sign-in.
pub const AUTH: u8 = 3;
/// A service could not be reached or kept failing.
pub const NETWORK: u8 = 4;
/// Local storage (config file, keyring) failed.
pub const LOCAL: u8 = 5;

pub fn code_for(error: &anyhow::Error) -> u8 {
    let class = error
        .downcast_ref::<Error>()
        .map(Error::class)
        .or_else(|| error.downcast_ref::<AgentFailure>().map(|f| f.class))
        .or_else(|| error.downcast_ref::<ChecksFailed>().map(|f| f.class));
    match class {
        Some(ErrorClass::Input) => INPUT,
        Some(ErrorClass::Auth) => AUTH,
        Some(ErrorClass::Network) => NETWORK,
        Some(ErrorClass::Local) => LOCAL,
        None if error.downcast_ref::<UsageError>().is_some() => INPUT,
        None => FAILURE,
    }
}

/// The error and its causes on one line, for humans and for log scrapers alike.
pub fn one_line(error: &anyhow::Error) -> String {
    kvproxy_core::error_chain(error.as_ref()).replace(['\n', '\r'], " ")
}

/// A mistake in how the command was called that clap cannot see (e.g. a missing file).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An error the running app reported for us (`kvproxy token` served by the agent): printed and classed
/// exactly as if this process had made it.
#[derive(Debug)]
pub struct AgentFailure {
    pub class: ErrorClass,
    pub message: String,
}

impl std::fmt::Display for AgentFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentFailure {}

/// `kvproxy doctor` found a failing step: the report is printed, and the exit code is the first failure's.
#[derive(Debug)]
pub struct ChecksFailed {
    pub class: ErrorClass,
    pub message: String,
}

impl std::fmt::Display for ChecksFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ChecksFailed {}
