//! `clouds.yaml` and `secure.yaml`, as openstacksdk users know them: a named cloud's entry,
//! with secure.yaml's values merged in, is one layer of cloud settings (a cloud document) below
//! the `OS_*` environment. Where the files are looked for follows the environment
//! (`OS_CLIENT_CONFIG_FILE`, `XDG_CONFIG_HOME`, `HOME`); the files themselves are read by the
//! caller ([`FileReader`]), so every runtime — and the component, given the files' texts —
//! reads them alike.

use serde_yaml_ng::{Mapping, Value};

use crate::cloud::{CloudDoc, Layer, Origin};

/// Reads a file: `None` when there is none at that path, the text or why it cannot be read.
pub type FileReader<'a> = &'a dyn Fn(&str) -> Option<Result<String, String>>;

/// The directories clouds.yaml and secure.yaml are looked for in, in order (openstacksdk's:
/// the working directory, the user's configuration, the system's).
pub fn search_dirs(var: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut dirs = vec![".".to_string()];
    if let Some(config) = var("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        dirs.push(format!("{}/openstack", config.trim_end_matches('/')));
    }
    if let Some(home) = var("HOME").filter(|d| !d.is_empty()) {
        dirs.push(format!("{}/.config/openstack", home.trim_end_matches('/')));
    }
    dirs.push("/etc/openstack".to_string());
    dirs.dedup();
    dirs
}

/// The clouds.yaml files to look for, in order: the one `OS_CLIENT_CONFIG_FILE` names, or
/// `clouds.yaml` / `clouds.yml` in each of the [`search_dirs`].
pub fn clouds_files(var: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match var("OS_CLIENT_CONFIG_FILE").filter(|f| !f.is_empty()) {
        Some(file) => vec![file],
        None => search_dirs(var)
            .iter()
            .flat_map(|d| [format!("{d}/clouds.yaml"), format!("{d}/clouds.yml")])
            .collect(),
    }
}

/// The secure.yaml files to look for once `clouds_file` was found: beside it, then in each
/// of the [`search_dirs`].
pub fn secure_files(clouds_file: &str, var: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let beside = match clouds_file.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir.to_string(),
        Some(_) => String::new(),
        None => ".".to_string(),
    };
    let mut files = vec![format!("{beside}/secure.yaml")];
    files.extend(search_dirs(var).iter().map(|d| format!("{d}/secure.yaml")));
    files.dedup();
    files
}

/// Every file a [`layer`] for a cloud may read, for callers that read them up front.
pub fn candidate_files(var: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut files = clouds_files(var);
    for clouds in clouds_files(var) {
        for secure in secure_files(&clouds, var) {
            if !files.contains(&secure) {
                files.push(secure);
            }
        }
    }
    files
}

/// The settings of cloud `name` from the first clouds.yaml found, with secure.yaml's values
/// merged in.
pub fn layer(name: &str, var: &dyn Fn(&str) -> Option<String>, read: FileReader) -> Result<Layer, String> {
    let candidates = clouds_files(var);
    let mut found = None;
    for file in &candidates {
        if let Some(text) = read(file) {
            found = Some((file.clone(), text?));
            break;
        }
    }
    let Some((clouds_file, text)) = found else {
        return Err(format!(
            "cloud '{name}': no clouds.yaml found (looked for {})",
            candidates.join(", ")
        ));
    };
    let all = clouds(&clouds_file, &text)?;
    let mut settings = entry(&all, &clouds_file, name)?.ok_or_else(|| {
        let known: Vec<&str> = all.keys().filter_map(Value::as_str).collect();
        format!(
            "cloud '{name}' is not in {clouds_file} (it has: {}); fix --cloud / OS_CLOUD",
            if known.is_empty() {
                "no clouds".to_string()
            } else {
                known.join(", ")
            }
        )
    })?;
    for secure in secure_files(&clouds_file, var) {
        if let Some(text) = read(&secure) {
            if let Some(secrets) = entry(&clouds(&secure, &text?)?, &secure, name)? {
                merge(&mut settings, secrets);
            }
            break;
        }
    }
    let doc: CloudDoc = serde_path_to_error::deserialize(settings).map_err(|e| {
        setting_error(
            &format!("cloud '{name}' in {clouds_file}"),
            &e.path().to_string(),
            &e.inner().to_string(),
        )
    })?;
    Ok(Layer {
        origin: Origin::CloudsYaml {
            cloud: name.to_string(),
            file: clouds_file,
        },
        doc,
    })
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

/// The `clouds:` mapping of a clouds.yaml or secure.yaml (an empty file has none).
fn clouds(file: &str, text: &str) -> Result<Mapping, String> {
    let document: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{file} is not valid YAML: {e}"))?;
    let clouds = match document {
        Value::Null => return Ok(Mapping::new()),
        Value::Mapping(document) => document.get("clouds").cloned(),
        _ => {
            return Err(format!(
                "{file} is not a YAML mapping; it should start with `clouds:`"
            ));
        }
    };
    match clouds {
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(Value::Mapping(clouds)) => Ok(clouds),
        Some(_) => Err(format!(
            "{file}: `clouds` must be a mapping of cloud names to their settings"
        )),
    }
}

fn entry(clouds: &Mapping, file: &str, name: &str) -> Result<Option<Value>, String> {
    match clouds.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Value::Mapping(Mapping::new()))),
        Some(entry @ Value::Mapping(_)) => Ok(Some(entry.clone())),
        Some(_) => Err(format!(
            "{file}: cloud '{name}' must be a mapping of settings (auth, region_name, …)"
        )),
    }
}

