//! The layer every HTTP port puts around its routes (the REST ports and the
//! admin port alike): it observes each request (request id, span, access
//! line, metrics), admits it or sheds it (request slots, 503 with
//! Retry-After, the request timeout's 504), and turns a panicking handler
//! into a JSON 500. It also refuses HTTP/1.1 requests without exactly one
//! Host header, and answers unknown routes and methods in JSON.

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request},
    response::{IntoResponse, Response},
    Router,
};
use http_body::Body as _;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tower::{Layer, Service};

use observability::{metrics, Metrics, Observability};
use settings::HttpLimits;
use wire::{request_id, ErrorKind, RequestId};

use crate::ApiError;

pub fn with_common_layers(router: Router, limits: &HttpLimits, obs: &Observability) -> Router {
    with_common_layers_and_probes(router, limits, &[], obs)
}

/// The same, except that requests for `probes` (exact paths) take no
/// request slot: they are answered at once, whoever holds the slots. Only
/// cheap handlers belong here. One left waiting (a gRPC call whose message
/// never comes) still holds its HTTP/2 stream until the request timeout,
/// so the port must bound streams per connection.
pub fn with_common_layers_and_probes(
    router: Router,
    limits: &HttpLimits,
    probes: &'static [&'static str],
    obs: &Observability,
) -> Router {
    // One layer, in this order:
    // 1. observe: takes or makes the request id, opens the request span,
    //    writes the access line and echoes X-Request-ID on every response,
    //    shed and timed-out ones included;
    // 2. admit: sheds load beyond the concurrency limit (503, Retry-After)
    //    instead of queueing it (probes excepted), and bounds each
    //    request's time (504);
    // 3. catch panics: a panicking handler becomes a JSON 500, inside the
    //    request span so the panic is logged with the request id.
    router
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(ObserveAdmitLayer::new(limits, probes, obs))
}

#[derive(Clone)]
struct Admission {
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    timeout: Duration,
    probes: &'static [&'static str],
}

/// What every route gets (see [`with_common_layers_and_probes`]), written
/// out as one tower layer rather than as three (two `from_fn` middlewares
/// and tower-http's `CatchPanicLayer`): axum boxes each layer's service and
/// clones it for every request, `from_fn` boxes it once more, and
/// `CatchPanicLayer` boxes the response body again. As one layer a request
/// costs one boxed future (the README's performance section has the
/// measurement).
#[derive(Clone)]
struct ObserveAdmitLayer {
    obs: Observability,
    admission: Admission,
}

// === impl ObserveAdmitLayer ===

impl ObserveAdmitLayer {
    fn new(limits: &HttpLimits, probes: &'static [&'static str], obs: &Observability) -> Self {
        let admission = Admission {
            permits: Arc::new(Semaphore::new(limits.http_max_concurrent_requests as usize)),
            queue_timeout: limits.http_queue_timeout,
            timeout: limits.http_request_timeout,
            probes,
        };
        Self { obs: obs.clone(), admission }
    }
}

impl<S> Layer<S> for ObserveAdmitLayer {
    type Service = ObserveAdmit<S>;

    fn layer(&self, inner: S) -> ObserveAdmit<S> {
        ObserveAdmit { inner, obs: self.obs.clone(), admission: self.admission.clone() }
    }
}

#[derive(Clone)]
struct ObserveAdmit<S> {
    inner: S,
    obs: Observability,
    admission: Admission,
}

// === impl ObserveAdmit ===

impl<S> Service<Request> for ObserveAdmit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // Observe.
        let start = Instant::now();
        let id = RequestId::from_headers(request.headers(), request_id::HEADER.as_str());
        // The method comes from a closed set everywhere, the access line
        // included: a client can send (and HPACK-index) a method of
        // thousands of characters, which would multiply every line it costs.
        let method_label = metrics::method_label(request.method());
        // The route template, never the raw path: it is bounded and safe to log.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = {
            let route_name = route.as_ref().map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
            let span = tracing::info_span!(
                "http_request",
                request_id = %id,
                otel.name = tracing::field::Empty,
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                "http.request.method" = method_label,
                "http.route" = route_name,
                "http.response.status_code" = tracing::field::Empty,
            );
            if self.obs.traces.exporting() {
                span.record("otel.name", format!("{method_label} {route_name}").as_str());
                self.obs.traces.continue_trace(&span, request.headers());
            }
            span
        };
        let header_value = id.header_value().clone();
        request.extensions_mut().insert(id);

        // Admit: the route is called here when a slot is free (or not
        // needed), so the usual request waits for nothing.
        let admission = &self.admission;
        let timeout = admission.timeout;
        let served = if let Some(error) = host_error(&request) {
            Served::Refused { error: Some(error) }
        } else if admission.probes.contains(&request.uri().path()) {
            let response = span.in_scope(|| self.inner.call(request));
            Served::Sent { response: within(timeout, response), timeout, permit: None }
        } else {
            match admission.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let response = span.in_scope(|| self.inner.call(request));
                    Served::Sent { response: within(timeout, response), timeout, permit: Some(permit) }
                }
                Err(_) => Served::Waiting {
                    response: wait_for_a_slot(self.inner.clone(), request, admission.clone()),
                },
            }
        };
        Observed {
            served,
            span,
            start,
            method_label,
            route,
            header_value: Some(header_value),
            metrics: self.obs.metrics.clone(),
        }
    }
}

