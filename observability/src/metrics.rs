//! Prometheus metrics, served as text on the admin port's `GET /metrics`.
//!
//! One [`Metrics`] per service, made where the service is built and handed
//! to the layers that record (clones share it). Services add their own
//! families with [`Metrics::register`], and values that are cheaper to read
//! than to keep current (ready replicas, process memory) with
//! [`Metrics::on_scrape`].
//!
//! Every label value comes from a closed set, never from what a client
//! sent: a method outside the standard ones is `other` ([`method_label`]),
//! a path no route matches is [`UNMATCHED_ROUTE`], a gRPC method the server
//! does not serve is [`GrpcMethod::UNKNOWN`]. Otherwise each new value a
//! client makes up would add a series that lives as long as the process.
//!
//! gRPC calls are counted in [`GrpcMetrics`], with the names and labels
//! stock dashboards expect: every service has the server side
//! ([`Metrics::grpc_server`]); a service that makes calls registers a
//! client side of its own ([`GrpcMetrics::register`]).

mod grpc;

pub use grpc::{code_label, GrpcCall, GrpcMethod, GrpcMetrics, GrpcType, MethodMetrics, Side};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, MetricType},
    registry::{Metric, Registry},
};

/// Latency buckets in seconds, 100 µs to 10 s: our calls take well under a
/// millisecond, deadlines are seconds.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// The listener's local port number: one value per listener.
    pub port: String,
    /// One of [`REFUSED_CONNECTION_LIMIT`] and [`REFUSED_HANDSHAKE_LIMIT`].
    pub reason: String,
}

/// The `reason` of a connection refused because its port held as many
/// connections as it may.
pub const REFUSED_CONNECTION_LIMIT: &str = "connection_limit";
/// The `reason` of a connection refused because its port was running as
/// many TLS handshakes as it may.
pub const REFUSED_HANDSHAKE_LIMIT: &str = "handshake_limit";

/// One series of `connections_refused_total` (see
/// [`Metrics::connections_refused`]).
#[derive(Clone, Debug)]
pub struct ConnectionsRefused(Counter);

impl ConnectionsRefused {
    pub fn inc(&self) {
        self.0.inc();
    }
}

/// The `route` of requests no route matched: one value, whatever the path.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";
/// The `route` of requests whose head could not be parsed at all.
pub const UNPARSED_ROUTE: &str = "<unparsed>";

/// The `method` label: one of the methods HTTP defines (RFC 9110, and
/// PATCH), else `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// What TLS material reports: when the certificate in use expires (Unix
/// time), and how many replacements were applied and refused.
#[derive(Debug, Clone, Copy)]
pub struct TlsFigures {
    pub not_after: i64,
    pub reloads: u64,
    pub reload_failures: u64,
}

