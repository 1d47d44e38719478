//! Starting the real services in this process, on 127.0.0.1 port 0.

use std::{io, net::SocketAddr, time::Duration};

use clap::Parser as _;
use observability::{Metrics, Observability};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Pki;

/// A server running in the background; stopped when dropped.
pub struct Running {
    stop: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    pub fn start<F>(run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: std::future::Future<Output = io::Result<()>> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(stop.clone()));
        Self { stop, task: Some(task) }
    }

    /// Starts a graceful shutdown, as SIGTERM would.
    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    /// Shuts down and waits (at most 10 s) for the server to finish.
    pub async fn stop(mut self) -> io::Result<()> {
        self.stop.cancel();
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task does not panic")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct Service1 {
    pub rest_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// What it records; its own, apart from every other service here.
    pub metrics: Metrics,
    pub running: Running,
}

pub struct Service2 {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    pub running: Running,
}

impl Service2 {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }
}

/// service1 with the shared test certificates; `extra` flags override.
pub async fn spawn_service1(extra: &[&str]) -> Service1 {
    crate::logs();
    let args = with_tls(&["service1", "--port", "0", "--grpc-port", "0"], "service1", extra);
    let config = service1::Config::try_parse_from(args).expect("valid test config");
    let obs = Observability::default();
    let metrics = obs.metrics.clone();
    let app = service1::Application::build(config, obs).await.expect("service1 binds");
    let rest_addr = app.rest_addr().expect("tests serve REST");
    let (grpc_addr, admin_addr) = (app.grpc_addr(), app.admin_addr());
    let running = Running::start(|stop| app.run_until_stopped(stop));
    Service1 { rest_addr, grpc_addr, admin_addr, metrics, running }
}

/// service2 calling service1 at `service1`.
pub async fn spawn_service2(service1: SocketAddr) -> Service2 {
    spawn_service2_with(service1, &[]).await
}

/// service2 with the shared test certificates; `extra` flags override.
pub async fn spawn_service2_with(service1: SocketAddr, extra: &[&str]) -> Service2 {
    crate::logs();
    let target = service1.to_string();
    let args = with_tls(&["service2", "--port", "0", "--service1-channel", &target], "service2", extra);
    let config = service2::Config::try_parse_from(args).expect("valid test config");
    let obs = Observability::default();
    let metrics = obs.metrics.clone();
    let app = service2::Application::build(config, obs).await.expect("service2 binds");
    let (addr, admin_addr) = (app.rest_addr(), app.admin_addr());
    let running = Running::start(|stop| app.run_until_stopped(stop));
    Service2 { addr, admin_addr, metrics, running }
}

/// `base`, loopback only, the shared certificates of `identity`, then
/// `extra`, which wins over all of them.
fn with_tls(base: &[&str], identity: &str, extra: &[&str]) -> Vec<String> {
    // Loopback only, a free admin port, and no drain delay: nothing routes
    // to a test server that needs to be told it is going away.
    let local = ["--bind-addr", "127.0.0.1", "--admin-port", "0", "--drain-delay", "0s"];
    let own = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    [own(base), own(&local), Pki::shared().args(identity), own(extra)].concat()
}
