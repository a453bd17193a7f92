//! PINs and PIN blocks: ISO 9564 format 0 (ANSI X9.8 with PAN), `spec/cup-pos.md` §3.4,
//! and its SM4 variant with 16-byte blocks, §3.6. Field 52 carries the encrypted block.
//!
//! | format | PIN field | PAN field | cipher |
//! |---|---|---|---|
//! | [`PinBlockFormat::Iso0`] | `0N` + PIN + `F`… to 16 nibbles | `0000` + 12 PAN digits | DES / 3DES by PIK length |
//! | [`PinBlockFormat::Iso0Sm4`] | `0N` + PIN + `F`… to 32 nibbles | 20 × `0` + 12 PAN digits | SM4 |
//!
//! The 12 PAN digits are the rightmost twelve excluding the check digit.
//!
//! A terminal calls [`encrypt_pin`]; a host calls [`decrypt_pin`] on field 52, which
//! refuses any block that is not format 0 for that PAN. The two steps are also available
//! separately ([`pin_block_format0`], [`encrypt_pin_block`], [`decrypt_pin_block`],
//! [`ClearPinBlock::pin`]).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::engine::{BLOCK_BYTES_MAX, CipherFamily, CipherKey, Engine};
use crate::error::PinBlockDefect;
use crate::{SecretKey, SecurityError, ct};

/// The fewest digits in a PIN (§3.4).
pub const PIN_DIGITS_MIN: usize = 4;
/// The most digits in a PIN (§3.4; field 26 commonly says 12).
pub const PIN_DIGITS_MAX: usize = 12;
/// The shortest PAN a format 0 block can be made with (12 digits and a check digit).
pub const PAN_DIGITS_MIN: usize = 13;
/// The longest PAN (field 2 is n..19).
pub const PAN_DIGITS_MAX: usize = 19;
/// PAN digits that go into the PAN field.
const PAN_DIGITS_USED: usize = 12;

/// A PIN: 4 to 12 decimal digits.
///
/// Zeroized on drop; `Debug` prints `Pin(****)` whatever the length; no `Display`, no
/// `Serialize`. Equality is compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Pin {
    /// ASCII digits.
    digits: Vec<u8>,
}

impl Pin {
    /// A PIN of 4 to 12 ASCII decimal digits, else [`SecurityError::PinFormat`].
    pub fn new(text: &str) -> Result<Pin, SecurityError> {
        let digits = text.as_bytes();
        if !(PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&digits.len())
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return Err(SecurityError::PinFormat);
        }
        Ok(Pin {
            digits: digits.to_vec(),
        })
    }

    /// The number of digits, 4 to 12.
    pub fn digit_count(&self) -> usize {
        self.digits.len()
    }

    /// The PIN's ASCII digits.
    pub fn dangerous_expose(&self) -> &[u8] {
        &self.digits
    }
}

impl PartialEq for Pin {
    fn eq(&self, other: &Pin) -> bool {
        ct::bytes_eq(&self.digits, &other.digits)
    }
}

impl Eq for Pin {}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// Which block layout: 8 bytes under DES/3DES, or 16 bytes under SM4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinBlockFormat {
    /// ISO 9564 format 0, 8 bytes (§3.4); encrypted with DES or 3DES by the PIK's length.
    Iso0,
    /// The SM4 variant of format 0, 16 bytes (§3.6); encrypted with SM4.
    Iso0Sm4,
}

impl PinBlockFormat {
    /// The block size in bytes: 8 or 16.
    pub const fn block_bytes(self) -> usize {
        self.family().block_bytes()
    }

    /// The cipher family a PIK for this format belongs to.
    pub const fn family(self) -> CipherFamily {
        match self {
            PinBlockFormat::Iso0 => CipherFamily::Des,
            PinBlockFormat::Iso0Sm4 => CipherFamily::Sm4,
        }
    }
}

/// A clear (unencrypted) PIN block: PIN field XOR PAN field.
///
/// Zeroized on drop; `Debug` shows only the format.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClearPinBlock {
    #[zeroize(skip)]
    format: PinBlockFormat,
    bytes: [u8; BLOCK_BYTES_MAX],
}

