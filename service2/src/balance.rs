//! Per-request balancing over every service1 replica.
//!
//! A Kubernetes ClusterIP Service balances TCP connections, and one HTTP/2
//! connection carries every call, so service2 keeps a connection to each
//! replica itself and picks one per call: power of two choices (p2c) on
//! calls in flight. Two random ready replicas are compared and the less busy
//! one wins: it is O(1), needs no shared state, and steers calls away from a
//! slow replica, where round-robin would keep feeding it.
//!
//! tonic's balanced channel has two known pitfalls this design avoids: an
//! endpoint whose connection failed can keep being picked (tonic #2839), and
//! with no endpoint left a call waits for its deadline. Here a replica is
//! picked only while it has a live connection; a failed one leaves the
//! ready set at once and is reconnected in the background with backoff; and
//! with nothing ready a call waits at most `fail_fast`, then fails.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serving::errors::chain;
use serving::tls::client::Connector;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    resolve::{Answer, Resolver},
    target::Target,
    telemetry::{EndpointLabels, METRICS},
};
use prometheus_client::metrics::counter::Counter;

/// Never look up DNS more often than this, however many failures ask to.
const MIN_RESOLVE_SPACING: Duration = Duration::from_millis(250);
/// Empty DNS answers in a row before every replica is dropped.
const CONFIRM_EMPTY_ANSWERS: u32 = 2;
/// Reconnection backoff: from this...
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// HTTP/2 pings find a dead peer on an idle connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// service1's replicas as service2 sees them.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Woken when an endpoint becomes ready.
    ready_changed: Notify,
    /// Woken when DNS should be asked again now (a connection failed).
    resolve_now: Notify,
    connector: Connector,
    connect_timeout: Duration,
    stop: CancellationToken,
}

/// One replica.
pub struct Endpoint {
    key: String,
    /// The live connection and its generation; `None` while not ready.
    connection: Mutex<Option<(Connection, u64)>>,
    generations: AtomicU64,
    /// Mirrors whether `connection` is set, so picking reads no lock.
    is_ready: AtomicBool,
    in_flight: AtomicUsize,
    /// This replica's series of `service1_calls_total`.
    calls: Counter,
    failed: Notify,
    removed: CancellationToken,
}

/// A replica chosen for one call; counts as in flight until dropped.
pub struct Picked {
    endpoint: Arc<Endpoint>,
    connection: Connection,
    generation: u64,
}

// === impl Pool ===

impl Pool {
    pub fn new(
        connector: Connector,
        connect_timeout: Duration,
        metrics: &observability::Metrics,
        stop: CancellationToken,
    ) -> Self {
        let pool = Self {
            inner: Arc::new(Inner {
                endpoints: ArcSwap::from_pointee(Vec::new()),
                ready_changed: Notify::new(),
                resolve_now: Notify::new(),
                connector,
                connect_timeout,
                stop,
            }),
        };
        let weak = Arc::downgrade(&pool.inner);
        metrics.on_scrape(move || {
            if let Some(inner) = weak.upgrade() {
                let (ready, known) = Pool { inner }.counts();
                METRICS.ready.set(ready as i64);
                METRICS.known.set(known as i64);
            }
        });
        pool
    }

    /// Starts following `target`: once for fixed targets, every
    /// `interval` (or sooner, within the records' TTL or after a connection
    /// failure) for DNS.
    pub fn follow(&self, target: Target, resolver: Option<Resolver>, interval: Duration) {
        match (target, resolver) {
            (Target::Single(endpoint), _) => self.set_endpoints(vec![endpoint]),
            (Target::Static(endpoints), _) => self.set_endpoints(endpoints),
            (Target::Dns { name, port, .. }, Some(resolver)) => {
                tokio::spawn(self.clone().resolve_loop(resolver, name, port, interval));
            }
            (Target::Dns { name, .. }, None) => tracing::error!(%name, "no resolver for a DNS target"),
        }
    }

