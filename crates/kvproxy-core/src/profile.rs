//! Profiles: what a developer names once (app, tenant, vault, certificate, scope) so that getting a token
//! is one word. They live in a TOML file that never holds a secret; secrets and key info go to the OS
//! keyring. The file is written atomically, and a file we cannot parse is reported and left alone:
//! a tool that silently "repairs" a config by emptying it loses a user's work.

use crate::cloud::{Cloud, CloudName, CustomCloud};
use crate::error::{Error, FieldError, FieldErrors, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use strum::{EnumString, IntoStaticStr, VariantNames};
use url::Url;

/// How the client assertion is signed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, EnumString, IntoStaticStr, VariantNames,
)]
#[strum(ascii_case_insensitive)]
pub enum SigningAlgorithm {
    /// RSASSA-PSS with SHA-256; the header carries `x5t#S256`. Current Entra guidance.
    #[default]
    PS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; the header carries `x5t` (SHA-1). What older tools send.
    RS256,
}

impl SigningAlgorithm {
    pub fn parse(value: &str) -> Result<Self> {
        value.trim().parse().map_err(|_| {
            Error::invalid(
                "algorithm",
                format!("'{value}' is not supported; use PS256 (default) or RS256"),
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where the Key Vault access token (for `get certificate` and `sign`) comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, EnumString, IntoStaticStr, VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", ascii_case_insensitive)]
pub enum CredentialSource {
    /// Azure CLI, then Azure Developer CLI.
    #[default]
    Auto,
    #[strum(to_string = "azure-cli", serialize = "az", serialize = "cli")]
    AzureCli,
    Azd,
    #[strum(to_string = "managed-identity", serialize = "msi")]
    ManagedIdentity,
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` from the environment.
    #[strum(to_string = "service-principal", serialize = "environment", serialize = "env")]
    ServicePrincipal,
    /// `AZURE_FEDERATED_TOKEN_FILE` and friends, as set by AKS workload identity.
    WorkloadIdentity,
    /// The local emulator's built-in developer sign-in (`kvproxy demo` only).
    Emulator,
}

impl CredentialSource {
    pub fn parse(value: &str) -> Result<Self> {
        value.trim().parse().map_err(|_| {
            Error::invalid(
                "credential",
                format!(
                    "unknown credential source '{value}'; use one of {}",
                    Self::VARIANTS.join(", ")
                ),
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One app identity: the app registration, its tenant, and the Key Vault certificate it signs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    /// Tenant GUID or verified domain (`contoso.onmicrosoft.com`).
    pub tenant: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    pub vault_url: String,
    /// Name of the certificate in the vault.
    pub certificate: String,
    /// Default scopes; the first is used when none is asked for.
    pub scopes: Vec<String>,
    #[serde(default)]
    pub algorithm: SigningAlgorithm,
    #[serde(default)]
    pub cloud: CloudName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_cloud: Option<CustomCloud>,
    #[serde(default)]
    pub credential: CredentialSource,
    /// Ask the user before a token of this profile goes to a program (the API, the CLI) not yet allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
}

/// An app registered in an emulated tenant (the demo tenant, a test's emulator): what a profile of it needs.
#[derive(Debug, Clone)]
pub struct EmulatedApp {
    pub tenant: String,
    pub client_id: String,
    pub vault_url: String,
    pub certificate: String,
    pub scope: String,
    /// `https://login.localhost:PORT`.
    pub authority_host: String,
    /// The emulator's CA certificate (PEM), trusted for this profile's connections only.
    pub ca_file: PathBuf,
}

impl Profile {
    /// A profile of an app in an emulated tenant: the emulator's custom cloud and credential, PS256.
    pub fn emulated(name: &str, app: EmulatedApp) -> Profile {
        Profile {
            name: name.into(),
            tenant: app.tenant,
            client_id: app.client_id,
            vault_url: app.vault_url,
            certificate: app.certificate,
            scopes: vec![app.scope],
            algorithm: SigningAlgorithm::PS256,
            cloud: CloudName::Custom,
            custom_cloud: Some(CustomCloud::emulator(app.authority_host, app.ca_file)),
            credential: CredentialSource::Emulator,
            confirm: false,
        }
    }

    /// The profile's cloud, with its endpoints.
    pub fn cloud(&self) -> Result<Cloud> {
        Cloud::new(self.cloud, self.custom_cloud.clone())
    }

    /// The scope to use: the asked one (checked), else the profile's first.
    pub fn scope<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str> {
        match requested {
            Some(scope) => {
                validate_scope("scope", scope)?;
                Ok(scope)
            }
            None => self
                .scopes
                .first()
                .map(String::as_str)
                .ok_or_else(|| Error::invalid("scopes", "the profile has no default scope; pass --scope")),
        }
    }

    /// Checks every field and returns the profile in its checked form, or an [`Error::Invalid`] naming
    /// every wrong field (not only the first), each with how to fix it.
    pub fn resolve(&self) -> Result<ValidProfile> {
        self.resolve_with(None)
    }

    /// Like [`Profile::resolve`], for a profile whose cloud and vault URL the caller has already resolved
    /// together (an ad-hoc request matched its vault URL against the known clouds): they are taken as they
    /// are, not parsed again.
    pub fn resolve_in(&self, cloud: Cloud, vault_root: Url) -> Result<ValidProfile> {
        self.resolve_with(Some((cloud, vault_root)))
    }

    fn resolve_with(&self, located: Option<(Cloud, Url)>) -> Result<ValidProfile> {
        let mut profile = self.clone();
        profile.tenant = profile.tenant.trim().to_string();
        if is_guid(&profile.tenant) {
            profile.tenant = profile.tenant.to_ascii_lowercase();
        }
        profile.client_id = profile.client_id.trim().to_ascii_lowercase();

        let mut errors = Vec::new();
        let mut note = |result: Result<()>| {
            if let Err(e) = result {
                errors.extend(into_field_errors(e));
            }
        };
        note(validate_name(&profile.name));
        note(validate_tenant(&profile.tenant));
        note(validate_client_id(&profile.client_id));
        let located = match located {
            Some(located) => Some(located),
            None => match profile.cloud() {
                Ok(cloud) => match cloud.check_vault_url(&profile.vault_url) {
                    Ok(url) => Some((cloud, url)),
                    Err(e) => {
                        note(Err(e));
                        None
                    }
                },
                Err(e) => {
                    note(Err(e));
                    // Without a cloud the vault URL cannot be matched, but one that is not even a URL is worth
                    // saying in the same breath.
                    note(crate::cloud::parse_vault_url(&profile.vault_url).map(drop));
                    None
                }
            },
        };
        note(validate_certificate_name(&profile.certificate));
        if profile.scopes.is_empty() {
            note(Err(Error::invalid(
                "scopes",
                "give at least one scope, e.g. api://my-api/.default",
            )));
        }
        if let Some(bad) = profile.scopes.iter().find_map(|s| validate_scope("scopes", s).err()) {
            note(Err(bad));
        }
        if profile.credential == CredentialSource::Emulator
            && located.as_ref().is_some_and(|(cloud, _)| !cloud.is_emulator())
        {
            note(Err(Error::invalid(
                "credential",
                "'emulator' only works with the demo tenant's cloud; use auto, azure-cli, azd, managed-identity, service-principal or workload-identity",
            )));
        }
        let located = match (FieldErrors::from_vec(errors), located) {
            (None, Some(located)) => located,
            (Some(errors), _) => return Err(Error::Invalid(errors)),
            (None, None) => unreachable!("every path that leaves the cloud unresolved notes a field error"),
        };
        let (cloud, vault_root) = located;
        profile.vault_url = vault_root.to_string();
        profile.cloud = cloud.name;
        profile.custom_cloud = cloud.custom.clone();
        Ok(ValidProfile {
            token_endpoint: cloud.token_endpoint(&profile.tenant),
            profile,
            cloud,
            vault_root,
        })
    }

    /// True when this profile points at the local emulator rather than Azure.
    pub fn is_demo(&self) -> bool {
        self.cloud().map(|c| c.is_emulator()).unwrap_or(false)
    }
}

/// A profile whose every field was checked: cloud and vault URL resolved, GUIDs in lower case, the vault
/// URL in its root form. Only [`Profile::resolve`] builds one, so holding one proves the checks ran and
/// nothing downstream checks again. It reads like a [`Profile`] (it derefs to one) but cannot be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProfile {
    profile: Profile,
    cloud: Cloud,
    vault_root: Url,
    token_endpoint: String,
}

impl ValidProfile {
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// The vault's root URL (`https://NAME.vault.azure.net/`), on the cloud's allowlist.
    pub fn vault_root(&self) -> &Url {
        &self.vault_root
    }

    /// The Entra token endpoint the assertion is audienced for and posted to.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// True when this profile points at the local emulator rather than Azure.
    pub fn is_demo(&self) -> bool {
        self.cloud.is_emulator()
    }

    pub fn into_profile(self) -> Profile {
        self.profile
    }

    /// The certificate this profile signs with, and how to reach its vault.
    pub fn vault_certificate(&self) -> VaultCertificate {
        VaultCertificate {
            cloud: self.cloud.clone(),
            vault_root: self.vault_root.clone(),
            certificate: self.profile.certificate.clone(),
            credential: self.profile.credential,
            tenant: self.profile.tenant.clone(),
        }
    }
}

/// A certificate in a vault, with the sign-in that reads it: all key info needs (no app, no scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultCertificate {
    cloud: Cloud,
    vault_root: Url,
    certificate: String,
    credential: CredentialSource,
    /// The tenant the Key Vault sign-in asks for; empty when not known (the developer tools then use the
    /// tenant they are signed in to).
    tenant: String,
}

impl VaultCertificate {
    /// For a vault URL already matched against the known clouds ([`Cloud::for_vault_url`]). `tenant` only
    /// matters to credentials that sign in per tenant (the emulator's); the developer tools use the tenant
    /// they are signed in to. The certificate name and a given tenant are checked here, both at once.
    pub fn new(
        cloud: Cloud,
        vault_root: Url,
        certificate: &str,
        credential: CredentialSource,
        tenant: Option<&str>,
    ) -> Result<Self> {
        let certificate = certificate.trim();
        let mut tenant = tenant.map(str::trim).unwrap_or_default().to_string();
        if is_guid(&tenant) {
            tenant = tenant.to_ascii_lowercase();
        }
        let mut errors: Vec<FieldError> = Vec::new();
        if let Err(e) = validate_certificate_name(certificate) {
            errors.extend(into_field_errors(e));
        }
        if !tenant.is_empty()
            && let Err(e) = validate_tenant(&tenant)
        {
            errors.extend(into_field_errors(e));
        }
        if let Some(errors) = FieldErrors::from_vec(errors) {
            return Err(Error::Invalid(errors));
        }
        Ok(Self {
            cloud,
            vault_root,
            certificate: certificate.to_string(),
            credential,
            tenant,
        })
    }

    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    pub fn vault_root(&self) -> &Url {
        &self.vault_root
    }

    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    pub fn credential(&self) -> CredentialSource {
        self.credential
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl std::ops::Deref for ValidProfile {
    type Target = Profile;

    fn deref(&self) -> &Profile {
        &self.profile
    }
}

/// The field errors an error carries; any other error as one error of the whole profile.
fn into_field_errors(e: Error) -> Vec<FieldError> {
    match e {
        Error::Invalid(fields) => fields.into_iter().collect(),
        other => vec![FieldError {
            field: "profile",
            message: other.to_string(),
        }],
    }
}

fn validate_client_id(client_id: &str) -> Result<()> {
    if is_guid(client_id) {
        return Ok(());
    }
    Err(Error::invalid(
        "client_id",
        format!(
            "'{client_id}' is not a GUID; use the Application (client) ID from the app registration's overview page"
        ),
    ))
}

pub fn is_guid(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "'{name}' is not a valid profile name; use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ))
    }
}

fn validate_tenant(tenant: &str) -> Result<()> {
    let field = "tenant";
    if is_guid(tenant) {
        return Ok(());
    }
    let lower = tenant.to_ascii_lowercase();
    if ["common", "organizations", "consumers"].contains(&lower.as_str()) {
        return Err(Error::invalid(
            field,
            format!("'{tenant}' cannot issue app-only tokens; use your tenant's GUID or verified domain"),
        ));
    }
    let labels: Vec<&str> = lower.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if domain_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "'{tenant}' is neither a tenant GUID nor a domain; use e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47 or contoso.onmicrosoft.com"
            ),
        ))
    }
}

