//! The one table that gives each kind of error its HTTP status and gRPC
//! code. How an error is written (a JSON body, a gRPC status) is the
//! serving layer's business; which status it gets is decided here.

use http::StatusCode;

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
    pub const fn status_and_code(self) -> (StatusCode, GrpcCode) {
        match self {
            Self::InvalidInput => (StatusCode::BAD_REQUEST, GrpcCode::InvalidArgument),
            // gRPC reports oversized metadata as RESOURCE_EXHAUSTED.
            Self::HeadTooLarge => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, GrpcCode::ResourceExhausted),
            Self::UriTooLong => (StatusCode::URI_TOO_LONG, GrpcCode::InvalidArgument),
            Self::NotFound => (StatusCode::NOT_FOUND, GrpcCode::NotFound),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, GrpcCode::Unimplemented),
            Self::PermissionDenied => (StatusCode::FORBIDDEN, GrpcCode::PermissionDenied),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, GrpcCode::Unavailable),
            Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, GrpcCode::DeadlineExceeded),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, GrpcCode::ResourceExhausted),
            Self::BadUpstream => (StatusCode::BAD_GATEWAY, GrpcCode::Unknown),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, GrpcCode::Internal),
        }
    }

    pub const fn http_status(self) -> StatusCode {
        self.status_and_code().0
    }

    pub const fn grpc_code(self) -> GrpcCode {
        self.status_and_code().1
    }

    /// How a gRPC failure from the service we call reaches our caller.
    /// Codes not listed are our upstream's problem, hence 502.
    pub const fn from_upstream(code: GrpcCode) -> Self {
        match code {
            GrpcCode::InvalidArgument => Self::InvalidInput,
            GrpcCode::DeadlineExceeded => Self::Timeout,
            GrpcCode::Unavailable => Self::Unavailable,
            GrpcCode::ResourceExhausted => Self::Overloaded,
            _ => Self::BadUpstream,
        }
    }
}

/// The gRPC status codes (the numbers are the protocol's), so the table
/// needs no gRPC library; the serving layer converts them to tonic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for a number on the wire; numbers not in the protocol are
    /// `Unknown`, as gRPC says.
    pub const fn from_i32(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::Cancelled,
            3 => Self::InvalidArgument,
            4 => Self::DeadlineExceeded,
            5 => Self::NotFound,
            6 => Self::AlreadyExists,
            7 => Self::PermissionDenied,
            8 => Self::ResourceExhausted,
            9 => Self::FailedPrecondition,
            10 => Self::Aborted,
            11 => Self::OutOfRange,
            12 => Self::Unimplemented,
            13 => Self::Internal,
            14 => Self::Unavailable,
            15 => Self::DataLoss,
            16 => Self::Unauthenticated,
            _ => Self::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_codes_map_to_the_documented_http_statuses() {
        let expected = [
            (GrpcCode::InvalidArgument, 400),
            (GrpcCode::DeadlineExceeded, 504),
            (GrpcCode::Unavailable, 503),
            (GrpcCode::ResourceExhausted, 503),
            (GrpcCode::Internal, 502),
            (GrpcCode::Unknown, 502),
            (GrpcCode::PermissionDenied, 502),
            (GrpcCode::NotFound, 502),
            (GrpcCode::Cancelled, 502),
        ];
        for (code, status) in expected {
            assert_eq!(ErrorKind::from_upstream(code).http_status().as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn every_code_survives_the_trip_through_its_number() {
        for number in 0..=16 {
            assert_eq!(GrpcCode::from_i32(number) as i32, number);
        }
        assert_eq!(GrpcCode::from_i32(99), GrpcCode::Unknown);
    }
}
