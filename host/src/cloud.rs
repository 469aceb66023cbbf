//! The cloud a run acts on: layers of cloud documents — explicit settings (`--retries`), the
//! standard `OS_*` environment variables, the `--cloud` entry of clouds.yaml — resolved to the
//! typed cloud in one place (`openstack_image_documents::cloud`), with every problem said
//! naming the variable or clouds.yaml key to fix.

use std::path::PathBuf;

use anyhow::{Result, bail};
use openstack_image_documents::cloud::{
    AuthDoc, CacheDoc, CloudDoc, CloudProblem, CloudSettings, Layer, Origin,
};

use crate::bindings::Cloud;
use crate::clouds_yaml;

/// The environment variable (besides `--token-cache` and clouds.yaml's `cache: {auth: true}`)
/// that keeps the Keystone token for the next run.
pub const TOKEN_CACHE_VAR: &str = "OPENSTACK_IMAGE_TOKEN_CACHE";

/// The cloud's TLS settings, as clouds.yaml (`cacert`, `verify`) or `OS_CACERT` /
/// `OS_INSECURE` give them; the transport trusts accordingly.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// A PEM bundle of extra trusted CA certificates (a private CA).
    pub cacert: Option<PathBuf>,
    /// Skip certificate verification for the cloud's own hosts (`verify: false`).
    pub insecure: bool,
}

/// What the settings resolve to.
pub struct CloudConfig {
    pub cloud: Cloud,
    pub tls: TlsSettings,
    /// Keep the Keystone token between runs.
    pub token_cache: bool,
}

/// The `OS_*` variables (read through `var`: the process environment in production, a map in
/// tests) as a cloud document; an empty variable is unset.
pub fn environment(var: impl Fn(&str) -> Option<String>) -> Result<CloudDoc> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    Ok(CloudDoc {
        auth: AuthDoc {
            auth_url: get("OS_AUTH_URL"),
            username: get("OS_USERNAME"),
            user_id: get("OS_USER_ID"),
            password: get("OS_PASSWORD"),
            user_domain_name: get("OS_USER_DOMAIN_NAME"),
            user_domain_id: get("OS_USER_DOMAIN_ID"),
            project_name: get("OS_PROJECT_NAME").or_else(|| get("OS_TENANT_NAME")),
            project_id: get("OS_PROJECT_ID").or_else(|| get("OS_TENANT_ID")),
            project_domain_name: get("OS_PROJECT_DOMAIN_NAME"),
            project_domain_id: get("OS_PROJECT_DOMAIN_ID"),
            application_credential_id: get("OS_APPLICATION_CREDENTIAL_ID"),
            application_credential_name: get("OS_APPLICATION_CREDENTIAL_NAME"),
            application_credential_secret: get("OS_APPLICATION_CREDENTIAL_SECRET"),
            token: get("OS_TOKEN"),
        },
        region_name: get("OS_REGION_NAME"),
        interface: get("OS_INTERFACE"),
        cacert: get("OS_CACERT"),
        verify: flag(get("OS_INSECURE"), "OS_INSECURE")?.map(|insecure| !insecure),
        cache: flag(get(TOKEN_CACHE_VAR), TOKEN_CACHE_VAR)?.map(|keep| CacheDoc { auth: Some(keep) }),
        ..CloudDoc::default()
    })
}

/// The cloud a clouds.yaml cloud entry describes (`explicit`, e.g. from a Terraform provider
/// block), its settings winning over the clouds.yaml cloud `name` when one is named.
pub fn from_entry(name: Option<&str>, explicit: &serde_json::Value) -> Result<CloudConfig> {
    let doc: CloudDoc = serde_path_to_error::deserialize(explicit)
        .map_err(|e| anyhow::anyhow!("the provider settings: `{}`: {}", e.path(), e.inner()))?;
    let mut layers = vec![Layer {
        origin: Origin::Explicit("the provider settings".to_string()),
        doc,
    }];
    if let Some(name) = name {
        layers.push(clouds_yaml::settings(
            name,
            std::env::var_os("OS_CLIENT_CONFIG_FILE").map(std::path::PathBuf::from),
            &clouds_yaml::search_dirs(),
        )?);
    }
    resolve(&CloudSettings::new(layers))
}

