//! ISO 8583 codec for China UnionPay-style POS traffic.
//!
//! - Field specs are data ([`Profile`]): [`CUP_POS`] (packed BCD, BCD lengths, TPDU + header
//!   framing) and [`ISO87_ASCII`] (ISO 8583:1987, ASCII throughout).
//! - [`Message::decode`] is zero-copy and allocation-free: field values borrow the input.
//!   It is bounded ([`MESSAGE_BYTES_MAX`]) and never panics; every failure names the part,
//!   the byte offset and the reason.
//! - [`MessageBuilder`] checks each value as it is set, so that encoding into a reusable
//!   buffer cannot fail.
//! - [`frame`] handles the CUP framing; [`describe`] prints a message for people, masking
//!   card data unless asked.
//!
//! The codec does no I/O and knows nothing of keys: the MAC is computed by
//! `poskit-security` over [`Message::mac_input`].

mod chars;
mod decode;
pub mod describe;
mod digits;
mod encode;
mod error;
pub mod frame;
pub mod fuzzing;
pub mod mask;
mod profile;
pub mod sample;
pub mod spec;
pub mod subfield;

pub use decode::{Field, Message, Value};
pub use digits::Digits;
pub use encode::MessageBuilder;
pub use error::{DecodeError, DecodeErrorKind, EncodeError, Part};
pub use frame::{Frame, Header, Tpdu};
pub use profile::{CUP_POS, ISO87_ASCII};
pub use spec::{FieldSpec, Profile};

/// The largest message (after framing) any decoder accepts, in bytes. A CUP POS message is
/// far smaller; the bound exists so that hostile input cannot make us read or allocate more.
pub const MESSAGE_BYTES_MAX: usize = 8192;

/// Field 0: message type indicator, four ASCII digits (`0200`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mti(pub [u8; 4]);

impl Mti {
    /// Parses four decimal digits.
    pub fn parse(text: &str) -> Option<Mti> {
        let b = text.as_bytes();
        (b.len() == 4 && b.iter().all(u8::is_ascii_digit)).then(|| Mti([b[0], b[1], b[2], b[3]]))
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII digits.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The MTI of the response to this request (`0200` → `0210`): the third digit + 1.
    pub fn response(&self) -> Mti {
        let mut m = self.0;
        if m[2] < b'9' {
            m[2] += 1;
        }
        Mti(m)
    }
}

impl std::fmt::Display for Mti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Uppercase hexadecimal of `bytes`.
pub fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests;
