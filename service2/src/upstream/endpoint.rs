//! An endpoint: one service1 replica and the one HTTP/2 connection service2
//! keeps to it. The endpoint notices its own transport failures (the
//! connection ending, or a call on it failing in transport) and says
//! whether it is ready: it is exactly while it has a live connection. A
//! background task reconnects it, with backoff, until it is removed.
//!
//! tonic's balanced channel can keep picking an endpoint whose connection
//! failed (tonic #2839); here a failed connection leaves the ready set the
//! moment it is noticed.
//!
//! Calls go onto the connection through the `h2` crate directly, not
//! through hyper's client: hyper spawns a task per request to wait for its
//! response, passes each request to the connection's task over a channel,
//! and sends a request's body only once the connection has opened its
//! stream, so HEADERS and DATA left in two writes and service1 woke twice
//! per call. Here the caller's task queues HEADERS and the (unary) message
//! together and waits for the response itself: one write, one wake-up on
//! each side (callgrind: about 9,000 fewer instructions per call in service2,
//! strace: one writev fewer in service2 and a wake-up fewer in service1).
//! Keepalive pings, which hyper did, are in [`drive`].

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use h2::{client::SendRequest, RecvStream, SendStream};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use serving::{errors::chain, tls::client::Connector};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::upstream::{
    discovery::Refresh,
    header_limit::{HeaderListLimit, SettingsReader},
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

/// How to open a connection to a replica.
#[derive(Clone)]
pub struct Dialer {
    pub connector: Connector,
    /// TCP, TLS and HTTP/2 handshakes together.
    pub timeout: Duration,
    pub keepalive: Keepalive,
}

/// When service2 pings a replica to find out whether it still answers, as
/// gRFC A8 lets a client: only while a call is open and the replica has
/// sent nothing for `interval` since the call started. A stock gRPC server
/// (grpc-go, grpcio, our service1) counts a ping as a strike only when it
/// comes sooner than 5 minutes after the previous one *and the server has
/// sent no headers or data in between*, and answers the third strike with
/// GOAWAY `too_many_pings`; a server that answers calls is never struck,
/// and one that is silent for three intervals with calls open is the one
/// this is here to find. A ping on a connection without calls is a strike
/// whatever its timing, hence `while_idle` off by default.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// A ping after this long without a frame from the replica, with a
    /// call open.
    pub interval: Duration,
    /// A ping unanswered this long closes the connection, and ejects the
    /// replica.
    pub timeout: Duration,
    /// Whether to ping a connection with no call open.
    pub while_idle: bool,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), timeout: Duration::from_secs(2), while_idle: false }
    }
}

/// Whom an endpoint tells about its connection and its standing.
#[derive(Clone, Default)]
pub struct Reports {
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
    /// The live connection and its generation; `None` while not ready.
    connection: Mutex<Option<(Connection, u64)>>,
    generations: AtomicU64,
    /// Mirrors whether `connection` is set, so selection reads no lock.
    is_ready: AtomicBool,
    in_flight: AtomicUsize,
    /// Woken when a call starts, for keepalive (see [`drive`]).
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
    reports: Reports,
}

/// The handle calls are sent through, and where they are sent to.
#[derive(Clone)]
struct Connection {
    send: SendRequest<Bytes>,
    origin: http::Uri,
    /// When the replica last sent anything, or a call started on an idle
    /// connection: keepalive pings from there.
    heard: Arc<LastRead>,
    /// The largest header list the replica accepts.
    header_limit: Arc<HeaderListLimit>,
}

/// The right to send one call on an endpoint's current connection; counts
/// as in flight until dropped, and its life is the call's latency. It is
/// the tower service tonic's client calls through: calls go straight onto
/// the connection, with no queue or task in between.
pub struct Lease {
    connection: Connection,
    generation: Generation,
    leased_at: Instant,
}

/// One connection of one endpoint, to tell it that the connection failed.
#[derive(Clone)]
struct Generation {
    endpoint: Arc<Endpoint>,
    number: u64,
}

/// A response body that tells its endpoint when the connection fails
/// while it is read.
pub struct ResponseBody {
    inner: RecvStream,
    /// Whether the data is all read (trailers come next), and whether the
    /// trailers are too.
    data_done: bool,
    done: bool,
    generation: Generation,
}

// === impl Endpoint ===

