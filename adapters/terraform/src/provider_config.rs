//! The provider block: terraform-provider-openstack's setting names, plus the sandbox's own
//! settings, turned into a clouds.yaml cloud entry for the backend. The `OS_*` variables (the
//! settings' fallbacks, as terraform-provider-openstack reads them) and clouds.yaml are the
//! host's one cloud rule's, below the block: `openstack_image::cloud`.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::backend::CloudConfig;
use crate::diagnostics::{Path, Secrets};
use crate::proto::tfplugin6 as tf;
use crate::schema::{Mode, proto_attribute};
use crate::value::{Type, Value};
use openstack_image::image_cache::MaxSize;
use openstack_image_documents::cloud;

/// One provider setting.
struct Setting {
    name: &'static str,
    ty: fn() -> Type,
    sensitive: bool,
    description: &'static str,
}

fn text() -> Type {
    Type::String
}
fn flag() -> Type {
    Type::Bool
}
fn number() -> Type {
    Type::Number
}
fn hosts() -> Type {
    Type::List(Box::new(Type::String))
}

#[rustfmt::skip]
const SETTINGS: &[Setting] = &[
    Setting { name: "cloud", ty: text, sensitive: false, description: "Name of the cloud in clouds.yaml to start from." },
    Setting { name: "auth_url", ty: text, sensitive: false, description: "Keystone v3 URL." },
    Setting { name: "region", ty: text, sensitive: false, description: "Region to use." },
    Setting { name: "user_name", ty: text, sensitive: false, description: "User name to log in with." },
    Setting { name: "user_id", ty: text, sensitive: false, description: "User id to log in with." },
    Setting { name: "password", ty: text, sensitive: true, description: "Password to log in with." },
    Setting { name: "tenant_name", ty: text, sensitive: false, description: "Project name to scope to." },
    Setting { name: "tenant_id", ty: text, sensitive: false, description: "Project id to scope to." },
    Setting { name: "user_domain_name", ty: text, sensitive: false, description: "Domain of the user." },
    Setting { name: "project_domain_name", ty: text, sensitive: false, description: "Domain of the project." },
    Setting { name: "domain_name", ty: text, sensitive: false, description: "Domain of both the user and the project, where those are not given." },
    Setting { name: "application_credential_id", ty: text, sensitive: false, description: "Application credential id." },
    Setting { name: "application_credential_name", ty: text, sensitive: false, description: "Application credential name (with the user)." },
    Setting { name: "application_credential_secret", ty: text, sensitive: true, description: "Application credential secret." },
    Setting { name: "token", ty: text, sensitive: true, description: "An existing Keystone token." },
    Setting { name: "endpoint_type", ty: text, sensitive: false, description: "Catalog interface: public, internal or admin." },
    Setting { name: "cacert_file", ty: text, sensitive: false, description: "CA bundle (PEM file) to trust for the cloud's TLS." },
    Setting { name: "insecure", ty: flag, sensitive: false, description: "Skip TLS certificate verification." },
    Setting { name: "allow_hosts", ty: hosts, sensitive: false, description: "Extra hosts (host or host:port) the sandboxed component may reach, e.g. image source servers." },
    Setting { name: "memory_limit_mib", ty: number, sensitive: false, description: "Memory limit of the sandboxed component, in MiB." },
    Setting { name: "cache_max_size", ty: text, sensitive: false, description: "How large the download cache may grow (512M, 20G, ...; none: no limit); after each operation the least recently used downloads beyond it are removed. Default: OPENSTACK_IMAGE_CACHE_MAX_SIZE, else 10G." },
];

/// The provider block's schema.
pub fn schema() -> tf::Schema {
    tf::Schema {
        version: 0,
        block: Some(tf::schema::Block {
            attributes: SETTINGS
                .iter()
                .map(|s| proto_attribute(s.name, &(s.ty)(), Mode::Optional, s.sensitive, s.description))
                .collect(),
            description: "OpenStack Glance images through the sandboxed openstack-image component.".into(),
            ..Default::default()
        }),
    }
}

/// The type of a provider block value.
pub fn object_type() -> Type {
    Type::Object(SETTINGS.iter().map(|s| (s.name.to_string(), (s.ty)())).collect())
}

/// The secrets a provider block and the environment below it hold.
pub fn secrets(config: &Value, env: &dyn Fn(&str) -> Option<String>) -> Secrets {
    let mut secrets = Secrets::default();
    for setting in SETTINGS.iter().filter(|s| s.sensitive) {
        if let Some(text) = lookup(setting, config) {
            secrets.add(&text);
        }
    }
    if let Ok(layer) = cloud::environment(env) {
        let auth = layer.doc.auth;
        for secret in [auth.password, auth.application_credential_secret, auth.token]
            .into_iter()
            .flatten()
        {
            secrets.add(secret.as_str());
        }
    }
    secrets
}

