//! Route handlers, one module per dialect.

pub mod dotnet;
pub mod extract;
pub mod misc;
pub mod msi;
pub mod oauth2;
pub mod profiles;
