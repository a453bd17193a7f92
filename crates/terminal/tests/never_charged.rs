//! Invariant 1 under any order of faults: the terminal engine against the real host
//! engine (in process, no sockets), with requests and answers lost at random and the
//! terminal crashing at random points (rebuilt from its journal). After recovery, every
//! sale the terminal did not report approved has left no debit on the card, and every one
//! it reported approved is debited exactly once.

mod support;

use support::*;

use proptest::prelude::*;

use poskit_domain::message::CardData;
use poskit_domain::{AmountFen, TransactionKind};
use poskit_host::demo;
use poskit_host::store::sqlite;
use poskit_security::Pin;
use poskit_terminal::engine::{Command, Effect, Event, Outcome, ReversalState, Terminal, TxnState};

/// What happens to one request on the wire.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Deliver,
    LoseRequest,
    LoseAnswer,
    /// The terminal dies right after sending (the host gets the request).
    CrashAfterSend,
    /// The answer arrives with its MAC corrupted (an approval the terminal must reverse).
    CorruptMac,
}

fn terminal(w: &World) -> Terminal {
    let (cfg, _) = w.journal.config().unwrap();
    Terminal::new(cfg, w.journal.snapshot().unwrap())
}

/// Runs one command; `wire` decides each request's fate in turn. `None`: the terminal
/// crashed (its in-memory state is gone; the journal stays).
fn operate(w: &mut World, command: Command, wire: &mut dyn FnMut() -> Wire) -> Option<Outcome> {
    let mut t = terminal(w);
    let mut effects = t.handle(w.now_ms, Event::Command(command));
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 1000, "the engine does not settle");
        let mut next = None;
        let mut timer = None;
        for effect in effects.drain(..) {
            match effect {
                Effect::Journal(ops) => w.journal.apply(&ops, w.now_ms).unwrap(),
                Effect::Send { frame, .. } => match wire() {
                    Wire::Deliver => next = host_answer(w, &frame).map(Event::Response),
                    Wire::LoseRequest => {}
                    Wire::LoseAnswer => {
                        host_answer(w, &frame);
                    }
                    Wire::CrashAfterSend => {
                        host_answer(w, &frame);
                        return None;
                    }
                    Wire::CorruptMac => {
                        next = host_answer(w, &frame).map(|mut a| {
                            let last = a.len() - 1;
                            a[last] ^= 0x01;
                            Event::Response(a)
                        });
                    }
                },
                Effect::Timer { token, .. } => timer = Some(token),
                Effect::Done(o) => return Some(*o),
            }
        }
        w.now_ms += 10;
        let event = next.unwrap_or_else(|| Event::Timeout {
            token: timer.expect("a request in flight has a timer"),
        });
        effects = t.handle(w.now_ms, event);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Sale(u64),
    /// A sale whose slip fails to print after the approval.
    SaleThenPrinterJam(u64),
    VoidLast,
    Balance,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..5000).prop_map(Op::Sale),
        1 => (1u64..5000).prop_map(Op::SaleThenPrinterJam),
        1 => Just(Op::VoidLast),
        1 => Just(Op::Balance),
    ]
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        6 => Just(Wire::Deliver),
        1 => Just(Wire::LoseRequest),
        2 => Just(Wire::LoseAnswer),
        1 => Just(Wire::CrashAfterSend),
        1 => Just(Wire::CorruptMac),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn no_customer_is_charged_for_a_sale_the_terminal_reported_failed(
        ops in proptest::collection::vec(op(), 1..14),
        wires in proptest::collection::vec(wire(), 64),
    ) {
        let mut w = world(1000);
        let pan = demo::fleet_pan(0);
        let card = CardData::Track2(format!("{pan}=30121010000000000"));
        let opening = balance(&w, &pan);
        let mut deliver = || Wire::Deliver;
        let signed = operate(&mut w, Command::SignIn, &mut deliver).unwrap();
        prop_assert!(signed.approved);
        let mut fates = wires.into_iter().cycle();
        let mut faulty = move || fates.next().unwrap_or(Wire::Deliver);
        for op in ops {
            w.journal.set_fail_after_approval(matches!(op, Op::SaleThenPrinterJam(_))).unwrap();
            let command = match op {
                Op::Sale(amount_fen) | Op::SaleThenPrinterJam(amount_fen) => Command::Sale { card: card.clone(), amount_fen: AmountFen::new(amount_fen).unwrap(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) },
                Op::Balance => Command::Balance { card: card.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) },
                Op::VoidLast => {
                    let last = w.journal.txns(None).unwrap().into_iter().rev()
                        .find(|t| t.kind == TransactionKind::Sale && t.state == TxnState::Approved);
                    match last { Some(original) => Command::Void { original }, None => continue }
                }
            };
            let _ = operate(&mut w, command, &mut faulty);
            // Keys may have been withdrawn by an A0 path: sign in again when needed.
            if w.journal.snapshot().unwrap().keys.is_none() {
                let _ = operate(&mut w, Command::SignIn, &mut deliver);
            }
        }
        // Recovery: the network heals; the next financial operation drains the reversal.
        w.journal.set_fail_after_approval(false).unwrap();
        let _ = operate(&mut w, Command::SignIn, &mut deliver);
        let drained = operate(&mut w, Command::Balance { card: card.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }, &mut deliver).unwrap();
        prop_assert!(drained.approved, "{drained:?}");
        prop_assert!(w.journal.snapshot().unwrap().reversal.is_none(), "a reversal is still pending after recovery");

        // What the terminal told the operator.
        let txns = w.journal.txns(None).unwrap();
        let mut charged: i64 = 0;
        for t in &txns {
            prop_assert!(t.reversal != ReversalState::Failed, "reversal gave up: {t:?}");
            prop_assert!(t.reversal != ReversalState::Pending, "reversal left pending: {t:?}");
            match (t.kind, t.state) {
                (TransactionKind::Sale, TxnState::Approved) => charged += t.amount_fen.map_or(0, AmountFen::fen) as i64,
                (TransactionKind::Sale, TxnState::Voided) => {}
                (TransactionKind::Sale, _) | (TransactionKind::Void, _) | (TransactionKind::BalanceInquiry, _) => {}
                other => prop_assert!(false, "unexpected transaction {other:?}"),
            }
        }
        // A sale whose void was not confirmed stands voided or not: the terminal knows which.
        prop_assert_eq!(balance(&w, &pan), opening - charged, "journal: {:#?}", txns);
        let report = sqlite::check(&w.host).unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

