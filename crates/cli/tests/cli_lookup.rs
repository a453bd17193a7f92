//! `poskit lookup` as a merchant runs it: a host process, a `poskit pos` sale, then the
//! slip's numbers looked up beside the running host; exit 3 when nothing matches, 2 when
//! no way in is given.

mod support;

use poskit_host::demo;
use support::{EXPIRY, HostProcess, fleet_terminal, poskit};

#[test]
fn a_slip_is_found_by_its_numbers_and_an_unknown_one_exits_3_with_hints() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let i = 60;
    let pan = demo::fleet_pan(i);
    let pos = fleet_terminal(temp.path(), i, &host, &[]);
    let (exit, sale) = pos.sale("88.80", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(exit, Some(0), "{sale}");
    let rrn = sale["rrn"].as_str().unwrap().to_owned();

    let out = poskit(&["lookup", "--data", host.data(), "--rrn", &rrn, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["matches"][0];
    assert_eq!(m["verdict"]["verdict"], "charged", "{v}");
    assert_eq!(m["transaction"]["amount_fen"], 8880);
    let shown = m["transaction"]["pan"].as_str().unwrap();
    assert!(shown.contains('*') && !String::from_utf8_lossy(&out.stdout).contains(&pan));

    let text = poskit(&[
        "lookup",
        "--data",
        host.data(),
        "--rrn",
        &rrn,
        "--lang",
        "zh",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("结论") && text.contains("对顾客说"), "{text}");

    let none = poskit(&["lookup", "--data", host.data(), "--rrn", "999999999999"]);
    assert_eq!(none.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&none.stdout).contains("another terminal"));

    let bare = poskit(&["lookup", "--data", host.data()]);
    assert_eq!(bare.status.code(), Some(2));
    host.stop();
}
