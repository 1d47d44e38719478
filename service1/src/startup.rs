//! Binding the listeners and loading TLS material (`build`), then serving
//! until told to stop.

use std::{io, net::SocketAddr, sync::Arc};

use observability::Observability;
use serving::{
    admin::{self, Health},
    grpc::{LimitsLayer, ObserveLayer},
    h2_guard::PingPolicy,
    shutdown::{drain_then_stop, drain_within},
    tls::{
        self,
        server::{PortCaps, StreamLimits},
        ServerReloader,
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, transport::Server};

use crate::{authz::AuthorizeLayer, grpc::NameService, rest, Config};
use wire::proto::service1_server::Service1Server;

/// service1 with its listeners bound and its certificates loaded: port 0
/// in the config gives a free port, which the `*_addr` methods report.
pub struct Application {
    config: Config,
    /// `None` with REST_ENABLED=false.
    rest: Option<TcpListener>,
    grpc: TcpListener,
    admin: TcpListener,
    tls: Option<Arc<ServerReloader>>,
    obs: Observability,
}

// === impl Application ===

impl Application {
    /// Loads the certificates and binds every port; what the service
    /// serves is recorded in `obs`.
    pub async fn build(config: Config, obs: Observability) -> io::Result<Self> {
        let name = config.server_name().map_err(io::Error::other)?;
        let max_chain = usize::from(config.tls_max_client_chain);
        let tls = tls::load(&config.common.tls, |files| {
            ServerReloader::server_with_chain_cap(files, name, max_chain)
        })?;
        let listen = &config.common.listen;
        let rest =
            if config.rest_enabled { Some(serving::http::bind_port(listen, config.port)?) } else { None };
        let grpc = serving::http::bind_port(listen, config.grpc_port)?;
        let admin = serving::http::bind_port(listen, config.admin_port)?;
        if let Some(tls) = &tls {
            tls.report_to(&obs.metrics);
        }
        Ok(Self { config, rest, grpc, admin, tls, obs })
    }

    /// The REST port's address; `None` with REST_ENABLED=false.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.as_ref().map(|rest| rest.local_addr().expect("a bound listener has an address"))
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("a bound listener has an address")
    }

    /// Serves every port until `stop` is cancelled; then reports draining
    /// for the drain delay, stops accepting (GOAWAY on gRPC connections),
    /// and lets in-flight calls finish within the grace period.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> io::Result<()> {
        let config = &self.config;
        let tls_for_health = self.tls.clone();
        let max_watches = config.common.admin.health_max_watches as usize;
        let health = Health::new(&[Service1Server::<NameService>::NAME], max_watches, move || {
            admin::tls_details(tls_for_health.as_ref().map(|t| t.status()))
        })
        .await;
        let listeners = drain_then_stop(stop.clone(), health.clone(), config.common.shutdown.drain_delay);
        if let Some(tls) = &self.tls {
            tls.spawn_watcher(config.common.tls.tls_reload_interval, listeners.clone());
        }

        let max_name_bytes = config.common.names.max_name_bytes;
        let limits = &config.common.http;
        let obs = &self.obs;
        let router = rest::router(max_name_bytes, limits, obs);
        let connections = &config.common.connections;
        let rest = {
            let listeners = listeners.clone();
            let port = serving::http::PortLimits::rest(connections);
            async move {
                match self.rest {
                    Some(rest) => {
                        serving::http::serve(rest, router, limits, port, &obs.metrics, listeners).await
                    }
                    None => Ok(()),
                }
            }
        };
        let admin =
            health.serve(self.admin, limits, &config.common.admin, connections, obs, listeners.clone());
        let allowed = self.tls.as_ref().map(|_| &config.tls_allowed_clients[..]);
        let incoming = tls::server::incoming(
            self.grpc,
            self.tls.clone(),
            config.tls_handshake_timeout,
            StreamLimits {
                per_connection: config.grpc_max_concurrent_streams,
                unserved: limits.http2_max_local_reset_streams,
                pings: Some(PingPolicy { min_interval: config.grpc_min_ping_interval }),
            },
            PortCaps {
                max_connections: config.grpc_max_connections,
                max_handshakes: config.max_tls_handshakes,
                lifetime: Some(config.max_connection_age + config.max_connection_age_grace),
            },
            &obs.metrics,
            listeners.clone(),
        );
        let mut methods = [crate::grpc::METHODS, serving::grpc::HEALTH_METHODS].concat();
        let (reflection_v1, reflection_v1alpha) = if config.grpc_reflection {
            methods.extend(crate::grpc::REFLECTION_METHODS);
            let (v1, v1alpha) = crate::grpc::reflection();
            (Some(v1), Some(v1alpha))
        } else {
            (None, None)
        };
        let grpc = async {
            Server::builder()
                // Only the age: with a grace too, tonic would send no GOAWAY
                // and cut the connection at age + grace; here it sends the
                // GOAWAY at the age and `incoming` cuts at age + grace.
                .max_connection_age(config.max_connection_age)
                .max_concurrent_streams(config.grpc_max_concurrent_streams)
                .http2_keepalive_interval(Some(config.grpc_keepalive_interval))
                .http2_keepalive_timeout(Some(config.grpc_keepalive_timeout))
                // tonic's default is no cap at all (h2's own is 1,024).
                .http2_max_local_error_reset_streams(Some(limits.http2_max_local_reset_streams as usize))
                // Outermost first: the access line and request span cover
                // every call, shed and refused ones included; the identity
                // check comes before the limits, so a caller that is not
                // allowed never holds a call slot, and the limits count
                // slots per identity.
                .layer(ObserveLayer::new(&methods, obs))
                .layer(AuthorizeLayer::new(allowed))
                .layer(LimitsLayer::new(
                    config.grpc_max_concurrent_calls as usize,
                    config.grpc_max_calls_per_identity(),
                    config.grpc_call_timeout,
                ))
                .add_service(health.grpc_service())
                .add_service(NameService::server(config.grpc_max_message_bytes))
                .add_optional_service(reflection_v1)
                .add_optional_service(reflection_v1alpha)
                .serve_with_incoming_shutdown(incoming, listeners.clone().cancelled_owned())
                .await
                .map_err(io::Error::other)
        };
        health.serving().await;
        let all = async { tokio::try_join!(rest, admin, grpc).map(|_| ()) };
        drain_within(&listeners, config.common.shutdown.shutdown_grace, all).await.unwrap_or(Ok(()))
    }
}