fn validate_certificate_name(name: &str) -> Result<()> {
    if !name.is_empty() && name.len() <= 127 && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        Ok(())
    } else {
        Err(Error::invalid(
            "certificate",
            format!("'{name}' is not a Key Vault certificate name; names use 1-127 letters, digits and '-'"),
        ))
    }
}

pub(crate) fn validate_scope(field: &'static str, scope: &str) -> Result<()> {
    // Resource URIs are printable ASCII; anything else (spaces, control or non-ASCII characters) is a typo or
    // a second scope, and the API's schema promises exactly this.
    if scope.is_empty() || !scope.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            format!("'{scope}': give one scope of printable ASCII characters, without spaces"),
        ));
    }
    if !scope.ends_with("/.default") {
        return Err(Error::invalid(
            field,
            format!(
                "'{scope}': app-only (client credentials) tokens need the resource's '/.default' scope, e.g. {}",
                default_scope_for(scope)
            ),
        ));
    }
    Ok(())
}

/// A TOML error as one sentence with its position (the crate's own text is a multi-line snippet).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    }
}

/// The `/.default` scope of the resource a (delegated-style) scope names: `https://graph.microsoft.com/User.Read`
/// becomes `https://graph.microsoft.com/.default`, `api://app/read` becomes `api://app/.default`.
fn default_scope_for(scope: &str) -> String {
    let resource = match scope.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => scope.trim_end_matches('/').to_string(),
    };
    format!("{resource}/.default")
}

