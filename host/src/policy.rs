//! The capability policy: which hosts the component may call, and the sandbox's limits.
//! Every grant the host gives a component is decided here.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions};
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

use openstack_image_documents::SpecDoc;
use openstack_image_documents::spec::{ImportMethod, UrlData};

use crate::bindings::{ImageSpec, Session};
use crate::session::{Claim, SessionSlot};
use crate::transport::Transport;

/// What a spec's images need beyond the cloud: the directories of local files (read-only),
/// download caches (read-write, created if missing), and the hosts of source URLs.
#[derive(Default)]
pub struct SpecGrants {
    pub read_only_dirs: Vec<PathBuf>,
    pub read_write_dirs: Vec<PathBuf>,
    pub hosts: Vec<AllowedHost>,
}

/// Where an image's data comes from: all the grants and the download cache depend on. Read
/// through the spec document, from a typed spec or from a JSON spec document.
#[derive(Debug, Default)]
pub struct DataSource(SpecDoc);

impl DataSource {
    /// The data source of a typed spec.
    pub fn of(spec: &ImageSpec) -> DataSource {
        DataSource(SpecDoc::from(spec.clone()))
    }

    /// The data source of a JSON spec document; one that is not a spec document has none
    /// (the component names what is wrong with it).
    pub fn from_json(spec: &Value) -> DataSource {
        serde_json::from_value(spec.clone())
            .map(DataSource)
            .unwrap_or_default()
    }

    /// The image file to read, if any.
    pub fn local_file_path(&self) -> Option<&str> {
        self.0.local_file_path.as_deref()
    }

    /// How the component gets the data of this source's URL (the one rule, shared with the
    /// component).
    pub fn url_data(&self) -> UrlData<'_> {
        let spec = &self.0;
        let method = ImportMethod::of(spec.import_method.as_deref(), spec.web_download);
        UrlData::of(
            spec.image_source_url.as_deref(),
            method.is_some_and(ImportMethod::glance_fetches),
            spec.image_cache_path.as_deref(),
        )
    }

    /// The URL the component downloads itself (Glance downloads web-download sources).
    pub fn downloaded_url(&self) -> Option<&str> {
        match self.url_data() {
            UrlData::Streamed(url) | UrlData::Cached(url, _) => Some(url),
            UrlData::NotFetched => None,
        }
    }

    /// True when a download needs a cache directory and the spec names none.
    pub fn needs_default_cache(&self) -> bool {
        matches!(self.url_data(), UrlData::Cached(_, None))
    }

    /// The cache directory a download uses, if any.
    pub fn cache_dir(&self) -> Option<&str> {
        match self.url_data() {
            UrlData::Cached(_, cache) => cache,
            _ => None,
        }
    }
}

impl SpecGrants {
    /// The grants for `images` (paths already absolute).
    pub fn for_images<'a>(images: impl Iterator<Item = &'a ImageSpec>) -> anyhow::Result<SpecGrants> {
        Self::for_sources(images.map(DataSource::of))
    }

    /// The grants for images with these data sources (paths already absolute).
    pub fn for_sources(sources: impl Iterator<Item = DataSource>) -> anyhow::Result<SpecGrants> {
        let (mut read_only, mut read_write, mut hosts) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for source in sources {
            if let Some(dir) = source.local_file_path().and_then(|f| Path::new(f).parent())
                && dir.is_dir()
            {
                read_only.insert(dir.to_path_buf());
            }
            if let Some(url) = source.downloaded_url()
                && let Ok(host) = AllowedHost::parse(url)
            {
                hosts.insert(host);
            }
            if let Some(cache) = source.cache_dir() {
                std::fs::create_dir_all(cache)
                    .map_err(|e| anyhow::anyhow!("image_cache_path: cannot create {cache}: {e}"))?;
                read_write.insert(PathBuf::from(cache));
            }
        }
        Ok(SpecGrants {
            read_only_dirs: read_only.into_iter().collect(),
            read_write_dirs: read_write.into_iter().collect(),
            hosts: hosts.into_iter().collect(),
        })
    }
}

/// One allowed destination: a host, on one port or on any.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AllowedHost {
    pub host: String,
    pub port: Option<u16>,
}

impl AllowedHost {
    /// Parses `host`, `host:port`, `[v6]:port` or a URL (scheme and path are ignored).
    pub fn parse(text: &str) -> Result<AllowedHost, String> {
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| format!("'{text}' is not a host name or host:port ({e})"))?;
        let host = url.host_str().ok_or_else(|| format!("'{text}' names no host"))?;
        let explicit_port = url.port().or_else(|| {
            // Url drops a port equal to the scheme's default; keep what the user wrote.
            let rest = text.split_once("://").map_or(text, |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or(rest);
            authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
        });
        let port = if text.contains("://") {
            explicit_port.or(url.port_or_known_default())
        } else {
            explicit_port
        };
        Ok(AllowedHost {
            host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
            port,
        })
    }

