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
    /// Where the content of each of the first [`SPANS_MAX`] present fields starts in
    /// `input` and its length, in order: reading a field is then a look-up, not a second
    /// reading of its length prefix. (A message is returned by value and moved: a span
    /// for each of the 128 numbers made it 600 bytes, and the copy of bytes just written
    /// stalls.)
    spans: [Span; SPANS_MAX],
    /// Where the field after the first [`SPANS_MAX`] begins (its length prefix): the
    /// fields past the spans (ISO 8583:1987 with many secondary fields) are found by
    /// walking from there.
    walk_from: u16,
}

/// Fields whose span a message keeps: more than a CUP POS message has; the fields past
/// them are found by walking.
const SPANS_MAX: usize = 24;

/// Where a field's content starts in the input, and its length in the prefix's units
/// (characters for hexadecimal binary), as the decoder checked them.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u16,
    units: u16,
}

/// What [`Field::spec`] gives for a field the profile does not define (a decoded message
/// has none).
static UNDEFINED_SPEC: FieldSpec = FieldSpec {
    number: 0,
    name_en: "undefined",
    name_zh: "未定义",
    charset: crate::spec::Charset::B,
    length: crate::spec::LengthKind::Fixed,
    len_max: 0,
    align: crate::spec::Align::Right,
};

/// One field of a decoded message.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    profile: &'static Profile,
    /// The message from the field's content on (digits are unpacked a word at a time,
    /// so they may read past the field's end).
    rest: &'a [u8],
    /// The length in the prefix's units (characters for hexadecimal binary).
    units: u16,
    number: u8,
    content: Content,
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
/// nibbles included. A field of up to eight bytes (most) costs one load: the eight bytes of
/// the message that end where it ends, shifted so that only its own are looked at.
#[inline(always)]
fn packed_all_digits(input: &[u8], start: usize, end: usize) -> bool {
    let len = end.wrapping_sub(start);
    if let (1..=8, Some(at)) = (len, end.checked_sub(8))
        && let Some(&last) = input.get(at..).and_then(|tail| tail.first_chunk::<8>())
    {
        return all_bcd_u64(u64::from_be_bytes(last) << (8 * (8 - len)));
    }
    packed_all_digits_long(input, start, end)
}

