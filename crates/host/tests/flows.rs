//! End-to-end flows over loopback: retransmissions, reversals, voids, refunds, the
//! pre-authorization family, PIN tries, MAC and batch errors, settlement, frames that do
//! not decode and the fault plan. Every test runs its own host with the demo data, talks
//! to it over TCP and ends with the ledger balanced.

mod support;

use poskit_domain::TransactionKind as K;
use poskit_host::client::RequestSpec;
use poskit_host::config::Limits;
use poskit_host::demo::Scenario;
use support::*;

/// A refund (0220) naming its original by RRN and date; the card keyed in by hand.
fn refund(s: &Scenario, amount_fen: u64, rrn: &str, original_date: &str) -> RequestSpec {
    let mut spec = RequestSpec::new(K::Refund);
    spec.amount_fen = Some(amount_fen);
    spec.card = Some(manual(s));
    spec.rrn = Some(rrn.to_owned());
    spec.original_date = Some(original_date.to_owned());
    spec
}

/// A value that is not `value`: `one`, or `other` where `value` is `one`.
fn other_than(value: &str, one: &str, other: &str) -> String {
    if value == one { other } else { one }.to_owned()
}

// ---- 1. retransmission and duplicates ------------------------------------------------

#[test]
fn a_retransmitted_sale_gets_its_first_answer_again_and_posts_once() {
    let host = TestHost::start();
    let s = fleet(1);
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 12_345);
    let (frame, stan) = t.build(&spec).unwrap();
    t.send_raw(&frame).unwrap();
    let first = t.receive().unwrap();
    assert_code(&host, &first, "00");
    assert!(first.field(38).is_some(), "an approval carries field 38");
    t.send_raw(&frame).unwrap();
    let again = t.receive().unwrap();
    assert_code(&host, &again, "00");
    assert_eq!(again.field(37), first.field(37), "same RRN");
    assert_eq!(again.field(38), first.field(38), "same authorization code");
    assert_eq!(again.frame, first.frame, "the first answer, byte for byte");
    assert_eq!(again.mac_ok, Some(true));
    // The same request rebuilt with the same trace is the same request too.
    let rebuilt = t
        .send(&RequestSpec {
            stan: Some(stan),
            ..spec
        })
        .unwrap();
    assert_code(&host, &rebuilt, "00");
    assert_eq!(rebuilt.field(37), first.field(37));
    assert_eq!(rebuilt.field(38), first.field(38));

    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 12_345);
    assert_eq!(host.card_postings(&s.pan), 1, "debited once");
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM transactions WHERE tid = ?1 AND stan = ?2",
            rusqlite::params![s.tid, stan],
        ),
        1,
        "one transaction recorded for the trace"
    );
    host.assert_balanced();
}

#[test]
fn the_same_trace_with_a_different_amount_is_a_duplicate_and_posts_nothing() {
    let host = TestHost::start();
    let s = fleet(2);
    let mut t = host.signed_in(&s);
    let first = t.send(&sale(&s, 10_000)).unwrap();
    assert_code(&host, &first, "00");
    let other = t
        .send(&RequestSpec {
            stan: Some(first.stan),
            ..sale(&s, 20_000)
        })
        .unwrap();
    assert_code(&host, &other, "94");
    assert_ne!(other.field(37), first.field(37));
    assert!(other.field(38).is_none(), "a decline carries no field 38");
    assert_reason(&host, &other, &["already used"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 10_000);
    assert_eq!(host.card_postings(&s.pan), 1);
    // The original still answers as first answered.
    let again = t
        .send(&RequestSpec {
            stan: Some(first.stan),
            ..sale(&s, 10_000)
        })
        .unwrap();
    assert_code(&host, &again, "00");
    assert_eq!(again.field(37), first.field(37));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 10_000);
    host.assert_balanced();
}

// ---- 2, 3. reversal --------------------------------------------------------------------

