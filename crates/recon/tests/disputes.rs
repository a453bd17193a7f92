//! Disputes end to end on a host on loopback: every path with its postings (the ledger
//! balanced after each), the standard's rules refused with their reasons, AERRA import
//! round trips, a refund refused while a chargeback is open, and retained cards.

#[path = "../../host/tests/support/mod.rs"]
mod support;

use poskit_clearing::{ClearingDate, DisputeRecord, FileKind, write_file};
use poskit_domain::TransactionKind as K;
use poskit_host::client::{RequestSpec, Response};
use poskit_host::clock::HostTime;
use poskit_recon::disputes::{self, DisputeError, Kind, Opening, Step};
use support::*;

fn now() -> HostTime {
    HostTime::now(480, 0)
}

fn txn_id(r: &Response) -> i64 {
    field(r, 37).parse().unwrap()
}

fn merchant_balance(host: &TestHost) -> i64 {
    host.query_i64(
        "SELECT a.balance_fen FROM accounts a JOIN merchants m ON m.account = a.id WHERE m.mid = ?1",
        [MAIN_MID],
    )
}

fn opening(txn: i64, kind: Kind) -> Opening<'static> {
    Opening {
        txn_id: txn,
        kind,
        reason_code: "4515",
        source: "manual",
        reference: None,
        amount_fen: None,
        now: now(),
    }
}

/// A sale on fleet card `i` (odd cards are credit cards, even ones debit cards).
fn sold(host: &TestHost, i: u32, fen: u64) -> Response {
    let s = fleet(i);
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, fen)).unwrap();
    assert_code(host, &r, "00");
    r
}

