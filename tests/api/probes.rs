//! The admin port answers probes whatever its other callers do.

use std::{net::SocketAddr, time::Duration};

use serde_json::json;
use system_tests::{
    raw_h2::{self, hold_calls},
    spawn_service1,
};
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::{client, get};

const WATCH: &str = "/grpc.health.v1.Health/Watch";
const CHECK: &str = "/grpc.health.v1.Health/Check";

fn health_client(admin: SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{admin}")).unwrap().connect_lazy();
    HealthClient::new(channel)
}

async fn check(admin: SocketAddr) -> Result<i32, tonic::Status> {
    let request = HealthCheckRequest { service: String::new() };
    health_client(admin).check(request).await.map(|r| r.into_inner().status)
}

/// Waits (at most 2 s) until every request slot of the admin port is
/// taken: `/metrics`, which needs one, is then shed.
async fn wait_until_the_slots_are_taken(admin: SocketAddr) -> bool {
    for _ in 0..100 {
        let metrics = client().get(format!("http://{admin}/metrics")).send().await.unwrap();
        if metrics.status() == 503 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn held_health_calls_do_not_starve_readyz() {
    let service1 =
        spawn_service1(&["--http-max-concurrent-requests", "4", "--http-queue-timeout", "0s"]).await;
    let admin = service1.admin_addr;
    // Health calls whose message never comes, as many as there are slots
    // (Watch ones take a slot until the request timeout), and Check ones.
    let _watches = hold_calls(raw_h2::connect(admin).await, admin, WATCH, 4).await;
    let _checks = hold_calls(raw_h2::connect(admin).await, admin, CHECK, 4).await;
    let taken = wait_until_the_slots_are_taken(admin).await;

    let live = get(&format!("http://{admin}/livez"), None).await;
    let ready = get(&format!("http://{admin}/readyz"), None).await;
    let checked = check(admin).await;

    assert!(taken, "the held calls did not take the slots");
    assert_eq!((live.status, live.body), (200, json!({ "status": "alive" })));
    assert_eq!((ready.status, &ready.body["status"]), (200, &json!("ready")));
    assert_eq!(checked.expect("Check answers"), ServingStatus::Serving as i32);
}

#[tokio::test]
async fn an_admin_connection_may_open_only_a_few_streams() {
    let service1 = spawn_service1(&["--admin-max-concurrent-streams", "2"]).await;
    let admin = service1.admin_addr;
    let h2 = raw_h2::connect(admin).await;
    let mut held = hold_calls(h2, admin, CHECK, 1).await;
    // The server's SETTINGS come before its answer to anything.
    let (response, mut body) = held.calls.pop().unwrap();
    body.send_data(raw_h2::EMPTY_MESSAGE.into(), true).unwrap();
    let answered = response.await;

    assert_eq!(answered.expect("an answer").status(), 200);
    assert_eq!(held.h2.send.current_max_send_streams(), 2);
}

#[tokio::test]
async fn health_watches_beyond_the_limit_get_resource_exhausted() {
    let service1 = spawn_service1(&["--health-max-watches", "2"]).await;
    let mut client = health_client(service1.admin_addr);
    let watch = || HealthCheckRequest { service: String::new() };

    let mut first = client.watch(watch()).await.expect("the first Watch opens").into_inner();
    let mut second = client.watch(watch()).await.expect("the second Watch opens").into_inner();
    let third = client.watch(watch()).await;

    assert_eq!(first.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    assert_eq!(second.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    assert_eq!(third.expect_err("the third is refused").code(), Code::ResourceExhausted);
    drop(first);
    // Room frees up when a Watch ends (bounded: the server notices the
    // reset as soon as it reads it).
    let mut reopened = None;
    for _ in 0..100 {
        match client.watch(watch()).await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(reopened.is_some(), "a new Watch opens once one has ended");
}

#[tokio::test]
async fn an_open_watch_does_not_hold_up_shutdown() {
    let service1 = spawn_service1(&["--shutdown-grace", "60s"]).await;
    let mut client = health_client(service1.admin_addr);
    let mut watch =
        client.watch(HealthCheckRequest { service: String::new() }).await.expect("Watch opens").into_inner();
    let serving = watch.message().await.unwrap().unwrap().status;

    // `stop` allows 10 s, far less than the grace period.
    service1.running.stop().await.expect("a clean stop");
    let mut ended = None;
    for _ in 0..10 {
        match watch.message().await {
            // NOT_SERVING (draining) may come first.
            Ok(Some(_)) => continue,
            other => {
                ended = Some(other);
                break;
            }
        }
    }

    assert_eq!(serving, ServingStatus::Serving as i32);
    let ended = ended.expect("the Watch ended");
    assert_eq!(ended.expect_err("it ends with a status").code(), Code::Unavailable);
}
