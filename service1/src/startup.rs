//! Binding the listeners (`build`) and serving until told to stop.

use std::{io, net::SocketAddr};

use plumbing::{grpc::ObserveLayer, shutdown::drain_within};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{server::TcpIncoming, Server};

use crate::{grpc::NameService, rest, Config};

/// service1 with its listeners bound: port 0 in the config gives a free
/// port, which `rest_addr` and `grpc_addr` then report.
pub struct Application {
    config: Config,
    rest: TcpListener,
    grpc: TcpListener,
}

// === impl Application ===

impl Application {
    pub async fn build(config: Config) -> io::Result<Self> {
        let ip = config.listen.bind_addr;
        let rest = plumbing::http::bind(SocketAddr::new(ip, config.port)).await?;
        let grpc = plumbing::http::bind(SocketAddr::new(ip, config.grpc_port)).await?;
        Ok(Self { config, rest, grpc })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves both ports until `stop` is cancelled, then stops accepting
    /// and lets in-flight calls finish within the grace period.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> io::Result<()> {
        let max_name_bytes = self.config.names.max_name_bytes;
        let rest = plumbing::http::serve(self.rest, rest::router(max_name_bytes), stop.clone());
        let grpc = async {
            Server::builder()
                .layer(ObserveLayer)
                .add_service(NameService::server(max_name_bytes))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(self.grpc),
                    stop.clone().cancelled_owned(),
                )
                .await
                .map_err(io::Error::other)
        };
        let both = async { tokio::try_join!(rest, grpc).map(|_| ()) };
        drain_within(&stop, self.config.shutdown.shutdown_grace, both)
            .await
            .unwrap_or(Ok(()))
    }
}
