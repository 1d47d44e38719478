//! Traces and metrics, with both services as real processes exporting to
//! an OTLP collector inside the test; `export` covers each protocol, TLS
//! and the variables that configure export.

mod export;

use process_tests as process;
use process_tests::unused_port;

use std::{net::IpAddr, time::Duration};

use system_tests::{
    cluster::Replica,
    collector::{Collector, ReceivedSpan},
    Behaviour, FakeService1, Pki,
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

struct Services {
    service1: Vec<Replica>,
    service2: Replica,
}

/// `replicas` service1 processes on 127.0.0.2.. and service2 on
/// 127.0.0.1, all exporting to `otlp` (`OTEL_EXPORTER_OTLP_ENDPOINT`,
/// unset when empty) with a short batch delay, and `extra` variables.
fn start(pki: &Pki, otlp: &str, replicas: u8, extra: &[(&str, String)]) -> Services {
    start_with_targets(pki, otlp, replicas, extra, &[])
}

/// As `start`, with `more` endpoints (such as a fake) in service2's target.
fn start_with_targets(
    pki: &Pki,
    otlp: &str,
    replicas: u8,
    extra: &[(&str, String)],
    more: &[String],
) -> Services {
    let port = unused_port(ip(2));
    let otel = |service: &str| {
        let mut env = vec![
            ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
            ("OTEL_RESOURCE_ATTRIBUTES", format!("deployment.environment=test,role={service}")),
            ("DRAIN_DELAY", "0s".to_owned()),
            ("PORT", "0".to_owned()),
        ];
        // Empty means no export at all.
        if !otlp.is_empty() {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.to_owned()));
        }
        env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        env
    };
    let service1: Vec<_> = (2..2 + replicas)
        .map(|last| {
            let mut env = otel("service1");
            env.extend([("BIND_ADDR", ip(last).to_string()), ("GRPC_PORT", port.to_string())]);
            Replica::spawn("service1", ip(last), pki, &env)
        })
        .collect();
    let mut targets: Vec<_> = service1.iter().map(|r| format!("{}:{port}", r.ip)).collect();
    targets.extend_from_slice(more);
    let mut env = otel("service2");
    env.extend([
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("SERVICE1_CHANNEL", format!("static:///{}", targets.join(","))),
    ]);
    let service2 = Replica::spawn("service2", ip(1), pki, &env);
    Services { service1, service2 }
}

impl Services {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.service2.listening["rest"].as_str().expect("rest address"))
    }
}

