//! The deterministic simulation under harsh faults: no violation, and the same seed gives
//! the same run.

use poskit_sim::{Knobs, simulate};

fn without_time(mut v: serde_json::Value) -> serde_json::Value {
    v["elapsed_ms"] = serde_json::Value::Null;
    v
}

#[test]
fn harsh_faults_over_several_seeds_leave_no_violation() {
    // Four seeds of 2 500 transactions each: 10 000 under harsh faults.
    for seed in [1u64, 2, 3, 4] {
        let report = simulate(16, 2_500, seed, Knobs::harsh()).unwrap();
        eprintln!("{}", report.json());
        let shown: Vec<_> = report.violations.iter().take(10).collect();
        assert!(
            report.ok(),
            "seed {seed}: {} violations, first: {shown:#?}",
            report.violations.len()
        );
        assert_eq!(report.transactions, 2_500);
        assert!(
            report.faults.values().sum::<u64>() > 100,
            "harsh faults were injected"
        );
        assert!(
            report.reversals_delivered > 0,
            "reversals were needed and sent"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = simulate(4, 400, 42, Knobs::harsh()).unwrap();
    let b = simulate(4, 400, 42, Knobs::harsh()).unwrap();
    assert_eq!(without_time(a.json()), without_time(b.json()));
    let c = simulate(4, 400, 43, Knobs::harsh()).unwrap();
    assert_ne!(without_time(a.json()), without_time(c.json()));
}
