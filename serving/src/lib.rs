//! How both services serve: binding and accepting, the HTTP and gRPC layers
//! every port has, TLS and its rotation, the admin port, and shutdown.
//!
//! It reads its settings from the `settings` crate, takes the wire contract
//! from `wire`, and records what happens through `observability`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod errors;
pub mod grpc;
pub mod h2_frames;
pub mod h2_guard;
pub mod http;
mod log_text;
pub mod runtime;
pub mod shutdown;
mod stalled;
pub mod tls;

pub use errors::ApiError;
