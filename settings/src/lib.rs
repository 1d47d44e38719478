//! Settings as plain data: the flag groups both services share (read from
//! flags and the environment by clap), duration parsing, and the rule that
//! bad config is one line on stderr and exit 2.
//!
//! Nothing here binds, loads or starts anything: the serving and
//! observability crates read these values and do that.
#![forbid(unsafe_code)]

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::error::ErrorKind as ClapErrorKind;

/// Exit code for configuration errors, as sysexits-style tools use.
pub const EXIT_CONFIG: i32 = 2;

/// Checks that span several settings, which clap cannot express.
pub trait Validate {
    fn validate(&self) -> Result<(), String>;
}

/// Parses flags and environment once, or exits: 0 for `--help` and
/// `--version`, 2 with one line on stderr for anything invalid.
pub fn parse_or_exit<C: clap::Parser + Validate>() -> C {
    match C::try_parse() {
        Ok(config) => match config.validate() {
            Ok(()) => config,
            Err(message) => exit_with_config_error(message),
        },
        Err(error) => match error.kind() {
            ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion => {
                let _ = error.print();
                std::process::exit(0)
            }
            _ => exit_with_config_error(first_line(&error.render().to_string())),
        },
    }
}

/// For checks clap cannot express; same contract as [`parse_or_exit`].
pub fn exit_with_config_error(message: impl std::fmt::Display) -> ! {
    let message = message.to_string();
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: invalid configuration: {message}");
    std::process::exit(EXIT_CONFIG)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

/// The longest any duration setting may be. Far beyond any sensible
/// timeout or interval, and far below what `Instant + Duration` or tokio's
/// timers cannot take: a value past it is a typo (`5000h`), refused at
/// start rather than a panic on the first request.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest a duration that must be more than zero may be: tokio's
/// timers count whole milliseconds, and a period derived from it (the idle
/// check runs at a quarter of HTTP_IDLE_TIMEOUT) must not round to zero.
pub const MIN_NONZERO_DURATION: Duration = Duration::from_millis(1);

/// Parses `10s`, `500ms`, `1m 30s`: from 0 to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 10s, 500ms)"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "must be at most {} (examples: 10s, 500ms)",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

/// A duration that must be more than zero, from [`MIN_NONZERO_DURATION`]
/// to [`MAX_DURATION`]: a timeout or interval of 0 would fail every
/// request or spin (tokio's timers refuse a zero period).
pub fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be more than 0 (examples: 10s, 500ms)".to_owned()),
        d if d < MIN_NONZERO_DURATION => Err("must be at least 1ms (examples: 10s, 500ms)".to_owned()),
        d => Ok(d),
    }
}

/// The settings both services have, flattened into each one's `Config`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub http: HttpLimits,

    #[command(flatten)]
    pub names: NameArgs,

    #[command(flatten)]
    pub shutdown: ShutdownArgs,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub admin: AdminLimits,

    #[command(flatten)]
    pub connections: ConnectionLimits,
}

/// Where a service listens, shared by both.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Address every listener binds to.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,

    /// Connections the kernel may queue for each listener before they are
    /// accepted; Linux caps it at net.core.somaxconn.
    #[arg(long, env = "LISTEN_BACKLOG", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub listen_backlog: u32,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Log settings; `RUST_LOG` filters (default `info`).
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// One JSON object per line (for machines), or text (for people).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// How a service stops on SIGTERM or SIGINT: first it reports draining for
/// `DRAIN_DELAY`, then stops accepting and gives in-flight work
/// `SHUTDOWN_GRACE`.
#[derive(clap::Args, Debug, Clone)]
pub struct ShutdownArgs {
    /// How long to report NOT_SERVING (and /readyz 503) before closing the
    /// listeners, so Kubernetes stops routing new calls here first.
    #[arg(long, env = "DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// Time in-flight requests get to finish once a shutdown starts.
    /// Keep it below Kubernetes' terminationGracePeriodSeconds (30 s).
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// The async runtime's threads.
#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Threads serving requests. One is the most efficient per request (no
    /// hand-offs between threads) and scales out by adding replicas; raise
    /// it to let one replica use more cores.
    #[arg(long, env = "WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,
}

