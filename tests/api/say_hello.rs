use serde_json::json;
use system_tests::{spawn_service1, spawn_service2, spawn_service2_with, Behaviour, FakeService1, Hold};
use tonic::Code;

use crate::{client, get, get_with};

#[tokio::test]
async fn say_hello_returns_the_upper_cased_greeting_as_a_json_string() {
    let service1 = spawn_service1(&[]).await;
    let service2 = spawn_service2(service1.grpc_addr).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(reply.body, json!("Hello, TEST!"));
}

#[tokio::test]
async fn say_hello_upper_cases_unicode_like_python() {
    let service1 = spawn_service1(&[]).await;
    let service2 = spawn_service2(service1.grpc_addr).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=stra%C3%9Fe"), None).await;

    assert_eq!(reply.body, json!("Hello, STRASSE!"));
}

#[tokio::test]
async fn say_hello_returns_400_for_bad_names_without_calling_service1() {
    let fake = FakeService1::start(Behaviour::Reply).await;
    let service2 = spawn_service2_with(fake.addr, &["--max-name-bytes", "8"]).await;
    let cases = [
        ("/api/v1/say-hello", "the 'name' parameter is required"),
        ("/api/v1/say-hello?name=", "the name must not be empty"),
        ("/api/v1/say-hello?name=123456789", "the name must be at most 8 bytes of UTF-8"),
        ("/api/v1/say-hello?name=%ZZ", "the query string has invalid percent-encoding"),
        ("/api/v1/say-hello?name=%FF", "the query string has invalid percent-encoding"),
    ];
    for (path, message) in cases {
        let reply = get(&service2.url(path), None).await;
        assert_eq!((reply.status, reply.body), (400, json!({ "error": message })), "{path}");
        assert_eq!(reply.content_type, "application/json");
    }
    assert!(fake.calls().is_empty(), "service1 was called: {:?}", fake.calls());
}

#[tokio::test]
async fn say_hello_accepts_a_name_of_exactly_the_limit() {
    let service1 = spawn_service1(&[]).await;
    let service2 = spawn_service2(service1.grpc_addr).await;
    let name = "a".repeat(1024);

    let reply = get(&service2.url(&format!("/api/v1/say-hello?name={name}")), None).await;

    assert_eq!(reply.body, json!(format!("Hello, {}!", name.to_uppercase())));
}

#[tokio::test]
async fn say_hello_maps_each_service1_status_to_the_documented_http_status() {
    let table = [
        (Code::InvalidArgument, 400),
        (Code::DeadlineExceeded, 504),
        (Code::Unavailable, 503),
        (Code::ResourceExhausted, 503),
        (Code::Internal, 502),
        (Code::Unknown, 502),
        (Code::PermissionDenied, 502),
        (Code::Unimplemented, 502),
    ];
    for (code, status) in table {
        let fake = FakeService1::start(Behaviour::Fail(code)).await;
        let service2 = spawn_service2(fake.addr).await;

        let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

        assert_eq!(reply.status, status, "{code:?}");
        // Nothing of service1's own message or address reaches the caller.
        let error = reply.body["error"].as_str().expect("an error message");
        assert!(error.starts_with("service1 "), "{error}");
        assert!(!error.contains("10.1.2.3") && !error.contains("fake"), "{error}");
    }
}

#[tokio::test]
async fn say_hello_returns_504_when_service1_is_slower_than_the_deadline() {
    let fake = FakeService1::start(Behaviour::Hang).await;
    let service2 = spawn_service2_with(fake.addr, &["--service1-timeout", "300ms"]).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    assert_eq!(reply.status, 504);
    assert_eq!(reply.body, json!({ "error": "service1 did not answer in time" }));
    // The deadline went on the wire, so service1 knew it too.
    let sent = grpc_timeout_micros(&fake.calls()[0].grpc_timeout);
    assert!((200_000..=300_000).contains(&sent), "grpc-timeout {sent} µs, the time left of 300 ms");
}

#[tokio::test]
async fn say_hello_sends_each_attempt_its_own_deadline_as_grpc_timeout() {
    let fake = FakeService1::start(Behaviour::Reply).await;
    let service2 = spawn_service2(fake.addr).await;

    get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    let sent = grpc_timeout_micros(&fake.calls()[0].grpc_timeout);
    assert!(
        (900_000..=1_000_000).contains(&sent),
        "grpc-timeout {sent} µs, the default attempt timeout of 1 s"
    );
}

