//! The host's request path for fuzzers (`fuzz/`, `cargo fuzz run request`) and for the
//! property test `tests/request_path.rs`: one copy of the driver, which both feed.
//!
//! [`RequestPath`] is a host on a data directory of its own (demo data, opened with its
//! keys) that takes bytes as a connection delivers them and does what the server does with
//! them: frames cut by their length prefix (a bad prefix or a short frame closes the
//! connection), each read ([`Parsed::of`]), prechecked with the keys committed answers left
//! ([`Precheck`]), decided and committed by the production [`GroupWriter`] (the engine on
//! a `SqliteLedger`), and sealed. After every group it asserts:
//!
//! - every frame that decodes gets an answer frame, which decodes and carries the code
//!   recorded; a frame that does not is closed on, with its reason (logged);
//! - no money moves (a posting, a hold placed or released) for a request whose MAC does not
//!   verify under the MAC key its terminal had (checked here, independently of the
//!   engine), and no posting is written for a transaction outside the group's answers;
//! - the ledger is balanced ([`crate::store::sqlite::check`]), after each [`Step`].
//!
//! Bytes alone rarely carry a valid MAC, so a [`Step`] can also be a request a terminal
//! builds ([`crate::client::TestTerminal`], signed in through this same path), then
//! mutated: bytes flipped, cut or added, a field replaced or removed — re-MAC'd or not.
//! [`steps`] reads steps out of a fuzzer's bytes; the property test generates them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use poskit_codec::frame::{self, Frame};
use poskit_codec::{CUP_POS, MessageBuilder, Value};
use poskit_domain::TransactionKind;
use poskit_domain::calendar::ClearingCut;
use poskit_security::SecretKey;
use rusqlite::{Connection, OptionalExtension};

use crate::client::{CardData, RequestSpec, Response, TestTerminal};
use crate::clock::HostTime;
use crate::engine::{Answer, EngineConfig, Input, IssuerVerdict, Parsed, Precheck};
use crate::mackey::MacKey;
use crate::store::atrest::AtRest;
use crate::store::sqlite;
use crate::writer::{GroupWriter, Shared};
use crate::{DataDir, HostError, demo};

/// The simulated clock starts here (01:00 China time) and moves a second per group.
const START_UNIX_MS: i64 = 1_796_086_800_000;
const UTC_OFFSET_MINUTES: i32 = 480;
/// Fleet terminals the driver puts before the scenarios' terminals.
pub const FLEET_TERMINALS: u32 = 2;
/// Fleet cards the driver puts before the scenarios' cards.
pub const FLEET_CARDS: u32 = 4;

/// One thing that happens on the request path.
#[derive(Clone, Debug)]
pub enum Step {
    /// Bytes as a connection delivers them (cut into frames as the server reads them).
    Wire(Vec<u8>),
    /// A request terminal `terminal` builds (an index, modulo the terminals: fleet
    /// terminals first, then the scenarios'), then `mutation`.
    Request {
        terminal: u8,
        request: Request,
        mutation: Mutation,
    },
}

/// A request a terminal builds.
#[derive(Clone, Debug)]
pub struct Request {
    /// Index into [`TransactionKind::all`] (taken modulo its length).
    pub kind: u8,
    /// Index into the driver's cards (fleet cards first, then the scenarios').
    pub card: u8,
    pub amount_fen: u32,
    pub entry: Entry,
    pub pin: PinChoice,
    /// Refer to the terminal's last approved answer (trace, RRN, authorization code,
    /// date): voids, refunds, completions.
    pub of_last: bool,
    /// Send it as the reversal of the terminal's last request instead.
    pub reverse_last: bool,
}

impl Request {
    /// A sign-in (60.3 = 003).
    pub fn sign_in() -> Request {
        Request {
            kind: kind_index(TransactionKind::SignIn),
            card: 0,
            amount_fen: 0,
            entry: Entry::NoCard,
            pin: PinChoice::NoPin,
            of_last: false,
            reverse_last: false,
        }
    }