/// Found by `poskit sim --transactions 1000000 --seed 2026 --faults harsh`: a "not sent"
/// for an earlier request, arriving while the next one was in flight, made the terminal
/// report that next sale failed (L01) and drop its reversal although the host approved it.
#[test]
fn a_not_sent_for_an_earlier_request_does_not_fail_the_one_in_flight() {
    let mut w = world(1000);
    let mut deliver = || Wire::Deliver;
    assert!(
        operate(&mut w, Command::SignIn, &mut deliver)
            .unwrap()
            .approved
    );
    let pan = demo::fleet_pan(0);
    let card = CardData::Track2(format!("{pan}=30121010000000000"));
    let opening = balance(&w, &pan);
    let mut t = terminal(&w);
    let sale = |fen| Command::Sale {
        card: card.clone(),
        amount_fen: AmountFen::new(fen).unwrap(),
        pin: Some(Pin::new(demo::DEMO_PIN).unwrap()),
    };
    // Sends the frames of `effects` to the host; returns the token of the request sent.
    let exchange =
        |w: &mut World, t: &mut Terminal, effects: Vec<Effect>| -> (u64, Option<Outcome>) {
            let mut token = 0;
            let mut answer = None;
            for e in effects {
                match e {
                    Effect::Journal(ops) => w.journal.apply(&ops, w.now_ms).unwrap(),
                    Effect::Send { frame, token: sent } => {
                        token = sent;
                        answer = host_answer(w, &frame);
                    }
                    Effect::Done(o) => return (token, Some(*o)),
                    Effect::Timer { .. } => {}
                }
            }
            let effects = t.handle(w.now_ms, Event::Response(answer.unwrap()));
            let done = effects.into_iter().find_map(|e| match e {
                Effect::Journal(ops) => {
                    w.journal.apply(&ops, w.now_ms).unwrap();
                    None
                }
                Effect::Done(o) => Some(*o),
                _ => None,
            });
            (token, done)
        };
    let effects = t.handle(w.now_ms, Event::Command(sale(100)));
    let (first_token, first) = exchange(&mut w, &mut t, effects);
    assert!(first.unwrap().approved);
    // The second sale is on its way when a stale "not sent" for the first one arrives.
    let effects = t.handle(w.now_ms, Event::Command(sale(200)));
    let mut frame = None;
    for e in effects {
        match e {
            Effect::Journal(ops) => w.journal.apply(&ops, w.now_ms).unwrap(),
            Effect::Send { frame: f, .. } => frame = Some(f),
            _ => {}
        }
    }
    let stale = t.handle(
        w.now_ms,
        Event::NotSent {
            token: first_token,
            why: "old".into(),
        },
    );
    assert!(
        stale.is_empty(),
        "a stale NotSent changes nothing: {stale:?}"
    );
    let answer = host_answer(&mut w, &frame.unwrap()).unwrap();
    let done = t
        .handle(w.now_ms, Event::Response(answer))
        .into_iter()
        .find_map(|e| match e {
            Effect::Journal(ops) => {
                w.journal.apply(&ops, w.now_ms).unwrap();
                None
            }
            Effect::Done(o) => Some(*o),
            _ => None,
        })
        .unwrap();
    assert!(done.approved, "{done:?}");
    assert_eq!(balance(&w, &pan), opening - 300);
}
