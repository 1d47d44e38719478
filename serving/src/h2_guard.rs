//! What one HTTP/2 client may cost a server connection beyond its requests:
//! streams that never reach the service, and (on gRPC ports) pings.
//!
//! ## Unserved streams
//!
//! Every stream the server ends on its own (reset as malformed, refused,
//! answered 431 because its header block decodes past the limit) costs the
//! server work and yields the client nothing. h2 counts some of these
//! (`max_local_error_reset_streams`) but not all: an oversized header block
//! gets a 431 and a reset that are never counted, so a client can make the
//! server decode such blocks as fast as it can send them.
//!
//! [`H2Guard`] therefore counts from the bytes: each HTTP/2 stream a
//! client opens (a HEADERS frame with a new stream id) is one opened, and
//! the connection's service marks each request it is handed as served
//! ([`StreamTally::served`]). Streams still waiting to be handed over are
//! live streams, at most the connection's stream limit; opened streams
//! beyond that limit plus `cap` that were never served were ended by the
//! server itself. Past that, the connection gets GOAWAY (`ENHANCE_YOUR_CALM`)
//! and is closed. Connections that do not open with the HTTP/2 preface
//! (HTTP/1) are passed through untouched.
//!
//! ## Pings
//!
//! With a [`PingPolicy`], the connection enforces gRPC's keepalive policy
//! (gRFC A8) as grpc-go does: a PING that comes sooner than the policy's
//! interval after the previous one is a strike, unless the server has sent
//! headers or data since; past two strikes, GOAWAY (`ENHANCE_YOUR_CALM`,
//! debug data `too_many_pings`), which gRPC clients read as "ping less".
//! h2 answers every PING itself and has no such policy.
//!
//! Only frame headers are read (nine bytes per frame; payloads are skipped,
//! never copied), on the way in to count streams and pings, and on the way
//! out to see headers and data go out and to know where a frame ends, so
//! that the GOAWAY never lands inside one of h2's.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

use crate::h2_frames::{FrameHeader, Frames, DATA, GOAWAY, HEADERS, PING};

/// How many streams a connection has had served, shared between its bytes
/// ([`H2Guard`]) and its service.
#[derive(Clone, Debug, Default)]
pub struct StreamTally {
    served: Arc<AtomicU64>,
}

impl StreamTally {
    /// A request of this connection reached the service.
    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const NOT_HTTP2: usize = usize::MAX;
/// Strikes a client may have before its pings close the connection, as in
/// grpc-go and grpcio.
const MAX_PING_STRIKES: u8 = 2;

/// How often a client may ping (gRFC A8's `min_time`).
#[derive(Debug, Clone, Copy)]
pub struct PingPolicy {
    pub min_interval: Duration,
}

/// Where a client's pings stand against the policy.
struct Pings {
    policy: PingPolicy,
    last: Option<Instant>,
    strikes: u8,
    /// The server sent headers or data since the last ping: the next one
    /// starts a clean slate (a client may ping to measure a busy link).
    sent_since: bool,
}

impl Pings {
    /// Notes a PING from the client; whether it was one too many.
    fn received(&mut self, now: Instant) -> bool {
        if std::mem::take(&mut self.sent_since) {
            self.strikes = 0;
            self.last = None;
        }
        if self.last.is_some_and(|last| now.duration_since(last) < self.policy.min_interval) {
            self.strikes += 1;
        }
        self.last = Some(now);
        self.strikes > MAX_PING_STRIKES
    }
}
const ENHANCE_YOUR_CALM: u32 = 0xb;

pin_project_lite::pin_project! {
    /// A server connection that is closed with GOAWAY once it has opened
    /// too many HTTP/2 streams that never reached the service.
    pub struct H2Guard<T> {
        #[pin]
        inner: T,
        tally: StreamTally,
        // Unserved streams allowed: the connection's stream limit plus the cap.
        allowed: u64,
        // How much of the HTTP/2 preface the client has sent, or `NOT_HTTP2`
        // once its bytes showed it is something else.
        preface: usize,
        incoming: Frames,
        outgoing: Frames,
        opened: u64,
        last_stream: u32,
        pings: Option<Pings>,
        // Set once a limit is crossed.
        closing: Option<Closing>,
    }
}

impl<T> H2Guard<T> {
    /// `streams_per_connection` is the HTTP/2 stream limit the server
    /// advertises; `cap` how many streams beyond it may end unserved; `pings`
    /// the keepalive policy to enforce, if any.
    pub fn new(
        inner: T,
        tally: StreamTally,
        streams_per_connection: u32,
        cap: u32,
        pings: Option<PingPolicy>,
    ) -> Self {
        Self {
            inner,
            tally,
            allowed: u64::from(streams_per_connection) + u64::from(cap),
            preface: 0,
            incoming: Frames::default(),
            outgoing: Frames::default(),
            opened: 0,
            last_stream: 0,
            pings: pings.map(|policy| Pings { policy, last: None, strikes: 0, sent_since: false }),
            closing: None,
        }
    }
}

/// GOAWAY with `ENHANCE_YOUR_CALM` and `debug` as its debug data.
fn goaway_frame(last_stream: u32, debug: &[u8]) -> Vec<u8> {
    let length = (8 + debug.len()) as u32;
    let mut frame = length.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&last_stream.to_be_bytes());
    frame.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    frame.extend_from_slice(debug);
    frame
}

