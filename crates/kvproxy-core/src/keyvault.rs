//! Key Vault through the official SDK: read the certificate (for its key id and thumbprints) and sign a
//! digest with its key. The private key never leaves the vault; all we hold is a signature.

use crate::assertion::Thumbprints;
use crate::error::{Error, KeyVaultOperation, Result};
use crate::keyinfo::{KeyInfo, SigningKey};
use crate::profile::{CredentialSource, SigningAlgorithm};
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_security_keyvault_certificates::CertificateClient;
use azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions;
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    KeyClientGetKeyOptions, KeyClientSignOptions, SignParameters, SignatureAlgorithm,
};
use std::sync::Arc;
use time::OffsetDateTime;

/// A certificate as Key Vault describes it: key info plus what its attributes and policy say (`None`
/// where Key Vault said nothing).
pub(crate) struct CertificateDetails {
    pub info: KeyInfo,
    /// The certificate (DER), whose public key checks a signature.
    pub der: Vec<u8>,
    pub enabled: Option<bool>,
    pub exportable: Option<bool>,
}

/// The two SDK clients for one vault. Kept for the life of the process: each learns the vault's auth
/// challenge once and caches its access token.
pub(crate) struct VaultClients {
    vault_url: String,
    /// How we signed in, for error hints; `None` when the library caller supplied the credential.
    source: Option<CredentialSource>,
    certificates: CertificateClient,
    keys: KeyClient,
}

