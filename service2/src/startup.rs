//! Binding the listener, loading TLS material and making the channel to
//! service1 (`build`), then serving until told to stop.

use std::{io, net::SocketAddr, sync::Arc};

use plumbing::{
    shutdown::drain_within,
    tls::{self, client::Connector, ClientReloader},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{rest, upstream::Service1, Config};

/// service2 with its listener bound and its channel to service1 made.
pub struct Application {
    config: Config,
    rest: TcpListener,
    service1: Service1,
    tls: Option<Arc<ClientReloader>>,
}

// === impl Application ===

impl Application {
    pub async fn build(config: Config) -> io::Result<Self> {
        config.tls.warn_if_insecure();
        let tls = match config.tls.files().map_err(io::Error::other)? {
            Some(files) => Some(ClientReloader::client(files).map_err(io::Error::other)?),
            None => None,
        };
        let connector = match &tls {
            Some(tls) => Connector::mtls(tls.clone(), &config.tls_server_name).map_err(io::Error::other)?,
            None => Connector::plaintext(),
        };
        let service1 = Service1::new(
            &config.service1_channel,
            connector,
            config.service1_connect_timeout,
            config.service1_timeout,
        )
        .map_err(io::Error::other)?;
        let rest = plumbing::http::bind(SocketAddr::new(config.listen.bind_addr, config.port)).await?;
        Ok(Self { config, rest, service1, tls })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest.local_addr().expect("a bound listener has an address")
    }

    /// The state of the certificate in use; `None` when TLS is off.
    pub fn tls_status(&self) -> Option<tls::TlsStatus> {
        self.tls.as_ref().map(|t| t.status())
    }

    /// Serves until `stop` is cancelled, then stops accepting and lets
    /// in-flight requests finish within the grace period.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            tls.spawn_watcher(self.config.tls.tls_reload_interval, stop.clone());
        }
        let router = rest::router(self.service1, self.config.names.max_name_bytes);
        let serve = plumbing::http::serve(self.rest, router, stop.clone());
        drain_within(&stop, self.config.shutdown.shutdown_grace, serve).await.unwrap_or(Ok(()))
    }
}
