//! The one rule by which every runtime turns its settings into a cloud — the CLI, the
//! Terraform provider, and through the component's `resolve-cloud-json` the Node.js and Python
//! adapters: explicit settings over the `OS_*` environment over the named clouds.yaml cloud.

use serde_json::Value;

use crate::cloud::{CLOUD_VARIABLE, CloudDoc, CloudSettings, Layer, describe, environment};
use crate::clouds_yaml;
use crate::records::CloudRecord;

/// Where a runtime's cloud comes from: explicit settings, the environment and, when a cloud is
/// named (explicitly or by `OS_CLOUD`), clouds.yaml with secure.yaml.
pub struct Sources<'a> {
    /// Settings given explicitly (a provider block, command-line flags), highest first.
    pub explicit: Vec<Layer>,
    /// The clouds.yaml cloud named explicitly (`--cloud`, a provider's `cloud`).
    pub cloud: Option<String>,
    /// The environment.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// Reads clouds.yaml and secure.yaml.
    pub read: clouds_yaml::FileReader<'a>,
}

/// A cloud resolved from its [`Sources`]: the typed cloud and the settings that stay with
/// the runtime (TLS trust, whether to keep the session).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedCloud {
    pub cloud: CloudRecord,
    /// A private CA's PEM file to trust.
    pub cacert: Option<String>,
    /// TLS verification is off (`verify: false`, `OS_INSECURE`).
    pub insecure: bool,
    /// Keep the session for the next run (`cache: {auth: true}`).
    pub token_cache: bool,
}

impl ResolvedCloud {
    /// As the JSON document `resolve-cloud-json` answers: `{"cloud": CLOUD, "cacert",
    /// "verify", "token_cache"}`; the cloud document is the one that resolves to the cloud.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cloud": CloudDoc::of(&self.cloud).to_json(),
            "cacert": self.cacert,
            "verify": !self.insecure,
            "token_cache": self.token_cache,
        })
    }

    /// [`ResolvedCloud::to_json`] with the secrets (password, application credential secret,
    /// token, the session's token) shown as `(sensitive)`.
    pub fn masked(&self) -> Value {
        let mut doc = self.to_json();
        for pointer in [
            "/cloud/auth/password",
            "/cloud/auth/application_credential_secret",
            "/cloud/auth/token",
            "/cloud/session/token",
        ] {
            if let Some(secret) = doc.pointer_mut(pointer) {
                *secret = Value::String("(sensitive)".into());
            }
        }
        doc
    }
}

/// The one rule by which every runtime turns its settings into a cloud: explicit settings win
/// over the environment, which wins over clouds.yaml, setting by setting; then
/// [`CloudSettings::resolve`]. Every problem is said naming the variable or key to fix.
pub fn resolve_sources(sources: &Sources) -> Result<ResolvedCloud, String> {
    let mut layers = sources.explicit.clone();
    layers.push(environment(sources.var)?);
    let name = sources
        .cloud
        .clone()
        .or_else(|| (sources.var)(CLOUD_VARIABLE).filter(|c| !c.is_empty()));
    if let Some(name) = name {
        layers.push(clouds_yaml::layer(&name, sources.var, sources.read)?);
    }
    let settings = CloudSettings::new(layers);
    let cloud = settings
        .resolve()
        .map_err(|problem| describe(&problem, &settings))?;
    Ok(ResolvedCloud {
        cloud,
        cacert: settings.cacert(),
        insecure: settings.insecure(),
        token_cache: settings.token_cache(),
    })
}
