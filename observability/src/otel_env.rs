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

use std::{collections::HashMap, fmt, path::PathBuf, time::Duration};

use http::{HeaderName, Uri};
use percent_encoding::percent_decode_str;

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

// === the variables ===

/// A setting with a per-signal form that wins over the generic one.
#[derive(Clone, Copy)]
struct Pair {
    traces: &'static str,
    generic: &'static str,
}

const fn pair(traces: &'static str, generic: &'static str) -> Pair {
    Pair { traces, generic }
}

const ENDPOINT: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT");
const PROTOCOL: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
const HEADERS: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS");
const TIMEOUT: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT");
const COMPRESSION: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION");
const CERTIFICATE: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE");
const CLIENT_CERTIFICATE: Pair =
    pair("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
const CLIENT_KEY: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY");
const INSECURE: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE");
const OTLP_PAIRS: [Pair; 9] = [
    ENDPOINT,
    PROTOCOL,
    HEADERS,
    TIMEOUT,
    COMPRESSION,
    CERTIFICATE,
    CLIENT_CERTIFICATE,
    CLIENT_KEY,
    INSECURE,
];

const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const PROPAGATORS: &str = "OTEL_PROPAGATORS";
const METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
const LOGS_EXPORTER: &str = "OTEL_LOGS_EXPORTER";
const BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
const BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
const BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
const BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
const ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_ATTRIBUTE_COUNT_LIMIT";
const SPAN_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT";
const SPAN_EVENT_COUNT_LIMIT: &str = "OTEL_SPAN_EVENT_COUNT_LIMIT";
const SPAN_LINK_COUNT_LIMIT: &str = "OTEL_SPAN_LINK_COUNT_LIMIT";
const EVENT_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT";
const LINK_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT";

/// Every single-form variable read here.
const SINGLE: [&str; 19] = [
    SDK_DISABLED,
    SERVICE_NAME,
    RESOURCE_ATTRIBUTES,
    TRACES_EXPORTER,
    TRACES_SAMPLER,
    TRACES_SAMPLER_ARG,
    PROPAGATORS,
    METRICS_EXPORTER,
    LOGS_EXPORTER,
    BSP_MAX_QUEUE_SIZE,
    BSP_SCHEDULE_DELAY,
    BSP_EXPORT_TIMEOUT,
    BSP_MAX_EXPORT_BATCH_SIZE,
    ATTRIBUTE_COUNT_LIMIT,
    SPAN_ATTRIBUTE_COUNT_LIMIT,
    SPAN_EVENT_COUNT_LIMIT,
    SPAN_LINK_COUNT_LIMIT,
    EVENT_ATTRIBUTE_COUNT_LIMIT,
    LINK_ATTRIBUTE_COUNT_LIMIT,
];

/// Prefixes of the families checked for names we do not know.
const FAMILIES: [&str; 7] = [
    "OTEL_EXPORTER_OTLP_",
    "OTEL_TRACES_",
    "OTEL_BSP_",
    "OTEL_SPAN_",
    "OTEL_EVENT_",
    "OTEL_LINK_",
    "OTEL_ATTRIBUTE_",
];

/// Other signals' exporter settings: not read, since only traces leave by
/// OTLP; each one set is a WARN line ([`IGNORED_FAMILIES`]).
const OTHER_SIGNALS: [&str; 3] =
    ["OTEL_EXPORTER_OTLP_METRICS_", "OTEL_EXPORTER_OTLP_LOGS_", "OTEL_EXPORTER_OTLP_PROFILES_"];

const METRICS_NOT_PUSHED: &str =
    "ignored: metrics are not pushed, Prometheus scrapes them from the admin port's /metrics";
const LOGS_ON_STDOUT: &str =
    "ignored: logs are not sent over OTLP, they are JSON lines on stdout (with trace ids) for the node's log collector";

/// Variables the specification defines for what these services do
/// otherwise: each one set is accepted with a WARN line saying why it has
/// no effect. (Prefix, reason.)
const IGNORED_FAMILIES: [(&str, &str); 12] = [
    ("OTEL_EXPORTER_OTLP_METRICS_", METRICS_NOT_PUSHED),
    ("OTEL_METRIC_EXPORT_", METRICS_NOT_PUSHED),
    ("OTEL_METRICS_EXEMPLAR_FILTER", METRICS_NOT_PUSHED),
    ("OTEL_EXPORTER_PROMETHEUS_", "ignored: /metrics is served on the admin port (ADMIN_PORT)"),
    ("OTEL_EXPORTER_OTLP_LOGS_", LOGS_ON_STDOUT),
    ("OTEL_BLRP_", LOGS_ON_STDOUT),
    ("OTEL_EXPORTER_OTLP_PROFILES_", "ignored: no profiles are exported"),
    ("OTEL_EXPORTER_ZIPKIN_", "ignored: spans leave only over OTLP"),
    ("OTEL_EXPORTER_JAEGER_", "ignored: spans leave only over OTLP"),
    ("OTEL_LOG_LEVEL", "ignored: RUST_LOG sets what these services log"),
    ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "ignored: the Rust SDK does not truncate attribute values"),
    ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "ignored: the Rust SDK does not truncate attribute values"),
];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
const HTTP_TRACES_PATH: &str = "/v1/traces";

