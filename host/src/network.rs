//! The network capability: which hosts a component instance may call, and which addresses a
//! connection may use. Every destination comes from a trusted word — the auth URL, the user's
//! `--allow-host`, the spec's source URLs, the image endpoints of the Keystone catalog as the
//! host itself received it ([`CatalogHosts`], fed by `auth`) — never from a component.
//! The policy decides who may be called and never reads what passes through.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use openstack_image_documents::SessionRecord;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions};
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

use crate::transport::{AddressRule, Reach, Transport};

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

/// The image endpoints of the Keystone catalogs the host received itself (its own logins,
/// or a session it kept from one): shared by every policy of a run, widened only by `auth`.
#[derive(Clone, Default)]
pub struct CatalogHosts(Arc<RwLock<BTreeSet<AllowedHost>>>);

impl CatalogHosts {
    /// Admits the image endpoints of `session`, which the host got from Keystone.
    pub fn admit(&self, session: &SessionRecord) {
        let mut hosts = self.0.write().expect("catalog lock");
        for endpoint in &session.image_endpoints {
            if let Ok(host) = AllowedHost::parse(&endpoint.url) {
                tracing::debug!(host = %host.host, port = ?host.port, "allowing the catalog's image endpoint");
                hosts.insert(host);
            }
        }
    }

    fn admits(&self, host: &str, port: u16) -> bool {
        self.0
            .read()
            .expect("catalog lock")
            .iter()
            .any(|a| a.admits(host, port))
    }
}

/// Outgoing HTTP policy of one instance: the auth URL's host, the catalog's image endpoints,
/// and what the user allowed (`--allow-host`, the spec's sources); everything else is
/// refused, and so is every address in the [`blocked`] ranges that was not itself allowed.
#[derive(Clone)]
pub struct NetworkPolicy {
    /// The auth URL's host and what the user allowed: the only hosts whose own addresses
    /// may lie in the blocked ranges.
    allowed: Arc<BTreeSet<AllowedHost>>,
    /// The Keystone host (none: no cloud is reachable).
    auth_host: Option<AllowedHost>,
    catalog: CatalogHosts,
    denied: Arc<Mutex<BTreeSet<String>>>,
    /// The run's connection pools, shared by every instance.
    transport: Transport,
}

impl NetworkPolicy {
    /// A policy admitting the auth URL's host, `extra` hosts and the run's `catalog`, sending
    /// through `transport`.
    pub fn new(
        auth_url: &str,
        extra: &[AllowedHost],
        catalog: CatalogHosts,
        transport: Transport,
    ) -> Result<NetworkPolicy, String> {
        let auth_host = AllowedHost::parse(auth_url)?;
        let mut allowed: BTreeSet<AllowedHost> = extra.iter().cloned().collect();
        allowed.insert(auth_host.clone());
        Ok(NetworkPolicy {
            allowed: Arc::new(allowed),
            auth_host: Some(auth_host),
            catalog,
            denied: Arc::default(),
            transport,
        })
    }

    /// A policy for calls that need no network (`check`, `schema`): every host is refused.
    pub fn offline(transport: Transport) -> NetworkPolicy {
        NetworkPolicy {
            allowed: Arc::default(),
            auth_host: None,
            catalog: CatalogHosts::default(),
            denied: Arc::default(),
            transport,
        }
    }

    /// Hosts refused so far (`host:port`), for error messages.
    pub fn denied(&self) -> Vec<String> {
        self.denied.lock().expect("policy lock").iter().cloned().collect()
    }

    /// Whether a request to `uri` may go out.
    pub fn admits(&self, uri: &http::Uri) -> bool {
        host_port(uri).is_some_and(|(host, port)| {
            self.allowed.iter().any(|a| a.admits(&host, port)) || self.catalog.admits(&host, port)
        })
    }

    /// The cloud's own hosts (the auth host and the image endpoints): the hosts the cloud's
    /// TLS settings (`verify: false`, `cacert`) apply to.
    fn is_cloud_host(&self, uri: &http::Uri) -> bool {
        host_port(uri).is_some_and(|(host, port)| {
            self.auth_host.as_ref().is_some_and(|a| a.admits(&host, port)) || self.catalog.admits(&host, port)
        })
    }

    /// The addresses this instance's connections may use: any outside the [`blocked`]
    /// ranges; one inside them only when the user named that very address (not a name that
    /// resolves there, not a catalog endpoint), and then unpooled.
    fn address_rule(&self) -> AddressRule {
        let allowed = self.allowed.clone();
        Arc::new(move |ip| reach(ip, &allowed))
    }
}

fn reach(ip: IpAddr, allowed: &BTreeSet<AllowedHost>) -> Reach {
    if !blocked(ip) {
        Reach::Pooled
    } else if allowed.iter().any(|a| a.host == ip.to_string()) {
        Reach::Alone
    } else {
        Reach::Refused
    }
}

