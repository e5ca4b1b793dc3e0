//! `kvproxy doctor`: every step of getting a token for a profile, tried one by one, each reported as
//! passed, warned, failed or skipped, with what to do about it. A token request that fails says what Entra
//! or Key Vault refused; the doctor also finds what would make it fail later (a certificate about to
//! expire), what makes it pointless (an exportable key), and the AADSTS700027 of an unregistered
//! certificate before a token request is even sent.
//!
//! Nothing here caches or reuses anything: each run signs in, reads and signs afresh, so a fix shows at
//! once. Tokens and signatures are never part of the report.

use crate::broker::{BrokerOptions, RetrySettings, TokenOptions, sdk_client_options};
use crate::cloud::Cloud;
use crate::credential::{credential_error, key_vault_credential, sign_in_hint};
use crate::entra::network_error;
use crate::error::{Error, ErrorClass, KeyVaultOperation};
use crate::http::{HttpTimeouts, build_client, read_ca_file};
use crate::keyinfo::KeyInfoStore;
use crate::keyvault::{CertificateDetails, VaultClients};
use crate::profile::{CredentialSource, SigningAlgorithm, ValidProfile, is_guid};
use crate::{Broker, decode_claims};
use azure_core::credentials::TokenCredential;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The steps, in the order they run. Serialised in kebab case (`app-registration`), the ids scripts and
/// the window match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// The cloud's authority answers OpenID discovery for the tenant.
    Authority,
    /// The profile's credential source signs in to Key Vault.
    Credential,
    /// The vault host is on the cloud's allowlist and answers like a Key Vault.
    Vault,
    /// The certificate exists, is enabled and within its validity.
    Certificate,
    /// The certificate's policy keeps its private key in the vault.
    NonExportable,
    /// The key allows `sign` and the signed-in identity may sign with it.
    Sign,
    /// The app registration lists the certificate.
    AppRegistration,
    /// A real token request succeeds, with the expected audience and roles.
    Token,
}

impl CheckId {
    /// Every step, in order.
    pub const ALL: [CheckId; 8] = [
        CheckId::Authority,
        CheckId::Credential,
        CheckId::Vault,
        CheckId::Certificate,
        CheckId::NonExportable,
        CheckId::Sign,
        CheckId::AppRegistration,
        CheckId::Token,
    ];

    /// What the step checks, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::Authority => "Authority and tenant",
            CheckId::Credential => "Key Vault sign-in",
            CheckId::Vault => "Vault host",
            CheckId::Certificate => "Certificate",
            CheckId::NonExportable => "Key not exportable",
            CheckId::Sign => "Signing with the key",
            CheckId::AppRegistration => "App registration",
            CheckId::Token => "Token request",
        }
    }

    /// The step's id as serialised (`app-registration`).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::Authority => "authority",
            CheckId::Credential => "credential",
            CheckId::Vault => "vault",
            CheckId::Certificate => "certificate",
            CheckId::NonExportable => "non-exportable",
            CheckId::Sign => "sign",
            CheckId::AppRegistration => "app-registration",
            CheckId::Token => "token",
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    /// Works, but something needs attention (or could not be checked).
    Warn,
    Fail,
    /// Not run: a step it depends on failed.
    Skip,
}

/// One step's result: what was found and, unless it passed, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub step: CheckId,
    pub title: String,
    pub status: CheckStatus,
    /// One line: what was found.
    pub detail: String,
    /// One line: what to do; `None` when the step passed or was skipped.
    pub fix: Option<String>,
    /// Who has to act on a failure (`input`, `auth`, `network`, `local`), as for any engine error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ErrorClass>,
}

/// The result of [`diagnose`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    pub profile: String,
    /// The profile points at the local emulator.
    pub demo: bool,
    /// No step failed (warnings allowed).
    pub passed: bool,
    /// When the certificate expires, once it was read.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// Whole days from the run to `expires` (negative once expired).
    #[serde(default)]
    pub days_left: Option<i64>,
    pub steps: Vec<Check>,
}

impl DoctorReport {
    /// True when no step failed; warnings and skips after a pass do not count against it.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// When the certificate expires, if it could be read.
    pub fn certificate_expires(&self) -> Option<OffsetDateTime> {
        self.expires
    }

    /// The result of one step.
    pub fn check(&self, step: CheckId) -> Option<&Check> {
        self.steps.iter().find(|c| c.step == step)
    }

    /// The first failed step: the one to fix first.
    pub fn first_failure(&self) -> Option<&Check> {
        self.steps.iter().find(|c| c.status == CheckStatus::Fail)
    }

