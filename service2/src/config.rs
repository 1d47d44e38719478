//! service2's settings: every one a flag and an environment variable.

use std::time::Duration;

use clap::Parser;
use settings::{parse_duration, parse_nonzero_duration, CommonArgs, Validate};

use crate::upstream::Target;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "service2",
    version,
    args_override_self = true,
    about = "REST edge that asks service1 over gRPC."
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// REST port (GET /api/v1/say-hello).
    #[arg(long, env = "PORT", default_value_t = 8081)]
    pub port: u16,

    /// Plaintext admin port: gRPC health for kubelet probes, /livez, /readyz.
    #[arg(long, env = "ADMIN_PORT", default_value_t = 9081)]
    pub admin_port: u16,

    /// Where service1 is: host:port, dns:///name:port,
    /// dns://dns-server:port/name:port, or static:///host:port,host:port.
    #[arg(long, env = "SERVICE1_CHANNEL", default_value = "localhost:50051", value_parser = Target::parse)]
    pub service1_channel: Target,

    /// Deadline of each call to service1, retries included.
    #[arg(long, env = "SERVICE1_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub service1_timeout: Duration,

    /// Deadline of each attempt, within SERVICE1_TIMEOUT; sent as its
    /// grpc-timeout. A replica that has not answered by then is given up on
    /// and the call retried on another.
    #[arg(long, env = "SERVICE1_ATTEMPT_TIMEOUT", default_value = "1s", value_parser = parse_nonzero_duration)]
    pub service1_attempt_timeout: Duration,

    /// How long connecting to a replica may take: TCP, TLS and HTTP/2
    /// handshakes together.
    #[arg(long, env = "SERVICE1_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_nonzero_duration)]
    pub service1_connect_timeout: Duration,

    /// How long a call waits for a ready replica before failing with 503.
    /// Unset: SERVICE1_CONNECT_TIMEOUT, the time a replica gets to connect.
    #[arg(long, env = "SERVICE1_READY_WAIT", value_parser = parse_nonzero_duration)]
    pub service1_ready_wait: Option<Duration>,

    /// With a call open, ping a service1 connection after this long without
    /// a frame from it, to find a replica that stopped answering. Stock
    /// gRPC servers strike a ping only if they sent nothing since the last
    /// one, so a replica that answers calls is never struck.
    #[arg(long, env = "SERVICE1_KEEPALIVE_INTERVAL", default_value = "1s", value_parser = parse_nonzero_duration)]
    pub service1_keepalive_interval: Duration,

    /// A keepalive ping unanswered this long closes the connection, fails
    /// its calls over to other replicas, and ejects the replica.
    #[arg(long, env = "SERVICE1_KEEPALIVE_TIMEOUT", default_value = "2s", value_parser = parse_nonzero_duration)]
    pub service1_keepalive_timeout: Duration,

    /// Ping connections with no call open too. Stock gRPC servers refuse
    /// that (GOAWAY `too_many_pings`) unless told to permit it.
    #[arg(long, env = "SERVICE1_KEEPALIVE_WHILE_IDLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub service1_keepalive_while_idle: bool,

    /// At start, report ready only once a service1 replica is reachable, or
    /// after this long without one (0s: at once). A new pod then takes
    /// traffic only when it can serve it; after start, readiness never
    /// depends on service1.
    #[arg(long, env = "SERVICE1_STARTUP_WAIT", default_value = "20s", value_parser = parse_duration)]
    pub service1_startup_wait: Duration,

    /// How often a dns:/// target is looked up again (sooner when the
    /// records' TTL is shorter, or right after a connection failure).
    #[arg(long, env = "SERVICE1_RESOLVE_INTERVAL", default_value = "5s", value_parser = parse_nonzero_duration)]
    pub service1_resolve_interval: Duration,

    /// Attempts per call, the first included (1 turns retries off).
    #[arg(long, env = "SERVICE1_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub service1_max_attempts: u32,

    /// Retries may add at most this percentage to the calls made...
    #[arg(long, env = "SERVICE1_RETRY_BUDGET_PERCENT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub service1_retry_budget_percent: u32,

    /// ...plus this many retries per second, so a quiet service can retry
    /// (at most 10000: tower's retry budget refuses 2^31 and more).
    #[arg(long, env = "SERVICE1_RETRY_MIN_PER_SECOND", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub service1_retry_min_per_second: u32,

    /// Failures in a row (timeouts, broken connections, UNAVAILABLE...)
    /// that eject a replica from selection (0: failures never do; an
    /// unanswered keepalive ping still does).
    #[arg(long, env = "SERVICE1_EJECT_AFTER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub service1_eject_after_failures: u32,

    /// How long a first ejection lasts; each one in a row lasts twice as
    /// long as the one before.
    #[arg(long, env = "SERVICE1_EJECT_TIME", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub service1_eject_time: Duration,

    /// The longest an ejection lasts.
    #[arg(long, env = "SERVICE1_EJECT_TIME_MAX", default_value = "5m", value_parser = parse_nonzero_duration)]
    pub service1_eject_time_max: Duration,

    /// At most this percentage of the known replicas is ejected at once
    /// (always at least one).
    #[arg(long, env = "SERVICE1_EJECT_MAX_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub service1_eject_max_percent: u32,

    /// The name service1's certificate must carry, whatever address is
    /// dialled (pods are dialled by IP).
    #[arg(long, env = "TLS_SERVER_NAME", default_value = "service1")]
    pub tls_server_name: String,

    /// A name service1's certificate must also carry (a DNS or URI SAN,
    /// such as its SPIFFE ID), so that a workload that can get a
    /// certificate for TLS_SERVER_NAME from the same issuer cannot pose as
    /// service1. Unset: TLS_SERVER_NAME alone.
    #[arg(long, env = "TLS_SERVER_IDENTITY")]
    pub tls_server_identity: Option<String>,
}

impl Config {
    /// SERVICE1_READY_WAIT, or SERVICE1_CONNECT_TIMEOUT when it is unset.
    pub fn service1_ready_wait(&self) -> Duration {
        self.service1_ready_wait.unwrap_or(self.service1_connect_timeout)
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), String> {
        if self.tls_server_identity.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err("TLS_SERVER_IDENTITY must not be empty (leave it unset instead)".into());
        }
        if self.service1_eject_time > self.service1_eject_time_max {
            return Err(format!(
                "SERVICE1_EJECT_TIME ({:?}) must not exceed SERVICE1_EJECT_TIME_MAX ({:?})",
                self.service1_eject_time, self.service1_eject_time_max
            ));
        }
        self.common.tls.files()?;
        serving::tls::client::Connector::check_server_name(&self.tls_server_name)
            .map(|_| ())
            .map_err(|e| format!("TLS_SERVER_NAME: {e}"))
    }
}
