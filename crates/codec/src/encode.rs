//! Encoding: a builder that checks each value when it is set, so that writing the message
//! into a (reusable) buffer cannot fail.

use crate::chars::{all_ascii_digits, all_track_chars, is_track_char};
use crate::decode::field_numbers;
use crate::error::EncodeError;
use crate::spec::{
    BitmapEncoding, Charset, Content, FieldOp, NumberEncoding, Prefix, Profile, field_index,
};
use crate::{MESSAGE_BYTES_MAX, Mti};

/// A message under construction. Values borrow the caller's data and are in their logical
/// form: ASCII digits for `n`, digits and `=` for `z` track data, the characters for
/// `an`/`ans`, the bytes themselves for `b`.
///
/// Each value is checked and written in its wire form (length prefix and content) as it is
/// set, into bytes the builder keeps: encoding a message whose fields were set in
/// ascending order, each once, is then one copy. A builder can be [`cleared`] and used
/// again for the next message.
///
/// [`cleared`]: MessageBuilder::clear
#[derive(Clone, Debug)]
pub struct MessageBuilder<'v> {
    profile: &'static Profile,
    mti: Mti,
    /// Fields set, in the order they were first set: the first [`FIELDS_INLINE_MAX`] here
    /// (numbers, values and where their wire form is in `wire`), the others (ISO
    /// 8583:1987 with many secondary fields) in `spilled`. (A slot per number would be
    /// 129 slices: more to create and to move than the rest of building a message.)
    len: u8,
    numbers: [u8; FIELDS_INLINE_MAX],
    values: [&'v [u8]; FIELDS_INLINE_MAX],
    wire_starts: [u16; FIELDS_INLINE_MAX],
    spilled: Vec<Slot<'v>>,
    /// Whether `wire` holds exactly the fields, in ascending order: each first set after
    /// the one before, none replaced nor removed.
    wire_in_order: bool,
    last_number: u8,
    /// Bit `n` set when field `n` is set (bit 1 of word 0 is the secondary-bitmap flag and
    /// is worked out when encoding).
    present: [u64; 2],
    /// Bytes the fields take on the wire, length prefixes included.
    fields_bytes: usize,
    /// The wire form of each value set, in the order set (a replaced or removed field's
    /// bytes stay until the builder is cleared).
    wire: Wire,
}

/// A field set past the inline ones.
#[derive(Clone, Copy, Debug)]
struct Slot<'v> {
    number: u8,
    value: &'v [u8],
    wire_start: u16,
}

/// Fields a builder holds without allocating: more than a CUP POS message has in practice
/// (a sale's response has 22).
pub(crate) const FIELDS_INLINE_MAX: usize = 24;

/// Bytes of wire form a builder holds without allocating: a CUP POS sale takes about 110,
/// its response about 150.
pub(crate) const WIRE_INLINE_BYTES: usize = 256;

/// Bytes the MTI and the bitmaps can take at most; kept out of the field budget.
const MTI_AND_BITMAPS_BYTES_MAX: usize = 4 + 32;

/// The wire form of the values set: inline up to [`WIRE_INLINE_BYTES`], then on the heap.
#[derive(Clone, Debug)]
struct Wire {
    inline: [u8; WIRE_INLINE_BYTES],
    /// Bytes used, inline or on the heap.
    len: usize,
    /// Every byte, once they outgrow `inline`.
    heap: Vec<u8>,
}

/// Bytes of wire form a builder keeps at most, replaced values included: past it, it is
/// written again from the values set.
pub(crate) const WIRE_BYTES_MAX: usize = 2 * MESSAGE_BYTES_MAX;