    fn is_sign_in(&self) -> bool {
        !self.reverse_last
            && TransactionKind::all().nth(usize::from(self.kind) % TransactionKind::all().count())
                == Some(TransactionKind::SignIn)
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Entry {
    Track2,
    Manual,
    NoCard,
}

#[derive(Clone, Copy, Debug)]
pub enum PinChoice {
    Right,
    Wrong,
    NoPin,
}

/// What becomes of a built frame before it is sent.
#[derive(Clone, Debug)]
pub enum Mutation {
    None,
    /// XOR a byte (index modulo the frame's length).
    Flip {
        at: u16,
        xor: u8,
    },
    /// Keep only the first bytes (modulo the frame's length + 1).
    Truncate(u16),
    /// Bytes added at the end (the length prefix unchanged).
    Extend(Vec<u8>),
    /// A field set to `value` (when the profile accepts it), MAC'd again or not.
    Replace {
        field: u8,
        value: Vec<u8>,
        remac: bool,
    },
    /// A field left out, MAC'd again or not.
    Remove {
        field: u8,
        remac: bool,
    },
    /// Sent twice in the same group (a retransmission the writer sees together).
    Twice,
    /// The last frame this terminal sent, again, in a group of its own.
    Resend,
}

/// What the driver saw, for a test to say its inputs reached where they should.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub frames: u64,
    pub answered: u64,
    /// Frames closed on: no answer frame (the server logs the reason and closes).
    pub closed: u64,
    /// Byte streams whose framing closed the connection (bad length, short frame).
    pub framing_closed: u64,
    /// Answers by code.
    pub codes: BTreeMap<String, u64>,
    /// Requests whose money moved (each checked to have carried a valid MAC).
    pub moved_money: u64,
}

/// A terminal of the driver, and what it remembers of its last request.
struct Term {
    client: TestTerminal,
    last_spec: Option<(RequestSpec, u32)>,
    last_approved: Option<Response>,
    last_frame: Option<Vec<u8>>,
    /// Told to sign in (A0, 77) or never signed in: it signs in before its next request,
    /// as a terminal does.
    signed_out: bool,
}

/// A host on its own data directory, driven as the server drives it.
pub struct RequestPath {
    writer: GroupWriter,
    shared: Shared,
    keys: Arc<AtRest>,
    engine: EngineConfig,
    now_ms: i64,
    terms: Vec<Term>,
    cards: Vec<(String, String)>,
    pub seen: Seen,
}

impl std::fmt::Debug for RequestPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestPath({:?})", self.seen)
    }
}

impl RequestPath {
    /// A host on `dir` (created when absent, expected empty): a key-encryption key of its
    /// own, the demo data set, every scenario's terminal and a few fleet terminals.
    pub fn open(dir: &Path) -> Result<RequestPath, HostError> {
        let data = DataDir::create(dir)?;
        let (mut conn, keys) = data.open_keys()?;
        let now = HostTime::at(START_UNIX_MS, UTC_OFFSET_MINUTES);
        sqlite::import(&mut conn, &keys, &demo::data_set(keys.pins()), &now)?;
        let engine = EngineConfig::default();
        let writer = GroupWriter::new(conn, engine.clone(), keys.clone(), ClearingCut::default());
        let scenarios = demo::scenarios();
        // Fleet terminals first (indices 0, 1, ...): at the main merchant, no limits.
        let mut pairs: Vec<(String, String)> = (0..FLEET_TERMINALS)
            .map(|i| (demo::fleet_tid(i), demo::MID_MAIN.to_owned()))
            .collect();
        for s in &scenarios {
            if !pairs
                .iter()
                .any(|(tid, mid)| *tid == s.tid && *mid == s.mid)
            {
                pairs.push((s.tid.clone(), s.mid.clone()));
            }
        }
        let terms = pairs
            .iter()
            .map(|(tid, mid)| {
                Ok(Term {
                    client: TestTerminal::offline(tid, mid, demo::DEMO_TMK).map_err(|e| {
                        HostError::Data {
                            what: e.to_string(),
                        }
                    })?,
                    last_spec: None,
                    last_approved: None,
                    last_frame: None,
                    signed_out: true,
                })
            })
            .collect::<Result<Vec<_>, HostError>>()?;
        // Fleet cards first (indices 0, 1, ...): active, funded, PIN 123456.
        let mut cards: Vec<(String, String)> = (0..FLEET_CARDS)
            .map(|i| (demo::fleet_pan(i), "3012".to_owned()))
            .collect();
        for s in &scenarios {
            if !cards.iter().any(|(pan, _)| *pan == s.pan) {
                cards.push((s.pan.clone(), s.expiry.clone()));
            }
        }
        Ok(RequestPath {
            writer,
            shared: Shared::default(),
            keys,
            engine,
            now_ms: START_UNIX_MS,
            terms,
            cards,
            seen: Seen::default(),
        })
    }