/// One variable that is set (non-empty), with its name.
#[derive(Clone, Copy)]
struct Found<'a> {
    name: &'static str,
    value: &'a str,
}

struct Vars(HashMap<String, String>);

impl Vars {
    fn get(&self, name: &'static str) -> Option<Found<'_>> {
        let value = self.0.get(name)?.trim();
        (!value.is_empty()).then_some(Found { name, value })
    }

    fn get_pair(&self, pair: Pair) -> Option<Found<'_>> {
        self.get(pair.traces).or_else(|| self.get(pair.generic))
    }

    /// Refuses a name in a trace family that is not a setting, and lists the
    /// variables of other concerns that are set, with why they do nothing.
    fn check_names(&self, ignored: &mut Vec<Ignored>) -> Result<(), ConfigError> {
        let known = |name: &str| {
            SINGLE.contains(&name) || OTLP_PAIRS.iter().any(|p| p.traces == name || p.generic == name)
        };
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        for name in names {
            let value = self.0[name].as_str();
            let family = IGNORED_FAMILIES.iter().find(|(prefix, _)| name.starts_with(prefix));
            if let Some((_, reason)) = family.filter(|_| !value.trim().is_empty()) {
                ignored.push(Ignored {
                    variable: name.clone(),
                    value: shown(name, value),
                    reason: (*reason).into(),
                });
                continue;
            }
            let in_family = FAMILIES.iter().any(|f| name.starts_with(f));
            let other_signal = OTHER_SIGNALS.iter().any(|f| name.starts_with(f));
            if in_family && !other_signal && !known(name) {
                return Err(ConfigError {
                    variable: name.clone(),
                    value: None,
                    reason: "not a variable these services read (the README's Traces section lists them)"
                        .into(),
                });
            }
        }
        Ok(())
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exporter {
    Otlp,
    None,
    /// Only exporters the specification names that are not built in.
    NotBuiltIn,
}

/// A comma-separated list of the specification's names, lower-cased and
/// without empty entries. `none` must stand alone (as the Java SDK's
/// autoconfiguration insists); a name no SDK knows is refused.
fn names<'a>(found: Found<'a>, known: &[&str]) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> =
        found.value.split(',').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        let reason = format!(
            "{unknown} is not a value of this variable; the specification's are {}",
            known.join(", ")
        );
        return Err(ConfigError::new(found, reason));
    }
    if names.len() > 1 && names.iter().any(|n| n == "none") {
        return Err(ConfigError::new(found, "none must stand alone"));
    }
    Ok(names)
}

/// The specification's values of `OTEL_TRACES_EXPORTER` (jaeger was one
/// until it was deprecated; SDKs still know it).
const TRACES_EXPORTERS: [&str; 6] = ["otlp", "none", "zipkin", "console", "logging", "jaeger"];

/// `None` for a list with no names in it (`,`), which is as good as unset.
fn traces_exporter(found: Found<'_>, ignored: &mut Vec<Ignored>) -> Result<Option<Exporter>, ConfigError> {
    let names = names(found, &TRACES_EXPORTERS)?;
    let others: Vec<&str> =
        names.iter().map(String::as_str).filter(|n| !matches!(*n, "otlp" | "none")).collect();
    if !others.is_empty() {
        let reason = format!("{} ignored: not built in, spans leave only over OTLP", others.join(", "));
        ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
    }
    Ok(if names.is_empty() {
        None
    } else if names.iter().any(|n| n == "otlp") {
        Some(Exporter::Otlp)
    } else if names.iter().any(|n| n == "none") {
        Some(Exporter::None)
    } else {
        Some(Exporter::NotBuiltIn)
    })
}

