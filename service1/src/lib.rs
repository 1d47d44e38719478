//! service1: upper-cases names. Serves `app.grpc.Service1/ProcessName` on
//! its gRPC port and `GET /api/v1/name` on its REST port.
#![forbid(unsafe_code)]

/// This service's version, as its spans report it (`service.version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod authz;
pub mod config;
pub mod grpc;
pub mod rest;
pub mod startup;

pub use config::Config;
pub use startup::Application;
