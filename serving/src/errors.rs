//! Errors callers see, written as a JSON body or a gRPC status, with the
//! status and code from the table in [`wire::errors`].
//!
//! A response carries only the kind's status and a short message written for
//! the caller. Details (upstream addresses, status messages, panics) go to
//! the logs, never into a response.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use wire::{names::NameError, query::QueryError, ErrorKind, GrpcCode};

/// An error with a message that is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
}

// === impl ApiError ===

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, message: message.into() }
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "no such resource")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(ErrorKind::MethodNotAllowed, "method not allowed for this resource")
    }

    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "internal error")
    }

    /// The JSON body every error response has.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let headers = [(http::header::CONTENT_TYPE, "application/json")];
        (self.kind.http_status(), headers, self.body()).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        tonic::Status::new(tonic_code(error.kind.grpc_code()), error.message)
    }
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> Self {
        Self::new(ErrorKind::InvalidInput, error.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        Self::new(ErrorKind::InvalidInput, error.to_string())
    }
}

/// tonic's name for a code.
pub fn tonic_code(code: GrpcCode) -> tonic::Code {
    tonic::Code::from_i32(code as i32)
}

/// The table's name for tonic's code.
pub fn grpc_code(code: tonic::Code) -> GrpcCode {
    GrpcCode::from_i32(code as i32)
}

/// An error and its sources on one line, for logs ("a: b: c").
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_json_with_only_the_message() {
        let error = ApiError::new(ErrorKind::InvalidInput, "say \"hi\"");
        assert_eq!(error.body(), r#"{"error":"say \"hi\""}"#);
    }
}
