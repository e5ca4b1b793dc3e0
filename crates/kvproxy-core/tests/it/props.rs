//! Property tests for the engine's parsers of untrusted input: Entra's error bodies, thumbprints and key ids,
//! JWT headers, key info from the keyring, and `profiles.toml`. Each runs `PROPTEST_CASES` cases (256 by
//! default); `make fuzz` runs the same properties with many more.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kvproxy_core::entra::{hint_for, parse_error};
use kvproxy_core::{
    CloudName, CredentialSource, CustomCloud, Error, KeyId, KeyInfo, Profile, ProfileFile, ProfileStore,
    SigningAlgorithm, SigningKey, Thumbprints, decode_claims, decode_header,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha1::Digest;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Text that parsers meet in the wild: mostly printable, with unicode, controls, quotes and line breaks.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,40}",
        2 => "[ -~]{0,40}",
        1 => "[\\x00-\\x1f\"'\\\\\\n\\r\\t=\\[\\]{}#]{0,12}",
        1 => Just(String::new()),
        1 => (0usize..5000).prop_map(|n| "é".repeat(n)),
    ]
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

// ---------------------------------------------------------------------------------------------------------
// 1. Entra's error answers.

/// A member of an Entra error body: the right type most of the time, any JSON value otherwise.
fn maybe_wrong(right: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    let wrong = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!({"nested": [1, "two"]})),
        Just(json!([])),
    ];
    prop_oneof![
        6 => right.prop_map(Some),
        1 => Just(None),
        1 => wrong.prop_map(Some),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct EntraBody {
    error: Option<Value>,
    description: Option<Value>,
    codes: Option<Value>,
    trace_id: Option<Value>,
    correlation_id: Option<Value>,
    extra: Option<(String, Value)>,
    /// A member written twice, which serde refuses like any other malformed body.
    duplicate: Option<usize>,
}

impl EntraBody {
    fn members(&self) -> Vec<(String, Value)> {
        let named = [
            ("error", &self.error),
            ("error_description", &self.description),
            ("error_codes", &self.codes),
            ("trace_id", &self.trace_id),
            ("correlation_id", &self.correlation_id),
        ];
        let mut members: Vec<(String, Value)> = named
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
            .collect();
        if let Some(i) = self.duplicate
            && !members.is_empty()
        {
            let twice = members[i % members.len()].clone();
            members.push(twice);
        }
        // Last, and never repeated: serde ignores unknown members, repeated or not.
        members.extend(self.extra.clone());
        members
    }

    /// Written by hand so a member can appear twice, which `serde_json::Map` cannot hold.
    fn to_bytes(&self) -> Vec<u8> {
        let members: Vec<String> = self
            .members()
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
            .collect();
        format!("{{{}}}", members.join(",")).into_bytes()
    }

    /// Whether serde can read this into the error body: every present member of the right type, no duplicate.
    fn well_formed(&self) -> bool {
        let string_or_null = |v: &Option<Value>| matches!(v, None | Some(Value::String(_)) | Some(Value::Null));
        let string = |v: &Option<Value>| matches!(v, None | Some(Value::String(_)));
        let codes = match &self.codes {
            None => true,
            Some(Value::Array(items)) => items
                .iter()
                .all(|c| c.as_u64().is_some_and(|c| u32::try_from(c).is_ok())),
            Some(_) => false,
        };
        let known = [
            &self.error,
            &self.description,
            &self.codes,
            &self.trace_id,
            &self.correlation_id,
        ];
        let duplicate = self.duplicate.is_some() && known.iter().any(|m| m.is_some());
        string(&self.error)
            && string(&self.description)
            && codes
            && string_or_null(&self.trace_id)
            && string_or_null(&self.correlation_id)
            && !duplicate
    }
}

fn entra_description() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), nasty_text(), nasty_text())
            .prop_map(|(code, text, tail)| format!("AADSTS{code}: {text}\r\nTrace ID: {tail} Correlation ID: x")),
        (any::<u64>(), nasty_text()).prop_map(|(code, text)| format!("AADSTS{code}{text}")),
        nasty_text().prop_map(|text| format!("{text} Trace ID: abc")),
        nasty_text(),
    ]
}

