//! Hostile bytes straight into the engine: whatever a terminal (or an attacker) sends, the
//! engine answers or declines to answer, never panics, and the ledger stays balanced.

use proptest::prelude::*;
use rusqlite::Connection;

use poskit_domain::TransactionKind;
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::engine::{self, EngineConfig, Input, IssuerVerdict};
use poskit_host::store::atrest::AtRest;
use poskit_host::store::sqlite::{self, SqliteLedger};
use poskit_host::{DataDir, demo, run};

struct Bench {
    _temp: tempfile::TempDir,
    conn: Connection,
    keys: std::sync::Arc<AtRest>,
    sale: Vec<u8>,
    void: Vec<u8>,
}

fn process(conn: &mut Connection, keys: &AtRest, frame: &[u8]) -> engine::Answer {
    process_as(conn, keys, frame, false)
}

/// With `read_before`, the frame is read as the server reads it, off the writer
/// ([`engine::Parsed`]); the engine must answer the same either way.
fn process_as(
    conn: &mut Connection,
    keys: &AtRest,
    frame: &[u8],
    read_before: bool,
) -> engine::Answer {
    let parsed = read_before
        .then(|| engine::Parsed::of(frame).ok())
        .flatten();
    let tx = conn.transaction().unwrap();
    let answer = {
        let mut ledger = SqliteLedger::new(&tx).with_keys(keys);
        let input = Input {
            frame,
            now: HostTime::now(480, 0),
            issuer: IssuerVerdict::Reachable,
            injected: None,
            parsed: parsed.as_ref(),
            precheck: None,
            mac_later: false,
            divergence: Default::default(),
        };
        engine::process(&mut ledger, &EngineConfig::default(), keys.pins(), &input).unwrap()
    };
    tx.commit().unwrap();
    answer
}

fn bench() -> Bench {
    let temp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(temp.path()).unwrap();
    run::load_demo(&dir, &HostConfig::default()).unwrap();
    let (mut conn, keys) = dir.open_keys().unwrap();
    let mut t =
        TestTerminal::offline(&demo::fleet_tid(0), "898310048160001", demo::DEMO_TMK).unwrap();
    let mut sign_in = RequestSpec::new(TransactionKind::SignIn);
    sign_in.network_code = Some("003".into());
    let (frame, _) = t.build(&sign_in).unwrap();
    let answer = process(&mut conn, &keys, &frame);
    t.adopt_sign_in(&t.parse(answer.frame.unwrap()).unwrap())
        .unwrap();
    let card = CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(0)));
    let (sale, stan) = t
        .build(&RequestSpec::sale(card.clone(), 1234, Some(demo::DEMO_PIN)))
        .unwrap();
    let mut void = RequestSpec::new(TransactionKind::Void);
    void.amount_fen = Some(1234);
    void.card = Some(card);
    void.original_stan = Some(stan);
    void.original_batch = Some(1);
    let (void, _) = t.build(&void).unwrap();
    Bench {
        _temp: temp,
        conn,
        keys,
        sale,
        void,
    }
}

fn check_answer(answer: &engine::Answer) {
    assert!(!answer.reason.is_empty(), "every answer carries its reason");
    if let Some(frame) = &answer.frame {
        poskit_codec::frame::decode_frame(&poskit_codec::CUP_POS, frame)
            .expect("every answer the host writes decodes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_requests_never_panic_and_the_ledger_stays_balanced(
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
        which in 0..2usize,
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        thread_local! {
            static BENCH: std::cell::RefCell<Option<Bench>> = const { std::cell::RefCell::new(None) };
        }
        BENCH.with(|cell| {
            let mut cell = cell.borrow_mut();
            let b = cell.get_or_insert_with(bench);
            let mut frame = if which == 0 { b.sale.clone() } else { b.void.clone() };
            for (at, value) in &mutations {
                let i = at % frame.len();
                frame[i] = *value;
            }
            if let Some(cut) = cut {
                frame.truncate(cut % (frame.len() + 1));
            }
            let Bench { conn, keys, .. } = b;
            check_answer(&process_as(conn, keys, &frame, which == 1));
            check_answer(&process_as(conn, keys, &random, which == 0));
            let report = sqlite::check(conn).unwrap();
            prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
            Ok(())
        })?;
    }
}

#[test]
fn the_unmutated_requests_of_the_bench_are_approved() {
    let mut b = bench();
    let sale = process(&mut b.conn, &b.keys, &b.sale.clone());
    assert_eq!(sale.code.as_str(), "00", "{}", sale.reason);
    let void = process(&mut b.conn, &b.keys, &b.void.clone());
    assert_eq!(void.code.as_str(), "00", "{}", void.reason);
}
