//! The call policy, in the order a call meets it: one deadline for the
//! whole call, a ready replica per attempt, retries on another replica
//! within a budget, and gRPC failures turned into errors a REST caller can
//! act on.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use plumbing::{
    errors::chain,
    proto::{service1_client::Service1Client, ProcessNameRequest},
    request_id, ApiError, ErrorKind, RequestId,
};
use tonic::{metadata::MetadataValue, Code, Status};
use tower::retry::budget::{Budget, TpsBudget};
use tracing::{Instrument, Span};

use crate::upstream::{endpoint::Lease, Address, Pool, UpstreamMetrics};

/// Retries wait from this...
const BACKOFF_BASE: Duration = Duration::from_millis(10);
/// ...doubling per attempt, up to this, with jitter.
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// How long the retry budget remembers calls.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// How calls to service1 behave.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Deadline of the whole call, retries included; sent as grpc-timeout.
    pub deadline: Duration,
    /// How long a call waits for a ready replica before failing.
    pub fail_fast: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Retries may add this share of calls (0.2 = 20%)...
    pub retry_ratio: f32,
    /// ...plus this many retries per second.
    pub retry_floor_per_second: u32,
}

/// service1 as service2 sees it.
#[derive(Clone)]
pub struct Service1 {
    pool: Pool,
    deadline: Duration,
    fail_fast: Duration,
    retries: Arc<Retries>,
}

/// Whether a failed attempt is sent again.
struct Retries {
    max_attempts: u32,
    budget: TpsBudget,
    metrics: Arc<UpstreamMetrics>,
}

/// How an attempt that reached a replica failed.
enum Failed {
    /// The call's deadline passed first.
    OutOfTime,
    /// service1 answered with an error, or the connection broke.
    Status(Status),
}

// === impl Service1 ===

impl Service1 {
    pub fn new(pool: Pool, policy: CallPolicy, metrics: Arc<UpstreamMetrics>) -> Self {
        let budget = TpsBudget::new(BUDGET_WINDOW, policy.retry_floor_per_second, policy.retry_ratio);
        let retries = Retries { max_attempts: policy.max_attempts, budget, metrics };
        Self { pool, deadline: policy.deadline, fail_fast: policy.fail_fast, retries: Arc::new(retries) }
    }

