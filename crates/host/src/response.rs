//! Building response frames: TPDU swapped, the header's processing requirement set, MTI +
//! 10, fields from owned values; field 64 left as zeros for [`remac`] to compute.

use poskit_codec::frame::{self, Header, Tpdu};
use poskit_codec::{CUP_POS, MessageBuilder, Mti};
use poskit_security::{MAC_BYTES, Mac, MacAlgorithm, SecretKey, compute_mac};

/// Header 处理要求 3: the terminal must sign in again.
pub const REQUIREMENT_SIGN_IN: u8 = 3;

/// A response under construction; values are owned so that the engine can compute them.
/// They sit one after another in one buffer (a field set again takes its new value).
#[derive(Clone, Debug)]
pub struct Reply {
    pub tpdu: Tpdu,
    pub header: Header,
    pub mti: Mti,
    /// (field number, where its value is in `values`), in the order first set.
    fields: Vec<(u8, std::ops::Range<usize>)>,
    values: Vec<u8>,
}

impl Reply {
    /// The response to a request with this TPDU, header and MTI.
    pub fn to(tpdu: &Tpdu, header: &Header, request_mti: Mti) -> Reply {
        Reply {
            tpdu: tpdu.response(),
            header: header.with_processing_requirement(0),
            mti: request_mti.response(),
            fields: Vec::with_capacity(24),
            values: Vec::with_capacity(256),
        }
    }

    pub fn require_sign_in(&mut self) {
        self.header = self.header.with_processing_requirement(REQUIREMENT_SIGN_IN);
    }

    pub fn set(&mut self, number: u8, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        let at = self.values.len()..self.values.len() + value.len();
        self.values.extend_from_slice(value);
        match self.fields.iter_mut().find(|(n, _)| *n == number) {
            Some(slot) => slot.1 = at,
            None => self.fields.push((number, at)),
        }
        self
    }

    pub fn get(&self, number: u8) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, at)| &self.values[at.clone()])
    }

    /// The whole frame, without field 64. A value the profile refuses is left out (and
    /// named in the returned list) rather than failing the response: the engine only sets
    /// values it has checked.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        self.encode_with_mac_slot(false)
    }

    /// The whole frame, with field 64 present as zeros when `mac_slot` (for [`put_mac`] or
    /// [`remac`] to fill in).
    pub fn encode_with_mac_slot(&self, mac_slot: bool) -> (Vec<u8>, Vec<u8>) {
        let mut builder = MessageBuilder::new(&CUP_POS, self.mti);
        let mut refused = Vec::new();
        for (number, at) in &self.fields {
            if *number == 64 {
                continue;
            }
            if builder.set(*number, &self.values[at.clone()]).is_err() {
                refused.push(*number);
            }
        }
        let placeholder = [b'0'; MAC_BYTES];
        if mac_slot {
            // Field 64 is fixed 8 bytes: always accepted.
            let _ = builder.set(64, &placeholder);
        }
        let mut out = Vec::with_capacity(builder.encoded_len() + frame::PREFIX_BYTES);
        let range = frame::encode_frame_into(&self.tpdu, &self.header, &builder, &mut out);
        assert_eq!(
            range.start,
            frame::PREFIX_BYTES,
            "the message follows the prefix"
        );
        (out, refused)
    }
}

/// The version byte that begins a stored reply ([`Reply::to_stored`]).
const STORED_REPLY_V1: u8 = 1;
/// Bytes before a stored reply's fields: version, TPDU, header, MTI, field count.
const STORED_REPLY_HEAD_BYTES: usize = 1 + 5 + 6 + 4 + 2;
/// A stored field's length byte: below this, the length of a value kept as it is.
const STORED_PACKED: u8 = 0x80;
/// From [`STORED_PACKED`] up to this, `0x80 +` the number of decimal digits of a value
/// kept two to a byte (as the wire's BCD keeps them).
const STORED_PACKED_MAX: u8 = 0xFE;
/// A value kept as it is, whose length follows in two bytes (big-endian).
const STORED_LONG: u8 = 0xFF;

/// Field 2, the card number: never stored with a reply.
const PAN_FIELD: u8 = 2;

impl Reply {
    /// Puts back the card number a stored reply left out ([`Reply::to_stored`]), from the
    /// request it answers again (a retransmission carries the same card).
    pub fn restore_pan(&mut self, pan: &str) {
        if self.get(PAN_FIELD).is_some_and(<[u8]>::is_empty) {
            self.set(PAN_FIELD, pan);
        }
    }

