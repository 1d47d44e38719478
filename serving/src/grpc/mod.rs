//! The layers every gRPC server puts in front of its services, and the
//! contract between them:
//!
//! - [`observe`]: the request id, the call's span, its access line and its
//!   `grpc_server_*` metrics;
//! - [`limits`]: how many calls run at once (in all and per client
//!   identity), how long one may take, and the status of an oversized
//!   message;
//! - [`Refused`] (in `observe`): how a layer inside `observe` (service1's
//!   authorization) refuses a call so that it is counted without its path;
//! - `messages`: counting gRPC messages in a body as its bytes pass.
//!
//! Layer order, outermost first: observe, then authorization (if any), then
//! limits, so that every call, refused or shed, has an access line and is
//! counted.

use observability::metrics::{GrpcMethod, GrpcType};

pub mod limits;
mod messages;
pub mod observe;

pub use self::{
    limits::{Limits, LimitsLayer, TooLargeIsResourceExhausted},
    observe::{CountedBody, Observe, ObserveLayer, ObservedBody, ObservedCall, Refused},
};

/// The methods `grpc.health.v1.Health` serves.
pub const HEALTH_METHODS: &[GrpcMethod] = &[
    GrpcMethod::unary(tonic_health::pb::health_server::SERVICE_NAME, "Check"),
    GrpcMethod::new(tonic_health::pb::health_server::SERVICE_NAME, "Watch", GrpcType::ServerStream),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_methods_are_named_as_tonic_health_serves_them() {
        use tonic::server::NamedService;
        type Health = tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;

        assert!(HEALTH_METHODS.iter().all(|m| m.service == <Health as NamedService>::NAME));
        assert!(HEALTH_METHODS[0].is_path("/grpc.health.v1.Health/Check"));
        assert!(HEALTH_METHODS[1].is_path("/grpc.health.v1.Health/Watch"));
    }
}
