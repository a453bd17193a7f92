//! End-to-end answers over loopback that flows.rs does not give: the card-number checks
//! (14), a zero amount (13), the daily payment limit (65), a wrong expiry (54), cross-day
//! reversals (12), the completion void, the reversal of a void, echo and sign-off, batch
//! upload details, an external issuer's card, and the fault plan's close, corrupt-mac and
//! issuer-timeout actions. Every test runs its own host with the demo data, talks to it
//! over TCP and ends with the ledger balanced. Fleet indexes 40..63 are this file's.

mod support;

use std::time::{Duration, Instant};

use poskit_domain::TransactionKind as K;
use poskit_host::client::{CardData, ClientError, RequestSpec, Response, TestTerminal};
use poskit_host::config::Limits;
use poskit_host::demo::{self, Scenario};
use support::*;

/// `s` with another card number (same expiry, PIN and terminal).
fn with_pan(s: &Scenario, pan: String) -> Scenario {
    Scenario { pan, ..s.clone() }
}

/// A completion void (0200 200000/06/21) of the completion answered by `completion`.
fn completion_void_of(
    s: &Scenario,
    t: &TestTerminal,
    completion: &Response,
    amount_fen: u64,
) -> RequestSpec {
    RequestSpec {
        kind: K::PreAuthCompletionVoid,
        ..void_of(s, t, completion, amount_fen)
    }
}

/// A management request of `kind` (echo, sign-off, batch upload) with its network
/// management code.
fn management(kind: K, network_code: &str) -> RequestSpec {
    RequestSpec {
        network_code: Some(network_code.into()),
        ..RequestSpec::new(kind)
    }
}

/// The state column of the transaction a response names by RRN.
fn state_of(host: &TestHost, response: &Response) -> String {
    host.db()
        .query_row(
            "SELECT state FROM transactions WHERE rrn = ?1",
            [field(response, 37)],
            |r| r.get(0),
        )
        .unwrap()
}

/// Whether the hold of the pre-authorization answered by `pre` is open.
fn hold_open(host: &TestHost, pre: &Response) -> bool {
    host.query_i64(
        "SELECT h.open FROM holds h JOIN transactions t ON t.id = h.txn_id WHERE t.rrn = ?1",
        [field(pre, 37)],
    ) == 1
}

/// A host whose configuration carries one fault rule for the sales of terminal `tid`.
fn host_with_fault(tid: &str, action: &str, limits: Limits) -> TestHost {
    let plan = format!(
        "[[rules]]\nname = \"{action} at {tid}\"\ntid = \"{tid}\"\nkind = \"sale\"\naction = \"{action}\"\ncount_max = 1\n"
    );
    TestHost::start_with_faults(&plan, limits)
}

// ---- 14: card numbers --------------------------------------------------------------------

#[test]
fn a_card_number_that_fails_its_luhn_check_gets_14_and_the_reason_says_so() {
    let host = TestHost::start();
    let s = fleet(40);
    let mut bad = s.pan.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == '9' {
        '0'
    } else {
        (last as u8 + 1) as char
    });
    let card = with_pan(&s, bad.clone());
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&card, 1_000)).unwrap();
    assert_code(&host, &r, "14");
    assert!(r.field(38).is_none());
    assert_reason(&host, &r, &["Luhn"]);
    assert!(
        !host.reason_of(&r).contains(&bad),
        "a reason never shows the whole card number"
    );
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    // The same terminal with the right number is approved.
    assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 1_000);
    host.assert_balanced();
}

#[test]
fn a_luhn_valid_card_number_of_a_bin_no_institution_issues_gets_14_naming_the_bin() {
    let host = TestHost::start();
    let s = fleet(41);
    let card = with_pan(&s, demo::demo_pan("888888", 1));
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&card, 1_000)).unwrap();
    assert_code(&host, &r, "14");
    assert_reason(&host, &r, &["no institution", "888888"]);
    assert_eq!(host.card_postings(&s.pan), 0);
    host.assert_balanced();
}

