//! The gRPC client on one HTTP/2 connection: the handshake and its
//! settings ([`handshake`]), the handle calls are sent through
//! ([`Connection`]), the right to send one call ([`Lease`], the tower
//! service tonic's client calls through) and the response body that reports
//! transport failures ([`ResponseBody`]).
//!
//! It knows nothing of endpoints: whoever hands out a lease is a
//! [`Lessor`], told when the call ends and when its connection fails.
//!
//! Calls go onto the connection through the `h2` crate directly, not
//! through hyper's client: hyper spawns a task per request to wait for its
//! response, passes each request to the connection's task over a channel,
//! and sends a request's body only once the connection has opened its
//! stream, so HEADERS and DATA leave in two writes and service1 wakes twice
//! per call. Here the caller's task queues HEADERS and the (unary) message
//! together and waits for the response itself: one write, one wake-up on
//! each side (the README's performance section has the measurements).
//!
//! **Unary calls only.** [`Lease`] stops sending the request body once the
//! response head arrives (see [`exchange`]): a unary message is queued
//! before that, but a client-streaming call would lose what it sends after.
//! ProcessName is unary; a streaming method needs its own client.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
};

use bytes::Bytes;
use h2::{client::SendRequest, RecvStream, SendStream};
use http_body::{Body, Frame, SizeHint};
use serving::errors::chain;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::Instant,
};

use crate::upstream::{
    header_limit::{HeaderListLimit, SettingsReader},
    keepalive::{self, Keepalive, LastRead, OnRead, Watch},
    Address,
};

/// Whoever hands out leases on a connection (an endpoint, in production):
/// told when a lease's call is over, and when its connection failed.
pub trait Lessor: Send + Sync + 'static {
    /// Connection `number` failed in transport while a call used it.
    fn transport_failed(&self, number: u64);
    /// The lease taken at `leased_at` is returned: its call is over,
    /// answered, failed, timed out or abandoned.
    fn returned(&self, leased_at: Instant);
}

/// The handle calls are sent through, and where they are sent to.
#[derive(Clone)]
pub struct Connection {
    send: SendRequest<Bytes>,
    origin: http::Uri,
    /// When the replica last sent anything, or a call started on an idle
    /// connection: keepalive pings from there.
    heard: Arc<LastRead>,
    /// The largest header list the replica accepts.
    header_limit: Arc<HeaderListLimit>,
}

/// The right to send one call on a connection; its life is the call's
/// latency, reported to its [`Lessor`] when dropped. It is the tower
/// service tonic's client calls through: calls go straight onto the
/// connection, with no task in between. Unary calls only (see the module).
pub struct Lease<L: Lessor> {
    connection: Connection,
    handle: ConnectionHandle<L>,
    leased_at: Instant,
}

/// One connection of one lessor, to tell it that the connection failed.
struct ConnectionHandle<L> {
    lessor: Arc<L>,
    /// Which of the lessor's connections: a failure on an older one than
    /// its current one changes nothing.
    number: u64,
}

/// A response body that tells its lessor when the connection fails while
/// it is read.
pub struct ResponseBody<L: Lessor> {
    inner: RecvStream,
    /// Whether the data is all read (trailers come next), and whether the
    /// trailers are too.
    data_done: bool,
    done: bool,
    handle: ConnectionHandle<L>,
}

/// The HTTP/2 handshake on `io`, already connected to `origin`. Returns the
/// handle calls use and the future that drives the connection and its
/// keepalive, which reports to `watch`.
pub async fn handshake<T, W>(
    io: T,
    origin: http::Uri,
    keepalive: Keepalive,
    address: &Address,
    watch: Weak<W>,
) -> Result<(Connection, impl Future<Output = ()> + Send + 'static), h2::Error>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    W: Watch,
{
    let heard = Arc::new(LastRead::now());
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
        .await?;
    let address = address.clone();
    let clock = heard.clone();
    let driver = async move {
        if let Err(error) = keepalive::drive(connection, keepalive, &clock, watch).await {
            tracing::debug!(endpoint = %address, error = %chain(&error), "connection to service1 replica failed");
        }
    };
    Ok((Connection { send, origin, heard, header_limit }, driver))
}

// === impl Connection ===

impl Connection {
    /// Counts the replica's quiet from now: a call starts on a connection
    /// that had none, and keepalive should give it a full interval.
    pub fn restart_quiet(&self) {
        self.heard.touch();
    }
}

// === impl Lease ===

impl<L: Lessor> Lease<L> {
    /// A lease on `connection`, number `number` of `lessor`'s.
    pub fn new(connection: Connection, lessor: Arc<L>, number: u64) -> Self {
        Self { connection, handle: ConnectionHandle { lessor, number }, leased_at: Instant::now() }
    }

    /// The scheme and authority calls are sent to.
    pub fn origin(&self) -> http::Uri {
        self.connection.origin.clone()
    }

    /// Whoever the lease is from, to tell it how the call fared.
    pub fn lessor(&self) -> &Arc<L> {
        &self.handle.lessor
    }
}

impl<L: Lessor> Drop for Lease<L> {
    fn drop(&mut self) {
        self.handle.lessor.returned(self.leased_at);
    }
}

impl<L: Lessor> tower::Service<http::Request<tonic::body::Body>> for Lease<L> {
    type Response = http::Response<ResponseBody<L>>;
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
        let handle = self.handle.clone();
        Box::pin(async move {
            match exchange(send, request).await {
                Ok(response) => {
                    Ok(response.map(|inner| ResponseBody { inner, data_done: false, done: false, handle }))
                }
                Err(error) => {
                    handle.transport_failed();
                    Err(error.into())
                }
            }
        })
    }
}

