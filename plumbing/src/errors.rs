//! Errors callers see, and the one table that gives each its HTTP status and
//! gRPC code.
//!
//! A response carries only the kind's status and a short message written for
//! the caller. Details (upstream addresses, status messages, panics) go to
//! the logs, never into a response.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tonic::Code;

use crate::{names::NameError, query::QueryError};

/// What went wrong, as far as a caller needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something we cannot process.
    InvalidInput,
    /// A request head (request line and headers) over the size or count
    /// limit.
    HeadTooLarge,
    /// A request target (path and query) too long to parse.
    UriTooLong,
    NotFound,
    MethodNotAllowed,
    /// The caller's identity is not allowed to call.
    PermissionDenied,
    /// Nobody is there to serve the call (connection refused, no replica).
    Unavailable,
    /// The call ran out of time.
    Timeout,
    /// The service, or the one behind it, is shedding load.
    Overloaded,
    /// The service behind us failed in a way the caller cannot fix.
    BadUpstream,
    /// A bug on our side, such as a panic.
    Internal,
}

// === impl ErrorKind ===

impl ErrorKind {
    /// The table: each kind's HTTP status and gRPC code.
    pub const fn status_and_code(self) -> (StatusCode, Code) {
        match self {
            Self::InvalidInput => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            // gRPC reports oversized metadata as RESOURCE_EXHAUSTED.
            Self::HeadTooLarge => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, Code::ResourceExhausted),
            Self::UriTooLong => (StatusCode::URI_TOO_LONG, Code::InvalidArgument),
            Self::NotFound => (StatusCode::NOT_FOUND, Code::NotFound),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented),
            Self::PermissionDenied => (StatusCode::FORBIDDEN, Code::PermissionDenied),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, Code::ResourceExhausted),
            Self::BadUpstream => (StatusCode::BAD_GATEWAY, Code::Unknown),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
        }
    }

    pub const fn http_status(self) -> StatusCode {
        self.status_and_code().0
    }

    pub const fn grpc_code(self) -> Code {
        self.status_and_code().1
    }

    /// How a gRPC failure from the service we call reaches our caller.
    /// Codes not listed are our upstream's problem, hence 502.
    pub const fn from_upstream(code: Code) -> Self {
        match code {
            Code::InvalidArgument => Self::InvalidInput,
            Code::DeadlineExceeded => Self::Timeout,
            Code::Unavailable => Self::Unavailable,
            Code::ResourceExhausted => Self::Overloaded,
            _ => Self::BadUpstream,
        }
    }
}

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
        tonic::Status::new(error.kind.grpc_code(), error.message)
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
    fn upstream_codes_map_to_the_documented_http_statuses() {
        let expected = [
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::Unavailable, 503),
            (Code::ResourceExhausted, 503),
            (Code::Internal, 502),
            (Code::Unknown, 502),
            (Code::PermissionDenied, 502),
            (Code::NotFound, 502),
            (Code::Cancelled, 502),
        ];
        for (code, status) in expected {
            assert_eq!(ErrorKind::from_upstream(code).http_status().as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn an_error_body_is_json_with_only_the_message() {
        let error = ApiError::new(ErrorKind::InvalidInput, "say \"hi\"");
        assert_eq!(error.body(), r#"{"error":"say \"hi\""}"#);
    }
}
