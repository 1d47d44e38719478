//! An endpoint: one service1 replica and the one HTTP/2 connection service2
//! keeps to it. It owns the replica's readiness and reconnection, its calls
//! in flight, latency and standing (ejected or not): the connection
//! ([`h2_client`]) and its keepalive ([`keepalive`]) report to it.
//!
//! It notices its own transport failures (the connection ending, or a call
//! on it failing in transport) and says whether it is ready: it is exactly
//! while it has a live connection. A background task reconnects it, with
//! backoff, until it is removed.
//!
//! tonic's balanced channel can keep picking an endpoint whose connection
//! failed (tonic #2839); here a failed connection leaves the ready set the
//! moment it is noticed.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use serving::{errors::chain, tls::client::Connector};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::upstream::{
    discovery::Refresh,
    h2_client::{self, Connection, Lessor},
    keepalive::{Keepalive, Watch},
    latency::{PeakEwma, Typical},
    outlier::{Change, Ejections, Standing},
    selection::Candidate,
    Address, UpstreamMetrics,
};

/// Reconnection backoff: from this...
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Added to every latency estimate, so that calls in flight still count
/// before any call has ended.
const LATENCY_FLOOR_NANOS: f64 = 1_000.0;

/// The right to send one call on an endpoint's current connection; counts
/// as in flight until dropped.
pub type Lease = h2_client::Lease<Endpoint>;
/// A response body read from an endpoint's connection.
pub type ResponseBody = h2_client::ResponseBody<Endpoint>;

/// How to open a connection to a replica.
#[derive(Clone)]
pub struct Dialer {
    pub connector: Connector,
    /// TCP, TLS and HTTP/2 handshakes together.
    pub timeout: Duration,
    pub keepalive: Keepalive,
}

/// What every endpoint of one pool shares with the pool and the others.
#[derive(Clone, Default)]
pub struct PoolShared {
    /// Woken whenever an endpoint becomes ready, for calls waiting for one.
    pub became_ready: Arc<Notify>,
    /// Asked when a connection cannot be made: the replica may be gone.
    pub refresh: Refresh,
    /// The pool's ejection policy and count.
    pub ejections: Arc<Ejections>,
    /// Ejections and returns are counted here.
    pub metrics: Arc<UpstreamMetrics>,
    /// Every replica's latency together, for those not measured yet.
    pub typical: Arc<Typical>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timeout")]
    Timeout,
    #[error("{address}: {source}")]
    Uri { address: Address, source: http::uri::InvalidUri },
    #[error("{}", chain(.0))]
    Dial(std::io::Error),
    #[error("{}", chain(.0))]
    Handshake(h2::Error),
}

/// One replica.
pub struct Endpoint {
    address: Address,
    /// The live connection and its number; `None` while not ready.
    connection: Mutex<Option<(Connection, u64)>>,
    /// Connections made so far: the number of the latest.
    connections: AtomicU64,
    /// Mirrors whether `connection` is set, so selection reads no lock.
    is_ready: AtomicBool,
    in_flight: AtomicUsize,
    /// Woken when a call starts, for keepalive.
    call_started: Notify,
    /// Woken when a call on it went unanswered until its attempt timeout:
    /// keepalive then asks the replica at once whether it is there at all.
    unanswered: Notify,
    /// This replica's series of `service1_calls_total`.
    calls: Counter,
    /// Woken when a call finds the connection broken.
    failed: Notify,
    removed: CancellationToken,
    /// How fast it answers, for selection.
    latency: PeakEwma,
    /// Whether it is ejected for failing.
    standing: Standing,
    shared: PoolShared,
}

// === impl Endpoint ===

impl Endpoint {
    /// An endpoint for `address`, connecting in the background until
    /// `removed` is cancelled.
    pub fn spawn(
        address: Address,
        calls: Counter,
        dialer: Dialer,
        shared: PoolShared,
        removed: CancellationToken,
    ) -> Arc<Self> {
        let endpoint = Arc::new(Self::new(address, calls, shared, removed));
        tokio::spawn(endpoint.clone().maintain(dialer));
        endpoint
    }

