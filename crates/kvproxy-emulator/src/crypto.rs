//! The real cryptography behind the emulator: RSA keys, self-signed X.509 certificates,
//! PS256/RS256 signatures over digests and messages, and compact JWTs.
//!
//! The emulator exists to catch mistakes a client makes with these primitives (wrong padding,
//! wrong salt length, thumbprint of the wrong bytes), so nothing here is mocked: OpenSSL does the
//! maths, and verification is as strict as Entra's (PSS salt length must equal the digest length).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::Result;

/// Bits of every RSA key the emulator makes (Key Vault's default for certificates).
pub(crate) const RSA_BITS: u32 = 2048;

/// Length of a SHA-256 digest, the only digest PS256/RS256 accept.
pub(crate) const SHA256_LEN: usize = 32;

/// base64url without padding, the JOSE encoding.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, tolerating padding because some clients send it.
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Standard base64 with padding (Key Vault's encoding of `cer`).
pub(crate) fn b64std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// SHA-1 of `data`; only for certificate thumbprints (`x5t`), never for signatures.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    openssl::sha::sha1(data)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// The JOSE signature algorithms the emulator implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignAlg {
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl SignAlg {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "PS256" => Some(Self::Ps256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Rs256 => "RS256",
        }
    }
}

/// Generates a fresh RSA key pair.
pub(crate) fn generate_rsa() -> Result<PKey<Private>> {
    Ok(PKey::from_rsa(Rsa::generate(RSA_BITS)?)?)
}

/// Signs a precomputed SHA-256 digest, the way Key Vault's `sign` operation does.
///
/// The caller has already checked the digest length; OpenSSL would refuse a wrong one anyway.
pub(crate) fn sign_digest(key: &PKey<Private>, alg: SignAlg, digest: &[u8]) -> Result<Vec<u8>> {
    let mut ctx = PkeyCtx::new(key)?;
    ctx.sign_init()?;
    ctx.set_signature_md(Md::sha256())?;
    match alg {
        SignAlg::Ps256 => {
            ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(SHA256_LEN as i32))?;
            ctx.set_rsa_mgf1_md(Md::sha256())?;
        }
        SignAlg::Rs256 => ctx.set_rsa_padding(Padding::PKCS1)?,
    }
    let mut signature = Vec::new();
    ctx.sign_to_vec(digest, &mut signature)?;
    Ok(signature)
}

/// Signs a whole message (hashing it first); used for the tokens the emulator issues.
pub(crate) fn sign_message_rs256(key: &PKey<Private>, message: &[u8]) -> Result<Vec<u8>> {
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.set_rsa_padding(Padding::PKCS1)?;
    signer.update(message)?;
    Ok(signer.sign_to_vec()?)
}

/// Verifies a JOSE signature over `message`. Any OpenSSL failure counts as "invalid".
pub(crate) fn verify<T: openssl::pkey::HasPublic>(
    key: &PKey<T>,
    alg: SignAlg,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let attempt = || -> Result<bool, openssl::error::ErrorStack> {
        let mut verifier = Verifier::new(MessageDigest::sha256(), key)?;
        match alg {
            SignAlg::Ps256 => {
                verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
                verifier.set_rsa_pss_saltlen(RsaPssSaltlen::custom(SHA256_LEN as i32))?;
                verifier.set_rsa_mgf1_md(MessageDigest::sha256())?;
            }
            SignAlg::Rs256 => verifier.set_rsa_padding(Padding::PKCS1)?,
        }
        verifier.update(message)?;
        verifier.verify(signature)
    };
    attempt().unwrap_or(false)
}

/// The RSA modulus and exponent, base64url, as a JWK carries them.
pub(crate) fn rsa_components<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<(String, String)> {
    let rsa = key.rsa()?;
    Ok((b64url(&rsa.n().to_vec()), b64url(&rsa.e().to_vec())))
}

