//! OpenTelemetry traces, exported over OTLP (gRPC or HTTP/protobuf, plain
//! or TLS) as the standard `OTEL_*` variables say, and W3C trace context
//! and baggage carried across the HTTP edge and the gRPC hop
//! (`OTEL_PROPAGATORS`, both by default). Baggage entries also become
//! attributes of every span of the trace (`baggage.<key>`), so a collector
//! sees what each service received.
//!
//! [`crate::otel_env`] reads the variables (refusing what it cannot
//! honour), [`crate::otlp_transport`] builds the exporter, and this module
//! puts the provider together. When spans are not exported (no endpoint,
//! `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`) there is no
//! OpenTelemetry layer at all, so spans cost what they cost for logs alone.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use opentelemetry::{
    baggage::BaggageExt,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{Span as _, TracerProvider as _},
    Context, KeyValue,
};
use opentelemetry_sdk::{
    error::{OTelSdkError, OTelSdkResult},
    propagation::{BaggagePropagator, TraceContextPropagator},
    resource::TelemetryResourceDetector,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
        SpanLimits, SpanProcessor,
    },
    Resource,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    logs::{self as logging, LogFormat, LogGuard},
    metrics::Metrics,
    otel_env::{self, Export, Otlp, Propagation, RootSampler, TraceSettings},
    otlp_transport, InitError,
};

/// Whether spans are exported, and carrying trace context and baggage
/// across hops when they are (as `OTEL_PROPAGATORS` says). When not,
/// nothing is extracted or injected.
#[derive(Debug, Clone, Copy)]
pub struct Traces {
    exporting: bool,
    propagation: Propagation,
}

impl Default for Traces {
    fn default() -> Self {
        Self { exporting: false, propagation: Propagation { trace_context: true, baggage: true } }
    }
}

/// Logs and traces for the life of the process. `shutdown` (or, failing
/// that, dropping it) flushes queued spans and log lines.
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

impl Telemetry {
    /// Flushes queued spans, then log lines; call it last, on the runtime.
    /// The SDK's flush blocks its caller until the exporter, which runs on
    /// the runtime, has sent the last batch: on a current-thread runtime a
    /// flush from the runtime's own thread would wait for a task that can
    /// never run (and lose the batch after its 5 s timeout). So it blocks a
    /// thread of the blocking pool instead.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "could not flush every span at shutdown"),
                Err(error) => tracing::warn!(%error, "the span flush at shutdown did not finish"),
            }
        }
    }
}

/// Without `shutdown` (a panic, an early exit), spans are still flushed, as
/// well as a thread outside the runtime can.
impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "could not flush every span at shutdown");
            }
        }
    }
}

/// Installs logging and, when the `OTEL_*` variables ask for it, span
/// export; `service` is the default `service.name`. Dropped log lines and
/// exported or dropped spans are counted in `metrics`. A variable that
/// cannot be honoured is an error naming it. Runs on the Tokio runtime:
/// exports run there.
pub fn init(service: Service, format: LogFormat, metrics: &Metrics) -> Result<Telemetry, InitError> {
    let mut settings = TraceSettings::from_env(service.name)?;
    identify(&mut settings.resource.attributes, service);
    let service = service.name;
    let provider = match &settings.export {
        Export::Otlp(otlp) => Some(tracer_provider(&settings, otlp, metrics.clone())?),
        Export::Off(_) => None,
    };
    let tracer = provider.as_ref().map(|p| p.tracer(service));
    let logs = logging::init(format, tracer)?;
    metrics.report_dropped_log_lines(logs.dropped_lines());
    // Accepted, and without effect: one line each, now that lines are written.
    for ignored in &settings.ignored {
        tracing::warn!(variable = %ignored.variable, "{ignored}");
    }
    let traces = Traces { exporting: provider.is_some(), propagation: settings.propagation };
    match &settings.export {
        Export::Otlp(otlp) => tracing::info!(
            protocol = %otlp.protocol,
            endpoint = %without_query(&otlp.endpoint.url),
            tls = tls_summary(otlp),
            compression = ?otlp.compression,
            "exporting traces over OTLP"
        ),
        Export::Off(reason) => tracing::info!(%reason, "traces are not exported"),
    }
    Ok(Telemetry { provider, logs, traces })
}

fn without_query(url: &http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or_default();
    let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("{scheme}://{authority}{}", url.path())
}

fn tls_summary(otlp: &Otlp) -> &'static str {
    match (otlp.endpoint.is_https(), &otlp.tls.certificate, &otlp.tls.client) {
        (false, _, _) => "none",
        (true, None, None) => "system roots",
        (true, Some(_), None) => "private CA",
        (true, None, Some(_)) => "system roots, client certificate",
        (true, Some(_), Some(_)) => "private CA, client certificate",
    }
}

