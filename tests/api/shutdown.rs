use std::time::Duration;

use serde_json::json;
use system_tests::{spawn_service2_with, Behaviour, FakeService1, Hold};

use crate::get;

#[tokio::test]
async fn shutdown_finishes_a_request_in_flight_then_refuses_new_connections() {
    let (behaviour, mut hold) = Hold::new();
    let fake = FakeService1::start(behaviour).await;
    let service2 = spawn_service2_with(fake.addr, &["--shutdown-grace", "10s"]).await;
    let url = service2.url("/api/v1/say-hello?name=test");
    let in_flight = tokio::spawn(async move { get(&url, None).await });
    hold.next_arrival().await;

    service2.running.begin_shutdown();
    // Once shutdown has begun, the listener is closed: wait (bounded) for that.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(service2.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hold.release.add_permits(1);

    assert!(refused, "new connections are refused during shutdown");
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.body), (200, json!("Hello, TEST!")));
    service2.running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_that_outlast_the_grace_period() {
    let fake = FakeService1::start(Behaviour::Hang).await;
    let service2 =
        spawn_service2_with(fake.addr, &["--shutdown-grace", "200ms", "--service1-timeout", "60s"]).await;
    let url = service2.url("/api/v1/say-hello?name=test");
    let _stuck = tokio::spawn(async move { reqwest::get(url).await });
    while fake.calls().is_empty() {
        tokio::task::yield_now().await;
    }

    // `stop` waits at most 10 s; the 60 s call must not hold it up.
    service2.running.stop().await.expect("still a clean exit");
}
