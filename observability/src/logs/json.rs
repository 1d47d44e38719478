//! JSON text, written without the formatting machinery: strings escaped
//! byte by byte, integers as `Display` writes them, and timestamps as
//! tracing-subscriber's `SystemTime` timer writes them. A log line is
//! mostly these, so each is a measured saving on every line (the README's
//! performance section has the figures).

use std::fmt::{self, Write as _};

use tracing_subscriber::fmt::{
    format::Writer,
    time::{FormatTime, SystemTime},
};

/// `time` as tracing-subscriber's `SystemTime` timer writes it
/// (`2026-11-30T04:28:46.922885Z`, UTC, microseconds). Times before 1970
/// or after 9999 are left to tracing-subscriber.
pub(super) fn write_timestamp(w: &mut Writer<'_>, time: std::time::SystemTime) -> fmt::Result {
    match format_timestamp(time) {
        Some(text) => w.write_str(std::str::from_utf8(&text).unwrap_or_default()),
        None => SystemTime.format_time(w),
    }
}

fn format_timestamp(time: std::time::SystemTime) -> Option<[u8; 27]> {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's
    // `civil_from_days`, for days on or after 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3_600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(micros));
    Some(out)
}

/// `value` in decimal, as `Display` writes it, without the formatting
/// machinery: access lines carry a few integers each.
pub(super) fn write_u64(w: &mut impl fmt::Write, mut value: u64) -> fmt::Result {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    w.write_str(std::str::from_utf8(&digits[at..]).unwrap_or_default())
}

pub(super) fn write_json_str(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscape(w).write_str(value)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
pub(super) struct JsonEscape<'a, W: fmt::Write>(pub(super) &'a mut W);

/// Whether `byte` must be escaped inside a JSON string. Every such byte is
/// ASCII, and no byte of a multi-byte UTF-8 character is ASCII, so strings
/// can be scanned byte by byte.
pub(super) fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

impl<W: fmt::Write> fmt::Write for JsonEscape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Almost every string needs no escape: one pass without early exit
        // (which the compiler vectorises), then one write.
        if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if !needs_escape(b) {
                continue;
            }
            // `i` is at an ASCII byte, so on a character boundary.
            self.0.write_str(&s[start..i])?;
            match b {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{:04x}", b)?,
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_byte_for_byte_as_json_wants_and_other_text_is_kept() {
        let mut out = String::new();

        write_json_str(&mut out, "é \"q\" \\ \n\r\t\u{1}\u{1f} ☃ \u{7f}").unwrap();

        assert_eq!(out, "\"é \\\"q\\\" \\\\ \\n\\r\\t\\u0001\\u001f ☃ \u{7f}\"");
    }

    #[test]
    fn timestamps_are_written_as_tracing_subscriber_writes_them() {
        use std::time::{Duration, UNIX_EPOCH};
        let text = |secs: u64, micros: u32| {
            let time = UNIX_EPOCH + Duration::new(secs, micros * 1_000 + 999);
            String::from_utf8(format_timestamp(time).unwrap().to_vec()).unwrap()
        };
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(text(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(text(1_796_013_726, 922_885), "2026-11-30T04:42:06.922885Z");
        assert_eq!(text(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(text(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(253_402_300_800)), None);
        assert_eq!(format_timestamp(UNIX_EPOCH - Duration::from_secs(1)), None);

        // Every day for 400 years (one full Gregorian cycle) against a
        // count of days by month.
        let (mut year, mut month, mut day) = (1970u64, 1u64, 1u64);
        for days in 0..146_097u64 {
            let expected = format!("{year:04}-{month:02}-{day:02}T00:00:00.000000Z");
            assert_eq!(text(days * 86_400, 0), expected);
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length =
                [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1];
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    #[test]
    fn a_timestamp_of_now_matches_tracing_subscriber_s_to_the_second() {
        let ours =
            || String::from_utf8(format_timestamp(std::time::SystemTime::now()).unwrap().to_vec()).unwrap();
        for _ in 0..10 {
            let mut theirs = String::new();
            SystemTime.format_time(&mut Writer::new(&mut theirs)).unwrap();
            let ours = ours();
            if ours[..19] == theirs[..19] {
                assert_eq!(
                    (ours.len(), &ours[19..20], &ours[26..]),
                    (theirs.len(), ".", "Z"),
                    "{ours} {theirs}"
                );
                return;
            }
        }
        panic!("never within the same second");
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for value in [0, 7, 10, 200, 65_535, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, value).unwrap();
            assert_eq!(out, value.to_string());
        }
    }
}