#[test]
fn a_luhn_valid_card_number_of_the_own_bin_without_a_card_record_gets_14_saying_no_record() {
    let host = TestHost::start();
    let s = fleet(42);
    let pan = demo::demo_pan(demo::OWN_BIN, 999_999);
    let card = with_pan(&s, pan.clone());
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&card, 1_000)).unwrap();
    assert_code(&host, &r, "14");
    assert_reason(&host, &r, &["no record of card"]);
    assert!(!host.reason_of(&r).contains(&pan));
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM cards WHERE pan_hash = pan_hash(?1)",
            [&pan]
        ),
        0,
        "no card was made up for it"
    );
    host.assert_balanced();
}

// ---- 13, 65, 54: amount, frequency, expiry -----------------------------------------------

#[test]
fn a_sale_of_amount_zero_gets_13_and_posts_nothing() {
    let host = TestHost::start();
    let s = fleet(43);
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 0)).unwrap();
    assert_code(&host, &r, "13");
    assert!(r.field(38).is_none());
    assert_reason(&host, &r, &["zero"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(host.card_postings(&s.pan), 0);
    host.assert_balanced();
}

#[test]
fn a_card_with_one_payment_a_day_gets_65_for_its_second_sale_of_the_day() {
    let host = TestHost::start();
    let s = scenario("frequency_limit");
    let opening = host.card_balance(&s.pan);
    let mut t = host.signed_in(&s);
    let first = t.send(&sale(&s, 300)).unwrap();
    assert_code(&host, &first, "00");
    let second = t.send(&sale(&s, 300)).unwrap();
    assert_code(&host, &second, "65");
    assert!(second.field(38).is_none());
    assert_reason(&host, &second, &["1 payments today", "limit"]);
    assert_eq!(host.card_balance(&s.pan), opening - 300, "debited once");
    assert_eq!(host.card_postings(&s.pan), 1);
    // Asking the balance is no payment.
    let inquiry = t.send(&balance_inquiry(&s)).unwrap();
    assert_code(&host, &inquiry, "00");
    assert_eq!(available_fen(&inquiry), opening - 300);
    host.assert_balanced();
}

#[test]
fn a_keyed_in_expiry_that_is_not_the_cards_gets_54() {
    let host = TestHost::start();
    let s = fleet(52);
    let mut t = host.signed_in(&s);
    let wrong = CardData::Manual {
        pan: s.pan.clone(),
        expiry: "2901".into(),
    };
    let r = t
        .send(&RequestSpec::sale(wrong, 4_000, Some(s.pin)))
        .unwrap();
    assert_code(&host, &r, "54");
    assert_reason(&host, &r, &["expiry", "2901", "not the card's"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    // Keyed in with its own expiry the card is approved.
    let right = t
        .send(&RequestSpec::sale(manual(&s), 4_000, Some(s.pin)))
        .unwrap();
    assert_code(&host, &right, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 4_000);
    host.assert_balanced();
}

#[test]
fn a_card_of_the_demo_external_issuer_is_approved_and_debited() {
    let host = TestHost::start();
    let s = scenario("external_issuer");
    let opening = host.card_balance(&s.pan);
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 2_500)).unwrap();
    assert_code(&host, &r, "00");
    assert_eq!(r.mac_ok, Some(true));
    assert!(r.field(38).is_some());
    assert_eq!(host.card_balance(&s.pan), opening - 2_500);
    assert_eq!(host.card_postings(&s.pan), 1);
    host.assert_balanced();
}

// ---- 12: a reversal on a later day -------------------------------------------------------

#[test]
fn a_reversal_sent_the_day_after_its_sale_gets_12_and_the_sale_stands() {
    let host = TestHost::start();
    let s = fleet(44);
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 70_000);
    let approved = t.send(&spec).unwrap();
    assert_code(&host, &approved, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 70_000);
    let batch = t.batch;
    drop(t);

    let host = host.next_day();
    let mut t = host.reconnect(&s);
    let signed = t.sign_in().unwrap();
    assert_code(&host, &signed, "00");
    assert_eq!(t.batch, batch, "the batch is kept across the restart");
    assert_ne!(field(&signed, 13), field(&approved, 13), "a day later");

    let reversal = t.send(&spec.reversal(approved.stan, "98")).unwrap();
    assert_eq!(reversal.mti, "0410");
    assert_code(&host, &reversal, "12");
    assert_reason(&host, &reversal, &["later day", "cross-day"]);
    assert_eq!(
        host.card_balance(&s.pan),
        OPENING_FEN - 70_000,
        "nothing reversed"
    );
    assert_eq!(host.card_postings(&s.pan), 1);
    assert_eq!(state_of(&host, &approved), "approved");
    host.assert_balanced();
}

