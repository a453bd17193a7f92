//! The built-in demo data set: a card or terminal for every scenario a terminal developer
//! wants to provoke, with what the host answers. `poskit host --demo` loads it;
//! `poskit host demo-data --json` prints it for terminals and tests.
//!
//! Test data only: the card numbers are made up (Luhn-valid), the keys are test keys.

use poskit_domain::{AmountFen, Mid, Pan, ResponseCode, Tid, TransactionKind};
use poskit_security::{Pin, SecretKey};

use crate::model::{
    Card, CardStatus, CardType, DataSet, ExternalIssuer, Institution, Merchant, MerchantStatus,
    Terminal, TerminalStatus,
};
use crate::pinhash::PinHasher;

/// The demo PIN of every demo card.
pub const DEMO_PIN: &str = "123456";
/// Every demo terminal's TMK (double-length test key).
pub const DEMO_TMK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// BIN of the host's own (closed-loop) demo cards.
pub const OWN_BIN: &str = "622202";
/// BIN of the demo external issuer that answers quickly.
pub const EXTERNAL_BIN: &str = "621700";
/// BIN of the demo external issuer that is too slow (98).
pub const SLOW_BIN: &str = "621701";
/// BIN of the demo external issuer that is down (91).
pub const DOWN_BIN: &str = "621702";
/// Latency of the slow issuer; above any sensible issuer timeout.
pub const SLOW_ISSUER_LATENCY_MS: u32 = 30_000;
/// The opening balance of ordinary demo cards: 10 000.00 yuan.
pub const DEMO_BALANCE_FEN: u64 = 1_000_000;

/// One named scenario: which card and terminal to use and what the host answers.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    /// What to do: a sale of 1.00 yuan unless said otherwise.
    pub operation: TransactionKind,
    pub amount_fen: u64,
    pub pan: String,
    pub expiry: String,
    pub pin: &'static str,
    pub tid: String,
    pub mid: String,
    pub tmk: &'static str,
    pub expected: ResponseCode,
}

impl Scenario {
    /// Track 2 as the codec writes it: PAN '=' YYMM, service code 101, discretionary data.
    pub fn track2(&self) -> String {
        format!("{}={}1010000000000", self.pan, self.expiry)
    }
}

/// A Luhn-valid card number from a prefix and a serial.
pub fn demo_pan(bin: &str, serial: u32) -> String {
    let body = format!("{bin}{serial:012}");
    let check = poskit_domain::luhn_check_digit(&body).expect("a BIN and a serial are digits");
    format!("{body}{check}")
}

/// The demo's main merchant (its fleet of terminals 10100001.. is there).
pub const MID_MAIN: &str = "898310048160001";
const MID_INACTIVE: &str = "898310048160002";
const MID_BLACKLISTED: &str = "898310048160003";
const MID_LIMITED: &str = "898310048160004";
const TID_MAIN: &str = "10000001";
const TID_SECOND: &str = "10000002";
const TID_INACTIVE_MERCHANT: &str = "10000003";
const TID_BLACKLISTED: &str = "10000004";
const TID_LIMITED: &str = "10000005";
const TID_NO_REFUNDS: &str = "10000006";
/// A terminal the host does not know (97).
pub const TID_UNREGISTERED: &str = "99999999";

struct CardSpec {
    name: &'static str,
    description: &'static str,
    bin: &'static str,
    serial: u32,
    status: CardStatus,
    expiry: &'static str,
    balance_fen: u64,
    pin_tries_used: u8,
    daily_count_max: Option<u32>,
    permitted: Option<&'static [TransactionKind]>,
    operation: TransactionKind,
    amount_fen: u64,
    tid: &'static str,
    mid: &'static str,
    expected: ResponseCode,
}

const fn card(
    name: &'static str,
    description: &'static str,
    bin: &'static str,
    serial: u32,
    expected: ResponseCode,
) -> CardSpec {
    CardSpec {
        name,
        description,
        bin,
        serial,
        status: CardStatus::Active,
        expiry: "3012",
        balance_fen: DEMO_BALANCE_FEN,
        pin_tries_used: 0,
        daily_count_max: None,
        permitted: None,
        operation: TransactionKind::Sale,
        amount_fen: 100,
        tid: TID_MAIN,
        mid: MID_MAIN,
        expected,
    }
}

