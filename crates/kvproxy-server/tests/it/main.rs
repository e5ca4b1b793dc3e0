//! The loopback API's integration tests, one binary: every route, the lockdown, and the Azure SDK's
//! managed-identity credential. (`no_secrets_in_logs` is a binary of its own: it owns the process-wide
//! log subscriber.)

mod agent;
mod attacks;
mod callers;
mod common;
mod confirm;
mod lockdown;
mod props;
mod routes;
mod sdk_managed_identity;
mod single_flight;
