//! The assertion, checked by an independent JWT library rather than the engine's own code, and the
//! production path: `KeyVaultAssertion` inside the SDK's own `ClientAssertionCredential`.

use crate::common::{CERT, Fixture, SCOPE, VAULT};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kvproxy_core::credential::{EMULATOR_DEVELOPER_CLIENT_ID, EMULATOR_DEVELOPER_CLIENT_SECRET};
use kvproxy_core::{
    Cloud, CloudName, CustomCloud, KeyVaultAssertion, KeyVaultAssertionOptions, SigningAlgorithm, decode_claims,
};
use std::collections::HashSet;
use std::sync::Arc;

fn emulator_cloud(fx: &Fixture) -> Cloud {
    Cloud::new(
        CloudName::Custom,
        Some(CustomCloud {
            authority_host: fx.emulator.authority_host(),
            vault_suffixes: vec![kvproxy_core::cloud::EMULATOR_VAULT_SUFFIX.into()],
            ca_file: None,
        }),
    )
    .unwrap()
}

fn sdk_options(fx: &Fixture) -> ClientOptions {
    let mut custom = azure_core::cloud::CustomConfiguration::default();
    custom.authority_host = fx.emulator.authority_host();
    ClientOptions {
        transport: Some(Transport::new(Arc::new(fx.emulator.http_client().unwrap()))),
        cloud: Some(Arc::new(azure_core::cloud::CloudConfiguration::Custom(custom))),
        ..Default::default()
    }
}

async fn assertion(fx: &Fixture, algorithm: SigningAlgorithm) -> KeyVaultAssertion {
    let vault_credential = ClientSecretCredential::new(
        &fx.emulator.tenant_id(),
        EMULATOR_DEVELOPER_CLIENT_ID.into(),
        Secret::new(EMULATOR_DEVELOPER_CLIENT_SECRET),
        Some(ClientSecretCredentialOptions {
            client_options: sdk_options(fx),
        }),
    )
    .unwrap();
    KeyVaultAssertion::from_certificate(
        &fx.emulator.vault_url(VAULT),
        CERT,
        &fx.emulator.tenant_id(),
        &fx.client_id,
        vault_credential,
        KeyVaultAssertionOptions {
            algorithm,
            cloud: emulator_cloud(fx),
            http_client: Some(fx.emulator.http_client().unwrap()),
            ..Default::default()
        },
    )
    .await
    .expect("assertion from the vault certificate")
}

#[tokio::test]
async fn assertion_verifies_with_an_independent_jwt_library() {
    let fx = Fixture::start().await;
    let (_, cert) = x509_parser::parse_x509_certificate(&fx.cert.cer_der).unwrap();
    let key = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let audience = fx.emulator.token_endpoint();
    for (alg, jwt_alg) in [
        (SigningAlgorithm::PS256, Algorithm::PS256),
        (SigningAlgorithm::RS256, Algorithm::RS256),
    ] {
        let jwt = assertion(&fx, alg).await.secret(None).await.unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, jwt_alg);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        match alg {
            SigningAlgorithm::PS256 => {
                assert_eq!(header.x5t_s256.as_deref(), Some(fx.cert.x5t_s256.as_str()));
                assert_eq!(header.x5t, None);
            }
            SigningAlgorithm::RS256 => {
                assert_eq!(header.x5t.as_deref(), Some(fx.cert.x5t.as_str()));
                assert_eq!(header.x5t_s256, None);
            }
        }
        let mut validation = Validation::new(jwt_alg);
        validation.set_audience(&[audience.as_str()]);
        validation.set_issuer(&[fx.client_id.as_str()]);
        validation.sub = Some(fx.client_id.clone());
        validation.required_spec_claims = HashSet::from(["exp", "nbf", "aud", "iss", "sub"].map(String::from));
        validation.validate_nbf = true;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation).expect("signature and claims verify");
        let c = data.claims;
        assert_eq!(c["iat"], c["nbf"]);
        let window = c["exp"].as_i64().unwrap() - c["nbf"].as_i64().unwrap();
        assert!((60..=600).contains(&window), "exp - nbf = {window}");
        assert!(uuid::Uuid::parse_str(c["jti"].as_str().unwrap()).is_ok());

        // Tampering breaks it: the check is real.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged_claims =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, br#"{"aud":"x"}"#);
        parts[1] = &forged_claims;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&parts.join("."), &key, &validation).is_err());
    }
    let a = assertion(&fx, SigningAlgorithm::PS256).await;
    let (one, two) = (a.secret(None).await.unwrap(), a.secret(None).await.unwrap());
    assert_ne!(
        decode_claims(&one).unwrap()["jti"],
        decode_claims(&two).unwrap()["jti"],
        "fresh jti per assertion"
    );
}

#[tokio::test]
async fn client_assertion_credential_gets_a_token_through_key_vault() {
    let fx = Fixture::start().await;
    let assertion = assertion(&fx, SigningAlgorithm::PS256).await;
    let credential = ClientAssertionCredential::new(
        fx.emulator.tenant_id(),
        fx.client_id.clone(),
        assertion,
        Some(ClientAssertionCredentialOptions {
            client_options: sdk_options(&fx),
        }),
    )
    .unwrap();
    let token = credential.get_token(&[SCOPE], None).await.expect("token via the SDK");
    let claims = decode_claims(token.token.secret()).unwrap();
    assert_eq!(claims["appid"], fx.client_id.as_str());
    assert_eq!(claims["aud"], "api://kvproxy-test");
}

/// The engine's demo sign-in and the emulator's developer app are two names for one identity: they must agree.
#[test]
fn developer_identity_is_the_emulators() {
    assert_eq!(EMULATOR_DEVELOPER_CLIENT_ID, kvproxy_emulator::DEVELOPER_CLIENT_ID);
    assert_eq!(
        EMULATOR_DEVELOPER_CLIENT_SECRET,
        kvproxy_emulator::DEVELOPER_CLIENT_SECRET
    );
}
