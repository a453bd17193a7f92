//! `poskit bench recon` on a small day: the injected breaks found exactly, and a run that
//! says so (exit 0) with its times and peak memory.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_small_generated_day_is_reconciled_with_exactly_the_injected_breaks() {
    let out = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args([
            "bench", "recon", "--rows", "20000", "--breaks", "100", "--json",
        ])
        .env("LANG", "C")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exact"], true, "{v:#}");
    let run = &v["run"];
    assert_eq!(run["status"], "complete", "{run:#}");
    for class in [
        "B",
        "C",
        "E",
        "G",
        "duplicate",
        "one_sided_reversal",
        "batch_total",
    ] {
        assert_eq!(run["classes"][class], 100, "{class}: {run:#}");
    }
    assert_eq!(run["classes"].as_object().unwrap().len(), 7, "{run:#}");
    assert_eq!(run["matched"], v["expected"]["matched"]);
    assert!(run["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(run["total_ms"].as_u64().is_some());
}

#[test]
fn bad_sizes_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(["bench", "recon", "--rows", "20000", "--breaks", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
