//! The authorization engine: a request and the ledger's state in, a decision with the
//! reason that produced it out, with its postings written through [`Ledger`]. It reads no
//! clock and no network: time, the issuer's answer and injected faults are inputs.
//!
//! Every answer is recorded as a transaction row carrying its code and its reason
//! (invariant 6). Idempotency (invariant 2) is the key of §4.3 — terminal, merchant,
//! batch, trace and request MTI — checked after the terminal and its MAC are known good.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use poskit_codec::frame::{self, Header, Tpdu};
use poskit_codec::{CUP_POS, Mti};
use poskit_domain::{
    AmountFen, Batch, ResponseCode as Rc, Tid, TransactionKind as K, digits_str, zero_padded,
};
use poskit_security::{
    CipherFamily, CipherKey, EncryptedPinBlock, KeyLayout, Mac, MacAlgorithm, MakRule, Pin,
    PinBlockFormat, SecretKey, WorkingKeys, build_field62, constant_time_eq, decrypt_pin,
};

use crate::clock::HostTime;
use crate::fields;
use crate::mackey::{MacFailure, MacKey};
use crate::model::{CardStatus, MerchantStatus, TerminalStatus};
use crate::pinhash::{PinHasher, PinTag};
use crate::request::{self, Echo, FormatError, Request};
use crate::response::{Reply, put_mac};
use crate::store::{
    CardState, Ledger, MerchantState, NewTxn, RetainedCard, StoreError, StoreResult, StoredAnswer,
    TerminalState, Totals, TxnKey, TxnRecord, TxnState, UploadedDetail,
};
pub use crate::stranger::Stranger;
use crate::switch::{Divergence, Forwarded, forward_stan_of};

/// Settings of the engine (a profile: acquirers differ).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Field 32: this acquirer's institution code.
    pub acquirer_code: String,
    pub mac_algorithm: MacAlgorithm,
    pub mak_rule: MakRule,
    /// A completion may exceed its pre-authorization by this many percent.
    pub completion_over_percent_max: u64,
    /// Where the working keys a sign-in issues come from (the engine reads no randomness
    /// of its own).
    pub key_source: Arc<dyn KeySource>,
}

/// Random bytes for new working keys.
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// Fills `out` with key material, or says why it cannot.
    fn fill(&self, out: &mut [u8]) -> Result<(), String>;
}

/// The operating system's random source (`getrandom`).
#[derive(Debug)]
pub struct SystemKeys;

impl KeySource for SystemKeys {
    fn fill(&self, out: &mut [u8]) -> Result<(), String> {
        getrandom::fill(out).map_err(|e| format!("the system gave no randomness: {e}"))
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            acquirer_code: "08010000".to_owned(),
            mac_algorithm: MacAlgorithm::CupEcb,
            mak_rule: MakRule::default(),
            completion_over_percent_max: 15,
            key_source: Arc::new(SystemKeys),
        }
    }
}

/// What the issuer said, for cards of an external issuer (the issuer simulator runs before
/// the engine, outside the database transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerVerdict {
    /// The host is the issuer, or the external issuer answered in time.
    Reachable,
    /// The issuer is down: 91.
    Down,
    /// The issuer did not answer within the host's timeout: 98.
    TimedOut,
}

/// A fault the plan injects into processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Injected {
    /// Decline with this code; `rule` names the plan rule for the recorded reason.
    Code { code: Rc, rule: String },
    /// Fail the storage after the postings are written: the host answers 96 and the
    /// savepoint is rolled back.
    StorageError,
}

/// One request to process.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// The whole frame, length prefix included.
    pub frame: &'a [u8],
    pub now: HostTime,
    pub issuer: IssuerVerdict,
    pub injected: Option<Injected>,
    /// The frame already read ([`Parsed::of`]); `None`: the engine reads it.
    pub parsed: Option<&'a Parsed>,
    /// Cryptography done before the request reached the engine ([`Precheck`]).
    pub precheck: Option<&'a Precheck>,
    /// Leave field 64 of the answer to the caller ([`Answer::mac_pending`]), who computes
    /// it outside the database transaction ([`Answer::seal`]).
    pub mac_later: bool,
    /// How the switch's record of this request departs from the host's (the engine does not
    /// read it: the writer hands it to [`crate::switch::record`] with the answer).
    pub divergence: Divergence,
}

/// A frame read into a request: a function of its bytes alone, so whoever reads it off the
/// network can do it and hand it to the engine with the frame ([`Input::parsed`]).
#[derive(Clone)]
pub struct Parsed {
    tpdu: Tpdu,
    header: Header,
    mti: Mti,
    request_hash: String,
    mac_input: Option<Vec<u8>>,
    mac_wire: Option<Vec<u8>>,
    card_digits_field2: bool,
    /// Field 11 was sent (an echo test may come without it: §2.4).
    stan_sent: bool,
    request: Result<Request, FormatError>,
}

/// Shows no field: the MAC input holds the card number and the PIN block.
impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("mti", &self.mti.as_str())
            .field("request_hash", &self.request_hash)
            .field("reads", &self.request.is_ok())
            .finish_non_exhaustive()
    }
}

impl Parsed {
    /// Reads `frame`; `Err` with the decoder's reason when it does not decode.
    pub fn of(frame: &[u8]) -> Result<Parsed, String> {
        let decoded = frame::decode_frame(&CUP_POS, frame).map_err(|e| e.to_string())?;
        let m = &decoded.message;
        Ok(Parsed {
            tpdu: decoded.tpdu,
            header: decoded.header,
            mti: m.mti(),
            request_hash: request_hash(m),
            mac_input: m.mac_input().map(<[u8]>::to_vec),
            mac_wire: m.field(64).and_then(|f| f.bytes()).map(<[u8]>::to_vec),
            card_digits_field2: m.has(2),
            stan_sent: m.has(11),
            request: request::read(&decoded),
        })
    }

    /// The request, when the frame reads as one (else it is answered 30).
    pub fn request(&self) -> Option<&Request> {
        self.request.as_ref().ok()
    }
}

/// A terminal's working keys as the connection tasks use them: the keys themselves and
/// their ciphers' key schedules, worked out once per sign-in instead of once per MAC and
/// per PIN block (DES key schedules were a tenth of a connection task's work).
pub struct TerminalKeys {
    pub pik: SecretKey,
    pub mac: MacKey,
    /// The PIK for format 0 PIN blocks (DES family).
    pik_cipher: Option<CipherKey>,
    /// The MAC key for each family it suits (DES, and SM4 for a 16-byte key).
    mac_ciphers: Vec<CipherKey>,
}

impl TerminalKeys {
    pub fn new(pik: SecretKey, mac: MacKey) -> TerminalKeys {
        let pik_cipher = CipherKey::new(PinBlockFormat::Iso0.family(), &pik).ok();
        let mac_ciphers = match mac.clear() {
            Some(clear) => [CipherFamily::Des, CipherFamily::Sm4]
                .into_iter()
                .filter_map(|family| CipherKey::new(family, clear).ok())
                .collect(),
            None => Vec::new(),
        };
        TerminalKeys {
            pik,
            mac,
            pik_cipher,
            mac_ciphers,
        }
    }

    /// The MAC of `data` under the MAC key, with its prepared schedule when the algorithm
    /// has one (or by the HSM holding the key).
    pub fn mac_of(&self, algorithm: MacAlgorithm, data: &[u8]) -> Result<Mac, MacFailure> {
        let family = algorithm.cipher_family();
        match self.mac_ciphers.iter().find(|c| Some(c.family()) == family) {
            Some(cipher) => cipher
                .mac(algorithm, data)
                .map_err(|e| MacFailure::Unusable(e.to_string())),
            None => self.mac.mac(algorithm, data),
        }
    }

    fn decrypt_pin(&self, pan: &str, block: &EncryptedPinBlock) -> Option<Pin> {
        match &self.pik_cipher {
            Some(cipher) => cipher.decrypt_pin(pan, block).ok(),
            None => decrypt_pin(&self.pik, pan, block).ok(),
        }
    }
}

/// Shows no key.
impl std::fmt::Debug for TerminalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalKeys").finish_non_exhaustive()
    }
}

/// The cryptography of a request done by whoever read it off the network, with the keys
/// last known for its terminal — so that the one writer does not spend its time on DES.
/// It is a hint: the engine takes a result only when the keys, card number and PIN block
/// it would use itself are the ones the result was computed with, and otherwise does the
/// work again.
///
/// Only [`Precheck::compute`] makes one, from the frame it is handed beside.
#[derive(Clone)]
pub struct Precheck {
    /// The request it was made for ([`Parsed`]'s hash of the MAC'd data).
    request_hash: String,
    mac_algorithm: MacAlgorithm,
    /// The keys the request's MAC and PIN were checked with.
    keys: Arc<TerminalKeys>,
    /// The field 64 checked, and whether it verified (`None`: it could not be checked).
    mac_wire: Option<Vec<u8>>,
    mac_ok: Option<bool>,
    /// Field 52 decrypted: the card number and block used, and the PIN under the PIN
    /// verification key (`None`: the block yields no PIN).
    pin: Option<PinPrecheck>,
}

/// Shows no key, card number or PIN data.
impl std::fmt::Debug for Precheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Precheck")
            .field("request_hash", &self.request_hash)
            .field("mac_ok", &self.mac_ok)
            .field("pin_found", &self.pin_found())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct PinPrecheck {
    pan: String,
    block: [u8; 8],
    tag: Option<PinTag>,
}

impl Precheck {
    /// Checks the MAC of a read request and the PIN of its field 52 (if any) with the keys
    /// `keys_of` gives for its terminal, as the engine would. `None` when the frame is no
    /// request (it is answered 30 without a MAC check) or no keys are known.
    pub fn compute(
        parsed: &Parsed,
        mac_algorithm: MacAlgorithm,
        keys_of: impl FnOnce(&Tid) -> Option<Arc<TerminalKeys>>,
        pins: &PinHasher,
    ) -> Option<Precheck> {
        let req = parsed.request()?;
        let keys = keys_of(&req.tid)?;
        let mac_ok = match (&parsed.mac_input, &parsed.mac_wire) {
            // A MAC that cannot be computed here (an HSM down) is left to the engine.
            (Some(data), Some(wire)) => keys
                .mac_of(mac_algorithm, data)
                .ok()
                .map(|mac| constant_time_eq(mac.as_bytes(), wire)),
            _ => None,
        };
        let pin = match (&req.card, req.pin_block) {
            (Some(card), Some(block)) => {
                let pan = card.pan.digits();
                let tag = EncryptedPinBlock::from_bytes(PinBlockFormat::Iso0, &block)
                    .ok()
                    .and_then(|b| keys.decrypt_pin(pan, &b))
                    .map(|p| pins.tag(pan, &p));
                Some(PinPrecheck {
                    pan: pan.to_owned(),
                    block,
                    tag,
                })
            }
            _ => None,
        };
        Some(Precheck {
            request_hash: parsed.request_hash.clone(),
            mac_algorithm,
            keys,
            mac_wire: parsed.mac_wire.clone(),
            mac_ok,
            pin,
        })
    }

    /// Whether field 64 verified, as far as this check knows (for tests and logs).
    pub fn mac_verified(&self) -> Option<bool> {
        self.mac_ok
    }

    /// Whether field 52 was decrypted to a PIN.
    pub fn pin_found(&self) -> bool {
        self.pin.as_ref().is_some_and(|p| p.tag.is_some())
    }

    /// The keys it was made with (for the answer's MAC on the same task).
    pub fn keys(&self) -> &Arc<TerminalKeys> {
        &self.keys
    }
}

