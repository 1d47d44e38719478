//! The observe layer: for every call, the `request_id` from metadata (or a
//! new one), a span that carries it, one access line with its status, and
//! the `grpc_server_*` metrics, labelled with the method when the server
//! serves it and as [`GrpcMethod::UNKNOWN`] otherwise or when refused.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tonic::Code;
use tower::{Layer, Service};
use tracing::Span;

use observability::{
    metrics::{GrpcCall, GrpcMethod, MethodMetrics},
    traces::Traces,
    Observability,
};
use wire::{request_id, RequestId};

use super::messages::MessageCounter;
use crate::tls::server::PeerInfo;

/// Marks a response refused before the call reached its method (the
/// caller's identity is not allowed), so that it is counted without the
/// path the caller chose, as [`GrpcMethod::UNKNOWN`].
///
/// The contract with [`Observe`]: observe picks a call's series the first
/// time it polls the layers inside. If they are not ready, the call is
/// counted as started under its method there and then (a long call must
/// show in `grpc_server_started_total` while it runs); if they answer on
/// that first poll, the response decides, and only one carrying this
/// marker goes to UNKNOWN. So a refusal must be both marked and ready at
/// once: a marked response that comes later is counted under its method.
/// [`Refused::respond`] makes such an answer; a layer refuses through it.
#[derive(Debug, Clone, Copy)]
pub struct Refused;

// === impl Refused ===

impl Refused {
    /// A refusal with `status`, marked and ready on its first poll, as
    /// [`Observe`] needs it to count the call as UNKNOWN.
    pub fn respond<B: Default, E>(status: tonic::Status) -> std::future::Ready<Result<http::Response<B>, E>> {
        let mut response = status.into_http();
        response.extensions_mut().insert(Refused);
        std::future::ready(Ok(response))
    }
}

/// The series a call counts under, once the layers inside were polled the
/// first time: see [`Refused`] for why both halves matter.
fn series_for<'a, B, E>(
    first_poll: Poll<&Result<http::Response<B>, E>>,
    method: &'a MethodMetrics,
    unknown: &'a MethodMetrics,
) -> &'a MethodMetrics {
    match first_poll {
        Poll::Ready(Ok(response)) if response.extensions().get::<Refused>().is_some() => unknown,
        _ => method,
    }
}

/// Access lines, spans and metrics for every call. `methods` are the
/// methods the server serves; metrics count a call to any other path as
/// [`GrpcMethod::UNKNOWN`], so made-up paths add no series.
#[derive(Clone)]
pub struct ObserveLayer {
    methods: Arc<[(GrpcMethod, MethodMetrics)]>,
    unknown: MethodMetrics,
    traces: Traces,
}