// ---- completion void ---------------------------------------------------------------------

#[test]
fn a_completion_void_gives_the_money_back_and_reopens_the_hold_which_can_then_be_cancelled() {
    let host = TestHost::start();
    let s = fleet(45);
    let mut t = host.signed_in(&s);
    let pre = t.send(&pre_auth(&s, 300_000)).unwrap();
    assert_code(&host, &pre, "00");
    let completion = t
        .send(&of_pre_auth(K::PreAuthCompletion, &s, &pre, 250_000))
        .unwrap();
    assert_code(&host, &completion, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 250_000);
    assert!(!hold_open(&host, &pre), "the completion took the hold");

    let void = t
        .send(&completion_void_of(&s, &t, &completion, 250_000))
        .unwrap();
    assert_eq!(void.mti, "0210");
    assert_code(&host, &void, "00");
    assert_eq!(void.mac_ok, Some(true));
    assert_eq!(void.field(38), pre.field(38), "the authorization code");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN, "the money is back");
    assert_eq!(state_of(&host, &completion), "voided");
    assert_eq!(state_of(&host, &pre), "approved");
    assert!(hold_open(&host, &pre), "the pre-authorization holds again");
    let inquiry = t.send(&balance_inquiry(&s)).unwrap();
    assert_code(&host, &inquiry, "00");
    assert_eq!(available_fen(&inquiry), OPENING_FEN - 300_000);

    // Debits: the completion; credits: its void.
    let settled = t.settle(250_000, 1, 250_000, 1).unwrap();
    assert_eq!(&field(&settled, 48)[30..31], "1", "{:?}", settled.fields);

    let cancel = t
        .send(&of_pre_auth(K::PreAuthCancel, &s, &pre, 300_000))
        .unwrap();
    assert_code(&host, &cancel, "00");
    assert!(!hold_open(&host, &pre));
    let inquiry = t.send(&balance_inquiry(&s)).unwrap();
    assert_eq!(available_fen(&inquiry), OPENING_FEN);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(
        host.card_postings(&s.pan),
        2,
        "the completion and its undoing"
    );
    host.assert_balanced();
}

// ---- reversal of a void ------------------------------------------------------------------