/// The limit both services put on a name.
#[derive(clap::Args, Debug, Clone)]
pub struct NameArgs {
    /// Longest accepted name, in bytes of UTF-8 (1 to 1 MiB).
    #[arg(long, env = "MAX_NAME_BYTES", default_value_t = wire::names::DEFAULT_MAX_NAME_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 20))]
    pub max_name_bytes: usize,
}

/// Limits on every HTTP port (REST and admin), so broken, slow or hostile
/// clients cannot hold the service hostage.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpLimits {
    /// A request head must be complete this long after its first byte (a
    /// new connection's first: after connecting), or the connection is
    /// closed (slowloris). Waits between requests are HTTP_IDLE_TIMEOUT's.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub http_header_read_timeout: Duration,

    /// Largest request head (request line and headers) in bytes; more gets
    /// 431. At least 8192.
    #[arg(long, env = "HTTP_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024))]
    pub http_max_header_bytes: u32,

    /// Most header fields in a request; more gets 431.
    #[arg(long, env = "HTTP_MAX_HEADERS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(8..=1024))]
    pub http_max_headers: u32,

    /// Longest a request may take, end to end; then it gets 504.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "15s", value_parser = parse_nonzero_duration)]
    pub http_request_timeout: Duration,

    /// Requests served at once on a port; more wait at most
    /// HTTP_QUEUE_TIMEOUT for a turn, then are shed with 503 and Retry-After.
    #[arg(long, env = "HTTP_MAX_CONCURRENT_REQUESTS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_concurrent_requests: u32,

    /// How long a request over HTTP_MAX_CONCURRENT_REQUESTS may wait for a
    /// turn before it is shed (0s sheds at once). A short wait serves a burst
    /// instead of bouncing it, and costs less than answering 503s.
    #[arg(long, env = "HTTP_QUEUE_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub http_queue_timeout: Duration,

    /// Connections with no request in flight for this long are closed
    /// (HTTP/2 gets GOAWAY; pings do not count as use).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_nonzero_duration)]
    pub http_idle_timeout: Duration,

    /// Streams an HTTP/2 connection may make the server reset (malformed
    /// or refused requests) before it gets GOAWAY; on every HTTP/2 port,
    /// gRPC included. A well-behaved client makes none.
    #[arg(long, env = "HTTP2_MAX_LOCAL_RESET_STREAMS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_local_reset_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        <Self as clap::FromArgMatches>::from_arg_matches(
            &<Self as clap::Args>::augment_args(clap::Command::new("defaults"))
                .get_matches_from(["defaults"]),
        )
        .expect("the defaults are valid")
    }
}

/// Limits of the admin port beyond those of every HTTP port, so that no
/// caller can keep the probes from being answered.
#[derive(clap::Args, Debug, Clone)]
pub struct AdminLimits {
    /// HTTP/2 streams at once on one admin connection. A probe or a scrape
    /// needs one; a low number keeps one connection from holding many
    /// calls open.
    #[arg(long, env = "ADMIN_MAX_CONCURRENT_STREAMS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub admin_max_concurrent_streams: u32,

    /// grpc.health.v1.Health/Watch streams open at once, admin and gRPC
    /// ports together; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "HEALTH_MAX_WATCHES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub health_max_watches: u32,

    /// /metrics responses being answered at once on the admin port, each
    /// until its client has taken all of it; more get 503 and Retry-After.
    #[arg(long, env = "ADMIN_MAX_METRICS_RESPONSES", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub admin_max_metrics_responses: u32,
}