impl Wire {
    const fn new() -> Wire {
        Wire {
            inline: [0; WIRE_INLINE_BYTES],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self.heap.is_empty() {
            true => self.inline.get(..self.len).unwrap_or_default(),
            false => self.heap.get(..self.len).unwrap_or_default(),
        }
    }

    /// Room for `n` more bytes, at the end: returns them and where they start.
    #[inline(always)]
    fn grow(&mut self, n: usize) -> (&mut [u8], usize) {
        let start = self.len;
        let end = start + n;
        self.len = end;
        if self.heap.is_empty() && end <= WIRE_INLINE_BYTES {
            return (self.inline.get_mut(start..end).unwrap_or_default(), start);
        }
        (self.grow_on_heap(start, end), start)
    }

    #[cold]
    #[inline(never)]
    fn grow_on_heap(&mut self, start: usize, end: usize) -> &mut [u8] {
        if self.heap.is_empty() {
            self.heap
                .extend_from_slice(self.inline.get(..start).unwrap_or_default());
        }
        self.heap.resize(end, 0);
        self.heap.get_mut(start..end).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.len = 0;
        self.heap.clear();
    }
}

impl<'v> MessageBuilder<'v> {
    pub fn new(profile: &'static Profile, mti: Mti) -> Self {
        MessageBuilder {
            profile,
            mti,
            len: 0,
            numbers: [0; FIELDS_INLINE_MAX],
            values: [&[]; FIELDS_INLINE_MAX],
            wire_starts: [0; FIELDS_INLINE_MAX],
            spilled: Vec::new(),
            wire_in_order: true,
            last_number: 0,
            present: [0; 2],
            fields_bytes: 0,
            wire: Wire::new(),
        }
    }

    /// Removes every field and sets the MTI, for building the next message in the same
    /// builder (what it allocated for a large message, it keeps). The values may borrow
    /// from anywhere that outlives the builder.
    pub fn clear(&mut self, mti: Mti) -> &mut Self {
        self.mti = mti;
        self.len = 0;
        self.spilled.clear();
        self.wire_in_order = true;
        self.last_number = 0;
        self.present = [0; 2];
        self.fields_bytes = 0;
        self.wire.clear();
        self
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
    #[inline]
    pub fn set(&mut self, number: u8, value: &'v [u8]) -> Result<&mut Self, EncodeError> {
        let op = self.profile.op(number);
        if op.content == Content::Undefined {
            return Err(undefined(self.profile, number));
        }
        if !value_fits(op, value) {
            return Err(value_error(self.profile, op, number, value));
        }
        let (word, bit) = bit_of(number);
        let wire_bytes = op.value_wire_bytes(value.len());
        if self.present[word] & bit != 0 {
            // Set before (rare): its value is replaced.
            return self.replace(number, value);
        }
        let fields_bytes = self.fields_bytes + wire_bytes;
        if fields_bytes + MTI_AND_BITMAPS_BYTES_MAX > MESSAGE_BYTES_MAX {
            return Err(too_large());
        }
        self.fields_bytes = fields_bytes;
        let (dst, wire_start) = self.wire.grow(wire_bytes);
        write_value(op, value, dst);
        self.push(number, value, wire_start as u16);
        self.present[word] |= bit;
        Ok(self)
    }

    /// [`MessageBuilder::set`] of a field set before.
    #[cold]
    #[inline(never)]
    fn replace(&mut self, number: u8, value: &'v [u8]) -> Result<&mut Self, EncodeError> {
        let op = self.profile.op(number);
        let Some(at) = self.index(number) else {
            return Ok(self);
        };
        let previous = op.value_wire_bytes(self.entry(at).value.len());
        let fields_bytes = self.fields_bytes - previous + op.value_wire_bytes(value.len());
        if fields_bytes + MTI_AND_BITMAPS_BYTES_MAX > MESSAGE_BYTES_MAX {
            return Err(too_large());
        }
        self.fields_bytes = fields_bytes;
        self.wire_in_order = false;
        self.put(at, number, value, 0);
        self.rewrite_wire_if_large();
        let (dst, wire_start) = self.wire.grow(op.value_wire_bytes(value.len()));
        write_value(op, value, dst);
        self.put(at, number, value, wire_start as u16);
        Ok(self)
    }

    /// Writes the wire form again from the values when replaced values have made it large,
    /// so that it stays bounded however often fields are replaced.
    fn rewrite_wire_if_large(&mut self) {
        if self.wire.len + MESSAGE_BYTES_MAX <= WIRE_BYTES_MAX {
            return;
        }
        self.wire.clear();
        for at in 0..usize::from(self.len) {
            let Slot { number, value, .. } = self.entry(at);
            let op = self.profile.op(number);
            let (dst, wire_start) = self.wire.grow(op.value_wire_bytes(value.len()));
            write_value(op, value, dst);
            self.put(at, number, value, wire_start as u16);
        }
    }

    /// Where field `number` is among the fields set.
    fn index(&self, number: u8) -> Option<usize> {
        let inline = &self.numbers[..usize::from(self.len).min(FIELDS_INLINE_MAX)];
        match inline.iter().position(|&n| n == number) {
            Some(at) => Some(at),
            None => Some(FIELDS_INLINE_MAX + self.spilled.iter().position(|s| s.number == number)?),
        }
    }

    /// The field at index `at` among the fields set.
    #[inline(always)]
    fn entry(&self, at: usize) -> Slot<'v> {
        match (
            self.numbers.get(at),
            self.values.get(at),
            self.wire_starts.get(at),
        ) {
            (Some(&number), Some(&value), Some(&wire_start)) => Slot {
                number,
                value,
                wire_start,
            },
            _ => self
                .spilled
                .get(at - FIELDS_INLINE_MAX)
                .copied()
                .unwrap_or(Slot {
                    number: 0,
                    value: &[],
                    wire_start: 0,
                }),
        }
    }

