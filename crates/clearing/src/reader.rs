//! The streaming reader: records as byte slices of the input, fields by precomputed
//! offsets, nothing allocated per record or field. Every record it yields has been
//! checked whole against its profile (width, separators, digits, fee signs, flags, GBK
//! text, clearing date), so the typed parser and the fast key path accept and refuse the
//! same files: both are built on it.
//!
//! Lines end with `\n` or `\r\n`; a record may carry one space after its last field.

use crate::error::ParseError;
use crate::gbk;
use crate::kind::ClearingDate;
use crate::profile::{FieldKind, Key, Profile};

/// The value of a run of ASCII digits; `None` when empty, not all digits, or over u64.
pub fn digits_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// The value of a `fee` field: `C` positive, `D` negative (see `FieldKind::Fee`).
pub fn fee_i64(bytes: &[u8]) -> Option<i64> {
    let (&sign, digits) = bytes.split_first()?;
    let value = i64::try_from(digits_u64(digits)?).ok()?;
    match sign {
        b'C' => Some(value),
        b'D' => Some(-value),
        _ => None,
    }
}

/// A checked record: its bytes (without line end or trailing space) and its profile.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    line: u64,
    bytes: &'a [u8],
    profile: &'a Profile,
}

impl<'a> RawRecord<'a> {
    /// The record's line in the file (or chunk), from 1.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The whole record.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes of field `index` (0-based; field numbers are `index + 1`), padding
    /// included. Panics if the profile has no such field.
    pub fn field(&self, index: usize) -> &'a [u8] {
        let field = &self.profile.fields()[index];
        &self.bytes[field.offset..field.offset + field.width]
    }

    pub fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// The bytes of a key field, padding included; `None` when the profile has no such
    /// field. Those of a key read as text but for the merchant's name (identifiers, codes,
    /// times, the masked card number) are ASCII: their kind is `n` or `an`, checked.
    pub fn key(&self, key: Key) -> Option<&'a [u8]> {
        self.profile.key(key).map(|index| self.field(index))
    }

    /// An `an` or `text`-as-ASCII field without its padding, or an `n` field as it is.
    pub(crate) fn key_str(&self, key: Key) -> &'a str {
        let Some(bytes) = self.key(key) else {
            return "";
        };
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        // Checked ASCII for every kind a `Shape::Str` key may have.
        std::str::from_utf8(&bytes[..end]).unwrap_or_default()
    }

    /// The value of a numeric key field (0 when the profile has none).
    pub fn key_u64(&self, key: Key) -> u64 {
        self.key(key).and_then(digits_u64).unwrap_or(0)
    }

    pub(crate) fn key_fee(&self, key: Key) -> i64 {
        self.key(key).and_then(fee_i64).unwrap_or(0)
    }

    /// A flag key field is set (not blank).
    pub fn key_flag(&self, key: Key) -> bool {
        self.key(key).is_some_and(|b| b != b" ")
    }
}

/// Reads records from a buffer (a whole file, or a chunk of one that starts at a line
/// start). Stops at the first bad line: the item after an error is `None`.
#[derive(Debug, Clone)]
pub struct RecordReader<'a> {
    rest: &'a [u8],
    line: u64,
    profile: &'a Profile,
    date: Option<[u8; 4]>,
}

impl<'a> RecordReader<'a> {
    /// Records of `profile` from `bytes`, numbered from `first_line`. With `date`, each
    /// record's `clearing_mmdd` field (where the profile has one: ACOMA, AERRA) must be
    /// that date's MMDD.
    pub fn new(
        bytes: &'a [u8],
        profile: &'a Profile,
        first_line: u64,
        date: Option<ClearingDate>,
    ) -> RecordReader<'a> {
        RecordReader {
            rest: bytes,
            line: first_line,
            profile,
            date: date.map(ClearingDate::mmdd_bytes),
        }
    }

    /// The next line: its bytes without line end, and whether it had one.
    fn next_line(&mut self) -> (&'a [u8], bool) {
        let rest = self.rest;
        let len = self.profile.record_len();
        // The usual case, a record of the right width and `\n`, costs one comparison.
        if rest.get(len) == Some(&b'\n') {
            self.rest = &rest[len + 1..];
            return (&rest[..len], true);
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.rest = &rest[end + 1..];
                let line = &rest[..end];
                (line.strip_suffix(b"\r").unwrap_or(line), true)
            }
            None => {
                self.rest = &[];
                (rest, false)
            }
        }
    }

    fn check_line(&self, line: &'a [u8], ended: bool) -> Result<&'a [u8], ParseError> {
        let expected = self.profile.record_len();
        let record = match line.len() {
            n if n == expected => line,
            n if n == expected + 1 && line[expected] == b' ' => &line[..expected],
            n => {
                let (line, kind) = (self.line, self.profile.kind());
                return Err(if !ended && n < expected {
                    ParseError::Truncated {
                        line,
                        len: n,
                        kind,
                        expected,
                    }
                } else {
                    ParseError::Width {
                        line,
                        len: n,
                        kind,
                        expected,
                    }
                });
            }
        };
        check_record(self.profile, self.line, record, self.date)?;
        Ok(record)
    }
}

impl<'a> Iterator for RecordReader<'a> {
    type Item = Result<RawRecord<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, ended) = self.next_line();
        let result = self.check_line(line, ended).map(|bytes| RawRecord {
            line: self.line,
            bytes,
            profile: self.profile,
        });
        if result.is_err() {
            self.rest = &[];
        }
        self.line += 1;
        Some(result)
    }
}

