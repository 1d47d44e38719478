//! The request id that follows one call through both services.
//!
//! It arrives as `X-Request-ID` on HTTP, travels as `request_id` in gRPC
//! metadata (the original's key), and is on every log line written while
//! serving the request.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The HTTP header callers send and we echo.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The gRPC metadata key, fixed by the original Python services.
pub const METADATA_KEY: &str = "request_id";
/// Longer ids are replaced: they are either a mistake or an attack on logs.
pub const MAX_LEN: usize = 128;

/// A request id that is safe to log, echo and forward: 1 to 128 bytes of
/// visible ASCII.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

// === impl RequestId ===

impl RequestId {
    /// The caller's id when it is acceptable, otherwise a fresh UUID v4.
    pub fn from_headers(headers: &HeaderMap, name: &str) -> Self {
        headers.get(name).and_then(|value| Self::parse(value.as_bytes())).unwrap_or_else(Self::generate)
    }

    /// Accepts 1 to [`MAX_LEN`] bytes of visible ASCII (0x21..=0x7E).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let acceptable =
            !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic);
        if !acceptable {
            return None;
        }
        HeaderValue::from_bytes(bytes).ok().map(Self)
    }

    pub fn generate() -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        Self(HeaderValue::from_str(text).expect("a UUID is visible ASCII"))
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored, so this cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(HEADER, HeaderValue::from_bytes(value).unwrap());
        map
    }

    fn is_uuid_v4(id: &RequestId) -> bool {
        uuid::Uuid::parse_str(id.as_str()).is_ok_and(|u| u.get_version_num() == 4)
    }

    #[test]
    fn a_visible_ascii_id_is_kept() {
        let id = RequestId::from_headers(&headers(b"12345"), "x-request-id");
        assert_eq!(id.as_str(), "12345");
    }

    #[test]
    fn an_id_of_exactly_128_bytes_is_kept() {
        let long = "a".repeat(MAX_LEN);
        let id = RequestId::from_headers(&headers(long.as_bytes()), "x-request-id");
        assert_eq!(id.as_str(), long);
    }

    #[test]
    fn a_missing_empty_long_or_invisible_id_is_replaced_by_a_uuid_v4() {
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: [&[u8]; 4] = [b"", too_long.as_bytes(), b"has space", b"tab\tinside"];
        for case in cases {
            let id = RequestId::from_headers(&headers(case), "x-request-id");
            assert!(is_uuid_v4(&id), "{case:?} gave {id}");
        }
        assert!(is_uuid_v4(&RequestId::from_headers(&HeaderMap::new(), "x-request-id")));
        assert!(RequestId::parse("é".as_bytes()).is_none());
    }
}
