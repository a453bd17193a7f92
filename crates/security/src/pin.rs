//! PIN blocks, ISO 9564 format 0 (ANSI X9.8 with PAN), `spec/cup-pos.md` §3.4 and the SM4
//! variant of §3.6.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::engine::{CipherFamily, Engine};
use crate::{SecretKey, SecurityError};

/// A PIN: 4 to 12 decimal digits. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Pin {
    digits: Vec<u8>,
}

impl Pin {
    pub fn new(text: &str) -> Result<Pin, SecurityError> {
        let b = text.as_bytes();
        if !(4..=12).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
            return Err(SecurityError::PinFormat);
        }
        Ok(Pin { digits: b.to_vec() })
    }

    /// The PIN's ASCII digits.
    pub fn dangerous_expose(&self) -> &[u8] {
        &self.digits
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// Which block layout: 8 bytes for DES/3DES, 16 bytes for SM4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinBlockFormat {
    /// ISO 9564 format 0, 8 bytes.
    Iso0,
    /// The SM4 variant: 16 bytes, PAN field of 20 zeros and 12 PAN digits.
    Iso0Sm4,
}

impl PinBlockFormat {
    pub const fn block_bytes(self) -> usize {
        match self {
            PinBlockFormat::Iso0 => 8,
            PinBlockFormat::Iso0Sm4 => 16,
        }
    }

    const fn family(self) -> CipherFamily {
        match self {
            PinBlockFormat::Iso0 => CipherFamily::TripleDes,
            PinBlockFormat::Iso0Sm4 => CipherFamily::Sm4,
        }
    }
}

/// A PIN block, clear or encrypted. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct PinBlock {
    bytes: Vec<u8>,
}

impl PinBlock {
    pub fn from_bytes(bytes: &[u8]) -> PinBlock {
        PinBlock {
            bytes: bytes.to_vec(),
        }
    }

    pub fn dangerous_expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinBlock({} bytes)", self.bytes.len())
    }
}

/// The 12 PAN digits format 0 uses: the rightmost twelve excluding the check digit.
fn pan_digits(pan: &str) -> Result<&[u8], SecurityError> {
    let b = pan.as_bytes();
    if !(13..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return Err(SecurityError::PanFormat);
    }
    Ok(&b[b.len() - 13..b.len() - 1])
}

fn pack_nibbles(nibbles: &[u8], out: &mut [u8]) {
    for (o, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
        *o = pair[0] << 4 | pair[1];
    }
}

/// PIN field and PAN field of a block of `n` bytes (nibble values, zeroized on drop).
fn fields(
    pan: &str,
    pin: &Pin,
    n: usize,
) -> Result<(Zeroizing<[u8; 16]>, [u8; 16]), SecurityError> {
    let pan12 = pan_digits(pan)?;
    let digits = pin.dangerous_expose();
    let mut pin_nibbles = Zeroizing::new([0x0Fu8; 32]);
    pin_nibbles[0] = 0;
    pin_nibbles[1] = digits.len() as u8;
    for (slot, d) in pin_nibbles[2..].iter_mut().zip(digits) {
        *slot = d - b'0';
    }
    let mut pin_field = Zeroizing::new([0u8; 16]);
    pack_nibbles(&pin_nibbles[..2 * n], &mut pin_field[..n]);
    let mut pan_nibbles = [0u8; 32];
    for (slot, d) in pan_nibbles[2 * n - 12..2 * n].iter_mut().zip(pan12) {
        *slot = d - b'0';
    }
    let mut pan_field = [0u8; 16];
    pack_nibbles(&pan_nibbles[..2 * n], &mut pan_field[..n]);
    Ok((pin_field, pan_field))
}

/// The clear format 0 PIN block: PIN field XOR PAN field.
pub fn pin_block_format0(
    format: PinBlockFormat,
    pan: &str,
    pin: &Pin,
) -> Result<PinBlock, SecurityError> {
    let n = format.block_bytes();
    let (mut block, pan_field) = fields(pan, pin, n)?;
    for (b, p) in block[..n].iter_mut().zip(&pan_field[..n]) {
        *b ^= p;
    }
    Ok(PinBlock::from_bytes(&block[..n]))
}

/// The format 0 PIN block encrypted under the PIK (DES/3DES by key length, or SM4).
pub fn encrypt_pin_block(
    format: PinBlockFormat,
    pik: &SecretKey,
    pan: &str,
    pin: &Pin,
) -> Result<PinBlock, SecurityError> {
    let engine = Engine::new(format.family(), pik.dangerous_expose())?;
    let mut block = pin_block_format0(format, pan, pin)?;
    engine.encrypt(&mut block.bytes);
    Ok(block)
}

/// Decrypts a PIN block with the PIK and recovers the PIN, checking that the block is
/// format 0 for this PAN.
pub fn decrypt_pin_block(
    format: PinBlockFormat,
    pik: &SecretKey,
    pan: &str,
    block: &[u8],
) -> Result<Pin, SecurityError> {
    let n = format.block_bytes();
    if block.len() != n {
        return Err(SecurityError::PinBlockLength {
            needed: n,
            len: block.len(),
        });
    }
    let engine = Engine::new(format.family(), pik.dangerous_expose())?;
    let pan12 = pan_digits(pan)?;
    let mut clear = Zeroizing::new([0u8; 16]);
    clear[..n].copy_from_slice(block);
    engine.decrypt(&mut clear[..n]);
    let mut pan_nibbles = [0u8; 32];
    for (slot, d) in pan_nibbles[2 * n - 12..2 * n].iter_mut().zip(pan12) {
        *slot = d - b'0';
    }
    let mut nibbles = Zeroizing::new([0u8; 32]);
    for i in 0..n {
        let pan_byte = pan_nibbles[2 * i] << 4 | pan_nibbles[2 * i + 1];
        let b = clear[i] ^ pan_byte;
        nibbles[2 * i] = b >> 4;
        nibbles[2 * i + 1] = b & 0x0F;
    }
    let len = nibbles[1] as usize;
    let well_formed = nibbles[0] == 0
        && (4..=12).contains(&len)
        && nibbles[2..2 + len].iter().all(|&d| d <= 9)
        && nibbles[2 + len..2 * n].iter().all(|&f| f == 0x0F);
    if !well_formed {
        return Err(SecurityError::PinBlockInvalid);
    }
    Ok(Pin {
        digits: nibbles[2..2 + len].iter().map(|d| b'0' + d).collect(),
    })
}
