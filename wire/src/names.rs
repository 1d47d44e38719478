//! The one piece of business logic: checking a name and upper-casing it.
//! Both REST edges validate a name; ProcessName takes any name, as the
//! original did (the message size bounds it).

/// The default limit on a name, in bytes of UTF-8.
pub const DEFAULT_MAX_NAME_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the 'name' parameter is required")]
    Missing,
    #[error("the name must not be empty")]
    Empty,
    #[error("the name must be at most {max} bytes of UTF-8")]
    TooLong { max: usize },
}

/// Checks a name against the contract: present, not empty, not too long.
pub fn validate(name: Option<&str>, max_bytes: usize) -> Result<&str, NameError> {
    match name {
        None => Err(NameError::Missing),
        Some("") => Err(NameError::Empty),
        Some(name) if name.len() > max_bytes => Err(NameError::TooLong { max: max_bytes }),
        Some(name) => Ok(name),
    }
}

/// Upper-cases like Python's `str.upper()`: full Unicode case mapping, so
/// one character may become several (`ß` becomes `SS`).
pub fn upper(name: &str) -> String {
    name.to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_follows_unicode_special_casing_like_python() {
        assert_eq!(upper("test"), "TEST");
        assert_eq!(upper("straße"), "STRASSE");
        assert_eq!(upper("ﬁx"), "FIX");
        assert_eq!(upper("ǆemal"), "ǄEMAL");
        // Values checked against CPython 3.11 `str.upper()`.
        assert_eq!(upper("ΐ"), "\u{399}\u{308}\u{301}");
        assert_eq!(upper("日本"), "日本");
    }

    #[test]
    fn validate_rejects_missing_empty_and_too_long_names() {
        assert_eq!(validate(None, 4), Err(NameError::Missing));
        assert_eq!(validate(Some(""), 4), Err(NameError::Empty));
        assert_eq!(validate(Some("abcde"), 4), Err(NameError::TooLong { max: 4 }));
        // The limit counts bytes, not characters: "ßß" is 4 bytes.
        assert_eq!(validate(Some("ßß"), 4), Ok("ßß"));
        assert_eq!(validate(Some("ßßa"), 4), Err(NameError::TooLong { max: 4 }));
    }
}
