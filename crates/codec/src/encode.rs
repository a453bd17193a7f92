//! Encoding: a builder that checks each value when it is set, so that writing the message
//! into a (reusable) buffer cannot fail.

use crate::error::EncodeError;
use crate::spec::{
    BinaryEncoding, BitmapEncoding, Charset, Content, FieldOp, FieldSpec, LengthKind,
    NumberEncoding, Prefix, Profile,
};
use crate::{MESSAGE_BYTES_MAX, Mti};

/// A message under construction. Values borrow the caller's data and are in their logical
/// form: ASCII digits for `n`, digits and `=` for `z` track data, the characters for
/// `an`/`ans`, the bytes themselves for `b`.
#[derive(Clone, Debug)]
pub struct MessageBuilder<'v> {
    profile: &'static Profile,
    mti: Mti,
    /// The fields set, ascending by number: `inline_len` of them in `inline_numbers` and
    /// `inline_values` — or, once more than [`FIELDS_INLINE_MAX`] are set, all of them in
    /// `spilled`. (129 slots, one per number, cost more to create and to move than the rest
    /// of building a message.)
    inline_len: usize,
    inline_numbers: [u8; FIELDS_INLINE_MAX],
    inline_values: [&'v [u8]; FIELDS_INLINE_MAX],
    spilled: Vec<(u8, &'v [u8])>,
    /// Bit `n` set when field `n` is set (bit 1 of word 0 is the secondary-bitmap flag and
    /// is worked out when encoding).
    present: [u64; 2],
    /// Bytes the fields take on the wire, length prefixes included.
    fields_bytes: usize,
}

/// Fields a builder holds without allocating: more than a CUP POS message has in practice;
/// beyond them (ISO 8583:1987 with many secondary fields) they move to the heap.
pub const FIELDS_INLINE_MAX: usize = 32;

/// Bytes the MTI and the bitmaps can take at most; kept out of the field budget.
const MTI_AND_BITMAPS_BYTES_MAX: usize = 4 + 32;

impl<'v> MessageBuilder<'v> {
    pub fn new(profile: &'static Profile, mti: Mti) -> Self {
        MessageBuilder {
            profile,
            mti,
            inline_len: 0,
            inline_numbers: [0; FIELDS_INLINE_MAX],
            inline_values: [&[]; FIELDS_INLINE_MAX],
            spilled: Vec::new(),
            present: [0; 2],
            fields_bytes: 0,
        }
    }

    pub fn profile(&self) -> &'static Profile {
        self.profile
    }

    pub fn mti(&self) -> Mti {
        self.mti
    }

    pub fn set_mti(&mut self, mti: Mti) -> &mut Self {
        self.mti = mti;
        self
    }

    /// Sets field `number` after checking the value against the field's spec.
    pub fn set(&mut self, number: u8, value: &'v [u8]) -> Result<&mut Self, EncodeError> {
        let profile = self.profile;
        let spec = profile
            .field(number)
            .filter(|s| s.number <= profile.field_number_max())
            .ok_or(EncodeError::UndefinedField {
                field: number,
                profile: profile.name,
            })?;
        check_value(spec, value)?;
        let bytes = wire_bytes(profile, spec, value.len());
        let at = self.position(number);
        let previous = at
            .ok()
            .map_or(0, |i| wire_bytes(profile, spec, self.value_at(i).len()));
        let fields_bytes = self.fields_bytes - previous + bytes;
        if fields_bytes + MTI_AND_BITMAPS_BYTES_MAX > MESSAGE_BYTES_MAX {
            return Err(EncodeError::MessageTooLarge {
                len_max: MESSAGE_BYTES_MAX,
            });
        }
        self.fields_bytes = fields_bytes;
        self.put(at, number, value);
        let (word, bit) = bit_of(number);
        self.present[word] |= bit;
        Ok(self)
    }

    /// Where field `number` is among the fields set (`Ok`), or where it would go (`Err`).
    fn position(&self, number: u8) -> Result<usize, usize> {
        if self.spilled.is_empty() {
            let numbers = &self.inline_numbers[..self.inline_len];
            // Fields are usually set in ascending order: then the answer is the end.
            match numbers.last() {
                Some(&last) if last < number => Err(numbers.len()),
                None => Err(0),
                Some(_) => numbers.binary_search(&number),
            }
        } else {
            self.spilled.binary_search_by_key(&number, |&(n, _)| n)
        }
    }

    /// The value of the field at `at` ([`MessageBuilder::position`]).
    fn value_at(&self, at: usize) -> &'v [u8] {
        if self.spilled.is_empty() {
            self.inline_values[at]
        } else {
            self.spilled[at].1
        }
    }

    /// Stores a value where [`MessageBuilder::position`] said, keeping the fields in
    /// ascending order.
    fn put(&mut self, position: Result<usize, usize>, number: u8, value: &'v [u8]) {
        match (position, self.spilled.is_empty()) {
            (Ok(at), true) => self.inline_values[at] = value,
            (Ok(at), false) => self.spilled[at].1 = value,
            (Err(at), true) if self.inline_len < FIELDS_INLINE_MAX => {
                let end = self.inline_len + 1;
                // Appending (the usual order) moves nothing.
                if at + 1 < end {
                    self.inline_numbers[at..end].rotate_right(1);
                    self.inline_values[at..end].rotate_right(1);
                }
                self.inline_numbers[at] = number;
                self.inline_values[at] = value;
                self.inline_len = end;
            }
            (Err(at), true) => {
                self.spilled = self.entries().collect();
                self.inline_len = 0;
                self.spilled.insert(at, (number, value));
            }
            (Err(at), false) => self.spilled.insert(at, (number, value)),
        }
        assert!(self.inline_len <= FIELDS_INLINE_MAX);
    }

    /// Sets a field from text.
    pub fn set_str(&mut self, number: u8, value: &'v str) -> Result<&mut Self, EncodeError> {
        self.set(number, value.as_bytes())
    }

    /// Removes field `number`.
    pub fn remove(&mut self, number: u8) -> &mut Self {
        let (Some(spec), Ok(at)) = (self.profile.field(number), self.position(number)) else {
            return self;
        };
        let value = if self.spilled.is_empty() {
            let value = self.inline_values[at];
            self.inline_numbers[at..self.inline_len].rotate_left(1);
            self.inline_values[at..self.inline_len].rotate_left(1);
            self.inline_len -= 1;
            value
        } else {
            self.spilled.remove(at).1
        };
        self.fields_bytes -= wire_bytes(self.profile, spec, value.len());
        let (word, bit) = bit_of(number);
        self.present[word] &= !bit;
        self
    }

    /// The value of field `number`, if set.
    pub fn get(&self, number: u8) -> Option<&'v [u8]> {
        self.position(number).ok().map(|at| self.value_at(at))
    }

    /// Present fields and their values, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'v [u8])> + '_ {
        self.entries()
    }

    fn entries(&self) -> impl Iterator<Item = (u8, &'v [u8])> + '_ {
        let inline = self.inline_numbers[..self.inline_len]
            .iter()
            .copied()
            .zip(self.inline_values[..self.inline_len].iter().copied());
        inline.chain(self.spilled.iter().copied())
    }

    fn bitmap(&self) -> [u64; 2] {
        let mut bitmap = self.present;
        if bitmap[1] != 0 {
            bitmap[0] |= 1 << 63;
        }
        bitmap
    }

    /// Bytes the encoded message takes.
    pub fn encoded_len(&self) -> usize {
        let mti = match self.profile.mti {
            NumberEncoding::Bcd => 2,
            NumberEncoding::Ascii => 4,
        };
        let bitmap = match self.profile.bitmap {
            BitmapEncoding::Binary => 8,
            BitmapEncoding::HexAscii => 16,
        };
        let bitmaps = if self.present[1] != 0 { 2 } else { 1 };
        mti + bitmap * bitmaps + self.fields_bytes
    }

    /// Appends the message (MTI, bitmaps, fields) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let profile = self.profile;
        let start = out.len();
        let len = self.encoded_len();
        debug_assert!(len <= MESSAGE_BYTES_MAX);
        out.resize(start + len, 0);
        let mut w = Writer {
            buf: &mut out[start..],
            at: 0,
        };
        match profile.mti {
            NumberEncoding::Bcd => {
                let m = self.mti.0.map(|d| d - b'0');
                w.put(&[m[0] << 4 | m[1], m[2] << 4 | m[3]]);
            }
            NumberEncoding::Ascii => w.put(&self.mti.0),
        }
        let bitmap = self.bitmap();
        write_bitmap(profile, bitmap[0], &mut w);
        if bitmap[1] != 0 {
            write_bitmap(profile, bitmap[1], &mut w);
        }
        // Ascending by number: the order of the bitmap.
        for (number, value) in self.entries() {
            write_field(profile.ops[number as usize], value, &mut w);
        }
        // The size worked out when values were set is the size written.
        assert_eq!(w.at, len);
    }

    /// Encodes into a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

