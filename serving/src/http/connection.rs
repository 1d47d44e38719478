//! One HTTP port's connections: the hyper settings each is served with
//! (HTTP/1 head limits, HTTP/2 stream limits, send buffer and keepalive
//! pings), the loop that gives each accepted connection its own task, and
//! the driver in that task, which closes a connection on its timers: a head
//! read too slowly (`HTTP_HEADER_READ_TIMEOUT`: dropped), no requests for too
//! long (`HTTP_IDLE_TIMEOUT`: closed gracefully), responses its client does
//! not take (`HTTP_WRITE_TIMEOUT`: dropped), and a graceful close that does
//! not finish in time (dropped).

use std::{io, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Semaphore,
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use observability::{metrics, Metrics};
use settings::{ConnectionLimits, HttpLimits};

use super::{
    accept::ConnectionCap,
    head_errors::HeadErrors,
    tracking::{Activity, InFlight, Tracked},
};
use crate::{
    h2_guard::{H2Guard, StreamTally},
    stalled::StreamExecutor,
};

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

// === impl PortLimits ===

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

/// HTTP/2 pings find dead peers on idle connections.
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(20);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

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
    let cap = ConnectionCap::new(port.max_connections, port.setting, &listener)
        .counted(metrics, metrics::REFUSED_CONNECTION_LIMIT);
    let connections = Arc::new(Connections::new(router, limits, &port, metrics));
    let tasks = TaskTracker::new();
    while let Some((tcp, _peer, permit)) = cap.accept(&listener, &stop).await {
        // Made here, not in the task, so a new connection's first request
        // head is timed from its accept.
        let activity = Activity::new();
        let (connections, stop) = (connections.clone(), stop.clone());
        tasks.spawn(async move {
            // Held until the connection ends, however it ends.
            let _permit = permit;
            connections.serve(tcp, activity, &stop).await;
        });
    }
    // Closing the listener refuses new connections at once.
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// What every connection of one port shares.
pub(super) struct Connections {
    builder: auto::Builder<StreamExecutor>,
    router: Router,
    metrics: Metrics,
    /// The port's HTTP/2 stream budget (see [`InFlight`]).
    alive: Arc<Semaphore>,
    probes: &'static [&'static str],
    streams_per_connection: u32,
    /// How many streams beyond `streams_per_connection` may end unserved.
    unserved_cap: u32,
    timers: Timers,
}

/// When the driver closes a connection.
#[derive(Debug, Clone, Copy)]
struct Timers {
    header_read: Duration,
    idle: Duration,
    write: Duration,
    /// After GOAWAY (idle, or stopping), what a connection may still need:
    /// a request's time, then its response's. Past that it is dropped, so a
    /// connection that never finishes cannot outlive its welcome.
    closing_deadline: Duration,
}

// === impl Connections ===

impl Connections {
    pub(super) fn new(router: Router, limits: &HttpLimits, port: &PortLimits, metrics: &Metrics) -> Self {
        let mut builder = auto::Builder::new(StreamExecutor { timeout: port.write_timeout });
        builder
            .http1()
            .timer(TokioTimer::new())
            // hyper's timer also runs while a keep-alive connection waits for
            // its next request, which would make the header-read timeout the
            // idle timeout; `Activity` times request heads instead.
            .header_read_timeout(None)
            .max_headers(limits.http_max_headers as usize)
            // The read buffer bounds the request head: past it, 431.
            .max_buf_size(limits.http_max_header_bytes as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.http_max_header_bytes)
            .max_concurrent_streams(port.streams_per_connection)
            .max_send_buf_size(HTTP2_MAX_SEND_BUFFER)
            // Each stream the server resets for a client's protocol error
            // costs work and yields nothing; past this many, GOAWAY.
            .max_local_error_reset_streams(limits.http2_max_local_reset_streams as usize)
            .keep_alive_interval(Some(HTTP2_KEEPALIVE))
            .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
        Self {
            builder,
            router,
            metrics: metrics.clone(),
            // Twice the requests served at once: those, and as many answered
            // ones whose clients have yet to take them.
            alive: Arc::new(Semaphore::new(2 * limits.http_max_concurrent_requests as usize)),
            probes: port.probes,
            streams_per_connection: port.streams_per_connection,
            unserved_cap: limits.http2_max_local_reset_streams,
            timers: Timers {
                header_read: limits.http_header_read_timeout,
                idle: limits.http_idle_timeout,
                write: port.write_timeout,
                closing_deadline: limits.http_request_timeout + port.write_timeout,
            },
        }
    }

