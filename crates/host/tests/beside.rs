//! The writer keeps master data (terminals, merchants, cards, BINs) in memory and the
//! connections keep each terminal's working keys: changes made beside a running host — by
//! another connection to its database, or by the terminal signing in on another
//! connection — count from the next request.

mod support;

use support::*;

#[test]
fn a_card_reported_lost_beside_the_running_host_is_refused_on_its_next_sale() {
    let host = TestHost::start();
    let s = fleet(50);
    let mut t = host.signed_in(&s);
    assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
    let balance = host.card_balance(&s.pan);

    // As `poskit host import` or an operator's SQL would: another connection commits.
    let changed = host
        .db()
        .execute(
            "UPDATE cards SET status = 'lost' WHERE pan_hash = pan_hash(?1)",
            [&s.pan],
        )
        .unwrap();
    assert_eq!(changed, 1);

    let refused = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &refused, "41");
    assert_eq!(host.card_balance(&s.pan), balance, "nothing posted");
    host.assert_balanced();
}

#[test]
fn a_merchant_deactivated_beside_the_running_host_gets_03_from_its_next_request() {
    let host = TestHost::start();
    let s = fleet(51);
    let mut t = host.signed_in(&s);
    assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
    host.db()
        .execute(
            "UPDATE merchants SET status = 'inactive' WHERE mid = ?1",
            [&s.mid],
        )
        .unwrap();
    let refused = t.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &refused, "03");
    assert_reason(&host, &refused, &["inactive"]);
    host.db()
        .execute(
            "UPDATE merchants SET status = 'active' WHERE mid = ?1",
            [&s.mid],
        )
        .unwrap();
    assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
}

#[test]
fn after_a_sign_in_on_a_second_connection_the_old_keys_are_refused_and_the_new_ones_approved() {
    let host = TestHost::start();
    let s = fleet(52);
    let mut first = host.signed_in(&s);
    assert_code(&host, &first.send(&sale(&s, 1_000)).unwrap(), "00");

    // The same terminal's application on another connection, its traces further on.
    let mut second = host.terminal(&s.tid, &s.mid);
    second.set_next_stan(100);
    assert_code(&host, &second.sign_in().unwrap(), "00");
    let stale = first.send(&sale(&s, 1_000)).unwrap();
    assert_code(&host, &stale, "A0");
    assert_reason(&host, &stale, &["does not verify"]);
    let fresh = second.send(&sale(&s, 2_000)).unwrap();
    assert_code(&host, &fresh, "00");
    assert_eq!(host.card_balance(&s.pan), OPENING_FEN - 3_000);
    host.assert_balanced();
}

#[test]
fn a_wrong_pin_counts_at_once_even_with_the_card_kept_in_memory() {
    let host = TestHost::start();
    let s = fleet(53);
    let mut t = host.signed_in(&s);
    let tries_max = host.query_i64(
        "SELECT pin_tries_max FROM cards WHERE pan_hash = pan_hash(?1)",
        [&s.pan],
    );
    assert_code(&host, &t.send(&sale(&s, 100)).unwrap(), "00");
    let mut wrong = sale(&s, 100);
    wrong.pin = Some(poskit_security::Pin::new("000000").unwrap());
    for used in 1..tries_max {
        let r = t.send(&wrong).unwrap();
        assert_code(&host, &r, "55");
        assert_reason(&host, &r, &[&format!("{used} of {tries_max}")]);
    }
    assert_code(&host, &t.send(&wrong).unwrap(), "75");
    assert_code(&host, &t.send(&sale(&s, 100)).unwrap(), "75");
}

#[test]
fn a_merchants_daily_limit_counts_the_days_sales_and_a_void_or_reversal_gives_the_room_back() {
    let host = TestHost::start();
    let s = fleet(56);
    let mut t = host.signed_in(&s);
    host.db()
        .execute(
            "UPDATE merchants SET daily_limit_fen = 10000 WHERE mid = ?1",
            [&s.mid],
        )
        .unwrap();
    let first = t.send(&sale(&s, 6_000)).unwrap();
    assert_code(&host, &first, "00");
    let over = t.send(&sale(&s, 5_000)).unwrap();
    assert_code(&host, &over, "61");
    assert_reason(
        &host,
        &over,
        &["has taken 60.00 today", "daily limit of 100.00"],
    );

    assert_code(
        &host,
        &t.send(&void_of(&s, &t, &first, 6_000)).unwrap(),
        "00",
    );
    let spec = sale(&s, 5_000);
    let second = t.send(&spec).unwrap();
    assert_code(&host, &second, "00");
    assert_code(
        &host,
        &t.send(&spec.reversal(second.stan, "98")).unwrap(),
        "00",
    );
    let third = t.send(&sale(&s, 9_000)).unwrap();
    assert_code(&host, &third, "00");
    let beyond = t.send(&sale(&s, 1_001)).unwrap();
    assert_code(&host, &beyond, "61");
    assert_reason(&host, &beyond, &["has taken 90.00 today"]);
    host.assert_balanced();

    // The kept total is what `host check` compares with the transactions.
    host.db()
        .execute(
            "UPDATE merchant_days SET debit_fen = debit_fen + 1 WHERE mid = ?1",
            [&s.mid],
        )
        .unwrap();
    host.assert_check_names(&format!("merchant {}", s.mid));
}

#[test]
fn a_void_of_a_sale_in_a_settled_batch_gets_12_within_a_month_of_batches_and_25_beyond() {
    let host = TestHost::start();
    let s = fleet(57);
    let mut t = host.signed_in(&s);
    let sale_answer = t.send(&sale(&s, 3_000)).unwrap();
    assert_code(&host, &sale_answer, "00");
    let void = void_of(&s, &t, &sale_answer, 3_000);

    // Batches moved on (as settlements would move them); the terminal adopts the host's
    // batch at its next sign-in.
    let batch_at = |batch: u32, t: &mut poskit_host::client::TestTerminal| {
        host.db()
            .execute(
                "UPDATE terminals SET batch = ?2 WHERE tid = ?1",
                rusqlite::params![&s.tid, batch],
            )
            .unwrap();
        assert_code(&host, &t.sign_in().unwrap(), "00");
        assert_eq!(t.batch.value(), batch);
    };
    let last_looked = 1 + poskit_host::engine::VOID_SETTLED_BATCHES_LOOKED_MAX;
    batch_at(last_looked, &mut t);
    let settled = t.send(&void).unwrap();
    assert_code(&host, &settled, "12");
    assert_reason(
        &host,
        &settled,
        &["settled batch 000001", "refund it instead"],
    );

    batch_at(last_looked + 1, &mut t);
    let beyond = t.send(&void).unwrap();
    assert_code(&host, &beyond, "25");
    assert_reason(&host, &beyond, &["in the open batch or the 31 before it"]);
    assert_eq!(
        host.card_balance(&s.pan),
        OPENING_FEN - 3_000,
        "the sale stands"
    );
    host.assert_balanced();
}
