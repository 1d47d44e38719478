//! What the SDK is told besides where to export: which exporters and
//! propagators are asked for (and which of those are not built in), the
//! resource, the sampler, the batch processor and the span limits.

use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::{
    vars::*, Batch, ConfigError, Ignored, Limits, Propagation, ResourceSettings, RootSampler, Sampler,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exporter {
    Otlp,
    None,
    /// Only exporters the specification names that are not built in.
    NotBuiltIn,
}

/// The specification's values of `OTEL_TRACES_EXPORTER` (jaeger was one
/// until it was deprecated; SDKs still know it).
pub(super) const TRACES_EXPORTERS: [&str; 6] = ["otlp", "none", "zipkin", "console", "logging", "jaeger"];

/// `None` for a list with no names in it (`,`), which is as good as unset.
pub(super) fn traces_exporter(
    found: Found<'_>,
    ignored: &mut Vec<Ignored>,
) -> Result<Option<Exporter>, ConfigError> {
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
pub(super) fn other_exporters(vars: &Vars, ignored: &mut Vec<Ignored>) -> Result<(), ConfigError> {
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
pub(super) const PROPAGATOR_NAMES: [&str; 8] =
    ["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none"];

pub(super) fn propagators(vars: &Vars, ignored: &mut Vec<Ignored>) -> Result<Propagation, ConfigError> {
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

pub(super) fn resource(vars: &Vars, service: &str) -> Result<ResourceSettings, ConfigError> {
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

pub(super) fn sampler(vars: &Vars, ignored: &mut Vec<Ignored>) -> Result<Sampler, ConfigError> {
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

pub(super) fn batch(vars: &Vars) -> Result<Batch, ConfigError> {
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

pub(super) fn limits(vars: &Vars) -> Result<Limits, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otel_env::vars::tests::vars;

    #[test]
    fn the_default_sampler_follows_the_parent_and_samples_every_root() {
        let sampler = sampler(&vars(&[]), &mut Vec::new()).unwrap();
        assert_eq!(sampler, Sampler { parent_based: true, root: RootSampler::AlwaysOn });
    }

    #[test]
    fn a_ratio_is_a_number_from_0_to_1_and_only_ratio_samplers_take_one() {
        let ratio = |arg| {
            sampler(&vars(&[(TRACES_SAMPLER, "traceidratio"), (TRACES_SAMPLER_ARG, arg)]), &mut Vec::new())
        };
        assert_eq!(ratio("0.25").unwrap().root, RootSampler::TraceIdRatio(0.25));
        assert!(ratio("1.5").is_err());
        let mut ignored = Vec::new();
        sampler(&vars(&[(TRACES_SAMPLER, "always_on"), (TRACES_SAMPLER_ARG, "0.5")]), &mut ignored).unwrap();
        assert_eq!(ignored[0].variable, TRACES_SAMPLER_ARG);
    }

    #[test]
    fn a_propagator_that_is_not_built_in_is_listed_and_the_w3c_ones_still_work() {
        let mut ignored = Vec::new();
        let propagation = propagators(&vars(&[(PROPAGATORS, "tracecontext,b3")]), &mut ignored).unwrap();
        assert_eq!(propagation, Propagation { trace_context: true, baggage: false });
        assert!(ignored[0].reason.starts_with("b3 ignored"), "{}", ignored[0].reason);
    }
}
