//! `poskit diagnose` beside a live host: a terminal whose sales all get A0 since some time
//! is diagnosed as keys out of step, with the evidence and the catalog's steps.

mod support;

use poskit_host::demo;
use support::{EXPIRY, HostProcess, fleet_terminal, poskit};

#[test]
fn mac_errors_on_every_sale_are_diagnosed_as_keys_out_of_step() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let i = 44;
    let tid = demo::fleet_tid(i);
    let pos = fleet_terminal(temp.path(), i, &host, &[]);
    let (exit, _) = pos.sale("10.00", &demo::fleet_pan(i), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(exit, Some(0));
    host.set_faults(&format!(
        "[[rules]]\nname = \"keys\"\ntid = \"{tid}\"\nkind = \"sale\"\naction = \"code\"\ncode = \"A0\"\n"
    ));
    for _ in 0..4 {
        let (_, v) = pos.sale("10.00", &demo::fleet_pan(i), EXPIRY, demo::DEMO_PIN, &[]);
        assert_eq!(v["code"], "A0", "{v}");
    }
    let out = poskit(&[
        "diagnose",
        "--data",
        host.data(),
        "--terminal",
        &tid,
        "--json",
        "--lang",
        "en",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &v["causes"][0];
    assert_eq!(first["cause"], "security-keys", "{v}");
    let evidence = first["evidence"].to_string();
    assert!(
        evidence.contains("every one of the 4 requests"),
        "{evidence}"
    );
    assert!(evidence.contains("sign-in at"), "{evidence}");
    assert!(!first["steps"].as_array().unwrap().is_empty());

    let text = poskit(&[
        "diagnose",
        "--data",
        host.data(),
        "--merchant",
        support::MID,
        "--lang",
        "zh",
    ]);
    assert_eq!(text.status.code(), Some(0));
    let none = poskit(&["diagnose", "--data", host.data(), "--terminal", "99999999"]);
    assert_eq!(none.status.code(), Some(3));
    host.stop();
}
