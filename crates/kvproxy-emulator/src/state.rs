//! The emulated tenant and vaults, and the test knobs, shared between the HTTP handlers and the
//! [`crate::Emulator`] handle.
//!
//! Everything lives behind one `parking_lot::Mutex`: the handlers hold it only for lookups and
//! small updates (never across an `.await` or an RSA operation on a hot path that matters), so a
//! test can turn knobs from its own thread while requests are in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use openssl::pkey::{PKey, Private, Public};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::crypto;
use crate::error::{EmulatorError, Result};
use crate::model::{CertificateOptions, CertificateVersion, Fault, Route, VaultPermissions};

/// Fixed facts of one running emulator.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub port: u16,
    /// Lowercase GUID.
    pub tenant_id: String,
    /// Lowercase domain.
    pub tenant_domain: String,
    pub token_lifetime: Duration,
}

impl Settings {
    pub(crate) fn authority_host(&self) -> String {
        format!("https://login.localhost:{}", self.port)
    }

    pub(crate) fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.authority_host(), self.tenant_id)
    }

    pub(crate) fn vault_base(&self, vault: &str) -> String {
        format!("https://{vault}.vault.localhost:{}", self.port)
    }

    pub(crate) fn graph_base(&self) -> String {
        format!("https://graph.localhost:{}", self.port)
    }

    pub(crate) fn api_url(&self) -> String {
        format!("https://api.localhost:{}/", self.port)
    }

    /// Whether `tenant` (from a URL path) names this tenant, by id or by domain.
    pub(crate) fn is_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id) || tenant.eq_ignore_ascii_case(&self.tenant_domain)
    }
}

/// The tenant's token-signing key, published in the JWKS.
pub(crate) struct TokenSigningKey {
    pub key: PKey<Private>,
    pub kid: String,
    pub n: String,
    pub e: String,
}

impl TokenSigningKey {
    pub(crate) fn generate() -> Result<Self> {
        let key = crypto::generate_rsa()?;
        let (n, e) = crypto::rsa_components(&key)?;
        // Entra's kids look like certificate thumbprints; a digest of the public key is as stable.
        let kid = crypto::b64url(&crypto::sha1(&key.public_key_to_der()?));
        Ok(Self { key, kid, n, e })
    }
}

/// A certificate uploaded to an app registration (a `keyCredential`).
#[derive(Clone)]
pub(crate) struct RegisteredCert {
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
    pub public_key: PKey<Public>,
    /// The uploaded certificate, which Graph returns as the credential's `key`.
    pub cer_der: Vec<u8>,
    /// Graph's `keyId` of the credential.
    pub key_id: String,
    /// Graph's `displayName`: the certificate's subject, as the portal names an upload.
    pub display_name: String,
    /// Graph's `startDateTime` and `endDateTime`: the certificate's validity, which Entra enforces.
    pub not_before: OffsetDateTime,
    pub expires: OffsetDateTime,
}

pub(crate) struct App {
    pub display_name: String,
    pub object_id: String,
    pub roles: Vec<String>,
    pub certificates: Vec<RegisteredCert>,
}

/// One certificate version with its non-exportable private key.
pub(crate) struct StoredVersion {
    pub public: CertificateVersion,
    pub key: PKey<Private>,
    pub subject_cn: String,
    pub created: OffsetDateTime,
    /// `attributes.enabled` of the certificate and its key: Key Vault refuses to sign with a disabled key.
    pub enabled: bool,
    /// The policy's `key_props.exportable` (what the policy says; the key never leaves either way).
    pub exportable: bool,
    /// Whether the key's `key_ops` include `sign`.
    pub sign_allowed: bool,
}

pub(crate) struct StoredCertificate {
    /// Name as created (Key Vault names are case-insensitive but keep their spelling).
    pub name: String,
    /// Oldest first; the last one is "latest".
    pub versions: Vec<StoredVersion>,
}

impl StoredCertificate {
    /// `version` empty = latest. Versions are compared case-insensitively like Key Vault does.
    pub(crate) fn version(&self, version: &str) -> Option<&StoredVersion> {
        if version.is_empty() {
            self.versions.last()
        } else {
            self.versions
                .iter()
                .find(|v| v.public.version.eq_ignore_ascii_case(version))
        }
    }
}

pub(crate) struct Vault {
    pub permissions: VaultPermissions,
    /// Keyed by lowercase name.
    pub certificates: HashMap<String, StoredCertificate>,
}

