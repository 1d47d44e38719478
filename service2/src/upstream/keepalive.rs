//! Keepalive: the task that drives one HTTP/2 connection to a replica and
//! pings the replica when it has gone quiet with calls open ([`drive`]), the
//! clock of when the connection last heard from it ([`LastRead`]), and the
//! IO wrapper that feeds that clock ([`OnRead`]).
//!
//! It knows nothing of endpoints: what it reads of the calls on its
//! connection, and whom it tells that the replica stopped answering, is the
//! [`Watch`] it is given.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Weak,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
    time::Instant,
};

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

/// What keepalive reads of the calls on its connection, and whom it tells
/// that the replica stopped answering (the endpoint, in production).
pub trait Watch: Send + Sync + 'static {
    /// Whether a call is open on the connection.
    fn calls_open(&self) -> bool;
    /// Woken when a call starts on a connection with none open.
    fn call_started(&self) -> &Notify;
    /// Woken when a call went unanswered until its attempt timeout: ping at
    /// once, though that call is no longer open.
    fn unanswered(&self) -> &Notify;
    /// A ping went unanswered for `timeout`; the connection closes next.
    fn unresponsive(self: Arc<Self>, timeout: Duration);
}

/// Runs the connection until it ends, and pings the replica as
/// [`Keepalive`] says: once the replica has sent nothing for `interval`
/// while calls are open (or always, with `while_idle`); a ping unanswered
/// within `timeout` ends the connection, which fails the calls on it (they
/// are retried elsewhere), and is told to `watch`.
pub async fn drive<T, W>(
    connection: h2::client::Connection<T, Bytes>,
    keepalive: Keepalive,
    last_read: &LastRead,
    watch: Weak<W>,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Send + Unpin,
    W: Watch,
{
    let mut connection = connection;
    let mut ping_pong = connection.ping_pong().expect("taken once, here");
    let mut connection = std::pin::pin!(connection);
    let idle = || watch.upgrade().is_none_or(|w| !w.calls_open());
    let unanswered = || async {
        match watch.upgrade() {
            Some(watch) => watch.unanswered().notified().await,
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
            let Some(watch) = watch.upgrade() else { return connection.await };
            tokio::select! {
                result = &mut connection => return result,
                _ = watch.call_started().notified() => {}
                _ = watch.unanswered().notified() => probe = true,
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
                    if let Some(watch) = watch.upgrade() {
                        watch.unresponsive(keepalive.timeout);
                    }
                    return Ok(());
                }
            },
        }
    }
}

/// When a connection last read anything (or a call started on it after a
/// quiet spell: keepalive counts the quiet from there).
pub struct LastRead {
    /// Nanoseconds since `since`: exact, since a read noted up to 1 ms early
    /// (whole milliseconds) would let a ping go out before the interval,
    /// which service1 counts against the connection (`too_many_pings`).
    nanos: AtomicU64,
    since: Instant,
}

impl LastRead {
    /// Read just now: the handshake has been answered.
    pub fn now() -> Self {
        Self { nanos: AtomicU64::new(0), since: Instant::now() }
    }

    pub fn touch(&self) {
        self.nanos.store(self.since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn get(&self) -> Instant {
        self.since + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// A connection's IO that calls `on_read` with the bytes of each read (the
/// connection notes the time in [`LastRead`]). Forwards vectored writes, so
/// HTTP/2 frames still leave in one write.
pub struct OnRead<T, F> {
    pub inner: T,
    pub on_read: F,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use serving::h2_frames::{Frames, PING};

    use super::*;

    /// Calls as a test sets them, and how often the replica was reported
    /// unresponsive.
    #[derive(Default)]
    struct Calls {
        open: AtomicBool,
        started: Notify,
        unanswered: Notify,
        unresponsive: AtomicUsize,
    }

    impl Watch for Calls {
        fn calls_open(&self) -> bool {
            self.open.load(Ordering::Relaxed)
        }

        fn call_started(&self) -> &Notify {
            &self.started
        }

        fn unanswered(&self) -> &Notify {
            &self.unanswered
        }

        fn unresponsive(self: Arc<Self>, _: Duration) {
            self.unresponsive.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection over an in-memory pipe to an HTTP/2 server that
    /// answers pings (h2 does as it reads) and counts them, driven by
    /// [`drive`], so tokio's paused clock governs every ping.
    async fn driven(
        keepalive: Keepalive,
        calls: &Arc<Calls>,
    ) -> (Arc<AtomicUsize>, h2::client::SendRequest<Bytes>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let pings = Arc::new(AtomicUsize::new(0));
        let counted = pings.clone();
        // PING frames that are not acks, after the client's preface.
        let mut frames = Frames::skipping(24);
        let on_read = move |bytes: &[u8]| {
            frames.headers(bytes, |header| {
                if header.is_unacked(PING) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        tokio::spawn(async move {
            let mut connection =
                h2::server::handshake(OnRead { inner: server, on_read }).await.expect("server handshake");
            while let Some(Ok(_)) = connection.accept().await {}
        });
        let heard = Arc::new(LastRead::now());
        let io = OnRead {
            inner: client,
            on_read: {
                let heard = heard.clone();
                move |_: &[u8]| heard.touch()
            },
        };
        let (send, connection) = h2::client::handshake(io).await.expect("client handshake");
        let watch = Arc::downgrade(calls);
        tokio::spawn(async move { drive(connection, keepalive, &heard, watch).await });
        (pings, send)
    }

    fn every(interval: Duration, while_idle: bool) -> Keepalive {
        Keepalive { interval, timeout: Duration::from_secs(5), while_idle }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_with_a_call_open_is_pinged_every_keepalive_interval() {
        let calls = Arc::new(Calls::default());
        calls.open.store(true, Ordering::Relaxed);
        let (pings, _send) = driven(every(Duration::from_millis(50), false), &calls).await;

        // Each pong comes back at once on the pipe, so pings go out at 50,
        // 100, ... 400 ms of quiet.
        tokio::time::sleep(Duration::from_millis(425)).await;

        assert_eq!(pings.load(Ordering::Relaxed), 8);
        assert_eq!(calls.unresponsive.load(Ordering::Relaxed), 0, "every ping was answered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_calls_is_not_pinged_unless_keepalive_says_while_idle() {
        let interval = Duration::from_millis(50);
        let (quiet_calls, pinged_calls) = (Arc::new(Calls::default()), Arc::new(Calls::default()));
        let (quiet, _quiet) = driven(every(interval, false), &quiet_calls).await;
        let (pinged, _pinged) = driven(every(interval, true), &pinged_calls).await;

        tokio::time::sleep(Duration::from_millis(425)).await;

        assert_eq!(quiet.load(Ordering::Relaxed), 0);
        assert_eq!(pinged.load(Ordering::Relaxed), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_starting_on_a_quiet_idle_connection_starts_the_pings() {
        let calls = Arc::new(Calls::default());
        let (pings, _send) = driven(every(Duration::from_millis(50), false), &calls).await;
        tokio::time::sleep(Duration::from_millis(425)).await;
        assert_eq!(pings.load(Ordering::Relaxed), 0);

        calls.open.store(true, Ordering::Relaxed);
        calls.started.notify_one();
        tokio::time::sleep(Duration::from_millis(25)).await;

        assert_eq!(pings.load(Ordering::Relaxed), 1, "quiet for longer than the interval already");
    }
}
