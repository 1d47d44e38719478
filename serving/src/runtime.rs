//! The async runtime a service runs on, built from its settings.

use settings::{exit_with_config_error, RuntimeArgs};

/// Runs `main` to completion on a runtime with the configured threads.
pub fn block_on<F: std::future::Future>(args: &RuntimeArgs, main: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads.into())
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with_config_error(format!("cannot start the runtime: {e}")));
    runtime.block_on(main)
}