/// The engine's answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The frame to write; `None` when nothing can be answered (the server closes). With
    /// [`Input::mac_later`] it may be `None` until [`Answer::seal`]: the writer leaves the
    /// encoding of an answer's fields to the connection.
    pub frame: Option<Vec<u8>>,
    /// The fields still to be encoded into `frame` (by [`Answer::seal`]).
    pub(crate) reply: Option<Box<Reply>>,
    pub code: Rc,
    pub reason: String,
    /// The transaction row this answer is recorded as.
    pub txn_id: Option<i64>,
    /// The answer is a resend of the first answer to a retransmitted request.
    pub repeated: bool,
    pub kind: Option<K>,
    pub reversal: bool,
    pub amount_fen: Option<u64>,
    pub pan_masked: Option<String>,
    pub tid: Option<String>,
    /// Field 64 still to be computed with this key (the request asked for
    /// [`Input::mac_later`]).
    pub mac_pending: Option<MacKey>,
    /// The terminal's working keys (PIK, MAC key) as this answer leaves them, when it
    /// learnt them: `Some(None)` after a sign-off. For [`Precheck`]s of later requests.
    pub keys_after: Option<Option<(SecretKey, MacKey)>>,
    /// Set when the request did not prove itself (invariant 9): answered, not recorded.
    pub stranger: Option<Stranger>,
    /// The message the host sent the switch for it (a card of an external issuer), with
    /// the host's answer: the writer hands it to the switch's record ([`crate::switch`]).
    pub forwarded: Option<Box<Forwarded>>,
    /// A settlement's answer: whether the terminal's totals agreed with the host's.
    pub settled: Option<bool>,
}

/// What an answer is sent as: a frame, or fields still to encode.
enum Body {
    Frame(Vec<u8>),
    Reply(Box<Reply>),
}

/// Processes one request against the ledger. A storage error leaves the caller to roll
/// back and answer 96 ([`storage_failure_answer`]).
pub fn process(
    ledger: &mut dyn Ledger,
    cfg: &EngineConfig,
    pins: &PinHasher,
    input: &Input<'_>,
) -> StoreResult<Answer> {
    match process_held(ledger, cfg, pins, input) {
        Ok(answer) => {
            ledger.flush()?;
            Ok(answer)
        }
        Err(e) => {
            ledger.discard();
            Err(e)
        }
    }
}

/// [`process`] up to what the store may still hold back.
fn process_held(
    ledger: &mut dyn Ledger,
    cfg: &EngineConfig,
    pins: &PinHasher,
    input: &Input<'_>,
) -> StoreResult<Answer> {
    let read_here;
    let parsed = match input.parsed {
        Some(p) => p,
        None => match Parsed::of(input.frame) {
            Ok(p) => {
                read_here = p;
                &read_here
            }
            Err(why) => return undecodable(ledger, cfg, input, &why),
        },
    };
    let mut ctx = Ctx {
        ledger,
        cfg,
        pins,
        now: input.now,
        parsed,
        issuer: input.issuer,
        injected: input.injected.clone(),
        keys: None,
        keys_after: None,
        precheck: input.precheck,
        forwarded_to: None,
    };
    let req = match &parsed.request {
        Ok(r) => r,
        Err(fe) => {
            // The rare path reads the frame again for what it can echo.
            let echo = frame::decode_frame(&CUP_POS, input.frame)
                .map(|d| Echo::of(&d.message))
                .unwrap_or_default();
            return ctx.format_error(&echo, fe);
        }
    };
    let mut answer = ctx.handle(req)?;
    answer.keys_after = match ctx.keys_after.take() {
        Some(after) => Some(after),
        None => ctx.keys.take().map(Some),
    };
    if !input.mac_later {
        answer.seal(cfg.mac_algorithm);
    }
    Ok(answer)
}

/// The 96 answer to a request whose processing failed in storage; built without the
/// store, recorded nowhere (the failure is logged by the caller).
pub fn storage_failure_answer(input: &Input<'_>, error: &StoreError) -> Answer {
    let reason = format!("storage failure, nothing posted: {error}");
    let Ok(decoded) = frame::decode_frame(&CUP_POS, input.frame) else {
        return Answer::unanswerable(reason);
    };
    let m = &decoded.message;
    let mut reply = Reply::to(&decoded.tpdu, &decoded.header, m.mti());
    for n in [2u8, 3, 4, 11, 25, 41, 42, 49, 60] {
        if let Some(f) = m.field(n) {
            reply.set(n, f.to_text().into_bytes());
        }
    }
    reply.set(39, *b"96");
    let (bytes, _) = reply.encode();
    let identified = crate::request::identify(m);
    Answer {
        settled: None,
        frame: Some(bytes),
        reply: None,
        code: Rc::SYSTEM_MALFUNCTION,
        reason,
        txn_id: None,
        repeated: false,
        kind: identified.map(
            |(poskit_domain::Identified::Request(k) | poskit_domain::Identified::Reversal(k))| k,
        ),
        reversal: matches!(identified, Some(poskit_domain::Identified::Reversal(_))),
        amount_fen: None,
        pan_masked: None,
        tid: m.field(41).map(|f| f.to_text()),
        mac_pending: None,
        keys_after: None,
        stranger: None,
        forwarded: None,
    }
}

impl Answer {
    fn of(
        req: &Request,
        body: Body,
        code: Rc,
        reason: String,
        txn_id: i64,
        repeated: bool,
    ) -> Answer {
        let (frame, reply) = match body {
            Body::Frame(frame) => (Some(frame), None),
            Body::Reply(reply) => (None, Some(reply)),
        };
        Answer {
            settled: None,
            frame,
            reply,
            code,
            reason,
            txn_id: Some(txn_id),
            repeated,
            kind: Some(req.kind()),
            reversal: req.is_reversal(),
            amount_fen: req.amount.map(|a| a.fen()),
            pan_masked: req.card.as_ref().map(|c| c.pan.masked()),
            tid: Some(req.tid.as_str().to_owned()),
            mac_pending: None,
            keys_after: None,
            stranger: None,
            forwarded: None,
        }
    }

    fn unanswerable(reason: String) -> Answer {
        Answer {
            settled: None,
            frame: None,
            reply: None,
            code: Rc::FORMAT_ERROR,
            reason,
            txn_id: None,
            repeated: false,
            kind: None,
            reversal: false,
            amount_fen: None,
            pan_masked: None,
            tid: None,
            mac_pending: None,
            keys_after: None,
            stranger: None,
            forwarded: None,
        }
    }

    /// Encodes the answer's fields and computes field 64 if either was left for later
    /// ([`Input::mac_later`]).
    pub fn seal(&mut self, algorithm: MacAlgorithm) {
        self.seal_with(algorithm, None);
    }

    /// [`Answer::seal`], with the prepared ciphers of `keys` when its MAC key is the one
    /// the answer is to be sealed with.
    pub fn seal_with(&mut self, algorithm: MacAlgorithm, keys: Option<&TerminalKeys>) {
        if let Some(reply) = self.reply.take() {
            let (frame, refused) = reply.encode_with_mac_slot(self.mac_pending.is_some());
            if refused.is_empty() {
                self.frame = Some(frame);
            } else {
                // The engine sets only values it has checked: this is a bug. No answer
                // at all (the connection closes) rather than one without a field: the
                // terminal reverses what it does not see approved.
                tracing::error!(
                    txn = self.txn_id.unwrap_or(0),
                    ?refused,
                    "answer fields refused by the profile; not answering"
                );
                self.mac_pending = None;
                return;
            }
        }
        let (Some(key), Some(frame)) = (self.mac_pending.take(), self.frame.as_mut()) else {
            return;
        };
        if frame.len() <= frame::PREFIX_BYTES {
            return;
        }
        let message = &mut frame[frame::PREFIX_BYTES..];
        let txn = self.txn_id.unwrap_or(0);
        let sealed = |mac: Result<Mac, MacFailure>| {
            // Left unsealed, the answer fails the terminal's MAC check and it reverses.
            mac.inspect_err(|e| tracing::error!(txn, "answer not sealed: {e}"))
                .ok()
        };
        match keys.filter(|k| k.mac == key) {
            Some(keys) => put_mac(message, |data| sealed(keys.mac_of(algorithm, data))),
            None => put_mac(message, |data| sealed(key.mac(algorithm, data))),
        }
    }
}

fn request_hash(m: &poskit_codec::Message<'_>) -> String {
    let covered = m.mac_input().unwrap_or(m.input());
    let digest = Sha256::digest(covered);
    hex::encode(&digest[..16])
}

/// A frame that does not decode: 30 when its MTI can be read, else nothing (close).
fn undecodable(
    ledger: &mut dyn Ledger,
    cfg: &EngineConfig,
    input: &Input<'_>,
    why: &str,
) -> StoreResult<Answer> {
    let bytes = input.frame;
    let reason = format!("format error: {why}");
    let prefix = frame::PREFIX_BYTES;
    let mti = bytes.get(prefix..prefix + 2).and_then(|b| {
        let text = format!("{:02X}{:02X}", b[0], b[1]);
        Mti::parse(&text)
    });
    let (Some(mti), Some(tpdu), Some(header)) = (
        mti,
        bytes.get(2..7).and_then(|t| <[u8; 5]>::try_from(t).ok()),
        bytes.get(7..13).and_then(|h| <[u8; 6]>::try_from(h).ok()),
    ) else {
        return Ok(Answer {
            settled: None,
            stranger: Some(Stranger::Undecodable),
            ..Answer::unanswerable(reason)
        });
    };
    // Nothing in it proves who sent it: answered, not recorded (invariant 9). What can be
    // read of 11, 41 and 42 before the frame goes wrong is echoed.
    let echo = bytes
        .get(prefix..)
        .and_then(|message| poskit_codec::Message::decode_readable(&CUP_POS, message))
        .map(|readable| Echo::of(&readable))
        .unwrap_or_default();
    let mut answer = format_error_answer(
        None,
        cfg,
        input.now,
        (Tpdu(tpdu), Header(header), mti),
        &echo,
        None,
        (Rc::FORMAT_ERROR, reason),
    )?;
    answer.stranger = Some(Stranger::Undecodable);
    let _ = ledger;
    Ok(answer)
}

/// Records a request that is not read as one — a format error (30), or a transaction this
/// host does not offer (40) — when given the ledger, and builds its answer, with whatever
/// of the request could be read ([`Echo`]). Not recorded: no field 37 (there is no row).
fn format_error_answer(
    ledger: Option<&mut dyn Ledger>,
    cfg: &EngineConfig,
    now: HostTime,
    (tpdu, header, mti): (Tpdu, Header, Mti),
    echo: &Echo,
    request_hash: Option<&str>,
    (code, reason): (Rc, String),
) -> StoreResult<Answer> {
    assert!(!code.is_approved(), "a request not read is never approved");
    let (mmdd, hhmmss) = (now.mmdd(), now.hhmmss());
    let Some(ledger) = ledger else {
        let mut reply = Reply::to(&tpdu, &header, mti);
        echo_fields(&mut reply, cfg, echo, (&mmdd, &hhmmss), code);
        let (frame, _) = reply.encode();
        return Ok(Answer {
            settled: None,
            frame: Some(frame),
            tid: echo.tid.clone(),
            code,
            ..Answer::unanswerable(reason)
        });
    };
    let id = ledger.insert_txn(&NewTxn {
        key: None,
        kind: None,
        reversal: mti.0 == *b"0400",
        tid: echo.tid.as_deref(),
        mid: echo.mid.as_deref(),
        batch: None,
        stan: echo.stan.as_deref().and_then(|s| s.parse().ok()),
        mti: mti.as_str(),
        request_hash,
        amount_fen: None,
        card_id: None,
        pan_masked: None,
        auth_code: None,
        day: now.day,
        mmdd: &mmdd,
        hhmmss: &hhmmss,
        created_ms: now.unix_ms,
        code: code.as_str(),
        reason: &reason,
        state: TxnState::Declined,
        original_id: None,
        fwd: false,
    })?;
    let mut reply = Reply::to(&tpdu, &header, mti);
    echo_fields(&mut reply, cfg, echo, (&mmdd, &hhmmss), code);
    reply.set(37, rrn_of(id).into_bytes());
    ledger.set_txn_answer(id, &rrn_of(id), None, reply.to_stored())?;
    let (frame, _) = reply.encode();
    Ok(Answer {
        settled: None,
        frame: Some(frame),
        txn_id: Some(id),
        tid: echo.tid.clone(),
        code,
        ..Answer::unanswerable(reason)
    })
}

