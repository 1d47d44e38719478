//! What both binaries share: the generated code, the settings they read
//! from the environment (the same names as ours, so `make bench` starts
//! both pairs alike), logging and the runtime.

pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
    pub use app::grpc::*;
}

use std::{future::Future, net::SocketAddr};

/// An environment variable, or `default`.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `BIND_ADDR` and the port in `port_var`.
pub fn addr(port_var: &str, default_port: &str) -> SocketAddr {
    format!("{}:{}", env("BIND_ADDR", "127.0.0.1"), env(port_var, default_port))
        .parse()
        .expect("a valid address")
}

/// Reads a PEM file named by `var`.
pub async fn pem(var: &str) -> Vec<u8> {
    let path = std::env::var(var).unwrap_or_else(|_| panic!("{var} is required"));
    tokio::fs::read(&path).await.unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// JSON log lines on stdout through tracing-appender's non-blocking writer,
/// as the tracing docs show; keep the guard for the life of the process.
pub fn init_logs() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    tracing_subscriber::fmt().json().with_writer(writer).init();
    guard
}

/// Runs `main` on a multi-threaded runtime with `WORKER_THREADS` workers
/// (default 1, as ours), so both pairs get the same threads.
pub fn run<F: Future<Output = ()>>(main: F) {
    let threads = env("WORKER_THREADS", "1").parse().expect("WORKER_THREADS is a number");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
        .block_on(main)
}
