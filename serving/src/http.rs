//! The HTTP stack both REST servers share: request ids, access lines, JSON
//! errors for unknown routes and panics, and graceful serving.

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    response::{IntoResponse, Response},
    Router,
};
use bytes::Bytes;
use http_body::Body as _;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::{Layer, Service};

use observability::{metrics, Metrics, Observability};
use settings::{ConnectionLimits, HttpLimits, ListenArgs};
use wire::{request_id, ErrorKind, RequestId};

use crate::{
    h2_guard::{H2Guard, StreamTally},
    head_errors::HeadErrors,
    stalled::{BodyClock, StreamExecutor},
    ApiError,
};

/// Wraps a service's routes in the layers every HTTP port has.
pub fn with_common_layers(router: Router, limits: &HttpLimits, obs: &Observability) -> Router {
    with_common_layers_and_probes(router, limits, &[], obs)
}

/// The same, except that requests for `probes` (exact paths) take no
/// request slot: they are answered at once, whoever holds the slots. Only
/// cheap handlers belong here. One left waiting (a gRPC call whose message
/// never comes) still holds its HTTP/2 stream until the request timeout,
/// so the port must bound streams per connection.
pub fn with_common_layers_and_probes(
    router: Router,
    limits: &HttpLimits,
    probes: &'static [&'static str],
    obs: &Observability,
) -> Router {
    let admission = Admission {
        permits: Arc::new(Semaphore::new(limits.http_max_concurrent_requests as usize)),
        queue_timeout: limits.http_queue_timeout,
        timeout: limits.http_request_timeout,
        probes,
    };
    // One layer, in this order:
    // 1. observe: takes or makes the request id, opens the request span,
    //    writes the access line and echoes X-Request-ID on every response,
    //    shed and timed-out ones included;
    // 2. admit: sheds load beyond the concurrency limit (503, Retry-After)
    //    instead of queueing it (probes excepted), and bounds each
    //    request's time (504);
    // 3. catch panics: a panicking handler becomes a JSON 500, inside the
    //    request span so the panic is logged with the request id.
    router
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(CommonLayer { obs: obs.clone(), admission })
}

#[derive(Clone)]
struct Admission {
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    timeout: Duration,
    probes: &'static [&'static str],
}

/// What every route gets (see [`with_common_layers_and_probes`]), written
/// out as one tower layer rather than as three (two `from_fn` middlewares
/// and tower-http's `CatchPanicLayer`): axum boxes each layer's service and
/// clones it for every request, `from_fn` boxes it once more, and
/// `CatchPanicLayer` boxes the response body again. As one layer a request
/// costs one boxed future; this was about 4,000 instructions per request
/// (callgrind) on `/api/v1/name`.
#[derive(Clone)]
struct CommonLayer {
    obs: Observability,
    admission: Admission,
}

impl<S> Layer<S> for CommonLayer {
    type Service = Common<S>;

    fn layer(&self, inner: S) -> Common<S> {
        Common { inner, obs: self.obs.clone(), admission: self.admission.clone() }
    }
}

#[derive(Clone)]
struct Common<S> {
    inner: S,
    obs: Observability,
    admission: Admission,
}

impl<S> Service<Request> for Common<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // Observe.
        let start = Instant::now();
        let id = RequestId::from_headers(request.headers(), request_id::HEADER.as_str());
        // The method comes from a closed set everywhere, the access line
        // included: a client can send (and HPACK-index) a method of
        // thousands of characters, which would multiply every line it costs.
        let method_label = metrics::method_label(request.method());
        // The route template, never the raw path: it is bounded and safe to log.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = {
            let route_name = route.as_ref().map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
            let span = tracing::info_span!(
                "http_request",
                request_id = %id,
                otel.name = tracing::field::Empty,
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                "http.request.method" = method_label,
                "http.route" = route_name,
                "http.response.status_code" = tracing::field::Empty,
            );
            if self.obs.traces.exporting() {
                span.record("otel.name", format!("{method_label} {route_name}").as_str());
                self.obs.traces.continue_trace(&span, request.headers());
            }
            span
        };
        let header_value = id.header_value().clone();
        request.extensions_mut().insert(id);

        // Admit: the route is called here when a slot is free (or not
        // needed), so the usual request waits for nothing.
        let admission = &self.admission;
        let timeout = admission.timeout;
        let served = if let Some(error) = host_error(&request) {
            Served::Refused { error: Some(error) }
        } else if admission.probes.contains(&request.uri().path()) {
            let response = span.in_scope(|| self.inner.call(request));
            Served::Sent { response: within(timeout, response), timeout, permit: None }
        } else {
            match admission.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let response = span.in_scope(|| self.inner.call(request));
                    Served::Sent { response: within(timeout, response), timeout, permit: Some(permit) }
                }
                Err(_) => Served::Waiting {
                    response: wait_for_a_slot(self.inner.clone(), request, admission.clone()),
                },
            }
        };
        Observed {
            served,
            span,
            start,
            method_label,
            route,
            header_value: Some(header_value),
            metrics: self.obs.metrics.clone(),
        }
    }
}

