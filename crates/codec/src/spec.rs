//! Field specifications as data: what a field holds, how its length is carried and how
//! it is written on the wire. A [`Profile`] is one table of these plus the message-level
//! encodings (MTI, bitmap, framing, MAC).

/// What a field's content is, in ISO 8583 terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// `n`: decimal digits.
    N,
    /// `z`: track data: digits with `=` as the separator (written as nibble `D` in BCD).
    Z,
    /// `an`: letters and digits.
    An,
    /// `ans`: letters, digits and special characters (any byte is accepted: acquirers put GBK
    /// text into fields such as 63).
    Ans,
    /// `b`: binary.
    B,
}

impl Charset {
    pub const fn as_str(self) -> &'static str {
        match self {
            Charset::N => "n",
            Charset::Z => "z",
            Charset::An => "an",
            Charset::Ans => "ans",
            Charset::B => "b",
        }
    }
}

/// How a field's length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthKind {
    /// Always exactly `max_len` units.
    Fixed,
    /// Up to 99 units, length prefix of two digits.
    LlVar,
    /// Up to 999 units, length prefix of three digits.
    LllVar,
}

/// Where a packed-BCD value with an odd number of digits puts its pad nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Pad nibble first (`123` → `01 23`): fixed numeric fields.
    Right,
    /// Pad nibble last (`021` → `02 10`): variable numeric fields and CUP field 22.
    Left,
}

/// One field of a profile.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    /// Field number, 2..=128.
    pub number: u8,
    pub name_en: &'static str,
    pub name_zh: &'static str,
    pub charset: Charset,
    pub length: LengthKind,
    /// Maximum (or, for fixed fields, exact) length in logical units: digits for `n`/`z`,
    /// characters for `an`/`ans`, bytes for `b`.
    pub len_max: u16,
    pub align: Align,
}

impl FieldSpec {
    /// Whether the value is numeric-like (`n`, `z`) and so packed as BCD in a BCD profile.
    pub const fn is_digits(&self) -> bool {
        matches!(self.charset, Charset::N | Charset::Z)
    }

    /// The format as the standards write it: `n6`, `n..19`, `ans...512`.
    pub fn format(&self) -> String {
        let dots = match self.length {
            LengthKind::Fixed => "",
            LengthKind::LlVar => "..",
            LengthKind::LllVar => "...",
        };
        format!("{}{}{}", self.charset.as_str(), dots, self.len_max)
    }
}

/// How numbers and lengths are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberEncoding {
    /// Packed BCD, two digits a byte (CUP POS).
    Bcd,
    /// One ASCII digit a byte (ISO 8583:1987 ASCII).
    Ascii,
}

/// How binary (`b`) fields are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryEncoding {
    /// Raw bytes.
    Raw,
    /// Two uppercase hexadecimal ASCII characters a byte; a length prefix counts characters.
    HexAscii,
}

/// How the bitmap is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitmapEncoding {
    /// 8 raw bytes per bitmap.
    Binary,
    /// 16 hexadecimal ASCII characters per bitmap.
    HexAscii,
}

/// Framing in front of the MTI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No framing: the message starts with the MTI.
    None,
    /// CUP POS: 2-byte big-endian length, 5-byte TPDU, 6-byte BCD header.
    CupPos,
}

/// A message profile: one table of field specs and the message-level encodings.
#[derive(Debug)]
pub struct Profile {
    pub name: &'static str,
    pub description: &'static str,
    pub mti: NumberEncoding,
    pub numbers: NumberEncoding,
    pub binary: BinaryEncoding,
    pub bitmap: BitmapEncoding,
    /// Whether bit 1 may announce a secondary bitmap (fields 65–128).
    pub secondary_bitmap: bool,
    pub framing: Framing,
    /// The MAC field, when the profile has one (its value is computed over the message
    /// from the MTI to the end of the field before it).
    pub mac_field: Option<u8>,
    /// The MAC algorithm the profile uses, by the name `poskit-security` knows it
    /// (`cup-ecb`, `cup-ecb-sm4`, `x919`). Acquirers differ: a setting, not code.
    pub mac_algorithm: Option<&'static str>,
    pub(crate) fields: &'static [FieldSpec],
    /// Each field's spec, by number.
    pub(crate) specs: [Option<&'static FieldSpec>; 129],
    /// How to read and write each field, worked out at compile time from the specs and
    /// encodings (eight bytes a field, so that reading one is one load), at
    /// [`field_index`].
    pub(crate) ops: [FieldOp; 128],
}

/// A field's length prefix as this profile writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefix {
    None,
    Bcd1,
    Bcd2,
    Ascii2,
    Ascii3,
}