    /// How many steps ended with `status`.
    pub fn count(&self, status: CheckStatus) -> usize {
        self.steps.iter().filter(|c| c.status == status).count()
    }
}

/// How [`diagnose`] runs.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub timeouts: HttpTimeouts,
    /// Key Vault retries; fewer than a token request's, since someone is waiting for a verdict.
    pub key_vault_retry: RetrySettings,
    /// A certificate with fewer days left than this is a warning.
    pub expiry_warning_days: i64,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            timeouts: HttpTimeouts::default(),
            key_vault_retry: RetrySettings {
                max_retries: 1,
                initial_delay: Duration::from_millis(300),
                max_delay: Duration::from_secs(2),
                max_total: Duration::from_secs(10),
            },
            expiry_warning_days: 30,
        }
    }
}

/// Why Microsoft Graph could not tell whether the certificate is registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    #[error("Microsoft Graph denied reading the app registration (403 {code})")]
    Denied { code: String },
    #[error("Microsoft Graph found no application with app id {app_id} in the signed-in tenant (404)")]
    AppNotFound { app_id: String },
    #[error("Microsoft Graph answered {status} {code}: {message}")]
    Status { status: u16, code: String, message: String },
    #[error("{0}")]
    Network(String),
    #[error("unexpected answer from Microsoft Graph: {0}")]
    Protocol(String),
}

/// One `keyCredentials` entry, as far as the check needs it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyCredential {
    #[serde(default)]
    custom_key_identifier: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    end_date_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Application {
    #[serde(default)]
    key_credentials: Vec<KeyCredential>,
}

#[derive(Debug, Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Debug, Deserialize)]
struct GraphErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Runs every step for `profile` and reports each. Never fails as a whole: a step that cannot run says why.
pub async fn diagnose(profile: &ValidProfile, options: &DoctorOptions) -> DoctorReport {
    let mut run = Run {
        profile,
        options,
        steps: Vec::new(),
        expires: None,
        days_left: None,
    };
    run.all().await;
    let passed = !run.steps.iter().any(|c| c.status == CheckStatus::Fail);
    DoctorReport {
        profile: profile.name.clone(),
        demo: profile.is_demo(),
        passed,
        expires: run.expires,
        days_left: run.days_left,
        steps: run.steps,
    }
}

struct Run<'a> {
    profile: &'a ValidProfile,
    options: &'a DoctorOptions,
    steps: Vec<Check>,
    expires: Option<OffsetDateTime>,
    days_left: Option<i64>,
}

/// What a step leaves for the later ones.
struct Signed {
    credential: Arc<dyn TokenCredential>,
}

