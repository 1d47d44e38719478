//! Listening and accepting: binding a port with a real backlog, the accept
//! loop (with its back-off when accepting fails), and [`ConnectionCap`], the
//! limit on connections (or TLS handshakes) a port holds at once.

use std::{
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use observability::{metrics::ConnectionsRefused, Metrics};
use settings::ListenArgs;

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
    /// `connections_refused_total`, once [`ConnectionCap::counted`].
    counter: Option<ConnectionsRefused>,
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
            counter: None,
        }
    }

    /// Counts each refusal in `connections_refused_total`, with this
    /// listener's port and `reason` (`metrics::REFUSED_*`).
    pub fn counted(mut self, metrics: &Metrics, reason: &'static str) -> Self {
        let port = self.local.map_or(0, |local| local.port());
        self.counter = Some(metrics.connections_refused(port, reason));
        self
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
        // Counted before the reset goes out, so a client that sees it can
        // already see the count.
        if let Some(counter) = &self.counter {
            counter.inc();
        }
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use observability::metrics::REFUSED_CONNECTION_LIMIT;

    use super::*;

    async fn loopback() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_past_the_cap_is_reset_at_once_and_counted_and_a_freed_place_admits_the_next() {
        let listener = loopback().await;
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let cap =
            ConnectionCap::new(1, "MAX_CONNECTIONS", &listener).counted(&metrics, REFUSED_CONNECTION_LIMIT);
        let stop = CancellationToken::new();
        let _first = TcpStream::connect(addr).await.unwrap();
        let (_, _, first_place) = cap.accept(&listener, &stop).await.unwrap();

        let mut second = TcpStream::connect(addr).await.unwrap();
        let third = tokio::join!(cap.accept(&listener, &stop), async {
            let refused = second.read(&mut [0; 1]).await;
            assert!(
                matches!(&refused, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
                "the second connection is reset, not left waiting: {refused:?}"
            );
            let line =
                format!(r#"connections_refused_total{{port="{}",reason="connection_limit"}} 1"#, addr.port());
            assert!(metrics.render().contains(&line), "{}", metrics.render());
            drop(first_place);
            TcpStream::connect(addr).await.unwrap()
        });

        let (admitted, client) = third;
        let (_, peer, _) = admitted.expect("a place was free again");
        assert_eq!(peer, client.local_addr().unwrap());
    }

    #[tokio::test]
    async fn accept_returns_none_once_stop_is_cancelled() {
        let listener = loopback().await;
        let stop = CancellationToken::new();
        stop.cancel();

        assert!(accept(&listener, &stop).await.is_none());
    }
}
