//! One run's sandbox: the compiled component, the grants every instance of the run gets (the
//! cloud's hosts and the allowed hosts), the run's Keystone sessions, and fresh instances that
//! add each image's own grants. The command line and the Terraform provider both run the
//! component through it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};

use openstack_image_documents::spec::DEFAULT_CACHE_SUBDIR;

use crate::auth::{Authenticator, TokenCache};
use crate::bindings::{Cloud, Credentials};
use crate::grants::SpecGrants;
use crate::image_cache;
use crate::network::{AllowedHost, CatalogHosts, NetworkPolicy};
use crate::progress::{Display, ImageProgress};
use crate::runtime::{
    CloudLink, EMBEDDED_COMPONENT, EMBEDDED_COMPONENT_ID, Grants, Instance, Limits, Runtime,
};
use crate::transport::{TlsSettings, Transport};

/// What the user chose for the sandbox.
pub struct SandboxSettings {
    /// Another build of the component to run instead of the embedded one.
    pub component: Option<PathBuf>,
    /// Hosts the component may reach besides the cloud's.
    pub allow_hosts: Vec<AllowedHost>,
    pub limits: Limits,
    /// How transfers are shown.
    pub display: Display,
}

/// The compiled component and the grants every instance gets.
#[derive(Clone)]
pub struct Sandbox {
    runtime: Runtime,
    extra_hosts: Vec<AllowedHost>,
    display: Display,
    /// The cloud its instances may reach; none: they reach no host at all.
    cloud: Option<CloudAccess>,
}

/// A cloud a sandbox's instances may reach.
#[derive(Clone)]
struct CloudAccess {
    /// The cloud as components get it: no credentials.
    cloud: Cloud,
    /// The run's connection pools, shared by every instance.
    transport: Transport,
    /// The image endpoints of the catalogs the run's logins received.
    catalog: CatalogHosts,
    /// The run's sessions.
    auth: Arc<Authenticator>,
}

