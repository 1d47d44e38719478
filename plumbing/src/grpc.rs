//! The layer every gRPC server puts in front of its services: it takes the
//! `request_id` from metadata (or makes one), runs the call inside a span
//! that carries it, and writes one access line per call with its status.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use crate::{
    metrics::{GrpcLabels, MethodLabels},
    request_id, telemetry, RequestId,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

// === impl Observe ===

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observe<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let id = RequestId::from_headers(request.headers(), request_id::METADATA_KEY);
        let method = request.uri().path().to_owned();
        let full_name = method.trim_start_matches('/');
        let (service, rpc) = full_name.split_once('/').unwrap_or((full_name, ""));
        let span = tracing::info_span!(
            "grpc_request",
            request_id = %id,
            otel.name = full_name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            "rpc.system" = "grpc",
            "rpc.service" = service,
            "rpc.method" = rpc,
            "rpc.grpc.status_code" = tracing::field::Empty,
        );
        telemetry::continue_trace(&span, request.headers());
        // Handlers find the id in `tonic::Request::extensions()`.
        request.extensions_mut().insert(id);
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let response = call.instrument(span.clone()).await?;
            // A failed unary call is "trailers-only": its status is a header.
            let code = response.headers().get("grpc-status").map(|v| Code::from_bytes(v.as_bytes()));
            let log = AccessLine { span, method, start, code };
            Ok(response.map(|inner| ObservedBody { inner, log: Some(log) }))
        })
    }
}

/// Written when the response body is done with, so the status in the
/// trailers and the whole duration are known.
struct AccessLine {
    span: Span,
    method: String,
    start: Instant,
    code: Option<Code>,
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let metrics = crate::metrics::global();
        let code_name = self.code.map_or("Cancelled".to_owned(), |c| format!("{c:?}"));
        metrics
            .grpc_handled
            .get_or_create(&GrpcLabels { grpc_method: self.method.clone(), grpc_code: code_name })
            .inc();
        metrics
            .grpc_duration
            .get_or_create(&MethodLabels { grpc_method: self.method.clone() })
            .observe(elapsed.as_secs_f64());
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
                method = %self.method,
                grpc_code = code as i32,
                grpc_status = ?code,
                duration_ms,
                "grpc call served"
            ),
            None => tracing::info!(
                method = %self.method,
                duration_ms,
                "grpc call ended without a status (the client went away)"
            ),
        }
    }
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
    /// A response body that notes the `grpc-status` trailer as it passes.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
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