/// The on-disk document: profiles by name, plus which one is the default.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProfileFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl ProfileFile {
    /// Parses a TOML document (a saved file or an export) and checks every profile in it.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut file: ProfileFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        for (name, profile) in file.profiles.iter_mut() {
            profile.name = name.clone();
        }
        Ok(file)
    }

    /// The document as TOML. An error is returned, never an empty text: callers write this over the user's
    /// profiles.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Encode {
            what: "profiles",
            message: e.to_string(),
        })
    }
}

/// The profiles file in the OS config directory (or `KVPROXY_CONFIG_DIR`).
#[derive(Debug, Clone)]
pub struct ProfileStore {
    path: PathBuf,
}

impl ProfileStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The per-user default: `$KVPROXY_CONFIG_DIR/profiles.toml`, else the OS config dir
    /// (`~/.config/kvproxy` on Linux).
    pub fn default_location() -> Result<Self> {
        Ok(Self::new(config_dir()?.join("profiles.toml")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<ProfileFile> {
        let Some(text) = read_if_present(&self.path, "reading profiles")? else {
            return Ok(ProfileFile::default());
        };
        ProfileFile::parse(&text).map_err(|message| Error::CorruptProfileFile {
            path: self.path.clone(),
            message: message.trim().to_string(),
        })
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Result<Profile> {
        self.get_or_default(Some(name))
    }

    /// The profile called `name`, or the default profile when no name is given.
    pub fn get_or_default(&self, name: Option<&str>) -> Result<Profile> {
        let file = self.load()?;
        let wanted = match (name, &file.default) {
            (Some(name), _) => name.to_string(),
            (None, Some(default)) => default.clone(),
            (None, None) => return Err(Error::NoDefaultProfile),
        };
        file.profiles
            .get(&wanted)
            .cloned()
            .ok_or(Error::ProfileNotFound(wanted))
    }

    /// Adds or (with `replace`) overwrites a profile after validating it.
    pub fn upsert(&self, profile: Profile, replace: bool) -> Result<()> {
        let profile = profile.resolve()?.into_profile();
        let mut file = self.load()?;
        if !replace && file.profiles.contains_key(&profile.name) {
            return Err(Error::ProfileExists(profile.name));
        }
        if file.default.is_none() {
            file.default = Some(profile.name.clone());
        }
        file.profiles.insert(profile.name.clone(), profile);
        self.save(&file)
    }

    /// Saves a profile edited from `original` (a new one when `None`): checked first; a rename moves the
    /// default along and refuses to overwrite another profile.
    pub fn save_as(&self, original: Option<&str>, profile: Profile) -> Result<()> {
        let profile = profile.resolve()?.into_profile();
        let mut file = self.load()?;
        let name = profile.name.clone();
        if original != Some(name.as_str()) && file.profiles.contains_key(&name) {
            return Err(Error::ProfileExists(name));
        }
        if let Some(original) = original.filter(|o| *o != name) {
            file.profiles.remove(original);
            if file.default.as_deref() == Some(original) {
                file.default = Some(name.clone());
            }
        }
        if file.default.is_none() {
            file.default = Some(name.clone());
        }
        file.profiles.insert(name, profile);
        self.save(&file)
    }

    pub fn remove(&self, name: &str) -> Result<Profile> {
        let mut file = self.load()?;
        let removed = file
            .profiles
            .remove(name)
            .ok_or_else(|| Error::ProfileNotFound(name.to_string()))?;
        if file.default.as_deref() == Some(name) {
            file.default = file.profiles.keys().next().cloned();
        }
        self.save(&file)?;
        Ok(removed)
    }

    pub fn set_default(&self, name: &str) -> Result<()> {
        let mut file = self.load()?;
        if !file.profiles.contains_key(name) {
            return Err(Error::ProfileNotFound(name.to_string()));
        }
        file.default = Some(name.to_string());
        self.save(&file)
    }

    /// Imports every profile of an exported document; all are validated before anything is written.
    pub fn import(&self, text: &str, replace: bool) -> Result<Vec<String>> {
        let incoming =
            ProfileFile::parse(text).map_err(|m| Error::invalid("import", format!("not a profiles document: {m}")))?;
        if incoming.profiles.is_empty() {
            return Err(Error::invalid("import", "the document holds no [profiles.NAME] table"));
        }
        let mut file = self.load()?;
        let mut names = Vec::new();
        for (name, profile) in incoming.profiles {
            let profile = profile
                .resolve()
                .map_err(|e| Error::invalid("import", format!("profile '{name}': {e}")))?
                .into_profile();
            if !replace && file.profiles.contains_key(&name) {
                return Err(Error::ProfileExists(name));
            }
            names.push(name.clone());
            file.profiles.insert(name, profile);
        }
        if file.default.is_none() {
            file.default = names.first().cloned();
        }
        self.save(&file)?;
        Ok(names)
    }

    fn save(&self, file: &ProfileFile) -> Result<()> {
        let header =
            "# KeyVault Proxy profiles. No secrets live here: keys stay in Key Vault, key info in the OS keyring.\n";
        write_config_file(
            &self.path,
            &format!("{header}{}", file.to_toml()?),
            "replacing the profiles file",
        )
    }
}

/// Writes a config file through a temporary file in the same directory renamed over the old one, so a crash
/// mid-write leaves either the old or the new file, never half of one.
pub(crate) fn write_config_file(path: &Path, text: &str, replacing: &'static str) -> Result<()> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let io = |context: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { context, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("creating the config directory", &dir))?;
    let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(io("creating a temporary file", &dir))?;
    temp.write_all(text.as_bytes())
        .and_then(|_| temp.as_file().sync_all())
        .map_err(io("writing a config file", path))?;
    temp.persist(path).map_err(|e| Error::Io {
        context: replacing,
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// A config file's text, `None` when it does not exist yet (a first start, not an error).
pub(crate) fn read_if_present(path: &Path, context: &'static str) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            context,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The directory for the profiles file and the demo CA certificate.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KVPROXY_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "kvproxy")
        .map(|d| d.config_dir().to_path_buf())
        .ok_or_else(|| Error::Io {
            context: "finding the config directory",
            path: PathBuf::from("~"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no home directory; set KVPROXY_CONFIG_DIR",
            ),
        })
}

/// A log file for a GUI program that has no stderr (Windows): `%LOCALAPPDATA%\kvproxy\data\NAME.log` for this
/// run, the last run's kept as `NAME.previous.log`. `None` when there is no such directory.
pub fn run_log_file(name: &str) -> Option<std::fs::File> {
    let dir = directories::ProjectDirs::from("", "", "kvproxy")?
        .data_local_dir()
        .to_path_buf();
    std::fs::create_dir_all(&dir).ok()?;
    let log = dir.join(format!("{name}.log"));
    let _ = std::fs::rename(&log, dir.join(format!("{name}.previous.log")));
    std::fs::File::create(log).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_names_round_trip_and_aliases_parse() {
        assert_eq!(
            CredentialSource::VARIANTS,
            [
                "auto",
                "azure-cli",
                "azd",
                "managed-identity",
                "service-principal",
                "workload-identity",
                "emulator"
            ]
        );
        for name in CredentialSource::VARIANTS {
            assert_eq!(CredentialSource::parse(name).unwrap().as_str(), *name);
        }
        for name in SigningAlgorithm::VARIANTS.iter().chain(CloudName::VARIANTS) {
            let round = SigningAlgorithm::parse(name)
                .map(SigningAlgorithm::as_str)
                .or_else(|_| CloudName::parse(name).map(CloudName::as_str));
            assert_eq!(round.unwrap(), *name);
        }
        assert_eq!(CredentialSource::parse("AZ").unwrap(), CredentialSource::AzureCli);
        assert_eq!(
            CredentialSource::parse("msi").unwrap(),
            CredentialSource::ManagedIdentity
        );
        assert_eq!(CloudName::parse("AzureUSGovernment").unwrap(), CloudName::UsGov);
        assert_eq!(SigningAlgorithm::parse("rs256").unwrap(), SigningAlgorithm::RS256);
        let error = CredentialSource::parse("kerberos").unwrap_err().to_string();
        assert!(error.contains("emulator") && error.contains("'kerberos'"), "{error}");
    }

    pub(crate) fn sample() -> Profile {
        Profile {
            name: "api".into(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "0b4c5f4e-1111-2222-3333-444455556666".into(),
            vault_url: "https://contoso.vault.azure.net".into(),
            certificate: "api-cert".into(),
            scopes: vec!["api://0b4c5f4e-1111-2222-3333-444455556666/.default".into()],
            algorithm: SigningAlgorithm::PS256,
            cloud: CloudName::Public,
            custom_cloud: None,
            credential: CredentialSource::Auto,
            confirm: false,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut Profile)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("name:", Box::new(|p| p.name = "bad name".into())),
            ("tenant:", Box::new(|p| p.tenant = "common".into())),
            ("tenant:", Box::new(|p| p.tenant = "not a tenant".into())),
            ("client_id:", Box::new(|p| p.client_id = "abc".into())),
            ("vault_url:", Box::new(|p| p.vault_url = "https://evil.example/".into())),
            ("certificate:", Box::new(|p| p.certificate = "a_b".into())),
            (
                "scopes:",
                Box::new(|p| p.scopes = vec!["https://graph.microsoft.com/User.Read".into()]),
            ),
            ("scopes:", Box::new(|p| p.scopes.clear())),
            ("credential:", Box::new(|p| p.credential = CredentialSource::Emulator)),
        ];
        for (prefix, mutate) in cases {
            let mut p = sample();
            mutate(&mut p);
            let err = p.resolve().expect_err(prefix).to_string();
            assert!(err.starts_with(prefix), "expected {prefix} got {err}");
        }
        sample().resolve().unwrap();
    }

    #[test]
    fn every_wrong_field_is_reported_at_once() {
        let mut p = sample();
        p.name = "bad name".into();
        p.client_id = "abc".into();
        p.vault_url = "https://evil.example/".into();
        p.scopes = vec!["api://x/read".into()];
        let err = p.resolve().unwrap_err();
        let fields: Vec<&str> = err
            .field_errors()
            .expect("field errors")
            .as_slice()
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "client_id", "vault_url", "scopes"]);
        assert_eq!(err.summary(), "4 profile fields are invalid");

        // A custom cloud without its endpoints: the cloud is named, and a vault URL that is not a URL too.
        let mut p = sample();
        p.cloud = CloudName::Custom;
        p.vault_url = "contoso".into();
        let err = p.resolve().unwrap_err();
        let errors = err.field_errors().expect("field errors");
        assert!(
            errors.get("cloud").is_some() && errors.get("vault_url").is_some(),
            "{err}"
        );
    }

    #[test]
    fn resolving_normalises_what_users_type_loosely() {
        let mut p = sample();
        p.client_id = " 0B4C5F4E-1111-2222-3333-444455556666 ".into();
        p.tenant = "72F988BF-86F1-41AF-91AB-2D7CD011DB47".into();
        let valid = p.resolve().unwrap();
        assert_eq!(valid.client_id, "0b4c5f4e-1111-2222-3333-444455556666");
        assert_eq!(valid.tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert_eq!(valid.vault_url, "https://contoso.vault.azure.net/");
        assert_eq!(valid.vault_root().as_str(), valid.vault_url);
        assert_eq!(
            valid.token_endpoint(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
    }

    #[test]
    fn file_round_trip_is_atomic_and_keeps_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path().join("profiles.toml"));
        store.upsert(sample(), false).unwrap();
        assert!(matches!(store.upsert(sample(), false), Err(Error::ProfileExists(_))));
        let loaded = store.get("api").unwrap();
        assert_eq!(loaded.vault_url, "https://contoso.vault.azure.net/");
        assert_eq!(store.load().unwrap().default.as_deref(), Some("api"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");

        std::fs::write(store.path(), "profiles = [this is not toml").unwrap();
        let err = store.upsert(sample(), true).unwrap_err();
        assert!(matches!(err, Error::CorruptProfileFile { .. }), "{err}");
        assert!(err.to_string().contains("profiles.toml"));
        assert_eq!(
            std::fs::read_to_string(store.path()).unwrap(),
            "profiles = [this is not toml"
        );
    }

    #[test]
    fn save_as_renames_moves_the_default_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path().join("profiles.toml"));
        store.save_as(None, sample()).unwrap();
        let other = Profile {
            name: "other".into(),
            ..sample()
        };
        store.save_as(None, other.clone()).unwrap();
        assert!(matches!(store.save_as(None, sample()), Err(Error::ProfileExists(_))));

        let renamed = Profile {
            name: "renamed".into(),
            ..sample()
        };
        store.save_as(Some("api"), renamed).unwrap();
        let file = store.load().unwrap();
        assert_eq!(file.default.as_deref(), Some("renamed"));
        assert_eq!(file.profiles.keys().collect::<Vec<_>>(), ["other", "renamed"]);

        let onto_other = Profile {
            name: "other".into(),
            ..sample()
        };
        assert!(matches!(
            store.save_as(Some("renamed"), onto_other),
            Err(Error::ProfileExists(_))
        ));
        let mut bad = other;
        bad.client_id = "nope".into();
        assert!(store.save_as(Some("other"), bad).is_err());
        assert_eq!(store.load().unwrap().profiles.len(), 2, "nothing lost");
    }

    #[test]
    fn import_validates_everything_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path().join("p.toml"));
        let mut good = ProfileFile::default();
        good.profiles.insert(
            "one".into(),
            Profile {
                name: "one".into(),
                ..sample()
            },
        );
        let mut bad = Profile {
            name: "two".into(),
            ..sample()
        };
        bad.client_id = "nope".into();
        good.profiles.insert("two".into(), bad);
        let err = store.import(&good.to_toml().unwrap(), false).unwrap_err().to_string();
        assert!(err.contains("profile 'two'") && err.contains("client_id"), "{err}");
        assert!(
            store.load().unwrap().profiles.is_empty(),
            "nothing written on a failed import"
        );
    }
}