/// The fields of a 30 (or 40): what could be read of the request, the time, the acquirer.
fn echo_fields(
    reply: &mut Reply,
    cfg: &EngineConfig,
    echo: &Echo,
    (mmdd, hhmmss): (&str, &str),
    code: Rc,
) {
    if let Some(s) = &echo.stan {
        reply.set(11, s.clone().into_bytes());
    }
    reply.set(12, hhmmss.as_bytes());
    reply.set(13, mmdd.as_bytes());
    reply.set(32, cfg.acquirer_code.clone().into_bytes());
    reply.set(39, code.0);
    for (n, v) in [(41u8, &echo.tid), (42, &echo.mid)] {
        if let Some(v) = v {
            reply.set(n, v.clone().into_bytes());
        }
    }
}

/// Settled batches a void's original is looked for in (to answer 12 "settled batch, refund
/// it instead" rather than 25): about a month of daily settlements.
pub const VOID_SETTLED_BATCHES_LOOKED_MAX: u32 = 31;

/// An institution id in field 44: AN11 (issuer, then acquirer).
const INSTITUTION_ID_BYTES: usize = 11;

/// Field 37 of a transaction: its row id, twelve digits. Unique in the store.
pub fn rrn_of(id: i64) -> String {
    digits_str(&rrn_digits(id)).to_owned()
}

/// [`rrn_of`] as the twelve digits of field 37.
fn rrn_digits(id: i64) -> [u8; 12] {
    zero_padded(id.rem_euclid(1_000_000_000_000) as u64)
}

/// Field 38 of an approval: six digits derived from the row id.
pub fn auth_code_of(id: i64) -> String {
    let code = id
        .wrapping_mul(7_777_777)
        .wrapping_add(123_457)
        .rem_euclid(1_000_000);
    digits_str(&zero_padded::<6>(code as u64)).to_owned()
}

/// A request's terminal and merchant, as the store keeps them.
type Acceptor = (Arc<TerminalState>, Arc<MerchantState>);

/// A decision before it is recorded.
struct Decision {
    code: Rc,
    reason: String,
    /// Whether the idempotency key is claimed by this answer.
    keyed: bool,
    require_sign_in: bool,
}

fn decline(code: Rc, reason: impl Into<String>) -> Decision {
    Decision {
        code,
        reason: reason.into(),
        keyed: true,
        require_sign_in: false,
    }
}

/// A decline given before the key can be trusted: it claims no key, so the terminal may
/// send the same trace again once the cause is fixed.
fn refuse(code: Rc, reason: impl Into<String>) -> Decision {
    Decision {
        keyed: false,
        ..decline(code, reason)
    }
}

/// Days a merchant has to hand a retained card to the acquirer.
pub const RETAINED_HANDOVER_DAYS: i64 = 3;

/// What an approval did, for the response.
#[derive(Default)]
struct Effect {
    original_id: Option<i64>,
    auth_code: Option<String>,
    /// Field 54: available balance.
    balance_fen: Option<i64>,
}

struct Ctx<'l, 'c> {
    ledger: &'l mut dyn Ledger,
    /// The working keys a sign-in issued or a sign-off withdrew.
    keys_after: Option<Option<(SecretKey, MacKey)>>,
    precheck: Option<&'c Precheck>,
    cfg: &'c EngineConfig,
    pins: &'c PinHasher,
    now: HostTime,
    parsed: &'c Parsed,
    issuer: IssuerVerdict,
    injected: Option<Injected>,
    /// The terminal's PIK and the key its MACs are computed with, once it is known.
    keys: Option<(SecretKey, MacKey)>,
    /// The external issuer (its institution code) the request is forwarded to through the
    /// switch, once the card's issuer is known to be one.
    forwarded_to: Option<String>,
}

impl Ctx<'_, '_> {
    fn format_error(&mut self, echo: &Echo, fe: &FormatError) -> StoreResult<Answer> {
        // Recorded only when its terminal is registered and its MAC verifies (invariant 9).
        let proven = self.echo_proven(echo)?;
        let refusal = match fe.not_offered {
            Some(t) => (
                fields::FUNCTION_NOT_SUPPORTED,
                format!(
                    "function not supported: {} ({}) is not offered by this host",
                    t.name_en, t.name_zh
                ),
            ),
            None => (Rc::FORMAT_ERROR, format!("format error: {fe}")),
        };
        let mut answer = format_error_answer(
            proven.then_some(&mut *self.ledger),
            self.cfg,
            self.now,
            (self.parsed.tpdu, self.parsed.header, self.parsed.mti),
            echo,
            Some(&self.parsed.request_hash),
            refusal,
        )?;
        if !proven {
            answer.stranger = Some(Stranger::Undecodable);
        }
        Ok(answer)
    }

    /// Whether a request that does not read names a registered terminal and carries a MAC
    /// that verifies with its key.
    fn echo_proven(&mut self, echo: &Echo) -> StoreResult<bool> {
        let Some(tid) = echo.tid.as_deref().and_then(|t| Tid::parse(t).ok()) else {
            return Ok(false);
        };
        let Some(terminal) = self.ledger.terminal(&tid)? else {
            return Ok(false);
        };
        if echo.mid.as_deref() != Some(terminal.mid.as_str()) {
            return Ok(false);
        }
        let (Some(key), Some(data), Some(wire)) = (
            self.mac_key(&terminal),
            &self.parsed.mac_input,
            &self.parsed.mac_wire,
        ) else {
            return Ok(false);
        };
        match key.verify(self.cfg.mac_algorithm, data, wire) {
            Ok(verified) => Ok(verified),
            Err(MacFailure::Unavailable(why)) => Err(StoreError::Keys(why)),
            Err(MacFailure::Unusable(_)) => Ok(false),
        }
    }

    /// Answers a refusal given before the request proved itself, without recording it
    /// (invariant 9): the server counts it, by reason and by peer.
    fn unproven(&mut self, req: &Request, d: Decision, why: Stranger) -> StoreResult<Answer> {
        debug_assert!(!d.code.is_approved(), "only refusals are unproven");
        // `base_reply` without field 37: no row, no reference number.
        let mut reply = Reply::to(&self.parsed.tpdu, &self.parsed.header, self.parsed.mti);
        reply.set(11, req.stan.digits());
        reply.set(12, self.now.hhmmss_digits());
        reply.set(13, self.now.mmdd_digits());
        reply.set(32, &self.cfg.acquirer_code);
        reply.set(39, d.code.0);
        reply.set(41, *req.tid.as_bytes());
        reply.set(42, *req.mid.as_bytes());
        if d.require_sign_in {
            reply.require_sign_in();
        }
        // Field 44 on refusals too (§2.4: approvals and declines alike).
        let field44 = self.field44(req)?;
        self.reply_fields(req, &mut reply, d.code, &Effect::default(), field44);
        let (frame, _) = reply.encode();
        let mut answer = Answer::of(req, Body::Frame(frame), d.code, d.reason, 0, false);
        answer.txn_id = None;
        answer.stranger = Some(why);
        Ok(answer)
    }

    /// A refusal from [`Ctx::acceptor`]: recorded when the terminal is registered and the
    /// request's MAC verifies with its key (a merchant set-up problem the monitor must
    /// see), answered only otherwise.
    fn refused_acceptor(&mut self, req: &Request, d: Decision) -> StoreResult<Answer> {
        let proven = d.code != Rc::TERMINAL_NOT_REGISTERED
            && req.kind().carries_mac()
            && self.verify_request_mac(req.tid)?.is_ok();
        if proven {
            self.record(req, d, Effect::default(), None)
        } else {
            self.unproven(req, d, Stranger::UnknownTerminal)
        }
    }

    fn handle(&mut self, req: &Request) -> StoreResult<Answer> {
        match req.kind() {
            K::SignIn | K::SignOff | K::Echo | K::Settlement | K::BatchUpload => {
                self.management(req)
            }
            _ => self.financial(req),
        }
    }

    // ---- shared checks -------------------------------------------------------------

    /// The terminal and its merchant, or the refusal (97 / 03).
    fn acceptor(&mut self, req: &Request) -> StoreResult<Result<Acceptor, Decision>> {
        let Some(terminal) = self.ledger.terminal(&req.tid)? else {
            return Ok(Err(refuse(
                Rc::TERMINAL_NOT_REGISTERED,
                format!("terminal {} is not registered at this host", req.tid),
            )));
        };
        if terminal.mid != req.mid {
            return Ok(Err(refuse(
                Rc::TERMINAL_NOT_REGISTERED,
                format!(
                    "terminal {} is registered to merchant {}, not to {}",
                    req.tid, terminal.mid, req.mid
                ),
            )));
        }
        if terminal.status == TerminalStatus::Inactive {
            return Ok(Err(refuse(
                Rc::TERMINAL_NOT_REGISTERED,
                format!("terminal {} is deactivated", req.tid),
            )));
        }
        self.keys = terminal
            .keys
            .as_ref()
            .map(|(pik, mak)| (pik.clone(), mak.as_used(self.cfg.mak_rule)));
        let Some(merchant) = self.ledger.merchant(&req.mid)? else {
            return Ok(Err(refuse(
                Rc::INVALID_MERCHANT,
                format!("merchant {} is not registered", req.mid),
            )));
        };
        match merchant.status {
            MerchantStatus::Active => {}
            MerchantStatus::Inactive => {
                return Ok(Err(refuse(
                    Rc::INVALID_MERCHANT,
                    format!("merchant {} is inactive", req.mid),
                )));
            }
            MerchantStatus::Blacklisted => {
                return Ok(Err(refuse(
                    Rc::INVALID_MERCHANT,
                    format!("merchant {} is blacklisted", req.mid),
                )));
            }
        }
        Ok(Ok((terminal, merchant)))
    }

    /// The checks of [`fields::check`] with this merchant's currencies and the terminal's
    /// PIK (not for reversals: they post from their original).
    fn field_checks(&self, req: &Request, merchant: &MerchantState) -> Result<(), Decision> {
        let against = fields::Against {
            currencies: &merchant.currencies,
            pik_bytes: self.keys.as_ref().map(|(pik, _)| pik.len()),
        };
        // Refused, not declined: no key is claimed, the terminal may send the trace again
        // once its fields are right.
        fields::check(req, &against).map_err(|(code, reason)| refuse(code, reason))
    }

    fn mac_key(&self, terminal: &TerminalState) -> Option<MacKey> {
        terminal
            .keys
            .as_ref()
            .map(|(_, mak)| mak.as_used(self.cfg.mak_rule))
    }