impl Vault {
    fn new() -> Self {
        Self {
            permissions: VaultPermissions::default(),
            certificates: HashMap::new(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Keyed by lowercase client id.
    pub apps: HashMap<String, App>,
    /// Keyed by lowercase vault name.
    pub vaults: HashMap<String, Vault>,
    pub counters: HashMap<Route, u64>,
    pub challenges: u64,
    pub latency: Duration,
    pub queued_faults: HashMap<Route, VecDeque<Fault>>,
    pub persistent_faults: HashMap<Route, Fault>,
    pub clock_offset_secs: i64,
    pub forced_token_error: Option<u32>,
    /// `client_id|jti` -> the assertion's `exp`; pruned once it could no longer be accepted.
    pub seen_jti: HashMap<String, i64>,
    /// While set, Graph refuses the developer with 403 `Authorization_RequestDenied`.
    pub graph_denied: bool,
}

/// State shared by the handlers and the [`crate::Emulator`].
pub(crate) struct Shared {
    pub settings: Settings,
    pub token_key: TokenSigningKey,
    pub inner: Mutex<Inner>,
}

pub(crate) type SharedState = Arc<Shared>;

impl Shared {
    /// The emulator's idea of "now", shifted by the clock offset knob.
    pub(crate) fn now(&self) -> OffsetDateTime {
        let offset = self.inner.lock().clock_offset_secs;
        OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }

    pub(crate) fn count(&self, route: Route) {
        *self.inner.lock().counters.entry(route).or_default() += 1;
    }

    pub(crate) fn count_challenge(&self) {
        self.inner.lock().challenges += 1;
    }

    /// The fault to answer for this request, if any: queued ones first, then the persistent one.
    pub(crate) fn take_fault(&self, route: Route) -> Option<Fault> {
        let mut inner = self.inner.lock();
        if let Some(queue) = inner.queued_faults.get_mut(&route)
            && let Some(fault) = queue.pop_front()
        {
            return Some(fault);
        }
        inner.persistent_faults.get(&route).cloned()
    }

    pub(crate) fn latency(&self) -> Duration {
        self.inner.lock().latency
    }

    /// Creates a certificate version (and the vault and certificate if new) with a fresh key.
    pub(crate) fn add_certificate_version(
        &self,
        vault: &str,
        name: &str,
        subject_cn: Option<&str>,
        options: &CertificateOptions,
    ) -> Result<CertificateVersion> {
        validate_name("vault", vault, 3, 24)?;
        validate_name("certificate", name, 1, 127)?;
        let vault_key = vault.to_ascii_lowercase();
        let cert_key = name.to_ascii_lowercase();

        let subject_cn = match subject_cn {
            Some(cn) => cn.to_owned(),
            None => {
                let inner = self.inner.lock();
                inner
                    .vaults
                    .get(&vault_key)
                    .and_then(|v| v.certificates.get(&cert_key))
                    .and_then(|c| c.versions.last())
                    .map(|v| v.subject_cn.clone())
                    .ok_or_else(|| EmulatorError::CertificateNotFound {
                        vault: vault.to_owned(),
                        name: name.to_owned(),
                    })?
            }
        };

        // Key generation is slow-ish; do it without holding the lock.
        let key = crypto::generate_rsa()?;
        let created = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        // Key Vault's default policy: 12 months validity. Backdated by a few minutes so a
        // client whose clock lags slightly still sees a valid certificate.
        let not_before = options.not_before.unwrap_or(created - time::Duration::minutes(5));
        let expires = options.expires.unwrap_or(created + time::Duration::days(365));
        if expires <= not_before {
            return Err(EmulatorError::InvalidValidity { not_before, expires });
        }
        let cer_der = crypto::self_signed_certificate(&key, &subject_cn, not_before, expires)?;
        let version = uuid::Uuid::new_v4().simple().to_string();

        let mut inner = self.inner.lock();
        let vault_entry = inner.vaults.entry(vault_key).or_insert_with(Vault::new);
        let certificate = vault_entry
            .certificates
            .entry(cert_key)
            .or_insert_with(|| StoredCertificate {
                name: name.to_owned(),
                versions: Vec::new(),
            });
        let public = CertificateVersion {
            vault: vault.to_ascii_lowercase(),
            name: certificate.name.clone(),
            kid: format!(
                "{}/keys/{}/{version}",
                self.settings.vault_base(&vault.to_ascii_lowercase()),
                certificate.name
            ),
            version,
            x5t: crypto::b64url(&crypto::sha1(&cer_der)),
            x5t_s256: crypto::b64url(&crypto::sha256(&cer_der)),
            cer_der,
            not_before,
            expires,
        };
        certificate.versions.push(StoredVersion {
            public: public.clone(),
            key,
            subject_cn,
            created,
            enabled: true,
            exportable: options.exportable,
            sign_allowed: options.sign_allowed,
        });
        Ok(public)
    }

    pub(crate) fn ensure_vault(&self, vault: &str) -> Result<()> {
        validate_name("vault", vault, 3, 24)?;
        self.inner
            .lock()
            .vaults
            .entry(vault.to_ascii_lowercase())
            .or_insert_with(Vault::new);
        Ok(())
    }
}

/// Key Vault's naming rule (letters, digits, dashes), which also keeps names safe in host names
/// and URL paths.
fn validate_name(what: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    let invalid = |reason| EmulatorError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    };
    if value.len() < min || value.len() > max {
        return Err(invalid("wrong length"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid("only letters, digits and '-' are allowed"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(invalid("must not start or end with '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn names_follow_key_vault_rules() {
        assert!(validate_name("vault", "demo", 3, 24).is_ok());
        assert!(validate_name("vault", "my-vault-01", 3, 24).is_ok());
        assert!(validate_name("vault", "ab", 3, 24).is_err());
        assert!(validate_name("vault", "a.b.c", 3, 24).is_err());
        assert!(validate_name("vault", "-abc", 3, 24).is_err());
        assert!(validate_name("certificate", "a/b", 1, 127).is_err());
    }
}