#[tokio::test]
async fn say_hello_sends_the_call_deadline_when_it_is_shorter_than_the_attempt_timeout() {
    let fake = FakeService1::start(Behaviour::Reply).await;
    let service2 =
        spawn_service2_with(fake.addr, &["--service1-timeout", "10s", "--service1-attempt-timeout", "30s"])
            .await;

    get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    let sent = grpc_timeout_micros(&fake.calls()[0].grpc_timeout);
    assert!((9_000_000..=10_000_000).contains(&sent), "grpc-timeout {sent} µs, the time left of 10 s");
}

#[tokio::test]
async fn say_hello_gives_up_on_a_replica_that_does_not_answer_within_the_attempt_timeout_and_retries_another()
{
    let hung = FakeService1::start(Behaviour::Hang).await;
    let healthy = FakeService1::start(Behaviour::Reply).await;
    let target = format!("static:///{},{}", hung.addr, healthy.addr);
    let flags = ["--service1-channel", &target, "--service1-attempt-timeout", "200ms"];
    let service2 = spawn_service2_with(hung.addr, &flags).await;
    let url = service2.url("/api/v1/say-hello?name=test");

    // At once, so that selection spreads them over both replicas.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, None).await })
        })
        .collect();

    for call in calls {
        let reply = call.await.unwrap();
        assert_eq!((reply.status, reply.body), (200, json!("Hello, TEST!")));
    }
    let given_up = hung.calls();
    assert!(!given_up.is_empty(), "the hung replica got none of the calls");
    for call in &given_up {
        let sent = grpc_timeout_micros(&call.grpc_timeout);
        assert!((100_000..=200_000).contains(&sent), "grpc-timeout {sent} µs, the attempt's 200 ms");
    }
    let text = service2.metrics.render();
    let timeouts = format!("service1_attempt_timeouts_total {}", given_up.len());
    assert!(text.contains(&timeouts), "{timeouts} in:\n{text}");
}

#[tokio::test]
async fn say_hello_returns_503_fast_when_service1_is_down() {
    // A port that was just free: nothing listens there.
    let closed = process_tests::closed_addr();
    // With a 60 s deadline, only the connect failure can answer before the
    // client's own 5 s limit.
    let service2 = spawn_service2_with(closed, &["--service1-timeout", "60s"]).await;

    let reply = get(&service2.url("/api/v1/say-hello?name=test"), None).await;

    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, json!({ "error": "service1 is unavailable" }));
}

#[tokio::test]
async fn say_hello_recovers_when_service1_comes_up_after_service2() {
    let service1_port = process_tests::closed_addr();
    let service2 = spawn_service2(service1_port).await;
    let down = get(&service2.url("/api/v1/say-hello?name=test"), None).await;
    assert_eq!(down.status, 503);

    let port = service1_port.port().to_string();
    let _service1 = spawn_service1(&["--grpc-port", &port]).await;
    // service2 reconnects in the background with backoff (at most 5 s
    // apart); each call waits up to 1 s for a ready replica.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let status = get(&service2.url("/api/v1/say-hello?name=test"), None).await.status;
        statuses.push(status);
        if status == 200 {
            break;
        }
    }

    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
}

#[tokio::test]
async fn say_hello_reuses_one_connection_to_service1() {
    let (behaviour, mut hold) = Hold::new();
    let fake = FakeService1::start(behaviour).await;
    let service2 = spawn_service2(fake.addr).await;
    // Three calls in flight at once still ride one HTTP/2 connection.
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get_with(client().get(service2.url("/api/v1/say-hello?name=x")), None)))
        .collect();
    for _ in 0..3 {
        hold.next_arrival().await;
    }
    hold.release.add_permits(3);
    for call in calls {
        assert_eq!(call.await.unwrap().status, 200);
    }

    let peers: std::collections::HashSet<_> = fake.calls().iter().map(|c| c.peer).collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
}

/// The `grpc-timeout` header in microseconds (service2 sends `u` units).
fn grpc_timeout_micros(header: &Option<String>) -> u64 {
    let header = header.as_deref().expect("grpc-timeout sent");
    header
        .strip_suffix('u')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected grpc-timeout {header}"))
}
