//! `app.grpc.Service1`, the original's wire contract.
//!
//! ProcessName answers every request the original service1 answered, the
//! same way: any name is upper-cased, an empty (or missing: proto3 cannot
//! tell) one gives an empty one, and the only bound is the message size
//! (`GRPC_MAX_MESSAGE_BYTES`). The original's service2 validates nothing
//! and relies on that; our REST edges validate for their own callers.

use tonic::{Request, Response, Status};
use wire::{
    names,
    proto::{
        service1_server::{Service1, Service1Server},
        ProcessNameRequest, ProcessNameResponse,
    },
};

/// The methods of `app.grpc.Service1`, as paths.
pub const METHODS: &[&str] = &["/app.grpc.Service1/ProcessName"];

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
        Ok(Response::new(ProcessNameResponse { name: names::upper(&request.get_ref().name) }))
    }
}
