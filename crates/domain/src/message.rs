//! Between domain requests and ISO 8583 frames: a [`RequestSpec`] says what a terminal
//! asks (kind, amount, card, PIN, original), [`build_request`] turns it into a CUP POS
//! frame with its PIN block and MAC, and [`parse_response`] reads the host's answer and
//! checks its MAC. The host's test client and the terminal engine both build through here.

use std::collections::BTreeMap;

use poskit_codec::frame::{self, Header, Tpdu};
use poskit_codec::{CUP_POS, MessageBuilder, Mti};
use poskit_security::{
    MAC_BYTES, MacAlgorithm, Pin, PinBlockFormat, SecretKey, WorkingKeys, compute_mac, encrypt_pin,
    verify_mac,
};

use crate::{Batch, TransactionKind};

/// The TPDU terminals send: ID 60, destination 0003, source 0000.
pub const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]);
/// The header terminals send: magnetic stripe (60), version 31, normal, no requirement.
pub const HEADER: Header = Header([0x60, 0x31, 0x00, 0x31, 0x00, 0x00]);

/// Why a request could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("field {field}: {why}")]
    Field { field: u8, why: String },
    #[error("a PIN needs the PIN key: sign in first")]
    NoPinKey,
    #[error("a {kind} carries a MAC: sign in first")]
    NoMacKey { kind: &'static str },
    #[error("PIN block: {0}")]
    Pin(String),
}

/// Card data a request carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardData {
    /// Manual entry: field 2 and field 14.
    Manual { pan: String, expiry: String },
    /// Swiped: track 2 (field 35), `PAN=YYMM...`.
    Track2(String),
    /// The card as a terminal keeps it after authorization (track data is never kept,
    /// DESIGN.md invariant 8): number and expiry, sent as fields 2 and 14 — the reversal of
    /// a swiped sale keeps the original's entry mode (02x), anything else says 01x.
    Kept {
        pan: String,
        expiry: String,
        swiped: bool,
    },
}

impl CardData {
    pub fn pan(&self) -> &str {
        match self {
            CardData::Manual { pan, .. } | CardData::Kept { pan, .. } => pan,
            CardData::Track2(t) => t.split('=').next().unwrap_or(""),
        }
    }

    /// What may be kept of this card after authorization: no track data.
    pub fn kept(&self) -> CardData {
        CardData::Kept {
            pan: self.pan().to_owned(),
            expiry: self.expiry().unwrap_or("").to_owned(),
            swiped: matches!(
                self,
                CardData::Track2(_) | CardData::Kept { swiped: true, .. }
            ),
        }
    }

    /// YYMM, when the card data carries it.
    pub fn expiry(&self) -> Option<&str> {
        match self {
            CardData::Manual { expiry, .. } | CardData::Kept { expiry, .. } => {
                Some(expiry.as_str()).filter(|e| !e.is_empty())
            }
            CardData::Track2(t) => t.split('=').nth(1).and_then(|rest| rest.get(..4)),
        }
    }
}

/// One request, described.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub kind: TransactionKind,
    pub amount_fen: Option<u64>,
    pub card: Option<CardData>,
    /// The cardholder's PIN (held zeroizing; only its encrypted block goes out).
    pub pin: Option<Pin>,
    /// 61.1, 61.2, 61.3.
    pub original_batch: Option<u32>,
    pub original_stan: Option<u32>,
    pub original_date: Option<String>,
    /// Field 37 (the original's RRN for voids and refunds).
    pub rrn: Option<String>,
    /// Field 38 (the original's authorization code).
    pub auth_code: Option<String>,
    /// Field 48.
    pub field48: Option<String>,
    /// 60.3 (sign-in layout, batch-upload code).
    pub network_code: Option<String>,
    /// Trace to use instead of the next one (retransmissions, reversals).
    pub stan: Option<u32>,
    /// Send as the reversal (0400) of this request, with this reason in field 39.
    pub reversal_reason: Option<String>,
}

impl RequestSpec {
    pub fn new(kind: TransactionKind) -> RequestSpec {
        RequestSpec {
            kind,
            amount_fen: None,
            card: None,
            pin: None,
            original_batch: None,
            original_stan: None,
            original_date: None,
            rrn: None,
            auth_code: None,
            field48: None,
            network_code: None,
            stan: None,
            reversal_reason: None,
        }
    }

    /// A sale; a PIN that is not 4 to 12 digits is left out (the host answers 55).
    pub fn sale(card: CardData, amount_fen: u64, pin: Option<&str>) -> RequestSpec {
        RequestSpec {
            amount_fen: Some(amount_fen),
            card: Some(card),
            pin: pin.and_then(|p| Pin::new(p).ok()),
            ..RequestSpec::new(TransactionKind::Sale)
        }
    }

    /// The reversal of this request as sent with trace `stan`.
    pub fn reversal(&self, stan: u32, reason: &str) -> RequestSpec {
        RequestSpec {
            stan: Some(stan),
            reversal_reason: Some(reason.to_owned()),
            pin: None,
            ..self.clone()
        }
    }
}

