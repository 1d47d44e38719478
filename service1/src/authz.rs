//! service1 decides who may call it: the client certificate must name an
//! identity listed in `TLS_ALLOWED_CLIENTS`, as a SAN of the entry's type
//! (a URI SAN for `spiffe://…`, a DNS SAN otherwise; see
//! `serving::tls::Identity`).

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use serving::{
    grpc::Refused,
    tls::{server::PeerInfo, Identity, Logged},
};
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct AuthorizeLayer {
    /// `None` when TLS is off: there are no identities to check.
    allowed: Option<Arc<HashSet<Identity>>>,
}

impl AuthorizeLayer {
    pub fn new(allowed: Option<&[String]>) -> Self {
        let allowed = allowed.map(|list| Arc::new(list.iter().map(|c| Identity::from_entry(c)).collect()));
        Self { allowed }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize { inner, allowed: self.allowed.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    allowed: Option<Arc<HashSet<Identity>>>,
}

// === impl Authorize ===

impl<S, B, ResBody> Service<http::Request<B>> for Authorize<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: Default + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(allowed) = &self.allowed else {
            return Box::pin(self.inner.call(request));
        };
        let peer = request.extensions().get::<PeerInfo>();
        let identities = peer.map(|p| &p.identities[..]).unwrap_or_default();
        // Health included: a certificate from the CA is not enough to call
        // anything here. Unlisted callers would otherwise hold call slots
        // with calls that never finish, and probes have the admin port.
        if identities.iter().any(|id| allowed.contains(id)) {
            return Box::pin(self.inner.call(request));
        }
        tracing::warn!(
            peer = ?peer.map(|p| p.remote_addr),
            identities = %Logged(identities),
            "caller's certificate is valid but its identity is not in TLS_ALLOWED_CLIENTS"
        );
        let denied = tonic::Status::permission_denied("this client is not allowed to call service1");
        // The caller chose the path: it must not become a metric label.
        Box::pin(Refused::respond(denied))
    }
}
