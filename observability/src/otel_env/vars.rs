//! Reading the variables: their names (each setting's per-signal and
//! generic form, and the families checked for typos), the rule that an
//! empty value is unset, which names are refused or merely warned about,
//! and the number, boolean and list forms the specification gives values.

use std::{collections::HashMap, time::Duration};

use super::{ConfigError, Ignored};

/// A setting with a per-signal form that wins over the generic one.
#[derive(Clone, Copy)]
pub(super) struct Pair {
    pub(super) traces: &'static str,
    pub(super) generic: &'static str,
}

pub(super) const fn pair(traces: &'static str, generic: &'static str) -> Pair {
    Pair { traces, generic }
}

pub(super) const ENDPOINT: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT");
pub(super) const PROTOCOL: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
pub(super) const HEADERS: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS");
pub(super) const TIMEOUT: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT");
pub(super) const COMPRESSION: Pair =
    pair("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION");
pub(super) const CERTIFICATE: Pair =
    pair("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE");
pub(super) const CLIENT_CERTIFICATE: Pair =
    pair("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
pub(super) const CLIENT_KEY: Pair =
    pair("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY");
pub(super) const INSECURE: Pair = pair("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE");
pub(super) const OTLP_PAIRS: [Pair; 9] = [
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

pub(super) const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub(super) const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub(super) const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
pub(super) const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
pub(super) const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub(super) const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
pub(super) const PROPAGATORS: &str = "OTEL_PROPAGATORS";
pub(super) const METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
pub(super) const LOGS_EXPORTER: &str = "OTEL_LOGS_EXPORTER";
pub(super) const BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
pub(super) const BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
pub(super) const BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
pub(super) const BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
pub(super) const ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_ATTRIBUTE_COUNT_LIMIT";
pub(super) const SPAN_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT";
pub(super) const SPAN_EVENT_COUNT_LIMIT: &str = "OTEL_SPAN_EVENT_COUNT_LIMIT";
pub(super) const SPAN_LINK_COUNT_LIMIT: &str = "OTEL_SPAN_LINK_COUNT_LIMIT";
pub(super) const EVENT_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT";
pub(super) const LINK_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT";

/// Every single-form variable read here.
pub(super) const SINGLE: [&str; 19] = [
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
pub(super) const FAMILIES: [&str; 7] = [
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
pub(super) const OTHER_SIGNALS: [&str; 3] =
    ["OTEL_EXPORTER_OTLP_METRICS_", "OTEL_EXPORTER_OTLP_LOGS_", "OTEL_EXPORTER_OTLP_PROFILES_"];

pub(super) const METRICS_NOT_PUSHED: &str =
    "ignored: metrics are not pushed, Prometheus scrapes them from the admin port's /metrics";
pub(super) const LOGS_ON_STDOUT: &str =
    "ignored: logs are not sent over OTLP, they are JSON lines on stdout (with trace ids) for the node's log collector";

/// Variables the specification defines for what these services do
/// otherwise: each one set is accepted with a WARN line saying why it has
/// no effect. (Prefix, reason.)
pub(super) const IGNORED_FAMILIES: [(&str, &str); 12] = [
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

/// One variable that is set (non-empty), with its name.
#[derive(Clone, Copy)]
pub(super) struct Found<'a> {
    pub(super) name: &'static str,
    pub(super) value: &'a str,
}

pub(super) struct Vars(pub(super) HashMap<String, String>);

impl Vars {
    pub(super) fn get(&self, name: &'static str) -> Option<Found<'_>> {
        let value = self.0.get(name)?.trim();
        (!value.is_empty()).then_some(Found { name, value })
    }

    pub(super) fn get_pair(&self, pair: Pair) -> Option<Found<'_>> {
        self.get(pair.traces).or_else(|| self.get(pair.generic))
    }

    /// Refuses a name in a trace family that is not a setting, and lists the
    /// variables of other concerns that are set, with why they do nothing.
    pub(super) fn check_names(&self, ignored: &mut Vec<Ignored>) -> Result<(), ConfigError> {
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

/// A value for a WARN line: never a header value (credentials).
pub(super) fn shown(name: &str, value: &str) -> String {
    if name.contains("HEADERS") {
        "(not shown)".into()
    } else {
        value.trim().into()
    }
}

/// A comma-separated list of the specification's names, lower-cased and
/// without empty entries. `none` must stand alone (as the Java SDK's
/// autoconfiguration insists); a name no SDK knows is refused.
pub(super) fn names<'a>(found: Found<'a>, known: &[&str]) -> Result<Vec<String>, ConfigError> {
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

pub(super) fn boolean(found: Found<'_>) -> Result<bool, ConfigError> {
    match found.value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(found, "must be true or false")),
    }
}

pub(super) fn whole_number(found: Found<'_>) -> ConfigError {
    ConfigError::new(found, "must be a whole number")
}

/// More than zero: a queue, batch or timeout of 0 would lose every span.
pub(super) fn positive(found: Found<'_>) -> Result<usize, ConfigError> {
    match found.value.parse::<usize>() {
        Ok(0) => Err(ConfigError::new(found, "must be more than 0")),
        Ok(n) => Ok(n),
        Err(_) => Err(whole_number(found)),
    }
}

/// Milliseconds, as the specification writes every OTLP and BSP duration.
pub(super) fn milliseconds(found: Found<'_>) -> Result<Duration, ConfigError> {
    match found.value.parse::<u64>() {
        Ok(0) => Err(ConfigError::new(found, "must be more than 0 (milliseconds)")),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(ConfigError::new(found, "must be a whole number of milliseconds")),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `pairs` as the variables of a process.
    pub(in crate::otel_env) fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn the_per_signal_form_wins_and_an_empty_value_is_unset() {
        let both = vars(&[(ENDPOINT.traces, "http://t"), (ENDPOINT.generic, "http://g")]);
        let blank_traces = vars(&[(ENDPOINT.traces, "  "), (ENDPOINT.generic, "http://g")]);

        assert_eq!(both.get_pair(ENDPOINT).map(|f| f.value), Some("http://t"));
        assert_eq!(
            blank_traces.get_pair(ENDPOINT).map(|f| (f.name, f.value)),
            Some((ENDPOINT.generic, "http://g"))
        );
        assert!(vars(&[(SERVICE_NAME, "")]).get(SERVICE_NAME).is_none());
    }

    #[test]
    fn a_typo_in_a_trace_family_is_refused_and_another_signals_setting_is_only_listed() {
        let mut ignored = Vec::new();
        let typo = vars(&[("OTEL_BSP_MAX_QUEUE_SIZ", "1")]).check_names(&mut ignored).unwrap_err();
        assert_eq!(typo.variable(), "OTEL_BSP_MAX_QUEUE_SIZ");

        vars(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m")]).check_names(&mut ignored).unwrap();
        assert_eq!(ignored.len(), 1);
        assert_eq!(ignored[0].variable, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
    }

    #[test]
    fn header_values_are_never_shown() {
        assert_eq!(shown("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret"), "(not shown)");
        assert_eq!(shown("OTEL_TRACES_SAMPLER", " always_on "), "always_on");
    }

    #[test]
    fn numbers_are_whole_positive_milliseconds_and_booleans_are_true_or_false() {
        let found = |value| Found { name: BSP_SCHEDULE_DELAY, value };
        assert_eq!(milliseconds(found("250")), Ok(Duration::from_millis(250)));
        assert!(milliseconds(found("1.5")).is_err());
        assert_eq!(positive(found("3")), Ok(3));
        assert!(positive(found("0")).is_err());
        assert_eq!(boolean(found("TRUE")), Ok(true));
        assert!(boolean(found("yes")).is_err());
    }

    #[test]
    fn a_list_is_lower_cased_and_none_must_stand_alone() {
        let found = |value| Found { name: PROPAGATORS, value };
        let known = ["tracecontext", "baggage", "none"];
        assert_eq!(names(found("TraceContext, ,baggage"), &known).unwrap(), ["tracecontext", "baggage"]);
        assert!(names(found("none,baggage"), &known).is_err());
        assert!(names(found("w3c"), &known).is_err());
    }
}
