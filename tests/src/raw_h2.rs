//! A raw HTTP/2 client (the `h2` crate) for sending what no well-behaved
//! client would: requests that make the server reset the stream, calls
//! whose message never comes, connections that only ping.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use h2::client::SendRequest;
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    task::JoinHandle,
};

use crate::{grpc_client::client_config, Pki};

/// An HTTP/2 connection: the handle to send requests on, and the task
/// driving it, which ends with the connection (`Err` for a GOAWAY with an
/// error code, or a reset).
pub struct H2 {
    pub send: SendRequest<Bytes>,
    pub connection: JoinHandle<Result<(), h2::Error>>,
    /// For sending PINGs of our own.
    pub ping: h2::PingPong,
}

/// Plaintext HTTP/2 (prior knowledge) to a REST or admin port.
pub async fn connect(addr: SocketAddr) -> H2 {
    handshake(TcpStream::connect(addr).await.expect("TCP connects")).await
}

/// Plaintext HTTP/2 to a REST or admin port from a client whose
/// flow-control windows (each stream's and the connection's) stay at 0: it
/// asks, and never takes a byte of any response body.
pub async fn connect_with_a_closed_window(addr: SocketAddr) -> H2 {
    let tcp = TcpStream::connect(addr).await.expect("TCP connects");
    let (send, mut connection) =
        h2::client::Builder::new().initial_window_size(0).handshake(tcp).await.expect("HTTP/2 handshake");
    let ping = connection.ping_pong().expect("the first call gets the ping handle");
    let connection = tokio::spawn(connection);
    let send = send.ready().await.expect("the connection takes requests");
    H2 { send, connection, ping }
}

/// The types of the HTTP/2 frames a server has sent on a connection, in
/// order (`h2` hides some of them, such as a GOAWAY that ends nothing).
#[derive(Clone, Default)]
pub struct FramesSeen {
    types: Arc<std::sync::Mutex<Vec<u8>>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl FramesSeen {
    pub fn any(&self, kind: u8) -> bool {
        self.types.lock().unwrap().contains(&kind)
    }

    /// Waits (at most `within`) for a frame of type `kind`; whether one came.
    pub async fn wait_for(&self, kind: u8, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                let arrived = self.arrived.notified();
                if self.any(kind) {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .is_ok()
    }

    fn saw(&self, kind: u8) {
        self.types.lock().unwrap().push(kind);
        self.arrived.notify_waiters();
    }
}

/// HTTP/2 frame type GOAWAY.
pub const GOAWAY: u8 = 0x7;

pin_project_lite::pin_project! {
    struct Watched<T> {
        #[pin]
        inner: T,
        frames: serving::h2_frames::Frames,
        seen: FramesSeen,
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let seen = this.seen.clone();
        this.frames.headers(&buf.filled()[before..], |header| seen.saw(header.kind()));
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// HTTP/2 over mTLS to service1's gRPC port, presenting `NAME.crt`.
pub async fn connect_mtls(addr: SocketAddr, pki: &Pki, name: &str) -> H2 {
    let cert = std::fs::read_to_string(pki.path(&format!("{name}.crt"))).expect("certificate");
    let key = std::fs::read_to_string(pki.path(&format!("{name}.key"))).expect("key");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(pki, Some((&cert, &key)))));
    let tcp = TcpStream::connect(addr).await.expect("TCP connects");
    let tls = connector.connect(ServerName::try_from("service1").expect("valid"), tcp).await.expect("TLS");
    handshake(tls).await
}

/// [`connect_mtls`], noting the frames the server sends.
pub async fn connect_mtls_watched(addr: SocketAddr, pki: &Pki, name: &str) -> (H2, FramesSeen) {
    let cert = std::fs::read_to_string(pki.path(&format!("{name}.crt"))).expect("certificate");
    let key = std::fs::read_to_string(pki.path(&format!("{name}.key"))).expect("key");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(pki, Some((&cert, &key)))));
    let tcp = TcpStream::connect(addr).await.expect("TCP connects");
    let tls = connector.connect(ServerName::try_from("service1").expect("valid"), tcp).await.expect("TLS");
    let seen = FramesSeen::default();
    let watched = Box::pin(Watched { inner: tls, frames: Default::default(), seen: seen.clone() });
    (handshake(watched).await, seen)
}

async fn handshake<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: T) -> H2 {
    let (send, mut connection) = h2::client::handshake(io).await.expect("HTTP/2 handshake");
    let ping = connection.ping_pong().expect("the first call gets the ping handle");
    let connection = tokio::spawn(connection);
    let send = send.ready().await.expect("the connection takes requests");
    H2 { send, connection, ping }
}

/// A gRPC request for `path` (`/package.Service/Method`) with no deadline.
pub fn grpc_request(authority: SocketAddr, path: &str) -> http::Request<()> {
    http::Request::post(format!("http://{authority}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a valid request")
}

/// An empty gRPC message (a `HealthCheckRequest` for the whole server).
pub const EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

/// Calls opened and never finished: the client sends no message, so each
/// waits for one until a deadline ends it. Dropping this cancels them.
pub struct Held {
    pub h2: H2,
    pub calls: Vec<(h2::client::ResponseFuture, h2::SendStream<Bytes>)>,
}

/// Opens `n` gRPC calls to `path` on `h2` whose message never comes.
pub async fn hold_calls(h2: H2, authority: SocketAddr, path: &str, n: usize) -> Held {
    let H2 { mut send, connection, ping } = h2;
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        send = send.ready().await.expect("the connection takes another stream");
        calls.push(send.send_request(grpc_request(authority, path), false).expect("the request goes out"));
    }
    Held { h2: H2 { send, connection, ping }, calls }
}

/// The gRPC status of an answer: in the headers of a trailers-only
/// response (a call refused or ended before any message).
pub fn grpc_status(response: &http::Response<h2::RecvStream>) -> Option<&str> {
    response.headers().get("grpc-status").and_then(|v| v.to_str().ok())
}

/// A hyper HTTP/2 client on `tcp` that pings every 100 ms, idle or not, as
/// some pools do to keep connections warm; returns its sender and the task
/// driving the connection.
pub async fn pinging_client(
    tcp: TcpStream,
) -> (hyper::client::conn::http2::SendRequest<String>, JoinHandle<hyper::Result<()>>) {
    let (sender, connection) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(std::time::Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake::<_, String>(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
    (sender, tokio::spawn(connection))
}
