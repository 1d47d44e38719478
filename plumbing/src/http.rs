//! The HTTP stack both REST servers share: request ids, access lines, JSON
//! errors for unknown routes and panics, and graceful serving.

use std::{any::Any, io, net::SocketAddr, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::{IntoResponse, Response},
    Router,
};
use http_body::Body as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::{
    metrics::{HttpLabels, RouteLabels},
    request_id, telemetry, ApiError, RequestId,
};

/// Wraps a service's routes in the layers every REST port has.
pub fn with_common_layers(router: Router) -> Router {
    // Layers run outermost first, so the order below is the reverse of the
    // `.layer` calls:
    // 1. `observe` takes or makes the request id, opens the request span,
    //    writes the access line and echoes X-Request-ID on every response,
    //    a panic's 500 included;
    // 2. `CatchPanicLayer` turns a panicking handler into a JSON 500, inside
    //    the request span so the panic is logged with the request id.
    router
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(observe))
}

async fn observe(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = RequestId::from_headers(request.headers(), request_id::HEADER.as_str());
    let method = request.method().clone();
    // The route template, never the raw path: it is bounded and safe to log.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_name = route.as_ref().map_or("<unmatched>", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        "http.request.method" = %method,
        "http.route" = route_name,
        "http.response.status_code" = tracing::field::Empty,
    );
    if telemetry::enabled() {
        span.record("otel.name", format!("{method} {route_name}").as_str());
        telemetry::continue_trace(&span, request.headers());
    }
    request.extensions_mut().insert(id.clone());

    let mut response = next.run(request).instrument(span.clone()).await;

    response.headers_mut().insert(request_id::HEADER, id.header_value().clone());
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let metrics = crate::metrics::global();
    let (method_name, route_label) = (method.as_str().to_owned(), route_name.to_owned());
    metrics
        .http_duration
        .get_or_create(&RouteLabels { method: method_name.clone(), route: route_label.clone() })
        .observe(elapsed.as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&HttpLabels { method: method_name, route: route_label, status })
        .inc();
    let _entered = span.enter();
    tracing::info!(
        method = %method,
        route = route_name,
        status,
        response_bytes = response.body().size_hint().exact(),
        duration_ms = elapsed.as_secs_f64() * 1e3,
        "http request served"
    );
    response
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::internal().into_response()
}

/// Binds a listener, with an error that names the address.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Serves `router` until `stop` is cancelled, then stops accepting and
/// waits for in-flight requests (the caller bounds that wait).
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) -> io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await
}
