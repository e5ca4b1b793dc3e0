//! The OpenAPI 3.1 document behind `/openapi.json` and the Swagger page.

use crate::routes::{dotnet, misc, msi, oauth2, profiles};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "KeyVault Proxy",
        description = "App-only Entra ID tokens signed by a Key Vault certificate whose private key never leaves the vault. \
Every token route needs the API key (`kvproxy api-key show`): click Authorize and paste it under `bearer`.",
        license(name = "MIT")
    ),
    paths(
        dotnet::kv_key, dotnet::kv_key_info, dotnet::kv_certificate,
        profiles::list, profiles::token,
        oauth2::token,
        msi::default_token, msi::profile_token,
        misc::activity, misc::health,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "dotnet-compatible", description = "The .NET Key Vault token proxy's routes and JSON fields"),
        (name = "profiles", description = "Tokens by profile name"),
        (name = "oauth2", description = "OAuth2 client credentials for Postman, Insomnia and Bruno"),
        (name = "managed-identity", description = "App Service managed-identity protocol for Azure SDKs"),
        (name = "meta", description = "Liveness and activity"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "identity_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-IDENTITY-HEADER"))),
        );
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}
