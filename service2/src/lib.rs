//! service2: the REST edge. `GET /api/v1/say-hello?name=...` asks service1
//! over gRPC to process the name and answers `"Hello, NAME!"`.
#![forbid(unsafe_code)]

pub mod balance;
pub mod config;
pub mod resolve;
pub mod rest;
pub mod startup;
pub mod target;
pub mod telemetry;
pub mod upstream;

pub use config::Config;
pub use startup::Application;
