//! One run's sandbox: the compiled component, the grants every instance of the run gets (the
//! cloud's hosts and the allowed hosts), the run's one Keystone token, and fresh instances
//! that add each image's own grants. The command line and the Terraform provider both run the
//! component through it.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use openstack_image_documents::spec::DEFAULT_CACHE_SUBDIR;

use crate::bindings::Cloud;
use crate::policy::{AllowedHost, NetworkPolicy, SpecGrants};
use crate::progress::{Display, ImageProgress};
use crate::runtime::{EMBEDDED_COMPONENT, Grants, Instance, Limits, Runtime};
use crate::session::{SessionSlot, TokenCache};
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
    auth_url: String,
    /// The run's connection pools, shared by every instance.
    transport: Transport,
    /// The run's Keystone token: the first instance to authenticate shares it with the rest.
    session: SessionSlot,
}

impl Sandbox {
    /// Compiles (or loads the cached compiled) component. Its instances reach no host until
    /// [`Sandbox::for_cloud`] gives them a cloud (enough for `check` and `schema`).
    pub fn new(settings: &SandboxSettings) -> Result<Sandbox> {
        let wasm = match &settings.component {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read the component {}", path.display()))?,
            None => EMBEDDED_COMPONENT.to_vec(),
        };
        Ok(Sandbox {
            runtime: Runtime::new(&wasm, settings.limits, cache_base().as_deref())?,
            extra_hosts: settings.allow_hosts.clone(),
            display: settings.display.clone(),
            cloud: None,
        })
    }

    /// The same component for a run against `cloud`: its auth URL, its image endpoints and
    /// the allowed hosts are reachable, with its TLS settings, and one token serves the run.
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
        Ok(Sandbox {
            runtime: self.runtime.clone(),
            extra_hosts: self.extra_hosts.clone(),
            display: self.display.clone(),
            cloud: Some(CloudAccess {
                auth_url: cloud.auth_url.clone(),
                transport: Transport::new(tls)?,
                session: SessionSlot::new(token_cache),
            }),
        })
    }

    /// The same sandbox whose instances may also reach `hosts`.
    pub fn with_allowed_hosts(&self, hosts: Vec<AllowedHost>) -> Sandbox {
        let mut extra_hosts = self.extra_hosts.clone();
        extra_hosts.extend(hosts);
        Sandbox {
            runtime: self.runtime.clone(),
            extra_hosts,
            display: self.display.clone(),
            cloud: self.cloud.clone(),
        }
    }

    /// The same sandbox with instances limited to `bytes` of memory.
    pub fn with_memory_limit(&self, bytes: usize) -> Sandbox {
        let limits = Limits {
            memory_bytes: bytes,
            ..self.runtime.limits()
        };
        Sandbox {
            runtime: self.runtime.with_limits(limits),
            extra_hosts: self.extra_hosts.clone(),
            display: self.display.clone(),
            cloud: self.cloud.clone(),
        }
    }

    /// A fresh instance with the common grants plus `grants`; its progress shows as `label`.
    pub async fn instance(&self, grants: SpecGrants, label: &str) -> Result<Instance> {
        let network = self.network(grants.hosts)?;
        self.runtime
            .instantiate(
                Grants {
                    network,
                    read_only_dirs: grants.read_only_dirs,
                    read_write_dirs: grants.read_write_dirs,
                },
                ImageProgress::new(self.display.clone(), label),
            )
            .await
    }

    /// Gives an instance of this sandbox's component (made without a cloud, e.g. to check a
    /// spec) this sandbox's network: its cloud, plus `hosts`. Its directories stay as they were.
    pub fn connect(&self, instance: &mut Instance, hosts: Vec<AllowedHost>) -> Result<()> {
        instance.set_network(self.network(hosts)?);
        Ok(())
    }

    /// The network policy of an instance that may also reach `hosts`.
    fn network(&self, hosts: Vec<AllowedHost>) -> Result<NetworkPolicy> {
        Ok(match &self.cloud {
            Some(cloud) => {
                let mut allowed = self.extra_hosts.clone();
                allowed.extend(hosts);
                NetworkPolicy::new(
                    &cloud.auth_url,
                    &allowed,
                    cloud.transport.clone(),
                    cloud.session.clone(),
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