    /// An endpoint with no connection, and no task to make one.
    fn new(address: Address, calls: Counter, shared: PoolShared, removed: CancellationToken) -> Self {
        Self {
            address,
            connection: Mutex::new(None),
            connections: AtomicU64::new(0),
            is_ready: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            call_started: Notify::new(),
            unanswered: Notify::new(),
            calls,
            failed: Notify::new(),
            removed,
            latency: PeakEwma::new(),
            standing: Standing::default(),
            shared,
        }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Takes no new calls from now on; the connection closes once the
    /// calls in flight on it finish.
    pub fn remove(&self) {
        self.removed.cancel();
        self.standing.forget(&self.shared.ejections);
    }

    /// A lease on the current connection, unless there is none (the
    /// connection may have failed since readiness was read).
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        let (connection, number) = self.lock().clone()?;
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            // Keepalive only pings while calls are open, once the replica
            // has been silent for its interval since this call started.
            connection.restart_quiet();
            self.call_started.notify_one();
        }
        self.calls.inc();
        Some(Lease::new(connection, self.clone(), number))
    }

    /// Whether it is ejected for failing (selection still uses it when
    /// nothing else is ready).
    pub fn is_ejected(&self) -> bool {
        self.standing.is_ejected()
    }

    /// A call on it was answered, with success or with an error that is
    /// the caller's (see `call`).
    pub fn succeeded(self: &Arc<Self>) {
        let change = self.standing.succeeded();
        self.act_on(change);
    }

    /// A call on it got no answer within its attempt timeout: a failure,
    /// and a reason to ping the replica now (see `keepalive`), since the
    /// call that would have kept keepalive pinging is gone.
    pub fn timed_out(self: &Arc<Self>) {
        self.unanswered.notify_one();
        self.failed();
    }

    /// A call on it failed in a way that says something about the replica:
    /// no answer in time, a broken connection, or service1 unable to serve.
    pub fn failed(self: &Arc<Self>) {
        let change = self.standing.failed(&self.shared.ejections);
        self.act_on(change);
    }

    fn act_on(self: &Arc<Self>, change: Option<Change>) {
        let address = &self.address;
        let metrics = &self.shared.metrics;
        match change {
            None => {}
            Some(Change::Returned) => {
                metrics.returns.inc();
                tracing::info!(endpoint = %address, "service1 replica answered on probation; it takes its full share of calls again");
            }
            Some(Change::Ejected { reason, duration, in_a_row }) => {
                metrics.ejection(reason).inc();
                tracing::warn!(
                    endpoint = %address,
                    reason = reason.as_str(),
                    ejected_for_ms = duration.as_millis() as u64,
                    ejections_in_a_row = in_a_row,
                    "service1 replica ejected: it gets calls only if no other replica is ready"
                );
                let endpoint = self.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = endpoint.removed.cancelled() => {}
                        _ = tokio::time::sleep(duration) => {
                            endpoint.standing.end_ejection(&endpoint.shared.ejections);
                            tracing::info!(endpoint = %endpoint.address, "service1 replica back on probation: its next call decides");
                        }
                    }
                });
            }
        }
    }

    /// Keeps one connection open while the endpoint is in the pool, and
    /// replaces it as soon as it ends (peer gone, GOAWAY) or a call on it
    /// fails in transport, so a dead connection is rarely even tried.
    async fn maintain(self: Arc<Self>, dialer: Dialer) {
        let address = &self.address;
        let mut backoff = RECONNECT_MIN;
        loop {
            let connecting = tokio::time::timeout(
                dialer.timeout,
                connect(&dialer.connector, dialer.keepalive, address, Arc::downgrade(&self)),
            );
            let result = tokio::select! {
                _ = self.removed.cancelled() => return,
                result = connecting => result.unwrap_or(Err(ConnectError::Timeout)),
            };
            match result {
                Ok((connection, driver)) => {
                    backoff = RECONNECT_MIN;
                    // The connection runs on its own task, so calls in
                    // flight finish even after we stop offering it.
                    let mut driver = tokio::spawn(driver);
                    self.set_ready(connection);
                    self.shared.became_ready.notify_waiters();
                    tracing::info!(endpoint = %address, "connected to service1 replica");
                    tokio::select! {
                        _ = self.removed.cancelled() => return self.set_not_ready(),
                        _ = self.failed.notified() => {}
                        _ = &mut driver => {
                            self.set_not_ready();
                            tracing::info!(endpoint = %address, "connection to service1 replica closed");
                        }
                    }
                }
                Err(error) => {
                    self.set_not_ready();
                    self.shared.refresh.request();
                    // Full jitter keeps replicas of service2 from
                    // reconnecting in lockstep.
                    let delay = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
                    tracing::warn!(endpoint = %address, %error, retry_in_ms = delay.as_millis() as u64, "cannot connect to service1 replica");
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                    tokio::select! {
                        _ = self.removed.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(Connection, u64)>> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_ready(&self, connection: Connection) {
        // Latency measured on the old connection says little about the new
        // one (a replica that froze and resumed answers fast again).
        self.latency.reset();
        let number = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let mut current = self.lock();
        *current = Some((connection, number));
        self.is_ready.store(true, Ordering::Relaxed);
    }

    fn set_not_ready(&self) {
        let mut current = self.lock();
        *current = None;
        self.is_ready.store(false, Ordering::Relaxed);
    }
}

impl Lessor for Endpoint {
    /// A call on connection `number` failed in transport: leave the ready
    /// set now and reconnect. A failure on an older connection than the
    /// current one changes nothing.
    fn transport_failed(&self, number: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|(_, n)| *n == number) {
            *current = None;
            self.is_ready.store(false, Ordering::Relaxed);
            self.failed.notify_one();
        }
    }

    fn returned(&self, leased_at: Instant) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        // Its time counts whichever way the call ended, so a replica that
        // does not answer looks as slow as the attempt timeout that gave
        // up on it.
        let now = Instant::now();
        let latency = now.saturating_duration_since(leased_at);
        self.latency.observe(latency, now);
        self.shared.typical.observe(latency, now);
    }
}

impl Watch for Endpoint {
    fn calls_open(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    fn call_started(&self) -> &Notify {
        &self.call_started
    }

    fn unanswered(&self) -> &Notify {
        &self.unanswered
    }

    fn unresponsive(self: Arc<Self>, timeout: Duration) {
        tracing::warn!(
            endpoint = %self.address,
            timeout_ms = timeout.as_millis() as u64,
            "service1 replica did not answer a keepalive ping in time; closing its connection"
        );
        let change = self.standing.unresponsive(&self.shared.ejections);
        self.act_on(change);
    }
}

impl Candidate for Arc<Endpoint> {
    fn is_ready(&self) -> bool {
        self.is_ready.load(Ordering::Relaxed)
    }

    fn load(&self) -> f64 {
        let now = Instant::now();
        let in_flight = self.in_flight.load(Ordering::Relaxed) as f64;
        let latency = self.latency.estimate(now).or_else(|| self.shared.typical.estimate(now)).unwrap_or(0.0);
        (latency + LATENCY_FLOOR_NANOS) * (in_flight + 1.0)
    }
}

/// TCP, TLS (unless off), then an HTTP/2 handshake. Returns the handle
/// calls use and the future that drives the connection.
async fn connect(
    connector: &Connector,
    keepalive: Keepalive,
    address: &Address,
    endpoint: Weak<Endpoint>,
) -> Result<(Connection, impl Future<Output = ()> + Send + 'static), ConnectError> {
    let origin: http::Uri = format!("http://{address}")
        .parse()
        .map_err(|source| ConnectError::Uri { address: address.clone(), source })?;
    let io =
        tower::Service::call(&mut connector.clone(), origin.clone()).await.map_err(ConnectError::Dial)?;
    h2_client::handshake(io.into_inner(), origin, keepalive, address, endpoint)
        .await
        .map_err(ConnectError::Handshake)
}

#[cfg(test)]
impl Dialer {
    /// Plaintext, with default keepalive: what the unit tests dial with.
    pub(crate) fn plaintext() -> Self {
        Self {
            connector: Connector::plaintext(),
            timeout: Duration::from_secs(5),
            keepalive: Keepalive::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::SocketAddr,
        pin::Pin,
        task::{Context, Poll},
    };

    use bytes::Bytes;
    use h2::RecvStream;
    use http_body::{Body, Frame};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::{
        net::TcpListener,
        sync::{mpsc, oneshot},
    };

    use super::*;

    /// How the test server answers each request.
    #[derive(Clone)]
    enum Answer {
        /// Never: the request waits until the connection closes.
        Hold,
        /// With RST_STREAM, leaving the connection up.
        Reset,
        /// With headers and a first body frame; then, once the sender is
        /// dropped, with RST_STREAM.
        ResetBodyOn(Arc<Mutex<Option<oneshot::Receiver<()>>>>),
    }

    /// A body that sends one frame, then fails when `fail` fires, which
    /// hyper answers with RST_STREAM.
    struct FailingBody {
        sent: bool,
        fail: oneshot::Receiver<()>,
    }

    impl Body for FailingBody {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if !std::mem::replace(&mut self.sent, true) {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))));
            }
            Pin::new(&mut self.fail).poll(cx).map(|_| Some(Err(std::io::Error::other("body failed"))))
        }
    }

    /// An HTTP/2 server that takes one connection; cancelling `close`
    /// closes it and the listener.
    struct Server {
        addr: SocketAddr,
        arrived: mpsc::UnboundedReceiver<()>,
        close: CancellationToken,
    }

    async fn server(answer: Answer) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrival, arrived) = mpsc::unbounded_channel();
        let close = CancellationToken::new();
        let closed = close.clone();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let answer = hyper::service::service_fn(move |_| {
                let _ = arrival.send(());
                let answer = answer.clone();
                async move {
                    match answer {
                        Answer::Hold => std::future::pending().await,
                        // hyper resets the stream of a request its service fails.
                        Answer::Reset => Err(std::io::Error::other("reset")),
                        Answer::ResetBodyOn(fail) => {
                            let fail = fail.lock().unwrap().take().expect("one request");
                            Ok(http::Response::new(FailingBody { sent: false, fail }))
                        }
                    }
                }
            });
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), answer);
            tokio::select! {
                _ = connection => {}
                _ = closed.cancelled() => {}
            }
        });
        Server { addr, arrived, close }
    }

    /// An endpoint for `addr`, once it is ready.
    async fn ready_endpoint(addr: SocketAddr, calls: Counter) -> Arc<Endpoint> {
        let shared = PoolShared::default();
        let became_ready = shared.became_ready.clone();
        let became_ready = became_ready.notified();
        tokio::pin!(became_ready);
        became_ready.as_mut().enable();
        let endpoint =
            Endpoint::spawn(addr.into(), calls, Dialer::plaintext(), shared, CancellationToken::new());
        became_ready.await;
        endpoint
    }

    fn request(lease: &Lease) -> http::Request<tonic::body::Body> {
        h2_client::tests::request(lease, tonic::body::Body::empty())
    }

    async fn next_frame(body: &mut ResponseBody) -> Option<Result<Frame<Bytes>, h2::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_connected_endpoint_is_ready_and_a_lease_counts_as_in_flight_until_dropped() {
        let server = server(Answer::Hold).await;
        let calls = Counter::default();
        let endpoint = ready_endpoint(server.addr, calls.clone()).await;

        let lease = endpoint.lease().expect("a ready endpoint leases its connection");

        assert!(endpoint.is_ready());
        assert_eq!((endpoint.in_flight.load(Ordering::Relaxed), calls.get()), (1, 1));
        drop(lease);
        assert_eq!((endpoint.in_flight.load(Ordering::Relaxed), calls.get()), (0, 1));
    }

    #[tokio::test]
    async fn a_call_whose_connection_closes_leaves_the_endpoint_not_ready() {
        let mut server = server(Answer::Hold).await;
        let endpoint = ready_endpoint(server.addr, Counter::default()).await;
        let mut lease = endpoint.lease().unwrap();
        let request = request(&lease);
        let call = tower::Service::call(&mut lease, request);
        tokio::pin!(call);
        tokio::select! {
            _ = &mut call => panic!("the server holds the call"),
            _ = server.arrived.recv() => {}
        }

        server.close.cancel();

        assert!(call.await.is_err());
        assert!(!endpoint.is_ready());
        assert!(endpoint.lease().is_none());
    }

    #[tokio::test]
    async fn a_call_that_fails_in_transport_takes_the_endpoint_out_of_the_ready_set_though_the_connection_is_up(
    ) {
        let server = server(Answer::Reset).await;
        let endpoint = ready_endpoint(server.addr, Counter::default()).await;
        let mut lease = endpoint.lease().unwrap();
        let request = request(&lease);

        let result = tower::Service::call(&mut lease, request).await;

        assert!(result.is_err(), "the stream was reset");
        assert!(!endpoint.is_ready());
    }

    #[tokio::test]
    async fn a_response_body_that_fails_in_transport_takes_the_endpoint_out_of_the_ready_set() {
        let (fail, on_fail) = oneshot::channel::<()>();
        let server = server(Answer::ResetBodyOn(Arc::new(Mutex::new(Some(on_fail))))).await;
        let endpoint = ready_endpoint(server.addr, Counter::default()).await;
        let mut lease = endpoint.lease().unwrap();
        let request = request(&lease);
        let mut body = tower::Service::call(&mut lease, request).await.expect("headers arrive").into_body();
        assert!(endpoint.is_ready(), "nothing has failed yet");

        drop(fail);

        assert!(matches!(next_frame(&mut body).await, Some(Ok(_))), "the first frame");
        assert!(matches!(next_frame(&mut body).await, Some(Err(_))), "then the reset");
        assert!(!endpoint.is_ready());
    }

    #[tokio::test]
    async fn an_endpoint_that_cannot_connect_is_not_ready_and_asks_discovery_to_look_again() {
        let closed = process_tests::closed_addr();
        let shared = PoolShared::default();
        let refresh = shared.refresh.clone();

        let endpoint = Endpoint::spawn(
            closed.into(),
            Counter::default(),
            Dialer::plaintext(),
            shared,
            CancellationToken::new(),
        );

        refresh.requested().await;
        assert!(!endpoint.is_ready());
        assert!(endpoint.lease().is_none());
        endpoint.remove();
    }

    type Arrivals = mpsc::UnboundedReceiver<(http::Request<RecvStream>, h2::server::SendResponse<Bytes>)>;

    /// A ready endpoint whose connection runs over an in-memory pipe to an
    /// HTTP/2 server, driven as in production, so tokio's paused clock
    /// governs everything. Requests arrive on the receiver; cancelling the
    /// token freezes the server (it keeps the connection but reads and
    /// answers nothing, like a stopped process).
    async fn piped(
        keepalive: Keepalive,
        metrics: Arc<UpstreamMetrics>,
    ) -> (Arc<Endpoint>, Arrivals, CancellationToken, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (arrival, arrivals) = mpsc::unbounded_channel();
        let freeze = CancellationToken::new();
        let frozen = freeze.clone();
        tokio::spawn(async move {
            let mut connection = h2::server::handshake(server).await.expect("server handshake");
            loop {
                tokio::select! {
                    _ = frozen.cancelled() => std::future::pending::<()>().await,
                    next = connection.accept() => match next {
                        Some(Ok(call)) => { let _ = arrival.send(call); }
                        _ => return,
                    },
                }
            }
        });
        let address = Address::from(SocketAddr::from(([127, 0, 0, 1], 1)));
        let shared = PoolShared { metrics, ..PoolShared::default() };
        let endpoint =
            Arc::new(Endpoint::new(address.clone(), Counter::default(), shared, Default::default()));
        let origin: http::Uri = "http://127.0.0.1:1".parse().unwrap();
        let (connection, driver) =
            h2_client::handshake(client, origin, keepalive, &address, Arc::downgrade(&endpoint))
                .await
                .unwrap_or_else(|e| panic!("client handshake: {e}"));
        endpoint.set_ready(connection);
        (endpoint, arrivals, freeze, tokio::spawn(driver))
    }

    /// A call on `lease`, once it has reached the server (which holds it
    /// until told how to answer).
    async fn held_call(
        lease: &mut Lease,
        arrivals: &mut Arrivals,
    ) -> (<Lease as tower::Service<http::Request<tonic::body::Body>>>::Future, h2::server::SendResponse<Bytes>)
    {
        let request = request(lease);
        let mut call = tower::Service::call(lease, request);
        let (_, respond) = tokio::select! {
            _ = &mut call => panic!("the server holds the call"),
            arrived = arrivals.recv() => arrived.unwrap(),
        };
        (call, respond)
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_stops_answering_with_a_call_open_is_found_by_keepalive_closed_and_ejected() {
        let keepalive = Keepalive {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            while_idle: false,
        };
        let metrics = Arc::new(UpstreamMetrics::default());
        let (endpoint, _arrivals, freeze, driver) = piped(keepalive, metrics.clone()).await;
        freeze.cancel();
        let started = Instant::now();

        let mut lease = endpoint.lease().unwrap();
        let request = request(&lease);
        let result = tower::Service::call(&mut lease, request).await;

        assert!(result.is_err(), "the call fails with its connection, to be retried elsewhere");
        assert_eq!(started.elapsed(), keepalive.interval + keepalive.timeout, "on tokio's paused clock");
        driver.await.expect("the connection's task ended");
        assert!(!endpoint.is_ready());
        assert!(endpoint.is_ejected());
        assert_eq!(metrics.ejection(crate::upstream::outlier::Reason::Unresponsive).get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_given_up_on_makes_keepalive_ask_the_replica_at_once_though_no_call_is_open() {
        // An interval far longer than the test: only the abandoned call can
        // make a ping go out.
        let keepalive = Keepalive {
            interval: Duration::from_secs(600),
            timeout: Duration::from_secs(2),
            while_idle: false,
        };
        let metrics = Arc::new(UpstreamMetrics::default());
        let (endpoint, mut arrivals, freeze, driver) = piped(keepalive, metrics.clone()).await;
        let mut lease = endpoint.lease().unwrap();
        let (call, _respond) = held_call(&mut lease, &mut arrivals).await;
        freeze.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();

        drop((call, lease));
        endpoint.timed_out();
        driver.await.expect("the connection's task ended");

        assert_eq!(started.elapsed(), keepalive.timeout, "on tokio's paused clock");
        assert!(endpoint.is_ejected());
        assert_eq!(metrics.ejection(crate::upstream::outlier::Reason::Unresponsive).get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_answers_within_the_keepalive_timeout_keeps_its_connection() {
        let keepalive = Keepalive {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
            while_idle: false,
        };
        let (endpoint, mut arrivals, _freeze, driver) = piped(keepalive, Default::default()).await;
        let mut lease = endpoint.lease().unwrap();
        let (call, mut respond) = held_call(&mut lease, &mut arrivals).await;
        tokio::pin!(call);

        // Ten keepalive intervals with the call open and nothing sent back:
        // each ping is answered (h2 answers pings as it reads).
        tokio::select! {
            _ = &mut call => panic!("the server holds the call"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        respond.send_response(http::Response::new(()), true).unwrap();

        assert!(call.await.is_ok());
        assert!(endpoint.is_ready() && !endpoint.is_ejected());
        assert!(!driver.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_given_up_on_resets_its_stream_with_cancel() {
        let (endpoint, mut arrivals, _freeze, _driver) =
            piped(Keepalive::default(), Default::default()).await;
        let mut lease = endpoint.lease().unwrap();
        let (call, mut respond) = held_call(&mut lease, &mut arrivals).await;

        drop(call);

        let reason = std::future::poll_fn(|cx| respond.poll_reset(cx)).await.expect("a reset");
        assert_eq!(reason, h2::Reason::CANCEL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_takes_long_raises_the_replicas_load_by_its_latency() {
        let (slow, mut arrivals, _freeze, _driver) = piped(Keepalive::default(), Default::default()).await;
        let idle_load = slow.load();
        let mut lease = slow.lease().unwrap();
        let (call, mut respond) = held_call(&mut lease, &mut arrivals).await;
        tokio::pin!(call);
        tokio::select! {
            _ = &mut call => panic!("the server holds the call"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        respond.send_response(http::Response::new(()), true).unwrap();
        call.await.unwrap();

        drop(lease);

        let estimate = slow.latency.estimate(Instant::now()).unwrap();
        assert_eq!(estimate, 200e6, "the call's 200 ms, in nanoseconds");
        assert!(slow.load() > 1000.0 * idle_load, "{} against {idle_load} before", slow.load());
    }
}
