//! Client-controlled text in log lines, cut to a bound: whatever a client
//! sends (a path, the names on its certificate), a line about it stays
//! small.

use std::borrow::Cow;

/// `text` cut to at most `max_bytes` at a character boundary, with `…`
/// after it when cut.
pub(crate) fn cut(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_within_the_bound_is_kept_whole_and_longer_text_is_cut_at_a_character_boundary() {
        assert_eq!(cut("/app.grpc.Service1/ProcessName", 128), "/app.grpc.Service1/ProcessName");
        let long = "é".repeat(100);
        let cut = cut(&long, 7);
        assert_eq!(cut, "ééé…");
    }
}
