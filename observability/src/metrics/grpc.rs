//! gRPC call metrics with the names and labels that go-grpc-prometheus
//! (grpc-ecosystem) made the de-facto set, so stock Grafana dashboards and
//! alerts work unchanged:
//!
//! - `grpc_{server,client}_started_total`: calls started;
//! - `grpc_{server,client}_handled_total`: calls finished, with `grpc_code`;
//! - `grpc_{server,client}_handling_seconds`: latency, a histogram;
//! - `grpc_{server,client}_msg_received_total`, `..._msg_sent_total`:
//!   messages, as the code that records them says it counts them.
//!
//! Labels: `grpc_type` ([`GrpcType`]), `grpc_service` (`app.grpc.Service1`),
//! `grpc_method` (the bare method name, `ProcessName`), and on the handled
//! counter `grpc_code`: the code's name as grpc-go's `Code.String()`
//! writes it, `OK`, `Canceled`, `DeadlineExceeded`... ([`code_label`]).
//! Every value is a `&'static str` from a [`GrpcMethod`] the service
//! declares, or [`GrpcMethod::UNKNOWN`].
//!
//! Series for a method are made once, by [`GrpcMetrics::method`] when the
//! service starts, at zero: `handled` for every code too, as
//! go-grpc-prometheus does, so that `rate()` sees a method's first error
//! (Prometheus takes a series that appears at 1 for one that was always 1).
//! After that, counting a call touches no lock and builds no label.

use std::sync::Arc;

// tokio's clock, which is std's unless a test pauses it: then a call's
// deadline and latency follow the paused clock like the code timing it.
use tokio::time::Instant;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tonic::Code;

/// The `grpc_type` label: whether each side sends one message or a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

/// One gRPC method, as its metrics name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrpcMethod {
    /// The fully qualified service, `app.grpc.Service1`.
    pub service: &'static str,
    /// The bare method name, `ProcessName`.
    pub method: &'static str,
    pub kind: GrpcType,
}

/// Which side of a call the metrics are about: the metric name prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `grpc_server_*`: calls this service answered.
    Server,
    /// `grpc_client_*`: calls this service made.
    Client,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

/// The five families of one side. Cloning shares them.
#[derive(Clone, Debug)]
pub struct GrpcMetrics {
    started: Family<MethodLabels, Counter>,
    handled: Family<CodeLabels, Counter>,
    handling: Family<MethodLabels, Histogram>,
    received: Family<MethodLabels, Counter>,
    sent: Family<MethodLabels, Counter>,
}

/// The series of one method: made once, then shared by every call.
#[derive(Clone, Debug)]
pub struct MethodMetrics {
    inner: Arc<MethodSeries>,
}

#[derive(Debug)]
struct MethodSeries {
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: Histogram,
    /// `handled` by code, indexed by code number (tonic's `Code as usize`).
    handled: [Counter; CODES.len()],
}

/// One call: counted as started when made, and as handled, with its
/// latency, by [`GrpcCall::handled`]. One dropped before that ended
/// without a status: `DeadlineExceeded` if its deadline
/// ([`GrpcCall::with_deadline`]) had passed, since that is what ended it,
/// else `Canceled` (the caller went away, or gave up).
#[derive(Debug)]
#[must_use = "a call is counted as handled when this is used or dropped"]
pub struct GrpcCall {
    method: MethodMetrics,
    start: Instant,
    deadline: Option<Instant>,
    done: bool,
}

/// The status code names, indexed by code number, as grpc-go's
/// `codes.Code.String()` writes them (`codes/code_string.go`): title case
/// with no separators. go-grpc-prometheus labels `grpc_code` with exactly
/// that, and so do its Java twin, promgrpc and the stock dashboards and
/// alerts built on them (`grpc_code=~"Unknown|ResourceExhausted|..."`).
/// Code 1 is `Canceled`, grpc-go's spelling (gRPC's table writes
/// `CANCELLED`, tonic `Cancelled`).
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The `grpc_code` label of `code`: `OK`, `Canceled`, `DeadlineExceeded`...
pub fn code_label(code: Code) -> &'static str {
    // tonic's Code has exactly the 17 codes gRPC defines, numbered 0 to 16.
    CODES[code as usize]
}

// === impl GrpcType ===

impl GrpcType {
    /// The `grpc_type` label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

// === impl GrpcMethod ===

impl GrpcMethod {
    /// Every call to a method the server does not serve, and every call
    /// refused before its method mattered. Its type is `bidi_stream`, the
    /// shape a server must assume for a method it does not know (grpc-go's
    /// unknown-service handler is declared so, and go-grpc-prometheus
    /// reports its calls with it).
    pub const UNKNOWN: Self = Self::new("unknown", "unknown", GrpcType::BidiStream);