/// `OTEL_METRICS_EXPORTER` and `OTEL_LOGS_EXPORTER`: these services serve
/// metrics for Prometheus and write logs to stdout, whatever they say.
fn other_exporters(vars: &Vars, ignored: &mut Vec<Ignored>) -> Result<(), ConfigError> {
    if let Some(found) = vars.get(METRICS_EXPORTER) {
        let names = names(found, &["otlp", "prometheus", "console", "logging", "none"])?;
        // prometheus is what they do; none asks for nothing to be pushed.
        if names.iter().any(|n| matches!(n.as_str(), "otlp" | "console" | "logging")) {
            let reason = METRICS_NOT_PUSHED.into();
            ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
        }
    }
    if let Some(found) = vars.get(LOGS_EXPORTER) {
        let names = names(found, &["otlp", "console", "logging", "none"])?;
        // console and logging are what they do (stdout); none asks for
        // nothing to be exported by an SDK.
        if names.iter().any(|n| n == "otlp") {
            let reason = LOGS_ON_STDOUT.into();
            ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
        }
    }
    Ok(())
}

/// The specification's values of `OTEL_PROPAGATORS`.
const PROPAGATOR_NAMES: [&str; 8] =
    ["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none"];

fn propagators(vars: &Vars, ignored: &mut Vec<Ignored>) -> Result<Propagation, ConfigError> {
    let Some(found) = vars.get(PROPAGATORS) else {
        return Ok(Propagation { trace_context: true, baggage: true });
    };
    let names = names(found, &PROPAGATOR_NAMES)?;
    let has = |name: &str| names.iter().any(|n| n == name);
    let propagation = Propagation { trace_context: has("tracecontext"), baggage: has("baggage") };
    let others: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !matches!(*n, "tracecontext" | "baggage" | "none"))
        .collect();
    if !others.is_empty() {
        let carried = match (propagation.trace_context, propagation.baggage) {
            (true, true) => "W3C traceparent and baggage are",
            (true, false) => "W3C traceparent alone is",
            (false, true) => "W3C baggage alone is",
            (false, false) => "nothing is",
        };
        let reason = format!("{} ignored: not built in; {carried} read and written", others.join(", "));
        ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
    }
    Ok(propagation)
}

/// A value for a WARN line: never a header value (credentials).
fn shown(name: &str, value: &str) -> String {
    if name.contains("HEADERS") {
        "(not shown)".into()
    } else {
        value.trim().into()
    }
}

