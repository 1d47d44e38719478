//! What each connection is doing, seen from its bytes and its requests:
//! [`Activity`] (last bytes moved, requests in flight, the head being read,
//! writes blocked), [`Tracked`] (the IO wrapper that feeds it), and
//! [`InFlight`] with [`CountedBody`] (the service wrapper that counts a
//! request from its head until its response body is done, and holds the
//! port's HTTP/2 stream budget). The connection driver reads `Activity` to
//! decide when to close.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use crate::{h2_guard::StreamTally, stalled::BodyClock};

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
pub(super) struct Activity {
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
    pub(super) fn new() -> Self {
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
    pub(super) fn write_blocked_for(&self) -> Option<Duration> {
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
    pub(super) fn head_read_for(&self) -> Option<Duration> {
        let since = self.inner.head_since.load(Ordering::Relaxed);
        (since != NO_HEAD).then(|| Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// How long the connection has been idle: no request in flight and,
    /// on HTTP/1, no bytes either. On HTTP/2 bytes do not count: PINGs (the
    /// server's keep-alive ones and the client's) and other frames can flow
    /// forever on a connection that asks for nothing.
    pub(super) fn idle_for(&self) -> Duration {
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
    pub(super) struct Tracked<T> {
        #[pin]
        inner: T,
        activity: Activity,
    }
}

impl<T> Tracked<T> {
    pub(super) fn new(inner: T, activity: Activity) -> Self {
        Self { inner, activity }
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
pub(super) struct InFlight<S> {
    pub(super) inner: S,
    pub(super) activity: Activity,
    pub(super) streams: StreamTally,
    /// The port's HTTP/2 stream budget.
    pub(super) alive: Arc<Semaphore>,
    pub(super) probes: &'static [&'static str],
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
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

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
    pub(super) struct CountedBody<B> {
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

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_new_connections_first_head_is_timed_from_its_accept_until_its_request_begins() {
        let activity = Activity::new();
        advance(2 * SECOND).await;

        assert_eq!(activity.head_read_for(), Some(2 * SECOND));
        activity.request_began(http::Version::HTTP_11);
        assert_eq!(activity.head_read_for(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_head_is_timed_from_its_first_byte_and_a_bodys_bytes_start_no_head() {
        let activity = Activity::new();
        activity.request_began(http::Version::HTTP_11);
        activity.bytes_read();
        assert_eq!(activity.head_read_for(), None, "bytes during a request are its body");
        activity.request_ended();
        advance(5 * SECOND).await;
        assert_eq!(activity.head_read_for(), None, "no byte, no head");

        activity.bytes_read();
        advance(SECOND).await;
        activity.bytes_read();

        assert_eq!(activity.head_read_for(), Some(SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_a_request_in_flight_is_never_idle() {
        let activity = Activity::new();
        activity.request_began(http::Version::HTTP_11);

        advance(60 * SECOND).await;

        assert_eq!(activity.idle_for(), Duration::ZERO);
        activity.request_ended();
        advance(SECOND).await;
        assert_eq!(activity.idle_for(), SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_keep_an_http_1_connection_busy_but_not_an_http_2_one() {
        let (http1, http2) = (Activity::new(), Activity::new());
        for (activity, version) in [(&http1, http::Version::HTTP_11), (&http2, http::Version::HTTP_2)] {
            activity.request_began(version);
            activity.request_ended();
        }
        advance(3 * SECOND).await;

        // A ping, say: bytes and no request.
        http1.touch();
        http2.touch();

        assert_eq!(http1.idle_for(), Duration::ZERO);
        assert_eq!(http2.idle_for(), 3 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_blocked_from_the_first_that_finds_the_socket_full_until_one_goes_through() {
        let activity = Activity::new();
        assert_eq!(activity.write_blocked_for(), None);

        activity.wrote(false);
        advance(2 * SECOND).await;
        activity.wrote(false);

        assert_eq!(activity.write_blocked_for(), Some(2 * SECOND));
        activity.wrote(true);
        assert_eq!(activity.write_blocked_for(), None);
    }
}
