//! Zero-copy, allocation-free, bounded decoding of one message (MTI onward).

use crate::chars::{all_ascii_digits, all_track_chars, is_track_char};
use crate::digits::Digits;
use crate::error::{DecodeError, DecodeErrorKind as Kind, Part};
use crate::spec::{
    BitmapEncoding, Content, FieldOp, FieldSpec, NumberEncoding, Prefix, Profile, field_index,
};
use crate::{MESSAGE_BYTES_MAX, Mti};

/// A decoded message. Field values borrow the input; nothing is allocated.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    profile: &'static Profile,
    input: &'a [u8],
    mti: Mti,
    /// Bit `n` (1..=128) set when field `n` is present; bit 1 is the secondary bitmap.
    bitmap: [u64; 2],
    /// Where the content of each of the first [`STARTS_MAX`] present fields starts in
    /// `input`, in order; the fields after them are found from the last of these. A
    /// field's length is read again from its prefix when it is asked for. (A message is
    /// returned by value and moved: a start for each of the 128 numbers made it 300
    /// bytes, and the copy of bytes just written stalls.)
    starts: [u16; STARTS_MAX],
}

/// Fields whose start a message keeps: more than a CUP POS message has; the fields past
/// them (ISO 8583:1987 with many secondary fields) are found by walking from the last.
const STARTS_MAX: usize = 24;

/// One field of a decoded message.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    spec: &'static FieldSpec,
    content: Content,
    wire: &'a [u8],
    /// The message from the content on (digits are unpacked a word at a time).
    rest: &'a [u8],
    /// The length in the prefix's units (characters for hexadecimal binary).
    units: usize,
}

/// A field value in its logical form.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// `n` and `z` fields.
    Digits(Digits<'a>),
    /// `an` and `ans` fields: the bytes as sent.
    Text(&'a [u8]),
    /// `b` fields sent as raw bytes.
    Bytes(&'a [u8]),
    /// `b` fields sent as hexadecimal ASCII (the bytes are the decoded hex).
    Hex(&'a [u8]),
}

/// How a decode reports a failure: the fast pass carries nothing (so the happy path stays
/// small), and only when it fails does a detailed pass run to name the part, the offset and
/// the reason. Both passes run the same code.
trait Report {
    type Error;
    fn error(part: Part, offset: usize, kind: Kind) -> Self::Error;
}

/// The fast pass.
struct Quiet;

impl Report for Quiet {
    type Error = ();
    #[inline(always)]
    fn error(_: Part, _: usize, _: Kind) {}
}

/// The detailed pass.
struct Detailed;

impl Report for Detailed {
    type Error = DecodeError;
    #[inline(never)]
    #[cold]
    fn error(part: Part, offset: usize, kind: Kind) -> DecodeError {
        DecodeError::new(part, offset, kind)
    }
}

struct Cursor<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn take<R: Report>(&mut self, n: usize, part: Part) -> Result<&'a [u8], R::Error> {
        let bytes = self.input.get(self.at..).and_then(|rest| rest.get(..n));
        let Some(bytes) = bytes else {
            let available = self.input.len().saturating_sub(self.at);
            return Err(R::error(
                part,
                self.at,
                Kind::Truncated {
                    needed: n,
                    available,
                },
            ));
        };
        self.at += n;
        Ok(bytes)
    }

    /// The next `N` bytes, as an array.
    #[inline(always)]
    fn take_array<R: Report, const N: usize>(&mut self, part: Part) -> Result<[u8; N], R::Error> {
        let bytes = self.take::<R>(N, part)?;
        Ok(bytes.first_chunk().copied().unwrap_or([0; N]))
    }
}

#[inline]
fn bcd_value<R: Report>(bytes: &[u8], part: Part, offset: usize) -> Result<usize, R::Error> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return Err(R::error(part, offset + i, Kind::NotBcd { byte: b }));
        }
        value = value * 100 + (hi as usize) * 10 + lo as usize;
    }
    Ok(value)
}

#[inline]
fn ascii_value<R: Report>(bytes: &[u8], part: Part, offset: usize) -> Result<usize, R::Error> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Err(R::error(part, offset + i, Kind::NotDigit { byte: b }));
        }
        value = value * 10 + (b - b'0') as usize;
    }
    Ok(value)
}

#[inline]
fn hex_nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn check_hex<R: Report>(bytes: &[u8], part: Part, offset: usize) -> Result<(), R::Error> {
    match bytes.iter().position(|&b| hex_nibble(b).is_none()) {
        None => Ok(()),
        Some(i) => Err(R::error(part, offset + i, Kind::NotHex { byte: bytes[i] })),
    }
}