    pub const fn new(service: &'static str, method: &'static str, kind: GrpcType) -> Self {
        Self { service, method, kind }
    }

    pub const fn unary(service: &'static str, method: &'static str) -> Self {
        Self::new(service, method, GrpcType::Unary)
    }

    /// Whether a request for `path` (`/service/method`) calls this method.
    pub fn is_path(&self, path: &str) -> bool {
        path.strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(service, method)| service == self.service && method == self.method)
    }

    fn labels(&self) -> MethodLabels {
        MethodLabels { grpc_type: self.kind.label(), grpc_service: self.service, grpc_method: self.method }
    }
}

// === impl GrpcMetrics ===

impl Default for GrpcMetrics {
    fn default() -> Self {
        Self {
            started: Family::default(),
            handled: Family::default(),
            handling: Family::new_with_constructor(super::histogram),
            received: Family::default(),
            sent: Family::default(),
        }
    }
}

impl GrpcMetrics {
    /// The series of `method`, made now (at zero) if they are not there.
    /// Call it once per method when the service starts, and keep the
    /// result: it is what a call records into.
    pub fn method(&self, method: GrpcMethod) -> MethodMetrics {
        let labels = method.labels();
        let handled = CODES.map(|grpc_code| {
            let MethodLabels { grpc_type, grpc_service, grpc_method } = labels.clone();
            self.handled.get_or_create_owned(&CodeLabels { grpc_type, grpc_service, grpc_method, grpc_code })
        });
        let series = MethodSeries {
            started: self.started.get_or_create_owned(&labels),
            received: self.received.get_or_create_owned(&labels),
            sent: self.sent.get_or_create_owned(&labels),
            handling: self.handling.get_or_create_owned(&labels),
            handled,
        };
        MethodMetrics { inner: Arc::new(series) }
    }

    /// Adds the families, named for `side`, to the service's registry.
    pub fn register(&self, side: Side, metrics: &super::Metrics) {
        self.register_in(side, &mut metrics.lock_registry());
    }

    pub(super) fn register_in(&self, side: Side, r: &mut Registry) {
        let (prefix, calls) = match side {
            Side::Server => ("grpc_server", "gRPC calls served"),
            Side::Client => ("grpc_client", "gRPC calls made"),
        };
        let name = |suffix: &str| format!("{prefix}_{suffix}");
        r.register(name("started"), format!("{calls} that started"), self.started.clone());
        r.register(
            name("handled"),
            format!("{calls} that finished, by status code (grpc_code)"),
            self.handled.clone(),
        );
        r.register(
            name("handling_seconds"),
            format!("Latency of {calls}, from start to status"),
            self.handling.clone(),
        );
        r.register(name("msg_received"), format!("Messages received in {calls}"), self.received.clone());
        r.register(name("msg_sent"), format!("Messages sent in {calls}"), self.sent.clone());
    }
}

// === impl MethodMetrics ===

impl MethodMetrics {
    /// Counts a call as started at `at` (its latency runs from there).
    pub fn start(&self, at: Instant) -> GrpcCall {
        self.inner.started.inc();
        GrpcCall { method: self.clone(), start: at, deadline: None, done: false }
    }

    /// Counts `messages` received in a call of this method.
    pub fn received(&self, messages: u64) {
        if messages > 0 {
            self.inner.received.inc_by(messages);
        }
    }

    /// Counts `messages` sent in a call of this method.
    pub fn sent(&self, messages: u64) {
        if messages > 0 {
            self.inner.sent.inc_by(messages);
        }
    }

    fn handled(&self, code: Code) -> &Counter {
        // tonic's Code has exactly the 17 codes gRPC defines, 0 to 16.
        &self.inner.handled[code as usize]
    }
}

// === impl GrpcCall ===

impl GrpcCall {
    /// The method this call counts under.
    pub fn method(&self) -> &MethodMetrics {
        &self.method
    }

    /// The call's deadline, if it has one.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Counts the call as finished with `code`, and its latency.
    pub fn handled(mut self, code: Code) {
        self.finish(code);
    }