    fn admits(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

/// Outgoing HTTP policy: the auth URL's host, the image endpoints of the run's session (as
/// the component's `authenticate` reported them from Keystone's catalog), and what the user
/// allowed; everything else is refused. The policy reads no answers: it only decides who may
/// be called.
#[derive(Clone)]
pub struct NetworkPolicy {
    /// The auth URL's host and what the user allowed (`--allow-host`, the spec's sources): the
    /// only hosts whose own addresses may lie in the blocked ranges (see `transport::blocked`).
    allowed: Arc<BTreeSet<AllowedHost>>,
    /// The Keystone host (none: no cloud is reachable).
    auth_host: Option<AllowedHost>,
    /// The image endpoints of the sessions this instance was given.
    image_endpoints: Arc<Mutex<BTreeSet<AllowedHost>>>,
    denied: Arc<Mutex<BTreeSet<String>>>,
    /// The run's connection pools, shared by every instance.
    transport: Transport,
    /// The run's Keystone session, shared with every other instance's policy.
    session: SessionSlot,
}

impl NetworkPolicy {
    /// A policy admitting the auth URL's host and `extra` hosts, sending through `transport`;
    /// the image endpoints of the run's session (if any) are admitted too.
    pub fn new(
        auth_url: &str,
        extra: &[AllowedHost],
        transport: Transport,
        session: SessionSlot,
    ) -> Result<NetworkPolicy, String> {
        let auth_host = AllowedHost::parse(auth_url)?;
        let mut allowed: BTreeSet<AllowedHost> = extra.iter().cloned().collect();
        allowed.insert(auth_host.clone());
        let policy = NetworkPolicy {
            allowed: Arc::new(allowed),
            auth_host: Some(auth_host),
            image_endpoints: Arc::default(),
            denied: Arc::default(),
            transport,
            session,
        };
        if let Some(current) = policy.session.current() {
            policy.admit(&current);
        }
        Ok(policy)
    }

    /// A policy for calls that need no network (`check`, `schema`): every host is refused.
    pub fn offline(transport: Transport) -> NetworkPolicy {
        NetworkPolicy {
            allowed: Arc::default(),
            auth_host: None,
            image_endpoints: Arc::default(),
            denied: Arc::default(),
            transport,
            session: SessionSlot::default(),
        }
    }

    /// The run's session for this instance's next call, or the claim to get it (see
    /// [`SessionSlot::acquire`]), with its image endpoints admitted.
    pub async fn acquire_session(&self) -> (Option<Session>, Option<Claim>) {
        let (session, claim) = self.session.acquire().await;
        if let Some(session) = &session {
            self.admit(session);
        }
        (session, claim)
    }

    /// The session an earlier run kept, for `authenticate` to check.
    pub fn kept_session(&self) -> Option<Session> {
        self.session.kept()
    }

    /// Records the session an `authenticate` returned as the run's, and admits its endpoints.
    pub fn authenticated(&self, session: &Session) {
        self.session.issued(session);
        self.admit(session);
    }

    /// Admits the hosts of a session's image endpoints.
    pub fn admit(&self, session: &Session) {
        let mut admitted = self.image_endpoints.lock().expect("policy lock");
        for endpoint in &session.image_endpoints {
            if let Ok(host) = AllowedHost::parse(&endpoint.url) {
                tracing::debug!(host = %host.host, port = ?host.port, "allowing the session's image endpoint");
                admitted.insert(host);
            }
        }
    }

    /// Hosts refused so far (`host:port`), for error messages.
    pub fn denied(&self) -> Vec<String> {
        self.denied.lock().expect("policy lock").iter().cloned().collect()
    }

    /// Whether a request to `uri` may go out.
    pub fn admits(&self, uri: &http::Uri) -> bool {
        host_port(uri).is_some_and(|(host, port)| {
            self.allowed.iter().any(|a| a.admits(&host, port)) || self.is_image_endpoint(&host, port)
        })
    }

    /// The cloud's own hosts (the auth host and the image endpoints): the hosts the cloud's
    /// TLS settings (`verify: false`, `cacert`) apply to.
    fn is_cloud_host(&self, uri: &http::Uri) -> bool {
        host_port(uri).is_some_and(|(host, port)| {
            self.auth_host.as_ref().is_some_and(|a| a.admits(&host, port))
                || self.is_image_endpoint(&host, port)
        })
    }

    fn is_image_endpoint(&self, host: &str, port: u16) -> bool {
        self.image_endpoints
            .lock()
            .expect("policy lock")
            .iter()
            .any(|a| a.admits(host, port))
    }

    /// Whether `ip` itself was allowed (a name resolving into a blocked range is not enough,
    /// and neither is an image endpoint: those come from the component).
    fn allows_ip(&self, ip: IpAddr) -> bool {
        let text = ip.to_string();
        self.allowed.iter().any(|a| a.host == text)
    }
}

fn host_port(uri: &http::Uri) -> Option<(String, u16)> {
    let host = uri.host()?.trim_matches(['[', ']']).to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            443
        } else {
            80
        });
    Some((host, port))
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for NetworkPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send> {
        if !self.admits(request.uri()) {
            let target = host_port(request.uri())
                .map_or_else(|| request.uri().to_string(), |(h, p)| format!("{h}:{p}"));
            tracing::warn!(host = %target, "denied outgoing HTTP: the host is not allowed (allow it with --allow-host)");
            self.denied.lock().expect("policy lock").insert(target);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let cloud_host = self.is_cloud_host(request.uri());
        let policy = self.clone();
        Box::new(async move {
            let ip_allowed = {
                let policy = policy.clone();
                Arc::new(move |ip| policy.allows_ip(ip))
            };
            let response = policy
                .transport
                .send(request, options, cloud_host, ip_allowed)
                .await?;
            // The pool drives every connection in a task of its own: nothing left to drive here.
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Endpoint;

    #[test]
    fn parses_hosts_ports_and_urls() {
        assert_eq!(
            AllowedHost::parse("Example.org").unwrap(),
            AllowedHost {
                host: "example.org".into(),
                port: None
            }
        );
        assert_eq!(AllowedHost::parse("127.0.0.1:8080").unwrap().port, Some(8080));
        assert_eq!(
            AllowedHost::parse("https://k.example.org/v3").unwrap().port,
            Some(443)
        );
        assert_eq!(AllowedHost::parse("http://127.0.0.1:80/").unwrap().port, Some(80));
        assert!(AllowedHost::parse("http://").is_err());
    }

    fn session(token: &str, endpoint: &str) -> Session {
        Session {
            token: token.into(),
            expires_at: Some("2999-01-01T00:00:00.000000Z".into()),
            image_endpoints: vec![Endpoint {
                url: endpoint.into(),
                region: Some("RegionOne".into()),
                interface: "public".into(),
            }],
        }
    }

    #[test]
    fn admits_only_allowed_hosts_and_the_sessions_image_endpoints() {
        let transport = Transport::new(&Default::default()).unwrap();
        let policy =
            NetworkPolicy::new("http://127.0.0.1:5000/v3", &[], transport, SessionSlot::default()).unwrap();
        assert!(policy.admits(&"http://127.0.0.1:5000/v3/auth/tokens".parse().unwrap()));
        assert!(!policy.admits(&"http://127.0.0.1:9292/v2/images".parse().unwrap()));
        assert!(!policy.admits(&"http://169.254.169.254/latest".parse().unwrap()));
        policy.authenticated(&session("t", "http://127.0.0.1:9292"));
        assert!(policy.admits(&"http://127.0.0.1:9292/v2/images".parse().unwrap()));
        assert!(policy.is_cloud_host(&"http://127.0.0.1:9292/v2/images".parse().unwrap()));
        assert!(!policy.admits(&"http://127.0.0.1:8774/v2.1".parse().unwrap()));
        // An endpoint the component names does not open the blocked ranges.
        policy.admit(&session("t", "http://169.254.169.254"));
        assert!(!policy.allows_ip("169.254.169.254".parse().unwrap()));
        assert!(
            policy.allows_ip("127.0.0.1".parse().unwrap()),
            "the auth host's own address"
        );
    }

    #[tokio::test]
    async fn a_session_handed_over_admits_its_endpoints() {
        let transport = Transport::new(&Default::default()).unwrap();
        let slot = SessionSlot::default();
        // Made before any session exists (a parallel apply starts its instances together).
        let waiting =
            NetworkPolicy::new("http://127.0.0.1:5000/v3", &[], transport.clone(), slot.clone()).unwrap();
        let first =
            NetworkPolicy::new("http://127.0.0.1:5000/v3", &[], transport.clone(), slot.clone()).unwrap();
        first.authenticated(&session("t", "http://127.0.0.1:9292"));
        assert!(!waiting.admits(&"http://127.0.0.1:9292/v2/images".parse().unwrap()));
        let (session, claim) = waiting.acquire_session().await;
        assert_eq!(session.unwrap().token, "t");
        assert!(claim.is_none());
        assert!(waiting.admits(&"http://127.0.0.1:9292/v2/images".parse().unwrap()));
        // One made afterwards admits it from the start.
        let later = NetworkPolicy::new("http://127.0.0.1:5000/v3", &[], transport, slot).unwrap();
        assert!(later.admits(&"http://127.0.0.1:9292/v2/images".parse().unwrap()));
    }
}