fn within<F: Future<Output = Result<Response, Infallible>>>(
    timeout: Duration,
    response: F,
) -> tokio::time::Timeout<CatchPanic<F>> {
    tokio::time::timeout(timeout, CatchPanic { inner: response })
}

/// Waits (bounded) for a request slot, then calls the route. The wait is
/// bounded in time, and each connection has at most a few requests
/// waiting, so this is no unbounded queue.
fn wait_for_a_slot<S>(
    mut inner: S,
    request: Request,
    admission: Admission,
) -> Pin<Box<dyn Future<Output = Response> + Send>>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    Box::pin(async move {
        let permit = tokio::time::timeout(admission.queue_timeout, admission.permits.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok);
        let Some(_permit) = permit else {
            tracing::warn!("shedding load: too many requests in flight");
            let mut response =
                ApiError::new(ErrorKind::Overloaded, "too many requests, try again shortly").into_response();
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return response;
        };
        let response = within(admission.timeout, inner.call(request)).await;
        timed_out_or(response, admission.timeout)
    })
}

/// The response, or a 504 if the request's time ran out.
fn timed_out_or(response: Result<Response, tokio::time::error::Elapsed>, timeout: Duration) -> Response {
    response.unwrap_or_else(|_| {
        tracing::warn!(?timeout, "request timed out");
        ApiError::new(ErrorKind::Timeout, "the request took too long").into_response()
    })
}

pin_project_lite::pin_project! {
    /// A request from its admission on: written out rather than an async
    /// block, so it needs no box of its own (axum boxes it once) and the
    /// request span is entered around each poll without a second handle.
    pub struct Observed<F> {
        #[pin]
        served: Served<F>,
        span: tracing::Span,
        start: Instant,
        method_label: &'static str,
        route: Option<MatchedPath>,
        header_value: Option<http::HeaderValue>,
        metrics: Metrics,
    }
}

pin_project_lite::pin_project! {
    #[project = ServedProj]
    enum Served<F> {
        /// Refused before it reaches a route.
        Refused { error: Option<ApiError> },
        /// Sent to the route at once, holding a request slot unless it is a probe.
        Sent {
            #[pin]
            response: tokio::time::Timeout<CatchPanic<F>>,
            timeout: Duration,
            permit: Option<OwnedSemaphorePermit>,
        },
        /// Waiting for a request slot first (rare: boxed).
        Waiting { response: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Served<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project() {
            ServedProj::Refused { error } => {
                tracing::debug!("refusing an HTTP/1.1 request without exactly one Host header");
                Poll::Ready(error.take().unwrap_or_else(ApiError::internal).into_response())
            }
            ServedProj::Sent { response, timeout, permit } => {
                let response = std::task::ready!(response.poll(cx));
                // The slot is free once the route has answered.
                drop(permit.take());
                Poll::Ready(timed_out_or(response, *timeout))
            }
            ServedProj::Waiting { response } => response.as_mut().poll(cx),
        }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Observed<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response, Infallible>> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut response = std::task::ready!(this.served.poll(cx));
        let route_name = this.route.as_ref().map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
        if let Some(id) = this.header_value.take() {
            response.headers_mut().insert(request_id::HEADER, id);
        }
        let status = response.status().as_u16();
        let elapsed = this.start.elapsed();
        this.span.record("http.response.status_code", status);
        if status >= 500 {
            this.span.record("otel.status_code", "ERROR");
        }
        this.metrics.record_http(this.method_label, route_name, status, elapsed.as_secs_f64());
        tracing::info!(
            method = *this.method_label,
            route = route_name,
            status,
            response_bytes = response.body().size_hint().exact(),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            "http request served"
        );
        Poll::Ready(Ok(response))
    }
}

pin_project_lite::pin_project! {
    /// A route's response, or a JSON 500 if it panics.
    struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for CatchPanic<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(Ok(response))) => Poll::Ready(response),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(panic_response(panic)),
        }
    }
}

