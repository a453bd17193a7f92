//! Durability costs one fsync per group of requests, not one per request.

mod support;

use std::sync::atomic::Ordering;

use poskit_host::client::RequestSpec;
use support::*;

#[test]
fn concurrent_pipelined_sales_are_committed_in_groups() {
    let host = TestHost::start();
    let terminals: Vec<_> = (30..34u32)
        .map(|i| (fleet(i), host.signed_in(&fleet(i))))
        .collect();
    let before_groups = host.shared.groups_committed.load(Ordering::Relaxed);
    let before_requests = host.shared.requests_committed.load(Ordering::Relaxed);
    let threads: Vec<_> = terminals
        .into_iter()
        .map(|(s, mut t)| {
            std::thread::spawn(move || {
                let mut burst = Vec::new();
                for n in 0..32u64 {
                    let (frame, _) = t
                        .build(&RequestSpec::sale(manual(&s), 100 + n, Some(s.pin)))
                        .unwrap();
                    burst.extend_from_slice(&frame);
                }
                t.send_raw(&burst).unwrap();
                (0..32)
                    .map(|_| t.receive().unwrap().code().to_owned())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        let codes = t.join().unwrap();
        assert!(codes.iter().all(|c| c == "00"), "{codes:?}");
    }
    let groups = host.shared.groups_committed.load(Ordering::Relaxed) - before_groups;
    let requests = host.shared.requests_committed.load(Ordering::Relaxed) - before_requests;
    assert_eq!(requests, 128);
    assert!(
        groups * 2 <= requests,
        "{requests} requests took {groups} commits: group commit is not grouping"
    );
    eprintln!("{requests} sales committed in {groups} groups");
    host.assert_balanced();
}

#[test]
fn a_database_of_schema_1_is_upgraded_with_its_open_holds_and_day_totals_counted_and_fewer_indexes()
{
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let s = fleet(35);
    let pre_auth_fen = 180_000u64;
    // Voided after the upgrade: its postings are undone leg by leg.
    let sold = {
        let host = TestHost::start_in(dir.clone(), Default::default());
        let mut t = host.signed_in(&s);
        let spec = RequestSpec {
            kind: poskit_domain::TransactionKind::PreAuth,
            ..RequestSpec::sale(manual(&s), pre_auth_fen, Some(s.pin))
        };
        assert_eq!(t.send(&spec).unwrap().code(), "00");
        let first = t.send(&sale(&s, 1_500)).unwrap();
        assert_eq!(first.code(), "00");
        let (second_frame, _) = t.build(&sale(&s, 2_500)).unwrap();
        t.send_raw(&second_frame).unwrap();
        let second = t.receive().unwrap();
        assert_eq!(second.code(), "00");
        (first, t.batch.value(), second_frame, second)
    };
    // Answers as an older poskit stored them: frames, in `response` (schema 6 keeps fields).
    {
        let db = rusqlite::Connection::open(dir.join(poskit_host::store::sqlite::DB_FILE)).unwrap();
        let stored: Vec<(i64, Vec<u8>)> = db
            .prepare("SELECT id, reply FROM transactions WHERE reply IS NOT NULL")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(stored.len() >= 4, "sign-in, pre-auth, two sales");
        for (id, reply) in stored {
            let reply = poskit_host::response::Reply::from_stored(&reply).expect("a stored reply");
            let approved_with_mac =
                reply.get(39) == Some(b"00".as_slice()) && reply.get(4).is_some();
            let (frame, refused) = reply.encode_with_mac_slot(approved_with_mac);
            assert!(refused.is_empty());
            db.execute(
                "UPDATE transactions SET response = ?2 WHERE id = ?1",
                rusqlite::params![id, frame],
            )
            .unwrap();
        }
        db.execute_batch(
            "ALTER TABLE transactions DROP COLUMN reply;
             ALTER TABLE merchants DROP COLUMN currencies;
             DROP INDEX transactions_created;
             ALTER TABLE transactions DROP COLUMN fwd;
             DROP TABLE switch_messages;
             DROP TABLE switch_disputes;
             DROP TABLE recon_adjustments;
             DROP TABLE retained_cards;
             DROP TABLE dispute_events;
             DROP TABLE disputes;
             ALTER TABLE cards DROP COLUMN card_type;
             DROP INDEX transactions_auth_code;
             DROP INDEX transactions_day_amount;
             DROP INDEX transactions_original;
             DROP INDEX uploads_trace;",
        )
        .unwrap();
    }
    // Back to schema 1 as an older poskit left it: no held amount beside the balance, no
    // day totals.
    {
        let db = rusqlite::Connection::open(dir.join(poskit_host::store::sqlite::DB_FILE)).unwrap();
        db.execute_batch(
            "CREATE TABLE postings_1 (
                 id INTEGER PRIMARY KEY,
                 txn_id INTEGER NOT NULL REFERENCES transactions(id),
                 account INTEGER NOT NULL REFERENCES accounts(id),
                 amount_fen INTEGER NOT NULL
             );
             INSERT INTO postings_1 (txn_id, account, amount_fen)
                 SELECT txn_id, account, amount_fen FROM postings ORDER BY txn_id, leg;
             DROP TABLE postings;
             ALTER TABLE postings_1 RENAME TO postings;
             CREATE INDEX postings_txn ON postings (txn_id);
             ALTER TABLE accounts DROP COLUMN held_fen;
             DROP TABLE merchant_days;
             DROP TABLE card_days;
             CREATE INDEX transactions_mid_day ON transactions (mid, day);
             CREATE INDEX transactions_card_day ON transactions (card_id, day);
             DROP INDEX transactions_pre_auth;
             CREATE INDEX transactions_trace ON transactions (tid, mid, stan);
             CREATE INDEX transactions_rrn ON transactions (mid, rrn);
             CREATE INDEX transactions_auth ON transactions (mid, card_id, auth_code);
             CREATE INDEX transactions_batch ON transactions (tid, batch);
             CREATE INDEX postings_account ON postings (account);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let host = TestHost::start_in(dir, Default::default());
    // A sale stored as a frame is answered again with that frame (its MAC recomputed, with
    // the same key: no sign-in since).
    let (first, batch, second_frame, second) = sold;
    let mut t = host.reconnect(&s);
    t.send_raw(&second_frame).unwrap();
    let again = t.receive().unwrap();
    assert_eq!(
        again.frame, second.frame,
        "the first answer, byte for byte (its MAC too)"
    );
    let held: i64 = host
        .db()
        .query_row(
            "SELECT a.held_fen FROM accounts a JOIN cards c ON c.account = a.id WHERE c.pan_hash = pan_hash(?1)",
            [&s.pan],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held, pre_auth_fen as i64, "the open hold is counted");
    let indexes: Vec<String> = host
        .db()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'transactions_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        // transactions_created: schema 9's, for reconciliation's reads by time; the rest
        // schema 10's, for lookups.
        [
            "transactions_auth_code",
            "transactions_created",
            "transactions_day_amount",
            "transactions_key",
            "transactions_original",
            "transactions_pre_auth"
        ],
        "schemas 3 and 4: the indexes an approval no longer needs are gone"
    );
    let (debit_fen, count) = (
        host.query_i64(
            "SELECT debit_fen FROM merchant_days WHERE mid = ?1",
            [&s.mid],
        ),
        host.query_i64(
            "SELECT d.debit_count FROM card_days d JOIN cards c ON c.id = d.card_id WHERE c.pan_hash = pan_hash(?1)",
            [&s.pan],
        ),
    );
    assert_eq!(
        debit_fen, 4_000,
        "schema 4: the merchant's sales of the day"
    );
    assert_eq!(
        count, 3,
        "schema 4: the card's payments of the day (pre-auth and two sales)"
    );
    host.assert_balanced();
    // Schema 5: postings keyed by (transaction, leg), the legs in the order they were
    // posted; a void undoes the sale's legs.
    let legs: Vec<(i64, i64)> = host
        .db()
        .prepare(
            "SELECT p.leg, p.amount_fen FROM postings p JOIN transactions t ON t.id = p.txn_id
             WHERE t.kind = 'sale' AND t.amount_fen = 1500 ORDER BY p.leg",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        legs,
        [(0, -1_500), (1, 1_500)],
        "card debited, then merchant credited"
    );
    assert_eq!(t.sign_in().unwrap().code(), "00");
    assert_eq!(t.batch.value(), batch);
    let mut void = void_of(&s, &t, &first, 1_500);
    void.original_batch = Some(batch);
    assert_code(&host, &t.send(&void).unwrap(), "00");
    assert_eq!(
        host.card_postings(&s.pan),
        3,
        "two sales and the void of one"
    );
    host.assert_balanced();
}