    async fn resolve_loop(self, resolver: Resolver, name: String, port: u16, interval: Duration) {
        let mut empty_answers = 0;
        loop {
            let answer = resolver.lookup(&name).await;
            if !matches!(answer, Ok(Answer::Nothing)) {
                empty_answers = 0;
            }
            let wait = match answer {
                Ok(Answer::Found(addrs, valid_until)) => {
                    self.set_endpoints(
                        addrs.into_iter().map(|ip| std::net::SocketAddr::new(ip, port).to_string()).collect(),
                    );
                    let ttl = valid_until.saturating_duration_since(std::time::Instant::now());
                    interval.min(ttl)
                }
                Ok(Answer::Nothing) => {
                    // With several nameservers in resolv.conf, one that does
                    // not know the name can answer first. Believe "no
                    // replicas" only when it is said twice in a row.
                    empty_answers += 1;
                    if empty_answers >= CONFIRM_EMPTY_ANSWERS || self.counts().1 == 0 {
                        self.set_endpoints(Vec::new());
                        interval
                    } else {
                        tracing::warn!(%name, "DNS says service1 has no replicas; asking again before believing it");
                        MIN_RESOLVE_SPACING
                    }
                }
                Err(error) => {
                    // Keep the replicas we know: DNS being down says
                    // nothing about them.
                    tracing::warn!(%name, %error, "DNS lookup of service1 failed; keeping the known replicas");
                    interval
                }
            };
            tokio::select! {
                _ = self.inner.stop.cancelled() => return,
                _ = tokio::time::sleep(wait.max(MIN_RESOLVE_SPACING)) => {}
                _ = self.inner.resolve_now.notified() => {
                    tokio::time::sleep(MIN_RESOLVE_SPACING).await;
                }
            }
        }
    }

    /// Makes the pool match `keys`: new replicas start connecting, removed
    /// ones take no new calls and close once their calls finish.
    pub fn set_endpoints(&self, keys: Vec<String>) {
        let current = self.inner.endpoints.load();
        if current.len() == keys.len() && current.iter().all(|e| keys.contains(&e.key)) {
            return;
        }
        let mut known: HashMap<&str, &Arc<Endpoint>> = current.iter().map(|e| (e.key.as_str(), e)).collect();
        let mut next = Vec::with_capacity(keys.len());
        for key in keys {
            match known.remove(key.as_str()) {
                Some(existing) => next.push(existing.clone()),
                None => {
                    tracing::info!(endpoint = %key, "service1 replica added");
                    let endpoint = Arc::new(Endpoint::new(key, self.inner.stop.child_token()));
                    tokio::spawn(self.clone().maintain(endpoint.clone()));
                    next.push(endpoint);
                }
            }
        }
        for gone in known.into_values() {
            tracing::info!(endpoint = %gone.key, "service1 replica removed; it gets no new calls");
            gone.removed.cancel();
            // Pods come and go: keep the label set bounded.
            METRICS.calls.remove(&EndpointLabels { endpoint: gone.key.clone() });
        }
        self.inner.endpoints.store(Arc::new(next));
    }

