//! Decode and encode errors: each names the field (when there is one), the byte offset and
//! the reason.

use std::fmt;

/// Where in a message an error was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Length,
    Tpdu,
    Header,
    Mti,
    Bitmap,
    Field(u8),
    /// After the last field.
    End,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Length => f.write_str("frame length"),
            Part::Tpdu => f.write_str("TPDU"),
            Part::Header => f.write_str("header"),
            Part::Mti => f.write_str("MTI"),
            Part::Bitmap => f.write_str("bitmap"),
            Part::Field(n) => write!(f, "field {n}"),
            Part::End => f.write_str("end of message"),
        }
    }
}

/// Why decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input is larger than the bound every decoder enforces.
    TooLarge { len: usize, len_max: usize },
    /// The input ends before the part does.
    Truncated { needed: usize, available: usize },
    /// The frame's length prefix does not match the bytes that follow it.
    FrameLength { declared: usize, actual: usize },
    /// A nibble above 9 where a BCD digit belongs.
    NotBcd { byte: u8 },
    /// A byte that is not an ASCII digit where a digit belongs.
    NotDigit { byte: u8 },
    /// A byte that is not a hexadecimal ASCII character.
    NotHex { byte: u8 },
    /// A length prefix above the field's maximum.
    LengthOverMax { len: usize, len_max: usize },
    /// The bitmap announces a field the profile does not define.
    UndefinedField,
    /// The bitmap announces no field at all.
    EmptyBitmap,
    /// A hexadecimal field whose length prefix counts an odd number of characters.
    OddHexLength { len: usize },
    /// Bytes after the last field the bitmap announces.
    TrailingBytes { count: usize },
}

/// A decode failure: part, byte offset from the start of the input, reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub part: Part,
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) const fn new(part: Part, offset: usize, kind: DecodeErrorKind) -> Self {
        DecodeError { part, offset, kind }
    }

    /// The field the error is in, if it is in a field.
    pub fn field(&self) -> Option<u8> {
        match self.part {
            Part::Field(n) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn shifted(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: ", self.part, self.offset)?;
        match self.kind {
            DecodeErrorKind::TooLarge { len, len_max } => {
                write!(
                    f,
                    "message of {len} bytes is larger than the {len_max}-byte limit"
                )
            }
            DecodeErrorKind::Truncated { needed, available } => {
                write!(f, "needs {needed} bytes but only {available} remain")
            }
            DecodeErrorKind::FrameLength { declared, actual } => {
                write!(f, "length prefix says {declared} bytes but {actual} follow")
            }
            DecodeErrorKind::NotBcd { byte } => write!(f, "byte {byte:02X} is not packed BCD"),
            DecodeErrorKind::NotDigit { byte } => write!(f, "byte {byte:02X} is not a digit"),
            DecodeErrorKind::NotHex { byte } => {
                write!(f, "byte {byte:02X} is not a hexadecimal character")
            }
            DecodeErrorKind::LengthOverMax { len, len_max } => {
                write!(f, "length {len} exceeds the maximum {len_max}")
            }
            DecodeErrorKind::UndefinedField => {
                f.write_str("the profile does not define this field")
            }
            DecodeErrorKind::OddHexLength { len } => {
                write!(f, "{len} hexadecimal characters do not make whole bytes")
            }
            DecodeErrorKind::EmptyBitmap => f.write_str("the bitmap announces no field"),
            DecodeErrorKind::TrailingBytes { count } => {
                write!(f, "{count} bytes after the last field")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a value cannot be put into a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("field {field} is not defined in profile {profile}")]
    UndefinedField { field: u8, profile: &'static str },
    #[error("field {field} must be exactly {len} long, got {got}")]
    WrongLength { field: u8, len: usize, got: usize },
    #[error("field {field} is at most {len_max} long, got {got}")]
    TooLong {
        field: u8,
        len_max: usize,
        got: usize,
    },
    #[error("field {field} ({charset}) cannot hold {what:?} at position {position}")]
    BadCharacter {
        field: u8,
        charset: &'static str,
        what: char,
        position: usize,
    },
    #[error("MTI must be 4 digits, got {got:?}")]
    BadMti { got: String },
    #[error("the message would exceed the {len_max}-byte limit")]
    MessageTooLarge { len_max: usize },
    #[error("{what} must be {len} hexadecimal bytes")]
    BadFrameValue { what: &'static str, len: usize },
}