impl ObserveLayer {
    /// Makes the series of each method now, so that a call only looks up
    /// its method's handles: no lock, no label built.
    pub fn new(methods: &[GrpcMethod], obs: &Observability) -> Self {
        let grpc = obs.metrics.grpc_server();
        let methods = methods.iter().map(|m| (*m, grpc.method(*m))).collect();
        Self { methods, unknown: grpc.method(GrpcMethod::UNKNOWN), traces: obs.traces }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

// === impl Observe ===

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observe<S>
where
    S: Service<http::Request<CountedBody<ReqBody>>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ObservedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        if let Some(peer) = request.extensions().get::<PeerInfo>() {
            peer.streams.served();
        }
        let id = RequestId::from_headers(request.headers(), request_id::METADATA_KEY);
        // The path as sent, cut to LOGGED_PATH_BYTES, goes into the access
        // line and span attributes (a client can send, and HPACK-index, a
        // path of kilobytes); metrics and the span name only get a method
        // the server serves.
        let method = logged_path(request.uri().path());
        let parts = method.strip_prefix('/').and_then(|p| p.split_once('/'));
        let known = self.layer.methods.iter().find(|(m, _)| parts == Some((m.service, m.method)));
        let series = known.map_or(&self.layer.unknown, |(_, series)| series).clone();
        let full_name = method.trim_start_matches('/');
        let (service, rpc) = full_name.split_once('/').unwrap_or((full_name, ""));
        let span = tracing::info_span!(
            "grpc_request",
            request_id = %id,
            otel.name = if known.is_some() { full_name } else { GrpcMethod::UNKNOWN.method },
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            "rpc.system" = "grpc",
            "rpc.service" = service,
            "rpc.method" = rpc,
            "rpc.grpc.status_code" = tracing::field::Empty,
        );
        self.layer.traces.continue_trace(&span, request.headers());
        let deadline = grpc_timeout(request.headers()).and_then(|timeout| start.checked_add(timeout));
        let mut request = request.map(|inner| CountedBody::new(inner, series.clone()));
        // Handlers find the id in `tonic::Request::extensions()`.
        request.extensions_mut().insert(id);
        let call = span.in_scope(|| self.inner.call(request));
        ObservedCall {
            call,
            span: Some(span),
            method,
            start,
            deadline,
            series,
            unknown: self.layer.unknown.clone(),
            counted: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A call until its response head: runs inside the call's span, counts
    /// the call as started, and hands the span and the count to the
    /// response body's [`AccessLine`]. Written out rather than as a boxed
    /// async block: no box, and one span handle per call.
    pub struct ObservedCall<F> {
        #[pin]
        call: F,
        span: Option<Span>,
        method: String,
        start: Instant,
        deadline: Option<Instant>,
        series: MethodMetrics,
        unknown: MethodMetrics,
        // Set once the call is counted as started.
        counted: Option<GrpcCall>,
    }
}

impl<F, ResBody, E> Future for ObservedCall<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<ObservedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(span) = this.span.as_ref() else {
            panic!("ObservedCall polled after it completed");
        };
        let polled = {
            let _entered = span.enter();
            this.call.poll(cx)
        };
        // Counted as started once the layers inside have seen the call,
        // under the series the contract with `Refused` gives.
        let response = match polled {
            Poll::Pending => {
                if this.counted.is_none() {
                    let series = series_for::<ResBody, E>(Poll::Pending, this.series, this.unknown);
                    *this.counted = Some(series.start(*this.start).with_deadline(*this.deadline));
                }
                return Poll::Pending;
            }
            Poll::Ready(response) => response,
        };
        let counted = this.counted.take().unwrap_or_else(|| {
            let series = series_for(Poll::Ready(&response), this.series, this.unknown);
            series.start(*this.start).with_deadline(*this.deadline)
        });
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                // Not a status (tonic's routes and our layers answer with
                // one): tonic answers with the error's status if it is one,
                // else resets the stream. UNKNOWN is gRPC's code for an
                // error it cannot place.
                counted.handled(Code::Unknown);
                return Poll::Ready(Err(error));
            }
        };
        // A failed unary call is "trailers-only": its status is a header.
        let code = response.headers().get("grpc-status").map(|v| Code::from_bytes(v.as_bytes()));
        let log = AccessLine {
            span: this.span.take().expect("checked above"),
            method: std::mem::take(this.method),
            start: *this.start,
            code,
            call: Some(counted),
        };
        let sent = MessageCounter::default();
        Poll::Ready(Ok(response.map(|inner| ObservedBody { inner, sent, log: Some(log) })))
    }
}

/// The client's deadline, from `grpc-timeout`: at most 8 digits and a
/// unit (gRPC over HTTP/2). tonic enforces it outside this layer: it drops
/// the call and answers CANCELLED ("Timeout expired"). This layer reads it
/// only to count such a call as DEADLINE_EXCEEDED, the reason it ended, as
/// a grpc-go server would.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    match unit {
        b'H' => Some(Duration::from_secs(n * 3600)),
        b'M' => Some(Duration::from_secs(n * 60)),
        b'S' => Some(Duration::from_secs(n)),
        b'm' => Some(Duration::from_millis(n)),
        b'u' => Some(Duration::from_micros(n)),
        b'n' => Some(Duration::from_nanos(n)),
        _ => None,
    }
}

