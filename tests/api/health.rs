use std::time::Duration;

use serde_json::json;
use system_tests::{grpc_client::grpc_client, spawn_service1, spawn_service2_with, Pki};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::get;

async fn admin_status(admin: std::net::SocketAddr, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{admin}")).unwrap().connect_lazy();
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest { service: service.into() };
    let status = client.check(request).await.expect("health answers").into_inner().status;
    ServingStatus::try_from(status).expect("a known status")
}

#[tokio::test]
async fn service1s_admin_port_answers_serving_once_up_and_not_serving_while_draining() {
    let service1 = spawn_service1(&["--drain-delay", "2s"]).await;
    assert_eq!(admin_status(service1.admin_addr, "").await, ServingStatus::Serving);
    assert_eq!(admin_status(service1.admin_addr, "app.grpc.Service1").await, ServingStatus::Serving);
    let ready = get(&format!("http://{}/readyz", service1.admin_addr), None).await;
    assert_eq!((ready.status, &ready.body["status"]), (200, &json!("ready")));

    service1.running.begin_shutdown();
    let mut status = ServingStatus::Serving;
    for _ in 0..100 {
        status = admin_status(service1.admin_addr, "").await;
        if status == ServingStatus::NotServing {
            break;
        }
        tokio::task::yield_now().await;
    }
    let draining = get(&format!("http://{}/readyz", service1.admin_addr), None).await;
    // While draining it still serves calls: Kubernetes may still route some.
    let mut client = grpc_client(service1.grpc_addr, Pki::shared(), "service2").await;
    let still_served = client.process_name(wire::proto::ProcessNameRequest { name: "late".into() }).await;

    assert_eq!(status, ServingStatus::NotServing);
    assert_eq!(admin_status(service1.admin_addr, "app.grpc.Service1").await, ServingStatus::NotServing);
    assert_eq!((draining.status, &draining.body["status"]), (503, &json!("draining")));
    assert_eq!(still_served.expect("served while draining").into_inner().name, "LATE");
}

#[tokio::test]
async fn service1s_mtls_port_serves_grpc_health_too() {
    let service1 = spawn_service1(&[]).await;
    let pki = Pki::shared();
    let channel = system_tests::grpc_client::mtls_channel(service1.grpc_addr, pki, "service2");

    let reply = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;

    assert_eq!(reply.unwrap().into_inner().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn livez_answers_and_readyz_shows_the_certificate_in_use() {
    let service1 = spawn_service1(&[]).await;

    let live = get(&format!("http://{}/livez", service1.admin_addr), None).await;
    let ready = get(&format!("http://{}/readyz", service1.admin_addr), None).await;

    assert_eq!((live.status, live.body), (200, json!({ "status": "alive" })));
    assert_eq!(ready.body["tls"]["reload_failures"], 0);
    assert!(ready.body["tls"]["serial"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(ready.body["tls"]["not_after"].as_i64().is_some_and(|t| t > 0));
}

/// Polls service2's `/readyz` (its readiness signal) until it answers 200;
/// at most 200 times, 50 ms apart.
async fn readyz_once_ready(admin: std::net::SocketAddr) -> crate::Reply {
    for _ in 0..200 {
        let ready = get(&format!("http://{admin}/readyz"), None).await;
        if ready.status == 200 {
            return ready;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("service2 never became ready");
}

#[tokio::test]
async fn service2_becomes_ready_without_service1_after_its_startup_wait_and_readyz_counts_replicas() {
    let closed = process_tests::closed_addr();
    let down = spawn_service2_with(closed, &["--service1-startup-wait", "200ms"]).await;
    let service1 = spawn_service1(&[]).await;
    let up = spawn_service2_with(service1.grpc_addr, &[]).await;

    let without = readyz_once_ready(down.admin_addr).await;
    let with = readyz_once_ready(up.admin_addr).await;

    assert_eq!(
        without.body["service1_endpoints"],
        json!({ "ready": 0, "known": 1 }),
        "ready without service1"
    );
    assert_eq!(with.body["service1_endpoints"], json!({ "ready": 1, "known": 1 }));
    assert_eq!(admin_status(up.admin_addr, "").await, ServingStatus::Serving);
}

#[tokio::test]
async fn service2_is_not_ready_while_it_has_not_reached_service1_at_start() {
    let closed = process_tests::closed_addr();
    let service2 = spawn_service2_with(closed, &["--service1-startup-wait", "1h"]).await;
    // The call fails fast (no replica) and proves the service is answering.
    assert_eq!(get(&service2.url("/api/v1/say-hello?name=x"), None).await.status, 503);

    let readyz = get(&format!("http://{}/readyz", service2.admin_addr), None).await;

    assert_eq!(readyz.status, 503);
    assert_eq!(readyz.body["status"], "starting");
    assert_eq!(admin_status(service2.admin_addr, "").await, ServingStatus::NotServing);
}

#[tokio::test]
async fn service1_closes_connections_past_their_max_age_so_clients_reconnect() {
    let service1 =
        spawn_service1(&["--max-connection-age", "200ms", "--max-connection-age-grace", "100ms"]).await;
    let service2 = spawn_service2_with(service1.grpc_addr, &[]).await;
    let local = format!("{:?}", Some(service1.grpc_addr));
    let connections = || {
        system_tests::logs()
            .lines()
            .iter()
            .filter(|l| l["message"] == "TLS connection accepted" && l["local"] == local.as_str())
            .count()
    };

    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.push(get(&service2.url("/api/v1/say-hello?name=x"), None).await.status);
        if connections() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert!(connections() >= 2, "service2 never reconnected");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