impl VaultClients {
    pub(crate) fn new(
        vault_url: &str,
        source: Option<CredentialSource>,
        credential: Arc<dyn TokenCredential>,
        client_options: ClientOptions,
    ) -> Result<Self> {
        let sdk = |e: azure_core::Error| Error::invalid("vault_url", format!("'{vault_url}': {e}"));
        let certificates = CertificateClient::new(
            vault_url,
            credential.clone(),
            Some(azure_security_keyvault_certificates::CertificateClientOptions {
                client_options: client_options.clone(),
                ..Default::default()
            }),
        )
        .map_err(sdk)?;
        let keys = KeyClient::new(
            vault_url,
            credential,
            Some(azure_security_keyvault_keys::KeyClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(sdk)?;
        Ok(Self {
            vault_url: vault_url.to_string(),
            source,
            certificates,
            keys,
        })
    }

    /// Reads the latest version of a certificate: its key id, DER (for thumbprints) and validity.
    pub(crate) async fn key_info(&self, certificate: &str) -> Result<KeyInfo> {
        let cert = self.certificate(certificate).await?;
        self.key_info_of(certificate, cert)
    }

    /// Reads the latest version of a certificate with what its policy and attributes say about it.
    pub(crate) async fn certificate_details(&self, certificate: &str) -> Result<CertificateDetails> {
        let cert = self.certificate(certificate).await?;
        let enabled = cert.attributes.as_ref().and_then(|a| a.enabled);
        let exportable = cert
            .policy
            .as_ref()
            .and_then(|p| p.key_properties.as_ref())
            .and_then(|k| k.exportable);
        let der = cert.cer.clone().unwrap_or_default();
        let info = self.key_info_of(certificate, cert)?;
        Ok(CertificateDetails {
            info,
            der,
            enabled,
            exportable,
        })
    }

    /// The operations the key's `key_ops` allow (`sign`, `verify`, ...), of the pinned version.
    pub(crate) async fn key_operations(&self, key: &SigningKey) -> Result<Vec<String>> {
        let id = key.parsed_key_id()?;
        let response = self
            .keys
            .get_key(
                id.name(),
                Some(KeyClientGetKeyOptions {
                    key_version: Some(id.version().to_string()),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| self.error(KeyVaultOperation::GetKey, &key.name, &e))?;
        let model = response.into_model().map_err(|e| Error::Protocol {
            target: self.vault_url.clone(),
            message: e.to_string(),
        })?;
        Ok(model.key.and_then(|k| k.key_ops).unwrap_or_default())
    }

    async fn certificate(
        &self,
        certificate: &str,
    ) -> Result<azure_security_keyvault_certificates::models::Certificate> {
        let response = self
            .certificates
            .get_certificate(certificate, None::<CertificateClientGetCertificateOptions<'_>>)
            .await
            .map_err(|e| self.error(KeyVaultOperation::GetCertificate, certificate, &e))?;
        response.into_model().map_err(|e| Error::Protocol {
            target: self.vault_url.clone(),
            message: e.to_string(),
        })
    }

    fn key_info_of(
        &self,
        certificate: &str,
        cert: azure_security_keyvault_certificates::models::Certificate,
    ) -> Result<KeyInfo> {
        let der = cert.cer.ok_or_else(|| {
            Error::Certificate(format!(
                "'{certificate}' has no public certificate (is it still pending?)"
            ))
        })?;
        let key_id = cert
            .kid
            .ok_or_else(|| Error::Certificate(format!("'{certificate}' has no key id")))?;
        let (subject, not_before, expires) = parse_certificate(&der)?;
        let version = cert
            .id
            .as_deref()
            .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        let info = KeyInfo {
            vault_url: self.vault_url.clone(),
            certificate: certificate.to_string(),
            key_id,
            certificate_version: version,
            thumbprints: Thumbprints::of_der(&der),
            subject,
            not_before,
            expires,
        };
        info.parsed_key_id()?;
        Ok(info)
    }

    pub(crate) async fn sign(
        &self,
        key: &SigningKey,
        algorithm: SigningAlgorithm,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>> {
        let id = key.parsed_key_id()?;
        let (name, version) = (id.name(), id.version());
        let parameters = SignParameters {
            algorithm: Some(match algorithm {
                SigningAlgorithm::PS256 => SignatureAlgorithm::Ps256,
                SigningAlgorithm::RS256 => SignatureAlgorithm::Rs256,
            }),
            value: Some(digest.to_vec()),
        };
        let content = parameters.try_into().map_err(|e: azure_core::Error| Error::Protocol {
            target: self.vault_url.clone(),
            message: e.to_string(),
        })?;
        let response = self
            .keys
            .sign(
                name,
                content,
                Some(KeyClientSignOptions {
                    key_version: Some(version.to_string()),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| self.error(KeyVaultOperation::Sign, &key.name, &e))?;
        let result = response.into_model().map_err(|e| Error::Protocol {
            target: self.vault_url.clone(),
            message: e.to_string(),
        })?;
        result.result.ok_or_else(|| Error::Protocol {
            target: self.vault_url.clone(),
            message: "sign returned no signature".into(),
        })
    }

    fn error(&self, operation: KeyVaultOperation, certificate: &str, e: &azure_core::Error) -> Error {
        use azure_core::error::ErrorKind;
        match e.kind() {
            ErrorKind::Credential => crate::credential::credential_error(self.source, e),
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let status = u16::from(*status);
                let message = raw_response
                    .as_ref()
                    .and_then(|r| serde_json::from_slice::<serde_json::Value>(r.body().as_ref()).ok())
                    .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
                    .or_else(|| error_code.clone())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                let hint = match status {
                    401 => Some(
                        "the Key Vault credential was refused; sign in again (az login) or check the credential source"
                            .to_string(),
                    ),
                    403 if operation == KeyVaultOperation::GetKey => Some(format!(
                        "grant the signed-in identity the 'Key Vault Crypto User' role (or the keys 'get' access policy) on {}",
                        self.vault_url
                    )),
                    403 if operation == KeyVaultOperation::Sign => Some(format!(
                        "grant the signed-in identity the 'Key Vault Crypto User' role (or the keys 'sign' access policy) on {}",
                        self.vault_url
                    )),
                    403 => Some(format!(
                        "grant the signed-in identity the 'Key Vault Certificate User' role (or the certificates 'get' access policy) on {}",
                        self.vault_url
                    )),
                    404 => Some(format!(
                        "check that certificate '{certificate}' exists in {} and the vault URL is right",
                        self.vault_url
                    )),
                    429 => Some("Key Vault kept throttling after retries; try again in a minute".to_string()),
                    s if s >= 500 => Some("Key Vault kept failing after retries; try again later".to_string()),
                    _ => None,
                };
                Error::KeyVault {
                    operation,
                    status,
                    message,
                    hint,
                }
            }
            ErrorKind::Connection | ErrorKind::Io => Error::Network {
                target: self.vault_url.clone(),
                message: crate::error::error_chain(e),
            },
            _ => Error::KeyVault {
                operation,
                status: 0,
                message: crate::error::error_chain(e),
                hint: None,
            },
        }
    }
}

fn parse_certificate(der: &[u8]) -> Result<(String, OffsetDateTime, OffsetDateTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::Certificate(format!("not an X.509 certificate: {e}")))?;
    let validity = cert.validity();
    let to_time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| Error::Certificate(e.to_string()))
    };
    Ok((
        cert.subject().to_string(),
        to_time(validity.not_before)?,
        to_time(validity.not_after)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    /// A self-signed P-256 certificate (`CN=kvproxy-props`), DER in base64: what Key Vault's `cer` holds.
    const CERTIFICATE: &str = "MIIBhTCCASugAwIBAgIUKyiT1t9VUHHIPhHSgPzC7XP/fPMwCgYIKoZIzj0EAwIwGDEWMBQGA1UEAwwNa3Zwcm94eS1wcm9wczAeFw0yNjExMzAxNzA3MDJaFw0zNjExMjcxNzA3MDJaMBgxFjAUBgNVBAMMDWt2cHJveHktcHJvcHMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATkds+z1qNtJ7vNjHTxcrWrOWcyUlNsao7TPFQVb3ntMD675KC2TqaaefB2192MtNq/IaxlFZ9lPEkAYWwfwL06o1MwUTAdBgNVHQ4EFgQUj/r8duNDmMc5JcwrzzviZ402SFkwHwYDVR0jBBgwFoAUj/r8duNDmMc5JcwrzzviZ402SFkwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiAZnsch1EZ1qMHuI8GGORFktL6r+JeU66o6V7bn/NywXQIhAOH1/sQCximCdgOfhJe/RySqzfaJIVuUanPhycLzb0OP";

    fn certificate_der() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(CERTIFICATE)
            .expect("the test certificate is base64")
    }

    #[test]
    fn a_certificate_gives_its_subject_and_validity() {
        let (subject, not_before, expires) = parse_certificate(&certificate_der()).expect("a certificate");
        assert_eq!(subject, "CN=kvproxy-props");
        assert!(not_before < expires);
    }

    proptest! {
        /// The `cer` of a Key Vault answer, as any bytes or as the certificate with bytes flipped, cut or
        /// appended: subject and validity, or a certificate error, never a panic.
        #[test]
        fn certificate_der_parser_never_panics(
            junk in prop::collection::vec(any::<u8>(), 0..600),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            how in 0usize..3,
        ) {
            let original = certificate_der();
            let mut der = original.clone();
            match how {
                0 => {
                    for (at, bits) in &flips {
                        let i = at.index(der.len());
                        der[i] ^= bits;
                    }
                }
                1 => der.truncate(cut.index(der.len())),
                _ => der.extend_from_slice(&junk),
            }
            for bytes in [&der, &junk] {
                match parse_certificate(bytes) {
                    Ok((subject, ..)) if *bytes == original => prop_assert_eq!(subject, "CN=kvproxy-props"),
                    Ok(_) => {}
                    Err(e) => prop_assert!(matches!(e, Error::Certificate(_)), "{e:?}"),
                }
            }
        }
    }
}