    /// Puts a field at index `at` (replacing what is there).
    fn put(&mut self, at: usize, number: u8, value: &'v [u8], wire_start: u16) {
        match (
            self.numbers.get_mut(at),
            self.values.get_mut(at),
            self.wire_starts.get_mut(at),
        ) {
            (Some(n), Some(v), Some(w)) => (*n, *v, *w) = (number, value, wire_start),
            _ => {
                if let Some(slot) = self.spilled.get_mut(at - FIELDS_INLINE_MAX) {
                    *slot = Slot {
                        number,
                        value,
                        wire_start,
                    };
                }
            }
        }
    }

    /// Adds a field not set before.
    #[inline(always)]
    fn push(&mut self, number: u8, value: &'v [u8], wire_start: u16) {
        let at = usize::from(self.len);
        if let (Some(n), Some(v), Some(w)) = (
            self.numbers.get_mut(at),
            self.values.get_mut(at),
            self.wire_starts.get_mut(at),
        ) {
            (*n, *v, *w) = (number, value, wire_start);
        } else {
            self.spilled.push(Slot {
                number,
                value,
                wire_start,
            });
        }
        self.wire_in_order &= self.last_number < number;
        self.last_number = number;
        // At most 127 fields (2..=128): the count fits a byte.
        self.len += 1;
    }

    /// Sets a field from text.
    pub fn set_str(&mut self, number: u8, value: &'v str) -> Result<&mut Self, EncodeError> {
        self.set(number, value.as_bytes())
    }

    /// Removes field `number`.
    pub fn remove(&mut self, number: u8) -> &mut Self {
        if number.wrapping_sub(1) >= 128 {
            return self;
        }
        let Some(at) = self.index(number) else {
            return self;
        };
        let op = self.profile.op(number);
        self.fields_bytes -= op.value_wire_bytes(self.entry(at).value.len());
        // The last field moves into the place of the one removed.
        let last = usize::from(self.len) - 1;
        let moved = self.entry(last);
        self.put(at, moved.number, moved.value, moved.wire_start);
        if last >= FIELDS_INLINE_MAX {
            self.spilled.pop();
        }
        self.len -= 1;
        self.wire_in_order = false;
        let (word, bit) = bit_of(number);
        self.present[word] &= !bit;
        self
    }

    /// The value of field `number`, if set.
    pub fn get(&self, number: u8) -> Option<&'v [u8]> {
        let (word, bit) = bit_of(number);
        let set = number.wrapping_sub(1) < 128 && self.present[word] & bit != 0;
        set.then(|| self.index(number))?
            .map(|at| self.entry(at).value)
    }

