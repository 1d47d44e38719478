//! The plaintext admin port: `grpc.health.v1.Health` for the kubelet's
//! native `grpc:` probes (which cannot speak TLS), `GET /livez` and
//! `GET /readyz` for people and HTTP probes, and `GET /metrics` for
//! Prometheus. It serves nothing sensitive.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use axum::{extract::State, response::IntoResponse, routing::get, Json, Router};
use http::StatusCode;
use http_body::{Body, Frame};
use serde_json::{json, Value};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::server::NamedService;
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
    ServingStatus,
};

use observability::{Metrics, Observability};
use settings::{AdminLimits, ConnectionLimits, HttpLimits};

/// What the kubelet and people probe. They are cheap, so they take no
/// request slot: whoever holds the admin port's slots, a probe is still
/// answered. A Check whose message never comes holds only its stream, and
/// `ADMIN_MAX_CONCURRENT_STREAMS` bounds those per connection.
const PROBES: &[&str] = &["/livez", "/readyz", "/grpc.health.v1.Health/Check"];

/// Where a service is in its life, as probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Listeners not bound or certificates not loaded yet.
    Starting = 0,
    Serving = 1,
    /// SIGTERM received: still answering, but asking to be taken out of
    /// load balancing before it stops accepting.
    Draining = 2,
}

/// The truth about a service's health, shared by its gRPC health service
/// (on the admin port, and on service1's mTLS port) and `/readyz`.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    reporter: HealthReporter,
    /// gRPC service names reported besides "" (the whole server).
    services: Vec<&'static str>,
    phase: AtomicU8,
    /// Extra facts for `/readyz` (certificate state, ready endpoints...).
    details: Box<dyn Fn() -> Value + Send + Sync>,
    /// One permit per Watch stream that may still open.
    watches: Arc<Semaphore>,
    /// Cancelled when the listeners close; every Watch stream then ends.
    closing: CancellationToken,
}

// === impl Health ===

