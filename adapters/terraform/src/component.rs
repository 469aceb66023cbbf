//! The component under the bundled host's sandbox: the [`Backend`] the provider binary runs.
//! Everything here is the host library's (the sandbox, its grants and limits, the process's
//! one Keystone session, clouds.yaml); this module only hands it the provider's documents.
//! The credentials stay in the host: the component's requests get the sandbox's cloud
//! document (no secrets, the session), whatever they carried.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::OnceCell;

use openstack_image::auth::TokenCache;
use openstack_image::cloud::{self, CloudConfig as CloudSettings};
use openstack_image::grants::{DataSource, SpecGrants};
use openstack_image::image_cache::{DEFAULT_MAX_SIZE, MaxSize, RunCaches};
use openstack_image::network::AllowedHost;
use openstack_image::progress::Display;
use openstack_image::runtime::Limits;
use openstack_image::sandbox::{self, Sandbox, SandboxSettings};

use crate::backend::{Backend, CloudConfig, ComponentError, Function};

/// The bundled host's defaults (`openstack-image --help`).
const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 512 * 1024 * 1024,
    call_deadline: Duration::from_secs(7200),
    output_bytes: 4096 * 1024,
};

/// The variable the bundled host's `--cache-max-size` falls back on, read here too.
const CACHE_MAX_SIZE_VAR: &str = "OPENSTACK_IMAGE_CACHE_MAX_SIZE";

/// The embedded component, sandboxed as `openstack-image` runs it.
pub struct SandboxBackend {
    /// The compiled component; its instances reach no host (`schema`, `check`).
    offline: Sandbox,
    schema: OnceCell<Json>,
    configured: RwLock<Option<Arc<Configured>>>,
}

/// The cloud of a configured provider.
struct Configured {
    sandbox: Sandbox,
    /// The download cache's limit: the block's, else OPENSTACK_IMAGE_CACHE_MAX_SIZE's, else
    /// the bundled host's default.
    cache_max_size: MaxSize,
}

impl SandboxBackend {
    /// Compiles the embedded component (or loads its cached compiled form).
    pub fn new() -> Result<SandboxBackend, String> {
        let settings = SandboxSettings {
            component: None,
            allow_hosts: Vec::new(),
            limits: DEFAULT_LIMITS,
            // Terraform keeps a provider's stderr for its logs: no progress lines there.
            display: Display::Quiet,
        };
        let offline = Sandbox::new(&settings).map_err(|e| format!("{e:#}"))?;
        Ok(SandboxBackend {
            offline,
            schema: OnceCell::new(),
            configured: RwLock::new(None),
        })
    }

    fn configured(&self) -> Option<Arc<Configured>> {
        self.configured.read().expect("backend lock").clone()
    }
}

fn host_error(err: anyhow::Error) -> ComponentError {
    ComponentError::new("sandbox", format!("{err:#}"))
}

impl Backend for SandboxBackend {
    async fn schema(&self) -> Result<Json, ComponentError> {
        self.schema
            .get_or_try_init(|| async {
                let mut instance = self
                    .offline
                    .instance(SpecGrants::default(), "schema")
                    .await
                    .map_err(host_error)?;
                let text = instance.schema().await.map_err(host_error)?;
                serde_json::from_str(&text).map_err(|e| {
                    ComponentError::new("sandbox", format!("the component's schema is not JSON: {e}"))
                })
            })
            .await
            .cloned()
    }