/// Whether every nibble of `word` (eight packed bytes) is a decimal digit: a nibble `v`
/// is above 9 exactly when `v + 6` reaches 16, and byte lanes cannot carry into each other.
#[inline]
fn all_bcd_u64(word: u64) -> bool {
    const LANES: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    const SIX: u64 = 0x0606_0606_0606_0606;
    const SIXTEEN: u64 = 0x1010_1010_1010_1010;
    (((word & LANES) + SIX) | (((word >> 4) & LANES) + SIX)) & SIXTEEN == 0
}

/// Whether every nibble of the packed bytes `input[start..end]` is a decimal digit, pad
/// nibbles included, eight bytes at a time: the bytes of the message around the field make
/// up whole words (the last word ends at `end`, overlapping the one before, or masked when
/// the field is shorter), so that a short field costs one load.
#[inline(always)]
fn packed_all_digits(input: &[u8], start: usize, end: usize) -> bool {
    let Some(last) = end.checked_sub(8).and_then(|at| input.get(at..end)) else {
        // Not eight bytes before the end (never so after an MTI and a bitmap).
        let bytes = input.get(start..end).unwrap_or(&[]);
        return bytes.iter().all(|&b| all_bcd_u64(u64::from(b)));
    };
    let last = u64::from_be_bytes(last.try_into().unwrap_or([0xFF; 8]));
    let len = end.saturating_sub(start);
    if len <= 8 {
        // The field's bytes are the low ones: shifted out, the others are not looked at
        // (an empty field shifts by 64, that is not at all: a false alarm the slow path
        // clears).
        return all_bcd_u64(last.wrapping_shl(8 * (8 - len) as u32));
    }
    let (words, _) = input.get(start..end).unwrap_or(&[]).as_chunks::<8>();
    let whole = words
        .iter()
        .fold(true, |ok, w| ok & all_bcd_u64(u64::from_be_bytes(*w)));
    whole & all_bcd_u64(last)
}

/// Checks that every value nibble of a packed numeric field is a decimal digit, allowing
/// the pad nibble of an odd-length value: for when [`packed_all_digits`] said no.
#[cold]
fn check_packed_digits<R: Report>(
    wire: &[u8],
    pad_first: bool,
    len: usize,
    part: Part,
    offset: usize,
) -> Result<(), R::Error> {
    let pad_last = len % 2 == 1 && !pad_first;
    let last = wire.len().saturating_sub(1);
    for (i, &b) in wire.iter().enumerate() {
        let hi_ok = b >> 4 <= 9 || (pad_first && i == 0);
        let lo_ok = b & 0x0F <= 9 || (pad_last && i == last);
        if !(hi_ok && lo_ok) {
            return Err(R::error(part, offset + i, Kind::NotBcd { byte: b }));
        }
    }
    Ok(())
}

impl<'a> Message<'a> {
    /// Decodes one message (MTI, bitmap, fields) that fills `input` exactly.
    ///
    /// Every failure is a [`DecodeError`] naming the part, the offset and the reason; no
    /// input can make this panic, and nothing is allocated.
    pub fn decode(profile: &'static Profile, input: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        // Filled in place, in the result: the message is returned without a copy.
        let mut result = Ok(Message::empty(profile, input));
        if let Ok(message) = &mut result
            && message.read::<Quiet>().is_err()
        {
            // The same code again, this time saying where and why.
            result = Self::decode_detailed(profile, input);
        }
        result
    }

