//! A shop's day: what the virtual terminals are asked to do, simulated or live.

use poskit_domain::AmountFen;
use poskit_domain::TransactionKind as K;
use poskit_domain::message::CardData;
use poskit_host::demo;
use poskit_security::Pin;
use poskit_terminal::engine::{Command, Txn};

use crate::knobs::Rng;

/// The cards one terminal's customers use (one is drawn per sale), and one whose PIN
/// its customers keep getting wrong.
pub struct Cards {
    pub own: Vec<String>,
    pub wrong_pin: String,
    /// A card of an external issuer (its requests go through the switch), used for one
    /// sale in four of the good-card sales.
    pub external: Option<String>,
}

/// An amount the workload picks (at most 200.00 yuan).
fn fen(value: u64) -> AmountFen {
    AmountFen::new(value).unwrap_or_else(|_| unreachable!("{value} fen is a small amount"))
}

fn track(pan: &str) -> CardData {
    CardData::Track2(format!("{pan}=30121010000000000"))
}

/// Good cards mostly, wrong PINs, lost, empty and expired cards, voids, balance inquiries,
/// pre-authorizations and their completions. `last_approved` gives the terminal's newest
/// approved transaction of a kind in its open batch.
pub fn choose(rng: &mut Rng, cards: &Cards, last_approved: impl Fn(K) -> Option<Txn>) -> Command {
    let pin = |p: &str| Pin::new(p).ok();
    let own_pan = cards.own[rng.below(cards.own.len() as u64) as usize].clone();
    let scenario = |name: &str| {
        demo::scenario(name)
            .map(|s| track(&s.pan))
            .unwrap_or_else(|| track(&own_pan))
    };
    // Everyday amounts: 1.00 to 200.00 yuan.
    let amount_fen = fen(100 + rng.below(19_900));
    let own = track(&own_pan);
    let good = || pin(demo::DEMO_PIN);
    match rng.below(100) {
        0..=59 => Command::Sale {
            card: match &cards.external {
                Some(pan) if rng.below(4) == 0 => track(pan),
                _ => own,
            },
            amount_fen,
            pin: good(),
        },
        60..=64 => Command::Sale {
            card: track(&cards.wrong_pin),
            amount_fen,
            pin: pin("000000"),
        },
        65..=67 => Command::Sale {
            card: scenario("lost"),
            amount_fen,
            pin: good(),
        },
        68..=69 => Command::Sale {
            card: scenario("insufficient_funds"),
            amount_fen: fen(500),
            pin: good(),
        },
        70..=71 => Command::Sale {
            card: scenario("expired"),
            amount_fen,
            pin: good(),
        },
        72..=81 => match last_approved(K::Sale) {
            Some(original) => Command::Void { original },
            None => Command::Balance {
                card: own,
                pin: good(),
            },
        },
        82..=86 => Command::Balance {
            card: own,
            pin: good(),
        },
        87..=93 => Command::PreAuth {
            card: own,
            amount_fen,
            pin: good(),
        },
        _ => match last_approved(K::PreAuth).and_then(|p| Some((p.auth_code?, p))) {
            Some((auth_code, p)) => Command::Complete {
                card: p.card.clone().unwrap_or(own),
                amount_fen: p.amount_fen.unwrap_or(fen(100)),
                auth_code,
                date: p.host_date.unwrap_or_default(),
            },
            // No pre-authorization to complete (or one approved without field 38).
            None => Command::Sale {
                card: own,
                amount_fen,
                pin: good(),
            },
        },
    }
}