#[test]
fn a_chargeback_debits_the_merchant_once_and_represent_and_second_chargeback_move_it_back_and_forth()
 {
    let host = TestHost::start();
    let r = sold(&host, 11, 20_000);
    let before = merchant_balance(&host);
    let mut db = host.db();
    let (id, new) = disputes::open(&mut db, &opening(txn_id(&r), Kind::Chargeback)).unwrap();
    assert!(new);
    assert_eq!(
        merchant_balance(&host),
        before - 20_000,
        "debited when opened"
    );
    let (again, new) = disputes::open(&mut db, &opening(txn_id(&r), Kind::Chargeback)).unwrap();
    assert_eq!((again, new), (id, false), "the same case, nothing posted");
    assert_eq!(merchant_balance(&host), before - 20_000);
    host.assert_balanced();

    let d = disputes::respond(&mut db, id, Step::Represent, Some("slip.png"), now()).unwrap();
    assert_eq!(d.state, "represented");
    assert_eq!(
        merchant_balance(&host),
        before,
        "credited back by the representment"
    );
    let d = disputes::respond(&mut db, id, Step::SecondChargeback, None, now()).unwrap();
    assert_eq!(d.state, "second_charged_back");
    assert_eq!(merchant_balance(&host), before - 20_000);
    let d = disputes::respond(&mut db, id, Step::Accept, None, now()).unwrap();
    assert_eq!((d.state.as_str(), d.allowed.len()), ("accepted", 0));
    assert_eq!(
        d.events
            .iter()
            .filter(|e| e.posted_txn_id.is_some())
            .count(),
        3
    );
    host.assert_balanced();
    match disputes::respond(&mut db, id, Step::Represent, None, now()) {
        Err(DisputeError::Transition { allowed, .. }) => assert!(allowed.contains("none")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_standards_rules_are_refused_with_their_reasons() {
    let host = TestHost::start();
    let mut db = host.db();
    // A debit card's chargeback cannot be represented.
    let debit = sold(&host, 12, 5_000);
    let (id, _) = disputes::open(&mut db, &opening(txn_id(&debit), Kind::Chargeback)).unwrap();
    match disputes::respond(&mut db, id, Step::Represent, None, now()) {
        Err(DisputeError::Refused(why)) => assert!(why.contains("debit card"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A wrong step names the allowed ones.
    match disputes::respond(&mut db, id, Step::Reply, None, now()) {
        Err(DisputeError::Transition { allowed, .. }) => assert_eq!(allowed, "accept, represent"),
        other => panic!("{other:?}"),
    }
    // Past 180 days.
    let credit = sold(&host, 13, 5_000);
    let late = Opening {
        now: HostTime::at(now().unix_ms + 181 * 86_400_000, 480),
        ..opening(txn_id(&credit), Kind::Chargeback)
    };
    match disputes::open(&mut db, &late) {
        Err(DisputeError::Refused(why)) => assert!(why.contains("180 days"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A decline is nothing to dispute.
    let s = scenario("insufficient_funds");
    let mut t = host.signed_in(&s);
    let declined = t.send(&sale(&s, s.amount_fen)).unwrap();
    assert!(matches!(
        disputes::open(&mut db, &opening(txn_id(&declined), Kind::Chargeback)),
        Err(DisputeError::Refused(_))
    ));
    host.assert_balanced();
}

/// A refund of sale `r` of fleet card `i`, sent from another terminal of the merchant.
fn refund_of(host: &TestHost, i: u32, r: &Response, fen: u64) -> Response {
    let s = fleet(i);
    let other = fleet(i + 1);
    let mut t = host.signed_in(&other);
    let mut spec = RequestSpec::new(K::Refund);
    spec.amount_fen = Some(fen);
    spec.card = Some(manual(&s));
    spec.rrn = Some(field(r, 37));
    spec.original_date = Some(field(r, 13));
    t.send(&spec).unwrap()
}

#[test]
fn a_disputed_sale_cannot_be_refunded_and_a_refunded_one_cannot_be_disputed() {
    let host = TestHost::start();
    let mut db = host.db();
    let r = sold(&host, 21, 9_000);
    disputes::open(&mut db, &opening(txn_id(&r), Kind::Chargeback)).unwrap();
    let refused = refund_of(&host, 21, &r, 9_000);
    assert_code(&host, &refused, "12");
    assert_reason(&host, &refused, &["under dispute"]);

    let r = sold(&host, 23, 7_000);
    let refunded = refund_of(&host, 23, &r, 2_000);
    assert_code(&host, &refunded, "00");
    match disputes::open(&mut db, &opening(txn_id(&r), Kind::Chargeback)) {
        Err(DisputeError::Refused(why)) => assert!(why.contains("refunded"), "{why}"),
        other => panic!("{other:?}"),
    }
    host.assert_balanced();
}

fn aerra(dir: &std::path::Path, records: &[DisputeRecord]) -> std::path::PathBuf {
    let today = poskit_domain::calendar::yyyymmdd(now().day);
    let date = ClearingDate::from_yymmdd(&today[2..]).unwrap();
    write_file(dir, FileKind::Aerra, date, records).unwrap()
}

fn record(error_type: &str, stan: u32, original: &Response, fen: u64) -> DisputeRecord {
    DisputeRecord {
        error_type: error_type.into(),
        stan,
        transmission_time: "1204101010".into(),
        pan_masked: "621700******0001".into(),
        amount_fen: fen,
        previous_rrn: field(original, 37),
        reason_code: "4515".into(),
        previous_time: "1204090000".into(),
        ..Default::default()
    }
}

#[test]
fn an_aerra_file_opens_its_cases_once_and_a_bad_one_imports_nothing() {
    let host = TestHost::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (sold(&host, 31, 3_000), sold(&host, 33, 4_000));
    let before = merchant_balance(&host);
    let file = aerra(
        dir.path(),
        &[record("E23", 1, &a, 3_000), record("E04", 2, &b, 4_000)],
    );
    let mut db = host.db();
    let done = disputes::import_aerra(&mut db, &file, now()).unwrap();
    assert_eq!((done.opened, done.known), (2, 0));
    assert_eq!(
        merchant_balance(&host),
        before - 3_000,
        "the chargeback debits, the retrieval not"
    );
    let again = disputes::import_aerra(&mut db, &file, now()).unwrap();
    assert_eq!(
        (again.opened, again.known),
        (0, 2),
        "imported twice: nothing changes"
    );
    assert_eq!(merchant_balance(&host), before - 3_000);

    // A later file's E25 takes the second step on the chargeback (after a representment).
    let (id, _) = disputes::open(&mut db, &opening(txn_id(&a), Kind::Chargeback)).unwrap();
    disputes::respond(&mut db, id, Step::Represent, None, now()).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let file = aerra(dir2.path(), &[record("E25", 3, &a, 3_000)]);
    let done = disputes::import_aerra(&mut db, &file, now()).unwrap();
    assert_eq!(done.second_chargebacks, 1);
    assert_eq!(
        disputes::get(&db, id).unwrap().unwrap().state,
        "second_charged_back"
    );

    // A record naming no transaction: an error with its line, nothing of the file kept.
    let dir3 = tempfile::tempdir().unwrap();
    let c = sold(&host, 35, 1_000);
    let mut bad = record("E04", 5, &c, 1_000);
    bad.previous_rrn = "000000000000".into();
    let file = aerra(dir3.path(), &[record("E23", 4, &c, 1_000), bad]);
    let cases = disputes::list(&db, None, 0).unwrap().len();
    match disputes::import_aerra(&mut db, &file, now()) {
        Err(DisputeError::Refused(why)) => assert!(why.contains("line 2"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        disputes::list(&db, None, 0).unwrap().len(),
        cases,
        "nothing imported"
    );
    host.assert_balanced();
}

#[test]
fn a_pick_up_answer_leaves_a_retained_card_that_can_be_registered() {
    let host = TestHost::start();
    let s = scenario("pick_up");
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &r, "04");
    let cards = poskit_host::store::lookup::retained_cards(&host.db()).unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].txn_id, txn_id(&r));
    assert!(cards[0].pan_masked.contains('*') && cards[0].due_ms > cards[0].created_ms);
    let mut db = host.db();
    let (id, _) = disputes::open(
        &mut db,
        &Opening {
            reason_code: "0000",
            ..opening(txn_id(&r), Kind::Retained)
        },
    )
    .unwrap();
    let d = disputes::respond(&mut db, id, Step::Reply, None, now()).unwrap();
    assert_eq!((d.e_code.as_str(), d.state.as_str()), ("E09", "replied"));
    // A sale that was approved retained nothing.
    let ok = sold(&host, 41, 1_000);
    assert!(disputes::open(&mut db, &opening(txn_id(&ok), Kind::Retained)).is_err());
}

#[test]
fn credit_adjustment_retrieval_and_one_sided_paths_post_what_they_must_and_close() {
    let host = TestHost::start();
    let mut db = host.db();
    let r = sold(&host, 51, 8_000);
    let before = merchant_balance(&host);
    let (id, _) = disputes::open(
        &mut db,
        &Opening {
            amount_fen: Some(3_000),
            reason_code: "9601",
            ..opening(txn_id(&r), Kind::CreditAdjustment)
        },
    )
    .unwrap();
    let d = disputes::get(&db, id).unwrap().unwrap();
    assert_eq!((d.state.as_str(), d.allowed.len()), ("adjusted", 0));
    assert_eq!(
        merchant_balance(&host),
        before - 3_000,
        "part of it back to the card"
    );
    host.assert_balanced();

    for (kind, first) in [(Kind::Retrieval, "requested"), (Kind::OneSided, "noticed")] {
        let (id, _) = disputes::open(&mut db, &opening(txn_id(&r), kind)).unwrap();
        let d = disputes::get(&db, id).unwrap().unwrap();
        assert_eq!(
            (d.state.as_str(), d.allowed.clone()),
            (first, vec!["reply"])
        );
        let d = disputes::respond(&mut db, id, Step::Reply, Some("journal.txt"), now()).unwrap();
        assert_eq!(d.state, "replied");
        assert!(
            d.events.iter().all(|e| e.posted_txn_id.is_none()),
            "no money moves"
        );
    }
    assert_eq!(merchant_balance(&host), before - 3_000);
    host.assert_balanced();
}
