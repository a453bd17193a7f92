//! Zero-copy views of numeric values, whether packed BCD or ASCII on the wire.

use std::fmt;

#[derive(Clone, Copy, Debug)]
enum Repr<'a> {
    /// Packed nibbles; `nibble_first` is the index of the first value nibble; `decimal`
    /// when the decoder checked every value nibble is a decimal digit (`n` fields).
    Packed {
        bytes: &'a [u8],
        nibble_first: usize,
        decimal: bool,
    },
    /// One ASCII character per digit.
    Ascii(&'a [u8]),
}

/// A run of digits (or track characters) borrowed from the input.
///
/// Packed nibbles read as `0`–`9`; nibble `D` reads as `=` (the track-data separator) and
/// the other nibbles above 9, found only in encrypted track data, read as `A`–`F`.
#[derive(Clone, Copy, Debug)]
pub struct Digits<'a> {
    repr: Repr<'a>,
    len: usize,
}

const NIBBLE_CHARS: &[u8; 16] = b"0123456789ABC=EF";

/// The two characters of each packed byte, looked up in one go.
static BYTE_CHARS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [NIBBLE_CHARS[byte >> 4], NIBBLE_CHARS[byte & 0x0F]];
        byte += 1;
    }
    table
};

/// Digits [`Digits::to_text`] unpacks on the stack first (fields 2, 35, 60, 61 fit).
const TEXT_ON_STACK_MAX: usize = 128;

impl<'a> Digits<'a> {
    pub(crate) fn packed(bytes: &'a [u8], nibble_first: usize, len: usize, decimal: bool) -> Self {
        debug_assert!((nibble_first + len).div_ceil(2) <= bytes.len());
        Digits {
            repr: Repr::Packed {
                bytes,
                nibble_first,
                decimal,
            },
            len,
        }
    }

    pub(crate) fn ascii(bytes: &'a [u8]) -> Self {
        Digits {
            repr: Repr::Ascii(bytes),
            len: bytes.len(),
        }
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The character at `index` (`b'0'`..`b'9'`, `b'='`, or a hex letter), if in range.
    #[inline]
    pub fn get(&self, index: usize) -> Option<u8> {
        if index >= self.len {
            return None;
        }
        match self.repr {
            Repr::Packed {
                bytes,
                nibble_first,
                ..
            } => {
                let nibble_index = nibble_first + index;
                let byte = *bytes.get(nibble_index / 2)?;
                let nibble = if nibble_index.is_multiple_of(2) {
                    byte >> 4
                } else {
                    byte & 0x0F
                };
                Some(NIBBLE_CHARS[nibble as usize])
            }
            Repr::Ascii(bytes) => bytes.get(index).copied(),
        }
    }

    /// Writes the characters into `out`, as many as fit, and returns them. `out` may be
    /// written past them, up to the next multiple of sixteen characters, when it is long
    /// enough: digits read from a decoded message are unpacked sixteen at a time, with a
    /// fixed number of steps (a per-digit [`Digits::get`] was most of the cost of reading
    /// a message's values, then loops whose length changed from field to field).
    #[inline(always)]
    pub fn unpack_into<'o>(&self, out: &'o mut [u8]) -> &'o [u8] {
        let n = self.len.min(out.len());
        if let Repr::Packed {
            bytes,
            nibble_first,
            decimal,
        } = self.repr
            && nibble_first % 2 == 0
            && let Some(packed) = bytes.get(nibble_first / 2..)
            && unpack_words(packed, n, out, decimal)
        {
            return &out[..n];
        }
        let out = &mut out[..n];
        Digits::unpack_rest(*self, out);
        out
    }

    /// [`Digits::unpack_into`] when whole words do not do: ASCII, an odd first nibble, a
    /// buffer or bytes too short for them.
    /// (By value: the caller's copy is made on this path only.)
    #[inline(never)]
    fn unpack_rest(self, out: &mut [u8]) {
        match self.repr {
            Repr::Ascii(bytes) => out.copy_from_slice(&bytes[..out.len()]),
            Repr::Packed {
                bytes,
                nibble_first,
                ..
            } => {
                let packed = bytes.get(nibble_first / 2..).unwrap_or(&[]);
                match (
                    nibble_first % 2 == 1,
                    out.split_first_mut(),
                    packed.split_first(),
                ) {
                    // An odd first nibble is the low half of its byte.
                    (true, Some((first, out)), Some((&byte, packed))) => {
                        *first = NIBBLE_CHARS[usize::from(byte & 0x0F)];
                        unpack_pairs(packed, out);
                    }
                    (true, _, _) => {}
                    (false, _, _) => unpack_pairs(packed, out),
                }
            }
        }
    }

    /// The sub-run `start..start + len`, clamped to what exists.
    pub fn slice(&self, start: usize, len: usize) -> Digits<'a> {
        let start = start.min(self.len);
        let len = len.min(self.len - start);
        match self.repr {
            Repr::Packed {
                bytes,
                nibble_first,
                decimal,
            } => Digits {
                repr: Repr::Packed {
                    bytes,
                    nibble_first: nibble_first + start,
                    decimal,
                },
                len,
            },
            Repr::Ascii(bytes) => Digits::ascii(&bytes[start..start + len]),
        }
    }

    /// The characters in order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// The value as an integer, when it is all decimal digits and fits (at most 19 digits).
    pub fn to_u64(&self) -> Option<u64> {
        if self.len == 0 || self.len > 19 {
            return None;
        }
        let mut value = 0u64;
        for c in self.iter() {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u64::from(c - b'0');
        }
        Some(value)
    }

    /// Whether the digits spell `text` exactly.
    pub fn eq_str(&self, text: &str) -> bool {
        text.len() == self.len && self.iter().eq(text.bytes())
    }

    /// The characters as text, what `Display` writes, in one allocation and without the
    /// formatting machinery (a request's numbers are read this way on every request).
    pub fn to_text(&self) -> String {
        let mut buffer = [0u8; TEXT_ON_STACK_MAX];
        if self.len <= TEXT_ON_STACK_MAX {
            // The characters are ASCII: each is one char.
            return self
                .unpack_into(&mut buffer)
                .iter()
                .map(|&c| char::from(c))
                .collect();
        }
        self.iter().map(char::from).collect()
    }

    /// The ASCII bytes themselves, when the wire holds ASCII (no copy needed).
    pub fn as_ascii(&self) -> Option<&'a [u8]> {
        match self.repr {
            Repr::Ascii(bytes) => Some(bytes),
            Repr::Packed { .. } => None,
        }
    }
}