/// A yes/no variable: true, 1, yes or false, 0, no (any case).
fn flag(value: Option<String>, name: &str) -> Result<Option<bool>> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => Ok(Some(true)),
        Some(v) if ["false", "0", "no"].contains(&v.as_str()) => Ok(Some(false)),
        Some(v) => bail!("{name} is '{v}'; use true or false"),
    }
}

/// The typed cloud, its TLS settings and whether to keep its token, from `settings`.
pub fn resolve(settings: &CloudSettings) -> Result<CloudConfig> {
    let cloud = settings
        .resolve()
        .map_err(|problem| anyhow::anyhow!(describe(&problem, settings)))?;
    Ok(CloudConfig {
        cloud: cloud.into(),
        tls: TlsSettings {
            cacert: settings.cacert().map(std::path::PathBuf::from),
            insecure: settings.insecure(),
        },
        token_cache: settings.token_cache(),
    })
}

/// A problem with the settings, naming the `OS_*` variable and, when clouds.yaml is in use,
/// its key.
fn describe(problem: &CloudProblem, settings: &CloudSettings) -> String {
    let clouds_yaml = settings.layers().iter().find_map(|layer| match &layer.origin {
        Origin::CloudsYaml { cloud, file } => Some(format!("cloud '{cloud}' in {file}")),
        _ => None,
    });
    let in_clouds_yaml = |key: &str| match &clouds_yaml {
        Some(origin) => format!(" ({origin}: set {key} there, secrets also in secure.yaml)"),
        None => String::new(),
    };
    match problem {
        CloudProblem::NoAuthUrl => match &clouds_yaml {
            Some(origin) => format!(
                "{origin} has no auth.auth_url; add the Keystone URL there (e.g. https://keystone.example.org:5000/v3), or set OS_AUTH_URL"
            ),
            None => "OS_AUTH_URL is not set: load your cloud's openrc file (or, for the local dev \
                     cloud, run: eval \"$(scripts/dev-cloud env)\")"
                .to_string(),
        },
        CloudProblem::NoCredentials => format!(
            "no credentials: set OS_USERNAME (or OS_USER_ID) and OS_PASSWORD, OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET, or OS_TOKEN{}",
            in_clouds_yaml("auth.username and auth.password")
        ),
        CloudProblem::NoPassword => format!(
            "OS_PASSWORD is not set (needed with OS_USERNAME/OS_USER_ID){}",
            in_clouds_yaml("auth.password")
        ),
        CloudProblem::NoApplicationCredentialId => format!(
            "OS_APPLICATION_CREDENTIAL_SECRET is set but neither OS_APPLICATION_CREDENTIAL_ID nor OS_APPLICATION_CREDENTIAL_NAME is{}",
            in_clouds_yaml("auth.application_credential_id")
        ),
        CloudProblem::NoApplicationCredentialSecret => format!(
            "OS_APPLICATION_CREDENTIAL_SECRET is not set (needed with OS_APPLICATION_CREDENTIAL_ID/_NAME){}",
            in_clouds_yaml("auth.application_credential_secret")
        ),
        CloudProblem::NoToken => format!(
            "OS_TOKEN is not set (needed with auth_type v3token){}",
            in_clouds_yaml("auth.token")
        ),
        CloudProblem::UnsupportedAuthType { value, origin } => format!(
            "{}: auth_type '{value}' is not supported; use password, v3applicationcredential or v3token",
            origin_text(origin)
        ),
        CloudProblem::BadInterface { value, origin } => match origin {
            Origin::Environment => format!("OS_INTERFACE is '{value}'; use public, internal or admin"),
            origin => format!(
                "{}: interface is '{value}'; use public, internal or admin",
                origin_text(origin)
            ),
        },
    }
}

