//! Request ids: any bytes are either kept exactly (1 to 128 bytes of visible
//! ASCII) or replaced by a fresh UUID v4. Never a panic.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wire::request_id::{self, RequestId};

fn acceptable(bytes: &[u8]) -> bool {
    (1..=request_id::MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7E).contains(b))
}

/// The lower-case hyphenated form of a version 4, RFC 4122 variant UUID.
fn is_uuid_v4(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

fuzz_target!(|data: &[u8]| {
    match RequestId::parse(data) {
        Some(id) => {
            assert!(acceptable(data), "accepted {data:?}");
            assert_eq!(id.as_str().as_bytes(), data);
            assert_eq!(id.header_value().as_bytes(), data);
        }
        None => assert!(!acceptable(data), "rejected {data:?}"),
    }

    // Through a header map, as the HTTP layer calls it.
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(request_id::HEADER, value);
    let id = RequestId::from_headers(&headers, request_id::HEADER.as_str());
    if acceptable(data) {
        assert_eq!(id.as_str().as_bytes(), data);
    } else {
        assert!(is_uuid_v4(id.as_str()), "{data:?} gave {id}");
    }
    assert!(acceptable(id.as_str().as_bytes()));
});