    fn finish(&mut self, code: Code) {
        self.done = true;
        self.method.handled(code).inc();
        self.method.inner.handling.observe(self.start.elapsed().as_secs_f64());
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        if !self.done {
            let expired = self.deadline.is_some_and(|deadline| Instant::now() >= deadline);
            self.finish(if expired { Code::DeadlineExceeded } else { Code::Cancelled });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PROCESS_NAME: GrpcMethod = GrpcMethod::unary("app.grpc.Service1", "ProcessName");

    fn rendered(side: Side, record: impl FnOnce(&GrpcMetrics)) -> String {
        let metrics = super::super::Metrics::new();
        let grpc = GrpcMetrics::default();
        grpc.register(side, &metrics);
        record(&grpc);
        metrics.render()
    }

    #[test]
    fn code_labels_are_grpc_go_s_code_string_names() {
        // grpc-go's codes/code_string.go, in code order.
        let grpc_go = [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        let ours: Vec<_> = (0..17).map(|n| code_label(Code::from_i32(n))).collect();
        assert_eq!(ours, grpc_go);
        assert_eq!(code_label(Code::Cancelled), "Canceled");
        assert_eq!(code_label(Code::DeadlineExceeded), "DeadlineExceeded");
    }

    #[test]
    fn types_are_the_four_grpc_type_values() {
        let labels = [GrpcType::Unary, GrpcType::ClientStream, GrpcType::ServerStream, GrpcType::BidiStream]
            .map(GrpcType::label);
        assert_eq!(labels, ["unary", "client_stream", "server_stream", "bidi_stream"]);
    }

    #[test]
    fn a_method_matches_its_path_only() {
        assert!(PROCESS_NAME.is_path("/app.grpc.Service1/ProcessName"));
        for other in
            ["app.grpc.Service1/ProcessName", "/app.grpc.Service1/ProcessNam", "/app.grpc.Service1", "/"]
        {
            assert!(!PROCESS_NAME.is_path(other), "{other}");
        }
    }

    #[test]
    fn a_method_s_series_exist_from_the_start_at_zero() {
        let text = rendered(Side::Server, |grpc| drop(grpc.method(PROCESS_NAME)));

        let labels = r#"{grpc_type="unary",grpc_service="app.grpc.Service1",grpc_method="ProcessName"}"#;
        for name in
            ["grpc_server_started_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"]
        {
            assert!(text.contains(&format!("{name}{labels} 0\n")), "{name}: {text}");
        }
        assert!(text.contains(&format!("grpc_server_handling_seconds_count{labels} 0\n")), "{text}");
        let handled: Vec<_> = text.lines().filter(|l| l.starts_with("grpc_server_handled_total{")).collect();
        assert_eq!(handled.len(), 17, "one per code: {text}");
        for code in ["OK", "Canceled", "DeadlineExceeded", "Unauthenticated"] {
            let labels = labels.trim_end_matches('}');
            let series = format!(r#"grpc_server_handled_total{labels},grpc_code="{code}"}} 0"#);
            assert!(handled.contains(&series.as_str()), "{series}: {handled:#?}");
        }
    }

    #[test]
    fn a_call_is_counted_started_then_handled_with_its_code_and_latency() {
        let text = rendered(Side::Client, |grpc| {
            let method = grpc.method(PROCESS_NAME);
            let call = method.start(Instant::now());
            method.sent(1);
            method.received(1);
            call.handled(Code::Ok);
            method.start(Instant::now()).handled(Code::DeadlineExceeded);
        });

        let method = r#"grpc_type="unary",grpc_service="app.grpc.Service1",grpc_method="ProcessName""#;
        for (series, value) in [
            (format!("grpc_client_started_total{{{method}}}"), 2),
            (format!(r#"grpc_client_handled_total{{{method},grpc_code="OK"}}"#), 1),
            (format!(r#"grpc_client_handled_total{{{method},grpc_code="DeadlineExceeded"}}"#), 1),
            (format!("grpc_client_handling_seconds_count{{{method}}}"), 2),
            (format!("grpc_client_msg_sent_total{{{method}}}"), 1),
            (format!("grpc_client_msg_received_total{{{method}}}"), 1),
        ] {
            assert!(text.contains(&format!("{series} {value}\n")), "{series} {value}: {text}");
        }
        assert!(!text.contains("grpc_server_"), "{text}");
    }

    #[test]
    fn a_call_dropped_before_its_status_is_canceled() {
        let text = rendered(Side::Server, |grpc| drop(grpc.method(PROCESS_NAME).start(Instant::now())));

        assert!(text.contains(r#"grpc_code="Canceled"} 1"#), "{text}");
    }

    #[test]
    fn a_call_dropped_after_its_deadline_is_deadline_exceeded() {
        let text = rendered(Side::Server, |grpc| {
            let method = grpc.method(PROCESS_NAME);
            drop(method.start(Instant::now()).with_deadline(Some(Instant::now())));
            drop(method.start(Instant::now()).with_deadline(Some(Instant::now() + Duration::from_secs(60))));
        });

        assert!(text.contains(r#"grpc_code="DeadlineExceeded"} 1"#), "{text}");
        assert!(text.contains(r#"grpc_code="Canceled"} 1"#), "{text}");
    }
}
