//! A plain terminal client that speaks the CUP POS protocol to a host over TCP: sign-in
//! with the TMK, MAC'd financial requests with PIN blocks, reversals, settlement. It keeps
//! no journal and does no recovery — it is for tests, load and probing, where every step
//! is asked for by its caller. The terminal engine with reversal and store-and-forward is
//! a separate part.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use poskit_codec::frame::{self, Header, Tpdu};
use poskit_codec::{CUP_POS, MessageBuilder, Mti};
use poskit_domain::{Batch, ResponseCode, Stan, TransactionKind};
use poskit_security::{
    KeyLayout, MacAlgorithm, Pin, PinBlockFormat, SecretKey, WorkingKeys, compute_mac, encrypt_pin,
    parse_field62, verify_mac,
};

/// The TPDU and header test terminals send.
pub const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]);
pub const HEADER: Header = Header([0x60, 0x31, 0x00, 0x31, 0x00, 0x00]);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("the host's answer does not decode: {0}")]
    Decode(String),
    #[error("cannot build the request: {0}")]
    Build(String),
    #[error("sign-in: {0}")]
    SignIn(String),
}

/// Card data a request carries.
#[derive(Clone, Debug)]
pub enum CardData {
    /// Manual entry: field 2 and field 14.
    Manual { pan: String, expiry: String },
    /// Swiped: track 2 (field 35).
    Track2(String),
}

impl CardData {
    pub fn pan(&self) -> &str {
        match self {
            CardData::Manual { pan, .. } => pan,
            CardData::Track2(t) => t.split('=').next().unwrap_or(""),
        }
    }
}