/// Builds a self-signed certificate like Key Vault's "Self" issuer does: leaf, RSA,
/// digitalSignature + keyEncipherment, client and server auth.
pub(crate) fn self_signed_certificate(
    key: &PKey<Private>,
    subject_cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", subject_cn)?;
    let name = name.build();

    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;

    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    builder.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(key)?;
    builder.set_not_before(Asn1Time::from_unix(not_before.unix_timestamp())?.as_ref())?;
    builder.set_not_after(Asn1Time::from_unix(not_after.unix_timestamp())?.as_ref())?;
    builder.append_extension(BasicConstraints::new().build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    builder.append_extension(ExtendedKeyUsage::new().client_auth().server_auth().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    builder.sign(key, MessageDigest::sha256())?;
    Ok(builder.build().to_der()?)
}

/// The public key inside a DER certificate.
pub(crate) fn certificate_public_key(der: &[u8]) -> Result<PKey<Public>> {
    Ok(X509::from_der(der)?.public_key()?)
}

/// The certificate's subject as `CN=…` (its common name), which is how the portal names an uploaded certificate.
pub(crate) fn certificate_subject(der: &[u8]) -> Result<String> {
    let cert = X509::from_der(der)?;
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map(|entry| entry.data().to_string())
        .transpose()?
        .unwrap_or_default();
    Ok(format!("CN={cn}"))
}

/// Why a compact JWT could not even be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtParseError {
    #[error("the token does not have three dot-separated parts")]
    Shape,
    #[error("a token part is not base64url")]
    Encoding,
    #[error("the token header or claims are not a JSON object")]
    Json,
}

/// A parsed, *unverified* compact JWS.
#[derive(Debug, Clone)]
pub(crate) struct Jwt {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `b64url(header).b64url(claims)`, exactly as received: the signature covers these bytes.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

impl Jwt {
    pub(crate) fn parse(token: &str) -> Result<Self, JwtParseError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtParseError::Shape);
        };
        let object = |part: &str| -> Result<Map<String, Value>, JwtParseError> {
            let bytes = b64url_decode(part).ok_or(JwtParseError::Encoding)?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(JwtParseError::Json),
            }
        };
        Ok(Self {
            header: object(h)?,
            claims: object(c)?,
            signing_input: format!("{h}.{c}"),
            signature: b64url_decode(s).ok_or(JwtParseError::Encoding)?,
        })
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim; JWTs may carry it as an integer or a float.
    pub(crate) fn claim_time(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
    }
}

/// Encodes and RS256-signs a JWT.
pub(crate) fn encode_jwt_rs256(key: &PKey<Private>, header: &Value, claims: &Value) -> Result<String> {
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign_message_rs256(key, signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64url(&signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_signatures_verify_as_message_signatures() {
        let key = generate_rsa().unwrap();
        let message = b"header.claims";
        let digest = sha256(message);
        for alg in [SignAlg::Ps256, SignAlg::Rs256] {
            let sig = sign_digest(&key, alg, &digest).unwrap();
            assert!(verify(&key, alg, message, &sig), "{alg:?}");
            assert!(!verify(&key, alg, b"other", &sig), "{alg:?}");
        }
        let ps = sign_digest(&key, SignAlg::Ps256, &digest).unwrap();
        assert!(!verify(&key, SignAlg::Rs256, message, &ps));
    }

    #[test]
    fn jwt_round_trip_and_rejects_garbage() {
        let key = generate_rsa().unwrap();
        let token = encode_jwt_rs256(
            &key,
            &serde_json::json!({"alg":"RS256","typ":"JWT"}),
            &serde_json::json!({"exp": 5, "nbf": 1.5}),
        )
        .unwrap();
        let jwt = Jwt::parse(&token).unwrap();
        assert_eq!(jwt.header_str("alg"), Some("RS256"));
        assert_eq!(jwt.claim_time("exp"), Some(5));
        assert_eq!(jwt.claim_time("nbf"), Some(1));
        assert!(verify(
            &key,
            SignAlg::Rs256,
            jwt.signing_input.as_bytes(),
            &jwt.signature
        ));
        assert_eq!(Jwt::parse("a.b").unwrap_err(), JwtParseError::Shape);
        assert_eq!(Jwt::parse("a.b.c.d").unwrap_err(), JwtParseError::Shape);
        assert_eq!(Jwt::parse("!!.e30.").unwrap_err(), JwtParseError::Encoding);
        assert_eq!(Jwt::parse("W10.e30.").unwrap_err(), JwtParseError::Json);
    }

    #[test]
    fn certificate_carries_the_key() {
        let key = generate_rsa().unwrap();
        let now = OffsetDateTime::now_utc();
        let der = self_signed_certificate(&key, "test", now, now + time::Duration::days(1)).unwrap();
        let public = certificate_public_key(&der).unwrap();
        assert!(public.public_eq(&key));
    }
}