fn specs() -> Vec<CardSpec> {
    use ResponseCode as Rc;
    use TransactionKind as K;
    vec![
        card(
            "approved",
            "an ordinary card with 10 000.00 yuan: approved",
            OWN_BIN,
            1,
            Rc::APPROVED,
        ),
        CardSpec {
            balance_fen: 100,
            amount_fen: 500,
            ..card(
                "insufficient_funds",
                "1.00 yuan on the card, a sale of 5.00: 51",
                OWN_BIN,
                2,
                Rc::INSUFFICIENT_FUNDS,
            )
        },
        CardSpec {
            status: CardStatus::Lost,
            ..card("lost", "reported lost: 41", OWN_BIN, 3, Rc::LOST_CARD)
        },
        CardSpec {
            status: CardStatus::Stolen,
            ..card("stolen", "reported stolen: 43", OWN_BIN, 4, Rc::STOLEN_CARD)
        },
        CardSpec {
            status: CardStatus::PickUp,
            ..card(
                "pick_up",
                "the issuer asks to retain the card: 04",
                OWN_BIN,
                5,
                Rc::PICK_UP,
            )
        },
        CardSpec {
            expiry: "2001",
            ..card(
                "expired",
                "expired January 2020: 54",
                OWN_BIN,
                6,
                Rc::EXPIRED_CARD,
            )
        },
        CardSpec {
            status: CardStatus::Restricted,
            ..card(
                "restricted",
                "restricted by its issuer: 62",
                OWN_BIN,
                7,
                Rc::RESTRICTED_CARD,
            )
        },
        CardSpec {
            pin_tries_used: 3,
            ..card(
                "pin_tries_exceeded",
                "three wrong PINs already: 75",
                OWN_BIN,
                8,
                Rc::PIN_TRIES_EXCEEDED,
            )
        },
        CardSpec {
            permitted: Some(&[K::BalanceInquiry]),
            ..card(
                "not_permitted",
                "may only ask its balance; a sale is 57",
                OWN_BIN,
                9,
                Rc::NOT_PERMITTED_TO_CARD,
            )
        },
        CardSpec {
            daily_count_max: Some(1),
            ..card(
                "frequency_limit",
                "one payment a day; the second sale of the day is 65",
                OWN_BIN,
                10,
                Rc::APPROVED,
            )
        },
        CardSpec {
            amount_fen: 600_000,
            tid: TID_LIMITED,
            mid: MID_LIMITED,
            ..card(
                "over_limit",
                "a 6 000.00 sale at a merchant with a 5 000.00 per-transaction limit: 61",
                OWN_BIN,
                11,
                Rc::EXCEEDS_AMOUNT_LIMIT,
            )
        },
        CardSpec {
            tid: TID_INACTIVE_MERCHANT,
            mid: MID_INACTIVE,
            ..card(
                "inactive_merchant",
                "any card at an inactive merchant: 03",
                OWN_BIN,
                12,
                Rc::INVALID_MERCHANT,
            )
        },
        CardSpec {
            tid: TID_BLACKLISTED,
            mid: MID_BLACKLISTED,
            ..card(
                "blacklisted_merchant",
                "any card at a blacklisted merchant: 03",
                OWN_BIN,
                13,
                Rc::INVALID_MERCHANT,
            )
        },
        CardSpec {
            tid: TID_UNREGISTERED,
            ..card(
                "unregistered_terminal",
                "a terminal the host does not know: 97",
                OWN_BIN,
                14,
                Rc::TERMINAL_NOT_REGISTERED,
            )
        },
        CardSpec {
            operation: K::Refund,
            tid: TID_NO_REFUNDS,
            ..card(
                "terminal_not_permitted",
                "a terminal that may not refund: 58",
                OWN_BIN,
                15,
                Rc::NOT_PERMITTED_TO_TERMINAL,
            )
        },
        card(
            "external_issuer",
            "a card of an external issuer that answers in 20 ms: approved",
            EXTERNAL_BIN,
            1,
            Rc::APPROVED,
        ),
        card(
            "issuer_timeout",
            "a card of an issuer slower than the host waits: 98",
            SLOW_BIN,
            1,
            Rc::ISSUER_TIMEOUT,
        ),
        card(
            "issuer_down",
            "a card of an issuer that is down: 91",
            DOWN_BIN,
            1,
            Rc::ISSUER_INOPERATIVE,
        ),
        card(
            "second_card",
            "another ordinary card (refunds, voids, pre-authorizations)",
            OWN_BIN,
            16,
            Rc::APPROVED,
        ),
    ]
}

