//! Metric series are bounded: no label value comes from what a client sent.
//!
//! Each service records into its own registry, which these tests read in
//! process: after one request of a kind has made its series, thousands of
//! made-up methods and paths add none.

use std::{collections::BTreeSet, net::SocketAddr};

use hyper_util::rt::TokioExecutor;
use observability::Metrics;
use system_tests::{spawn_service1, Pki};
use tonic::codegen::Service as _;

use crate::client;

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
    let before = series(&service1.metrics, "grpc_server_handled_total");

    let statuses = call_paths(service1.grpc_addr, pki, identity, &made_up_paths()).await;

    let after = series(&service1.metrics, "grpc_server_handled_total");
    (before, after, statuses)
}

fn assert_bounded(before: &BTreeSet<String>, after: &BTreeSet<String>) {
    assert_eq!(after, before, "{DISTINCT} made-up paths added series");
    let known = [
        "/app.grpc.Service1/ProcessName",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "unknown",
    ];
    let methods = label_values(after, "grpc_method");
    assert!(methods.iter().all(|m| known.contains(&m.as_str())), "{methods:?}");
}

#[tokio::test]
async fn random_grpc_paths_from_an_unlisted_client_do_not_grow_the_metrics() {
    let pki = Pki::new();
    pki.write_leaf("intruder", &pki.issue(certgen::LeafSpec::client("intruder")));

    let (before, after, statuses) = grpc_series_around(&pki, "intruder").await;

    assert!(statuses.iter().all(|s| s.as_deref() == Some("7")), "every call is PERMISSION_DENIED");
    assert_bounded(&before, &after);
    // Refused calls are counted, without their path, even a served one.
    assert!(
        after.contains(r#"grpc_server_handled_total{grpc_method="unknown",grpc_code="PermissionDenied"}"#),
        "{after:#?}"
    );
}

#[tokio::test]
async fn random_grpc_paths_from_a_listed_client_do_not_grow_the_metrics() {
    let pki = Pki::new();

    let (before, after, statuses) = grpc_series_around(&pki, "service2").await;

    assert!(statuses.iter().all(|s| s.as_deref() == Some("12")), "every call is UNIMPLEMENTED");
    assert_bounded(&before, &after);
    assert!(
        after.contains(r#"grpc_server_handled_total{grpc_method="unknown",grpc_code="Unimplemented"}"#),
        "{after:#?}"
    );
}