fn entra_body() -> impl Strategy<Value = EntraBody> {
    let error = prop_oneof![
        Just("invalid_client".to_string()),
        Just("invalid_scope".to_string()),
        Just("temporarily_unavailable".to_string()),
        nasty_text(),
    ]
    .prop_map(Value::from)
    .boxed();
    let codes = prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec![700016u64, 700027, 700024, 90002, 500011, 70011, 50013]).prop_map(Value::from),
            2 => any::<u32>().prop_map(Value::from),
            1 => Just(Value::from(u64::from(u32::MAX) + 1)),
            1 => Just(Value::from(-1)),
            1 => Just(Value::from("700027")),
        ],
        0..4,
    )
    .prop_map(Value::from)
    .boxed();
    let id = nasty_text().prop_map(Value::from).boxed();
    (
        maybe_wrong(error),
        maybe_wrong(entra_description().prop_map(Value::from).boxed()),
        maybe_wrong(codes),
        maybe_wrong(id.clone()),
        maybe_wrong(id),
        prop::option::of(("[a-z_]{1,12}", any::<i32>().prop_map(Value::from))),
        prop::option::weighted(0.1, any::<usize>()),
    )
        .prop_map(
            |(error, description, codes, trace_id, correlation_id, extra, duplicate)| EntraBody {
                error,
                description,
                codes,
                trace_id,
                correlation_id,
                // An extra member named like a real one would be a duplicate; keep those apart.
                extra: extra.filter(|(k, _)| {
                    ![
                        "error",
                        "error_description",
                        "error_codes",
                        "trace_id",
                        "correlation_id",
                    ]
                    .contains(&k.as_str())
                }),
                duplicate,
            },
        )
}