/// The named scenarios, in a stable order.
pub fn scenarios() -> Vec<Scenario> {
    specs()
        .into_iter()
        .map(|s| Scenario {
            name: s.name,
            description: s.description,
            operation: s.operation,
            amount_fen: s.amount_fen,
            pan: demo_pan(s.bin, s.serial),
            expiry: s.expiry.to_owned(),
            pin: DEMO_PIN,
            tid: s.tid.to_owned(),
            mid: s.mid.to_owned(),
            tmk: DEMO_TMK,
            expected: s.expected,
        })
        .collect()
}

/// The scenario of this name.
pub fn scenario(name: &str) -> Option<Scenario> {
    scenarios().into_iter().find(|s| s.name == name)
}

/// Terminals of the fleet used by simulations: `10100001`, `10100002`, ... at the main
/// merchant.
pub const FLEET_TERMINALS: u32 = 64;

pub fn fleet_tid(index: u32) -> String {
    format!("{:08}", 10_100_001 + index)
}

/// The demo data set.
pub fn data_set(hasher: &PinHasher) -> DataSet {
    let key = |hex: &str| {
        SecretKey::from_hex(hex).unwrap_or_else(|_| unreachable!("demo keys are valid hex"))
    };
    let mid =
        |m: &str| Mid::parse(m).unwrap_or_else(|_| unreachable!("demo MIDs are 15 characters"));
    let tid =
        |t: &str| Tid::parse(t).unwrap_or_else(|_| unreachable!("demo TIDs are 8 characters"));
    let amount = |fen: u64| AmountFen::new(fen).unwrap_or(AmountFen::ZERO);
    let pin = Pin::new(DEMO_PIN).unwrap_or_else(|_| unreachable!("the demo PIN is 6 digits"));
    let institutions = vec![
        Institution {
            code: "01020000".into(),
            name: "poskit demo bank".into(),
            bins: vec![OWN_BIN.into()],
            external: None,
        },
        Institution {
            code: "01030000".into(),
            name: "demo external bank".into(),
            bins: vec![EXTERNAL_BIN.into()],
            external: Some(ExternalIssuer {
                latency_ms: 20,
                down: false,
            }),
        },
        Institution {
            code: "01040000".into(),
            name: "demo slow bank".into(),
            bins: vec![SLOW_BIN.into()],
            external: Some(ExternalIssuer {
                latency_ms: SLOW_ISSUER_LATENCY_MS,
                down: false,
            }),
        },
        Institution {
            code: "01050000".into(),
            name: "demo bank that is down".into(),
            bins: vec![DOWN_BIN.into()],
            external: Some(ExternalIssuer {
                latency_ms: 0,
                down: true,
            }),
        },
    ];
    let merchant = |m: &str, name: &str, status, txn_limit: Option<u64>| Merchant {
        mid: mid(m),
        name: name.into(),
        mcc: "5411".into(),
        status,
        txn_limit_fen: txn_limit.map(amount),
        daily_limit_fen: None,
    };
    let merchants = vec![
        merchant(
            MID_MAIN,
            "poskit demo grocery",
            MerchantStatus::Active,
            None,
        ),
        merchant(
            MID_INACTIVE,
            "closed-down shop",
            MerchantStatus::Inactive,
            None,
        ),
        merchant(
            MID_BLACKLISTED,
            "blacklisted shop",
            MerchantStatus::Blacklisted,
            None,
        ),
        merchant(
            MID_LIMITED,
            "kiosk with a 5 000.00 limit",
            MerchantStatus::Active,
            Some(500_000),
        ),
    ];
    let terminal = |t: &str, m: &str, permitted: Option<Vec<TransactionKind>>| Terminal {
        tid: tid(t),
        mid: mid(m),
        status: TerminalStatus::Active,
        tmk: key(DEMO_TMK),
        txn_limit_fen: None,
        permitted,
    };
    let mut terminals = vec![
        terminal(TID_MAIN, MID_MAIN, None),
        terminal(TID_SECOND, MID_MAIN, None),
        terminal(TID_INACTIVE_MERCHANT, MID_INACTIVE, None),
        terminal(TID_BLACKLISTED, MID_BLACKLISTED, None),
        terminal(TID_LIMITED, MID_LIMITED, None),
        terminal(
            TID_NO_REFUNDS,
            MID_MAIN,
            Some(
                TransactionKind::all()
                    .filter(|k| *k != TransactionKind::Refund)
                    .collect(),
            ),
        ),
    ];
    terminals.extend((0..FLEET_TERMINALS).map(|i| terminal(&fleet_tid(i), MID_MAIN, None)));
    let mut cards: Vec<Card> = specs()
        .into_iter()
        .map(|s| {
            let pan = Pan::parse(&demo_pan(s.bin, s.serial))
                .unwrap_or_else(|_| unreachable!("demo PANs are 19 digits"));
            Card {
                pin_hash: Some(hasher.hash(pan.digits(), &pin)),
                // The cards of other banks are credit cards, the demo bank's debit cards.
                card_type: if s.bin == OWN_BIN {
                    CardType::Debit
                } else {
                    CardType::Credit
                },
                pan,
                expiry: s.expiry.into(),
                status: s.status,
                pin_tries_max: 3,
                pin_tries_used: s.pin_tries_used,
                balance_fen: amount(s.balance_fen),
                daily_count_max: s.daily_count_max,
                permitted: s.permitted.map(<[TransactionKind]>::to_vec),
                label: format!("demo: {}", s.name),
            }
        })
        .collect();
    // Ordinary cards for fleet simulations.
    cards.extend((0..FLEET_CARDS).map(|i| {
        let pan =
            Pan::parse(&fleet_pan(i)).unwrap_or_else(|_| unreachable!("demo PANs are 19 digits"));
        Card {
            pin_hash: Some(hasher.hash(pan.digits(), &pin)),
            // Both kinds in the fleet: odd cards are credit cards.
            card_type: if i % 2 == 1 {
                CardType::Credit
            } else {
                CardType::Debit
            },
            pan,
            expiry: "3012".into(),
            status: CardStatus::Active,
            pin_tries_max: 3,
            pin_tries_used: 0,
            balance_fen: amount(DEMO_BALANCE_FEN),
            daily_count_max: None,
            permitted: None,
            label: format!("demo: fleet card {i}"),
        }
    }));
    DataSet {
        institutions,
        merchants,
        terminals,
        cards,
    }
}