/// [`packed_all_digits`] of a field longer than eight bytes (or at the very start of the
/// input, or empty): eight bytes at a time, the last eight overlapping those before.
#[inline(never)]
fn packed_all_digits_long(input: &[u8], start: usize, end: usize) -> bool {
    let bytes = input.get(start..end).unwrap_or(&[]);
    let (words, rest) = bytes.as_chunks::<8>();
    let whole = words
        .iter()
        .fold(true, |ok, w| ok & all_bcd_u64(u64::from_be_bytes(*w)));
    let last = match bytes.last_chunk::<8>() {
        Some(&last) => all_bcd_u64(u64::from_be_bytes(last)),
        None => rest.iter().all(|&b| all_bcd_u64(u64::from(b))),
    };
    whole & last
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
            spans: [Span::default(); SPANS_MAX],
            walk_from: 0,
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

    /// Reads the MTI, the bitmaps and each field's span into `self`.
    #[inline(always)]
    fn read<R: Report>(&mut self) -> Result<(), R::Error> {
        let cur = self.read_head::<R>()?;
        let end = self.read_fields::<R>(cur.at)?;
        if end != self.input.len() {
            return Err(R::error(
                Part::End,
                end,
                Kind::TrailingBytes {
                    count: self.input.len().saturating_sub(end),
                },
            ));
        }
        Ok(())
    }

    /// Reads the fields from `at` on, keeping the spans of the first [`SPANS_MAX`]; returns
    /// where the last ends.
    #[inline(always)]
    fn read_fields<R: Report>(&mut self, at: usize) -> Result<usize, R::Error> {
        let (ops, input, bitmap) = (&self.profile.ops, self.input, self.bitmap);
        let at = read_spans::<R>(ops, bitmap, input, at, &mut self.spans)?;
        let fields = (bitmap[0] << 1).count_ones() + bitmap[1].count_ones();
        if fields as usize <= SPANS_MAX {
            return Ok(at);
        }
        self.walk_from = at as u16;
        let past_spans = field_numbers(bitmap).skip(SPANS_MAX);
        read_fields_past_spans::<R>(ops, past_spans, input, at)
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
        // Only the primary bitmap's fields (at most 63: spans for all but a few): a
        // secondary bitmap is not looked for.
        let mut message = Message::empty(profile, input);
        message.mti = mti;
        for (rank, number) in field_numbers([primary, 0]).enumerate() {
            let op = profile.ops[field_index(number)];
            let Ok((span, end)) = read_field::<Quiet>(op, number, input, cur.at) else {
                break;
            };
            match message.spans.get_mut(rank) {
                Some(slot) => *slot = span,
                None if rank == SPANS_MAX => message.walk_from = cur.at as u16,
                None => {}
            }
            cur.at = end;
            message.bitmap[0] |= (1 << 63) >> (number - 1);
        }
        Some(message)
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
        let rank = self.rank(number);
        match self.spans.get(rank) {
            Some(&span) => self.field_of(number, span),
            None => self.walk(number).map(|(field, _)| field),
        }
    }

    /// How many present fields come before present field `number`.
    fn rank(&self, number: u8) -> usize {
        let n = u32::from(number);
        let top = |word: u64, bits: u32| word.checked_shr(64 - bits).unwrap_or(0).count_ones();
        let primary = self.bitmap[0] & !(1 << 63);
        let rank = if n <= 64 {
            top(primary, n - 1)
        } else {
            primary.count_ones() + top(self.bitmap[1], n - 65)
        };
        rank as usize
    }

    /// The present field `number` whose content is at `span`.
    #[inline(always)]
    fn field_of(&self, number: u8, span: Span) -> Option<Field<'a>> {
        let op = self.profile.ops[field_index(number)];
        Some(Field {
            profile: self.profile,
            rest: self.input.get(usize::from(span.start)..)?,
            units: span.units,
            number,
            content: op.content,
        })
    }

    /// Present field `number` past the spans kept, found by walking from the first of
    /// them, and where its length prefix (if any) begins.
    fn walk(&self, number: u8) -> Option<(Field<'a>, usize)> {
        let mut at = usize::from(self.walk_from);
        for n in field_numbers(self.bitmap).skip(SPANS_MAX) {
            let (field, end) = self.field_at(n, at)?;
            if n == number {
                return Some((field, at));
            }
            at = end;
        }
        None
    }

    /// The present field `number` whose length prefix (if any) is at `at`, and where it
    /// ends.
    fn field_at(&self, number: u8, at: usize) -> Option<(Field<'a>, usize)> {
        let op = self.profile.ops[field_index(number)];
        let (start, units) = if op.prefix == Prefix::None {
            (at, op.units_max)
        } else {
            // Checked when decoded: read again without checks.
            let start = at + usize::from(op.width);
            let prefix = self.input.get(at..start)?;
            let units = if matches!(op.prefix, Prefix::Bcd1 | Prefix::Bcd2) {
                prefix.iter().fold(0, |units, &b| {
                    units * 100 + u16::from(b >> 4) * 10 + u16::from(b & 15)
                })
            } else {
                prefix
                    .iter()
                    .fold(0, |units, &b| units * 10 + u16::from(b.wrapping_sub(b'0')))
            };
            (start, units)
        };
        let field = self.field_of(
            number,
            Span {
                start: start as u16,
                units,
            },
        )?;
        Some((field, start + field.wire().len()))
    }

    /// Every present field, in ascending order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + '_ {
        Fields {
            message: self,
            numbers: field_numbers(self.bitmap),
            rank: 0,
            at: usize::from(self.walk_from),
        }
    }

    /// The bytes a MAC covers: from the MTI up to (not including) the MAC field, when the
    /// profile has a MAC field and the message carries it.
    pub fn mac_input(&self) -> Option<&'a [u8]> {
        let mac_field = self.profile.mac_field?;
        if !self.has(mac_field) {
            return None;
        }
        let rank = self.rank(mac_field);
        let at = match self.spans.get(rank) {
            Some(span) => {
                let prefix_bytes = self.profile.op(mac_field).prefix_bytes();
                usize::from(span.start).checked_sub(prefix_bytes)?
            }
            None => self.walk(mac_field)?.1,
        };
        self.input.get(..at)
    }
}