impl Run<'_> {
    fn push(&mut self, step: CheckId, status: CheckStatus, detail: impl Into<String>, fix: Option<String>) {
        let class = match status {
            CheckStatus::Fail => Some(ErrorClass::Auth),
            _ => None,
        };
        self.steps.push(Check {
            step,
            title: step.title().to_string(),
            status,
            detail: one_line(&detail.into()),
            fix: fix.map(|f| one_line(&f)),
            class,
        });
    }

    fn pass(&mut self, step: CheckId, detail: impl Into<String>) {
        self.push(step, CheckStatus::Pass, detail, None);
    }

    fn warn(&mut self, step: CheckId, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(step, CheckStatus::Warn, detail, Some(fix.into()));
    }

    fn fail(&mut self, step: CheckId, class: ErrorClass, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(step, CheckStatus::Fail, detail, Some(fix.into()));
        if let Some(last) = self.steps.last_mut() {
            last.class = Some(class);
        }
    }

    fn skip(&mut self, step: CheckId, why: &str) {
        self.push(step, CheckStatus::Skip, format!("skipped: {why}"), None);
    }

    fn skip_rest(&mut self, why: &str) {
        let done: Vec<CheckId> = self.steps.iter().map(|c| c.step).collect();
        for step in CheckId::ALL {
            if !done.contains(&step) {
                self.skip(step, why);
            }
        }
    }

    /// What to do when a service of this profile's cloud cannot be reached.
    fn unreachable_fix(&self) -> String {
        if self.profile.is_demo() {
            "start the demo tenant (`kvproxy demo`, or the KeyVault Proxy app) and try again".into()
        } else {
            "check the network and proxy settings (HTTPS_PROXY, NO_PROXY) and the profile's cloud".into()
        }
    }

    async fn all(&mut self) {
        let profile = self.profile;
        let cloud = profile.cloud().clone();
        let http = match self.http_client(&cloud) {
            Ok(http) => http,
            Err(e) => {
                let class = e.class();
                self.fail(
                    CheckId::Authority,
                    class,
                    format!("cannot set up HTTPS for the {} cloud: {e}", cloud.name.as_str()),
                    "fix the custom cloud's ca_file in the profile",
                );
                self.skip_rest("no HTTPS client for the profile's cloud");
                return;
            }
        };

        if let Err(why) = self.authority(&http, &cloud).await {
            self.skip_rest(why);
            return;
        }
        let signed = self.credential(&http, &cloud).await;
        let vault_ok = self.vault(&http, &cloud).await;

        let details = match (&signed, vault_ok) {
            (Some(signed), true) => self.certificate(&http, signed).await,
            (None, _) => {
                self.skip(CheckId::Certificate, "the Key Vault sign-in failed");
                None
            }
            (_, false) => {
                self.skip(CheckId::Certificate, "the vault cannot be used");
                None
            }
        };
        let vault = details.as_ref().map(|(vault, _)| vault.clone());
        let details = details.map(|(_, d)| d);
        match &details {
            Some(details) => self.exportable(details),
            None => self.skip(CheckId::NonExportable, "the certificate could not be read"),
        }
        match (&details, &vault) {
            (Some(details), Some(vault)) if details.enabled != Some(false) => self.sign(vault, details).await,
            (Some(_), Some(_)) => self.skip(CheckId::Sign, "the certificate is disabled"),
            _ => self.skip(CheckId::Sign, "the certificate could not be read"),
        }
        match (&signed, &details) {
            (Some(signed), Some(details)) => self.app_registration(&http, &cloud, signed, details).await,
            (None, _) => self.skip(CheckId::AppRegistration, "the sign-in failed"),
            (_, None) => self.skip(CheckId::AppRegistration, "the certificate could not be read"),
        }
        if self.steps.iter().any(|c| c.status == CheckStatus::Fail) {
            self.skip(CheckId::Token, "an earlier step failed; fix it first");
        } else {
            self.token().await;
        }
    }

    fn http_client(&self, cloud: &Cloud) -> Result<reqwest::Client, Error> {
        let pem = cloud.ca_file().map(|path| read_ca_file(path)).transpose()?;
        build_client(self.options.timeouts, pem.as_deref())
    }

    /// Step 1: OpenID discovery for the tenant. The error is why the later steps cannot run.
    async fn authority(&mut self, http: &reqwest::Client, cloud: &Cloud) -> Result<(), &'static str> {
        const UNREACHABLE: &str = "the authority could not be reached";
        const UNKNOWN: &str = "the tenant could not be found at the authority";
        let step = CheckId::Authority;
        let authority = cloud.authority_host();
        let tenant = &self.profile.tenant;
        let url = format!("{authority}/{tenant}/v2.0/.well-known/openid-configuration");
        let response = match http.get(&url).send().await {
            Ok(response) => response,
            Err(e) => {
                let fix = self.unreachable_fix();
                self.fail(step, ErrorClass::Network, network_error(&authority, e).to_string(), fix);
                return Err(UNREACHABLE);
            }
        };
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        if status == 200 {
            let issuer = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("issuer").and_then(|i| i.as_str()).map(str::to_string));
            return match issuer {
                Some(issuer) => {
                    self.pass(step, format!("{authority} knows tenant {tenant} (issuer {issuer})"));
                    Ok(())
                }
                None => {
                    self.fail(
                        step,
                        ErrorClass::Network,
                        format!("{authority} answered discovery for {tenant} without an issuer"),
                        "check the profile's cloud and authority host",
                    );
                    Err(UNREACHABLE)
                }
            };
        }
        let error = crate::entra::parse_error(status, &body);
        if error.is_transient() {
            self.fail(
                step,
                ErrorClass::Network,
                format!("{authority} answered {status} to OpenID discovery"),
                "Entra ID is unavailable or throttling; try again in a minute",
            );
            return Err(UNREACHABLE);
        }
        {
            let code = error.code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default();
            self.fail(
                step,
                ErrorClass::Input,
                format!("{authority} does not know tenant '{tenant}'{code}"),
                format!(
                    "check the tenant id/domain in the profile, and that the tenant is in the {} cloud",
                    cloud.name.as_str()
                ),
            );
        }
        Err(UNKNOWN)
    }

    /// Step 2: the credential source gets a Key Vault token.
    async fn credential(&mut self, http: &reqwest::Client, cloud: &Cloud) -> Option<Signed> {
        let step = CheckId::Credential;
        let source = self.profile.credential;
        let Some(scope) = vault_scope(self.profile, cloud) else {
            self.fail(
                step,
                ErrorClass::Input,
                "the vault host matches none of the cloud's vault suffixes",
                "fix the profile's vault_url",
            );
            return None;
        };
        let client_options = sdk_client_options(http.clone(), self.options.key_vault_retry);
        let credential = match key_vault_credential(source, cloud, &self.profile.tenant, client_options) {
            Ok(credential) => credential,
            Err(e) => {
                self.fail(step, e.class(), e.to_string(), sign_in_hint(source));
                return None;
            }
        };
        match credential.get_token(&[scope.as_str()], None).await {
            Ok(token) => {
                let who = decode_claims(token.token.secret())
                    .map(|claims| identity_of(&claims))
                    .unwrap_or_else(|| "an identity".into());
                self.pass(step, format!("'{}' signed in to Key Vault as {who}", source.as_str()));
                Some(Signed { credential })
            }
            Err(e) => {
                let error = credential_error(Some(source), &e);
                let detail = match &error {
                    Error::Credential { message, .. } => {
                        format!("'{}' could not sign in to Key Vault: {message}", source.as_str())
                    }
                    other => other.to_string(),
                };
                let fix = match (source, error.class()) {
                    (CredentialSource::Emulator, ErrorClass::Network) => self.unreachable_fix(),
                    _ => sign_in_hint(source).to_string(),
                };
                self.fail(step, error.class(), detail, fix);
                None
            }
        }
    }

    /// Step 3: the allowlist (again, to report it) and an unauthenticated request, which a Key Vault answers
    /// with its sign-in challenge.
    async fn vault(&mut self, http: &reqwest::Client, cloud: &Cloud) -> bool {
        let step = CheckId::Vault;
        let root = self.profile.vault_root().clone();
        let host = root.host_str().unwrap_or_default().to_string();
        if let Err(e) = cloud.check_vault_url(root.as_str()) {
            self.fail(step, ErrorClass::Input, e.to_string(), "fix the profile's vault_url");
            return false;
        }
        let url = format!("{root}certificates/{}?api-version=7.5", self.profile.certificate);
        match http.get(&url).send().await {
            Err(e) => {
                let fix = if self.profile.is_demo() {
                    self.unreachable_fix()
                } else {
                    "check the vault name in vault_url (a vault that does not exist has no DNS name), and the network and proxy settings".into()
                };
                self.fail(step, ErrorClass::Network, network_error(&host, e).to_string(), fix);
                false
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let challenge = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"));
                match status {
                    401 if challenge => {
                        self.pass(
                            step,
                            format!(
                                "{host} is on the {} cloud's allowlist and answers as a Key Vault",
                                cloud.name.as_str()
                            ),
                        );
                        true
                    }
                    404 => {
                        self.fail(
                            step,
                            ErrorClass::Input,
                            format!("there is no vault at {host}"),
                            "check the vault name in the profile's vault_url",
                        );
                        false
                    }
                    _ => {
                        self.warn(
                            step,
                            format!("{host} answered {status} instead of Key Vault's sign-in challenge"),
                            "check that vault_url names a Key Vault (https://NAME.vault.azure.net/)",
                        );
                        true
                    }
                }
            }
        }
    }

    /// Step 4: the certificate, its state and validity.
    async fn certificate(
        &mut self,
        http: &reqwest::Client,
        signed: &Signed,
    ) -> Option<(Arc<VaultClients>, CertificateDetails)> {
        let step = CheckId::Certificate;
        let profile = self.profile;
        let vault_url = profile.vault_root().to_string();
        let options = sdk_client_options(http.clone(), self.options.key_vault_retry);
        let vault = match VaultClients::new(&vault_url, Some(profile.credential), signed.credential.clone(), options) {
            Ok(vault) => Arc::new(vault),
            Err(e) => {
                self.fail(step, e.class(), e.to_string(), "fix the profile's vault_url");
                return None;
            }
        };
        let details = match vault.certificate_details(&profile.certificate).await {
            Ok(details) => details,
            Err(e) => {
                let fix = self.key_vault_fix(&e);
                self.fail(step, e.class(), key_vault_detail(&e), fix);
                return None;
            }
        };
        let info = &details.info;
        let now = OffsetDateTime::now_utc();
        let days_left = (info.expires - now).whole_days();
        self.expires = Some(info.expires);
        self.days_left = Some(days_left);
        let name = &profile.certificate;
        let vault_name = vault_name(profile);
        let renew = format!(
            "create a new version of '{name}' in Key Vault (az keyvault certificate create --vault-name {vault_name} -n {name} -p @policy.json) and upload it to the app registration"
        );
        let expires = when(info.expires);
        if details.enabled == Some(false) {
            self.fail(
                step,
                ErrorClass::Auth,
                format!("'{name}' (version {}) is disabled", info.certificate_version),
                format!(
                    "enable it (az keyvault certificate set-attributes --vault-name {vault_name} -n {name} --enabled true) or {renew}"
                ),
            );
        } else if info.expires <= now {
            self.fail(
                step,
                ErrorClass::Auth,
                format!("'{name}' expired on {expires} ({} days ago)", -days_left),
                renew,
            );
        } else if info.not_before > now {
            self.fail(
                step,
                ErrorClass::Auth,
                format!("'{name}' is not valid before {}", when(info.not_before)),
                format!("check this machine's clock, wait until then, or {renew}"),
            );
        } else if days_left < self.options.expiry_warning_days {
            self.warn(
                step,
                format!("'{name}' expires on {expires}: {days_left} days left"),
                format!("renew it before then: {renew}"),
            );
        } else {
            self.pass(
                step,
                format!(
                    "'{name}' (version {}, {}) is enabled and valid until {expires}: {days_left} days left",
                    info.certificate_version, info.subject
                ),
            );
        }
        Some((vault, details))
    }

    /// Step 5: the policy keeps the key in the vault.
    fn exportable(&mut self, details: &CertificateDetails) {
        let step = CheckId::NonExportable;
        let name = &self.profile.certificate;
        match details.exportable {
            Some(false) => self.pass(
                step,
                format!("the private key of '{name}' cannot be exported (policy key_props.exportable = false)"),
            ),
            Some(true) => self.warn(
                step,
                format!(
                    "THE PRIVATE KEY OF '{name}' CAN BE EXPORTED (policy key_props.exportable = true): anyone who may read the vault's secrets can download it, which defeats the point of keeping it in Key Vault"
                ),
                "create a new certificate version with exportable=false (keyProperties.exportable in the policy), upload it to the app registration and remove the old one",
            ),
            None => self.warn(
                step,
                format!("Key Vault did not return the policy of '{name}', so whether its key can be exported is unknown"),
                "check the certificate's Advanced Policy Configuration in the portal: \"Exportable private key\" must be No",
            ),
        }
    }

    /// Step 6: `key_ops` allow `sign`, and a test signature by the pinned version verifies with the
    /// certificate's public key.
    async fn sign(&mut self, vault: &VaultClients, details: &CertificateDetails) {
        let step = CheckId::Sign;
        let key = details.info.signing_key();
        let version = key
            .parsed_key_id()
            .map(|id| id.version().to_string())
            .unwrap_or_default();
        let key_ops = match vault.key_operations(&key).await {
            Ok(ops) => {
                if !ops.iter().any(|op| op == "sign") {
                    self.fail(
                        step,
                        ErrorClass::Auth,
                        format!("the key's key_ops ({}) do not include sign", ops.join(", ")),
                        "create a new certificate version whose policy's key usage includes digitalSignature, and upload it to the app registration",
                    );
                    return;
                }
                format!("key_ops {}", ops.join(", "))
            }
            // Reading a key needs `keys/get`, which an access policy with only `sign` lacks; the signature
            // below is the proof that matters.
            Err(e) => format!("key_ops not readable ({})", e.summary()),
        };
        let message = {
            let mut bytes = Vec::with_capacity(32);
            bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            bytes
        };
        let digest: [u8; 32] = sha2::Sha256::digest(&message).into();
        let algorithm = self.profile.algorithm;
        let signature = match vault.sign(&key, algorithm, &digest).await {
            Ok(signature) => signature,
            Err(e) => {
                let fix = self.key_vault_fix(&e);
                self.fail(step, e.class(), key_vault_detail(&e), fix);
                return;
            }
        };
        match verify_signature(&details.der, algorithm, &message, &signature) {
            Ok(true) => self.pass(
                step,
                format!(
                    "key version {version} signed a test digest ({}) that verifies with the certificate's public key; {key_ops}",
                    algorithm.as_str()
                ),
            ),
            Ok(false) => self.fail(
                step,
                ErrorClass::Auth,
                format!("the signature of key version {version} does not verify with the certificate's public key"),
                "the certificate and its key disagree; create a new certificate version",
            ),
            Err(why) => self.fail(
                step,
                ErrorClass::Auth,
                format!("the signature cannot be checked: {why}"),
                "use a certificate with an RSA key (PS256 and RS256 need one)",
            ),
        }
    }

    /// Step 7: Microsoft Graph lists the certificate among the app's key credentials.
    async fn app_registration(
        &mut self,
        http: &reqwest::Client,
        cloud: &Cloud,
        signed: &Signed,
        details: &CertificateDetails,
    ) {
        let step = CheckId::AppRegistration;
        let thumbprint = details.info.thumbprints.sha1_hex();
        let client_id = self.profile.client_id.clone();
        let portal = format!(
            "check in the portal (App registrations > {client_id} > Certificates & secrets) that thumbprint {thumbprint} is listed"
        );
        let (Some(graph), Some(scope)) = (cloud.graph_url(), cloud.graph_scope()) else {
            self.warn(
                step,
                "cannot check: the profile's custom cloud has no known Microsoft Graph",
                portal,
            );
            return;
        };
        let token = match signed.credential.get_token(&[scope.as_str()], None).await {
            Ok(token) => token,
            Err(e) => {
                let error = credential_error(Some(self.profile.credential), &e);
                self.warn(
                    step,
                    format!("cannot check: no Microsoft Graph token ({})", error.summary()),
                    portal,
                );
                return;
            }
        };
        let url = format!("{graph}/v1.0/applications(appId='{client_id}')?$select=keyCredentials");
        let application = match read_application(http, &url, token.token.secret(), &client_id).await {
            Ok(application) => application,
            Err(e @ GraphError::Denied { .. }) => {
                self.warn(
                    step,
                    format!("cannot check: {e}"),
                    format!("{portal}, or get read access to the app (be an owner of it, or hold the Directory Readers role)"),
                );
                return;
            }
            Err(e @ GraphError::AppNotFound { .. }) => {
                self.warn(
                    step,
                    format!("cannot check: {e}; the app may live in another tenant than the one you signed in to"),
                    format!("check the profile's client_id; {portal}"),
                );
                return;
            }
            Err(e) => {
                self.warn(step, format!("cannot check: {e}"), portal);
                return;
            }
        };
        let sha1 = details.info.thumbprints.sha1.clone();
        let certificates = application
            .key_credentials
            .iter()
            .filter(|c| {
                c.kind
                    .as_deref()
                    .is_none_or(|k| k.eq_ignore_ascii_case("AsymmetricX509Cert"))
            })
            .collect::<Vec<_>>();
        match certificates.iter().find(|c| is_same_certificate(c, &sha1)) {
            Some(found) => {
                let until = found
                    .end_date_time
                    .as_deref()
                    .map(|t| format!(" (registered until {t})"))
                    .unwrap_or_default();
                self.pass(
                    step,
                    format!("the app registration {client_id} lists certificate {thumbprint}{until}"),
                );
            }
            None => {
                let others = match certificates.len() {
                    0 => "no certificate at all".to_string(),
                    n => format!("{n} other certificate(s)"),
                };
                let vault_name = vault_name(self.profile);
                let name = &self.profile.certificate;
                self.fail(
                    step,
                    ErrorClass::Auth,
                    format!(
                        "the app registration {client_id} does not list certificate {thumbprint} (it lists {others}): Entra would refuse the token with AADSTS700027"
                    ),
                    format!(
                        "upload the certificate to the app registration (Certificates & secrets) or `az keyvault certificate download --vault-name {vault_name} -n {name} -f cert.pem -e PEM && az ad app credential reset --id {client_id} --cert @cert.pem --append`"
                    ),
                );
            }
        }
    }

    /// Step 8: a real token request, past any cache, and its claims.
    async fn token(&mut self) {
        let step = CheckId::Token;
        let profile = self.profile;
        let broker = Broker::new(BrokerOptions {
            timeouts: self.options.timeouts,
            key_vault_retry: self.options.key_vault_retry,
            key_info_store: KeyInfoStore::new(None),
            ..Default::default()
        });
        let token = match broker.token(profile, None, TokenOptions { skip_cache: true }).await {
            Ok(token) => token,
            Err(Error::Entra(e)) => {
                let fix = e
                    .hint
                    .map(str::to_string)
                    .unwrap_or_else(|| "see the AADSTS code in Microsoft's error reference".into());
                let ids = match (&e.trace_id, &e.correlation_id) {
                    (Some(trace), Some(correlation)) => format!(" [trace id {trace}, correlation id {correlation}]"),
                    _ => String::new(),
                };
                let class = Error::Entra(e.clone()).class();
                self.fail(
                    step,
                    class,
                    format!("Entra ID refused the token request: {}{ids}", e.description),
                    fix,
                );
                return;
            }
            Err(e) => {
                let fix = self.key_vault_fix(&e);
                self.fail(step, e.class(), e.to_string(), fix);
                return;
            }
        };
        let scope = token.scope.clone();
        let resource = scope.strip_suffix("/.default").unwrap_or(&scope).to_string();
        let claims = decode_claims(token.access_token.expose()).unwrap_or_default();
        let aud = claims
            .get("aud")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_string();
        let minutes = token.lifetime().whole_minutes();
        let aud_matches = aud.trim_end_matches('/') == resource.trim_end_matches('/');
        // v2.0 tokens name the resource by its app id, which cannot be compared with an App ID URI here.
        if !aud_matches && !is_guid(&aud) {
            self.fail(
                step,
                ErrorClass::Input,
                format!("the token's aud '{aud}' is not the scope's resource '{resource}'"),
                "check the profile's scope: it must be the API's Application ID URI followed by /.default",
            );
            return;
        }
        let roles: Vec<String> = claims
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|roles| roles.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let what = format!("a token for {aud} valid for {minutes} minutes");
        if roles.is_empty() {
            self.warn(
                step,
                format!("{what} carries no roles: the API will likely refuse it"),
                format!(
                    "grant and admin-consent application permissions of {resource} to the app (API permissions > Add a permission > Application permissions > Grant admin consent)"
                ),
            );
        } else {
            self.pass(step, format!("{what}, roles {}", roles.join(", ")));
        }
    }

    /// The fix for a Key Vault (or sign-in) failure.
    fn key_vault_fix(&self, e: &Error) -> String {
        let vault = self.profile.vault_root().as_str();
        match e {
            Error::KeyVault {
                status: 403,
                operation: KeyVaultOperation::Sign,
                ..
            } => format!(
                "grant the signed-in identity the 'Key Vault Crypto User' role on {vault} (with access policies: key permission `sign`)"
            ),
            Error::KeyVault { status: 403, .. } => format!(
                "grant the signed-in identity the 'Key Vault Certificate User' role on {vault} (with access policies: certificate permission `get`)"
            ),
            Error::KeyVault { status: 404, .. } => format!(
                "check the certificate name '{}' in the profile (az keyvault certificate list --vault-name {})",
                self.profile.certificate,
                vault_name(self.profile)
            ),
            Error::KeyVault { hint: Some(hint), .. } => hint.clone(),
            Error::Credential { hint, .. } => hint.clone(),
            Error::Network { .. } => self.unreachable_fix(),
            _ => "try again; if it keeps failing, run with -vv for details".into(),
        }
    }
}