    /// Serves one connection until it ends, its timers close it, or `stop`
    /// is cancelled and it has closed (or its closing deadline has passed).
    /// `activity` is the connection's, made when it was accepted.
    pub(super) async fn serve<T>(&self, io: T, activity: Activity, stop: &CancellationToken)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Timers { header_read, idle, write, closing_deadline } = self.timers;
        let streams = StreamTally::default();
        let io = TokioIo::new(H2Guard::new(
            HeadErrors::new(Tracked::new(io, activity.clone()), activity.clone(), self.metrics.clone()),
            streams.clone(),
            self.streams_per_connection,
            self.unserved_cap,
            // gRPC's keepalive policy is for gRPC ports (HTTP clients of the
            // REST and admin ports know nothing of it).
            None,
        ));
        let service = TowerToHyperService::new(InFlight {
            inner: self.router.clone(),
            activity: activity.clone(),
            streams,
            alive: self.alive.clone(),
            probes: self.probes,
        });
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        let head_check = tokio::time::sleep(header_read);
        let hard_stop = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(connection, head_check, hard_stop);
        let mut closing = false;
        let mut check = tokio::time::interval(idle.min(write) / 4);
        loop {
            tokio::select! {
                _ = &mut connection => break,
                _ = stop.cancelled(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                    hard_stop.as_mut().reset(Instant::now() + closing_deadline);
                }
                _ = check.tick() => {
                    // A client that does not read what it asked for (its
                    // window full, the kernel's buffers full behind it)
                    // holds its responses in memory; no graceful close can
                    // finish, so it is dropped.
                    if activity.write_blocked_for().is_some_and(|blocked| blocked >= write) {
                        tracing::warn!(write_timeout = ?write, "closing a connection whose client does not read its responses (HTTP_WRITE_TIMEOUT)");
                        break;
                    }
                    if !closing && activity.idle_for() >= idle {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                        hard_stop.as_mut().reset(Instant::now() + closing_deadline);
                    }
                }
                _ = &mut hard_stop, if closing => break,
                // A head begins without waking this task, so it is looked
                // for once per timeout; one found is then cut off exactly the
                // timeout after it began.
                _ = &mut head_check => {
                    let next = match activity.head_read_for() {
                        // A slowloris: nothing to finish gracefully, drop it.
                        Some(taken) if taken >= header_read => break,
                        Some(taken) => header_read - taken,
                        None => header_read,
                    };
                    head_check.as_mut().reset(Instant::now() + next);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Arc};

    use axum::{extract::Request, response::IntoResponse};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
        sync::Notify,
        time::timeout,
    };
    use tower::service_fn;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    /// Less than any timer a test leaves out of play (an hour), more than
    /// any it puts in.
    const WITHIN: Duration = Duration::from_secs(60);

    /// `/ok` answers at once; `/hang` notifies `entered` and never answers.
    fn router(entered: Arc<Notify>) -> Router {
        Router::new()
            .route_service(
                "/ok",
                service_fn(|_: Request| async { Ok::<_, Infallible>("ok".into_response()) }),
            )
            .route_service(
                "/hang",
                service_fn(move |_: Request| {
                    let entered = entered.clone();
                    async move {
                        entered.notify_one();
                        std::future::pending::<Result<axum::response::Response, Infallible>>().await
                    }
                }),
            )
    }

    /// One connection over an in-memory pipe, served with `limits`; the
    /// client's end.
    fn connect(limits: HttpLimits, router: Router, stop: &CancellationToken) -> DuplexStream {
        let port = PortLimits {
            max_connections: 1,
            setting: "MAX_CONNECTIONS",
            streams_per_connection: 8,
            write_timeout: Duration::from_secs(10),
            probes: &[],
        };
        let connections = Connections::new(router, &limits, &port, &Metrics::new());
        let (client, server) = tokio::io::duplex(64 * 1024);
        let stop = stop.clone();
        tokio::spawn(async move { connections.serve(server, Activity::new(), &stop).await });
        client
    }

    /// Everything the server writes until it closes the connection, if it
    /// closes within `within`.
    async fn until_closed(client: &mut DuplexStream, within: Duration) -> Option<String> {
        let mut read = Vec::new();
        timeout(within, client.read_to_end(&mut read)).await.ok()?.unwrap();
        Some(String::from_utf8(read).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_not_finished_within_the_header_read_timeout_is_dropped_unanswered() {
        let limits = HttpLimits {
            http_header_read_timeout: Duration::from_secs(2),
            http_idle_timeout: HOUR,
            ..HttpLimits::default()
        };
        let stop = CancellationToken::new();
        let mut client = connect(limits, router(Arc::default()), &stop);

        client.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\n").await.unwrap();

        let written = until_closed(&mut client, WITHIN).await.expect("the connection is dropped");
        assert_eq!(written, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_no_requests_for_the_idle_timeout_is_closed_after_its_last_answer() {
        let limits = HttpLimits {
            http_header_read_timeout: HOUR,
            http_idle_timeout: Duration::from_secs(5),
            ..HttpLimits::default()
        };
        let stop = CancellationToken::new();
        let mut client = connect(limits, router(Arc::default()), &stop);

        client.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();

        let written = until_closed(&mut client, WITHIN).await.expect("the idle connection is closed");
        assert!(written.starts_with("HTTP/1.1 200 OK\r\n"), "{written}");
        assert!(written.ends_with("ok"), "{written}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_request_outlasts_a_graceful_shutdown_is_cut_at_the_closing_deadline() {
        let limits = HttpLimits {
            http_header_read_timeout: HOUR,
            http_idle_timeout: HOUR,
            http_request_timeout: Duration::from_secs(5),
            ..HttpLimits::default()
        };
        // The request's time, then its response's (the port's write timeout).
        let closing_deadline = Duration::from_secs(5 + 10);
        let entered = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let mut client = connect(limits, router(entered.clone()), &stop);
        client.write_all(b"GET /hang HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
        entered.notified().await;

        stop.cancel();

        let early = closing_deadline - Duration::from_secs(1);
        assert_eq!(until_closed(&mut client, early).await, None, "graceful: the request may still finish");
        let written = until_closed(&mut client, Duration::from_secs(2)).await.expect("cut at the deadline");
        assert_eq!(written, "", "the hanging request was never answered");
    }
}
