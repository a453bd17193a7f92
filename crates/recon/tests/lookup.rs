//! "Was the customer charged?" end to end: a host on loopback, real terminals, every
//! verdict produced by its real cause, before and after the day is reconciled.

#[path = "../../host/tests/support/mod.rs"]
mod support;

use poskit_domain::calendar::ClearingCut;
use poskit_host::client::Response;
use poskit_host::config::Limits;
use poskit_host::demo::Scenario;
use poskit_recon::lookup::{CardQuery, Query, lookup};
use poskit_recon::run::{Options, run};
use support::*;

fn external_at(i: u32) -> Scenario {
    Scenario {
        pan: scenario("external_issuer").pan,
        ..fleet(i)
    }
}

fn by_rrn(r: &Response) -> Query {
    Query {
        rrn: Some(field(r, 37)),
        ..Query::default()
    }
}

/// The verdict of the one transaction `q` finds.
fn verdict(host: &TestHost, state: Option<&rusqlite::Connection>, q: &Query) -> String {
    let found = lookup(&host.db(), state, q).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].verdict.verdict.to_owned()
}

fn reconcile(host: &TestHost) -> rusqlite::Connection {
    let cut = ClearingCut::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clearing = host.dir.join("clearing");
    let mut db = host.db();
    poskit_host::switch::export_day(&db, cut.day_of(now_ms), &clearing).unwrap();
    let state = rusqlite::Connection::open(host.dir.join("recon.db")).unwrap();
    let opts = Options {
        day: cut.day_of(now_ms),
        clearing_dir: clearing,
        cut,
        acquirer: "08010000".into(),
        near_cut_ms: 0,
        keep_matched: false,
        now_ms,
    };
    run(&mut db, &state, &opts).unwrap();
    state
}

#[test]
fn every_way_in_finds_an_approved_sale_and_says_charged() {
    let host = TestHost::start();
    let s = fleet(2);
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 12_345)).unwrap();
    assert_code(&host, &r, "00");
    let day: i64 = host.query_i64(
        "SELECT day FROM transactions WHERE rrn = ?1",
        [field(&r, 37)],
    );
    let hhmm: u32 = field(&r, 12)[..4].parse().unwrap();
    let minute = hhmm / 100 * 60 + hhmm % 100;
    let queries = [
        by_rrn(&r),
        Query {
            tid_trace: Some((s.tid.clone(), r.stan)),
            ..Query::default()
        },
        Query {
            auth_code: Some(field(&r, 38)),
            ..Query::default()
        },
        Query {
            card: Some(CardQuery {
                last4: s.pan[s.pan.len() - 4..].to_owned(),
                amount_fen: 12_345,
                day,
                from_minute: Some(minute.saturating_sub(1)),
                to_minute: Some(minute + 1),
            }),
            ..Query::default()
        },
    ];
    for q in &queries {
        assert_eq!(verdict(&host, None, q), "charged", "{q:?}");
    }
    let found = lookup(&host.db(), None, &queries[0]).unwrap();
    assert!(found[0].transaction["pan"].as_str().unwrap().contains('*'));
    // Another merchant: nothing.
    let other = Query {
        mid: Some("898310048169999".into()),
        ..by_rrn(&r)
    };
    assert!(lookup(&host.db(), None, &other).unwrap().is_empty());
}

#[test]
fn declined_reversed_and_voided_sales_are_not_charged() {
    let host = TestHost::start();
    let s = fleet(3);
    let mut t = host.signed_in(&s);
    let declined = scenario("insufficient_funds");
    let mut d = host.signed_in(&declined);
    let r = d.send(&sale(&declined, declined.amount_fen)).unwrap();
    assert_code(&host, &r, "51");
    assert_eq!(verdict(&host, None, &by_rrn(&r)), "not_charged");

    let spec = sale(&s, 2_000);
    let r = t.send(&spec).unwrap();
    let rev = t.send(&spec.reversal(r.stan, "98")).unwrap();
    assert_code(&host, &rev, "00");
    let found = lookup(&host.db(), None, &by_rrn(&rev)).unwrap();
    assert_eq!(
        found[0].transaction["id"].as_i64().unwrap().to_string(),
        field(&r, 37).trim_start_matches('0')
    );
    assert_eq!(
        found[0].verdict.verdict, "not_charged",
        "found from the reversal's own RRN"
    );
    assert!(found[0].chain.iter().any(|s| s["step"] == "reversal"));

    let r = t.send(&sale(&s, 3_000)).unwrap();
    let v = t.send(&void_of(&s, &t, &r, 3_000)).unwrap();
    assert_code(&host, &v, "00");
    assert_eq!(verdict(&host, None, &by_rrn(&r)), "not_charged");
}

#[test]
fn a_late_approval_is_unknown_until_clearing_then_refunded_by_the_credit_adjustment() {
    let s = external_at(4);
    let plan = format!(
        "[[rules]]\ntid = \"{}\"\nkind = \"sale\"\naction = \"late-answer\"\ncount_max = 1\n\
         [[rules]]\ntid = \"{}\"\nkind = \"sale\"\nreversal = true\naction = \"switch-lose-reversal\"\ncount_max = 1\n",
        s.tid, s.tid
    );
    let host = TestHost::start_with_faults(&plan, Limits::default());
    let mut t = host.signed_in(&s);
    let late = t.send(&sale(&s, 4_000)).unwrap();
    assert_code(&host, &late, "98");
    let spec = sale(&s, 5_000);
    let lost = t.send(&spec).unwrap();
    t.send(&spec.reversal(lost.stan, "98")).unwrap();
    assert_eq!(
        verdict(&host, None, &by_rrn(&late)),
        "unknown_until_clearing"
    );
    assert_eq!(verdict(&host, None, &by_rrn(&lost)), "not_charged");

    let state = reconcile(&host);
    for r in [&late, &lost] {
        let found = lookup(&host.db(), Some(&state), &by_rrn(r)).unwrap();
        let m = &found[0];
        assert_eq!(m.verdict.verdict, "refunded", "{m:#?}");
        for step in ["clearing", "reconciliation_break", "credit_adjustment"] {
            assert!(
                m.chain.iter().any(|s| s["step"] == step),
                "{step}: {:#?}",
                m.chain
            );
        }
        assert!(!m.verdict.say_to_customer.zh.is_empty());
    }
}

#[test]
fn a_pre_authorization_holds_and_its_completion_charges() {
    let host = TestHost::start();
    let s = fleet(5);
    let mut t = host.signed_in(&s);
    let pre = t.send(&pre_auth(&s, 8_000)).unwrap();
    assert_code(&host, &pre, "00");
    assert_eq!(verdict(&host, None, &by_rrn(&pre)), "not_charged");
    let done = t
        .send(&of_pre_auth(
            poskit_domain::TransactionKind::PreAuthCompletion,
            &s,
            &pre,
            7_000,
        ))
        .unwrap();
    assert_code(&host, &done, "00");
    assert_eq!(verdict(&host, None, &by_rrn(&pre)), "charged");
    assert_eq!(
        verdict(&host, None, &by_rrn(&done)),
        "charged",
        "found from the completion"
    );
}