/// Checks a record of the profile's width: one pass over the bytes against the profile's
/// per-byte ranges (branch-free, so the compiler vectorizes it), then the few things a
/// range cannot say: GBK text, flags, the clearing date. A record that fails the pass is
/// walked field by field to name the field.
fn check_record(
    profile: &Profile,
    line: u64,
    record: &[u8],
    date: Option<[u8; 4]>,
) -> Result<(), ParseError> {
    let (low, span) = profile.byte_ranges();
    let mut bad = false;
    for ((&byte, &low), &span) in record.iter().zip(low).zip(span) {
        bad |= byte.wrapping_sub(low) > span;
    }
    if bad {
        return Err(first_bad_field(profile, line, record));
    }
    let raw = RawRecord {
        line,
        bytes: record,
        profile,
    };
    for &index in profile.text_fields() {
        let bytes = raw.field(index);
        if !bytes.is_ascii() && !gbk::is_valid(bytes) {
            let field = profile.field_ref(index);
            return Err(ParseError::NotGbk { line, field });
        }
    }
    for (key, allowed) in [(Key::ReversalFlag, 'R'), (Key::VoidFlag, 'C')] {
        if let Some(value) = raw.key(key)
            && value != b" "
            && value != [allowed as u8]
        {
            let index = profile.key(key).unwrap_or_default();
            let field = profile.field_ref(index);
            let value = String::from_utf8_lossy(value).into_owned();
            return Err(ParseError::Flag {
                line,
                field,
                value,
                allowed,
            });
        }
    }
    if let (Some(expected), Some(found)) = (date, raw.key(Key::ClearingMmdd))
        && found != expected
    {
        let index = profile.key(Key::ClearingMmdd).unwrap_or_default();
        return Err(ParseError::OtherDate {
            line,
            field: profile.field_ref(index),
            found: String::from_utf8_lossy(found).into_owned(),
            expected: String::from_utf8_lossy(&expected).into_owned(),
        });
    }
    Ok(())
}

/// The error for a record that failed the byte-range pass: its first bad field.
fn first_bad_field(profile: &Profile, line: u64, record: &[u8]) -> ParseError {
    for (index, field) in profile.fields().iter().enumerate() {
        if index > 0 && record[field.offset - 1] != b' ' {
            return ParseError::Separator {
                line,
                field: profile.field_ref(index),
            };
        }
        let bytes = &record[field.offset..field.offset + field.width];
        let value = || String::from_utf8_lossy(bytes).into_owned();
        let digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
        let field_ref = || profile.field_ref(index);
        match field.kind {
            FieldKind::N if !digits(bytes) => {
                return ParseError::NotDigits {
                    line,
                    field: field_ref(),
                    value: value(),
                };
            }
            FieldKind::An if !bytes.iter().all(|b| (0x20..=0x7E).contains(b)) => {
                return ParseError::NotAscii {
                    line,
                    field: field_ref(),
                    value: value(),
                };
            }
            FieldKind::Text if bytes.iter().any(|&b| b < 0x20 || b == 0xFF) => {
                return ParseError::NotGbk {
                    line,
                    field: field_ref(),
                };
            }
            FieldKind::Fee if !matches!(bytes[0], b'C' | b'D') => {
                let sign = String::from_utf8_lossy(&bytes[..1]).into_owned();
                return ParseError::FeeSign {
                    line,
                    field: field_ref(),
                    sign,
                };
            }
            FieldKind::Fee if !digits(&bytes[1..]) => {
                return ParseError::NotDigits {
                    line,
                    field: field_ref(),
                    value: value(),
                };
            }
            _ => {}
        }
    }
    unreachable!("a record that fails the byte ranges has a bad field")
}

/// Cuts `bytes` into at most `parts` chunks of about equal size, each ending just after
/// a `\n` (the last one at the end of `bytes`), to read in parallel.
pub fn split_at_lines(bytes: &[u8], parts: usize) -> Vec<&[u8]> {
    let parts = parts.max(1);
    let target = bytes.len().div_ceil(parts).max(1);
    let mut chunks = Vec::with_capacity(parts);
    let mut rest = bytes;
    while !rest.is_empty() {
        if chunks.len() + 1 == parts || rest.len() <= target {
            chunks.push(rest);
            break;
        }
        let end = match rest[target - 1..].iter().position(|&b| b == b'\n') {
            Some(at) => target + at,
            None => rest.len(),
        };
        chunks.push(&rest[..end]);
        rest = &rest[end..];
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        assert_eq!(digits_u64(b"000123"), Some(123));
        assert_eq!(digits_u64(b"12a"), None);
        assert_eq!(digits_u64(b""), None);
        assert_eq!(digits_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits_u64(b"18446744073709551616"), None);
        assert_eq!(fee_i64(b"C0012"), Some(12));
        assert_eq!(fee_i64(b"D0012"), Some(-12));
        assert_eq!(fee_i64(b"X0012"), None);
    }

    #[test]
    fn chunks_end_at_line_ends() {
        let text = b"aaa\nbbb\nccc\nddd\n";
        for parts in 1..6 {
            let chunks = split_at_lines(text, parts);
            assert!(chunks.len() <= parts);
            assert_eq!(chunks.concat(), text);
            assert!(chunks.iter().all(|c| c.ends_with(b"\n")));
        }
        assert_eq!(split_at_lines(b"", 3).len(), 0);
    }
}