/// The numbers of the fields a bitmap announces, ascending: its set bits, not every number
/// from 2 to 128 (bit 1, the secondary bitmap's flag, is not a field).
#[inline(always)]
pub(crate) fn field_numbers(bitmap: [u64; 2]) -> FieldNumbers {
    FieldNumbers {
        // Field 1 first, in the lowest bit: each next field is the lowest bit set, found
        // and cleared in two instructions. Bit 1 is not a field.
        bits: bitmap[0].reverse_bits() & !1,
        next_word: bitmap[1].reverse_bits(),
        first: 1,
    }
}

/// See [`field_numbers`].
#[derive(Clone)]
pub(crate) struct FieldNumbers {
    /// The fields not yet given of the bitmap being read, field `first` in the lowest bit.
    bits: u64,
    /// The secondary bitmap, while the primary is being read.
    next_word: u64,
    first: u8,
}

impl Iterator for FieldNumbers {
    type Item = u8;

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        if self.bits == 0 {
            if self.next_word == 0 {
                return None;
            }
            (self.bits, self.next_word, self.first) = (self.next_word, 0, 65);
        }
        let number = self.first + self.bits.trailing_zeros() as u8;
        self.bits &= self.bits - 1;
        Some(number)
    }
}

/// The present fields of a message, ascending ([`Message::fields`]): the first
/// [`SPANS_MAX`] from their spans, the others each where the one before ends.
struct Fields<'m, 'a> {
    message: &'m Message<'a>,
    numbers: FieldNumbers,
    rank: usize,
    /// Where the next field past the spans begins.
    at: usize,
}

impl<'a> Iterator for Fields<'_, 'a> {
    type Item = Field<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<Field<'a>> {
        let number = self.numbers.next()?;
        let rank = self.rank;
        self.rank += 1;
        match self.message.spans.get(rank) {
            Some(&span) => self.message.field_of(number, span),
            None => {
                let (field, end) = self.message.field_at(number, self.at)?;
                self.at = end;
                Some(field)
            }
        }
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

/// Reads the fields from `at` on while there are spans to keep them in: a function of its
/// own, so that its loop keeps what it needs in registers. Returns where the last field
/// read ends.
#[inline(never)]
fn read_spans<R: Report>(
    ops: &[FieldOp; 128],
    bitmap: [u64; 2],
    input: &[u8],
    mut at: usize,
    spans: &mut [Span; SPANS_MAX],
) -> Result<usize, R::Error> {
    for (slot, number) in spans.iter_mut().zip(field_numbers(bitmap)) {
        let (span, end) = read_field::<R>(ops[field_index(number)], number, input, at)?;
        *slot = span;
        at = end;
    }
    Ok(at)
}

/// The fields past a message's spans (many fields: ISO 8583:1987 with secondary fields):
/// reads each from `at` on; returns where the last ends.
#[inline(never)]
fn read_fields_past_spans<R: Report>(
    ops: &[FieldOp; 128],
    numbers: impl Iterator<Item = u8>,
    input: &[u8],
    mut at: usize,
) -> Result<usize, R::Error> {
    for number in numbers {
        at = read_field::<R>(ops[field_index(number)], number, input, at)?.1;
    }
    Ok(at)
}

/// The value of each packed BCD byte (0..=99), or [`NOT_BCD`] when a nibble is above 9.
static BCD_VALUES: [u8; 256] = {
    let mut table = [NOT_BCD; 256];
    let mut byte = 0;
    while byte < 256 {
        if byte >> 4 <= 9 && byte & 15 <= 9 {
            table[byte] = ((byte >> 4) * 10 + (byte & 15)) as u8;
        }
        byte += 1;
    }
    table
};

/// See [`BCD_VALUES`]: any value with the high bit set says "not BCD".
const NOT_BCD: u8 = 0x80;