/// How a connection over the cap is closed.
///
/// Closing a socket with unread bytes in it makes the kernel answer with a
/// reset, which can reach the client before the GOAWAY does, and a client
/// in the middle of sending sees only a broken pipe. So the GOAWAY goes
/// out, then the end of our side (TLS close_notify, TCP FIN), and what the
/// client still sends is read and dropped, for at most `LINGER` and
/// `LINGER_BYTES`, until it closes its side too. h2 sees none of it: from
/// the cap on, its reads find the end of the stream and its writes go
/// nowhere.
enum Closing {
    GoAway { frame: Vec<u8>, written: usize },
    Shutdown,
    Draining { until: Pin<Box<tokio::time::Sleep>>, budget: usize },
    Closed,
}

const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

impl<T: AsyncRead + AsyncWrite> H2Guard<T> {
    /// Moves the close along; ready once the connection can be reported
    /// ended to h2.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            let Some(closing) = this.closing.as_mut() else { return Poll::Ready(Ok(())) };
            match closing {
                Closing::GoAway { frame, written } => {
                    if *written == 0 && !this.outgoing.between_frames() {
                        // h2 is part way through a frame; a GOAWAY cannot go
                        // in, so the connection is cut.
                        *closing = Closing::Closed;
                        return Poll::Ready(Err(too_many()));
                    }
                    while *written < frame.len() {
                        match ready!(this.inner.as_mut().poll_write(cx, &frame[*written..]))? {
                            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                            n => *written += n,
                        }
                    }
                    *closing = Closing::Shutdown;
                }
                Closing::Shutdown => {
                    ready!(this.inner.as_mut().poll_shutdown(cx))?;
                    let until = Box::pin(tokio::time::sleep(LINGER));
                    *closing = Closing::Draining { until, budget: LINGER_BYTES };
                }
                Closing::Draining { until, budget } => {
                    let mut scratch = [0; 4096];
                    let mut read = ReadBuf::new(&mut scratch);
                    match this.inner.as_mut().poll_read(cx, &mut read) {
                        Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                            *budget = budget.saturating_sub(read.filled().len());
                            if *budget == 0 {
                                *closing = Closing::Closed;
                            }
                        }
                        // The client closed its side (or broke the connection).
                        Poll::Ready(_) => *closing = Closing::Closed,
                        Poll::Pending => {
                            ready!(until.as_mut().poll(cx));
                            *closing = Closing::Closed;
                        }
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Headers or data going out give the client's next ping a clean slate.
fn note_sent(pings: &mut Option<Pings>, header: FrameHeader) {
    if let Some(pings) = pings.as_mut().filter(|_| matches!(header.kind(), HEADERS | DATA)) {
        pings.sent_since = true;
    }
}

fn too_many() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "too many HTTP/2 streams ended without being served")
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for H2Guard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closing.is_some() {
            // Nothing more reaches h2: once closed, the end of the stream.
            return self.poll_close(cx);
        }
        let this = self.as_mut().project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        let mut bytes = &buf.filled()[before..];
        if *this.preface == NOT_HTTP2 {
            return Poll::Ready(Ok(()));
        }
        if *this.preface < PREFACE.len() {
            let seen = *this.preface;
            let n = (PREFACE.len() - seen).min(bytes.len());
            if bytes[..n] != PREFACE[seen..seen + n] {
                *this.preface = NOT_HTTP2;
                return Poll::Ready(Ok(()));
            }
            *this.preface += n;
            bytes = &bytes[n..];
        }
        let (opened, last_stream, pings) = (&mut *this.opened, &mut *this.last_stream, this.pings);
        let mut too_many_pings = false;
        this.incoming.headers(bytes, |header| {
            let stream = header.stream();
            // A client's streams are odd and only go up; a HEADERS frame on
            // a stream already open is its trailers.
            if header.kind() == HEADERS && stream % 2 == 1 && stream > *last_stream {
                *last_stream = stream;
                *opened += 1;
            }
            if let Some(pings) = pings.as_mut().filter(|_| header.is_unacked(PING)) {
                // The clock is read only for a PING, not on every read.
                too_many_pings |= pings.received(Instant::now());
            }
        });
        let unserved = this.opened.saturating_sub(this.tally.count()) > *this.allowed;
        let debug: &[u8] = if too_many_pings {
            tracing::warn!(
                "closing an HTTP/2 connection that pings more often than the keepalive policy permits"
            );
            b"too_many_pings"
        } else if unserved {
            tracing::warn!(
                opened = *this.opened,
                served = this.tally.count(),
                "closing an HTTP/2 connection whose streams keep ending without being served"
            );
            b""
        } else {
            return Poll::Ready(Ok(()));
        };
        *this.closing = Some(Closing::GoAway { frame: goaway_frame(*this.last_stream, debug), written: 0 });
        // What was just read is dropped: those streams are refused too.
        buf.set_filled(before);
        self.poll_close(cx)
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncWrite for H2Guard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.closing.is_some() {
            // What h2 writes after the GOAWAY goes nowhere.
            let _ = ready!(self.poll_close(cx));
            return Poll::Ready(Ok(buf.len()));
        }
        let this = self.project();
        let written = ready!(this.inner.poll_write(cx, buf))?;
        let pings = this.pings;
        this.outgoing.headers(&buf[..written], |header| note_sent(pings, header));
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.closing.is_some() {
            let _ = ready!(self.poll_close(cx));
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let this = self.project();
        let written = ready!(this.inner.poll_write_vectored(cx, bufs))?;
        let mut left = written;
        let pings = this.pings;
        for buf in bufs {
            let n = left.min(buf.len());
            this.outgoing.headers(&buf[..n], |header| note_sent(pings, header));
            left -= n;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closing.is_some() {
            let _ = ready!(self.poll_close(cx));
            return Poll::Ready(Ok(()));
        }
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closing.is_some() {
            let _ = ready!(self.poll_close(cx));
            return Poll::Ready(Ok(()));
        }
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::h2_frames::{frame, Piece, ACK};

    /// A client that has sent the preface and then `frames`, and the
    /// guard in front of the server's end.
    async fn connection(
        frames: &[Vec<u8>],
        tally: StreamTally,
        pings: Option<PingPolicy>,
    ) -> (DuplexStream, H2Guard<DuplexStream>) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&[PREFACE.to_vec(), frames.concat()].concat()).await.unwrap();
        (client, H2Guard::new(server, tally, 2, 1, pings))
    }

    /// What the server's side let through to h2 before it ended.
    async fn read_all(guard: &mut H2Guard<DuplexStream>) -> Vec<u8> {
        let mut read = Vec::new();
        guard.read_to_end(&mut read).await.unwrap();
        read
    }

    /// The GOAWAY the client got, as (last stream, error code, debug data).
    async fn goaway(client: &mut DuplexStream) -> Option<(u32, u32, Vec<u8>)> {
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let (mut frames, mut found, mut payload) = (Frames::default(), None, Vec::new());
        frames.walk(&bytes, |piece| match piece {
            Piece::Header(h) => found = Some(h.kind()),
            Piece::Payload(p) if found == Some(GOAWAY) => payload.extend_from_slice(p),
            Piece::Payload(_) => {}
        });
        (found == Some(GOAWAY)).then(|| {
            let word = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
            (word(0), word(4), payload[8..].to_vec())
        })
    }

    fn opens(streams: impl IntoIterator<Item = u32>) -> Vec<Vec<u8>> {
        streams.into_iter().map(|stream| frame(HEADERS, 0x4, stream, &[])).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_streams_go_unserved_past_the_cap_gets_goaway_and_h2_sees_nothing() {
        // Stream limit 2 plus cap 1: the fourth unserved stream is one too many.
        let (mut client, mut guard) = connection(&opens([1, 3, 5, 7]), StreamTally::default(), None).await;

        let to_h2 = read_all(&mut guard).await;
        drop(guard);

        let mut streams = Vec::new();
        Frames::skipping(PREFACE.len()).headers(&to_h2, |h| streams.push(h.stream()));
        assert!(!streams.contains(&7), "the read that crossed the cap is dropped: {streams:?}");
        assert_eq!(goaway(&mut client).await, Some((7, ENHANCE_YOUR_CALM, Vec::new())));
    }

    #[tokio::test(start_paused = true)]
    async fn streams_the_service_served_do_not_count_against_the_cap() {
        let tally = StreamTally::default();
        let sent = opens([1, 3, 5, 7]);
        for _ in &sent {
            tally.served();
        }
        let (mut client, mut guard) = connection(&sent, tally, None).await;
        client.shutdown().await.unwrap();

        let to_h2 = read_all(&mut guard).await;

        assert_eq!(to_h2, [PREFACE.to_vec(), sent.concat()].concat());
    }

    fn ping() -> Vec<u8> {
        frame(PING, 0, 0, &[0; 8])
    }

    const EVERY_SECOND: PingPolicy = PingPolicy { min_interval: Duration::from_secs(1) };

    #[tokio::test(start_paused = true)]
    async fn a_client_pinging_faster_than_the_policy_gets_goaway_too_many_pings() {
        // The first ping sets the clock; three more, at once, are three strikes.
        let (mut client, mut guard) =
            connection(&[ping(), ping(), ping(), ping()], StreamTally::default(), Some(EVERY_SECOND)).await;

        read_all(&mut guard).await;
        drop(guard);

        assert_eq!(goaway(&mut client).await, Some((0, ENHANCE_YOUR_CALM, b"too_many_pings".to_vec())));
    }

    #[tokio::test(start_paused = true)]
    async fn pings_at_the_policy_s_interval_and_acks_are_never_strikes() {
        let (mut client, mut guard) = connection(&[], StreamTally::default(), Some(EVERY_SECOND)).await;
        let mut read = vec![0; 1 << 10];
        guard.read_exact(&mut read[..PREFACE.len()]).await.unwrap();

        for _ in 0..6 {
            client.write_all(&[ping(), frame(PING, ACK, 0, &[0; 8])].concat()).await.unwrap();
            let n = guard.read(&mut read).await.unwrap();
            assert_eq!(n, 2 * 17, "both frames reach h2");
            tokio::time::advance(EVERY_SECOND.min_interval).await;
        }
        client.shutdown().await.unwrap();

        assert_eq!(read_all(&mut guard).await, b"");
        drop(guard);
        assert_eq!(goaway(&mut client).await, None);
    }

    #[test]
    fn headers_or_data_sent_since_the_last_ping_wipe_the_strikes() {
        let now = Instant::now();
        let mut pings = Pings { policy: EVERY_SECOND, last: None, strikes: 0, sent_since: false };
        assert!(!pings.received(now));
        assert!(!pings.received(now));
        assert!(!pings.received(now));
        pings.sent_since = true;
        assert!(!pings.received(now));
        assert!(!pings.received(now));
        assert!(!pings.received(now));
        assert!(pings.received(now), "the third strike since the server last sent");
    }
}
