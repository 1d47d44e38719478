//! gRPC server reflection on service1's gRPC port: grpcurl and grpcui can
//! list and describe its services with no copy of the proto, as callers
//! allowed to call anything else.

use system_tests::{grpc_client::mtls_channel, spawn_service1, Pki};
use tonic::Code;
use tonic_reflection::pb::{v1, v1alpha};

/// The services reflection lists, asked over v1 as `identity`.
async fn list_services_v1(
    addr: std::net::SocketAddr,
    pki: &Pki,
    identity: &str,
) -> Result<Vec<String>, tonic::Status> {
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(mtls_channel(addr, pki, identity));
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut replies = client.server_reflection_info(tokio_stream::iter([request])).await?.into_inner();
    let reply = replies.message().await?.expect("one reply");
    match reply.message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("not a service list: {other:?}"),
    }
}

#[tokio::test]
async fn reflection_lists_process_name_and_health_to_an_allowed_caller() {
    let service1 = spawn_service1(&[]).await;

    let services = list_services_v1(service1.grpc_addr, Pki::shared(), "service2").await.unwrap();

    assert!(services.contains(&"app.grpc.Service1".to_owned()), "{services:?}");
    assert!(services.contains(&"grpc.health.v1.Health".to_owned()), "{services:?}");
}

#[tokio::test]
async fn reflection_v1alpha_describes_process_name() {
    let service1 = spawn_service1(&[]).await;
    let channel = mtls_channel(service1.grpc_addr, Pki::shared(), "service2");
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "app.grpc.Service1".into(),
        )),
    };

    let mut replies =
        client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let reply = replies.message().await.unwrap().expect("one reply");

    match reply.message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) => {
            let described = files
                .file_descriptor_proto
                .iter()
                .any(|f| f.windows(b"ProcessName".len()).any(|w| w == b"ProcessName"));
            assert!(described, "no ProcessName in the descriptors");
        }
        other => panic!("not a descriptor: {other:?}"),
    }
}

#[tokio::test]
async fn reflection_refuses_a_caller_not_in_the_allowed_list() {
    let pki = Pki::new();
    pki.write_leaf("intruder", &pki.issue(certgen::LeafSpec::client("intruder")));
    let service1 = spawn_service1(&crate::tls::strs(&pki.args("service1"))).await;

    let refused = list_services_v1(service1.grpc_addr, &pki, "intruder").await.unwrap_err();

    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}

#[tokio::test]
async fn reflection_can_be_turned_off() {
    let service1 = spawn_service1(&["--grpc-reflection", "false"]).await;

    let off = list_services_v1(service1.grpc_addr, Pki::shared(), "service2").await.unwrap_err();

    assert_eq!(off.code(), Code::Unimplemented, "{off:?}");
}
