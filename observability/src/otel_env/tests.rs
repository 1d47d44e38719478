//! What each variable does, read from a list (no `set_var`).

use super::*;

fn read(vars: &[(&str, &str)]) -> Result<TraceSettings, ConfigError> {
    TraceSettings::from_vars("service2", vars.iter().copied())
}

fn settings(vars: &[(&str, &str)]) -> TraceSettings {
    read(vars).unwrap_or_else(|e| panic!("{vars:?} refused: {e}"))
}

fn otlp(vars: &[(&str, &str)]) -> Otlp {
    match settings(vars).export {
        Export::Otlp(otlp) => *otlp,
        Export::Off(why) => panic!("{vars:?}: not exported ({why})"),
    }
}

fn off(vars: &[(&str, &str)]) -> Off {
    match settings(vars).export {
        Export::Off(why) => why,
        Export::Otlp(otlp) => panic!("{vars:?}: exported to {}", otlp.endpoint.url),
    }
}

/// The one-line error, which must name `variable`.
fn refused(vars: &[(&str, &str)], variable: &str) -> String {
    let error = read(vars).expect_err(&format!("{vars:?} must be refused"));
    assert_eq!(error.variable(), variable, "{error}");
    let line = error.to_string();
    assert!(line.starts_with(variable), "{line}");
    assert!(!line.contains('\n'), "{line}");
    line
}

/// The variables accepted without effect, as `(variable, value)`.
fn ignored(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    settings(vars).ignored.into_iter().map(|i| (i.variable, i.value)).collect()
}

/// The one WARN line about `variable`, which must say why.
fn warning(vars: &[(&str, &str)], variable: &str) -> String {
    let lines: Vec<String> =
        settings(vars).ignored.iter().filter(|i| i.variable == variable).map(ToString::to_string).collect();
    assert_eq!(lines.len(), 1, "{vars:?}: one line about {variable}: {lines:?}");
    assert!(lines[0].starts_with(&format!("{variable}=")) && lines[0].contains("ignored: "), "{lines:?}");
    lines[0].clone()
}

fn url(vars: &[(&str, &str)]) -> String {
    otlp(vars).endpoint.url.to_string()
}

const GRPC: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
const HTTP: (&str, &str) = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");

// === whether spans are exported ===

#[test]
fn with_nothing_set_nothing_is_exported() {
    let settings = settings(&[]);
    assert_eq!(settings.export, Export::Off(Off::NoEndpoint));
    assert_eq!(settings.resource, ResourceSettings { service_name: "service2".into(), attributes: vec![] });
    assert_eq!(settings.sampler, Sampler { parent_based: true, root: RootSampler::AlwaysOn });
}

