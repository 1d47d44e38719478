//! What a service tells its operators: JSON log lines with request ids
//! (`logs`), Prometheus metrics (`metrics`) and OpenTelemetry traces
//! (`traces`). The serving layers record through these; they do not know
//! how lines are batched, series are stored or spans exported.
#![forbid(unsafe_code)]

pub mod logs;
pub mod metrics;
pub mod otel_env;
mod otlp_transport;
pub mod traces;

pub use metrics::Metrics;
pub use traces::Traces;

/// What one service records into: its metrics, and whether its spans are
/// exported. Built once (in `main`; in tests, one per service) and handed to
/// the layers that record, so two services in one process keep apart.
#[derive(Clone, Default)]
pub struct Observability {
    pub metrics: Metrics,
    pub traces: Traces,
}

/// Starts logs and, when the `OTEL_*` variables ask for it, trace export
/// for `service` (the default `service.name`), with a new registry: what
/// `main` hands to the service. Keep the [`traces::Telemetry`] until the
/// end: dropping it flushes queued spans and log lines.
pub fn init(
    service: traces::Service,
    format: settings::LogFormat,
) -> Result<(traces::Telemetry, Observability), InitError> {
    let metrics = Metrics::new();
    let telemetry = traces::init(service, format, &metrics)?;
    let traces = telemetry.traces();
    Ok((telemetry, Observability { metrics, traces }))
}

/// Why logs or traces could not be set up; each is a configuration error.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("RUST_LOG={directives:?}: {reason}")]
    Filter { directives: String, reason: String },
    #[error("cannot install the logger: {0}")]
    Logger(String),
    #[error("cannot start the log writer: {0}")]
    Writer(std::io::Error),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    /// An `OTEL_*` variable that cannot be honoured.
    #[error(transparent)]
    Otel(#[from] otel_env::ConfigError),
}
