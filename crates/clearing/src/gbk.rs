//! GBK text fields. Decoding and encoding are `encoding_rs`'s GBK (the WHATWG decoder,
//! which also reads GB18030's four-byte sequences); the structural scan below only finds
//! where characters start, so that a name cut mid-character (by another writer that cut
//! at a byte count) loses its last, partial character instead of failing the file.

use std::borrow::Cow;

use encoding_rs::GBK;

fn is_lead(byte: u8) -> bool {
    (0x81..=0xFE).contains(&byte)
}

fn is_trail(byte: u8) -> bool {
    (0x40..=0x7E).contains(&byte) || (0x80..=0xFE).contains(&byte)
}

/// The byte length of the character starting at `bytes[0]`, from its shape: 1 for ASCII
/// (and 0x80, which WHATWG GBK reads as €), 2 for lead + trail, 4 for a GB18030 four-byte
/// sequence. `Err(true)` when `bytes` ends inside the character, `Err(false)` when the bytes
/// cannot start one.
fn char_len(bytes: &[u8]) -> Result<usize, bool> {
    let first = bytes[0];
    if first <= 0x80 {
        return Ok(1);
    }
    if !is_lead(first) {
        return Err(false);
    }
    match bytes.get(1) {
        None => Err(true),
        Some(&second) if is_trail(second) => Ok(2),
        Some(second) if second.is_ascii_digit() => match (bytes.get(2), bytes.get(3)) {
            (Some(&third), Some(fourth)) if is_lead(third) && fourth.is_ascii_digit() => Ok(4),
            (Some(&third), None) if is_lead(third) => Err(true),
            (None, _) => Err(true),
            _ => Err(false),
        },
        Some(_) => Err(false),
    }
}

/// What the shape scan finds of a field.
struct Content<'a> {
    /// The field without its space padding and without a character cut at its end.
    bytes: &'a [u8],
    /// It holds a four-byte sequence (whose value the decoder must check).
    four_byte: bool,
}

/// The field's [`Content`]; `None` when the bytes are not GBK.
fn content(field: &[u8]) -> Option<Content<'_>> {
    let end = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let field = &field[..end];
    let (mut at, mut four_byte) = (0, false);
    while at < field.len() {
        match char_len(&field[at..]) {
            Ok(len) => {
                four_byte |= len == 4;
                at += len;
            }
            Err(true) => {
                return Some(Content {
                    bytes: &field[..at],
                    four_byte,
                });
            }
            Err(false) => return None,
        }
    }
    Some(Content {
        bytes: field,
        four_byte,
    })
}

/// The text of a `text` field: GBK decoded, padding and a cut last character dropped.
pub(crate) fn decode(field: &[u8]) -> Option<Cow<'_, str>> {
    GBK.decode_without_bom_handling_and_without_replacement(content(field)?.bytes)
}

/// Whether a `text` field decodes (as [`decode`] would), without allocating: one- and
/// two-byte characters are checked by shape (every two-byte pair of the right shape
/// decodes, see the tests); four-byte sequences are decoded into a buffer on the stack.
pub(crate) fn is_valid(field: &[u8]) -> bool {
    let Some(Content {
        bytes: content,
        four_byte,
    }) = content(field)
    else {
        return false;
    };
    if !four_byte {
        return true;
    }
    let mut decoder = GBK.new_decoder_without_bom_handling();
    let mut buf = [0u8; 256];
    let mut rest = content;
    loop {
        let (result, read, _) = decoder.decode_to_utf8_without_replacement(rest, &mut buf, true);
        rest = &rest[read..];
        match result {
            encoding_rs::DecoderResult::InputEmpty => return true,
            encoding_rs::DecoderResult::OutputFull => {}
            encoding_rs::DecoderResult::Malformed(..) => return false,
        }
    }
}

/// `text` in GBK, cut at a character boundary to at most `width` bytes. `Err` with the
/// first character GBK cannot hold.
pub(crate) fn encode_cut(text: &str, width: usize) -> Result<Cow<'_, [u8]>, char> {
    let (bytes, _, had_errors) = GBK.encode(text);
    if had_errors {
        let bad = text
            .chars()
            .find(|ch| GBK.encode(ch.encode_utf8(&mut [0; 4])).2)
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        return Err(bad);
    }
    if bytes.len() <= width {
        return Ok(bytes);
    }
    let mut end = 0;
    while end < bytes.len() {
        let len = char_len(&bytes[end..]).unwrap_or(1);
        if end + len > width {
            break;
        }
        end += len;
    }
    Ok(match bytes {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..end]),
        Cow::Owned(mut v) => {
            v.truncate(end);
            Cow::Owned(v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape scan agrees with encoding_rs on every two-byte pair: each lead + trail
    /// decodes, so a field that scans as two-byte characters only is GBK.
    #[test]
    fn every_two_byte_pair_of_the_right_shape_decodes() {
        for lead in 0x81..=0xFEu8 {
            for trail in (0x40..=0x7Eu8).chain(0x80..=0xFE) {
                let pair = [lead, trail];
                assert!(
                    GBK.decode_without_bom_handling_and_without_replacement(&pair)
                        .is_some(),
                    "{lead:02X}{trail:02X}"
                );
                assert!(is_valid(&pair));
            }
        }
    }

    #[test]
    fn a_cut_last_character_is_dropped() {
        let (bytes, _, _) = GBK.encode("便利店");
        let mut cut = bytes[..5].to_vec();
        assert_eq!(decode(&cut).unwrap(), "便利");
        cut.extend_from_slice(b"   ");
        assert_eq!(decode(&cut).unwrap(), "便利");
        assert!(is_valid(&cut));
    }

    #[test]
    fn four_byte_sequences_are_checked_by_the_decoder() {
        let (bytes, _, had_errors) = encoding_rs::GB18030.encode("a😀");
        assert!(
            !had_errors && bytes.len() == 5,
            "a GB18030 four-byte sequence"
        );
        assert!(is_valid(&bytes));
        // 0x84 0x31 0xA5 0x30 is past the last four-byte pointer WHATWG GBK maps.
        let unmapped = [0x84, 0x31, 0xA5, 0x30];
        assert!(
            GBK.decode_without_bom_handling_and_without_replacement(&unmapped)
                .is_none()
        );
        assert!(!is_valid(&unmapped));
    }

    #[test]
    fn bad_bytes_are_not_gbk() {
        assert!(decode(&[0xFF, b'a']).is_none());
        assert!(!is_valid(&[0xFF]));
        assert!(!is_valid(&[0xB1, 0x20, b'x']));
    }

    #[test]
    fn encoding_cuts_at_a_character_boundary() {
        assert_eq!(
            encode_cut("ab便利", 5).unwrap().as_ref(),
            &GBK.encode("ab便").0[..]
        );
        assert_eq!(encode_cut("ab便利", 6).unwrap().len(), 6);
        assert_eq!(encode_cut("ab😀", 10), Err('😀'));
    }
}
