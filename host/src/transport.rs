//! How the component's HTTP requests leave the host, once the policy has admitted them:
//! name resolution with blocked address ranges, TCP, TLS with the cloud's trust settings
//! (`cacert`, `verify: false`), and HTTP/1.1 through hyper.
//!
//! The request/response plumbing follows `wasmtime_wasi_http::default_send_request`, which
//! cannot take a TLS configuration or resolved addresses.

use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use http_body_util::BodyExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Timeouts when the component gives none (wasmtime's defaults).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The cloud's TLS settings, as clouds.yaml (`cacert`, `verify`) or `OS_CACERT` /
/// `OS_INSECURE` give them.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// A PEM bundle of extra trusted CA certificates (a private CA).
    pub cacert: Option<PathBuf>,
    /// Skip certificate verification for the cloud's own hosts (`verify: false`).
    pub insecure: bool,
}

/// The TLS client configurations instances use: `verified` for every host (the public web
/// PKI roots plus `cacert`), `cloud` for the auth host and catalog endpoints (the same, or
/// no verification at all with `verify: false`).
#[derive(Clone)]
pub struct Tls {
    verified: Arc<ClientConfig>,
    cloud: Arc<ClientConfig>,
}

impl Tls {
    pub fn new(settings: &TlsSettings) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        if let Some(path) = &settings.cacert {
            let (added, _) = roots.add_parsable_certificates(read_pem_certificates(path)?);
            if added == 0 {
                bail!(
                    "cacert {}: no usable CA certificate in the file; give a PEM file holding the \
                     cloud's CA certificate",
                    path.display()
                );
            }
        }
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
        };
        let verified = Arc::new(builder().with_root_certificates(roots).with_no_client_auth());
        let cloud = if settings.insecure {
            let verifier = NoVerification(provider.signature_verification_algorithms);
            Arc::new(
                builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth(),
            )
        } else {
            verified.clone()
        };
        Ok(Tls { verified, cloud })
    }
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cacert {}: cannot read the file", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cacert {}: not a PEM certificate file", path.display()))?;
    if certificates.is_empty() {
        bail!(
            "cacert {}: the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certificates)
}

/// `verify: false`: accepts any certificate, still checking the handshake signatures.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Addresses the component may not reach through a name even when the name is allowed
/// (unless the address itself is allowed): link-local (cloud metadata services such as
/// 169.254.169.254), unspecified, multicast, broadcast and reserved ranges. This keeps a DNS
/// answer that changes after the policy check (rebinding) from reaching them.
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

/// Sends `request` and returns the response head with a streaming body, and the
/// connection's I/O to drive while the body is read.
/// `cloud_host` selects the cloud's TLS configuration; `ip_allowed` says whether an address
/// in a [`blocked`] range was explicitly allowed.
pub async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tls: &Tls,
    cloud_host: bool,
    ip_allowed: impl Fn(IpAddr) -> bool,
) -> Result<
    (
        http::Response<WasiBody>,
        impl Future<Output = Result<(), HttpError>> + Send + 'static,
    ),
    HttpError,
> {
    let uri = request.uri();
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(Duration::from_nanos(1));

    let addresses = resolve(&host, port, connect_timeout).await?;
    let (reachable, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
        .into_iter()
        .partition(|a| !blocked(a.ip()) || ip_allowed(a.ip()));
    if reachable.is_empty() {
        tracing::warn!(%host, addresses = ?refused, "refused outgoing HTTP: the name resolves only to blocked addresses");
        return Err(HttpError::DestinationIpProhibited);
    }
    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(&reachable[..])).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(HttpError::ConnectionRefused);
        }
        Ok(Err(err)) => return Err(HttpError::Connect(err)),
        Err(_) => return Err(HttpError::ConnectionTimeout),
    };
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = if use_tls {
        let config = if cloud_host { &tls.cloud } else { &tls.verified };
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(host.clone()).map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        match tokio::time::timeout(connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Box::new(stream),
            Ok(Err(err)) => return Err(tls_error(&host, err)),
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for proxies.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let send = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)??;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, HttpError>(response.map(|incoming| TimedBody { incoming, timeout }.boxed_unsync()))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Drive the connection while waiting for the response head.
    let response = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else {
                return Poll::Pending;
            };
            let result = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match result {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(HttpError::from(err))),
            }
        }
    })
    .await?;
    let io = async move {
        match conn {
            Some(conn) => conn.await.map_err(|err| {
                if err.is_timeout() {
                    HttpError::HttpResponseTimeout
                } else {
                    HttpError::from(err)
                }
            }),
            None => Ok(()),
        }
    };
    Ok((response, io))
}

async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err(HttpError::DestinationNotFound)
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(_)) => Err(HttpError::DestinationNotFound),
        Err(_) => Err(HttpError::DnsTimeout),
    }
}

/// Certificate problems become `tls-certificate-error` (the component then names `cacert`);
/// anything else is a protocol error.
fn tls_error(host: &str, err: std::io::Error) -> HttpError {
    let certificate = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    tracing::warn!(%host, error = %err, "TLS handshake failed");
    if certificate {
        HttpError::TlsCertificateError
    } else {
        HttpError::TlsProtocolError
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// A response body that fails when no bytes arrive for `timeout`.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(if err.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(err)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn cacert_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Tls::new(&TlsSettings {
            cacert: Some(empty),
            insecure: false,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let missing = Tls::new(&TlsSettings {
            cacert: Some(dir.path().join("missing.pem")),
            insecure: false,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