    /// Whether field 2 holds a card number (a reply stored by a version that kept it).
    pub fn keeps_pan(&self) -> bool {
        self.get(PAN_FIELD).is_some_and(|v| !v.is_empty())
    }

    /// The reply as its transaction keeps it, to send it again on a resend: a version
    /// byte, the TPDU, the header, the MTI, the number of fields (two bytes, big-endian),
    /// then each field as its number, a length byte and its value — digits two to a byte,
    /// anything else as it is (see [`STORED_PACKED`]). Cheaper to make than the frame (the
    /// writer stores it; the connection encodes it), about as small, and it gives the same
    /// frame again.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(STORED_REPLY_HEAD_BYTES + 2 * self.fields.len() + self.values.len());
        out.push(STORED_REPLY_V1);
        out.extend_from_slice(&self.tpdu.0);
        out.extend_from_slice(&self.header.0);
        out.extend_from_slice(&self.mti.0);
        // A field set twice keeps one entry: one per field number at most.
        out.extend_from_slice(&(self.fields.len() as u16).to_be_bytes());
        for (number, at) in &self.fields {
            let value = &self.values[at.clone()];
            out.push(*number);
            if *number == PAN_FIELD {
                // The card number is not kept (DESIGN.md, invariant 8): an empty value, which
                // a resend fills from the retransmitted request ([`Reply::restore_pan`]).
                out.push(0);
                continue;
            }
            let packable = value.len() <= usize::from(STORED_PACKED_MAX - STORED_PACKED)
                && value.iter().all(u8::is_ascii_digit);
            if packable {
                out.push(STORED_PACKED + value.len() as u8);
                // One extend of known length: a push per byte checked the capacity each
                // time.
                let (pairs, odd) = value.as_chunks::<2>();
                out.extend(
                    pairs
                        .iter()
                        .map(|[high, low]| (high - b'0') << 4 | (low - b'0')),
                );
                out.extend(odd.first().map(|high| (high - b'0') << 4));
            } else if value.len() < usize::from(STORED_PACKED) {
                out.push(value.len() as u8);
                out.extend_from_slice(value);
            } else {
                // Values are at most 999 bytes (LLLVAR).
                let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
                out.push(STORED_LONG);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&value[..usize::from(len)]);
            }
        }
        out
    }

    /// A reply from [`Reply::to_stored`]; `None` when the bytes are not one (or were
    /// cut short).
    pub fn from_stored(bytes: &[u8]) -> Option<Reply> {
        let (&version, rest) = bytes.split_first()?;
        if version != STORED_REPLY_V1 {
            return None;
        }
        let (tpdu, rest) = rest.split_first_chunk::<5>()?;
        let (header, rest) = rest.split_first_chunk::<6>()?;
        let (mti, rest) = rest.split_first_chunk::<4>()?;
        let (count, mut rest) = rest.split_first_chunk::<2>()?;
        let count = u16::from_be_bytes(*count);
        let mut reply = Reply {
            tpdu: Tpdu(*tpdu),
            header: Header(*header),
            mti: Mti(*mti),
            fields: Vec::with_capacity(usize::from(count).min(usize::from(u8::MAX) + 1)),
            values: Vec::with_capacity(2 * rest.len()),
        };
        let mut digits = Vec::new();
        for _ in 0..count {
            let (&number, after) = rest.split_first()?;
            let (&kind, after) = after.split_first()?;
            rest = match kind {
                STORED_PACKED..=STORED_PACKED_MAX => {
                    let n = usize::from(kind - STORED_PACKED);
                    let (packed, after) = after.split_at_checked(n.div_ceil(2))?;
                    digits.clear();
                    for &byte in packed {
                        let (high, low) = (byte >> 4, byte & 0x0F);
                        if high > 9 || low > 9 {
                            return None;
                        }
                        digits.extend_from_slice(&[b'0' + high, b'0' + low]);
                    }
                    // An odd count leaves a last nibble of padding, which must be zero.
                    if digits.len() > n && digits.pop() != Some(b'0') {
                        return None;
                    }
                    reply.set(number, &digits);
                    after
                }
                STORED_LONG => {
                    let (len, after) = after.split_first_chunk::<2>()?;
                    let (value, after) =
                        after.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
                    reply.set(number, value);
                    after
                }
                short => {
                    let (value, after) = after.split_at_checked(usize::from(short))?;
                    reply.set(number, value);
                    after
                }
            };
        }
        rest.is_empty().then_some(reply)
    }
}