fn within<F: Future<Output = Result<Response, Infallible>>>(
    timeout: Duration,
    response: F,
) -> tokio::time::Timeout<CatchPanic<F>> {
    tokio::time::timeout(timeout, CatchPanic { inner: response })
}

/// Waits for a request slot, then calls the route. The wait is bounded in
/// time (`HTTP_QUEUE_TIMEOUT`) and in number: each waiting request is an
/// HTTP/1 connection's one request or one HTTP/2 stream, and a port bounds
/// its connections and each connection's streams, so this is no unbounded
/// queue.
fn wait_for_a_slot<S>(
    mut inner: S,
    request: Request,
    admission: Admission,
) -> Pin<Box<dyn Future<Output = Response> + Send>>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    Box::pin(async move {
        let permit = tokio::time::timeout(admission.queue_timeout, admission.permits.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok);
        let Some(_permit) = permit else {
            tracing::warn!("shedding load: too many requests in flight");
            let mut response =
                ApiError::new(ErrorKind::Overloaded, "too many requests, try again shortly").into_response();
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return response;
        };
        let response = within(admission.timeout, inner.call(request)).await;
        timed_out_or(response, admission.timeout)
    })
}

/// The response, or a 504 if the request's time ran out.
fn timed_out_or(response: Result<Response, tokio::time::error::Elapsed>, timeout: Duration) -> Response {
    response.unwrap_or_else(|_| {
        tracing::warn!(?timeout, "request timed out");
        ApiError::new(ErrorKind::Timeout, "the request took too long").into_response()
    })
}

pin_project_lite::pin_project! {
    /// A request from its admission on: written out rather than an async
    /// block, so it needs no box of its own (axum boxes it once) and the
    /// request span is entered around each poll without a second handle.
    pub(super) struct Observed<F> {
        #[pin]
        served: Served<F>,
        span: tracing::Span,
        start: Instant,
        method_label: &'static str,
        route: Option<MatchedPath>,
        header_value: Option<http::HeaderValue>,
        metrics: Metrics,
    }
}

pin_project_lite::pin_project! {
    #[project = ServedProj]
    enum Served<F> {
        /// Refused before it reaches a route.
        Refused { error: Option<ApiError> },
        /// Sent to the route at once, holding a request slot unless it is a probe.
        Sent {
            #[pin]
            response: tokio::time::Timeout<CatchPanic<F>>,
            timeout: Duration,
            permit: Option<OwnedSemaphorePermit>,
        },
        /// Waiting for a request slot first (rare: boxed).
        Waiting { response: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Served<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project() {
            ServedProj::Refused { error } => {
                tracing::debug!("refusing an HTTP/1.1 request without exactly one Host header");
                Poll::Ready(error.take().unwrap_or_else(ApiError::internal).into_response())
            }
            ServedProj::Sent { response, timeout, permit } => {
                let response = std::task::ready!(response.poll(cx));
                // The slot is free once the route has answered.
                drop(permit.take());
                Poll::Ready(timed_out_or(response, *timeout))
            }
            ServedProj::Waiting { response } => response.as_mut().poll(cx),
        }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Observed<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response, Infallible>> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut response = std::task::ready!(this.served.poll(cx));
        let route_name = this.route.as_ref().map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
        if let Some(id) = this.header_value.take() {
            response.headers_mut().insert(request_id::HEADER, id);
        }
        let status = response.status().as_u16();
        let elapsed = this.start.elapsed();
        this.span.record("http.response.status_code", status);
        if status >= 500 {
            this.span.record("otel.status_code", "ERROR");
        }
        this.metrics.record_http(this.method_label, route_name, status, elapsed.as_secs_f64());
        tracing::info!(
            method = *this.method_label,
            route = route_name,
            status,
            response_bytes = response.body().size_hint().exact(),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            "http request served"
        );
        Poll::Ready(Ok(response))
    }
}

pin_project_lite::pin_project! {
    /// A route's response, or a JSON 500 if it panics.
    struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for CatchPanic<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(Ok(response))) => Poll::Ready(response),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(panic_response(panic)),
        }
    }
}