    /// The index of terminal `tid` for [`Step::Request`].
    pub fn terminal_of(&self, tid: &str) -> Option<u8> {
        let i = self.terms.iter().position(|t| t.client.tid == tid)?;
        u8::try_from(i).ok()
    }

    /// The index of card `pan` for [`Request::card`].
    pub fn card_of(&self, pan: &str) -> Option<u8> {
        let i = self.cards.iter().position(|(p, _)| p == pan)?;
        u8::try_from(i).ok()
    }

    /// The ledger's connection (for a test's own queries between steps).
    pub fn connection(&self) -> &Connection {
        self.writer.connection()
    }

    /// One step, then the ledger checked.
    pub fn step(&mut self, step: &Step) {
        match step {
            Step::Wire(bytes) => {
                self.wire(bytes);
            }
            Step::Request {
                terminal,
                request,
                mutation,
            } => {
                let t = usize::from(*terminal) % self.terms.len();
                self.request(t, request, mutation);
            }
        }
        self.check_ledger();
    }

    /// Asserts that the ledger is balanced and agrees with itself.
    pub fn check_ledger(&self) {
        let report = sqlite::check(self.writer.connection()).expect("the ledger can be read");
        assert!(
            report.problems.is_empty(),
            "ledger check: {:?}",
            report.problems
        );
    }

    /// Bytes as a connection delivers them: the whole frames among them are one group.
    pub fn wire(&mut self, bytes: &[u8]) -> Vec<Answer> {
        let (frames, closed) = cut_frames(bytes);
        let answers = if frames.is_empty() {
            Vec::new()
        } else {
            self.group(&frames)
        };
        if let Some(why) = closed {
            tracing::debug!(%why, "framing: closing the connection");
            self.seen.framing_closed += 1;
        }
        answers
    }

    /// Signs every terminal in (structured steps sign a terminal in anyway before its
    /// first request).
    pub fn sign_in_all(&mut self) {
        for t in 0..self.terms.len() {
            self.request(t, &Request::sign_in(), &Mutation::None);
        }
    }

    fn request(&mut self, t: usize, request: &Request, mutation: &Mutation) {
        if let Mutation::Resend = mutation {
            if let Some(frame) = self.terms[t].last_frame.clone() {
                self.wire(&frame);
            }
            return;
        }
        if self.terms[t].signed_out && !request.is_sign_in() {
            self.request(t, &Request::sign_in(), &Mutation::None);
        }
        let Some((spec, frame, stan)) = self.build(t, request) else {
            return;
        };
        let mac_key = self.terms[t].client.mac_key();
        let frame = mutate(frame, mutation, mac_key.as_ref(), &self.engine);
        let mut bytes = frame.clone();
        if let Mutation::Twice = mutation {
            bytes.extend_from_slice(&frame);
        }
        let answers = self.wire(&bytes);
        if let Some(answer) = answers.first() {
            self.learn(t, (spec, stan), frame, answer);
        }
    }

    /// The request `request` describes, as terminal `t` builds it.
    fn build(&mut self, t: usize, request: &Request) -> Option<(RequestSpec, Vec<u8>, u32)> {
        let term = &mut self.terms[t];
        let spec = if request.reverse_last {
            let (last, stan) = term.last_spec.clone()?;
            last.reversal(stan, "98")
        } else {
            let batch = term.client.batch.value();
            spec_of(request, &self.cards, term.last_approved.as_ref(), batch)
        };
        let (frame, stan) = term.client.build(&spec).ok()?;
        Some((spec, frame, stan))
    }

    /// What a terminal takes from its answer: working keys from a sign-in, the approved
    /// answer later requests refer to.
    fn learn(&mut self, t: usize, (spec, stan): (RequestSpec, u32), frame: Vec<u8>, a: &Answer) {
        let term = &mut self.terms[t];
        term.last_frame = Some(frame);
        term.last_spec = Some((spec.clone(), stan));
        let Some(Ok(mut response)) = a.frame.clone().map(|f| term.client.parse(f)) else {
            return;
        };
        response.stan = stan;
        let sign_in = spec.kind == TransactionKind::SignIn && spec.reversal_reason.is_none();
        if sign_in {
            let _ = term.client.adopt_sign_in(&response);
        }
        term.signed_out = match response.code() {
            "00" if sign_in => false,
            "A0" | "77" => true,
            _ => term.signed_out,
        };
        if response.code() == "00" && spec.reversal_reason.is_none() {
            term.last_approved = Some(response);
        }
    }
}