/// Addresses no component reaches through a name even when the name is allowed (unless the
/// address itself is allowed): link-local (cloud metadata services such as 169.254.169.254),
/// unspecified, multicast, broadcast and reserved ranges. This keeps a DNS answer that
/// changes after the policy check (rebinding) from reaching them.
pub fn blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
                || v4.octets()[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked(IpAddr::V4(v4));
            }
            v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
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

impl NetworkPolicy {
    /// Sends `request` when the policy admits its host (the instance's requests, and the
    /// host's own Keystone requests through a policy of the auth host alone).
    pub fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> impl Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send + 'static {
        let admitted = self.admits(request.uri());
        if !admitted {
            let target = host_port(request.uri())
                .map_or_else(|| request.uri().to_string(), |(h, p)| format!("{h}:{p}"));
            tracing::warn!(host = %target, "denied outgoing HTTP: the host is not allowed (allow it with --allow-host)");
            self.denied.lock().expect("policy lock").insert(target);
        }
        let cloud_host = self.is_cloud_host(request.uri());
        let (transport, addresses) = (self.transport.clone(), self.address_rule());
        async move {
            if !admitted {
                return Err(HttpError::HttpRequestDenied);
            }
            transport.send(request, options, cloud_host, addresses).await
        }
    }
}

impl WasiHttpHooks for NetworkPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send> {
        let sent = self.send(request, options);
        Box::new(async move {
            let response = sent.await?;
            // The pool drives every connection in a task of its own: nothing left to drive here.
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openstack_image_documents::EndpointRecord;

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

    fn session(endpoint: &str) -> SessionRecord {
        SessionRecord {
            token: "t".into(),
            expires_at: Some("2999-01-01T00:00:00.000000Z".into()),
            image_endpoints: vec![EndpointRecord {
                url: endpoint.into(),
                region: Some("RegionOne".into()),
                interface: "public".into(),
            }],
            project_id: None,
        }
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    #[test]
    fn admits_the_auth_host_the_allowed_hosts_and_the_catalog_only() {
        let transport = Transport::new(&Default::default()).unwrap();
        let catalog = CatalogHosts::default();
        let extra = [AllowedHost::parse("images.example.org").unwrap()];
        let policy =
            NetworkPolicy::new("http://127.0.0.1:5000/v3", &extra, catalog.clone(), transport).unwrap();
        assert!(policy.admits(&uri("http://127.0.0.1:5000/v3/auth/tokens")));
        assert!(policy.admits(&uri("https://images.example.org/cirros.img")));
        assert!(!policy.admits(&uri("http://127.0.0.1:9292/v2/images")));
        assert!(!policy.admits(&uri("http://169.254.169.254/latest")));
        // A catalog the host received admits its endpoints for every policy of the run,
        // including those made before it.
        catalog.admit(&session("http://127.0.0.1:9292"));
        assert!(policy.admits(&uri("http://127.0.0.1:9292/v2/images")));
        assert!(policy.is_cloud_host(&uri("http://127.0.0.1:9292/v2/images")));
        assert!(!policy.is_cloud_host(&uri("https://images.example.org/cirros.img")));
        assert!(
            !policy.admits(&uri("http://127.0.0.1:8774/v2.1")),
            "another port of the host"
        );
        assert!(
            !NetworkPolicy::offline(Transport::new(&Default::default()).unwrap())
                .admits(&uri("http://127.0.0.1:5000/v3"))
        );
    }

    #[test]
    fn blocked_ranges_open_only_to_an_address_the_user_named() {
        let transport = Transport::new(&Default::default()).unwrap();
        let catalog = CatalogHosts::default();
        // Even a catalog endpoint there does not open the metadata service's range.
        catalog.admit(&session("http://169.254.169.254"));
        let policy = NetworkPolicy::new("http://127.0.0.1:5000/v3", &[], catalog, transport.clone()).unwrap();
        let rule = policy.address_rule();
        assert_eq!(rule("169.254.169.254".parse().unwrap()), Reach::Refused);
        assert_eq!(rule("127.0.0.1".parse().unwrap()), Reach::Pooled);
        let named = [AllowedHost::parse("169.254.169.254").unwrap()];
        let policy = NetworkPolicy::new(
            "http://127.0.0.1:5000/v3",
            &named,
            CatalogHosts::default(),
            transport,
        )
        .unwrap();
        assert_eq!(
            policy.address_rule()("169.254.169.254".parse().unwrap()),
            Reach::Alone
        );
    }

    #[test]
    fn metadata_and_special_ranges_are_blocked_private_and_loopback_are_not() {
        for ip in [
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::",
        ] {
            assert!(blocked(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "192.168.1.1",
            "203.0.113.7",
            "::1",
            "2001:db8::1",
        ] {
            assert!(!blocked(ip.parse().unwrap()), "{ip}");
        }
    }
}
