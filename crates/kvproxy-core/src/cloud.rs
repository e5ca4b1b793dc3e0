//! Which Azure cloud a profile lives in. The cloud decides where tokens are requested and, just as
//! important for safety, which hosts a vault URL may point at: a profile must never make us send a Key
//! Vault bearer token or a signing request to an arbitrary host.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use strum::{EnumString, IntoStaticStr, VariantNames};
use url::Url;

/// The Azure clouds a profile can target.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, EnumString, IntoStaticStr, VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", ascii_case_insensitive)]
pub enum CloudName {
    #[default]
    #[strum(to_string = "public", serialize = "azure", serialize = "azurecloud")]
    Public,
    #[strum(to_string = "us-gov", serialize = "usgov", serialize = "azureusgovernment")]
    UsGov,
    #[strum(to_string = "china", serialize = "azurechinacloud")]
    China,
    /// Azure Stack or any other sovereign deployment; also the local emulator (`kvproxy demo`).
    Custom,
}

impl CloudName {
    pub fn parse(value: &str) -> Result<Self> {
        value.trim().parse().map_err(|_| {
            Error::invalid(
                "cloud",
                format!("unknown cloud '{value}'; use one of {}", Self::VARIANTS.join(", ")),
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Endpoints of a custom cloud. For the emulator, `ca_file` is its CA certificate (public part only),
/// trusted for this cloud's connections and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CustomCloud {
    pub authority_host: String,
    /// Host suffixes a vault URL may use, such as `vault.local.azurestack.external`.
    pub vault_suffixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The host suffix of the local emulator's vaults (`NAME.vault.localhost`).
pub const EMULATOR_VAULT_SUFFIX: &str = "vault.localhost";

impl CustomCloud {
    /// The local emulator (`kvproxy-emulator`) at `authority_host` (`https://login.localhost:PORT`), trusted
    /// through its CA certificate `ca_file` for this cloud's connections only.
    pub fn emulator(authority_host: impl Into<String>, ca_file: impl Into<PathBuf>) -> Self {
        Self {
            authority_host: authority_host.into(),
            vault_suffixes: vec![EMULATOR_VAULT_SUFFIX.into()],
            ca_file: Some(ca_file.into()),
        }
    }
}

/// A resolved cloud: name plus, for custom clouds, its endpoints.
/// The host suffixes of Key Vault and Managed HSM in each Azure cloud: the vault-host allowlist, and the
/// source of the API's documented vault URL patterns.
pub const AZURE_VAULT_SUFFIXES: [(CloudName, &[&str]); 3] = [
    (CloudName::Public, &["vault.azure.net", "managedhsm.azure.net"]),
    (
        CloudName::UsGov,
        &["vault.usgovcloudapi.net", "managedhsm.usgovcloudapi.net"],
    ),
    (CloudName::China, &["vault.azure.cn", "managedhsm.azure.cn"]),
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cloud {
    pub name: CloudName,
    pub custom: Option<CustomCloud>,
}

impl Cloud {
    pub fn public() -> Self {
        Self {
            name: CloudName::Public,
            custom: None,
        }
    }

    pub fn new(name: CloudName, custom: Option<CustomCloud>) -> Result<Self> {
        match (name, custom) {
            (CloudName::Custom, None) => Err(Error::invalid(
                "cloud",
                "a custom cloud needs custom_cloud.authority_host and custom_cloud.vault_suffixes",
            )),
            (CloudName::Custom, Some(custom)) => {
                let authority = Url::parse(&custom.authority_host)
                    .map_err(|e| Error::invalid("custom_cloud.authority_host", format!("not a URL: {e}")))?;
                if authority.scheme() != "https" {
                    return Err(Error::invalid(
                        "custom_cloud.authority_host",
                        "must start with https:// (tokens never travel over plain HTTP)",
                    ));
                }
                if custom.vault_suffixes.is_empty()
                    || custom.vault_suffixes.iter().any(|s| s.trim_matches('.').is_empty())
                {
                    return Err(Error::invalid(
                        "custom_cloud.vault_suffixes",
                        "list at least one vault host suffix, e.g. vault.local.azurestack.external",
                    ));
                }
                Ok(Self {
                    name,
                    custom: Some(custom),
                })
            }
            (name, _) => Ok(Self { name, custom: None }),
        }
    }

    /// Base URL of the Entra ID authority, without a trailing slash.
    pub fn authority_host(&self) -> String {
        match (&self.name, &self.custom) {
            (CloudName::Public, _) => "https://login.microsoftonline.com".into(),
            (CloudName::UsGov, _) => "https://login.microsoftonline.us".into(),
            (CloudName::China, _) => "https://login.chinacloudapi.cn".into(),
            (CloudName::Custom, Some(c)) => c.authority_host.trim_end_matches('/').to_string(),
            (CloudName::Custom, None) => String::new(),
        }
    }

    /// The token endpoint an assertion is audienced for and posted to.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority_host())
    }

    /// Host suffixes a vault URL may end with (Key Vault and Managed HSM).
    pub fn vault_suffixes(&self) -> Vec<String> {
        let list: &[&str] = match AZURE_VAULT_SUFFIXES.iter().find(|(name, _)| *name == self.name) {
            Some((_, suffixes)) => suffixes,
            None => {
                return self
                    .custom
                    .as_ref()
                    .map(|c| {
                        c.vault_suffixes
                            .iter()
                            .map(|s| s.trim_matches('.').to_string())
                            .collect()
                    })
                    .unwrap_or_default();
            }
        };
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Checks that `vault_url` is an https URL of a vault in this cloud and returns it normalised
    /// (`https://host[:port]/`). Anything else is refused before a single byte is sent.
    pub fn check_vault_url(&self, vault_url: &str) -> Result<Url> {
        let field = "vault_url";
        let url = parse_vault_url(vault_url)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let suffixes = self.vault_suffixes();
        let allowed = suffixes.iter().any(|suffix| {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix.as_str())
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                && !host[..host.len() - suffix.len() - 1].contains('.')
        });
        if !allowed {
            return Err(Error::invalid(
                field,
                format!(
                    "host '{host}' is not a vault of the {} cloud (allowed: *.{}); fix the URL or the profile's cloud",
                    self.name.as_str(),
                    suffixes.join(", *.")
                ),
            ));
        }
        if url.port().is_some() && self.name != CloudName::Custom {
            return Err(Error::invalid(field, "Azure vault URLs have no port; remove it"));
        }
        let mut normalised = url.clone();
        normalised.set_path("/");
        Ok(normalised)
    }

    /// The cloud a vault URL belongs to: one of Azure's, or one of the given custom clouds. A URL that
    /// belongs to none is refused, which is what keeps ad-hoc requests on the allowlist.
    pub fn for_vault_url(vault_url: &str, custom: &[Cloud]) -> Result<(Cloud, Url)> {
        let azure = AZURE_VAULT_SUFFIXES.map(|(name, _)| Cloud { name, custom: None });
        // A malformed URL is wrong in every cloud: say what is wrong with it, not which clouds refused it.
        parse_vault_url(vault_url)?;
        for cloud in azure.iter().chain(custom) {
            if let Ok(url) = cloud.check_vault_url(vault_url) {
                return Ok((cloud.clone(), url));
            }
        }
        Err(Error::invalid(
            "vault_url",
            format!(
                "'{vault_url}' is not a Key Vault or Managed HSM URL of a known cloud (e.g. https://NAME.vault.azure.net/)"
            ),
        ))
    }

    /// The cloud configuration the Azure SDK credentials need.
    pub(crate) fn sdk_cloud(&self) -> azure_core::cloud::CloudConfiguration {
        use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
        match self.name {
            CloudName::Public => CloudConfiguration::AzurePublic,
            CloudName::UsGov => CloudConfiguration::AzureGovernment,
            CloudName::China => CloudConfiguration::AzureChina,
            CloudName::Custom => {
                let mut custom = CustomConfiguration::default();
                custom.authority_host = self.authority_host();
                CloudConfiguration::Custom(custom)
            }
        }
    }

    /// Base URL of this cloud's Microsoft Graph, without a trailing slash. `None` for a custom cloud other
    /// than the emulator: Azure Stack and the like have no Graph we could know of.
    pub fn graph_url(&self) -> Option<String> {
        match self.name {
            CloudName::Public => Some("https://graph.microsoft.com".into()),
            CloudName::UsGov => Some("https://graph.microsoft.us".into()),
            CloudName::China => Some("https://microsoftgraph.chinacloudapi.cn".into()),
            // The emulator serves Graph on its one HTTPS port, beside `login.localhost`.
            CloudName::Custom if self.is_emulator() => {
                let mut url = Url::parse(&self.authority_host()).ok()?;
                url.set_host(Some("graph.localhost")).ok()?;
                Some(url.as_str().trim_end_matches('/').to_string())
            }
            CloudName::Custom => None,
        }
    }

    /// The scope of a Microsoft Graph token of this cloud (its resource, without a port, + `/.default`).
    pub fn graph_scope(&self) -> Option<String> {
        let url = Url::parse(&self.graph_url()?).ok()?;
        Some(format!("https://{}/.default", url.host_str()?))
    }

    pub fn ca_file(&self) -> Option<&PathBuf> {
        self.custom.as_ref().and_then(|c| c.ca_file.as_ref())
    }

    /// True for the local emulator: its hosts live under `.localhost` (RFC 6761), which no real Azure
    /// cloud uses. Everything minted there is a demo token.
    pub fn is_emulator(&self) -> bool {
        self.name == CloudName::Custom
            && Url::parse(&self.authority_host())
                .ok()
                .and_then(|u| u.host_str().map(|h| h == "localhost" || h.ends_with(".localhost")))
                .unwrap_or(false)
    }
}

/// The checks a vault URL must pass in every cloud: a URL, https, the vault root and nothing else.
pub(crate) fn parse_vault_url(vault_url: &str) -> Result<Url> {
    let field = "vault_url";
    let url = Url::parse(vault_url.trim()).map_err(|e| {
        Error::invalid(
            field,
            format!("'{vault_url}' is not a URL ({e}); use https://NAME.vault.azure.net/"),
        )
    })?;
    if url.scheme() != "https" {
        return Err(Error::invalid(field, format!("'{vault_url}' must use https://")));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid(
            field,
            "give only https://NAME.vault.azure.net/ (no user, query or fragment)",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(Error::invalid(
            field,
            format!("'{vault_url}' has a path; give the vault root, e.g. https://NAME.vault.azure.net/"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_hoc_urls_are_told_what_is_wrong_with_their_shape_before_which_cloud() {
        let error = |url: &str| Cloud::for_vault_url(url, &[]).unwrap_err().to_string();
        assert!(
            error("http://v.vault.azure.net/").contains("must use https"),
            "{}",
            error("http://v.vault.azure.net/")
        );
        assert!(error("https://v.vault.azure.net/keys/k").contains("has a path"));
        assert!(error("https://v.example.com/").contains("not a Key Vault or Managed HSM URL of a known cloud"));
        let (cloud, url) = Cloud::for_vault_url("https://v.vault.usgovcloudapi.net", &[]).unwrap();
        assert_eq!(
            (cloud.name, url.as_str()),
            (CloudName::UsGov, "https://v.vault.usgovcloudapi.net/")
        );
    }

    #[test]
    fn vault_hosts_must_belong_to_the_cloud() {
        let public = Cloud::public();
        assert!(public.check_vault_url("https://contoso.vault.azure.net/").is_ok());
        assert!(public.check_vault_url("https://contoso.vault.azure.net").is_ok());
        assert!(public.check_vault_url("https://hsm1.managedhsm.azure.net/").is_ok());
        for bad in [
            "http://contoso.vault.azure.net/",
            "https://evil.example/",
            "https://contoso.vault.azure.net.evil.example/",
            "https://evilvault.azure.net/",
            "https://a.b.vault.azure.net/",
            "https://vault.azure.net/",
            "https://contoso.vault.azure.net/keys/x",
            "https://contoso.vault.azure.net:444/",
            "https://user@contoso.vault.azure.net/",
            "https://contoso.vault.usgovcloudapi.net/",
            "not a url",
        ] {
            let err = public.check_vault_url(bad).expect_err(bad);
            assert!(err.to_string().starts_with("vault_url:"), "{bad}: {err}");
        }
        let gov = Cloud::new(CloudName::UsGov, None).unwrap();
        assert!(gov.check_vault_url("https://x.vault.usgovcloudapi.net/").is_ok());
        assert!(gov.check_vault_url("https://x.vault.azure.net/").is_err());
    }

    #[test]
    fn custom_cloud_needs_https_authority_and_suffixes() {
        let custom = |a: &str, s: &[&str]| CustomCloud {
            authority_host: a.into(),
            vault_suffixes: s.iter().map(|s| s.to_string()).collect(),
            ca_file: None,
        };
        assert!(Cloud::new(CloudName::Custom, None).is_err());
        assert!(Cloud::new(CloudName::Custom, Some(custom("http://login.local", &["v.local"]))).is_err());
        assert!(Cloud::new(CloudName::Custom, Some(custom("https://login.local", &[]))).is_err());
        let emu = Cloud::new(
            CloudName::Custom,
            Some(custom("https://login.localhost:5617/", &["vault.localhost"])),
        )
        .unwrap();
        assert!(emu.is_emulator());
        assert_eq!(
            emu.token_endpoint("t"),
            "https://login.localhost:5617/t/oauth2/v2.0/token"
        );
        assert!(emu.check_vault_url("https://demo.vault.localhost:5617/").is_ok());
        assert!(!Cloud::public().is_emulator());
        assert_eq!(emu.graph_url().as_deref(), Some("https://graph.localhost:5617"));
        assert_eq!(emu.graph_scope().as_deref(), Some("https://graph.localhost/.default"));
        let stack = Cloud::new(
            CloudName::Custom,
            Some(custom("https://login.stack.local", &["v.local"])),
        )
        .unwrap();
        assert_eq!((stack.graph_url(), stack.graph_scope()), (None, None));
        let china = Cloud::new(CloudName::China, None).unwrap();
        assert_eq!(
            china.graph_scope().as_deref(),
            Some("https://microsoftgraph.chinacloudapi.cn/.default")
        );
    }
}