    fn empty(profile: &'static Profile, input: &'a [u8]) -> Message<'a> {
        Message {
            profile,
            input,
            mti: Mti(*b"0000"),
            bitmap: [0; 2],
            starts: [0; STARTS_MAX],
        }
    }

    #[cold]
    #[inline(never)]
    fn decode_detailed(
        profile: &'static Profile,
        input: &'a [u8],
    ) -> Result<Message<'a>, DecodeError> {
        let mut message = Message::empty(profile, input);
        message.read::<Detailed>().map(|()| message)
    }

    /// Reads the MTI, the bitmaps and where each field starts into `self`.
    #[inline(always)]
    fn read<R: Report>(&mut self) -> Result<(), R::Error> {
        let mut cur = self.read_head::<R>()?;
        let (profile, bitmap) = (self.profile, self.bitmap);
        for (rank, number) in field_numbers(bitmap).enumerate() {
            let op = profile.ops[field_index(number)];
            let (content_start, end) = read_field::<R>(op, number, cur.input, cur.at)?;
            if let Some(start) = self.starts.get_mut(rank) {
                *start = content_start as u16;
            }
            cur.at = end;
        }
        if cur.at != self.input.len() {
            return Err(R::error(
                Part::End,
                cur.at,
                Kind::TrailingBytes {
                    count: self.input.len() - cur.at,
                },
            ));
        }
        Ok(())
    }

    /// Reads the MTI and the bitmaps into `self`; returns the cursor on the first field.
    #[inline(always)]
    fn read_head<R: Report>(&mut self) -> Result<Cursor<'a>, R::Error> {
        let (profile, input) = (self.profile, self.input);
        if input.len() > MESSAGE_BYTES_MAX {
            return Err(R::error(
                Part::Mti,
                0,
                Kind::TooLarge {
                    len: input.len(),
                    len_max: MESSAGE_BYTES_MAX,
                },
            ));
        }
        let mut cur = Cursor { input, at: 0 };
        self.mti = read_mti::<R>(profile, &mut cur)?;
        let bitmap = &mut self.bitmap;
        bitmap[0] = read_bitmap::<R>(profile, &mut cur)?;
        if bitmap[0] >> 63 == 1 {
            if !profile.secondary_bitmap {
                return Err(R::error(
                    Part::Field(1),
                    cur.at - bitmap_len(profile),
                    Kind::UndefinedField,
                ));
            }
            bitmap[1] = read_bitmap::<R>(profile, &mut cur)?;
        }
        if bitmap[0] << 1 == 0 && bitmap[1] == 0 {
            return Err(R::error(Part::Bitmap, cur.at, Kind::EmptyBitmap));
        }
        Ok(cur)
    }

    /// The fields of a message that does not decode, as far as they can be read: the
    /// MTI, the bitmap and every field before the first that fails (a frame cut short, a
    /// bad length). The bitmap of the result names only those fields. `None` when not even
    /// the MTI and bitmap read. For answering a malformed request with what it said (its
    /// trace, terminal, merchant); never for deciding on it.
    pub fn decode_readable(profile: &'static Profile, input: &'a [u8]) -> Option<Message<'a>> {
        let input = input.get(..input.len().min(MESSAGE_BYTES_MAX))?;
        let mut cur = Cursor { input, at: 0 };
        let mti = read_mti::<Quiet>(profile, &mut cur).ok()?;
        let primary = read_bitmap::<Quiet>(profile, &mut cur).ok()?;
        // Only the primary bitmap's fields: a secondary bitmap is not looked for.
        let mut read = [0u64; 2];
        let mut starts = [0u16; STARTS_MAX];
        for (rank, number) in field_numbers([primary, 0]).enumerate() {
            let op = profile.ops[field_index(number)];
            let Ok((start, end)) = read_field::<Quiet>(op, number, input, cur.at) else {
                break;
            };
            if let Some(slot) = starts.get_mut(rank) {
                *slot = start as u16;
            }
            cur.at = end;
            read[0] |= (1 << 63) >> (number - 1);
        }
        Some(Message {
            profile,
            input,
            mti,
            bitmap: read,
            starts,
        })
    }

    pub fn profile(&self) -> &'static Profile {
        self.profile
    }

    /// Field 0: the message type indicator.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// The bytes the message was decoded from.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// Primary and secondary bitmaps as 64-bit words (field 1 is the most significant bit).
    pub fn bitmap(&self) -> [u64; 2] {
        self.bitmap
    }

    /// Whether field `number` is present.
    #[inline]
    pub fn has(&self, number: u8) -> bool {
        match number {
            1..=64 => self.bitmap[0] >> (64 - number as u32) & 1 == 1,
            65..=128 => self.bitmap[1] >> (128 - number as u32) & 1 == 1,
            _ => false,
        }
    }

    /// Field `number`, if present.
    #[inline]
    pub fn field(&self, number: u8) -> Option<Field<'a>> {
        if number < 2 || !self.has(number) {
            return None;
        }
        self.present_field(number)
    }

    /// Field `number`, known to be present.
    fn present_field(&self, number: u8) -> Option<Field<'a>> {
        Some(self.field_at(number, self.prefix_at(number)?)?.0)
    }

    /// Where present field `number` begins (its length prefix, if any).
    fn prefix_at(&self, number: u8) -> Option<usize> {
        // Its rank: the present fields before it.
        let n = u32::from(number);
        let top = |word: u64, bits: u32| word.checked_shr(64 - bits).unwrap_or(0).count_ones();
        let primary = self.bitmap[0] & !(1 << 63);
        let rank = if n <= 64 {
            top(primary, n - 1)
        } else {
            primary.count_ones() + top(self.bitmap[1], n - 65)
        };
        if let Some(&start) = self.starts.get(rank as usize) {
            return usize::from(start).checked_sub(self.profile.op(number).prefix_bytes());
        }
        // Past the starts kept: walk.
        let mut fields = self.fields_from();
        while let Some((n, at)) = fields.next_at() {
            if n == number {
                return Some(at);
            }
            fields.at = self.field_at(n, at)?.1;
        }
        None
    }

    /// The present field `number` whose length prefix (if any) is at `at`, and where it
    /// ends.
    #[inline(always)]
    fn field_at(&self, number: u8, at: usize) -> Option<(Field<'a>, usize)> {
        let op = self.profile.ops[field_index(number)];
        let (start, units, wire_bytes) = if op.prefix == Prefix::None {
            (at, usize::from(op.units_max), usize::from(op.width))
        } else {
            // Checked when decoded: read again without checks or a jump through a table.
            let start = at + usize::from(op.width);
            let prefix = self.input.get(at..start)?;
            let units = if matches!(op.prefix, Prefix::Bcd1 | Prefix::Bcd2) {
                prefix.iter().fold(0, |units, &b| {
                    units * 100 + usize::from(b >> 4) * 10 + usize::from(b & 15)
                })
            } else {
                prefix.iter().fold(0, |units, &b| {
                    units * 10 + usize::from(b.wrapping_sub(b'0'))
                })
            };
            (start, units, op.content.wire_bytes(units))
        };
        let rest = self.input.get(start..)?;
        let field = Field {
            spec: self.profile.field(number)?,
            content: op.content,
            wire: rest.get(..wire_bytes)?,
            rest,
            units,
        };
        Some((field, start + wire_bytes))
    }

    /// The present fields from the first, walking the input.
    fn fields_from(&self) -> Fields<'_, 'a> {
        let mut numbers = field_numbers(self.bitmap);
        // The first field's prefix: its content's start less the prefix.
        let first = numbers.clone().next();
        let at = first.and_then(|number| {
            usize::from(self.starts[0]).checked_sub(self.profile.op(number).prefix_bytes())
        });
        if at.is_none() {
            numbers = field_numbers([0; 2]);
        }
        Fields {
            message: self,
            numbers,
            at: at.unwrap_or(0),
        }
    }

    /// Every present field, in ascending order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + '_ {
        self.fields_from()
    }

    /// The bytes a MAC covers: from the MTI up to (not including) the MAC field, when the
    /// profile has a MAC field and the message carries it.
    pub fn mac_input(&self) -> Option<&'a [u8]> {
        let mac_field = self.profile.mac_field?;
        if !self.has(mac_field) {
            return None;
        }
        self.input.get(..self.prefix_at(mac_field)?)
    }
}

