//! The MAC and PIN checks done on the connection tasks ([`Precheck`]) are a hint the engine
//! only takes with the keys it would use itself: with them the answers are the ones the
//! engine gives alone, and with stale keys the engine does the work again.

use std::sync::Arc;

use rusqlite::Connection;

use poskit_domain::TransactionKind;
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::engine::{
    self, Answer, EngineConfig, Input, IssuerVerdict, Parsed, Precheck, TerminalKeys,
};
use poskit_host::store::atrest::AtRest;
use poskit_host::store::sqlite::{self, SqliteLedger};
use poskit_host::{DataDir, demo, run};
use poskit_security::MacAlgorithm;

type Keys = Arc<TerminalKeys>;

struct World {
    _temp: tempfile::TempDir,
    conn: Connection,
    keys: Arc<AtRest>,
}

fn world() -> World {
    let temp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(temp.path()).unwrap();
    run::load_demo(&dir, &HostConfig::default()).unwrap();
    let (conn, keys) = dir.open_keys().unwrap();
    World {
        _temp: temp,
        conn,
        keys,
    }
}

/// Processes `frame` in its own transaction, with a precheck made with `keys` (none when
/// `None`), the answer's MAC computed after the engine as the server does.
fn process(w: &mut World, frame: &[u8], keys: Option<&Keys>) -> Answer {
    // As the server: read once, on the connection side, and handed to the engine.
    let parsed = Parsed::of(frame).ok();
    let precheck = keys.and_then(|k| precheck(w, frame, k));
    assert_eq!(
        keys.is_some(),
        precheck.is_some(),
        "a precheck is made when keys are known"
    );
    let tx = w.conn.transaction().unwrap();
    let mut answer = {
        let mut ledger = SqliteLedger::new(&tx).with_keys(&w.keys);
        let input = Input {
            frame,
            now: HostTime::now(480, 0),
            issuer: IssuerVerdict::Reachable,
            injected: None,
            // Alone, the engine reads the frame itself.
            parsed: keys.and(parsed.as_ref()),
            mac_later: precheck.is_some(),
            divergence: Default::default(),
            precheck: precheck.as_ref(),
        };
        engine::process(&mut ledger, &EngineConfig::default(), w.keys.pins(), &input).unwrap()
    };
    tx.commit().unwrap();
    answer.seal(MacAlgorithm::CupEcb);
    answer
}

/// The precheck a connection holding `keys` makes of `frame`.
fn precheck(w: &World, frame: &[u8], keys: &Keys) -> Option<Precheck> {
    Precheck::compute(
        &Parsed::of(frame).ok()?,
        MacAlgorithm::CupEcb,
        |_| Some(keys.clone()),
        w.keys.pins(),
    )
}

/// A signed-in fleet terminal and the keys the host issued it.
fn signed_in(w: &mut World, i: u32) -> (TestTerminal, Keys) {
    let mut t =
        TestTerminal::offline(&demo::fleet_tid(i), "898310048160001", demo::DEMO_TMK).unwrap();
    let mut sign_in = RequestSpec::new(TransactionKind::SignIn);
    sign_in.network_code = Some("003".into());
    let (frame, _) = t.build(&sign_in).unwrap();
    let answer = process(w, &frame, None);
    let keys = answer
        .keys_after
        .clone()
        .flatten()
        .expect("a sign-in says which keys it issued");
    t.adopt_sign_in(&t.parse(answer.frame.unwrap()).unwrap())
        .unwrap();
    (t, Arc::new(TerminalKeys::new(keys.0, keys.1)))
}

fn card(i: u32) -> CardData {
    CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(i)))
}

fn balance(w: &World, i: u32) -> i64 {
    w.conn
        .query_row(
            "SELECT a.balance_fen FROM cards c JOIN accounts a ON a.id = c.account WHERE c.pan_hash = pan_hash(?1)",
            [demo::fleet_pan(i)],
            |r| r.get(0),
        )
        .unwrap()
}

/// The frames of one day at a terminal: good sale, wrong PIN, bad MAC, good sale, its
/// resend, a void of the first sale, a sign-off and a sale after it.
fn day(t: &mut TestTerminal, i: u32) -> Vec<Vec<u8>> {
    let (good, first_stan) = t
        .build(&RequestSpec::sale(card(i), 1_234, Some(demo::DEMO_PIN)))
        .unwrap();
    let (wrong_pin, _) = t
        .build(&RequestSpec::sale(card(i), 1_000, Some("999999")))
        .unwrap();
    let (mut bad_mac, _) = t
        .build(&RequestSpec::sale(card(i), 1_000, Some(demo::DEMO_PIN)))
        .unwrap();
    let last = bad_mac.len() - 1;
    bad_mac[last] ^= 0x01;
    let (second, _) = t
        .build(&RequestSpec::sale(card(i), 2_000, Some(demo::DEMO_PIN)))
        .unwrap();
    let mut void = RequestSpec::new(TransactionKind::Void);
    void.amount_fen = Some(1_234);
    void.card = Some(card(i));
    void.original_stan = Some(first_stan);
    void.original_batch = Some(1);
    let (void, _) = t.build(&void).unwrap();
    let mut sign_off = RequestSpec::new(TransactionKind::SignOff);
    sign_off.network_code = Some("002".into());
    let (sign_off, _) = t.build(&sign_off).unwrap();
    let (after, _) = t
        .build(&RequestSpec::sale(card(i), 500, Some(demo::DEMO_PIN)))
        .unwrap();
    vec![
        good,
        wrong_pin,
        bad_mac,
        second.clone(),
        second,
        void,
        sign_off,
        after,
    ]
}