/// An encrypted PIN block, as field 52 carries it.
///
/// Zeroized on drop; `Debug` shows only the format. (Encrypted, but still never logged:
/// DESIGN.md invariant 7.)
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptedPinBlock {
    #[zeroize(skip)]
    format: PinBlockFormat,
    bytes: [u8; BLOCK_BYTES_MAX],
}

/// Copies `bytes` into a block buffer after checking their length against the format.
fn block_of(format: PinBlockFormat, bytes: &[u8]) -> Result<[u8; BLOCK_BYTES_MAX], SecurityError> {
    let needed = format.block_bytes();
    if bytes.len() != needed {
        return Err(SecurityError::PinBlockLength {
            needed,
            len: bytes.len(),
        });
    }
    let mut block = [0u8; BLOCK_BYTES_MAX];
    block[..needed].copy_from_slice(bytes);
    Ok(block)
}

impl ClearPinBlock {
    /// A clear block from its bytes (8 for [`PinBlockFormat::Iso0`], 16 for
    /// [`PinBlockFormat::Iso0Sm4`]).
    pub fn from_bytes(
        format: PinBlockFormat,
        bytes: &[u8],
    ) -> Result<ClearPinBlock, SecurityError> {
        Ok(ClearPinBlock {
            format,
            bytes: block_of(format, bytes)?,
        })
    }

    pub fn format(&self) -> PinBlockFormat {
        self.format
    }

    /// The block's bytes (8 or 16).
    pub fn dangerous_expose(&self) -> &[u8] {
        &self.bytes[..self.format.block_bytes()]
    }

    /// Recovers the PIN, checking that this is a format 0 block for `pan`: control nibble
    /// 0, length 4 to 12, decimal PIN digits, `F` filler. A wrong PIK or PAN fails here
    /// with [`SecurityError::PinBlockInvalid`] (or, rarely, yields another PIN: a PIN
    /// block has no integrity check of its own).
    pub fn pin(&self, pan: &str) -> Result<Pin, SecurityError> {
        let n = self.format.block_bytes();
        let pan_field = pan_field(self.format, pan)?;
        let mut nibbles = Zeroizing::new([0u8; 2 * BLOCK_BYTES_MAX]);
        for (i, (b, p)) in self.bytes[..n].iter().zip(&pan_field[..n]).enumerate() {
            let pin_byte = b ^ p;
            nibbles[2 * i] = pin_byte >> 4;
            nibbles[2 * i + 1] = pin_byte & 0x0F;
        }
        let nibbles = &nibbles[..2 * n];
        let invalid = |defect| Err(SecurityError::PinBlockInvalid { defect });
        if nibbles[0] != 0 {
            return invalid(PinBlockDefect::NotFormat0);
        }
        let digit_count = usize::from(nibbles[1]);
        if !(PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&digit_count) {
            return invalid(PinBlockDefect::PinLengthOutOfRange);
        }
        let (digits, filler) = nibbles[2..].split_at(digit_count);
        if !digits.iter().all(|&d| d <= 9) {
            return invalid(PinBlockDefect::PinDigitNotDecimal);
        }
        if !filler.iter().all(|&f| f == 0x0F) {
            return invalid(PinBlockDefect::FillerNotF);
        }
        let pin = Pin {
            digits: digits.iter().map(|d| b'0' + d).collect(),
        };
        assert_eq!(pin.digit_count(), digit_count);
        Ok(pin)
    }
}

impl EncryptedPinBlock {
    /// An encrypted block as received in field 52 (8 bytes for [`PinBlockFormat::Iso0`],
    /// 16 for [`PinBlockFormat::Iso0Sm4`]).
    pub fn from_bytes(
        format: PinBlockFormat,
        bytes: &[u8],
    ) -> Result<EncryptedPinBlock, SecurityError> {
        Ok(EncryptedPinBlock {
            format,
            bytes: block_of(format, bytes)?,
        })
    }

    pub fn format(&self) -> PinBlockFormat {
        self.format
    }

