//! The OpenTelemetry environment variables that shape trace export and
//! propagation, read once into plain data ([`TraceSettings`]).
//!
//! What an OpenTelemetry Operator or a platform team injects into every pod
//! must start the services. So each value the specification defines for a
//! variable is either honoured, or accepted and listed in
//! [`TraceSettings::ignored`] (logged as one WARN line at start, saying why);
//! only a value that is malformed, or that no SDK knows, is refused with an
//! error naming the variable. A name in the trace families
//! (`OTEL_EXPORTER_OTLP_*` except the metrics, logs and profiles ones,
//! `OTEL_TRACES_*`, `OTEL_BSP_*` and the span limits) that is not a setting
//! (a typo such as `OTEL_EXPORTER_OTLP_ENDPIONT`) is refused too. The SDK
//! would read most of these itself and drop a value it cannot parse without
//! a word; here they are parsed, checked, and handed to it explicitly.
//!
//! Where the specification says a setting has a per-signal form
//! (`OTEL_EXPORTER_OTLP_TRACES_X`), that form wins over the generic one
//! (`OTEL_EXPORTER_OTLP_X`), setting by setting. An empty value is the same
//! as an unset one.
//!
//! [`TraceSettings::from_vars`] takes the variables as pairs, so tests use a
//! list and never `set_var`.
//!
//! This module holds the settings' types and puts them together; `vars`
//! reads the variables (names, forms of values, what is refused or only
//! warned about), `otlp` makes the exporter's settings of them, and `sdk`
//! the rest the SDK is told. Building the exporter from these is
//! `traces`' and `otlp_transport`'s.

use std::{fmt, path::PathBuf, time::Duration};

use http::{HeaderName, Uri};

use self::{
    otlp::otlp,
    sdk::{batch, limits, other_exporters, propagators, resource, sampler, traces_exporter, Exporter},
    vars::{boolean, Found, Vars, SDK_DISABLED, TRACES_EXPORTER},
};

mod otlp;
mod sdk;
mod vars;

/// A variable whose value cannot be honoured: one line, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    variable: String,
    /// The value, when it is safe to print (never for headers).
    value: Option<String>,
    reason: String,
}

impl ConfigError {
    fn new(found: Found<'_>, reason: impl Into<String>) -> Self {
        Self { variable: found.name.to_owned(), value: Some(found.value.to_owned()), reason: reason.into() }
    }

    /// For values that may hold secrets: the reason only.
    fn hiding_value(found: Found<'_>, reason: impl Into<String>) -> Self {
        Self { variable: found.name.to_owned(), value: None, reason: reason.into() }
    }

    /// The variable at fault.
    pub fn variable(&self) -> &str {
        &self.variable
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}: {}", self.variable, self.reason),
            None => write!(f, "{}: {}", self.variable, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Everything the variables say about traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    pub export: Export,
    pub resource: ResourceSettings,
    pub sampler: Sampler,
    pub batch: Batch,
    pub limits: Limits,
    pub propagation: Propagation,
    /// Values the specification defines that these services accept and do
    /// not act on: each is one WARN line at start.
    pub ignored: Vec<Ignored>,
}

/// Which W3C headers cross the HTTP edge and the gRPC hop
/// (`OTEL_PROPAGATORS`; the specification's default is both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagation {
    /// `traceparent` and `tracestate`.
    pub trace_context: bool,
    /// `baggage`.
    pub baggage: bool,
}

/// A value accepted without effect, and why. Its `reason` starts by saying
/// what is ignored: the whole value (`ignored: ...`) or part of a list
/// (`b3 ignored: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub variable: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}: {}", self.variable, self.value, self.reason)
    }
}

/// Whether spans leave the process, and how.
#[derive(Debug, Clone, PartialEq)]
pub enum Export {
    Off(Off),
    Otlp(Box<Otlp>),
}

/// Why spans are not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Off {
    /// `OTEL_SDK_DISABLED=true`.
    SdkDisabled,
    /// `OTEL_TRACES_EXPORTER=none`.
    ExporterNone,
    /// Neither an endpoint nor `OTEL_TRACES_EXPORTER=otlp`: our default.
    NoEndpoint,
    /// `OTEL_TRACES_EXPORTER` names only exporters that are not built in
    /// (zipkin, console...).
    NoBuiltInExporter,
}