impl Endpoint {
    /// An endpoint for `address`, connecting in the background until
    /// `removed` is cancelled.
    pub fn spawn(
        address: Address,
        calls: Counter,
        dialer: Dialer,
        reports: Reports,
        removed: CancellationToken,
    ) -> Arc<Self> {
        let endpoint = Arc::new(Self::new(address, calls, reports.clone(), removed));
        tokio::spawn(endpoint.clone().maintain(dialer, reports));
        endpoint
    }

    /// An endpoint with no connection, and no task to make one.
    fn new(address: Address, calls: Counter, reports: Reports, removed: CancellationToken) -> Self {
        Self {
            address,
            connection: Mutex::new(None),
            generations: AtomicU64::new(0),
            is_ready: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            call_started: Notify::new(),
            unanswered: Notify::new(),
            calls,
            failed: Notify::new(),
            removed,
            latency: PeakEwma::new(),
            standing: Standing::default(),
            reports,
        }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Takes no new calls from now on; the connection closes once the
    /// calls in flight on it finish.
    pub fn remove(&self) {
        self.removed.cancel();
        self.standing.forget(&self.reports.ejections);
    }

    /// A lease on the current connection, unless there is none (the
    /// connection may have failed since readiness was read).
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        let (connection, number) = self.lock().clone()?;
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            // Keepalive only pings while calls are open, once the replica
            // has been silent for its interval since this call started.
            connection.heard.touch();
            self.call_started.notify_one();
        }
        self.calls.inc();
        let generation = Generation { endpoint: self.clone(), number };
        Some(Lease { connection, generation, leased_at: Instant::now() })
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
    /// and a reason to ping the replica now (see [`drive`]), since the call
    /// that would have kept keepalive pinging is gone.
    pub fn timed_out(self: &Arc<Self>) {
        self.unanswered.notify_one();
        self.failed();
    }

    /// A call on it failed in a way that says something about the replica:
    /// no answer in time, a broken connection, or service1 unable to serve.
    pub fn failed(self: &Arc<Self>) {
        let change = self.standing.failed(&self.reports.ejections);
        self.act_on(change);
    }

    fn act_on(self: &Arc<Self>, change: Option<Change>) {
        let address = &self.address;
        let metrics = &self.reports.metrics;
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
                            endpoint.standing.end_ejection(&endpoint.reports.ejections);
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
    async fn maintain(self: Arc<Self>, dialer: Dialer, reports: Reports) {
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
                    reports.became_ready.notify_waiters();
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
                    reports.refresh.request();
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

    /// A call on connection `generation` failed in transport: leave the
    /// ready set now and reconnect. A failure on an older connection than
    /// the current one changes nothing.
    fn transport_failed(&self, generation: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|(_, g)| *g == generation) {
            *current = None;
            self.is_ready.store(false, Ordering::Relaxed);
            self.failed.notify_one();
        }
    }
}

impl Candidate for Arc<Endpoint> {
    fn is_ready(&self) -> bool {
        self.is_ready.load(Ordering::Relaxed)
    }