    /// The block's bytes (8 or 16), for field 52.
    pub fn dangerous_expose(&self) -> &[u8] {
        &self.bytes[..self.format.block_bytes()]
    }
}

impl fmt::Debug for ClearPinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClearPinBlock({:?}, ****)", self.format)
    }
}

impl fmt::Debug for EncryptedPinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedPinBlock({:?}, ****)", self.format)
    }
}

impl PartialEq for ClearPinBlock {
    fn eq(&self, other: &ClearPinBlock) -> bool {
        self.format == other.format
            && ct::bytes_eq(self.dangerous_expose(), other.dangerous_expose())
    }
}

impl Eq for ClearPinBlock {}

impl PartialEq for EncryptedPinBlock {
    fn eq(&self, other: &EncryptedPinBlock) -> bool {
        self.format == other.format
            && ct::bytes_eq(self.dangerous_expose(), other.dangerous_expose())
    }
}

impl Eq for EncryptedPinBlock {}

/// The PAN field of a block of this format: zeros, then the 12 PAN digits left of the
/// check digit, packed two to a byte. Refuses a PAN that is not 13 to 19 digits.
fn pan_field(format: PinBlockFormat, pan: &str) -> Result<[u8; BLOCK_BYTES_MAX], SecurityError> {
    let pan = pan.as_bytes();
    if !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&pan.len())
        || !pan.iter().all(u8::is_ascii_digit)
    {
        return Err(SecurityError::PanFormat);
    }
    let used = &pan[pan.len() - 1 - PAN_DIGITS_USED..pan.len() - 1];
    assert_eq!(used.len(), PAN_DIGITS_USED);
    let n = format.block_bytes();
    let mut field = [0u8; BLOCK_BYTES_MAX];
    // The 12 digits fill the last 6 bytes of the block.
    for (byte, pair) in field[n - PAN_DIGITS_USED / 2..n]
        .iter_mut()
        .zip(used.chunks_exact(2))
    {
        *byte = (pair[0] - b'0') << 4 | (pair[1] - b'0');
    }
    Ok(field)
}

/// The clear block of `format` for this PAN and PIN.
fn clear_block(
    format: PinBlockFormat,
    pan: &str,
    pin: &Pin,
) -> Result<ClearPinBlock, SecurityError> {
    let n = format.block_bytes();
    let pan_field = pan_field(format, pan)?;
    // PIN field as nibbles: 0, length, digits, F filler.
    let mut nibbles = Zeroizing::new([0x0Fu8; 2 * BLOCK_BYTES_MAX]);
    let digits = pin.dangerous_expose();
    assert!((PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&digits.len()));
    nibbles[0] = 0;
    nibbles[1] = digits.len() as u8; // 4..=12 fits a nibble
    for (slot, d) in nibbles[2..].iter_mut().zip(digits) {
        *slot = d - b'0';
    }
    let mut block = ClearPinBlock {
        format,
        bytes: [0u8; BLOCK_BYTES_MAX],
    };
    for (i, byte) in block.bytes[..n].iter_mut().enumerate() {
        *byte = (nibbles[2 * i] << 4 | nibbles[2 * i + 1]) ^ pan_field[i];
    }
    Ok(block)
}

/// The clear ISO 9564 format 0 PIN block, 8 bytes (§3.4).
pub fn pin_block_format0(pan: &str, pin: &Pin) -> Result<ClearPinBlock, SecurityError> {
    clear_block(PinBlockFormat::Iso0, pan, pin)
}

/// The clear SM4 variant of the format 0 block, 16 bytes (§3.6).
pub fn pin_block_format0_sm4(pan: &str, pin: &Pin) -> Result<ClearPinBlock, SecurityError> {
    clear_block(PinBlockFormat::Iso0Sm4, pan, pin)
}

