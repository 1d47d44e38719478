//! service2's settings: every one a flag and an environment variable.

use std::time::Duration;

use clap::Parser;
use plumbing::config::{parse_duration, ListenArgs, LogArgs, NameArgs, ShutdownArgs, TlsArgs, Validate};

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
    pub listen: ListenArgs,

    /// REST port (GET /api/v1/say-hello).
    #[arg(long, env = "PORT", default_value_t = 8081)]
    pub port: u16,

    /// Where service1's gRPC port is: host:port.
    #[arg(long, env = "SERVICE1_CHANNEL", default_value = "localhost:50051", value_parser = Target::parse)]
    pub service1_channel: Target,

    /// Deadline of each call to service1, sent as grpc-timeout.
    #[arg(long, env = "SERVICE1_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub service1_timeout: Duration,

    /// How long connecting to service1 may take before the call fails
    /// with 503, so an unreachable service1 does not cost the whole deadline.
    #[arg(long, env = "SERVICE1_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub service1_connect_timeout: Duration,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// The name service1's certificate must carry, whatever address is
    /// dialled (pods are dialled by IP).
    #[arg(long, env = "TLS_SERVER_NAME", default_value = "service1")]
    pub tls_server_name: String,

    #[command(flatten)]
    pub names: NameArgs,

    #[command(flatten)]
    pub shutdown: ShutdownArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for Config {
    fn validate(&self) -> Result<(), String> {
        self.tls.files()?;
        rustls_name_check(&self.tls_server_name)
    }
}

fn rustls_name_check(name: &str) -> Result<(), String> {
    plumbing::tls::client::Connector::check_server_name(name)
        .map(|_| ())
        .map_err(|e| format!("TLS_SERVER_NAME: {e}"))
}
