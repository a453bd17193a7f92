//! What reconciliation reads from each side and what it finds.

use poskit_domain::{AmountFen, ResponseCode, Rrn, Tid};

use crate::merchants::MerchantRef;
use serde::{Deserialize, Serialize};

/// The CUP transaction key of a message the acquirer sent the switch (`spec/cup-clearing.md`
/// §5): acquiring institution, the acquirer's STAN for it and its transmission time. Kept
/// as numbers (a day's key set of ten million fits in memory); ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwitchKey {
    /// MMDDhhmmss as a number.
    pub time: u32,
    pub stan: u32,
    /// The acquiring institution's code as a number.
    pub acquirer: u64,
}

impl SwitchKey {
    /// From the texts of the files and the ledger; `None` when one is not digits.
    pub fn parse(acquirer: &str, stan: u32, time: &str) -> Option<SwitchKey> {
        SwitchKey::parse_split(acquirer, stan, time, "")
    }

    /// [`SwitchKey::parse`] of a time given in two parts (the ledger's MMDD and hhmmss),
    /// without joining them.
    pub fn parse_split(
        acquirer: &str,
        stan: u32,
        time_head: &str,
        time_tail: &str,
    ) -> Option<SwitchKey> {
        let time = [time_head.as_bytes(), time_tail.as_bytes()];
        SwitchKey::of_digits(acquirer.trim().as_bytes(), stan, time)
    }

    /// From the digits of the acquirer (trimmed) and of the time (in two parts put end to
    /// end); `None` when one is not digits.
    pub fn of_digits(acquirer: &[u8], stan: u32, time: [&[u8]; 2]) -> Option<SwitchKey> {
        Some(SwitchKey {
            time: u32::try_from(digits_value(time, 10)?).ok()?,
            stan,
            acquirer: digits_value([acquirer, b""], 11)?,
        })
    }

    /// The key as one number, in the same order as the key (time, STAN, acquirer): what
    /// the sorts compare, cheaper than the three fields.
    pub(crate) fn ordinal(&self) -> u128 {
        (u128::from(self.time) << 96) | (u128::from(self.stan) << 64) | u128::from(self.acquirer)
    }

    /// `acquirer/stan/MMDDhhmmss`, the form break ids and reports use.
    pub fn text(&self) -> String {
        format!("{}/{:06}/{:010}", self.acquirer, self.stan, self.time)
    }
}

/// The value of the digits of `parts` put end to end: `None` when there are none, more
/// than `max`, or anything else.
fn digits_value(parts: [&[u8]; 2], max: usize) -> Option<u64> {
    let len = parts[0].len() + parts[1].len();
    if len == 0 || len > max {
        return None;
    }
    parts
        .iter()
        .flat_map(|p| p.iter().copied())
        .try_fold(0u64, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
}

/// A card number masked (first six, last four), kept in eight bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskedPan {
    first6: u32,
    last4: u16,
    len: u8,
}

impl MaskedPan {
    /// From a masked (`622202******1234`) or full number.
    pub fn parse(text: &str) -> Option<MaskedPan> {
        MaskedPan::of_bytes(text.trim().as_bytes())
    }

    /// [`MaskedPan::parse`] of a number already trimmed, as bytes.
    pub fn of_bytes(t: &[u8]) -> Option<MaskedPan> {
        if !(13..=19).contains(&t.len()) {
            return None;
        }
        let num = |b: &[u8]| -> Option<u32> {
            b.iter().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        Some(MaskedPan {
            first6: num(&t[..6])?,
            last4: u16::try_from(num(&t[t.len() - 4..])?).ok()?,
            len: t.len() as u8,
        })
    }

    pub fn last4(&self) -> u16 {
        self.last4
    }
}

impl std::fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stars = usize::from(self.len).saturating_sub(10);
        write!(
            f,
            "{:06}{}{:04}",
            self.first6,
            "*".repeat(stars),
            self.last4
        )
    }
}

/// Where a host transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Approved, and still in force (a voided original counts here: its void is a message
    /// of its own).
    Approved,
    Declined,
    Reversed,
    /// Still being processed. poskit's host never leaves one (it commits each answer
    /// whole); a ledger that does gets classes D and F for it.
    Pending,
}

/// Money direction of a cleared message, from the cardholder's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sale, completion: the card pays.
    Debit,
    /// Void, refund: the card is paid back.
    Credit,
}

/// A host ledger transaction that moves money, as reconciliation needs it (80 bytes: a day
/// of ten million is held whole). Its RRN is read back for the breaks only.
#[derive(Clone, Copy, Debug)]
pub struct HostTxn {
    pub id: i64,
    /// `None` for an on-us transaction (never at the switch).
    pub key: Option<SwitchKey>,
    pub direction: Direction,
    pub tid: Tid,
    /// In the day's [`Merchants`](crate::merchants::Merchants).
    pub mid: MerchantRef,
    pub batch: u32,
    pub stan: u32,
    pub amount: AmountFen,
    pub pan: MaskedPan,
    pub code: ResponseCode,
    pub state: HostState,
    pub created_ms: i64,
}