/// An HTTP/1.1 request must carry exactly one Host header (RFC 9112 3.2);
/// HTTP/1.0 need not, and HTTP/2 has `:authority` instead.
fn host_error(request: &Request) -> Option<ApiError> {
    let hosts = request.headers().get_all(http::header::HOST).iter().count();
    (request.version() == http::Version::HTTP_11 && hosts != 1)
        .then(|| ApiError::new(ErrorKind::InvalidInput, "an HTTP/1.1 request needs exactly one Host header"))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::internal().into_response()
}

/// Binds a listener, with an error that names the address.
///
/// The backlog is set rather than left to tokio (128): a burst of clients
/// connecting at once overflows a short accept queue, and an overflowed
/// handshake waits a second or more for a SYN-ACK retransmit, or leaves a
/// client believing it is connected while the server has never seen it.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let listen = || {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(backlog)
    };
    listen().map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Binds `port` on the configured address, with the configured backlog.
pub fn bind_port(listen: &ListenArgs, port: u16) -> io::Result<TcpListener> {
    bind(SocketAddr::new(listen.bind_addr, port), listen.listen_backlog)
}

/// What one port allows: connections at once, HTTP/2 streams at once on
/// each, and how long a response may wait for its client to take it.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    pub max_connections: u32,
    /// The setting `max_connections` comes from, for the log.
    pub setting: &'static str,
    pub streams_per_connection: u32,
    pub write_timeout: Duration,
    /// Paths that need no HTTP/2 stream budget (the admin port's probes).
    pub probes: &'static [&'static str],
}

impl PortLimits {
    /// A REST port's.
    pub fn rest(connections: &ConnectionLimits) -> Self {
        Self {
            max_connections: connections.max_connections,
            setting: "MAX_CONNECTIONS",
            streams_per_connection: connections.http2_max_concurrent_streams,
            write_timeout: connections.http_write_timeout,
            probes: &[],
        }
    }
}

/// The most an HTTP/2 stream's response may have buffered in h2 beyond what
/// the client's window lets out (hyper's default is 400 KiB). Our responses
/// are far smaller, and a chunk larger than this is still taken whole: it
/// bounds a stream that streams, not one that answers.
const HTTP2_MAX_SEND_BUFFER: usize = 64 * 1024;

