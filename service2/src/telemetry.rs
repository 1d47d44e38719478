//! service2's own metrics: how its calls to service1 fare.

use std::sync::LazyLock;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

pub struct UpstreamMetrics {
    pub calls: Family<EndpointLabels, Counter>,
    pub retries: Counter,
    pub budget_exhausted: Counter,
    pub ready: Gauge,
    pub known: Gauge,
}

/// Shared by every service2 instance in the process (until the outbound
/// path takes its metrics as a value); each registers them in its own
/// registry with [`register`].
pub static METRICS: LazyLock<UpstreamMetrics> = LazyLock::new(|| UpstreamMetrics {
    calls: Family::default(),
    retries: Counter::default(),
    budget_exhausted: Counter::default(),
    ready: Gauge::default(),
    known: Gauge::default(),
});

/// Adds service2's own families to `registry`.
pub fn register(registry: &observability::Metrics) {
    let m = &*METRICS;
    registry.register("service1_calls", "Call attempts sent to each service1 replica", m.calls.clone());
    registry.register("service1_retries", "Calls to service1 retried on another replica", m.retries.clone());
    registry.register(
        "service1_retry_budget_exhausted",
        "Retries not made because the retry budget was spent",
        m.budget_exhausted.clone(),
    );
    registry.register(
        "service1_endpoints_ready",
        "service1 replicas with a live connection",
        m.ready.clone(),
    );
    registry.register("service1_endpoints_known", "service1 replicas known from the target", m.known.clone());
}