/// A setting's value in the block.
fn lookup(setting: &Setting, config: &Value) -> Option<String> {
    match config.get(setting.name) {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The problems of a provider block (and of the environment below it) that are visible
/// without the cloud.
pub fn validate(config: &Value, env: &dyn Fn(&str) -> Option<String>) -> Vec<(Option<Path>, String)> {
    let mut problems: Vec<(Option<Path>, String)> = match cloud_config(config) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|(path, message)| (Some(path), message))
            .collect(),
    };
    if let Err(problem) = cloud::environment(env) {
        problems.push((None, problem));
    }
    problems
}

/// The backend's cloud configuration from a provider block: its settings as a clouds.yaml
/// cloud entry (the explicit layer over the environment and clouds.yaml). Unknown settings
/// count as unset (Terraform 1.0 validates provider blocks before their values are known).
pub fn cloud_config(config: &Value) -> Result<CloudConfig, Vec<(Path, String)>> {
    let mut problems = Vec::new();
    let values: BTreeMap<&str, String> = SETTINGS
        .iter()
        .filter_map(|s| lookup(s, config).map(|v| (s.name, v)))
        .collect();
    let get = |name: &str| values.get(name).cloned();

    let mut auth = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            auth.insert(key.to_string(), Json::String(v));
        }
    };
    put("auth_url", get("auth_url"));
    put("username", get("user_name"));
    put("user_id", get("user_id"));
    put("password", get("password"));
    put("project_name", get("tenant_name"));
    put("project_id", get("tenant_id"));
    // As gophercloud does: `domain_name` stands for the user's and the project's domain
    // where those are not given.
    put(
        "user_domain_name",
        get("user_domain_name").or_else(|| get("domain_name")),
    );
    put(
        "project_domain_name",
        get("project_domain_name").or_else(|| get("domain_name")),
    );
    put("application_credential_id", get("application_credential_id"));
    put("application_credential_name", get("application_credential_name"));
    put(
        "application_credential_secret",
        get("application_credential_secret"),
    );
    put("token", get("token"));

    let mut entry = Map::new();
    if !auth.is_empty() {
        entry.insert("auth".into(), Json::Object(auth));
    }
    if let Some(region) = get("region") {
        entry.insert("region_name".into(), json!(region));
    }
    if let Some(endpoint_type) = get("endpoint_type") {
        match interface(&endpoint_type) {
            Some(interface) => {
                entry.insert("interface".into(), json!(interface));
            }
            None => problems.push((
                Path::attribute("endpoint_type"),
                format!("'{endpoint_type}' is not an endpoint type; use public, internal or admin"),
            )),
        }
    }
    if let Some(cacert) = get("cacert_file") {
        entry.insert("cacert".into(), json!(cacert));
    }
    if let Some(insecure) = get("insecure") {
        match parse_bool(&insecure) {
            Some(insecure) => {
                entry.insert("verify".into(), json!(!insecure));
            }
            None => problems.push((
                Path::attribute("insecure"),
                format!("'{insecure}' is not true or false"),
            )),
        }
    }
    let allow_hosts = match config.get("allow_hosts") {
        Value::List(hosts) => hosts
            .iter()
            .filter_map(|h| match h {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let memory_limit_mib = match config.get("memory_limit_mib") {
        Value::Number(n) => match n.as_u64().filter(|m| *m > 0) {
            Some(m) => Some(m),
            None => {
                problems.push((
                    Path::attribute("memory_limit_mib"),
                    format!("{n} is not a whole, positive number of MiB"),
                ));
                None
            }
        },
        _ => None,
    };
    let cache_max_size = match get("cache_max_size").map(|size| size.parse::<MaxSize>()) {
        Some(Ok(size)) => Some(size),
        Some(Err(problem)) => {
            problems.push((Path::attribute("cache_max_size"), problem));
            None
        }
        None => None,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(CloudConfig {
        entry: Json::Object(entry),
        cloud: get("cloud"),
        allow_hosts,
        memory_limit_mib,
        cache_max_size,
    })
}

/// The clouds.yaml interface for a terraform-provider-openstack endpoint type.
fn interface(endpoint_type: &str) -> Option<&'static str> {
    match endpoint_type {
        "public" | "publicURL" => Some("public"),
        "internal" | "internalURL" => Some("internal"),
        "admin" | "adminURL" => Some("admin"),
        _ => None,
    }
}

/// Go's `strconv.ParseBool`, which terraform-provider-openstack applies to OS_INSECURE.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(json: Json) -> Value {
        Value::from_json(&json, &object_type()).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_map_onto_a_clouds_yaml_entry() {
        let config = block(json!({
            "auth_url": "https://keystone.example.org:5000/v3", "user_name": "demo", "password": "s3cret",
            "tenant_name": "demo", "domain_name": "Default", "region": "RegionOne",
            "endpoint_type": "internalURL", "cacert_file": "/etc/ca.pem", "insecure": false,
            "allow_hosts": ["images.example.org:443"], "memory_limit_mib": 512,
        }));
        let cloud = cloud_config(&config).unwrap();
        assert_eq!(
            cloud.entry,
            json!({
                "auth": {
                    "auth_url": "https://keystone.example.org:5000/v3", "username": "demo", "password": "s3cret",
                    "project_name": "demo", "user_domain_name": "Default", "project_domain_name": "Default",
                },
                "region_name": "RegionOne", "interface": "internal",
                "cacert": "/etc/ca.pem", "verify": true,
            })
        );
        assert_eq!(cloud.allow_hosts, ["images.example.org:443"]);
        assert_eq!(cloud.memory_limit_mib, Some(512));
        assert_eq!(cloud.cloud, None);
        assert!(!format!("{cloud:?}").contains("s3cret"));
    }

    /// The block over the environment, by the host's one cloud rule.
    fn resolved(config: serde_json::Value, vars: &[(&str, &str)]) -> Result<Json, String> {
        let cloud = cloud_config(&block(config)).unwrap();
        let layer = cloud::Layer {
            origin: cloud::Origin::Explicit("the provider settings".into()),
            doc: serde_json::from_value(cloud.entry).unwrap(),
        };
        openstack_image::cloud::resolve_with(vec![layer], cloud.cloud.as_deref(), &env(vars))
            .map(|c| cloud::CloudDoc::of(&c.cloud.into()).to_json())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_environment_fills_in_what_the_block_leaves_out() {
        let vars = [
            ("OS_PROJECT_NAME", "from-env"),
            ("OS_TENANT_NAME", ""),
            ("OS_APPLICATION_CREDENTIAL_ID", "ac"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "acsecret"),
            ("OS_AUTH_TOKEN", "tok"),
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_REGION_NAME", "EnvRegion"),
        ];
        let cloud = resolved(json!({ "region": "BlockRegion" }), &vars).unwrap();
        assert_eq!(cloud["auth"]["project_name"], "from-env");
        assert_eq!(cloud["auth_type"], "v3applicationcredential");
        assert_eq!(cloud["region_name"], "BlockRegion", "the block wins");
        let secrets = secrets(&block(json!({})), &env(&vars));
        assert_eq!(
            secrets.redact("acsecret tok"),
            "(sensitive) tok",
            "short strings are not redacted"
        );
    }

    #[test]
    fn a_token_alone_selects_token_auth_and_a_password_wins_over_it() {
        let cloud = resolved(json!({ "token": "gAAAA", "auth_url": "u" }), &[]).unwrap();
        assert_eq!(cloud["auth_type"], "v3token");
        let both = [("OS_USERNAME", "u"), ("OS_PASSWORD", "p")];
        let cloud = resolved(json!({ "token": "gAAAA", "auth_url": "u" }), &both).unwrap();
        assert_eq!(cloud["auth_type"], "password");
        assert_eq!(
            cloud_config(&block(json!({ "cloud": "dev" }))).unwrap().entry,
            json!({})
        );
    }

    #[test]
    fn bad_settings_name_their_attribute_or_variable() {
        let problems = validate(
            &block(json!({ "endpoint_type": "sideways", "memory_limit_mib": 0, "cache_max_size": "lots" })),
            &env(&[("OS_INSECURE", "maybe")]),
        );
        assert_eq!(problems.len(), 4);
        assert_eq!(problems[0].0, Some(Path::attribute("endpoint_type")));
        assert_eq!(problems[1].0, Some(Path::attribute("memory_limit_mib")));
        assert_eq!(problems[2].0, Some(Path::attribute("cache_max_size")));
        assert!(
            problems[2].1.contains("'lots' is not a size"),
            "{}",
            problems[2].1
        );
        assert_eq!(
            problems[3],
            (None, "OS_INSECURE is 'maybe'; use true or false".to_string())
        );
    }

    #[test]
    fn the_cloud_resolution_table_resolves_as_every_runtime_resolves_it() {
        for case in openstack_image_tests::cloud_resolution::cases() {
            let dir = tempfile::tempdir().unwrap();
            let vars = case.environment(dir.path());
            let cloud = cloud_config(&block(json!({}))).unwrap();
            let layer = cloud::Layer {
                origin: cloud::Origin::Explicit("the provider settings".into()),
                doc: serde_json::from_value(cloud.entry).unwrap(),
            };
            let outcome = openstack_image::cloud::resolve_with(vec![layer], cloud.cloud.as_deref(), &|k| {
                vars.get(k).cloned()
            })
            .map(|config| config.resolved().masked())
            .map_err(|e| e.to_string());
            case.check("the Terraform provider", outcome);
        }
    }

    #[test]
    fn provider_schema_marks_secrets() {
        let block = schema().block.unwrap();
        let sensitive: Vec<&str> = block
            .attributes
            .iter()
            .filter(|a| a.sensitive)
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(sensitive, ["password", "application_credential_secret", "token"]);
        assert!(block.attributes.iter().all(|a| a.optional && !a.required));
    }
}