/// Written when the response body is done with, so the status in the
/// trailers and the whole duration are known.
struct AccessLine {
    span: Span,
    method: String,
    start: Instant,
    code: Option<Code>,
    /// The call's metrics: handled when the line is written.
    call: Option<GrpcCall>,
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        // No status: the call counts as Canceled (the client went away),
        // or DeadlineExceeded once its deadline has passed.
        if let (Some(call), Some(code)) = (self.call.take(), self.code) {
            call.handled(code);
        }
        if let Some(code) = self.code {
            self.span.record("rpc.grpc.status_code", code as i64);
            if is_server_error(code) {
                self.span.record("otel.status_code", "ERROR");
            }
        }
        let _entered = self.span.enter();
        let duration_ms = elapsed.as_secs_f64() * 1e3;
        match self.code {
            Some(code) => tracing::info!(
                method = self.method.as_str(),
                grpc_code = code as i32,
                grpc_status = ?code,
                duration_ms,
                "grpc call served"
            ),
            None => tracing::info!(
                method = self.method.as_str(),
                duration_ms,
                "grpc call ended without a status (the client went away)"
            ),
        }
    }
}

/// Bytes of a gRPC path an access line or span shows; every method served
/// is far shorter.
const LOGGED_PATH_BYTES: usize = 128;

/// `path`, cut to [`LOGGED_PATH_BYTES`].
fn logged_path(path: &str) -> String {
    crate::log_text::cut(path, LOGGED_PATH_BYTES).into_owned()
}

/// The codes OpenTelemetry's conventions count as server errors; the
/// others are the caller's problem.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

pin_project_lite::pin_project! {
    /// A request body that counts the messages the client sent as the
    /// server reads them (`grpc_server_msg_received_total`).
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        counter: MessageCounter,
        series: MethodMetrics,
    }
}

impl<B> CountedBody<B> {
    fn new(inner: B, series: MethodMetrics) -> Self {
        Self { inner, counter: MessageCounter::default(), series }
    }
}

