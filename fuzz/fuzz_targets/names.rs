//! Names: `validate` accepts exactly the non-empty names within the byte
//! limit and returns them unchanged; `upper` never panics, is idempotent,
//! matches ASCII upper-casing on ASCII, and at most triples the length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::names::{self, NameError};

fuzz_target!(|data: &[u8]| {
    // The first byte is the limit, the rest the name.
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    let Ok(name) = std::str::from_utf8(rest) else {
        return;
    };

    match names::validate(Some(name), max) {
        Ok(accepted) => {
            assert!(!name.is_empty() && name.len() <= max);
            assert_eq!(accepted.as_ptr(), name.as_ptr());
            assert_eq!(accepted.len(), name.len());
        }
        Err(NameError::Empty) => assert!(name.is_empty()),
        Err(NameError::TooLong { max: reported }) => {
            assert_eq!(reported, max);
            assert!(!name.is_empty() && name.len() > max);
        }
        Err(NameError::Missing) => panic!("a present name reported missing"),
    }
    assert_eq!(names::validate(None, max), Err(NameError::Missing));

    let upper = names::upper(name);
    assert_eq!(names::upper(&upper), upper, "not idempotent on {name:?}");
    // Full case mapping turns one character into at most three, and at most
    // triples its UTF-8 length (`ΐ`, 2 bytes, becomes 6).
    assert!(upper.len() <= 3 * name.len(), "{name:?} grew to {upper:?}");
    if name.is_ascii() {
        assert_eq!(upper, name.to_ascii_uppercase());
    }
});
