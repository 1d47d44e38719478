//! Binding the listeners, loading TLS material and finding service1
//! (`build`), then serving until told to stop.

use std::{io, net::SocketAddr, sync::Arc};

use observability::Observability;
use serde_json::json;
use serving::{
    admin::{self, Health, Phase},
    shutdown::{drain_then_stop, drain_within},
    tls::{client::Connector, ClientReloader},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    rest,
    upstream::{
        discovery, CallPolicy, Dialer, EjectionPolicy, Keepalive, Pool, Refresh, Resolver, Service1Client,
        Target, UpstreamMetrics,
    },
    Config,
};

/// service2 with its listeners bound and its certificates loaded.
pub struct Application {
    config: Config,
    rest: TcpListener,
    admin: TcpListener,
    connector: Connector,
    resolver: Option<Resolver>,
    tls: Option<Arc<ClientReloader>>,
    metrics: Arc<UpstreamMetrics>,
    obs: Observability,
}

// === impl Application ===

impl Application {
    /// Loads the certificates and binds both ports; what the service does
    /// is recorded in `obs`.
    pub async fn build(config: Config, obs: Observability) -> io::Result<Self> {
        let tls = serving::tls::load(&config.common.tls, ClientReloader::client)?;
        let connector = match &tls {
            Some(tls) => {
                let connector =
                    Connector::mtls(tls.clone(), &config.tls_server_name).map_err(io::Error::other)?;
                match &config.tls_server_identity {
                    Some(identity) => connector.requiring_identity(identity),
                    None => connector,
                }
            }
            None => Connector::plaintext(),
        };
        let resolver = match &config.service1_channel {
            Target::Dns { server, .. } => Some(Resolver::new(*server).map_err(io::Error::other)?),
            _ => None,
        };
        let listen = &config.common.listen;
        let rest = serving::http::bind_port(listen, config.port)?;
        let admin = serving::http::bind_port(listen, config.admin_port)?;
        if let Some(tls) = &tls {
            tls.report_to(&obs.metrics);
        }
        let metrics = Arc::new(UpstreamMetrics::default());
        metrics.register(&obs.metrics);
        Ok(Self { config, rest, admin, connector, resolver, tls, metrics, obs })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest.local_addr().expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `stop` is cancelled; then reports draining for the
    /// drain delay, stops accepting, and lets in-flight requests finish
    /// within the grace period.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> io::Result<()> {
        let config = self.config;
        let background = CancellationToken::new();
        let _stop_background = background.clone().drop_guard();
        let obs = &self.obs;
        // Discovery feeds the pool; the pool's endpoints ask discovery to
        // look again when they cannot connect.
        let refresh = Refresh::default();
        if config.service1_attempt_timeout >= config.service1_keepalive_interval * 3 {
            // A stock server strikes a ping that follows another with
            // nothing sent in between, and closes the connection on the
            // third strike: an attempt this long, on a quiet call, can get
            // that far.
            tracing::warn!(
                attempt_timeout = ?config.service1_attempt_timeout,
                keepalive_interval = ?config.service1_keepalive_interval,
                "SERVICE1_ATTEMPT_TIMEOUT is 3 keepalive intervals or more: a stock gRPC server that sends nothing during a call that long may close the connection (too_many_pings); raise SERVICE1_KEEPALIVE_INTERVAL with it"
            );
        }
        let keepalive = Keepalive {
            interval: config.service1_keepalive_interval,
            timeout: config.service1_keepalive_timeout,
            while_idle: config.service1_keepalive_while_idle,
        };
        let dialer =
            Dialer { connector: self.connector, timeout: config.service1_connect_timeout, keepalive };
        let ejection = EjectionPolicy {
            consecutive_failures: config.service1_eject_after_failures,
            base: config.service1_eject_time,
            max: config.service1_eject_time_max,
            max_percent: config.service1_eject_max_percent,
        };
        let pool = Pool::new(dialer, refresh.clone(), ejection, self.metrics.clone(), background.clone());
        pool.report_to(&obs.metrics);
        let publish = {
            let pool = pool.clone();
            move |addresses| pool.set_endpoints(addresses)
        };
        let (target, interval) = (config.service1_channel.clone(), config.service1_resolve_interval);
        discovery::follow(target, self.resolver, interval, refresh, background.clone(), publish);

        let (tls, counts) = (self.tls.clone(), pool.clone());
        // Readiness does not depend on service1 once started: a service2 pod
        // taken out of its Service would not bring service1 back, only
        // cascade the outage. At start it does, for at most
        // SERVICE1_STARTUP_WAIT: a pod that has not found service1 yet would
        // answer 503 to the first calls it is sent (`helm install --wait`
        // and rollouts wait for readiness, so they wait for this too).
        let health = Health::new(&[], config.common.admin.health_max_watches as usize, move || {
            let (ready, known) = counts.counts();
            let mut details = admin::tls_details(tls.as_ref().map(|t| t.status()));
            details["service1_endpoints"] = json!({ "ready": ready, "known": known });
            details
        })
        .await;
        let listeners = drain_then_stop(stop, health.clone(), config.common.shutdown.drain_delay);
        if let Some(tls) = &self.tls {
            tls.spawn_watcher(config.common.tls.tls_reload_interval, background.clone());
        }

        let policy = CallPolicy {
            deadline: config.service1_timeout,
            attempt_timeout: config.service1_attempt_timeout,
            ready_wait: config.service1_ready_wait(),
            max_attempts: config.service1_max_attempts,
            retry_ratio: config.service1_retry_budget_percent as f32 / 100.0,
            retry_floor_per_second: config.service1_retry_min_per_second,
        };
        let limits = &config.common.http;
        let (startup_pool, startup_wait) = (pool.clone(), config.service1_startup_wait);
        let service1 = Service1Client::new(pool, policy, self.metrics, obs.traces);
        let router = rest::router(service1, config.common.names.max_name_bytes, limits, obs);
        let connections = &config.common.connections;
        let port = serving::http::PortLimits::rest(connections);
        let rest = serving::http::serve(self.rest, router, limits, port, &obs.metrics, listeners.clone());
        let admin =
            health.serve(self.admin, limits, &config.common.admin, connections, obs, listeners.clone());
        let (stopping, health) = (listeners.clone(), health.clone());
        let started = async move {
            if !startup_wait.is_zero() {
                // Found or not, the wait ends; so does shutdown, which must
                // not wait for it.
                tokio::select! {
                    _ = startup_pool.any_ready(startup_wait) => {}
                    _ = stopping.cancelled() => return Ok(()),
                }
            }
            // SIGTERM during the wait: stay draining.
            if health.phase() == Phase::Starting {
                health.serving().await;
            }
            Ok(())
        };
        let both = async { tokio::try_join!(rest, admin, started).map(|_| ()) };
        drain_within(&listeners, config.common.shutdown.shutdown_grace, both).await.unwrap_or(Ok(()))
    }
}
