//! The server side: an accept loop that runs each TLS handshake with the
//! current config, bounded in time, and hands finished connections to tonic.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, OwnedSemaphorePermit},
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tokio_util::{either::Either, sync::CancellationToken};
use tonic::transport::server::Connected;

use observability::{metrics, Metrics};

use super::{identities, Identity, Logged, ServerReloader};
use crate::{
    h2_guard::{H2Guard, PingPolicy, StreamTally},
    http::ConnectionCap,
};

/// Who is on the other end of a connection; handlers and layers find it in
/// the request extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// DNS and URI SANs of the client certificate; empty without TLS.
    pub identities: Arc<[Identity]>,
    /// The connection's served streams, which the service counts (see
    /// [`crate::h2_guard`]).
    pub streams: StreamTally,
}

/// The HTTP/2 limits [`incoming`] enforces on each connection's bytes: the
/// stream limit the server advertises, and how many streams beyond it may
/// end without being served before the connection is closed.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub per_connection: u32,
    pub unserved: u32,
    /// The keepalive policy clients' pings must keep to, if any.
    pub pings: Option<PingPolicy>,
}

impl StreamLimits {
    fn cap<T>(&self, io: T, streams: &StreamTally) -> H2Guard<T> {
        H2Guard::new(io, streams.clone(), self.per_connection, self.unserved, self.pings)
    }
}

/// What the port holds at once, and how long a connection lives.
#[derive(Debug, Clone, Copy)]
pub struct PortCaps {
    /// Connections open at once (GRPC_MAX_CONNECTIONS); one more is reset
    /// as soon as it is accepted.
    pub max_connections: u32,
    /// TLS handshakes in progress at once (MAX_TLS_HANDSHAKES); one more
    /// connection is reset before its handshake begins.
    pub max_handshakes: u32,
    /// When a connection is cut, whatever it is doing: MAX_CONNECTION_AGE
    /// plus its grace. tonic sends the GOAWAY at the age; with a grace set
    /// it would instead send none and cut at age + grace, so it is given
    /// only the age and the cut is made here.
    pub lifetime: Option<Duration>,
}

/// The HTTP/2 client connection preface, which must arrive in time.
const PREFACE_BYTES: usize = 24;

pin_project_lite::pin_project! {
    /// An accepted connection: TLS, or plaintext when TLS is turned off,
    /// capped in the HTTP/2 streams it may waste, and who is on the other end.
    pub struct Connection {
        #[pin]
        io: H2Guard<Either<Box<TlsStream<TcpStream>>, TcpStream>>,
        peer: PeerInfo,
        // Until the client's connection preface has been read: when it
        // must have been. A client that completes the handshake and then
        // sends nothing would otherwise hold its connection (and its
        // memory) until MAX_CONNECTION_AGE and its grace, minutes later.
        preface_due: Option<Pin<Box<tokio::time::Sleep>>>,
        preface_read: usize,
        // When the connection is cut, if it lives that long.
        cut_at: Option<Pin<Box<tokio::time::Sleep>>>,
        // Its place among the port's connections, until it is dropped.
        _permit: OwnedSemaphorePermit,
    }
}

impl Connection {
    fn new(
        io: H2Guard<Either<Box<TlsStream<TcpStream>>, TcpStream>>,
        peer: PeerInfo,
        within: Duration,
        lifetime: Option<Duration>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            io,
            peer,
            preface_due: Some(Box::pin(tokio::time::sleep(within))),
            preface_read: 0,
            cut_at: lifetime.map(|lifetime| Box::pin(tokio::time::sleep(lifetime))),
            _permit: permit,
        }
    }
}