/// The series of one HTTP route, by method label and status. The maps on
/// the request path hash with foldhash, which costs less than SipHash (the
/// README's performance section has the figure); the keys are route
/// templates and label values, not what a client sent, so they need no
/// defence against chosen collisions.
type HttpSeries = HashMap<(&'static str, u16), (Counter, Histogram), foldhash::fast::RandomState>;
type HttpRoutes = HashMap<String, HttpSeries, foldhash::fast::RandomState>;
type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// A service's metrics: its registry, and the families the serving layers
/// record. Cloning it is cheap and shares them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// What every clone of a `Metrics` shares.
struct Inner {
    registry: Mutex<Registry>,
    /// Handles to series already created, so recording on the request path
    /// is a map lookup under a read lock, with no label strings built.
    http_series: RwLock<HttpRoutes>,
    scrape_hooks: Mutex<Vec<ScrapeHook>>,
    families: Families,
}

/// The families every service has.
struct Families {
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    connections_refused: Family<RefusedLabels, Counter>,
    grpc_server: GrpcMetrics,
    tls_not_after: Gauge,
    tls_reloads: Counter,
    tls_reload_failures: Counter,
    log_lines_dropped: Gauge,
    spans_dropped: Counter,
    spans_exported: Counter,
    process: ProcessStats,
}

fn histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

// === impl Families ===

impl Families {
    fn new() -> Self {
        Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(histogram),
            connections_refused: Family::default(),
            grpc_server: GrpcMetrics::default(),
            tls_not_after: Gauge::default(),
            tls_reloads: Counter::default(),
            tls_reload_failures: Counter::default(),
            log_lines_dropped: Gauge::default(),
            spans_dropped: Counter::default(),
            spans_exported: Counter::default(),
            process: ProcessStats::default(),
        }
    }

    fn register(&self, r: &mut Registry) {
        let f = self;
        r.register(
            "http_server_requests",
            "HTTP requests served, by route and status",
            f.http_requests.clone(),
        );
        r.register("http_server_request_duration_seconds", "HTTP request latency", f.http_duration.clone());
        r.register(
            "connections_refused",
            "Connections closed at accept because the port was at a limit, by port and limit",
            f.connections_refused.clone(),
        );
        f.grpc_server.register_in(Side::Server, r);
        r.register(
            "tls_certificate_not_after_seconds",
            "notAfter of the certificate in use, Unix time (0 with TLS off)",
            f.tls_not_after.clone(),
        );
        r.register("tls_reloads", "Certificate replacements applied", f.tls_reloads.clone());
        r.register(
            "tls_reload_failures",
            "Certificate replacements refused (the previous material stays in use)",
            f.tls_reload_failures.clone(),
        );
        r.register(
            "log_lines_dropped",
            "Log lines dropped because stdout could not keep up",
            f.log_lines_dropped.clone(),
        );
        r.register(
            "otel_spans_dropped",
            "Spans dropped because the export queue was full (collector down or slow)",
            f.spans_dropped.clone(),
        );
        r.register("otel_spans_exported", "Spans handed to the OTLP exporter", f.spans_exported.clone());
        f.process.register(r);
    }
}

// === impl Metrics ===

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the families every service has.
    pub fn new() -> Self {
        let families = Families::new();
        let mut registry = Registry::default();
        families.register(&mut registry);
        let inner = Inner {
            registry: Mutex::new(registry),
            http_series: RwLock::default(),
            scrape_hooks: Mutex::new(Vec::new()),
            families,
        };
        Self { inner: Arc::new(inner) }
    }

    /// Adds a service's own metric family.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock_registry().register(name, help, metric);
    }

    /// Runs `hook` before each scrape, to bring gauges up to date.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        let mut hooks = self.inner.scrape_hooks.lock().unwrap_or_else(|p| p.into_inner());
        hooks.push(Box::new(hook));
    }

    /// Reports `dropped` log lines as `log_lines_dropped` at each scrape.
    pub fn report_dropped_log_lines(&self, dropped: crate::logs::DroppedLines) {
        let gauge = self.inner.families.log_lines_dropped.clone();
        self.on_scrape(move || {
            gauge.set(dropped.count() as i64);
        });
    }

    /// Reports the TLS material's figures, as `read` gives them, at each
    /// scrape (`None` once the material is gone).
    pub fn report_tls(&self, read: impl Fn() -> Option<TlsFigures> + Send + Sync + 'static) {
        let (not_after, reloads, failures) = {
            let f = &self.inner.families;
            (f.tls_not_after.clone(), f.tls_reloads.clone(), f.tls_reload_failures.clone())
        };
        self.on_scrape(move || {
            let Some(figures) = read() else { return };
            not_after.set(figures.not_after);
            // Counters only go up: add what happened since the last scrape.
            reloads.inc_by(figures.reloads.saturating_sub(reloads.get()));
            failures.inc_by(figures.reload_failures.saturating_sub(failures.get()));
        });
    }

    /// A span was dropped because the export queue was full.
    pub fn span_dropped(&self) {
        self.inner.families.spans_dropped.inc();
    }

    /// `spans` spans were handed to the exporter.
    pub fn spans_exported(&self, spans: usize) {
        self.inner.families.spans_exported.inc_by(spans as u64);
    }

    /// Counts one HTTP request and its latency. `method` is a
    /// [`method_label`], `route` a route template or [`UNMATCHED_ROUTE`].
    pub fn record_http(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let key = (method, status);
        let read = self.inner.http_series.read().unwrap_or_else(|p| p.into_inner());
        if let Some((count, latency)) = read.get(route).and_then(|r| r.get(&key)) {
            count.inc();
            latency.observe(seconds);
            return;
        }
        drop(read);
        let (method, route) = (method.to_owned(), route.to_owned());
        let count = self
            .inner
            .families
            .http_requests
            .get_or_create(&HttpLabels { method: method.clone(), route: route.clone(), status })
            .clone();
        let latency = self
            .inner
            .families
            .http_duration
            .get_or_create(&RouteLabels { method, route: route.clone() })
            .clone();
        count.inc();
        latency.observe(seconds);
        let mut write = self.inner.http_series.write().unwrap_or_else(|p| p.into_inner());
        write.entry(route).or_default().insert(key, (count, latency));
    }

    /// The counter of connections refused on local `port` for `reason`
    /// ([`REFUSED_CONNECTION_LIMIT`] or [`REFUSED_HANDSHAKE_LIMIT`]), for
    /// the accept loop to keep and bump.
    pub fn connections_refused(&self, port: u16, reason: &'static str) -> ConnectionsRefused {
        let labels = RefusedLabels { port: port.to_string(), reason: reason.to_owned() };
        ConnectionsRefused(self.inner.families.connections_refused.get_or_create(&labels).clone())
    }

    /// The `grpc_server_*` families: what a gRPC server records into,
    /// through the [`MethodMetrics`] of each method it serves.
    pub fn grpc_server(&self) -> &GrpcMetrics {
        &self.inner.families.grpc_server
    }

    fn lock_registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus (OpenMetrics) text of every metric, fresh.
    pub fn render(&self) -> String {
        for hook in self.inner.scrape_hooks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            hook();
        }
        self.inner.families.process.read();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.lock_registry());
        text
    }
}

