//! `clouds.yaml` and `secure.yaml`, as openstacksdk users know them: a named cloud's settings
//! become the `OS_*` values that the process environment may still override.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_yaml_ng::{Mapping, Value};

use crate::spec::read_text_file;

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
    let (entry, clouds_file) = find_entry(name, config_file, dirs)?;
    let mut vars = entry_settings(&origin(name, &clouds_file), &entry)?;
    // Where the settings came from, so errors about them can say which file to fix.
    vars.insert("OS_CLOUD".to_string(), name.to_string());
    vars.insert(
        "OS_CLIENT_CONFIG_FILE".to_string(),
        clouds_file.display().to_string(),
    );
    Ok(vars)
}

/// How errors name cloud `name` of `file`.
pub fn origin(name: &str, file: &Path) -> String {
    format!("cloud '{name}' in {}", file.display())
}

/// Cloud `name`'s entry from the first clouds.yaml found, with secure.yaml's values merged in,
/// and the clouds.yaml it came from.
pub fn find_entry(name: &str, config_file: Option<PathBuf>, dirs: &[PathBuf]) -> Result<(Value, PathBuf)> {
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
    Ok((entry, clouds_file.clone()))
}

/// A clouds.yaml or secure.yaml: a YAML mapping (an empty file is an empty one).
fn read(path: &Path) -> Result<Value> {
    let text = read_text_file(path, "cloud settings file")?;
    match serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))? {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        value @ Value::Mapping(_) => Ok(value),
        _ => bail!(
            "{} is not a YAML mapping; it should start with `clouds:`",
            path.display()
        ),
    }
}

/// The `clouds:` mapping of a clouds.yaml or secure.yaml.
fn clouds(path: &Path) -> Result<Mapping> {
    match read(path)?.get("clouds") {
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(Value::Mapping(clouds)) => Ok(clouds.clone()),
        Some(_) => bail!(
            "{}: `clouds` must be a mapping of cloud names to their settings",
            path.display()
        ),
    }
}

fn cloud_entry(path: &Path, name: &str) -> Result<Option<Value>> {
    match clouds(path)?.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Value::Mapping(Mapping::new()))),
        Some(entry @ Value::Mapping(_)) => Ok(Some(entry.clone())),
        Some(_) => bail!(
            "{}: cloud '{name}' must be a mapping of settings (auth, region_name, …)",
            path.display()
        ),
    }
}

fn cloud_names(path: &Path) -> Result<Vec<String>> {
    Ok(clouds(path)?
        .keys()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect())
}

/// `over`'s values win over `base`'s, key by key (nested maps merge): secure.yaml over
/// clouds.yaml, explicit settings over a named cloud.
pub fn merge(base: &mut Value, over: Value) {
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

/// The setting (environment variable, or clouds.yaml `cache: {auth: true}`) that keeps the
/// Keystone token for the next run.
pub const TOKEN_CACHE_VAR: &str = "OPENSTACK_IMAGE_TOKEN_CACHE";

/// The `OS_*` settings of one clouds.yaml cloud entry (`origin` names it in errors).
pub fn entry_settings(origin: &str, entry: &Value) -> Result<HashMap<String, String>> {
    let empty = Mapping::new();
    let auth = match entry.get("auth") {
        None | Some(Value::Null) => &empty,
        Some(Value::Mapping(auth)) => auth,
        Some(_) => bail!("{origin}: `auth` must be a mapping (auth_url, username, password, …)"),
    };
    // A setting is text; numbers and booleans are taken as written, lists and maps are errors.
    let text = |key: &str, value: Option<&Value>| match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(anyhow::anyhow!(
            "{origin}: `{key}` must be text, not a list or mapping"
        )),
    };
    let mut vars = HashMap::new();
    let auth_type = match entry.get("auth_type") {
        None | Some(Value::Null) => "password",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => bail!("{origin}: `auth_type` must be text: password, v3applicationcredential or v3token"),
    };
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
            "{origin}: auth_type '{other}' is not supported; use password, v3applicationcredential or v3token"
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
        if let Some(value) = text(&format!("auth.{key}"), auth.get(*key))? {
            vars.insert(var.to_string(), value);
        }
    }
    if !vars.contains_key("OS_AUTH_URL") {
        bail!(
            "{origin} has no auth.auth_url; add the Keystone URL there (e.g. https://keystone.example.org:5000/v3)"
        );
    }
    for (key, var) in [
        ("region_name", "OS_REGION_NAME"),
        ("interface", "OS_INTERFACE"),
        ("cacert", "OS_CACERT"),
    ] {
        if let Some(value) = text(key, entry.get(key))? {
            vars.insert(var.to_string(), value);
        }
    }
    match entry.get("verify") {
        None => {}
        Some(Value::Bool(verify)) => {
            vars.insert("OS_INSECURE".to_string(), (!verify).to_string());
        }
        Some(_) => bail!("{origin}: `verify` must be true or false"),
    }
    // openstacksdk's `cache: {auth: true}`: keep the token for the next run.
    match entry.get("cache").map(|c| c.get("auth")) {
        None | Some(None) => {}
        Some(Some(Value::Bool(keep))) => {
            vars.insert(TOKEN_CACHE_VAR.to_string(), keep.to_string());
        }
        Some(Some(_)) => bail!("{origin}: `cache.auth` must be true or false"),
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
    fn malformed_clouds_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        let err = |clouds: &str| {
            write(dir.path(), "clouds.yaml", clouds);
            settings("dev", None, &dirs).unwrap_err().to_string()
        };
        let url = "auth:\n      auth_url: http://k/v3";
        for (clouds, expected) in [
            ("- a\n", "not a YAML mapping"),
            ("clouds: [dev]\n", "`clouds` must be a mapping"),
            ("clouds:\n  dev: [1]\n", "must be a mapping of settings"),
            ("clouds:\n  dev:\n    auth: x\n", "`auth` must be a mapping"),
            ("clouds:\n  dev:\n    auth: {username: a}\n", "no auth.auth_url"),
            (
                "clouds:\n  dev:\n    auth: {auth_url: [u]}\n",
                "`auth.auth_url` must be text",
            ),
            (
                &format!("clouds:\n  dev:\n    auth_type: 5\n    {url}\n"),
                "`auth_type` must be text",
            ),
            (
                &format!("clouds:\n  dev:\n    verify: no way\n    {url}\n"),
                "`verify`",
            ),
            (
                &format!("clouds:\n  dev:\n    region_name: [a]\n    {url}\n"),
                "`region_name`",
            ),
        ] {
            let err = err(clouds);
            assert!(err.contains(expected), "{clouds}: {err}");
            assert!(err.contains("clouds.yaml"), "{clouds}: {err}");
        }
        write(
            dir.path(),
            "clouds.yaml",
            &format!("clouds:\n  dev:\n    {url}\n"),
        );
        write(dir.path(), "secure.yaml", "clouds:\n  dev: secret\n");
        let err = settings("dev", None, &dirs).unwrap_err().to_string();
        assert!(
            err.contains("secure.yaml") && err.contains("cloud 'dev'"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("secure.yaml")).unwrap();
        let vars = settings("dev", None, &dirs).unwrap();
        assert_eq!(vars["OS_CLOUD"], "dev");
        assert!(vars["OS_CLIENT_CONFIG_FILE"].ends_with("clouds.yaml"));
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