/// Accepts on `listener` until `stop`, within `caps` (refusals counted in
/// `metrics`); with a reloader, each connection is a finished mTLS handshake
/// (at most `handshake_timeout` long), and failed handshakes are logged and
/// dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerReloader>>,
    handshake_timeout: Duration,
    limits: StreamLimits,
    caps: PortCaps,
    metrics: &Metrics,
    stop: CancellationToken,
) -> impl Stream<Item = io::Result<Connection>> {
    // Handshakes finish in any order; a small queue is enough because tonic
    // takes connections as fast as they come.
    let (tx, rx) = mpsc::channel(64);
    let local = listener.local_addr().ok();
    let connections = ConnectionCap::new(caps.max_connections, "GRPC_MAX_CONNECTIONS", &listener)
        .counted(metrics, metrics::REFUSED_CONNECTION_LIMIT);
    let handshakes = Arc::new(
        ConnectionCap::new(caps.max_handshakes, "MAX_TLS_HANDSHAKES", &listener)
            .counted(metrics, metrics::REFUSED_HANDSHAKE_LIMIT),
    );
    tokio::spawn(async move {
        while let Some((tcp, remote_addr, permit)) = connections.accept(&listener, &stop).await {
            let tx = tx.clone();
            let streams = StreamTally::default();
            let Some(tls) = tls.clone() else {
                let peer = PeerInfo { remote_addr, identities: Arc::from([]), streams: streams.clone() };
                let io = limits.cap(Either::Right(tcp), &streams);
                let connection = Connection::new(io, peer, handshake_timeout, caps.lifetime, permit);
                let _ = tx.send(Ok(connection)).await;
                continue;
            };
            // A handshake takes a place of its own until it ends, so
            // half-finished ones cannot crowd out finished connections'
            // memory, nor finished ones new handshakes.
            let Some((tcp, handshake)) = handshakes.admit(tcp) else { continue };
            tokio::spawn(async move {
                let acceptor = TlsAcceptor::from(tls.current());
                let accepted = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await;
                drop(handshake);
                match accepted {
                    Ok(Ok(stream)) => {
                        let names =
                            stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(identities);
                        let peer = PeerInfo {
                            remote_addr,
                            identities: names.unwrap_or_default().into(),
                            streams: streams.clone(),
                        };
                        // Connections are long-lived (see MAX_CONNECTION_AGE),
                        // so this line is rare, and it says who connected.
                        tracing::info!(
                            peer = %remote_addr,
                            local = ?local,
                            identities = %Logged(&peer.identities),
                            "TLS connection accepted"
                        );
                        let io = limits.cap(Either::Left(Box::new(stream)), &peer.streams);
                        let connection = Connection::new(io, peer, handshake_timeout, caps.lifetime, permit);
                        let _ = tx.send(Ok(connection)).await;
                    }
                    Ok(Err(error)) => tracing::warn!(peer = %remote_addr, %error, "TLS handshake failed"),
                    Err(_) => tracing::warn!(peer = %remote_addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

// === impl Connection ===

impl Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(cut_at) = this.cut_at.as_mut() {
            // h2 always has a read waiting, so this is polled, and wakes
            // the connection, when the time comes.
            if cut_at.as_mut().poll(cx).is_ready() {
                tracing::debug!(peer = %this.peer.remote_addr, "closing a connection at MAX_CONNECTION_AGE + MAX_CONNECTION_AGE_GRACE");
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection reached MAX_CONNECTION_AGE and its grace",
                )));
            }
        }
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if let Some(due) = this.preface_due.as_mut() {
            if matches!(polled, Poll::Ready(Ok(()))) {
                *this.preface_read += buf.filled().len() - before;
            }
            if *this.preface_read >= PREFACE_BYTES {
                *this.preface_due = None;
            } else if due.as_mut().poll(cx).is_ready() {
                tracing::warn!(peer = %this.peer.remote_addr, "no HTTP/2 connection preface within TLS_HANDSHAKE_TIMEOUT of the handshake; closing the connection");
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 connection preface in time",
                )));
            }
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use certgen::{Authority, LeafSpec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{client, TlsConnector};
    use tokio_stream::StreamExt;

    use super::*;
    use crate::tls::{
        testing::{files, Files},
        Material, Reloader, Role, ServerName,
    };

    const LIMITS: StreamLimits = StreamLimits { per_connection: 100, unserved: 100, pings: None };

    /// Long enough never to end a handshake in these tests: each ends on
    /// its own, well or badly.
    const NEVER: Duration = Duration::from_secs(600);

    struct Pki {
        server: Arc<ServerReloader>,
        client: TlsConnector,
        _files: [Files; 2],
    }

    /// A server certificate for `service1` and a client one for `service2`,
    /// from one CA.
    fn pki() -> Pki {
        let ca = Authority::new("ca").unwrap();
        let (server_files, client_files) = (files(&ca), files(&ca));
        let server = ca.issue(&LeafSpec::server("service1", &["service1"])).unwrap();
        server_files.write(&server.cert_pem, &server.key_pem);
        let client = ca.issue(&LeafSpec::client("service2")).unwrap();
        client_files.write(&client.cert_pem, &client.key_pem);
        let config = Material::load(&client_files.files, &Role::Client).unwrap().client_config().unwrap();
        Pki {
            server: Reloader::server(server_files.files.clone(), None).unwrap(),
            client: TlsConnector::from(Arc::new(config)),
            _files: [server_files, client_files],
        }
    }

    /// A port accepting through [`incoming`], its address, and what stops it.
    async fn port(
        tls: Option<Arc<ServerReloader>>,
        within: Duration,
        max_handshakes: u32,
    ) -> (SocketAddr, CancellationToken, Pin<Box<impl Stream<Item = io::Result<Connection>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let caps = PortCaps { max_connections: 16, max_handshakes, lifetime: None };
        (addr, stop.clone(), Box::pin(incoming(listener, tls, within, LIMITS, caps, &Metrics::new(), stop)))
    }

    async fn handshake(
        connector: &TlsConnector,
        addr: SocketAddr,
    ) -> io::Result<client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        connector.connect(ServerName::try_from("service1").unwrap(), tcp).await
    }

    #[tokio::test]
    async fn a_failed_handshake_is_dropped_and_the_loop_hands_on_the_next_connection_with_its_identity() {
        let pki = pki();
        let (addr, stop, mut incoming) = port(Some(pki.server.clone()), NEVER, 16).await;

        let mut not_tls = TcpStream::connect(addr).await.unwrap();
        not_tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = not_tls.read_to_end(&mut answer).await;
        let _client = handshake(&pki.client, addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        stop.cancel();

        assert_eq!(&*accepted.connect_info().identities, [Identity::Dns("service2".into())]);
        assert!(
            incoming.next().await.is_none(),
            "the failed one was never handed on, and stop ends the loop"
        );
    }

    #[tokio::test]
    async fn a_connection_beyond_the_handshake_cap_is_reset_before_its_handshake_until_a_place_frees() {
        let pki = pki();
        let (addr, stop, mut incoming) = port(Some(pki.server.clone()), NEVER, 1).await;

        // Connects and says nothing: its handshake holds the one place.
        let silent = TcpStream::connect(addr).await.unwrap();
        let refused = handshake(&pki.client, addr).await;
        drop(silent);
        // The place frees once the server sees the silent one go; until
        // then each attempt is reset at once.
        let mut admitted = None;
        for _ in 0..1000 {
            if let Ok(stream) = handshake(&pki.client, addr).await {
                admitted = Some(stream);
                break;
            }
            tokio::task::yield_now().await;
        }
        let accepted = incoming.next().await.unwrap().unwrap();
        stop.cancel();

        assert!(refused.is_err(), "the second handshake found no place");
        assert!(admitted.is_some(), "a place freed when the silent connection went");
        assert_eq!(accepted.connect_info().identities.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_plaintext_connection_is_closed_if_its_http2_preface_does_not_come_in_time() {
        let within = Duration::from_secs(5);
        let (addr, stop, mut incoming) = port(None, within, 16).await;

        let mut prompt = TcpStream::connect(addr).await.unwrap();
        prompt.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let mut on_time = incoming.next().await.unwrap().unwrap();
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut late = incoming.next().await.unwrap().unwrap();
        stop.cancel();

        let mut preface = [0; PREFACE_BYTES];
        on_time.read_exact(&mut preface).await.unwrap();
        tokio::time::advance(2 * within).await;
        let late = late.read(&mut [0; 64]).await.unwrap_err();

        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(on_time.connect_info().identities.is_empty(), "no TLS, no identities");
        assert_eq!(late.kind(), io::ErrorKind::TimedOut);
    }
}