impl HostTxn {
    /// A transaction of nobody's, to fill a vector before the rows are read into it.
    pub(crate) fn placeholder() -> HostTxn {
        HostTxn {
            id: 0,
            key: None,
            direction: Direction::Debit,
            tid: Tid::parse("00000000").unwrap_or_else(|_| unreachable!("eight digits")),
            mid: MerchantRef::default(),
            batch: 0,
            stan: 0,
            amount: AmountFen::ZERO,
            pan: MaskedPan {
                first6: 0,
                last4: 0,
                len: 0,
            },
            code: ResponseCode::APPROVED,
            state: HostState::Declined,
            created_ms: 0,
        }
    }
}

/// A transaction record of the switch's file (ACOMA), as reconciliation needs it (72
/// bytes).
#[derive(Clone, Copy, Debug)]
pub struct SwitchTxn {
    /// Line in its file (1-based).
    pub line: u32,
    pub key: SwitchKey,
    pub direction: Direction,
    pub amount: AmountFen,
    pub pan: MaskedPan,
    pub tid: Tid,
    /// In the day's [`Merchants`](crate::merchants::Merchants).
    pub mid: MerchantRef,
    pub rrn: Rrn,
    pub code: ResponseCode,
    /// The record is a reversal message (04xx), not an original.
    pub is_reversal: bool,
    /// ACOMA 37: the switch reversed it.
    pub reversed: bool,
    /// ACOMA 38: voided.
    pub voided: bool,
}

/// A terminal's batch settlement as the host received it (0500 totals, 0320 details).
#[derive(Clone, Debug)]
pub struct Settlement {
    pub tid: Tid,
    pub batch: u32,
    pub terminal: Totals,
    pub host: Totals,
    pub balanced: bool,
    /// The batch end (0320 207/202) came: the batch is closed.
    pub closed: bool,
    pub uploads: Vec<Upload>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub debit_fen: u64,
    pub debit_count: u32,
    pub credit_fen: u64,
    pub credit_count: u32,
}

/// One detail of a batch upload.
#[derive(Clone, Debug, Serialize)]
pub struct Upload {
    pub stan: u32,
    pub pan_masked: String,
    pub amount_fen: u64,
}

/// A break class: the spec's A–G and the three poskit adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Class {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    #[serde(rename = "duplicate")]
    Duplicate,
    #[serde(rename = "batch_total")]
    BatchTotal,
    #[serde(rename = "one_sided_reversal")]
    OneSidedReversal,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::A,
        Class::B,
        Class::C,
        Class::D,
        Class::E,
        Class::F,
        Class::G,
        Class::Duplicate,
        Class::BatchTotal,
        Class::OneSidedReversal,
    ];

    /// The name in the JSON contract and the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::A => "A",
            Class::B => "B",
            Class::C => "C",
            Class::D => "D",
            Class::E => "E",
            Class::F => "F",
            Class::G => "G",
            Class::Duplicate => "duplicate",
            Class::BatchTotal => "batch_total",
            Class::OneSidedReversal => "one_sided_reversal",
        }
    }

    pub fn parse(text: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// What is done about a break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A credit adjustment (E32) gives the cardholder the money back: posted once.
    CreditAdjustment,
    /// The acquirer sends the switch a reversal (or a presentment) for it.
    ReversalToSwitch,
    /// Near the cut-off: the next clearing day's file should have it.
    AwaitNextDay,
    /// Someone must look at it.
    OpenItem,
}

/// A break's state across runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Persisting,
    Resolved,
}

/// One break: one record, or one group of duplicates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Break {
    /// Stable across runs: the class, the clearing day and the key.
    pub id: String,
    pub class: Class,
    pub status: Status,
    pub priority: u8,
    pub amount_fen: u64,
    pub fields_differing: Vec<String>,
    pub records: Records,
    pub action: Action,
    /// How it was resolved, when it was.
    pub resolution: Option<String>,
    /// The clearing day (YYYYMMDD) it was found on.
    pub found_on: String,
    /// What to do, from the catalog (`poskit_codes::advice`).
    pub advice: Advice,
}

/// A break class's advice in both languages.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Advice {
    pub zh: String,
    pub en: String,
}

impl Advice {
    pub fn of(class: Class) -> Advice {
        poskit_codes::advice::break_advice(class.as_str()).map_or_else(Advice::default, |a| {
            Advice {
                zh: a.action_zh.clone(),
                en: a.action_en.clone(),
            }
        })
    }
}

/// Each side's record of a break (absent: `None`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Records {
    pub terminal: Option<serde_json::Value>,
    pub host: Option<serde_json::Value>,
    pub switch: Option<serde_json::Value>,
}

/// The clearing day a break was found on (its `found_on`, YYYYMMDD), as days since 1970.
pub fn day_of_break(b: &Break) -> Option<i64> {
    poskit_domain::calendar::day_of_yyyymmdd(&b.found_on)
}

impl Break {
    /// The merchant its records name (the host's, else the switch's); `None` for a batch
    /// total, which names its terminal only.
    pub fn mid(&self) -> Option<&str> {
        [&self.records.host, &self.records.switch]
            .into_iter()
            .flatten()
            .find_map(|r| r["mid"].as_str())
    }

    /// The terminal its records name.
    pub fn tid(&self) -> Option<&str> {
        [
            &self.records.host,
            &self.records.switch,
            &self.records.terminal,
        ]
        .into_iter()
        .flatten()
        .find_map(|r| r["tid"].as_str())
    }
}
