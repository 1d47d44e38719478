//! Logs: JSON lines on stdout, each with the request id of the request
//! being served when it was written. This module assembles the global
//! subscriber ([`init`], [`subscriber`]) from its parts:
//!
//! - [`writer`]: the batching writer thread and its bounded queue;
//! - [`layer`]: the layer that remembers each span's request id;
//! - [`format`]: the JSON line layout;
//! - [`json`]: JSON strings, integers and timestamps, written by hand.

mod format;
mod json;
mod layer;
mod writer;

use std::sync::{Arc, OnceLock};

use opentelemetry_sdk::trace::SdkTracer;
pub use settings::LogFormat;
use tracing::Subscriber;
use tracing_subscriber::{
    fmt::MakeWriter,
    layer::{Layer, SubscriberExt},
    util::SubscriberInitExt,
    EnvFilter, Registry,
};

pub use self::writer::{Batched, DroppedLines, FLUSH_EVERY, QUEUE_BYTES};
use self::{
    format::{JsonLines, NoSpanFields},
    layer::CaptureRequestId,
};
use crate::InitError;

/// Keeps the stdout writer alive; dropping it writes what is queued.
pub struct LogGuard {
    batched: Batched,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.batched.close(thread);
        }
    }
}

impl LogGuard {
    /// Lines dropped so far because stdout could not keep up.
    pub fn dropped_lines(&self) -> DroppedLines {
        self.batched.dropped_lines()
    }
}

/// Installs the global subscriber: `format` on stdout, filtered by
/// `RUST_LOG` (default `info`), and spans to `tracer` when given. Fails on a
/// malformed `RUST_LOG`.
pub fn init(format: LogFormat, tracer: Option<SdkTracer>) -> Result<LogGuard, InitError> {
    let filter = env_filter()?;
    let (batched, thread) = Batched::spawn(std::io::stdout(), QUEUE_BYTES)?;
    subscriber(format, filter, batched.clone(), tracer)
        .try_init()
        .map_err(|e| InitError::Logger(e.to_string()))?;
    Ok(LogGuard { batched, thread: Some(thread) })
}

/// `RUST_LOG` if set, otherwise `info`.
pub fn env_filter() -> Result<EnvFilter, InitError> {
    filter_from(std::env::var("RUST_LOG").ok())
}

fn filter_from(directives: Option<String>) -> Result<EnvFilter, InitError> {
    match directives {
        Some(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| InitError::Filter { directives, reason: e.to_string() }),
        _ => Ok(EnvFilter::new("info")),
    }
}

/// The subscriber both services use, generic over where lines go so tests
/// can capture them. With a `tracer`, spans also become OpenTelemetry spans
/// and log lines carry their `trace_id` and `span_id`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    tracer: Option<SdkTracer>,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let dispatch = Arc::new(OnceLock::new());
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(JsonLines { dispatch: dispatch.clone() })
            .fmt_fields(NoSpanFields)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Our spans say what they are through semantic attributes.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
    });
    Registry::default().with(lines).with(spans).with(CaptureRequestId { dispatch }).with(filter)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `f` logs, as text, through the subscriber the services use.
    fn captured_text(format: LogFormat, filter: &str, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = subscriber(format, EnvFilter::new(filter), move || sink.clone(), None);
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// The JSON lines `f` logs at `info` and above.
    pub(in crate::logs) fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
        captured_text(LogFormat::Json, "info", f)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn lines_below_the_filter_are_not_written() {
        let text = captured_text(LogFormat::Json, "warn", || {
            tracing::info!("quiet");
            tracing::warn!("loud");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("loud"));
    }

    #[test]
    fn the_text_format_is_for_people_not_json() {
        let text = captured_text(LogFormat::Text, "info", || tracing::info!(status = 200u64, "served"));
        assert!(!text.starts_with('{') && text.contains("served") && text.contains("200"), "{text}");
    }

    #[test]
    fn an_unset_or_blank_rust_log_means_info_and_a_malformed_one_is_refused_naming_it() {
        assert_eq!(filter_from(None).unwrap().to_string(), "info");
        assert_eq!(filter_from(Some("  ".into())).unwrap().to_string(), "info");
        let error = filter_from(Some("[".into())).unwrap_err().to_string();
        assert!(error.starts_with("RUST_LOG=\"[\""), "{error}");
    }
}
