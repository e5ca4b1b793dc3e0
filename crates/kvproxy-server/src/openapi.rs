//! The OpenAPI 3.1 document behind `/openapi.json` and the Swagger page.

use crate::routes::{dotnet, misc, msi, oauth2, profiles};
use crate::state::HttpState;
use axum::Json;
use axum::extract::State;
use kvproxy_core::Cloud;
use std::sync::LazyLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
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
    modifiers(&SecuritySchemes, &ProblemResponses),
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

/// What the guard and the body extractors answer on every route, documented once here instead of on each
/// handler, and every problem document under the media type it is served with (`application/problem+json`,
/// RFC 9457). OAuth2's own errors stay `application/json`, as RFC 6749 has them.
struct ProblemResponses;

const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                add_guard_responses(operation);
                for (status, response) in operation.responses.responses.iter_mut() {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let RefOr::T(response) = response else { continue };
                    let is_problem = response.content.get("application/json").is_some_and(|content| {
                        matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                    });
                    if is_problem && let Some(content) = response.content.shift_remove("application/json") {
                        response.content.insert(PROBLEM_MEDIA_TYPE.into(), content);
                    }
                }
            }
        }
    }
}

fn add_guard_responses(operation: &mut Operation) {
    let mut add = |status: &str, description: &str| {
        operation.responses.responses.entry(status.into()).or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(PROBLEM_MEDIA_TYPE, Content::new(Some(Ref::from_schema_name("Problem"))))
                .build()
                .into()
        });
    };
    add(
        "403",
        "`Host` is not localhost (DNS rebinding) or `Origin` is a foreign web page (CSRF)",
    );
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    if json_body {
        add("413", "The body is over 64 KiB");
        add("415", "The body was not sent as `Content-Type: application/json`");
    }
}

/// The document as this server is configured now: the vaults the .NET routes accept depend on the custom
/// clouds of the saved profiles (the demo tenant's among them).
pub async fn document(State(state): State<HttpState>) -> Json<utoipa::openapi::OpenApi> {
    Json(document_for(state.app.profiles().custom_clouds()))
}

/// What every document has in common, made once.
static BASE: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The document for a server whose saved profiles name the custom clouds `custom`.
pub fn document_for(custom: &[Cloud]) -> utoipa::openapi::OpenApi {
    let mut openapi = BASE.clone();
    set_dotnet_field_patterns(&mut openapi, custom);
    openapi
}

/// The .NET routes' field patterns on their request schemas (`KvKeyRequest`, …).
fn set_dotnet_field_patterns(openapi: &mut utoipa::openapi::OpenApi, custom: &[Cloud]) {
    use utoipa::openapi::schema::Schema;
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let patterns = dotnet::field_patterns(custom);
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        if !(name.starts_with("Kv") && name.ends_with("Request")) {
            continue;
        }
        for (field, pattern) in &patterns {
            if let Some(RefOr::T(Schema::Object(property))) = object.properties.get_mut(*field) {
                property.pattern = Some(pattern.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproxy_core::{CloudName, CustomCloud};

    fn key_vault_uri_pattern(doc: &utoipa::openapi::OpenApi) -> String {
        let value = serde_json::to_value(doc).unwrap();
        value["components"]["schemas"]["KvKeyInfoRequest"]["properties"]["keyVaultUri"]["pattern"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn custom_cloud_vaults_are_documented_only_when_a_profile_names_the_cloud() {
        let azure_only = key_vault_uri_pattern(&document_for(&[]));
        assert!(azure_only.contains(r"vault\.azure\.net"), "{azure_only}");
        assert!(!azure_only.contains("localhost"), "{azure_only}");
        let demo = Cloud {
            name: CloudName::Custom,
            custom: Some(CustomCloud {
                authority_host: "https://login.localhost:5617".into(),
                vault_suffixes: vec!["vault.localhost".into()],
                ca_file: None,
            }),
        };
        let with_demo = key_vault_uri_pattern(&document_for(&[demo]));
        assert!(with_demo.contains(r"vault\.localhost):"), "{with_demo}");
    }
}