/// The bitmap word and bit of field `number` (1..=128).
fn bit_of(number: u8) -> (usize, u64) {
    let n = u32::from(number);
    if n <= 64 {
        (0, 1 << (64 - n))
    } else {
        (1, 1 << (128 - n))
    }
}

fn check_value(spec: &FieldSpec, value: &[u8]) -> Result<(), EncodeError> {
    let field = spec.number;
    let len_max = spec.len_max as usize;
    match spec.length {
        LengthKind::Fixed if value.len() != len_max => {
            return Err(EncodeError::WrongLength {
                field,
                len: len_max,
                got: value.len(),
            });
        }
        LengthKind::LlVar | LengthKind::LllVar if value.len() > len_max => {
            return Err(EncodeError::TooLong {
                field,
                len_max,
                got: value.len(),
            });
        }
        _ => {}
    }
    // One loop per charset, with the test inlined (a function pointer called per byte was
    // most of the builder's time), and without an early exit, so that it vectorises; the
    // position of a bad byte is looked for only when there is one.
    let bad = match spec.charset {
        Charset::N if !all_ascii_digits(value) => value.iter().position(|b| !b.is_ascii_digit()),
        Charset::Z if !value.iter().fold(true, |ok, &b| ok & is_track_char(b)) => {
            value.iter().position(|&b| !is_track_char(b))
        }
        Charset::N | Charset::Z | Charset::An | Charset::Ans | Charset::B => None,
    };
    match bad {
        None => Ok(()),
        Some(position) => Err(EncodeError::BadCharacter {
            field,
            charset: spec.charset.as_str(),
            what: value[position] as char,
            position,
        }),
    }
}

