//! End to end: a host on loopback answers terminals while the fault plan makes the
//! switch's record diverge; the switch writes its files to disk; `run` reconciles the day
//! and finds each divergence as its class, posts each credit adjustment once however often
//! it runs, and refuses a bad file without keeping anything.

#[path = "../../host/tests/support/mod.rs"]
mod support;

use poskit_domain::calendar::ClearingCut;
use poskit_host::config::Limits;
use poskit_host::demo::Scenario;
use poskit_recon::run::{Options, ReconError, run};
use poskit_recon::{Action, Class, Status};
use support::*;

/// Fleet terminal `i` with the demo external issuer's card.
fn external_at(i: u32) -> Scenario {
    Scenario {
        pan: scenario("external_issuer").pan,
        ..fleet(i)
    }
}

fn plan() -> String {
    let rule = |i: u32, action: &str, extra: &str| {
        format!(
            "[[rules]]\nname = \"{action}\"\ntid = \"{}\"\nkind = \"sale\"\naction = \"{action}\"\ncount_max = 1\n{extra}",
            external_at(i).tid
        )
    };
    [
        rule(1, "late-answer", ""),
        rule(2, "switch-duplicate", ""),
        rule(3, "switch-amount", "delta_fen = 100\n"),
        rule(4, "switch-lose-reversal", "reversal = true\n"),
        rule(5, "switch-next-day", ""),
    ]
    .concat()
}

fn options(host: &TestHost, clearing: &std::path::Path) -> Options {
    let cut = ClearingCut::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let _ = host;
    Options {
        day: cut.day_of(now_ms),
        clearing_dir: clearing.to_path_buf(),
        cut,
        acquirer: "08010000".into(),
        near_cut_ms: 0,
        keep_matched: false,
        now_ms,
    }
}

#[test]
fn every_injected_divergence_is_found_as_its_class_and_adjusted_once() {
    let host = TestHost::start_with_faults(&plan(), Limits::default());
    for i in 1..=6 {
        let s = external_at(i);
        let mut t = host.signed_in(&s);
        let spec = sale(&s, 10_000 + u64::from(i));
        let r = t.send(&spec).unwrap();
        let expected = if i == 1 { "98" } else { "00" };
        assert_eq!(r.code(), expected, "terminal {i}");
        if i == 4 {
            let rev = t.send(&spec.reversal(r.stan, "98")).unwrap();
            assert_eq!(rev.code(), "00");
        }
    }
    let clearing = tempfile::tempdir().unwrap();
    let opts = options(&host, clearing.path());
    let mut db = host.db();
    poskit_host::switch::export_day(&db, opts.day, clearing.path()).unwrap();
    let state = rusqlite::Connection::open(host.dir.join("recon.db")).unwrap();
    let report = run(&mut db, &state, &opts).unwrap();
    assert_eq!(report.status, "incomplete", "the day is still open");
    assert!(report.incomplete_reasons[0].starts_with("day still open"));
    let mut classes: Vec<(Class, Action, Status)> = report
        .breaks
        .iter()
        .map(|b| (b.class, b.action, b.status))
        .collect();
    classes.sort_by_key(|c| c.0);
    assert_eq!(
        classes,
        [
            (Class::C, Action::CreditAdjustment, Status::Resolved),
            (Class::E, Action::ReversalToSwitch, Status::New),
            (Class::G, Action::OpenItem, Status::New),
            (Class::Duplicate, Action::OpenItem, Status::New),
            (
                Class::OneSidedReversal,
                Action::CreditAdjustment,
                Status::Resolved
            ),
        ],
        "{:#?}",
        report.breaks
    );
    assert_eq!(
        report.matched, 2,
        "terminal 6, and the first copy of the duplicate"
    );
    // The host's records carry the RRN the terminal was given (read back from the ledger).
    for b in &report.breaks {
        let h = b.records.host.as_ref().unwrap();
        let id = h["id"].as_i64().unwrap();
        assert_eq!(h["rrn"], poskit_host::engine::rrn_of(id), "{}", b.id);
    }
    let adjustments = |db: &rusqlite::Connection| -> (i64, i64) {
        let n = |sql| db.query_row(sql, [], |r| r.get(0)).unwrap();
        (
            n("SELECT count(*) FROM recon_adjustments"),
            n("SELECT count(*) FROM switch_disputes WHERE error_type = 'E32'"),
        )
    };
    assert_eq!(adjustments(&db), (2, 2));
    host.assert_balanced();

    // Again: the same breaks, nothing posted twice.
    let again = run(&mut db, &state, &opts).unwrap();
    assert_eq!(again.breaks.len(), report.breaks.len());
    assert!(
        again.breaks.iter().all(|b| b.status != Status::New),
        "{:#?}",
        again.breaks
    );
    assert_eq!(adjustments(&db), (2, 2));

    // A damaged file: an error naming the line, and nothing kept.
    let runs_before: String = state
        .query_row("SELECT report FROM recon_days", [], |r| r.get(0))
        .unwrap();
    let acoma = std::fs::read_dir(clearing.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("ACOMA"))
        .unwrap();
    let mut bytes = std::fs::read(&acoma).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&acoma, bytes).unwrap();
    match run(&mut db, &state, &opts) {
        Err(ReconError::Input(why)) => assert!(why.contains("line"), "{why}"),
        other => panic!("a damaged file must be refused: {other:?}"),
    }
    let runs_after: String = state
        .query_row("SELECT report FROM recon_days", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs_before, runs_after);
    assert_eq!(adjustments(&db), (2, 2));
}
