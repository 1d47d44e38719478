use system_tests::{logs, spawn_service1, spawn_service2, spawn_service2_with, Behaviour, FakeService1};

use crate::{get, get_with, unique_id};

#[tokio::test]
async fn the_callers_request_id_is_echoed_and_sent_to_service1() {
    let fake = FakeService1::start(Behaviour::Reply).await;
    let service2 = spawn_service2(fake.addr).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), Some("12345")).await;

    assert_eq!(reply.request_id, "12345");
    assert_eq!(fake.calls()[0].request_id.as_deref(), Some("12345"));
}

#[tokio::test]
async fn an_unacceptable_request_id_is_replaced_by_a_uuid_that_is_echoed_and_forwarded() {
    let fake = FakeService1::start(Behaviour::Reply).await;
    let service2 = spawn_service2(fake.addr).await;
    let too_long = "x".repeat(129);

    for sent in [None, Some(""), Some(too_long.as_str()), Some("with space")] {
        let reply = get(&service2.url("/api/v1/say-hello?name=test"), sent).await;
        let id = &reply.request_id;
        assert_eq!(id.len(), 36, "{sent:?} gave {id}");
        assert_eq!(id.as_bytes()[14], b'4', "UUID v4: {id}");
        assert_eq!(fake.calls().last().unwrap().request_id.as_ref(), Some(id));
    }
}

#[tokio::test]
async fn the_request_id_is_echoed_on_errors_too() {
    let service1 = spawn_service1(&[]).await;
    let closed = process_tests::closed_addr();
    let service2 = spawn_service2_with(closed, &[]).await;

    let not_found = get(&format!("http://{}/nope", service1.rest_addr), Some("id-404")).await;
    let invalid = get(&service2.url("/api/v1/say-hello"), Some("id-400")).await;
    let unavailable = get(&service2.url("/api/v1/say-hello?name=x"), Some("id-503")).await;

    assert_eq!((not_found.status, not_found.request_id.as_str()), (404, "id-404"));
    assert_eq!((invalid.status, invalid.request_id.as_str()), (400, "id-400"));
    assert_eq!((unavailable.status, unavailable.request_id.as_str()), (503, "id-503"));
}

#[tokio::test]
async fn both_services_log_the_request_id_of_a_say_hello_call() {
    let service1 = spawn_service1(&[]).await;
    let service2 = spawn_service2(service1.grpc_addr).await;
    let id = unique_id("follow-me");

    get(&service2.url("/api/v1/say-hello?name=test"), Some(&id)).await;

    // service2 writes its line before answering; service1 may write its own
    // just after its response left.
    let lines = logs().wait_for(&id, |l| l["message"] == "grpc call served").await;
    let grpc = lines.iter().find(|l| l["message"] == "grpc call served").expect("service1's line");
    let http = lines.iter().find(|l| l["message"] == "http request served").expect("service2's line");
    assert_eq!(grpc["grpc_code"], 0);
    for field in ["timestamp", "level", "target", "message"] {
        assert!(http.get(field).is_some() && grpc.get(field).is_some(), "{field} missing");
    }
    assert_eq!(http["method"], "GET");
    assert_eq!(http["route"], "/api/v1/say-hello");
    assert_eq!(http["status"], 200);
    assert_eq!(http["response_bytes"], 14);
    assert!(http["duration_ms"].is_number());
}

#[tokio::test]
async fn a_method_of_thousands_of_characters_is_logged_as_other() {
    let service1 = spawn_service1(&[]).await;
    let service2 = spawn_service2(service1.grpc_addr).await;
    let id = unique_id("long-method");
    let method = reqwest::Method::from_bytes("X".repeat(3900).as_bytes()).unwrap();

    let reply =
        get_with(reqwest::Client::new().request(method, service2.url("/api/v1/say-hello?name=x")), Some(&id))
            .await;

    assert_eq!(reply.status, 405);
    let lines = logs().wait_for(&id, |l| l["message"] == "http request served").await;
    let access = lines.iter().find(|l| l["message"] == "http request served").unwrap();
    assert_eq!(access["method"], "other");
    assert!(access.to_string().len() < 1024, "{} bytes", access.to_string().len());
}
