//! `app.grpc.Service1`, the original's wire contract.

use serving::ApiError;
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
pub struct NameService {
    max_name_bytes: usize,
}

impl NameService {
    pub fn server(max_name_bytes: usize, max_message_bytes: usize) -> Service1Server<Self> {
        Service1Server::new(Self { max_name_bytes }).max_decoding_message_size(max_message_bytes)
    }
}

#[tonic::async_trait]
impl Service1 for NameService {
    async fn process_name(
        &self,
        request: Request<ProcessNameRequest>,
    ) -> Result<Response<ProcessNameResponse>, Status> {
        // proto3 cannot tell a missing name from an empty one: both are "".
        let name =
            names::validate(Some(&request.get_ref().name), self.max_name_bytes).map_err(ApiError::from)?;
        Ok(Response::new(ProcessNameResponse { name: names::upper(name) }))
    }
}
