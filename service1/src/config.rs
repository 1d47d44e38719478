//! service1's settings: every one a flag and an environment variable.

use clap::Parser;
use std::time::Duration;

use serving::tls::{client::Connector, ServerName};
use settings::{parse_duration, parse_nonzero_duration, CommonArgs, Validate};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "service1",
    version,
    args_override_self = true,
    about = "Upper-cases names over gRPC and REST."
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// REST port (GET /api/v1/name).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Serve the plaintext REST API (GET /api/v1/name, the original's) on
    /// PORT; false binds no REST port at all, so only the mTLS gRPC port
    /// and the admin port are open.
    #[arg(long, env = "REST_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rest_enabled: bool,

    /// gRPC port (app.grpc.Service1).
    #[arg(long, env = "GRPC_PORT", default_value_t = 50051)]
    pub grpc_port: u16,

    /// Plaintext admin port: gRPC health for kubelet probes, /livez, /readyz.
    #[arg(long, env = "ADMIN_PORT", default_value_t = 9080)]
    pub admin_port: u16,

    /// Connections older than this are asked to go away (GOAWAY), so clients
    /// reconnect and spread over replicas added since.
    #[arg(long, env = "MAX_CONNECTION_AGE", default_value = "5m", value_parser = parse_nonzero_duration)]
    pub max_connection_age: Duration,

    /// How long calls on a connection past its age may still take.
    #[arg(long, env = "MAX_CONNECTION_AGE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub max_connection_age_grace: Duration,

    /// Largest gRPC message accepted, in bytes; larger gets
    /// RESOURCE_EXHAUSTED. It bounds ProcessName's name, which the REST
    /// edges' MAX_NAME_BYTES does not: the original's service2 sends names
    /// as long as its HTTP server takes (a request line of 8190 bytes).
    #[arg(long, env = "GRPC_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64 << 20))]
    pub grpc_max_message_bytes: usize,

    /// Serve gRPC server reflection (v1 and v1alpha) on the gRPC port, for
    /// grpcurl and grpcui; behind mTLS and TLS_ALLOWED_CLIENTS like every
    /// call. `false` turns it off.
    #[arg(long, env = "GRPC_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub grpc_reflection: bool,

    /// gRPC calls served at once on one connection (HTTP/2 streams).
    #[arg(long, env = "GRPC_MAX_CONCURRENT_STREAMS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_max_concurrent_streams: u32,

    /// gRPC calls served at once in total; more get RESOURCE_EXHAUSTED at
    /// once rather than a queue.
    #[arg(long, env = "GRPC_MAX_CONCURRENT_CALLS", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_max_concurrent_calls: u32,

    /// Most of those calls one client identity may hold, in percent; its
    /// further calls get RESOURCE_EXHAUSTED, the rest stay for the others.
    #[arg(long, env = "GRPC_MAX_CALLS_PER_IDENTITY_PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub grpc_max_calls_per_identity_percent: u32,

    /// Deadline of a gRPC call that sends no grpc-timeout, and the longest
    /// any call gets; then DEADLINE_EXCEEDED.
    #[arg(long, env = "GRPC_CALL_TIMEOUT", default_value = "15s", value_parser = parse_nonzero_duration)]
    pub grpc_call_timeout: Duration,

    /// HTTP/2 ping interval on gRPC connections; a peer that does not
    /// answer within GRPC_KEEPALIVE_TIMEOUT is dropped.
    #[arg(long, env = "GRPC_KEEPALIVE_INTERVAL", default_value = "20s", value_parser = parse_nonzero_duration)]
    pub grpc_keepalive_interval: Duration,

    #[arg(long, env = "GRPC_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub grpc_keepalive_timeout: Duration,

    /// How often a client may ping on the gRPC port (gRFC A8's min_time):
    /// a ping sooner than this after the previous one, with nothing sent
    /// in between, is a strike; the third gets GOAWAY ENHANCE_YOUR_CALM
    /// (`too_many_pings`). Stock gRPC servers use 5m.
    #[arg(long, env = "GRPC_MIN_PING_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub grpc_min_ping_interval: Duration,

    /// Client identities (DNS or URI SANs of the client certificate)
    /// allowed to call the gRPC API, comma-separated.
    #[arg(long, env = "TLS_ALLOWED_CLIENTS", value_delimiter = ',', default_value = "service2")]
    pub tls_allowed_clients: Vec<String>,

    /// The name clients check this service's certificate against (service2's
    /// TLS_SERVER_NAME). When set, a certificate that does not cover it is
    /// refused, at start and on reload.
    #[arg(long, env = "TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,

    /// Longest a TLS handshake may take before the connection is dropped.
    #[arg(long, env = "TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub tls_handshake_timeout: Duration,

    /// Connections open at once on the gRPC port; one more is reset as soon
    /// as it is accepted. Its clients are service2's replicas (one
    /// connection each) and tools; an mTLS connection costs more memory
    /// than a REST one, so this is well below MAX_CONNECTIONS.
    #[arg(long, env = "GRPC_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub grpc_max_connections: u32,

    /// TLS handshakes in progress at once on the gRPC port; a connection
    /// beyond them is reset as soon as it is accepted. Each takes at most
    /// TLS_HANDSHAKE_TIMEOUT.
    #[arg(long, env = "MAX_TLS_HANDSHAKES", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_tls_handshakes: u32,

    /// Most certificates a client may present, its own included; a longer
    /// chain is refused before any of it is verified.
    #[arg(long, env = "TLS_MAX_CLIENT_CHAIN", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub tls_max_client_chain: u8,
}

impl Validate for Config {
    fn validate(&self) -> Result<(), String> {
        self.common.tls.files()?;
        if self.tls_allowed_clients.iter().all(|c| c.trim().is_empty()) {
            return Err("TLS_ALLOWED_CLIENTS must name at least one client identity".into());
        }
        // A connection holds at most this many calls (one per stream).
        if self.grpc_max_concurrent_streams >= self.grpc_max_concurrent_calls {
            return Err(format!(
                "GRPC_MAX_CONCURRENT_STREAMS ({}) must be below GRPC_MAX_CONCURRENT_CALLS ({}), or one \
                 connection can hold every call slot",
                self.grpc_max_concurrent_streams, self.grpc_max_concurrent_calls
            ));
        }
        self.server_name().map(|_| ())
    }
}

impl Config {
    /// The name this service's certificate must cover, if one is set (an
    /// empty TLS_SERVER_NAME sets none).
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, String> {
        let name = self.tls_server_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        name.map(|n| Connector::check_server_name(n).map_err(|e| format!("TLS_SERVER_NAME: {e}"))).transpose()
    }
}

impl Config {
    /// How many calls one client identity may hold at once (at least one).
    pub fn grpc_max_calls_per_identity(&self) -> usize {
        let share =
            u64::from(self.grpc_max_concurrent_calls) * u64::from(self.grpc_max_calls_per_identity_percent);
        (share / 100).max(1) as usize
    }
}
