//! service1's gRPC call slots: no caller can take them all, and a call
//! that never finishes gives its slot back.

use std::time::Duration;

use certgen::LeafSpec;
use system_tests::{
    grpc_client::grpc_client,
    raw_h2::{self, grpc_status, hold_calls},
    spawn_service1, Pki,
};
use tokio::task::JoinSet;
use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

const CHECK: &str = "/grpc.health.v1.Health/Check";

fn with_pki(pki: &Pki, extra: &[&str]) -> Vec<String> {
    let mut args = pki.args("service1");
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

#[tokio::test]
async fn one_identity_cannot_hold_every_call_slot() {
    let pki = Pki::new();
    pki.write_leaf("greedy", &pki.issue(LeafSpec::client("greedy")));
    let args = with_pki(
        &pki,
        &[
            "--tls-allowed-clients",
            "service2,greedy",
            "--grpc-max-concurrent-calls",
            "8",
            "--grpc-max-concurrent-streams",
            "4",
        ],
    );
    let service1 = spawn_service1(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let addr = service1.grpc_addr;
    // Two connections, every stream a call whose message never comes:
    // enough to hold all 8 slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(hold_calls(raw_h2::connect_mtls(addr, &pki, "greedy").await, addr, CHECK, 4).await);
    }
    let mut answers = JoinSet::new();
    for call in held.iter_mut().flat_map(|h| h.calls.drain(..)) {
        let (response, body) = call;
        answers.spawn(async move {
            let answer = response.await;
            drop(body);
            answer.ok().and_then(|r| grpc_status(&r).map(str::to_owned))
        });
    }
    // Half the slots (the default share) are greedy's; its other calls are
    // refused at once.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        let mut refused = Vec::new();
        while refused.len() < 4 {
            match answers.join_next().await {
                Some(answer) => refused.push(answer.unwrap()),
                None => break,
            }
        }
        refused
    })
    .await
    .unwrap_or_default();

    let mut service2 = grpc_client(addr, &pki, "service2").await;
    let served = service2.process_name(wire::proto::ProcessNameRequest { name: "x".into() }).await;

    assert_eq!(refused, vec![Some("8".to_owned()); 4], "greedy's calls past its share: RESOURCE_EXHAUSTED");
    assert_eq!(served.expect("service2 is still served").into_inner().name, "X");
}

#[tokio::test]
async fn an_unlisted_identity_may_not_call_health_on_the_grpc_port() {
    let pki = Pki::new();
    pki.write_leaf("intruder", &pki.issue(LeafSpec::client("intruder")));
    let service1 = spawn_service1(&with_pki(&pki, &[]).iter().map(String::as_str).collect::<Vec<_>>()).await;
    let channel = system_tests::grpc_client::mtls_channel(service1.grpc_addr, &pki, "intruder");

    let reply = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;

    assert_eq!(reply.expect_err("refused").code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_call_whose_message_never_comes_ends_at_the_servers_deadline() {
    let service1 = spawn_service1(&["--grpc-call-timeout", "300ms"]).await;
    let addr = service1.grpc_addr;
    // No grpc-timeout: the client sets no deadline of its own.
    let mut held =
        hold_calls(raw_h2::connect_mtls(addr, Pki::shared(), "service2").await, addr, CHECK, 1).await;
    let (response, _body) = held.calls.pop().unwrap();

    let answer = tokio::time::timeout(Duration::from_secs(5), response).await;

    let answer = answer.expect("the server ended the call").expect("with an answer");
    assert_eq!(grpc_status(&answer), Some("4"), "DEADLINE_EXCEEDED");
}
