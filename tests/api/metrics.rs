//! Metric series are bounded: no label value comes from what a client sent.
//! gRPC calls are counted under the names and labels stock dashboards and
//! alerts expect (go-grpc-prometheus): `grpc_server_*` on service1,
//! `grpc_client_*` on service2.
//!
//! Each service records into its own registry, which these tests read in
//! process: after one request of a kind has made its series, thousands of
//! made-up methods and paths add none.

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use hyper_util::rt::TokioExecutor;
use observability::Metrics;
use system_tests::{
    raw_h2::{self, grpc_status, hold_calls},
    spawn_service1, spawn_service2, spawn_service2_with, Behaviour, FakeService1, Pki,
};
use tokio_stream::StreamExt as _;
use tonic::{codegen::Service as _, Code};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use wire::proto::ProcessNameRequest;

use crate::{client, get};

/// How many distinct made-up methods, paths or gRPC paths each test sends.
const DISTINCT: usize = 2_000;

const HTTP_METHODS: &[&str] =
    &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other"];

/// The series of `metric`: each one's name and labels, without its value.
fn series(metrics: &Metrics, metric: &str) -> BTreeSet<String> {
    let prefix = format!("{metric}{{");
    let text = metrics.render();
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.rsplit_once(' ').map_or(l, |(series, _value)| series).to_owned())
        .collect()
}

/// The values of `label` in `lines`.
fn label_values(lines: &BTreeSet<String>, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    lines
        .iter()
        .filter_map(|l| {
            l.split_once(&key).and_then(|(_, rest)| rest.split_once('"')).map(|(v, _)| v.to_owned())
        })
        .collect()
}

/// A made-up, valid method token for request `i`.
fn made_up_method(i: usize) -> String {
    format!("X{i}{:08X}", fastrand::u32(..))
}

