//! How every HTTP port serves (the REST ports and the admin port): the
//! layer around its routes ([`with_common_layers`]), binding and accepting
//! ([`bind_port`], [`ConnectionCap`]), and each connection's life from
//! accept to close ([`serve`]).
//!
//! - `layer`: request ids, access lines and metrics, admission (503) and
//!   the request timeout (504), panics as JSON 500s.
//! - `accept`: the listener's backlog, the accept loop, the connection cap.
//! - `connection`: hyper's settings per port, and the driver that closes a
//!   connection on its head-read, idle, write and closing timers.
//! - `tracking`: what a connection is doing (bytes, requests in flight, the
//!   head being read), which the driver's timers read.
//! - `head_errors`: JSON answers in place of hyper's own to bad heads.
//!
//! Sub-modules import each other in one direction only (`connection` →
//! `accept`, `head_errors`, `tracking`; `head_errors` → `tracking`), never
//! this module.

mod accept;
mod connection;
mod head_errors;
mod layer;
mod tracking;

pub use accept::{accept, bind, bind_port, ConnectionCap};
pub use connection::{serve, PortLimits};
pub use layer::{with_common_layers, with_common_layers_and_probes};