/// The process's own figures, read from /proc at each scrape.
#[derive(Default)]
struct ProcessStats {
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    resident_bytes: Gauge,
    open_fds: Gauge,
    start_time: Gauge,
}

impl ProcessStats {
    fn register(&self, r: &mut Registry) {
        r.register(
            "process_cpu_seconds",
            "CPU time used by this process",
            ProcessGauge(self.cpu_seconds.clone()),
        );
        r.register("process_resident_memory_bytes", "Resident memory", self.resident_bytes.clone());
        r.register("process_open_fds", "Open file descriptors", self.open_fds.clone());
        r.register("process_start_time_seconds", "Start time, Unix time", self.start_time.clone());
    }

    fn read(&self) {
        // /proc counts CPU time and start time in clock ticks, and memory
        // in pages; both sizes are the kernel's to say (sysconf).
        let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
        let page_size = rustix::param::page_size() as i64;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which may contain spaces.
            let fields: Vec<&str> =
                stat.rsplit_once(") ").map(|(_, f)| f.split(' ').collect()).unwrap_or_default();
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            self.cpu_seconds.set((field(14) + field(15)) / ticks_per_second);
            self.resident_bytes.set(field(24) as i64 * page_size);
            if let Some(boot) = boot_time() {
                self.start_time.set(boot + (field(22) / ticks_per_second) as i64);
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(entries.count() as i64);
        }
    }
}

fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// CPU seconds only ever grow, so they are exposed as a counter.
#[derive(Debug)]
struct ProcessGauge(Gauge<f64, std::sync::atomic::AtomicU64>);

impl prometheus_client::encoding::EncodeMetric for ProcessGauge {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&self.0.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_includes_recorded_values_and_process_metrics() {
        let metrics = Metrics::new();
        metrics.record_http("GET", "/unit", 200, 0.001);

        let text = metrics.render();

        assert!(
            text.contains(r#"http_server_requests_total{method="GET",route="/unit",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
    }

    #[test]
    fn refused_connections_are_counted_by_port_and_reason() {
        let metrics = Metrics::new();
        metrics.connections_refused(8080, REFUSED_CONNECTION_LIMIT).inc();
        metrics.connections_refused(8443, REFUSED_HANDSHAKE_LIMIT).inc();
        metrics.connections_refused(8443, REFUSED_HANDSHAKE_LIMIT).inc();

        let text = metrics.render();

        let line = r#"connections_refused_total{port="8080",reason="connection_limit"} 1"#;
        assert!(text.contains(line), "{text}");
        let line = r#"connections_refused_total{port="8443",reason="handshake_limit"} 2"#;
        assert!(text.contains(line), "{text}");
    }

    #[test]
    fn only_the_standard_methods_are_label_values() {
        let made_up = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        assert_eq!(method_label(&made_up), "other");
    }
}
