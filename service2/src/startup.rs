//! Binding the listener (`build`) and serving until told to stop.

use std::{io, net::SocketAddr};

use plumbing::shutdown::drain_within;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{rest, upstream::Service1, Config};

/// service2 with its listener bound and its channel to service1 made.
pub struct Application {
    config: Config,
    rest: TcpListener,
    service1: Service1,
}

// === impl Application ===

impl Application {
    pub async fn build(config: Config) -> io::Result<Self> {
        let service1 = Service1::new(
            &config.service1_channel,
            config.service1_connect_timeout,
            config.service1_timeout,
        )
        .map_err(io::Error::other)?;
        let rest =
            plumbing::http::bind(SocketAddr::new(config.listen.bind_addr, config.port)).await?;
        Ok(Self {
            config,
            rest,
            service1,
        })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` is cancelled, then stops accepting and lets
    /// in-flight requests finish within the grace period.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> io::Result<()> {
        let router = rest::router(self.service1, self.config.names.max_name_bytes);
        let serve = plumbing::http::serve(self.rest, router, stop.clone());
        drain_within(&stop, self.config.shutdown.shutdown_grace, serve)
            .await
            .unwrap_or(Ok(()))
    }
}
