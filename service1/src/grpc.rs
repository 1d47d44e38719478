//! `app.grpc.Service1`, the original's wire contract.
//!
//! ProcessName answers every request the original service1 answered, the
//! same way: any name is upper-cased, an empty (or missing: proto3 cannot
//! tell) one gives an empty one, and the only bound is the message size
//! (`GRPC_MAX_MESSAGE_BYTES`). The original's service2 validates nothing
//! and relies on that; our REST edges validate for their own callers.
//!
//! Each answer also carries, in a field the original does not have
//! (`ProcessNameResponse.id`, a `bson.ObjectId`), an ObjectId assigned to
//! that processed name: time-ordered and unique, as MongoDB makes them. The
//! original's clients skip the unknown field.

use observability::metrics::{GrpcMethod, GrpcType};
use tonic::{Request, Response, Status};
use tonic_reflection::server::{v1, v1alpha};
use wire::{
    names,
    object_id::ObjectId,
    proto::{
        service1_server::{self, Service1, Service1Server},
        ProcessNameRequest, ProcessNameResponse,
    },
};

/// The methods of `app.grpc.Service1`.
pub const METHODS: &[GrpcMethod] = &[GrpcMethod::unary(service1_server::SERVICE_NAME, "ProcessName")];

/// The methods of server reflection, v1 and v1alpha.
pub const REFLECTION_METHODS: &[GrpcMethod] = &[
    GrpcMethod::new(
        tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
        "ServerReflectionInfo",
        GrpcType::BidiStream,
    ),
    GrpcMethod::new(
        tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
        "ServerReflectionInfo",
        GrpcType::BidiStream,
    ),
];

/// Server reflection, v1 and v1alpha (grpcurl and grpcui speak one or the
/// other), describing ProcessName and Health, so clients need no copy of
/// the proto. It answers on the gRPC port, behind mTLS and authorization
/// like every other call.
pub fn reflection() -> (
    v1::ServerReflectionServer<impl v1::ServerReflection>,
    v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
) {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(wire::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(serving::admin::HEALTH_FILE_DESCRIPTOR_SET)
    };
    // The descriptors are compiled in and known to be valid.
    let v1 = builder().build_v1().expect("the compiled-in descriptors are valid");
    let v1alpha = builder().build_v1alpha().expect("the compiled-in descriptors are valid");
    (v1, v1alpha)
}

#[derive(Debug, Clone)]
pub struct NameService;

impl NameService {
    pub fn server(max_message_bytes: usize) -> Service1Server<Self> {
        Service1Server::new(Self).max_decoding_message_size(max_message_bytes)
    }
}

#[tonic::async_trait]
impl Service1 for NameService {
    async fn process_name(
        &self,
        request: Request<ProcessNameRequest>,
    ) -> Result<Response<ProcessNameResponse>, Status> {
        let id = ObjectId::new();
        Ok(Response::new(ProcessNameResponse {
            name: names::upper(&request.get_ref().name),
            id: Some(id.into()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use tonic::server::NamedService;

    use super::*;

    fn name_of<S: NamedService>(_: &S) -> &'static str {
        S::NAME
    }

    #[test]
    fn metrics_name_the_services_as_served() {
        let (v1, v1alpha) = reflection();

        assert_eq!(METHODS[0].service, name_of(&NameService::server(1)));
        let reflection: Vec<_> = REFLECTION_METHODS.iter().map(|m| m.service).collect();
        assert_eq!(reflection, [name_of(&v1), name_of(&v1alpha)]);
    }
}
