//! The deterministic simulation under harsh faults: no violation, and the same seed gives
//! the same run.

use poskit_sim::{Knobs, simulate};

fn without_time(mut v: serde_json::Value) -> serde_json::Value {
    v["elapsed_ms"] = serde_json::Value::Null;
    v
}

#[test]
fn harsh_faults_over_several_seeds_leave_no_violation() {
    // Four seeds of 10 000 transactions each under harsh faults (the issue asks CI for at
    // least 10 000 over several seeds; each seed runs that many on its own).
    let (mut statements, mut commits, mut full_disks) = (0, 0, 0);
    // Breaks reconciliation found, by class, over the seeds (each one injected: the checker
    // fails a run with a break nobody injected or an injection not found).
    let mut classes: std::collections::BTreeMap<String, u64> = Default::default();
    for seed in [1u64, 2, 3, 4] {
        let report = simulate(16, 10_000, seed, Knobs::harsh()).unwrap();
        eprintln!("{}", report.json());
        let shown: Vec<_> = report.violations.iter().take(10).collect();
        assert!(
            report.ok(),
            "seed {seed}: {} violations, first: {shown:#?}",
            report.violations.len()
        );
        assert_eq!(report.transactions, 10_000);
        assert!(
            report.faults.values().sum::<u64>() > 100,
            "harsh faults were injected"
        );
        assert!(
            report.reversals_delivered > 0,
            "reversals were needed and sent"
        );
        for (kind, seen) in [
            ("storage_statement", &mut statements),
            ("storage_commit", &mut commits),
        ] {
            *seen += report.faults.get(kind).copied().unwrap_or(0);
        }
        full_disks += report.faults.get("disk_full").copied().unwrap_or(0);
        let recon = report
            .recon
            .clone()
            .expect("the switch's files were reconciled");
        for (class, n) in recon["breaks"].as_object().unwrap() {
            *classes.entry(class.clone()).or_default() += n.as_u64().unwrap();
        }
        // `poskit lookup` on every sale a terminal reported failed (the checker fails the
        // run on any "charged"): some were given back by a credit adjustment.
        let verdicts = &recon["verdicts_of_reported_failures"];
        *classes.entry("lookup:refunded".into()).or_default() +=
            verdicts["refunded"].as_u64().unwrap_or(0);
    }
    for class in [
        "C",
        "E",
        "G",
        "duplicate",
        "one_sided_reversal",
        "lookup:refunded",
    ] {
        assert!(
            classes.get(class).is_some_and(|n| *n > 0),
            "no break of class {class} over the seeds: {classes:?}"
        );
    }
    // The writer's rollback paths ran: failing statements, failing commits, a full disk.
    assert!(
        statements > 10 && commits > 10,
        "{statements} statements, {commits} commits"
    );
    assert!(full_disks > 0, "the disk filled up in some seed");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = simulate(4, 400, 42, Knobs::harsh()).unwrap();
    let b = simulate(4, 400, 42, Knobs::harsh()).unwrap();
    assert_eq!(without_time(a.json()), without_time(b.json()));
    let c = simulate(4, 400, 43, Knobs::harsh()).unwrap();
    assert_ne!(without_time(a.json()), without_time(c.json()));
}

#[test]
fn partitions_and_clogs_happen_and_the_fleet_still_recovers() {
    // Knobs from a TOML file, as `poskit sim --faults FILE` reads them: links cut and
    // clogged often, on top of some loss, so that requests, answers and reversals are
    // lost to partitions and answered late out of clogs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.toml");
    std::fs::write(
        &path,
        "partition = 0.05\npartition_ms = 8000\nclog = 0.1\nclog_ms = 6000\n\
         request_loss = 0.02\nanswer_loss = 0.02\nduplicate = 0.02\n",
    )
    .unwrap();
    let knobs = Knobs::named_or_file(path.to_str().unwrap()).unwrap();
    assert_eq!((knobs.partition, knobs.clog), (0.05, 0.1));
    assert_eq!((knobs.partition_ms, knobs.clog_ms), (8_000, 6_000));
    for seed in [7u64, 8] {
        let report = simulate(8, 800, seed, knobs.clone()).unwrap();
        eprintln!("{}", report.json());
        for kind in ["partition", "partition_loss", "clog", "clogged"] {
            assert!(
                report.faults.get(kind).copied().unwrap_or(0) > 0,
                "seed {seed}: no {kind} in {:?}",
                report.faults
            );
        }
        let shown: Vec<_> = report.violations.iter().take(10).collect();
        assert!(
            report.ok(),
            "seed {seed}: {} violations, first: {shown:#?}",
            report.violations.len()
        );
        assert_eq!(report.transactions, 800);
        assert_eq!(
            (report.recovery_settled, report.terminals),
            (8, 8),
            "seed {seed}: every terminal settled at the end"
        );
        assert!(
            report.reversals_delivered > 0,
            "seed {seed}: reversals were sent"
        );
    }
}

#[test]
fn link_knobs_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (body, wrong) in [
        ("partition = 1.5\n", "partition"),
        ("clog = -0.1\n", "clog"),
        ("clog = 0.1\nclog_ms = 100000000\n", "clog_ms"),
        ("partition_ms = 100000000\n", "partition_ms"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, body).unwrap();
        let err = Knobs::named_or_file(path.to_str().unwrap()).unwrap_err();
        assert!(err.contains(wrong), "{body:?}: {err}");
    }
    assert_eq!(Knobs::none().partition + Knobs::none().clog, 0.0);
    assert!(Knobs::mild().partition > 0.0 && Knobs::mild().clog > 0.0);
    assert!(Knobs::harsh().partition > Knobs::mild().partition);
    assert!(Knobs::harsh().clog > Knobs::mild().clog);
}