impl fmt::Display for Off {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Off::SdkDisabled => "OTEL_SDK_DISABLED=true",
            Off::ExporterNone => "OTEL_TRACES_EXPORTER=none",
            Off::NoEndpoint => "no OTLP endpoint is set",
            Off::NoBuiltInExporter => {
                "OTEL_TRACES_EXPORTER names no exporter these services have (only otlp)"
            }
        })
    }
}

/// OTLP export: where, over what, with which credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Otlp {
    pub protocol: Protocol,
    pub endpoint: Endpoint,
    /// Sent with every export (lower-case names, printable ASCII values).
    pub headers: Vec<(HeaderName, String)>,
    pub timeout: Duration,
    pub compression: Compression,
    pub tls: TlsFiles,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// The collector's URL, and the variable it came from (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Complete: with OTLP/HTTP, the path spans are posted to.
    pub url: Uri,
    pub from: &'static str,
}

impl Endpoint {
    pub fn is_https(&self) -> bool {
        self.url.scheme() == Some(&http::uri::Scheme::HTTPS)
    }
}

/// TLS files for an https endpoint; without `certificate` the system's
/// roots are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates (PEM) that alone are trusted for the collector.
    pub certificate: Option<FileSetting>,
    /// This client's certificate chain and key (PEM), for mTLS.
    pub client: Option<(FileSetting, FileSetting)>,
}

/// A path, and the variable that named it (for errors when it is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    pub variable: &'static str,
    pub path: PathBuf,
}

/// `service.name` and the other resource attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSettings {
    pub service_name: String,
    /// From `OTEL_RESOURCE_ATTRIBUTES`, `service.name` excluded.
    pub attributes: Vec<(String, String)>,
}

/// `OTEL_TRACES_SAMPLER` with its argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Follow the caller's decision when there is one.
    pub parent_based: bool,
    pub root: RootSampler,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// Keeps this fraction of new traces, by trace id.
    TraceIdRatio(f64),
}

/// The batch span processor (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub max_queue_size: usize,
    pub schedule_delay: Duration,
    pub export_timeout: Duration,
    pub max_export_batch_size: usize,
}

/// Span limits (`OTEL_SPAN_*_COUNT_LIMIT` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub span_attributes: u32,
    pub span_events: u32,
    pub span_links: u32,
    pub event_attributes: u32,
    pub link_attributes: u32,
}

// === impl TraceSettings ===

impl TraceSettings {
    /// Reads the process environment. `service` is the default `service.name`.
    pub fn from_env(service: &str) -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("OTEL_")).map(str::to_owned) else {
                continue;
            };
            match value.into_string() {
                Ok(value) => vars.push((name, value)),
                Err(_) => {
                    return Err(ConfigError { variable: name, value: None, reason: "not valid UTF-8".into() })
                }
            }
        }
        Self::from_vars(service, vars)
    }

    /// Reads `vars`, as `(name, value)` pairs.
    pub fn from_vars<K, V>(service: &str, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = Vars(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        let mut ignored = Vec::new();
        vars.check_names(&mut ignored)?;
        other_exporters(&vars, &mut ignored)?;
        let propagation = propagators(&vars, &mut ignored)?;
        // Every variable is checked, even when export is off, so that a
        // bad value is found before the day export is switched on.
        let disabled = vars.get(SDK_DISABLED).map(boolean).transpose()?.unwrap_or(false);
        let exporter =
            vars.get(TRACES_EXPORTER).map(|f| traces_exporter(f, &mut ignored)).transpose()?.flatten();
        let otlp = otlp(&vars, exporter == Some(Exporter::Otlp), &mut ignored)?;
        let export = match (disabled, exporter, otlp) {
            (true, _, _) => Export::Off(Off::SdkDisabled),
            (false, Some(Exporter::None), _) => Export::Off(Off::ExporterNone),
            (false, Some(Exporter::NotBuiltIn), _) => Export::Off(Off::NoBuiltInExporter),
            (false, _, Some(otlp)) => Export::Otlp(Box::new(otlp)),
            (false, _, None) => Export::Off(Off::NoEndpoint),
        };
        Ok(Self {
            export,
            resource: resource(&vars, service)?,
            sampler: sampler(&vars, &mut ignored)?,
            batch: batch(&vars)?,
            limits: limits(&vars)?,
            propagation,
            ignored,
        })
    }
}

#[cfg(test)]
mod tests;
