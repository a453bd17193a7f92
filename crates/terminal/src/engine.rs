//! The terminal engine, sans I/O: operator commands, host answers and timer events in;
//! journal writes, frames to send, timers to set and the operation's outcome out. The
//! driver must make every [`Effect::Journal`] durable before it performs the effects that
//! follow it: that is how "the reversal record is durable before the request leaves" holds.
//!
//! One operation runs at a time, as a list of steps: a pending reversal first, then queued
//! advices, then the operation itself (and for a settlement, the batch upload and batch
//! end). Each step sends one request and waits for its answer or its timer.

use std::collections::VecDeque;

use poskit_codes::{Catalog, Class, MoneyMoved, Table};
use poskit_domain::message::{
    BuildError, CardData, RequestSpec, Response, Session, build_request, parse_response,
    settlement_field48,
};
use poskit_domain::{
    AmountFen, AuthCode, Batch, MoneyError, ResponseCode, Rrn, Stan, TransactionKind as K,
};
use poskit_security::{KeyLayout, MacAlgorithm, Pin, SecretKey, WorkingKeys, parse_field62};

pub use crate::code::{Code, LocalCode};
pub use crate::note::{Cause, Note};

/// Settings of one terminal (kept in its journal).
#[derive(Clone, Debug)]
pub struct Config {
    pub tid: String,
    pub mid: String,
    pub tmk: SecretKey,
    /// How long to wait for an answer before reversing.
    pub response_timeout_ms: u64,
    /// Reversal attempts before the transaction is marked "reversal failed".
    pub reversal_attempts_max: u32,
    /// Test switch: the printer jams after every approval (reversal with reason 96).
    pub fail_after_approval: bool,
}

/// Reversal attempts by default (Centerm's REVERSE_RETRY_TIMES; spec §4.1).
pub const REVERSAL_ATTEMPTS_MAX_DEFAULT: u32 = 3;
/// Seconds a terminal waits for an answer by default.
pub const RESPONSE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Details per batch-upload message (§4.4: N2 count ≤ 8).
pub const UPLOAD_DETAILS_PER_MESSAGE_MAX: usize = 8;
/// Transactions one batch may record: field 48 counts them in three digits (N3), so a
/// fuller batch could not be settled with true totals.
pub const BATCH_TXNS_MAX: u32 = 999;

/// Field 39 of a reversal (0400), §1.3: no answer to the original.
pub const REVERSAL_REASON_NO_ANSWER: ResponseCode = ResponseCode::ISSUER_TIMEOUT;
/// Field 39 of a reversal: the approval's MAC did not verify.
pub const REVERSAL_REASON_MAC_BAD: ResponseCode = ResponseCode::MAC_ERROR;
/// Field 39 of a reversal: the terminal failed after the approval (printer).
pub const REVERSAL_REASON_TERMINAL_FAILED: ResponseCode = ResponseCode::SYSTEM_MALFUNCTION;
/// Field 39 of a reversal: other — an answer that leaves open whether money moved.
pub const REVERSAL_REASON_OTHER: ResponseCode = ResponseCode::ERROR;

/// What happened to a transaction, as the journal keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    /// Sent; no answer yet (a crash here leaves a pending reversal).
    Sent,
    Approved,
    Declined,
    /// No valid answer: reversed or to be reversed.
    Failed,
    /// An approved sale or completion since voided.
    Voided,
    /// An advice (refund) stored, not yet answered.
    Queued,
    /// A pre-authorization completed or cancelled.
    Closed,
}

/// Where the reversal of a transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReversalState {
    None,
    Pending,
    Done,
    /// Every attempt failed: "reversal failed — contact acquirer".
    Failed,
}

macro_rules! names {
    ($ty:ident { $($v:ident => $n:literal),* $(,)? }) => {
        impl $ty {
            pub const fn as_str(self) -> &'static str { match self { $($ty::$v => $n),* } }
            pub fn parse(text: &str) -> Option<$ty> { match text { $($n => Some($ty::$v),)* _ => None } }
        }
    };
}
names!(TxnState { Sent => "sent", Approved => "approved", Declined => "declined", Failed => "failed", Voided => "voided", Queued => "queued", Closed => "closed" });
names!(ReversalState { None => "none", Pending => "pending", Done => "done", Failed => "failed" });

/// One transaction of the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    pub id: i64,
    pub kind: K,
    pub batch: u32,
    pub stan: u32,
    pub amount_fen: Option<AmountFen>,
    pub card: Option<CardData>,
    /// Field 37 of the answer.
    pub rrn: Option<Rrn>,
    /// Field 38 of the answer (or, for a completion, cancellation or void, the original's).
    pub auth_code: Option<AuthCode>,
    /// Field 39, or a local code (L03 ...) when the host's answer never came.
    pub code: Option<Code>,
    pub state: TxnState,
    pub reversal: ReversalState,
    pub original_stan: Option<u32>,
    pub original_rrn: Option<Rrn>,
    pub original_date: Option<String>,
    /// Fields 13 and 12 of the answer: the host's date (MMDD) and time.
    pub host_date: Option<String>,
    pub host_time: Option<String>,
    pub time_ms: i64,
}

/// The reversal waiting to go out: a copy of its original's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingReversal {
    pub txn_id: i64,
    pub kind: K,
    pub batch: u32,
    pub stan: u32,
    pub amount_fen: Option<AmountFen>,
    pub card: Option<CardData>,
    pub original_stan: Option<u32>,
    pub original_rrn: Option<Rrn>,
    pub original_date: Option<String>,
    pub auth_code: Option<AuthCode>,
    /// Field 39 of the 0400: 98 no answer, A0 bad MAC, 96 failure after approval, 06 other
    /// (`REVERSAL_REASON_*`).
    pub reason: ResponseCode,
    pub attempts: u32,
}

/// A stored advice (a refund), sent until answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advice {
    pub txn_id: i64,
    pub kind: K,
    pub batch: u32,
    pub stan: u32,
    pub amount_fen: AmountFen,
    pub card: CardData,
    /// The original's field 37.
    pub rrn: Rrn,
    pub original_date: String,
    pub attempts: u32,
}

/// A journal write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalOp {
    Txn(Txn),
    Counters {
        stan: u32,
        batch: u32,
    },
    /// Working keys after a sign-in; `None` after a sign-off or when they must be renewed.
    Keys(Option<(Vec<u8>, Vec<u8>)>),
    Reversal(Option<PendingReversal>),
    AdviceQueued(Advice),
    AdviceDone {
        txn_id: i64,
    },
    Failure {
        operation: String,
        amount_fen: Option<AmountFen>,
        code: Code,
        cause: Cause,
    },
    Maintenance {
        event: String,
        detail: String,
    },
    /// How the reversal of a transaction ended.
    ReversalEnded {
        txn_id: i64,
        state: ReversalState,
    },
    /// A sale or completion was voided (by batch and trace).
    Voided {
        batch: u32,
        stan: u32,
    },
    /// A pre-authorization was completed or cancelled (by its authorization code).
    PreAuthClosed {
        auth_code: AuthCode,
    },
    BatchClosed {
        batch: u32,
        totals: Totals,
        balanced: bool,
        uploaded: u32,
    },
}

/// Settlement totals (§4.4). Each total is at most twelve digits of fen (field 48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub debit_fen: AmountFen,
    pub debit_count: u32,
    pub credit_fen: AmountFen,
    pub credit_count: u32,
}

impl Totals {
    pub const ZERO: Totals = Totals {
        debit_fen: AmountFen::ZERO,
        debit_count: 0,
        credit_fen: AmountFen::ZERO,
        credit_count: 0,
    };

    /// Counts a debit; `Err` when the debit total would pass twelve digits of fen.
    pub fn add_debit(&mut self, amount: AmountFen) -> Result<(), MoneyError> {
        self.debit_fen = self.debit_fen.checked_add(amount)?;
        self.debit_count += 1;
        Ok(())
    }

    /// Counts a credit; `Err` when the credit total would pass twelve digits of fen.
    pub fn add_credit(&mut self, amount: AmountFen) -> Result<(), MoneyError> {
        self.credit_fen = self.credit_fen.checked_add(amount)?;
        self.credit_count += 1;
        Ok(())
    }
}