    /// `Ok(Err(refusal))` when the request's MAC does not verify; `Err` when the HSM that
    /// holds the MAK cannot be reached (the request is answered 96, nothing recorded).
    fn verify_request_mac(&self, tid: Tid) -> StoreResult<Result<(), Decision>> {
        let not_signed_in = || Decision {
            require_sign_in: true,
            ..refuse(
                Rc::MAC_ERROR,
                format!("terminal {tid} has not signed in: no MAC key"),
            )
        };
        // The MAC key the acceptor worked out for this terminal.
        let Some((_, key)) = &self.keys else {
            return Ok(Err(not_signed_in()));
        };
        let (Some(data), Some(wire)) = (&self.parsed.mac_input, &self.parsed.mac_wire) else {
            return Ok(Err(refuse(
                Rc::FORMAT_ERROR,
                "format error: field 64: MAC missing",
            )));
        };
        let checked = match self.precheck {
            Some(p)
                if p.request_hash == self.parsed.request_hash
                    && p.mac_algorithm == self.cfg.mac_algorithm
                    && p.keys.mac == *key
                    && p.mac_wire.as_ref() == Some(wire)
                    && p.mac_ok.is_some() =>
            {
                Ok(p.mac_ok == Some(true))
            }
            _ => key.verify(self.cfg.mac_algorithm, data, wire),
        };
        Ok(match checked {
            Ok(true) => Ok(()),
            Ok(false) => Err(Decision {
                require_sign_in: true,
                ..refuse(
                    Rc::MAC_ERROR,
                    format!(
                        "MAC of the request does not verify with the MAK issued to terminal {tid} at its last sign-in"
                    ),
                )
            }),
            Err(MacFailure::Unavailable(why)) => return Err(StoreError::Keys(why)),
            Err(e @ MacFailure::Unusable(_)) => Err(Decision {
                require_sign_in: true,
                ..refuse(Rc::MAC_ERROR, format!("terminal {tid}: {e}"))
            }),
        })
    }

    // ---- financial -------------------------------------------------------------------

    fn financial(&mut self, req: &Request) -> StoreResult<Answer> {
        let (terminal, merchant) = match self.acceptor(req)? {
            Ok(pair) => pair,
            Err(d) => return self.refused_acceptor(req, d),
        };
        if let Err(d) = self.verify_request_mac(req.tid)? {
            return self.unproven(req, d, Stranger::BadMac);
        }
        let key = TxnKey {
            tid: req.tid,
            mid: req.mid,
            batch: req.batch,
            stan: req.stan,
            class: req.mti.0,
        };
        if let Some(previous) = self.ledger.find_by_key(&key)? {
            if previous.request_hash.as_deref() == Some(self.parsed.request_hash.as_str()) {
                return self.resend(req, &terminal, &previous);
            }
            let d = refuse(
                Rc::DUPLICATE,
                format!(
                    "trace {} of batch {} was already used by another request (transaction {}, answered {})",
                    req.stan, req.batch, previous.id, previous.code
                ),
            );
            return self.record(
                req,
                d,
                Effect {
                    original_id: Some(previous.id),
                    ..Effect::default()
                },
                None,
            );
        }
        if req.is_reversal() {
            // A reversal names its original by the original's batch, which no sign-in
            // changes: it is matched whatever the host's batch is now.
            return self.reversal(req, terminal.batch);
        }
        if let Err(d) = self.field_checks(req, &merchant) {
            return self.record(req, d, Effect::default(), None);
        }
        if req.batch != terminal.batch {
            let d = Decision {
                require_sign_in: true,
                ..refuse(
                    Rc::BATCH_MISMATCH,
                    format!(
                        "the request's batch {} is not the host's batch {} for this terminal: sign in again",
                        req.batch, terminal.batch
                    ),
                )
            };
            return self.record(req, d, Effect::default(), None);
        }
        if let Some(reversal) = self
            .ledger
            .find_reversal_of(&req.tid, &req.mid, req.batch, req.stan)?
        {
            let d = decline(
                Rc::INVALID_TRANSACTION,
                format!(
                    "a reversal of this trace (transaction {}) arrived first; the late original must not post",
                    reversal.id
                ),
            );
            return self.record(req, d, Effect::default(), None);
        }
        let kind = req.kind();
        if let Some(permitted) = &terminal.permitted
            && !permitted.contains(&kind)
        {
            let d = decline(
                Rc::NOT_PERMITTED_TO_TERMINAL,
                format!(
                    "terminal {} is not permitted to do {}",
                    req.tid,
                    kind.name_en()
                ),
            );
            return self.record(req, d, Effect::default(), None);
        }
        if let Some(Injected::Code { code, rule }) = &self.injected {
            let d = decline(*code, format!("fault plan rule {rule:?} answers {code}"));
            return self.record(req, d, Effect::default(), None);
        }
        let card = match self.card(req, kind)? {
            Ok(card) => card,
            Err(d) => return self.record(req, d, Effect::default(), None),
        };
        let outcome = match kind {
            K::Sale | K::PreAuth | K::BalanceInquiry => {
                self.debit_checks(req, &terminal, &merchant, &card, kind)?
            }
            K::PreAuthCompletion | K::PreAuthCompletionAdvice => {
                self.completion_checks(req, &terminal, &merchant, &card)?
            }
            K::PreAuthCancel => self.cancel_checks(req, &card)?,
            K::Void | K::PreAuthCompletionVoid => self.void_checks(req, &terminal, &card, kind)?,
            K::Refund => self.refund_checks(req, &terminal, &card)?,
            K::SignIn | K::SignOff | K::Echo | K::Settlement | K::BatchUpload => {
                unreachable!("management messages are handled apart")
            }
        };
        match outcome {
            Err(d) => self.record(req, d, Effect::default(), Some(&card)),
            Ok(plan) => self.approve(req, &merchant, &card, plan),
        }
    }

    /// The card of the request, checked: number, issuer, status, expiry, permission, PIN.
    fn card(&mut self, req: &Request, kind: K) -> StoreResult<Result<Arc<CardState>, Decision>> {
        let Some(input) = &req.card else {
            return Ok(Err(decline(Rc::FORMAT_ERROR, "format error: no card data")));
        };
        let pan = &input.pan;
        if !pan.luhn_ok() {
            return Ok(Err(decline(
                Rc::INVALID_CARD,
                format!("card number {pan} fails its Luhn check digit"),
            )));
        }
        let Some(institution) = self.ledger.institution_for(pan)? else {
            return Ok(Err(decline(
                Rc::INVALID_CARD,
                format!("no institution issues BIN {}", pan.bin()),
            )));
        };
        if institution.external.is_some() {
            // From here on the issuer decides: the request goes through the switch.
            self.forwarded_to = Some(institution.code.clone());
        }
        let Some(card) = self.ledger.card(pan)? else {
            return Ok(Err(decline(
                Rc::INVALID_CARD,
                format!("{} has no record of card {pan}", institution.name),
            )));
        };
        let to_issuer = matches!(
            kind,
            K::Sale | K::PreAuth | K::BalanceInquiry | K::PreAuthCompletion
        );
        if to_issuer {
            match self.issuer {
                IssuerVerdict::Reachable => {}
                IssuerVerdict::Down => {
                    return Ok(Err(decline(
                        Rc::ISSUER_INOPERATIVE,
                        format!(
                            "issuer {} ({}) is unreachable",
                            institution.name, institution.code
                        ),
                    )));
                }
                IssuerVerdict::TimedOut => {
                    return Ok(Err(decline(
                        Rc::ISSUER_TIMEOUT,
                        format!(
                            "issuer {} ({}) did not answer within the host's timeout",
                            institution.name, institution.code
                        ),
                    )));
                }
            }
        }
        // Voids and refunds give money back: a card reported since may still receive it.
        let gives_back = matches!(
            kind,
            K::Void | K::Refund | K::PreAuthCompletionVoid | K::PreAuthCancel
        );
        if !gives_back {
            let status = match card.status {
                CardStatus::Active => None,
                CardStatus::Lost => Some((Rc::LOST_CARD, "reported lost")),
                CardStatus::Stolen => Some((Rc::STOLEN_CARD, "reported stolen")),
                CardStatus::PickUp => Some((Rc::PICK_UP, "flagged for pick-up by its issuer")),
                CardStatus::Restricted => Some((Rc::RESTRICTED_CARD, "restricted by its issuer")),
            };
            if let Some((code, why)) = status {
                return Ok(Err(decline(code, format!("card {pan} is {why}"))));
            }
            if card.expiry.as_bytes() < &self.now.yymm_digits()[..] {
                return Ok(Err(decline(
                    Rc::EXPIRED_CARD,
                    format!("card {pan} expired (YYMM {})", card.expiry),
                )));
            }
            if let Some(sent) = &input.expiry
                && sent != &card.expiry
            {
                return Ok(Err(decline(
                    Rc::EXPIRED_CARD,
                    format!("the expiry date sent ({sent}) is not the card's"),
                )));
            }
        }
        if let Some(permitted) = &card.permitted
            && !permitted.contains(&kind)
        {
            return Ok(Err(decline(
                Rc::NOT_PERMITTED_TO_CARD,
                format!("card {pan} is not permitted to do {}", kind.name_en()),
            )));
        }
        let pin_required = matches!(kind, K::Sale | K::PreAuth | K::BalanceInquiry);
        if let Some(hash) = &card.pin_hash
            && (pin_required || req.pin_block.is_some())
            && let Err(d) = self.check_pin(req, &card, hash)?
        {
            return Ok(Err(d));
        }
        Ok(Ok(card))
    }

    fn check_pin(
        &mut self,
        req: &Request,
        card: &CardState,
        hash: &str,
    ) -> StoreResult<Result<(), Decision>> {
        let pan = &card.pan;
        if card.pin_tries_used >= card.pin_tries_max {
            return Ok(Err(decline(
                Rc::PIN_TRIES_EXCEEDED,
                format!(
                    "card {pan}: {} wrong PINs, the limit; the issuer must reset it",
                    card.pin_tries_used
                ),
            )));
        }
        let Some(block) = req.pin_block else {
            return Ok(Err(decline(
                Rc::INCORRECT_PIN,
                format!("card {pan} needs a PIN and the request carries none (field 52)"),
            )));
        };
        let pik = self.keys.as_ref().map(|(pik, _)| pik);
        let prechecked = self
            .precheck
            .filter(|p| p.request_hash == self.parsed.request_hash)
            .filter(|p| pik == Some(&p.keys.pik))
            .and_then(|p| p.pin.as_ref())
            .filter(|p| p.pan == pan.digits() && p.block == block);
        let right = match (
            prechecked,
            pik,
            EncryptedPinBlock::from_bytes(PinBlockFormat::Iso0, &block),
        ) {
            (Some(p), _, _) => p
                .tag
                .as_ref()
                .is_some_and(|tag| PinHasher::tag_matches(tag, hash)),
            (None, Some(pik), Ok(block)) => match decrypt_pin(pik, pan.digits(), &block) {
                Ok(pin) => self.pins.verify(pan.digits(), &pin, hash),
                Err(_) => false,
            },
            _ => false,
        };
        if right {
            if card.pin_tries_used > 0 {
                self.ledger.set_pin_tries(card.id, 0)?;
            }
            return Ok(Ok(()));
        }
        let used = card.pin_tries_used.saturating_add(1);
        self.ledger.set_pin_tries(card.id, used)?;
        if used >= card.pin_tries_max {
            Ok(Err(decline(
                Rc::PIN_TRIES_EXCEEDED,
                format!(
                    "card {pan}: wrong PIN, {used} of {} tries used; PIN now locked",
                    card.pin_tries_max
                ),
            )))
        } else {
            Ok(Err(decline(
                Rc::INCORRECT_PIN,
                format!(
                    "card {pan}: wrong PIN ({used} of {} tries used)",
                    card.pin_tries_max
                ),
            )))
        }
    }

    fn amount(&self, req: &Request) -> Result<u64, Decision> {
        match req.amount {
            Some(a) if a.fen() > 0 => Ok(a.fen()),
            Some(_) => Err(decline(Rc::INVALID_AMOUNT, "the amount is zero")),
            None => Err(decline(
                Rc::FORMAT_ERROR,
                "format error: field 4: amount missing",
            )),
        }
    }