/// The numbers of the fields a bitmap announces, ascending: its set bits, not every number
/// from 2 to 128 (bit 1, the secondary bitmap's flag, is not a field).
#[inline(always)]
pub(crate) fn field_numbers(bitmap: [u64; 2]) -> FieldNumbers {
    FieldNumbers {
        // Bit 1 counts as read: the first field is then the next bit set.
        bits: bitmap[0] << 1,
        next_word: bitmap[1],
        number: 1,
    }
}

/// See [`field_numbers`].
#[derive(Clone)]
pub(crate) struct FieldNumbers {
    /// The bits after `number`'s, shifted up to the top.
    bits: u64,
    /// The secondary bitmap, while the primary is being read.
    next_word: u64,
    number: u32,
}

impl Iterator for FieldNumbers {
    type Item = u8;

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        if self.bits == 0 {
            if self.next_word == 0 {
                return None;
            }
            // Field 65 is the secondary bitmap's first bit: as if bit 64 had just been read.
            (self.bits, self.next_word, self.number) = (self.next_word, 0, 64);
        }
        let zeros = self.bits.leading_zeros();
        self.number += zeros + 1;
        // In two steps: a shift by 64 would overflow.
        self.bits = self.bits << zeros << 1;
        Some(self.number as u8)
    }
}

/// The present fields of a message, ascending ([`Message::fields`]): each begins where the
/// one before ends.
struct Fields<'m, 'a> {
    message: &'m Message<'a>,
    numbers: FieldNumbers,
    /// Where the next field begins.
    at: usize,
}