impl Prefix {
    /// Bytes the prefix takes on the wire.
    pub(crate) const fn bytes(self) -> usize {
        match self {
            Prefix::None => 0,
            Prefix::Bcd1 => 1,
            Prefix::Bcd2 | Prefix::Ascii2 => 2,
            Prefix::Ascii3 => 3,
        }
    }
}

/// A field's content as this profile writes it. The contents a decoder need not look at
/// come first (see [`Content::is_checked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Content {
    /// `an` and `ans` characters as they are.
    Text,
    /// Raw binary.
    Bytes,
    /// Packed track data: any nibble.
    PackedTrack,
    /// Packed decimal digits, pad nibble (if any) last.
    PackedDigits,
    /// Packed decimal digits of a fixed odd length, pad nibble first.
    PackedDigitsPadFirst,
    AsciiDigits,
    AsciiTrack,
    /// Binary as hexadecimal ASCII; the prefix counts characters.
    Hex,
    /// The profile does not define the field.
    Undefined,
}

impl Content {
    /// Whether a decoder checks the content's bytes (any byte of text, binary and packed
    /// track data will do): one comparison.
    #[inline(always)]
    pub(crate) const fn is_checked(self) -> bool {
        self as u8 > Content::PackedTrack as u8
    }

    /// Bytes a content of `units` (the prefix's units) takes on the wire.
    #[inline(always)]
    pub(crate) const fn wire_bytes(self, units: usize) -> usize {
        match self {
            Content::PackedDigits | Content::PackedDigitsPadFirst | Content::PackedTrack => {
                units.div_ceil(2)
            }
            _ => units,
        }
    }

    /// The prefix's units of a value of `len` logical units (hexadecimal counts characters).
    #[inline(always)]
    pub(crate) const fn units(self, len: usize) -> usize {
        match self {
            Content::Hex => len * 2,
            _ => len,
        }
    }
}

/// How to read and write one field: its prefix, content and the largest length the prefix
/// may announce (or the fixed length), in the prefix's own units.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldOp {
    pub(crate) prefix: Prefix,
    pub(crate) content: Content,
    pub(crate) units_max: u16,
    /// Bytes on the wire: all of them for a fixed field, the prefix's for a variable one.
    pub(crate) width: u16,
    /// The largest (or, fixed, the exact) length of a value in logical units.
    pub(crate) len_max: u16,
}

impl FieldOp {
    /// Bytes of the length prefix.
    #[inline(always)]
    pub(crate) const fn prefix_bytes(self) -> usize {
        match self.prefix {
            Prefix::None => 0,
            _ => self.width as usize,
        }
    }

    /// Bytes a value of `len` logical units takes on the wire, prefix included.
    #[inline(always)]
    pub(crate) const fn value_wire_bytes(self, len: usize) -> usize {
        match self.prefix {
            Prefix::None => self.width as usize,
            _ => self.width as usize + self.content.wire_bytes(self.content.units(len)),
        }
    }
}

const UNDEFINED_OP: FieldOp = FieldOp {
    prefix: Prefix::None,
    content: Content::Undefined,
    units_max: 0,
    width: 0,
    len_max: 0,
};

/// Indexes a profile's field table by number at compile time, and checks that the table
/// is sorted, numbered 2..=128 and sane.
pub(crate) const fn specs_of(fields: &'static [FieldSpec]) -> [Option<&'static FieldSpec>; 129] {
    let mut specs = [None; 129];
    let mut i = 0;
    let mut previous = 1u8;
    while i < fields.len() {
        let f = &fields[i];
        assert!(f.number > previous, "field table must be sorted, from 2");
        assert!(f.number <= 128);
        assert!(f.len_max > 0 && f.len_max <= 999);
        assert!(!matches!(f.length, LengthKind::LlVar) || f.len_max <= 99);
        specs[f.number as usize] = Some(f);
        previous = f.number;
        i += 1;
    }
    specs
}

