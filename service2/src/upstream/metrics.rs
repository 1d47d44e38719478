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

use crate::upstream::{outlier::Reason, Address};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: Address,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    reason: &'static str,
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
    /// Attempts given up on after `SERVICE1_ATTEMPT_TIMEOUT`.
    pub attempt_timeouts: Counter,
    /// `service1_ejections_total{reason}`.
    ejections: Family<ReasonLabels, Counter>,
    /// Replicas that answered on probation after an ejection.
    pub returns: Counter,
    pub ejected: Gauge,
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
        r.register(
            "service1_attempt_timeouts",
            "Call attempts given up on after SERVICE1_ATTEMPT_TIMEOUT (retried elsewhere when time and budget allow)",
            self.attempt_timeouts.clone(),
        );
        r.register(
            "service1_ejections",
            "service1 replicas ejected from selection, by reason (failures in a row, or an unanswered keepalive ping)",
            self.ejections.clone(),
        );
        r.register(
            "service1_ejection_returns",
            "Ejected service1 replicas that answered on probation and take calls again",
            self.returns.clone(),
        );
        r.register(
            "service1_endpoints_ejected",
            "service1 replicas ejected from selection now",
            self.ejected.clone(),
        );
    }

    /// The `service1_ejections_total` series of `reason`.
    pub fn ejection(&self, reason: Reason) -> Counter {
        self.ejections.get_or_create(&ReasonLabels { reason: reason.as_str() }).clone()
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