/// Encrypts a clear block under the PIK: DES (8-byte PIK) or 3DES (16/24) for
/// [`PinBlockFormat::Iso0`], SM4 (16) for [`PinBlockFormat::Iso0Sm4`].
pub fn encrypt_pin_block(
    pik: &SecretKey,
    clear: &ClearPinBlock,
) -> Result<EncryptedPinBlock, SecurityError> {
    let format = clear.format;
    let engine = Engine::new(format.family(), pik.dangerous_expose())?;
    let mut block = EncryptedPinBlock {
        format,
        bytes: clear.bytes,
    };
    engine.encrypt(&mut block.bytes[..format.block_bytes()]);
    Ok(block)
}

/// Decrypts a block under the PIK into the clear block (not yet checked: see
/// [`ClearPinBlock::pin`]).
pub fn decrypt_pin_block(
    pik: &SecretKey,
    block: &EncryptedPinBlock,
) -> Result<ClearPinBlock, SecurityError> {
    CipherKey::new(block.format.family(), pik)?.decrypt_pin_block(block)
}

impl CipherKey {
    /// [`decrypt_pin_block`] with this prepared PIK. Errors: the block's format is not of
    /// this key's family ([`SecurityError::PinKeyFamily`]).
    pub fn decrypt_pin_block(
        &self,
        block: &EncryptedPinBlock,
    ) -> Result<ClearPinBlock, SecurityError> {
        let format = block.format;
        if format.family() != self.family() {
            return Err(SecurityError::PinKeyFamily {
                format: format.family().as_str(),
                family: self.family().as_str(),
            });
        }
        let mut clear = ClearPinBlock {
            format,
            bytes: block.bytes,
        };
        self.engine
            .decrypt(&mut clear.bytes[..format.block_bytes()]);
        Ok(clear)
    }

    /// [`decrypt_pin`] with this prepared PIK.
    pub fn decrypt_pin(&self, pan: &str, block: &EncryptedPinBlock) -> Result<Pin, SecurityError> {
        self.decrypt_pin_block(block)?.pin(pan)
    }
}

/// The terminal's side: the PIN block of `format` for this PAN and PIN, encrypted under
/// the PIK — what goes into field 52.
pub fn encrypt_pin(
    format: PinBlockFormat,
    pik: &SecretKey,
    pan: &str,
    pin: &Pin,
) -> Result<EncryptedPinBlock, SecurityError> {
    // Check the key before the PIN and PAN, so a bad key is reported first.
    Engine::new(format.family(), pik.dangerous_expose())?;
    encrypt_pin_block(pik, &clear_block(format, pan, pin)?)
}

