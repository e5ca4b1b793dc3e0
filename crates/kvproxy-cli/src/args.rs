//! The command line, as clap sees it.

use clap::{Args, Parser, Subcommand};
use kvproxy_core::{CloudName, CredentialSource, SigningAlgorithm};
use std::net::IpAddr;
use std::path::PathBuf;
use strum::VariantNames;

#[derive(Debug, Parser)]
#[command(
    name = "kvproxy",
    version,
    about = "App-only Entra ID tokens, signed by a Key Vault certificate whose private key never leaves the vault"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug). Tokens are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage profiles (app + tenant + vault + certificate + scope).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print an access token for a profile (only the token on stdout).
    Token(TokenArgs),
    /// Show the key id and thumbprints of a profile's certificate (cached in the OS keyring).
    KeyInfo(KeyInfoArgs),
    /// Serve the loopback token API (Swagger at /swagger/index.html).
    Serve(ServeArgs),
    /// Print IDENTITY_ENDPOINT/IDENTITY_HEADER exports so Azure SDKs get the profile's token.
    Env(EnvArgs),
    /// Show or rotate the API key the token API requires.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Run a local demo tenant (emulated Entra ID + Key Vault) and create a `demo` profile for it.
    Demo(DemoArgs),
    /// Check every step of getting a token for a profile and say what to fix.
    #[command(long_about = DOCTOR_ABOUT)]
    Doctor(DoctorArgs),
    /// Put a folder on the Windows user PATH or take it off (the installer's helper).
    #[command(subcommand, hide = true)]
    UserPath(UserPathCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserPathCommand {
    /// Append DIR to the user's PATH unless it is there.
    Add { dir: String },
    /// Remove DIR from the user's PATH.
    Remove { dir: String },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Add a profile (or replace one with --force).
    Add(Box<ProfileAddArgs>),
    /// List profiles.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one profile.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile.
    #[command(alias = "remove")]
    Rm { name: String },
    /// Make a profile the default (used when no profile is named).
    Default { name: String },
    /// Turn asking before handing out a profile's tokens on or off (see `profile add --confirm`).
    Confirm {
        name: String,
        /// `on` or `off`.
        state: String,
    },
    /// Write profiles as TOML (all, or the named ones) to stdout or a file.
    Export {
        names: Vec<String>,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read profiles from a TOML file written by `export` (`-` for stdin).
    Import {
        file: PathBuf,
        /// Replace profiles that already exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct ProfileAddArgs {
    pub name: String,
    /// Tenant GUID or verified domain (contoso.onmicrosoft.com).
    #[arg(long)]
    pub tenant: String,
    /// Application (client) id of the app registration.
    #[arg(long)]
    pub client_id: String,
    /// Vault URL, e.g. https://contoso.vault.azure.net/
    #[arg(long)]
    pub vault_url: String,
    /// Name of the certificate in the vault.
    #[arg(long)]
    pub certificate: String,
    /// Default scope(s), e.g. api://my-api/.default (repeatable; the first is the default).
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    #[arg(long, default_value = "PS256", help = values("How the assertion is signed (PS256 is current Entra guidance)", SigningAlgorithm::VARIANTS))]
    pub algorithm: String,
    #[arg(long, default_value = "public", help = values("The Azure cloud", CloudName::VARIANTS))]
    pub cloud: String,
    /// Custom cloud: the Entra authority host, e.g. https://login.microsoftonline.com
    #[arg(long)]
    pub authority_host: Option<String>,
    /// Custom cloud: a vault host suffix, e.g. vault.local.azurestack.external (repeatable).
    #[arg(long = "vault-suffix")]
    pub vault_suffixes: Vec<String>,
    /// Custom cloud: a CA certificate (PEM) to trust for this cloud only.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[arg(long, default_value = "auto", help = values("How to sign in to Key Vault", CredentialSource::VARIANTS))]
    pub credential: String,
    /// Ask before a token of this profile goes to a program (the API, the CLI through the app): the app
    /// names the program and waits for Allow or Deny.
    #[arg(long)]
    pub confirm: bool,
    /// Replace an existing profile of that name.
    #[arg(long)]
    pub force: bool,
    /// Make it the default profile.
    #[arg(long)]
    pub default: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Profile name (the default profile when omitted).
    pub profile: Option<String>,
    /// Scope to ask for instead of the profile's first.
    #[arg(long)]
    pub scope: Option<String>,
    /// Print token, expiry, scope and decoded claims as JSON.
    #[arg(long)]
    pub json: bool,
    /// Mint the token in this process instead of asking the running app (or `kvproxy serve`) first.
    #[arg(long)]
    pub no_agent: bool,
}

#[derive(Debug, Args)]
pub struct KeyInfoArgs {
    pub profile: Option<String>,
    /// Ask Key Vault again instead of using the cached key info.
    #[arg(long)]
    pub refresh: bool,
    #[arg(long)]
    pub json: bool,
    /// Read key info in this process instead of asking the running app (or `kvproxy serve`) first.
    #[arg(long)]
    pub no_agent: bool,
}

const DOCTOR_ABOUT: &str = "Check every step of getting a token for a profile and say what to fix.

Steps, in order:
  1. the cloud's authority knows the tenant (OpenID discovery)
  2. the profile's credential (az, azd, managed identity, ...) signs in to Key Vault
  3. the vault host is on the cloud's allowlist and answers
  4. the certificate exists, is enabled and not expired (a warning under 30 days left)
  5. its key is not exportable (the certificate policy)
  6. the key may sign: a test signature, verified against the certificate
  7. the app registration lists the certificate (Microsoft Graph; a warning when Graph cannot be read)
  8. a real token request, past any cache, with its audience and roles

Each step passes, warns, fails, or is skipped when a step it needs failed; anything but a pass comes \
with a fix. Nothing is cached, and no token is printed.

Exit codes: 0 when no step failed (warnings allowed); otherwise that of the first failed step: 2 a \
profile field, 3 a permission, registration or sign-in, 4 the network.";

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Profile name (the default profile when omitted).
    pub profile: Option<String>,
    /// Print the report as JSON: profile, passed, expires, days_left and the steps (step, title, status,
    /// detail, fix).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the emulated Entra ID and Key Vault on 127.0.0.1.
    #[arg(long, default_value_t = kvproxy_app::demo::DEMO_PORT)]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on the loopback addresses.
    #[arg(long, default_value_t = kvproxy_core::settings::DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on (repeatable); default 127.0.0.1 and ::1.
    #[arg(long = "bind")]
    pub binds: Vec<IpAddr>,
    /// Allow a non-loopback --bind. Anyone who can reach it and has the API key gets your tokens.
    #[arg(long)]
    pub unsafe_bind: bool,
    /// Hand out the tokens of profiles set to `confirm` without asking: this server has nobody to ask, so
    /// without this flag it refuses them (403).
    #[arg(long)]
    pub no_confirm: bool,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Profile name (the default profile when omitted).
    pub profile: Option<String>,
    /// Port of a running `kvproxy serve`.
    #[arg(long, default_value_t = kvproxy_core::settings::DEFAULT_PORT)]
    pub port: u16,
    /// Output syntax.
    #[arg(long, value_parser = kvproxy_app::sdk_env::EnvShell::VARIANTS.to_vec(), default_value = "sh")]
    pub shell: String,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Print the API key (created on first use).
    Show,
    /// Replace the API key; a running app or `kvproxy serve` is told and takes it at once.
    Rotate,
}

/// A flag's help with every value it takes, from the enum itself, so the list cannot fall behind. The values
/// are parsed by the engine (not clap), whose error names the field and the fix on one line.
fn values(what: &str, names: &[&str]) -> String {
    format!("{what}: {}", names.join(", "))
}