#[test]
fn a_reversal_of_a_void_debits_the_card_again_and_the_sale_is_approved_again() {
    let host = TestHost::start();
    let s = fleet(46);
    let mut t = host.signed_in(&s);
    let approved = t.send(&sale(&s, 20_000)).unwrap();
    assert_code(&host, &approved, "00");
    let void_spec = void_of(&s, &t, &approved, 20_000);
    let void = t.send(&void_spec).unwrap();
    assert_code(&host, &void, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(state_of(&host, &approved), "voided");

    let reversal_spec = void_spec.reversal(void.stan, "98");
    let reversal = t.send(&reversal_spec).unwrap();
    assert_eq!(reversal.mti, "0410");
    assert_code(&host, &reversal, "00");
    assert_reason(&host, &reversal, &["reversal", "void", "applied"]);
    assert_eq!(
        host.card_balance(&s.pan),
        OPENING_FEN - 20_000,
        "the sale stands"
    );
    assert_eq!(state_of(&host, &approved), "approved");
    assert_eq!(state_of(&host, &void), "reversed");

    // Sent again, it is the same answer and changes nothing.
    let again = t.send(&reversal_spec).unwrap();
    assert_code(&host, &again, "00");
    assert_eq!(again.field(37), reversal.field(37));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 20_000);
    assert_eq!(host.card_postings(&s.pan), 3, "sale, void, void undone");

    // The batch holds the sale alone.
    let settled = t.settle(20_000, 1, 0, 0).unwrap();
    assert_eq!(&field(&settled, 48)[30..31], "1", "{:?}", settled.fields);
    // And the sale, approved again, can be voided again.
    let second_void = t.send(&void_of(&s, &t, &approved, 20_000)).unwrap();
    assert_code(&host, &second_void, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    host.assert_balanced();
}

// ---- echo and sign-off -------------------------------------------------------------------

#[test]
fn an_echo_is_answered_00_and_after_sign_off_sales_get_a0_until_the_next_sign_in() {
    let host = TestHost::start();
    let s = fleet(47);
    let mut t = host.signed_in(&s);
    let echo = t.send(&management(K::Echo, "301")).unwrap();
    assert_eq!(echo.mti, "0830");
    assert_code(&host, &echo, "00");
    assert_reason(&host, &echo, &["echo"]);

    let off = t.send(&management(K::SignOff, "002")).unwrap();
    assert_eq!(off.mti, "0830");
    assert_code(&host, &off, "00");
    assert_reason(&host, &off, &["signed off", "keys withdrawn"]);
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM terminals WHERE tid = ?1 AND pik IS NULL AND mak IS NULL",
            [&s.tid],
        ),
        1,
        "the working keys are gone"
    );

    let refused = t.send(&sale(&s, 3_000)).unwrap();
    assert_code(&host, &refused, "A0");
    assert_eq!(refused.header.processing_requirement(), 3);
    assert_reason(&host, &refused, &["has not signed in"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    // An echo needs no keys.
    assert_code(&host, &t.send(&management(K::Echo, "301")).unwrap(), "00");

    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_code(&host, &t.send(&sale(&s, 3_000)).unwrap(), "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 3_000);
    host.assert_balanced();
}

// ---- batch upload ------------------------------------------------------------------------

#[test]
fn an_uploaded_detail_is_kept_with_its_card_number_masked_and_batch_end_closes_the_settlement() {
    let host = TestHost::start();
    let s = fleet(48);
    let mut t = host.signed_in(&s);
    let approved = t.send(&sale(&s, 12_345)).unwrap();
    assert_code(&host, &approved, "00");
    let unbalanced = t.settle(1, 1, 0, 0).unwrap();
    assert_eq!(&field(&unbalanced, 48)[30..31], "2", "unbalanced");

    let item = format!("00{:06}{:0>20}{:012}", approved.stan, s.pan, 12_345);
    assert_eq!(item.len(), 40);
    let upload = t
        .send(&RequestSpec {
            field48: Some(format!("01{item}")),
            ..management(K::BatchUpload, "201")
        })
        .unwrap();
    assert_eq!(upload.mti, "0330");
    assert_code(&host, &upload, "00");
    assert_reason(&host, &upload, &["1 details recorded"]);

    let (tid, batch, stan, masked, amount): (String, i64, i64, String, i64) = host
        .db()
        .query_row(
            "SELECT tid, batch, stan, pan_masked, amount_fen FROM uploads",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(host.query_i64("SELECT count(*) FROM uploads", []), 1);
    assert_eq!(tid, s.tid);
    assert_eq!(batch, 1);
    assert_eq!(stan, i64::from(approved.stan));
    assert_eq!(amount, 12_345);
    let n = s.pan.len();
    assert_eq!(
        masked,
        format!("{}{}{}", &s.pan[..6], "*".repeat(n - 10), &s.pan[n - 4..])
    );
    assert!(!masked.contains(&s.pan[6..n - 4]), "{masked}");

    let end = t.batch_end(false, 1).unwrap();
    assert_code(&host, &end, "00");
    assert_reason(&host, &end, &["closed", "after batch upload", "1 details"]);
    let (balanced, uploaded, closed): (i64, Option<i64>, Option<i64>) = host
        .db()
        .query_row(
            "SELECT balanced, uploaded, closed_ms FROM settlements WHERE tid = ?1 AND batch = 1",
            [&s.tid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(balanced, 0);
    assert_eq!(uploaded, Some(1));
    assert!(closed.is_some_and(|ms| ms > 0), "{closed:?}");

    assert_code(&host, &t.sign_in().unwrap(), "00");
    assert_eq!(t.batch.value(), 2, "the next batch");
    host.assert_balanced();
}

// ---- fault plan from the configuration ---------------------------------------------------

#[test]
fn a_close_fault_after_an_approval_leaves_the_card_charged_while_the_terminal_saw_a_failure() {
    let s = fleet(49);
    let host = host_with_fault(&s.tid, "close", Limits::default());
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 33_000);
    let (frame, stan) = t.build(&spec).unwrap();
    t.send_raw(&frame).unwrap();
    match t.receive() {
        Err(ClientError::Io(_)) => {}
        other => panic!("the connection should close unanswered: {other:?}"),
    }
    assert_eq!(
        host.card_balance(&s.pan),
        OPENING_FEN - 33_000,
        "approved and posted"
    );
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM transactions WHERE tid = ?1 AND stan = ?2 AND code = '00' AND state = 'approved'",
            rusqlite::params![s.tid, stan],
        ),
        1
    );
    drop(t);

    // The terminal's way out: a new connection, sign-in, the reversal of that trace.
    let mut t = host.reconnect(&s);
    assert_code(&host, &t.sign_in().unwrap(), "00");
    let reversal = t.send(&spec.reversal(stan, "98")).unwrap();
    assert_code(&host, &reversal, "00");
    assert_reason(&host, &reversal, &["applied"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    host.assert_balanced();
}

#[test]
fn a_corrupt_mac_fault_sends_an_approval_whose_mac_does_not_verify() {
    let s = fleet(50);
    let host = host_with_fault(&s.tid, "corrupt-mac", Limits::default());
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 8_800)).unwrap();
    assert_code(&host, &r, "00");
    assert_eq!(r.mac_ok, Some(false));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 8_800);
    // count_max = 1: the next answer is whole.
    let next = t.send(&sale(&s, 1_200)).unwrap();
    assert_code(&host, &next, "00");
    assert_eq!(next.mac_ok, Some(true));
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 10_000);
    host.assert_balanced();
}

#[test]
fn an_issuer_timeout_fault_answers_98_after_the_issuer_timeout_and_posts_nothing() {
    let s = fleet(51);
    let host = host_with_fault(
        &s.tid,
        "issuer-timeout",
        Limits {
            issuer_timeout_ms: 200,
            ..Default::default()
        },
    );
    let mut t = host.signed_in(&s);
    let started = Instant::now();
    let r = t.send(&sale(&s, 5_000)).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the host waited for the issuer: {:?}",
        started.elapsed()
    );
    assert_code(&host, &r, "98");
    assert!(r.field(38).is_none());
    assert_reason(&host, &r, &["did not answer", "timeout"]);
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN);
    assert_eq!(host.card_postings(&s.pan), 0);
    let next = t.send(&sale(&s, 5_000)).unwrap();
    assert_code(&host, &next, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 5_000);
    host.assert_balanced();
}
