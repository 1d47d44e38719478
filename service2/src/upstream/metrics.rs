//! How service2's calls to service1 fare, as Prometheus metrics: one value
//! per service2, built at start and handed to the pool and the call policy.
//!
//! The calls themselves are counted as a gRPC client counts them
//! (`grpc_client_*`, the names stock dashboards expect; see
//! `observability::metrics::GrpcMetrics`); the `service1_*` families say
//! what the outbound path did around them: attempts per replica, retries,
//! replicas ready.

use observability::metrics::{GrpcMetrics, Side};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};

use crate::upstream::Address;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: Address,
}

#[derive(Default)]
pub struct UpstreamMetrics {
    /// `grpc_client_*`: calls to service1, as gRPC counts them.
    pub grpc: GrpcMetrics,
    /// `service1_calls_total{endpoint}`: attempts, per replica.
    pub calls: Family<EndpointLabels, Counter>,
    pub retries: Counter,
    pub budget_exhausted: Counter,
    pub ready: Gauge,
    pub known: Gauge,
}

// === impl UpstreamMetrics ===

impl UpstreamMetrics {
    /// Adds these families to the service's registry, served on the admin
    /// port's `GET /metrics`.
    pub fn register(&self, registry: &observability::Metrics) {
        let r = registry;
        self.grpc.register(Side::Client, r);
        r.register("service1_calls", "Call attempts sent to each service1 replica", self.calls.clone());
        r.register("service1_retries", "Calls to service1 retried on another replica", self.retries.clone());
        r.register(
            "service1_retry_budget_exhausted",
            "Retries not made because the retry budget was spent",
            self.budget_exhausted.clone(),
        );
        r.register(
            "service1_endpoints_ready",
            "service1 replicas with a live connection",
            self.ready.clone(),
        );
        r.register("service1_endpoints_known", "service1 replicas known from the target", self.known.clone());
    }
}

// === impl Address ===

/// The `endpoint` label is the address as logs show it.
impl EncodeLabelValue for Address {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        write!(encoder, "{self}")
    }
}
