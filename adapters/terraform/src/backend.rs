//! The seam between this provider and whatever runs the component: the provider maps
//! Terraform's protocol onto the component's JSON documents (`interface resource` in
//! wit/image.wit) and the backend runs them. The provider never knows how.

use std::future::Future;

use serde::Deserialize;
use serde_json::Value as Json;

/// One function of the component's JSON face (the host runtime's, names and documents).
pub use openstack_image::runtime::JsonFunction as Function;

/// The component's `err` document: `{"kind", "message", "fields": [{"field", "message"}]}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ComponentError {
    /// The typed error's case name (`invalid-spec`, `auth-failed`, ...).
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub fields: Vec<FieldError>,
}

/// A problem with one input field.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FieldError {
    /// Field name in the documents' snake_case (`disk_format`, `properties.foo`, `timeouts.create`).
    pub field: String,
    pub message: String,
}

impl ComponentError {
    /// An error of this provider's own making, in the component's form.
    pub fn new(kind: &str, message: impl Into<String>) -> ComponentError {
        ComponentError {
            kind: kind.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }
}

/// Where the component's calls go: built from the provider block.
pub struct CloudConfig {
    /// A clouds.yaml cloud entry (`auth`, `auth_type`, `region_name`, `interface`, `cacert`,
    /// `verify`), holding only what the provider block or the OS_* variables set. It is merged
    /// over the clouds.yaml cloud named by `cloud`, if any.
    pub entry: Json,
    /// The clouds.yaml cloud to start from (`cloud` / OS_CLOUD).
    pub cloud: Option<String>,
    /// Extra hosts (`host` or `host:port`) the sandbox may reach, e.g. image source servers.
    pub allow_hosts: Vec<String>,
    /// The sandbox's memory limit.
    pub memory_limit_mib: Option<u64>,
    /// The download cache's limit (`cache_max_size`), when the block sets it.
    pub cache_max_size: Option<openstack_image::image_cache::MaxSize>,
}

impl std::fmt::Debug for CloudConfig {
    // The entry holds passwords and tokens: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("cloud", &self.cloud)
            .field("allow_hosts", &self.allow_hosts)
            .field("memory_limit_mib", &self.memory_limit_mib)
            .field("cache_max_size", &self.cache_max_size)
            .finish_non_exhaustive()
    }
}

/// Runs the component. Calls may come concurrently (Terraform walks its graph in parallel).
pub trait Backend: Send + Sync + 'static {
    /// The component's `schema()` document (JSON Schema with `$defs.spec`, `state`, `query`).
    fn schema(&self) -> impl Future<Output = Result<Json, ComponentError>> + Send;

    /// Remembers where later calls go. Terraform calls it once, before any call except
    /// `schema` and [`Function::Check`] (which `terraform validate` uses unconfigured).
    fn configure(&self, config: CloudConfig) -> impl Future<Output = Result<(), ComponentError>> + Send;

    /// Calls one function with a request document as wit/image.wit describes it, without
    /// `cloud`: the backend adds the configured cloud itself.
    fn call(
        &self,
        function: Function,
        request: Json,
    ) -> impl Future<Output = Result<Json, ComponentError>> + Send;
}
