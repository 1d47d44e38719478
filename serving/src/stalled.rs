//! Responses a client does not take, on the REST and admin ports: an
//! HTTP/2 stream whose response body has waited longer than
//! `HTTP_WRITE_TIMEOUT` for the client's flow-control window is reset.
//!
//! Neither the request timeout nor the idle timeout sees such a stream: the
//! route has answered, and the request counts as in flight until its body
//! is sent. A client that opens its streams with a window of 0 would pin
//! every response it asked for, for as long as it liked (200 connections ×
//! 16 streams of `/metrics` took service1 from 9 to 148 MiB).
//!
//! hyper runs each HTTP/2 stream as a task of its own, through the
//! executor it is given; [`StreamExecutor`] gives each one a [`BodyClock`]
//! (a task-local, so the response body finds it without hyper in between)
//! and drops the stream once the clock says its body has waited too long.
//! Dropping it makes h2 reset the stream (`CANCEL`) and free what it
//! buffered. The body marks the clock: from each chunk it hands over until
//! hyper asks for the next, it is waiting for the client. hyper asks for the
//! next only once the window has room for the previous, except after the
//! last chunk, which hyper hands to h2 whole and then ends the task: so the
//! body holds back the last byte of its last chunk as a chunk of its own,
//! which keeps the task (and the clock) until the client has taken the rest.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

tokio::task_local! {
    static CLOCK: BodyClock;
}

/// Whether, and since when, one HTTP/2 stream's response body has been
/// waiting for the client to take a chunk.
#[derive(Clone)]
pub(crate) struct BodyClock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    base: Instant,
    /// Nanoseconds since `base` when the body began to wait, or `NOT_WAITING`.
    since: AtomicU64,
}

const NOT_WAITING: u64 = u64::MAX;

impl BodyClock {
    fn new() -> Self {
        Self { inner: Arc::new(ClockInner { base: Instant::now(), since: AtomicU64::new(NOT_WAITING) }) }
    }

    /// The clock of the HTTP/2 stream this task serves; `None` on HTTP/1,
    /// where a connection whose writes are blocked is closed instead.
    pub(crate) fn current() -> Option<Self> {
        CLOCK.try_with(Clone::clone).ok()
    }

    /// A chunk was handed over: from now on the client must take it.
    pub(crate) fn waiting(&self) {
        let now = self.inner.base.elapsed().as_nanos() as u64;
        self.inner.since.store(now, Ordering::Relaxed);
    }

    /// hyper asked for more: nothing is waiting for the client.
    pub(crate) fn moving(&self) {
        self.inner.since.store(NOT_WAITING, Ordering::Relaxed);
    }

    fn waiting_since(&self) -> Option<Instant> {
        match self.inner.since.load(Ordering::Relaxed) {
            NOT_WAITING => None,
            nanos => Some(self.inner.base + Duration::from_nanos(nanos)),
        }
    }
}

/// The executor hyper runs a port's HTTP/2 streams on: each stream with its
/// [`BodyClock`], dropped once its body has waited `timeout` for the client.
#[derive(Clone, Copy)]
pub(crate) struct StreamExecutor {
    pub(crate) timeout: Duration,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        let clock = BodyClock::new();
        let stalls = Stalls { stream, clock: clock.clone(), timeout: self.timeout, alarm: None };
        tokio::spawn(CLOCK.scope(clock, stalls));
    }
}

pin_project_lite::pin_project! {
    /// One stream's task, ended early if its body stalls.
    struct Stalls<F> {
        #[pin]
        stream: F,
        clock: BodyClock,
        timeout: Duration,
        // Armed only while the body waits, so a stream answered at once
        // costs no timer.
        alarm: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Stalls<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.stream.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        loop {
            let Some(since) = this.clock.waiting_since() else {
                *this.alarm = None;
                return Poll::Pending;
            };
            let due = since + *this.timeout;
            if Instant::now() >= due {
                // Debug only: a line per stream would let a client buy log
                // lines with empty windows.
                tracing::debug!(timeout = ?this.timeout, "resetting an HTTP/2 stream whose response the client did not take (HTTP_WRITE_TIMEOUT)");
                return Poll::Ready(());
            }
            let alarm = this.alarm.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            alarm.as_mut().reset(due);
            if alarm.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_body_waits_past_the_timeout_is_dropped_and_one_that_moves_is_not() {
        let timeout = Duration::from_secs(10);
        let started = Instant::now();
        // A body that hands over a chunk and is never asked for more.
        let clock = BodyClock::new();
        let body_clock = clock.clone();
        let stream = async move {
            body_clock.waiting();
            std::future::pending::<()>().await
        };
        Stalls { stream, clock, timeout, alarm: None }.await;
        assert_eq!(started.elapsed(), timeout);

        // A body the sender keeps asking: never dropped.
        let clock = BodyClock::new();
        let body_clock = clock.clone();
        let moving = async move {
            for _ in 0..5 {
                body_clock.waiting();
                tokio::time::sleep(timeout / 2).await;
                body_clock.moving();
            }
        };
        let started = Instant::now();
        Stalls { stream: moving, clock, timeout, alarm: None }.await;
        assert_eq!(started.elapsed(), timeout / 2 * 5, "it ran to its own end");
    }
}
