//! Property tests for the functions that read untrusted input: request ids,
//! names and query strings. Each property holds for every input proptest
//! generates; the case counts are bounded so `cargo test` stays quick. The
//! fuzz targets in `fuzz/` check the same invariants with coverage guidance.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use wire::{
    names::{self, NameError},
    query::{self, QueryError},
    request_id::{self, RequestId},
};

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

// === request ids ===

/// What the contract accepts: 1 to 128 bytes, each visible ASCII.
fn acceptable_id(bytes: &[u8]) -> bool {
    (1..=request_id::MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7E).contains(b))
}

fn is_uuid_v4(id: &RequestId) -> bool {
    let text = id.as_str();
    // The canonical lower-case hyphenated form, and nothing else.
    text.len() == 36
        && text.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && uuid::Uuid::parse_str(text).is_ok_and(|u| u.get_version_num() == 4)
}

/// Byte strings near the interesting edges as well as arbitrary ones: all
/// visible ASCII around the length limit, visible ASCII with one stray byte,
/// and anything at all.
fn id_bytes() -> impl Strategy<Value = Vec<u8>> {
    let visible = 0x21u8..=0x7E;
    prop_oneof![
        proptest::collection::vec(visible.clone(), 0..=request_id::MAX_LEN + 8),
        (
            proptest::collection::vec(visible, 1..=request_id::MAX_LEN),
            any::<u8>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(mut bytes, stray, at)| {
                let at = at.index(bytes.len());
                bytes[at] = stray;
                bytes
            }),
        proptest::collection::vec(any::<u8>(), 0..=request_id::MAX_LEN + 8),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_request_id_is_parsed_exactly_when_it_is_one_to_128_visible_ascii_bytes(bytes in id_bytes()) {
        match RequestId::parse(&bytes) {
            Some(id) => {
                prop_assert!(acceptable_id(&bytes), "accepted {bytes:?}");
                prop_assert_eq!(id.as_str().as_bytes(), &bytes[..]);
                prop_assert_eq!(id.header_value().as_bytes(), &bytes[..]);
                prop_assert_eq!(id.to_string().into_bytes(), bytes.clone());
            }
            None => prop_assert!(!acceptable_id(&bytes), "rejected {bytes:?}"),
        }
    }

    #[test]
    fn a_request_id_header_is_kept_exactly_or_replaced_by_a_fresh_uuid_v4(bytes in id_bytes()) {
        // Only bytes a header value can carry at all reach `from_headers`.
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert(request_id::HEADER, value);
        let id = RequestId::from_headers(&headers, request_id::HEADER.as_str());
        if acceptable_id(&bytes) {
            prop_assert_eq!(id.as_str().as_bytes(), &bytes[..]);
        } else {
            prop_assert!(is_uuid_v4(&id), "{bytes:?} gave {id}");
        }
        // Whatever came in, what goes out is safe to log and echo.
        prop_assert!(acceptable_id(id.as_str().as_bytes()));
        // Another header name never picks the value up.
        prop_assert!(is_uuid_v4(&RequestId::from_headers(&headers, "x-other-id")));
    }
}

// === names ===

/// Strings that are mostly short, with multi-byte characters so byte and
/// character counts differ.
fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-zß日é\u{1F600} ]{0,12}", Just(String::new())]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_accepts_exactly_the_non_empty_names_within_the_byte_limit_and_returns_them_unchanged(
        name in name_text(),
        max in 0usize..48,
    ) {
        let result = names::validate(Some(&name), max);
        if !name.is_empty() && name.len() <= max {
            let accepted = result.expect("a valid name is accepted");
            prop_assert_eq!(accepted, name.as_str());
            // The very same slice, not a copy or a trimmed version.
            prop_assert_eq!(accepted.as_ptr(), name.as_ptr());
        } else if name.is_empty() {
            prop_assert_eq!(result, Err(NameError::Empty));
        } else {
            prop_assert_eq!(result, Err(NameError::TooLong { max }));
        }
        prop_assert_eq!(names::validate(None, max), Err(NameError::Missing));
    }

    #[test]
    fn upper_is_idempotent_never_panics_and_at_most_triples_the_length(name in any::<String>()) {
        let once = names::upper(&name);
        prop_assert_eq!(names::upper(&once), once.clone());
        // One character becomes at most three (`ΐ`, 2 bytes, becomes 6), so a
        // name within the limit gives a bounded answer.
        prop_assert!(once.len() <= 3 * name.len(), "{:?} grew to {:?}", name, once);
    }

    #[test]
    fn upper_of_ascii_is_ascii_uppercase(name in "[\\x00-\\x7F]{0,64}") {
        prop_assert_eq!(names::upper(&name), name.to_ascii_uppercase());
    }
}

// === query strings ===

/// Percent-encodes like a browser form: everything but unreserved bytes is
/// escaped, in upper or lower case hex, and a space is `+` or `%20`.
fn form_encode(text: &str, lower_hex: bool, plus_for_space: bool) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if plus_for_space => out.push('+'),
            _ if lower_hex => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An independent model of `decode`: reject any `%` without two hex digits
/// after it, turn literal `+` into space, percent-decode with the
/// `percent-encoding` crate, then require UTF-8.
fn model_decode(input: &str) -> Result<String, QueryError> {
    let bytes = input.as_bytes();
    let bad_escape = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if bad_escape {
        return Err(QueryError::BadEncoding);
    }
    let spaced = input.replace('+', " ");
    String::from_utf8(percent_encoding::percent_decode_str(&spaced).collect())
        .map_err(|_| QueryError::BadEncoding)
}

