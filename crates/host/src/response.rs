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
        self.encode_with(false)
    }

    /// The whole frame with field 64 present as zeros, for [`remac`] to fill in.
    pub fn encode_unsealed(&self) -> (Vec<u8>, Vec<u8>) {
        self.encode_with(true)
    }

    fn encode_with(&self, mac_slot: bool) -> (Vec<u8>, Vec<u8>) {
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