    /// Present fields and their values, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'v [u8])> + '_ {
        self.slots().map(|slot| (slot.number, slot.value))
    }

    /// Present fields, ascending.
    fn slots(&self) -> impl Iterator<Item = Slot<'v>> + '_ {
        // Where each field is, by number (`field_index`): worked out here rather than kept
        // up to date by every `set`.
        let mut order = [0u8; 128];
        for at in 0..usize::from(self.len) {
            order[field_index(self.entry(at).number)] = at as u8;
        }
        field_numbers(self.present)
            .map(move |number| self.entry(usize::from(order[field_index(number)])))
    }

    fn bitmap(&self) -> [u64; 2] {
        let mut bitmap = self.present;
        if bitmap[1] != 0 {
            bitmap[0] |= 1 << 63;
        }
        bitmap
    }

    /// Bytes of wire form the builder keeps, replaced values included (for tests).
    #[cfg(test)]
    pub(crate) fn wire_bytes(&self) -> usize {
        self.wire.len
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
        let encoded = self.encoded_len();
        debug_assert!(encoded <= MESSAGE_BYTES_MAX);
        out.resize(start + encoded, 0);
        let buf = &mut out[start..];
        let mut at = write_head(profile, self.mti, self.bitmap(), buf);
        let wire = self.wire.bytes();
        if self.wire_in_order {
            // The fields' wire form, in the order of the bitmap: one copy.
            if let Some(dst) = buf.get_mut(at..at + wire.len()) {
                dst.copy_from_slice(wire);
            }
            at += wire.len();
        } else {
            for slot in self.slots() {
                let op = profile.op(slot.number);
                let wire_bytes = op.value_wire_bytes(slot.value.len());
                let from = usize::from(slot.wire_start);
                if let (Some(dst), Some(src)) = (
                    buf.get_mut(at..at + wire_bytes),
                    wire.get(from..from + wire_bytes),
                ) {
                    dst.copy_from_slice(src);
                }
                at += wire_bytes;
            }
        }
        // The size worked out when values were set is the size written.
        assert_eq!(at, encoded);
    }

    /// Encodes into a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

#[cold]
#[inline(never)]
fn too_large() -> EncodeError {
    EncodeError::MessageTooLarge {
        len_max: MESSAGE_BYTES_MAX,
    }
}

#[cold]
#[inline(never)]
fn undefined(profile: &Profile, field: u8) -> EncodeError {
    EncodeError::UndefinedField {
        field,
        profile: profile.name,
    }
}

/// The bitmap word and bit of field `number` (1..=128).
#[inline(always)]
fn bit_of(number: u8) -> (usize, u64) {
    let i = number.wrapping_sub(1);
    (usize::from(i >> 6 & 1), (1 << 63) >> (i & 63))
}

/// Whether a value fits its field: its length and its characters.
#[inline(always)]
fn value_fits(op: FieldOp, value: &[u8]) -> bool {
    let len_max = usize::from(op.len_max);
    let len_ok = if op.prefix == Prefix::None {
        value.len() == len_max
    } else {
        value.len() <= len_max
    };
    len_ok
        && match op.content {
            Content::PackedDigits | Content::PackedDigitsPadFirst | Content::AsciiDigits => {
                all_ascii_digits(value)
            }
            Content::PackedTrack | Content::AsciiTrack => all_track_chars(value),
            Content::Text | Content::Bytes | Content::Hex | Content::Undefined => true,
        }
}

/// Why [`value_fits`] refused a value.
#[cold]
#[inline(never)]
fn value_error(profile: &Profile, op: FieldOp, field: u8, value: &[u8]) -> EncodeError {
    let (len, got) = (usize::from(op.len_max), value.len());
    if op.prefix == Prefix::None && got != len {
        return EncodeError::WrongLength { field, len, got };
    }
    if got > len {
        return EncodeError::TooLong {
            field,
            len_max: len,
            got,
        };
    }
    let charset = profile.field(field).map_or(Charset::B, |spec| spec.charset);
    let position = match charset {
        Charset::N => value.iter().position(|b| !b.is_ascii_digit()),
        Charset::Z => value.iter().position(|&b| !is_track_char(b)),
        Charset::An | Charset::Ans | Charset::B => None,
    }
    .unwrap_or(0);
    EncodeError::BadCharacter {
        field,
        charset: charset.as_str(),
        what: char::from(value.get(position).copied().unwrap_or(0)),
        position,
    }
}

