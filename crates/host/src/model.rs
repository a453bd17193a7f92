//! The host's master data: institutions, merchants, terminals, cards and their accounts,
//! as they are imported (`poskit host import`) and kept in the store.

use poskit_domain::{AmountFen, Mid, Pan, Tid, TransactionKind};
use poskit_security::SecretKey;

/// Who issues a range of cards, and how the host reaches it.
#[derive(Clone, Debug)]
pub struct Institution {
    /// Eight digits (field 32 / 44 form): four of institution, four of region.
    pub code: String,
    pub name: String,
    /// BIN prefixes (leading digits of the PAN) this institution issues.
    pub bins: Vec<String>,
    /// `None`: the host is the issuer (closed-loop program). `Some`: an external issuer,
    /// answered by the issuer simulator inside the host.
    pub external: Option<ExternalIssuer>,
}

/// How the simulated external issuer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalIssuer {
    /// How long the issuer takes to answer.
    pub latency_ms: u32,
    /// The issuer is unreachable: requests get 91.
    pub down: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MerchantStatus {
    Active,
    Inactive,
    Blacklisted,
}

#[derive(Clone, Debug)]
pub struct Merchant {
    pub mid: Mid,
    pub name: String,
    /// Merchant category code, four digits.
    pub mcc: String,
    pub status: MerchantStatus,
    pub txn_limit_fen: Option<AmountFen>,
    pub daily_limit_fen: Option<AmountFen>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminalStatus {
    Active,
    Inactive,
}

#[derive(Clone, Debug)]
pub struct Terminal {
    pub tid: Tid,
    pub mid: Mid,
    pub status: TerminalStatus,
    /// Terminal master key: working keys go out wrapped under it.
    pub tmk: SecretKey,
    pub txn_limit_fen: Option<AmountFen>,
    /// Kinds this terminal may do; `None` = all.
    pub permitted: Option<Vec<TransactionKind>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardStatus {
    Active,
    Lost,
    Stolen,
    PickUp,
    Restricted,
}

/// Debit or credit: the dispute rules differ (a debit card's chargeback cannot be
/// represented nor charged back a second time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardType {
    Debit,
    Credit,
}

#[derive(Clone, Debug)]
pub struct Card {
    pub pan: Pan,
    pub card_type: CardType,
    /// YYMM.
    pub expiry: String,
    pub status: CardStatus,
    /// Keyed hash of the PIN (never the PIN); `None` = the card has no PIN.
    pub pin_hash: Option<String>,
    pub pin_tries_max: u8,
    /// Wrong PINs entered since the last right one (75 once it reaches the maximum).
    pub pin_tries_used: u8,
    /// Opening balance of the card's account.
    pub balance_fen: AmountFen,
    /// Approved debits per day (65 above it); `None` = no limit.
    pub daily_count_max: Option<u32>,
    /// Kinds this card may do; `None` = all.
    pub permitted: Option<Vec<TransactionKind>>,
    /// A name for people ("demo: lost card"); never the cardholder's.
    pub label: String,
}

macro_rules! status_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($name => Some($ty::$variant),)* _ => None }
            }

            pub const NAMES: &'static [&'static str] = &[$($name),*];
        }
    };
}

status_names!(MerchantStatus { Active => "active", Inactive => "inactive", Blacklisted => "blacklisted" });
status_names!(TerminalStatus { Active => "active", Inactive => "inactive" });
status_names!(CardType { Debit => "debit", Credit => "credit" });
status_names!(CardStatus {
    Active => "active",
    Lost => "lost",
    Stolen => "stolen",
    PickUp => "pick-up",
    Restricted => "restricted",
});

/// A whole data set, as imported.
#[derive(Clone, Debug, Default)]
pub struct DataSet {
    pub institutions: Vec<Institution>,
    pub merchants: Vec<Merchant>,
    pub terminals: Vec<Terminal>,
    pub cards: Vec<Card>,
}

/// Kinds as listed in data files: their slugs.
pub fn kinds_to_text(kinds: &Option<Vec<TransactionKind>>) -> Option<String> {
    kinds
        .as_ref()
        .map(|list| list.iter().map(|k| k.slug()).collect::<Vec<_>>().join(","))
}

/// The inverse of [`kinds_to_text`].
pub fn kinds_from_text(text: Option<&str>) -> Result<Option<Vec<TransactionKind>>, String> {
    let Some(text) = text else { return Ok(None) };
    text.split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            TransactionKind::from_slug(s).ok_or_else(|| format!("unknown transaction kind {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
