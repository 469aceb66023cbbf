//! The provider block: terraform-provider-openstack's setting names and OS_* fallbacks, plus
//! the sandbox's own settings, turned into a clouds.yaml cloud entry for the backend.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::backend::CloudConfig;
use crate::diagnostics::{Path, Secrets};
use crate::proto::tfplugin6 as tf;
use crate::schema::{Mode, proto_attribute};
use crate::value::{Type, Value};

/// One provider setting.
struct Setting {
    name: &'static str,
    ty: fn() -> Type,
    /// Environment variables read, in order, when the block leaves the setting out (as
    /// terraform-provider-openstack does).
    env: &'static [&'static str],
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
    Setting { name: "cloud", ty: text, env: &["OS_CLOUD"], sensitive: false, description: "Name of the cloud in clouds.yaml to start from." },
    Setting { name: "auth_url", ty: text, env: &["OS_AUTH_URL"], sensitive: false, description: "Keystone v3 URL." },
    Setting { name: "region", ty: text, env: &["OS_REGION_NAME"], sensitive: false, description: "Region to use." },
    Setting { name: "user_name", ty: text, env: &["OS_USERNAME"], sensitive: false, description: "User name to log in with." },
    Setting { name: "user_id", ty: text, env: &["OS_USER_ID"], sensitive: false, description: "User id to log in with." },
    Setting { name: "password", ty: text, env: &["OS_PASSWORD"], sensitive: true, description: "Password to log in with." },
    Setting { name: "tenant_name", ty: text, env: &["OS_TENANT_NAME", "OS_PROJECT_NAME"], sensitive: false, description: "Project name to scope to." },
    Setting { name: "tenant_id", ty: text, env: &["OS_TENANT_ID", "OS_PROJECT_ID"], sensitive: false, description: "Project id to scope to." },
    Setting { name: "user_domain_name", ty: text, env: &["OS_USER_DOMAIN_NAME"], sensitive: false, description: "Domain of the user." },
    Setting { name: "project_domain_name", ty: text, env: &["OS_PROJECT_DOMAIN_NAME"], sensitive: false, description: "Domain of the project." },
    Setting { name: "domain_name", ty: text, env: &["OS_DOMAIN_NAME"], sensitive: false, description: "Domain of both the user and the project, where those are not given." },
    Setting { name: "application_credential_id", ty: text, env: &["OS_APPLICATION_CREDENTIAL_ID"], sensitive: false, description: "Application credential id." },
    Setting { name: "application_credential_name", ty: text, env: &["OS_APPLICATION_CREDENTIAL_NAME"], sensitive: false, description: "Application credential name (with the user)." },
    Setting { name: "application_credential_secret", ty: text, env: &["OS_APPLICATION_CREDENTIAL_SECRET"], sensitive: true, description: "Application credential secret." },
    Setting { name: "token", ty: text, env: &["OS_TOKEN", "OS_AUTH_TOKEN"], sensitive: true, description: "An existing Keystone token." },
    Setting { name: "endpoint_type", ty: text, env: &["OS_ENDPOINT_TYPE"], sensitive: false, description: "Catalog interface: public, internal or admin." },
    Setting { name: "cacert_file", ty: text, env: &["OS_CACERT"], sensitive: false, description: "CA bundle (PEM file) to trust for the cloud's TLS." },
    Setting { name: "insecure", ty: flag, env: &["OS_INSECURE"], sensitive: false, description: "Skip TLS certificate verification." },
    Setting { name: "allow_hosts", ty: hosts, env: &[], sensitive: false, description: "Extra hosts (host or host:port) the sandboxed component may reach, e.g. image source servers." },
    Setting { name: "memory_limit_mib", ty: number, env: &[], sensitive: false, description: "Memory limit of the sandboxed component, in MiB." },
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

/// The secrets a provider block (or the environment it falls back to) holds.
pub fn secrets(config: &Value, env: &dyn Fn(&str) -> Option<String>) -> Secrets {
    let mut secrets = Secrets::default();
    for setting in SETTINGS.iter().filter(|s| s.sensitive) {
        if let Some(Found { text, .. }) = lookup(setting, config, env) {
            secrets.add(&text);
        }
    }
    secrets
}

/// A setting's value and where it came from.
struct Found {
    text: String,
    from_env: Option<&'static str>,
}

fn lookup(setting: &Setting, config: &Value, env: &dyn Fn(&str) -> Option<String>) -> Option<Found> {
    match config.get(setting.name) {
        Value::String(s) if !s.is_empty() => Some(Found {
            text: s.clone(),
            from_env: None,
        }),
        Value::Bool(b) => Some(Found {
            text: b.to_string(),
            from_env: None,
        }),
        Value::Null => setting.env.iter().find_map(|var| {
            env(var).filter(|v| !v.is_empty()).map(|text| Found {
                text,
                from_env: Some(var),
            })
        }),
        _ => None,
    }
}

