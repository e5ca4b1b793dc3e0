//! KeyVault Proxy's loopback HTTP API. Anything on the developer's machine can reach `localhost`, so the
//! server is built around a guard: loopback binds only, an API key on every token route, `Host` and
//! `Origin` checks against DNS rebinding and CSRF, and no CORS. Behind the guard it speaks four
//! dialects of "give me a token": the .NET proxy's routes, profile routes, OAuth2 client credentials and
//! the App Service managed-identity protocol.

pub mod activity;
pub mod agent;
pub mod api_key;
pub mod demo;
mod guard;
pub mod invocation;
pub mod openapi;
mod problem;
mod routes;
mod running;
pub mod sdk_env;
pub mod serve;
pub use serve::DEFAULT_PORT;
mod state;

pub use activity::{Activity, ActivityRecord};
pub use api_key::{ApiKeySource, ApiKeyStore, generate_api_key, resolve_api_key};
pub use running::{RunningServer, keyring_broker};
pub use serve::{BindError, ServerConfig, bind_addresses, router, serve};
pub use state::AppState;
