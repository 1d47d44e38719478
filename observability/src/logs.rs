//! JSON log lines on stdout, each with the request id of the request being
//! served when it was written.
//!
//! Lines are appended to an in-memory buffer that a background thread
//! writes to stdout in batches every [`FLUSH_EVERY`], so a request never
//! waits for stdout and there is no wake-up per line. The buffer holds at
//! most [`QUEUE_BYTES`]: when stdout is slower than the services for that
//! long, new lines are dropped and counted ([`dropped_lines`]) rather than
//! waited for.

use std::{
    fmt::{self, Write as _},
    io::Write,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::SdkTracer;
pub use settings::LogFormat;

use crate::InitError;

use tracing::{
    dispatcher::WeakDispatch,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    Dispatch, Event, Subscriber,
};
use tracing_subscriber::{
    fmt::{
        format::Writer,
        time::{FormatTime, SystemTime},
        FmtContext, FormatEvent, FormatFields, MakeWriter,
    },
    layer::{Context, SubscriberExt},
    registry::LookupSpan,
    util::SubscriberInitExt,
    EnvFilter, Layer, Registry,
};

/// Bytes of log lines that may wait for stdout before new ones are dropped.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How often the writer thread hands waiting lines to stdout.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// The span field that every log line inside the span repeats.
const REQUEST_ID_FIELD: &str = "request_id";

/// Keeps the stdout writer alive; dropping it writes what is queued.
pub struct LogGuard {
    batched: Batched,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.batched.lock().closed = true;
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl LogGuard {
    /// Lines dropped so far because stdout could not keep up.
    pub fn dropped_lines(&self) -> DroppedLines {
        DroppedLines(self.batched.shared.clone())
    }
}

/// A count of log lines dropped because stdout could not keep up.
#[derive(Clone)]
pub struct DroppedLines(Arc<Shared>);

impl DroppedLines {
    pub fn count(&self) -> usize {
        self.0.dropped.load(Ordering::Relaxed)
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

/// A bounded buffer of log lines, written out by a thread of its own.
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    dropped: AtomicUsize,
    capacity: usize,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

// === impl Batched ===

impl Batched {
    /// Starts the thread that writes to `sink` every [`FLUSH_EVERY`].
    pub fn spawn(
        mut sink: impl Write + Send + 'static,
        capacity: usize,
    ) -> Result<(Self, std::thread::JoinHandle<()>), InitError> {
        let batched = Self {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending::default()),
                dropped: AtomicUsize::new(0),
                capacity,
            }),
        };
        let this = batched.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // Two buffers take turns, so steady logging allocates nothing.
                let mut batch = Vec::new();
                loop {
                    std::thread::park_timeout(FLUSH_EVERY);
                    let closed = {
                        let mut pending = this.lock();
                        std::mem::swap(&mut batch, &mut pending.lines);
                        pending.closed
                    };
                    if !batch.is_empty() {
                        // Nowhere to report a failing stdout but stdout.
                        let _ = sink.write_all(&batch).and_then(|_| sink.flush());
                        batch.clear();
                    }
                    if closed {
                        return;
                    }
                }
            })
            .map_err(InitError::Writer)?;
        Ok((batched, thread))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.shared.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for Batched {
    /// Takes one whole line (the formatter writes each line at once).
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.lock();
        if pending.lines.len() + line.len() > self.shared.capacity {
            drop(pending);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            pending.lines.extend_from_slice(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// `RUST_LOG` if set, otherwise `info`.
pub fn env_filter() -> Result<EnvFilter, InitError> {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
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
            // JSON lines print no span fields but the request id (kept by
            // CaptureRequestId): formatting them for every span is waste.
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

// === impl CaptureRequestId ===

/// Remembers a span's `request_id` so every event inside it can print it at
/// the top level of its line; also hands the formatter the dispatcher, which
/// it needs to ask the OpenTelemetry layer for trace ids.
struct CaptureRequestId {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

struct SpanRequestId(String);

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

/// Formats nothing: see `subscriber`.
struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(&self, _: Writer<'w>, _: R) -> fmt::Result {
        Ok(())
    }
}

// === impl JsonLines ===

/// One JSON object per event: timestamp, level, target, message, the
/// request id of the enclosing request, its trace and span ids when traces
/// are on, then the event's own fields.
struct JsonLines {
    dispatch: Arc<OnceLock<WeakDispatch>>,
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

/// `time` as tracing-subscriber's `SystemTime` timer writes it
/// (`2026-11-30T04:28:46.922885Z`, UTC, microseconds), without the
/// formatting machinery, which took about 2,000 instructions a line.
/// Times before 1970 or after 9999 are left to tracing-subscriber.
fn write_timestamp(w: &mut Writer<'_>, time: std::time::SystemTime) -> fmt::Result {
    match format_timestamp(time) {
        Some(text) => w.write_str(std::str::from_utf8(&text).unwrap_or_default()),
        None => SystemTime.format_time(w),
    }
}

fn format_timestamp(time: std::time::SystemTime) -> Option<[u8; 27]> {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's
    // `civil_from_days`, for days on or after 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3_600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(micros));
    Some(out)
}

/// `value` in decimal, as `Display` writes it, without the formatting
/// machinery: access lines carry a few integers each.
fn write_u64(w: &mut impl fmt::Write, mut value: u64) -> fmt::Result {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    w.write_str(std::str::from_utf8(&digits[at..]).unwrap_or_default())
}

fn write_json_str(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscape(w).write_str(value)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct JsonEscape<'a, W: fmt::Write>(&'a mut W);

/// Whether `byte` must be escaped inside a JSON string. Every such byte is
/// ASCII, and no byte of a multi-byte UTF-8 character is ASCII, so strings
/// can be scanned byte by byte.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

impl<W: fmt::Write> fmt::Write for JsonEscape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Almost every string needs no escape: one pass without early exit
        // (which the compiler vectorises), then one write.
        if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if !needs_escape(b) {
                continue;
            }
            // `i` is at an ASCII byte, so on a character boundary.
            self.0.write_str(&s[start..i])?;
            match b {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{:04x}", b)?,
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
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

    fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = subscriber(LogFormat::Json, EnvFilter::new("info"), move || sink.clone(), None);
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

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

    /// A stdout that takes a long time to accept each write.
    struct SlowSink(std::sync::mpsc::Sender<usize>);

    impl std::io::Write for SlowSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let _ = self.0.send(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_stdout_never_blocks_logging_and_overflow_is_dropped_and_counted() {
        let (tx, rx) = std::sync::mpsc::channel();
        let line = b"a log line\n";
        let (mut batched, thread) = Batched::spawn(SlowSink(tx), 10 * line.len()).unwrap();

        for _ in 0..50 {
            std::io::Write::write_all(&mut batched, line).unwrap();
        }
        // Every write returned before the sink finished even one.
        let before_any_output = rx.try_recv().is_err();
        batched.lock().closed = true;
        thread.thread().unpark();
        thread.join().unwrap();

        assert!(before_any_output);
        let written = rx.try_iter().sum::<usize>() / line.len();
        let dropped = batched.shared.dropped.load(Ordering::Relaxed);
        assert!(written >= 10 && dropped > 0, "written {written}, dropped {dropped}");
        assert_eq!(written + dropped, 50, "every line is either written or counted");
    }

    #[test]
    fn strings_are_escaped_byte_for_byte_as_json_wants_and_other_text_is_kept() {
        let mut out = String::new();

        write_json_str(&mut out, "é \"q\" \\ \n\r\t\u{1}\u{1f} ☃ \u{7f}").unwrap();

        assert_eq!(out, "\"é \\\"q\\\" \\\\ \\n\\r\\t\\u0001\\u001f ☃ \u{7f}\"");
    }

    #[test]
    fn timestamps_are_written_as_tracing_subscriber_writes_them() {
        use std::time::{Duration, UNIX_EPOCH};
        let text = |secs: u64, micros: u32| {
            let time = UNIX_EPOCH + Duration::new(secs, micros * 1_000 + 999);
            String::from_utf8(format_timestamp(time).unwrap().to_vec()).unwrap()
        };
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(text(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(text(1_796_013_726, 922_885), "2026-11-30T04:42:06.922885Z");
        assert_eq!(text(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(text(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(253_402_300_800)), None);
        assert_eq!(format_timestamp(UNIX_EPOCH - Duration::from_secs(1)), None);

        // Every day for 400 years (one full Gregorian cycle) against a
        // count of days by month.
        let (mut year, mut month, mut day) = (1970u64, 1u64, 1u64);
        for days in 0..146_097u64 {
            let expected = format!("{year:04}-{month:02}-{day:02}T00:00:00.000000Z");
            assert_eq!(text(days * 86_400, 0), expected);
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length =
                [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1];
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    #[test]
    fn a_timestamp_of_now_matches_tracing_subscriber_s_to_the_second() {
        let ours =
            || String::from_utf8(format_timestamp(std::time::SystemTime::now()).unwrap().to_vec()).unwrap();
        for _ in 0..10 {
            let mut theirs = String::new();
            SystemTime.format_time(&mut Writer::new(&mut theirs)).unwrap();
            let ours = ours();
            if ours[..19] == theirs[..19] {
                assert_eq!(
                    (ours.len(), &ours[19..20], &ours[26..]),
                    (theirs.len(), ".", "Z"),
                    "{ours} {theirs}"
                );
                return;
            }
        }
        panic!("never within the same second");
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for value in [0, 7, 10, 200, 65_535, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, value).unwrap();
            assert_eq!(out, value.to_string());
        }
        let lines = capture(|| tracing::info!(small = -5i64, least = i64::MIN, most = u64::MAX, "n"));
        assert_eq!(lines[0]["small"], -5);
        assert_eq!(lines[0]["least"], i64::MIN);
        assert_eq!(lines[0]["most"], u64::MAX);
    }

    #[test]
    fn lines_outside_requests_have_no_request_id_and_strings_are_escaped() {
        let lines = capture(|| tracing::warn!(detail = "a \"quoted\"\nline\u{1}", "odd {}", "input"));
        assert_eq!(lines[0].get("request_id"), None);
        assert_eq!(lines[0]["detail"], "a \"quoted\"\nline\u{1}");
        assert_eq!(lines[0]["message"], "odd input");
    }
}