async fn call(url: &str, headers: &[(&str, &str)]) -> u16 {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let request = headers.iter().fold(client.get(url), |r, (k, v)| r.header(*k, *v));
    request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

fn one<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    accept: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| accept(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what}, got {found:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_both_services_with_request_id_on_every_span() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    let services = start(&pki, &format!("http://{}", collector.addr), 1, &[]);
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");

    let status = call(
        &services.url("/api/v1/say-hello?name=trace"),
        &[("traceparent", &traceparent), ("x-request-id", "trace-me-1")],
    )
    .await;

    assert_eq!(status, 200);
    let spans = collector
        .wait_for("three spans of the trace", |spans| {
            spans.iter().filter(|s| s.trace_id() == TRACE_ID).count() >= 3
        })
        .await;
    let trace: Vec<_> = spans.into_iter().filter(|s| s.trace_id() == TRACE_ID).collect();
    let kind = |s: &ReceivedSpan| s.span.kind;
    let edge = one(&trace, "service2 server span", |s| s.service == "service2" && kind(s) == 2);
    let client = one(&trace, "client span", |s| s.service == "service2" && kind(s) == 3);
    let server = one(&trace, "service1 server span", |s| s.service == "service1" && kind(s) == 2);

    // Each process tells its spans apart: its version, its own instance id,
    // and what OTEL_RESOURCE_ATTRIBUTES adds.
    assert_eq!(edge.resource_attribute("service.version").as_deref(), Some(service2::VERSION));
    assert_eq!(server.resource_attribute("service.version").as_deref(), Some(service1::VERSION));
    assert_eq!(server.resource_attribute("deployment.environment").as_deref(), Some("test"));
    let instance = |s: &ReceivedSpan| s.resource_attribute("service.instance.id").expect("an instance id");
    assert_ne!(instance(edge), instance(server));
    assert_eq!(instance(edge), instance(client));

    // Parent links: caller -> service2 edge -> client attempt -> service1.
    assert_eq!(edge.parent_span_id(), CALLER_SPAN_ID);
    assert_eq!(client.parent_span_id(), edge.span_id());
    assert_eq!(server.parent_span_id(), client.span_id());
    for span in [edge, client, server] {
        assert_eq!(span.attribute("request_id").as_deref(), Some("trace-me-1"), "{span:#?}");
    }
    assert_eq!(edge.span.name, "GET /api/v1/say-hello");
    assert_eq!(edge.attribute("http.request.method").as_deref(), Some("GET"));
    assert_eq!(edge.attribute("http.route").as_deref(), Some("/api/v1/say-hello"));
    assert_eq!(edge.attribute("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(client.span.name, "app.grpc.Service1/ProcessName");
    for span in [client, server] {
        assert_eq!(span.attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(span.attribute("rpc.service").as_deref(), Some("app.grpc.Service1"));
        assert_eq!(span.attribute("rpc.method").as_deref(), Some("ProcessName"));
        assert_eq!(span.attribute("rpc.grpc.status_code").as_deref(), Some("0"));
    }
    assert_eq!(client.attribute("server.address").as_deref(), Some("127.0.0.2"));
    assert_eq!(client.attribute("attempt").as_deref(), Some("1"));

    // Logs join traces: the same ids on the log lines of that request.
    let line = services
        .service2
        .wait_for_line("service2's access line", |l| {
            l.contains("\"trace-me-1\"") && l.contains("http request served")
        })
        .await;
    assert!(line.contains(&format!("\"trace_id\":\"{TRACE_ID}\"")), "{line}");
    assert!(line.contains(&format!("\"span_id\":\"{}\"", edge.span_id())), "{line}");
    let line = services.service1[0]
        .wait_for_line("service1's access line", |l| {
            l.contains("\"trace-me-1\"") && l.contains("grpc call served")
        })
        .await;
    assert!(line.contains(&format!("\"trace_id\":\"{TRACE_ID}\"")), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_and_its_retry_are_separate_client_spans() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    // A replica that answers UNAVAILABLE, next to a real one: calls that
    // land on it are retried on the other.
    let failing = FakeService1::start_with(Behaviour::Fail(tonic::Code::Unavailable), &pki).await;
    let otlp = format!("http://{}", collector.addr);
    let services = start_with_targets(&pki, &otlp, 1, &[], &[failing.addr.to_string()]);
    for i in 0..50 {
        let id = format!("retry-{i}");
        assert_eq!(call(&services.url("/api/v1/say-hello?name=r"), &[("x-request-id", &id)]).await, 200);
    }
    let line = services.service2.wait_for_line("about a retry", |l| l.contains("retrying")).await;
    drop(failing);
    let line: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let retried = line["request_id"].as_str().map(str::to_owned);
    let id = retried.expect("one of 50 calls landed on the failing replica and was retried");

    let spans = collector
        .wait_for("two attempt spans", |spans| {
            spans
                .iter()
                .filter(|s| s.span.kind == 3 && s.attribute("request_id").as_deref() == Some(&id))
                .count()
                >= 2
        })
        .await;
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.span.kind == 3 && s.attribute("request_id").as_deref() == Some(&id))
        .collect();
    let first = attempts.iter().find(|s| s.attribute("attempt").as_deref() == Some("1")).expect("attempt 1");
    let second = attempts.iter().find(|s| s.attribute("attempt").as_deref() == Some("2")).expect("attempt 2");
    assert_eq!(first.span.status.as_ref().map(|s| s.code), Some(2), "the failed attempt has status ERROR");
    assert_eq!(second.attribute("rpc.grpc.status_code").as_deref(), Some("0"));
    assert_eq!(first.parent_span_id(), second.parent_span_id(), "both are children of the same request span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_unreachable_every_request_still_succeeds_and_drops_are_counted() {
    let closed = unused_port(ip(1));
    let pki = Pki::new();
    let services =
        start(&pki, &format!("http://127.0.0.1:{closed}"), 1, &[("OTEL_BSP_MAX_QUEUE_SIZE", "16".into())]);

    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses.push(call(&services.url("/api/v1/say-hello?name=x"), &[]).await);
    }

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", services.service2.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped = metric(&metrics, "otel_spans_dropped_total").expect("the counter is exposed");
    assert!(dropped > 0.0, "a 16-span queue cannot hold 200 spans with no collector: {dropped}");
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
}

/// Every sample of `name` whose labels contain all of `labels`, summed.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    let response = reqwest::get(format!("http://{admin}/metrics")).await.expect("scrape");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "a complete exposition");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_requests_are_served() {
    let pki = Pki::new();
    let services = start(&pki, "", 1, &[]);
    let (s1, s2) = (services.service1[0].admin, services.service2.admin);
    let before = (scrape(s1).await, scrape(s2).await);

    for _ in 0..3 {
        assert_eq!(call(&services.url("/api/v1/say-hello?name=m"), &[]).await, 200);
    }
    assert_eq!(call(&services.url("/api/v1/say-hello"), &[]).await, 400);
    let after = (scrape(s1).await, scrape(s2).await);

    let delta = |before: &str, after: &str, name: &str, labels: &[&str]| {
        sample(after, name, labels) - sample(before, name, labels)
    };
    let route = r#"route="/api/v1/say-hello""#;
    assert_eq!(delta(&before.1, &after.1, "http_server_requests_total", &[route, r#"status="200""#]), 3.0);
    assert_eq!(delta(&before.1, &after.1, "http_server_requests_total", &[route, r#"status="400""#]), 1.0);
    assert_eq!(delta(&before.1, &after.1, "http_server_request_duration_seconds_count", &[route]), 4.0);
    assert_eq!(delta(&before.1, &after.1, "service1_calls_total", &[]), 3.0);
    let ok = [r#"grpc_method="ProcessName""#, r#"grpc_code="OK""#];
    assert_eq!(delta(&before.0, &after.0, "grpc_server_handled_total", &ok), 3.0);
    assert_eq!(delta(&before.0, &after.0, "grpc_server_handling_seconds_count", &ok[..1]), 3.0);
    assert_eq!(sample(&after.1, "service1_endpoints_ready", &[]), 1.0);
    assert_eq!(sample(&after.1, "service1_retries_total", &[]), 0.0);
    for text in [&after.0, &after.1] {
        assert!(sample(text, "tls_certificate_not_after_seconds", &[]) > 1.7e9, "a real notAfter");
        assert_eq!(sample(text, "tls_reload_failures_total", &[]), 0.0);
        assert!(sample(text, "process_resident_memory_bytes", &[]) > 0.0);
        // A fresh process may not have used a whole clock tick of CPU yet.
        assert!(text.lines().any(|l| l.starts_with("process_cpu_seconds_total ")), "{text}");
        assert!(sample(text, "process_open_fds", &[]) > 0.0);
    }
}

/// The environment the OpenTelemetry Operator's SDK injection gives the
/// container of `service` (pod `pod`), as its
/// internal/instrumentation/sdk_test.go writes it, with the kubelet's
/// `$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME)` and `$(..._NODE_NAME)` expanded:
/// an Instrumentation with propagators tracecontext and baggage, sampler
/// parentbased_traceidratio 0.25, exporter endpoint `otlp` (the in-test
/// collector), and `OTEL_METRICS_EXPORTER`/`OTEL_LOGS_EXPORTER` set to otlp
/// in its `env`, as a platform team sets them for every language.
fn operator_injected(service: &str, pod: &str, otlp: &str) -> Vec<(&'static str, String)> {
    let replicaset = pod.rsplit_once('-').map_or(pod, |(rs, _)| rs);
    let resource = [
        format!("k8s.container.name={service}"),
        format!("k8s.deployment.name=hello-{service}"),
        "k8s.namespace.name=demo".to_owned(),
        "k8s.node.name=node-a".to_owned(),
        format!("k8s.pod.name={pod}"),
        "k8s.pod.uid=6d1a2f4e-0000-4000-8000-000000000001".to_owned(),
        format!("k8s.replicaset.name={replicaset}"),
        format!("service.instance.id=demo.{pod}.{service}"),
        "service.namespace=demo".to_owned(),
        "service.version=v1@sha256:232a180dbcbcfa7250917507f3827d88a9ae89bb1cdd8fe3ac4db7b764ebb25a"
            .to_owned(),
    ];
    vec![
        ("OTEL_NODE_IP", "10.0.0.12".to_owned()),
        ("OTEL_POD_IP", "10.244.1.7".to_owned()),
        ("OTEL_SERVICE_NAME", service.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.to_owned()),
        ("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", pod.to_owned()),
        ("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "node-a".to_owned()),
        ("OTEL_PROPAGATORS", "tracecontext,baggage".to_owned()),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25".to_owned()),
        ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
        ("OTEL_RESOURCE_ATTRIBUTES", resource.join(",")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_operator_s_injected_environment_a_trace_arrives_with_baggage_carried_to_service1() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    let otlp = format!("http://{}", collector.addr);
    let port = unused_port(ip(2));
    let mut env = operator_injected("service1", "hello-service1-7d9f8b6c4-x2x7q", &otlp);
    env.extend([
        ("BIND_ADDR", ip(2).to_string()),
        ("GRPC_PORT", port.to_string()),
        ("PORT", "0".to_owned()),
        ("DRAIN_DELAY", "0s".to_owned()),
    ]);
    let service1 = Replica::spawn("service1", ip(2), &pki, &env);
    let mut env = operator_injected("service2", "hello-service2-5b7c9d8f6-k8l9m", &otlp);
    env.extend([
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("SERVICE1_CHANNEL", format!("static:///{}:{port}", ip(2))),
        ("PORT", "0".to_owned()),
        ("DRAIN_DELAY", "0s".to_owned()),
    ]);
    let services =
        Services { service1: vec![service1], service2: Replica::spawn("service2", ip(1), &pki, &env) };
    // A sampled caller: parentbased_traceidratio follows its decision.
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");

    let status = call(
        &services.url("/api/v1/say-hello?name=baggage"),
        &[("traceparent", &traceparent), ("baggage", "tenant=acme,plan=gold%20tier")],
    )
    .await;

    assert_eq!(status, 200);
    let spans = collector
        .wait_for("service1's server span and service2's client span", |spans| {
            let of = |service: &str, kind: i32| {
                spans.iter().any(|s| s.trace_id() == TRACE_ID && s.service == service && s.span.kind == kind)
            };
            of("service1", 2) && of("service2", 3)
        })
        .await;
    let trace: Vec<_> = spans.into_iter().filter(|s| s.trace_id() == TRACE_ID).collect();
    let server = one(&trace, "service1 server span", |s| s.service == "service1" && s.span.kind == 2);
    // service2's client span carries the ObjectId service1 assigned.
    let client = one(&trace, "client span", |s| s.service == "service2" && s.span.kind == 3);
    let object_id = client.attribute("app.object_id").expect("the ObjectId service1 sent");
    assert!(object_id.len() == 24 && object_id.bytes().all(|b| b.is_ascii_hexdigit()), "{object_id}");
    assert_eq!(client.attribute("baggage.tenant").as_deref(), Some("acme"));
    // The baggage crossed the gRPC hop: service1 read it from its metadata.
    assert_eq!(server.attribute("baggage.tenant").as_deref(), Some("acme"), "{server:#?}");
    assert_eq!(server.attribute("baggage.plan").as_deref(), Some("gold tier"));
    assert_eq!(server.resource_attribute("k8s.pod.name").as_deref(), Some("hello-service1-7d9f8b6c4-x2x7q"));
    assert_eq!(
        server.resource_attribute("service.instance.id").as_deref(),
        Some("demo.hello-service1-7d9f8b6c4-x2x7q.service1")
    );
    // Each ignored value is one WARN line saying why, and the service runs.
    for replica in [&services.service1[0], &services.service2] {
        let lines = replica.lines();
        for variable in ["OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"] {
            let warned: Vec<_> = lines
                .iter()
                .filter(|l| {
                    l.contains(r#""level":"WARN""#) && l.contains(&format!("{variable}=otlp: ignored: "))
                })
                .collect();
            assert_eq!(warned.len(), 1, "{variable}: {lines:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_baggage_in_otel_propagators_the_baggage_header_is_not_carried() {
    let collector = Collector::start().await;
    let pki = Pki::new();
    let only_tracecontext = [("OTEL_PROPAGATORS", "tracecontext".to_owned())];
    let services = start(&pki, &format!("http://{}", collector.addr), 1, &only_tracecontext);
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");

    let status = call(
        &services.url("/api/v1/say-hello?name=nobaggage"),
        &[("traceparent", &traceparent), ("baggage", "tenant=acme")],
    )
    .await;

    assert_eq!(status, 200);
    let spans = collector
        .wait_for("service1's span of the trace", |spans| {
            spans.iter().any(|s| s.trace_id() == TRACE_ID && s.service == "service1")
        })
        .await;
    let server = one(&spans, "service1 server span", |s| s.service == "service1" && s.span.kind == 2);
    assert_eq!(server.parent_span_id().len(), 16, "the trace still continues");
    assert_eq!(server.attribute("baggage.tenant"), None, "{server:#?}");
}