    fn limits(
        &mut self,
        terminal: &TerminalState,
        merchant: &MerchantState,
        card: &CardState,
        amount_fen: u64,
    ) -> StoreResult<Result<(), Decision>> {
        let yuan = |fen: u64| {
            AmountFen::new(fen)
                .map(|a| a.to_string())
                .unwrap_or_default()
        };
        if let Some(limit) = terminal.txn_limit_fen
            && amount_fen > limit
        {
            return Ok(Err(decline(
                Rc::EXCEEDS_AMOUNT_LIMIT,
                format!(
                    "{} exceeds terminal {}'s per-transaction limit of {}",
                    yuan(amount_fen),
                    terminal.tid,
                    yuan(limit)
                ),
            )));
        }
        if let Some(limit) = merchant.txn_limit_fen
            && amount_fen > limit
        {
            return Ok(Err(decline(
                Rc::EXCEEDS_AMOUNT_LIMIT,
                format!(
                    "{} exceeds merchant {}'s per-transaction limit of {}",
                    yuan(amount_fen),
                    merchant.mid,
                    yuan(limit)
                ),
            )));
        }
        if let Some(limit) = merchant.daily_limit_fen {
            let today = self
                .ledger
                .merchant_debits_on(&merchant.mid, self.now.day)?;
            if today.saturating_add(amount_fen) > limit {
                return Ok(Err(decline(
                    Rc::EXCEEDS_AMOUNT_LIMIT,
                    format!(
                        "merchant {} has taken {} today; {} more exceeds its daily limit of {}",
                        merchant.mid,
                        yuan(today),
                        yuan(amount_fen),
                        yuan(limit)
                    ),
                )));
            }
        }
        if let Some(count_max) = card.daily_count_max {
            let count = self.ledger.card_debit_count_on(card.id, self.now.day)?;
            if count >= count_max {
                return Ok(Err(decline(
                    Rc::EXCEEDS_FREQUENCY_LIMIT,
                    format!(
                        "card {} already made {count} payments today, its limit",
                        card.pan
                    ),
                )));
            }
        }
        Ok(Ok(()))
    }

    fn available(&mut self, card: &CardState) -> StoreResult<i64> {
        let balance = self.ledger.balance(card.account)?;
        let held = self.ledger.held(card.account)?;
        Ok(balance - held as i64)
    }

    fn debit_checks(
        &mut self,
        req: &Request,
        terminal: &TerminalState,
        merchant: &MerchantState,
        card: &CardState,
        kind: K,
    ) -> StoreResult<Result<Plan, Decision>> {
        if kind == K::BalanceInquiry {
            let available = self.available(card)?;
            return Ok(Ok(Plan::Balance { available }));
        }
        let amount = match self.amount(req) {
            Ok(a) => a,
            Err(d) => return Ok(Err(d)),
        };
        if let Err(d) = self.limits(terminal, merchant, card, amount)? {
            return Ok(Err(d));
        }
        let available = self.available(card)?;
        if available < amount as i64 {
            return Ok(Err(decline(
                Rc::INSUFFICIENT_FUNDS,
                format!(
                    "card {} has {} available, {} asked",
                    card.pan,
                    yuan_signed(available),
                    yuan_signed(amount as i64)
                ),
            )));
        }
        Ok(Ok(if kind == K::Sale {
            Plan::Sale { amount }
        } else {
            Plan::PreAuth { amount }
        }))
    }