    /// Keeps one connection to `endpoint` open while it is in the pool, and
    /// replaces it as soon as it ends (peer gone, GOAWAY) or a call on it
    /// fails, so a dead connection is rarely even tried.
    async fn maintain(self, endpoint: Arc<Endpoint>) {
        let mut backoff = RECONNECT_MIN;
        loop {
            let connecting = tokio::time::timeout(self.inner.connect_timeout, self.connect(&endpoint.key));
            let result = tokio::select! {
                _ = endpoint.removed.cancelled() => return,
                result = connecting => result.unwrap_or_else(|_| Err("connect timeout".to_owned())),
            };
            match result {
                Ok((connection, driver)) => {
                    backoff = RECONNECT_MIN;
                    // The connection runs on its own task, so calls in
                    // flight finish even after we stop offering it.
                    let mut driver = tokio::spawn(driver);
                    endpoint.set_ready(connection);
                    self.inner.ready_changed.notify_waiters();
                    tracing::info!(endpoint = %endpoint.key, "connected to service1 replica");
                    tokio::select! {
                        _ = endpoint.removed.cancelled() => return endpoint.set_not_ready(),
                        _ = endpoint.failed.notified() => {}
                        _ = &mut driver => {
                            endpoint.set_not_ready();
                            tracing::info!(endpoint = %endpoint.key, "connection to service1 replica closed");
                        }
                    }
                }
                Err(error) => {
                    endpoint.set_not_ready();
                    self.inner.resolve_now.notify_one();
                    // Full jitter keeps replicas of service2 from
                    // reconnecting in lockstep.
                    let delay = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
                    tracing::warn!(endpoint = %endpoint.key, %error, retry_in_ms = delay.as_millis() as u64, "cannot connect to service1 replica");
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                    tokio::select! {
                        _ = endpoint.removed.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// TCP, TLS (unless off), then an HTTP/2 handshake. Returns the handle
    /// calls use and the future that drives the connection.
    async fn connect(
        &self,
        key: &str,
    ) -> Result<(Connection, impl Future<Output = ()> + Send + 'static), String> {
        let uri: http::Uri = format!("http://{key}").parse().map_err(|e| format!("{key}: {e}"))?;
        let mut connector = self.inner.connector.clone();
        let io = tower::Service::call(&mut connector, uri.clone()).await.map_err(|e| chain(&e))?;
        let (send, driver) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(io)
            .await
            .map_err(|e| chain(&e))?;
        let key = key.to_owned();
        let driver = async move {
            if let Err(error) = driver.await {
                tracing::debug!(endpoint = %key, error = %chain(&error), "connection to service1 replica failed");
            }
        };
        Ok((Connection { send, origin: uri }, driver))
    }

    /// A ready replica, waiting at most `wait` for one; prefers one other
    /// than `avoid` (the replica a retry just failed on).
    pub async fn ready(&self, wait: Duration, avoid: Option<&str>) -> Option<Picked> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.inner.ready_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(picked) = self.pick(avoid) {
                return Some(picked);
            }
            self.inner.resolve_now.notify_one();
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// Power of two choices among the ready replicas, without allocating:
    /// only the chosen replica's connection is locked and cloned.
    fn pick(&self, avoid: Option<&str>) -> Option<Picked> {
        let endpoints = self.inner.endpoints.load();
        let candidate = |e: &&Arc<Endpoint>, skip_avoided: bool| {
            e.is_ready.load(Ordering::Relaxed) && !(skip_avoided && Some(e.key.as_str()) == avoid)
        };
        // Skip the replica a retry just failed on, unless it is the only one.
        let mut skip = true;
        let mut n = endpoints.iter().filter(|e| candidate(e, true)).count();
        if n == 0 {
            skip = false;
            n = endpoints.iter().filter(|e| candidate(e, false)).count();
        }
        let nth = |i: usize| endpoints.iter().filter(|e| candidate(e, skip)).nth(i);
        let endpoint = match n {
            0 => return None,
            1 => nth(0)?,
            n => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (a, b) = (nth(a)?, nth(b)?);
                let load = |e: &Endpoint| e.in_flight.load(Ordering::Relaxed);
                if load(b) < load(a) {
                    b
                } else {
                    a
                }
            }
        };
        // It may have failed since the readiness flag was read: then the
        // caller waits for a ready replica, as with none.
        let (connection, generation) = endpoint.ready()?;
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        endpoint.calls.inc();
        Some(Picked { endpoint: endpoint.clone(), connection, generation })
    }

    /// (ready, known) replica counts.
    pub fn counts(&self) -> (usize, usize) {
        let endpoints = self.inner.endpoints.load();
        (endpoints.iter().filter(|e| e.is_ready.load(Ordering::Relaxed)).count(), endpoints.len())
    }
}

/// One HTTP/2 connection to a replica, as the tower service tonic's
/// client calls through. Cloning it is cheap; calls go straight onto the
/// connection, with no queue or task in between.
#[derive(Clone)]
pub struct Connection {
    send: SendRequest<tonic::body::Body>,
    origin: http::Uri,
}

impl Connection {
    pub fn origin(&self) -> http::Uri {
        self.origin.clone()
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), hyper::Error>> {
        // A closed connection must fail the call, not readiness: tonic turns
        // a readiness error into UNKNOWN without its cause, which would
        // hide that the call is safe to retry elsewhere. `send_request` on
        // a closed connection fails with the cause attached.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}

// === impl Endpoint ===

impl Endpoint {
    fn new(key: String, removed: CancellationToken) -> Self {
        let calls = METRICS.calls.get_or_create(&EndpointLabels { endpoint: key.clone() }).clone();
        Self {
            key,
            connection: Mutex::new(None),
            generations: AtomicU64::new(0),
            is_ready: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            calls,
            failed: Notify::new(),
            removed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Connection, u64)>> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ready(&self) -> Option<(Connection, u64)> {
        self.lock().clone()
    }

    fn set_ready(&self, connection: Connection) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut current = self.lock();
        *current = Some((connection, generation));
        self.is_ready.store(true, Ordering::Relaxed);
    }

    fn set_not_ready(&self) {
        let mut current = self.lock();
        *current = None;
        self.is_ready.store(false, Ordering::Relaxed);
    }
}

// === impl Picked ===

impl Picked {
    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    pub fn key(&self) -> &str {
        &self.endpoint.key
    }

    /// The connection failed: take the replica out of the ready set now and
    /// have it reconnected. A failure on an older connection than the
    /// current one changes nothing.
    pub fn mark_failed(&self) {
        let mut current = self.endpoint.lock();
        if current.as_ref().is_some_and(|(_, g)| *g == self.generation) {
            *current = None;
            self.endpoint.is_ready.store(false, Ordering::Relaxed);
            self.endpoint.failed.notify_one();
        }
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
