//! The go-plugin side of the process: the checks that Terraform started it, the handshake line
//! on stdout, the mutually authenticated gRPC server on 127.0.0.1, and the ways it ends
//! (go-plugin's Shutdown call, SIGTERM, or Terraform going away).

use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::log;
use crate::mtls;
use crate::proto::go_plugin;
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::provider::Provider;

/// go-plugin's handshake cookie for Terraform providers: without it the process was not
/// started by Terraform.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version.
const CORE_PROTOCOL_VERSION: u32 = 1;
/// Terraform's plugin protocol version served.
const PROTOCOL_VERSION: u32 = 6;
/// How long the process waits, after being told to stop, for connections to close.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Runs the provider: checks that Terraform started it, serves until Terraform is done.
pub fn run<B: Backend>(backend: B) -> ExitCode {
    match std::env::var(MAGIC_COOKIE_KEY) {
        Ok(cookie) if cookie == MAGIC_COOKIE_VALUE => {}
        _ => {
            eprintln!(
                "This is a Terraform plugin, started by Terraform or OpenTofu, not by hand.\n\
                 Install it as the provider openstack-image/openstackimage and run `terraform init`."
            );
            return ExitCode::FAILURE;
        }
    }
    match serve_from_env(backend) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error(&message);
            eprintln!("terraform-provider-openstackimage: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve_from_env<B: Backend>(backend: B) -> Result<(), String> {
    // Without the variable an old go-plugin client expects its one configured version: 6 here.
    if let Ok(offered) = std::env::var("PLUGIN_PROTOCOL_VERSIONS")
        && !offered
            .split(',')
            .any(|v| v.trim() == PROTOCOL_VERSION.to_string())
    {
        return Err(format!(
            "this provider speaks plugin protocol {PROTOCOL_VERSION} (Terraform 1.0 or later, OpenTofu); the client offered {offered}"
        ));
    }
    let client_cert = std::env::var("PLUGIN_CLIENT_CERT").map_err(|_| {
        "PLUGIN_CLIENT_CERT is not set: this provider serves only with go-plugin's AutoMTLS, as Terraform and OpenTofu use it".to_string()
    })?;
    let identity = mtls::server_identity(&client_cert)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(backend, identity))
}

async fn serve<B: Backend>(backend: B, identity: mtls::ServerIdentity) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let stop = Arc::new(Notify::new());
    let connections = accept(listener, tokio_rustls::TlsAcceptor::from(identity.config));

    // The handshake line: core version, protocol version, network, address, protocol, and the
    // server certificate (base64 of its DER, no padding) that go-plugin's client will trust.
    let certificate = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&identity.certificate);
    println!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|{address}|grpc|{certificate}");
    log::debug(&format!(
        "serving plugin protocol {PROTOCOL_VERSION} on {address}"
    ));

    ignore_interrupts()?;
    tonic::transport::Server::builder()
        .add_service(ProviderServer::new(Provider::new(backend)))
        .add_service(go_plugin::grpc_controller_server::GrpcControllerServer::new(
            Controller { stop: stop.clone() },
        ))
        .serve_with_incoming_shutdown(connections, stopped(stop))
        .await
        .map_err(|e| format!("the gRPC server failed: {e}"))
}

/// TLS connections, each handshake on its own task so that a slow one holds up no other.
fn accept(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<Result<Connection, std::io::Error>> {
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn(&format!("accepting a connection failed: {e}"));
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let _ = sender.send(Ok(Connection(tls))).await;
                    }
                    // Only the client holding PLUGIN_CLIENT_CERT's key gets through.
                    Err(e) => log::warn(&format!("refused a TLS connection from {peer}: {e}")),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// One mutually authenticated connection from Terraform.
pub struct Connection(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for Connection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// go-plugin's controller: the client's Shutdown call ends the process.
struct Controller {
    stop: Arc<Notify>,
}

#[tonic::async_trait]
impl go_plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _req: Request<go_plugin::Empty>) -> Result<Response<go_plugin::Empty>, Status> {
        log::debug("go-plugin asked the provider to shut down");
        self.stop.notify_one();
        Ok(Response::new(go_plugin::Empty {}))
    }
}

/// Terraform sends Ctrl-C to its whole process group and then asks providers to stop over
/// gRPC (StopProvider); like go-plugin's servers, this one lets the interrupt pass.
fn ignore_interrupts() -> Result<(), String> {
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot handle interrupts: {e}"))?;
    tokio::spawn(async move {
        while interrupts.recv().await.is_some() {
            log::debug("interrupt ignored: Terraform stops providers over gRPC");
        }
    });
    Ok(())
}

/// Resolves when the provider should end: go-plugin's Shutdown, SIGTERM, or the parent
/// (Terraform) gone, which leaves nobody to call. Then the process exits after a short grace
/// period even if a connection lingers.
async fn stopped(stop: Arc<Notify>) {
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    };
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop.notified() => log::debug("stopping: asked by go-plugin"),
        _ = terminated => log::debug("stopping: SIGTERM"),
        _ = orphaned => log::debug("stopping: Terraform is gone"),
    }
    tokio::spawn(async {
        tokio::time::sleep(EXIT_GRACE).await;
        std::process::exit(0);
    });
}
