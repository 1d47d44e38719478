//! service2: the REST edge. `GET /api/v1/say-hello?name=...` asks service1
//! over gRPC to process the name and answers `"Hello, NAME!"`.
#![forbid(unsafe_code)]

/// This service's version, as its spans report it (`service.version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod config;
pub mod rest;
pub mod startup;
pub mod upstream;

pub use config::Config;
pub use startup::Application;
