//! How the component's HTTP requests leave the host, once the policy has admitted them:
//! HTTP/1.1 through a pool of keep-alive connections (hyper-util's client) that every
//! instance of a run shares, one pool per TLS trust so a verified and an unverified
//! connection never mix. A new connection resolves the name on the host, uses only the
//! addresses the sender's [`AddressRule`] lets it reach (the network policy's decision),
//! connects within the request's connect timeout and speaks TLS with the cloud's trust
//! settings (`cacert`, `verify: false`). The host's own Keystone requests go out here too.
//!
//! The connector follows Spin's outbound-http factor (per-request connect settings in a task
//! local); the timeouts and error mapping follow `wasmtime_wasi_http::default_send_request`,
//! which opens a new connection for every request and cannot take a TLS configuration.

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Timeouts when the component gives none (wasmtime's defaults).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an idle keep-alive connection stays in the pool: below the shortest common
/// server keep-alive timeout (Apache httpd's 5 s), so a request never goes out on a
/// connection the server is closing for idleness at that very moment.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Defined with the cloud settings (which the library without the `runtime` feature has).
pub use crate::cloud::TlsSettings;

/// The connection pools of a run, shared by every instance (clones share them): `verified`
/// for every host (the public web PKI roots plus `cacert`), `cloud` for the auth host and
/// the catalog's image endpoints — the same pool, or with `verify: false` a pool of its own
/// whose connections skip certificate verification. hyper-util keys each pool by scheme,
/// host and port, so a connection is reused only for the same origin and the same trust.
#[derive(Clone)]
pub struct Transport {
    verified: Pool,
    cloud: Pool,
}

type Pool = Client<Connector, WasiBody>;

impl Transport {
    /// The pools for `settings`; fails when `cacert` holds no usable certificate.
    pub fn new(settings: &TlsSettings) -> Result<Transport> {
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
        let verified = pool(builder().with_root_certificates(roots).with_no_client_auth());
        let cloud = if settings.insecure {
            let verifier = NoVerification(provider.signature_verification_algorithms);
            pool(
                builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth(),
            )
        } else {
            verified.clone()
        };
        Ok(Transport { verified, cloud })
    }

    /// Sends `request` on a pooled connection (or a new one) and returns the response head
    /// with a streaming body. `cloud_host` selects the cloud's TLS trust; `addresses` says
    /// which addresses a new connection may use, and whether it may be pooled.
    ///
    /// Nothing is retried here once a byte of it was written (the component retries what is
    /// safe to repeat): a request that meets a pooled connection the server had closed before
    /// anything was written goes out on a new connection (hyper-util's canceled-request retry).
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        cloud_host: bool,
        addresses: AddressRule,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
            options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
        };
        let rules = ConnectRules {
            timeout: timeout(|o| o.connect_timeout),
            addresses,
        };
        let pool = if cloud_host { &self.cloud } else { &self.verified };
        // The first-byte timeout counts from the hand-over, a new connection's setup included,
        // so a request never takes longer than the component allowed it.
        let response = CONNECT_RULES
            .scope(
                rules,
                tokio::time::timeout(timeout(|o| o.first_byte_timeout), pool.request(request)),
            )
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(request_error)?;
        let mut between_bytes =
            tokio::time::interval(timeout(|o| o.between_bytes_timeout).max(Duration::from_nanos(1)));
        between_bytes.reset();
        Ok(response.map(|incoming| {
            TimedBody {
                incoming,
                timeout: between_bytes,
            }
            .boxed_unsync()
        }))
    }
}

/// A pool of HTTP/1.1 keep-alive connections made with `tls`.
fn pool(tls: ClientConfig) -> Pool {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .retry_canceled_requests(true)
        .build(Connector { tls: Arc::new(tls) })
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

/// Whether a new connection may use an address (the network policy decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Not at all.
    Refused,
    /// For this request only: the connection is not pooled, so no other sender (which may
    /// not reach the address) picks it up.
    Alone,
    /// Yes, and the connection may serve later requests of any sender.
    Pooled,
}

/// The sender's rule for the addresses of a new connection.
pub type AddressRule = Arc<dyn Fn(IpAddr) -> Reach + Send + Sync>;

/// What a new connection for one request must respect. The pool's connector receives only
/// the URI, so these travel in a task local around the request (as in Spin); a request
/// served by a pooled connection ignores them.
#[derive(Clone)]
struct ConnectRules {
    timeout: Duration,
    addresses: AddressRule,
}