/// Who sends: the terminal's identity, batch and working keys.
#[derive(Clone, Copy, Debug)]
pub struct Session<'a> {
    pub tid: &'a str,
    pub mid: &'a str,
    pub batch: Batch,
    pub keys: Option<&'a WorkingKeys>,
    pub mac_algorithm: MacAlgorithm,
}

/// Builds the frame of `spec` sent with trace `stan`.
pub fn build_request(
    spec: &RequestSpec,
    stan: u32,
    session: &Session<'_>,
) -> Result<Vec<u8>, BuildError> {
    let kind = spec.kind;
    let reversal = spec.reversal_reason.is_some();
    let mti = if reversal { *b"0400" } else { *kind.mti() };
    let mut owned: Vec<(u8, Vec<u8>)> = Vec::with_capacity(24);
    let mut put = |n: u8, v: Vec<u8>| owned.push((n, v));
    if let Some(p) = kind.processing_code() {
        put(3, p.to_vec());
    }
    if let Some(a) = spec.amount_fen {
        put(4, format!("{a:012}").into_bytes());
    }
    put(11, format!("{stan:06}").into_bytes());
    let with_pin = spec.pin.is_some() && !reversal;
    if let Some(card) = &spec.card {
        match card {
            CardData::Manual { pan, expiry } => {
                put(2, pan.clone().into_bytes());
                if !expiry.is_empty() {
                    put(14, expiry.clone().into_bytes());
                }
                put(
                    22,
                    if with_pin {
                        b"011".to_vec()
                    } else {
                        b"012".to_vec()
                    },
                );
            }
            CardData::Track2(t) => {
                put(35, t.clone().into_bytes());
                put(
                    22,
                    if with_pin {
                        b"021".to_vec()
                    } else {
                        b"022".to_vec()
                    },
                );
            }
            CardData::Kept {
                pan,
                expiry,
                swiped,
            } => {
                put(2, pan.clone().into_bytes());
                if !expiry.is_empty() {
                    put(14, expiry.clone().into_bytes());
                }
                // A reversal repeats its original's entry mode (§2.2: 22 = original); any
                // other message built from a kept card sends the number the terminal keyed
                // from its own records (01), since no track is kept to send as a swipe.
                let mode: &[u8] = match (*swiped && reversal, with_pin) {
                    (true, true) => b"021",
                    (true, false) => b"022",
                    (false, true) => b"011",
                    (false, false) => b"012",
                };
                put(22, mode.to_vec());
            }
        }
    }
    if let Some(c) = kind.condition_code() {
        put(25, c.to_vec());
    }
    if with_pin {
        put(26, b"12".to_vec());
    }
    if let Some(r) = &spec.rrn {
        put(37, r.clone().into_bytes());
    }
    if let Some(a) = &spec.auth_code {
        put(38, a.clone().into_bytes());
    }
    if let Some(reason) = &spec.reversal_reason {
        put(39, reason.clone().into_bytes());
    }
    put(41, session.tid.as_bytes().to_vec());
    put(42, session.mid.as_bytes().to_vec());
    if let Some(f48) = &spec.field48 {
        put(48, f48.clone().into_bytes());
    }
    if kind.carries_mac() {
        put(49, b"156".to_vec());
    }
    if with_pin && let (Some(pin), Some(card)) = (&spec.pin, &spec.card) {
        let keys = session.keys.ok_or(BuildError::NoPinKey)?;
        let block = encrypt_pin(PinBlockFormat::Iso0, &keys.pik, card.pan(), pin)
            .map_err(|e| BuildError::Pin(e.to_string()))?;
        put(52, block.dangerous_expose().to_vec());
        put(53, security_control(keys.pik.len()).to_vec());
    }
    let network = spec.network_code.as_deref().unwrap_or("000");
    put(
        60,
        format!(
            "{}{}{network}",
            String::from_utf8_lossy(kind.type_code()),
            session.batch
        )
        .into_bytes(),
    );
    if spec.original_batch.is_some() || spec.original_stan.is_some() || spec.original_date.is_some()
    {
        put(
            61,
            format!(
                "{:06}{:06}{}",
                spec.original_batch.unwrap_or(0),
                spec.original_stan.unwrap_or(0),
                spec.original_date.as_deref().unwrap_or("0000")
            )
            .into_bytes(),
        );
    }
    if !kind.carries_mac() {
        // 63.1: the operator (sign-in, settlement).
        put(63, b"001".to_vec());
    }
    let mac_key = match (kind.carries_mac(), session.keys) {
        (false, _) => None,
        (true, Some(keys)) => Some(keys.mac_key()),
        (true, None) => {
            return Err(BuildError::NoMacKey {
                kind: kind.name_en(),
            });
        }
    };
    let mut builder = MessageBuilder::new(&CUP_POS, Mti(mti));
    for (n, v) in &owned {
        builder.set(*n, v).map_err(|e| BuildError::Field {
            field: *n,
            why: e.to_string(),
        })?;
    }
    let placeholder = [b'0'; MAC_BYTES];
    if mac_key.is_some() {
        builder
            .set(64, &placeholder)
            .map_err(|e| BuildError::Field {
                field: 64,
                why: e.to_string(),
            })?;
    }
    let mut out = Vec::with_capacity(builder.encoded_len() + frame::PREFIX_BYTES);
    let range = frame::encode_frame_into(&TPDU, &HEADER, &builder, &mut out);
    if let Some(key) = mac_key {
        let message = &mut out[range];
        let split = message.len() - MAC_BYTES;
        let mac = compute_mac(session.mac_algorithm, &key, &message[..split]).map_err(|e| {
            BuildError::Field {
                field: 64,
                why: e.to_string(),
            }
        })?;
        message[split..].copy_from_slice(mac.as_bytes());
    }
    Ok(out)
}

