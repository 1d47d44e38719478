//! OpenTelemetry traces, exported over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context carried
//! across the HTTP edge and the gRPC hop.
//!
//! The SDK reads the standard variables itself: `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`.
//! With no endpoint there is no OpenTelemetry layer at all, so spans cost
//! what they cost for logs alone.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TracerProvider as _,
    Context,
};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor},
    Resource,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    logs::{self as logging, LogFormat, LogGuard},
    metrics::Metrics,
    InitError,
};

/// Whether spans are exported, and carrying trace context across hops when
/// they are. When not, nothing is extracted or injected.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traces {
    exporting: bool,
}

/// Logs and traces for the life of the process. Dropping it flushes
/// queued spans and log lines.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    logs: LogGuard,
    traces: Traces,
}

impl Telemetry {
    pub fn traces(&self) -> Traces {
        self.traces
    }

    pub fn logs(&self) -> &LogGuard {
        &self.logs
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "could not flush every span at shutdown");
            }
        }
    }
}

/// Installs logging and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, span
/// export; `service` is the default `service.name`. Dropped log lines and
/// exported or dropped spans are counted in `metrics`.
pub fn init(service: &'static str, format: LogFormat, metrics: &Metrics) -> Result<Telemetry, InitError> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    let provider =
        if endpoint.trim().is_empty() { None } else { Some(tracer_provider(service, metrics.clone())?) };
    let tracer = provider.as_ref().map(|p| p.tracer(service));
    let logs = logging::init(format, tracer)?;
    metrics.report_dropped_log_lines(logs.dropped_lines());
    let traces = Traces { exporting: provider.is_some() };
    if traces.exporting {
        tracing::info!(endpoint = %endpoint.trim(), "exporting traces over OTLP/gRPC");
    }
    Ok(Telemetry { provider, logs, traces })
}

/// A provider exporting in batches, off the request path, through a
/// bounded queue: when the collector is down or slow the queue fills, and
/// further spans are dropped and counted rather than held.
pub fn tracer_provider(service: &'static str, metrics: Metrics) -> Result<SdkTracerProvider, InitError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| InitError::Exporter(e.to_string()))?;
    let capacity = std::env::var("OTEL_BSP_MAX_QUEUE_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let queued = Arc::new(AtomicUsize::new(0));
    let batch = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        queued: queued.clone(),
        metrics: metrics.clone(),
    })
    .build();
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BoundedQueue { inner: batch, queued, capacity, metrics })
        .with_resource(resource.build())
        .build())
}

/// Admits a span only while fewer than `capacity` wait for export, and
/// counts the ones it turns away. (The SDK's processor drops too, but only
/// logs the total at shutdown.)
#[derive(Debug)]
struct BoundedQueue<P> {
    inner: P,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Metrics,
}

impl<P: SpanProcessor> SpanProcessor for BoundedQueue<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx)
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.metrics.span_dropped();
            return;
        }
        self.inner.on_end(span)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// Frees queue places as batches leave, whether the export worked or not.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.queued.fetch_sub(spans, Ordering::Relaxed);
        if result.is_ok() {
            self.metrics.spans_exported(spans);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

impl Traces {
    /// Whether spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Makes `span` continue the trace in `headers` (W3C `traceparent`), if any.
    pub fn continue_trace(&self, span: &tracing::Span, headers: &http::HeaderMap) {
        if !self.exporting || !headers.contains_key("traceparent") {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let _ = span.set_parent(parent);
    }

    /// Writes `span`'s context into outgoing gRPC metadata (`traceparent`).
    pub fn inject(&self, span: &tracing::Span, metadata: &mut tonic::metadata::MetadataMap) {
        if !self.exporting {
            return;
        }
        TraceContextPropagator::new().inject_context(&span.context(), &mut MetadataInjector(metadata));
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
        if let (Ok(key), Ok(value)) = (key, value.parse()) {
            self.0.insert(key, value);
        }
    }
}
