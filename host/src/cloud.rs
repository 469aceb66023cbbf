//! Cloud settings from the standard `OS_*` environment variables.

use anyhow::{Result, bail};

use crate::bindings::{ApplicationCredentialAuth, Cloud, Credentials, PasswordAuth, ProjectScope};
use crate::clouds_yaml::{self, TOKEN_CACHE_VAR};
use crate::transport::TlsSettings;

/// Reads the cloud from `OS_*` variables through `var` (the process environment in
/// production, a map in tests).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Cloud> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    // With --cloud, clouds.yaml names itself (clouds_yaml::settings), so a missing or wrong
    // setting can be traced to the key that gives it.
    let in_clouds_yaml = |key: &str| match (get("OS_CLOUD"), get("OS_CLIENT_CONFIG_FILE")) {
        (Some(cloud), Some(file)) => {
            format!(" (cloud '{cloud}' in {file}: set {key} there, secrets also in secure.yaml)")
        }
        _ => String::new(),
    };
    let Some(auth_url) = get("OS_AUTH_URL") else {
        bail!(
            "OS_AUTH_URL is not set: load your cloud's openrc file (or, for the local dev \
             cloud, run: eval \"$(scripts/dev-cloud env)\")"
        );
    };
    let credentials = if let Some(token) = get("OS_TOKEN") {
        Credentials::Token(token)
    } else if let Some(secret) = get("OS_APPLICATION_CREDENTIAL_SECRET") {
        let id = get("OS_APPLICATION_CREDENTIAL_ID");
        let name = get("OS_APPLICATION_CREDENTIAL_NAME");
        if id.is_none() && name.is_none() {
            bail!(
                "OS_APPLICATION_CREDENTIAL_SECRET is set but neither OS_APPLICATION_CREDENTIAL_ID nor OS_APPLICATION_CREDENTIAL_NAME is{}",
                in_clouds_yaml("auth.application_credential_id")
            );
        }
        Credentials::ApplicationCredential(ApplicationCredentialAuth {
            id,
            name,
            secret,
            user_id: get("OS_USER_ID"),
            username: get("OS_USERNAME"),
            user_domain_id: get("OS_USER_DOMAIN_ID"),
            user_domain_name: get("OS_USER_DOMAIN_NAME"),
        })
    } else {
        let (user_id, username) = (get("OS_USER_ID"), get("OS_USERNAME"));
        if user_id.is_none() && username.is_none() {
            bail!(
                "no credentials: set OS_USERNAME (or OS_USER_ID) and OS_PASSWORD, OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET, or OS_TOKEN{}",
                in_clouds_yaml("auth.username and auth.password")
            );
        }
        let Some(password) = get("OS_PASSWORD") else {
            bail!(
                "OS_PASSWORD is not set (needed with OS_USERNAME/OS_USER_ID){}",
                in_clouds_yaml("auth.password")
            );
        };
        Credentials::Password(PasswordAuth {
            user_id,
            username,
            password,
            user_domain_id: get("OS_USER_DOMAIN_ID"),
            user_domain_name: get("OS_USER_DOMAIN_NAME"),
        })
    };
    let interface = get("OS_INTERFACE").map(|i| i.trim_end_matches("URL").to_ascii_lowercase());
    if let Some(i) = &interface
        && !["public", "internal", "admin"].contains(&i.as_str())
    {
        bail!(
            "OS_INTERFACE is '{i}'; use public, internal or admin{}",
            in_clouds_yaml("interface")
        );
    }
    Ok(Cloud {
        auth_url,
        credentials,
        scope: ProjectScope {
            project_id: get("OS_PROJECT_ID").or_else(|| get("OS_TENANT_ID")),
            project_name: get("OS_PROJECT_NAME").or_else(|| get("OS_TENANT_NAME")),
            project_domain_id: get("OS_PROJECT_DOMAIN_ID"),
            project_domain_name: get("OS_PROJECT_DOMAIN_NAME"),
        },
        region: get("OS_REGION_NAME"),
        interface,
        retries: None,
        session: None,
    })
}

/// A cloud and how to reach it: what every runtime of this host needs to start a sandbox.
pub struct CloudSettings {
    pub cloud: Cloud,
    pub tls: TlsSettings,
    /// Whether to keep the Keystone token for later runs.
    pub token_cache: bool,
}

/// The cloud a clouds.yaml cloud entry describes (`explicit`, e.g. from a Terraform provider
/// block), merged over the clouds.yaml cloud `name` when one is named.
pub fn from_entry(name: Option<&str>, explicit: &serde_json::Value) -> Result<CloudSettings> {
    let explicit: serde_yaml_ng::Value =
        serde_yaml_ng::to_value(explicit).map_err(|e| anyhow::anyhow!("the cloud settings: {e}"))?;
    let (entry, origin) = match name {
        Some(name) => {
            let config_file = std::env::var_os("OS_CLIENT_CONFIG_FILE").map(std::path::PathBuf::from);
            let (mut entry, file) = clouds_yaml::find_entry(name, config_file, &clouds_yaml::search_dirs())?;
            clouds_yaml::merge(&mut entry, explicit);
            (
                entry,
                format!("{} and the provider settings", clouds_yaml::origin(name, &file)),
            )
        }
        None => (explicit, "the provider settings".to_string()),
    };
    let vars = clouds_yaml::entry_settings(&origin, &entry)?;
    let var = |k: &str| vars.get(k).cloned();
    Ok(CloudSettings {
        cloud: from_env(var)?,
        tls: tls_from_env(var)?,
        token_cache: token_cache_from_env(var)?,
    })
}

