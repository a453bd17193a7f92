//! CUP POS framing (`spec/cup-pos.md` §2.1):
//!
//! ```text
//! | length (2 B, big-endian) | TPDU (5 B) | header (6 B) | MTI | bitmap | fields … |
//! ```
//!
//! The length counts everything after itself. A response swaps the TPDU addresses.

use crate::error::{DecodeError, DecodeErrorKind as Kind, Part};
use crate::{MESSAGE_BYTES_MAX, Message, MessageBuilder, Profile};

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 2;
/// Bytes of the TPDU.
pub const TPDU_BYTES: usize = 5;
/// Bytes of the header.
pub const HEADER_BYTES: usize = 6;
/// Bytes in front of the MTI.
pub const PREFIX_BYTES: usize = LENGTH_BYTES + TPDU_BYTES + HEADER_BYTES;
/// The largest frame accepted, length prefix included.
pub const FRAME_BYTES_MAX: usize = PREFIX_BYTES + MESSAGE_BYTES_MAX;

/// Transport protocol data unit: ID (`60`), destination address, source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tpdu(pub [u8; 5]);

impl Tpdu {
    pub fn id(&self) -> u8 {
        self.0[0]
    }

    pub fn destination(&self) -> [u8; 2] {
        [self.0[1], self.0[2]]
    }

    pub fn source(&self) -> [u8; 2] {
        [self.0[3], self.0[4]]
    }

    /// The TPDU of the response: the same ID, addresses swapped.
    pub fn response(&self) -> Tpdu {
        let t = self.0;
        Tpdu([t[0], t[3], t[4], t[1], t[2]])
    }

    /// Parses 10 hexadecimal characters.
    pub fn from_hex(text: &str) -> Option<Tpdu> {
        parse_hex::<5>(text).map(Tpdu)
    }
}

/// The 6-byte CUP header, 12 nibbles: application type (2), software version (2), terminal
/// status (1), processing requirement (1), reserved / sub-version (6).
///
/// Nibbles are kept as sent: acquirers use hexadecimal values (`b`, `c`) for some
/// processing requirements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header(pub [u8; 6]);

impl Header {
    /// Application type: 60 magnetic stripe, 61 IC, 62/63 value-added.
    pub fn application_type(&self) -> u8 {
        self.0[0]
    }

    /// Software version (`31`).
    pub fn version(&self) -> u8 {
        self.0[1]
    }

    /// Terminal status: 0 normal, 1 test.
    pub fn terminal_status(&self) -> u8 {
        self.0[2] >> 4
    }

    /// Processing requirement the host asks of the terminal: 0 none, 3 sign in again, ...
    pub fn processing_requirement(&self) -> u8 {
        self.0[2] & 0x0F
    }

    /// The last six nibbles (reserved, or the software sub-version).
    pub fn reserved(&self) -> [u8; 3] {
        [self.0[3], self.0[4], self.0[5]]
    }

    /// The header with a different processing requirement (a host asking for re-sign-in
    /// sets 3).
    pub fn with_processing_requirement(&self, requirement: u8) -> Header {
        let mut h = self.0;
        h[2] = (h[2] & 0xF0) | (requirement & 0x0F);
        Header(h)
    }

    /// Parses 12 hexadecimal characters.
    pub fn from_hex(text: &str) -> Option<Header> {
        parse_hex::<6>(text).map(Header)
    }
}

fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b = text.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// A decoded CUP frame.
#[derive(Clone, Debug)]
pub struct Frame<'a> {
    pub tpdu: Tpdu,
    pub header: Header,
    pub message: Message<'a>,
}

/// How many bytes the next frame in `buffer` takes, length prefix included, once the
/// prefix is there; for stream readers. An announced length above the bound is an error
/// before anything is read or allocated for it.
pub fn frame_len(buffer: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buffer.get(..LENGTH_BYTES) else {
        return Ok(None);
    };
    let declared = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    if declared + LENGTH_BYTES > FRAME_BYTES_MAX {
        return Err(DecodeError::new(
            Part::Length,
            0,
            Kind::TooLarge {
                len: declared + LENGTH_BYTES,
                len_max: FRAME_BYTES_MAX,
            },
        ));
    }
    Ok(Some(declared + LENGTH_BYTES))
}

/// Decodes one whole frame (length prefix included) that fills `input` exactly.
pub fn decode_frame<'a>(
    profile: &'static Profile,
    input: &'a [u8],
) -> Result<Frame<'a>, DecodeError> {
    if input.len() > FRAME_BYTES_MAX {
        return Err(DecodeError::new(
            Part::Length,
            0,
            Kind::TooLarge {
                len: input.len(),
                len_max: FRAME_BYTES_MAX,
            },
        ));
    }
    let Some(prefix) = input.get(..LENGTH_BYTES) else {
        return Err(DecodeError::new(
            Part::Length,
            0,
            Kind::Truncated {
                needed: LENGTH_BYTES,
                available: input.len(),
            },
        ));
    };
    let declared = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    let actual = input.len() - LENGTH_BYTES;
    if declared != actual {
        return Err(DecodeError::new(
            Part::Length,
            0,
            Kind::FrameLength { declared, actual },
        ));
    }
    let tpdu = input
        .get(LENGTH_BYTES..LENGTH_BYTES + TPDU_BYTES)
        .ok_or(DecodeError::new(
            Part::Tpdu,
            LENGTH_BYTES,
            Kind::Truncated {
                needed: TPDU_BYTES,
                available: actual,
            },
        ))?;
    let header = input
        .get(LENGTH_BYTES + TPDU_BYTES..PREFIX_BYTES)
        .ok_or(DecodeError::new(
            Part::Header,
            LENGTH_BYTES + TPDU_BYTES,
            Kind::Truncated {
                needed: HEADER_BYTES,
                available: input.len().saturating_sub(LENGTH_BYTES + TPDU_BYTES),
            },
        ))?;
    let mut t = [0u8; TPDU_BYTES];
    t.copy_from_slice(tpdu);
    let mut h = [0u8; HEADER_BYTES];
    h.copy_from_slice(header);
    let message =
        Message::decode(profile, &input[PREFIX_BYTES..]).map_err(|e| e.shifted(PREFIX_BYTES))?;
    Ok(Frame {
        tpdu: Tpdu(t),
        header: Header(h),
        message,
    })
}

/// Appends a whole frame to `out`: length prefix, TPDU, header, message. Returns the range
/// of `out` the message (MTI onward) occupies, for MAC computation.
pub fn encode_frame_into(
    tpdu: &Tpdu,
    header: &Header,
    message: &MessageBuilder<'_>,
    out: &mut Vec<u8>,
) -> std::ops::Range<usize> {
    let frame_start = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&tpdu.0);
    out.extend_from_slice(&header.0);
    let message_start = out.len();
    message.encode_into(out);
    let declared = out.len() - frame_start - LENGTH_BYTES;
    // The builder bounds a message to MESSAGE_BYTES_MAX, so the length always fits.
    assert!(declared <= usize::from(u16::MAX));
    out[frame_start..frame_start + 2].copy_from_slice(&(declared as u16).to_be_bytes());
    message_start..out.len()
}
