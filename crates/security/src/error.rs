/// Why a security operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// Key bytes of a length no supported cipher takes (DES 8, 3DES 16 or 24, SM4 16).
    #[error("a key must be 8, 16 or 24 bytes (16 for SM4), got {len}")]
    KeyLength { len: usize },
    /// A key given as text that is not hexadecimal.
    #[error("key is not hexadecimal")]
    KeyNotHex,
    /// The algorithm needs a key of another length (X9.19 and SM4 need 16 bytes).
    #[error("{algorithm} needs a {needed}-byte key, got {len}")]
    KeyLengthFor {
        algorithm: &'static str,
        needed: usize,
        len: usize,
    },
    /// A PIN that is not 4 to 12 decimal digits.
    #[error("a PIN must be 4 to 12 digits")]
    PinFormat,
    /// A PAN that is not 13 to 19 decimal digits.
    #[error("a PAN must be 13 to 19 digits")]
    PanFormat,
    /// A PIN block of the wrong size for its format.
    #[error("a PIN block of this format is {needed} bytes, got {len}")]
    PinBlockLength { needed: usize, len: usize },
    /// A decrypted PIN block that is not ISO 9564 format 0 for this PAN (wrong key, wrong
    /// PAN, or a corrupted block).
    #[error("the PIN block does not decrypt to a format 0 block (wrong PIK or PAN?)")]
    PinBlockInvalid,
    /// Data to encrypt under a key-encryption key that is not whole cipher blocks.
    #[error("wrapped key data must be whole {block}-byte blocks, got {len} bytes")]
    NotWholeBlocks { block: usize, len: usize },
    /// Field 62 of a sign-in response of the wrong size for its 60.3 layout.
    #[error("field 62 for key layout {layout} is {needed} bytes, got {len}")]
    Field62Length {
        layout: &'static str,
        needed: usize,
        len: usize,
    },
    /// A working key whose check value does not match: the key was corrupted or wrapped
    /// under another TMK.
    #[error("check value of the {key} does not match (is the TMK right?)")]
    CheckValueMismatch { key: &'static str },
    /// A 60.3 network management code that is not a key layout.
    #[error("60.3 code {code:?} is not a sign-in key layout (001, 003, 004)")]
    UnknownLayout { code: String },
}