/// Sends `request` on the connection and waits for the response head.
/// The body is sent from this task too, alongside the wait, and no longer
/// once the head has arrived: what is not queued by then is dropped, which
/// only a unary call's body never is (its one message is ready at once).
async fn exchange(
    send: SendRequest<Bytes>,
    request: http::Request<tonic::body::Body>,
) -> Result<http::Response<RecvStream>, h2::Error> {
    // Only waits for this handle's own pending stream. A call over the
    // replica's limit of concurrent streams waits inside h2 (h2's own
    // queue, not ours) until a stream frees or the call's deadline passes.
    // It counts in the endpoint's calls in flight meanwhile, so p2c steers
    // new calls away from that replica.
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

// === impl ConnectionHandle ===

impl<L: Lessor> ConnectionHandle<L> {
    fn transport_failed(&self) {
        self.lessor.transport_failed(self.number);
    }
}

impl<L> Clone for ConnectionHandle<L> {
    fn clone(&self) -> Self {
        Self { lessor: self.lessor.clone(), number: self.number }
    }
}

// === impl ResponseBody ===

impl<L: Lessor> ResponseBody<L> {
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

impl<L: Lessor> Body for ResponseBody<L> {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        let frame = this.poll_inner(cx);
        if let Poll::Ready(Some(Err(_))) = &frame {
            this.handle.transport_failed();
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
pub(crate) mod tests {
    use std::{
        net::SocketAddr,
        sync::{
            atomic::{AtomicUsize, Ordering},
            Mutex,
        },
    };

    use tokio::sync::{mpsc, Notify};

    use super::*;

    /// A lessor that counts what it is told.
    #[derive(Default)]
    struct Counting {
        failed: Mutex<Vec<u64>>,
        returned: AtomicUsize,
        started: Notify,
        unanswered: Notify,
    }

    impl Lessor for Counting {
        fn transport_failed(&self, number: u64) {
            self.failed.lock().unwrap().push(number);
        }

        fn returned(&self, _: Instant) {
            self.returned.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Watch for Counting {
        fn calls_open(&self) -> bool {
            false
        }

        fn call_started(&self) -> &Notify {
            &self.started
        }

        fn unanswered(&self) -> &Notify {
            &self.unanswered
        }

        fn unresponsive(self: Arc<Self>, _: std::time::Duration) {}
    }

    /// A request body whose frames the test sends, one at a time.
    struct Streamed(mpsc::UnboundedReceiver<Bytes>);

    impl Body for Streamed {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|data| data.map(|data| Ok(Frame::data(data))))
        }
    }

    type Arrivals = mpsc::UnboundedReceiver<(http::Request<RecvStream>, h2::server::SendResponse<Bytes>)>;

    /// A connection over an in-memory pipe to an HTTP/2 server whose
    /// requests arrive on the receiver.
    async fn connected(lessor: &Arc<Counting>) -> (Connection, Arrivals) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (arrival, arrivals) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut connection = h2::server::handshake(server).await.expect("server handshake");
            while let Some(Ok(call)) = connection.accept().await {
                let _ = arrival.send(call);
            }
        });
        let address = Address::from(SocketAddr::from(([127, 0, 0, 1], 1)));
        let origin: http::Uri = "http://127.0.0.1:1".parse().unwrap();
        let (connection, driver) =
            handshake(client, origin, Keepalive::default(), &address, Arc::downgrade(lessor))
                .await
                .expect("client handshake");
        tokio::spawn(driver);
        (connection, arrivals)
    }

    /// A ProcessName request to where `lease` sends its calls.
    pub(crate) fn request<L: Lessor>(
        lease: &Lease<L>,
        body: tonic::body::Body,
    ) -> http::Request<tonic::body::Body> {
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(lease.origin().authority().unwrap().clone())
            .path_and_query("/app.grpc.Service1/ProcessName")
            .build()
            .unwrap();
        http::Request::post(uri).body(body).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_for_unary_calls_the_body_stops_once_the_response_head_arrives() {
        let lessor = Arc::new(Counting::default());
        let (connection, mut arrivals) = connected(&lessor).await;
        let mut lease = Lease::new(connection, lessor.clone(), 1);
        let (more, frames) = mpsc::unbounded_channel();
        more.send(Bytes::from_static(b"first message")).unwrap();
        let request = request(&lease, tonic::body::Body::new(Streamed(frames)));
        let call = tower::Service::call(&mut lease, request);
        tokio::pin!(call);
        let (mut arrived, mut respond) = tokio::select! {
            _ = &mut call => panic!("the server has not answered"),
            arrived = arrivals.recv() => arrived.unwrap(),
        };
        let first = arrived.body_mut().data().await.unwrap().unwrap();
        assert_eq!(first, "first message");

        respond.send_response(http::Response::new(()), false).unwrap();
        call.await.expect("the response head");

        assert!(more.send(Bytes::from_static(b"second message")).is_err(), "the body is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_returned_lease_is_reported_once_and_a_reset_call_reports_its_connection() {
        let lessor = Arc::new(Counting::default());
        let (connection, mut arrivals) = connected(&lessor).await;
        let mut lease = Lease::new(connection, lessor.clone(), 7);
        let request = request(&lease, tonic::body::Body::empty());
        let call = tower::Service::call(&mut lease, request);
        tokio::pin!(call);
        let (_, mut respond) = tokio::select! {
            _ = &mut call => panic!("the server has not answered"),
            arrived = arrivals.recv() => arrived.unwrap(),
        };

        respond.send_reset(h2::Reason::INTERNAL_ERROR);

        assert!(call.await.is_err());
        assert_eq!(*lessor.failed.lock().unwrap(), [7]);
        drop(lease);
        assert_eq!(lessor.returned.load(Ordering::Relaxed), 1);
    }
}
