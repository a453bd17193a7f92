//! What the HTTP API says of a fleet as it runs (issue 22 §1, §3): each terminal's keys'
//! age and its recent failures, the lists of terminals, merchants and the audit trail page
//! by page, the live activity polled after an id, and the lookup verdict's reason in both
//! languages — against a host process with real sales, each route asked by each role. A
//! merchant user never sees another merchant's terminal, event or failure; card numbers are
//! masked (first 6, last 4) in every answer.

mod support;

use std::time::{Duration, Instant};

use poskit_host::demo;
use serde_json::{Value, json};
use support::{
    ApiHost, EXPIRY, MID, OTHER_MID, OTHER_TID, Pos, call, fleet_terminal, get, has_chinese,
};

fn ok(r: support::Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Whether `pan` is shown as first 6, stars, last 4.
fn masked(pan: &str) -> bool {
    let digits: Vec<char> = pan.chars().filter(char::is_ascii_digit).collect();
    pan.len() >= 13 && digits.len() == 10 && pan[6..pan.len() - 4].chars().all(|c| c == '*')
}

/// Every item of a list route, walked with `limit` a page, and the pages it took.
fn walk(http: &str, token: &str, path: &str, field: &str, limit: usize) -> (Vec<Value>, usize) {
    let (mut all, mut pages) = (Vec::new(), 0);
    let mut after = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let body = ok(get(
            http,
            token,
            &format!("{path}{sep}limit={limit}{after}"),
        ));
        let items = body[field].as_array().unwrap();
        assert!(items.len() <= limit);
        all.extend(items.iter().cloned());
        pages += 1;
        match body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return (all, pages),
        }
        assert!(pages < 1_000, "a walk that does not end");
    }
}