tokio::task_local! {
    static CONNECT_RULES: ConnectRules;
}

/// Makes the pool's new connections: resolve, keep the addresses the rule lets through,
/// TCP, TLS.
#[derive(Clone)]
struct Connector {
    tls: Arc<ClientConfig>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<PooledStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // Called while the request that needs the connection is polled, inside its scope.
        let rules = CONNECT_RULES.try_with(ConnectRules::clone);
        let tls = self.tls.clone();
        Box::pin(async move {
            let rules = rules.map_err(|_| ConnectError::Internal("no connect rules for a new connection"))?;
            connect(&uri, &tls, &rules).await.map(TokioIo::new)
        })
    }
}

async fn connect(
    uri: &http::Uri,
    tls: &Arc<ClientConfig>,
    rules: &ConnectRules,
) -> Result<PooledStream, ConnectError> {
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(ConnectError::InvalidUri)?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let resolved = resolve(&host, port, rules.timeout).await?;
    let addresses: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| (rules.addresses)(a.ip()) != Reach::Refused)
        .collect();
    if addresses.is_empty() {
        tracing::warn!(%host, addresses = ?resolved, "refused outgoing HTTP: the name resolves only to addresses the sender may not reach");
        return Err(ConnectError::Prohibited);
    }
    let (tcp, address) = match tokio::time::timeout(rules.timeout, connect_tcp(&addresses)).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ConnectError::Refused);
        }
        Ok(Err(err)) => return Err(ConnectError::Io(err.kind(), err.to_string())),
        Err(_) => return Err(ConnectError::Timeout),
    };
    let _ = tcp.set_nodelay(true);
    // Another instance, which may not reach this address, could pick the connection up from
    // the pool: one the rule grants this sender alone serves this request only.
    let reusable = (rules.addresses)(address.ip()) == Reach::Pooled;
    let io: Box<dyn Stream> = if use_tls {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(host.clone()).map_err(|_| ConnectError::InvalidUri)?,
        };
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        match tokio::time::timeout(rules.timeout, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Box::new(stream),
            Ok(Err(err)) => return Err(tls_error(&host, err)),
            Err(_) => return Err(ConnectError::Timeout),
        }
    } else {
        Box::new(tcp)
    };
    Ok(PooledStream { io, reusable })
}

/// The first of `addresses` that accepts a TCP connection, and which one it was (the
/// kernel may report another peer: a connection to 0.0.0.0 shows 127.0.0.1).
async fn connect_tcp(addresses: &[SocketAddr]) -> std::io::Result<(TcpStream, SocketAddr)> {
    let mut last = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to connect to");
    for &address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok((stream, address)),
            Err(err) => last = err,
        }
    }
    Err(last)
}

async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err(ConnectError::NotFound)
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(_)) => Err(ConnectError::NotFound),
        Err(_) => Err(ConnectError::DnsTimeout),
    }
}

/// Certificate problems become `tls-certificate-error` (the component then names `cacert`);
/// anything else is a protocol error.
fn tls_error(host: &str, err: std::io::Error) -> ConnectError {
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
        ConnectError::TlsCertificate
    } else {
        ConnectError::TlsProtocol
    }
}

/// Why a new connection could not be made. hyper-util hands the connector's error back
/// only by reference, so it is kept as data and turned into the wasi-http error afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnectError {
    InvalidUri,
    NotFound,
    DnsTimeout,
    Prohibited,
    Refused,
    Timeout,
    Io(std::io::ErrorKind, String),
    TlsCertificate,
    TlsProtocol,
    Internal(&'static str),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", HttpError::from(self))
    }
}

impl std::error::Error for ConnectError {}

impl From<&ConnectError> for HttpError {
    fn from(err: &ConnectError) -> HttpError {
        match err {
            ConnectError::InvalidUri => HttpError::HttpRequestUriInvalid,
            ConnectError::NotFound => HttpError::DestinationNotFound,
            ConnectError::DnsTimeout => HttpError::DnsTimeout,
            ConnectError::Prohibited => HttpError::DestinationIpProhibited,
            ConnectError::Refused => HttpError::ConnectionRefused,
            ConnectError::Timeout => HttpError::ConnectionTimeout,
            ConnectError::Io(kind, message) => {
                HttpError::Connect(std::io::Error::new(*kind, message.clone()))
            }
            ConnectError::TlsCertificate => HttpError::TlsCertificateError,
            ConnectError::TlsProtocol => HttpError::TlsProtocolError,
            ConnectError::Internal(message) => HttpError::InternalError(Some((*message).to_string())),
        }
    }
}

