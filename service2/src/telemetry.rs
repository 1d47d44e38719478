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

/// Registered once per process, however many service2 instances run in it.
pub static METRICS: LazyLock<UpstreamMetrics> = LazyLock::new(|| {
    let metrics = UpstreamMetrics {
        calls: Family::default(),
        retries: Counter::default(),
        budget_exhausted: Counter::default(),
        ready: Gauge::default(),
        known: Gauge::default(),
    };
    use observability::metrics::register;
    register("service1_calls", "Call attempts sent to each service1 replica", metrics.calls.clone());
    register("service1_retries", "Calls to service1 retried on another replica", metrics.retries.clone());
    register(
        "service1_retry_budget_exhausted",
        "Retries not made because the retry budget was spent",
        metrics.budget_exhausted.clone(),
    );
    register("service1_endpoints_ready", "service1 replicas with a live connection", metrics.ready.clone());
    register("service1_endpoints_known", "service1 replicas known from the target", metrics.known.clone());
    metrics
});