/// Recomputes field 64 of an encoded message (MTI onward) whose last field is the MAC.
pub fn remac(message: &mut [u8], algorithm: MacAlgorithm, key: &SecretKey) {
    put_mac(message, |data| compute_mac(algorithm, key, data).ok());
}

/// Writes into the last 8 bytes of an encoded message (MTI onward) the MAC `mac_of`
/// gives for the bytes before them (nothing when it gives none).
pub fn put_mac(message: &mut [u8], mac_of: impl FnOnce(&[u8]) -> Option<Mac>) {
    let Some(split) = message.len().checked_sub(MAC_BYTES) else {
        return;
    };
    let (data, mac_slot) = message.split_at_mut(split);
    if let Some(mac) = mac_of(data) {
        mac_slot.copy_from_slice(mac.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sale_answer() -> Reply {
        let mut reply = Reply::to(
            &Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]),
            &Header(*b"\x60\x31\x00\x31\x10\x00"),
            Mti(*b"0200"),
        );
        reply
            .set(2, *b"6222021234567890123")
            .set(3, *b"000000")
            .set(4, *b"000000001234")
            .set(11, *b"000042")
            .set(12, *b"103000")
            .set(13, *b"1203")
            .set(37, *b"000000000007")
            .set(38, *b"654321")
            .set(39, *b"00")
            .set(41, *b"10000001")
            .set(42, *b"898100000000001")
            .set(44, *b"0800 0000")
            .set(60, *b"22000001000")
            .set(3, *b"000001");
        reply
    }

    #[test]
    fn a_stored_reply_gives_the_same_frame_again() {
        let reply = sale_answer();
        let stored = reply.to_stored();
        let mut back = Reply::from_stored(&stored).expect("reads back");
        // The card number is not kept: a resend puts back the request's.
        assert_eq!(back.get(2), Some(b"".as_slice()));
        assert!(!back.keeps_pan() && reply.keeps_pan());
        let packed = [0x62, 0x22, 0x02, 0x12, 0x34, 0x56, 0x78, 0x90];
        assert!(!stored.windows(packed.len()).any(|w| w == packed));
        back.restore_pan("6222021234567890123");
        assert_eq!(back.encode(), reply.encode());
        assert_eq!(
            back.encode_with_mac_slot(true),
            reply.encode_with_mac_slot(true)
        );
        assert_eq!(
            back.get(3),
            Some(b"000001".as_slice()),
            "the last value set"
        );
        let (frame, refused) = reply.encode();
        assert!(refused.is_empty());
        assert!(
            stored.len() <= frame.len() + 16,
            "{} against {}",
            stored.len(),
            frame.len()
        );
        // A value longer than a length byte holds, and one of odd digits.
        let mut long = reply;
        long.set(62, [b'x'; 300]).set(14, *b"301");
        let mut back = Reply::from_stored(&long.to_stored()).expect("reads back");
        back.restore_pan("6222021234567890123");
        assert_eq!(back.get(62), Some([b'x'; 300].as_slice()));
        assert_eq!(back.get(14), Some(b"301".as_slice()));
        assert_eq!(back.encode(), long.encode());
    }

    #[test]
    fn stored_bytes_that_are_not_a_reply_read_as_none() {
        let stored = sale_answer().to_stored();
        for cut in 0..stored.len() {
            assert!(Reply::from_stored(&stored[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(
            Reply::from_stored(&longer).is_none(),
            "bytes after the fields"
        );
        let mut other_version = stored;
        other_version[0] = 2;
        assert!(Reply::from_stored(&other_version).is_none());
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(b'0'..=b'9', 0..200),
            proptest::collection::vec(any::<u8>(), 0..400),
        ]
    }

    proptest! {
        #[test]
        fn every_value_reads_back_as_it_was_set(
            fields in proptest::collection::vec((1u8..=128, value()), 0..40)
        ) {
            let mut reply = sale_answer();
            for (number, value) in &fields {
                reply.set(*number, value);
            }
            let mut back = Reply::from_stored(&reply.to_stored()).expect("reads back");
            // Field 2 is stored empty (never the card number) and put back on a resend.
            prop_assert_eq!(back.get(2), reply.get(2).map(|_| b"".as_slice()));
            back.set(2, reply.get(2).unwrap_or_default());
            for number in 0..=u8::MAX {
                prop_assert_eq!(back.get(number), reply.get(number));
            }
            prop_assert_eq!(back.encode(), reply.encode());
        }

        #[test]
        fn any_bytes_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(reply) = Reply::from_stored(&bytes) {
                prop_assert_eq!(reply.to_stored().len() <= bytes.len(), true);
            }
        }
    }
}
