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
pub mod object_id;
pub mod query;
pub mod request_id;

/// Code generated from `protos/service1/app/grpc/service1.proto` and the
/// `protos/bson/bson/object_id.proto` it imports. `app.grpc` is also here at
/// the top, as it always was; `bson.ObjectId` is `proto::bson::ObjectId`,
/// converted to and from `bson::oid::ObjectId` by [`object_id`].
#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
    pub use app::grpc::*;

    /// The encoded `FileDescriptorSet` of the proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/service1_descriptor.bin"));
}

pub use errors::{ErrorKind, GrpcCode};
pub use object_id::ObjectId;
pub use request_id::RequestId;