/// A provider exporting in batches, off the request path, through a
/// bounded queue: when the collector is down or slow the queue fills, and
/// further spans are dropped and counted rather than held.
/// Which service this is, for the resource its spans carry.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The default `service.name` (`OTEL_SERVICE_NAME` wins).
    pub name: &'static str,
    /// `service.version`: the binary's own version, unless
    /// `OTEL_RESOURCE_ATTRIBUTES` says otherwise.
    pub version: &'static str,
}

/// Adds what tells this process's spans apart, where
/// `OTEL_RESOURCE_ATTRIBUTES` does not say: `service.version`, and
/// `service.instance.id`, a UUID per process (the chart gives the pod's
/// UID, with `k8s.pod.name`, `k8s.namespace.name` and `k8s.node.name`).
fn identify(attributes: &mut Vec<(String, String)>, service: Service) {
    let has = |attributes: &Vec<(String, String)>, key: &str| attributes.iter().any(|(k, _)| k == key);
    if !has(attributes, "service.version") {
        attributes.push(("service.version".into(), service.version.into()));
    }
    if !has(attributes, "service.instance.id") {
        attributes.push(("service.instance.id".into(), uuid::Uuid::new_v4().to_string()));
    }
}

fn tracer_provider(
    settings: &TraceSettings,
    otlp: &Otlp,
    metrics: Metrics,
) -> Result<SdkTracerProvider, InitError> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| InitError::Exporter("trace export must start on the Tokio runtime".into()))?;
    let exporter = otlp_transport::span_exporter(otlp).map_err(InitError::Exporter)?;
    let batch = settings.batch;
    let queued = Arc::new(AtomicUsize::new(0));
    let processor = BatchSpanProcessor::builder(OnRuntime {
        inner: Arc::new(exporter),
        runtime,
        timeout: batch.export_timeout,
        queued: queued.clone(),
        metrics: metrics.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(batch.max_queue_size)
            .with_max_export_batch_size(batch.max_export_batch_size)
            .with_scheduled_delay(batch.schedule_delay)
            .build(),
    )
    .build();
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            settings.resource.attributes.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(settings.resource.service_name.clone())
        .build();
    let limits = settings.limits;
    Ok(SdkTracerProvider::builder()
        // First, so that the attributes it adds are on what is queued.
        .with_span_processor(BaggageAttributes)
        .with_span_processor(BoundedQueue {
            inner: processor,
            queued,
            capacity: batch.max_queue_size,
            metrics,
        })
        .with_sampler(sampler(settings.sampler))
        .with_span_limits(SpanLimits {
            max_events_per_span: limits.span_events,
            max_attributes_per_span: limits.span_attributes,
            max_links_per_span: limits.span_links,
            max_attributes_per_event: limits.event_attributes,
            max_attributes_per_link: limits.link_attributes,
        })
        .with_resource(resource)
        .build())
}

fn sampler(settings: otel_env::Sampler) -> Sampler {
    let root = match settings.root {
        RootSampler::AlwaysOn => Sampler::AlwaysOn,
        RootSampler::AlwaysOff => Sampler::AlwaysOff,
        RootSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
    };
    if settings.parent_based {
        Sampler::ParentBased(Box::new(root))
    } else {
        root
    }
}

/// Puts each entry of the W3C baggage the span's trace carries on the span,
/// as the attribute `baggage.<key>`, as the contrib BaggageSpanProcessors of
/// other SDKs do (with a prefix, so that a caller's baggage cannot stand in
/// for an attribute these services set). The propagator bounds it: W3C
/// baggage is at most 8,192 bytes and 180 entries.
#[derive(Debug)]
struct BaggageAttributes;

impl SpanProcessor for BaggageAttributes {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        for (key, (value, _metadata)) in cx.baggage().iter() {
            span.set_attribute(KeyValue::new(format!("baggage.{}", key.as_str()), value.clone()));
        }
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
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

/// Runs each export on the service's Tokio runtime, bounded by
/// `OTEL_BSP_EXPORT_TIMEOUT`, and frees queue places as batches leave,
/// whether the export worked or not.
///
/// The SDK's batch processor calls exporters on a thread of its own, with
/// no runtime; the gRPC channel and the HTTP client need one (their
/// connections, timers and retries live on it).
#[derive(Debug)]
struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    queued: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let (inner, timeout) = (self.inner.clone(), self.timeout);
        let export =
            self.runtime.spawn(async move { tokio::time::timeout(timeout, inner.export(batch)).await });
        let result = match export.await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(OTelSdkError::Timeout(timeout)),
            Err(error) => Err(OTelSdkError::InternalFailure(format!("the export task ended: {error}"))),
        };
        self.queued.fetch_sub(spans, Ordering::Relaxed);
        if result.is_ok() {
            self.metrics.spans_exported(spans);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, as the provider is built: before any export holds a
        // second reference.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.set_resource(resource),
            None => tracing::warn!("the span exporter's resource could not be set"),
        }
    }
}