/// A response, read.
#[derive(Clone, Debug)]
pub struct Response {
    pub frame: Vec<u8>,
    pub mti: String,
    pub header: Header,
    /// Field 39 (`None` when absent).
    pub code: Option<String>,
    /// Every field as text (binary fields in hex).
    pub fields: BTreeMap<u8, String>,
    /// Whether field 64 verifies with the MAK given (`None`: no MAC or no key).
    pub mac_ok: Option<bool>,
    /// The trace the request was sent with (set by the caller).
    pub stan: u32,
}

impl Response {
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    pub fn field(&self, n: u8) -> Option<&str> {
        self.fields.get(&n).map(String::as_str)
    }
}

/// Field 53 for a PIN block in ISO 9564 format 0 (digit 1 = 2) under a PIK of
/// `pik_bytes`: digit 2 is the algorithm, 0 for single DES, 6 for double-length 3DES
/// (cup-pos.md §2.3); no track encryption.
fn security_control(pik_bytes: usize) -> [u8; 16] {
    assert!(
        matches!(pik_bytes, 8 | 16 | 24),
        "a DES key is 8, 16 or 24 bytes"
    );
    let mut field = *b"2600000000000000";
    if pik_bytes == 8 {
        field[1] = b'0';
    }
    field
}

/// Reads an answer frame (length prefix included), checking field 64 with `mac_key`.
pub fn parse_response(
    frame: Vec<u8>,
    mac_key: Option<&SecretKey>,
    mac_algorithm: MacAlgorithm,
) -> Result<Response, poskit_codec::DecodeError> {
    let decoded = frame::decode_frame(&CUP_POS, &frame)?;
    let m = &decoded.message;
    let fields: BTreeMap<u8, String> = m.fields().map(|f| (f.number(), f.to_text())).collect();
    let mac_ok = match (m.mac_input(), m.field(64).and_then(|f| f.bytes()), mac_key) {
        (Some(data), Some(wire), Some(key)) => verify_mac(mac_algorithm, key, data, wire).ok(),
        _ => None,
    };
    let mti = m.mti().as_str().to_owned();
    let header = decoded.header;
    Ok(Response {
        mti,
        header,
        code: fields.get(&39).cloned(),
        mac_ok,
        stan: 0,
        fields,
        frame,
    })
}

/// Field 48 of a settlement request (§4.4): domestic totals, then an empty foreign block.
pub fn settlement_field48(
    debit_fen: u64,
    debit_count: u32,
    credit_fen: u64,
    credit_count: u32,
) -> String {
    format!(
        "{debit_fen:012}{:03}{credit_fen:012}{:03}0{:012}{:03}{:012}{:03}0",
        debit_count.min(999),
        credit_count.min(999),
        0,
        0,
        0,
        0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sale_without_keys_is_refused_and_a_sign_in_needs_none() {
        let session = Session {
            tid: "10000001",
            mid: "898310048160001",
            batch: Batch::new(1).unwrap(),
            keys: None,
            mac_algorithm: MacAlgorithm::CupEcb,
        };
        let card = CardData::Track2("6222021234567890128=28121010000000000".into());
        let sale = RequestSpec::sale(card.clone(), 100, None);
        assert_eq!(
            build_request(&sale, 1, &session),
            Err(BuildError::NoMacKey { kind: "sale" })
        );
        let mut sign_in = RequestSpec::new(TransactionKind::SignIn);
        sign_in.network_code = Some("003".into());
        let frame = build_request(&sign_in, 2, &session).unwrap();
        let r = parse_response(frame, None, MacAlgorithm::CupEcb).unwrap();
        assert_eq!(r.mti, "0800");
        assert_eq!(r.field(60), Some("00000001003"));
        assert_eq!(card.expiry(), Some("2812"));
    }

    #[test]
    fn settlement_totals_are_62_digits() {
        let f48 = settlement_field48(12345, 2, 100, 1);
        assert_eq!(f48.len(), 62);
        assert_eq!(&f48[..15], "000000012345002");
    }
}
