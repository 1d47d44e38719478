//! The plaintext admin port: `grpc.health.v1.Health` for the kubelet's
//! native `grpc:` probes (which cannot speak TLS), `GET /livez` and
//! `GET /readyz` for people and HTTP probes, and `GET /metrics` for
//! Prometheus. It serves nothing sensitive.

use std::sync::{
    atomic::{AtomicU8, Ordering},
    Arc,
};

use axum::{extract::State, response::IntoResponse, routing::get, Json, Router};
use http::StatusCode;
use serde_json::{json, Value};
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
    ServingStatus,
};

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
}

// === impl Health ===

impl Health {
    /// Starts NOT_SERVING; call [`Health::serving`] once the service is
    /// really able to serve.
    pub async fn new(services: &[&'static str], details: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        let reporter = HealthReporter::new();
        let health = Self {
            inner: Arc::new(HealthInner {
                reporter,
                services: services.to_vec(),
                phase: AtomicU8::new(Phase::Starting as u8),
                details: Box::new(details),
            }),
        };
        health.report(ServingStatus::NotServing).await;
        health
    }

    /// A `grpc.health.v1.Health` service reporting this state.
    pub fn grpc_service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.inner.reporter.clone()))
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

    /// The admin routes: gRPC health, `/livez` and `/readyz`.
    pub fn router(&self, limits: &crate::config::HttpLimits) -> Router {
        let http = Router::new()
            .route("/livez", get(|| async { Json(json!({ "status": "alive" })) }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone());
        let grpc = tonic::service::Routes::new(self.grpc_service()).into_axum_router();
        crate::http::with_common_layers(http.merge(grpc), limits)
    }
}

async fn metrics() -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(http::header::CONTENT_TYPE, content_type)], crate::metrics::global().render())
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
