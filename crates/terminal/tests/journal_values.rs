//! The journal reads its amounts, RRNs, authorization codes, response codes and reversal
//! reasons through their types (issue 16 §4), on the format it has always written: a
//! journal of an earlier version (the fixture) reads back whole, and a value on disk that
//! does not parse is a journal error naming its column — never a panic, never a guess.

use std::path::Path;

use poskit_domain::AmountFen;
use poskit_keystore::KekSource;
use poskit_terminal::engine::{Command, TxnState};
use poskit_terminal::journal::{JOURNAL_FILE, Journal, JournalError};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testing/fixtures/before-keystore/journal.sqlite"
);

/// A copy of the fixture journal, opened once (sealed in place) and closed again.
fn old_journal() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, temp.path().join(JOURNAL_FILE)).unwrap();
    drop(open(temp.path()));
    temp
}

fn open(dir: &Path) -> Journal {
    Journal::open(dir, &KekSource::resolve(None, dir)).unwrap()
}

/// Changes the journal in `dir` behind its back, as a damaged disk or another program would.
fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join(JOURNAL_FILE)).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// The message of a [`JournalError::Corrupt`], or a panic naming what came instead.
fn corrupt<T: std::fmt::Debug>(result: Result<T, JournalError>) -> String {
    match result {
        Err(JournalError::Corrupt(why)) => why,
        other => panic!("expected bad data, got {other:?}"),
    }
}

#[test]
fn a_journal_of_an_earlier_version_reads_back_through_the_types() {
    let temp = old_journal();
    let journal = open(temp.path());
    let txns = journal.txns(None).unwrap();
    assert_eq!(txns.len(), 47);
    assert!(txns.iter().all(|t| t.rrn.is_some() && t.code.is_some()));
    let approved: Vec<_> = txns
        .iter()
        .filter(|t| t.code.is_some_and(|c| c.is_approved()))
        .collect();
    assert_eq!(approved.len(), 41);
    assert!(
        approved
            .iter()
            .filter(|t| t.kind != poskit_domain::TransactionKind::BalanceInquiry)
            .all(|t| t.auth_code.is_some() && t.amount_fen.is_some())
    );
    let voids = txns.iter().filter(|t| t.original_rrn.is_some()).count();
    assert_eq!(voids, 5);
    assert_eq!(
        txns[1].rrn.map(|r| r.to_string()).as_deref(),
        Some("000000000280")
    );
    assert_eq!(txns[1].amount_fen, Some(AmountFen::new(19777).unwrap()));
    let failures = journal.failures().unwrap();
    assert_eq!(failures.len(), 6);
    assert_eq!(failures[0].code, "41");
    let batch = journal.batches().unwrap().pop().unwrap();
    assert_eq!(batch.totals.debit_fen, AmountFen::new(292_655).unwrap());
    assert_eq!(batch.totals.credit_fen, AmountFen::new(47_093).unwrap());
}

#[test]
fn a_value_on_disk_that_does_not_parse_is_a_journal_error_naming_its_column() {
    let cases = [
        ("UPDATE txns SET rrn = '12345' WHERE id = 2", "txns.rrn"),
        (
            "UPDATE txns SET original_rrn = '1234567890123' WHERE id = 8",
            "txns.original_rrn",
        ),
        (
            "UPDATE txns SET auth_code = 'ABCDEFG' WHERE id = 2",
            "txns.auth_code",
        ),
        ("UPDATE txns SET code = 'OK!' WHERE id = 2", "txns.code"),
        (
            "UPDATE txns SET amount_fen = -1 WHERE id = 2",
            "txns.amount_fen",
        ),
        (
            "UPDATE txns SET amount_fen = 1000000000000 WHERE id = 2",
            "txns.amount_fen",
        ),
    ];
    for (sql, column) in cases {
        let temp = old_journal();
        tamper(temp.path(), sql);
        let why = corrupt(open(temp.path()).txns(None));
        assert!(why.contains(column), "{sql}: {why}");
    }
    let temp = old_journal();
    tamper(temp.path(), "UPDATE failures SET code = '' WHERE id = 1");
    let why = corrupt(open(temp.path()).failures());
    assert!(why.contains("failures.code"), "{why}");
    tamper(temp.path(), "UPDATE batches SET credit_fen = -5");
    let why = corrupt(open(temp.path()).batches());
    assert!(why.contains("batches.credit_fen"), "{why}");
}

#[test]
fn a_pending_reversal_with_a_reason_that_is_not_a_response_code_is_a_journal_error() {
    let temp = old_journal();
    let insert = |reason: &str| {
        format!(
            "DELETE FROM reversal; INSERT INTO reversal (id, txn_id, kind, batch, stan, amount_fen,
             original_rrn, reason, attempts) VALUES (1, 47, 'sale', 1, 49, 2697, NULL, '{reason}', 0)"
        )
    };
    // The control: a reason of two letters or digits reads back.
    tamper(temp.path(), &insert("98"));
    let pending = open(temp.path()).snapshot().unwrap().reversal.unwrap();
    assert_eq!(pending.reason.as_str(), "98");
    assert_eq!(pending.amount_fen, Some(AmountFen::new(2697).unwrap()));
    tamper(temp.path(), &insert("9"));
    let why = corrupt(open(temp.path()).snapshot());
    assert!(why.contains("reversal.reason"), "{why}");
}

#[test]
fn totals_past_twelve_digits_of_fen_are_refused_not_wrapped() {
    let temp = old_journal();
    // The open batch (2) holds nothing yet: two approved sales of the largest amount.
    let sale = |id: u32, stan: u32| {
        format!(
            "INSERT INTO txns (id, kind, batch, stan, amount_fen, code, state, reversal, time_ms)
             VALUES ({id}, 'sale', 2, {stan}, 999999999999, '00', 'approved', 'none', 0);"
        )
    };
    tamper(temp.path(), &sale(100, 60));
    // The control: one sale of the largest amount settles with that total.
    match open(temp.path()).settle_command().unwrap() {
        Command::Settle { totals, details } => {
            assert_eq!(totals.debit_fen, AmountFen::MAX);
            assert_eq!((totals.debit_count, details.len()), (1, 1));
            assert_eq!(details[0].state, TxnState::Approved);
        }
        other => panic!("{other:?}"),
    }
    tamper(temp.path(), &sale(101, 61));
    match open(temp.path()).settle_command() {
        Err(JournalError::TotalsTooLarge { batch: 2, side }) => assert_eq!(side, "debit"),
        other => panic!("expected totals too large, got {other:?}"),
    }
}
