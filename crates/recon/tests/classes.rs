//! Every break class from records built the way each side's cause leaves them.

use poskit_domain::{AmountFen, Mid, ResponseCode, Rrn, Tid};
use poskit_recon::*;

const END_MS: i64 = 1_000_000_000;

fn key(stan: u32) -> SwitchKey {
    SwitchKey::parse("08010000", stan, "1204103000").unwrap()
}

/// The one merchant of these records, in a table of its own.
fn merchants() -> (Merchants, MerchantRef) {
    let mut merchants = Merchants::default();
    let mid = merchants.add(Mid::parse("898310048160001").unwrap());
    (merchants, mid)
}

fn host(stan: u32, state: HostState, code: &str) -> HostTxn {
    HostTxn {
        id: i64::from(stan),
        key: Some(key(stan)),
        direction: Direction::Debit,
        tid: Tid::parse("10000001").unwrap(),
        mid: merchants().1,
        batch: 1,
        stan: stan + 100,
        amount: AmountFen::new(5_000).unwrap(),
        pan: MaskedPan::parse("6222020000000001").unwrap(),
        code: ResponseCode::parse(code).unwrap_or(ResponseCode(*b"  ")),
        state,
        created_ms: 0,
    }
}

fn switch(stan: u32, line: u32) -> SwitchTxn {
    let h = host(stan, HostState::Approved, "00");
    SwitchTxn {
        line,
        key: key(stan),
        direction: Direction::Debit,
        amount: h.amount,
        pan: h.pan,
        tid: h.tid,
        mid: h.mid,
        rrn: Rrn::parse(&format!("{stan:012}")).unwrap(),
        code: ResponseCode::APPROVED,
        is_reversal: false,
        reversed: false,
        voided: false,
    }
}

fn day(host: Vec<HostTxn>, switch: Vec<SwitchTxn>) -> Day {
    Day {
        date: "20261204".into(),
        end_ms: END_MS,
        near_cut_ms: 600_000,
        host,
        switch,
        merchants: std::sync::Arc::new(merchants().0),
        ..Day::default()
    }
}

fn classes(found: &Found) -> Vec<(Class, Action)> {
    found.breaks.iter().map(|b| (b.class, b.action)).collect()
}

#[test]
fn both_sides_approved_is_matched_and_no_break() {
    let found = compare(day(
        vec![host(1, HostState::Approved, "00")],
        vec![switch(1, 1)],
    ));
    assert_eq!(found.matched, 1);
    assert!(found.breaks.is_empty());
}

#[test]
fn a_late_approval_is_class_c_and_gets_a_credit_adjustment() {
    let found = compare(day(
        vec![host(1, HostState::Declined, "98")],
        vec![switch(1, 1)],
    ));
    assert_eq!(classes(&found), [(Class::C, Action::CreditAdjustment)]);
    assert_eq!(found.breaks[0].amount_fen, 5_000);
    assert_eq!(found.breaks[0].priority, 1);
}

#[test]
fn the_switch_alone_is_class_b_and_the_host_alone_class_e() {
    let found = compare(day(
        vec![host(2, HostState::Approved, "00")],
        vec![switch(1, 1)],
    ));
    let mut got = classes(&found);
    got.sort_by_key(|c| c.0);
    assert_eq!(
        got,
        [
            (Class::B, Action::OpenItem),
            (Class::E, Action::ReversalToSwitch)
        ]
    );
}

#[test]
fn near_the_cut_off_class_e_waits_for_the_next_day() {
    let mut h = host(1, HostState::Approved, "00");
    h.created_ms = END_MS - 1_000;
    let found = compare(day(vec![h], vec![]));
    assert_eq!(classes(&found), [(Class::E, Action::AwaitNextDay)]);
    // The next day's file has it: the break is resolved, and it is no class B there.
    let next = compare(Day {
        awaited: vec![(found.breaks[0].id.clone(), h)],
        ..day(vec![], vec![switch(1, 7)])
    });
    assert!(next.breaks.is_empty(), "{:?}", next.breaks);
    assert_eq!(next.resolved.len(), 1);
}

#[test]
fn a_field_that_differs_is_class_g_naming_the_field() {
    let mut s = switch(1, 1);
    s.amount = AmountFen::new(5_100).unwrap();
    let found = compare(day(vec![host(1, HostState::Approved, "00")], vec![s]));
    assert_eq!(classes(&found), [(Class::G, Action::OpenItem)]);
    assert_eq!(found.breaks[0].amount_fen, 100);
    assert!(found.breaks[0].fields_differing[0].starts_with("amount_fen"));
}

#[test]
fn two_switch_records_of_one_key_are_a_duplicate() {
    let found = compare(day(
        vec![host(1, HostState::Approved, "00")],
        vec![switch(1, 1), switch(1, 2)],
    ));
    assert_eq!(classes(&found), [(Class::Duplicate, Action::OpenItem)]);
    assert_eq!(found.matched, 1, "the first copy matches");
}

#[test]
fn a_reversal_on_one_side_only_is_one_sided_either_way() {
    let found = compare(day(
        vec![host(1, HostState::Reversed, "00")],
        vec![switch(1, 1)],
    ));
    assert_eq!(
        classes(&found),
        [(Class::OneSidedReversal, Action::CreditAdjustment)]
    );
    let mut s = switch(1, 1);
    s.reversed = true;
    let found = compare(day(vec![host(1, HostState::Approved, "00")], vec![s]));
    assert_eq!(
        classes(&found),
        [(Class::OneSidedReversal, Action::OpenItem)]
    );
    // Both reversed: they agree.
    let found = compare(day(vec![host(1, HostState::Reversed, "00")], vec![s]));
    assert!(found.breaks.is_empty());
}

#[test]
fn a_pending_host_transaction_is_d_or_f() {
    let found = compare(day(
        vec![host(1, HostState::Pending, "")],
        vec![switch(1, 1)],
    ));
    assert_eq!(classes(&found), [(Class::D, Action::OpenItem)]);
    let found = compare(day(vec![host(1, HostState::Pending, "")], vec![]));
    assert_eq!(classes(&found), [(Class::F, Action::OpenItem)]);
}

#[test]
fn the_fallback_key_pairs_records_whose_institution_differs() {
    let mut s = switch(1, 1);
    s.key = SwitchKey::parse("48020000", 1, "1204103000").unwrap();
    let found = compare(day(vec![host(1, HostState::Approved, "00")], vec![s]));
    assert!(found.breaks.is_empty(), "{:?}", found.breaks);
    assert_eq!(found.matched, 1);
}

#[test]
fn a_batch_whose_totals_differ_from_the_hosts_is_one_break_with_the_fields() {
    let totals = |fen| Totals {
        debit_fen: fen,
        debit_count: 1,
        credit_fen: 0,
        credit_count: 0,
    };
    let s = Settlement {
        tid: Tid::parse("10000001").unwrap(),
        batch: 1,
        terminal: totals(5_000),
        host: totals(0),
        balanced: false,
        closed: true,
        uploads: vec![Upload {
            stan: 7,
            pan_masked: "622202******0001".into(),
            amount_fen: 5_000,
        }],
    };
    let found = compare(Day {
        settlements: vec![s],
        ..day(vec![], vec![])
    });
    assert_eq!(classes(&found), [(Class::BatchTotal, Action::OpenItem)]);
    assert_eq!(
        found.breaks[0].fields_differing,
        ["debit_fen: terminal 5000 host 0"]
    );
}