/// Works out every field's [`FieldOp`] for a profile at compile time.
/// A field past 64 is left undefined when the profile has no secondary bitmap.
pub(crate) const fn ops_of(
    fields: &[FieldSpec],
    numbers: NumberEncoding,
    binary: BinaryEncoding,
    secondary_bitmap: bool,
) -> [FieldOp; 128] {
    let mut ops = [UNDEFINED_OP; 128];
    let mut i = 0;
    while i < fields.len() && (secondary_bitmap || fields[i].number <= 64) {
        let f = &fields[i];
        let bcd = matches!(numbers, NumberEncoding::Bcd);
        let prefix = match (f.length, bcd) {
            (LengthKind::Fixed, _) => Prefix::None,
            (LengthKind::LlVar, true) => Prefix::Bcd1,
            (LengthKind::LllVar, true) => Prefix::Bcd2,
            (LengthKind::LlVar, false) => Prefix::Ascii2,
            (LengthKind::LllVar, false) => Prefix::Ascii3,
        };
        let fixed = matches!(f.length, LengthKind::Fixed);
        let pad_first = fixed && f.len_max % 2 == 1 && matches!(f.align, Align::Right);
        // Track data is written pad last: a fixed odd track field would need its own case.
        assert!(!(pad_first && bcd && matches!(f.charset, Charset::Z)));
        let hex = matches!(binary, BinaryEncoding::HexAscii);
        let content = match (f.charset, bcd) {
            (Charset::N, true) if pad_first => Content::PackedDigitsPadFirst,
            (Charset::N, true) => Content::PackedDigits,
            (Charset::Z, true) => Content::PackedTrack,
            (Charset::N, false) => Content::AsciiDigits,
            (Charset::Z, false) => Content::AsciiTrack,
            (Charset::B, _) if hex => Content::Hex,
            (Charset::B, _) => Content::Bytes,
            (Charset::An | Charset::Ans, _) => Content::Text,
        };
        let units_max = content.units(f.len_max as usize);
        assert!(units_max <= 999, "a length prefix has three digits at most");
        let width = match prefix {
            Prefix::None => content.wire_bytes(units_max),
            _ => prefix.bytes(),
        };
        ops[field_index(f.number)] = FieldOp {
            prefix,
            content,
            units_max: units_max as u16,
            width: width as u16,
            len_max: f.len_max,
        };
        i += 1;
    }
    ops
}

/// Where field `number` (1..=128) is in a table of 128: at its number, but field 128 at 0
/// (no field is numbered 0). A number from a bitmap needs no bounds check this way.
#[inline(always)]
pub(crate) const fn field_index(number: u8) -> usize {
    (number % 128) as usize
}

impl Profile {
    /// How to read and write field `number`; undefined outside 1..=128.
    #[inline(always)]
    pub(crate) fn op(&self, number: u8) -> FieldOp {
        if number.wrapping_sub(1) < 128 {
            self.ops[field_index(number)]
        } else {
            UNDEFINED_OP
        }
    }

    /// The spec of field `number`, if the profile defines it.
    #[inline]
    pub fn field(&self, number: u8) -> Option<&'static FieldSpec> {
        *self.specs.get(number as usize)?
    }

    /// Every field the profile defines, in ascending order.
    pub fn fields(&self) -> &'static [FieldSpec] {
        self.fields
    }

    /// The highest field number a message of this profile can carry.
    pub const fn field_number_max(&self) -> u8 {
        if self.secondary_bitmap { 128 } else { 64 }
    }

    /// Looks a profile up by its name (`cup-pos`, `iso87-ascii`).
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        PROFILES.iter().copied().find(|p| p.name == name)
    }
}

/// Every profile poskit ships.
pub static PROFILES: &[&Profile] = &[&crate::profile::CUP_POS, &crate::profile::ISO87_ASCII];

/// Shorthand constructors used by the profile tables.
pub(crate) const fn fixed(
    number: u8,
    charset: Charset,
    len: u16,
    name_en: &'static str,
    name_zh: &'static str,
) -> FieldSpec {
    FieldSpec {
        number,
        name_en,
        name_zh,
        charset,
        length: LengthKind::Fixed,
        len_max: len,
        align: Align::Right,
    }
}

pub(crate) const fn llvar(
    number: u8,
    charset: Charset,
    len_max: u16,
    name_en: &'static str,
    name_zh: &'static str,
) -> FieldSpec {
    FieldSpec {
        number,
        name_en,
        name_zh,
        charset,
        length: LengthKind::LlVar,
        len_max,
        align: Align::Left,
    }
}

pub(crate) const fn lllvar(
    number: u8,
    charset: Charset,
    len_max: u16,
    name_en: &'static str,
    name_zh: &'static str,
) -> FieldSpec {
    FieldSpec {
        number,
        name_en,
        name_zh,
        charset,
        length: LengthKind::LllVar,
        len_max,
        align: Align::Left,
    }
}
