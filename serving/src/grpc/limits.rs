//! The limits layer: how many calls run at once, in all and per client
//! identity (shed at once with RESOURCE_EXHAUSTED, no queue), how long one
//! call may take, and RESOURCE_EXHAUSTED rather than tonic's OUT_OF_RANGE
//! for an oversized message.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::tls::{server::PeerInfo, Identity, Logged};

/// Limits in front of a gRPC server:
/// - at most `max_calls` calls at once (beyond that, RESOURCE_EXHAUSTED at
///   once, rather than a queue), and at most `per_identity` of them from
///   one client identity, so one caller cannot take every slot;
/// - each call ends with DEADLINE_EXCEEDED after `call_timeout`, whatever
///   grpc-timeout it sent (tonic's own deadline, from grpc-timeout, still
///   ends a shorter one), so a call that never finishes its message frees
///   its slot;
/// - oversized messages reported as RESOURCE_EXHAUSTED, as the gRPC spec
///   asks (tonic says OUT_OF_RANGE).
#[derive(Debug, Clone)]
pub struct LimitsLayer {
    permits: Arc<Semaphore>,
    per_identity: usize,
    /// Calls in flight per client identity (the SANs of its certificate);
    /// an identity is dropped when it has none, so this holds at most
    /// `max_calls` entries.
    held: Arc<Mutex<Held>>,
    call_timeout: Duration,
}

impl LimitsLayer {
    pub fn new(max_calls: usize, per_identity: usize, call_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_calls)),
            per_identity,
            held: Arc::default(),
            call_timeout,
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limits { inner, limits: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Limits<S> {
    inner: S,
    limits: LimitsLayer,
}

/// Calls in flight by identity. Each call hashes its identity three
/// times (take a slot, give it back, remove the emptied entry), so the
/// hasher shows in every call's cost: foldhash, seeded per map, takes a
/// fraction of what the standard library's SipHash does (the README's
/// performance section has the measurement). The keys come from
/// certificates our CA signed, not from what a client makes up.
type Held = HashMap<Arc<[Identity]>, usize, foldhash::fast::RandomState>;

/// One call's share of its identity's slots, given back when dropped.
struct IdentitySlot {
    held: Arc<Mutex<Held>>,
    identity: Arc<[Identity]>,
}

impl Drop for IdentitySlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.identity) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.identity);
            }
        }
    }
}

// === impl LimitsLayer ===

impl LimitsLayer {
    /// A slot for one more call of `identity`, unless it holds its share.
    /// Without TLS there are no identities, and only the total applies.
    fn identity_slot(&self, identity: Option<&Arc<[Identity]>>) -> Result<Option<IdentitySlot>, ()> {
        let Some(identity) = identity.filter(|i| !i.is_empty()) else { return Ok(None) };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(identity.clone()).or_insert(0);
        if *count >= self.per_identity {
            return Err(());
        }
        *count += 1;
        Ok(Some(IdentitySlot { held: self.held.clone(), identity: identity.clone() }))
    }
}

/// The start of tonic's message for a message over the decoding limit, as
/// sent (grpc-message is percent-encoded).
const TOO_LARGE: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";

// === impl Limits ===

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Limits<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<TooLargeIsResourceExhausted<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let identity = request.extensions().get::<PeerInfo>().map(|p| &p.identities);
        let Ok(identity_slot) = self.limits.identity_slot(identity) else {
            let identities = Logged(identity.map_or(&[][..], |i| &i[..]));
            tracing::warn!(identities = %identities, "shedding load: this client holds its share of the call slots");
            return shed("this client has too many calls in flight, try again shortly");
        };
        let Ok(permit) = self.limits.permits.clone().try_acquire_owned() else {
            tracing::warn!("shedding load: too many gRPC calls in flight");
            return shed("too many calls in flight, try again shortly");
        };
        let call_timeout = self.limits.call_timeout;
        let call = tokio::time::timeout(call_timeout, self.inner.call(request));
        Box::pin(async move {
            let Ok(response) = call.await else {
                tracing::warn!(timeout = ?call_timeout, "gRPC call timed out (GRPC_CALL_TIMEOUT)");
                let status = tonic::Status::deadline_exceeded("the call took longer than the server allows");
                return Ok(status.into_http::<ResBody>().map(|inner| TooLargeIsResourceExhausted { inner }));
            };
            let mut response = response?;
            drop((permit, identity_slot));
            // The status is in the headers when the call failed before any
            // message was sent, else in the trailers (see the body).
            rewrite_too_large(response.headers_mut());
            Ok(response.map(|inner| TooLargeIsResourceExhausted { inner }))
        })
    }
}

type Shed<B, E> =
    Pin<Box<dyn Future<Output = Result<http::Response<TooLargeIsResourceExhausted<B>>, E>> + Send>>;

/// RESOURCE_EXHAUSTED at once: no queue.
fn shed<B: Default + Send + 'static, E: Send + 'static>(message: &'static str) -> Shed<B, E> {
    let status = tonic::Status::resource_exhausted(message);
    let response = status.into_http::<B>().map(|inner| TooLargeIsResourceExhausted { inner });
    Box::pin(std::future::ready(Ok(response)))
}

fn rewrite_too_large(headers: &mut http::HeaderMap) {
    let too_large = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers.get("grpc-message").is_some_and(|m| m.as_bytes().starts_with(TOO_LARGE));
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

pin_project_lite::pin_project! {
    /// A response body whose trailers report an oversized message as
    /// RESOURCE_EXHAUSTED.
    pub struct TooLargeIsResourceExhausted<B> {
        #[pin]
        inner: B,
    }
}

impl<B: Default> Default for TooLargeIsResourceExhausted<B> {
    fn default() -> Self {
        Self { inner: B::default() }
    }
}

impl<B: Body> Body for TooLargeIsResourceExhausted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut polled = self.project().inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled {
            if let Some(trailers) = frame.trailers_mut() {
                rewrite_too_large(trailers);
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn calls_beyond_the_limit_get_resource_exhausted_at_once_and_room_frees_up() {
        let release = Arc::new(Notify::new());
        let inner = tower::service_fn({
            let release = release.clone();
            move |_: http::Request<()>| {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Ok::<_, Infallible>(http::Response::new(String::new()))
                }
            }
        });
        let service = LimitsLayer::new(1, 1, Duration::from_secs(60)).layer(inner);

        let first = tokio::spawn(service.clone().oneshot(http::Request::new(())));
        tokio::task::yield_now().await;
        let shed = service.clone().oneshot(http::Request::new(())).await.unwrap();
        let shed_status = shed.headers()["grpc-status"].clone();
        release.notify_one();
        first.await.unwrap().unwrap();
        release.notify_one();
        let admitted = service.oneshot(http::Request::new(())).await.unwrap();

        assert_eq!(shed_status, "8");
        assert!(admitted.headers().get("grpc-status").is_none());
    }
}
