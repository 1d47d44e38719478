//! What service1 and service2 share: the wire API, request ids, JSON logs,
//! the error table, config helpers, shutdown, and the HTTP and gRPC layers
//! both servers put in front of their handlers.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod errors;
pub mod grpc;
mod head_errors;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod query;
pub mod request_id;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod unserved_streams;

/// Code generated from `protos/service1/app/grpc/service1.proto`.
pub mod proto {
    tonic::include_proto!("app.grpc");
}

pub use errors::{ApiError, ErrorKind};
pub use request_id::RequestId;
