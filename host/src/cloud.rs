//! The cloud a run acts on: its sources — explicit settings (`--retries`, a Terraform provider
//! block), the `OS_*` environment, the named cloud of clouds.yaml with secure.yaml — resolved
//! by the one rule every runtime shares (`openstack_image_documents::resolution::resolve_sources`,
//! which the component also exports as `resolve-cloud-json`); this module only gives it the
//! process environment and the files.

use std::path::{Path, PathBuf};

use anyhow::Result;
use openstack_image_documents::cloud::{CloudDoc, Layer, Origin};
use openstack_image_documents::resolution::{ResolvedCloud, Sources, resolve_sources};

use crate::bindings::Cloud;
use crate::spec::read_text_file;

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
    /// Keep the Keystone session between runs.
    pub token_cache: bool,
}

impl From<ResolvedCloud> for CloudConfig {
    fn from(resolved: ResolvedCloud) -> CloudConfig {
        CloudConfig {
            cloud: resolved.cloud.into(),
            tls: TlsSettings {
                cacert: resolved.cacert.map(PathBuf::from),
                insecure: resolved.insecure,
            },
            token_cache: resolved.token_cache,
        }
    }
}

impl CloudConfig {
    /// The resolution as documents have it (what `cloud show` and `resolve-cloud-json` print).
    pub fn resolved(&self) -> ResolvedCloud {
        ResolvedCloud {
            cloud: self.cloud.clone().into(),
            cacert: self.tls.cacert.as_ref().map(|p| p.to_string_lossy().into_owned()),
            insecure: self.tls.insecure,
            token_cache: self.token_cache,
        }
    }
}

/// The cloud from `explicit` settings (highest first), the process environment and the
/// clouds.yaml cloud `name` (else `OS_CLOUD`'s).
pub fn resolve(explicit: Vec<Layer>, name: Option<&str>) -> Result<CloudConfig> {
    resolve_with(explicit, name, &|k| std::env::var(k).ok())
}

/// [`resolve`] with the environment read through `var`.
pub fn resolve_with(
    explicit: Vec<Layer>,
    name: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<CloudConfig> {
    let sources = Sources {
        explicit,
        cloud: name.map(str::to_string),
        var,
        read: &read_settings_file,
    };
    resolve_sources(&sources)
        .map(CloudConfig::from)
        .map_err(anyhow::Error::msg)
}

/// The cloud a clouds.yaml cloud entry describes (`explicit`, e.g. from a Terraform provider
/// block), over the environment and the clouds.yaml cloud `name`.
pub fn from_entry(name: Option<&str>, explicit: &serde_json::Value) -> Result<CloudConfig> {
    let doc: CloudDoc = serde_path_to_error::deserialize(explicit)
        .map_err(|e| anyhow::anyhow!("the provider settings: `{}`: {}", e.path(), e.inner()))?;
    let layer = Layer {
        origin: Origin::Explicit("the provider settings".to_string()),
        doc,
    };
    resolve(vec![layer], name)
}

/// A clouds.yaml or secure.yaml: none when there is no such file.
fn read_settings_file(path: &str) -> Option<Result<String, String>> {
    let path = Path::new(path);
    path.is_file()
        .then(|| read_text_file(path, "cloud settings file").map_err(|e| format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Credentials;
    use std::collections::HashMap;

    fn cloud_with(vars: &[(&str, &str)]) -> Result<CloudConfig> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve_with(Vec::new(), None, &|k| map.get(k).cloned())
    }

    #[test]
    fn password_cloud_from_openrc_variables() {
        let c = cloud_with(&[
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_NAME", "admin"),
            ("OS_INTERFACE", "publicURL"),
        ])
        .unwrap()
        .cloud;
        assert!(
            matches!(c.credentials, Credentials::Password(ref p) if p.username.as_deref() == Some("admin"))
        );
        assert_eq!(c.interface.as_deref(), Some("public"));
    }

    #[test]
    fn problems_name_the_variable() {
        let err = |vars: &[(&str, &str)]| cloud_with(vars).err().unwrap().to_string();
        assert!(err(&[]).contains("OS_AUTH_URL"));
        assert!(err(&[("OS_AUTH_URL", "u"), ("OS_USERNAME", "a")]).contains("OS_PASSWORD"));
        let sideways = err(&[
            ("OS_AUTH_URL", "u"),
            ("OS_TOKEN", "t"),
            ("OS_INTERFACE", "sideways"),
        ]);
        assert!(sideways.contains("OS_INTERFACE is 'sideways'"), "{sideways}");
        assert!(err(&[("OS_INSECURE", "maybe")]).contains("OS_INSECURE is 'maybe'"));
        let cache = err(&[("OPENSTACK_IMAGE_TOKEN_CACHE", "on")]);
        assert!(cache.contains("OPENSTACK_IMAGE_TOKEN_CACHE"), "{cache}");
    }

    #[test]
    fn clouds_yaml_is_read_from_the_file_the_environment_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clouds.yaml");
        std::fs::write(
            &file,
            "clouds:\n  dev:\n    auth:\n      auth_url: http://k/v3\n      username: u\n    verify: false\n    cacert: /ca.pem\n    cache: {auth: true}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secure.yaml"),
            "clouds:\n  dev:\n    auth:\n      password: p\n",
        )
        .unwrap();
        let path = file.to_string_lossy().into_owned();
        let config = cloud_with(&[
            ("OS_CLIENT_CONFIG_FILE", &path),
            ("OS_CLOUD", "dev"),
            ("OS_REGION_NAME", "R"),
        ])
        .unwrap();
        assert!(matches!(config.cloud.credentials, Credentials::Password(ref p) if p.password == "p"));
        assert_eq!(config.cloud.region.as_deref(), Some("R"), "the environment wins");
        assert!(config.tls.insecure && config.token_cache);
        assert_eq!(config.tls.cacert.as_deref(), Some(Path::new("/ca.pem")));
    }
}