#[test]
fn a_reversal_of_an_approved_sale_restores_the_balance_once_however_often_it_is_sent() {
    let host = TestHost::start();
    let s = fleet(3);
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 50_000);
    let approved = t.send(&spec).unwrap();
    assert_code(&host, &approved, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 50_000);

    let reversal = spec.reversal(approved.stan, "98");
    let first = t.send(&reversal).unwrap();
    assert_eq!(first.mti, "0410");
    assert_code(&host, &first, "00");
    assert_reason(&host, &first, &["applied"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    let second = t.send(&reversal).unwrap();
    assert_code(&host, &second, "00");
    assert_eq!(
        second.field(37),
        first.field(37),
        "the first answer sent again"
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN, "restored once");
    assert_eq!(host.card_postings(&s.pan), 2, "the sale and its undoing");
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM transactions WHERE rrn = ?1 AND state = 'reversed'",
            [field(&approved, 37)],
        ),
        1,
        "the sale is marked reversed"
    );
    host.assert_balanced();
}

#[test]
fn a_reversal_that_arrives_before_its_original_leaves_a_tombstone_and_the_original_cannot_post() {
    let host = TestHost::start();
    let s = fleet(4);
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 30_000);
    let stan = 500;
    let reversal = t.send(&spec.reversal(stan, "98")).unwrap();
    assert_code(&host, &reversal, "00");
    assert_reason(&host, &reversal, &["tombstone"]);
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM transactions WHERE tid = ?1 AND stan = ?2 AND state = 'tombstone'",
            rusqlite::params![s.tid, stan],
        ),
        1
    );

    let late = t
        .send(&RequestSpec {
            stan: Some(stan),
            ..spec.clone()
        })
        .unwrap();
    assert_code(&host, &late, "12");
    assert!(late.field(38).is_none());
    assert_reason(&host, &late, &["reversal of this trace"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(host.card_postings(&s.pan), 0);

    // The terminal goes on with other traces as usual.
    let next = t.send(&spec).unwrap();
    assert_code(&host, &next, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 30_000);
    host.assert_balanced();
}

// A reversal is matched by its original's key (terminal, merchant, batch, trace, class)
// before the request's batch is compared with the host's batch for the terminal.

/// How many transactions of terminal `tid` with trace `stan` in batch `batch` have MTI
/// `mti`, code `code` and state `state`.
fn count_of(
    host: &TestHost,
    tid: &str,
    batch: u32,
    stan: u32,
    (mti, code, state): (&str, &str, &str),
) -> i64 {
    host.query_i64(
        "SELECT count(*) FROM transactions
         WHERE tid = ?1 AND batch = ?2 AND stan = ?3 AND mti = ?4 AND code = ?5 AND state = ?6",
        rusqlite::params![tid, batch, stan, mti, code, state],
    )
}

#[test]
fn a_reversal_with_no_original_in_a_batch_not_the_hosts_gets_00_and_a_sign_in_and_its_late_original_is_refused()
 {
    let host = TestHost::start();
    let s = fleet(19);
    let mut t = host.signed_in(&s);
    assert_eq!(t.batch.value(), 1, "the host's batch for the terminal");
    t.set_batch(7);
    let spec = sale(&s, 30_000);
    let stan = 600;

    let reversal = t.send(&spec.reversal(stan, "98")).unwrap();
    assert_eq!(reversal.mti, "0410");
    assert_code(&host, &reversal, "00");
    assert_reason(
        &host,
        &reversal,
        &["found no original in batch 000007", "nothing to reverse"],
    );
    assert_eq!(
        reversal.header.processing_requirement(),
        3,
        "the terminal is told to sign in"
    );
    assert_eq!(
        count_of(&host, &s.tid, 7, stan, ("0400", "00", "tombstone")),
        0,
        "not recorded as a tombstone: an original under batch 7 cannot post while the host is at 1"
    );
    assert_eq!(
        count_of(&host, &s.tid, 7, stan, ("0400", "00", "approved")),
        1,
        "the reversal is recorded"
    );

    // The late original: its batch is not the host's either, so it is refused with 77 and
    // told to sign in.
    let late = t
        .send(&RequestSpec {
            stan: Some(stan),
            ..spec.clone()
        })
        .unwrap();
    assert_code(&host, &late, "77");
    assert_eq!(late.header.processing_requirement(), 3);
    assert!(late.field(38).is_none());
    assert_reason(
        &host,
        &late,
        &["batch 000007 is not the host's batch 000001"],
    );
    assert_eq!(
        count_of(&host, &s.tid, 7, stan, ("0200", "00", "approved")),
        0,
        "the late original was not approved"
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(
        host.card_postings(&s.pan),
        0,
        "no posting for the late original"
    );
    host.assert_balanced();
}

#[test]
fn a_sale_refused_with_77_and_then_reversed_gets_00_for_its_reversal_and_moves_no_money() {
    let host = TestHost::start();
    let s = fleet(20);
    let mut t = host.signed_in(&s);
    t.set_batch(7);
    let spec = sale(&s, 40_000);
    let refused = t.send(&spec).unwrap();
    assert_code(&host, &refused, "77");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    let reversal = t.send(&spec.reversal(refused.stan, "98")).unwrap();
    assert_eq!(reversal.mti, "0410");
    assert_code(&host, &reversal, "00");
    assert!(reversal.field(38).is_none(), "nothing was authorized");
    // A 77 is a refusal that claims no key, so the reversal finds no original to match:
    // it is answered from the no-original branch, not from the "original declined" one.
    assert_reason(&host, &reversal, &["found no original"]);
    assert_eq!(
        count_of(&host, &s.tid, 7, refused.stan, ("0200", "77", "declined")),
        1,
        "the refused sale is recorded as declined, and stays so"
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(host.card_postings(&s.pan), 0);

    // Signed in again, the terminal is at the host's batch and its sales go through.
    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_eq!(t.batch.value(), 1);
    assert_code(&host, &t.send(&sale(&s, 40_000)).unwrap(), "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 40_000);
    assert_eq!(host.card_postings(&s.pan), 1);
    host.assert_balanced();
}

#[test]
fn a_void_of_a_sale_in_a_settled_batch_is_refused_with_12_and_told_to_refund() {
    let host = TestHost::start();
    let s = fleet(23);
    let mut t = host.signed_in(&s);
    let approved = t.send(&sale(&s, 70_000)).unwrap();
    assert_code(&host, &approved, "00");
    assert_code(&host, &t.settle(70_000, 1, 0, 0).unwrap(), "00");
    assert_code(&host, &t.batch_end(true, 0).unwrap(), "00");
    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_eq!(t.batch.value(), 2);
    // The void names the sale's trace; the sale is not in the open batch 2.
    let mut void = void_of(&s, &t, &approved, 70_000);
    void.original_batch = Some(1);
    let refused = t.send(&void).unwrap();
    assert_code(&host, &refused, "12");
    assert_reason(
        &host,
        &refused,
        &["belongs to settled batch 000001", "refund it instead"],
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 70_000);
    // A trace that is in no batch at all is 25.
    let mut unknown = void_of(&s, &t, &approved, 70_000);
    unknown.original_stan = Some(999_999);
    assert_code(&host, &t.send(&unknown).unwrap(), "25");
    host.assert_balanced();
}

#[test]
fn a_reversal_of_a_sale_in_a_settled_batch_is_refused_with_77_and_the_sale_stays_posted() {
    let host = TestHost::start();
    let s = fleet(21);
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 50_000);
    let approved = t.send(&spec).unwrap();
    assert_code(&host, &approved, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 50_000);

    // Batch 1 settled, balanced, and closed: the host's batch for the terminal is 2. (It
    // is the batch end, 0320, that moves the batch on; the 0500 alone does not.)
    let settled = t.settle(50_000, 1, 0, 0).unwrap();
    assert_code(&host, &settled, "00");
    assert_eq!(&field(&settled, 48)[30..31], "1", "balanced");
    assert_code(&host, &t.batch_end(true, 0).unwrap(), "00");
    assert_eq!(
        host.query_i64("SELECT batch FROM terminals WHERE tid = ?1", [&s.tid]),
        2
    );
    assert_eq!(t.batch.value(), 1, "the reversal names the sale's batch 1");

    let reversal_spec = spec.reversal(approved.stan, "98");
    let reversal = t.send(&reversal_spec).unwrap();
    assert_eq!(reversal.mti, "0410");
    assert_code(&host, &reversal, "77");
    assert_reason(
        &host,
        &reversal,
        &["in batch 000001, already closed", "host is at batch 000002"],
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 50_000);
    assert_eq!(
        host.card_postings(&s.pan),
        1,
        "the sale's posting is in place"
    );
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM transactions WHERE rrn = ?1 AND state = 'approved'",
            [field(&approved, 37)],
        ),
        1,
        "the sale is not marked reversed"
    );

    // Sent again, the reversal gets its first answer again and still moves nothing.
    let again = t.send(&reversal_spec).unwrap();
    assert_code(&host, &again, "77");
    assert_eq!(again.field(37), reversal.field(37));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 50_000);
    assert_eq!(host.card_postings(&s.pan), 1);
    host.assert_balanced();
}