/// Ordinary cards for fleet simulations.
pub const FLEET_CARDS: u32 = 256;

pub fn fleet_pan(index: u32) -> String {
    demo_pan(OWN_BIN, 100_000 + index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinhash::PVK_BYTES;

    #[test]
    fn every_demo_card_number_is_luhn_valid_and_distinct() {
        let set = data_set(&PinHasher::from_key([0; PVK_BYTES]));
        let mut pans: Vec<_> = set
            .cards
            .iter()
            .map(|c| c.pan.digits().to_owned())
            .collect();
        assert!(set.cards.iter().all(|c| c.pan.luhn_ok()));
        pans.sort();
        pans.dedup();
        assert_eq!(pans.len(), set.cards.len());
    }

    #[test]
    fn every_scenario_names_a_card_of_the_data_set() {
        let set = data_set(&PinHasher::from_key([0; PVK_BYTES]));
        for s in scenarios() {
            assert!(
                set.cards.iter().any(|c| c.pan.digits() == s.pan),
                "{}",
                s.name
            );
            if s.tid != TID_UNREGISTERED {
                assert!(
                    set.terminals.iter().any(|t| t.tid.as_str() == s.tid),
                    "{}",
                    s.name
                );
            }
        }
        let names: Vec<_> = scenarios().iter().map(|s| s.name).collect();
        for required in [
            "approved",
            "insufficient_funds",
            "lost",
            "stolen",
            "pick_up",
            "expired",
            "restricted",
            "pin_tries_exceeded",
            "not_permitted",
            "inactive_merchant",
            "unregistered_terminal",
            "issuer_timeout",
            "issuer_down",
        ] {
            assert!(names.contains(&required), "{required}");
        }
    }
}