#[test]
fn an_endpoint_turns_export_on_over_grpc_by_default() {
    let otlp = otlp(&[GRPC]);
    assert_eq!(otlp.protocol, Protocol::Grpc);
    assert_eq!(otlp.endpoint.url, "http://collector:4317/");
    assert_eq!(otlp.endpoint.from, "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(otlp.timeout, Duration::from_secs(10));
    assert_eq!(otlp.compression, Compression::None);
    assert_eq!(otlp.headers, vec![]);
    assert_eq!(otlp.tls, TlsFiles::default());
}

#[test]
fn the_per_signal_endpoint_alone_turns_export_on() {
    let otlp = otlp(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317")]);
    assert_eq!(otlp.endpoint.from, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
}

#[test]
fn sdk_disabled_and_exporter_none_turn_export_off_even_with_an_endpoint() {
    assert_eq!(off(&[GRPC, ("OTEL_SDK_DISABLED", "true")]), Off::SdkDisabled);
    assert_eq!(
        off(&[GRPC, ("OTEL_SDK_DISABLED", "TRUE"), ("OTEL_TRACES_EXPORTER", "otlp")]),
        Off::SdkDisabled
    );
    assert_eq!(off(&[GRPC, ("OTEL_TRACES_EXPORTER", "none")]), Off::ExporterNone);
    assert_eq!(otlp(&[GRPC, ("OTEL_SDK_DISABLED", "false")]).protocol, Protocol::Grpc);
}

#[test]
fn exporter_otlp_without_an_endpoint_uses_the_specifications_defaults() {
    let otlp_only = ("OTEL_TRACES_EXPORTER", "otlp");
    assert_eq!(url(&[otlp_only]), "http://localhost:4317/");
    assert_eq!(url(&[otlp_only, HTTP]), "http://localhost:4318/v1/traces");
}

#[test]
fn exporters_the_specification_names_but_not_built_in_are_accepted_with_a_warning() {
    for value in ["zipkin", "console", "logging", "jaeger", "zipkin,console"] {
        let vars = [GRPC, ("OTEL_TRACES_EXPORTER", value)];
        assert_eq!(off(&vars), Off::NoBuiltInExporter, "{value}");
        assert!(warning(&vars, "OTEL_TRACES_EXPORTER").contains("spans leave only over OTLP"));
    }
    // With otlp in the list, spans still leave over OTLP.
    let vars = [GRPC, ("OTEL_TRACES_EXPORTER", "otlp,console")];
    assert_eq!(otlp(&vars).protocol, Protocol::Grpc);
    assert!(warning(&vars, "OTEL_TRACES_EXPORTER").contains(": console ignored: not built in"));
    assert_eq!(ignored(&[GRPC, ("OTEL_TRACES_EXPORTER", "otlp")]), vec![]);
}

#[test]
fn exporters_no_sdk_knows_or_none_with_others_are_refused() {
    let line = refused(&[("OTEL_TRACES_EXPORTER", "kafka")], "OTEL_TRACES_EXPORTER");
    assert!(line.contains("kafka is not a value of this variable"), "{line}");
    let line = refused(&[("OTEL_TRACES_EXPORTER", "otlp,none")], "OTEL_TRACES_EXPORTER");
    assert!(line.contains("none must stand alone"), "{line}");
}

#[test]
fn a_boolean_is_true_or_false() {
    let line = refused(&[("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED");
    assert_eq!(line, "OTEL_SDK_DISABLED=yes: must be true or false");
    refused(&[GRPC, ("OTEL_EXPORTER_OTLP_INSECURE", "1")], "OTEL_EXPORTER_OTLP_INSECURE");
}

#[test]
fn a_bad_value_is_refused_even_while_export_is_off() {
    let vars = [("OTEL_SDK_DISABLED", "true"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")];
    refused(&vars, "OTEL_EXPORTER_OTLP_PROTOCOL");
    refused(&[("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER");
}

#[test]
fn an_empty_value_is_the_same_as_unset() {
    assert_eq!(off(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " "), ("OTEL_TRACES_EXPORTER", "")]), Off::NoEndpoint);
}

// === protocol and endpoint ===

#[test]
fn the_generic_endpoint_is_used_as_it_is_over_grpc() {
    assert_eq!(url(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317/")]), "https://collector:4317/");
}

#[test]
fn over_http_the_generic_endpoint_gets_the_signals_path_appended() {
    let with = |endpoint| url(&[HTTP, ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]);
    assert_eq!(with("http://collector:4318"), "http://collector:4318/v1/traces");
    assert_eq!(with("http://collector:4318/"), "http://collector:4318/v1/traces");
    assert_eq!(with("https://gateway/otlp/"), "https://gateway/otlp/v1/traces");
    assert_eq!(with("https://gateway/otlp?tenant=a"), "https://gateway/otlp/v1/traces?tenant=a");
}

#[test]
fn over_http_the_per_signal_endpoint_is_used_as_it_is_and_wins() {
    let vars = [
        HTTP,
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom/traces"),
    ];
    assert_eq!(url(&vars), "http://collector:4318/custom/traces");
    let vars = [HTTP, ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318")];
    assert_eq!(url(&vars), "http://collector:4318/");
}

#[test]
fn the_per_signal_protocol_wins_over_the_generic_one() {
    let vars = [GRPC, HTTP, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")];
    assert_eq!(otlp(&vars).protocol, Protocol::Grpc);
    let vars = [
        GRPC,
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ];
    assert_eq!(otlp(&vars).protocol, Protocol::HttpProtobuf);
}

#[test]
fn http_json_is_posted_as_http_protobuf_with_a_warning_and_unknown_protocols_are_refused() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ];
    let otlp = otlp(&vars);
    assert_eq!(otlp.protocol, Protocol::HttpProtobuf);
    assert_eq!(otlp.endpoint.url, "http://collector:4318/v1/traces");
    assert!(warning(&vars, "OTEL_EXPORTER_OTLP_PROTOCOL").contains("as http/protobuf"));
    refused(&[GRPC, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift")], "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
}

#[test]
fn a_grpc_endpoint_without_a_scheme_is_https_unless_insecure() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317");
    assert_eq!(url(&[endpoint]), "https://collector:4317/");
    assert_eq!(url(&[endpoint, ("OTEL_EXPORTER_OTLP_INSECURE", "true")]), "http://collector:4317/");
    assert_eq!(url(&[endpoint, ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true")]), "http://collector:4317/");
    refused(&[HTTP, endpoint], "OTEL_EXPORTER_OTLP_ENDPOINT");
}

#[test]
fn endpoints_that_cannot_be_reached_as_written_are_refused() {
    for (endpoint, reason) in [
        ("ftp://collector:21", "the scheme must be http or https"),
        ("http://", "not a URL"),
        ("http://collector:4317/v1/traces", "no path"),
        ("http://collector:4317?x=1", "no path or query"),
        ("unix:///run/otel.sock", "the scheme must be http or https"),
    ] {
        let line = refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)], "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert!(line.contains(reason), "{endpoint}: {line}");
    }
}

#[test]
fn endpoints_the_chart_accepts_are_accepted() {
    // tests/chart/test_otel.py: ACCEPTED
    for endpoint in
        ["https://collector.observability:4317", "http://collector:4317/", "http://[fd00::1]:4317"]
    {
        assert_eq!(otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]).protocol, Protocol::Grpc);
    }
    for endpoint in ["https://gateway.example/otlp", "https://gateway.example/v1/traces?tenant=a"] {
        assert_eq!(otlp(&[HTTP, ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]).protocol, Protocol::HttpProtobuf);
    }
}

#[test]
fn credentials_in_an_endpoint_are_refused_without_printing_them() {
    let line = refused(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:s3cret@collector:4317")],
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    );
    assert!(!line.contains("s3cret"), "{line}");
    assert!(line.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{line}");
}

// === headers, timeout, compression ===

#[test]
fn headers_are_percent_decoded_and_the_per_signal_ones_replace_the_generic_ones() {
    let vars = [GRPC, ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc, x-tenant = a%2Cb ,")];
    let headers = otlp(&vars).headers;
    let expected = vec![
        (HeaderName::from_static("authorization"), "Bearer abc".into()),
        (HeaderName::from_static("x-tenant"), "a,b".into()),
    ];
    assert_eq!(headers, expected);
    let vars =
        [GRPC, ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"), ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "c=3")];
    assert_eq!(otlp(&vars).headers, vec![(HeaderName::from_static("c"), "3".into())]);
}

#[test]
fn malformed_headers_are_refused_without_printing_their_values() {
    for (value, reason) in [
        ("api-key", "entry 1 is not name=value"),
        ("a=1,bad name=s3cret", "entry 2 does not start with a header name"),
        ("api-key=", "api-key has no value"),
        ("api-key=s3cret%0A", "printable ASCII"),
        ("api-key=s3cr%C3%A9t", "printable ASCII"),
        ("api-key=s3cret,API-KEY=s3cret", "api-key is given twice"),
        ("token-bin=s3cret", "binary gRPC metadata"),
    ] {
        let line = refused(&[GRPC, ("OTEL_EXPORTER_OTLP_HEADERS", value)], "OTEL_EXPORTER_OTLP_HEADERS");
        assert!(line.contains(reason), "{value}: {line}");
        assert!(!line.contains("s3cr"), "{line}");
    }
    // Over HTTP a -bin suffix is an ordinary name.
    assert_eq!(otlp(&[GRPC, HTTP, ("OTEL_EXPORTER_OTLP_HEADERS", "token-bin=x")]).headers.len(), 1);
}

#[test]
fn the_timeout_is_whole_milliseconds_more_than_zero() {
    assert_eq!(otlp(&[GRPC, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]).timeout, Duration::from_millis(2500));
    let vars = [GRPC, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"), ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700")];
    assert_eq!(otlp(&vars).timeout, Duration::from_millis(700));
    for value in ["0", "10s", "-1", "1.5"] {
        refused(&[GRPC, ("OTEL_EXPORTER_OTLP_TIMEOUT", value)], "OTEL_EXPORTER_OTLP_TIMEOUT");
    }
}

#[test]
fn compression_is_gzip_or_none() {
    assert_eq!(otlp(&[GRPC, ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]).compression, Compression::Gzip);
    let vars =
        [GRPC, ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"), ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none")];
    assert_eq!(otlp(&vars).compression, Compression::None);
    refused(&[GRPC, ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")], "OTEL_EXPORTER_OTLP_COMPRESSION");
}

// === TLS ===

const HTTPS: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");

fn file(variable: &'static str, path: &str) -> FileSetting {
    FileSetting { variable, path: path.into() }
}

#[test]
fn tls_files_come_per_signal_first_then_generic() {
    let vars = [
        HTTPS,
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.crt"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.crt"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/generic/tls.crt"),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/traces/tls.key"),
    ];
    let tls = otlp(&vars).tls;
    assert_eq!(tls.certificate, Some(file("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.crt")));
    let client = (
        file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/generic/tls.crt"),
        file("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/traces/tls.key"),
    );
    assert_eq!(tls.client, Some(client));
}

#[test]
fn a_client_certificate_needs_its_key_and_the_key_its_certificate() {
    let line = refused(
        &[HTTPS, ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.crt")],
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    );
    assert!(line.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"), "{line}");
    refused(
        &[HTTPS, ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/c.key")],
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    );
}

#[test]
fn tls_files_with_a_plaintext_endpoint_are_refused_as_unused() {
    let line =
        refused(&[GRPC, ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.crt")], "OTEL_EXPORTER_OTLP_CERTIFICATE");
    assert!(line.contains("need an https endpoint"), "{line}");
    // Unused too, but harmless, while nothing is exported.
    assert_eq!(off(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.crt")]), Off::NoEndpoint);
}

// === resource, sampler, batch, limits ===

#[test]
fn the_service_name_comes_from_otel_service_name_then_the_attributes_then_the_binary() {
    let attributes =
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=prod,team=a%2Cb");
    let resource = settings(&[attributes]).resource;
    assert_eq!(resource.service_name, "from-attrs");
    let expected = vec![("deployment.environment".into(), "prod".into()), ("team".into(), "a,b".into())];
    assert_eq!(resource.attributes, expected);
    assert_eq!(settings(&[attributes, ("OTEL_SERVICE_NAME", "edge")]).resource.service_name, "edge");
}

#[test]
fn malformed_resource_attributes_are_refused() {
    for value in ["team", "=x", "a=1,a=2", "a=%FF"] {
        refused(&[("OTEL_RESOURCE_ATTRIBUTES", value)], "OTEL_RESOURCE_ATTRIBUTES");
    }
}

#[test]
fn samplers_and_their_argument() {
    let sampler = |vars: &[(&str, &str)]| settings(vars).sampler;
    let ratio = |r| RootSampler::TraceIdRatio(r);
    assert_eq!(
        sampler(&[("OTEL_TRACES_SAMPLER", "always_off")]),
        Sampler { parent_based: false, root: RootSampler::AlwaysOff }
    );
    assert_eq!(
        sampler(&[("OTEL_TRACES_SAMPLER", "traceidratio")]),
        Sampler { parent_based: false, root: ratio(1.0) }
    );
    let vars = [("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.1")];
    assert_eq!(sampler(&vars), Sampler { parent_based: true, root: ratio(0.1) });
    for arg in ["1.5", "-0.1", "ten"] {
        let vars = [("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", arg)];
        refused(&vars, "OTEL_TRACES_SAMPLER_ARG");
    }
    // An argument for a sampler that takes none: accepted, said, unused.
    let vars = [("OTEL_TRACES_SAMPLER_ARG", "0.5")];
    assert_eq!(sampler(&vars), Sampler { parent_based: true, root: RootSampler::AlwaysOn });
    assert!(warning(&vars, "OTEL_TRACES_SAMPLER_ARG").contains("parentbased_always_on"));
    // Remote samplers are not built in: the specification's default instead.
    for name in ["jaeger_remote", "parentbased_jaeger_remote", "xray"] {
        let vars =
            [("OTEL_TRACES_SAMPLER", name), ("OTEL_TRACES_SAMPLER_ARG", "endpoint=http://jaeger:14250")];
        assert_eq!(sampler(&vars), Sampler { parent_based: true, root: RootSampler::AlwaysOn });
        assert!(warning(&vars, "OTEL_TRACES_SAMPLER").contains("not built in"));
        assert!(warning(&vars, "OTEL_TRACES_SAMPLER_ARG").contains(name));
    }
    refused(&[("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER");
}

#[test]
fn the_batch_processor_settings_are_checked() {
    let batch = settings(&[("OTEL_BSP_MAX_QUEUE_SIZE", "16"), ("OTEL_BSP_SCHEDULE_DELAY", "50")]).batch;
    let expected = Batch {
        max_queue_size: 16,
        max_export_batch_size: 16,
        schedule_delay: Duration::from_millis(50),
        export_timeout: Duration::from_secs(30),
    };
    assert_eq!(batch, expected);
    assert_eq!(settings(&[]).batch.max_export_batch_size, 512);
    let vars = [("OTEL_BSP_MAX_QUEUE_SIZE", "16"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32")];
    refused(&vars, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
    refused(&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")], "OTEL_BSP_MAX_QUEUE_SIZE");
    refused(&[("OTEL_BSP_EXPORT_TIMEOUT", "5s")], "OTEL_BSP_EXPORT_TIMEOUT");
}

#[test]
fn span_limits_fall_back_to_the_general_attribute_limit() {
    let vars = [
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "64"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "8"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "4"),
    ];
    let limits = settings(&vars).limits;
    let expected = Limits {
        span_attributes: 64,
        span_events: 8,
        span_links: 128,
        event_attributes: 64,
        link_attributes: 4,
    };
    assert_eq!(limits, expected);
    refused(&[("OTEL_SPAN_LINK_COUNT_LIMIT", "many")], "OTEL_SPAN_LINK_COUNT_LIMIT");
    for name in ["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"] {
        assert!(warning(&[(name, "256")], name).contains("does not truncate"));
    }
}

// === everything else ===

#[test]
fn a_name_in_a_trace_family_that_is_not_a_setting_is_refused() {
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPIONT",
        "OTEL_EXPORTER_OTLP_TRACES_CERT",
        "OTEL_BSP_MAX_CONCURRENT_EXPORTS",
        "OTEL_TRACES_SAMPLERS",
    ] {
        let line = refused(&[(name, "x")], name);
        assert!(line.contains("not a variable these services read"), "{line}");
    }
}

#[test]
fn other_signals_otlp_settings_are_not_read_and_each_is_one_warning() {
    let vars =
        [("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://x"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "thrift")];
    assert_eq!(off(&vars), Off::NoEndpoint);
    assert!(warning(&vars, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").contains("/metrics"));
    assert!(warning(&vars, "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL").contains("stdout"));
    // Header values are credentials: never in a log line.
    let line =
        warning(&[("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "api-key=s3cret")], "OTEL_EXPORTER_OTLP_LOGS_HEADERS");
    assert!(!line.contains("s3cret"), "{line}");
}

#[test]
fn metrics_and_logs_exporters_the_specification_names_are_accepted() {
    // What these services do: no warning.
    for vars in [
        [("OTEL_METRICS_EXPORTER", "prometheus"), ("OTEL_LOGS_EXPORTER", "console")],
        [("OTEL_METRICS_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")],
    ] {
        assert_eq!(ignored(&vars), vec![], "{vars:?}");
    }
    // What they do not: one line each, saying where metrics and logs are.
    let vars = [("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_LOGS_EXPORTER", "otlp")];
    assert_eq!(off(&vars), Off::NoEndpoint);
    assert!(warning(&vars, "OTEL_METRICS_EXPORTER").contains("/metrics"));
    assert!(warning(&vars, "OTEL_LOGS_EXPORTER").contains("JSON lines on stdout"));
    for (name, value) in [("OTEL_METRICS_EXPORTER", "statsd"), ("OTEL_LOGS_EXPORTER", "otlp,none")] {
        refused(&[(name, value)], name);
    }
}

#[test]
fn tracecontext_and_baggage_are_propagated_by_default_and_as_listed() {
    let propagation = |vars: &[(&str, &str)]| settings(vars).propagation;
    let both = Propagation { trace_context: true, baggage: true };
    assert_eq!(propagation(&[]), both);
    assert_eq!(propagation(&[("OTEL_PROPAGATORS", "tracecontext,baggage")]), both);
    assert_eq!(
        propagation(&[("OTEL_PROPAGATORS", "tracecontext")]),
        Propagation { trace_context: true, baggage: false }
    );
    assert_eq!(
        propagation(&[("OTEL_PROPAGATORS", "none")]),
        Propagation { trace_context: false, baggage: false }
    );
    assert_eq!(ignored(&[("OTEL_PROPAGATORS", "tracecontext,baggage")]), vec![]);
}

#[test]
fn propagators_not_built_in_are_accepted_with_a_warning_and_unknown_ones_refused() {
    let vars = [("OTEL_PROPAGATORS", "tracecontext,baggage,b3multi")];
    assert_eq!(settings(&vars).propagation, Propagation { trace_context: true, baggage: true });
    let line = warning(&vars, "OTEL_PROPAGATORS");
    assert!(
        line.contains("b3multi ignored: not built in; W3C traceparent and baggage are read and written"),
        "{line}"
    );
    // The operator's own e2e Instrumentation: nothing we read is left.
    let vars = [("OTEL_PROPAGATORS", "jaeger,b3")];
    assert_eq!(settings(&vars).propagation, Propagation { trace_context: false, baggage: false });
    assert!(warning(&vars, "OTEL_PROPAGATORS").contains("nothing is read and written"));
    for value in ["w3c", "tracecontext,none"] {
        refused(&[("OTEL_PROPAGATORS", value)], "OTEL_PROPAGATORS");
    }
}

/// What the OpenTelemetry Operator's SDK injection puts into a container
/// (its internal/instrumentation/sdk_test.go, with the kubelet's
/// `$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME)` expansion done), for an
/// Instrumentation with propagators tracecontext and baggage, sampler
/// parentbased_traceidratio 0.25, and the metrics and logs exporters a
/// platform team sets for every language.
pub(crate) const OPERATOR_INJECTED: [(&str, &str); 13] = [
    ("OTEL_NODE_IP", "10.0.0.12"),
    ("OTEL_POD_IP", "10.244.1.7"),
    ("OTEL_SERVICE_NAME", "service2"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", "hello-service2-7d9f8b6c4-x2x7q"),
    ("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "node-a"),
    ("OTEL_PROPAGATORS", "tracecontext,baggage"),
    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
    ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ("OTEL_METRICS_EXPORTER", "otlp"),
    ("OTEL_LOGS_EXPORTER", "otlp"),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "k8s.container.name=service2,k8s.deployment.name=hello-service2,k8s.namespace.name=demo,\
         k8s.node.name=node-a,k8s.pod.name=hello-service2-7d9f8b6c4-x2x7q,k8s.pod.uid=6d1a2f4e-0000-4000-8000-000000000001,\
         k8s.replicaset.name=hello-service2-7d9f8b6c4,service.instance.id=demo.hello-service2-7d9f8b6c4-x2x7q.service2,\
         service.namespace=demo,service.version=v1@sha256:232a180dbcbcfa7250917507f3827d88a9ae89bb1cdd8fe3ac4db7b764ebb25a",
    ),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10000"),
];

#[test]
fn the_operator_s_injected_environment_is_honoured_or_warned_about() {
    let settings = settings(&OPERATOR_INJECTED);
    let Export::Otlp(otlp) = &settings.export else { panic!("not exported: {:?}", settings.export) };
    assert_eq!(otlp.endpoint.url, "http://collector:4317/");
    assert_eq!(settings.sampler, Sampler { parent_based: true, root: RootSampler::TraceIdRatio(0.25) });
    assert_eq!(settings.propagation, Propagation { trace_context: true, baggage: true });
    assert_eq!(settings.resource.service_name, "service2");
    let attribute =
        |key: &str| settings.resource.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(attribute("k8s.pod.name"), Some("hello-service2-7d9f8b6c4-x2x7q"));
    assert_eq!(
        attribute("service.version"),
        Some("v1@sha256:232a180dbcbcfa7250917507f3827d88a9ae89bb1cdd8fe3ac4db7b764ebb25a")
    );
    let variables: Vec<_> = settings.ignored.iter().map(|i| i.variable.as_str()).collect();
    assert_eq!(variables, ["OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"]);
}