    /// Asks service1 to process `name` on behalf of request `id`.
    pub async fn process_name(&self, name: String, id: &RequestId) -> Result<String, ApiError> {
        let deadline = Instant::now() + self.deadline;
        // Every call adds to the budget; only retries take from it.
        self.retries.budget.deposit();
        let mut avoid = None;
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(lease) = self.pool.ready(remaining.min(self.fail_fast), avoid.as_ref()).await else {
                tracing::warn!(attempt, "no service1 replica is ready");
                let kind = if remaining.is_zero() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
                return Err(caller_error(kind));
            };
            let replica = lease.address().clone();
            // One client span per attempt, so retries show in the trace.
            let span = attempt_span(id, attempt, &replica);
            let status = match send(lease, &name, id, remaining, &span).await {
                Ok(upper) => return Ok(upper),
                Err(Failed::OutOfTime) => {
                    span.in_scope(|| tracing::warn!(deadline = ?self.deadline, endpoint = %replica, "call to service1 ran out of time"));
                    return Err(caller_error(ErrorKind::Timeout));
                }
                Err(Failed::Status(status)) => status,
            };
            let backoff = span.in_scope(|| self.retries.after(attempt, deadline, &replica, &status))?;
            avoid = Some(replica);
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

fn attempt_span(id: &RequestId, attempt: u32, replica: &Address) -> Span {
    tracing::info_span!(
        "grpc_call",
        request_id = %id,
        attempt,
        otel.name = "app.grpc.Service1/ProcessName",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        "rpc.system" = "grpc",
        "rpc.service" = "app.grpc.Service1",
        "rpc.method" = "ProcessName",
        "server.address" = %replica.host(),
        "server.port" = %replica.port(),
        "rpc.grpc.status_code" = tracing::field::Empty,
    )
}

/// One attempt on `lease`, within `remaining`, recorded on `span`.
async fn send(
    lease: Lease,
    name: &str,
    id: &RequestId,
    remaining: Duration,
    span: &Span,
) -> Result<String, Failed> {
    let mut request = tonic::Request::new(ProcessNameRequest { name: name.to_owned() });
    // Sent as `grpc-timeout`, so service1 knows when to give up too.
    request.set_timeout(remaining);
    if let Ok(value) = MetadataValue::try_from(id.as_str()) {
        request.metadata_mut().insert(request_id::METADATA_KEY, value);
    }
    plumbing::telemetry::inject(span, request.metadata_mut());
    let origin = lease.origin();
    let mut client = Service1Client::with_origin(lease, origin);
    let outcome =
        tokio::time::timeout(remaining, client.process_name(request)).instrument(span.clone()).await;
    let code = match &outcome {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => Code::DeadlineExceeded,
    };
    span.record("rpc.grpc.status_code", code as i64);
    if code != Code::Ok {
        span.record("otel.status_code", "ERROR");
    }
    match outcome {
        Ok(Ok(response)) => Ok(response.into_inner().name),
        Ok(Err(status)) => Err(Failed::Status(status)),
        Err(_elapsed) => Err(Failed::OutOfTime),
    }
}

// === impl Retries ===

impl Retries {
    /// After attempt number `attempt` failed with `status`: the backoff
    /// before the next attempt, or what the caller is told. Retried is only
    /// what is safe and worth sending again, while attempts, time before
    /// `deadline`, and the budget last.
    fn after(
        &self,
        attempt: u32,
        deadline: Instant,
        replica: &Address,
        status: &Status,
    ) -> Result<Duration, ApiError> {
        if is_retryable(status) && attempt < self.max_attempts {
            let backoff = backoff(attempt);
            if Instant::now() + backoff >= deadline {
                tracing::warn!(attempt, "no time left to retry the call to service1");
            } else if !self.budget.withdraw() {
                self.metrics.budget_exhausted.inc();
                tracing::warn!(attempt, "retry budget exhausted; not retrying the call to service1");
            } else {
                self.metrics.retries.inc();
                tracing::warn!(
                    attempt,
                    endpoint = %replica,
                    grpc_status = ?status.code(),
                    detail = %chain(status),
                    backoff_ms = backoff.as_millis() as u64,
                    "call to service1 failed; retrying on another replica"
                );
                return Ok(backoff);
            }
        }
        tracing::warn!(attempt, endpoint = %replica, grpc_status = ?status.code(), detail = %chain(status), "call to service1 failed");
        Err(caller_error(error_kind(status, deadline)))
    }
}

/// UNAVAILABLE says service1 did not take the call; a broken connection
/// (refused, reset, closed) says nothing about service1 at all.
/// ProcessName is a pure function, so either is safe to send again, even
/// if it reached service1.
fn is_retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable || connection_broke(status)
}

/// Did the call fail because its connection did, rather than because
/// service1 answered with an error? Calls go through hyper directly, so
/// such a failure carries hyper's error, or an I/O error, as its source.
fn connection_broke(status: &Status) -> bool {
    use std::error::Error;
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<hyper::Error>() || error.is::<std::io::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Exponential backoff with jitter: half fixed, half random.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX);
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Whatever ends a call at its deadline is a timeout, even if service1's
/// own deadline fired first and said so differently.
fn error_kind(status: &Status, deadline: Instant) -> ErrorKind {
    if Instant::now() >= deadline {
        ErrorKind::Timeout
    } else {
        ErrorKind::from_upstream(status.code())
    }
}

/// What a REST caller is told; the gRPC detail stays in the log line.
fn caller_error(kind: ErrorKind) -> ApiError {
    let message = match kind {
        ErrorKind::InvalidInput => "service1 rejected the name",
        ErrorKind::Unavailable => "service1 is unavailable",
        ErrorKind::Timeout => "service1 did not answer in time",
        ErrorKind::Overloaded => "service1 is overloaded, try again later",
        _ => "service1 failed to process the name",
    };
    ApiError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_attempts_stays_jittered_and_capped() {
        for attempt in 1..20 {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX);
            let delay = backoff(attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{attempt}: {delay:?}");
        }
    }
}