/// The problems of a provider block that are visible without the cloud.
pub fn validate(config: &Value, env: &dyn Fn(&str) -> Option<String>) -> Vec<(Path, String)> {
    match cloud_config(config, env) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

/// The backend's cloud configuration from a provider block, OS_* variables filling in what
/// the block leaves out. Unknown settings count as unset (Terraform 1.0 validates provider
/// blocks before their values are known).
pub fn cloud_config(
    config: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CloudConfig, Vec<(Path, String)>> {
    let mut problems = Vec::new();
    let values: BTreeMap<&str, Found> = SETTINGS
        .iter()
        .filter_map(|s| lookup(s, config, env).map(|v| (s.name, v)))
        .collect();
    let get = |name: &str| values.get(name).map(|v| v.text.clone());

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
    let auth_type = if auth.contains_key("application_credential_secret") {
        Some("v3applicationcredential")
    } else if auth.contains_key("token") && !auth.contains_key("password") {
        Some("v3token")
    } else if auth.contains_key("password") || auth.contains_key("username") || auth.contains_key("user_id") {
        Some("password")
    } else {
        None
    };
    if !auth.is_empty() {
        entry.insert("auth".into(), Json::Object(auth));
    }
    if let Some(auth_type) = auth_type {
        entry.insert("auth_type".into(), json!(auth_type));
    }
    if let Some(region) = get("region") {
        entry.insert("region_name".into(), json!(region));
    }
    if let Some(endpoint_type) = values.get("endpoint_type") {
        match interface(&endpoint_type.text) {
            Some(interface) => {
                entry.insert("interface".into(), json!(interface));
            }
            None => problems.push((
                Path::attribute("endpoint_type"),
                format!(
                    "'{}'{} is not an endpoint type; use public, internal or admin",
                    endpoint_type.text,
                    source(endpoint_type)
                ),
            )),
        }
    }
    if let Some(cacert) = get("cacert_file") {
        entry.insert("cacert".into(), json!(cacert));
    }
    if let Some(insecure) = values.get("insecure") {
        match parse_bool(&insecure.text) {
            Some(insecure) => {
                entry.insert("verify".into(), json!(!insecure));
            }
            None => problems.push((
                Path::attribute("insecure"),
                format!("'{}'{} is not true or false", insecure.text, source(insecure)),
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
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(CloudConfig {
        entry: Json::Object(entry),
        cloud: get("cloud"),
        allow_hosts,
        memory_limit_mib,
    })
}

/// Where a setting's text came from, for messages.
fn source(value: &Found) -> String {
    value
        .from_env
        .map(|var| format!(" (from {var})"))
        .unwrap_or_default()
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
        let cloud = cloud_config(&config, &env(&[])).unwrap();
        assert_eq!(
            cloud.entry,
            json!({
                "auth": {
                    "auth_url": "https://keystone.example.org:5000/v3", "username": "demo", "password": "s3cret",
                    "project_name": "demo", "user_domain_name": "Default", "project_domain_name": "Default",
                },
                "auth_type": "password", "region_name": "RegionOne", "interface": "internal",
                "cacert": "/etc/ca.pem", "verify": true,
            })
        );
        assert_eq!(cloud.allow_hosts, ["images.example.org:443"]);
        assert_eq!(cloud.memory_limit_mib, Some(512));
        assert_eq!(cloud.cloud, None);
        assert!(!format!("{cloud:?}").contains("s3cret"));
    }

    #[test]
    fn environment_fills_in_what_the_block_leaves_out() {
        let vars = env(&[
            ("OS_CLOUD", "dev"),
            ("OS_PROJECT_NAME", "from-env"),
            ("OS_TENANT_NAME", ""),
            ("OS_APPLICATION_CREDENTIAL_ID", "ac"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "acsecret"),
            ("OS_AUTH_TOKEN", "tok"),
            ("OS_INSECURE", "1"),
            ("OS_REGION_NAME", "EnvRegion"),
        ]);
        let cloud = cloud_config(&block(json!({ "region": "BlockRegion" })), &vars).unwrap();
        assert_eq!(cloud.cloud.as_deref(), Some("dev"));
        assert_eq!(cloud.entry["auth"]["project_name"], "from-env");
        assert_eq!(cloud.entry["auth_type"], "v3applicationcredential");
        assert_eq!(cloud.entry["auth"]["token"], "tok");
        assert_eq!(cloud.entry["verify"], false);
        assert_eq!(cloud.entry["region_name"], "BlockRegion", "the block wins");
        let secrets = secrets(&block(json!({})), &vars);
        assert_eq!(
            secrets.redact("acsecret tok"),
            "(sensitive) tok",
            "short strings are not redacted"
        );
    }

    #[test]
    fn token_only_selects_token_auth() {
        let cloud = cloud_config(&block(json!({ "token": "gAAAA", "auth_url": "u" })), &env(&[])).unwrap();
        assert_eq!(cloud.entry["auth_type"], "v3token");
        let cloud = cloud_config(&block(json!({ "cloud": "dev" })), &env(&[])).unwrap();
        assert_eq!(cloud.entry, json!({}), "everything from clouds.yaml");
    }

    #[test]
    fn bad_settings_name_their_attribute_and_source() {
        let problems = cloud_config(
            &block(json!({ "endpoint_type": "sideways" })),
            &env(&[("OS_INSECURE", "maybe")]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].0, Path::attribute("endpoint_type"));
        assert!(problems[1].1.contains("(from OS_INSECURE)"), "{}", problems[1].1);
        let problems = validate(&block(json!({ "memory_limit_mib": 0 })), &env(&[]));
        assert_eq!(problems[0].0, Path::attribute("memory_limit_mib"));
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
