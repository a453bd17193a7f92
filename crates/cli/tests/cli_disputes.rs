//! `poskit disputes` as an operator runs it beside a live host: open, list, respond; a
//! refused rule exits 1 with the reason, a step the case cannot take exits 2 naming the
//! ones it can.

mod support;

use poskit_host::demo;
use support::{EXPIRY, HostProcess, fleet_terminal, poskit};

#[test]
fn a_chargeback_is_opened_listed_and_answered_and_refusals_say_why() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    // Fleet card 62 is a debit card (even), 63 a credit card (odd).
    let mut rrns = Vec::new();
    for i in [62, 63] {
        let pos = fleet_terminal(temp.path(), i, &host, &[]);
        let (exit, sale) = pos.sale("50.00", &demo::fleet_pan(i), EXPIRY, demo::DEMO_PIN, &[]);
        assert_eq!(exit, Some(0), "{sale}");
        rrns.push(sale["rrn"].as_str().unwrap().to_owned());
    }
    let data = host.data();
    let open = |rrn: &str| {
        poskit(&[
            "disputes",
            "open",
            "--data",
            data,
            "--rrn",
            rrn,
            "--type",
            "chargeback",
            "--reason",
            "4515",
        ])
    };
    for rrn in &rrns {
        let out = open(rrn);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let again = open(&rrns[0]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already open"));

    let list = poskit(&[
        "disputes",
        "list",
        "--data",
        data,
        "--due-within",
        "31d",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let cases = v["disputes"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{v}");
    let id_of = |rrn: &str| {
        cases
            .iter()
            .find(|c| format!("{:012}", c["txn_id"].as_i64().unwrap()) == rrn)
            .unwrap()["id"]
            .to_string()
    };
    let (debit, credit) = (id_of(&rrns[0]), id_of(&rrns[1]));
    let evidence = temp.path().join("slip.txt");
    std::fs::write(&evidence, "signed slip").unwrap();
    let ev = evidence.to_str().unwrap();

    let refused = poskit(&[
        "disputes",
        "respond",
        "--data",
        data,
        &debit,
        "--represent",
        "--evidence",
        ev,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("debit card"));

    let wrong = poskit(&["disputes", "respond", "--data", data, &credit, "--reply"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("allowed: accept, represent"));

    let ok = poskit(&[
        "disputes",
        "respond",
        "--data",
        data,
        &credit,
        "--represent",
        "--evidence",
        ev,
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("represented"));

    let shown = poskit(&["disputes", "show", "--data", data, &credit]);
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["dispute"]["state"], "represented", "{v}");
    let slip = v["slip"]["zh"].to_string();
    assert!(
        slip.contains("签购单") && slip.contains("RMB 50.00"),
        "the slip as evidence: {slip}"
    );
    let kept = v["dispute"]["events"][1]["evidence"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "signed slip");
    let steps: Vec<&str> = v["transaction"]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"original"), "{steps:?}");

    let check = poskit(&["host", "check", "--data", data]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "the ledger balances after every step"
    );
    host.stop();
}
