//! Query strings: `decode` agrees with a strict model (every `%` has two hex
//! digits after it, `+` is a space, the result is UTF-8), whatever decodes
//! re-encodes and decodes back to itself, and `param` fails exactly when
//! some component of the query is malformed. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::query::{self, QueryError};

fn model_decode(input: &str) -> Result<String, QueryError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digits = bytes.get(i + 1..i + 3).ok_or(QueryError::BadEncoding)?;
            let digits = std::str::from_utf8(digits).map_err(|_| QueryError::BadEncoding)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(QueryError::BadEncoding);
            }
            out.push(u8::from_str_radix(digits, 16).map_err(|_| QueryError::BadEncoding)?);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::BadEncoding)
}

fn encode(text: &str, plus_for_space: bool) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if plus_for_space => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // A query string reaches the handler as UTF-8 (the URI is checked).
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    let decoded = query::decode(input);
    assert_eq!(decoded, model_decode(input), "decode disagrees with the model on {input:?}");

    if let Ok(value) = &decoded {
        for plus_for_space in [false, true] {
            let encoded = encode(value, plus_for_space);
            assert_eq!(query::decode(&encoded).as_ref(), Ok(value));
            let with_key = format!("a=1&name={encoded}&name=second");
            assert_eq!(query::param(Some(&with_key), "name"), Ok(Some(value.clone())));
        }
    }

    let any_bad = input
        .split('&')
        .flat_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            [k, v]
        })
        .any(|part| model_decode(part).is_err());
    for key in ["name", "", "a"] {
        let result = query::param(Some(input), key);
        assert_eq!(result.is_err(), any_bad, "param on {input:?}");
    }
});