// ---- 4. void ---------------------------------------------------------------------------

#[test]
fn a_void_restores_the_balance_and_a_second_void_an_unknown_trace_or_a_wrong_amount_are_declined() {
    let host = TestHost::start();
    let s = fleet(5);
    let mut t = host.signed_in(&s);
    let approved = t.send(&sale(&s, 20_000)).unwrap();
    assert_code(&host, &approved, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 20_000);

    let wrong_amount = t.send(&void_of(&s, &t, &approved, 19_999)).unwrap();
    assert_code(&host, &wrong_amount, "64");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 20_000);

    let unknown = RequestSpec {
        original_stan: Some(4321),
        ..void_of(&s, &t, &approved, 20_000)
    };
    let unknown = t.send(&unknown).unwrap();
    assert_code(&host, &unknown, "25");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 20_000);

    let void = t.send(&void_of(&s, &t, &approved, 20_000)).unwrap();
    assert_code(&host, &void, "00");
    assert_eq!(void.mac_ok, Some(true));
    assert_eq!(
        void.field(38),
        approved.field(38),
        "the original's authorization code"
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    let twice = t.send(&void_of(&s, &t, &approved, 20_000)).unwrap();
    assert_code(&host, &twice, "12");
    assert_reason(&host, &twice, &["already voided"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN, "restored once");
    assert_eq!(host.card_postings(&s.pan), 2);
    host.assert_balanced();
}

// ---- 5. refund -------------------------------------------------------------------------

#[test]
fn a_refund_is_refused_on_the_day_of_its_sale_and_approved_the_next_day_up_to_the_sale_amount() {
    let host = TestHost::start();
    let s = fleet(6);
    let mut t = host.signed_in(&s);
    let approved = t.send(&sale(&s, 80_000)).unwrap();
    assert_code(&host, &approved, "00");
    let (rrn, date) = (field(&approved, 37), field(&approved, 13));
    let batch = t.batch;

    let same_day = t.send(&refund(&s, 10_000, &rrn, &date)).unwrap();
    assert_eq!(same_day.mti, "0230");
    assert_code(&host, &same_day, "12");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 80_000);
    drop(t);

    // The next day: the same data directory, the host's clock a day on.
    let host = host.next_day();
    assert_eq!(
        host.card_balance(&s.pan),
        OPENING_FEN - 80_000,
        "the ledger is kept across the restart"
    );
    let mut t = host.reconnect(&s);
    let signed = t.sign_in().unwrap();
    assert_code(&host, &signed, "00");
    assert_eq!(t.batch, batch, "the batch is kept across the restart");
    let today = field(&signed, 13);
    assert_ne!(today, date, "the host's clock moved on a day");

    let first = t.send(&refund(&s, 30_000, &rrn, &date)).unwrap();
    assert_code(&host, &first, "00");
    assert_eq!(first.mac_ok, Some(true));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 80_000 + 30_000);

    let too_much = t.send(&refund(&s, 50_001, &rrn, &date)).unwrap();
    assert_code(&host, &too_much, "13");
    assert_reason(&host, &too_much, &["500.00 not yet refunded"]);

    let unknown = t.send(&refund(&s, 1_000, "999999999999", &date)).unwrap();
    assert_code(&host, &unknown, "25");

    let wrong_date = t.send(&refund(&s, 1_000, &rrn, &today)).unwrap();
    assert_code(&host, &wrong_date, "25");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 50_000);

    let rest = t.send(&refund(&s, 50_000, &rrn, &date)).unwrap();
    assert_code(&host, &rest, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    let beyond = t.send(&refund(&s, 1, &rrn, &date)).unwrap();
    assert_code(&host, &beyond, "13");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(host.card_postings(&s.pan), 3);
    host.assert_balanced();
}

