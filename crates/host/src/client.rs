//! A plain terminal client that speaks the CUP POS protocol to a host over TCP: sign-in
//! with the TMK, MAC'd financial requests with PIN blocks, reversals, settlement. It keeps
//! no journal and does no recovery — it is for tests, load and probing, where every step
//! is asked for by its caller. The terminal engine with reversal and store-and-forward is
//! a separate part.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use poskit_codec::frame;
use poskit_domain::message::{
    BuildError, Session, build_request, parse_response, settlement_field48,
};
pub use poskit_domain::message::{CardData, HEADER, RequestSpec, Response, TPDU};
use poskit_domain::{Batch, ResponseCode, Stan, TransactionKind};
use poskit_security::{
    CipherFamily, CipherKey, KeyLayout, MacAlgorithm, SecretKey, WorkingKeys, parse_field62,
};

use crate::response::put_mac;

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

/// A test terminal's connection: plain TCP, or TLS over it.
enum Link {
    Plain(TcpStream),
    Tls(Box<poskit_keystore::tls::StreamOwned<poskit_keystore::tls::ClientConnection, TcpStream>>),
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(s) => s.flush(),
        }
    }
}

/// A connection to `addr`, every read and write within `timeout`; over TLS with `tls`
/// when given (the handshake is done on the first write or read).
fn dial(
    addr: &str,
    timeout: Duration,
    tls: Option<&poskit_keystore::tls::Client>,
) -> Result<BufReader<Link>, ClientError> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let link = match tls {
        None => Link::Plain(stream),
        Some(client) => {
            let conn = client.connection().map_err(|e| {
                ClientError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?;
            Link::Tls(Box::new(poskit_keystore::tls::StreamOwned::new(
                conn, stream,
            )))
        }
    };
    Ok(BufReader::with_capacity(frame::FRAME_BYTES_MAX, link))
}

/// A connected test terminal.
pub struct TestTerminal {
    /// `None` for a terminal that only builds frames ([`TestTerminal::offline`]).
    /// Reads are buffered: answers to pipelined requests arrive together.
    stream: Option<BufReader<Link>>,
    pub tid: String,
    pub mid: String,
    tmk: SecretKey,
    keys: Option<WorkingKeys>,
    /// The MAC key of `keys` with its key schedule worked out, for checking answers.
    mac_cipher: Option<CipherKey>,
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
        TestTerminal::connect_with(addr, tid, mid, tmk_hex, timeout, None)
    }

    /// [`TestTerminal::connect`], over TLS with `tls` when given (the handshake is done on
    /// the first write or read, within `timeout` as every read and write).
    pub fn connect_with(
        addr: &str,
        tid: &str,
        mid: &str,
        tmk_hex: &str,
        timeout: Duration,
        tls: Option<&poskit_keystore::tls::Client>,
    ) -> Result<TestTerminal, ClientError> {
        let mut t = TestTerminal::offline(tid, mid, tmk_hex)?;
        t.stream = Some(dial(addr, timeout, tls)?);
        Ok(t)
    }

    /// Closes this terminal's connection and opens a new one (plain TCP) to `addr`,
    /// keeping its keys, batch and trace: a terminal that dials for each transaction.
    pub fn reconnect(&mut self, addr: &str, timeout: Duration) -> Result<(), ClientError> {
        self.stream = None;
        self.stream = Some(dial(addr, timeout, None)?);
        Ok(())
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
            mac_cipher: None,
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
        // The layout the answer's 60.3 names (001, 003, 004); 003 when it names none.
        let code = response
            .field(60)
            .and_then(|f| f.get(8..11))
            .unwrap_or("003");
        let layout = KeyLayout::from_code(code).map_err(|e| ClientError::SignIn(e.to_string()))?;
        let keys = parse_field62(layout, &self.tmk, &f62)
            .map_err(|e| ClientError::SignIn(e.to_string()))?;
        self.mac_cipher = CipherKey::new(CipherFamily::Des, &keys.mac_key()).ok();
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
        let session = Session {
            tid: &self.tid,
            mid: &self.mid,
            batch: self.batch,
            keys: self.keys.as_ref(),
            mac_algorithm: MacAlgorithm::CupEcb,
        };
        let frame = match build_request(spec, stan, &session) {
            // A financial request before sign-in still goes out (the host answers A0),
            // MAC'd under a zero key.
            Err(BuildError::NoMacKey { .. }) => {
                let zero = WorkingKeys {
                    pik: SecretKey::from_bytes(&[0u8; 16])
                        .map_err(|e| ClientError::Build(e.to_string()))?,
                    mak: SecretKey::from_bytes(&[0u8; 16])
                        .map_err(|e| ClientError::Build(e.to_string()))?,
                    tdk: None,
                };
                build_request(
                    spec,
                    stan,
                    &Session {
                        keys: Some(&zero),
                        ..session
                    },
                )
            }
            other => other,
        }
        .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok((frame, stan))
    }

    /// The key this terminal MACs its requests with (tests that rewrite a field re-MAC
    /// the frame with it).
    pub fn mac_key(&self) -> Option<SecretKey> {
        self.keys.as_ref().map(|k| k.mac_key())
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
        let link = self.connected()?.get_mut();
        link.write_all(frame)?;
        // TLS: what rustls still holds goes out (nothing to do for TCP).
        link.flush()?;
        Ok(())
    }

    /// A template of `spec` for [`RequestTemplate::frame`] (signed in, MAC'd requests).
    pub fn template(&mut self, spec: &RequestSpec) -> Result<RequestTemplate, ClientError> {
        let mac_key = self
            .keys
            .as_ref()
            .map(WorkingKeys::mac_key)
            .ok_or_else(|| ClientError::Build("a template needs a signed-in terminal".into()))?;
        let mac_key = CipherKey::new(CipherFamily::Des, &mac_key)
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let (frame, _) = self.build(spec)?;
        let decoded = frame::decode_frame(&poskit_codec::CUP_POS, &frame)
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let stan_at = decoded
            .message
            .field(11)
            .filter(|f| f.wire().len() == 3)
            .map(|f| f.wire().as_ptr() as usize - frame.as_ptr() as usize)
            .ok_or_else(|| ClientError::Build("no field 11 of three bytes".into()))?;
        if !decoded.message.has(64) {
            return Err(ClientError::Build(
                "a template needs a MAC'd request".into(),
            ));
        }
        Ok(RequestTemplate {
            frame,
            stan_at,
            mac_key,
        })
    }

    /// Takes the next trace number (for [`RequestTemplate::frame`]).
    pub fn take_stan(&mut self) -> u32 {
        self.next_stan()
    }

    /// Reads one answer and only what a load generator needs of it.
    pub fn receive_summary(&mut self) -> Result<AnswerSummary, ClientError> {
        let buf = self.receive_frame()?;
        let decoded = frame::decode_frame(&poskit_codec::CUP_POS, &buf)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let m = &decoded.message;
        let code = m
            .field(39)
            .and_then(|f| f.text())
            .and_then(|t| <[u8; 2]>::try_from(t).ok())
            .ok_or_else(|| ClientError::Decode("no field 39".into()))?;
        let stan = m
            .field(11)
            .and_then(|f| f.digits())
            .and_then(|d| d.to_string().parse().ok());
        let mac_ok = match (
            m.mac_input(),
            m.field(64).and_then(|f| f.bytes()),
            &self.mac_cipher,
        ) {
            (Some(data), Some(wire), Some(key)) => {
                key.verify_mac(MacAlgorithm::CupEcb, data, wire).ok()
            }
            _ => None,
        };
        Ok(AnswerSummary { code, stan, mac_ok })
    }

    /// Reads one answer.
    pub fn receive(&mut self) -> Result<Response, ClientError> {
        let buf = self.receive_frame()?;
        self.parse(buf)
    }

    fn receive_frame(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut prefix = [0u8; 2];
        self.connected()?.read_exact(&mut prefix)?;
        let total = frame::frame_len(&prefix)
            .map_err(|e| ClientError::Decode(e.to_string()))?
            .unwrap_or(2);
        let mut buf = vec![0u8; total];
        buf[..2].copy_from_slice(&prefix);
        self.connected()?.read_exact(&mut buf[2..])?;
        Ok(buf)
    }

    fn connected(&mut self) -> Result<&mut BufReader<Link>, ClientError> {
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
        let mak = self.keys.as_ref().map(WorkingKeys::mac_key);
        parse_response(buf, mak.as_ref(), MacAlgorithm::CupEcb)
            .map_err(|e| ClientError::Decode(e.to_string()))
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
        spec.field48 = Some(settlement_field48(
            debit_fen,
            debit_count,
            credit_fen,
            credit_count,
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

/// A request built once and sent again and again under new traces, for load: field 11 is
/// written in place and the MAC computed again for each, which is the cryptography a
/// terminal pays per request (the PIN block of one card and PIN does not change).
pub struct RequestTemplate {
    frame: Vec<u8>,
    /// Where field 11 (three bytes of packed BCD) sits in the frame.
    stan_at: usize,
    /// The terminal's MAC key, its key schedule worked out once.
    mac_key: CipherKey,
}

impl RequestTemplate {
    /// The frame for trace `stan` (0 to 999 999), MAC'd.
    pub fn frame(&mut self, stan: u32) -> &[u8] {
        let digits = Stan::new(stan)
            .map(Stan::digits)
            .unwrap_or_else(|_| panic!("trace {stan} has more than six digits"));
        for (slot, pair) in self.frame[self.stan_at..self.stan_at + 3]
            .iter_mut()
            .zip(digits.chunks_exact(2))
        {
            *slot = (pair[0] - b'0') << 4 | (pair[1] - b'0');
        }
        let mac_key = &self.mac_key;
        put_mac(&mut self.frame[frame::PREFIX_BYTES..], |data| {
            mac_key.mac(MacAlgorithm::CupEcb, data).ok()
        });
        &self.frame
    }
}

/// What a load generator needs of an answer, read without building a [`Response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerSummary {
    /// Field 39.
    pub code: [u8; 2],
    /// Field 11.
    pub stan: Option<u32>,
    /// Field 64 checked with the current MAK (`None`: no MAC or no key).
    pub mac_ok: Option<bool>,
}

impl AnswerSummary {
    /// Approved, and its MAC verified.
    pub fn approved(&self) -> bool {
        self.code == *b"00" && self.mac_ok == Some(true)
    }
}

/// Whether a code means approved (for callers that only care).
pub fn approved(response: &Response) -> bool {
    response.code() == ResponseCode::APPROVED.as_str()
}