/// Whether every byte is an ASCII digit, eight bytes at a time: a lane `b` is a digit when
/// its high bit is clear, `(b | 0x80) - 0x30` keeps the high bit (b ≥ 0x30) and `b + 0x46`
/// does not reach it (b ≤ 0x39); lanes cannot carry into each other.
fn all_ascii_digits(value: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let (words, rest) = value.as_chunks::<8>();
    let words_ok = words.iter().fold(true, |ok, word| {
        let w = u64::from_le_bytes(*word);
        let at_least_0 = (w | HIGH).wrapping_sub(0x3030_3030_3030_3030) & HIGH == HIGH;
        let at_most_9 = w.wrapping_add(0x4646_4646_4646_4646) & HIGH == 0;
        ok & (w & HIGH == 0) & at_least_0 & at_most_9
    });
    words_ok & rest.iter().fold(true, |ok, b| ok & b.is_ascii_digit())
}

/// A character of `z` (track) data: a digit, the separator `=`, or a hex letter of
/// encrypted track data.
#[inline]
fn is_track_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'=' || (b'A'..=b'F').contains(&b)
}

/// Bytes a value of `len` logical units takes on the wire, prefix included.
fn wire_bytes(profile: &Profile, spec: &FieldSpec, len: usize) -> usize {
    let hex_binary = spec.charset == Charset::B && profile.binary == BinaryEncoding::HexAscii;
    let packed = spec.is_digits() && profile.numbers == NumberEncoding::Bcd;
    let prefix = match (spec.length, profile.numbers) {
        (LengthKind::Fixed, _) => 0,
        (LengthKind::LlVar, NumberEncoding::Bcd) => 1,
        (LengthKind::LllVar, NumberEncoding::Bcd) => 2,
        (LengthKind::LlVar, NumberEncoding::Ascii) => 2,
        (LengthKind::LllVar, NumberEncoding::Ascii) => 3,
    };
    let content = if packed {
        len.div_ceil(2)
    } else if hex_binary {
        len * 2
    } else {
        len
    };
    prefix + content
}