// ---- 6. pre-authorization --------------------------------------------------------------

#[test]
fn a_pre_authorization_holds_funds_until_it_is_cancelled_and_a_cancelled_one_cannot_be_completed() {
    let host = TestHost::start();
    let s = fleet(7);
    let mut t = host.signed_in(&s);
    let pre = t.send(&pre_auth(&s, 600_000)).unwrap();
    assert_eq!(pre.mti, "0110");
    assert_code(&host, &pre, "00");
    assert!(pre.field(38).is_some());
    assert_eq!(
        host.card_balance(&s.pan),
        OPENING_FEN,
        "a hold is no posting"
    );
    let inquiry = t.send(&balance_inquiry(&s)).unwrap();
    assert_code(&host, &inquiry, "00");
    assert_eq!(available_fen(&inquiry), OPENING_FEN - 600_000);

    let too_big = t.send(&sale(&s, 500_000)).unwrap();
    assert_code(&host, &too_big, "51");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    let wrong_amount = t
        .send(&of_pre_auth(K::PreAuthCancel, &s, &pre, 500_000))
        .unwrap();
    assert_code(&host, &wrong_amount, "64");

    let cancel = t
        .send(&of_pre_auth(K::PreAuthCancel, &s, &pre, 600_000))
        .unwrap();
    assert_code(&host, &cancel, "00");
    assert_eq!(cancel.field(38), pre.field(38));
    let inquiry = t.send(&balance_inquiry(&s)).unwrap();
    assert_eq!(available_fen(&inquiry), OPENING_FEN, "the hold is released");

    let completion = t
        .send(&of_pre_auth(K::PreAuthCompletion, &s, &pre, 600_000))
        .unwrap();
    assert_code(&host, &completion, "22");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    let now_fits = t.send(&sale(&s, 500_000)).unwrap();
    assert_code(&host, &now_fits, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 500_000);
    host.assert_balanced();
}