proptest! {
    /// Any bytes at all, any status: a typed error comes back, never a panic.
    #[test]
    fn entra_error_parser_never_panics_on_bytes(status in 0u16..1000, body in prop::collection::vec(any::<u8>(), 0..600)) {
        let e = parse_error(status, &body);
        prop_assert_eq!(e.status, status);
        prop_assert!(!e.error.is_empty());
        prop_assert!(!e.to_string().is_empty());
        prop_assert!(!e.summary().is_empty());
    }

    /// Bodies shaped like Entra's, with members dropped, duplicated, of the wrong type or full of odd text:
    /// a well-formed one is read member by member (first line of the description, first AADSTS code), anything
    /// else is an `unexpected_response` that still says the status.
    #[test]
    fn entra_error_parser_reads_near_valid_bodies(status in 400u16..600, body in entra_body()) {
        let e = parse_error(status, &body.to_bytes());
        prop_assert_eq!(e.status, status);
        let error = body.error.as_ref().and_then(Value::as_str).unwrap_or_default();
        if body.well_formed() && !error.is_empty() {
            prop_assert_eq!(&e.error, error);
            prop_assert!(!e.description.contains('\n'), "one line: {:?}", e.description);
            prop_assert!(!e.description.contains(" Trace ID:"), "trace ids cut off: {:?}", e.description);
            let first_code = body.codes.as_ref().and_then(|c| c.get(0)).and_then(Value::as_u64);
            match first_code {
                Some(code) => prop_assert_eq!(e.code.map(u64::from), Some(code)),
                None => {
                    if let Some(code) = e.code {
                        prop_assert!(e.description.starts_with(&format!("AADSTS{code}")), "{:?}", e);
                    }
                }
            }
            prop_assert_eq!(e.trace_id.as_deref(), body.trace_id.as_ref().and_then(Value::as_str));
            prop_assert_eq!(e.correlation_id.as_deref(), body.correlation_id.as_ref().and_then(Value::as_str));
            prop_assert_eq!(e.hint, hint_for(e.code, &e.error));
        } else {
            prop_assert_eq!(e.error.as_str(), "unexpected_response");
            prop_assert_eq!(e.code, None);
            prop_assert!(e.description.contains(&status.to_string()));
        }
    }

    /// An AADSTS code in the description is found when `error_codes` is missing, and one too large for a
    /// `u32` is no code rather than a wrong one.
    #[test]
    fn entra_error_code_from_description(code in any::<u64>(), rest in "[^0-9].{0,20}") {
        let body = json!({"error": "invalid_request", "error_description": format!("AADSTS{code}{rest}")});
        let e = parse_error(400, body.to_string().as_bytes());
        prop_assert_eq!(e.code, u32::try_from(code).ok());
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Thumbprints, JWT headers and key ids.

fn vault_host() -> impl Strategy<Value = String> {
    (
        // An `xn--` label must be valid punycode, which random letters are not.
        "[a-z0-9][a-z0-9-]{1,22}[a-z0-9]".prop_filter("no punycode label", |n| !n.starts_with("xn--")),
        prop::sample::select(vec![
            "vault.azure.net",
            "vault.usgovcloudapi.net",
            "managedhsm.azure.cn",
        ]),
    )
        .prop_map(|(name, suffix)| format!("{name}.{suffix}"))
}

fn key_id_of(host: &str, name: &str, version: &str) -> String {
    format!("https://{host}/keys/{name}/{version}")
}

fn signing_key(key_id: String) -> SigningKey {
    SigningKey {
        key_id,
        thumbprints: Thumbprints::of_der(b"der"),
        name: "c".into(),
    }
}

/// How a valid key id is broken: the parser must refuse each of these.
fn broken_key_id() -> impl Strategy<Value = String> {
    let parts = (vault_host(), "[0-9A-Za-z-]{1,40}", "[0-9a-f]{32}");
    // No '?', '#', '.' or '%' in the junk: a query, a fragment or a dot segment would shorten the path.
    (parts, 0usize..7, "[^?#.%/\\\\]{0,12}").prop_map(|((host, name, version), how, junk)| match how {
        0 => format!("https://{host}/keys/{name}"),
        1 => format!("https://{host}/keys/{name}/{version}/extra"),
        2 => format!("https://{host}/secrets/{name}/{version}"),
        3 => format!("https://{host}/keys//{version}"),
        4 => format!("https://{host}/"),
        5 => format!("{host}/keys/{name}/{version}"),
        _ => format!("https://{host}/keys/{name}/{version}/{junk}/x"),
    })
}

fn offset_date_time() -> impl Strategy<Value = OffsetDateTime> {
    // Years 1..=9999: what RFC 3339 can write.
    (-62_135_596_800i64..253_402_300_799).prop_map(|t| OffsetDateTime::from_unix_timestamp(t).expect("in range"))
}

fn key_info() -> impl Strategy<Value = KeyInfo> {
    (
        (nasty_text(), nasty_text(), nasty_text(), nasty_text()),
        (prop::collection::vec(any::<u8>(), 0..64), nasty_text()),
        (offset_date_time(), offset_date_time()),
    )
        .prop_map(
            |((vault_url, certificate, key_id, certificate_version), (der, subject), (not_before, expires))| KeyInfo {
                vault_url,
                certificate,
                key_id,
                certificate_version,
                thumbprints: Thumbprints::of_der(&der),
                subject,
                not_before,
                expires,
            },
        )
}

proptest! {
    /// The thumbprints of any DER are unpadded base64url of its SHA-1 and SHA-256, and the portal's hex
    /// spelling is the SHA-1 in upper case.
    #[test]
    fn thumbprints_of_any_der_are_base64url_digests(der in prop::collection::vec(any::<u8>(), 0..4096)) {
        let tp = Thumbprints::of_der(&der);
        let sha1 = sha1::Sha1::digest(&der);
        let sha256 = sha2::Sha256::digest(&der);
        prop_assert_eq!(tp.sha1.len(), 27);
        prop_assert_eq!(tp.sha256.len(), 43);
        prop_assert_eq!(URL_SAFE_NO_PAD.decode(&tp.sha1).expect("x5t decodes"), sha1.to_vec());
        prop_assert_eq!(URL_SAFE_NO_PAD.decode(&tp.sha256).expect("x5t#S256 decodes"), sha256.to_vec());
        prop_assert_eq!(tp.sha1_hex(), upper_hex(&sha1));
    }

    /// A thumbprint read back from the keyring may be anything: its hex form is empty or the hex of what
    /// it decodes to, never a panic.
    #[test]
    fn thumbprint_hex_of_any_text(text in nasty_text()) {
        let tp = Thumbprints { sha1: text.clone(), sha256: text.clone() };
        let hex = tp.sha1_hex();
        match URL_SAFE_NO_PAD.decode(&text) {
            Ok(bytes) => prop_assert_eq!(hex, upper_hex(&bytes)),
            Err(_) => prop_assert_eq!(hex, ""),
        }
    }

    /// JWT parts are decoded without trusting them: arbitrary text is `None` or JSON, never a panic, and a
    /// header with `x5t` / `x5t#S256` of any text reads back unchanged.
    #[test]
    fn jwt_header_x5t_round_trip(
        x5t in prop::option::of(nasty_text()),
        x5t_s256 in prop::option::of(nasty_text()),
        alg in prop::sample::select(vec!["PS256", "RS256", ""]),
        junk in ".{0,80}",
    ) {
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(x5t) = &x5t { header["x5t"] = Value::from(x5t.as_str()); }
        if let Some(s256) = &x5t_s256 { header["x5t#S256"] = Value::from(s256.as_str()); }
        let claims = json!({"aud": junk, "exp": 1});
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let jwt = format!("{}.{}.{}", b64(&header), b64(&claims), URL_SAFE_NO_PAD.encode(junk.as_bytes()));
        prop_assert_eq!(decode_header(&jwt), Some(header));
        prop_assert_eq!(decode_claims(&jwt), Some(claims));
        // The junk as a whole token, and as each part.
        let _ = (decode_header(&junk), decode_claims(&junk));
        let spliced = format!("{junk}.{junk}.{junk}");
        let _ = (decode_header(&spliced), decode_claims(&spliced));
    }

    /// Key ids from Key Vault (`kid`) and from callers: a versioned key id splits into its name and version,
    /// every broken one is a certificate error, and arbitrary text never panics.
    #[test]
    fn key_id_parser_accepts_versioned_ids_only(
        host in vault_host(),
        name in "[0-9A-Za-z-]{1,127}",
        version in "[0-9A-Za-z]{1,64}",
        trailing_slash in any::<bool>(),
        broken in broken_key_id(),
        junk in ".{0,200}",
    ) {
        let mut id = key_id_of(&host, &name, &version);
        if trailing_slash { id.push('/'); }
        let parsed = signing_key(id).parsed_key_id().expect("a versioned key id");
        prop_assert_eq!((parsed.name(), parsed.version()), (name.as_str(), version.as_str()));
        // Printed back, it parses to the same id (the one spelling the token cache keys on).
        prop_assert_eq!(KeyId::parse(&parsed.to_string()), Ok(parsed.clone()));
        let refused = signing_key(broken.clone()).parsed_key_id();
        prop_assert!(matches!(refused, Err(Error::Certificate(_))), "{broken:?} gave {refused:?}");
        if let Ok(id) = KeyId::parse(&junk) {
            prop_assert!(!id.name().is_empty() && !id.version().is_empty());
            prop_assert!(!id.name().contains('/') && !id.version().contains('/'));
        }
    }

    /// Key info as the keyring stores it: any key info reads back equal, and whatever text the keyring
    /// returns is read or refused without a panic.
    #[test]
    fn key_info_json_round_trip(info in key_info(), junk in ".{0,200}", cut in any::<prop::sample::Index>()) {
        let text = serde_json::to_string(&info).expect("key info serialises");
        let back: KeyInfo = serde_json::from_str(&text).expect("key info reads back");
        prop_assert_eq!(&back, &info);
        let _ = serde_json::from_str::<KeyInfo>(&junk);
        let at = cut.index(text.len() + 1);
        if text.is_char_boundary(at) {
            prop_assert!(serde_json::from_str::<KeyInfo>(&text[..at]).is_err() || at == text.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. profiles.toml.

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// The last label starts with a letter: an all-digit one would make the host an IPv4 address.
fn domain() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,2}\\.[a-z][a-z0-9]{1,5}"
}

/// A profile that `resolve` must accept.
fn valid_profile() -> impl Strategy<Value = Profile> {
    let cloud = prop_oneof![
        Just((CloudName::Public, None, "vault.azure.net".to_string())),
        Just((CloudName::UsGov, None, "vault.usgovcloudapi.net".to_string())),
        Just((CloudName::China, None, "managedhsm.azure.cn".to_string())),
        (domain(), prop::option::of("[ -~é]{1,30}")).prop_map(|(suffix, ca)| {
            let custom = CustomCloud {
                authority_host: "https://login.example.test/".into(),
                vault_suffixes: vec![suffix.clone()],
                ca_file: ca.map(Into::into),
            };
            (CloudName::Custom, Some(custom), suffix)
        }),
    ];
    let credential = prop::sample::select(vec![
        CredentialSource::Auto,
        CredentialSource::AzureCli,
        CredentialSource::Azd,
        CredentialSource::ManagedIdentity,
        CredentialSource::ServicePrincipal,
        CredentialSource::WorkloadIdentity,
    ]);
    (
        ("[A-Za-z0-9][A-Za-z0-9._-]{0,63}", prop_oneof![guid(), domain()], guid()),
        (cloud, "[a-z0-9][a-z0-9-]{1,22}[a-z0-9]", "[A-Za-z0-9-]{1,127}"),
        prop::collection::vec("[!-~]{1,30}/\\.default", 1..4),
        (
            prop::sample::select(vec![SigningAlgorithm::PS256, SigningAlgorithm::RS256]),
            credential,
        ),
    )
        // An `xn--` label must be valid punycode, which random letters are not.
        .prop_filter("no punycode labels", |(_, ((_, _, suffix), vault, _), _, _)| {
            !vault.starts_with("xn--") && !suffix.contains("xn--")
        })
        .prop_map(
            |(
                (name, tenant, client_id),
                ((cloud, custom_cloud, suffix), vault, certificate),
                scopes,
                (algorithm, credential),
            )| {
                Profile {
                    name,
                    tenant,
                    client_id,
                    vault_url: format!("https://{vault}.{suffix}/"),
                    certificate,
                    scopes,
                    algorithm,
                    cloud,
                    custom_cloud,
                    credential,
                    confirm: false,
                }
            },
        )
}

/// A profile of arbitrary text: not valid, but the file must still carry it faithfully.
fn any_profile() -> impl Strategy<Value = Profile> {
    (
        (nasty_text(), nasty_text(), nasty_text(), nasty_text(), nasty_text()),
        prop::collection::vec(nasty_text(), 0..3),
        prop::option::of((
            nasty_text(),
            prop::collection::vec(nasty_text(), 0..3),
            prop::option::of(nasty_text()),
        )),
        (
            prop::sample::select(vec![SigningAlgorithm::PS256, SigningAlgorithm::RS256]),
            prop::sample::select(vec![
                CloudName::Public,
                CloudName::UsGov,
                CloudName::China,
                CloudName::Custom,
            ]),
            prop::sample::select(vec![
                CredentialSource::Auto,
                CredentialSource::Emulator,
                CredentialSource::Azd,
            ]),
        ),
    )
        .prop_map(
            |((name, tenant, client_id, vault_url, certificate), scopes, custom, (algorithm, cloud, credential))| {
                Profile {
                    name,
                    tenant,
                    client_id,
                    vault_url,
                    certificate,
                    scopes,
                    algorithm,
                    cloud,
                    custom_cloud: custom.map(|(authority_host, vault_suffixes, ca)| CustomCloud {
                        authority_host,
                        vault_suffixes,
                        ca_file: ca.map(Into::into),
                    }),
                    credential,
                    confirm: false,
                }
            },
        )
}

fn file_of(profiles: Vec<Profile>, default: Option<String>) -> ProfileFile {
    let profiles: BTreeMap<String, Profile> = profiles.into_iter().map(|p| (p.name.clone(), p)).collect();
    ProfileFile { default, profiles }
}

/// Every field name a profile check may report.
const PROFILE_FIELDS: [&str; 11] = [
    "name",
    "tenant",
    "client_id",
    "vault_url",
    "certificate",
    "scopes",
    "cloud",
    "custom_cloud.authority_host",
    "custom_cloud.vault_suffixes",
    "credential",
    "profile",
];

/// A valid document broken one way: a line dropped, repeated or cut, a value of the wrong type, odd text.
fn mutated_toml() -> impl Strategy<Value = String> {
    let base = prop::collection::vec(valid_profile(), 1..3).prop_map(|profiles| {
        let default = profiles.first().map(|p| p.name.clone());
        file_of(profiles, default).to_toml().expect("a valid file serialises")
    });
    let junk_value = prop_oneof![
        Just("42".to_string()),
        Just("true".to_string()),
        Just("[1, \"two\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"unterminated".to_string()),
        Just("'''".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        nasty_text().prop_map(|t| format!("{t:?}")),
        nasty_text(),
    ];
    (base, any::<prop::sample::Index>(), 0usize..6, junk_value, nasty_text()).prop_map(
        |(text, at, how, value, noise)| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let i = at.index(lines.len());
            match how {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                2 => {
                    if let Some((key, _)) = lines[i].split_once(" = ") {
                        lines[i] = format!("{key} = {value}");
                    }
                }
                3 => {
                    let line = &lines[i];
                    let cut = at.index(line.chars().count() + 1);
                    lines[i] = line.chars().take(cut).collect();
                }
                4 => {
                    let line = &lines[i];
                    let cut = at.index(line.chars().count() + 1);
                    let (head, tail): (String, String) =
                        (line.chars().take(cut).collect(), line.chars().skip(cut).collect());
                    lines[i] = format!("{head}{noise}{tail}");
                }
                _ => lines.insert(i, noise),
            }
            lines.join("\n")
        },
    )
}

proptest! {
    /// Any text as profiles.toml: parsed or refused with a one-line reason, never a panic; every profile read
    /// is named after its table and checking it names only known fields.
    #[test]
    fn profiles_toml_never_panics(text in prop_oneof![".{0,400}", mutated_toml()]) {
        match ProfileFile::parse(&text) {
            Ok(file) => {
                for (name, profile) in &file.profiles {
                    prop_assert_eq!(name, &profile.name);
                    if let Err(e) = profile.resolve() {
                        let fields = e.field_errors();
                        prop_assert!(fields.is_some(), "not a field error: {e}");
                        for f in fields.into_iter().flat_map(|f| f.as_slice()) {
                            prop_assert!(PROFILE_FIELDS.contains(&f.field), "unknown field {}", f.field);
                            prop_assert!(!f.message.is_empty());
                        }
                    }
                }
            }
            Err(message) => prop_assert!(!message.trim().is_empty()),
        }
    }

    /// Valid profiles are accepted, and resolving is idempotent: a resolved profile resolves to itself.
    #[test]
    fn profiles_valid_ones_resolve(profile in valid_profile()) {
        let resolved = profile.resolve().expect("a valid profile resolves").into_profile();
        let again = resolved.resolve().expect("a resolved profile resolves").into_profile();
        prop_assert_eq!(again, resolved);
    }

    /// Written and read back, any document (even of invalid profiles full of odd text) is equal, and a valid
    /// profile saved through the store comes back as its resolved form.
    #[test]
    fn profiles_toml_round_trip(
        valid in prop::collection::vec(valid_profile(), 1..3),
        odd in prop::collection::vec(any_profile(), 0..3),
        default in prop::option::of(nasty_text()),
    ) {
        let file = file_of(valid.iter().cloned().chain(odd).collect(), default);
        let text = file.to_toml().expect("any file serialises");
        let back = ProfileFile::parse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&back.default, &file.default);
        prop_assert_eq!(&back.profiles, &file.profiles);

        let dir = tempfile::tempdir().expect("tempdir");
        let store = ProfileStore::new(dir.path().join("profiles.toml"));
        let profile = valid[0].clone();
        store.upsert(profile.clone(), false).expect("a valid profile is saved");
        let expected = profile.resolve().expect("valid").into_profile();
        prop_assert_eq!(store.get(&profile.name).expect("saved profile reads back"), expected);
    }
}
