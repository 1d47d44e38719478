//! service1's settings: every one a flag and an environment variable.

use clap::Parser;
use plumbing::config::{ListenArgs, LogArgs, NameArgs, ShutdownArgs};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "service1",
    version,
    args_override_self = true,
    about = "Upper-cases names over gRPC and REST."
)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs,

    /// REST port (GET /api/v1/name).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// gRPC port (app.grpc.Service1).
    #[arg(long, env = "GRPC_PORT", default_value_t = 50051)]
    pub grpc_port: u16,

    #[command(flatten)]
    pub names: NameArgs,

    #[command(flatten)]
    pub shutdown: ShutdownArgs,

    #[command(flatten)]
    pub log: LogArgs,
}
