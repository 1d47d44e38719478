//! The request-id layer: remembers a span's `request_id` so that every
//! line written inside the span can print it at the top level, and hands
//! the line formatter the dispatcher, which it needs to ask the
//! OpenTelemetry layer for trace ids.

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use tracing::{
    dispatcher::WeakDispatch,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    Dispatch, Subscriber,
};
use tracing_subscriber::{layer::Context, registry::LookupSpan, Layer};

/// The span field that every log line inside the span repeats.
const REQUEST_ID_FIELD: &str = "request_id";

/// See the module.
pub(super) struct CaptureRequestId {
    pub(super) dispatch: Arc<OnceLock<WeakDispatch>>,
}

/// A span's request id, in its extensions.
pub(super) struct SpanRequestId(pub(super) String);

impl<S> Layer<S> for CaptureRequestId
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().fields().field(REQUEST_ID_FIELD).is_none() {
            return;
        }
        let mut found = FindRequestId(None);
        attrs.record(&mut found);
        if let (Some(value), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(SpanRequestId(value));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut found = FindRequestId(None);
        values.record(&mut found);
        if let (Some(value), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().replace(SpanRequestId(value));
        }
    }
}

struct FindRequestId(Option<String>);

impl Visit for FindRequestId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == REQUEST_ID_FIELD {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == REQUEST_ID_FIELD {
            // `%id` arrives here as Display wrapped in Debug: no quotes.
            self.0 = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::capture;

    #[test]
    fn every_line_inside_a_request_span_has_its_request_id_at_the_top_level() {
        let lines = capture(|| {
            let span = tracing::info_span!("request", request_id = %"abc-123");
            let _entered = span.enter();
            let inner = tracing::info_span!("inner");
            let _inner = inner.enter();
            tracing::info!(status = 200u64, "served");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["request_id"], "abc-123");
        assert_eq!(line["message"], "served");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["status"], 200);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line["target"].as_str().unwrap().starts_with("observability"));
    }

    #[test]
    fn a_request_id_recorded_after_the_span_opened_is_on_the_lines_after_it() {
        let lines = capture(|| {
            let span = tracing::info_span!("request", request_id = tracing::field::Empty);
            let _entered = span.enter();
            tracing::info!("before");
            span.record("request_id", "late-id");
            tracing::info!("after");
        });
        assert_eq!(lines[0].get("request_id"), None);
        assert_eq!(lines[1]["request_id"], "late-id");
    }

    #[test]
    fn the_innermost_request_id_wins() {
        let lines = capture(|| {
            let outer = tracing::info_span!("outer", request_id = "outer-id");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", request_id = "inner-id");
            let _inner = inner.enter();
            tracing::info!("inside both");
        });
        assert_eq!(lines[0]["request_id"], "inner-id");
    }
}
