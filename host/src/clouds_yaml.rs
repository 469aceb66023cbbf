//! `clouds.yaml` and `secure.yaml`, as openstacksdk users know them: a named cloud's entry,
//! with secure.yaml's values merged in, is one layer of cloud settings (a cloud document) below
//! the `OS_*` environment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use openstack_image_documents::cloud::{CloudDoc, Layer, Origin};
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

/// The settings of cloud `name` from the first clouds.yaml found (`OS_CLIENT_CONFIG_FILE`
/// names one explicitly), with secure.yaml's values merged in.
pub fn settings(name: &str, config_file: Option<PathBuf>, dirs: &[PathBuf]) -> Result<Layer> {
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
    let origin = Origin::CloudsYaml {
        cloud: name.to_string(),
        file: clouds_file.display().to_string(),
    };
    let doc: CloudDoc = serde_path_to_error::deserialize(entry).map_err(|e| {
        let origin = format!("cloud '{name}' in {}", clouds_file.display());
        anyhow::anyhow!(setting_error(
            &origin,
            &e.path().to_string(),
            &e.inner().to_string()
        ))
    })?;
    Ok(Layer { origin, doc })
}

/// A setting of the wrong kind, naming its key: "cloud 'dev' in F: `verify` must be true or
/// false, not string "nope"".
fn setting_error(origin: &str, key: &str, message: &str) -> String {
    match message
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        Some((found, expected)) => format!("{origin}: `{key}` must be {expected}, not {found}"),
        None => format!("{origin}: `{key}`: {message}"),
    }
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
        let doc = settings("dev", None, &[dir.path().to_path_buf()]).unwrap().doc;
        assert_eq!(doc.auth.auth_url.as_deref(), Some("http://k:5000/v3"));
        assert_eq!(doc.auth.password.as_deref(), Some("s3cret"));
        assert_eq!(doc.region_name.as_deref(), Some("RegionOne"));
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
        let resolve = |name: &str| {
            let layer = settings(name, None, &dirs).unwrap();
            crate::cloud::resolve(&openstack_image_documents::cloud::CloudSettings::new(vec![layer]))
        };
        assert!(matches!(
            resolve("ac").unwrap().cloud.credentials,
            crate::bindings::Credentials::ApplicationCredential(ref c) if c.id.as_deref() == Some("id1")
        ));
        assert!(matches!(
            resolve("tok").unwrap().cloud.credentials,
            crate::bindings::Credentials::Token(ref t) if t == "t"
        ));
        let err = resolve("bad").err().unwrap().to_string();
        assert!(
            err.contains("auth_type 'saml'") && err.contains("clouds.yaml"),
            "{err}"
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
            (
                "clouds:\n  dev:\n    auth: {auth_url: [u]}\n",
                "`auth.auth_url` must be text",
            ),
            (
                &format!("clouds:\n  dev:\n    auth_type: [5]\n    {url}\n"),
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
        let layer = settings("dev", None, &dirs).unwrap();
        assert!(
            matches!(&layer.origin, Origin::CloudsYaml { cloud, file } if cloud == "dev" && file.ends_with("clouds.yaml"))
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