impl Sandbox {
    /// Compiles (or loads the cached compiled) component. Its instances reach no host until
    /// [`Sandbox::for_cloud`] gives them a cloud (enough for `check` and `schema`).
    pub fn new(settings: &SandboxSettings) -> Result<Sandbox> {
        let cache = cache_base();
        let runtime = match &settings.component {
            Some(path) => {
                let wasm = std::fs::read(path)
                    .with_context(|| format!("cannot read the component {}", path.display()))?;
                Runtime::new(&wasm, None, settings.limits, cache.as_deref())?
            }
            None => {
                let runtime = Runtime::new(
                    EMBEDDED_COMPONENT,
                    Some(EMBEDDED_COMPONENT_ID),
                    settings.limits,
                    cache.as_deref(),
                )?;
                // The installed binary's component is loaded: compiled forms of other builds
                // (older releases, components run with --component) are of no more use.
                if let Some(dir) = &cache {
                    match image_cache::prune_compiled(dir, EMBEDDED_COMPONENT_ID) {
                        Ok(removed) if !removed.is_empty() => tracing::info!(
                            "removed {} compiled component(s) of other builds from {}",
                            removed.len(),
                            dir.display()
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(
                            "could not trim the compiled components in {}: {e:#}",
                            dir.display()
                        ),
                    }
                }
                runtime
            }
        };
        Ok(Sandbox {
            runtime,
            extra_hosts: settings.allow_hosts.clone(),
            display: settings.display.clone(),
            cloud: None,
        })
    }

    /// The same component for a run against `cloud`: its auth URL, the image endpoints of the
    /// catalogs the host receives and the allowed hosts are reachable, with its TLS settings;
    /// the host logs in (one session serves the run) and keeps the credentials.
    pub fn for_cloud(
        &self,
        cloud: &Cloud,
        tls: &TlsSettings,
        token_cache: Option<TokenCache>,
    ) -> Result<Sandbox> {
        if tls.insecure {
            eprintln!(
                "WARNING: TLS certificate verification is OFF for {} and its image endpoints \
                 (verify: false / OS_INSECURE): anyone on the network path can read your \
                 credentials and alter images. Use `cacert` with the cloud's CA instead.",
                cloud.auth_url
            );
        }
        let transport = Transport::new(tls)?;
        let catalog = CatalogHosts::default();
        let auth = Authenticator::new(cloud, transport.clone(), catalog.clone(), token_cache)?;
        Ok(Sandbox {
            cloud: Some(CloudAccess {
                cloud: Cloud {
                    credentials: Credentials::SessionOnly,
                    session: None,
                    ..cloud.clone()
                },
                transport,
                catalog,
                auth: Arc::new(auth),
            }),
            ..self.clone()
        })
    }

    /// The cloud the run acts on, as its lifecycle calls take it: without credentials (each
    /// call gets the run's session). None before [`Sandbox::for_cloud`].
    pub fn cloud(&self) -> Option<Cloud> {
        self.cloud.as_ref().map(|access| access.cloud.clone())
    }

    /// The component build's identity: its instances write below `component-<id>/` of each
    /// writable directory.
    pub fn component_id(&self) -> &str {
        self.runtime.component_id()
    }

    /// The same sandbox whose instances may also reach `hosts`.
    pub fn with_allowed_hosts(&self, hosts: Vec<AllowedHost>) -> Sandbox {
        let mut sandbox = self.clone();
        sandbox.extra_hosts.extend(hosts);
        sandbox
    }

    /// The same sandbox with instances limited to `bytes` of memory.
    pub fn with_memory_limit(&self, bytes: usize) -> Sandbox {
        let limits = Limits {
            memory_bytes: bytes,
            ..self.runtime.limits()
        };
        Sandbox {
            runtime: self.runtime.with_limits(limits),
            ..self.clone()
        }
    }

    /// A fresh instance with the common grants plus `grants`; its progress shows as `label`.
    pub async fn instance(&self, grants: SpecGrants, label: &str) -> Result<Instance> {
        let network = self.network(&grants.hosts)?;
        let (read_only, read_write) = grants.preopens(self.runtime.component_id())?;
        let mut instance = self
            .runtime
            .instantiate(
                Grants {
                    network: network.clone(),
                    read_only,
                    read_write,
                },
                ImageProgress::new(self.display.clone(), label),
            )
            .await?;
        instance.connect(network, self.link());
        Ok(instance)
    }

    /// Gives an instance of this sandbox's component (made without a cloud, e.g. to check a
    /// spec) this sandbox's network and cloud, plus `hosts`. Its directories stay as they were.
    pub fn connect(&self, instance: &mut Instance, hosts: &[AllowedHost]) -> Result<()> {
        instance.connect(self.network(hosts)?, self.link());
        Ok(())
    }

    fn link(&self) -> Option<CloudLink> {
        self.cloud.as_ref().map(|access| CloudLink {
            auth: access.auth.clone(),
            cloud: access.cloud.clone(),
        })
    }

    /// The network policy of an instance that may also reach `hosts`.
    fn network(&self, hosts: &[AllowedHost]) -> Result<NetworkPolicy> {
        Ok(match &self.cloud {
            Some(access) => {
                let mut allowed = self.extra_hosts.clone();
                allowed.extend_from_slice(hosts);
                NetworkPolicy::new(
                    &access.cloud.auth_url,
                    &allowed,
                    access.catalog.clone(),
                    access.transport.clone(),
                )
                .map_err(|e| anyhow!("the auth URL: {e}"))?
            }
            None => NetworkPolicy::offline(Transport::new(&TlsSettings::default())?),
        })
    }
}

/// This tool's cache directory: OPENSTACK_IMAGE_CACHE_DIR, else the user's cache directory.
pub fn cache_base() -> Option<PathBuf> {
    std::env::var_os("OPENSTACK_IMAGE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("openstack-image")))
}

/// Where downloads are cached when a spec does not say.
pub fn default_image_cache() -> Result<PathBuf> {
    let base = cache_base()
        .context("no cache directory: set image_cache_path in the spec or OPENSTACK_IMAGE_CACHE_DIR")?;
    Ok(base.join(DEFAULT_CACHE_SUBDIR))
}

/// Where the opt-in token cache keeps tokens.
pub fn token_cache_dir() -> Result<PathBuf> {
    let base =
        cache_base().context("no cache directory for the token cache: set OPENSTACK_IMAGE_CACHE_DIR")?;
    Ok(base.join("tokens"))
}