/// Writes into a buffer sized beforehand by [`MessageBuilder::encoded_len`].
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.buf[self.at] = b;
        self.at += 1;
    }

    /// The next `n` bytes, to fill in place.
    #[inline]
    fn take(&mut self, n: usize) -> &mut [u8] {
        let at = self.at;
        self.at += n;
        &mut self.buf[at..at + n]
    }
}

fn write_bitmap(profile: &Profile, word: u64, w: &mut Writer<'_>) {
    match profile.bitmap {
        BitmapEncoding::Binary => w.put(&word.to_be_bytes()),
        BitmapEncoding::HexAscii => {
            for (pair, b) in w.take(16).chunks_exact_mut(2).zip(word.to_be_bytes()) {
                pair.copy_from_slice(&hex_pair(b));
            }
        }
    }
}

#[inline]
fn hex_pair(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
}

/// The nibble of a checked `n`/`z` character: digits and `=` (0x3D) carry it in their low
/// four bits; the hex letters of encrypted track data are the rare case.
#[inline]
fn nibble(c: u8) -> u8 {
    if c >= b'A' { c - b'A' + 10 } else { c & 0x0F }
}

#[inline(always)]
fn write_field(op: FieldOp, value: &[u8], w: &mut Writer<'_>) {
    let prefix_len = if op.content == Content::Hex {
        value.len() * 2
    } else {
        value.len()
    };
    match op.prefix {
        Prefix::None => {}
        Prefix::Bcd1 => w.byte((((prefix_len / 10) << 4) | (prefix_len % 10)) as u8),
        Prefix::Bcd2 => w.put(&[
            (prefix_len / 100) as u8,
            ((((prefix_len / 10) % 10) << 4) | (prefix_len % 10)) as u8,
        ]),
        Prefix::Ascii2 => w.put(&[
            b'0' + (prefix_len / 10) as u8,
            b'0' + (prefix_len % 10) as u8,
        ]),
        Prefix::Ascii3 => w.put(&[
            b'0' + (prefix_len / 100) as u8,
            b'0' + ((prefix_len / 10) % 10) as u8,
            b'0' + (prefix_len % 10) as u8,
        ]),
    }
    match op.content {
        Content::PackedDigits | Content::PackedDigitsPadFirst | Content::PackedTrack => {
            let mut digits = value;
            if op.content == Content::PackedDigitsPadFirst {
                w.byte(nibble(value[0]));
                digits = &value[1..];
            }
            let dst = w.take(digits.len().div_ceil(2));
            let (pairs, odd) = digits.as_chunks::<2>();
            if op.content == Content::PackedTrack {
                for (d, [high, low]) in dst.iter_mut().zip(pairs) {
                    *d = nibble(*high) << 4 | nibble(*low);
                }
            } else {
                // Checked digits: the low four bits are the value.
                for (d, [high, low]) in dst.iter_mut().zip(pairs) {
                    *d = (high & 0x0F) << 4 | (low & 0x0F);
                }
            }
            if let ([last], Some(d)) = (odd, dst.last_mut()) {
                *d = nibble(*last) << 4;
            }
        }
        Content::Hex => {
            for (pair, &b) in w.take(value.len() * 2).chunks_exact_mut(2).zip(value) {
                pair.copy_from_slice(&hex_pair(b));
            }
        }
        Content::AsciiDigits | Content::AsciiTrack | Content::Text | Content::Bytes => w.put(value),
        Content::Undefined => unreachable!("values are only set on defined fields"),
    }
}