/// The OTLP settings, whether or not they are used: `None` when no
/// endpoint is set and `otlp` was not asked for explicitly.
fn otlp(vars: &Vars, explicit: bool, ignored: &mut Vec<Ignored>) -> Result<Option<Otlp>, ConfigError> {
    let protocol = match vars.get_pair(PROTOCOL) {
        None => Protocol::Grpc,
        Some(found) => match found.value.to_ascii_lowercase().as_str() {
            "grpc" => Protocol::Grpc,
            "http/protobuf" => Protocol::HttpProtobuf,
            "http/json" => {
                let reason =
                    "ignored: OTLP/JSON is not built in; spans are posted as http/protobuf to the same \
                              endpoint, which an OTLP/HTTP receiver takes as well"
                        .into();
                ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
                Protocol::HttpProtobuf
            }
            _ => {
                return Err(ConfigError::new(found, "unknown protocol; use grpc, http/protobuf or http/json"))
            }
        },
    };
    let insecure = vars.get_pair(INSECURE).map(boolean).transpose()?.unwrap_or(false);
    let endpoint = if let Some(found) = vars.get(ENDPOINT.traces) {
        // The per-signal endpoint is used as it is.
        Some(Endpoint { url: endpoint(found, protocol, insecure, false)?, from: found.name })
    } else if let Some(found) = vars.get(ENDPOINT.generic) {
        // The generic one is a base: OTLP/HTTP appends the signal's path.
        let append = protocol == Protocol::HttpProtobuf;
        Some(Endpoint { url: endpoint(found, protocol, insecure, append)?, from: found.name })
    } else if explicit {
        let default = match protocol {
            Protocol::Grpc => DEFAULT_GRPC_ENDPOINT,
            Protocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT,
        };
        Some(Endpoint { url: Uri::from_static(default), from: "the default endpoint" })
    } else {
        None
    };
    let headers = match vars.get_pair(HEADERS) {
        Some(found) => headers(found, protocol)?,
        None => Vec::new(),
    };
    let timeout = match vars.get_pair(TIMEOUT) {
        Some(found) => milliseconds(found)?,
        None => DEFAULT_TIMEOUT,
    };
    let compression = match vars.get_pair(COMPRESSION) {
        None => Compression::None,
        Some(found) => match found.value.to_ascii_lowercase().as_str() {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            _ => return Err(ConfigError::new(found, "not supported; use gzip or none")),
        },
    };
    let file =
        |pair: Pair| vars.get_pair(pair).map(|f| FileSetting { variable: f.name, path: f.value.into() });
    let client = match (file(CLIENT_CERTIFICATE), file(CLIENT_KEY)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(cert), None) => {
            let found =
                Found { name: cert.variable, value: vars.get_pair(CLIENT_CERTIFICATE).unwrap().value };
            return Err(ConfigError::new(found, format!("needs its key in {}", CLIENT_KEY.generic)));
        }
        (None, Some(key)) => {
            let found = Found { name: key.variable, value: vars.get_pair(CLIENT_KEY).unwrap().value };
            let reason = format!("needs its certificate in {}", CLIENT_CERTIFICATE.generic);
            return Err(ConfigError::new(found, reason));
        }
    };
    let tls = TlsFiles { certificate: file(CERTIFICATE), client };
    let Some(endpoint) = endpoint else { return Ok(None) };
    if !endpoint.is_https() {
        let unused = tls.certificate.iter().chain(tls.client.iter().map(|(cert, _)| cert)).next();
        if let Some(setting) = unused {
            let found = Found { name: setting.variable, value: setting.path.to_str().unwrap_or_default() };
            let reason =
                format!("TLS settings need an https endpoint; {} is {}", endpoint.from, endpoint.url);
            return Err(ConfigError::new(found, reason));
        }
    }
    Ok(Some(Otlp { protocol, endpoint, headers, timeout, compression, tls }))
}

/// An endpoint URL: http or https, a host, no credentials. A gRPC endpoint
/// has no path (the method is the path); with `append`, OTLP/HTTP's
/// `/v1/traces` is added to the path given.
fn endpoint(found: Found<'_>, protocol: Protocol, insecure: bool, append: bool) -> Result<Uri, ConfigError> {
    let text = if let Some((scheme, _)) = found.value.split_once("://") {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ConfigError::new(found, "the scheme must be http or https"));
        }
        found.value.to_owned()
    } else if protocol == Protocol::Grpc {
        // The specification's rule for gRPC endpoints without a scheme.
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{}", found.value)
    } else {
        return Err(ConfigError::new(found, "needs a scheme: http:// or https://"));
    };
    let url: Uri = text.parse().map_err(|e| ConfigError::new(found, format!("not a URL: {e}")))?;
    let Some(authority) = url.authority().filter(|a| !a.host().is_empty()) else {
        return Err(ConfigError::new(found, "has no host"));
    };
    if authority.as_str().contains('@') {
        let reason = format!("credentials in the URL are not supported; send them in {}", HEADERS.generic);
        return Err(ConfigError::hiding_value(found, reason));
    }
    match protocol {
        Protocol::Grpc => {
            if !matches!(url.path(), "" | "/") || url.query().is_some() {
                let reason = "an OTLP/gRPC endpoint has no path or query (the gRPC method is the path)";
                return Err(ConfigError::new(found, reason));
            }
            Ok(url)
        }
        Protocol::HttpProtobuf if append => {
            let path = format!("{}{HTTP_TRACES_PATH}", url.path().trim_end_matches('/'));
            let path_and_query = match url.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let mut parts = url.into_parts();
            parts.path_and_query =
                Some(path_and_query.parse().map_err(|e| ConfigError::new(found, format!("{e}")))?);
            Uri::from_parts(parts).map_err(|e| ConfigError::new(found, format!("not a URL: {e}")))
        }
        Protocol::HttpProtobuf => Ok(url),
    }
}