/// `cloud` as the JSON face's cloud document (a clouds.yaml cloud entry), for runtimes that
/// call the component with documents. TLS settings stay with the runtime.
pub fn document(cloud: &Cloud) -> serde_json::Value {
    let mut auth = serde_json::Map::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            auth.insert(key.to_string(), value.clone().into());
        }
    };
    put("auth_url", &Some(cloud.auth_url.clone()));
    let auth_type = match &cloud.credentials {
        Credentials::Password(p) => {
            put("username", &p.username);
            put("user_id", &p.user_id);
            put("password", &Some(p.password.clone()));
            put("user_domain_name", &p.user_domain_name);
            put("user_domain_id", &p.user_domain_id);
            "password"
        }
        Credentials::ApplicationCredential(a) => {
            put("application_credential_id", &a.id);
            put("application_credential_name", &a.name);
            put("application_credential_secret", &Some(a.secret.clone()));
            put("username", &a.username);
            put("user_id", &a.user_id);
            put("user_domain_name", &a.user_domain_name);
            put("user_domain_id", &a.user_domain_id);
            "v3applicationcredential"
        }
        Credentials::Token(token) => {
            put("token", &Some(token.clone()));
            "v3token"
        }
    };
    put("project_name", &cloud.scope.project_name);
    put("project_id", &cloud.scope.project_id);
    put("project_domain_name", &cloud.scope.project_domain_name);
    put("project_domain_id", &cloud.scope.project_domain_id);
    let mut doc = serde_json::json!({ "auth": auth, "auth_type": auth_type });
    for (key, value) in [("region_name", &cloud.region), ("interface", &cloud.interface)] {
        if let Some(value) = value {
            doc[key] = value.clone().into();
        }
    }
    if let Some(retries) = cloud.retries {
        doc["retries"] = retries.into();
    }
    doc
}

/// The cloud's TLS settings from `OS_CACERT` and `OS_INSECURE` (clouds.yaml's `cacert` and
/// `verify: false` arrive here as those variables).
pub fn tls_from_env(var: impl Fn(&str) -> Option<String>) -> Result<TlsSettings> {
    Ok(TlsSettings {
        cacert: var("OS_CACERT")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from),
        insecure: flag(&var, "OS_INSECURE")?,
    })
}

/// Whether to keep the Keystone token between runs (`OPENSTACK_IMAGE_TOKEN_CACHE`, which
/// clouds.yaml's `cache: {auth: true}` also sets).
pub fn token_cache_from_env(var: impl Fn(&str) -> Option<String>) -> Result<bool> {
    flag(&var, TOKEN_CACHE_VAR)
}

/// A yes/no setting: true, 1, yes or false, 0, no (any case); unset or empty is false.
fn flag(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool> {
    match var(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_ascii_lowercase())
    {
        None => Ok(false),
        Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["false", "0", "no"].contains(&v.as_str()) => Ok(false),
        Some(v) => bail!("{name} is '{v}'; use true or false"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cloud(vars: &[(&str, &str)]) -> Result<Cloud> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_env(|k| map.get(k).cloned())
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
    }

    #[test]
    fn settings_from_clouds_yaml_name_its_key() {
        let from_file = [
            ("OS_CLOUD", "dev"),
            ("OS_CLIENT_CONFIG_FILE", "/etc/openstack/clouds.yaml"),
            ("OS_AUTH_URL", "u"),
        ];
        let err = cloud(&[&from_file[..], &[("OS_USERNAME", "a")]].concat())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cloud 'dev' in /etc/openstack/clouds.yaml: set auth.password"),
            "{err}"
        );
        let err = cloud(&[("OS_AUTH_URL", "u"), ("OS_USERNAME", "a")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("clouds.yaml"), "{err}");
    }

    #[test]
    fn tls_settings() {
        let map: HashMap<&str, &str> = HashMap::from([("OS_CACERT", "/ca.pem"), ("OS_INSECURE", "True")]);
        let tls = tls_from_env(|k| map.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(tls.cacert.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert!(tls.insecure);
        assert!(tls_from_env(|k| (k == "OS_INSECURE").then(|| "maybe".to_string())).is_err());
        let cache = |v: &str| token_cache_from_env(|k| (k == TOKEN_CACHE_VAR).then(|| v.to_string()));
        assert!(
            cache("Yes").unwrap() && cache("true").unwrap() && !cache("0").unwrap() && !cache("").unwrap()
        );
        let err = cache("on").unwrap_err().to_string();
        assert!(err.contains(TOKEN_CACHE_VAR), "{err}");
        assert!(!tls_from_env(|_| None).unwrap().insecure);
    }

    #[test]
    fn token_wins_over_password() {
        let c = cloud(&[("OS_AUTH_URL", "u"), ("OS_TOKEN", "t"), ("OS_USERNAME", "a")]).unwrap();
        assert!(matches!(c.credentials, Credentials::Token(_)));
    }
}