    /// The open pre-authorization a cancel or completion names by 38 (+ 61.3).
    fn pre_auth_of(
        &mut self,
        req: &Request,
        card: &CardState,
    ) -> StoreResult<Result<TxnRecord, Decision>> {
        let Some(auth) = req.auth_code else {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                "no original authorization code (field 38) to find the pre-authorization by",
            )));
        };
        let Some(pre) = self
            .ledger
            .find_pre_auth(&req.mid, card.id, auth.as_str())?
        else {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                format!(
                    "no pre-authorization {auth} of card {} at merchant {}",
                    card.pan, req.mid
                ),
            )));
        };
        if let Some(date) = &req.original.date
            && date != &pre.mmdd
        {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                format!(
                    "pre-authorization {auth} was made on {}, not on {date} (61.3)",
                    pre.mmdd
                ),
            )));
        }
        Ok(Ok(pre))
    }

    fn completion_checks(
        &mut self,
        req: &Request,
        terminal: &TerminalState,
        merchant: &MerchantState,
        card: &CardState,
    ) -> StoreResult<Result<Plan, Decision>> {
        let amount = match self.amount(req) {
            Ok(a) => a,
            Err(d) => return Ok(Err(d)),
        };
        let pre = match self.pre_auth_of(req, card)? {
            Ok(p) => p,
            Err(d) => return Ok(Err(d)),
        };
        let Some((held, open)) = self.ledger.hold_amount(pre.id)? else {
            return Err(StoreError::Corrupt(format!(
                "pre-authorization {} has no hold",
                pre.id
            )));
        };
        if pre.state != TxnState::Approved || !open {
            return Ok(Err(decline(
                Rc::RELATED_TRANSACTION_ERROR,
                format!(
                    "pre-authorization {} is {} (cancelled, completed or reversed): nothing to complete",
                    pre.auth_code.as_deref().unwrap_or("?"),
                    pre.state.as_str()
                ),
            )));
        }
        let ceiling = held.saturating_mul(100 + self.cfg.completion_over_percent_max) / 100;
        if amount > ceiling {
            return Ok(Err(decline(
                Rc::ORIGINAL_AMOUNT_INCORRECT,
                format!(
                    "completion of {} exceeds the pre-authorized {} by more than {}%",
                    yuan_signed(amount as i64),
                    yuan_signed(held as i64),
                    self.cfg.completion_over_percent_max
                ),
            )));
        }
        if let Err(d) = self.limits(terminal, merchant, card, amount)? {
            return Ok(Err(d));
        }
        if amount > held {
            let available = self.available(card)?;
            if available < (amount - held) as i64 {
                return Ok(Err(decline(
                    Rc::INSUFFICIENT_FUNDS,
                    format!(
                        "the completion needs {} beyond the hold; card {} has {} available",
                        yuan_signed((amount - held) as i64),
                        card.pan,
                        yuan_signed(available)
                    ),
                )));
            }
        }
        Ok(Ok(Plan::Completion {
            amount,
            pre_auth: pre.id,
        }))
    }

    fn cancel_checks(
        &mut self,
        req: &Request,
        card: &CardState,
    ) -> StoreResult<Result<Plan, Decision>> {
        let pre = match self.pre_auth_of(req, card)? {
            Ok(p) => p,
            Err(d) => return Ok(Err(d)),
        };
        if pre.state != TxnState::Approved {
            return Ok(Err(decline(
                Rc::INVALID_TRANSACTION,
                format!(
                    "pre-authorization {} is already {}",
                    pre.auth_code.as_deref().unwrap_or("?"),
                    pre.state.as_str()
                ),
            )));
        }
        if req.amount.map(|a| a.fen()) != pre.amount_fen {
            return Ok(Err(decline(
                Rc::ORIGINAL_AMOUNT_INCORRECT,
                format!(
                    "cancel amount {} differs from the pre-authorized {}",
                    req.amount.map(|a| a.to_string()).unwrap_or_default(),
                    yuan_signed(pre.amount_fen.unwrap_or(0) as i64)
                ),
            )));
        }
        Ok(Ok(Plan::Cancel { pre_auth: pre.id }))
    }

    fn void_checks(
        &mut self,
        req: &Request,
        terminal: &TerminalState,
        card: &CardState,
        kind: K,
    ) -> StoreResult<Result<Plan, Decision>> {
        let target = if kind == K::Void {
            K::Sale
        } else {
            K::PreAuthCompletion
        };
        let Some(stan) = req.original.stan else {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                "no original trace number (61.2) to find the original by",
            )));
        };
        // The open batch first, then — only to explain a "settled batch" refusal — the
        // batches just before it, each one seek in the key: a void of an unknown trace
        // costs the writer a bounded number of lookups, not a scan of the terminal's
        // whole history.
        let mut found = None;
        let looked = (1..=terminal.batch.value())
            .rev()
            .take(1 + VOID_SETTLED_BATCHES_LOOKED_MAX as usize)
            .filter_map(|b| Batch::new(b).ok());
        for batch in looked {
            found = self
                .ledger
                .find_by_trace(&req.tid, &req.mid, Some(batch), stan, &[target])?;
            if found.is_some() {
                break;
            }
        }
        let Some(original) = found else {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                format!(
                    "no {} with trace {stan} at terminal {} of merchant {} in the open batch or the {VOID_SETTLED_BATCHES_LOOKED_MAX} before it",
                    target.name_en(),
                    req.tid,
                    req.mid
                ),
            )));
        };
        if original.batch != Some(terminal.batch.value()) {
            return Ok(Err(decline(
                Rc::INVALID_TRANSACTION,
                format!(
                    "{} {stan} belongs to settled batch {:06}; a void is only for the open batch — refund it instead",
                    target.name_en(),
                    original.batch.unwrap_or(0)
                ),
            )));
        }
        if original.code != "00" || original.state != TxnState::Approved {
            let why = match original.state {
                TxnState::Voided => "was already voided".to_owned(),
                TxnState::Reversed => "was reversed".to_owned(),
                _ if original.code != "00" => format!("was declined ({})", original.code),
                other => format!("is {}", other.as_str()),
            };
            return Ok(Err(decline(
                Rc::INVALID_TRANSACTION,
                format!("{} {stan} {why}: nothing to void", target.name_en()),
            )));
        }
        if let Some(rrn) = &req.rrn
            && original.rrn.as_deref() != Some(rrn.as_str())
        {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                format!(
                    "trace {stan} has RRN {}, the void names {rrn}",
                    original.rrn.as_deref().unwrap_or("-")
                ),
            )));
        }
        if original.card_id != Some(card.id) {
            return Ok(Err(decline(
                Rc::INVALID_CARD,
                format!(
                    "the void's card {} is not the card of {} {stan}",
                    card.pan,
                    target.name_en()
                ),
            )));
        }
        if req.amount.map(|a| a.fen()) != original.amount_fen {
            return Ok(Err(decline(
                Rc::ORIGINAL_AMOUNT_INCORRECT,
                format!(
                    "void amount {} differs from the original {}",
                    req.amount.map(|a| a.to_string()).unwrap_or_default(),
                    yuan_signed(original.amount_fen.unwrap_or(0) as i64)
                ),
            )));
        }
        Ok(Ok(Plan::Void {
            original: original.id,
            of_completion: kind == K::PreAuthCompletionVoid,
        }))
    }

    fn refund_checks(
        &mut self,
        req: &Request,
        terminal: &TerminalState,
        card: &CardState,
    ) -> StoreResult<Result<Plan, Decision>> {
        let amount = match self.amount(req) {
            Ok(a) => a,
            Err(d) => return Ok(Err(d)),
        };
        let (Some(rrn), Some(date)) = (&req.rrn, &req.original.date) else {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                "a refund names its original by RRN (field 37) and date (61.3); one is missing",
            )));
        };
        let Some(original) =
            self.ledger
                .find_by_rrn(&req.mid, rrn.as_str(), &[K::Sale, K::PreAuthCompletion])?
        else {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                format!("merchant {} has no sale with RRN {rrn}", req.mid),
            )));
        };
        if self.now.day_of_mmdd(date) != Some(original.day) {
            return Ok(Err(decline(
                Rc::ORIGINAL_NOT_FOUND,
                format!(
                    "the sale with RRN {rrn} was made on {}, not on {date} (61.3)",
                    original.mmdd
                ),
            )));
        }
        match original.state {
            TxnState::Approved if original.code == "00" => {}
            TxnState::Voided => {
                return Ok(Err(decline(
                    Rc::INVALID_TRANSACTION,
                    format!("the sale with RRN {rrn} was voided: nothing left to refund"),
                )));
            }
            _ => {
                return Ok(Err(decline(
                    Rc::ORIGINAL_NOT_FOUND,
                    format!(
                        "the transaction with RRN {rrn} did not go through ({}, {})",
                        original.code,
                        original.state.as_str()
                    ),
                )));
            }
        }
        if original.day == self.now.day
            && original.tid.as_deref() == Some(terminal.tid.as_str())
            && original.batch == Some(terminal.batch.value())
        {
            return Ok(Err(decline(
                Rc::INVALID_TRANSACTION,
                format!(
                    "the sale with RRN {rrn} is in today's open batch: void it (trace {:06}) instead of refunding",
                    original.stan.unwrap_or(0)
                ),
            )));
        }
        if original.card_id != Some(card.id) {
            return Ok(Err(decline(
                Rc::INVALID_CARD,
                format!(
                    "the refund's card {} is not the card of the sale with RRN {rrn}",
                    card.pan
                ),
            )));
        }
        if let Some((dispute, state)) = self.ledger.open_chargeback_of(original.id)? {
            return Ok(Err(decline(
                Rc::INVALID_TRANSACTION,
                format!(
                    "the sale with RRN {rrn} is under dispute (chargeback {dispute}, {state}): a disputed transaction cannot be refunded; the dispute decides whether the money goes back"
                ),
            )));
        }
        let left = original
            .amount_fen
            .unwrap_or(0)
            .saturating_sub(original.refunded_fen);
        if amount > left {
            return Ok(Err(decline(
                Rc::INVALID_AMOUNT,
                format!(
                    "refund of {} exceeds the {} not yet refunded of the sale with RRN {rrn}",
                    yuan_signed(amount as i64),
                    yuan_signed(left as i64)
                ),
            )));
        }
        Ok(Ok(Plan::Refund {
            amount,
            original: original.id,
        }))
    }

    /// Records the approval and applies its plan.
    fn approve(
        &mut self,
        req: &Request,
        merchant: &MerchantState,
        card: &CardState,
        plan: Plan,
    ) -> StoreResult<Answer> {
        let reason = plan.reason();
        let id = self.insert(
            req,
            true,
            Rc::APPROVED,
            &reason,
            TxnState::Approved,
            Some(card),
            plan.original(),
        )?;
        let mut effect = Effect {
            original_id: plan.original(),
            ..Effect::default()
        };
        match plan {
            Plan::Sale { amount } => {
                self.ledger
                    .transfer(id, card.account, merchant.account, amount)?;
                effect.auth_code = Some(auth_code_of(id));
            }
            Plan::PreAuth { amount } => {
                self.ledger.place_hold(id, card.account, amount)?;
                effect.auth_code = Some(auth_code_of(id));
            }
            Plan::Balance { available } => effect.balance_fen = Some(available),
            Plan::Completion { amount, pre_auth } => {
                self.ledger
                    .transfer(id, card.account, merchant.account, amount)?;
                self.ledger.set_hold_open(pre_auth, false)?;
                self.ledger.set_txn_state(pre_auth, TxnState::Closed)?;
                effect.auth_code = req.auth_code.map(|a| a.as_str().to_owned());
            }
            Plan::Cancel { pre_auth } => {
                self.ledger.set_hold_open(pre_auth, false)?;
                self.ledger.set_txn_state(pre_auth, TxnState::Closed)?;
                effect.auth_code = req.auth_code.map(|a| a.as_str().to_owned());
            }
            Plan::Void {
                original,
                of_completion,
            } => {
                self.ledger.undo_postings(id, original)?;
                self.ledger.set_txn_state(original, TxnState::Voided)?;
                if of_completion {
                    let pre = self.ledger.txn(original)?.and_then(|c| c.original_id);
                    if let Some(pre) = pre {
                        self.ledger.set_hold_open(pre, true)?;
                        self.ledger.set_txn_state(pre, TxnState::Approved)?;
                    }
                }
                effect.auth_code = self.ledger.txn(original)?.and_then(|o| o.auth_code);
            }
            Plan::Refund { amount, original } => {
                self.ledger
                    .transfer(id, merchant.account, card.account, amount)?;
                self.ledger.add_refunded(original, amount)?;
            }
        }
        if self.injected == Some(Injected::StorageError) {
            return Err(StoreError::Injected);
        }
        self.answer(req, id, Rc::APPROVED, reason, false, effect)
    }

    // ---- reversal --------------------------------------------------------------------

    fn reversal(&mut self, req: &Request, host_batch: Batch) -> StoreResult<Answer> {
        let kind = req.kind();
        let why = req
            .reversal_reason
            .map(|r| format!(" (terminal's reason {r})"))
            .unwrap_or_default();
        let original_key = TxnKey {
            tid: req.tid,
            mid: req.mid,
            batch: req.batch,
            stan: req.stan,
            class: *kind.mti(),
        };
        let Some(original) = self.ledger.find_by_key(&original_key)? else {
            return self.reversal_without_original(req, host_batch, &why);
        };
        // The card's row, for the record: the reversal names the original's card.
        let card = match (original.card_id, &req.card) {
            (Some(_), Some(input)) => self.ledger.card(&input.pan)?,
            _ => None,
        };
        if original.fwd {
            // The switch saw the original: it gets the reversal too.
            let issuer = match &req.card {
                Some(input) => self.ledger.institution_for(&input.pan)?,
                None => None,
            };
            self.forwarded_to = Some(issuer.map(|i| i.code.clone()).unwrap_or_default());
        }
        let settle = |this: &mut Self,
                      code: Rc,
                      state: TxnState,
                      reason: String,
                      effect: Effect|
         -> StoreResult<Answer> {
            let id = this.insert(
                req,
                true,
                code,
                &reason,
                state,
                card.as_deref(),
                Some(original.id),
            )?;
            // A terminal whose batch is not the host's is told to sign in, even on a 00.
            this.answer(req, id, code, reason, req.batch != host_batch, effect)
        };
        let with_original = Effect {
            original_id: Some(original.id),
            ..Effect::default()
        };
        if original.code != "00" {
            let reason = format!(
                "reversal{why}: the original (transaction {}) was declined with {}: nothing to reverse",
                original.id, original.code
            );
            return settle(
                self,
                Rc::APPROVED,
                TxnState::Approved,
                reason,
                with_original,
            );
        }
        if original.day != self.now.day {
            let reason = format!(
                "reversal{why} on a later day than its original ({}): cross-day reversals are refused",
                original.mmdd
            );
            return settle(
                self,
                Rc::INVALID_TRANSACTION,
                TxnState::Declined,
                reason,
                with_original,
            );
        }
        if let (Some(sent), Some(had)) = (req.amount, original.amount_fen)
            && sent.fen() != had
        {
            let reason = format!(
                "reversal{why} amount {sent} differs from the original's {}",
                yuan_signed(had as i64)
            );
            return settle(
                self,
                Rc::ORIGINAL_AMOUNT_INCORRECT,
                TxnState::Declined,
                reason,
                with_original,
            );
        }
        if original.state != TxnState::Approved {
            let reason = format!(
                "reversal{why}: the original (transaction {}) is already {}: nothing left to reverse",
                original.id,
                original.state.as_str()
            );
            return settle(
                self,
                Rc::APPROVED,
                TxnState::Approved,
                reason,
                with_original,
            );
        }
        if req.batch != host_batch {
            // The host's batch moves on only when a batch end (0320) closes the batch.
            let reason = format!(
                "reversal{why}: the original (transaction {}) is in batch {}, already closed (the host is at batch {host_batch}): a settled transaction is not reversed; handle it as an exception (差错处理)",
                original.id, req.batch
            );
            return settle(
                self,
                Rc::BATCH_MISMATCH,
                TxnState::Declined,
                reason,
                with_original,
            );
        }
        let reason = format!(
            "reversal{why} of {} trace {} (transaction {}) applied",
            kind.name_en(),
            req.stan,
            original.id
        );
        let id = self.insert(
            req,
            true,
            Rc::APPROVED,
            &reason,
            TxnState::Approved,
            card.as_deref(),
            Some(original.id),
        )?;
        self.undo(kind, id, &original)?;
        if self.injected == Some(Injected::StorageError) {
            return Err(StoreError::Injected);
        }
        self.answer(req, id, Rc::APPROVED, reason, false, with_original)
    }

    /// A reversal whose original the host does not have: in the open batch a tombstone
    /// (a late original cannot post), under another batch a keyed 00 and a sign-in asked.
    fn reversal_without_original(
        &mut self,
        req: &Request,
        host_batch: Batch,
        why: &str,
    ) -> StoreResult<Answer> {
        let kind = req.kind();
        // An original under a batch the host is not at was refused 77 (or never came):
        // nothing was posted, nothing to reverse, and the terminal is told to sign in.
        // The row is still a keyed reversal, so a late original with this key is refused
        // like one that meets a tombstone (the terminal was told 00 and will not reverse
        // again). In the open batch the row is a tombstone.
        let other_batch = req.batch != host_batch;
        let (state, reason) = if other_batch {
            (
                TxnState::Approved,
                format!(
                    "reversal{why} of {} trace {} found no original in batch {}, which is not the host's batch {host_batch}: nothing was posted, nothing to reverse; sign in again",
                    kind.name_en(),
                    req.stan,
                    req.batch
                ),
            )
        } else {
            (
                TxnState::Tombstone,
                format!(
                    "reversal{why} of {} trace {} found no original: tombstone left so that a late original cannot post",
                    kind.name_en(),
                    req.stan
                ),
            )
        };
        let id = self.insert(req, true, Rc::APPROVED, &reason, state, None, None)?;
        self.answer(
            req,
            id,
            Rc::APPROVED,
            reason,
            other_batch,
            Effect::default(),
        )
    }

    /// Undoes what the reversed `original` (of `kind`) did, for the reversal `id`: its
    /// postings back, its hold reopened or released, the states it changed restored.
    fn undo(&mut self, kind: K, id: i64, original: &TxnRecord) -> StoreResult<()> {
        assert_eq!(
            original.state,
            TxnState::Approved,
            "only an approved original is reversed"
        );
        self.ledger.set_txn_state(original.id, TxnState::Reversed)?;
        match kind {
            K::Sale => self.ledger.undo_postings(id, original.id)?,
            K::Void => {
                self.ledger.undo_postings(id, original.id)?;
                if let Some(sale) = original.original_id {
                    self.ledger.set_txn_state(sale, TxnState::Approved)?;
                }
            }
            K::PreAuth => self.ledger.set_hold_open(original.id, false)?,
            K::PreAuthCancel => {
                if let Some(pre) = original.original_id {
                    self.ledger.set_hold_open(pre, true)?;
                    self.ledger.set_txn_state(pre, TxnState::Approved)?;
                }
            }
            K::PreAuthCompletion => {
                self.ledger.undo_postings(id, original.id)?;
                if let Some(pre) = original.original_id {
                    self.ledger.set_hold_open(pre, true)?;
                    self.ledger.set_txn_state(pre, TxnState::Approved)?;
                }
            }
            K::PreAuthCompletionVoid => {
                self.ledger.undo_postings(id, original.id)?;
                if let Some(completion) = original.original_id {
                    self.ledger.set_txn_state(completion, TxnState::Approved)?;
                    if let Some(pre) = self.ledger.txn(completion)?.and_then(|c| c.original_id) {
                        self.ledger.set_hold_open(pre, false)?;
                        self.ledger.set_txn_state(pre, TxnState::Closed)?;
                    }
                }
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "{} cannot be reversed",
                    other.name_en()
                )));
            }
        }
        Ok(())
    }

    // ---- management ------------------------------------------------------------------

    fn management(&mut self, req: &Request) -> StoreResult<Answer> {
        let (terminal, _merchant) = match self.acceptor(req)? {
            Ok(pair) => pair,
            Err(d) => return self.refused_acceptor(req, d),
        };
        match req.kind() {
            K::SignIn => self.sign_in(req, &terminal),
            K::SignOff => {
                self.ledger.clear_working_keys(&req.tid)?;
                self.keys_after = Some(None);
                let reason = format!("terminal {} signed off: working keys withdrawn", req.tid);
                self.acknowledge(req, reason)
            }
            K::Echo => self.acknowledge(req, "echo test answered".to_owned()),
            K::Settlement => self.settlement(req),
            K::BatchUpload => self.batch_upload(req, &terminal),
            _ => unreachable!("financial messages are handled apart"),
        }
    }

    /// Records a management message that only needs a 00, and answers it.
    fn acknowledge(&mut self, req: &Request, reason: String) -> StoreResult<Answer> {
        let id = self.insert_management(req, &reason)?;
        self.answer(req, id, Rc::APPROVED, reason, false, Effect::default())
    }

    fn sign_in(&mut self, req: &Request, terminal: &TerminalState) -> StoreResult<Answer> {
        let code = std::str::from_utf8(&req.network_code).unwrap_or("");
        let Ok(layout) = KeyLayout::from_code(code) else {
            let d = refuse(
                Rc::FORMAT_ERROR,
                format!("format error: 60.3 {code:?} names no key layout"),
            );
            return self.record(req, d, Effect::default(), None);
        };
        let keys = match new_working_keys(self.cfg.key_source.as_ref(), layout) {
            Ok(keys) => keys,
            Err(why) => {
                let d = refuse(
                    Rc::SYSTEM_MALFUNCTION,
                    format!("cannot make new working keys: {why}"),
                );
                return self.record(req, d, Effect::default(), None);
            }
        };
        let mac_key = keys.mac_key_with(self.cfg.mak_rule);
        let field62 = match build_field62(layout, &terminal.tmk, &keys)
            .and_then(|f| with_mak_check_value_as_used(layout, f, &mac_key))
        {
            Ok(f) => f,
            Err(e) => {
                let d = refuse(
                    Rc::SYSTEM_MALFUNCTION,
                    format!("cannot wrap working keys under the TMK: {e}"),
                );
                return self.record(req, d, Effect::default(), None);
            }
        };
        let mac_key = self.ledger.set_working_keys(
            &req.tid,
            &keys.pik,
            &keys.mak,
            &mac_key,
            self.now.unix_ms,
        )?;
        self.keys_after = Some(Some((keys.pik.clone(), mac_key)));
        let reason = format!(
            "signed in: working keys issued (layout {}), batch {}",
            layout.code(),
            terminal.batch
        );
        let id = self.insert_management(req, &reason)?;
        let mut reply = self.base_reply(req, id, Rc::APPROVED);
        let mut f60 = String::with_capacity(11);
        f60.push_str("00");
        f60.push_str(&terminal.batch.to_string());
        f60.push_str(layout.code());
        reply.set(60, f60.into_bytes());
        reply.set(62, field62);
        self.finish(req, id, reply, Rc::APPROVED, reason, None)
    }

    fn settlement(&mut self, req: &Request) -> StoreResult<Answer> {
        let f48 = req.field48.as_deref().unwrap_or("");
        let number = |from: usize, len: usize| {
            f48.get(from..from + len)
                .and_then(|s| s.parse::<u64>().ok())
        };
        let (Some(debit_fen), Some(debit_count), Some(credit_fen), Some(credit_count)) =
            (number(0, 12), number(12, 3), number(15, 12), number(27, 3))
        else {
            let d = refuse(
                Rc::FORMAT_ERROR,
                "format error: field 48: settlement totals missing or short",
            );
            return self.record(req, d, Effect::default(), None);
        };
        let theirs = Totals {
            debit_fen,
            debit_count: debit_count as u32,
            credit_fen,
            credit_count: credit_count as u32,
        };
        let ours = self.ledger.batch_totals(&req.tid, &req.mid, req.batch)?;
        let balanced = theirs == ours;
        self.ledger.record_settlement(
            &req.tid,
            req.batch,
            &theirs,
            &ours,
            balanced,
            self.now.unix_ms,
        )?;
        let reason = if balanced {
            format!(
                "batch {} balanced: {} debits {}, {} credits {}",
                req.batch,
                ours.debit_count,
                yuan_signed(ours.debit_fen as i64),
                ours.credit_count,
                yuan_signed(ours.credit_fen as i64)
            )
        } else {
            format!(
                "batch {} unbalanced: terminal {} debits {} / {} credits {}, host {} debits {} / {} credits {}",
                req.batch,
                theirs.debit_count,
                yuan_signed(theirs.debit_fen as i64),
                theirs.credit_count,
                yuan_signed(theirs.credit_fen as i64),
                ours.debit_count,
                yuan_signed(ours.debit_fen as i64),
                ours.credit_count,
                yuan_signed(ours.credit_fen as i64)
            )
        };
        let id = self.insert_management(req, &reason)?;
        let mut reply = self.base_reply(req, id, Rc::APPROVED);
        let shown = if balanced { theirs } else { ours };
        let block = |t: &Totals, code: char| {
            format!(
                "{:012}{:03}{:012}{:03}{code}",
                t.debit_fen,
                t.debit_count.min(999),
                t.credit_fen,
                t.credit_count.min(999)
            )
        };
        let code = if balanced { '1' } else { '2' };
        let mut f48_out = block(&shown, code);
        f48_out.push_str(&block(&Totals::default(), '1'));
        reply.set(48, f48_out.into_bytes());
        reply.set(60, field60(req));
        let mut answer = self.finish(req, id, reply, Rc::APPROVED, reason, None)?;
        answer.settled = Some(balanced);
        Ok(answer)
    }

    fn batch_upload(&mut self, req: &Request, terminal: &TerminalState) -> StoreResult<Answer> {
        let code = std::str::from_utf8(&req.network_code).unwrap_or("");
        let f48 = req.field48.as_deref().unwrap_or("");
        let reason = match code {
            "202" | "207" => {
                let count: u32 = f48.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
                self.ledger
                    .close_batch(&req.tid, req.batch, count, self.now.unix_ms)?;
                let next = if req.batch == terminal.batch {
                    let next = terminal.batch.next();
                    self.ledger.set_terminal_batch(&req.tid, next)?;
                    next
                } else {
                    terminal.batch
                };
                format!(
                    "batch {} closed ({}, {count} details uploaded); the terminal's batch is now {next}",
                    req.batch,
                    if code == "207" {
                        "balanced"
                    } else {
                        "after batch upload"
                    }
                )
            }
            _ => {
                let mut details = Vec::new();
                if let Some(count) = f48.get(..2).and_then(|s| s.parse::<usize>().ok()) {
                    for i in 0..count.min(8) {
                        let Some(item) = f48.get(2 + i * 40..2 + (i + 1) * 40) else {
                            break;
                        };
                        let stan = item[2..8].parse().unwrap_or(0);
                        let pan = item[8..28].trim_start_matches('0');
                        let amount = item[28..40].parse().unwrap_or(0);
                        details.push(UploadedDetail {
                            stan,
                            pan_masked: poskit_codec::mask::mask_pan(pan),
                            amount_fen: amount,
                        });
                    }
                } else if let (Some(amount), Some(card)) = (req.amount, &req.card) {
                    details.push(UploadedDetail {
                        stan: req.original.stan.map_or(req.stan.value(), |s| s.value()),
                        pan_masked: card.pan.masked(),
                        amount_fen: amount.fen(),
                    });
                }
                for d in &details {
                    self.ledger
                        .record_upload(&req.tid, req.batch, d, self.now.unix_ms)?;
                }
                format!(
                    "batch {} upload (60.3 {code}): {} details recorded",
                    req.batch,
                    details.len()
                )
            }
        };
        let id = self.insert_management(req, &reason)?;
        let mut reply = self.base_reply(req, id, Rc::APPROVED);
        reply.set(60, field60(req));
        // The batch-end count goes back; upload details are not echoed (they carry PANs,
        // and the answer is stored).
        if matches!(&req.network_code, b"202" | b"207")
            && let Some(f48) = &req.field48
        {
            reply.set(48, f48.clone().into_bytes());
        }
        self.finish(req, id, reply, Rc::APPROVED, reason, None)
    }

    // ---- recording and answering -----------------------------------------------------

    /// Records an answered management message (no idempotency key, no card).
    fn insert_management(&mut self, req: &Request, reason: &str) -> StoreResult<i64> {
        self.insert(
            req,
            false,
            Rc::APPROVED,
            reason,
            TxnState::Approved,
            None,
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        req: &Request,
        keyed: bool,
        code: Rc,
        reason: &str,
        state: TxnState,
        card: Option<&CardState>,
        original_id: Option<i64>,
    ) -> StoreResult<i64> {
        let (mmdd, hhmmss) = (self.now.mmdd_digits(), self.now.hhmmss_digits());
        let masked = req.card.as_ref().map(|c| c.pan.masked());
        self.ledger.insert_txn(&NewTxn {
            key: keyed.then_some(TxnKey {
                tid: req.tid,
                mid: req.mid,
                batch: req.batch,
                stan: req.stan,
                class: req.mti.0,
            }),
            kind: Some(req.kind()),
            reversal: req.is_reversal(),
            tid: Some(req.tid.as_str()),
            mid: Some(req.mid.as_str()),
            batch: Some(req.batch.value()),
            stan: Some(req.stan.value()),
            mti: req.mti.as_str(),
            request_hash: Some(&self.parsed.request_hash),
            amount_fen: req.amount.map(|a| a.fen()),
            card_id: card.map(|c| c.id),
            pan_masked: masked.as_deref(),
            auth_code: None,
            day: self.now.day,
            mmdd: digits_str(&mmdd),
            hhmmss: digits_str(&hhmmss),
            created_ms: self.now.unix_ms,
            code: code.as_str(),
            reason,
            state,
            original_id,
            fwd: self.forwarded_to.is_some(),
        })
    }

    /// Records a decline (or refusal) and answers it.
    fn record(
        &mut self,
        req: &Request,
        d: Decision,
        effect: Effect,
        card: Option<&CardState>,
    ) -> StoreResult<Answer> {
        let state = TxnState::Declined;
        let id = self.insert(
            req,
            d.keyed,
            d.code,
            &d.reason,
            state,
            card,
            effect.original_id,
        )?;
        self.note_retained(req, id, d.code, &d.reason)?;
        self.answer(req, id, d.code, d.reason, d.require_sign_in, effect)
    }

    /// A pick-up answer (没收卡) leaves a record of the card the merchant is to retain, and
    /// by when to hand it over.
    fn note_retained(&mut self, req: &Request, id: i64, code: Rc, reason: &str) -> StoreResult<()> {
        let pick_up =
            poskit_codes::Catalog::builtin().is_pick_up(poskit_codes::Table::CupPos, code.as_str());
        let Some(card) = req.card.as_ref().filter(|_| pick_up) else {
            return Ok(());
        };
        let masked = card.pan.masked();
        self.ledger.record_retained(&RetainedCard {
            txn_id: id,
            pan_masked: &masked,
            tid: req.tid.as_str(),
            mid: req.mid.as_str(),
            code: code.as_str(),
            reason,
            created_ms: self.now.unix_ms,
            due_ms: self.now.unix_ms + RETAINED_HANDOVER_DAYS * 86_400_000,
        })
    }

    fn base_reply(&self, req: &Request, id: i64, code: Rc) -> Reply {
        let mut reply = Reply::to(&self.parsed.tpdu, &self.parsed.header, self.parsed.mti);
        if self.parsed.stan_sent {
            reply.set(11, req.stan.digits());
        }
        reply.set(12, self.now.hhmmss_digits());
        reply.set(13, self.now.mmdd_digits());
        reply.set(32, &self.cfg.acquirer_code);
        reply.set(37, rrn_digits(id));
        reply.set(39, code.0);
        reply.set(41, *req.tid.as_bytes());
        reply.set(42, *req.mid.as_bytes());
        reply
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        req: &Request,
        id: i64,
        code: Rc,
        reason: String,
        require_sign_in: bool,
        effect: Effect,
    ) -> StoreResult<Answer> {
        let mut reply = self.base_reply(req, id, code);
        if require_sign_in {
            reply.require_sign_in();
        }
        let field44 = self.field44(req)?;
        self.reply_fields(req, &mut reply, code, &effect, field44);
        let auth = effect.auth_code.clone();
        let mut answer = self.finish(req, id, reply, code, reason, auth.as_deref())?;
        if let Some(issuer) = self.forwarded_to.take() {
            let auth = auth.filter(|_| code.is_approved());
            answer.forwarded = Some(Box::new(
                self.forwarded(req, id, code, auth, &effect, issuer)?,
            ));
        }
        Ok(answer)
    }

    /// The message sent to the switch for transaction `id` (its card's issuer is external).
    fn forwarded(
        &mut self,
        req: &Request,
        id: i64,
        code: Rc,
        auth_code: Option<String>,
        effect: &Effect,
        issuer: String,
    ) -> StoreResult<Forwarded> {
        let merchant = self.ledger.merchant(&req.mid)?;
        let original = match effect.original_id {
            Some(oid) => self
                .ledger
                .txn(oid)?
                .filter(|o| o.fwd)
                .map(|o| (forward_stan_of(o.id), format!("{}{}", o.mmdd, o.hhmmss))),
            None => None,
        };
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        Ok(Forwarded {
            txn_id: id,
            fwd_stan: forward_stan_of(id),
            fwd_time: format!("{}{}", self.now.mmdd(), self.now.hhmmss()),
            created_ms: self.now.unix_ms,
            mti: req.mti.as_str().to_owned(),
            processing_code: text(req.processing_code.as_ref().map(|p| &p[..])).unwrap_or_default(),
            kind: req.kind(),
            reversal: req.is_reversal(),
            pan_masked: req
                .card
                .as_ref()
                .map(|c| c.pan.masked())
                .unwrap_or_default(),
            amount_fen: req.amount.map(|a| a.fen()).unwrap_or(0),
            tid: req.tid.as_str().to_owned(),
            mid: req.mid.as_str().to_owned(),
            mcc: merchant.as_ref().map(|m| m.mcc.clone()).unwrap_or_default(),
            merchant_name: merchant.map(|m| m.name.clone()).unwrap_or_default(),
            rrn: rrn_of(id),
            auth_code,
            code: code.as_str().to_owned(),
            condition_code: text(req.presented.condition.as_ref().map(|c| &c[..]))
                .unwrap_or_default(),
            entry_mode: text(req.presented.entry_mode.as_ref().map(|e| &e[..])).unwrap_or_default(),
            original,
            original_txn_id: effect.original_id,
            issuer,
            acquirer: self.cfg.acquirer_code.clone(),
        })
    }

    /// The fields of a financial answer beyond [`Ctx::base_reply`]'s.
    fn reply_fields(
        &self,
        req: &Request,
        reply: &mut Reply,
        code: Rc,
        effect: &Effect,
        field44: Option<[u8; 2 * INSTITUTION_ID_BYTES]>,
    ) {
        if req.kind().carries_mac() {
            if let Some(card) = &req.card
                && self.parsed.card_digits_field2
            {
                reply.set(2, card.pan.digits());
            }
            if let Some(p) = req.processing_code {
                reply.set(3, p);
            }
            if let Some(a) = req.amount {
                reply.set(4, a.field4());
            }
            reply.set(15, self.now.mmdd_digits());
            if let Some(c) = req.kind().condition_code() {
                reply.set(25, *c);
            }
            if let Some(auth) = &effect.auth_code
                && code.is_approved()
            {
                reply.set(38, auth);
            }
            // The request's currency (the field checks let through only one its merchant
            // accepts), the yuan when it sent none.
            reply.set(49, req.presented.currency.unwrap_or(*b"156"));
            if let Some(f44) = field44 {
                reply.set(44, f44);
            }
            if let Some(balance) = effect.balance_fen {
                let sign = if balance < 0 { 'D' } else { 'C' };
                reply.set(
                    54,
                    format!("1002156{sign}{:012}", balance.unsigned_abs()).into_bytes(),
                );
            }
            reply.set(60, field60(req));
            reply.set(63, *b"CUP");
        }
    }

    /// Field 44 (§2.4): the card's issuer institution (AN11) then the acquirer (AN11),
    /// each left-aligned and padded with spaces; `None` when the card's issuer is unknown.
    fn field44(&mut self, req: &Request) -> StoreResult<Option<[u8; 2 * INSTITUTION_ID_BYTES]>> {
        if !req.kind().carries_mac() {
            return Ok(None); // not a financial answer
        }
        let Some(card) = &req.card else {
            return Ok(None);
        };
        let Some(issuer) = self.ledger.institution_for(&card.pan)? else {
            return Ok(None);
        };
        let mut out = [b' '; 2 * INSTITUTION_ID_BYTES];
        let (issuer_id, acquirer_id) = out.split_at_mut(INSTITUTION_ID_BYTES);
        for (slot, code) in [
            (issuer_id, &issuer.code),
            (acquirer_id, &self.cfg.acquirer_code),
        ] {
            // Institution codes are 8 digits (the import checks them); never more than 11.
            let code = &code.as_bytes()[..code.len().min(INSTITUTION_ID_BYTES)];
            slot[..code.len()].copy_from_slice(code);
        }
        Ok(Some(out))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        req: &Request,
        id: i64,
        reply: Reply,
        code: Rc,
        reason: String,
        auth_code: Option<&str>,
    ) -> StoreResult<Answer> {
        let mac_key = if code.is_approved() && req.kind().carries_mac() {
            self.keys.as_ref().map(|(_, mak)| mak.clone())
        } else {
            None
        };
        // Stored as its fields, encoded (with field 64 when the answer carries a MAC) and
        // sealed on the way out: by `process`, or by the caller with `mac_later`, off the
        // writer. A resend encodes the same fields and computes the MAC with the MAK of
        // that moment.
        let auth_code = auth_code.filter(|_| code.is_approved() && req.kind() != K::Refund);
        self.ledger
            .set_txn_answer(id, &rrn_of(id), auth_code, reply.to_stored())?;
        let mut answer = Answer::of(req, Body::Reply(Box::new(reply)), code, reason, id, false);
        answer.mac_pending = mac_key;
        Ok(answer)
    }

    /// The first answer again, its MAC recomputed with the terminal's current MAK.
    fn resend(
        &mut self,
        req: &Request,
        terminal: &TerminalState,
        previous: &TxnRecord,
    ) -> StoreResult<Answer> {
        let body = match &previous.answer {
            Some(StoredAnswer::Reply(stored)) => Reply::from_stored(stored)
                .map(|mut reply| {
                    if let Some(card) = &req.card {
                        reply.restore_pan(card.pan.digits());
                    }
                    Body::Reply(Box::new(reply))
                })
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "transaction {} has a stored answer that does not read",
                        previous.id
                    ))
                })?,
            Some(StoredAnswer::Frame(frame)) => Body::Frame(frame.clone()),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "transaction {} has no stored answer",
                    previous.id
                )));
            }
        };
        let code = Rc::parse(&previous.code).unwrap_or(Rc::SYSTEM_MALFUNCTION);
        let mac_pending = self
            .mac_key(terminal)
            .filter(|_| code.is_approved() && req.kind().carries_mac());
        let reason = format!(
            "retransmission of transaction {}: its first answer sent again",
            previous.id
        );
        let mut answer = Answer::of(req, body, code, reason, previous.id, true);
        answer.mac_pending = mac_pending;
        Ok(answer)
    }
}

