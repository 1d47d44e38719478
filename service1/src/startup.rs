//! Binding the listeners and loading TLS material (`build`), then serving
//! until told to stop.

use std::{io, net::SocketAddr, sync::Arc};

use plumbing::{
    grpc::ObserveLayer,
    shutdown::drain_within,
    tls::{self, ServerReloader},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::{authz::AuthorizeLayer, grpc::NameService, rest, Config};

/// service1 with its listeners bound and its certificates loaded: port 0
/// in the config gives a free port, which `rest_addr` and `grpc_addr` then
/// report.
pub struct Application {
    config: Config,
    rest: TcpListener,
    grpc: TcpListener,
    tls: Option<Arc<ServerReloader>>,
}

// === impl Application ===

impl Application {
    pub async fn build(config: Config) -> io::Result<Self> {
        config.tls.warn_if_insecure();
        let tls = match config.tls.files().map_err(io::Error::other)? {
            Some(files) => Some(ServerReloader::server(files).map_err(io::Error::other)?),
            None => None,
        };
        let ip = config.listen.bind_addr;
        let rest = plumbing::http::bind(SocketAddr::new(ip, config.port)).await?;
        let grpc = plumbing::http::bind(SocketAddr::new(ip, config.grpc_port)).await?;
        Ok(Self { config, rest, grpc, tls })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest.local_addr().expect("a bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("a bound listener has an address")
    }

    /// The state of the certificate in use; `None` when TLS is off.
    pub fn tls_status(&self) -> Option<tls::TlsStatus> {
        self.tls.as_ref().map(|t| t.status())
    }

    /// Serves both ports until `stop` is cancelled, then stops accepting
    /// and lets in-flight calls finish within the grace period.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> io::Result<()> {
        let config = &self.config;
        if let Some(tls) = &self.tls {
            tls.spawn_watcher(config.tls.tls_reload_interval, stop.clone());
        }
        let max_name_bytes = config.names.max_name_bytes;
        let rest = plumbing::http::serve(self.rest, rest::router(max_name_bytes), stop.clone());
        let allowed = self.tls.as_ref().map(|_| &config.tls_allowed_clients[..]);
        let incoming =
            tls::server::incoming(self.grpc, self.tls.clone(), config.tls_handshake_timeout, stop.clone());
        let grpc = async {
            Server::builder()
                // Outermost first: the access line and request span cover
                // every call, refused ones included.
                .layer(ObserveLayer)
                .layer(AuthorizeLayer::new(allowed))
                .add_service(NameService::server(max_name_bytes))
                .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned())
                .await
                .map_err(io::Error::other)
        };
        let both = async { tokio::try_join!(rest, grpc).map(|_| ()) };
        drain_within(&stop, config.shutdown.shutdown_grace, both).await.unwrap_or(Ok(()))
    }
}
