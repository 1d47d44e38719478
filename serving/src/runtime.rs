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

#[cfg(test)]
mod tests {
    use tokio::runtime::{Handle, RuntimeFlavor};

    use super::*;

    /// The flavour and worker count of the runtime `block_on` builds for
    /// `worker_threads`.
    fn built_with(worker_threads: u16) -> (RuntimeFlavor, usize) {
        block_on(&RuntimeArgs { worker_threads }, async {
            let handle = Handle::current();
            (handle.runtime_flavor(), handle.metrics().num_workers())
        })
    }

    #[test]
    fn one_worker_thread_is_the_current_thread_runtime() {
        assert_eq!(built_with(1), (RuntimeFlavor::CurrentThread, 1));
    }

    #[test]
    fn more_worker_threads_are_a_multi_thread_runtime_with_that_many_workers() {
        assert_eq!(built_with(3), (RuntimeFlavor::MultiThread, 3));
    }

    #[test]
    fn timers_and_io_work_on_the_built_runtime() {
        let bound = block_on(&RuntimeArgs { worker_threads: 1 }, async {
            tokio::time::sleep(std::time::Duration::ZERO).await;
            tokio::net::TcpListener::bind("127.0.0.1:0").await.is_ok()
        });

        assert!(bound, "enable_all: the time and IO drivers are on");
    }
}