/// `over`'s values win over `base`'s, key by key (nested maps merge): secure.yaml over
/// clouds.yaml.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A reader over `files` (path -> text), and an environment pointing at `dev/clouds.yaml`.
    fn reader(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<Result<String, String>> + use<> {
        let files: BTreeMap<String, String> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        move |path| files.get(path).cloned().map(Ok)
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            _ => None,
        }
    }

    #[test]
    fn files_are_looked_for_where_openstacksdk_looks() {
        assert_eq!(
            clouds_files(&env),
            [
                "./clouds.yaml",
                "./clouds.yml",
                "/home/u/.config/openstack/clouds.yaml",
                "/home/u/.config/openstack/clouds.yml",
                "/etc/openstack/clouds.yaml",
                "/etc/openstack/clouds.yml"
            ]
        );
        let named = |v: &str| (v == "OS_CLIENT_CONFIG_FILE").then(|| "/srv/c.yaml".to_string());
        assert_eq!(clouds_files(&named), ["/srv/c.yaml"]);
        assert_eq!(secure_files("/srv/c.yaml", &named)[0], "/srv/secure.yaml");
        assert!(candidate_files(&env).contains(&"/home/u/.config/openstack/secure.yaml".to_string()));
    }

    #[test]
    fn finds_the_cloud_and_merges_secure_yaml() {
        let read = reader(&[
            (
                "/home/u/.config/openstack/clouds.yaml",
                "clouds:\n  dev:\n    auth:\n      auth_url: http://k:5000/v3\n      username: admin\n    region_name: RegionOne\n  other: {}\n",
            ),
            (
                "/etc/openstack/secure.yaml",
                "clouds:\n  dev:\n    auth:\n      password: s3cret\n",
            ),
        ]);
        let layer = layer("dev", &env, &read).unwrap();
        assert_eq!(layer.doc.auth.auth_url.as_deref(), Some("http://k:5000/v3"));
        assert_eq!(layer.doc.auth.password.as_deref(), Some("s3cret"));
        assert_eq!(layer.doc.region_name.as_deref(), Some("RegionOne"));
        assert!(
            matches!(&layer.origin, Origin::CloudsYaml { cloud, file } if cloud == "dev" && file == "/home/u/.config/openstack/clouds.yaml")
        );
        let err = super::layer("prod", &env, &read).unwrap_err();
        assert!(err.contains("(it has: dev, other)"), "{err}");
        let err = super::layer("dev", &env, &reader(&[])).unwrap_err();
        assert!(err.contains("no clouds.yaml found"), "{err}");
    }

    #[test]
    fn malformed_files_name_the_file_and_key() {
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
            ("clouds: {dev: [\n", "not valid YAML"),
        ] {
            let err = layer("dev", &env, &reader(&[("./clouds.yaml", clouds)])).unwrap_err();
            assert!(err.contains(expected), "{clouds}: {err}");
            assert!(err.contains("clouds.yaml"), "{clouds}: {err}");
        }
        let read = reader(&[
            ("./clouds.yaml", &format!("clouds:\n  dev:\n    {url}\n")),
            ("./secure.yaml", "clouds:\n  dev: secret\n"),
        ]);
        let err = layer("dev", &env, &read).unwrap_err();
        assert!(
            err.contains("secure.yaml") && err.contains("cloud 'dev'"),
            "{err}"
        );
        let unreadable = |path: &str| (path == "./clouds.yaml").then(|| Err("permission denied".to_string()));
        assert_eq!(layer("dev", &env, &unreadable).unwrap_err(), "permission denied");
    }
}