/// Serves `router` until `stop` is cancelled, then stops accepting, asks
/// every connection to close once its requests are done (HTTP/2 GOAWAY),
/// and waits for them (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    port: PortLimits,
    metrics: &Metrics,
    stop: CancellationToken,
) -> io::Result<()> {
    let streams_per_connection = port.streams_per_connection;
    let mut builder = auto::Builder::new(StreamExecutor { timeout: port.write_timeout });
    // Twice the requests served at once: those, and as many answered ones
    // whose clients have yet to take them.
    let alive = Arc::new(Semaphore::new(2 * limits.http_max_concurrent_requests as usize));
    let probes = port.probes;
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's timer also runs while a keep-alive connection waits for its
        // next request, which would make the header-read timeout the idle
        // timeout; `Activity` times request heads instead (below).
        .header_read_timeout(None)
        .max_headers(limits.http_max_headers as usize)
        // The read buffer bounds the request head: past it, 431.
        .max_buf_size(limits.http_max_header_bytes as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.http_max_header_bytes)
        .max_concurrent_streams(streams_per_connection)
        .max_send_buf_size(HTTP2_MAX_SEND_BUFFER)
        // Each stream the server resets for a client's protocol error costs
        // work and yields nothing; past this many, GOAWAY.
        .max_local_error_reset_streams(limits.http2_max_local_reset_streams as usize)
        .keep_alive_interval(Some(HTTP2_KEEPALIVE))
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    let cap = ConnectionCap::new(port.max_connections, port.setting, &listener);
    let header_read_timeout = limits.http_header_read_timeout;
    let write_timeout = port.write_timeout;
    // After GOAWAY (idle, or stopping), what a connection may still need:
    // a request's time, then its response's. Past that it is dropped, so a
    // connection that never finishes cannot outlive its welcome.
    let closing_deadline = limits.http_request_timeout + write_timeout;
    while let Some((tcp, _peer, permit)) = cap.accept(&listener, &stop).await {
        let (builder, router, stop, metrics, alive) =
            (builder.clone(), router.clone(), stop.clone(), metrics.clone(), alive.clone());
        let idle_timeout = limits.http_idle_timeout;
        // Made here, not in the task, so a new connection's first request
        // head is timed from its accept.
        let activity = Activity::new();
        let unserved_cap = limits.http2_max_local_reset_streams;
        connections.spawn(async move {
            // Held until the connection ends, however it ends.
            let _permit = permit;
            let tracked = Tracked { inner: tcp, activity: activity.clone() };
            let streams = StreamTally::default();
            let io = TokioIo::new(H2Guard::new(
                HeadErrors::new(tracked, activity.clone(), metrics),
                streams.clone(),
                streams_per_connection,
                unserved_cap,
                // gRPC's keepalive policy is for gRPC ports (HTTP clients
                // of the REST and admin ports know nothing of it).
                None,
            ));
            let service =
                TowerToHyperService::new(InFlight { inner: router, activity: activity.clone(), streams, alive, probes });
            let connection = builder.serve_connection_with_upgrades(io, service);
            let head_check = tokio::time::sleep(header_read_timeout);
            let hard_stop = tokio::time::sleep(Duration::MAX / 4);
            tokio::pin!(connection, head_check, hard_stop);
            let mut closing = false;
            let mut check = tokio::time::interval(idle_timeout.min(write_timeout) / 4);
            loop {
                tokio::select! {
                    _ = &mut connection => break,
                    _ = stop.cancelled(), if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                        hard_stop.as_mut().reset(tokio::time::Instant::now() + closing_deadline);
                    }
                    _ = check.tick() => {
                        // A client that does not read what it asked for
                        // (its window full, the kernel's buffers full behind
                        // it) holds its responses in memory; no graceful
                        // close can finish, so it is dropped.
                        if activity.write_blocked_for().is_some_and(|blocked| blocked >= write_timeout) {
                            tracing::warn!(?write_timeout, "closing a connection whose client does not read its responses (HTTP_WRITE_TIMEOUT)");
                            break;
                        }
                        if !closing && activity.idle_for() >= idle_timeout {
                            closing = true;
                            connection.as_mut().graceful_shutdown();
                            hard_stop.as_mut().reset(tokio::time::Instant::now() + closing_deadline);
                        }
                    }
                    _ = &mut hard_stop, if closing => break,
                    // A head begins without waking this task, so it is looked
                    // for once per timeout; one found is then cut off exactly
                    // the timeout after it began.
                    _ = &mut head_check => {
                        let next = match activity.head_read_for() {
                            // A slowloris: nothing to finish gracefully, drop it.
                            Some(taken) if taken >= header_read_timeout => break,
                            Some(taken) => header_read_timeout - taken,
                            None => header_read_timeout,
                        };
                        head_check.as_mut().reset(tokio::time::Instant::now() + next);
                    }
                }
            }
        });
    }
    // Closing the listener refuses new connections at once.
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The connections one port holds at once (or, on a TLS port, the
/// handshakes it runs at once). One past the limit is closed as soon as it
/// is accepted, with a TCP reset (`SO_LINGER` 0), so it costs the server no
/// socket in `TIME_WAIT` and the client learns at once; leaving it in the
/// kernel's accept queue instead would make every client wait, the probes
/// included, behind connections the port will never serve.
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    limit: u32,
    setting: &'static str,
    local: Option<SocketAddr>,
    /// Refusals since the last line, and when that was written: one line a
    /// second at most, however fast connections come.
    refused: AtomicU64,
    logged: std::sync::Mutex<Option<Instant>>,
}

impl ConnectionCap {
    /// `limit` at once, set by `setting` (named in the log line).
    pub fn new(limit: u32, setting: &'static str, listener: &TcpListener) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit as usize)),
            limit,
            setting,
            local: listener.local_addr().ok(),
            refused: AtomicU64::new(0),
            logged: std::sync::Mutex::new(None),
        }
    }

    /// The next connection within the limit, with its permit (the
    /// connection holds a place until the permit is dropped), or `None` once
    /// `stop` is cancelled.
    pub async fn accept(
        &self,
        listener: &TcpListener,
        stop: &CancellationToken,
    ) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        loop {
            let (tcp, peer) = accept(listener, stop).await?;
            if let Some((tcp, permit)) = self.admit(tcp) {
                return Some((tcp, peer, permit));
            }
        }
    }

    /// `tcp` with a place, or `None` after closing it with a reset.
    pub fn admit(&self, tcp: TcpStream) -> Option<(TcpStream, OwnedSemaphorePermit)> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some((tcp, permit)),
            Err(_) => {
                self.refuse(tcp);
                None
            }
        }
    }

    fn refuse(&self, tcp: TcpStream) {
        let _ = tcp.set_zero_linger();
        drop(tcp);
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if logged.is_none_or(|last| last.elapsed() >= Duration::from_secs(1)) {
            *logged = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(local = ?self.local, limit = self.limit, refused, setting = self.setting, "refusing connections: the port holds as many as its limit allows");
        }
    }
}

