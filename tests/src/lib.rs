//! Helpers for the system tests: real servers on 127.0.0.1 port 0, a fake
//! service1 that answers as told, and captured log lines.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod collector;
pub mod dns;
pub mod fake;
pub mod grpc_client;
pub mod logs;
pub mod pki;
pub mod raw_h2;
pub mod secret_volume;
pub mod spawn;

pub use fake::{Behaviour, FakeService1, Hold};
pub use logs::logs;
pub use pki::Pki;
pub use spawn::{spawn_service1, spawn_service2, spawn_service2_with, Running};