/// Where a setting was given, for people.
fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::Explicit(what) => what.clone(),
        Origin::Environment => "the OS_* environment".to_string(),
        Origin::CloudsYaml { cloud, file } => format!("cloud '{cloud}' in {file}"),
        Origin::Request => "the request's cloud".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Credentials;
    use openstack_image_documents::cloud::Layer;
    use std::collections::HashMap;

    fn env_layer(vars: &[(&str, &str)]) -> Layer {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Layer {
            origin: Origin::Environment,
            doc: environment(|k| map.get(k).cloned()).unwrap(),
        }
    }

    fn cloud(vars: &[(&str, &str)]) -> Result<Cloud> {
        resolve(&CloudSettings::new(vec![env_layer(vars)])).map(|c| c.cloud)
    }

    #[test]
    fn password_cloud_from_openrc_variables() {
        let c = cloud(&[
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_NAME", "admin"),
            ("OS_INTERFACE", "publicURL"),
        ])
        .unwrap();
        assert!(
            matches!(c.credentials, Credentials::Password(ref p) if p.username.as_deref() == Some("admin"))
        );
        assert_eq!(c.interface.as_deref(), Some("public"));
    }

    #[test]
    fn missing_settings_name_the_variable() {
        assert!(cloud(&[]).unwrap_err().to_string().contains("OS_AUTH_URL"));
        let err = cloud(&[("OS_AUTH_URL", "u"), ("OS_USERNAME", "a")]).unwrap_err();
        assert!(err.to_string().contains("OS_PASSWORD"));
        let err = cloud(&[
            ("OS_AUTH_URL", "u"),
            ("OS_TOKEN", "t"),
            ("OS_INTERFACE", "sideways"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("OS_INTERFACE is 'sideways'"), "{err}");
    }

    #[test]
    fn settings_from_clouds_yaml_name_its_key() {
        let yaml = Layer {
            origin: Origin::CloudsYaml {
                cloud: "dev".into(),
                file: "/etc/openstack/clouds.yaml".into(),
            },
            doc: serde_json::from_value(serde_json::json!({ "auth": { "auth_url": "u", "username": "a" } }))
                .unwrap(),
        };
        let err = resolve(&CloudSettings::new(vec![env_layer(&[]), yaml.clone()]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cloud 'dev' in /etc/openstack/clouds.yaml: set auth.password"),
            "{err}"
        );
        // The environment wins over clouds.yaml.
        let config = resolve(&CloudSettings::new(vec![
            env_layer(&[("OS_PASSWORD", "p")]),
            yaml,
        ]))
        .unwrap();
        assert!(matches!(config.cloud.credentials, Credentials::Password(ref p) if p.password == "p"));
    }

    #[test]
    fn tls_and_token_cache_settings() {
        let settings = |vars: &[(&str, &str)]| CloudSettings::new(vec![env_layer(vars)]);
        let s = settings(&[("OS_CACERT", "/ca.pem"), ("OS_INSECURE", "True")]);
        assert_eq!(s.cacert().as_deref(), Some("/ca.pem"));
        assert!(s.insecure());
        assert!(!settings(&[]).insecure());
        let err = environment(|k| (k == "OS_INSECURE").then(|| "maybe".to_string())).unwrap_err();
        assert!(err.to_string().contains("OS_INSECURE is 'maybe'"), "{err}");
        let cache = |v: &str| settings(&[(TOKEN_CACHE_VAR, v)]).token_cache();
        assert!(cache("Yes") && cache("true") && !cache("0") && !cache(""));
        let err = environment(|k| (k == TOKEN_CACHE_VAR).then(|| "on".to_string())).unwrap_err();
        assert!(err.to_string().contains(TOKEN_CACHE_VAR), "{err}");
    }

    #[test]
    fn token_wins_over_password() {
        let c = cloud(&[("OS_AUTH_URL", "u"), ("OS_TOKEN", "t"), ("OS_USERNAME", "a")]).unwrap();
        assert!(matches!(c.credentials, Credentials::Token(_)));
    }
}