fn codes_and_macs(t: &TestTerminal, answers: &[Answer]) -> Vec<String> {
    answers
        .iter()
        .map(|a| {
            // `parse` checks the MAC of every approval that carries one.
            let parsed = t.parse(a.frame.clone().unwrap());
            format!(
                "{} {}",
                a.code.as_str(),
                if parsed.is_ok() { "mac ok" } else { "mac bad" }
            )
        })
        .collect()
}

#[test]
fn with_the_terminals_keys_a_precheck_gives_the_answers_the_engine_gives_alone() {
    let mut w = world();
    let (mut alone, _) = signed_in(&mut w, 0);
    let (mut helped, keys) = signed_in(&mut w, 1);
    let (before0, before1) = (balance(&w, 0), balance(&w, 1));

    let answers0: Vec<Answer> = day(&mut alone, 0)
        .iter()
        .map(|f| process(&mut w, f, None))
        .collect();
    let answers1: Vec<Answer> = day(&mut helped, 1)
        .iter()
        .map(|f| process(&mut w, f, Some(&keys)))
        .collect();

    let codes0 = codes_and_macs(&alone, &answers0);
    assert_eq!(
        codes0,
        [
            "00 mac ok",
            "55 mac ok",
            "A0 mac ok",
            "00 mac ok",
            "00 mac ok",
            "00 mac ok",
            "00 mac ok",
            "A0 mac ok"
        ]
    );
    assert_eq!(codes_and_macs(&helped, &answers1), codes0);
    assert!(answers1[4].repeated, "the resend is the first answer again");
    assert_eq!(balance(&w, 0) - before0, -2_000);
    assert_eq!(balance(&w, 1) - before1, balance(&w, 0) - before0);
    assert!(sqlite::check(&w.conn).unwrap().problems.is_empty());
}

#[test]
fn a_precheck_made_with_keys_older_than_a_new_sign_in_is_done_again_by_the_engine() {
    let mut w = world();
    let (mut t, old) = signed_in(&mut w, 2);
    let (stale_frame, _) = t
        .build(&RequestSpec::sale(card(2), 700, Some(demo::DEMO_PIN)))
        .unwrap();
    // Signs in again: new PIK and MAK. The connection task may still hold the old ones.
    let mut sign_in = RequestSpec::new(TransactionKind::SignIn);
    sign_in.network_code = Some("003".into());
    let (frame, _) = t.build(&sign_in).unwrap();
    let answer = process(&mut w, &frame, Some(&old));
    t.adopt_sign_in(&t.parse(answer.frame.unwrap()).unwrap())
        .unwrap();
    let before = balance(&w, 2);

    // Built with the new keys, checked in advance with the old: the MAC does not verify
    // and the PIN decrypts to something else there — the engine looks again and approves.
    let (fresh, _) = t
        .build(&RequestSpec::sale(card(2), 800, Some(demo::DEMO_PIN)))
        .unwrap();
    let pre = precheck(&w, &fresh, &old).unwrap();
    assert_eq!(pre.mac_verified(), Some(false));
    let approved = process(&mut w, &fresh, Some(&old));
    assert_eq!(approved.code.as_str(), "00", "{}", approved.reason);
    assert!(t.parse(approved.frame.unwrap()).is_ok());

    // Built with the old keys and checked with them: verified there, but the host's keys
    // are the new ones now — refused.
    let pre = precheck(&w, &stale_frame, &old).unwrap();
    assert_eq!(pre.mac_verified(), Some(true));
    assert!(pre.pin_found());
    let pan = demo::fleet_pan(2);
    let shown = format!("{pre:?} {:?}", Parsed::of(&stale_frame).unwrap());
    assert!(!shown.contains(&pan[6..12]), "no card number in {shown}");
    let refused = process(&mut w, &stale_frame, Some(&old));
    assert_eq!(refused.code.as_str(), "A0", "{}", refused.reason);
    assert!(
        refused.reason.contains("does not verify"),
        "{}",
        refused.reason
    );
    assert_eq!(balance(&w, 2) - before, -800);
}

#[test]
fn a_pin_checked_in_advance_with_the_right_pik_counts_wrong_tries_as_the_engine_does() {
    let mut w = world();
    let (mut t, keys) = signed_in(&mut w, 3);
    let tries_max: i64 = w
        .conn
        .query_row(
            "SELECT pin_tries_max FROM cards WHERE pan_hash = pan_hash(?1)",
            [demo::fleet_pan(3)],
            |r| r.get(0),
        )
        .unwrap();
    let mut codes = Vec::new();
    for _ in 0..tries_max {
        let (frame, _) = t
            .build(&RequestSpec::sale(card(3), 100, Some("000000")))
            .unwrap();
        codes.push(
            process(&mut w, &frame, Some(&keys))
                .code
                .as_str()
                .to_owned(),
        );
    }
    let (right, _) = t
        .build(&RequestSpec::sale(card(3), 100, Some(demo::DEMO_PIN)))
        .unwrap();
    let locked = process(&mut w, &right, Some(&keys));
    let mut expected = vec!["55".to_owned(); tries_max as usize - 1];
    expected.push("75".to_owned());
    assert_eq!(codes, expected);
    assert_eq!(
        locked.code.as_str(),
        "75",
        "the right PIN after the limit: {}",
        locked.reason
    );
}
