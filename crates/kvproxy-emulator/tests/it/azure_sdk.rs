//! The official Azure SDK clients against the emulator, unmodified: `ClientSecretCredential`
//! for the developer identity, `CertificateClient::get_certificate` and `KeyClient::sign`.
//! This is what proves the emulator's JSON, challenge and token answers are faithful enough.

use std::sync::Arc;

use crate::common::*;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::{SignParameters, SignatureAlgorithm};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use jsonwebtoken::{Algorithm, DecodingKey};
use kvproxy_emulator::{DEVELOPER_CLIENT_ID, DEVELOPER_CLIENT_SECRET, Emulator, Route};

/// Client options that point the SDK at the emulator: its authority host as a custom cloud,
/// the emulator-aware reqwest client as transport, no retries (tests want to see every answer).
fn sdk_options(emu: &Emulator) -> ClientOptions {
    let http = emu.http_client().unwrap();
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = emu.authority_host();
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

fn credential(emu: &Emulator) -> Arc<ClientSecretCredential> {
    ClientSecretCredential::new(
        &emu.tenant_id(),
        DEVELOPER_CLIENT_ID.to_owned(),
        DEVELOPER_CLIENT_SECRET.to_owned().into(),
        Some(ClientSecretCredentialOptions {
            client_options: sdk_options(emu),
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn certificate_client_and_key_client_work_unmodified() {
    let ctx = start().await;
    let seed = ctx.emu.seed_demo();
    let credential = credential(&ctx.emu);

    let certificates = CertificateClient::new(
        &seed.vault_url,
        credential.clone(),
        Some(CertificateClientOptions {
            client_options: sdk_options(&ctx.emu),
            ..Default::default()
        }),
    )
    .unwrap();
    let certificate = certificates
        .get_certificate(&seed.certificate_name, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(certificate.kid.as_deref(), Some(seed.certificate.kid.as_str()));
    assert_eq!(certificate.cer.as_deref(), Some(seed.certificate.cer_der.as_slice()));
    assert_eq!(
        certificate.x509_thumbprint.as_deref(),
        Some(openssl::sha::sha1(&seed.certificate.cer_der).as_slice())
    );
    let attributes = certificate.attributes.as_ref().unwrap();
    assert_eq!(attributes.enabled, Some(true));
    assert_eq!(attributes.expires, Some(seed.certificate.expires));
    assert_eq!(attributes.not_before, Some(seed.certificate.not_before));
    let key_props = certificate.policy.as_ref().unwrap().key_properties.as_ref().unwrap();
    assert_eq!(key_props.exportable, Some(false));
    assert_eq!(key_props.key_size, Some(2048));
    // First call met the challenge (counted apart) and was then authorized; the credential asked Entra once.
    assert_eq!(ctx.emu.count(Route::GetCertificate), 1);
    assert_eq!(ctx.emu.count_challenges(), 1);
    assert_eq!(ctx.emu.count(Route::DeveloperToken), 1);

    let kid: azure_security_keyvault_keys::ResourceId = seed.certificate.kid.parse().unwrap();
    assert_eq!(format!("{}/", kid.vault_url), seed.vault_url);
    let keys = KeyClient::new(
        &kid.vault_url,
        credential.clone(),
        Some(KeyClientOptions {
            client_options: sdk_options(&ctx.emu),
            ..Default::default()
        }),
    )
    .unwrap();
    let message = b"header.claims";
    let digest = sha256(message);
    for (alg, jwt_alg) in [
        (SignatureAlgorithm::Ps256, Algorithm::PS256),
        (SignatureAlgorithm::Rs256, Algorithm::RS256),
    ] {
        let parameters = SignParameters {
            algorithm: Some(alg.clone()),
            value: Some(digest.clone()),
        };
        let result = keys
            .sign(
                &kid.name,
                parameters.try_into().unwrap(),
                Some(azure_security_keyvault_keys::models::KeyClientSignOptions {
                    key_version: kid.version.clone(),
                    ..Default::default()
                }),
            )
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(result.kid.as_deref(), Some(seed.certificate.kid.as_str()));
        let signature = result.result.unwrap();
        let cert = openssl::x509::X509::from_der(&seed.certificate.cer_der).unwrap();
        let rsa = cert.public_key().unwrap().rsa().unwrap();
        let key = DecodingKey::from_rsa_raw_components(&rsa.n().to_vec(), &rsa.e().to_vec());
        assert!(
            jsonwebtoken::crypto::verify(&b64url(&signature), message, &key, jwt_alg).unwrap(),
            "{alg:?}"
        );
    }
    // The key client's first call also met the challenge; the credential's token was reused.
    assert_eq!(ctx.emu.count(Route::Sign), 2);
    assert_eq!(ctx.emu.count_challenges(), 2);
    assert_eq!(ctx.emu.count(Route::DeveloperToken), 1);
}

#[tokio::test]
async fn sdk_errors_surface_status_and_code() {
    let ctx = start().await;
    let seed = ctx.emu.seed_demo();
    let certificates = CertificateClient::new(
        &seed.vault_url,
        credential(&ctx.emu),
        Some(CertificateClientOptions {
            client_options: sdk_options(&ctx.emu),
            ..Default::default()
        }),
    )
    .unwrap();
    let error = certificates.get_certificate("does-not-exist", None).await.unwrap_err();
    match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code, .. } => {
            assert_eq!(u16::from(*status), 404);
            assert_eq!(error_code.as_deref(), Some("CertificateNotFound"));
        }
        other => panic!("unexpected error kind {other:?}"),
    }

    // A wrong secret: the credential reports Entra's AADSTS code.
    let bad = ClientSecretCredential::new(
        &ctx.emu.tenant_id(),
        DEVELOPER_CLIENT_ID.to_owned(),
        "wrong".to_owned().into(),
        Some(ClientSecretCredentialOptions {
            client_options: sdk_options(&ctx.emu),
        }),
    )
    .unwrap();
    let error =
        azure_core::credentials::TokenCredential::get_token(bad.as_ref(), &["https://vault.localhost/.default"], None)
            .await
            .unwrap_err();
    assert!(error.to_string().contains("AADSTS7000215"), "{error}");
}