/// What the engine asks of its driver, in order.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Make these durable before anything after them.
    Journal(Vec<JournalOp>),
    /// Send this frame; `token` names the request (its timer and a [`Event::NotSent`]
    /// carry the same one).
    Send { frame: Vec<u8>, token: u64 },
    /// Deliver [`Event::Timeout`] with this token after `ms`, unless another timer replaces it.
    Timer { ms: u64, token: u64 },
    /// The operation is over.
    Done(Box<Outcome>),
}

/// An operator's command. Commands that refer to earlier transactions carry them (the
/// driver reads them from the journal), so the engine needs no storage of its own.
#[derive(Clone, Debug)]
pub enum Command {
    SignIn,
    SignOff,
    Echo,
    Sale {
        card: CardData,
        amount_fen: AmountFen,
        pin: Option<Pin>,
    },
    Balance {
        card: CardData,
        pin: Option<Pin>,
    },
    PreAuth {
        card: CardData,
        amount_fen: AmountFen,
        pin: Option<Pin>,
    },
    PreAuthCancel {
        card: CardData,
        amount_fen: AmountFen,
        auth_code: AuthCode,
        date: String,
    },
    Complete {
        card: CardData,
        amount_fen: AmountFen,
        auth_code: AuthCode,
        date: String,
    },
    /// Void of a sale, or of a completion: the original from the journal.
    Void {
        original: Txn,
    },
    Refund {
        card: CardData,
        amount_fen: AmountFen,
        rrn: Rrn,
        date: String,
    },
    /// Settlement of the current batch: its totals and upload details from the journal.
    Settle {
        totals: Totals,
        details: Vec<Txn>,
    },
    /// Send the pending reversal and every stored advice, and nothing else; approved when
    /// nothing is left waiting. Run it before reading a settlement's totals.
    Flush,
}

/// Inputs. (A command is the large variant; events are few per operation.)
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    Command(Command),
    /// A frame from the host.
    Response(Vec<u8>),
    Timeout {
        token: u64,
    },
    /// The request of `token` could not be sent at all (no connection): it never left.
    /// One for an earlier request is ignored. `why`: the system's words (the address and
    /// the error), kept as the detail of [`Cause::NotSent`].
    NotSent {
        token: u64,
        why: String,
    },
}

/// The result of an operation, for the operator.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub operation: &'static str,
    pub approved: bool,
    /// Field 39, or a local code (L01 ...) for what happened on the terminal.
    pub code: Code,
    pub txn: Option<Txn>,
    pub reversal: ReversalState,
    /// What else happened: a reversal sent first, a sign-in needed, advices sent ...
    pub notes: Vec<Note>,
    /// A balance inquiry's field 54 (available).
    pub balance: Option<Balance>,
    /// A settlement: whether the host's totals agreed, and details uploaded.
    pub settlement: Option<(bool, u32)>,
    /// Field 44 of the answer: issuer and acquirer institution ids (发卡行, 收单行).
    pub institutions: Option<(String, String)>,
}

/// Field 54 of a balance inquiry's answer: the available balance, which an overdrawn
/// account has on the debit side (sign `D`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    pub amount_fen: AmountFen,
    pub overdrawn: bool,
}

impl Balance {
    /// Reads field 54 (§2.3: account type 2, amount type 2, currency 3, sign C/D, 12
    /// digits of fen); `None` when it does not have that shape.
    pub fn of_field54(field: &str) -> Option<Balance> {
        let overdrawn = match field.as_bytes().get(7)? {
            b'C' => false,
            b'D' => true,
            _ => return None,
        };
        let digits = field.get(8..20)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let amount_fen = AmountFen::new(digits.parse().ok()?).ok()?;
        Some(Balance {
            amount_fen,
            overdrawn,
        })
    }

    /// Fen, negative when overdrawn (as `poskit pos --json` shows it).
    pub fn fen_signed(self) -> i64 {
        // Twelve digits at most: well inside an i64.
        let fen = i64::try_from(self.amount_fen.fen())
            .unwrap_or_else(|_| unreachable!("an amount has at most twelve digits"));
        if self.overdrawn { -fen } else { fen }
    }
}

/// An identifier as `RequestSpec` (shared with the host's test client) carries it.
fn wire_text(id: &impl std::fmt::Display) -> String {
    id.to_string()
}

/// What the terminal remembers between operations (loaded from the journal).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub stan: u32,
    pub batch: u32,
    pub keys: Option<WorkingKeys>,
    pub reversal: Option<PendingReversal>,
    pub advices: Vec<Advice>,
    /// The next transaction id.
    pub next_txn_id: i64,
    /// Transactions recorded in the open batch (balance inquiries aside).
    pub batch_txns: u32,
}

enum Step {
    SignIn,
    SignOff,
    Echo,
    /// Send the pending reversal, if there is one.
    Reversal,
    /// Send the first queued advice, if there is one (and then the next ones).
    Advices,
    Main(Box<Txn>, Option<Pin>),
    Settle {
        totals: Totals,
        details: Vec<Txn>,
    },
    Upload {
        details: Vec<Txn>,
        sent: u32,
    },
    BatchEnd {
        balanced: bool,
        uploaded: u32,
        totals: Totals,
    },
}

struct InFlight {
    step: Step,
    mti: [u8; 4],
    stan: u32,
    amount_fen: Option<AmountFen>,
    processing: Option<[u8; 6]>,
    mac: bool,
}

/// The fields of an answer the journal records, read into their types.
struct Answer {
    /// Field 39; `None` when absent or not two letters or digits.
    code: Option<ResponseCode>,
    /// Field 37.
    rrn: Option<Rrn>,
    /// Field 38.
    auth_code: Option<AuthCode>,
}

impl Answer {
    /// `Err(field)`: field 37 or 38 is there but is not a retrieval reference number (12
    /// printable characters) or an authorization code (6).
    fn read(r: &Response) -> Result<Answer, u8> {
        let rrn = r.field(37).map(Rrn::parse).transpose().map_err(|_| 37)?;
        let auth_code = r
            .field(38)
            .map(AuthCode::parse)
            .transpose()
            .map_err(|_| 38)?;
        Ok(Answer {
            code: r.code.as_deref().and_then(ResponseCode::parse),
            rrn,
            auth_code,
        })
    }
}

/// The terminal.
pub struct Terminal {
    cfg: Config,
    snap: Snapshot,
    steps: VecDeque<Step>,
    flight: Option<InFlight>,
    token: u64,
    now_ms: i64,
    /// The operation's result once its main step has one.
    result: Option<Outcome>,
    /// The advice (refund) this operation asked for.
    current_advice: Option<i64>,
    /// The operation must deliver every stored advice (a flush or a settlement).
    flushing: bool,
    notes: Vec<Note>,
    effects: Vec<Effect>,
}

fn outcome(operation: &'static str, code: impl Into<Code>, notes: Vec<Note>) -> Outcome {
    Outcome {
        operation,
        approved: false,
        code: code.into(),
        txn: None,
        reversal: ReversalState::None,
        notes,
        balance: None,
        settlement: None,
        institutions: None,
    }
}

/// A MAC (A0) or PIN block format (99) the host could not check: new keys fix it.
fn keys_trouble(code: ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::MAC_ERROR | ResponseCode::PIN_FORMAT_ERROR
    )
}

/// The host or the issuer could not process the request now (96, 91, 98): nothing was done.
fn host_unable_now(code: ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::SYSTEM_MALFUNCTION
            | ResponseCode::ISSUER_INOPERATIVE
            | ResponseCode::ISSUER_TIMEOUT
    )
}

fn class_of(code: ResponseCode) -> Class {
    Catalog::builtin().class_of(Table::CupPos, code.as_str())
}