/// What one connection, and all of a port's connections together, may
/// hold: a flood of clients, or one that stops reading, costs a bounded
/// amount of memory and is let go within a bounded time.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once on each REST port (service1's gRPC port has
    /// GRPC_MAX_CONNECTIONS); one more is closed (TCP reset) as soon as it
    /// is accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 2500,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Connections open at once on the admin port, counted apart from the
    /// other ports, so a flood of those leaves room for probes and scrapes.
    #[arg(long, env = "ADMIN_MAX_CONNECTIONS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub admin_max_connections: u32,

    /// HTTP/2 streams at once on one connection to a REST port (the admin
    /// port has ADMIN_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub http2_max_concurrent_streams: u32,

    /// Longest a response may wait for the client to take it: an HTTP/1
    /// connection whose writes are blocked this long is closed, an HTTP/2
    /// stream whose body waits this long for the client's flow-control
    /// window is reset.
    #[arg(long, env = "HTTP_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub http_write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        <Self as clap::FromArgMatches>::from_arg_matches(
            &<Self as clap::Args>::augment_args(clap::Command::new("defaults"))
                .get_matches_from(["defaults"]),
        )
        .expect("the defaults are valid")
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Mutual TLS: both sides present certificates from the same CA.
    Mtls,
    /// Plaintext gRPC, for experiments against plaintext peers only.
    Insecure,
}

/// TLS for the gRPC connection between the services.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// `mtls`, or `insecure` to turn TLS off (plaintext; a loud warning).
    #[arg(long, env = "TLS_MODE", value_enum, default_value_t = TlsMode::Mtls)]
    pub tls_mode: TlsMode,

    /// This service's certificate chain, PEM. Required with mtls.
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of TLS_CERT, PEM. Required with mtls.
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate(s), PEM, that the peer's certificate must chain to.
    /// Required with mtls.
    #[arg(long, env = "TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// How often the three files are re-read; new content is used for new
    /// handshakes.
    #[arg(long, env = "TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_nonzero_duration)]
    pub tls_reload_interval: Duration,
}

impl TlsArgs {
    /// The files to load, or `None` when TLS is turned off.
    pub fn files(&self) -> Result<Option<TlsFiles>, String> {
        if self.tls_mode == TlsMode::Insecure {
            return Ok(None);
        }
        let need = |path: &Option<PathBuf>, name: &str| {
            path.clone().ok_or_else(|| format!("{name} is required unless TLS_MODE=insecure"))
        };
        Ok(Some(TlsFiles {
            cert: need(&self.tls_cert, "TLS_CERT")?,
            key: need(&self.tls_key, "TLS_KEY")?,
            ca: need(&self.tls_ca, "TLS_CA")?,
        }))
    }
}

/// Where a service's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_human_units_and_reject_bare_numbers() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert_eq!(parse_nonzero_duration("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_nonzero_duration("0s").unwrap_err().contains("more than 0"));
    }

    #[test]
    fn durations_have_a_range_and_a_value_outside_it_says_which() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("7days"), Ok(MAX_DURATION));
        assert!(parse_duration("7days 1s").unwrap_err().contains("at most 7days"));
        assert!(parse_duration("5000h").unwrap_err().contains("at most 7days"));
        assert_eq!(parse_nonzero_duration("1ms"), Ok(MIN_NONZERO_DURATION));
        assert!(parse_nonzero_duration("3ns").unwrap_err().contains("at least 1ms"));
        assert!(parse_nonzero_duration("999us").unwrap_err().contains("at least 1ms"));
        assert!(parse_nonzero_duration("8days").unwrap_err().contains("at most 7days"));
    }

    /// The flags of every group, parsed as a service would.
    #[derive(clap::Parser, Debug)]
    struct Flags {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        <Flags as clap::Parser>::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
    }

    #[test]
    fn an_idle_timeout_too_short_to_time_is_refused_at_start() {
        let error = parse(&["--http-idle-timeout", "3ns"]).unwrap_err().render().to_string();

        assert!(first_line(&error).contains("at least 1ms"), "{error}");
        assert!(parse(&["--http-idle-timeout", "1ms"]).is_ok());
    }

    #[test]
    fn a_name_limit_of_zero_or_beyond_a_mebibyte_is_refused() {
        assert!(parse(&["--max-name-bytes", "0"]).is_err());
        assert!(parse(&["--max-name-bytes", "1048577"]).is_err());
        assert_eq!(parse(&["--max-name-bytes", "1048576"]).unwrap().common.names.max_name_bytes, 1 << 20);
    }

    #[test]
    fn only_the_first_line_of_a_clap_error_is_kept() {
        assert_eq!(first_line("error: bad\n\nUsage: x\n"), "error: bad");
    }
}
