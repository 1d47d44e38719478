//! The call to service1: a ready replica per call, a deadline on each call,
//! retries on another replica within a budget, and gRPC failures turned into
//! errors a REST caller can act on.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use observability::Traces;
use serving::{errors::chain, ApiError};
use tonic::{metadata::MetadataValue, Code, Status};
use tower::retry::budget::{Budget, TpsBudget};
use wire::{
    proto::{service1_client::Service1Client, ProcessNameRequest},
    request_id, ErrorKind, RequestId,
};

use tracing::Instrument;

use crate::{balance::Pool, telemetry::METRICS};

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
    policy: CallPolicy,
    budget: Arc<TpsBudget>,
    traces: Traces,
}

// === impl Service1 ===

impl Service1 {
    pub fn new(pool: Pool, policy: CallPolicy, traces: Traces) -> Self {
        let budget = TpsBudget::new(BUDGET_WINDOW, policy.retry_floor_per_second, policy.retry_ratio);
        Self { pool, policy, budget: Arc::new(budget), traces }
    }

    /// Asks service1 to process `name` on behalf of request `id`.
    pub async fn process_name(&self, name: String, id: &RequestId) -> Result<String, ApiError> {
        let deadline = Instant::now() + self.policy.deadline;
        self.budget.deposit();
        let mut avoid: Option<String> = None;
        for attempt in 1.. {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(replica) = self.pool.ready(remaining.min(self.policy.fail_fast), avoid.as_deref()).await
            else {
                let kind = if remaining.is_zero() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
                tracing::warn!(attempt, "no service1 replica is ready");
                return Err(caller_error(kind));
            };
            // One client span per attempt, so retries show in the trace.
            let (address, port) = replica.key().rsplit_once(':').unwrap_or((replica.key(), ""));
            let span = tracing::info_span!(
                "grpc_call",
                request_id = %id,
                attempt,
                otel.name = "app.grpc.Service1/ProcessName",
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                "rpc.system" = "grpc",
                "rpc.service" = "app.grpc.Service1",
                "rpc.method" = "ProcessName",
                "server.address" = address.trim_start_matches('[').trim_end_matches(']'),
                "server.port" = port,
                "rpc.grpc.status_code" = tracing::field::Empty,
            );
            let mut request = tonic::Request::new(ProcessNameRequest { name: name.clone() });
            // Sent as `grpc-timeout`, so service1 knows when to give up too.
            request.set_timeout(remaining);
            if let Ok(value) = MetadataValue::try_from(id.as_str()) {
                request.metadata_mut().insert(request_id::METADATA_KEY, value);
            }
            self.traces.inject(&span, request.metadata_mut());
            let connection = replica.connection();
            let mut client = Service1Client::with_origin(connection.clone(), connection.origin());
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
            let _entered = span.enter();
            let status = match outcome {
                Ok(Ok(response)) => return Ok(response.into_inner().name),
                Ok(Err(status)) => status,
                Err(_elapsed) => {
                    tracing::warn!(deadline = ?self.policy.deadline, endpoint = replica.key(), "call to service1 ran out of time");
                    return Err(caller_error(ErrorKind::Timeout));
                }
            };
            let broken = connection_broke(&status);
            if broken {
                replica.mark_failed();
            }
            let retryable = broken || status.code() == Code::Unavailable;
            if retryable && attempt < self.policy.max_attempts {
                let backoff = backoff(attempt);
                if Instant::now() + backoff >= deadline {
                    tracing::warn!(attempt, "no time left to retry the call to service1");
                } else if !self.budget.withdraw() {
                    METRICS.budget_exhausted.inc();
                    tracing::warn!(attempt, "retry budget exhausted; not retrying the call to service1");
                } else {
                    METRICS.retries.inc();
                    tracing::warn!(
                        attempt,
                        endpoint = replica.key(),
                        grpc_status = ?status.code(),
                        detail = %chain(&status),
                        backoff_ms = backoff.as_millis() as u64,
                        "call to service1 failed; retrying on another replica"
                    );
                    avoid = Some(replica.key().to_owned());
                    drop(_entered);
                    drop(replica);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
            // Whatever ends a call at its deadline is a timeout, even if
            // service1's own deadline fired first and said so differently.
            let kind = if Instant::now() >= deadline {
                ErrorKind::Timeout
            } else {
                ErrorKind::from_upstream(serving::errors::grpc_code(status.code()))
            };
            tracing::warn!(attempt, endpoint = replica.key(), grpc_status = ?status.code(), detail = %chain(&status), "call to service1 failed");
            return Err(caller_error(kind));
        }
        unreachable!("the loop returns")
    }
}

/// Did the call fail because its connection did (refused, reset, closed),
/// rather than because service1 answered with an error? ProcessName is a
/// pure function, so such a call is safe to send again even if it reached
/// service1.
fn connection_broke(status: &Status) -> bool {
    use std::error::Error;
    // tonic's words when the connection failed before the call could start.
    if status.code() == Code::Unknown && status.message().starts_with("Service was not ready") {
        return true;
    }
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>() || error.is::<std::io::Error>() || error.is::<hyper::Error>()
        {
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
