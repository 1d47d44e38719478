use axum::{routing::get, Router};
use serde_json::json;
use system_tests::Running;

use crate::{get as http_get, unique_id};

async fn boom() -> &'static str {
    panic!("secret detail at 10.9.8.7")
}

#[tokio::test]
async fn a_panicking_handler_gives_a_json_500_and_the_server_stays_up() {
    // The production routes never panic, so this serves a route that does
    // behind exactly the layers both services use.
    let routes =
        Router::new().route("/boom", get(boom)).route("/fine", get(|| async { axum::Json(json!("ok")) }));
    let limits = settings::HttpLimits::default();
    let obs = observability::Observability::default();
    let app = serving::http::with_common_layers(routes, &limits, &obs);
    system_tests::logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = Running::start(|stop| async move {
        let port = serving::http::PortLimits::rest(&settings::ConnectionLimits::default());
        serving::http::serve(listener, app, &limits, port, &obs.metrics, stop).await
    });
    let id = unique_id("panic");

    let boom = http_get(&format!("http://{addr}/boom"), Some(&id)).await;
    let fine = http_get(&format!("http://{addr}/fine"), None).await;

    assert_eq!((boom.status, boom.body), (500, json!({ "error": "internal error" })));
    assert_eq!(boom.request_id, id);
    assert_eq!((fine.status, fine.body), (200, json!("ok")));
    let lines = system_tests::logs().wait_for(&id, |l| l["message"] == "handler panicked").await;
    assert!(lines.iter().any(|l| l["level"] == "ERROR" && l["panic"] == "secret detail at 10.9.8.7"));
}