    fn load(&self) -> f64 {
        let now = Instant::now();
        let in_flight = self.in_flight.load(Ordering::Relaxed) as f64;
        let latency =
            self.latency.estimate(now).or_else(|| self.reports.typical.estimate(now)).unwrap_or(0.0);
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
    handshake(io.into_inner(), origin, keepalive, address, endpoint).await
}

/// The HTTP/2 handshake on `io`, already connected to `origin`.
async fn handshake<T>(
    io: T,
    origin: http::Uri,
    keepalive: Keepalive,
    address: &Address,
    endpoint: Weak<Endpoint>,
) -> Result<(Connection, impl Future<Output = ()> + Send + 'static), ConnectError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let heard = Arc::new(LastRead::new());
    let header_limit = Arc::new(HeaderListLimit::default());
    let io = OnRead {
        inner: io,
        on_read: {
            let heard = heard.clone();
            let mut settings = SettingsReader::new(header_limit.clone());
            move |bytes: &[u8]| {
                heard.touch();
                settings.feed(bytes);
            }
        },
    };
    // hyper's client defaults.
    let (send, connection) = h2::client::Builder::new()
        .initial_max_send_streams(100)
        .initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .max_frame_size(16 << 10)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(1 << 20)
        .max_local_error_reset_streams(Some(1024))
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(ConnectError::Handshake)?;
    let address = address.clone();
    let clock = heard.clone();
    let driver = async move {
        if let Err(error) = drive(connection, keepalive, &clock, endpoint).await {
            tracing::debug!(endpoint = %address, error = %chain(&error), "connection to service1 replica failed");
        }
    };
    Ok((Connection { send, origin, heard, header_limit }, driver))
}

/// Runs the connection until it ends, and pings the replica as
/// [`Keepalive`] says: once the replica has sent nothing for `interval`
/// while calls are open (or always, with `while_idle`); a ping unanswered
/// within `timeout` ends the connection, which fails the calls on it (they
/// are retried elsewhere) and ejects the replica.
async fn drive<T>(
    connection: h2::client::Connection<T, Bytes>,
    keepalive: Keepalive,
    last_read: &LastRead,
    endpoint: Weak<Endpoint>,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Send + Unpin,
{
    let mut connection = connection;
    let mut ping_pong = connection.ping_pong().expect("taken once, here");
    let mut connection = std::pin::pin!(connection);
    let idle = || endpoint.upgrade().is_none_or(|e| e.in_flight.load(Ordering::Relaxed) == 0);
    let unanswered = || async {
        match endpoint.upgrade() {
            Some(endpoint) => endpoint.unanswered.notified().await,
            None => std::future::pending().await,
        }
    };
    // A call went unanswered: ping now, whatever the interval and whether
    // calls are still open (the one that timed out no longer is).
    let mut probe = false;
    loop {
        let due = last_read.get() + keepalive.interval;
        if !probe && Instant::now() < due {
            tokio::select! {
                result = &mut connection => return result,
                _ = tokio::time::sleep_until(due) => {}
                _ = unanswered() => probe = true,
            }
            continue;
        }
        if !probe && !keepalive.while_idle && idle() {
            let Some(endpoint) = endpoint.upgrade() else { return connection.await };
            tokio::select! {
                result = &mut connection => return result,
                _ = endpoint.call_started.notified() => {}
                _ = endpoint.unanswered.notified() => probe = true,
            }
            continue;
        }
        probe = false;
        ping_pong.send_ping(h2::Ping::opaque())?;
        let pong =
            tokio::time::timeout(keepalive.timeout, std::future::poll_fn(|cx| ping_pong.poll_pong(cx)));
        tokio::select! {
            result = &mut connection => return result,
            pong = pong => match pong {
                Ok(pong) => {
                    pong?;
                    last_read.touch();
                }
                Err(_) => {
                    if let Some(endpoint) = endpoint.upgrade() {
                        tracing::warn!(
                            endpoint = %endpoint.address,
                            timeout_ms = keepalive.timeout.as_millis() as u64,
                            "service1 replica did not answer a keepalive ping in time; closing its connection"
                        );
                        let change = endpoint.standing.unresponsive(&endpoint.reports.ejections);
                        endpoint.act_on(change);
                    }
                    return Ok(());
                }
            },
        }
    }
}

/// When a connection last read anything (or, see [`Endpoint::lease`], a
/// call started on it after a quiet spell).
struct LastRead {
    /// Nanoseconds since `since`: exact, since a read noted up to 1 ms early
    /// (whole milliseconds) would let a ping go out before the interval,
    /// which service1 counts against the connection (`too_many_pings`).
    nanos: AtomicU64,
    since: Instant,
}

impl LastRead {
    fn new() -> Self {
        Self { nanos: AtomicU64::new(0), since: Instant::now() }
    }

    fn touch(&self) {
        self.nanos.store(self.since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn get(&self) -> Instant {
        self.since + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// A connection's IO that calls `on_read` with the bytes of each read (the
/// connection notes the time in [`LastRead`]). Forwards vectored writes, so
/// HTTP/2 frames still leave in one write.
struct OnRead<T, F> {
    inner: T,
    on_read: F,
}

impl<T: AsyncRead + Unpin, F: FnMut(&[u8]) + Unpin> AsyncRead for OnRead<T, F> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let this = &mut *self;
            (this.on_read)(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin, F: Unpin> AsyncWrite for OnRead<T, F> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// === impl Lease ===

impl Lease {
    pub fn address(&self) -> &Address {
        &self.generation.endpoint.address
    }

    /// The scheme and authority calls are sent to.
    pub fn origin(&self) -> http::Uri {
        self.connection.origin.clone()
    }
}

impl Lease {
    /// The endpoint the call goes to, to tell it how the call fared.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.generation.endpoint
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let endpoint = &self.generation.endpoint;
        endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        // The call is over: answered, failed, timed out or abandoned. Its
        // time counts whichever it was, so a replica that does not answer
        // looks as slow as the attempt timeout that gave up on it.
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.leased_at);
        endpoint.latency.observe(latency, now);
        endpoint.reports.typical.observe(latency, now);
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Lease {
    type Response = http::Response<ResponseBody>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A closed connection must fail the call, not readiness: tonic turns
        // a readiness error into UNKNOWN without its cause, which would
        // hide that the call is safe to retry elsewhere. Sending on a
        // closed connection fails with the cause attached.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // Not the connection's failure: it stays up and ready.
        if let Err(too_large) = self.connection.header_limit.check(&request) {
            return Box::pin(std::future::ready(Err(HeaderListLimit::refusal(too_large))));
        }
        let send = self.connection.send.clone();
        let generation = self.generation.clone();
        Box::pin(async move {
            match exchange(send, request).await {
                Ok(response) => Ok(response.map(|inner| ResponseBody {
                    inner,
                    data_done: false,
                    done: false,
                    generation,
                })),
                Err(error) => {
                    generation.transport_failed();
                    Err(error.into())
                }
            }
        })
    }
}

/// Sends `request` on the connection and waits for the response head.
/// The body is sent from this task too, alongside the wait.
async fn exchange(
    send: SendRequest<Bytes>,
    request: http::Request<tonic::body::Body>,
) -> Result<http::Response<RecvStream>, h2::Error> {
    // Only waits for this handle's own pending stream: a call over the
    // replica's limit of concurrent streams queues inside h2 until a stream
    // frees or the call's deadline passes. It counts in `in_flight` there,
    // so p2c steers new calls away from that replica.
    let mut send = send.ready().await?;
    let (parts, body) = request.into_parts();
    let end_of_stream = body.is_end_stream();
    let (mut response, stream) = send.send_request(http::Request::from_parts(parts, ()), end_of_stream)?;
    if end_of_stream {
        return response.await;
    }
    let mut body = std::pin::pin!(send_body(body, stream));
    let mut sending = true;
    std::future::poll_fn(|cx| {
        // A unary message is ready at once, so it is queued behind the
        // HEADERS before the connection's task writes either.
        if sending && body.as_mut().poll(cx).is_ready() {
            sending = false;
        }
        Pin::new(&mut response).poll(cx)
    })
    .await
}

/// Queues `body` on `stream` as it comes, without waiting for flow-control
/// capacity: the frames are already in memory (tonic encodes the whole
/// message), and h2 sends what it buffered as the window allows. A body
/// that fails resets the stream, which fails the response.
async fn send_body(mut body: tonic::body::Body, mut stream: SendStream<Bytes>) {
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let sent = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end_of_stream = body.is_end_stream();
                    let sent = stream.send_data(data, end_of_stream);
                    if sent.is_ok() && !end_of_stream {
                        continue;
                    }
                    sent
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => stream.send_trailers(trailers),
                    Err(_) => continue,
                },
            },
            Some(Err(error)) => {
                tracing::debug!(error = %error, "request body to service1 failed");
                stream.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
            None => stream.send_data(Bytes::new(), true),
        };
        if let Err(error) = sent {
            tracing::debug!(error = %chain(&error), "cannot send the request body to service1");
        }
        return;
    }
}

// === impl Generation ===

impl Generation {
    fn transport_failed(&self) {
        self.endpoint.transport_failed(self.number);
    }
}

// === impl ResponseBody ===

impl ResponseBody {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.data_done {
            match std::task::ready!(self.inner.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Gives the window back: the caller has the bytes now.
                    let _ = self.inner.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.data_done = true,
            }
        }
        let trailers = std::task::ready!(self.inner.poll_trailers(cx));
        self.done = true;
        Poll::Ready(trailers.transpose().map(|t| t.map(Frame::trailers)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        let frame = this.poll_inner(cx);
        if let Poll::Ready(Some(Err(_))) = &frame {
            this.generation.transport_failed();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hyper_util::rt::{TokioExecutor, TokioIo};
    use serving::h2_guard::Frames;
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
        /// PING frames (not acks) the client has sent.
        pings: Arc<AtomicUsize>,
    }

    /// The server's side of a connection, counting the client's PING
    /// frames (not acks) as they are read, after the connection preface.
    fn count_pings(
        tcp: tokio::net::TcpStream,
        pings: Arc<AtomicUsize>,
    ) -> OnRead<tokio::net::TcpStream, impl FnMut(&[u8]) + Unpin> {
        let mut frames = Frames::skipping(24);
        let on_read = move |bytes: &[u8]| {
            frames.feed(bytes, |header| {
                if header[3] == 6 && header[4] & 1 == 0 {
                    pings.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        OnRead { inner: tcp, on_read }
    }

    async fn server(answer: Answer) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrival, arrived) = mpsc::unbounded_channel();
        let close = CancellationToken::new();
        let closed = close.clone();
        let pings = Arc::new(AtomicUsize::new(0));
        let counted = pings.clone();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tcp = count_pings(tcp, counted);
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
        Server { addr, arrived, close, pings }
    }

    fn plaintext() -> Dialer {
        Dialer {
            connector: Connector::plaintext(),
            timeout: Duration::from_secs(5),
            keepalive: Keepalive::default(),
        }
    }

    /// An endpoint for `addr`, once it is ready.
    async fn ready_endpoint(addr: SocketAddr, calls: Counter) -> Arc<Endpoint> {
        ready_endpoint_with(addr, calls, plaintext()).await
    }

    async fn ready_endpoint_with(addr: SocketAddr, calls: Counter, dialer: Dialer) -> Arc<Endpoint> {
        let reports = Reports::default();
        let became_ready = reports.became_ready.clone();
        let became_ready = became_ready.notified();
        tokio::pin!(became_ready);
        became_ready.as_mut().enable();
        let endpoint = Endpoint::spawn(addr.into(), calls, dialer, reports, CancellationToken::new());
        became_ready.await;
        endpoint
    }

    fn pinging_every(interval: Duration, while_idle: bool) -> Dialer {
        Dialer {
            keepalive: Keepalive { interval, timeout: Duration::from_secs(5), while_idle },
            ..plaintext()
        }
    }

    fn request(lease: &Lease) -> http::Request<tonic::body::Body> {
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(lease.address().to_string())
            .path_and_query("/app.grpc.Service1/ProcessName")
            .build()
            .unwrap();
        http::Request::post(uri).body(tonic::body::Body::empty()).unwrap()
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
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let reports = Reports::default();
        let refresh = reports.refresh.clone();

        let endpoint = Endpoint::spawn(
            closed.into(),
            Counter::default(),
            plaintext(),
            reports,
            CancellationToken::new(),
        );

        refresh.requested().await;
        assert!(!endpoint.is_ready());
        assert!(endpoint.lease().is_none());
        endpoint.remove();
    }

    #[tokio::test]
    async fn a_quiet_connection_with_a_call_open_is_pinged_every_keepalive_interval() {
        let mut server = server(Answer::Hold).await;
        let endpoint = ready_endpoint_with(
            server.addr,
            Counter::default(),
            pinging_every(Duration::from_millis(50), false),
        )
        .await;
        let mut lease = endpoint.lease().unwrap();
        let request = request(&lease);
        let call = tower::Service::call(&mut lease, request);
        tokio::pin!(call);
        tokio::select! {
            _ = &mut call => panic!("the server holds the call"),
            _ = server.arrived.recv() => {}
        }

        tokio::select! {
            _ = &mut call => panic!("the server holds the call"),
            _ = tokio::time::sleep(Duration::from_millis(400)) => {}
        }

        let pings = server.pings.load(Ordering::Relaxed);
        assert!((3..=9).contains(&pings), "{pings} pings in 400 ms at one per 50 ms of quiet");
        assert!(endpoint.is_ready(), "every ping was answered");
    }

    #[tokio::test]
    async fn a_connection_without_calls_is_not_pinged_unless_keepalive_says_while_idle() {
        let quiet = server(Answer::Hold).await;
        let pinged = server(Answer::Hold).await;
        let interval = Duration::from_millis(50);
        let _quiet =
            ready_endpoint_with(quiet.addr, Counter::default(), pinging_every(interval, false)).await;
        let _pinged =
            ready_endpoint_with(pinged.addr, Counter::default(), pinging_every(interval, true)).await;

        tokio::time::sleep(Duration::from_millis(400)).await;

        assert_eq!(quiet.pings.load(Ordering::Relaxed), 0);
        assert!(pinged.pings.load(Ordering::Relaxed) >= 3);
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
        let reports = Reports { metrics, ..Reports::default() };
        let endpoint =
            Arc::new(Endpoint::new(address.clone(), Counter::default(), reports, Default::default()));
        let origin: http::Uri = "http://127.0.0.1:1".parse().unwrap();
        let (connection, driver) = handshake(client, origin, keepalive, &address, Arc::downgrade(&endpoint))
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
