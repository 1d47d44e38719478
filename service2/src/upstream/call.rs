//! The call policy, in the order a call meets it: one deadline for the
//! whole call, a ready replica per attempt, a timeout per attempt, retries
//! on another replica within a budget, and gRPC failures turned into errors
//! a REST caller can act on.
//!
//! Each attempt's outcome is also the replica's record (see `outlier`): an
//! attempt that timed out, broke its connection, or found service1 unable
//! to serve (UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS, DEADLINE_EXCEEDED)
//! counts against the replica; any other answer, an error for the caller
//! included, counts for it.

use std::{sync::Arc, time::Duration};

use observability::{
    metrics::{GrpcCall, GrpcMethod, MethodMetrics},
    Traces,
};
use serving::{errors::chain, ApiError};
use tokio::time::Instant;
use tonic::{metadata::MetadataValue, Code, Status};
use tower::retry::budget::{Budget, TpsBudget};
use tracing::{Instrument, Span};
use wire::{
    proto::{service1_client, service1_server, ProcessNameRequest, ProcessNameResponse},
    request_id, ErrorKind, RequestId,
};

use crate::upstream::{endpoint::Lease, header_limit, Address, Pool, UpstreamMetrics};

/// Retries wait from this...
const BACKOFF_BASE: Duration = Duration::from_millis(10);
/// ...doubling per attempt, up to this, with jitter.
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// How long the retry budget remembers calls.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// The method called, as `grpc_client_*` metrics label it.
const PROCESS_NAME: GrpcMethod = GrpcMethod::unary(service1_server::SERVICE_NAME, "ProcessName");

/// How calls to service1 behave.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Deadline of the whole call, retries included.
    pub deadline: Duration,
    /// Deadline of each attempt, within the call's; sent as its
    /// grpc-timeout. A replica that has not answered by then is given up on
    /// (RST_STREAM CANCEL) and the call tried on another.
    pub attempt_timeout: Duration,
    /// How long an attempt waits for a ready replica before the call fails
    /// (SERVICE1_READY_WAIT).
    pub ready_wait: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Retries may add this share of calls (0.2 = 20%)...
    pub retry_ratio: f32,
    /// ...plus this many retries per second.
    pub retry_floor_per_second: u32,
}

/// service2's client of service1: the call policy over the pool.
#[derive(Clone)]
pub struct Service1Client {
    pool: Pool,
    deadline: Duration,
    attempt_timeout: Duration,
    ready_wait: Duration,
    retries: Arc<Retries>,
    traces: Traces,
    /// `grpc_client_*` series of ProcessName.
    calls: MethodMetrics,
}

/// Whether a failed attempt is sent again.
struct Retries {
    max_attempts: u32,
    budget: TpsBudget,
    metrics: Arc<UpstreamMetrics>,
}

/// How an attempt that reached a replica failed.
enum Failed {
    /// Its deadline passed before an answer came.
    TimedOut,
    /// service1 answered with an error, or the connection broke.
    Status(Status),
}

// === impl Service1Client ===

impl Service1Client {
    pub fn new(pool: Pool, policy: CallPolicy, metrics: Arc<UpstreamMetrics>, traces: Traces) -> Self {
        let budget = TpsBudget::new(BUDGET_WINDOW, policy.retry_floor_per_second, policy.retry_ratio);
        let calls = metrics.grpc.method(PROCESS_NAME);
        let retries = Retries { max_attempts: policy.max_attempts, budget, metrics };
        let (deadline, ready_wait, attempt_timeout) =
            (policy.deadline, policy.ready_wait, policy.attempt_timeout);
        Self { pool, deadline, attempt_timeout, ready_wait, retries: Arc::new(retries), traces, calls }
    }