/// The wasi-http error for a failed request: the connector's own, or — for anything that
/// went wrong on the connection — a protocol error, as wasmtime maps hyper's errors.
fn request_error(err: hyper_util::client::legacy::Error) -> HttpError {
    let mut cause = err.source();
    while let Some(inner) = cause {
        if let Some(connect) = inner.downcast_ref::<ConnectError>() {
            return HttpError::from(connect);
        }
        if inner
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return HttpError::HttpResponseTimeout;
        }
        cause = inner.source();
    }
    tracing::warn!(error = ?err, "HTTP request failed");
    HttpError::HttpProtocolError
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// A connection the pool holds (TCP, or TLS over TCP); `reusable: false` keeps it out of
/// the pool after its first request.
struct PooledStream {
    io: Box<dyn Stream>,
    reusable: bool,
}

impl Connection for PooledStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if !self.reusable {
            connected.poison();
        }
        connected
    }
}

impl AsyncRead for PooledStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PooledStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

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

    /// How the test server treats a connection.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Answers every request and keeps the connection open.
        KeepAlive,
        /// Answers, then closes the connection (without `Connection: close`).
        CloseAfterAnswer,
        /// Answers, and closes a connection that stays idle this long.
        CloseWhenIdle(Duration),
        /// Reads the request and never answers.
        Silent,
        /// Sends the head and 2 of 10 body bytes, then nothing.
        Stall,
    }

    /// An HTTP/1.1 server on 127.0.0.1 (TLS with `tls`) counting the connections it accepts.
    struct TestServer {
        addr: SocketAddr,
        connections: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl TestServer {
        async fn start(serve: Serve, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = connections.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    answer(stream, serve).await;
                                }
                            }
                            None => answer(tcp, serve).await,
                        }
                    });
                }
            });
            TestServer { addr, connections }
        }

        fn connections(&self) -> usize {
            self.connections.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, serve: Serve) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                let read = match serve {
                    Serve::CloseWhenIdle(idle) if head.is_empty() => {
                        match tokio::time::timeout(idle, stream.read(&mut byte)).await {
                            Ok(read) => read,
                            Err(_) => return,
                        }
                    }
                    _ => stream.read(&mut byte).await,
                };
                match read {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
            }
            match serve {
                Serve::Silent => std::future::pending().await,
                Serve::Stall => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok")
                        .await;
                    std::future::pending().await
                }
                _ => {}
            }
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .is_err()
            {
                return;
            }
            if let Serve::CloseAfterAnswer = serve {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        let uri: http::Uri = url.parse().unwrap();
        http::Request::get(uri.clone())
            .header(http::header::HOST, uri.authority().unwrap().as_str())
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    /// The rule of a sender that may not reach link-local or unspecified addresses.
    fn no_special_ranges() -> AddressRule {
        Arc::new(|ip: IpAddr| match ip {
            IpAddr::V4(v4) if v4.is_link_local() || v4.is_unspecified() => Reach::Refused,
            _ => Reach::Pooled,
        })
    }

    /// GET `url` and read the whole answer.
    async fn fetch(transport: &Transport, url: &str, cloud_host: bool) -> Result<String, HttpError> {
        let options = RequestOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            first_byte_timeout: Some(Duration::from_millis(300)),
            between_bytes_timeout: Some(Duration::from_millis(300)),
        };
        let response = transport
            .send(get(url), Some(options), cloud_host, no_special_ranges())
            .await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn keep_alive_connections_are_reused_by_every_clone() {
        let server = TestServer::start(Serve::KeepAlive, None).await;
        let transport = Transport::new(&TlsSettings::default()).unwrap();
        let other_instance = transport.clone();
        let url = format!("http://{}/v2/images", server.addr);
        for _ in 0..3 {
            assert_eq!(fetch(&transport, &url, false).await.unwrap(), "ok");
            assert_eq!(fetch(&other_instance, &url, true).await.unwrap(), "ok");
        }
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn connections_the_server_closes_cost_no_request() {
        let closing = TestServer::start(Serve::CloseAfterAnswer, None).await;
        let idle = TestServer::start(Serve::CloseWhenIdle(Duration::from_millis(30)), None).await;
        let transport = Transport::new(&TlsSettings::default()).unwrap();
        for server in [&closing, &idle] {
            let url = format!("http://{}/", server.addr);
            for _ in 0..4 {
                assert_eq!(fetch(&transport, &url, false).await.unwrap(), "ok");
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            assert_eq!(server.connections(), 4);
        }
        // Back to back, without a pause: the close is seen before the next request goes out.
        let url = format!("http://{}/", closing.addr);
        for _ in 0..20 {
            assert_eq!(fetch(&transport, &url, false).await.unwrap(), "ok");
        }
    }

    #[tokio::test]
    async fn refused_addresses_are_not_used_and_addresses_for_one_sender_never_pooled() {
        let transport = Transport::new(&TlsSettings::default()).unwrap();
        let refused = fetch(&transport, "http://169.254.169.254/latest/meta-data", false).await;
        assert!(
            matches!(refused, Err(HttpError::DestinationIpProhibited)),
            "{refused:?}"
        );

        // Linux connects 0.0.0.0 (unspecified) to this host: granted to one sender, it works,
        // and each request gets a connection of its own.
        let server = TestServer::start(Serve::KeepAlive, None).await;
        let url = format!("http://0.0.0.0:{}/", server.addr.port());
        let refused = fetch(&transport, &url, false).await;
        assert!(
            matches!(refused, Err(HttpError::DestinationIpProhibited)),
            "{refused:?}"
        );
        let allowed: AddressRule = Arc::new(|_| Reach::Alone);
        for _ in 0..2 {
            let response = transport
                .send(get(&url), None, false, allowed.clone())
                .await
                .unwrap();
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn failures_map_to_the_errors_the_component_knows() {
        let transport = Transport::new(&TlsSettings::default()).unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let refused = fetch(&transport, &format!("http://{closed}/"), false).await;
        assert!(
            matches!(refused, Err(HttpError::ConnectionRefused)),
            "{refused:?}"
        );

        let silent = TestServer::start(Serve::Silent, None).await;
        let no_answer = fetch(&transport, &format!("http://{}/", silent.addr), false).await;
        assert!(
            matches!(no_answer, Err(HttpError::ConnectionReadTimeout)),
            "{no_answer:?}"
        );

        let stalled = TestServer::start(Serve::Stall, None).await;
        let cut = fetch(&transport, &format!("http://{}/", stalled.addr), false).await;
        assert!(matches!(cut, Err(HttpError::ConnectionReadTimeout)), "{cut:?}");
    }

    /// A private CA (its PEM written to `dir/ca.pem`) and a TLS acceptor for 127.0.0.1
    /// with a certificate it signed.
    fn private_ca(dir: &Path) -> tokio_rustls::TlsAcceptor {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &Issuer::new(ca, ca_key))
            .unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![server.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
                )
                .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn verify_false_applies_to_cloud_hosts_only_and_its_connections_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(Serve::KeepAlive, Some(private_ca(dir.path()))).await;
        let url = format!("https://{}/v3", server.addr);

        let insecure = Transport::new(&TlsSettings {
            cacert: None,
            insecure: true,
        })
        .unwrap();
        assert_eq!(fetch(&insecure, &url, true).await.unwrap(), "ok");
        // The same origin, not a cloud host: the unverified connection in the pool is not
        // used, and a new, verified one fails.
        let untrusted = fetch(&insecure, &url, false).await;
        assert!(
            matches!(untrusted, Err(HttpError::TlsCertificateError)),
            "{untrusted:?}"
        );
        assert_eq!(fetch(&insecure, &url, true).await.unwrap(), "ok");
        assert_eq!(server.connections(), 2, "the cloud's connection was reused");

        let with_cacert = Transport::new(&TlsSettings {
            cacert: Some(dir.path().join("ca.pem")),
            insecure: false,
        })
        .unwrap();
        assert_eq!(fetch(&with_cacert, &url, false).await.unwrap(), "ok");
        assert_eq!(fetch(&with_cacert, &url, true).await.unwrap(), "ok");
        assert_eq!(server.connections(), 3);
    }

    #[test]
    fn cacert_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Transport::new(&TlsSettings {
            cacert: Some(empty),
            insecure: false,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let missing = Transport::new(&TlsSettings {
            cacert: Some(dir.path().join("missing.pem")),
            insecure: false,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