/// Reads the length prefix of a variable field at `at`: its length in the prefix's
/// units, checked against the field's maximum.
#[inline(always)]
fn read_prefix<R: Report>(
    op: FieldOp,
    part: Part,
    input: &[u8],
    at: usize,
) -> Result<usize, R::Error> {
    let mut cur = Cursor { input, at };
    let units = match op.prefix {
        Prefix::None => Ok(usize::from(op.units_max)),
        // A look-up a byte: a length that is not BCD reads as NOT_BCD's bit, then is
        // looked at again to say where.
        Prefix::Bcd1 => {
            let [b] = cur.take_array::<R, 1>(part)?;
            match BCD_VALUES[usize::from(b)] {
                v if v & NOT_BCD == 0 => Ok(usize::from(v)),
                _ => bcd_value::<R>(&[b], part, at),
            }
        }
        Prefix::Bcd2 => {
            let [b0, b1] = cur.take_array::<R, 2>(part)?;
            let (v0, v1) = (BCD_VALUES[usize::from(b0)], BCD_VALUES[usize::from(b1)]);
            match (v0 | v1) & NOT_BCD {
                0 => Ok(usize::from(v0) * 100 + usize::from(v1)),
                _ => bcd_value::<R>(&[b0, b1], part, at),
            }
        }
        Prefix::Ascii2 => ascii_value::<R>(&cur.take_array::<R, 2>(part)?, part, at),
        Prefix::Ascii3 => ascii_value::<R>(&cur.take_array::<R, 3>(part)?, part, at),
    }?;
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
    Ok(units)
}

/// Reads the field at `at` of `input`: its span and where it ends.
#[inline(always)]
fn read_field<R: Report>(
    op: FieldOp,
    number: u8,
    input: &[u8],
    at: usize,
) -> Result<(Span, usize), R::Error> {
    let part = Part::Field(number);
    // A fixed field (the usual case) is a comparison away, not a jump through a table.
    let (start, units, wire_bytes) = if op.prefix == Prefix::None {
        (at, usize::from(op.units_max), usize::from(op.width))
    } else {
        let units = read_prefix::<R>(op, part, input, at)?;
        (
            at + usize::from(op.width),
            units,
            op.content.wire_bytes(units),
        )
    };
    let end = start + wire_bytes;
    let Some(wire) = input.get(start..end) else {
        return Err(R::error(
            part,
            start,
            Kind::Truncated {
                needed: wire_bytes,
                available: input.len().saturating_sub(start),
            },
        ));
    };
    // Text, binary and track data need no look (one comparison); packed digits (most of
    // the rest) are told apart from the others by a second.
    let ok = match op.content {
        content if !content.is_checked() => true,
        Content::PackedDigits | Content::PackedDigitsPadFirst => {
            packed_all_digits(input, start, end)
        }
        Content::AsciiDigits => all_ascii_digits(wire),
        Content::AsciiTrack => all_track_chars(wire),
        _ => false,
    };
    if !ok {
        check_content::<R>(op, part, at, wire, units, start)?;
    }
    // Both below MESSAGE_BYTES_MAX: the input is.
    let span = Span {
        start: start as u16,
        units: units as u16,
    };
    Ok((span, end))
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
        // A decoded field is one the profile defines.
        self.profile.field(self.number).unwrap_or(&UNDEFINED_SPEC)
    }

    pub fn number(&self) -> u8 {
        self.number
    }

    /// The content bytes as they are on the wire (without the length prefix).
    #[inline]
    pub fn wire(&self) -> &'a [u8] {
        let wire_bytes = self.content.wire_bytes(usize::from(self.units));
        self.rest.get(..wire_bytes).unwrap_or(self.rest)
    }

    /// Length in logical units: digits, characters or bytes.
    pub fn len(&self) -> usize {
        match self.content {
            Content::Hex => usize::from(self.units / 2),
            _ => usize::from(self.units),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.units == 0
    }

    /// The value in its logical form.
    #[inline]
    pub fn value(&self) -> Value<'a> {
        let len = usize::from(self.units);
        match self.content {
            Content::PackedDigits => Value::Digits(Digits::packed(self.rest, 0, len, true)),
            Content::PackedDigitsPadFirst => Value::Digits(Digits::packed(self.rest, 1, len, true)),
            Content::PackedTrack => Value::Digits(Digits::packed(self.rest, 0, len, false)),
            Content::AsciiDigits | Content::AsciiTrack => Value::Digits(Digits::ascii(self.wire())),
            Content::Text => Value::Text(self.wire()),
            Content::Bytes | Content::Undefined => Value::Bytes(self.wire()),
            Content::Hex => Value::Hex(self.wire()),
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
        (self.content == Content::Text).then(|| self.wire())
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