/// Writes the MTI and the bitmaps at the start of `buf`; returns the bytes written.
fn write_head(profile: &Profile, mti: Mti, bitmap: [u64; 2], buf: &mut [u8]) -> usize {
    let mut at = match (profile.mti, buf.first_chunk_mut::<4>()) {
        (NumberEncoding::Bcd, Some(head)) => {
            let m = mti.0.map(|d| d.wrapping_sub(b'0') & 0x0F);
            head[..2].copy_from_slice(&[m[0] << 4 | m[1], m[2] << 4 | m[3]]);
            2
        }
        (NumberEncoding::Ascii, Some(head)) => {
            *head = mti.0;
            4
        }
        (_, None) => return 0,
    };
    for word in [bitmap[0], bitmap[1]]
        .into_iter()
        .take(1 + usize::from(bitmap[1] != 0))
    {
        let bytes = word.to_be_bytes();
        at += match (profile.bitmap, buf.get_mut(at..)) {
            (BitmapEncoding::Binary, Some(dst)) => copy_small(&bytes, dst),
            (BitmapEncoding::HexAscii, Some(dst)) => write_hex(&bytes, dst),
            (_, None) => 0,
        };
    }
    at
}

/// Writes a checked value's wire form (prefix and content) into `dst`, which is
/// `op.value_wire_bytes(value.len())` long.
#[inline(always)]
fn write_value(op: FieldOp, value: &[u8], dst: &mut [u8]) {
    let content = match op.prefix {
        Prefix::None => dst,
        prefix => write_prefix(prefix, op.content.units(value.len()), dst),
    };
    match op.content {
        Content::PackedDigits | Content::PackedTrack => pack_digits(value, content),
        Content::PackedDigitsPadFirst => {
            // The pad nibble first: the first digit alone in the first byte.
            if let (Some((&first, digits)), Some((byte, content))) =
                (value.split_first(), content.split_first_mut())
            {
                *byte = nibbles(u64::from(first)) as u8;
                pack_digits(digits, content);
            }
        }
        Content::Hex => {
            write_hex(value, content);
        }
        Content::AsciiDigits | Content::AsciiTrack | Content::Text | Content::Bytes => {
            copy_small(value, content);
        }
        Content::Undefined => {}
    }
}

/// Writes the length prefix of a value of `units` (at most 999: the profile tables are
/// checked for it) at the start of `dst`; returns the rest.
#[inline(always)]
fn write_prefix(prefix: Prefix, units: usize, dst: &mut [u8]) -> &mut [u8] {
    // units / 100 for units < 1000, without a division.
    let hundreds = (units.min(999) * 41) >> 12;
    let rest = (units - hundreds * 100).min(99);
    let hundreds = hundreds as u8;
    match prefix {
        Prefix::None => dst,
        Prefix::Bcd1 => put_prefix(dst, [BCD_BYTES[rest]]),
        Prefix::Bcd2 => put_prefix(dst, [hundreds, BCD_BYTES[rest]]),
        Prefix::Ascii2 => put_prefix(dst, DECIMAL_PAIRS[rest]),
        Prefix::Ascii3 => {
            let [tens, ones] = DECIMAL_PAIRS[rest];
            put_prefix(dst, [b'0' + hundreds, tens, ones])
        }
    }
}

/// Writes a length prefix at the start of `dst`; returns the rest.
#[inline(always)]
fn put_prefix<const N: usize>(dst: &mut [u8], prefix: [u8; N]) -> &mut [u8] {
    match dst.split_first_chunk_mut::<N>() {
        Some((head, rest)) => {
            *head = prefix;
            rest
        }
        None => &mut [],
    }
}

/// The packed BCD byte of 0..=99.
static BCD_BYTES: [u8; 100] = {
    let mut table = [0u8; 100];
    let mut i = 0;
    while i < 100 {
        table[i] = (((i / 10) << 4) | (i % 10)) as u8;
        i += 1;
    }
    table
};