/// New working keys for `layout` from `source`. §3.2: the MAK of 003/004 is single-length
/// in practice — K‖0 MACs the same under every MAK rule terminals use.
fn new_working_keys(source: &dyn KeySource, layout: KeyLayout) -> Result<WorkingKeys, String> {
    let key_bytes = layout.key_bytes();
    assert!(key_bytes >= 8, "a working key has at least one DES block");
    let fresh = |len: usize, single: bool| -> Result<SecretKey, String> {
        let mut bytes = zeroize::Zeroizing::new(vec![0u8; len]);
        let random = if single {
            &mut bytes[..8]
        } else {
            &mut bytes[..]
        };
        source.fill(random)?;
        SecretKey::from_bytes(&bytes).map_err(|e| e.to_string())
    };
    let tdk = match layout {
        KeyLayout::DoubleWithTrack => Some(fresh(16, false)?),
        _ => None,
    };
    Ok(WorkingKeys {
        pik: fresh(key_bytes, false)?,
        mak: fresh(key_bytes, true)?,
        tdk,
    })
}

/// §3.2: the MAK's check value in field 62 is that of the key as MACs use it — for a
/// K‖0 MAK used as K‖K, DES_K(0), what terminals that load the MAK as K‖K compute —
/// where `build_field62` gives that of the key as delivered (3DES under K‖0).
fn with_mak_check_value_as_used(
    layout: KeyLayout,
    mut field62: Vec<u8>,
    mac_key: &SecretKey,
) -> Result<Vec<u8>, poskit_security::SecurityError> {
    use poskit_security::{CHECK_VALUE_BYTES, check_value};
    let slot_bytes = layout.key_bytes() + CHECK_VALUE_BYTES;
    // Slots: PIK, MAK[, TDK]; each key is followed by its check value.
    let mak_cv = 2 * slot_bytes - CHECK_VALUE_BYTES..2 * slot_bytes;
    assert!(field62.len() >= mak_cv.end, "field 62 holds a MAK slot");
    field62[mak_cv].copy_from_slice(&check_value(CipherFamily::Des, mac_key)?);
    Ok(field62)
}