/// What moved money in the ledger, read before and after a group.
#[derive(Debug, PartialEq, Eq)]
struct Money {
    /// The last transaction row before the group.
    txn_max: i64,
    /// Postings and holds of transactions up to `txn_max`, and how many holds are open.
    postings: i64,
    holds: i64,
    holds_open: i64,
}

impl Money {
    fn of(conn: &Connection, txn_max: Option<i64>) -> Money {
        let one = |sql: &str, at: i64| -> i64 {
            conn.query_row(sql, [at], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        let txn_max = txn_max
            .unwrap_or_else(|| one("SELECT coalesce(max(id), 0) FROM transactions WHERE ?1", 1));
        Money {
            txn_max,
            postings: one("SELECT count(*) FROM postings WHERE txn_id <= ?1", txn_max),
            holds: one("SELECT count(*) FROM holds WHERE txn_id <= ?1", txn_max),
            holds_open: one(
                "SELECT coalesce(sum(open), 0) FROM holds WHERE txn_id <= ?1",
                txn_max,
            ),
        }
    }

    /// Transactions after `txn_max` that have postings or a hold.
    fn new_money_txns(&self, conn: &Connection) -> Vec<i64> {
        conn.prepare(
            "SELECT txn_id FROM postings WHERE txn_id > ?1
             UNION SELECT txn_id FROM holds WHERE txn_id > ?1",
        )
        .and_then(|mut s| {
            s.query_map([self.txn_max], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })
        .expect("postings and holds can be read")
    }
}

impl RequestPath {
    /// The server's path for one group of frames, and the invariants after it.
    fn group(&mut self, frames: &[Vec<u8>]) -> Vec<Answer> {
        let before = Money::of(self.writer.connection(), None);
        let mut mac_keys = self.mac_keys_on_file(frames);
        let now = HostTime::at(self.now_ms, UTC_OFFSET_MINUTES);
        self.now_ms += 1_000;
        let parsed: Vec<Option<Parsed>> = frames.iter().map(|f| Parsed::of(f).ok()).collect();
        let prechecks: Vec<Option<Precheck>> = parsed
            .iter()
            .map(|p| {
                p.as_ref().and_then(|p| {
                    Precheck::compute(
                        p,
                        self.engine.mac_algorithm,
                        |tid| self.shared.keys_of(tid),
                        self.keys.pins(),
                    )
                })
            })
            .collect();
        let inputs: Vec<Input<'_>> = frames
            .iter()
            .zip(parsed.iter().zip(&prechecks))
            .map(|(frame, (parsed, precheck))| Input {
                frame,
                now,
                issuer: issuer_of(parsed.as_ref()),
                injected: None,
                parsed: parsed.as_ref(),
                precheck: precheck.as_ref(),
                mac_later: true,
                divergence: Default::default(),
            })
            .collect();
        let mut answers = self.writer.commit(&inputs);
        self.shared.publish_keys(&answers);
        for (answer, precheck) in answers.iter_mut().zip(&prechecks) {
            let keys = precheck.as_ref().map(|p| &**p.keys());
            answer.seal_with(self.engine.mac_algorithm, keys);
        }
        let mut mac_ok = Vec::new();
        for (frame, answer) in frames.iter().zip(&answers) {
            self.check_answer(frame, answer);
            mac_ok.push(mac_verifies(frame, &mac_keys, &self.engine));
            if let (Some(after), Some(tid)) = (&answer.keys_after, &answer.tid) {
                mac_keys.insert(tid.clone(), after.as_ref().map(|(_, mac)| mac.clone()));
            }
        }
        self.check_money(&before, &answers, &mac_ok);
        answers
    }

    /// Every frame that decodes is answered; every answer decodes and says its code.
    fn check_answer(&mut self, frame: &[u8], answer: &Answer) {
        assert!(!answer.reason.is_empty(), "an answer without its reason");
        match &answer.frame {
            Some(out) => {
                let decoded = frame::decode_frame(&CUP_POS, out)
                    .unwrap_or_else(|e| panic!("the answer does not decode ({e}): {out:02x?}"));
                let code = decoded.message.field(39).map(|f| f.to_text());
                assert_eq!(
                    code.as_deref(),
                    Some(answer.code.as_str()),
                    "field 39 of the answer is not the code recorded ({})",
                    answer.reason
                );
                self.seen.answered += 1;
                *self
                    .seen
                    .codes
                    .entry(answer.code.as_str().to_owned())
                    .or_default() += 1;
            }
            None => {
                assert!(
                    frame::decode_frame(&CUP_POS, frame).is_err(),
                    "a frame that decodes got no answer ({}): {frame:02x?}",
                    answer.reason
                );
                tracing::debug!(reason = %answer.reason, "nothing to answer; closing");
                self.seen.closed += 1;
            }
        }
        self.seen.frames += 1;
    }

    /// Money moved only for requests whose MAC verified, and only under their own rows.
    fn check_money(&mut self, before: &Money, answers: &[Answer], mac_ok: &[bool]) {
        let conn = self.writer.connection();
        let after_old = Money::of(conn, Some(before.txn_max));
        let proven =
            |i: usize| mac_ok[i] && answers[i].txn_id.is_some_and(|id| id > before.txn_max);
        if after_old != *before {
            assert!(
                (0..answers.len()).any(proven),
                "money of earlier transactions moved ({before:?} -> {after_old:?}) in a group with no request whose MAC verified: {:?}",
                answers.iter().map(|a| &a.reason).collect::<Vec<_>>()
            );
        }
        for txn in before.new_money_txns(conn) {
            let Some(i) = answers.iter().position(|a| a.txn_id == Some(txn)) else {
                panic!("transaction {txn} moved money and is no answer of the group");
            };
            assert!(
                mac_ok[i],
                "transaction {txn} moved money without a MAC that verifies: {} ({})",
                answers[i].code.as_str(),
                answers[i].reason
            );
            self.seen.moved_money += 1;
        }
    }

    /// The MAC key on file for each terminal the frames name (`None`: not signed in).
    fn mac_keys_on_file(&self, frames: &[Vec<u8>]) -> HashMap<String, Option<MacKey>> {
        let mut keys = HashMap::new();
        for frame in frames {
            let Ok(decoded) = frame::decode_frame(&CUP_POS, frame) else {
                continue;
            };
            let Some(tid) = decoded.message.field(41).map(|f| f.to_text()) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(tid) {
                let key = self.mac_key_on_file(slot.key());
                slot.insert(key);
            }
        }
        keys
    }

    fn mac_key_on_file(&self, tid: &str) -> Option<MacKey> {
        let mak: Option<Vec<u8>> = self
            .writer
            .connection()
            .query_row("SELECT mak FROM terminals WHERE tid = ?1", [tid], |r| {
                r.get(0)
            })
            .optional()
            .expect("terminals can be read")?;
        let mak = self
            .keys
            .unwrap_mak(tid, &mak?)
            .unwrap_or_else(|e| panic!("terminal {tid}: a stored MAK does not unwrap: {e}"))?;
        Some(mak.as_used(self.engine.mak_rule))
    }
}

/// Whether a frame's field 64 is the MAC of its message under its terminal's key.
fn mac_verifies(
    frame: &[u8],
    keys: &HashMap<String, Option<MacKey>>,
    engine: &EngineConfig,
) -> bool {
    let Ok(decoded) = frame::decode_frame(&CUP_POS, frame) else {
        return false;
    };
    let m = &decoded.message;
    let key = m
        .field(41)
        .and_then(|f| keys.get(&f.to_text()).cloned().flatten());
    match (key, m.mac_input(), m.field(64).and_then(|f| f.bytes())) {
        (Some(key), Some(data), Some(wire)) => key
            .verify(engine.mac_algorithm, data, wire)
            .unwrap_or(false),
        _ => false,
    }
}

/// The issuer's verdict as the server's issuer simulator gives it for the demo's banks.
fn issuer_of(parsed: Option<&Parsed>) -> IssuerVerdict {
    let Some(req) = parsed.and_then(Parsed::request) else {
        return IssuerVerdict::Reachable;
    };
    let to_issuer = matches!(
        req.kind(),
        TransactionKind::Sale
            | TransactionKind::PreAuth
            | TransactionKind::BalanceInquiry
            | TransactionKind::PreAuthCompletion
    );
    let pan = req.card.as_ref().map(|c| c.pan.digits());
    match pan {
        Some(pan) if to_issuer && !req.is_reversal() && pan.starts_with(demo::DOWN_BIN) => {
            IssuerVerdict::Down
        }
        Some(pan) if to_issuer && !req.is_reversal() && pan.starts_with(demo::SLOW_BIN) => {
            IssuerVerdict::TimedOut
        }
        _ => IssuerVerdict::Reachable,
    }
}

/// A connection's bytes cut into frames as the server's reader cuts them, and why it
/// closes if it does before the bytes end (a length over the bound, a frame cut short).
pub fn cut_frames(mut bytes: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let total = match frame::frame_len(bytes) {
            Ok(Some(total)) => total,
            Ok(None) => return (frames, Some("a length prefix cut short".into())),
            Err(e) => return (frames, Some(e.to_string())),
        };
        assert!((frame::LENGTH_BYTES..=frame::FRAME_BYTES_MAX).contains(&total));
        let Some(whole) = bytes.get(..total) else {
            return (frames, Some("a frame not complete (read timeout)".into()));
        };
        frames.push(whole.to_vec());
        bytes = &bytes[total..];
    }
    (frames, None)
}

/// The index of `kind` in [`TransactionKind::all`].
pub fn kind_index(kind: TransactionKind) -> u8 {
    TransactionKind::all()
        .position(|k| k == kind)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

/// The request a terminal builds for `r` (`last`: its last approved answer).
fn spec_of(
    r: &Request,
    cards: &[(String, String)],
    last: Option<&Response>,
    batch: u32,
) -> RequestSpec {
    use TransactionKind as K;
    let kinds: Vec<K> = K::all().collect();
    let kind = kinds[usize::from(r.kind) % kinds.len()];
    let (pan, expiry) = &cards[usize::from(r.card) % cards.len()];
    let mut spec = RequestSpec::new(kind);
    spec.amount_fen = Some(u64::from(r.amount_fen));
    spec.card = match r.entry {
        Entry::Track2 => Some(CardData::Track2(format!("{pan}={expiry}1010000000000"))),
        Entry::Manual => Some(CardData::Manual {
            pan: pan.clone(),
            expiry: expiry.clone(),
        }),
        Entry::NoCard => None,
    };
    spec.pin = match r.pin {
        PinChoice::Right => poskit_security::Pin::new(demo::DEMO_PIN).ok(),
        PinChoice::Wrong => poskit_security::Pin::new("000000").ok(),
        PinChoice::NoPin => None,
    };
    match kind {
        K::SignIn | K::SignOff | K::Echo | K::Settlement | K::BatchUpload => {
            spec.amount_fen = None;
            spec.card = None;
            spec.pin = None;
        }
        K::BalanceInquiry => spec.amount_fen = None,
        _ => {}
    }
    match kind {
        K::SignIn => spec.network_code = Some("003".into()),
        K::Settlement => {
            spec.network_code = Some("201".into());
            let (fen, count) = (u64::from(r.amount_fen), u32::from(r.card));
            spec.field48 = Some(poskit_domain::message::settlement_field48(fen, count, 0, 0));
        }
        K::BatchUpload => {
            spec.network_code = Some("207".into());
            spec.field48 = Some("0000".into());
        }
        _ => {}
    }
    if let (true, Some(last)) = (r.of_last, last) {
        spec.original_stan = Some(last.stan);
        spec.original_batch = Some(batch);
        spec.rrn = last.field(37).map(str::to_owned);
        spec.auth_code = last.field(38).map(str::to_owned);
        spec.original_date = last.field(13).map(str::to_owned);
    }
    spec
}

/// `frame` after `mutation`; a frame whose length changed gets its length prefix set to it
/// (so that the engine, not only the reader, sees it).
fn mutate(
    mut frame: Vec<u8>,
    mutation: &Mutation,
    mac_key: Option<&SecretKey>,
    engine: &EngineConfig,
) -> Vec<u8> {
    let mac = |remac: bool| mac_key.filter(|_| remac).map(|k| (k, engine));
    match mutation {
        Mutation::None | Mutation::Twice | Mutation::Resend => frame,
        Mutation::Flip { at, xor } => {
            if !frame.is_empty() {
                let i = usize::from(*at) % frame.len();
                frame[i] ^= xor;
            }
            frame
        }
        Mutation::Truncate(keep) => {
            frame.truncate(usize::from(*keep) % (frame.len() + 1));
            with_length(frame)
        }
        Mutation::Extend(more) => {
            frame.extend_from_slice(more);
            with_length(frame)
        }
        Mutation::Replace {
            field,
            value,
            remac,
        } => rebuild(&frame, mac(*remac), (*field, Some(value))).unwrap_or(frame),
        Mutation::Remove { field, remac } => {
            rebuild(&frame, mac(*remac), (*field, None)).unwrap_or(frame)
        }
    }
}

/// The frame's length prefix set to its length (when it has one and the length fits).
fn with_length(mut frame: Vec<u8>) -> Vec<u8> {
    if let Some(len) = frame.len().checked_sub(frame::LENGTH_BYTES)
        && let Ok(len) = u16::try_from(len)
    {
        frame[..frame::LENGTH_BYTES].copy_from_slice(&len.to_be_bytes());
    }
    frame
}

/// The frame decoded, field `n` set to `value` (or removed when `None`), encoded again
/// (same TPDU and header) and, with `mac`, its field 64 computed again. `None` when it
/// does not decode or the profile refuses the value.
fn rebuild(
    frame: &[u8],
    mac: Option<(&SecretKey, &EngineConfig)>,
    (n, value): (u8, Option<&[u8]>),
) -> Option<Vec<u8>> {
    let Frame {
        tpdu,
        header,
        message,
    } = frame::decode_frame(&CUP_POS, frame).ok()?;
    let values: Vec<(u8, Vec<u8>)> = message
        .fields()
        .map(|f| {
            let mut v = Vec::new();
            match f.value() {
                Value::Digits(d) => v.extend(d.iter()),
                Value::Text(t) | Value::Bytes(t) => v.extend_from_slice(t),
                Value::Hex(_) => f.write_bytes(&mut v),
            }
            (f.number(), v)
        })
        .collect();
    let mut builder = MessageBuilder::new(message.profile(), message.mti());
    for (number, v) in &values {
        builder.set(*number, v).ok()?;
    }
    match value {
        Some(value) => {
            builder.set(n, value).ok()?;
        }
        None => {
            builder.remove(n);
        }
    }
    let mut out = Vec::new();
    let range = frame::encode_frame_into(&tpdu, &header, &builder, &mut out);
    if let Some((key, engine)) = mac
        && builder.get(64).is_some()
    {
        crate::response::remac(&mut out[range], engine.mac_algorithm, key);
    }
    Some(out)
}

/// A fuzzer's bytes read as steps: each step takes what it needs and the next begins
/// after it; missing bytes read as zero.
pub fn steps(data: &[u8]) -> Vec<Step> {
    let mut r = Bytes(data);
    let mut out = Vec::new();
    while let Some(op) = r.next_byte() {
        if op % 4 == 0 {
            let n = usize::from(r.byte()) * 2;
            out.push(Step::Wire(r.take(n).to_vec()));
            continue;
        }
        let terminal = r.byte();
        let flags = r.byte();
        let request = Request {
            kind: r.byte(),
            card: r.byte(),
            amount_fen: u32::from(r.u16()),
            entry: [Entry::Track2, Entry::Manual, Entry::NoCard][usize::from(flags % 3)],
            pin: [PinChoice::Right, PinChoice::Wrong, PinChoice::NoPin][usize::from(flags / 3 % 3)],
            of_last: flags & 0x20 != 0,
            reverse_last: flags & 0xc0 == 0xc0,
        };
        let mutation = mutation_of(&mut r);
        out.push(Step::Request {
            terminal,
            request,
            mutation,
        });
    }
    out
}

fn mutation_of(r: &mut Bytes<'_>) -> Mutation {
    match r.byte() % 10 {
        0 | 1 => Mutation::None,
        2 => Mutation::Flip {
            at: r.u16(),
            xor: r.byte(),
        },
        3 => Mutation::Truncate(r.u16()),
        4 => {
            let n = usize::from(r.byte() % 32);
            Mutation::Extend(r.take(n).to_vec())
        }
        5 | 6 => {
            let (field, remac) = (r.byte(), r.byte() & 1 == 0);
            let n = usize::from(r.byte() % 40);
            Mutation::Replace {
                field,
                value: r.take(n).to_vec(),
                remac,
            }
        }
        7 => Mutation::Remove {
            field: r.byte(),
            remac: r.byte() & 1 == 0,
        },
        8 => Mutation::Twice,
        _ => Mutation::Resend,
    }
}

/// A cursor over a fuzzer's bytes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next_byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn byte(&mut self) -> u8 {
        self.next_byte().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}