/// An HTTP/1.1 request must carry exactly one Host header (RFC 9112 3.2);
/// HTTP/1.0 need not, and HTTP/2 has `:authority` instead.
fn host_error(request: &Request) -> Option<ApiError> {
    let hosts = request.headers().get_all(http::header::HOST).iter().count();
    (request.version() == http::Version::HTTP_11 && hosts != 1)
        .then(|| ApiError::new(ErrorKind::InvalidInput, "an HTTP/1.1 request needs exactly one Host header"))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use tokio::sync::Notify;
    use tower::{service_fn, ServiceExt};

    use super::*;

    const PROBES: &[&str] = &["/livez"];

    /// The layer around `inner`, with one request slot.
    fn one_slot<S>(inner: S) -> ObserveAdmit<S> {
        let limits = HttpLimits { http_max_concurrent_requests: 1, ..HttpLimits::default() };
        ObserveAdmitLayer::new(&limits, PROBES, &Observability::default()).layer(inner)
    }

    fn get(path: &str) -> Request {
        http::Request::get(path).header(http::header::HOST, "test").body(Body::empty()).unwrap()
    }

    /// A service that answers 200 at once, except on `/hold`, which answers
    /// only once `release` is notified.
    fn holds(
        release: Arc<Notify>,
    ) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
    {
        service_fn(move |request: Request| {
            let release = release.clone();
            async move {
                if request.uri().path() == "/hold" {
                    release.notified().await;
                }
                Ok::<_, Infallible>(http::StatusCode::OK.into_response())
            }
        })
    }

    async fn json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn admit_sheds_with_503_and_retry_after_when_every_slot_is_held() {
        let release = Arc::new(Notify::new());
        let mut service = one_slot(holds(release.clone()));
        // Called, not yet answered: it holds the only slot.
        let held = service.ready().await.unwrap().call(get("/hold"));

        let shed = service.clone().oneshot(get("/other")).await.unwrap();

        assert_eq!(shed.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[http::header::RETRY_AFTER], "1");
        assert!(shed.headers().contains_key(request_id::HEADER), "a shed response has a request id too");
        assert!(json(shed).await["error"].is_string());
        release.notify_one();
        assert_eq!(held.await.unwrap().status(), http::StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_for_a_slot_is_served_once_the_slot_is_freed() {
        let release = Arc::new(Notify::new());
        let mut service = one_slot(holds(release.clone()));
        let held = tokio::spawn(service.ready().await.unwrap().call(get("/hold")));

        let waiting = tokio::spawn(service.clone().oneshot(get("/other")));
        tokio::task::yield_now().await;
        release.notify_one();

        assert_eq!(held.await.unwrap().unwrap().status(), http::StatusCode::OK);
        assert_eq!(waiting.await.unwrap().unwrap().status(), http::StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_are_answered_while_every_slot_is_held() {
        let release = Arc::new(Notify::new());
        let mut service = one_slot(holds(release.clone()));
        let _held = service.ready().await.unwrap().call(get("/hold"));

        let probe = service.clone().oneshot(get("/livez")).await.unwrap();

        assert_eq!(probe.status(), http::StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_outlasts_the_request_timeout_gets_a_json_504() {
        let never = service_fn(|_: Request| std::future::pending::<Result<Response, Infallible>>());

        let response = one_slot(never).oneshot(get("/slow")).await.unwrap();

        assert_eq!(response.status(), http::StatusCode::GATEWAY_TIMEOUT);
        assert!(json(response).await["error"].is_string());
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_json_500_without_the_panic_message() {
        let panics = service_fn(|_: Request| async { panic!("secret detail") });

        let response = one_slot(panics).oneshot(get("/boom")).await.unwrap();

        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], "application/json");
        let body = json(response).await;
        assert!(!body.to_string().contains("secret"), "{body}");
    }

    /// A service that answers with the request id it was given.
    fn echo_id(
    ) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
    {
        service_fn(|request: Request| async move {
            let id = request.extensions().get::<RequestId>().map(|id| id.as_str().to_owned());
            Ok::<_, Infallible>(id.unwrap_or_default().into_response())
        })
    }

    #[tokio::test]
    async fn a_clients_request_id_is_handed_to_the_route_and_echoed() {
        let mut request = get("/id");
        request.headers_mut().insert(request_id::HEADER, http::HeaderValue::from_static("client-id-1"));

        let response = one_slot(echo_id()).oneshot(request).await.unwrap();

        assert_eq!(response.headers()[request_id::HEADER], "client-id-1");
        let seen = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&seen[..], b"client-id-1");
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_new_one_that_the_route_sees_and_the_response_echoes() {
        let response = one_slot(echo_id()).oneshot(get("/id")).await.unwrap();

        let echoed = response.headers()[request_id::HEADER].to_str().unwrap().to_owned();
        let seen = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert!(!echoed.is_empty());
        assert_eq!(seen, echoed.as_bytes());
    }

    #[tokio::test]
    async fn an_http_1_1_request_without_a_host_header_is_refused_with_a_400() {
        let request = http::Request::get("/x").body(Body::empty()).unwrap();

        let response = one_slot(echo_id()).oneshot(request).await.unwrap();

        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
    }
}