impl Health {
    /// Starts NOT_SERVING; call [`Health::serving`] once the service is
    /// really able to serve. At most `max_watches` Watch streams are open at
    /// once, on all ports together.
    pub async fn new(
        services: &[&'static str],
        max_watches: usize,
        details: impl Fn() -> Value + Send + Sync + 'static,
    ) -> Self {
        let reporter = HealthReporter::new();
        let health = Self {
            inner: Arc::new(HealthInner {
                reporter,
                services: services.to_vec(),
                phase: AtomicU8::new(Phase::Starting as u8),
                details: Box::new(details),
                watches: Arc::new(Semaphore::new(max_watches)),
                closing: CancellationToken::new(),
            }),
        };
        health.report(ServingStatus::NotServing).await;
        health
    }

    /// A `grpc.health.v1.Health` service reporting this state.
    pub fn grpc_service(&self) -> HealthGrpc {
        HealthGrpc {
            inner: HealthServer::new(HealthService::from_health_reporter(self.inner.reporter.clone())),
            watches: self.inner.watches.clone(),
            closing: self.inner.closing.clone(),
        }
    }

    /// Ends every Watch stream (UNAVAILABLE), and any opened later at once:
    /// called as the listeners close, since a Watch never ends by itself
    /// and would hold its connection, and so the shutdown, for the whole
    /// grace period.
    pub fn close_watches(&self) {
        self.inner.closing.cancel();
    }

    pub fn phase(&self) -> Phase {
        match self.inner.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    pub async fn serving(&self) {
        self.inner.phase.store(Phase::Serving as u8, Ordering::SeqCst);
        self.report(ServingStatus::Serving).await;
    }

    pub async fn draining(&self) {
        self.inner.phase.store(Phase::Draining as u8, Ordering::SeqCst);
        self.report(ServingStatus::NotServing).await;
    }

    async fn report(&self, status: ServingStatus) {
        let reporter = &self.inner.reporter;
        reporter.set_service_status("", status).await;
        for service in &self.inner.services {
            reporter.set_service_status(*service, status).await;
        }
    }

    /// The admin routes: gRPC health, `/livez`, `/readyz` and `/metrics`.
    pub fn router(&self, limits: &HttpLimits, admin: &AdminLimits, obs: &Observability) -> Router {
        let metrics = obs.metrics.clone();
        let scrapes = Arc::new(Semaphore::new(admin.admin_max_metrics_responses as usize));
        let http = Router::new()
            .route("/livez", get(|| async { Json(json!({ "status": "alive" })) }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(move || render_metrics(metrics.clone(), scrapes.clone())))
            .with_state(self.clone());
        let grpc = tonic::service::Routes::new(self.grpc_service()).into_axum_router();
        crate::http::with_common_layers_and_probes(http.merge(grpc), limits, PROBES, obs)
    }

    /// Serves the admin routes on `listener` until `stop`, with few streams
    /// per HTTP/2 connection (a probe needs one) and connections counted
    /// apart from the other ports'.
    pub async fn serve(
        &self,
        listener: TcpListener,
        limits: &HttpLimits,
        admin: &AdminLimits,
        connections: &ConnectionLimits,
        obs: &Observability,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let router = self.router(limits, admin, obs);
        let port = crate::http::PortLimits {
            max_connections: connections.admin_max_connections,
            setting: "ADMIN_MAX_CONNECTIONS",
            streams_per_connection: admin.admin_max_concurrent_streams,
            write_timeout: connections.http_write_timeout,
            probes: PROBES,
        };
        crate::http::serve(listener, router, limits, port, &obs.metrics, stop).await
    }
}

/// The encoded descriptors of `grpc.health.v1`, for server reflection.
pub use tonic_health::pb::FILE_DESCRIPTOR_SET as HEALTH_FILE_DESCRIPTOR_SET;

/// `grpc.health.v1.Health` with its Watch streams bounded in number and
/// ended when the service stops.
#[derive(Clone)]
pub struct HealthGrpc {
    inner: HealthServer<HealthService>,
    watches: Arc<Semaphore>,
    closing: CancellationToken,
}

// === impl HealthGrpc ===

impl NamedService for HealthGrpc {
    const NAME: &'static str = <HealthServer<HealthService> as NamedService>::NAME;
}

impl<B> tower::Service<http::Request<B>> for HealthGrpc
where
    HealthServer<HealthService>:
        tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    <HealthServer<HealthService> as tower::Service<http::Request<B>>>::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<B>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !request.uri().path().ends_with("/Watch") {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = self.watches.clone().try_acquire_owned() else {
            tracing::warn!("refusing a health Watch: too many open (HEALTH_MAX_WATCHES)");
            let status = tonic::Status::resource_exhausted("too many health watches open, try again later");
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let closing = Box::pin(self.closing.clone().cancelled_owned());
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|inner| {
                tonic::body::Body::new(EndsOnClose {
                    inner,
                    closing,
                    permit: Some(permit),
                    trailers_sent: false,
                    cut_off: false,
                })
            }))
        })
    }
}

/// A Watch stream's body: it holds the stream's permit, and ends with
/// UNAVAILABLE once the service closes its listeners.
struct EndsOnClose {
    inner: tonic::body::Body,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    permit: Option<OwnedSemaphorePermit>,
    /// The stream's trailers went out: nothing may follow them.
    trailers_sent: bool,
    /// Ended by the shutdown, not by the health service.
    cut_off: bool,
}

impl Body for EndsOnClose {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.cut_off {
            return Poll::Ready(None);
        }
        if !this.trailers_sent && this.closing.as_mut().poll(cx).is_ready() {
            this.cut_off = true;
            this.permit = None;
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from(tonic::Code::Unavailable as i32));
            trailers.insert(
                "grpc-message",
                http::HeaderValue::from_static("the%20server%20is%20shutting%20down"),
            );
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => this.trailers_sent = true,
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.permit = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.cut_off || self.inner.is_end_stream()
    }
}

/// The metrics, rendered: tens of KiB each time, so at most
/// `ADMIN_MAX_METRICS_RESPONSES` at once, each counted until its client
/// has taken all of it. A scraper asks once per interval; a client that
/// asks on many streams and never opens its window would otherwise hold a
/// copy per stream (see [`crate::stalled`]).
async fn render_metrics(metrics: Metrics, scrapes: Arc<Semaphore>) -> axum::response::Response {
    let Ok(permit) = scrapes.try_acquire_owned() else {
        tracing::warn!("refusing a /metrics request: too many being answered (ADMIN_MAX_METRICS_RESPONSES)");
        let mut response = crate::ApiError::new(
            wire::ErrorKind::Overloaded,
            "too many metrics requests in flight, try again shortly",
        )
        .into_response();
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return response;
    };
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let body = HoldsPermit { inner: axum::body::Body::from(metrics.render()), _permit: permit };
    ([(http::header::CONTENT_TYPE, content_type)], axum::body::Body::new(body)).into_response()
}