#[test]
fn check_names_postings_whose_transaction_or_account_is_not_on_file() {
    let host = TestHost::start();
    let s = fleet(23);
    let mut t = host.signed_in(&s);
    let sold = t.send(&sale(&s, 700)).unwrap();
    assert_code(&host, &sold, "00");
    host.assert_balanced();
    // A balanced pair whose legs name nothing on file: the sums still hold, the references
    // do not (foreign keys no longer stand guard on every posting since schema 5).
    host.db()
        .execute_batch(
            "INSERT INTO postings (txn_id, leg, account, amount_fen) VALUES
                 (999999, 0, 999998, -5), (999999, 1, 999997, 5);",
        )
        .unwrap();
    host.assert_check_names("2 postings name a transaction or an account that is not on file");
}

#[test]
fn the_amount_on_hold_kept_beside_the_balance_is_checked_against_the_open_holds() {
    let host = TestHost::start();
    let s = fleet(22);
    let mut t = host.signed_in(&s);
    let pre = t.send(&pre_auth(&s, 250_000)).unwrap();
    assert_code(&host, &pre, "00");
    let held = |host: &TestHost| -> i64 {
        host.db()
            .query_row(
                "SELECT a.held_fen FROM accounts a JOIN cards c ON c.account = a.id WHERE c.pan_hash = pan_hash(?1)",
                [&s.pan],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(held(&host), 250_000);
    host.assert_balanced();
    // A held amount that is not the sum of the open holds is a problem `check` names.
    host.db()
        .execute(
            "UPDATE accounts SET held_fen = held_fen + 1 WHERE id = (SELECT account FROM cards WHERE pan_hash = pan_hash(?1))",
            [&s.pan],
        )
        .unwrap();
    host.assert_check_names("on hold");
    host.db()
        .execute(
            "UPDATE accounts SET held_fen = held_fen - 1 WHERE id = (SELECT account FROM cards WHERE pan_hash = pan_hash(?1))",
            [&s.pan],
        )
        .unwrap();
    // Cancelling twice releases the hold once.
    let cancel = of_pre_auth(K::PreAuthCancel, &s, &pre, 250_000);
    assert_code(&host, &t.send(&cancel).unwrap(), "00");
    assert_eq!(held(&host), 0);
    let again = t.send(&cancel).unwrap();
    assert_ne!(again.code(), "00", "a second cancel is refused");
    assert_eq!(held(&host), 0);
    host.assert_balanced();
}

#[test]
fn a_completion_debits_the_card_releases_the_hold_and_cannot_be_repeated() {
    let host = TestHost::start();
    let s = fleet(8);
    let mut t = host.signed_in(&s);
    let pre = t.send(&pre_auth(&s, 300_000)).unwrap();
    assert_code(&host, &pre, "00");

    let wrong_date = RequestSpec {
        original_date: Some(other_than(&field(&pre, 13), "0101", "0102")),
        ..of_pre_auth(K::PreAuthCompletion, &s, &pre, 300_000)
    };
    let wrong_date = t.send(&wrong_date).unwrap();
    assert_code(&host, &wrong_date, "25");

    let unknown_auth = RequestSpec {
        auth_code: Some(other_than(&field(&pre, 38), "999999", "999998")),
        ..of_pre_auth(K::PreAuthCompletion, &s, &pre, 300_000)
    };
    let unknown_auth = t.send(&unknown_auth).unwrap();
    assert_code(&host, &unknown_auth, "25");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    let completion = t
        .send(&of_pre_auth(K::PreAuthCompletion, &s, &pre, 280_000))
        .unwrap();
    assert_code(&host, &completion, "00");
    assert_eq!(completion.field(38), pre.field(38));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 280_000);
    let inquiry = t.send(&balance_inquiry(&s)).unwrap();
    assert_eq!(
        available_fen(&inquiry),
        OPENING_FEN - 280_000,
        "the hold went with the completion"
    );

    let again = t
        .send(&of_pre_auth(K::PreAuthCompletion, &s, &pre, 280_000))
        .unwrap();
    assert_code(&host, &again, "22");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 280_000);
    assert_eq!(host.card_postings(&s.pan), 1);
    host.assert_balanced();
}