/// Unpacks `n` characters from whole eight-byte words of `packed` into whole sixteen-byte
/// blocks of `out`, when both are long enough (`packed` may go on past the characters: a
/// decoded field's bytes are followed by the rest of its message). Says whether it did.
/// `decimal` when every nibble to unpack is a decimal digit (what is unpacked past the `n`
/// characters may not be, and may come out as any byte).
#[inline(always)]
fn unpack_words(packed: &[u8], n: usize, out: &mut [u8], decimal: bool) -> bool {
    let words = n.div_ceil(16);
    let (Some(packed), Some(out)) = (packed.get(..words * 8), out.get_mut(..words * 16)) else {
        return false;
    };
    let pairs = out
        .as_chunks_mut::<16>()
        .0
        .iter_mut()
        .zip(packed.as_chunks::<8>().0);
    if decimal {
        for (chars, word) in pairs {
            *chars = unpack_decimal(word);
        }
    } else {
        for (chars, word) in pairs {
            *chars = unpack_any(word);
        }
    }
    true
}

/// The sixteen characters of eight packed bytes of decimal digits. Written lane by lane,
/// as the compiler turns it into a few vector instructions.
#[inline(always)]
fn unpack_decimal(word: &[u8; 8]) -> [u8; 16] {
    let mut chars = [0u8; 16];
    for (pair, &byte) in chars.as_chunks_mut::<2>().0.iter_mut().zip(word) {
        *pair = [byte >> 4 | b'0', byte & 0x0F | b'0'];
    }
    chars
}

/// The sixteen characters of eight packed bytes of any nibbles ([`NIBBLE_CHARS`]), in
/// arithmetic rather than a look-up, so that it vectorises like [`unpack_decimal`].
#[inline(always)]
fn unpack_any(word: &[u8; 8]) -> [u8; 16] {
    let mut nibbles = [0u8; 16];
    for (pair, &byte) in nibbles.as_chunks_mut::<2>().0.iter_mut().zip(word) {
        *pair = [byte >> 4, byte & 0x0F];
    }
    nibbles.map(|n| match n {
        0xD => b'=',
        _ => n + b'0' + if n > 9 { b'A' - b'0' - 10 } else { 0 },
    })
}

/// Fills `out` with the characters of the packed bytes, two a byte (a last odd character
/// is the high nibble of the byte after the pairs).
#[inline(always)]
fn unpack_pairs(packed: &[u8], out: &mut [u8]) {
    let (pairs, last) = out.as_chunks_mut::<2>();
    for (pair, &byte) in pairs.iter_mut().zip(packed) {
        *pair = BYTE_CHARS[usize::from(byte)];
    }
    if let ([last], Some(&byte)) = (last, packed.get(pairs.len())) {
        *last = NIBBLE_CHARS[usize::from(byte >> 4)];
    }
}

impl fmt::Display for Digits<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.iter() {
            fmt::Write::write_char(f, c as char)?;
        }
        Ok(())
    }
}

impl PartialEq for Digits<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod unpack_tests {
    use super::*;

    #[test]
    fn unpacking_in_bulk_gives_the_characters_get_gives() {
        let bytes = [0x12, 0x34, 0x5D, 0x78, 0x9A, 0xBC, 0xEF];
        for nibble_first in 0..4 {
            for len in 0..=(2 * bytes.len() - nibble_first) {
                let digits = Digits::packed(&bytes, nibble_first, len, false);
                let expected: Vec<u8> = (0..len).filter_map(|i| digits.get(i)).collect();
                assert_eq!(expected.len(), len);
                let mut out = [0u8; 16];
                assert_eq!(digits.unpack_into(&mut out), expected.as_slice());
                assert_eq!(digits.to_text().as_bytes(), expected.as_slice());
                // A buffer too small takes what fits.
                let mut short = [0u8; 3];
                assert_eq!(
                    digits.unpack_into(&mut short),
                    &expected[..len.min(3)],
                    "{nibble_first} {len}"
                );
            }
        }
        // Over the bytes of a whole message (a decoded field's digits are followed by the
        // rest of it), with room to unpack whole words.
        let message: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for nibble_first in 0..4 {
            for len in 0..=(2 * message.len() - nibble_first) {
                let digits = Digits::packed(&message, nibble_first, len, false);
                let expected: Vec<u8> = (0..len).filter_map(|i| digits.get(i)).collect();
                let mut out = [0u8; 96];
                assert_eq!(digits.unpack_into(&mut out), expected.as_slice(), "{len}");
                let mut exact = vec![0u8; len];
                assert_eq!(digits.unpack_into(&mut exact), expected.as_slice(), "{len}");
            }
        }
        let ascii = Digits::ascii(b"0123456789");
        let mut out = [0u8; 16];
        assert_eq!(ascii.unpack_into(&mut out), b"0123456789");
    }
}
