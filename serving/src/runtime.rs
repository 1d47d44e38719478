//! The async runtime a service runs on, built from its settings.

use settings::{exit_with_config_error, RuntimeArgs};

/// Runs `main` to completion on a runtime with the configured threads.
///
/// One thread (the default) is tokio's current-thread runtime, with
/// `main` and every task on the calling thread: the multi-thread one with
/// one worker runs a woken task at once (its LIFO slot), so a connection's
/// task flushed after each response that woke it instead of once for all
/// the responses ready, and it pays for work stealing it cannot use.
pub fn block_on<F: std::future::Future>(args: &RuntimeArgs, main: F) -> F::Output {
    let threads: usize = args.worker_threads.into();
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with_config_error(format!("cannot start the runtime: {e}")));
    runtime.block_on(main)
}