#[tokio::test]
async fn random_methods_and_paths_do_not_grow_the_metrics() {
    let service1 = spawn_service1(&[]).await;
    let client = client();
    // One request of the kind first, so its own series exist before counting.
    let ports = [service1.rest_addr, service1.admin_addr];
    for port in ports {
        client
            .request(http::Method::from_bytes(b"BREW").unwrap(), format!("http://{port}/first"))
            .send()
            .await
            .unwrap();
    }
    let before = series(&service1.metrics, "http_server_requests_total");

    let mut sent = Vec::new();
    for i in 0..DISTINCT {
        let method = made_up_method(i);
        let url = format!("http://{}/made-up/{i}/{}", ports[i % 2], fastrand::u64(..));
        let reply = client.request(http::Method::from_bytes(method.as_bytes()).unwrap(), url).send().await;
        assert_eq!(reply.expect("the port answers").status(), 404);
        sent.push(method);
    }
    let after = series(&service1.metrics, "http_server_requests_total");
    let durations = series(&service1.metrics, "http_server_request_duration_seconds_count");

    assert_eq!(after, before, "{DISTINCT} made-up methods and paths added series");
    for lines in [&after, &durations] {
        let methods = label_values(lines, "method");
        assert!(methods.iter().all(|m| HTTP_METHODS.contains(&m.as_str())), "{methods:?}");
        let routes = label_values(lines, "route");
        assert!(routes.iter().all(|r| !r.contains("made-up")), "{routes:?}");
    }
    assert!(
        after.contains(r#"http_server_requests_total{method="other",route="<unmatched>",status="404"}"#),
        "{after:#?}"
    );
}

/// Calls `paths` on service1's gRPC port as `identity` (a certificate
/// `NAME.crt` in `pki`) over one HTTP/2 connection; returns each call's
/// grpc-status, if it came with the response head (as a refusal does).
async fn call_paths(addr: SocketAddr, pki: &Pki, identity: &str, paths: &[String]) -> Vec<Option<String>> {
    let mut connector = system_tests::grpc_client::mtls_connector(pki, identity);
    let io = connector.call(format!("http://{addr}").parse().unwrap()).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake::<_, _, String>(TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(connection);
    let mut statuses = Vec::new();
    for path in paths {
        let request = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(String::new())
            .unwrap();
        let response = sender.send_request(request).await.expect("an answer");
        statuses.push(response.headers().get("grpc-status").map(|s| s.to_str().unwrap().to_owned()));
    }
    statuses
}

fn made_up_paths() -> Vec<String> {
    (0..DISTINCT).map(|i| format!("/made.up.Service{i}/Method{}", fastrand::u32(..))).collect()
}

/// The gRPC metric labels after `identity` called `DISTINCT` made-up paths
/// (and ProcessName once): the series before and after, and the statuses.
async fn grpc_series_around(
    pki: &Pki,
    identity: &str,
) -> (BTreeSet<String>, BTreeSet<String>, Vec<Option<String>>) {
    let service1 = spawn_service1(&crate::tls::strs(&pki.args("service1"))).await;
    let warm_up = [String::from("/made.up.Service/First"), String::from("/app.grpc.Service1/ProcessName")];
    call_paths(service1.grpc_addr, pki, identity, &warm_up).await;
    let before = grpc_server_series(&service1.metrics);

    let statuses = call_paths(service1.grpc_addr, pki, identity, &made_up_paths()).await;

    let after = grpc_server_series(&service1.metrics);
    (before, after, statuses)
}

/// Every series of the `grpc_server_*` families.
fn grpc_server_series(metrics: &Metrics) -> BTreeSet<String> {
    ["started_total", "handled_total", "msg_received_total", "msg_sent_total", "handling_seconds_count"]
        .iter()
        .flat_map(|name| series(metrics, &format!("grpc_server_{name}")))
        .collect()
}

fn assert_bounded(before: &BTreeSet<String>, after: &BTreeSet<String>) {
    assert_eq!(after, before, "{DISTINCT} made-up paths added series");
    let closed_sets = [
        (
            "grpc_service",
            &[
                "app.grpc.Service1",
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "unknown",
            ][..],
        ),
        ("grpc_method", &["ProcessName", "Check", "Watch", "ServerReflectionInfo", "unknown"]),
        ("grpc_type", &["unary", "client_stream", "server_stream", "bidi_stream"]),
    ];
    for (label, known) in closed_sets {
        let values = label_values(after, label);
        assert!(values.iter().all(|v| known.contains(&v.as_str())), "{label}: {values:?}");
    }
}

/// The value of the one sample `series` (name and labels, as rendered).
fn value(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap_or_else(|_| panic!("{series}: {v}")))
}

/// Waits (at most 5 s) until `series` reads `expected`, and says what it
/// read: a server counts a call as handled once its response body is done
/// with, which may be a moment after the client has its answer.
async fn settled(metrics: &Metrics, series: &str, expected: f64) -> f64 {
    for _ in 0..500 {
        if value(metrics, series) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    value(metrics, series)
}

const CHECK: &str = "/grpc.health.v1.Health/Check";
const PROCESS_NAME: &str = r#"grpc_type="unary",grpc_service="app.grpc.Service1",grpc_method="ProcessName""#;
const UNKNOWN: &str = r#"grpc_type="bidi_stream",grpc_service="unknown",grpc_method="unknown""#;

#[tokio::test]
async fn random_grpc_paths_from_an_unlisted_client_do_not_grow_the_metrics() {
    let pki = Pki::new();
    pki.write_leaf("intruder", &pki.issue(certgen::LeafSpec::client("intruder")));

    let (before, after, statuses) = grpc_series_around(&pki, "intruder").await;

    assert!(statuses.iter().all(|s| s.as_deref() == Some("7")), "every call is PERMISSION_DENIED");
    assert_bounded(&before, &after);
    // Refused calls are counted, without their path, even a served one.
    let refused = format!(r#"grpc_server_handled_total{{{UNKNOWN},grpc_code="PermissionDenied"}}"#);
    assert!(after.contains(&refused), "{after:#?}");
}

#[tokio::test]
async fn a_refused_call_is_counted_started_and_handled_without_its_method() {
    let pki = Pki::new();
    pki.write_leaf("intruder", &pki.issue(certgen::LeafSpec::client("intruder")));
    let service1 = spawn_service1(&crate::tls::strs(&pki.args("service1"))).await;
    let paths = [String::from("/app.grpc.Service1/ProcessName")];

    let statuses = call_paths(service1.grpc_addr, &pki, "intruder", &paths).await;

    assert_eq!(statuses, [Some("7".to_owned())]);
    let m = &service1.metrics;
    let denied = format!(r#"grpc_server_handled_total{{{UNKNOWN},grpc_code="PermissionDenied"}}"#);
    assert_eq!(settled(m, &denied, 1.0).await, 1.0);
    assert_eq!(value(m, &format!("grpc_server_started_total{{{UNKNOWN}}}")), 1.0);
    assert_eq!(value(m, &format!("grpc_server_started_total{{{PROCESS_NAME}}}")), 0.0);
    assert_eq!(value(m, &format!("grpc_server_msg_received_total{{{UNKNOWN}}}")), 0.0, "not read");
}

#[tokio::test]
async fn random_grpc_paths_from_a_listed_client_do_not_grow_the_metrics() {
    let pki = Pki::new();

    let (before, after, statuses) = grpc_series_around(&pki, "service2").await;

    assert!(statuses.iter().all(|s| s.as_deref() == Some("12")), "every call is UNIMPLEMENTED");
    assert_bounded(&before, &after);
    let unimplemented = format!(r#"grpc_server_handled_total{{{UNKNOWN},grpc_code="Unimplemented"}}"#);
    assert!(after.contains(&unimplemented), "{after:#?}");
}

#[tokio::test]
async fn grpc_server_calls_are_counted_started_handled_by_grpc_go_code_name_with_messages_and_latency() {
    let service1 = spawn_service1(&["--grpc-max-message-bytes", "64"]).await;
    let mut client =
        system_tests::grpc_client::grpc_client(service1.grpc_addr, Pki::shared(), "service2").await;

    for name in ["a", "b"] {
        client.process_name(ProcessNameRequest { name: name.into() }).await.expect("served");
    }
    let too_long = client.process_name(ProcessNameRequest { name: "x".repeat(100) }).await.unwrap_err();

    assert_eq!(too_long.code(), Code::ResourceExhausted);
    let m = &service1.metrics;
    let ok = format!(r#"grpc_server_handled_total{{{PROCESS_NAME},grpc_code="OK"}}"#);
    let exhausted = format!(r#"grpc_server_handled_total{{{PROCESS_NAME},grpc_code="ResourceExhausted"}}"#);
    assert_eq!(settled(m, &ok, 2.0).await, 2.0);
    assert_eq!(settled(m, &exhausted, 1.0).await, 1.0);
    for (family, expected) in [
        ("grpc_server_started_total", 3.0),
        ("grpc_server_handling_seconds_count", 3.0),
        // Each request's message arrived (the last one too large to take).
        ("grpc_server_msg_received_total", 3.0),
        ("grpc_server_msg_sent_total", 2.0),
    ] {
        assert_eq!(value(m, &format!("{family}{{{PROCESS_NAME}}}")), expected, "{family}");
    }
    let text = m.render();
    // grpc-go's Code.String() spelling, not tonic's Debug form nor gRPC's table.
    for other in ["Ok", "Cancelled", "RESOURCE_EXHAUSTED", "CANCELLED"] {
        assert!(!text.contains(&format!(r#"grpc_code="{other}""#)), "{other}: {text}");
    }
}

#[tokio::test]
async fn a_call_past_its_deadline_is_deadline_exceeded_whichever_deadline_ended_it() {
    // The server's own deadline answers the call with DEADLINE_EXCEEDED. The
    // client's (grpc-timeout, 100 ms) is enforced by tonic, outside the layer
    // that counts calls: it drops the call and answers CANCELLED ("Timeout
    // expired"); the metric says why the call ended.
    let service1 = spawn_service1(&["--grpc-call-timeout", "300ms"]).await;
    let addr = service1.grpc_addr;
    let h2 = raw_h2::connect_mtls(addr, Pki::shared(), "service2").await;
    let (server_deadline, _body) = hold_calls(h2, addr, CHECK, 1).await.calls.pop().unwrap();
    let mut send = raw_h2::connect_mtls(addr, Pki::shared(), "service2").await.send;
    let mut request = raw_h2::grpc_request(addr, CHECK);
    request.headers_mut().insert("grpc-timeout", http::HeaderValue::from_static("100m"));
    let (client_deadline, _body) = send.send_request(request, false).unwrap();

    let answers = [server_deadline, client_deadline].map(|answer| async move {
        let answer = tokio::time::timeout(Duration::from_secs(5), answer).await;
        answer.ok().and_then(Result::ok).and_then(|a| grpc_status(&a).map(str::to_owned))
    });
    let [first, second] = answers;
    let statuses = tokio::join!(first, second);

    assert_eq!(statuses, (Some("4".to_owned()), Some("1".to_owned())));
    let check = r#"grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check""#;
    let exceeded = format!(r#"grpc_server_handled_total{{{check},grpc_code="DeadlineExceeded"}}"#);
    assert_eq!(settled(&service1.metrics, &exceeded, 2.0).await, 2.0, "{}", service1.metrics.render());
}

#[tokio::test]
async fn a_server_stream_counts_each_message_and_a_stream_the_client_drops_is_canceled() {
    let service1 = spawn_service1(&[]).await;
    let channel = system_tests::grpc_client::mtls_channel(service1.grpc_addr, Pki::shared(), "service2");
    let mut health = HealthClient::new(channel);
    let watch = r#"grpc_type="server_stream",grpc_service="grpc.health.v1.Health",grpc_method="Watch""#;

    let mut stream = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    stream.next().await.expect("the first status").expect("a message");
    let started = value(&service1.metrics, &format!("grpc_server_started_total{{{watch}}}"));
    drop((stream, health));

    let m = &service1.metrics;
    let canceled = format!(r#"grpc_server_handled_total{{{watch},grpc_code="Canceled"}}"#);
    assert_eq!(started, 1.0);
    assert_eq!(settled(m, &canceled, 1.0).await, 1.0);
    assert_eq!(value(m, &format!("grpc_server_msg_received_total{{{watch}}}")), 1.0);
    assert!(value(m, &format!("grpc_server_msg_sent_total{{{watch}}}")) >= 1.0);
}

#[tokio::test]
async fn service2_counts_its_calls_to_service1_as_a_grpc_client() {
    let service1 = spawn_service1(&[]).await;
    let service2 = spawn_service2(service1.grpc_addr).await;

    for _ in 0..2 {
        assert_eq!(get(&service2.url("/api/v1/say-hello?name=m"), None).await.status, 200);
    }

    let m = &service2.metrics;
    for (series, expected) in [
        (format!(r#"grpc_client_handled_total{{{PROCESS_NAME},grpc_code="OK"}}"#), 2.0),
        (format!("grpc_client_started_total{{{PROCESS_NAME}}}"), 2.0),
        (format!("grpc_client_handling_seconds_count{{{PROCESS_NAME}}}"), 2.0),
        (format!("grpc_client_msg_sent_total{{{PROCESS_NAME}}}"), 2.0),
        (format!("grpc_client_msg_received_total{{{PROCESS_NAME}}}"), 2.0),
    ] {
        assert_eq!(value(m, &series), expected, "{series}");
    }
    assert!(!m.render().contains("grpc_server_handled_total{"), "service2 serves no gRPC");
}

#[tokio::test]
async fn a_failed_call_to_service1_is_counted_with_its_code_and_no_answer_received() {
    let fake = FakeService1::start(Behaviour::Fail(Code::InvalidArgument)).await;
    let service2 = spawn_service2(fake.addr).await;

    assert_eq!(get(&service2.url("/api/v1/say-hello?name=m"), None).await.status, 400);

    let m = &service2.metrics;
    let invalid = format!(r#"grpc_client_handled_total{{{PROCESS_NAME},grpc_code="InvalidArgument"}}"#);
    assert_eq!(value(m, &invalid), 1.0);
    assert_eq!(value(m, &format!(r#"grpc_client_handled_total{{{PROCESS_NAME},grpc_code="OK"}}"#)), 0.0);
    assert_eq!(value(m, &format!("grpc_client_msg_sent_total{{{PROCESS_NAME}}}")), 1.0);
    assert_eq!(value(m, &format!("grpc_client_msg_received_total{{{PROCESS_NAME}}}")), 0.0);
}

#[tokio::test]
async fn a_call_that_finds_no_service1_replica_is_counted_unavailable_with_nothing_sent() {
    // A port that was just free: nothing listens there.
    let closed = process_tests::closed_addr();
    let service2 = spawn_service2_with(closed, &["--service1-timeout", "60s"]).await;

    assert_eq!(get(&service2.url("/api/v1/say-hello?name=m"), None).await.status, 503);

    let m = &service2.metrics;
    let unavailable = format!(r#"grpc_client_handled_total{{{PROCESS_NAME},grpc_code="Unavailable"}}"#);
    assert_eq!(value(m, &unavailable), 1.0);
    assert_eq!(value(m, &format!("grpc_client_started_total{{{PROCESS_NAME}}}")), 1.0);
    assert_eq!(value(m, &format!("grpc_client_msg_sent_total{{{PROCESS_NAME}}}")), 0.0);
}
