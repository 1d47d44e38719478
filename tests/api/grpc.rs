use system_tests::{grpc_client::grpc_client, logs, spawn_service1, Pki};
use tonic::Code;
use wire::proto::ProcessNameRequest;

use crate::unique_id;

async fn process_name(
    addr: std::net::SocketAddr,
    name: &str,
    request_id: Option<&str>,
) -> Result<String, tonic::Status> {
    let mut client = grpc_client(addr, Pki::shared(), "service2").await;
    let mut request = tonic::Request::new(ProcessNameRequest { name: name.into() });
    if let Some(id) = request_id {
        request.metadata_mut().insert("request_id", id.parse().unwrap());
    }
    client.process_name(request).await.map(|r| r.into_inner().name)
}

#[tokio::test]
async fn process_name_upper_cases_over_grpc() {
    let service1 = spawn_service1(&[]).await;

    assert_eq!(process_name(service1.grpc_addr, "straße", None).await.unwrap(), "STRASSE");
}

#[tokio::test]
async fn each_process_name_answer_carries_a_new_time_ordered_object_id() {
    let service1 = spawn_service1(&[]).await;
    let mut client = grpc_client(service1.grpc_addr, Pki::shared(), "service2").await;
    let before = std::time::SystemTime::now();

    let mut ids = Vec::new();
    for _ in 0..3 {
        let answer =
            client.process_name(ProcessNameRequest { name: "id".into() }).await.unwrap().into_inner();
        assert_eq!(answer.name, "ID");
        ids.push(answer.object_id().expect("12 bytes").expect("an ObjectId"));
    }

    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "distinct, in the order they were made");
    let made = ids[0].timestamp().to_system_time();
    let second = std::time::Duration::from_secs(1);
    assert!(made + second >= before && made <= std::time::SystemTime::now(), "{made:?}");
}

#[tokio::test]
async fn process_name_answers_empty_and_long_names_like_the_original() {
    // MAX_NAME_BYTES bounds the REST edges only; the gRPC contract is the
    // original's, bounded by the message size.
    let service1 = spawn_service1(&["--max-name-bytes", "4"]).await;

    let empty = process_name(service1.grpc_addr, "", None).await;
    let long = process_name(service1.grpc_addr, &"abcde".repeat(1000), None).await;

    assert_eq!(empty.unwrap(), "");
    assert_eq!(long.unwrap(), "ABCDE".repeat(1000));
}

#[tokio::test]
async fn every_grpc_call_gets_one_access_line_with_its_status() {
    let service1 = spawn_service1(&["--grpc-max-message-bytes", "100"]).await;
    let ok_id = unique_id("grpc-access-ok");
    let bad_id = unique_id("grpc-access-bad");

    process_name(service1.grpc_addr, "x", Some(&ok_id)).await.unwrap();
    process_name(service1.grpc_addr, &"x".repeat(200), Some(&bad_id)).await.unwrap_err();

    for (id, code) in [(ok_id, 0), (bad_id, 8)] {
        let lines = logs().wait_for(&id, |l| l["message"] == "grpc call served").await;
        let access: Vec<_> = lines.iter().filter(|l| l["message"] == "grpc call served").collect();
        assert_eq!(access.len(), 1, "{lines:#?}");
        assert_eq!(access[0]["grpc_code"], code);
        assert_eq!(access[0]["method"], "/app.grpc.Service1/ProcessName");
        assert!(access[0]["duration_ms"].is_number());
    }
}

#[tokio::test]
async fn an_oversized_grpc_message_gets_resource_exhausted() {
    let service1 = spawn_service1(&["--grpc-max-message-bytes", "100"]).await;

    let status = process_name(service1.grpc_addr, &"x".repeat(200), None).await.unwrap_err();
    let fits = process_name(service1.grpc_addr, &"x".repeat(50), None).await;

    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(fits.unwrap(), "X".repeat(50));
}

#[tokio::test]
async fn a_call_to_a_path_of_kilobytes_gets_an_access_line_with_the_path_cut_short() {
    let service1 = spawn_service1(&[]).await;
    let addr = service1.grpc_addr;
    let mut h2 = system_tests::raw_h2::connect_mtls(addr, Pki::shared(), "service2").await;
    let id = unique_id("long-path");
    let path = format!("/app.grpc.Service1/{}", "x".repeat(3800));
    let mut request = system_tests::raw_h2::grpc_request(addr, &path);
    request.headers_mut().insert("request_id", id.parse().unwrap());

    let (response, mut body) = h2.send.send_request(request, false).expect("sent");
    body.send_data(bytes::Bytes::from_static(system_tests::raw_h2::EMPTY_MESSAGE), true).expect("sent");
    let response = response.await.expect("an answer");
    assert_eq!(response.status(), 200);

    let lines = logs().wait_for(&id, |l| l["message"] == "grpc call served").await;
    let access = lines.iter().find(|l| l["message"] == "grpc call served").unwrap();
    let method = access["method"].as_str().unwrap();
    assert!(method.starts_with("/app.grpc.Service1/xxx") && method.ends_with('…'), "{method}");
    assert!(access.to_string().len() < 1024, "{} bytes", access.to_string().len());
}