impl<B: Body> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.series.received(this.counter.count_buf(data));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that notes the `grpc-status` trailer and counts the
    /// messages sent (`grpc_server_msg_sent_total`) as they pass.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        sent: MessageCounter,
        log: Option<AccessLine>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(call)) =
                    (frame.data_ref(), this.log.as_ref().and_then(|l| l.call.as_ref()))
                {
                    call.method().sent(this.sent.count_buf(data));
                }
                let status = frame.trailers_ref().and_then(|t| t.get("grpc-status"));
                if let (Some(status), Some(log)) = (status, this.log.as_mut()) {
                    log.code = Some(Code::from_bytes(status.as_bytes()));
                }
            }
            // The stream is over: write the line now rather than at drop.
            Poll::Ready(None) => drop(this.log.take()),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;

    const PROCESS_NAME: GrpcMethod = GrpcMethod::unary("app.grpc.Service1", "ProcessName");

    /// Sends one call to ProcessName through the observe layer in front of
    /// `inner`, lets its response go, and returns the metrics it left.
    async fn observed<S, F>(inner: S) -> String
    where
        S: Service<
            http::Request<CountedBody<()>>,
            Response = http::Response<String>,
            Error = Infallible,
            Future = F,
        >,
        F: Future<Output = Result<http::Response<String>, Infallible>>,
    {
        let obs = Observability::default();
        let service = ObserveLayer::new(&[PROCESS_NAME], &obs).layer(inner);
        let request = http::Request::post("/app.grpc.Service1/ProcessName").body(()).unwrap();
        // Dropping the response ends the call: its access line is written
        // and it is counted as handled.
        drop(service.oneshot(request).await.unwrap());
        obs.metrics.render()
    }

    /// The `grpc_server_handled_total` count of `method` with `code`.
    fn handled(metrics: &str, method: &str, code: &str) -> u64 {
        let labels = [format!("grpc_method=\"{method}\""), format!("grpc_code=\"{code}\"")];
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("grpc_server_handled_total{") && labels.iter().all(|x| l.contains(x.as_str()))
            })
            .unwrap_or_else(|| panic!("no handled series for {method} {code} in\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn denied() -> tonic::Status {
        tonic::Status::permission_denied("not allowed")
    }

    #[tokio::test]
    async fn a_call_refused_through_the_marker_is_counted_as_unknown_not_under_its_path() {
        let refuse = tower::service_fn(|_| Refused::respond::<String, Infallible>(denied()));

        let metrics = observed(refuse).await;

        assert_eq!(handled(&metrics, "unknown", "PermissionDenied"), 1);
        assert_eq!(handled(&metrics, "ProcessName", "PermissionDenied"), 0);
    }

    #[tokio::test]
    async fn a_call_answered_on_its_first_poll_without_the_marker_is_counted_under_its_method() {
        let answer_at_once =
            tower::service_fn(|_| async { Ok::<_, Infallible>(denied().into_http::<String>()) });

        let metrics = observed(answer_at_once).await;

        assert_eq!(handled(&metrics, "ProcessName", "PermissionDenied"), 1);
        assert_eq!(handled(&metrics, "unknown", "PermissionDenied"), 0);
    }

    #[tokio::test]
    async fn a_call_answered_after_its_first_poll_is_counted_under_its_method_even_if_marked_refused() {
        // Not ready on the first poll: observe has counted the call as
        // started under its method by the time the marker shows up.
        let answer_later = tower::service_fn(|_| async {
            tokio::task::yield_now().await;
            Refused::respond::<String, Infallible>(denied()).await
        });

        let metrics = observed(answer_later).await;

        assert_eq!(handled(&metrics, "ProcessName", "PermissionDenied"), 1);
        assert_eq!(handled(&metrics, "unknown", "PermissionDenied"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_the_client_leaves_is_deadline_exceeded_once_its_grpc_timeout_passed_else_canceled() {
        for (left_after, code) in
            [(Duration::from_secs(2), "DeadlineExceeded"), (Duration::from_millis(500), "Canceled")]
        {
            let obs = Observability::default();
            let never =
                tower::service_fn(|_| std::future::pending::<Result<http::Response<String>, Infallible>>());
            let service = ObserveLayer::new(&[PROCESS_NAME], &obs).layer(never);
            let request = http::Request::post("/app.grpc.Service1/ProcessName")
                .header("grpc-timeout", "1S")
                .body(())
                .unwrap();

            // The client goes away after `left_after`: the call is dropped unanswered.
            let left = tokio::time::timeout(left_after, service.oneshot(request)).await;

            assert!(left.is_err(), "the call never answers");
            let metrics = obs.metrics.render();
            assert_eq!(handled(&metrics, "ProcessName", code), 1, "left after {left_after:?}");
        }
    }

    #[test]
    fn a_long_path_is_cut_for_the_access_line_at_a_character_boundary() {
        let long = format!("/{}", "é".repeat(2000));

        let logged = logged_path(&long);

        assert!(logged.len() <= LOGGED_PATH_BYTES + "…".len(), "{} bytes", logged.len());
        assert!(logged.ends_with('…'));
        assert_eq!(logged_path("/app.grpc.Service1/ProcessName"), "/app.grpc.Service1/ProcessName");
    }

    #[test]
    fn grpc_timeout_is_read_in_every_unit_and_nonsense_is_no_deadline() {
        let timeout = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(timeout("1n"), Some(Duration::from_nanos(1)));
        for nonsense in ["", "m", "100", "123456789m", "10s", "-1S", "1.5S", " 1S"] {
            assert_eq!(timeout(nonsense), None, "{nonsense:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }
}