// ---- 7. PIN ----------------------------------------------------------------------------

#[test]
fn three_wrong_pins_lock_the_card_and_then_even_the_right_pin_gets_75() {
    let host = TestHost::start();
    let s = fleet(9);
    let mut t = host.signed_in(&s);
    let wrong = RequestSpec::sale(track2(&s), 1_000, Some("654321"));
    for (try_no, code) in [(1, "55"), (2, "55"), (3, "75")] {
        let r = t.send(&wrong).unwrap();
        assert_code(&host, &r, code);
        assert_reason(&host, &r, &[&format!("{try_no} of 3")]);
    }
    let right = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &right, "75");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(
        host.query_i64(
            "SELECT pin_tries_used FROM cards WHERE pan_hash = pan_hash(?1)",
            [&s.pan]
        ),
        3
    );
    host.assert_balanced();
}

#[test]
fn a_right_pin_after_a_wrong_one_is_approved_and_resets_the_count() {
    let host = TestHost::start();
    let s = fleet(10);
    let mut t = host.signed_in(&s);
    let wrong = RequestSpec::sale(track2(&s), 1_000, Some("111111"));
    assert_code(&host, &t.send(&wrong).unwrap(), "55");
    assert_code(&host, &t.send(&wrong).unwrap(), "55");
    assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
    assert_eq!(
        host.query_i64(
            "SELECT pin_tries_used FROM cards WHERE pan_hash = pan_hash(?1)",
            [&s.pan]
        ),
        0
    );
    assert_code(&host, &t.send(&wrong).unwrap(), "55");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 1_000);
    host.assert_balanced();
}

// ---- 8, 9. MAC, sign-in and batch ------------------------------------------------------

#[test]
fn a_request_with_a_wrong_mac_gets_a0_asking_for_sign_in_and_claims_no_trace() {
    let host = TestHost::start();
    let s = fleet(11);
    let mut t = host.signed_in(&s);
    let (good, _stan) = t.build(&sale(&s, 7_000)).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    t.send_raw(&bad).unwrap();
    let refused = t.receive().unwrap();
    assert_code(&host, &refused, "A0");
    assert_eq!(refused.header.processing_requirement(), 3);
    assert!(refused.field(38).is_none());
    assert_reason(&host, &refused, &["does not verify"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);

    // The same request with its right MAC is new to the host.
    t.send_raw(&good).unwrap();
    let approved = t.receive().unwrap();
    assert_code(&host, &approved, "00");
    assert_eq!(approved.header.processing_requirement(), 0);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 7_000);
    host.assert_balanced();
}

