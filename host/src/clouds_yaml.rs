//! `clouds.yaml` and `secure.yaml`, as openstacksdk users know them: a named cloud's settings
//! become the `OS_*` values that the process environment may still override.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_yaml_ng::{Mapping, Value};

/// Where clouds.yaml and secure.yaml are looked for, in order (openstacksdk's order).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(".")];
    if let Some(config) = dirs::config_dir() {
        dirs.push(config.join("openstack"));
    }
    if let Some(home) = dirs::home_dir() {
        dirs.push(home.join(".config/openstack"));
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    dirs.dedup();
    dirs
}

/// The `OS_*` settings of cloud `name` from the first clouds.yaml found (`OS_CLIENT_CONFIG_FILE`
/// names one explicitly), with secure.yaml's values merged in.
pub fn settings(
    name: &str,
    config_file: Option<PathBuf>,
    dirs: &[PathBuf],
) -> Result<HashMap<String, String>> {
    let candidates: Vec<PathBuf> = match config_file {
        Some(file) => vec![file],
        None => dirs
            .iter()
            .flat_map(|d| [d.join("clouds.yaml"), d.join("clouds.yml")])
            .collect(),
    };
    let Some(clouds_file) = candidates.iter().find(|p| p.is_file()) else {
        bail!(
            "cloud '{name}': no clouds.yaml found (looked for {})",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let mut entry = cloud_entry(clouds_file, name)?.ok_or_else(|| {
        let known = cloud_names(clouds_file).unwrap_or_default();
        anyhow::anyhow!(
            "cloud '{name}' is not in {} (it has: {}); fix --cloud / OS_CLOUD",
            clouds_file.display(),
            if known.is_empty() {
                "no clouds".to_string()
            } else {
                known.join(", ")
            }
        )
    })?;
    // secure.yaml beside the clouds.yaml first, then in the usual places.
    let mut secure_files = vec![clouds_file.parent().unwrap_or(Path::new(".")).join("secure.yaml")];
    secure_files.extend(dirs.iter().map(|d| d.join("secure.yaml")));
    if let Some(secure) = secure_files.iter().find(|p| p.is_file())
        && let Some(secrets) = cloud_entry(secure, name)?
    {
        merge(&mut entry, secrets);
    }
    to_os_vars(name, &entry)
}

fn read(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

fn cloud_entry(path: &Path, name: &str) -> Result<Option<Value>> {
    Ok(read(path)?.get("clouds").and_then(|c| c.get(name)).cloned())
}

fn cloud_names(path: &Path) -> Result<Vec<String>> {
    Ok(read(path)?
        .get("clouds")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default())
}

/// secure.yaml values win over clouds.yaml's, key by key (nested maps merge).
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn to_os_vars(name: &str, entry: &Value) -> Result<HashMap<String, String>> {
    let empty = Mapping::new();
    let auth = entry.get("auth").and_then(Value::as_mapping).unwrap_or(&empty);
    let text = |value: &Value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut vars = HashMap::new();
    let auth_type = entry
        .get("auth_type")
        .and_then(Value::as_str)
        .unwrap_or("password");
    let auth_keys: &[(&str, &str)] = match auth_type {
        "password" | "v3password" => &[
            ("username", "OS_USERNAME"),
            ("user_id", "OS_USER_ID"),
            ("password", "OS_PASSWORD"),
        ],
        "v3applicationcredential" | "applicationcredential" => &[
            ("application_credential_id", "OS_APPLICATION_CREDENTIAL_ID"),
            ("application_credential_name", "OS_APPLICATION_CREDENTIAL_NAME"),
            (
                "application_credential_secret",
                "OS_APPLICATION_CREDENTIAL_SECRET",
            ),
            ("username", "OS_USERNAME"),
            ("user_id", "OS_USER_ID"),
        ],
        "token" | "v3token" => &[("token", "OS_TOKEN")],
        other => bail!(
            "cloud '{name}': auth_type '{other}' is not supported; use password, v3applicationcredential or v3token"
        ),
    };
    let common: &[(&str, &str)] = &[
        ("auth_url", "OS_AUTH_URL"),
        ("project_name", "OS_PROJECT_NAME"),
        ("project_id", "OS_PROJECT_ID"),
        ("user_domain_name", "OS_USER_DOMAIN_NAME"),
        ("user_domain_id", "OS_USER_DOMAIN_ID"),
        ("project_domain_name", "OS_PROJECT_DOMAIN_NAME"),
        ("project_domain_id", "OS_PROJECT_DOMAIN_ID"),
    ];
    for (key, var) in auth_keys.iter().chain(common) {
        if let Some(value) = auth.get(*key).and_then(text) {
            vars.insert(var.to_string(), value);
        }
    }
    for (key, var) in [("region_name", "OS_REGION_NAME"), ("interface", "OS_INTERFACE")] {
        if let Some(value) = entry.get(key).and_then(text) {
            vars.insert(var.to_string(), value);
        }
    }
    if let Some(cacert) = entry.get("cacert").and_then(text) {
        vars.insert("OS_CACERT".to_string(), cacert);
    }
    match entry.get("verify") {
        None => {}
        Some(Value::Bool(verify)) => {
            vars.insert("OS_INSECURE".to_string(), (!verify).to_string());
        }
        Some(_) => bail!("cloud '{name}': `verify` must be true or false"),
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn finds_the_cloud_and_merges_secure_yaml() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "clouds.yaml",
            "clouds:\n  dev:\n    auth:\n      auth_url: http://k:5000/v3\n      username: admin\n      project_name: admin\n      user_domain_name: Default\n    region_name: RegionOne\n  other: {}\n",
        );
        write(
            dir.path(),
            "secure.yaml",
            "clouds:\n  dev:\n    auth:\n      password: s3cret\n",
        );
        let vars = settings("dev", None, &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(vars["OS_AUTH_URL"], "http://k:5000/v3");
        assert_eq!(vars["OS_PASSWORD"], "s3cret");
        assert_eq!(vars["OS_REGION_NAME"], "RegionOne");
        let err = settings("prod", None, &[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("dev, other") || err.contains("other, dev"), "{err}");
    }

    #[test]
    fn application_credentials_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "clouds.yaml",
            "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: u\n      application_credential_id: id1\n      application_credential_secret: s\n  tok:\n    auth_type: v3token\n    auth:\n      auth_url: u\n      token: t\n      project_id: p\n  bad:\n    auth_type: saml\n",
        );
        let dirs = [dir.path().to_path_buf()];
        assert_eq!(
            settings("ac", None, &dirs).unwrap()["OS_APPLICATION_CREDENTIAL_ID"],
            "id1"
        );
        assert_eq!(settings("tok", None, &dirs).unwrap()["OS_TOKEN"], "t");
        assert!(
            settings("bad", None, &dirs)
                .unwrap_err()
                .to_string()
                .contains("saml")
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = settings("dev", None, &[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no clouds.yaml found"), "{err}");
    }
}