#[test]
fn terminals_show_their_keys_age_and_failures_and_lists_come_in_pages() {
    let temp = tempfile::tempdir().unwrap();
    let api = ApiHost::start(temp.path());
    let http = &api.http;
    let pos = fleet_terminal(temp.path(), 1, &api.host, &[]);
    let tid = demo::fleet_tid(1);
    let pan = demo::fleet_pan(1);
    let (_, sale) = pos.sale("12.30", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "{sale}");
    let (_, wrong_pin) = pos.sale("8.00", &pan, EXPIRY, "999999", &[]);
    let declined = wrong_pin["code"].as_str().unwrap().to_owned();
    assert_ne!(declined, "00");

    // One terminal: its keys exchanged at its sign-in a moment ago, the decline among its
    // failures with the catalog's meaning in both languages, the card masked.
    let one = ok(get(http, &api.shop, &format!("/api/v1/terminals/{tid}")));
    let keys = &one["terminal"]["keys"];
    let age_ms = keys["age_ms"].as_i64().unwrap();
    assert!((0..120_000).contains(&age_ms), "{keys}");
    assert_eq!(keys["exchanged_ms"], one["terminal"]["signed_in_ms"]);
    let failures = one["recent_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "the decline only: {failures:?}");
    let f = &failures[0];
    assert_eq!(f["code"]["code"], declined.as_str());
    assert!(
        has_chinese(f["code"]["meaning"]["zh"].as_str().unwrap()),
        "{f}"
    );
    assert!(
        f["code"]["meaning"]["en"].as_str().unwrap().is_ascii(),
        "{f}"
    );
    assert!(masked(f["pan"].as_str().unwrap()), "{f}");
    assert_eq!(f["rrn"], wrong_pin["rrn"]);
    assert_eq!(
        get(http, &api.other, &format!("/api/v1/terminals/{tid}")).status,
        404
    );
    assert_eq!(
        get(http, &api.ops, "/api/v1/terminals/NOSUCH01").status,
        404
    );
    // A terminal never signed in has no key age.
    let never = ok(get(
        http,
        &api.ops,
        &format!("/api/v1/terminals/{}", demo::fleet_tid(9)),
    ));
    assert!(never["terminal"]["keys"]["age_ms"].is_null(), "{never}");
    assert_eq!(never["recent_failures"], json!([]));

    the_list_counts_the_failures(&api, &tid, &declined);
    pages_of_terminals_merchants_and_audit(&api);
    the_verdicts_reason_in_both_languages(&api, &sale, &wrong_pin);
}

/// The list: each terminal's keys' age, and the last hour's failures by code once the host
/// has written its figures (every second).
fn the_list_counts_the_failures(api: &ApiHost, tid: &str, declined: &str) {
    let http = &api.http;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = ok(get(http, &api.shop, "/api/v1/terminals?limit=1000"));
        let row = list["terminals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"] == tid)
            .unwrap()
            .clone();
        assert!(row["keys"]["age_ms"].as_i64().is_some(), "{row}");
        if row["last_hour"]["failures"][declined] == 1 {
            assert!(row["last_hour"]["failures"].get("00").is_none(), "{row}");
            break;
        }
        assert!(Instant::now() < deadline, "no failures counted: {row}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Terminals, merchants and the audit trail page by page: no row twice, none skipped, in
/// the list's order; a merchant's pages hold its own only; bad limits and cursors are 400.
fn pages_of_terminals_merchants_and_audit(api: &ApiHost) {
    let http = &api.http;
    let (all, _) = walk(http, &api.ops, "/api/v1/terminals", "terminals", 1_000);
    let (paged, pages) = walk(http, &api.ops, "/api/v1/terminals", "terminals", 7);
    let tids = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|t| t["tid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(all.len() > 64, "the demo's fleet and more: {}", all.len());
    assert_eq!(tids(&paged), tids(&all));
    assert_eq!(pages, all.len().div_ceil(7));
    let mut sorted = tids(&all);
    sorted.sort();
    assert_eq!(sorted, tids(&all), "by TID");
    let (own, _) = walk(http, &api.other, "/api/v1/terminals", "terminals", 1);
    assert_eq!(tids(&own), [OTHER_TID]);
    let (own, _) = walk(http, &api.shop, "/api/v1/terminals", "terminals", 10);
    assert!(own.iter().all(|t| t["mid"] == MID) && own.len() > 60);

    let (merchants, pages) = walk(http, &api.ops, "/api/v1/merchants", "merchants", 1);
    assert_eq!(pages, merchants.len());
    assert!(merchants.len() >= 2 && merchants.iter().any(|m| m["mid"] == OTHER_MID));
    let (theirs, _) = walk(http, &api.other, "/api/v1/merchants", "merchants", 1);
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["mid"], OTHER_MID);

    let (trail, _) = walk(http, &api.admin, "/api/v1/audit", "audit", 2);
    let whole = ok(get(http, &api.admin, "/api/v1/audit?limit=1000"))["audit"].clone();
    assert_eq!(
        Value::from(trail.clone()),
        whole,
        "newest first, page by page"
    );
    assert!(
        trail.len() >= 8,
        "users added and tokens made: {}",
        trail.len()
    );
    assert_eq!(get(http, &api.ops, "/api/v1/audit?limit=1").status, 403);
    for path in [
        "/api/v1/terminals?limit=0",
        "/api/v1/merchants?limit=1001",
        "/api/v1/audit?after=nothing",
        "/api/v1/terminals?colour=red",
    ] {
        let r = get(http, &api.admin, path);
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        let message = r.body["error"]["message"].as_str().unwrap();
        let field = path.split(['?', '=']).nth(1).unwrap();
        assert!(message.contains(field), "{path}: {message}");
    }
}

/// The lookup's verdict says why in Chinese and in English, from the catalog's reasons.
fn the_verdicts_reason_in_both_languages(api: &ApiHost, sale: &Value, declined: &Value) {
    let verdict = |rrn: &Value| {
        let rrn = rrn.as_str().unwrap();
        ok(get(
            &api.http,
            &api.shop,
            &format!("/api/v1/lookup?rrn={rrn}"),
        ))["matches"][0]["verdict"]
            .clone()
    };
    let charged = verdict(&sale["rrn"]);
    assert_eq!(charged["because"]["zh"], "已批准 12.30 元", "{charged}");
    assert_eq!(
        charged["because"]["en"], "approved for 12.30 yuan",
        "{charged}"
    );
    let refused = verdict(&declined["rrn"]);
    let code = declined["code"].as_str().unwrap();
    let zh = refused["because"]["zh"].as_str().unwrap();
    let en = refused["because"]["en"].as_str().unwrap();
    assert!(zh.starts_with(&format!("主机以应答码 {code}（")), "{zh}");
    assert!(en.starts_with(&format!("declined with {code} (")), "{en}");
}

/// The first poll: the newest first, the card masked, each code with its meaning in both
/// languages and its kind's name; `next` is the newest id.
fn first_poll(api: &ApiHost, first: &Value, pan: &str) -> i64 {
    let http = &api.http;
    // The newest first, the card masked, each code with its meaning in both languages.
    let polled = ok(get(http, &api.ops, "/api/v1/activity"));
    let events = polled["events"].as_array().unwrap();
    assert!(events.len() >= 2, "the sign-in and the sale: {polled}");
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let next = polled["next"].as_i64().unwrap();
    assert_eq!(next, ids[0]);
    let sale = &events[0];
    assert_eq!(
        (&sale["kind"], &sale["rrn"]),
        (&json!("sale"), &first["rrn"])
    );
    assert_eq!(sale["kind_name"]["zh"], "消费");
    assert!(masked(sale["pan"].as_str().unwrap()), "{sale}");
    assert!(has_chinese(sale["code"]["meaning"]["zh"].as_str().unwrap()));
    assert!(
        !polled.to_string().contains(pan),
        "a whole card number in {polled}"
    );

    next
}

#[test]
fn live_activity_answers_what_is_new_after_an_id_each_merchant_its_own() {
    let temp = tempfile::tempdir().unwrap();
    let api = ApiHost::start(temp.path());
    let http = &api.http;
    let pos = fleet_terminal(temp.path(), 2, &api.host, &[]);
    let pan = demo::fleet_pan(2);
    let (_, first) = pos.sale("1.23", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(first["code"], "00", "{first}");

    let next = first_poll(&api, &first, &pan);
    // Polled after `next`: nothing new, then exactly what came since.
    let again = ok(get(
        http,
        &api.ops,
        &format!("/api/v1/activity?after={next}"),
    ));
    assert_eq!(
        (
            again["events"].as_array().unwrap().len(),
            again["next"].as_i64()
        ),
        (0, Some(next))
    );
    let (_, second) = pos.sale("4.56", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    let theirs = Pos {
        dir: temp.path().join("pos-other"),
    };
    theirs.init(OTHER_TID, OTHER_MID, &api.host.addr, &[]);
    assert_eq!(theirs.sign_in()["code"], "00");
    let (_, their_sale) = theirs.sale("7.89", &demo::fleet_pan(4), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(their_sale["code"], "00", "{their_sale}");
    let new = ok(get(
        http,
        &api.ops,
        &format!("/api/v1/activity?after={next}"),
    ));
    let rrns: Vec<&Value> = new["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["rrn"])
        .collect();
    assert!(
        rrns.contains(&&second["rrn"]) && rrns.contains(&&their_sale["rrn"]),
        "{new}"
    );
    assert!(
        new["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"].as_i64().unwrap() > next)
    );

    each_merchant_its_own_and_bad_polls_refused(&api, next);
}

/// Each merchant its own events, from the start and after an id; `limit`; 401 without a
/// login; a bad `limit` or `after` is 400 naming it.
fn each_merchant_its_own_and_bad_polls_refused(api: &ApiHost, next: i64) {
    let http = &api.http;
    for (token, mid) in [(&api.shop, MID), (&api.other, OTHER_MID)] {
        for path in [
            "/api/v1/activity".to_owned(),
            format!("/api/v1/activity?after={next}"),
        ] {
            let mine = ok(get(http, token, &path));
            let events = mine["events"].as_array().unwrap();
            assert!(!events.is_empty(), "{path}");
            assert!(
                events.iter().all(|e| e["mid"] == mid),
                "{mid} {path}: {mine}"
            );
        }
    }
    let limited = ok(get(http, &api.ops, "/api/v1/activity?limit=1"));
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    assert_eq!(call(http, "GET", "/api/v1/activity", &[], b"").status, 401);
    for path in [
        "/api/v1/activity?limit=0",
        "/api/v1/activity?limit=201",
        "/api/v1/activity?after=-1",
        "/api/v1/activity?after=x",
    ] {
        let r = get(http, &api.ops, path);
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        let field = path.split(['?', '=']).nth(1).unwrap();
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(field),
            "{path}: {}",
            r.text
        );
    }
}
