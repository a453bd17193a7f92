//! `poskit clearing export` and `poskit recon` as an operator runs them beside a live
//! host: the switch's files written, the day reconciled (JSON and CSV with matched and
//! unmatched records), a second run posting nothing new, a damaged file refused with exit 1
//! and nothing kept, bad arguments exit 2.

mod support;

use poskit_domain::calendar::{ClearingCut, yyyymmdd};
use poskit_host::demo;
use support::{HostProcess, fleet_terminal, poskit};

fn today() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    yyyymmdd(ClearingCut::default().day_of(now_ms))
}

#[test]
fn a_day_is_exported_reconciled_and_written_as_csv_and_a_damaged_file_keeps_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let external = demo::scenario("external_issuer").unwrap();
    let pos = fleet_terminal(temp.path(), 52, &host, &[]);
    for amount in ["12.34", "56.78"] {
        let (exit, v) = pos.sale(amount, &external.pan, &external.expiry, demo::DEMO_PIN, &[]);
        assert_eq!(exit, Some(0), "{v}");
    }
    let (data, date) = (host.data(), today());
    let clearing = temp.path().join("clearing");
    let out = poskit(&[
        "clearing",
        "export",
        "--data",
        data,
        "--date",
        &date,
        "--out",
        clearing.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "ACOMN, ACOMA, AERRA"
    );

    let csv = temp.path().join("recon.csv");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "recon",
            "--data",
            data,
            "--date",
            &date,
            "--clearing",
            clearing.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        poskit(&args)
    };
    let out = run(&["--json", "--csv", csv.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["matched"], 2, "{v}");
    assert_eq!(
        v["status"], "incomplete",
        "still open, and the terminal has not settled: {v}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("matched,")).count(),
        2,
        "{text}"
    );

    let acoma = std::fs::read_dir(&clearing)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("ACOMA"))
        .unwrap();
    let mut bytes = std::fs::read(&acoma).unwrap();
    bytes[3] = 0xff; // not GBK, not a digit
    std::fs::write(&acoma, bytes).unwrap();
    let bad = run(&["--json"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 1"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    assert_eq!(run(&["--cut", "25:00"]).status.code(), Some(2));
    assert_eq!(
        poskit(&["recon", "--data", data, "--date", "2026-12-04"])
            .status
            .code(),
        Some(2)
    );
    host.stop();
}