    /// Asks service1 to process `name` on behalf of request `id`.
    ///
    /// Each attempt is a gRPC call in `grpc_client_*`, as an interceptor
    /// would count it, from asking for a replica to the status: one that
    /// finds no replica ready ends UNAVAILABLE (DEADLINE_EXCEEDED once the
    /// deadline has passed) with no message sent, as a gRPC channel with no
    /// ready connection fails it.
    pub async fn process_name(&self, name: &str, id: &RequestId) -> Result<String, ApiError> {
        let deadline = Instant::now() + self.deadline;
        // Every call adds to the budget; only retries take from it.
        self.retries.budget.deposit();
        let mut avoid = None;
        let mut attempt = 1;
        loop {
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            let attempt_deadline = deadline.min(now + self.attempt_timeout);
            let counted = self.calls.start(now).with_deadline(Some(attempt_deadline));
            let Some(lease) = self.pool.ready(remaining.min(self.ready_wait), avoid.as_ref()).await else {
                tracing::warn!(attempt, "no service1 replica is ready");
                // The wait may have used up the rest of the deadline.
                let (kind, code) = if Instant::now() >= deadline {
                    (ErrorKind::Timeout, Code::DeadlineExceeded)
                } else {
                    (ErrorKind::Unavailable, Code::Unavailable)
                };
                counted.handled(code);
                return Err(caller_error(kind));
            };
            // The attempt's own time, from now (a replica may have taken a
            // while to be ready), within what is left of the call's.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt_time = remaining.min(self.attempt_timeout);
            let endpoint = lease.lessor().clone();
            let replica = endpoint.address();
            // One client span per attempt, so retries show in the trace.
            let span = attempt_span(id, attempt, replica);
            let status = match send(lease, name, id, attempt_time, &span, self.traces, counted).await {
                Ok(upper) => {
                    endpoint.succeeded();
                    return Ok(upper);
                }
                Err(Failed::TimedOut) if attempt_time == remaining => {
                    endpoint.timed_out();
                    span.in_scope(|| tracing::warn!(deadline = ?self.deadline, endpoint = %replica, "call to service1 ran out of time"));
                    return Err(caller_error(ErrorKind::Timeout));
                }
                Err(Failed::TimedOut) => {
                    endpoint.timed_out();
                    self.retries.metrics.attempt_timeouts.inc();
                    Status::deadline_exceeded(format!(
                        "no answer within the attempt timeout ({attempt_time:?})"
                    ))
                }
                Err(Failed::Status(status)) => {
                    if header_limit::refused_locally(&status) {
                        // Never sent: it says nothing about the replica.
                    } else if says_the_replica_failed(&status) {
                        endpoint.failed();
                    } else {
                        endpoint.succeeded();
                    }
                    status
                }
            };
            let backoff = span.in_scope(|| self.retries.after(attempt, deadline, replica, &status))?;
            avoid = Some(replica.clone());
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
        "rpc.service" = PROCESS_NAME.service,
        "rpc.method" = PROCESS_NAME.method,
        "server.address" = %replica.host(),
        "server.port" = %replica.port(),
        "rpc.grpc.status_code" = tracing::field::Empty,
        "app.object_id" = tracing::field::Empty,
    )
}

/// The ObjectId service1 assigned to the name (issue 23), if it sent one
/// (the original service1 does not): on the attempt's span, and in a debug
/// line, so the default log stays one line per request. A malformed one
/// is a warning and nothing more: the name is what the caller asked for.
fn note_object_id(response: &ProcessNameResponse, span: &Span) {
    match response.object_id() {
        Ok(Some(id)) => {
            span.record("app.object_id", tracing::field::display(id));
            span.in_scope(|| tracing::debug!(object_id = %id, "service1 assigned an ObjectId"));
        }
        Ok(None) => {}
        Err(error) => span.in_scope(|| tracing::warn!(%error, "service1 sent a malformed ObjectId")),
    }
}

/// One attempt on `lease`, within `remaining` (dropping it at the timeout
/// resets its stream with CANCEL), recorded on `span` and as
/// `counted` (unary: one message sent as the request is handed to the
/// connection, one received with an OK answer).
async fn send(
    lease: Lease,
    name: &str,
    id: &RequestId,
    remaining: Duration,
    span: &Span,
    traces: Traces,
    counted: GrpcCall,
) -> Result<String, Failed> {
    let mut request = tonic::Request::new(ProcessNameRequest { name: name.to_owned() });
    // Sent as `grpc-timeout`, so service1 knows when to give up too.
    request.set_timeout(remaining);
    if let Ok(mut value) = MetadataValue::try_from(id.as_str()) {
        // New with every call: HPACK would add each one to both sides'
        // tables only to evict it later. Marked sensitive, it is sent as
        // a literal that neither side indexes.
        value.set_sensitive(true);
        request.metadata_mut().insert(request_id::METADATA_KEY, value);
    }
    traces.inject(span, request.metadata_mut());
    let origin = lease.origin();
    let mut client = service1_client::Service1Client::with_origin(lease, origin);
    counted.method().sent(1);
    let outcome =
        tokio::time::timeout(remaining, client.process_name(request)).instrument(span.clone()).await;
    let code = match &outcome {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => Code::DeadlineExceeded,
    };
    if code == Code::Ok {
        counted.method().received(1);
    }
    counted.handled(code);
    span.record("rpc.grpc.status_code", code as i64);
    if code != Code::Ok {
        span.record("otel.status_code", "ERROR");
    }
    match outcome {
        Ok(Ok(response)) => {
            let response = response.into_inner();
            note_object_id(&response, span);
            Ok(response.name)
        }
        Ok(Err(status)) => Err(Failed::Status(status)),
        Err(_elapsed) => Err(Failed::TimedOut),
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

/// UNAVAILABLE says service1 did not take the call; DEADLINE_EXCEEDED
/// before the call's own deadline, that one replica did not answer within
/// the attempt's; a broken connection (refused, reset, closed) says nothing
/// about service1 at all. ProcessName is a pure function, so each is safe
/// to send again, even if it reached service1.
fn is_retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) || connection_broke(status)
}

/// Whether a failed attempt counts against its replica (for ejection):
/// it could not serve, rather than answered the caller with an error.
fn says_the_replica_failed(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown | Code::DataLoss
    ) || connection_broke(status)
}

