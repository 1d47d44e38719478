//! service2's outbound path: how a REST request's call reaches service1.
//!
//! - [`discovery`]: which replicas there are (`SERVICE1_CHANNEL`, DNS and
//!   the rules for believing it);
//! - [`endpoint`]: one replica, its readiness and reconnection, which
//!   notices its own transport failures (and a peer that stops answering
//!   keepalive pings) and says whether it is ready;
//! - [`h2_client`]: the gRPC client on one HTTP/2 connection (leases,
//!   unary calls only, and the response body);
//! - [`header_limit`]: the largest header list a replica accepts, and
//!   requests over it refused before they are sent;
//! - [`keepalive`]: the task that drives a connection and pings a quiet
//!   replica;
//! - [`latency`]: each replica's latency estimate (PeakEWMA);
//! - [`outlier`]: ejecting a replica that keeps failing, and its return;
//! - [`selection`]: power of two choices among the ready endpoints, on
//!   latency times calls in flight;
//! - [`pool`]: the endpoints discovery published, and a ready one per call;
//! - [`call`]: the call policy (deadline, attempt timeout, retries,
//!   budget, error mapping);
//! - [`metrics`]: what all of that counts, one value per service2.
//!
//! A call meets them in the order [`call`] reads: the pool hands it a lease
//! on a ready endpoint chosen by selection; a transport failure during the
//! call takes that endpoint out of the ready set there and then, and the
//! call policy alone decides whether to try again elsewhere.

mod address;
pub mod call;
pub mod discovery;
pub mod endpoint;
pub mod h2_client;
pub mod header_limit;
pub mod keepalive;
pub mod latency;
pub mod metrics;
pub mod outlier;
pub mod pool;
pub mod selection;

pub use self::{
    address::Address,
    call::{CallPolicy, Service1Client},
    discovery::{Refresh, Resolver, Target},
    endpoint::Dialer,
    keepalive::Keepalive,
    metrics::UpstreamMetrics,
    outlier::EjectionPolicy,
    pool::Pool,
};
