//! Stopping on SIGTERM or SIGINT, and the grace period for in-flight work.

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT. Kubernetes sends
/// SIGTERM to start a graceful shutdown; SIGINT is Ctrl-C in a terminal.
pub fn on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let signal = signal().await;
        tracing::info!(signal, "shutdown requested, draining in-flight requests");
        token.cancel();
    });
    stop
}

async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without handlers the default action (exit) still applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
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
