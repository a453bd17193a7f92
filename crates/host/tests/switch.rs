//! The switch's own record (issue 19 §1): what a host on loopback forwarded for cards of
//! external issuers, and how the fault plan's divergences make it differ from the
//! acquirer's ledger. On-us cards never reach it.

mod support;

use poskit_host::config::Limits;
use poskit_host::switch::forward_stan_of;
use support::*;

/// (code, amount, reversed, voided, clearing day) of the switch's messages with this RRN.
fn switch_rows(host: &TestHost, rrn: &str) -> Vec<(String, i64, bool, bool, i64)> {
    let db = host.db();
    let mut stmt = db
        .prepare(
            "SELECT code, amount_fen, reversed, voided, clearing_day FROM switch_messages
             WHERE rrn = ?1 ORDER BY id",
        )
        .unwrap();
    stmt.query_map([rrn], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn host_with_rule(action: &str, extra: &str) -> TestHost {
    let s = scenario("external_issuer");
    let plan = format!(
        "[[rules]]\nname = \"{action}\"\ncard = \"{}\"\naction = \"{action}\"\ncount_max = 1\n{extra}",
        s.pan
    );
    TestHost::start_with_faults(&plan, Limits::default())
}

#[test]
fn an_external_cards_sale_is_recorded_by_the_switch_with_the_acquirers_own_stan() {
    let host = TestHost::start();
    let s = scenario("external_issuer");
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 2_500)).unwrap();
    assert_code(&host, &r, "00");
    let rrn = field(&r, 37);
    assert_eq!(switch_rows(&host, &rrn).len(), 1);
    let (id, fwd): (i64, bool) = host
        .db()
        .query_row(
            "SELECT id, fwd FROM transactions WHERE rrn = ?1",
            [&rrn],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(fwd, "the ledger knows it went through the switch");
    let (stan, time, pan): (u32, String, String) = host
        .db()
        .query_row(
            "SELECT fwd_stan, fwd_time, pan_masked FROM switch_messages WHERE rrn = ?1",
            [&rrn],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(stan, forward_stan_of(id));
    assert_eq!(time.len(), 10);
    assert_eq!(&time[..4], field(&r, 13), "transmission date is the host's");
    assert!(
        pan.contains('*'),
        "the switch's record keeps the card masked"
    );
}

#[test]
fn an_on_us_sale_never_reaches_the_switch() {
    let host = TestHost::start();
    let s = fleet(1);
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &r, "00");
    assert_eq!(
        host.query_i64("SELECT count(*) FROM switch_messages", []),
        0
    );
}

#[test]
fn a_slow_issuers_late_approval_is_recorded_by_the_switch_while_the_host_said_98() {
    let host = TestHost::start_with_faults(
        "",
        Limits {
            issuer_timeout_ms: 100,
            ..Default::default()
        },
    );
    let s = scenario("issuer_timeout");
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 3_000)).unwrap();
    assert_code(&host, &r, "98");
    let rows = switch_rows(&host, &field(&r, 37));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].0, "00",
        "the issuer approved after the host gave up"
    );
}

#[test]
fn a_reversal_lost_before_the_switch_leaves_the_switchs_original_standing() {
    let host = host_with_rule("switch-lose-reversal", "reversal = true\n");
    let s = scenario("external_issuer");
    let mut t = host.signed_in(&s);
    let spec = sale(&s, 4_000);
    let approved = t.send(&spec).unwrap();
    assert_code(&host, &approved, "00");
    let reversed = t.send(&spec.reversal(approved.stan, "98")).unwrap();
    assert_code(&host, &reversed, "00");
    let rows = switch_rows(&host, &field(&approved, 37));
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].2, "the switch never saw the reversal");
    assert_eq!(
        host.query_i64(
            "SELECT count(*) FROM switch_messages WHERE mti = '0400'",
            []
        ),
        0
    );

    // Without the fault, the reversal flags the switch's original R.
    let again = sale(&s, 4_100);
    let approved = t.send(&again).unwrap();
    t.send(&again.reversal(approved.stan, "98")).unwrap();
    let rows = switch_rows(&host, &field(&approved, 37));
    assert!(rows[0].2, "reversed at the switch too");
}

#[test]
fn duplicates_amount_differences_and_next_day_stamps_come_from_the_plan() {
    for (action, extra, check) in [
        ("switch-duplicate", "", 0),
        ("switch-amount", "delta_fen = 100\n", 1),
        ("switch-next-day", "", 2),
    ] {
        let host = host_with_rule(action, extra);
        let s = scenario("external_issuer");
        let mut t = host.signed_in(&s);
        let r = t.send(&sale(&s, 5_000)).unwrap();
        assert_code(&host, &r, "00");
        let normal = t.send(&sale(&s, 5_000)).unwrap();
        let rows = switch_rows(&host, &field(&r, 37));
        let base = switch_rows(&host, &field(&normal, 37));
        assert_eq!(base.len(), 1, "{action}: once only");
        match check {
            0 => assert_eq!(rows.len(), 2, "recorded twice"),
            1 => assert_eq!(rows[0].1, 5_100, "the switch clears 1 yuan more"),
            _ => assert_eq!(rows[0].4, base[0].4 + 1, "one clearing day later"),
        }
    }
}
