//! OTLP export as the OpenTelemetry variables configure it: each protocol
//! against a collector of that protocol, TLS and mTLS, headers and gzip,
//! the per-signal endpoint, export switched off, and values refused at
//! start.

use system_tests::{
    collector::{Collector, CollectorTls, Protocol},
    Pki,
};

use super::{call, process, start, Services};

/// One say-hello through both services, then waits (at most 10 s) for a
/// span of that request from each.
async fn say_hello_and_collect(services: &Services, collector: &Collector, request_id: &str) {
    let status = call(&services.url("/api/v1/say-hello?name=otlp"), &[("x-request-id", request_id)]).await;
    assert_eq!(status, 200);
    collector
        .wait_for("a span of the request from each service", |spans| {
            let of_request = |service: &str| {
                spans
                    .iter()
                    .any(|s| s.service == service && s.attribute("request_id").as_deref() == Some(request_id))
            };
            of_request("service1") && of_request("service2")
        })
        .await;
}

fn pem(pki: &Pki, file: &str) -> String {
    pki.path(file).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_protobuf_spans_are_posted_to_v1_traces_under_the_generic_endpoint() {
    let collector = Collector::start_with(Protocol::HttpProtobuf, None).await;
    let pki = Pki::new();
    let protocol = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned())];
    let services = start(&pki, &collector.url(), 1, &protocol);

    say_hello_and_collect(&services, &collector, "http-protobuf-1").await;

    for request in collector.requests() {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.headers["content-type"], "application/x-protobuf");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_with_tls_the_collector_must_chain_to_otel_exporter_otlp_certificate() {
    let pki = Pki::new();
    let collector = Collector::start_with(Protocol::Grpc, Some(CollectorTls::issued_by(&pki))).await;
    let ca = [("OTEL_EXPORTER_OTLP_CERTIFICATE", pem(&pki, "ca.crt"))];
    let services = start(&pki, &collector.url(), 1, &ca);

    say_hello_and_collect(&services, &collector, "grpc-tls-1").await;

    assert!(collector.url().starts_with("https://"));
    assert_eq!(collector.failed_handshakes(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_protobuf_with_mtls_the_exporter_presents_its_client_certificate() {
    let pki = Pki::new();
    let tls = CollectorTls::issued_by(&pki).requiring_client_certificates(&pki);
    let collector = Collector::start_with(Protocol::HttpProtobuf, Some(tls)).await;
    pki.write_leaf("exporter", &pki.issue(certgen::LeafSpec::client("otel-exporter")));
    // The per-signal forms, and a per-signal endpoint used as it is.
    let env = [
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("{}/gateway/traces", collector.url())),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", pem(&pki, "ca.crt")),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", pem(&pki, "exporter.crt")),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", pem(&pki, "exporter.key")),
    ];
    let services = start(&pki, "", 1, &env);

    say_hello_and_collect(&services, &collector, "http-mtls-1").await;

    let paths: Vec<_> = collector.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().all(|p| p == "/gateway/traces"), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_an_https_collector_is_checked_against_the_system_roots() {
    let pki = Pki::new();
    let collector = Collector::start_with(Protocol::Grpc, Some(CollectorTls::issued_by(&pki))).await;
    // The system's roots, as OpenSSL and rustls-native-certs find them,
    // here made of the test CA alone.
    let roots = [("SSL_CERT_FILE", pem(&pki, "ca.crt"))];
    let services = start(&pki, &collector.url(), 1, &roots);

    say_hello_and_collect(&services, &collector, "system-roots-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_whose_certificate_does_not_chain_to_the_ca_given_gets_no_spans() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let collector = Collector::start_with(Protocol::Grpc, Some(CollectorTls::issued_by(&stranger))).await;
    let ca = [("OTEL_EXPORTER_OTLP_CERTIFICATE", pem(&pki, "ca.crt"))];
    let services = start(&pki, &collector.url(), 1, &ca);

    assert_eq!(call(&services.url("/api/v1/say-hello?name=x"), &[]).await, 200);
    let refusal = collector.wait_for_failed_handshake().await;

    assert!(collector.spans().is_empty(), "after {refusal}: {:#?}", collector.spans());
    assert!(collector.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_gzip_reach_the_collector_over_each_protocol() {
    for (protocol, name, encoding_header) in [
        (Protocol::Grpc, "grpc", "grpc-encoding"),
        (Protocol::HttpProtobuf, "http/protobuf", "content-encoding"),
    ] {
        let collector = Collector::start_with(protocol, None).await;
        let pki = Pki::new();
        let env = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", name.to_owned()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret,x-tenant=blue%20team".to_owned()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        ];
        let services = start(&pki, &collector.url(), 1, &env);

        say_hello_and_collect(&services, &collector, &format!("headers-{name}")).await;

        for request in collector.requests() {
            assert_eq!(request.headers["x-api-key"], "s3cret", "{name}");
            assert_eq!(request.headers["x-tenant"], "blue team", "{name}");
            assert_eq!(request.headers[encoding_header], "gzip", "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_signal_endpoint_alone_is_enough_to_export() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    let services = start(&pki, "", 1, &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url())]);

    say_hello_and_collect(&services, &collector, "per-signal-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_disabled_or_exporter_none_exports_nothing_though_an_endpoint_is_set() {
    for (variable, value) in [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")] {
        let collector = Collector::start().await;
        let pki = Pki::new();
        let mut services = start(&pki, &collector.url(), 1, &[(variable, value.to_owned())]);
        let reason = format!("\"reason\":\"{variable}={value}\"");
        for replica in services.service1.iter().chain([&services.service2]) {
            replica
                .wait_for_line("saying why", |l| l.contains("traces are not exported") && l.contains(&reason))
                .await;
        }

        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            call(&services.url("/api/v1/say-hello?name=off"), &[("traceparent", traceparent)]).await,
            200
        );
        // A process that exports flushes its queue before it exits, so
        // once both have exited, whatever they would send has been sent.
        for replica in services.service1.iter_mut().chain([&mut services.service2]) {
            assert_eq!(replica.terminate(), Some(0));
        }

        assert!(collector.requests().is_empty(), "{variable}={value}: {:#?}", collector.spans());
    }
}

/// With a batch delay longer than the test, the spans of a call are still
/// queued when SIGTERM comes: the flush at shutdown alone must send them,
/// before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_queued_at_sigterm_reach_the_collector_before_the_process_exits() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    let mut services = start(&pki, &collector.url(), 1, &[("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned())]);
    let request_id = "flushed-at-exit-1";
    assert_eq!(
        call(&services.url("/api/v1/say-hello?name=flush"), &[("x-request-id", request_id)]).await,
        200
    );

    for replica in services.service1.iter_mut().chain([&mut services.service2]) {
        assert_eq!(replica.terminate(), Some(0));
    }

    let spans = collector.spans();
    for service in ["service1", "service2"] {
        assert!(
            spans
                .iter()
                .any(|s| s.service == service && s.attribute("request_id").as_deref() == Some(request_id)),
            "no span of {service} for the request after it exited: {spans:#?}"
        );
    }
}

/// A service binary cargo built next to this test binary.
fn binary(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    dir.join(name).display().to_string()
}

#[test]
fn a_value_that_cannot_be_honoured_stops_the_service_with_exit_code_2_naming_the_variable() {
    let pki = Pki::new();
    let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4317");
    // Malformed, or a value no SDK knows; what the specification defines
    // but these services do not do is a warning instead.
    let cases: [&[(&str, &str)]; 10] = [
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")],
        &[("OTEL_PROPAGATORS", "tracecontext,w3c")],
        &[("OTEL_METRICS_EXPORTER", "statsd")],
        &[("OTEL_TRACES_EXPORTER", "kafka")],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:21")],
        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
        &[("OTEL_TRACES_SAMPLER", "sometimes")],
        &[("OTEL_SDK_DISABLED", "yes")],
        &[("OTEL_EXPORTER_OTLP_ENDPIONT", "http://typo:4317")],
        // Found when the exporter is built: the file is read at start.
        &[https, ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.crt")],
    ];
    for service in ["service1", "service2"] {
        let tls = [
            ("TLS_CERT", pem(&pki, &format!("{service}.crt"))),
            ("TLS_KEY", pem(&pki, &format!("{service}.key"))),
            ("TLS_CA", pem(&pki, "ca.crt")),
        ];
        for case in cases {
            let (variable, _) = case.last().expect("a variable");
            let mut env: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.extend([("BIND_ADDR", "127.0.0.1"), ("PORT", "0"), ("GRPC_PORT", "0"), ("ADMIN_PORT", "0")]);
            env.extend_from_slice(case);

            let (status, _stdout, stderr) = process::run(&binary(service), &env, &[]);

            assert_eq!(status.code(), Some(2), "{service} {case:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{service} {case:?}: one line: {stderr}");
            assert!(stderr.starts_with("error: invalid configuration: "), "{stderr}");
            assert!(stderr.contains(variable), "{service} {case:?} must name {variable}: {stderr}");
        }
    }
}
