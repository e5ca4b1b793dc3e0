//! The client assertion: a JWT that proves possession of the certificate's private key without the key
//! ever leaving Key Vault. We build header and claims here, hand only the SHA-256 digest of the signing
//! input to Key Vault, and glue its signature back on.

use crate::profile::SigningAlgorithm;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use time::OffsetDateTime;

/// Entra accepts at most ten minutes; five leaves room for clock skew without being a long-lived secret.
pub const ASSERTION_LIFETIME_SECS: i64 = 300;

/// Certificate thumbprints as JWT headers want them: base64url of the hash of the DER, no padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Thumbprints {
    /// SHA-1, for `x5t`.
    pub sha1: String,
    /// SHA-256, for `x5t#S256`.
    pub sha256: String,
}

impl Thumbprints {
    pub fn of_der(der: &[u8]) -> Self {
        Self {
            sha1: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der)),
            sha256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der)),
        }
    }

    /// The SHA-1 thumbprint as the hex string the Azure portal shows.
    pub fn sha1_hex(&self) -> String {
        URL_SAFE_NO_PAD
            .decode(&self.sha1)
            .map(|bytes| bytes.iter().map(|b| format!("{b:02X}")).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssertionHeader {
    pub alg: String,
    pub typ: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssertionClaims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

/// An assertion waiting for its signature.
#[derive(Debug)]
pub struct UnsignedAssertion {
    pub algorithm: SigningAlgorithm,
    signing_input: String,
}

impl UnsignedAssertion {
    pub fn new(
        algorithm: SigningAlgorithm,
        thumbprints: &Thumbprints,
        client_id: &str,
        audience: &str,
        now: OffsetDateTime,
    ) -> Self {
        let header = match algorithm {
            SigningAlgorithm::PS256 => AssertionHeader {
                alg: "PS256".into(),
                typ: "JWT".into(),
                x5t: None,
                x5t_s256: Some(thumbprints.sha256.clone()),
            },
            SigningAlgorithm::RS256 => AssertionHeader {
                alg: "RS256".into(),
                typ: "JWT".into(),
                x5t: Some(thumbprints.sha1.clone()),
                x5t_s256: None,
            },
        };
        let now = now.unix_timestamp();
        let claims = AssertionClaims {
            aud: audience.to_string(),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        let signing_input = format!("{}.{}", b64_json(&header), b64_json(&claims));
        Self {
            algorithm,
            signing_input,
        }
    }

    /// The SHA-256 digest Key Vault signs (it signs digests, not messages).
    pub fn digest(&self) -> [u8; 32] {
        sha2::Sha256::digest(self.signing_input.as_bytes()).into()
    }

    pub fn signing_input(&self) -> &str {
        &self.signing_input
    }

    pub fn with_signature(self, signature: &[u8]) -> String {
        format!("{}.{}", self.signing_input, URL_SAFE_NO_PAD.encode(signature))
    }
}

fn b64_json<T: Serialize>(value: &T) -> String {
    // Both types are plain structs of strings and integers, which always serialise.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// Decodes a JWT's claims without verifying it: for showing a user what their token says.
pub fn decode_claims(jwt: &str) -> Option<serde_json::Value> {
    decode_part(jwt, 1)
}

/// The decoded header of a JWT (`alg`, `kid`, `x5t`, …), without verifying anything.
pub fn decode_header(jwt: &str) -> Option<serde_json::Value> {
    decode_part(jwt, 0)
}

fn decode_part(jwt: &str, index: usize) -> Option<serde_json::Value> {
    let part = jwt.split('.').nth(index)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_carries_the_thumbprint_its_algorithm_needs() {
        let tp = Thumbprints::of_der(b"not really a certificate");
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        for (alg, want_x5t, want_s256) in [
            (SigningAlgorithm::PS256, None, Some(tp.sha256.clone())),
            (SigningAlgorithm::RS256, Some(tp.sha1.clone()), None),
        ] {
            let a = UnsignedAssertion::new(alg, &tp, "cid", "https://login/t/oauth2/v2.0/token", now);
            let mut parts = a.signing_input().split('.');
            let header: AssertionHeader =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
            assert_eq!(header.alg, alg.as_str());
            assert_eq!(header.x5t, want_x5t);
            assert_eq!(header.x5t_s256, want_s256);
            let claims: AssertionClaims =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
            assert_eq!((claims.iss.as_str(), claims.sub.as_str()), ("cid", "cid"));
            assert_eq!(claims.exp - claims.nbf, ASSERTION_LIFETIME_SECS);
            assert_eq!(claims.iat, 1_700_000_000);
        }
    }

    #[test]
    fn thumbprints_are_unpadded_base64url() {
        let tp = Thumbprints::of_der(b"abc");
        // SHA-1("abc") = a9993e36...; 20 bytes -> 27 chars, 32 bytes -> 43 chars without padding.
        assert_eq!(tp.sha1.len(), 27);
        assert_eq!(tp.sha256.len(), 43);
        assert!(!tp.sha1.contains('=') && !tp.sha1.contains('+') && !tp.sha1.contains('/'));
        assert!(tp.sha1_hex().starts_with("A9993E36"));
    }
}