impl Fields<'_, '_> {
    /// The next field's number and where it begins.
    fn next_at(&mut self) -> Option<(u8, usize)> {
        Some((self.numbers.next()?, self.at))
    }
}

impl<'a> Iterator for Fields<'_, 'a> {
    type Item = Field<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<Field<'a>> {
        let number = self.numbers.next()?;
        let (field, end) = self.message.field_at(number, self.at)?;
        self.at = end;
        Some(field)
    }
}

fn bitmap_len(profile: &Profile) -> usize {
    match profile.bitmap {
        BitmapEncoding::Binary => 8,
        BitmapEncoding::HexAscii => 16,
    }
}

fn read_bitmap<R: Report>(profile: &Profile, cur: &mut Cursor<'_>) -> Result<u64, R::Error> {
    let offset = cur.at;
    match profile.bitmap {
        BitmapEncoding::Binary => {
            let b = cur.take::<R>(8, Part::Bitmap)?;
            let mut word = [0u8; 8];
            word.copy_from_slice(b);
            Ok(u64::from_be_bytes(word))
        }
        BitmapEncoding::HexAscii => {
            let b = cur.take::<R>(16, Part::Bitmap)?;
            let mut word = 0u64;
            for (i, &c) in b.iter().enumerate() {
                let Some(n) = hex_nibble(c) else {
                    return Err(R::error(Part::Bitmap, offset + i, Kind::NotHex { byte: c }));
                };
                word = word << 4 | u64::from(n);
            }
            Ok(word)
        }
    }
}

/// Reads the MTI.
#[inline(always)]
fn read_mti<R: Report>(profile: &Profile, cur: &mut Cursor<'_>) -> Result<Mti, R::Error> {
    match profile.mti {
        NumberEncoding::Bcd => {
            let b = cur.take_array::<R, 2>(Part::Mti)?;
            bcd_value::<R>(&b, Part::Mti, 0)?;
            let digit = |i: usize| b'0' + (b[i / 2] >> (4 * (1 - i % 2)) & 15);
            Ok(Mti([digit(0), digit(1), digit(2), digit(3)]))
        }
        NumberEncoding::Ascii => {
            let b = cur.take_array::<R, 4>(Part::Mti)?;
            ascii_value::<R>(&b, Part::Mti, 0)?;
            Ok(Mti(b))
        }
    }
}

/// Reads a field's length prefix (nothing for a fixed field): its length in the prefix's
/// units.
#[inline(always)]
fn read_prefix<R: Report>(
    op: FieldOp,
    part: Part,
    cur: &mut Cursor<'_>,
) -> Result<usize, R::Error> {
    let at = cur.at;
    match op.prefix {
        Prefix::None => Ok(usize::from(op.units_max)),
        Prefix::Bcd1 => bcd_value::<R>(&cur.take_array::<R, 1>(part)?, part, at),
        Prefix::Bcd2 => bcd_value::<R>(&cur.take_array::<R, 2>(part)?, part, at),
        Prefix::Ascii2 => ascii_value::<R>(&cur.take_array::<R, 2>(part)?, part, at),
        Prefix::Ascii3 => ascii_value::<R>(&cur.take_array::<R, 3>(part)?, part, at),
    }
}

/// Reads the field at `at` of `input`: where its content starts and where it ends.
#[inline(always)]
fn read_field<R: Report>(
    op: FieldOp,
    number: u8,
    input: &[u8],
    at: usize,
) -> Result<(usize, usize), R::Error> {
    let part = Part::Field(number);
    let mut cur = Cursor { input, at };
    // A fixed field (the usual case) is a comparison away, not a jump through a table.
    let (units, wire_bytes) = if op.prefix == Prefix::None {
        (usize::from(op.units_max), usize::from(op.width))
    } else {
        let units = read_prefix::<R>(op, part, &mut cur)?;
        if units > usize::from(op.units_max) {
            return Err(R::error(
                part,
                at,
                Kind::LengthOverMax {
                    len: units,
                    len_max: usize::from(op.units_max),
                },
            ));
        }
        (units, op.content.wire_bytes(units))
    };
    let start = cur.at;
    let wire = cur.take::<R>(wire_bytes, part)?;
    let end = cur.at;
    let ok = match op.content {
        Content::PackedDigits | Content::PackedDigitsPadFirst => {
            packed_all_digits(input, start, end)
        }
        Content::PackedTrack | Content::Text | Content::Bytes => true,
        Content::AsciiDigits => all_ascii_digits(wire),
        Content::AsciiTrack => all_track_chars(wire),
        Content::Hex | Content::Undefined => false,
    };
    if !ok {
        check_content::<R>(op, part, at, wire, units, start)?;
    }
    Ok((start, end))
}

