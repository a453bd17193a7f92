//! The one error type of the security layer.

/// What was wrong with a decrypted PIN block (`spec/cup-pos.md` §3.4). A wrong PIK or a
/// wrong PAN shows up as one of these: the block decrypts, but not to format 0.
///
/// None of them carries the block's digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinBlockDefect {
    /// The first nibble is not 0, the format 0 marker.
    NotFormat0,
    /// The second nibble, the PIN length, is not 4 to 12.
    PinLengthOutOfRange,
    /// A nibble inside the PIN is not a decimal digit.
    PinDigitNotDecimal,
    /// A nibble after the PIN is not the filler `F`.
    FillerNotF,
}

impl PinBlockDefect {
    pub const fn as_str(self) -> &'static str {
        match self {
            PinBlockDefect::NotFormat0 => "the control nibble is not 0 (format 0)",
            PinBlockDefect::PinLengthOutOfRange => "the PIN length nibble is not 4 to 12",
            PinBlockDefect::PinDigitNotDecimal => "a PIN nibble is not a decimal digit",
            PinBlockDefect::FillerNotF => "a filler nibble is not F",
        }
    }
}

impl std::fmt::Display for PinBlockDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a security operation was refused. No variant ever holds key, PIN or PIN-block
/// bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// Key bytes of a length no supported cipher takes: [`crate::SecretKey::from_bytes`]
    /// accepts 8 (DES), 16 (2-key 3DES or SM4) or 24 (3-key 3DES).
    #[error("a key must be 8, 16 or 24 bytes (16 for SM4), got {len}")]
    KeyLength { len: usize },
    /// [`crate::SecretKey::from_hex`] was given text that is not an even number of
    /// hexadecimal digits.
    #[error("a key must be an even number of hexadecimal digits")]
    KeyNotHex,
    /// The algorithm takes keys of one length only: SM4 and X9.19 need 16 bytes.
    #[error("{algorithm} needs a {needed}-byte key, got {len}")]
    KeyLengthFor {
        algorithm: &'static str,
        needed: usize,
        len: usize,
    },
    /// A prepared key ([`crate::CipherKey`]) of another cipher family than the MAC
    /// algorithm runs on (or X9.19, which takes the key itself).
    #[error("{algorithm} does not run on a prepared {family} key")]
    MacKeyFamily {
        algorithm: &'static str,
        family: &'static str,
    },
    /// A prepared PIK ([`crate::CipherKey`]) of another cipher family than the PIN block's
    /// format.
    #[error("a {format} PIN block does not decrypt under a prepared {family} key")]
    PinKeyFamily {
        format: &'static str,
        family: &'static str,
    },
    /// A MAC algorithm name that is not `cup-ecb`, `cup-ecb-sm4` or `x919`.
    #[error("unknown MAC algorithm {name:?} (cup-ecb, cup-ecb-sm4, x919)")]
    UnknownMacAlgorithm { name: String },
    /// A PIN that is not 4 to 12 decimal digits (§3.4).
    #[error("a PIN must be 4 to 12 decimal digits")]
    PinFormat,
    /// A PAN that is not 13 to 19 decimal digits (§3.4 takes 12 digits left of the check
    /// digit, so shorter PANs cannot make a format 0 block).
    #[error("a PAN must be 13 to 19 decimal digits")]
    PanFormat,
    /// PIN-block bytes of the wrong size for their format (8 for ISO 9564 format 0, 16 for
    /// the SM4 variant).
    #[error("a PIN block of this format is {needed} bytes, got {len}")]
    PinBlockLength { needed: usize, len: usize },
    /// A PIN block that does not decrypt to an ISO 9564 format 0 block for this PAN: the
    /// PIK or the PAN is wrong, or the block was corrupted.
    #[error("the PIN block is not a format 0 block for this PAN: {defect} (wrong PIK or PAN?)")]
    PinBlockInvalid { defect: PinBlockDefect },
    /// Data to wrap or unwrap under a key-encryption key that is not whole cipher blocks.
    #[error("wrapped key data must be whole {block_bytes}-byte blocks, got {len} bytes")]
    NotWholeBlocks { block_bytes: usize, len: usize },
    /// A 60.3 network management code that is not a sign-in key layout.
    #[error("60.3 code {code:?} is not a sign-in key layout (001, 003, 004)")]
    UnknownKeyLayout { code: String },
    /// Field 62 of a sign-in response of the wrong size for its 60.3 layout (§3.2).
    #[error("field 62 for key layout {layout} is {needed} bytes, got {len}")]
    Field62Length {
        layout: &'static str,
        needed: usize,
        len: usize,
    },
    /// A working key to put into field 62 of the wrong length for the layout (8 bytes in
    /// 001, 16 in 003 and 004).
    #[error("the {key} for key layout {layout} must be {needed} bytes, got {len}")]
    WorkingKeyLength {
        key: &'static str,
        layout: &'static str,
        needed: usize,
        len: usize,
    },
    /// Layout 004 carries a track-data key and none was given to build it with.
    #[error("key layout 004 carries a TDK and none was given")]
    TrackKeyMissing,
    /// A track-data key was given for a layout that has no place for it (001, 003).
    #[error("key layout {layout} has no TDK slot")]
    TrackKeyUnexpected { layout: &'static str },
    /// A working key whose check value does not match: the key was corrupted, or wrapped
    /// under another TMK.
    #[error("check value of the {key} does not match (is the TMK right?)")]
    CheckValueMismatch { key: &'static str },
}