/// One request, described.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub kind: TransactionKind,
    pub amount_fen: Option<u64>,
    pub card: Option<CardData>,
    pub pin: Option<String>,
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

    pub fn sale(card: CardData, amount_fen: u64, pin: Option<&str>) -> RequestSpec {
        RequestSpec {
            amount_fen: Some(amount_fen),
            card: Some(card),
            pin: pin.map(str::to_owned),
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
    /// Whether field 64 verifies with the current MAK (`None`: no MAC or no key).
    pub mac_ok: Option<bool>,
    /// The trace the request was sent with.
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

/// A connected test terminal.
pub struct TestTerminal {
    /// `None` for a terminal that only builds frames ([`TestTerminal::offline`]).
    stream: Option<TcpStream>,
    pub tid: String,
    pub mid: String,
    tmk: SecretKey,
    keys: Option<WorkingKeys>,
    pub batch: Batch,
    stan: Stan,
}

impl TestTerminal {
    pub fn connect(
        addr: &str,
        tid: &str,
        mid: &str,
        tmk_hex: &str,
        timeout: Duration,
    ) -> Result<TestTerminal, ClientError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut t = TestTerminal::offline(tid, mid, tmk_hex)?;
        t.stream = Some(stream);
        Ok(t)
    }

    /// A terminal with no connection: it builds frames and reads answers handed to it
    /// (for driving the engine directly).
    pub fn offline(tid: &str, mid: &str, tmk_hex: &str) -> Result<TestTerminal, ClientError> {
        Ok(TestTerminal {
            stream: None,
            tid: tid.to_owned(),
            mid: mid.to_owned(),
            tmk: SecretKey::from_hex(tmk_hex).map_err(|e| ClientError::Build(e.to_string()))?,
            keys: None,
            batch: Batch::new(1).unwrap_or_else(|_| unreachable!("1 is a batch")),
            stan: Stan::new(0).unwrap_or_else(|_| unreachable!("0 is in range")),
        })
    }

    /// Sets the next trace number (a terminal restarting with its journal's counter).
    pub fn set_next_stan(&mut self, stan: u32) {
        if let Ok(s) = Stan::new(stan.saturating_sub(1)) {
            self.stan = s;
        }
    }

    pub fn set_batch(&mut self, batch: u32) {
        if let Ok(b) = Batch::new(batch) {
            self.batch = b;
        }
    }

    pub fn is_signed_in(&self) -> bool {
        self.keys.is_some()
    }

    fn next_stan(&mut self) -> u32 {
        self.stan = self.stan.next();
        self.stan.value()
    }

    /// Sign-in (0800, 60.3 = 003): adopts the working keys and the host's batch.
    pub fn sign_in(&mut self) -> Result<Response, ClientError> {
        let mut spec = RequestSpec::new(TransactionKind::SignIn);
        spec.network_code = Some("003".into());
        let response = self.send(&spec)?;
        self.adopt_sign_in(&response)?;
        Ok(response)
    }

    /// Takes the working keys and batch of an approved sign-in answer.
    pub fn adopt_sign_in(&mut self, response: &Response) -> Result<(), ClientError> {
        if response.code() != "00" {
            return Ok(());
        }
        let f62 = response
            .field(62)
            .ok_or(ClientError::SignIn("no field 62".into()))?;
        let f62 = hex::decode(f62).map_err(|e| ClientError::SignIn(e.to_string()))?;
        let keys = parse_field62(KeyLayout::Double, &self.tmk, &f62)
            .map_err(|e| ClientError::SignIn(e.to_string()))?;
        self.keys = Some(keys);
        if let Some(batch) = response
            .field(60)
            .and_then(|f| f.get(2..8))
            .and_then(|b| b.parse().ok())
        {
            self.set_batch(batch);
        }
        Ok(())
    }

    /// Builds the frame of a request (taking the next trace unless the spec names one).
    pub fn build(&mut self, spec: &RequestSpec) -> Result<(Vec<u8>, u32), ClientError> {
        let stan = spec.stan.unwrap_or_else(|| self.next_stan());
        let kind = spec.kind;
        let reversal = spec.reversal_reason.is_some();
        let mti = if reversal { *b"0400" } else { *kind.mti() };
        let mut owned: Vec<(u8, Vec<u8>)> = Vec::new();
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
                    put(14, expiry.clone().into_bytes());
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
        put(41, self.tid.clone().into_bytes());
        put(42, self.mid.clone().into_bytes());
        if let Some(f48) = &spec.field48 {
            put(48, f48.clone().into_bytes());
        }
        if kind.carries_mac() {
            put(49, b"156".to_vec());
        }
        if with_pin && let (Some(pin), Some(card)) = (&spec.pin, &spec.card) {
            let keys = self.keys.as_ref().ok_or(ClientError::Build(
                "a PIN needs a PIK: sign in first".into(),
            ))?;
            let pin = Pin::new(pin).map_err(|e| ClientError::Build(e.to_string()))?;
            let block = encrypt_pin(PinBlockFormat::Iso0, &keys.pik, card.pan(), &pin)
                .map_err(|e| ClientError::Build(e.to_string()))?;
            put(52, block.dangerous_expose().to_vec());
            put(53, b"2600000000000000".to_vec());
        }
        let network = spec.network_code.clone().unwrap_or_else(|| "000".into());
        put(
            60,
            format!(
                "{}{}{network}",
                String::from_utf8_lossy(kind.type_code()),
                self.batch
            )
            .into_bytes(),
        );
        if spec.original_batch.is_some()
            || spec.original_stan.is_some()
            || spec.original_date.is_some()
        {
            put(
                61,
                format!(
                    "{:06}{:06}{}",
                    spec.original_batch.unwrap_or(0),
                    spec.original_stan.unwrap_or(0),
                    spec.original_date.clone().unwrap_or_else(|| "0000".into())
                )
                .into_bytes(),
            );
        }
        if !kind.carries_mac() || kind == TransactionKind::SignIn {
            put(63, b"001".to_vec());
        }
        let mac = kind.carries_mac();
        let mut builder = MessageBuilder::new(&CUP_POS, Mti(mti));
        for (n, v) in &owned {
            builder
                .set(*n, v)
                .map_err(|e| ClientError::Build(format!("field {n}: {e}")))?;
        }
        let placeholder = [b'0'; 8];
        if mac {
            builder
                .set(64, &placeholder)
                .map_err(|e| ClientError::Build(e.to_string()))?;
        }
        let mut out = Vec::new();
        let range = frame::encode_frame_into(&TPDU, &HEADER, &builder, &mut out);
        if mac {
            let key = self.keys.as_ref().map(|k| k.mac_key()).unwrap_or_else(|| {
                SecretKey::from_bytes(&[0u8; 16]).unwrap_or_else(|_| unreachable!("16 bytes"))
            });
            let message = &mut out[range];
            let split = message.len() - 8;
            let m = compute_mac(MacAlgorithm::CupEcb, &key, &message[..split])
                .map_err(|e| ClientError::Build(e.to_string()))?;
            message[split..].copy_from_slice(m.as_bytes());
        }
        Ok((out, stan))
    }

    /// Sends a request and waits for its answer.
    pub fn send(&mut self, spec: &RequestSpec) -> Result<Response, ClientError> {
        let (frame, stan) = self.build(spec)?;
        self.send_raw(&frame)?;
        let mut response = self.receive()?;
        response.stan = stan;
        Ok(response)
    }

    pub fn send_raw(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.connected()?.write_all(frame)?;
        Ok(())
    }

    /// Reads one answer.
    pub fn receive(&mut self) -> Result<Response, ClientError> {
        let mut prefix = [0u8; 2];
        self.connected()?.read_exact(&mut prefix)?;
        let total = frame::frame_len(&prefix)
            .map_err(|e| ClientError::Decode(e.to_string()))?
            .unwrap_or(2);
        let mut buf = vec![0u8; total];
        buf[..2].copy_from_slice(&prefix);
        self.connected()?.read_exact(&mut buf[2..])?;
        self.parse(buf)
    }

    fn connected(&mut self) -> Result<&mut TcpStream, ClientError> {
        self.stream.as_mut().ok_or_else(|| {
            ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "an offline test terminal has no connection",
            ))
        })
    }

    /// Reads an answer frame (length prefix included), checking its MAC with the current
    /// MAK.
    pub fn parse(&self, buf: Vec<u8>) -> Result<Response, ClientError> {
        let decoded =
            frame::decode_frame(&CUP_POS, &buf).map_err(|e| ClientError::Decode(e.to_string()))?;
        let m = &decoded.message;
        let fields: BTreeMap<u8, String> = m.fields().map(|f| (f.number(), f.to_text())).collect();
        let mac_ok = match (
            m.mac_input(),
            m.field(64).and_then(|f| f.bytes()),
            &self.keys,
        ) {
            (Some(data), Some(wire), Some(keys)) => {
                verify_mac(MacAlgorithm::CupEcb, &keys.mac_key(), data, wire).ok()
            }
            _ => None,
        };
        Ok(Response {
            mti: m.mti().as_str().to_owned(),
            header: decoded.header,
            code: fields.get(&39).cloned(),
            mac_ok,
            stan: 0,
            fields,
            frame: buf.clone(),
        })
    }

    /// Settlement (0500) with these totals.
    pub fn settle(
        &mut self,
        debit_fen: u64,
        debit_count: u32,
        credit_fen: u64,
        credit_count: u32,
    ) -> Result<Response, ClientError> {
        let mut spec = RequestSpec::new(TransactionKind::Settlement);
        spec.network_code = Some("201".into());
        spec.field48 = Some(format!(
            "{debit_fen:012}{debit_count:03}{credit_fen:012}{credit_count:03}0{:012}{:03}{:012}{:03}0",
            0, 0, 0, 0
        ));
        self.send(&spec)
    }

    /// Batch end (0320, 60.3 = 207 balanced or 202 after upload).
    pub fn batch_end(&mut self, balanced: bool, uploaded: u32) -> Result<Response, ClientError> {
        let mut spec = RequestSpec::new(TransactionKind::BatchUpload);
        spec.network_code = Some(if balanced { "207" } else { "202" }.into());
        spec.field48 = Some(format!("{uploaded:04}"));
        self.send(&spec)
    }
}

/// Whether a code means approved (for callers that only care).
pub fn approved(response: &Response) -> bool {
    response.code() == ResponseCode::APPROVED.as_str()
}