/// Says what is wrong with a field's content when the fast checks of [`read_field`] said
/// something is (or did not look: hexadecimal, undefined fields).
fn check_content<R: Report>(
    op: FieldOp,
    part: Part,
    at: usize,
    wire: &[u8],
    units: usize,
    start: usize,
) -> Result<(), R::Error> {
    match op.content {
        Content::PackedDigits | Content::PackedDigitsPadFirst => {
            let pad_first = op.content == Content::PackedDigitsPadFirst;
            check_packed_digits::<R>(wire, pad_first, units, part, start)
        }
        Content::AsciiDigits => ascii_value_check::<R>(wire, part, start),
        Content::AsciiTrack => match wire.iter().position(|&b| !is_track_char(b)) {
            Some(i) => Err(R::error(part, start + i, Kind::NotDigit { byte: wire[i] })),
            None => Ok(()),
        },
        Content::Hex if units % 2 == 1 => {
            Err(R::error(part, at, Kind::OddHexLength { len: units }))
        }
        Content::Hex => check_hex::<R>(wire, part, start),
        Content::Undefined => Err(R::error(part, at, Kind::UndefinedField)),
        Content::PackedTrack | Content::Text | Content::Bytes => Ok(()),
    }
}

#[inline]
fn ascii_value_check<R: Report>(bytes: &[u8], part: Part, offset: usize) -> Result<(), R::Error> {
    match bytes.iter().position(|b| !b.is_ascii_digit()) {
        None => Ok(()),
        Some(i) => Err(R::error(
            part,
            offset + i,
            Kind::NotDigit { byte: bytes[i] },
        )),
    }
}

impl<'a> Field<'a> {
    pub fn spec(&self) -> &'static FieldSpec {
        self.spec
    }

    pub fn number(&self) -> u8 {
        self.spec.number
    }

    /// The content bytes as they are on the wire (without the length prefix).
    pub fn wire(&self) -> &'a [u8] {
        self.wire
    }

    /// Length in logical units: digits, characters or bytes.
    pub fn len(&self) -> usize {
        match self.content {
            Content::Hex => self.units / 2,
            _ => self.units,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.units == 0
    }

    /// The value in its logical form.
    #[inline]
    pub fn value(&self) -> Value<'a> {
        let (wire, len) = (self.wire, self.units);
        match self.content {
            Content::PackedDigits | Content::PackedTrack => {
                Value::Digits(Digits::packed(self.rest, 0, len))
            }
            Content::PackedDigitsPadFirst => Value::Digits(Digits::packed(self.rest, 1, len)),
            Content::AsciiDigits | Content::AsciiTrack => Value::Digits(Digits::ascii(wire)),
            Content::Text => Value::Text(wire),
            Content::Bytes | Content::Undefined => Value::Bytes(wire),
            Content::Hex => Value::Hex(wire),
        }
    }

    /// The digits of an `n` or `z` field.
    pub fn digits(&self) -> Option<Digits<'a>> {
        match self.value() {
            Value::Digits(d) => Some(d),
            _ => None,
        }
    }

    /// The text of an `an` or `ans` field.
    pub fn text(&self) -> Option<&'a [u8]> {
        (self.content == Content::Text).then_some(self.wire)
    }

    /// The bytes of a `b` field sent raw (hexadecimal ASCII fields need [`Field::write_bytes`]).
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value() {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Appends the bytes of a `b` field, decoding hexadecimal ASCII when the profile uses it.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        match self.value() {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Hex(h) => out.extend(
                h.chunks_exact(2)
                    .map(|p| hex_nibble(p[0]).unwrap_or(0) << 4 | hex_nibble(p[1]).unwrap_or(0)),
            ),
            Value::Digits(_) | Value::Text(_) => {}
        }
    }

    /// The value as text: digits for `n`/`z`, the characters for `an`/`ans` (invalid UTF-8
    /// replaced), uppercase hexadecimal for `b`.
    pub fn to_text(&self) -> String {
        match self.value() {
            Value::Digits(d) => d.to_text(),
            Value::Text(t) => String::from_utf8_lossy(t).into_owned(),
            Value::Bytes(b) => crate::hex_upper(b),
            Value::Hex(h) => String::from_utf8_lossy(h).to_ascii_uppercase(),
        }
    }
}