#[test]
fn a_request_from_a_terminal_that_never_signed_in_gets_a0() {
    let host = TestHost::start();
    let s = fleet(12);
    let mut t = host.terminal(&s.tid, &s.mid);
    assert!(!t.is_signed_in());
    let r = t.send(&RequestSpec::sale(track2(&s), 1_000, None)).unwrap();
    assert_code(&host, &r, "A0");
    assert_eq!(r.header.processing_requirement(), 3);
    assert_reason(&host, &r, &["has not signed in"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    // After signing in it works.
    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 1_000);
    host.assert_balanced();
}

#[test]
fn a_sale_in_a_batch_the_host_does_not_have_gets_77_asking_for_sign_in() {
    let host = TestHost::start();
    let s = fleet(13);
    let mut t = host.signed_in(&s);
    t.set_batch(7);
    let r = t.send(&sale(&s, 5_000)).unwrap();
    assert_code(&host, &r, "77");
    assert_eq!(r.header.processing_requirement(), 3);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_eq!(t.batch.value(), 1, "sign-in gives the host's batch");
    assert_code(&host, &t.send(&sale(&s, 5_000)).unwrap(), "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 5_000);
    host.assert_balanced();
}

// ---- 10. settlement --------------------------------------------------------------------

#[test]
fn settlement_compares_totals_and_batch_end_moves_the_terminal_to_the_next_batch() {
    let host = TestHost::start();
    let s = fleet(14);
    let mut t = host.signed_in(&s);
    let first = t.send(&sale(&s, 10_000)).unwrap();
    assert_code(&host, &first, "00");
    let second = t.send(&sale(&s, 25_000)).unwrap();
    assert_code(&host, &second, "00");
    let void = t.send(&void_of(&s, &t, &first, 10_000)).unwrap();
    assert_code(&host, &void, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 25_000);

    // Debits: both sales, the voided one too; credits: the void.
    let balanced = t.settle(35_000, 2, 10_000, 1).unwrap();
    assert_eq!(balanced.mti, "0510");
    let f48 = field(&balanced, 48);
    assert_eq!(&f48[30..31], "1", "balanced: {f48}");

    let unbalanced = t.settle(35_000, 2, 0, 0).unwrap();
    let f48 = field(&unbalanced, 48);
    assert_eq!(&f48[30..31], "2", "unbalanced: {f48}");
    assert_eq!(
        &f48[..30],
        "000000035000002000000010000001",
        "the host's own totals"
    );
    assert_reason(&host, &unbalanced, &["unbalanced"]);

    let old_batch = t.batch.value();
    let end = t.batch_end(true, 0).unwrap();
    assert_code(&host, &end, "00");
    let late = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &late, "77");
    assert_eq!(late.header.processing_requirement(), 3);

    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_eq!(t.batch.value(), old_batch + 1);
    let next = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &next, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 26_000);
    // The new batch starts from nothing but the new sale.
    let settled = t.settle(1_000, 1, 0, 0).unwrap();
    assert_eq!(&field(&settled, 48)[30..31], "1");
    host.assert_balanced();
}

// ---- 11. frames that do not decode -----------------------------------------------------

#[test]
fn a_truncated_frame_gets_30_and_the_host_keeps_serving() {
    let host = TestHost::start();
    let s = fleet(15);
    let mut body = Vec::new();
    body.extend_from_slice(&[0x60, 0x00, 0x03, 0x00, 0x00]); // TPDU
    body.extend_from_slice(&[0x60, 0x31, 0x00, 0x31, 0x00, 0x00]); // header
    body.extend_from_slice(&[0x02, 0x00]); // MTI 0200
    // Bitmap announcing fields 2, 3, 4 and 11; then only the length of field 2.
    body.extend_from_slice(&[0x70, 0x20, 0, 0, 0, 0, 0, 0]);
    body.push(0x19);
    let mut frame = (body.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);

    let mut broken = host.terminal(&s.tid, &s.mid);
    broken.send_raw(&frame).unwrap();
    let answer = broken.receive().unwrap();
    assert_eq!(answer.mti, "0210");
    assert_eq!(answer.code(), "30", "{:?}", answer.fields);
    assert_eq!(
        host.query_i64("SELECT count(*) FROM transactions WHERE code = '30'", [],),
        0,
        "nothing in the frame proves who sent it: answered, not recorded (invariant 9)"
    );
    assert!(host.stranger_reason(&answer).starts_with("format error"));

    // The same connection goes on, and so does a second one.
    assert_code(&host, &broken.sign_in().unwrap(), "00");
    let mut other = host.signed_in(&fleet(16));
    let r = other.send(&sale(&fleet(16), 2_000)).unwrap();
    assert_code(&host, &r, "00");
    let r = broken.send(&sale(&s, 3_000)).unwrap();
    assert_code(&host, &r, "00");
    assert_eq!(host.card_balance(&fleet(16).pan), OPENING_FEN - 2_000);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 3_000);
    host.assert_balanced();
}