/// The Key Vault `.default` scope of the profile's vault: its host suffix is the resource
/// (`https://vault.azure.net`, `https://managedhsm.azure.net`, the emulator's `https://vault.localhost`).
fn vault_scope(profile: &ValidProfile, cloud: &Cloud) -> Option<String> {
    let host = profile.vault_root().host_str()?.to_ascii_lowercase();
    cloud
        .vault_suffixes()
        .into_iter()
        .find(|suffix| host.ends_with(&format!(".{suffix}")))
        .map(|suffix| format!("https://{suffix}/.default"))
}

/// The vault's name (the first label of its host), for the `az` commands a fix suggests.
fn vault_name(profile: &ValidProfile) -> String {
    profile
        .vault_root()
        .host_str()
        .and_then(|h| h.split('.').next())
        .unwrap_or("VAULT")
        .to_string()
}

/// Who a Key Vault token was issued to: a user's name, else the app id, else the object id.
fn identity_of(claims: &serde_json::Value) -> String {
    let claim = |name: &str| claims.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    let tenant = claim("tid").map(|t| format!(" in tenant {t}")).unwrap_or_default();
    match (
        claim("upn").or(claim("unique_name")).or(claim("preferred_username")),
        claim("appid"),
    ) {
        (Some(user), _) => format!("{user}{tenant}"),
        (None, Some(app)) => format!("app {app}{tenant}"),
        (None, None) => match claim("oid") {
            Some(oid) => format!("object {oid}{tenant}"),
            None => format!("an identity{tenant}"),
        },
    }
}