impl Terminal {
    pub fn new(cfg: Config, snap: Snapshot) -> Terminal {
        Terminal {
            cfg,
            snap,
            steps: VecDeque::new(),
            flight: None,
            token: 0,
            now_ms: 0,
            result: None,
            current_advice: None,
            flushing: false,
            notes: Vec::new(),
            effects: Vec::new(),
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Turns the printer-jam test switch on or off for the next operations.
    pub fn set_fail_after_approval(&mut self, on: bool) {
        self.cfg.fail_after_approval = on;
    }

    pub fn is_busy(&self) -> bool {
        self.flight.is_some() || !self.steps.is_empty()
    }

    /// Feeds one event at time `now_ms`; returns what to do, in order.
    pub fn handle(&mut self, now_ms: i64, event: Event) -> Vec<Effect> {
        self.now_ms = now_ms;
        match event {
            Event::Command(c) => self.command(c),
            Event::Response(frame) => self.response(frame),
            Event::Timeout { token } => {
                if token == self.token && self.flight.is_some() {
                    self.no_answer(Cause::Timeout, LocalCode::NO_ANSWER, false);
                }
            }
            Event::NotSent { token, why } => {
                if token == self.token && self.flight.is_some() {
                    self.no_answer(Cause::NotSent { detail: why }, LocalCode::NOT_SENT, true);
                }
            }
        }
        self.pump();
        std::mem::take(&mut self.effects)
    }

    fn journal(&mut self, ops: Vec<JournalOp>) {
        if !ops.is_empty() {
            self.effects.push(Effect::Journal(ops));
        }
    }

    /// Ends the operation with `outcome`, dropping the steps still to come. When the
    /// operation's own transaction already has its result, that result stays and the new
    /// one only adds its notes (a failed sign-in after a bad MAC must not hide the sale).
    fn finish(&mut self, outcome: Outcome) {
        self.steps.clear();
        match &mut self.result {
            Some(existing) if existing.txn.is_some() => {
                existing.notes.push(Note::StepEnded {
                    operation: outcome.operation,
                    code: outcome.code,
                });
                existing.notes.extend(outcome.notes);
            }
            _ => self.result = Some(outcome),
        }
    }

    fn command(&mut self, c: Command) {
        if self.is_busy() {
            self.effects.push(Effect::Done(Box::new(outcome(
                "busy",
                LocalCode::CANCELLED,
                vec![Note::Busy],
            ))));
            return;
        }
        self.notes.clear();
        self.result = None;
        self.current_advice = None;
        self.flushing = matches!(c, Command::Flush | Command::Settle { .. });
        let management = matches!(c, Command::SignIn | Command::SignOff | Command::Echo);
        if !management && self.snap.keys.is_none() {
            self.effects.push(Effect::Done(Box::new(outcome(
                "transaction",
                LocalCode::NOT_SIGNED_IN,
                vec![Note::NotSignedIn],
            ))));
            return;
        }
        let records = !management
            && !matches!(
                c,
                Command::Balance { .. } | Command::Settle { .. } | Command::Flush
            );
        if records && self.snap.batch_txns >= BATCH_TXNS_MAX {
            self.effects.push(Effect::Done(Box::new(outcome(
                "transaction",
                LocalCode::BATCH_FULL,
                vec![Note::BatchFull {
                    batch: self.snap.batch,
                    txns: self.snap.batch_txns,
                }],
            ))));
            return;
        }
        let step = match c {
            Command::SignIn => Step::SignIn,
            Command::SignOff => Step::SignOff,
            Command::Echo => Step::Echo,
            Command::Sale {
                card,
                amount_fen,
                pin,
            } => Step::Main(
                Box::new(self.new_txn(K::Sale, Some(amount_fen), Some(card))),
                pin,
            ),
            Command::Balance { card, pin } => Step::Main(
                Box::new(self.new_txn(K::BalanceInquiry, None, Some(card))),
                pin,
            ),
            Command::PreAuth {
                card,
                amount_fen,
                pin,
            } => Step::Main(
                Box::new(self.new_txn(K::PreAuth, Some(amount_fen), Some(card))),
                pin,
            ),
            Command::PreAuthCancel {
                card,
                amount_fen,
                auth_code,
                date,
            } => {
                let mut t = self.new_txn(K::PreAuthCancel, Some(amount_fen), Some(card));
                t.auth_code = Some(auth_code);
                t.original_date = Some(date);
                Step::Main(Box::new(t), None)
            }
            Command::Complete {
                card,
                amount_fen,
                auth_code,
                date,
            } => {
                let mut t = self.new_txn(K::PreAuthCompletion, Some(amount_fen), Some(card));
                t.auth_code = Some(auth_code);
                t.original_date = Some(date);
                Step::Main(Box::new(t), None)
            }
            Command::Void { original } => {
                let kind = if original.kind == K::PreAuthCompletion {
                    K::PreAuthCompletionVoid
                } else {
                    K::Void
                };
                let mut t = self.new_txn(kind, original.amount_fen, original.card.clone());
                t.original_stan = Some(original.stan);
                t.original_rrn = original.rrn;
                t.auth_code = original.auth_code;
                Step::Main(Box::new(t), None)
            }
            Command::Refund {
                card,
                amount_fen,
                rrn,
                date,
            } => {
                let mut t = self.new_txn(K::Refund, Some(amount_fen), Some(card));
                t.original_rrn = Some(rrn);
                t.original_date = Some(date);
                Step::Main(Box::new(t), None)
            }
            Command::Settle { totals, details } => Step::Settle { totals, details },
            Command::Flush => {
                self.result = Some(Outcome {
                    approved: true,
                    ..outcome("flush", ResponseCode::APPROVED, vec![Note::NothingWaiting])
                });
                self.steps.push_back(Step::Reversal);
                self.steps.push_back(Step::Advices);
                return;
            }
        };
        if !management {
            // §4.1: a pending reversal goes out before anything else; then the advices.
            self.steps.push_back(Step::Reversal);
            self.steps.push_back(Step::Advices);
        }
        self.steps.push_back(step);
    }

    fn new_txn(&mut self, kind: K, amount_fen: Option<AmountFen>, card: Option<CardData>) -> Txn {
        let id = self.snap.next_txn_id;
        self.snap.next_txn_id += 1;
        if kind != K::BalanceInquiry {
            self.snap.batch_txns += 1;
        }
        Txn {
            id,
            kind,
            batch: self.snap.batch,
            stan: 0,
            amount_fen,
            card,
            rrn: None,
            auth_code: None,
            code: None,
            state: TxnState::Sent,
            reversal: ReversalState::None,
            original_stan: None,
            original_rrn: None,
            original_date: None,
            host_date: None,
            host_time: None,
            time_ms: self.now_ms,
        }
    }

    fn next_stan(&mut self) -> u32 {
        let next = Stan::new(self.snap.stan)
            .map(Stan::next)
            .map(Stan::value)
            .unwrap_or(1);
        self.snap.stan = next;
        next
    }

    fn counters(&self) -> JournalOp {
        JournalOp::Counters {
            stan: self.snap.stan,
            batch: self.snap.batch,
        }
    }

    /// Builds a request in `batch` (60.2): the current one, or for a reversal or an advice
    /// the batch of its original.
    fn build(&self, spec: &RequestSpec, stan: u32, batch: u32) -> Result<Vec<u8>, BuildError> {
        let batch = Batch::new(batch).unwrap_or_else(|_| unreachable!("batches stay in range"));
        build_request(
            spec,
            stan,
            &Session {
                tid: &self.cfg.tid,
                mid: &self.cfg.mid,
                batch,
                keys: self.snap.keys.as_ref(),
                mac_algorithm: MacAlgorithm::CupEcb,
            },
        )
    }

    /// Starts steps until one has a request in flight or the operation is over.
    fn pump(&mut self) {
        while self.flight.is_none() {
            match self.steps.pop_front() {
                Some(step) => self.start(step),
                None => {
                    if let Some(mut done) = self.result.take() {
                        done.notes.splice(0..0, std::mem::take(&mut self.notes));
                        self.effects.push(Effect::Done(Box::new(done)));
                    }
                    return;
                }
            }
        }
    }

    /// Journals `ops`, then sends `spec` and sets its timer.
    fn send(&mut self, step: Step, spec: &RequestSpec, stan: u32, ops: Vec<JournalOp>) {
        let batch = match (&step, &self.snap.reversal, self.snap.advices.first()) {
            (Step::Reversal, Some(rev), _) => rev.batch,
            (Step::Advices, _, Some(advice)) => advice.batch,
            _ => self.snap.batch,
        };
        let built = self.build(spec, stan, batch);
        if let Err(e) = &built {
            // Nothing leaves, so nothing may wait for an answer or a reversal: only the
            // trace counter is kept.
            let why = Cause::Unbuildable {
                detail: e.to_string(),
            };
            self.journal(
                ops.into_iter()
                    .filter(|op| matches!(op, JournalOp::Counters { .. }))
                    .collect(),
            );
            self.unbuildable(step, why);
            return;
        }
        self.journal(ops);
        match built {
            Ok(frame) => {
                self.token += 1;
                self.effects.push(Effect::Send {
                    frame,
                    token: self.token,
                });
                self.effects.push(Effect::Timer {
                    ms: self.cfg.response_timeout_ms,
                    token: self.token,
                });
                self.flight = Some(InFlight {
                    step,
                    mti: if spec.reversal_reason.is_some() {
                        *b"0400"
                    } else {
                        *spec.kind.mti()
                    },
                    stan,
                    // Built from an `AmountFen` (and field 4 took it): twelve digits at most.
                    amount_fen: spec.amount_fen.map(|fen| {
                        AmountFen::new(fen).unwrap_or_else(|_| unreachable!("field 4 took it"))
                    }),
                    processing: spec.kind.processing_code(),
                    mac: spec.kind.carries_mac(),
                });
            }
            Err(_) => unreachable!("handled above"),
        }
    }

    /// A request that cannot be built (bad data from the operator or the journal) is
    /// given up at once, so that it can never block the terminal.
    fn unbuildable(&mut self, step: Step, why: Cause) {
        match step {
            Step::Main(mut txn, _) => {
                if self
                    .snap
                    .reversal
                    .as_ref()
                    .is_some_and(|r| r.txn_id == txn.id)
                {
                    self.snap.reversal = None;
                }
                let local = LocalCode::KEYS_OR_DATA;
                txn.state = TxnState::Failed;
                txn.reversal = ReversalState::None;
                txn.code = Some(local.into());
                self.journal(vec![
                    JournalOp::Txn((*txn).clone()),
                    JournalOp::Failure {
                        operation: txn.kind.slug().into(),
                        amount_fen: txn.amount_fen,
                        code: local.into(),
                        cause: why.clone(),
                    },
                ]);
                self.finish(Outcome {
                    txn: Some(*txn),
                    ..outcome("transaction", local, vec![Note::Cause(why)])
                });
            }
            Step::Reversal => {
                if let Some(rev) = self.snap.reversal.clone() {
                    self.give_up_reversal(&rev, why);
                }
            }
            Step::Advices => {
                let why = Cause::AdviceGivenUp {
                    last: Box::new(why),
                };
                if self.snap.advices.is_empty() {
                    return;
                }
                let local = LocalCode::KEYS_OR_DATA;
                let advice = self.snap.advices.remove(0);
                let txn = Txn {
                    state: TxnState::Failed,
                    code: Some(local.into()),
                    ..self.txn_of_advice(&advice)
                };
                self.journal(vec![
                    JournalOp::AdviceDone {
                        txn_id: advice.txn_id,
                    },
                    JournalOp::Txn(txn.clone()),
                    JournalOp::Failure {
                        operation: advice.kind.slug().into(),
                        amount_fen: Some(advice.amount_fen),
                        code: local.into(),
                        cause: why.clone(),
                    },
                ]);
                if self.current_advice == Some(advice.txn_id) {
                    self.finish(Outcome {
                        txn: Some(txn),
                        ..outcome(advice.kind.slug(), local, vec![Note::Cause(why)])
                    });
                } else if !self.snap.advices.is_empty() {
                    self.steps.push_front(Step::Advices);
                }
            }
            other => {
                let op = match other {
                    Step::Settle { .. } | Step::Upload { .. } | Step::BatchEnd { .. } => "settle",
                    _ => "management",
                };
                self.finish(outcome(op, LocalCode::KEYS_OR_DATA, vec![Note::Cause(why)]));
            }
        }
    }

    fn spec_of(txn: &Txn) -> RequestSpec {
        RequestSpec {
            amount_fen: txn.amount_fen.map(AmountFen::fen),
            card: txn.card.clone(),
            original_batch: txn.original_stan.map(|_| txn.batch),
            original_stan: txn.original_stan,
            original_date: txn.original_date.clone(),
            rrn: txn.original_rrn.as_ref().map(wire_text),
            auth_code: txn.auth_code.as_ref().map(wire_text),
            ..RequestSpec::new(txn.kind)
        }
    }

    fn management(&mut self, step: Step, kind: K, network: &str) {
        let mut spec = RequestSpec::new(kind);
        spec.network_code = Some(network.into());
        let stan = self.next_stan();
        let ops = vec![self.counters()];
        self.send(step, &spec, stan, ops);
    }

    fn start(&mut self, step: Step) {
        match step {
            Step::SignIn => self.management(Step::SignIn, K::SignIn, KeyLayout::Double.code()),
            Step::SignOff => self.management(Step::SignOff, K::SignOff, "002"),
            Step::Echo => self.management(Step::Echo, K::Echo, "301"),
            Step::Reversal => self.start_reversal(),
            Step::Advices => self.start_advice(),
            Step::Main(txn, pin) => self.start_main(*txn, pin),
            Step::Settle { totals, details } => self.start_settle(totals, details),
            Step::Upload { details, sent } => self.start_upload(details, sent),
            Step::BatchEnd {
                balanced,
                uploaded,
                totals,
            } => {
                let mut spec = RequestSpec::new(K::BatchUpload);
                spec.network_code = Some(if balanced { "207" } else { "202" }.into());
                spec.field48 = Some(format!("{:04}", uploaded.min(9999)));
                let stan = self.next_stan();
                let ops = vec![self.counters()];
                let step = Step::BatchEnd {
                    balanced,
                    uploaded,
                    totals,
                };
                self.send(step, &spec, stan, ops);
            }
        }
    }

    /// Sends the pending reversal again (its attempt counted first), if there is one.
    fn start_reversal(&mut self) {
        let Some(mut rev) = self.snap.reversal.clone() else {
            return;
        };
        rev.attempts += 1;
        self.snap.reversal = Some(rev.clone());
        let spec = RequestSpec {
            amount_fen: rev.amount_fen.map(AmountFen::fen),
            card: rev.card.clone(),
            original_batch: rev.original_stan.map(|_| rev.batch),
            original_stan: rev.original_stan,
            original_date: rev.original_date.clone(),
            rrn: rev.original_rrn.as_ref().map(wire_text),
            auth_code: rev.auth_code.as_ref().map(wire_text),
            reversal_reason: Some(rev.reason.as_str().to_owned()),
            ..RequestSpec::new(rev.kind)
        };
        let stan = rev.stan;
        self.send(
            Step::Reversal,
            &spec,
            stan,
            vec![JournalOp::Reversal(Some(rev))],
        );
    }

    /// Sends the first stored advice (its attempt counted first), if there is one.
    fn start_advice(&mut self) {
        let Some(mut advice) = self.snap.advices.first().cloned() else {
            return;
        };
        advice.attempts += 1;
        self.snap.advices[0] = advice.clone();
        let spec = RequestSpec {
            amount_fen: Some(advice.amount_fen.fen()),
            card: Some(advice.card.clone()),
            rrn: Some(wire_text(&advice.rrn)),
            original_date: Some(advice.original_date.clone()),
            ..RequestSpec::new(advice.kind)
        };
        let stan = advice.stan;
        self.send(
            Step::Advices,
            &spec,
            stan,
            vec![JournalOp::AdviceQueued(advice)],
        );
    }

    /// The operation's own request: an advice is stored and queued; a reversible request
    /// has its reversal record journaled in the same write, before it is sent.
    fn start_main(&mut self, mut txn: Txn, pin: Option<Pin>) {
        txn.stan = self.next_stan();
        txn.batch = self.snap.batch;
        let mut ops = vec![self.counters()];
        if txn.kind.is_advice() {
            self.queue_advice(txn, ops);
            return;
        }
        if txn.kind.reversible() {
            // §4.1: the reversal record is durable before the request leaves.
            txn.reversal = ReversalState::Pending;
            let rev = PendingReversal {
                txn_id: txn.id,
                kind: txn.kind,
                batch: txn.batch,
                stan: txn.stan,
                amount_fen: txn.amount_fen,
                // As the journal keeps it: a reversal sent again after a restart must be
                // the same message as the first (the host answers a changed one 94).
                card: txn.card.as_ref().map(CardData::kept),
                original_stan: txn.original_stan,
                original_rrn: txn.original_rrn,
                original_date: txn.original_date.clone(),
                auth_code: txn.auth_code,
                reason: REVERSAL_REASON_NO_ANSWER,
                attempts: 0,
            };
            self.snap.reversal = Some(rev.clone());
            ops.push(JournalOp::Reversal(Some(rev)));
        }
        ops.push(JournalOp::Txn(txn.clone()));
        // What the request relies on: a trace in range, and for a reversible request its
        // reversal record in this very journal write (the amount's type keeps it to what
        // field 4 carries).
        assert!((1..=999_999).contains(&txn.stan), "trace {}", txn.stan);
        assert_eq!(
            txn.kind.reversible(),
            ops.iter()
                .any(|op| matches!(op, JournalOp::Reversal(Some(r)) if r.txn_id == txn.id)),
            "a reversible request is sent only with its reversal record"
        );
        let mut spec = Self::spec_of(&txn);
        spec.pin = pin;
        let stan = txn.stan;
        self.send(Step::Main(Box::new(txn), None), &spec, stan, ops);
    }

    /// Store-and-forward: the advice (a refund) is durable first, then sent in turn with
    /// the others. One without the amount or the original's RRN it must carry can never be
    /// sent, and is given up at once.
    fn queue_advice(&mut self, mut txn: Txn, mut ops: Vec<JournalOp>) {
        assert!(txn.kind.is_advice());
        let (Some(amount_fen), Some(rrn)) = (txn.amount_fen, txn.original_rrn) else {
            self.journal(ops);
            let detail = "an advice carries an amount and its original's RRN (fields 4, 37)";
            let why = Cause::Unbuildable {
                detail: detail.into(),
            };
            self.unbuildable(Step::Main(Box::new(txn), None), why);
            return;
        };
        txn.state = TxnState::Queued;
        let advice = Advice {
            txn_id: txn.id,
            kind: txn.kind,
            batch: txn.batch,
            stan: txn.stan,
            amount_fen,
            // As the journal keeps it (no track data), so that a resend after a restart is
            // the same message as the first.
            card: txn
                .card
                .as_ref()
                .map(CardData::kept)
                .unwrap_or(CardData::Track2(String::new())),
            rrn,
            original_date: txn.original_date.clone().unwrap_or_default(),
            attempts: 0,
        };
        self.snap.advices.push(advice.clone());
        ops.push(JournalOp::Txn(txn.clone()));
        ops.push(JournalOp::AdviceQueued(advice));
        self.journal(ops);
        self.current_advice = Some(txn.id);
        self.steps.push_front(Step::Advices);
    }

    fn start_settle(&mut self, totals: Totals, details: Vec<Txn>) {
        // The journal's totals are those of the details it uploads when unbalanced.
        assert_eq!(
            totals.debit_count + totals.credit_count,
            details.len() as u32,
            "every counted transaction is a detail"
        );
        // Each total has at most twelve digits (its type), so their sum fits a u64; so does
        // that of at most `BATCH_TXNS_MAX` details.
        debug_assert_eq!(
            Some(totals.debit_fen.fen() + totals.credit_fen.fen()),
            details.iter().try_fold(0u64, |sum, t| {
                sum.checked_add(t.amount_fen.map_or(0, AmountFen::fen))
            }),
            "the totals add up to the details"
        );
        let mut spec = RequestSpec::new(K::Settlement);
        spec.network_code = Some("201".into());
        spec.field48 = Some(settlement_field48(
            totals.debit_fen.fen(),
            totals.debit_count,
            totals.credit_fen.fen(),
            totals.credit_count,
        ));
        let stan = self.next_stan();
        let ops = vec![self.counters()];
        self.send(Step::Settle { totals, details }, &spec, stan, ops);
    }

    /// The next batch-upload message: up to [`UPLOAD_DETAILS_PER_MESSAGE_MAX`] details.
    fn start_upload(&mut self, details: Vec<Txn>, sent: u32) {
        let chunk: Vec<&Txn> = details
            .iter()
            .skip(sent as usize)
            .take(UPLOAD_DETAILS_PER_MESSAGE_MAX)
            .collect();
        if chunk.is_empty() {
            return;
        }
        let mut f48 = format!("{:02}", chunk.len());
        for t in &chunk {
            let pan = t
                .card
                .as_ref()
                .map(|c| c.pan().to_owned())
                .unwrap_or_default();
            f48.push_str(&format!(
                "00{:06}{:0>20}{:012}",
                t.stan,
                pan,
                t.amount_fen.map_or(0, AmountFen::fen)
            ));
        }
        let sent = sent + chunk.len() as u32;
        let mut spec = RequestSpec::new(K::BatchUpload);
        spec.network_code = Some("201".into());
        spec.field48 = Some(f48);
        let stan = self.next_stan();
        let ops = vec![self.counters()];
        self.send(Step::Upload { details, sent }, &spec, stan, ops);
    }

    /// Whether `r` answers the request in flight (§ issue: MTI + 10, trace, terminal,
    /// merchant, amount, processing code). A decline may leave out fields 3 and 4; an
    /// approval of an online request (0100, 0200) must carry them when the request did, so
    /// that what is printed is what the host approved. Answers to reversals and advices
    /// only give money back or confirm a record, and are taken without them.
    fn matches(&self, flight: &InFlight, r: &Response) -> bool {
        let mti = poskit_codec::Mti(flight.mti).response();
        let stan = format!("{:06}", flight.stan);
        let approved = ResponseCode::parse(r.code()).is_some_and(ResponseCode::is_approved)
            && matches!(&flight.mti, b"0100" | b"0200");
        r.mti == mti.as_str()
            && r.field(11) == Some(stan.as_str())
            && r.field(41) == Some(self.cfg.tid.as_str())
            && r.field(42) == Some(self.cfg.mid.as_str())
            && flight.amount_fen.is_none_or(|a| match r.field(4) {
                Some(f) => f.parse::<u64>().ok() == Some(a.fen()),
                None => !approved,
            })
            && flight.processing.is_none_or(|p| match r.field(3) {
                Some(f) => f.as_bytes() == p,
                None => !approved,
            })
    }

    fn response(&mut self, frame: Vec<u8>) {
        let Some(flight) = &self.flight else { return };
        let mak = self.snap.keys.as_ref().map(WorkingKeys::mac_key);
        let Ok(r) = parse_response(frame, mak.as_ref(), MacAlgorithm::CupEcb) else {
            // Undecodable: as no answer; the timer still runs.
            return;
        };
        let names_this = r.field(11) == Some(format!("{:06}", flight.stan).as_str())
            && r.field(41) == Some(self.cfg.tid.as_str());
        // Not the answer to this request, or one whose field 37 or 38 cannot be recorded:
        // as no answer (the timer still runs). One that names this request is worth a note
        // (once per request: a host sending many such frames does not grow the notes): the
        // failure that follows is then not only "no answer".
        let read = match self.matches(flight, &r) {
            true => Answer::read(&r).map_err(|field| Note::AnswerMalformed {
                stan: flight.stan,
                field,
            }),
            false => Err(Note::AnswerIgnored { stan: flight.stan }),
        };
        let answer = match read {
            Ok(answer) => answer,
            Err(note) => {
                if names_this && !self.notes.contains(&note) {
                    self.notes.push(note);
                }
                return;
            }
        };
        let code = match answer.code {
            Some(code) => code,
            // A settlement's answer is read for its field 48 even without a code.
            None if matches!(flight.step, Step::Settle { .. }) => ResponseCode::FORMAT_ERROR,
            // No response code: nothing can be concluded from it (the timer still runs).
            None => return,
        };
        let flight = self
            .flight
            .take()
            .unwrap_or_else(|| unreachable!("checked above"));
        self.token += 1; // the timer of this request no longer matters
        if r.header.processing_requirement() == 3 && !matches!(flight.step, Step::SignIn) {
            self.notes.push(Note::HostAsksSignIn);
            self.push_sign_in();
        }
        let mac_bad = flight.mac && code.is_approved() && r.mac_ok != Some(true);
        self.answered(flight.step, &r, &answer, code, mac_bad);
    }

    /// The answer to the step in flight, with code `code` (`mac_bad`: an approval whose MAC
    /// did not verify).
    fn answered(
        &mut self,
        step: Step,
        r: &Response,
        a: &Answer,
        code: ResponseCode,
        mac_bad: bool,
    ) {
        match step {
            Step::Main(txn, _) => self.main_answered(*txn, r, a, code, mac_bad),
            Step::Reversal if mac_bad => self.reversal_missed(Cause::AnswerMacBad, false),
            Step::Reversal => self.reversal_answered(code),
            Step::Advices if mac_bad => {
                self.advice_missed(Cause::AnswerMacBad, LocalCode::ANSWER_MAC_BAD.into())
            }
            Step::Advices => self.advice_answered(r, a, code),
            Step::SignIn => self.signed_in(r, code),
            Step::SignOff => {
                if code.is_approved() {
                    self.snap.keys = None;
                    self.journal(vec![
                        JournalOp::Keys(None),
                        JournalOp::Maintenance {
                            event: "sign-off".into(),
                            detail: "working keys withdrawn".into(),
                        },
                    ]);
                }
                self.result = Some(Outcome {
                    approved: code.is_approved(),
                    ..outcome("sign-off", code, vec![])
                });
            }
            Step::Echo => {
                self.result = Some(Outcome {
                    approved: code.is_approved(),
                    ..outcome("echo", code, vec![])
                })
            }
            Step::Settle { totals, details } => self.settle_answered(r, code, totals, details),
            Step::Upload { details, sent } => {
                if !code.is_approved() {
                    self.finish(outcome("settle", code, vec![Note::UploadRefused]));
                } else if (sent as usize) < details.len() {
                    self.steps.push_front(Step::Upload { details, sent });
                }
            }
            Step::BatchEnd {
                balanced,
                uploaded,
                totals,
            } => self.batch_ended(code, balanced, uploaded, totals),
        }
    }

    /// Field 48 of the settlement's answer, position 31: 1 balanced (batch end), 2 not
    /// (the host's totals are noted, the details uploaded, then batch end).
    fn settle_answered(
        &mut self,
        r: &Response,
        code: ResponseCode,
        totals: Totals,
        details: Vec<Txn>,
    ) {
        let f48 = r.field(48).unwrap_or("");
        match f48.as_bytes().get(30) {
            Some(b'1') => self.steps.push_front(Step::BatchEnd {
                balanced: true,
                uploaded: 0,
                totals,
            }),
            Some(b'2') => {
                let number = |range: std::ops::Range<usize>| {
                    f48.get(range).and_then(|a| a.parse::<u64>().ok())
                };
                let amount = |range| number(range).and_then(|fen| AmountFen::new(fen).ok());
                self.notes.push(Note::HostTotalsDiffer {
                    debit_count: number(12..15).map(|n| n as u32),
                    debit_fen: amount(0..12),
                    credit_count: number(27..30).map(|n| n as u32),
                    credit_fen: amount(15..27),
                });
                let uploaded = details.len() as u32;
                self.steps.push_front(Step::BatchEnd {
                    balanced: false,
                    uploaded,
                    totals,
                });
                self.steps.push_front(Step::Upload { details, sent: 0 });
            }
            _ => self.finish(outcome("settle", code, vec![Note::SettlementWithoutCode])),
        }
    }

    fn batch_ended(&mut self, code: ResponseCode, balanced: bool, uploaded: u32, totals: Totals) {
        if !code.is_approved() {
            self.finish(outcome("settle", code, vec![Note::BatchEndRefused]));
            return;
        }
        let closed = self.snap.batch;
        self.snap.batch = Batch::new(closed)
            .map(Batch::next)
            .map(Batch::value)
            .unwrap_or(1);
        self.snap.batch_txns = 0;
        self.journal(vec![
            JournalOp::BatchClosed {
                batch: closed,
                totals,
                balanced,
                uploaded,
            },
            self.counters(),
            JournalOp::Maintenance {
                event: "settlement".into(),
                detail: format!(
                    "batch {closed:06} closed ({}); batch {:06} opened",
                    if balanced {
                        "balanced"
                    } else {
                        "unbalanced, uploaded"
                    },
                    self.snap.batch
                ),
            },
        ]);
        self.result = Some(Outcome {
            approved: true,
            settlement: Some((balanced, uploaded)),
            ..outcome(
                "settle",
                ResponseCode::APPROVED,
                vec![Note::BatchSettled { batch: closed }],
            )
        });
    }

    fn push_sign_in(&mut self) {
        if !self.steps.iter().any(|s| matches!(s, Step::SignIn)) {
            self.steps.push_front(Step::SignIn);
        }
    }

    fn main_answered(
        &mut self,
        mut txn: Txn,
        r: &Response,
        a: &Answer,
        code: ResponseCode,
        mac_bad: bool,
    ) {
        txn.code = Some(code.into());
        txn.rrn = a.rrn;
        txn.auth_code = a.auth_code.or(txn.auth_code);
        txn.host_date = r.field(13).map(str::to_owned);
        txn.host_time = r.field(12).map(str::to_owned);
        // Field 44: issuer id AN11 then acquirer id AN11 (§2.3), spaces trimmed.
        let institutions = r.field(44).filter(|f| f.len() > 11).map(|f| {
            let (issuer, acquirer) = f.split_at(11);
            (issuer.trim_end().to_owned(), acquirer.trim_end().to_owned())
        });
        let result = Outcome {
            balance: r.field(54).and_then(Balance::of_field54),
            institutions,
            ..outcome(txn.kind.slug(), code, vec![])
        };
        if code.is_approved() && (mac_bad || self.cfg.fail_after_approval) {
            self.approval_not_taken(txn, result, mac_bad);
        } else {
            self.main_settled(txn, result, code);
        }
    }

    /// Approved by the host but not by this terminal: reverse (§1.3 reasons).
    fn approval_not_taken(&mut self, mut txn: Txn, mut result: Outcome, mac_bad: bool) {
        let (reason, local, why) = if mac_bad {
            (
                REVERSAL_REASON_MAC_BAD,
                LocalCode::ANSWER_MAC_BAD,
                Cause::ApprovalMacBad,
            )
        } else {
            (
                REVERSAL_REASON_TERMINAL_FAILED,
                LocalCode::PRINTER_FAILED,
                Cause::PrinterFailed,
            )
        };
        let mut ops = Vec::new();
        txn.state = TxnState::Failed;
        txn.code = Some(local.into());
        let ours = self
            .snap
            .reversal
            .as_ref()
            .is_some_and(|rev| rev.txn_id == txn.id);
        if let Some(rev) = self.snap.reversal.as_mut().filter(|_| ours) {
            rev.reason = reason;
            // §4.1: the reversal carries the authorization code it received.
            rev.auth_code = txn.auth_code.or(rev.auth_code);
            ops.push(JournalOp::Reversal(Some(rev.clone())));
        }
        ops.push(JournalOp::Txn(txn.clone()));
        ops.push(JournalOp::Failure {
            operation: txn.kind.slug().into(),
            amount_fen: txn.amount_fen,
            code: local.into(),
            cause: why.clone(),
        });
        self.journal(ops);
        self.notes.push(Note::Cause(why));
        self.notes.push(Note::Reversing {
            stan: txn.stan,
            reason,
        });
        result.code = local.into();
        result.reversal = if ours {
            ReversalState::Pending
        } else {
            ReversalState::None
        };
        result.txn = Some(txn);
        self.steps.clear();
        if mac_bad {
            // New keys first, so that the reversal's own MAC verifies at the host.
            self.steps.push_back(Step::SignIn);
        }
        if ours {
            self.steps.push_back(Step::Reversal);
        }
        self.result = Some(result);
    }

    /// A valid answer the terminal takes: it settles the reversal (§4.1) — unless its code
    /// leaves open whether money moved (the catalog says "check": 06, 96, A0, unknown codes
    /// ...): then the terminal reverses with reason 06 to be sure. A 94 is never reversed:
    /// the trace belongs to another request the host already has.
    fn main_settled(&mut self, mut txn: Txn, mut result: Outcome, code: ResponseCode) {
        let mut ops = Vec::new();
        let doubtful = !code.is_approved()
            && code != ResponseCode::DUPLICATE
            && Catalog::builtin().money_moved_of(Table::CupPos, code.as_str()) != MoneyMoved::No;
        if txn.reversal == ReversalState::Pending && doubtful {
            if let Some(rev) = &mut self.snap.reversal {
                rev.reason = REVERSAL_REASON_OTHER;
                ops.push(JournalOp::Reversal(Some(rev.clone())));
            }
            self.notes.push(Note::ReversingToBeSure {
                stan: txn.stan,
                code,
            });
            self.steps.clear();
            self.steps.push_back(Step::Reversal);
            result.reversal = ReversalState::Pending;
        } else if txn.reversal == ReversalState::Pending {
            txn.reversal = ReversalState::None;
            self.snap.reversal = None;
            ops.push(JournalOp::Reversal(None));
        }
        if code.is_approved() {
            txn.state = TxnState::Approved;
            result.approved = true;
            if matches!(txn.kind, K::Void | K::PreAuthCompletionVoid)
                && let Some(stan) = txn.original_stan
            {
                ops.push(JournalOp::Voided {
                    batch: txn.batch,
                    stan,
                });
            }
            if matches!(txn.kind, K::PreAuthCompletion | K::PreAuthCancel)
                && let Some(auth_code) = txn.auth_code
            {
                ops.push(JournalOp::PreAuthClosed { auth_code });
            }
        } else {
            txn.state = TxnState::Declined;
            ops.push(JournalOp::Failure {
                operation: txn.kind.slug().into(),
                amount_fen: txn.amount_fen,
                code: code.into(),
                cause: Cause::Declined { code },
            });
            self.after_decline(code);
        }
        ops.push(JournalOp::Txn(txn.clone()));
        self.journal(ops);
        result.txn = Some(txn);
        self.result = Some(result);
    }

    /// What a decline makes the terminal do by itself (catalog classes: C and D codes are
    /// never retried; keys and batch problems are fixed by signing in again).
    fn after_decline(&mut self, code: ResponseCode) {
        match code {
            ResponseCode::BATCH_MISMATCH
            | ResponseCode::MAC_ERROR
            | ResponseCode::PIN_FORMAT_ERROR => {
                self.notes.push(Note::SigningInAgain);
                self.push_sign_in();
            }
            ResponseCode::DUPLICATE => self.notes.push(Note::TraceAlreadyKnown),
            _ => {
                if matches!(class_of(code), Class::C | Class::D | Class::E) {
                    self.notes.push(Note::NotRetried);
                }
            }
        }
    }

    fn reversal_answered(&mut self, code: ResponseCode) {
        let Some(rev) = self.snap.reversal.clone() else {
            return;
        };
        // Keys problems only: a sign-in fixes them. A 77 is not retried: the reversal must
        // carry its original's batch, which no sign-in changes, and an original sent in a
        // batch the host no longer has was refused with 77 itself.
        if keys_trouble(code) && rev.attempts < self.cfg.reversal_attempts_max {
            // The host could not check the reversal (keys or batch): sign in, send it again.
            self.notes.push(Note::ReversalResent { code });
            self.steps.push_front(Step::Reversal);
            self.steps.push_front(Step::SignIn);
            return;
        }
        let not_now = matches!(
            code,
            ResponseCode::TERMINAL_NOT_REGISTERED
                | ResponseCode::INVALID_MERCHANT
                | ResponseCode::FORMAT_ERROR
        );
        if host_unable_now(code) || not_now {
            // The host could not process it now (nothing was reversed): try again later.
            self.reversal_missed(Cause::HostAnswered { code }, false);
            return;
        }
        self.snap.reversal = None;
        let state = if code.is_approved() {
            ReversalState::Done
        } else {
            ReversalState::Failed
        };
        let mut ops = vec![
            JournalOp::Reversal(None),
            JournalOp::ReversalEnded {
                txn_id: rev.txn_id,
                state,
            },
        ];
        if state == ReversalState::Failed {
            ops.push(JournalOp::Failure {
                operation: "reversal".into(),
                amount_fen: rev.amount_fen,
                code: LocalCode::REVERSAL_FAILED.into(),
                cause: Cause::ReversalRefused {
                    stan: rev.stan,
                    code,
                },
            });
        }
        self.journal(ops);
        self.notes.push(match state {
            ReversalState::Done => Note::ReversalDone { stan: rev.stan },
            _ => Note::ReversalRefused {
                stan: rev.stan,
                code,
            },
        });
        if let Some(result) = &mut self.result
            && result.txn.as_ref().is_some_and(|t| t.id == rev.txn_id)
        {
            result.reversal = state;
            if let Some(t) = &mut result.txn {
                t.reversal = state;
            }
        }
    }

    /// The pending reversal did not get through (no answer, not sent, or a host that could
    /// not process it): it stays pending, or is given up once its attempts are used.
    fn reversal_missed(&mut self, why: Cause, not_sent: bool) {
        let Some(mut rev) = self.snap.reversal.clone() else {
            return;
        };
        if not_sent {
            rev.attempts = rev.attempts.saturating_sub(1);
        } else if rev.attempts >= self.cfg.reversal_attempts_max {
            self.give_up_reversal(&rev, why);
            return; // the operation goes on: the reversal is now the acquirer's case
        }
        self.snap.reversal = Some(rev.clone());
        self.journal(vec![JournalOp::Reversal(Some(rev.clone()))]);
        let ours = self
            .result
            .as_ref()
            .and_then(|o| o.txn.as_ref())
            .is_some_and(|t| t.id == rev.txn_id);
        if ours {
            let mut result = self
                .result
                .take()
                .unwrap_or_else(|| unreachable!("checked"));
            result.notes.push(Note::ReversalNotThrough { cause: why });
            self.finish(result);
        } else {
            self.finish(outcome(
                "transaction",
                LocalCode::REVERSAL_WAITING,
                vec![Note::ReversalWaiting {
                    stan: rev.stan,
                    cause: why,
                }],
            ));
        }
    }

    fn give_up_reversal(&mut self, rev: &PendingReversal, why: Cause) {
        self.snap.reversal = None;
        self.journal(vec![
            JournalOp::Reversal(None),
            JournalOp::ReversalEnded {
                txn_id: rev.txn_id,
                state: ReversalState::Failed,
            },
            JournalOp::Failure {
                operation: "reversal".into(),
                amount_fen: rev.amount_fen,
                code: LocalCode::REVERSAL_FAILED.into(),
                cause: Cause::ReversalGaveUp {
                    stan: rev.stan,
                    attempts: rev.attempts,
                    last: Box::new(why),
                },
            },
        ]);
        self.notes.push(Note::ReversalGaveUp { stan: rev.stan });
        if let Some(result) = &mut self.result
            && result.txn.as_ref().is_some_and(|t| t.id == rev.txn_id)
        {
            result.reversal = ReversalState::Failed;
            if let Some(t) = &mut result.txn {
                t.reversal = ReversalState::Failed;
            }
        }
    }

    fn advice_answered(&mut self, r: &Response, a: &Answer, code: ResponseCode) {
        if self.snap.advices.is_empty() {
            return;
        }
        let keys_or_batch = keys_trouble(code) || code == ResponseCode::BATCH_MISMATCH;
        if keys_or_batch || host_unable_now(code) {
            // The host could not take it now: it stays stored (after a sign-in if the keys
            // or the batch were the trouble).
            self.advice_missed(Cause::HostAnswered { code }, code.into());
            if keys_or_batch {
                self.push_sign_in();
            }
            return;
        }
        let advice = self.snap.advices.remove(0);
        let approved = code.is_approved();
        let txn = Txn {
            code: Some(code.into()),
            rrn: a.rrn,
            auth_code: a.auth_code,
            host_date: r.field(13).map(str::to_owned),
            host_time: r.field(12).map(str::to_owned),
            state: if approved {
                TxnState::Approved
            } else {
                TxnState::Declined
            },
            ..self.txn_of_advice(&advice)
        };
        let mut ops = vec![
            JournalOp::AdviceDone {
                txn_id: advice.txn_id,
            },
            JournalOp::Txn(txn.clone()),
        ];
        if !approved {
            ops.push(JournalOp::Failure {
                operation: advice.kind.slug().into(),
                amount_fen: Some(advice.amount_fen),
                code: code.into(),
                cause: Cause::AdviceDeclined { code },
            });
        }
        self.journal(ops);
        if self.current_advice == Some(advice.txn_id) {
            if !approved {
                self.after_decline(code);
            }
            self.result = Some(Outcome {
                approved,
                txn: Some(txn),
                ..outcome(advice.kind.slug(), code, vec![])
            });
        } else {
            self.notes.push(Note::AdviceDelivered {
                kind: advice.kind,
                stan: advice.stan,
                code,
            });
        }
        if !self.snap.advices.is_empty() {
            self.steps.push_front(Step::Advices);
        }
    }

    /// The first stored advice did not get through: it stays queued (its attempt counted).
    /// The refund this operation asked for is reported stored; a settlement stops (§4.4
    /// wants every advice delivered before the totals); other operations go on.
    fn advice_missed(&mut self, why: Cause, code: Code) {
        self.notes.push(Note::AdviceNotDelivered { cause: why });
        let settling = self.flushing;
        if let Some(id) = self.current_advice {
            let txn = self
                .snap
                .advices
                .iter()
                .find(|a| a.txn_id == id)
                .map(|a| self.txn_of_advice(a));
            let op = txn.as_ref().map_or("refund", |t| t.kind.slug());
            self.finish(Outcome {
                txn,
                ..outcome(op, code, vec![Note::AdviceStored])
            });
        } else if settling {
            self.finish(outcome(
                "settle",
                code,
                vec![Note::AdvicesBeforeSettlement, Note::SettleAgain],
            ));
        }
    }

    fn txn_of_advice(&self, a: &Advice) -> Txn {
        Txn {
            id: a.txn_id,
            kind: a.kind,
            batch: a.batch,
            stan: a.stan,
            amount_fen: Some(a.amount_fen),
            card: Some(a.card.clone()),
            rrn: None,
            auth_code: None,
            code: None,
            state: TxnState::Queued,
            reversal: ReversalState::None,
            original_stan: None,
            original_rrn: Some(a.rrn),
            original_date: Some(a.original_date.clone()),
            host_date: None,
            host_time: None,
            time_ms: self.now_ms,
        }
    }

    fn signed_in(&mut self, r: &Response, code: ResponseCode) {
        if !code.is_approved() {
            self.finish(outcome("sign-in", code, vec![Note::SignInRefused]));
            return;
        }
        let keys = r
            .field(62)
            .and_then(|f| hex::decode(f).ok())
            .ok_or_else(|| "no keys in field 62".to_owned())
            .and_then(|f62| {
                parse_field62(KeyLayout::Double, &self.cfg.tmk, &f62).map_err(|e| e.to_string())
            });
        let keys = match keys {
            Ok(k) => k,
            Err(e) => {
                self.finish(outcome(
                    "sign-in",
                    LocalCode::KEYS_OR_DATA,
                    vec![Note::KeysUnloadable { detail: e }],
                ));
                return;
            }
        };
        if let Some(batch) = r
            .field(60)
            .and_then(|f| f.get(2..8))
            .and_then(|b| b.parse::<u32>().ok())
            && batch != self.snap.batch
        {
            self.snap.batch = batch;
            self.snap.batch_txns = 0;
        }
        let stored = (
            keys.pik.dangerous_expose().to_vec(),
            keys.mak.dangerous_expose().to_vec(),
        );
        self.snap.keys = Some(keys);
        self.journal(vec![
            JournalOp::Keys(Some(stored)),
            self.counters(),
            JournalOp::Maintenance {
                event: "sign-in".into(),
                detail: format!("working keys loaded, batch {:06}", self.snap.batch),
            },
        ]);
        if self.result.is_none() {
            self.result = Some(Outcome {
                approved: true,
                ..outcome(
                    "sign-in",
                    ResponseCode::APPROVED,
                    vec![Note::BatchOpen {
                        batch: self.snap.batch,
                    }],
                )
            });
        }
    }

    /// The request in flight got no valid answer in time, or never left (`not_sent`).
    fn no_answer(&mut self, why: Cause, local: LocalCode, not_sent: bool) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        match flight.step {
            Step::Main(mut txn, _) => {
                let mut ops = Vec::new();
                txn.code = Some(local.into());
                txn.state = TxnState::Failed;
                let mut result = outcome(txn.kind.slug(), local, vec![Note::Cause(why.clone())]);
                self.steps.clear();
                if txn.reversal == ReversalState::Pending {
                    if not_sent {
                        // It never left the terminal: nothing to reverse.
                        txn.reversal = ReversalState::None;
                        self.snap.reversal = None;
                        ops.push(JournalOp::Reversal(None));
                    } else {
                        self.notes.push(Note::Reversing {
                            stan: txn.stan,
                            reason: REVERSAL_REASON_NO_ANSWER,
                        });
                        self.steps.push_back(Step::Reversal);
                        result.reversal = ReversalState::Pending;
                    }
                }
                ops.push(JournalOp::Txn((*txn).clone()));
                ops.push(JournalOp::Failure {
                    operation: txn.kind.slug().into(),
                    amount_fen: txn.amount_fen,
                    code: local.into(),
                    cause: why,
                });
                self.journal(ops);
                result.txn = Some(*txn);
                self.result = Some(result);
            }
            Step::Reversal => self.reversal_missed(why, not_sent),
            Step::Advices => self.advice_missed(why, local.into()),
            Step::SignIn => self.finish(outcome("sign-in", local, vec![Note::Cause(why)])),
            Step::SignOff => self.finish(outcome("sign-off", local, vec![Note::Cause(why)])),
            Step::Echo => self.finish(outcome("echo", local, vec![Note::Cause(why)])),
            Step::Settle { .. } | Step::Upload { .. } | Step::BatchEnd { .. } => self.finish(
                outcome("settle", local, vec![Note::Cause(why), Note::SettleAgain]),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_54_reads_as_a_balance_on_the_credit_or_the_debit_side() {
        let credit = Balance::of_field54("1002156C000000012345").unwrap();
        assert_eq!(credit.amount_fen, AmountFen::new(12345).unwrap());
        assert_eq!(credit.fen_signed(), 12345);
        let debit = Balance::of_field54("1002156D000000000100").unwrap();
        assert!(debit.overdrawn);
        assert_eq!(debit.fen_signed(), -100);
        let largest = Balance::of_field54("1002156D999999999999").unwrap();
        assert_eq!(largest.fen_signed(), -999_999_999_999);
    }

    #[test]
    fn field_54_of_another_shape_is_no_balance() {
        for bad in [
            "",
            "1002156C",
            "1002156C00000001234",
            "1002156X000000012345",
            "1002156C00000001234x",
            "1002156C-00000001234",
        ] {
            assert_eq!(Balance::of_field54(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn totals_refuse_to_pass_twelve_digits_of_fen() {
        let mut totals = Totals::ZERO;
        totals.add_debit(AmountFen::MAX).unwrap();
        assert_eq!(
            totals.add_debit(AmountFen::new(1).unwrap()),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(totals.debit_fen, AmountFen::MAX, "left as it was");
        assert_eq!(totals.debit_count, 1, "nor counted");
        totals.add_credit(AmountFen::new(5).unwrap()).unwrap();
        assert_eq!((totals.credit_fen.fen(), totals.credit_count), (5, 1));
    }
}
