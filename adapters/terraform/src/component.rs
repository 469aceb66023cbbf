//! The component under the bundled host's sandbox: the [`Backend`] the provider binary runs.
//! Everything here is the host library's (the sandbox, its grants and limits, the run's one
//! Keystone token, clouds.yaml); this module only hands it the provider's documents.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::OnceCell;

use openstack_image::cloud::{self, CloudSettings};
use openstack_image::policy::{AllowedHost, DataSource, SpecGrants};
use openstack_image::progress::Display;
use openstack_image::runtime::{JsonFunction, Limits};
use openstack_image::sandbox::{self, Sandbox, SandboxSettings};
use openstack_image::session::TokenCache;

use crate::backend::{Backend, CloudConfig, ComponentError, Function};

/// The bundled host's defaults (`openstack-image --help`).
const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 512 * 1024 * 1024,
    call_deadline: Duration::from_secs(7200),
    output_bytes: 4096 * 1024,
};

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
    /// The cloud as the component's documents give it (TLS stays with the sandbox).
    document: Json,
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
        let document = cloud::document(&cloud);
        *self.configured.write().expect("backend lock") = Some(Arc::new(Configured { sandbox, document }));
        Ok(())
    }

    async fn call(&self, function: Function, mut request: Json) -> Result<Json, ComponentError> {
        // Downloads need a cache directory; the bundled host's default serves here too.
        if let Some(spec) = request.get_mut("spec") {
            let source: DataSource = serde_json::from_value(spec.clone()).unwrap_or_default();
            if source.needs_default_cache() {
                let dir = sandbox::default_image_cache().map_err(host_error)?;
                spec["image_cache_path"] = dir.to_string_lossy().into_owned().into();
            }
        }
        let source: DataSource = request
            .get("spec")
            .and_then(|spec| serde_json::from_value(spec.clone()).ok())
            .unwrap_or_default();
        let grants = SpecGrants::for_sources(std::iter::once(source)).map_err(host_error)?;
        let configured = self.configured();
        let sandbox = match (&configured, function) {
            (Some(configured), _) => &configured.sandbox,
            // `terraform validate` checks before any provider block is evaluated.
            (None, Function::Check) => &self.offline,
            (None, _) => {
                return Err(ComponentError::new(
                    "invalid-config",
                    "the provider is not configured; give it a provider block (or OS_* variables)",
                ));
            }
        };
        if let (Some(configured), Some(object)) = (&configured, request.as_object_mut())
            && !matches!(function, Function::Check | Function::Diff)
        {
            object.insert("cloud".into(), configured.document.clone());
        }
        let mut instance = sandbox
            .instance(grants, function.name())
            .await
            .map_err(host_error)?;
        let answer = instance
            .call_json(json_function(function), &request.to_string())
            .await
            .map_err(host_error)?;
        match answer {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                ComponentError::new("sandbox", format!("the component's answer is not JSON: {e}"))
            }),
            Err(text) => Err(serde_json::from_str(&text)
                .unwrap_or_else(|_| ComponentError::new("sandbox", format!("the component failed: {text}")))),
        }
    }
}

fn json_function(function: Function) -> JsonFunction {
    match function {
        Function::Check => JsonFunction::Check,
        Function::Diff => JsonFunction::Diff,
        Function::Create => JsonFunction::Create,
        Function::Read => JsonFunction::Read,
        Function::Update => JsonFunction::Update,
        Function::Delete => JsonFunction::Delete,
        Function::Find => JsonFunction::Find,
    }
}
