//! Reconciliation and disputes through the HTTP API (issue 22): a host process serving
//! `--http`, sales a faulty switch records wrongly, a real `poskit recon` of the day; then
//! the runs and breaks as each role sees them, a dispute acted on (audited; refused to a
//! merchant; 409 naming the steps it can take), and pages that follow each other.

mod support;

use poskit_domain::calendar::{ClearingCut, yyyymmdd};
use poskit_host::demo;
use serde_json::{Value, json};
use support::{ApiHost, HostProcess, MID, OTHER_MID, OTHER_TID, call, fleet_terminal, get, poskit};

fn today() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    yyyymmdd(ClearingCut::default().day_of(now_ms))
}

fn ok(out: std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sells with the external issuer's card while the switch misrecords it (`action`), and
/// answers the RRN.
fn faulty_sale(host: &HostProcess, pos: &support::Pos, action: &str, amount: &str) -> String {
    let card = demo::scenario("external_issuer").unwrap();
    let extra = if action == "switch-amount" {
        "delta_fen = 100\n"
    } else {
        ""
    };
    host.set_faults(&format!(
        "[[rules]]\nname = \"{action}\"\ncard = \"{}\"\naction = \"{action}\"\ncount_max = 1\n{extra}",
        card.pan
    ));
    let (exit, v) = pos.sale(amount, &card.pan, &card.expiry, demo::DEMO_PIN, &[]);
    assert_eq!(exit, Some(0), "{v}");
    host.clear_faults();
    v["rrn"].as_str().unwrap().to_owned()
}

fn post(http: &str, token: &str, path: &str, body: &Value) -> support::Reply {
    call(
        http,
        "POST",
        path,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

fn list(r: &support::Reply, field: &str) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.body[field].as_array().unwrap().clone()
}

#[test]
fn runs_and_breaks_by_role_disputes_acted_on_and_pages_that_follow_each_other() {
    let temp = tempfile::tempdir().unwrap();
    let ApiHost {
        host,
        http,
        admin,
        ops,
        shop,
        other,
    } = ApiHost::start(temp.path());
    let data = host.data().to_owned();

    // Three sales the switch records wrongly (two amounts, a duplicate), one it records well.
    let pos = fleet_terminal(temp.path(), 1, &host, &[]);
    let mut rrns = vec![
        faulty_sale(&host, &pos, "switch-amount", "12.34"),
        faulty_sale(&host, &pos, "switch-amount", "23.45"),
        faulty_sale(&host, &pos, "switch-duplicate", "34.56"),
    ];
    let card = demo::scenario("external_issuer").unwrap();
    let (_, v) = pos.sale("45.67", &card.pan, &card.expiry, demo::DEMO_PIN, &[]);
    rrns.push(v["rrn"].as_str().unwrap().to_owned());
    // And one at the other merchant's terminal.
    let theirs = support::Pos {
        dir: temp.path().join("pos-other"),
    };
    theirs.init(OTHER_TID, OTHER_MID, &host.addr, &[]);
    assert_eq!(theirs.sign_in()["code"], "00");
    let their_rrn = faulty_sale(&host, &theirs, "switch-amount", "56.78");

    let (date, clearing) = (today(), temp.path().join("clearing"));
    let clearing = clearing.to_str().unwrap();
    ok(poskit(&[
        "clearing", "export", "--data", &data, "--date", &date, "--out", clearing,
    ]));
    let report: Value = serde_json::from_slice(&ok(poskit(&[
        "recon",
        "--data",
        &data,
        "--date",
        &date,
        "--clearing",
        clearing,
        "--json",
    ])))
    .unwrap();
    let breaks = report["breaks"].as_array().unwrap();
    assert!(breaks.len() >= 3, "{report}");

    // Runs: the day, with its counts by class, as the CLI found them.
    let runs = list(&get(&http, &ops, "/api/v1/recon/runs"), "runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["day"], date);
    assert_eq!(runs[0]["balanced"], false);
    assert_eq!(runs[0]["breaks"], breaks.len());
    let class = breaks[0]["class"].as_str().unwrap().to_owned();
    let of_class = breaks
        .iter()
        .filter(|b| b["class"] == class.as_str())
        .count();
    assert_eq!(runs[0]["counts"][&class], of_class, "{runs:?}");

    // Breaks: filtered by class; the merchant sees its own, the other merchant none.
    let path = format!("/api/v1/recon/breaks?day={date}");
    let all = list(&get(&http, &ops, &path), "breaks");
    assert_eq!(all.len(), breaks.len());
    let some = list(
        &get(&http, &ops, &format!("{path}&class={class}")),
        "breaks",
    );
    assert_eq!(some.len(), of_class);
    assert!(
        some.iter()
            .all(|b| b["class"] == class.as_str() && b["action"].is_string())
    );
    assert!(
        all.iter()
            .any(|b| rrns.contains(&b["rrn"].as_str().unwrap_or("").to_owned())),
        "{all:?}"
    );
    assert!(!list(&get(&http, &shop, &path), "breaks").is_empty());
    let own = list(&get(&http, &shop, &path), "breaks");
    assert!(
        own.iter().all(
            |b| [&b["records"]["host"]["mid"], &b["records"]["switch"]["mid"]]
                .iter()
                .any(|m| *m == MID)
        ),
        "{own:?}"
    );
    assert!(own.iter().all(|b| b["rrn"] != their_rrn.as_str()));
    let seen_by_other = list(&get(&http, &other, &path), "breaks");
    assert_eq!(seen_by_other.len(), 1, "{seen_by_other:?}");
    assert_eq!(seen_by_other[0]["rrn"], their_rrn.as_str());
    assert_eq!(own.len() + 1, all.len());
    let their_runs = list(&get(&http, &other, "/api/v1/recon/runs"), "runs");
    assert_eq!(
        their_runs[0]["breaks"], 1,
        "their own counted only: {their_runs:?}"
    );
    assert_eq!(
        get(&http, &ops, "/api/v1/recon/breaks?day=20200101").status,
        404
    );
    let r = get(&http, &ops, &format!("{path}&class=Z"));
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (400, &json!("bad_request"))
    );

    // Pages: one break at a time, each page after the last, no break twice.
    let mut seen = Vec::new();
    let mut next = Value::Null;
    loop {
        let after = next
            .as_str()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let r = get(&http, &ops, &format!("{path}&limit=1{after}"));
        let page = list(&r, "breaks");
        seen.extend(page.iter().map(|b| b["id"].clone()));
        next = r.body["next"].clone();
        if next.is_null() {
            break;
        }
        assert_eq!(page.len(), 1);
    }
    let ids: Vec<Value> = all.iter().map(|b| b["id"].clone()).collect();
    assert_eq!(seen, ids);
    assert_eq!(get(&http, &ops, &format!("{path}&limit=1001")).status, 400);

    // A retrieval request: the merchant may not act; the operator's reply is audited; a
    // step it cannot take is 409 naming the one it can.
    ok(poskit(&[
        "disputes",
        "open",
        "--data",
        &data,
        "--rrn",
        &rrns[3],
        "--type",
        "retrieval",
        "--reason",
        "4502",
    ]));
    ok(poskit(&[
        "disputes",
        "open",
        "--data",
        &data,
        "--rrn",
        &rrns[0],
        "--type",
        "retrieval",
        "--reason",
        "4502",
    ]));
    let cases = list(&get(&http, &ops, "/api/v1/disputes"), "disputes");
    let id = cases
        .iter()
        .find(|c| format!("{:012}", c["txn_id"].as_i64().unwrap()) == rrns[3])
        .unwrap()["id"]
        .clone();
    let act = format!("/api/v1/disputes/{id}/act");
    let r = post(&http, &shop, &act, &json!({"step": "reply"}));
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (403, &json!("forbidden"))
    );
    let r = post(&http, &ops, &act, &json!({"step": "accept"}));
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (409, &json!("conflict")),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed: reply"),
        "{}",
        r.text
    );
    let r = post(
        &http,
        &ops,
        &act,
        &json!({"step": "reply", "note": "slip sent", "evidence": "slip 42"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["dispute"]["state"], "replied");
    assert_eq!(
        r.body["dispute"]["events"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["evidence"],
        "slip 42"
    );
    let r = post(&http, &ops, &act, &json!({"step": "reply"}));
    assert_eq!(r.status, 409, "closed now: {}", r.text);
    assert_eq!(
        post(
            &http,
            &ops,
            "/api/v1/disputes/999999/act",
            &json!({"step": "reply"})
        )
        .status,
        404
    );
    assert_eq!(
        post(&http, &ops, &act, &json!({"step": "dance"})).status,
        400
    );
    let trail = list(&get(&http, &admin, "/api/v1/audit"), "audit");
    let row = trail.iter().find(|a| a["action"] == "dispute-act").unwrap();
    assert_eq!(
        (&row["user"], &row["target"]),
        (&json!("ops"), &json!(format!("dispute {id}")))
    );
    assert!(
        row["detail"].as_str().unwrap().contains("slip sent"),
        "{row}"
    );
    assert_eq!(
        trail
            .iter()
            .filter(|a| a["action"] == "dispute-act")
            .count(),
        1,
        "refusals change nothing"
    );

    // A rule of the standard: a debit card's chargeback is not represented (409 `refused`),
    // and representing needs evidence (400).
    let (_, v) = pos.sale(
        "9.99",
        &demo::fleet_pan(62),
        support::EXPIRY,
        demo::DEMO_PIN,
        &[],
    );
    let debit_rrn = v["rrn"].as_str().unwrap().to_owned();
    ok(poskit(&[
        "disputes",
        "open",
        "--data",
        &data,
        "--rrn",
        &debit_rrn,
        "--type",
        "chargeback",
        "--reason",
        "4515",
    ]));
    let cases = list(&get(&http, &ops, "/api/v1/disputes"), "disputes");
    let debit = cases
        .iter()
        .find(|c| format!("{:012}", c["txn_id"].as_i64().unwrap()) == debit_rrn)
        .unwrap()["id"]
        .clone();
    let act = format!("/api/v1/disputes/{debit}/act");
    let r = post(&http, &ops, &act, &json!({"step": "represent"}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = post(
        &http,
        &ops,
        &act,
        &json!({"step": "represent", "evidence": "slip"}),
    );
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (409, &json!("refused")),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("debit"),
        "{}",
        r.text
    );

    // Disputes and alerts page the same way: three cases, one a page.
    let mut pages = Vec::new();
    let mut after = String::new();
    loop {
        let r = get(&http, &ops, &format!("/api/v1/disputes?limit=1{after}"));
        pages.extend(list(&r, "disputes").iter().map(|d| d["id"].clone()));
        match r.body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let ids: Vec<Value> = cases.iter().map(|d| d["id"].clone()).collect();
    assert_eq!(pages, ids, "in the list's order, none twice");
    for tid in [demo::fleet_tid(1), demo::fleet_tid(2)] {
        support::raise_alert(&host.data, &tid);
    }
    let first = get(&http, &ops, "/api/v1/alerts?limit=1");
    let next = first.body["next"].as_str().unwrap().to_owned();
    let second = get(&http, &ops, &format!("/api/v1/alerts?limit=1&after={next}"));
    let (a, b) = (list(&first, "alerts"), list(&second, "alerts"));
    assert!(
        a[0]["id"].as_i64() > b[0]["id"].as_i64(),
        "newest first: {a:?} {b:?}"
    );
    assert!(second.body["next"].is_null());

    // The OpenAPI document names the new routes and their parameters.
    let doc = call(&http, "GET", "/openapi.json", &[], b"").body;
    for p in [
        "/api/v1/recon/runs",
        "/api/v1/recon/breaks",
        "/api/v1/disputes/{id}/act",
    ] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    let params = doc["paths"]["/api/v1/alerts"]["get"]["parameters"].to_string();
    assert!(
        params.contains("\"after\"") && params.contains("\"limit\""),
        "{params}"
    );
    host.stop();
}