/// Did the call fail because its connection did, rather than because
/// service1 answered with an error? Calls go onto HTTP/2 connections
/// directly (h2), so such a failure carries h2's error, or an I/O error,
/// as its source.
fn connection_broke(status: &Status) -> bool {
    use std::error::Error;
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<h2::Error>() || error.is::<std::io::Error>() {
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
        ErrorKind::from_upstream(serving::errors::grpc_code(status.code()))
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
    use std::io;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::upstream::{Dialer, EjectionPolicy, Refresh};

    fn retries(max_attempts: u32, budget: TpsBudget) -> Retries {
        Retries { max_attempts, budget, metrics: Arc::new(UpstreamMetrics::default()) }
    }

    /// A budget with retries to spare.
    fn ample() -> TpsBudget {
        TpsBudget::new(BUDGET_WINDOW, 100, 1.0)
    }

    /// A budget that allows no retry at all.
    fn spent() -> TpsBudget {
        TpsBudget::new(BUDGET_WINDOW, 0, 0.0)
    }

    fn replica() -> Address {
        Address::parse("10.0.0.7:50051").unwrap()
    }

    fn far_off() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// What tonic makes of a call whose connection was reset.
    fn connection_reset() -> Status {
        Status::from_error(Box::new(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset")))
    }

    #[test]
    fn a_call_refused_with_unavailable_is_retried_after_a_backoff_and_counted() {
        let retries = retries(3, ample());

        let next = retries.after(1, far_off(), &replica(), &Status::unavailable("shutting down"));

        assert!(next.is_ok_and(|backoff| backoff <= BACKOFF_MAX));
        assert_eq!(retries.metrics.retries.get(), 1);
    }

    #[test]
    fn a_call_whose_connection_broke_is_retried_whatever_its_code() {
        let status = connection_reset();
        assert_eq!(status.code(), Code::Unknown);

        assert!(retries(3, ample()).after(1, far_off(), &replica(), &status).is_ok());
    }

    #[test]
    fn an_answer_from_service1_is_not_retried_and_keeps_its_meaning() {
        let retries = retries(3, ample());
        let cases = [
            (Status::invalid_argument("empty"), ErrorKind::InvalidInput, "service1 rejected the name"),
            (
                Status::resource_exhausted("busy"),
                ErrorKind::Overloaded,
                "service1 is overloaded, try again later",
            ),
            (Status::internal("bug"), ErrorKind::BadUpstream, "service1 failed to process the name"),
        ];

        for (status, kind, message) in cases {
            let error = retries.after(1, far_off(), &replica(), &status).unwrap_err();
            assert_eq!((error.kind, error.message.as_ref()), (kind, message), "{status:?}");
        }
        assert_eq!(retries.metrics.retries.get(), 0);
    }

    #[test]
    fn the_last_attempt_is_not_retried() {
        let retries = retries(3, ample());

        let error = retries.after(3, far_off(), &replica(), &Status::unavailable("down")).unwrap_err();

        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert_eq!(retries.metrics.retries.get(), 0);
    }

    #[test]
    fn no_retry_is_made_once_the_deadline_has_passed_and_the_caller_is_told_it_timed_out() {
        let retries = retries(3, ample());

        let error = retries.after(1, Instant::now(), &replica(), &Status::unavailable("down")).unwrap_err();

        assert_eq!(error.kind, ErrorKind::Timeout);
        assert_eq!(retries.metrics.retries.get(), 0);
    }

    #[test]
    fn an_exhausted_budget_stops_retries_and_is_counted() {
        let retries = retries(3, spent());

        let error = retries.after(1, far_off(), &replica(), &Status::unavailable("down")).unwrap_err();

        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert_eq!((retries.metrics.retries.get(), retries.metrics.budget_exhausted.get()), (0, 1));
    }

    #[test]
    fn a_failure_at_the_deadline_is_a_timeout_whatever_service1_said() {
        assert_eq!(error_kind(&Status::cancelled("gone"), Instant::now()), ErrorKind::Timeout);
        assert_eq!(error_kind(&Status::cancelled("gone"), far_off()), ErrorKind::BadUpstream);
    }

    #[test]
    fn backoff_grows_with_attempts_stays_jittered_and_capped() {
        for attempt in 1..20 {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX);
            let delay = backoff(attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{attempt}: {delay:?}");
        }
    }

    /// service1 as a pool that never has a replica sees it.
    fn without_replicas(policy: CallPolicy) -> Service1Client {
        let dialer = Dialer::plaintext();
        let metrics = Arc::new(UpstreamMetrics::default());
        let stop = CancellationToken::new();
        let pool = Pool::new(dialer, Refresh::default(), EjectionPolicy::default(), metrics.clone(), stop);
        Service1Client::new(pool, policy, metrics, Traces::default())
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_replica_a_call_fails_with_503_after_its_ready_wait_not_its_deadline() {
        let policy = CallPolicy {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(1),
            ready_wait: Duration::from_secs(1),
            max_attempts: 3,
            retry_ratio: 0.2,
            retry_floor_per_second: 10,
        };
        let service1 = without_replicas(policy.clone());
        let started = tokio::time::Instant::now();

        let error = service1.process_name("x", &RequestId::generate()).await.unwrap_err();

        assert_eq!((error.kind, error.message.as_ref()), (ErrorKind::Unavailable, "service1 is unavailable"));
        assert_eq!(started.elapsed(), policy.ready_wait, "on tokio's paused clock");
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_replica_and_a_deadline_shorter_than_its_ready_wait_a_call_times_out_at_its_deadline() {
        let policy = CallPolicy {
            deadline: Duration::from_millis(300),
            attempt_timeout: Duration::from_secs(1),
            ready_wait: Duration::from_secs(1),
            max_attempts: 3,
            retry_ratio: 0.2,
            retry_floor_per_second: 10,
        };
        let service1 = without_replicas(policy);

        let error = service1.process_name("x", &RequestId::generate()).await.unwrap_err();

        assert_eq!(
            (error.kind, error.message.as_ref()),
            (ErrorKind::Timeout, "service1 did not answer in time")
        );
    }
}