impl Traces {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Makes `span` continue the trace in `headers` (W3C `traceparent`), and
    /// carry its `baggage`, as far as `OTEL_PROPAGATORS` lets them in.
    pub fn continue_trace(&self, span: &tracing::Span, headers: &http::HeaderMap) {
        let Propagation { trace_context, baggage } = self.propagation;
        let trace_context = trace_context && headers.contains_key("traceparent");
        let baggage = baggage && headers.contains_key("baggage");
        if !self.exporting || !(trace_context || baggage) {
            return;
        }
        let extractor = HeaderExtractor(headers);
        let mut parent = Context::new();
        if trace_context {
            parent = TraceContextPropagator::new().extract_with_context(&parent, &extractor);
        }
        if baggage {
            parent = BaggagePropagator::new().extract_with_context(&parent, &extractor);
        }
        let _ = span.set_parent(parent);
    }

    /// Writes `span`'s context (`traceparent`) and the trace's baggage into
    /// outgoing gRPC metadata, as far as `OTEL_PROPAGATORS` lets them out.
    pub fn inject(&self, span: &tracing::Span, metadata: &mut tonic::metadata::MetadataMap) {
        if !self.exporting {
            return;
        }
        let cx = span.context();
        let mut injector = MetadataInjector(metadata);
        if self.propagation.trace_context {
            TraceContextPropagator::new().inject_context(&cx, &mut injector);
        }
        if self.propagation.baggage {
            BaggagePropagator::new().inject_context(&cx, &mut injector);
        }
    }
}

/// The most of a `tracestate` passed on: W3C Trace Context asks vendors to
/// propagate at least 512 characters of it, and at most 32 list-members.
const TRACESTATE_CHARS: usize = 512;
const TRACESTATE_MEMBERS: usize = 32;
/// List-members longer than this go first when the whole is too long.
const TRACESTATE_LONG_MEMBER: usize = 128;

/// `tracestate` cut to [`TRACESTATE_CHARS`] as W3C Trace Context says
/// (§3.3.1.5): whole list-members only, those over 128 characters removed
/// first, then from the end.
fn truncated_tracestate(value: &str) -> String {
    let mut members: Vec<&str> = value.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
    members.truncate(TRACESTATE_MEMBERS);
    let length = |members: &[&str]| members.iter().map(|m| m.len() + 1).sum::<usize>().saturating_sub(1);
    if length(&members) > TRACESTATE_CHARS {
        members.retain(|m| m.len() <= TRACESTATE_LONG_MEMBER);
        while length(&members) > TRACESTATE_CHARS {
            members.pop();
        }
    }
    members.join(",")
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
        // A caller's tracestate goes on to service1, so its size is the
        // caller's to choose: cut it as W3C Trace Context allows.
        let value = if key == "tracestate" { truncated_tracestate(&value) } else { value };
        if value.is_empty() {
            return;
        }
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
        if let (Ok(key), Ok(value)) = (key, value.parse()) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracestate_within_512_characters_passes_whole() {
        let value = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7";

        assert_eq!(truncated_tracestate(value), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    }

    #[test]
    fn a_long_tracestate_loses_its_long_members_first_then_members_from_the_end() {
        let long = format!("big={}", "x".repeat(200));
        let small: Vec<String> = (0..40).map(|i| format!("v{i:02}=0123456789")).collect();
        let value = format!("{},{long},{}", small[..2].join(","), small[2..].join(","));

        let cut = truncated_tracestate(&value);

        assert!(cut.len() <= 512, "{} characters", cut.len());
        assert!(!cut.contains("big="), "the long member goes first");
        assert!(cut.starts_with("v00=0123456789,v01=0123456789,v02="), "{cut}");
        assert!(cut.split(',').all(|m| m.len() == 14), "whole members only: {cut}");
    }

    #[test]
    fn a_tracestate_of_kilobytes_in_one_member_is_dropped() {
        assert_eq!(truncated_tracestate(&format!("k={}", "v".repeat(16_000))), "");
    }
}