    async fn configure(&self, config: CloudConfig) -> Result<(), ComponentError> {
        let invalid = |err: anyhow::Error| ComponentError::new("invalid-config", format!("{err:#}"));
        let CloudSettings {
            cloud,
            tls,
            token_cache,
        } = cloud::from_entry(config.cloud.as_deref(), &config.entry).map_err(invalid)?;
        let allow_hosts = config
            .allow_hosts
            .iter()
            .map(|h| {
                AllowedHost::parse(h)
                    .map_err(|e| ComponentError::new("invalid-config", format!("allow_hosts: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let token_cache = if token_cache {
            let dir = sandbox::token_cache_dir().map_err(invalid)?;
            TokenCache::for_cloud(&dir, &cloud)
        } else {
            None
        };
        let mut sandbox = self
            .offline
            .with_allowed_hosts(allow_hosts)
            .for_cloud(&cloud, &tls, token_cache)
            .map_err(invalid)?;
        if let Some(mib) = config.memory_limit_mib {
            sandbox = sandbox.with_memory_limit(
                usize::try_from(mib)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(1024 * 1024),
            );
        }
        let cache_max_size = match config.cache_max_size {
            Some(size) => size,
            None => std::env::var(CACHE_MAX_SIZE_VAR)
                .unwrap_or_else(|_| DEFAULT_MAX_SIZE.to_string())
                .parse()
                .map_err(|e| ComponentError::new("invalid-config", format!("{CACHE_MAX_SIZE_VAR}: {e}")))?,
        };
        *self.configured.write().expect("backend lock") = Some(Arc::new(Configured {
            sandbox,
            cache_max_size,
        }));
        Ok(())
    }

    async fn call(&self, function: Function, mut request: Json) -> Result<Json, ComponentError> {
        // Paths as Terraform users write them: relative to the working directory (the
        // provider's own), resolved as the CLI resolves a spec's.
        let base = std::env::current_dir().map_err(|e| host_error(e.into()))?;
        let spellings = resolve_paths(&mut request, &base);
        // Downloads need a cache directory; the bundled host's default serves here too.
        if let Some(spec) = request.get_mut("spec") {
            let source = DataSource::from_json(spec);
            if source.needs_default_cache() {
                let dir = sandbox::default_image_cache().map_err(host_error)?;
                spec["image_cache_path"] = dir.to_string_lossy().into_owned().into();
            }
        }
        let source = request.get("spec").map(DataSource::from_json).unwrap_or_default();
        let grants = SpecGrants::for_sources(std::iter::once(source.clone())).map_err(host_error)?;
        let configured = self.configured();
        let sandbox = match (&configured, function) {
            (Some(configured), _) => &configured.sandbox,
            // `terraform validate` checks before any provider block is evaluated.
            (None, Function::Check | Function::CheckMembership) => &self.offline,
            (None, _) => {
                return Err(ComponentError::new(
                    "invalid-config",
                    "the provider is not configured; give it a provider block (or OS_* variables)",
                ));
            }
        };
        // The download this call may use is held while it runs; then the cache is trimmed.
        let caches = match &configured {
            Some(configured) => Some(
                RunCaches::begin([source], sandbox.component_id(), configured.cache_max_size)
                    .map_err(host_error)?,
            ),
            None => None,
        };
        let mut instance = sandbox
            .instance(grants, function.name())
            .await
            .map_err(host_error)?;
        let answer = instance
            .call_json(function, &request.to_string())
            .await
            .map_err(host_error);
        drop(instance);
        if let Some(caches) = caches {
            caches.finish();
        }
        let answer = answer?;
        match answer {
            Ok(text) => {
                let mut answer: Json = serde_json::from_str(&text).map_err(|e| {
                    ComponentError::new("sandbox", format!("the component's answer is not JSON: {e}"))
                })?;
                respell_paths(&mut answer, &spellings);
                Ok(answer)
            }
            Err(text) => Err(serde_json::from_str(&text)
                .unwrap_or_else(|_| ComponentError::new("sandbox", format!("the component failed: {text}")))),
        }
    }
}

/// The fields that name a file or directory on this machine.
const PATH_FIELDS: [&str; 2] = ["local_file_path", "image_cache_path"];

/// Resolves every path field in `doc` (spec, prior spec, state) against `base`; returns
/// (resolved, as written) for each one that changed.
fn resolve_paths(doc: &mut Json, base: &std::path::Path) -> Vec<(String, String)> {
    let mut spellings = Vec::new();
    walk_paths(doc, &mut |written| {
        if written.is_empty() || written == "none" {
            return None;
        }
        let resolved = openstack_image::spec::resolve(base, written);
        (resolved != written).then(|| {
            spellings.push((resolved.clone(), written.to_string()));
            resolved
        })
    });
    spellings
}

/// Puts the configuration's spelling back into an answer, so the state holds what was planned.
fn respell_paths(doc: &mut Json, spellings: &[(String, String)]) {
    walk_paths(doc, &mut |value| {
        spellings
            .iter()
            .find(|(resolved, _)| resolved == value)
            .map(|(_, written)| written.clone())
    });
}

/// Calls `replace` on every string under a path field, anywhere in `doc`.
fn walk_paths(doc: &mut Json, replace: &mut impl FnMut(&str) -> Option<String>) {
    match doc {
        Json::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Json::String(text) if PATH_FIELDS.contains(&key.as_str()) => {
                        if let Some(new) = replace(text) {
                            *text = new;
                        }
                    }
                    _ => walk_paths(value, replace),
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|item| walk_paths(item, replace)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_paths_resolve_against_the_working_directory_and_answers_keep_their_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(base.join("disk.qcow2"), b"x").unwrap();
        let mut request = json!({
            "spec": { "local_file_path": "./disk.qcow2", "image_cache_path": "none", "name": "./disk.qcow2" },
            "prior": { "spec": { "local_file_path": "./disk.qcow2" } },
        });
        let spellings = resolve_paths(&mut request, &base);
        let absolute = base.join("disk.qcow2").to_string_lossy().into_owned();
        assert_eq!(request["spec"]["local_file_path"], absolute.as_str());
        assert_eq!(request["prior"]["spec"]["local_file_path"], absolute.as_str());
        assert_eq!(request["spec"]["image_cache_path"], "none");
        assert_eq!(request["spec"]["name"], "./disk.qcow2", "only path fields");

        let mut answer = json!({ "state": { "local_file_path": absolute, "name": "x" } });
        respell_paths(&mut answer, &spellings);
        assert_eq!(answer["state"]["local_file_path"], "./disk.qcow2");
    }
}
