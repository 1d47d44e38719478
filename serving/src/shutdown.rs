//! Stopping on SIGTERM or SIGINT, and the grace period for in-flight work.

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT. Kubernetes sends
/// SIGTERM to start a graceful shutdown; SIGINT is Ctrl-C in a terminal.
///
/// The handlers are installed before this returns, not when the task that
/// waits for them first runs: on the current-thread runtime that task runs
/// only once the caller yields, and a SIGTERM before then would kill the
/// process with the default action, without draining.
pub fn on_signal() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = CancellationToken::new();
    let token = stop.clone();
    // Without handlers the default action (exit) still applies.
    if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        tokio::spawn(async move {
            let signal = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal, "shutdown requested, draining in-flight requests");
            token.cancel();
        });
    }
    stop
}

/// Runs `serve` until it ends; once `stop` is cancelled, gives it `grace`
/// more to drain. `None` means the grace period ran out first.
pub async fn drain_within<F: Future>(
    stop: &CancellationToken,
    grace: Duration,
    serve: F,
) -> Option<F::Output> {
    tokio::pin!(serve);
    tokio::select! {
        output = &mut serve => return Some(output),
        _ = stop.cancelled() => {}
    }
    let drained = tokio::time::timeout(grace, serve).await.ok();
    if drained.is_none() {
        tracing::warn!(grace = ?grace, "grace period ran out; abandoning unfinished requests");
    }
    drained
}

/// The process exit code for how a service ended: 0 after a clean stop,
/// 1 with the reason logged and printed otherwise.
pub fn exit_code(service: &str, result: std::io::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => {
            tracing::info!("{service} stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "{service} failed");
            eprintln!("error: {service}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Kubernetes takes a pod out of Services and DNS only after it has seen it
/// not ready, so stopping at once would refuse calls still being routed to
/// it. After `stop`, this reports draining (NOT_SERVING, `/readyz` 503),
/// waits `drain_delay`, and only then cancels the token it returns, which
/// the listeners stop on.
pub fn drain_then_stop(
    stop: CancellationToken,
    health: crate::admin::Health,
    drain_delay: Duration,
) -> CancellationToken {
    let listeners = CancellationToken::new();
    let stop_listeners = listeners.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        health.draining().await;
        tracing::info!(?drain_delay, "reporting NOT_SERVING before closing the listeners");
        tokio::time::sleep(drain_delay).await;
        health.close_watches();
        stop_listeners.cancel();
    });
    listeners
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use serde_json::json;
    use tokio::time::{sleep, timeout};

    use super::*;
    use crate::admin::{Health, Phase};

    const GRACE: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn drain_within_returns_what_serving_returns_when_it_ends_before_any_stop() {
        let stop = CancellationToken::new();

        assert_eq!(drain_within(&stop, GRACE, async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_within_returns_what_serving_returns_when_it_drains_within_the_grace_period() {
        let stop = CancellationToken::new();
        let serve = {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                sleep(GRACE - Duration::from_secs(1)).await;
                7
            }
        };
        stop.cancel();

        assert_eq!(drain_within(&stop, GRACE, serve).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_within_returns_none_when_the_grace_period_runs_out() {
        let stop = CancellationToken::new();
        stop.cancel();

        assert_eq!(drain_within(&stop, GRACE, pending::<u8>()).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_then_stop_reports_draining_and_closes_the_listeners_only_after_the_drain_delay() {
        let health = Health::new(&[], 1, || json!({})).await;
        health.serving().await;
        let stop = CancellationToken::new();
        let listeners = drain_then_stop(stop.clone(), health.clone(), GRACE);

        stop.cancel();

        let early = timeout(GRACE - Duration::from_secs(1), listeners.cancelled()).await;
        assert!(early.is_err(), "the listeners stay open through the drain delay");
        assert_eq!(health.phase(), Phase::Draining);
        listeners.cancelled().await;
    }
}