/// The host's side: decrypts field 52 with the PIK and recovers the PIN, refusing a
/// block that is not format 0 for this PAN ([`SecurityError::PinBlockInvalid`]).
pub fn decrypt_pin(
    pik: &SecretKey,
    pan: &str,
    block: &EncryptedPinBlock,
) -> Result<Pin, SecurityError> {
    decrypt_pin_block(pik, block)?.pin(pan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &str = "6222021234567890128";

    fn pin(text: &str) -> Pin {
        Pin::new(text).unwrap()
    }

    #[test]
    fn pin_block_matches_the_worked_example_of_the_spec() {
        // §3.4: PIN 123456, PAN 123456789012345678 → PAN field 0000678901234567,
        // PIN field 06123456FFFFFFFF, block 061253DFFEDCBA98.
        let block = pin_block_format0("123456789012345678", &pin("123456")).unwrap();
        assert_eq!(
            block.dangerous_expose(),
            [0x06, 0x12, 0x53, 0xDF, 0xFE, 0xDC, 0xBA, 0x98]
        );
        assert_eq!(
            &pan_field(PinBlockFormat::Iso0, "123456789012345678").unwrap()[..8],
            [0x00, 0x00, 0x67, 0x89, 0x01, 0x23, 0x45, 0x67]
        );
        assert_eq!(block.pin("123456789012345678").unwrap(), pin("123456"));
    }

    #[test]
    fn the_sm4_block_puts_twenty_zeros_before_the_twelve_pan_digits() {
        let field = pan_field(PinBlockFormat::Iso0Sm4, "123456789012345678").unwrap();
        assert_eq!(field[..10], [0; 10]);
        assert_eq!(field[10..], [0x67, 0x89, 0x01, 0x23, 0x45, 0x67]);
        let block = pin_block_format0_sm4("123456789012345678", &pin("123456")).unwrap();
        assert_eq!(block.dangerous_expose().len(), 16);
        assert_eq!(
            block.dangerous_expose(),
            [
                0x06, 0x12, 0x34, 0x56, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x98, 0x76, 0xFE, 0xDC,
                0xBA, 0x98
            ]
        );
    }

    #[test]
    fn pins_are_4_to_12_digits_and_pans_13_to_19() {
        for ok in ["1234", "000000", "123456789012"] {
            assert_eq!(pin(ok).digit_count(), ok.len());
        }
        for bad in ["", "123", "1234567890123", "12a4", "12 34", "１２３４"] {
            assert_eq!(
                Pin::new(bad).unwrap_err(),
                SecurityError::PinFormat,
                "{bad:?}"
            );
        }
        let p = pin("1234");
        for ok in ["1234567890123", "1234567890123456789"] {
            assert!(pin_block_format0(ok, &p).is_ok());
        }
        for bad in [
            "123456789012",
            "12345678901234567890",
            "123456789012345678X",
            "",
        ] {
            assert_eq!(
                pin_block_format0(bad, &p).unwrap_err(),
                SecurityError::PanFormat,
                "{bad:?}"
            );
            assert_eq!(
                pin_block_format0_sm4(bad, &p).unwrap_err(),
                SecurityError::PanFormat
            );
        }
    }

    #[test]
    fn secrets_show_no_digits_in_debug_output() {
        let p = pin("987654");
        let clear = pin_block_format0(PAN, &p).unwrap();
        let k = SecretKey::from_hex("0123456789ABCDEF").unwrap();
        let enc = encrypt_pin_block(&k, &clear).unwrap();
        assert_eq!(format!("{p:?}"), "Pin(****)");
        assert_eq!(format!("{clear:?}"), "ClearPinBlock(Iso0, ****)");
        assert_eq!(format!("{enc:?}"), "EncryptedPinBlock(Iso0, ****)");
    }

    /// Encrypts a hand-made clear block, as a faulty terminal or a wrong key would.
    fn encrypted(
        k: &SecretKey,
        format: PinBlockFormat,
        clear_pin_field: &[u8],
    ) -> EncryptedPinBlock {
        let pan_field = pan_field(format, PAN).unwrap();
        let bytes: Vec<u8> = clear_pin_field
            .iter()
            .zip(pan_field)
            .map(|(a, b)| a ^ b)
            .collect();
        let clear = ClearPinBlock::from_bytes(format, &bytes).unwrap();
        encrypt_pin_block(k, &clear).unwrap()
    }

    #[test]
    fn malformed_blocks_are_refused_with_what_is_wrong() {
        let k = SecretKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let cases: [(&[u8], PinBlockDefect); 6] = [
            (
                &[0x16, 0x12, 0x34, 0x56, 0xFF, 0xFF, 0xFF, 0xFF],
                PinBlockDefect::NotFormat0,
            ),
            (
                &[0x03, 0x12, 0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                PinBlockDefect::PinLengthOutOfRange,
            ),
            (
                &[0x0D, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x3F],
                PinBlockDefect::PinLengthOutOfRange,
            ),
            (
                &[0x06, 0x12, 0x3A, 0x56, 0xFF, 0xFF, 0xFF, 0xFF],
                PinBlockDefect::PinDigitNotDecimal,
            ),
            (
                &[0x04, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE],
                PinBlockDefect::FillerNotF,
            ),
            (
                &[0x04, 0x12, 0x34, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF],
                PinBlockDefect::FillerNotF,
            ),
        ];
        for (field, defect) in cases {
            let block = encrypted(&k, PinBlockFormat::Iso0, field);
            assert_eq!(
                decrypt_pin(&k, PAN, &block).unwrap_err(),
                SecurityError::PinBlockInvalid { defect },
                "{field:02X?}"
            );
        }
        // A well-formed block of the same shape decrypts.
        let good = encrypted(
            &k,
            PinBlockFormat::Iso0,
            &[0x04, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        );
        assert_eq!(decrypt_pin(&k, PAN, &good).unwrap(), pin("1234"));
        // SM4: the filler runs to the 32nd nibble.
        let mut field = [0xFFu8; 16];
        field[..3].copy_from_slice(&[0x04, 0x12, 0x34]);
        field[15] = 0xF0;
        let block = encrypted(&k, PinBlockFormat::Iso0Sm4, &field);
        assert_eq!(
            decrypt_pin(&k, PAN, &block).unwrap_err(),
            SecurityError::PinBlockInvalid {
                defect: PinBlockDefect::FillerNotF
            }
        );
    }

    #[test]
    fn a_block_decrypted_with_another_pan_is_refused() {
        let k = SecretKey::from_hex("0123456789ABCDEF").unwrap();
        let block = encrypt_pin(PinBlockFormat::Iso0, &k, PAN, &pin("123456")).unwrap();
        // Another PAN changes the PIN-length nibble's byte and the filler: not format 0.
        assert!(matches!(
            decrypt_pin(&k, "6222029999999999999", &block),
            Err(SecurityError::PinBlockInvalid { .. })
        ));
    }

    #[test]
    fn field_52_of_the_wrong_size_is_refused() {
        for (format, len, needed) in [
            (PinBlockFormat::Iso0, 7, 8),
            (PinBlockFormat::Iso0, 16, 8),
            (PinBlockFormat::Iso0Sm4, 8, 16),
        ] {
            assert_eq!(
                EncryptedPinBlock::from_bytes(format, &vec![0; len]).unwrap_err(),
                SecurityError::PinBlockLength { needed, len }
            );
        }
    }

    #[test]
    fn a_pik_of_the_wrong_family_is_refused() {
        let k8 = SecretKey::from_hex("0123456789ABCDEF").unwrap();
        assert_eq!(
            encrypt_pin(PinBlockFormat::Iso0Sm4, &k8, PAN, &pin("1234")).unwrap_err(),
            SecurityError::KeyLengthFor {
                algorithm: "SM4",
                needed: 16,
                len: 8
            }
        );
        let block = EncryptedPinBlock::from_bytes(PinBlockFormat::Iso0Sm4, &[0; 16]).unwrap();
        assert!(matches!(
            decrypt_pin(&k8, PAN, &block),
            Err(SecurityError::KeyLengthFor { .. })
        ));
    }

    #[test]
    fn a_prepared_pik_decrypts_as_the_one_off_function_does() {
        for (format, hex) in [
            (PinBlockFormat::Iso0, "0123456789ABCDEFFEDCBA9876543210"),
            (PinBlockFormat::Iso0, "0123456789ABCDEF"),
            (PinBlockFormat::Iso0Sm4, "0123456789ABCDEFFEDCBA9876543210"),
        ] {
            let k = SecretKey::from_hex(hex).unwrap();
            let block = encrypt_pin(format, &k, PAN, &pin("246810")).unwrap();
            let prepared = CipherKey::new(format.family(), &k).unwrap();
            assert_eq!(
                prepared
                    .decrypt_pin(PAN, &block)
                    .unwrap()
                    .dangerous_expose(),
                decrypt_pin(&k, PAN, &block).unwrap().dangerous_expose()
            );
            assert_eq!(
                prepared
                    .decrypt_pin(PAN, &block)
                    .unwrap()
                    .dangerous_expose(),
                b"246810"
            );
            // Another PAN: the block is not format 0 for it, prepared or not.
            assert!(matches!(
                prepared.decrypt_pin("6222021234567890136", &block),
                Err(SecurityError::PinBlockInvalid { .. })
            ));
        }
        let k = SecretKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let sm4_block = encrypt_pin(PinBlockFormat::Iso0Sm4, &k, PAN, &pin("1234")).unwrap();
        let des = CipherKey::new(CipherFamily::Des, &k).unwrap();
        assert!(matches!(
            des.decrypt_pin(PAN, &sm4_block),
            Err(SecurityError::PinKeyFamily { .. })
        ));
    }
}