/// `name=value,name=value`, values percent-decoded. Values are never
/// printed: they are often credentials.
fn headers(found: Found<'_>, protocol: Protocol) -> Result<Vec<(HeaderName, String)>, ConfigError> {
    let mut headers: Vec<(HeaderName, String)> = Vec::new();
    for (index, entry) in found.value.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let refuse = |reason: String| Err(ConfigError::hiding_value(found, reason));
        let Some((name, value)) = entry.split_once('=') else {
            return refuse(format!("entry {} is not name=value", index + 1));
        };
        let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
            return refuse(format!("entry {} does not start with a header name", index + 1));
        };
        if protocol == Protocol::Grpc && name.as_str().ends_with("-bin") {
            return refuse(format!("{name}: binary gRPC metadata is not supported"));
        }
        let Ok(value) = percent_decode_str(value.trim()).decode_utf8() else {
            return refuse(format!("{name}: the value is not UTF-8 once percent-decoded"));
        };
        if value.is_empty() {
            return refuse(format!("{name} has no value"));
        }
        if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return refuse(format!("{name}: the value must be printable ASCII (percent-decoded)"));
        }
        if headers.iter().any(|(seen, _)| *seen == name) {
            return refuse(format!("{name} is given twice"));
        }
        headers.push((name, value.into_owned()));
    }
    Ok(headers)
}

fn resource(vars: &Vars, service: &str) -> Result<ResourceSettings, ConfigError> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    if let Some(found) = vars.get(RESOURCE_ATTRIBUTES) {
        for (index, entry) in found.value.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let decode = |text: &str| percent_decode_str(text.trim()).decode_utf8().map(|t| t.into_owned());
            let Some((Ok(key), Ok(value))) = entry.split_once('=').map(|(k, v)| (decode(k), decode(v)))
            else {
                return Err(ConfigError::new(found, format!("entry {} is not key=value", index + 1)));
            };
            if key.is_empty() {
                return Err(ConfigError::new(found, format!("entry {} has no key", index + 1)));
            }
            if attributes.iter().any(|(seen, _)| *seen == key) {
                return Err(ConfigError::new(found, format!("{key} is given twice")));
            }
            attributes.push((key, value));
        }
    }
    // OTEL_SERVICE_NAME wins over service.name in the attributes, which
    // wins over the binary's name.
    let from_attributes =
        attributes.iter().position(|(k, _)| k == "service.name").map(|i| attributes.remove(i).1);
    let service_name = match vars.get(SERVICE_NAME) {
        Some(found) => found.value.to_owned(),
        None => from_attributes.unwrap_or_else(|| service.to_owned()),
    };
    Ok(ResourceSettings { service_name, attributes })
}

fn sampler(vars: &Vars, ignored: &mut Vec<Ignored>) -> Result<Sampler, ConfigError> {
    let name =
        vars.get(TRACES_SAMPLER).map_or("parentbased_always_on".to_owned(), |f| f.value.to_ascii_lowercase());
    if matches!(name.as_str(), "jaeger_remote" | "parentbased_jaeger_remote" | "xray") {
        // Samplers that take their rules from a remote service, which the
        // Rust SDK does not ship: the specification's default instead, and
        // OTEL_TRACES_SAMPLER_ARG (that service's address) is theirs.
        let found = vars.get(TRACES_SAMPLER).expect("set");
        let reason = format!(
            "ignored: {name} is not built in; the specification's default, parentbased_always_on, samples instead"
        );
        ignored.push(Ignored { variable: found.name.into(), value: found.value.into(), reason });
        if let Some(arg) = vars.get(TRACES_SAMPLER_ARG) {
            let reason = format!("ignored: it configures {name}, which is not built in");
            ignored.push(Ignored { variable: arg.name.into(), value: arg.value.into(), reason });
        }
        return Ok(Sampler { parent_based: true, root: RootSampler::AlwaysOn });
    }
    let (parent_based, fixed) = match name.as_str() {
        "always_on" => (false, Some(RootSampler::AlwaysOn)),
        "always_off" => (false, Some(RootSampler::AlwaysOff)),
        "traceidratio" => (false, None),
        "parentbased_always_on" => (true, Some(RootSampler::AlwaysOn)),
        "parentbased_always_off" => (true, Some(RootSampler::AlwaysOff)),
        "parentbased_traceidratio" => (true, None),
        _ => {
            let reason = "not supported; use always_on, always_off, traceidratio, parentbased_always_on, \
                          parentbased_always_off or parentbased_traceidratio";
            return Err(ConfigError::new(vars.get(TRACES_SAMPLER).expect("set"), reason));
        }
    };
    let root = match (fixed, vars.get(TRACES_SAMPLER_ARG)) {
        (Some(root), None) => root,
        (Some(root), Some(arg)) => {
            let reason = format!(
                "ignored: only the traceidratio samplers take an argument, and the sampler is {name}"
            );
            ignored.push(Ignored { variable: arg.name.into(), value: arg.value.into(), reason });
            root
        }
        (None, None) => RootSampler::TraceIdRatio(1.0),
        (None, Some(arg)) => match arg.value.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => RootSampler::TraceIdRatio(ratio),
            _ => return Err(ConfigError::new(arg, "must be a number from 0 to 1")),
        },
    };
    Ok(Sampler { parent_based, root })
}

