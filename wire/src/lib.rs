//! The wire contract both services share, and that the Python original
//! shares with them: the gRPC messages (and, with the `grpc` feature, the
//! tonic client and server), what a valid name and query are, request ids,
//! and the table of error kinds with their HTTP status and gRPC code.
//!
//! Pure functions and data only: no runtime, sockets, TLS or telemetry, so
//! the fuzz targets and property tests build against this crate alone.
#![forbid(unsafe_code)]

pub mod errors;
pub mod names;
pub mod query;
pub mod request_id;

/// Code generated from `protos/service1/app/grpc/service1.proto`.
#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/app.grpc.rs"));

    /// The encoded `FileDescriptorSet` of the proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/service1_descriptor.bin"));
}

pub use errors::{ErrorKind, GrpcCode};
pub use request_id::RequestId;