/// The next connection (with Nagle off: our messages are small), or `None`
/// once `stop` is cancelled.
pub async fn accept(listener: &TcpListener, stop: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    return Some((tcp, peer));
                }
                Err(error) => {
                    // Out of file descriptors, typically: back off rather
                    // than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// HTTP/2 pings find dead peers on idle connections.
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(20);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection is doing, as its bytes and requests show: when it last
/// moved bytes, how many requests it has in flight, and since when it has
/// been sending a request head.
///
/// A request head is timed from its first byte (from the accept, for a new
/// connection's first) until hyper hands the request over; bytes that come
/// while a request is in flight are its body, not a head. HTTP/2 frames
/// interleave, so after a first request an HTTP/2 connection is left to the
/// idle timeout and HTTP/2's own limits.
///
/// What this cannot see is hyper's buffer: part of a head pipelined behind a
/// request (in the same read, or while that request is in flight) is not
/// timed until the client sends more. A client that then sends nothing is
/// idle, and the idle timeout closes it, as it would any idle connection.
#[derive(Clone)]
pub(crate) struct Activity {
    inner: Arc<ActivityInner>,
}

struct ActivityInner {
    /// Milliseconds since `since` of the last read or write.
    last: AtomicU64,
    /// Milliseconds since `since` when the last request ended (its response
    /// body sent or dropped), or the connection was accepted.
    last_request: AtomicU64,
    /// Milliseconds since `since` when the head now being read began, or
    /// `NO_HEAD`.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    http2: AtomicBool,
    /// Milliseconds since `since` when a write first found the socket
    /// full, or `NOT_BLOCKED` while writes go through.
    write_blocked: AtomicU64,
    since: Instant,
}

const NO_HEAD: u64 = u64::MAX;
const NOT_BLOCKED: u64 = u64::MAX;

impl Activity {
    /// A new connection: its first head is being read from now.
    fn new() -> Self {
        let inner = ActivityInner {
            last: AtomicU64::new(0),
            last_request: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
            write_blocked: AtomicU64::new(NOT_BLOCKED),
            since: Instant::now(),
        };
        Self { inner: Arc::new(inner) }
    }

    fn now_ms(&self) -> u64 {
        self.inner.since.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.inner.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A write went through (`true`) or found the socket full.
    fn wrote(&self, through: bool) {
        if through {
            self.inner.write_blocked.store(NOT_BLOCKED, Ordering::Relaxed);
            self.touch();
        } else {
            let now = self.now_ms();
            let _ = self.inner.write_blocked.compare_exchange(
                NOT_BLOCKED,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// How long writes have been finding the socket full, if they are.
    fn write_blocked_for(&self) -> Option<Duration> {
        let since = self.inner.write_blocked.load(Ordering::Relaxed);
        (since != NOT_BLOCKED).then(|| Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    fn bytes_read(&self) {
        let now = self.now_ms();
        self.inner.last.store(now, Ordering::Relaxed);
        if self.inner.in_flight.load(Ordering::Relaxed) == 0 && !self.inner.http2.load(Ordering::Relaxed) {
            // Only the first byte of a head starts its clock.
            let _ =
                self.inner.head_since.compare_exchange(NO_HEAD, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn request_began(&self, version: http::Version) {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        self.inner.head_since.store(NO_HEAD, Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            self.inner.http2.store(true, Ordering::Relaxed);
        }
    }

    fn request_ended(&self) {
        self.inner.last_request.store(self.now_ms(), Ordering::Relaxed);
        self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// How long the head now being read has taken, if one is.
    pub(crate) fn head_read_for(&self) -> Option<Duration> {
        let since = self.inner.head_since.load(Ordering::Relaxed);
        (since != NO_HEAD).then(|| Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// How long the connection has been idle: no request in flight and,
    /// on HTTP/1, no bytes either. On HTTP/2 bytes do not count: PINGs (the
    /// server's keep-alive ones and the client's) and other frames can flow
    /// forever on a connection that asks for nothing.
    fn idle_for(&self) -> Duration {
        if self.inner.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = if self.inner.http2.load(Ordering::Relaxed) {
            &self.inner.last_request
        } else {
            &self.inner.last
        };
        Duration::from_millis(self.now_ms().saturating_sub(last.load(Ordering::Relaxed)))
    }
}

pin_project_lite::pin_project! {
    /// A connection that notes when it last moved bytes.
    struct Tracked<T> {
        #[pin]
        inner: T,
        activity: Activity,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if polled.is_ready() {
            // Empty lines between requests are allowed (RFC 9112 2.2) and are
            // not the start of a head.
            if buf.filled()[before..].iter().any(|b| !matches!(b, b'\r' | b'\n')) {
                this.activity.bytes_read();
            } else {
                this.activity.touch();
            }
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        this.activity.wrote(polled.is_ready());
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        this.activity.wrote(polled.is_ready());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Counts a connection's requests in flight, so a slow request is not
/// mistaken for an idle connection. A request is in flight until its
/// response body is sent or dropped: a long response (a gRPC Watch stream)
/// keeps its connection in use.
///
/// On HTTP/2 it also holds the port's stream budget: at most twice
/// `HTTP_MAX_CONCURRENT_REQUESTS` streams alive at once, answered or not,
/// each until its response is taken (or reset, see [`crate::stalled`]). A
/// stream costs a few KiB whatever it carries, and the write timeout bounds
/// how long one lives, not how many a client keeps: 2,500 connections of
/// 128 streams, each answered at once and never taken, would be 320,000.
/// A request past the budget gets an empty 503 at once (headers need no
/// window); probes take no part of it.
#[derive(Clone)]
struct InFlight<S> {
    inner: S,
    activity: Activity,
    streams: StreamTally,
    alive: Arc<Semaphore>,
    probes: &'static [&'static str],
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for InFlight<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Default + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.activity.request_began(request.version());
        self.streams.served();
        let guard = RequestGuard(self.activity.clone());
        let alive =
            if request.version() == http::Version::HTTP_2 && !self.probes.contains(&request.uri().path()) {
                match self.alive.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        tracing::debug!("refusing an HTTP/2 stream: the port has as many alive as it may");
                        let body = CountedBody {
                            inner: ResBody::default(),
                            guard: Some(guard),
                            clock: None,
                            held: None,
                            _alive: None,
                        };
                        let mut refused = http::Response::new(body);
                        *refused.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        refused
                            .headers_mut()
                            .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                        return Box::pin(std::future::ready(Ok(refused)));
                    }
                }
            } else {
                None
            };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            // Found here, in the stream's own task (HTTP/2), not in `call`,
            // which hyper runs in the connection's.
            let clock = BodyClock::current();
            Ok(response.map(|inner| CountedBody {
                inner,
                guard: Some(guard),
                clock,
                held: None,
                _alive: alive,
            }))
        })
    }
}

/// Ends a request in flight when dropped, however the request ends.
struct RequestGuard(Activity);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is done,
    /// and on HTTP/2 tells its stream's [`BodyClock`] when it waits for the
    /// client (see [`crate::stalled`]).
    struct CountedBody<B> {
        #[pin]
        inner: B,
        guard: Option<RequestGuard>,
        clock: Option<BodyClock>,
        // The last byte of the last chunk, held back (HTTP/2 only) so the
        // stream's task lasts until the client has taken the rest.
        held: Option<Bytes>,
        // Its place in the port's HTTP/2 stream budget, until dropped.
        _alive: Option<OwnedSemaphorePermit>,
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(clock) = this.clock.as_ref() else {
            let polled = this.inner.poll_frame(cx);
            if matches!(polled, Poll::Ready(None)) {
                this.guard.take();
            }
            return polled;
        };
        clock.moving();
        if let Some(last) = this.held.take() {
            clock.waiting();
            return Poll::Ready(Some(Ok(http_body::Frame::data(last))));
        }
        match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    if this.inner.is_end_stream() && data.len() > 1 {
                        *this.held = Some(data.split_off(data.len() - 1));
                    }
                    clock.waiting();
                    Poll::Ready(Some(Ok(http_body::Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Some(Err(error)) => Poll::Ready(Some(Err(error))),
            None => {
                this.guard.take();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.held {
            Some(held) => http_body::SizeHint::with_exact(held.len() as u64),
            None => self.inner.size_hint(),
        }
    }
}