fn field60(req: &Request) -> Vec<u8> {
    let kind = req.kind();
    let mut out = Vec::with_capacity(11);
    out.extend_from_slice(kind.type_code());
    out.extend_from_slice(&req.batch.digits());
    out.extend_from_slice(&req.network_code);
    out
}

fn yuan_signed(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// What an approval will do.
enum Plan {
    Sale { amount: u64 },
    PreAuth { amount: u64 },
    Balance { available: i64 },
    Completion { amount: u64, pre_auth: i64 },
    Cancel { pre_auth: i64 },
    Void { original: i64, of_completion: bool },
    Refund { amount: u64, original: i64 },
}

impl Plan {
    fn original(&self) -> Option<i64> {
        match self {
            Plan::Completion { pre_auth, .. } | Plan::Cancel { pre_auth } => Some(*pre_auth),
            Plan::Void { original, .. } | Plan::Refund { original, .. } => Some(*original),
            _ => None,
        }
    }

    fn reason(&self) -> String {
        match self {
            Plan::Sale { amount } => format!(
                "approved: {} debited from the card, credited to the merchant",
                yuan_signed(*amount as i64)
            ),
            Plan::PreAuth { amount } => {
                format!("approved: {} held on the card", yuan_signed(*amount as i64))
            }
            Plan::Balance { available } => {
                format!("balance given: {} available", yuan_signed(*available))
            }
            Plan::Completion { amount, pre_auth } => format!(
                "approved: pre-authorization (transaction {pre_auth}) completed for {}, hold released",
                yuan_signed(*amount as i64)
            ),
            Plan::Cancel { pre_auth } => format!(
                "approved: pre-authorization (transaction {pre_auth}) cancelled, hold released"
            ),
            Plan::Void { original, .. } => {
                format!("approved: transaction {original} voided, its postings undone")
            }
            Plan::Refund { amount, original } => format!(
                "approved: {} refunded to the card from the merchant (original transaction {original})",
                yuan_signed(*amount as i64)
            ),
        }
    }
}
