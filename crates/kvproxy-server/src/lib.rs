//! KeyVault Proxy's doors to its app core ([`kvproxy_app::App`]) for other programs: the loopback HTTP API
//! and the CLI agent.
//!
//! Anything on the developer's machine can reach `localhost`, so the HTTP server is built around a guard:
//! loopback binds only, the API key on every token route (one check, before a route reads the request),
//! `Host` and `Origin` checks against DNS rebinding and CSRF, and no CORS. Behind the guard it speaks four
//! dialects of "give me a token": the .NET proxy's routes, profile routes, OAuth2 client credentials and the
//! App Service managed-identity protocol. The agent answers the `kvproxy` CLI over a socket (a named pipe on
//! Windows) only this user can open.

pub mod agent;
mod guard;
pub mod openapi;
pub mod peer;
mod problem;
mod routes;
mod running;
pub mod serve;
pub use serve::DEFAULT_PORT;
mod state;

pub use running::{ApiListener, ApiState, RunningServer};
pub use serve::{BindError, ServerConfig, bind_addresses, router, serve};
pub use state::HttpState;
