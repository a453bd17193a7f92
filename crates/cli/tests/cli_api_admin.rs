//! The admin routes of the HTTP API end to end (issue 22 §1, §2): a host process serving
//! `--http`, the fault plan replaced through the API and obeyed by the running host, a
//! merchant and a terminal added through the API and used by a real virtual POS, users
//! added and removed; every one of them refused to merchants and operators (403), refused
//! without a login (401), a bad plan or record refused with the field named (400) and
//! nothing changed, every write in the audit trail.

mod support;

use poskit_host::demo;
use serde_json::{Value, json};
use support::{ApiHost, EXPIRY, MID, Pos, call, fleet_terminal, get, password_of, poskit};

fn send(http: &str, token: &str, method: &str, path: &str, body: &Value) -> support::Reply {
    call(
        http,
        method,
        path,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

fn error_of(r: &support::Reply) -> (u16, String, String) {
    (
        r.status,
        r.body["error"]["code"].as_str().unwrap_or("").to_owned(),
        r.body["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

/// Every admin route, with a body that would do something.
fn admin_routes() -> Vec<(&'static str, String, Value)> {
    let merchant = json!({"mid": "898310048169999", "name": "x", "mcc": "5812"});
    let terminal = json!({"tid": "20000009", "mid": MID, "tmk": demo::DEMO_TMK});
    vec![
        ("GET", "/api/v1/faults".into(), Value::Null),
        ("PUT", "/api/v1/faults".into(), json!({"plan": ""})),
        ("DELETE", "/api/v1/faults".into(), Value::Null),
        ("GET", "/api/v1/users".into(), Value::Null),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"name": "eve", "role": "admin", "password": "eve has a long password"}),
        ),
        ("DELETE", "/api/v1/users/ops".into(), Value::Null),
        ("POST", "/api/v1/merchants".into(), merchant.clone()),
        ("PUT", format!("/api/v1/merchants/{MID}"), merchant),
        ("POST", "/api/v1/terminals".into(), terminal.clone()),
        (
            "PUT",
            format!("/api/v1/terminals/{}", demo::fleet_tid(1)),
            terminal,
        ),
    ]
}

/// Merchants and operators get 403 on every admin route, nobody logged in 401, and none of
/// it changed anything (the audit trail has no admin action).
fn only_admins_may(api: &ApiHost) {
    for (method, path, body) in admin_routes() {
        for (who, token) in [
            ("shop", &api.shop),
            ("other", &api.other),
            ("ops", &api.ops),
        ] {
            let r = send(&api.http, token, method, &path, &body);
            assert_eq!(
                (r.status, r.body["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{who} {method} {path}: {}",
                r.text
            );
        }
        let r = call(&api.http, method, &path, &[], body.to_string().as_bytes());
        assert_eq!(r.status, 401, "{method} {path}");
    }
    let trail = get(&api.http, &api.admin, "/api/v1/audit?limit=1000").body;
    for a in trail["audit"].as_array().unwrap() {
        assert!(
            ![
                "faults-set",
                "faults-clear",
                "merchant-add",
                "terminal-add",
                "user-add"
            ]
            .contains(&a["action"].as_str().unwrap())
                || a["from_addr"] == "cli",
            "a refused call was audited as done: {a}"
        );
    }
    assert_eq!(
        get(&api.http, &api.admin, "/api/v1/users").body["users"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// The fault plan: a bad one is 400 naming the rule and field, and the plan in force stays;
/// a good one is applied by the running host (its next sale is answered 96); a card number
/// in a rule is shown masked; clearing it ends the fault.
fn fault_plan_through_the_api(api: &ApiHost, pos: &Pos) {
    bad_plans_change_nothing(api);
    a_plan_the_host_obeys(api, pos);
}

fn bad_plans_change_nothing(api: &ApiHost) {
    let (http, admin) = (&api.http, &api.admin);
    let before = get(http, admin, "/api/v1/faults").body;
    let bad = "[[rules]]\nname = \"slow\"\naction = \"delay\"\n";
    let r = send(http, admin, "PUT", "/api/v1/faults", &json!({"plan": bad}));
    let (status, code, message) = error_of(&r);
    assert_eq!((status, code.as_str()), (400, "bad_request"), "{}", r.text);
    assert!(
        message.contains("slow") && message.contains("delay_ms"),
        "{message}"
    );
    let r = send(
        http,
        admin,
        "PUT",
        "/api/v1/faults",
        &json!({"plan": "x = ["}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = send(http, admin, "PUT", "/api/v1/faults", &json!({"plan": 5}));
    assert!(error_of(&r).2.contains("plan"), "{}", r.text);
    assert_eq!(
        get(http, admin, "/api/v1/faults").body,
        before,
        "nothing changed"
    );
}

fn a_plan_the_host_obeys(api: &ApiHost, pos: &Pos) {
    let (http, admin) = (&api.http, &api.admin);
    let tid = demo::fleet_tid(1);
    let pan = demo::fleet_pan(1);
    let plan = format!(
        "seed = 7\n[[rules]]\nname = \"96 to the next sale\"\ntid = \"{tid}\"\ncard = \"{pan}\"\nkind = \"sale\"\nreversal = false\naction = \"code\"\ncode = \"96\"\ncount_max = 1\n"
    );
    let r = send(http, admin, "PUT", "/api/v1/faults", &json!({"plan": plan}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["applied"], true,
        "the running host applied it: {}",
        r.body
    );
    assert_eq!(r.body["rules"], json!(["96 to the next sale"]));
    let shown = get(http, admin, "/api/v1/faults");
    assert!(
        !shown.text.contains(&pan),
        "a card number shown whole: {}",
        shown.text
    );
    assert!(
        shown.body["plan"].as_str().unwrap().contains("622202*"),
        "{}",
        shown.text
    );
    let (_, sale) = pos.sale("3.00", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "96", "the plan applies: {sale}");
    let (_, sale) = pos.sale("3.00", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "once (count_max): {sale}");
    let r = send(http, admin, "DELETE", "/api/v1/faults", &Value::Null);
    assert_eq!(
        (r.status, &r.body["rules"]),
        (200, &json!([])),
        "{}",
        r.text
    );
    let trail = get(http, admin, "/api/v1/audit").body["audit"].clone();
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["user"] == "root" && a["from_addr"] != "cli")
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..2], ["faults-clear", "faults-set"], "{trail}");
    assert!(!trail.to_string().contains(&pan));
}

#[test]
fn admins_change_the_fault_plan_master_data_and_users_and_nobody_else_may() {
    let temp = tempfile::tempdir().unwrap();
    let api = ApiHost::start(temp.path());
    only_admins_may(&api);
    let pos = fleet_terminal(temp.path(), 1, &api.host, &[]);
    fault_plan_through_the_api(&api, &pos);
    master_data_through_the_api(&api, temp.path());
    users_through_the_api(&api);
    openapi_names_the_admin_routes(&api.http);
}

/// A merchant and a terminal added through the API are what a virtual POS then signs in
/// and sells at; the merchant made inactive is refused (03); bad records are 400 with the
/// field named; the terminal's master key is never shown or audited.
const NEW_MID: &str = "898310048169999";
const NEW_TID: &str = "20000009";

fn master_data_through_the_api(api: &ApiHost, root: &std::path::Path) {
    let merchant = json!({"mid": NEW_MID, "name": "night market", "mcc": "5812"});
    merchant_added_or_refused(api, &merchant);
    terminal_added_or_refused(api);
    records_used_by_a_virtual_pos(api, root, &merchant);
}

/// A merchant added (409 the second time); a bad MCC and an unknown field are 400 naming
/// them, and nothing is stored.
fn merchant_added_or_refused(api: &ApiHost, merchant: &Value) {
    let (http, admin) = (&api.http, &api.admin);
    let r = send(http, admin, "POST", "/api/v1/merchants", merchant);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["merchant"]["status"], "active");
    let r = send(http, admin, "POST", "/api/v1/merchants", merchant);
    assert_eq!(error_of(&r).1, "conflict", "{}", r.text);
    let mut bad = merchant.clone();
    bad["mid"] = json!("898310048169998");
    bad["mcc"] = json!("58");
    let (status, _, message) = error_of(&send(http, admin, "POST", "/api/v1/merchants", &bad));
    assert!(status == 400 && message.contains("MCC"), "{message}");
    bad["mcc"] = json!("5812");
    bad["colour"] = json!("red");
    let (status, _, message) = error_of(&send(http, admin, "POST", "/api/v1/merchants", &bad));
    assert!(status == 400 && message.contains("colour"), "{message}");
    let r = get(http, admin, "/api/v1/merchants?limit=1000");
    assert!(
        !r.text.contains("898310048169998"),
        "a refused record was stored"
    );
}

/// A terminal added (its master key never shown); one of a merchant not on file, with a bad
/// key, or whose TID differs from the path's is 400; an unknown one's update 404.
fn terminal_added_or_refused(api: &ApiHost) {
    let (http, admin) = (&api.http, &api.admin);
    let terminal = json!({"tid": NEW_TID, "mid": NEW_MID, "tmk": demo::DEMO_TMK, "permitted": ["sale", "void"]});
    let r = send(http, admin, "POST", "/api/v1/terminals", &terminal);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["terminal"]["permitted"], json!(["sale", "void"]));
    assert!(!r.text.contains(demo::DEMO_TMK), "{}", r.text);
    let mut stray = terminal.clone();
    stray["tid"] = json!("20000008");
    stray["mid"] = json!("898310048169997");
    let (status, _, message) = error_of(&send(http, admin, "POST", "/api/v1/terminals", &stray));
    assert!(status == 400 && message.starts_with("mid:"), "{message}");
    stray["mid"] = json!(NEW_MID);
    stray["tmk"] = json!("0123");
    let (status, _, message) = error_of(&send(http, admin, "POST", "/api/v1/terminals", &stray));
    assert!(status == 400 && message.contains("tmk"), "{message}");
    let r = send(http, admin, "PUT", "/api/v1/terminals/20000007", &terminal);
    assert_eq!(r.status, 400, "tid differs from the path: {}", r.text);
    let mut unknown = terminal.clone();
    unknown.as_object_mut().unwrap().remove("tid");
    let r = send(http, admin, "PUT", "/api/v1/terminals/20000007", &unknown);
    assert_eq!(r.status, 404, "{}", r.text);
}

/// A virtual POS at the new terminal signs in and sells; the merchant made inactive, its
/// sale is refused (03). The other merchants' users do not see them; the audit trail has
/// every write, without the master key.
fn records_used_by_a_virtual_pos(api: &ApiHost, root: &std::path::Path, merchant: &Value) {
    let (http, admin, mid, tid) = (&api.http, &api.admin, NEW_MID, NEW_TID);
    let pos = Pos {
        dir: root.join("pos-new"),
    };
    pos.init(tid, mid, &api.host.addr, &[]);
    assert_eq!(pos.sign_in()["code"], "00");
    let pan = demo::fleet_pan(3);
    let (_, sale) = pos.sale("8.88", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "{sale}");
    // Made inactive: its sales are refused with 03.
    let mut inactive = merchant.clone();
    inactive.as_object_mut().unwrap().remove("mid");
    inactive["status"] = json!("inactive");
    let r = send(
        http,
        admin,
        "PUT",
        &format!("/api/v1/merchants/{mid}"),
        &inactive,
    );
    assert_eq!(
        (r.status, &r.body["merchant"]["status"]),
        (200, &json!("inactive")),
        "{}",
        r.text
    );
    let (_, sale) = pos.sale("8.88", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "03", "{sale}");
    let r = send(
        http,
        admin,
        "PUT",
        "/api/v1/merchants/898310048169990",
        &inactive,
    );
    assert_eq!(r.status, 404, "{}", r.text);

    // The other merchants' users do not see it; the audit has both, without the key.
    for token in [&api.shop, &api.other] {
        let r = get(http, token, "/api/v1/merchants");
        assert!(!r.text.contains(mid), "{}", r.text);
        assert_eq!(
            get(http, token, &format!("/api/v1/terminals/{tid}")).status,
            404
        );
    }
    let trail = get(http, admin, "/api/v1/audit").body.to_string();
    for action in ["merchant-add", "merchant-update", "terminal-add"] {
        assert!(trail.contains(action), "{action}: {trail}");
    }
    assert!(!trail.contains(demo::DEMO_TMK), "{trail}");
}

/// Users: listed, added (and able to log in), refused with the field named, removed (its
/// token then refused); an admin does not remove themselves.
fn users_through_the_api(api: &ApiHost) {
    let (http, admin) = (&api.http, &api.admin);
    let names = |r: &support::Reply| -> Vec<String> {
        r.body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&get(http, admin, "/api/v1/users")),
        ["ops", "root", "shop1", "shop4"]
    );
    let lin =
        json!({"name": "lin", "role": "merchant", "merchant": MID, "password": password_of("lin")});
    let r = send(http, admin, "POST", "/api/v1/users", &lin);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (&r.body["user"]["role"], &r.body["user"]["merchant"]),
        (&json!("merchant"), &json!(MID))
    );
    assert!(!r.text.contains(&password_of("lin")));
    let login = json!({"name": "lin", "password": password_of("lin")}).to_string();
    let r = call(
        http,
        "POST",
        "/api/v1/login",
        &[("content-type", "application/json")],
        login.as_bytes(),
    );
    assert_eq!(r.status, 200, "lin logs in: {}", r.text);
    assert_eq!(
        error_of(&send(http, admin, "POST", "/api/v1/users", &lin)).1,
        "conflict"
    );
    for (field, value, named) in [
        ("role", json!("boss"), "role"),
        ("merchant", json!("898310048160099"), "merchant"),
        ("password", json!("short"), "password"),
        ("name", json!("white space"), "name"),
    ] {
        let mut bad = lin.clone();
        bad["name"] = json!("lin2");
        bad[field] = value;
        let (status, _, message) = error_of(&send(http, admin, "POST", "/api/v1/users", &bad));
        assert!(
            status == 400 && message.starts_with(named),
            "{field}: {message}"
        );
    }
    let token =
        String::from_utf8(poskit(&["users", "--data", api.host.data(), "token", "lin"]).stdout)
            .unwrap()
            .trim()
            .to_owned();
    assert_eq!(get(http, &token, "/api/v1/me").status, 200);
    let r = send(http, admin, "DELETE", "/api/v1/users/lin", &Value::Null);
    assert_eq!(
        (r.status, &r.body["removed"]),
        (200, &json!("lin")),
        "{}",
        r.text
    );
    assert_eq!(
        get(http, &token, "/api/v1/me").status,
        401,
        "its token is gone"
    );
    assert_eq!(
        send(http, admin, "DELETE", "/api/v1/users/lin", &Value::Null).status,
        404
    );
    assert_eq!(
        error_of(&send(
            http,
            admin,
            "DELETE",
            "/api/v1/users/root",
            &Value::Null
        ))
        .1,
        "conflict"
    );
    let trail = get(http, admin, "/api/v1/audit").body;
    let done: Vec<(&str, &str)> = trail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["user"] == "root" && a["target"] == "lin" && a["from_addr"] != "cli")
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["from_addr"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        done,
        [("user-remove", "127.0.0.1"), ("user-add", "127.0.0.1")]
    );
    assert!(!trail.to_string().contains(&password_of("lin")));
}

fn openapi_names_the_admin_routes(http: &str) {
    let doc = call(http, "GET", "/openapi.json", &[], b"").body;
    for (path, method) in [
        ("/api/v1/faults", "get"),
        ("/api/v1/faults", "put"),
        ("/api/v1/faults", "delete"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{name}", "delete"),
        ("/api/v1/merchants", "post"),
        ("/api/v1/merchants/{mid}", "put"),
        ("/api/v1/terminals", "post"),
        ("/api/v1/terminals/{tid}", "put"),
        ("/api/v1/activity", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    for schema in ["PlanIn", "MerchantIn", "TerminalIn", "UserIn"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    for path in ["/api/v1/terminals", "/api/v1/merchants", "/api/v1/audit"] {
        let params = doc["paths"][path]["get"]["parameters"].to_string();
        assert!(
            params.contains("\"after\"") && params.contains("\"limit\""),
            "{path}: {params}"
        );
    }
}