/// Text with the characters that matter to form encoding in it.
fn form_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z+%&=# ?é日\u{1F600}\\x00]{0,16}"]
}

/// Raw query strings, some with escapes good and bad, some arbitrary.
fn raw_query() -> impl Strategy<Value = String> {
    prop_oneof![
        // Short escapes good and bad, plain characters, ASCII escapes, and
        // two-byte UTF-8 escapes (which may or may not pair up).
        concat!(
            "(%[0-9a-fA-FgGzZ%+&=]{0,2}|[a-z+&=é]|%[0-7][0-9a-fA-F]",
            "|%[c-fC-F][0-9a-fA-F]%[89abAB][0-9a-fA-F]){0,16}",
        ),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_percent_encoded_value_round_trips_through_param(
        key in form_text(),
        value in form_text(),
        others in proptest::collection::vec((form_text(), form_text()), 0..4),
        later in form_text(),
        lower_hex in any::<bool>(),
        plus_for_space in any::<bool>(),
    ) {
        let encode = |text: &str| form_encode(text, lower_hex, plus_for_space);
        // Other pairs before it, under other keys, and a second value after.
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        pairs.push(format!("{}={}", encode(&key), encode(&value)));
        pairs.push(format!("{}={}", encode(&key), encode(&later)));
        let query = pairs.join("&");
        prop_assert_eq!(query::param(Some(&query), &key), Ok(Some(value.clone())), "query {}", query);
        prop_assert_eq!(query::decode(&encode(&value)), Ok(value));
    }

    #[test]
    fn decode_agrees_with_a_strict_model_on_any_input(input in raw_query()) {
        prop_assert_eq!(query::decode(&input), model_decode(&input));
    }

    #[test]
    fn param_never_panics_and_fails_exactly_when_some_component_is_malformed(
        input in raw_query(),
        key in "[a-z]{0,3}",
    ) {
        let result = query::param(Some(&input), &key);
        let any_bad = input
            .split('&')
            .flat_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                [k, v]
            })
            .any(|part| model_decode(part).is_err());
        prop_assert_eq!(result.is_err(), any_bad, "query {:?}", input);
    }

    #[test]
    fn a_percent_without_two_hex_digits_after_it_is_rejected(
        before in raw_query(),
        after in "([g-zG-Z%&=+ é]|[0-9a-fA-F][g-zG-Z%&=+ é])?",
        then in raw_query(),
    ) {
        // The `%` here is followed by nothing, or a non-hex character within
        // its next two, so no reading of the string makes it a valid escape.
        let input = format!("{before}%{after}");
        let input = if after.is_empty() { input } else { format!("{input}{then}") };
        prop_assert_eq!(query::decode(&input), Err(QueryError::BadEncoding), "input {:?}", input);
        let query = format!("name=ok&x={input}");
        prop_assert_eq!(query::param(Some(&query), "name"), Err(QueryError::BadEncoding));
    }
}

// === ObjectIds ===

mod object_ids {
    use proptest::prelude::*;
    use prost::Message;
    use wire::{
        object_id::{self, JsonObjectId, ObjectIdError},
        proto, ObjectId,
    };

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn an_object_id_survives_protobuf_bytes_and_json_unchanged(bytes in any::<[u8; 12]>()) {
            let id = ObjectId::from_bytes(bytes);
            // Through the protobuf encoding, as a response carries it.
            let response = proto::ProcessNameResponse { name: "N".into(), id: Some(id.into()) };
            let decoded = proto::ProcessNameResponse::decode(response.encode_to_vec().as_slice()).unwrap();
            prop_assert_eq!(decoded.object_id(), Ok(Some(id)));
            // Through JSON, both ways of writing it.
            let hex = id.to_hex();
            prop_assert_eq!(hex.len(), 24);
            prop_assert_eq!(&hex, &bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
            prop_assert_eq!(object_id::to_json(&id), format!("\"{hex}\""));
            prop_assert_eq!(object_id::from_json(&object_id::to_json(&id)), Ok(id));
            prop_assert_eq!(object_id::from_json(&format!(r#"{{"$oid":"{hex}"}}"#)), Ok(id));
            let json = serde_json::to_string(&JsonObjectId(id)).unwrap();
            prop_assert_eq!(serde_json::from_str::<JsonObjectId>(&json).unwrap(), JsonObjectId(id));
        }

        #[test]
        fn bytes_of_any_other_length_are_refused_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let message = proto::bson::ObjectId { value: bytes.clone() };
            match ObjectId::try_from(&message) {
                Ok(id) => prop_assert_eq!(id.bytes().to_vec(), bytes),
                Err(error) => {
                    prop_assert_ne!(bytes.len(), 12);
                    prop_assert_eq!(error, ObjectIdError::WrongLength(bytes.len()));
                }
            }
        }

        #[test]
        fn a_json_text_is_an_object_id_only_in_one_of_the_two_forms(text in "\\PC{0,40}") {
            // Never a panic; and when taken, it is a 24-hex-digit string
            // (bare or under $oid) that writes the same id back.
            if let Ok(id) = object_id::from_json(&text) {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                let hex = value.as_str().or_else(|| value["$oid"].as_str()).unwrap();
                prop_assert_eq!(hex.to_ascii_lowercase(), id.to_hex());
            }
        }
    }
}