fn batch(vars: &Vars) -> Result<Batch, ConfigError> {
    let max_queue_size = vars.get(BSP_MAX_QUEUE_SIZE).map(positive).transpose()?.unwrap_or(2048);
    let max_export_batch_size = match vars.get(BSP_MAX_EXPORT_BATCH_SIZE) {
        None => max_queue_size.min(512),
        Some(found) => match positive(found)? {
            size if size > max_queue_size => {
                let reason = format!("must not exceed {BSP_MAX_QUEUE_SIZE} ({max_queue_size})");
                return Err(ConfigError::new(found, reason));
            }
            size => size,
        },
    };
    Ok(Batch {
        max_queue_size,
        max_export_batch_size,
        schedule_delay: vars
            .get(BSP_SCHEDULE_DELAY)
            .map(milliseconds)
            .transpose()?
            .unwrap_or(Duration::from_secs(5)),
        export_timeout: vars
            .get(BSP_EXPORT_TIMEOUT)
            .map(milliseconds)
            .transpose()?
            .unwrap_or(Duration::from_secs(30)),
    })
}

fn limits(vars: &Vars) -> Result<Limits, ConfigError> {
    let count =
        |name| vars.get(name).map(|f| f.value.parse::<u32>().map_err(|_| whole_number(f))).transpose();
    let attributes = count(ATTRIBUTE_COUNT_LIMIT)?.unwrap_or(128);
    Ok(Limits {
        span_attributes: count(SPAN_ATTRIBUTE_COUNT_LIMIT)?.unwrap_or(attributes),
        span_events: count(SPAN_EVENT_COUNT_LIMIT)?.unwrap_or(128),
        span_links: count(SPAN_LINK_COUNT_LIMIT)?.unwrap_or(128),
        event_attributes: count(EVENT_ATTRIBUTE_COUNT_LIMIT)?.unwrap_or(attributes),
        link_attributes: count(LINK_ATTRIBUTE_COUNT_LIMIT)?.unwrap_or(attributes),
    })
}

fn boolean(found: Found<'_>) -> Result<bool, ConfigError> {
    match found.value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(found, "must be true or false")),
    }
}

fn whole_number(found: Found<'_>) -> ConfigError {
    ConfigError::new(found, "must be a whole number")
}

/// More than zero: a queue, batch or timeout of 0 would lose every span.
fn positive(found: Found<'_>) -> Result<usize, ConfigError> {
    match found.value.parse::<usize>() {
        Ok(0) => Err(ConfigError::new(found, "must be more than 0")),
        Ok(n) => Ok(n),
        Err(_) => Err(whole_number(found)),
    }
}

/// Milliseconds, as the specification writes every OTLP and BSP duration.
fn milliseconds(found: Found<'_>) -> Result<Duration, ConfigError> {
    match found.value.parse::<u64>() {
        Ok(0) => Err(ConfigError::new(found, "must be more than 0 (milliseconds)")),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(ConfigError::new(found, "must be a whole number of milliseconds")),
    }
}

#[cfg(test)]
mod tests;