/// The two ASCII digits of 0..=99.
static DECIMAL_PAIRS: [[u8; 2]; 100] = {
    let mut table = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        table[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    table
};

/// Copies `src` to the start of `dst` (as much as fits) and returns the bytes copied.
/// Values are short: up to sixteen bytes move as two overlapping words, without a call to
/// `memcpy`.
#[inline(always)]
fn copy_small(src: &[u8], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    match n {
        0..=3 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        4..=7 => copy_ends::<4>(src, dst),
        8..=16 => copy_ends::<8>(src, dst),
        _ => dst.copy_from_slice(src),
    }
    n
}

/// Copies the first and the last `N` bytes of `src` (at least `N` long) to `dst` (as long).
#[inline(always)]
fn copy_ends<const N: usize>(src: &[u8], dst: &mut [u8]) {
    if let (Some(s), Some(d)) = (src.first_chunk::<N>(), dst.first_chunk_mut::<N>()) {
        *d = *s;
    }
    if let (Some(s), Some(d)) = (src.last_chunk::<N>(), dst.last_chunk_mut::<N>()) {
        *d = *s;
    }
}

/// Writes `bytes` as uppercase hexadecimal into `dst`; returns the characters written.
fn write_hex(bytes: &[u8], dst: &mut [u8]) -> usize {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let (pairs, _) = dst.as_chunks_mut::<2>();
    for (pair, &b) in pairs.iter_mut().zip(bytes) {
        *pair = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
    }
    2 * pairs.len().min(bytes.len())
}

/// The nibbles of (up to eight) checked `n`/`z` characters, one a lane: digits and `=`
/// (0x3D) carry it in their low four bits; the hex letters of encrypted track data (bit
/// 0x40 set) are nine more than theirs.
#[inline(always)]
fn nibbles(chars: u64) -> u64 {
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    (chars & LOW) + ((chars >> 6) & ONES) * 9
}

/// Packs eight characters (little-endian lanes) into four bytes, two nibbles a byte.
#[inline(always)]
fn pack8(chars: [u8; 8]) -> [u8; 4] {
    let n = nibbles(u64::from_le_bytes(chars));
    // Lane i: nibble i high, nibble i + 1 low; the even lanes are the bytes.
    let pairs = (n << 4 | n >> 8) & 0x00FF_00FF_00FF_00FF;
    let pairs = (pairs | pairs >> 8) & 0x0000_FFFF_0000_FFFF;
    ((pairs | pairs >> 16) as u32).to_le_bytes()
}

/// Packs four characters into two bytes.
#[inline(always)]
fn pack4(chars: [u8; 4]) -> [u8; 2] {
    let n = nibbles(u64::from(u32::from_le_bytes(chars)));
    let pairs = (n << 4 | n >> 8) & 0x00FF_00FF;
    ((pairs | pairs >> 8) as u16).to_le_bytes()
}

/// Packs checked `n`/`z` characters into `dst` (`digits.len().div_ceil(2)` bytes), two a
/// byte, an odd last one in the high nibble. Eight (or four) at a time, the last ones
/// overlapping those before (they write the same bytes again).
#[inline(always)]
fn pack_digits(digits: &[u8], dst: &mut [u8]) {
    let whole = digits.len() / 2 * 2;
    let Some((paired, odd)) = digits.split_at_checked(whole) else {
        return;
    };
    let dst_paired = dst.get_mut(..whole / 2).unwrap_or_default();
    match whole {
        0 => {}
        2 => {
            if let (Some(d), Some(&pair)) = (dst_paired.first_mut(), paired.first_chunk::<2>()) {
                let n = nibbles(u64::from(u16::from_le_bytes(pair)));
                *d = (n << 4 | n >> 8) as u8;
            }
        }
        4 | 6 => {
            if let (Some(d), Some(&s)) = (dst_paired.first_chunk_mut(), paired.first_chunk()) {
                *d = pack4(s);
            }
            if let (Some(d), Some(&s)) = (dst_paired.last_chunk_mut(), paired.last_chunk()) {
                *d = pack4(s);
            }
        }
        _ => {
            let (dst_chunks, _) = dst_paired.as_chunks_mut::<4>();
            for (d, s) in dst_chunks.iter_mut().zip(paired.as_chunks::<8>().0) {
                *d = pack8(*s);
            }
            if let (Some(d), Some(&s)) = (dst_paired.last_chunk_mut(), paired.last_chunk()) {
                *d = pack8(s);
            }
        }
    }
    if let ([last], Some(d)) = (odd, dst.last_mut()) {
        *d = (nibbles(u64::from(*last)) << 4) as u8;
    }
}
