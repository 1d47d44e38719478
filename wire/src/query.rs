//! Strict query-string parsing.
//!
//! The usual form decoders are lossy: `%ZZ` is kept as text and invalid
//! UTF-8 becomes U+FFFD, so a caller would get an answer for a name they did
//! not send. Here a malformed escape or invalid UTF-8 is an error (400).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query string has invalid percent-encoding")]
    BadEncoding,
}

/// The first value of `key`, decoded as `application/x-www-form-urlencoded`
/// (`+` is a space). Every pair is checked, not only the one asked for.
///
/// Only the value returned is copied: a component with neither `%` nor
/// `+` decodes to itself and cannot be malformed, so it is compared or
/// skipped as it is.
pub fn param(query: Option<&str>, key: &str) -> Result<Option<String>, QueryError> {
    let mut found = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let is_key = if is_plain(raw_key) { raw_key == key } else { decode(raw_key)? == key };
        if found.is_none() && is_key {
            found = Some(decode(raw_value)?);
        } else if !is_plain(raw_value) {
            decode(raw_value)?;
        }
    }
    Ok(found)
}

/// Whether `component` decodes to itself.
fn is_plain(component: &str) -> bool {
    !component.bytes().any(|b| matches!(b, b'%' | b'+'))
}

/// Decodes one component: `+` to space, `%XX` to a byte, then UTF-8.
pub fn decode(input: &str) -> Result<String, QueryError> {
    let bytes = input.as_bytes();
    if is_plain(input) {
        return Ok(input.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex(*b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(QueryError::BadEncoding);
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::BadEncoding)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes_the_first_value() {
        assert_eq!(param(Some("name=test"), "name"), Ok(Some("test".into())));
        assert_eq!(param(Some("a=1&name=stra%C3%9Fe&name=x"), "name"), Ok(Some("straße".into())));
        assert_eq!(param(Some("name=a+b%20c"), "name"), Ok(Some("a b c".into())));
        assert_eq!(param(Some("name"), "name"), Ok(Some(String::new())));
        assert_eq!(param(Some("other=1"), "name"), Ok(None));
        assert_eq!(param(None, "name"), Ok(None));
    }

    #[test]
    fn rejects_malformed_escapes_and_invalid_utf8_anywhere() {
        for query in [
            "name=%ZZ",
            "name=%4",
            "name=abc%",
            "name=%FF",
            "x=%G1&name=ok",
            "na%me=1",
            "name=ok&name=%ZZ",
            "name=ok&x%ZZ=1",
        ] {
            assert_eq!(param(Some(query), "name"), Err(QueryError::BadEncoding), "{query}");
        }
    }
}
