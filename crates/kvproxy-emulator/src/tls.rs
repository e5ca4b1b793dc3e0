//! The emulator's TLS identity: a throwaway CA made at start and a server certificate it signs.
//!
//! Azure SDK bearer-token policies refuse plain `http://`, so the emulator must speak HTTPS, and
//! clients must be able to trust it without touching the OS trust store. A fresh in-memory CA per
//! emulator does that: a client adds [`TlsIdentity::ca_pem`] as an extra root. The CA's private key
//! is dropped as soon as the server certificate is signed, and is never written anywhere, so the
//! trust a test grants cannot be reused by anything else.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::error::Result;

/// Host names the server certificate covers. `*.vault.localhost` covers every vault.
pub(crate) const SERVER_DNS_NAMES: [&str; 5] = [
    "localhost",
    "login.localhost",
    "*.vault.localhost",
    "api.localhost",
    "graph.localhost",
];

/// What the listener needs (rustls config) and what clients need (the CA certificate).
pub(crate) struct TlsIdentity {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Generates the CA and the server certificate and builds the rustls server configuration.
pub(crate) fn generate() -> Result<TlsIdentity> {
    // Backdated a little so a client whose clock is slightly behind still accepts the chain.
    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    let not_after = OffsetDateTime::now_utc() + Duration::days(30);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "KeyVault Proxy Emulator CA (in-memory, per run)");
    ca_name.push(DnType::OrganizationName, "KeyVault Proxy");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params =
        CertificateParams::new(SERVER_DNS_NAMES.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
    server_params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let mut server_name = DistinguishedName::new();
    server_name.push(DnType::CommonName, "localhost");
    server_params.distinguished_name = server_name;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.not_before = not_before;
    server_params.not_after = not_after;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;
    // The issuer (and with it the CA private key) ends here.
    drop(issuer);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(server_cert.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(TlsIdentity {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        server_config: Arc::new(config),
    })
}
