//! The JSON line layout: one object per event with the timestamp, level,
//! target, message, the request id of the enclosing request (from
//! [`super::layer`]), the trace and span ids when traces are on, then the
//! event's own fields.

use std::{
    fmt::{self, Write as _},
    sync::{Arc, OnceLock},
};

use opentelemetry::trace::TraceContextExt;
use tracing::{
    dispatcher::WeakDispatch,
    field::{Field, Visit},
    Event, Subscriber,
};
use tracing_subscriber::{
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields},
    registry::LookupSpan,
};

use super::{
    json::{needs_escape, write_json_str, write_timestamp, write_u64, JsonEscape},
    layer::SpanRequestId,
};

/// Formats nothing: JSON lines print no span fields but the request id
/// (kept by the request-id layer), so formatting them for every span
/// would be waste.
pub(super) struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(&self, _: Writer<'w>, _: R) -> fmt::Result {
        Ok(())
    }
}

/// One JSON object per event (see the module).
pub(super) struct JsonLines {
    pub(super) dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut w, std::time::SystemTime::now())?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_str("\",\"target\":")?;
        write_json_str(&mut w, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if let Some(id) = span.extensions().get::<SpanRequestId>() {
                    w.write_str(",\"request_id\":")?;
                    write_json_str(&mut w, &id.0)?;
                    break;
                }
            }
        }
        if let Some(leaf) = ctx.event_scope().and_then(|mut scope| scope.next()) {
            let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
            let context = dispatch.and_then(|d| tracing_opentelemetry::get_otel_context(&leaf.id(), &d));
            if let Some(context) = context {
                let span = context.span();
                let ids = span.span_context();
                if ids.is_valid() {
                    write!(w, ",\"trace_id\":\"{}\",\"span_id\":\"{}\"", ids.trace_id(), ids.span_id())?;
                }
            }
        }
        let mut fields = JsonFields { w: &mut w, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        w.write_str("}\n")
    }
}

struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        if name.bytes().any(needs_escape) {
            self.w.write_char(',')?;
            write_json_str(self.w, name)?;
            return self.w.write_char(':');
        }
        // Field names are identifiers: three writes, nothing to escape.
        self.w.write_str(",\"")?;
        self.w.write_str(name)?;
        self.w.write_str("\":")
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| write!(self.w, "{value}"));
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| write_json_str(self.w, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| {
                let mut escaped = JsonEscape(self.w);
                escaped.0.write_char('"')?;
                write!(escaped, "{value:?}")?;
                escaped.0.write_char('"')
            });
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| {
                if value < 0 {
                    self.w.write_char('-')?;
                }
                write_u64(self.w, value.unsigned_abs())
            });
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| write_u64(self.w, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value)
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, value)
        } else {
            self.record_debug(field, &value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::capture;

    #[test]
    fn lines_outside_requests_have_no_request_id_and_strings_are_escaped() {
        let lines = capture(|| tracing::warn!(detail = "a \"quoted\"\nline\u{1}", "odd {}", "input"));
        assert_eq!(lines[0].get("request_id"), None);
        assert_eq!(lines[0]["detail"], "a \"quoted\"\nline\u{1}");
        assert_eq!(lines[0]["message"], "odd input");
    }

    #[test]
    fn fields_keep_their_json_types() {
        let lines = capture(|| {
            tracing::info!(small = -5i64, least = i64::MIN, most = u64::MAX, yes = true, ratio = 0.5, "n")
        });
        assert_eq!(lines[0]["small"], -5);
        assert_eq!(lines[0]["least"], i64::MIN);
        assert_eq!(lines[0]["most"], u64::MAX);
        assert_eq!(lines[0]["yes"], true);
        assert_eq!(lines[0]["ratio"], 0.5);
    }

    #[test]
    fn a_float_json_cannot_hold_is_written_as_a_string() {
        let lines = capture(|| tracing::info!(odd = f64::NAN, far = f64::INFINITY, "n"));
        assert_eq!((lines[0]["odd"].as_str(), lines[0]["far"].as_str()), (Some("NaN"), Some("inf")));
    }

    #[test]
    fn without_traces_a_line_has_no_trace_ids() {
        let lines = capture(|| {
            let span = tracing::info_span!("request", request_id = "r");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!((lines[0].get("trace_id"), lines[0].get("span_id")), (None, None));
    }
}