/// A Key Vault failure in one line, without the hint (which becomes the fix).
fn key_vault_detail(e: &Error) -> String {
    match e {
        Error::KeyVault {
            operation,
            status,
            message,
            ..
        } => {
            let first = message.lines().next().unwrap_or_default().trim().trim_end_matches('.');
            format!("Key Vault {operation} failed ({status}): {first}")
        }
        other => other.to_string(),
    }
}

async fn read_application(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    client_id: &str,
) -> Result<Application, GraphError> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .header("client-request-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .map_err(|e| GraphError::Network(network_error("Microsoft Graph", e).to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| GraphError::Network(network_error("Microsoft Graph", e).to_string()))?;
    if status == 200 {
        return serde_json::from_slice(&body).map_err(|e| GraphError::Protocol(e.to_string()));
    }
    let error = serde_json::from_slice::<GraphErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or(GraphErrorDetail {
            code: String::new(),
            message: format!("HTTP {status}"),
        });
    Err(match status {
        403 => GraphError::Denied { code: error.code },
        404 => GraphError::AppNotFound {
            app_id: client_id.to_string(),
        },
        _ => GraphError::Status {
            status,
            code: error.code,
            message: error.message,
        },
    })
}

/// Whether a key credential is the certificate with this SHA-1 thumbprint (base64url). Graph's
/// `customKeyIdentifier` holds the thumbprint as hex (what the portal and `az` upload) or as base64 of its
/// bytes (what some tools send); `key`, when returned, is the certificate itself.
fn is_same_certificate(credential: &KeyCredential, sha1_b64url: &str) -> bool {
    let Ok(want) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sha1_b64url) else {
        return false;
    };
    let from_identifier = credential.custom_key_identifier.as_deref().is_some_and(|id| {
        let id = id.trim();
        decode_hex(id).is_some_and(|bytes| bytes == want)
            || base64::engine::general_purpose::STANDARD
                .decode(id)
                .is_ok_and(|bytes| bytes == want)
    });
    let from_key = credential.key.as_deref().is_some_and(|key| {
        base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .is_ok_and(|der| sha1::Sha1::digest(&der)[..] == want[..])
    });
    from_identifier || from_key
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Verifies a PS256/RS256 signature over `message` with the certificate's RSA public key, independently
/// of Key Vault.
fn verify_signature(der: &[u8], algorithm: SigningAlgorithm, message: &[u8], signature: &[u8]) -> Result<bool, String> {
    use x509_parser::public_key::PublicKey;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let public = cert
        .public_key()
        .parsed()
        .map_err(|e| format!("unreadable public key: {e}"))?;
    let PublicKey::RSA(rsa) = public else {
        return Err("the certificate's key is not RSA".into());
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(rsa.modulus, rsa.exponent);
    let algorithm = match algorithm {
        SigningAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
    };
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
    jsonwebtoken::crypto::verify(&encoded, message, &key, algorithm).map_err(|e| e.to_string())
}

/// Times as RFC 3339, to the second.
fn when(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Details and fixes are single lines, whatever a service put in its message.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_thumbprints_match_as_hex_base64_or_certificate() {
        let der = b"not really a certificate";
        let sha1 = sha1::Sha1::digest(der);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1);
        let hex: String = sha1.iter().map(|b| format!("{b:02X}")).collect();
        let credential = |id: Option<String>, key: Option<String>| KeyCredential {
            custom_key_identifier: id,
            key,
            kind: Some("AsymmetricX509Cert".into()),
            end_date_time: None,
        };
        assert!(is_same_certificate(&credential(Some(hex.clone()), None), &b64url));
        assert!(is_same_certificate(
            &credential(Some(hex.to_lowercase()), None),
            &b64url
        ));
        assert!(is_same_certificate(
            &credential(Some(base64::engine::general_purpose::STANDARD.encode(sha1)), None),
            &b64url
        ));
        assert!(is_same_certificate(
            &credential(None, Some(base64::engine::general_purpose::STANDARD.encode(der))),
            &b64url
        ));
        assert!(!is_same_certificate(&credential(Some("00".repeat(20)), None), &b64url));
        assert!(!is_same_certificate(
            &credential(Some("zz".into()), Some("%%".into())),
            &b64url
        ));
        assert!(!is_same_certificate(&credential(None, None), &b64url));
    }

    #[test]
    fn details_are_one_line() {
        assert_eq!(one_line("a\r\nb\n\n c "), "a b c");
    }

    #[test]
    fn identities_are_named_by_user_then_app() {
        let claims = serde_json::json!({"upn": "dev@contoso.com", "appid": "x", "tid": "t"});
        assert_eq!(identity_of(&claims), "dev@contoso.com in tenant t");
        assert_eq!(identity_of(&serde_json::json!({"appid": "a"})), "app a");
        assert_eq!(identity_of(&serde_json::json!({})), "an identity");
    }
}