// ---- 12. fault plan ----------------------------------------------------------------------

#[test]
fn an_injected_storage_error_answers_96_posts_nothing_and_the_next_sale_is_approved() {
    let host = TestHost::start_with_faults(
        "[[rules]]\naction = \"storage-error\"\nkind = \"sale\"\ncount_max = 1\n",
        Limits::default(),
    );
    let s = fleet(17);
    let mut t = host.signed_in(&s);
    let (frame, stan) = t.build(&sale(&s, 40_000)).unwrap();
    t.send_raw(&frame).unwrap();
    let failed = t.receive().unwrap();
    assert_eq!(failed.code(), "96", "{:?}", failed.fields);
    assert!(failed.field(38).is_none());
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(host.card_postings(&s.pan), 0);
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM transactions WHERE tid = ?1 AND stan = ?2",
            rusqlite::params![s.tid, stan],
        ),
        0,
        "the failed request was rolled back whole"
    );

    // Nothing claimed the trace: the terminal may send the same request again.
    t.send_raw(&frame).unwrap();
    let retried = t.receive().unwrap();
    assert_code(&host, &retried, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 40_000);
    let next = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &next, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 41_000);
    assert_eq!(host.card_postings(&s.pan), 2);
    host.assert_balanced();
}

#[test]
fn a_code_fault_answers_its_code_with_a_reason_naming_the_rule() {
    let host = TestHost::start_with_faults(
        "[[rules]]\nname = \"issuer says no\"\naction = \"code\"\ncode = \"05\"\nkind = \"sale\"\ncount_max = 1\n",
        Limits::default(),
    );
    let s = fleet(18);
    let mut t = host.signed_in(&s);
    let declined = t.send(&sale(&s, 9_000)).unwrap();
    assert_code(&host, &declined, "05");
    assert_reason(&host, &declined, &["issuer says no"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    let approved = t.send(&sale(&s, 9_000)).unwrap();
    assert_code(&host, &approved, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 9_000);
    host.assert_balanced();
}

/// A key source whose randomness ran out (the system's random device failing).
#[derive(Debug)]
struct NoRandomness;

impl poskit_host::engine::KeySource for NoRandomness {
    fn fill(&self, _out: &mut [u8]) -> Result<(), String> {
        Err("the system gave no randomness: device unavailable".into())
    }
}

#[test]
fn a_sign_in_without_randomness_for_its_keys_is_answered_96_and_issues_nothing() {
    let s = fleet(1);
    let mut config = poskit_host::config::HostConfig::default();
    config.engine.key_source = std::sync::Arc::new(NoRandomness);
    let host = TestHost::start_with(config);
    let mut t = host.terminal(&s.tid, &s.mid);
    let refused = t.sign_in().unwrap();
    assert_eq!(refused.code(), "96", "{:?}", refused.fields);
    assert!(refused.field(62).is_none(), "no keys in the answer");
    let reason = host.reason_of(&refused);
    assert!(
        reason.contains("cannot make new working keys: the system gave no randomness"),
        "{reason}"
    );
    let issued = host.query_i64(
        "SELECT count(*) FROM terminals WHERE tid = ?1 AND (pik IS NOT NULL OR mak IS NOT NULL)",
        [&s.tid],
    );
    assert_eq!(issued, 0, "no working keys stored");
    host.assert_balanced();
}