pin_project_lite::pin_project! {
    /// A body that holds a permit until it is dropped.
    struct HoldsPermit<B> {
        #[pin]
        inner: B,
        _permit: OwnedSemaphorePermit,
    }
}

impl<B: Body> Body for HoldsPermit<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let (status, word) = match health.phase() {
        Phase::Serving => (StatusCode::OK, "ready"),
        Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
    };
    let mut body = json!({ "status": word });
    if let (Some(body), Value::Object(details)) = (body.as_object_mut(), (health.inner.details)()) {
        body.extend(details);
    }
    (status, Json(body))
}

/// The TLS facts both services put in `/readyz`.
pub fn tls_details(status: Option<crate::tls::TlsStatus>) -> Value {
    match status {
        None => json!({ "tls": "off" }),
        Some(s) => json!({ "tls": {
            "serial": s.serial,
            "not_after": s.not_after,
            "reloads": s.reloads,
            "reload_failures": s.reload_failures,
            "last_reload_error": s.last_error,
        }}),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn health() -> Health {
        Health::new(&["app.Svc"], 1, || json!({ "tls": "off" })).await
    }

    fn router(health: &Health) -> Router {
        let admin = AdminLimits {
            admin_max_concurrent_streams: 16,
            health_max_watches: 1,
            admin_max_metrics_responses: 1,
        };
        health.router(&HttpLimits::default(), &admin, &Observability::default())
    }

    /// `/readyz`'s status code and body.
    async fn readyz(health: &Health) -> (StatusCode, Value) {
        let request =
            http::Request::get("/readyz").header(http::header::HOST, "t").body(Body::empty()).unwrap();
        let response = router(health).oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// What `grpc.health.v1.Health/Check` says of `service`, as the wire
    /// number of its `ServingStatus` (1 SERVING, 2 NOT_SERVING).
    async fn grpc_check(health: &Health, service: &str) -> u8 {
        // A gRPC message: uncompressed, its length, then the field
        // `service` (1, length-delimited) when not empty.
        let mut message = Vec::new();
        if !service.is_empty() {
            message.extend_from_slice(&[0x0a, service.len() as u8]);
            message.extend_from_slice(service.as_bytes());
        }
        let mut framed = vec![0];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        let request = http::Request::post("/grpc.health.v1.Health/Check")
            .version(http::Version::HTTP_2)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .body(Body::from(framed))
            .unwrap();
        let response = router(health).oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        // The reply: the frame header, then field `status` (1, varint).
        assert_eq!(body.len(), 7, "{body:?}");
        assert_eq!(&body[..6], &[0, 0, 0, 0, 2, 0x08], "{body:?}");
        body[6]
    }

    #[tokio::test]
    async fn a_starting_service_is_not_ready_and_not_serving() {
        let health = health().await;

        assert_eq!(health.phase(), Phase::Starting);
        let (status, body) = readyz(&health).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({ "status": "starting", "tls": "off" }));
        assert_eq!(grpc_check(&health, "").await, 2);
        assert_eq!(grpc_check(&health, "app.Svc").await, 2);
    }

    #[tokio::test]
    async fn a_serving_service_is_ready_and_serving_for_the_server_and_each_service() {
        let health = health().await;

        health.serving().await;

        let (status, body) = readyz(&health).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "status": "ready", "tls": "off" }));
        assert_eq!(grpc_check(&health, "").await, 1);
        assert_eq!(grpc_check(&health, "app.Svc").await, 1);
    }

    #[tokio::test]
    async fn a_draining_service_is_not_ready_and_not_serving_though_still_alive() {
        let health = health().await;
        health.serving().await;

        health.draining().await;

        let (status, body) = readyz(&health).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "draining");
        assert_eq!(grpc_check(&health, "").await, 2);
        let livez = http::Request::get("/livez").header(http::header::HOST, "t").body(Body::empty()).unwrap();
        assert_eq!(router(&health).oneshot(livez).await.unwrap().status(), StatusCode::OK);
    }
}
