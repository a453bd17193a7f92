//! The HTTP API end to end (issue 22 §1, §2, §5): a host process serving `--http` on
//! loopback, users made with `poskit users`, a real sale; every route asked by each role.
//! A merchant user never sees another merchant's data; writes need the right role (and,
//! from a cookie session, the CSRF token) and are audited; bad input is a 4xx in one shape.

mod support;

use poskit_host::demo;
use serde_json::{Value, json};
use support::{
    ApiHost, EXPIRY, HostProcess, MID, OTHER_MID, add_user, call, fleet_terminal, free_port, get,
    poskit, raise_alert,
};

#[test]
fn each_role_sees_what_it_may_and_a_merchant_only_its_own() {
    let temp = tempfile::tempdir().unwrap();
    let ApiHost {
        host,
        http,
        admin,
        ops,
        shop,
        other,
    } = ApiHost::start(temp.path());
    // A real sale at the first merchant.
    let pos = fleet_terminal(temp.path(), 1, &host, &[]);
    let (_, sale) = pos.sale("12.30", &demo::fleet_pan(1), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "{sale}");
    let rrn = sale["rrn"].as_str().unwrap().to_owned();
    let tid = demo::fleet_tid(1);

    // Lookup: the sale's merchant and the operator find it, the other merchant does not.
    let path = format!("/api/v1/lookup?rrn={rrn}");
    for (token, found) in [(&ops, 1), (&shop, 1), (&other, 0), (&admin, 1)] {
        let r = get(&http, token, &path);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body["matches"].as_array().unwrap().len(),
            found,
            "{}",
            r.body
        );
    }
    let r = get(&http, &shop, &path);
    assert_eq!(
        r.body["matches"][0]["verdict"]["verdict"], "charged",
        "{}",
        r.body
    );
    // Terminals and merchants: each merchant its own.
    let tids = |token: &str| -> Vec<Value> {
        let r = get(&http, token, "/api/v1/terminals");
        r.body["terminals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["mid"].clone())
            .collect()
    };
    assert!(tids(&shop).iter().all(|m| m == MID) && !tids(&shop).is_empty());
    assert_eq!(tids(&other), [json!(OTHER_MID)]);
    assert!(tids(&ops).len() > tids(&shop).len());
    let r = get(&http, &other, "/api/v1/merchants");
    assert_eq!(r.body["merchants"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&http, &shop, &format!("/api/v1/terminals/{tid}")).status,
        200
    );
    assert_eq!(
        get(&http, &other, &format!("/api/v1/terminals/{tid}")).status,
        404
    );
    // Statistics: own merchant yes, another's 404, the whole host operators only.
    assert_eq!(
        get(&http, &shop, &format!("/api/v1/stats?merchant={MID}")).status,
        200
    );
    assert_eq!(
        get(&http, &other, &format!("/api/v1/stats?merchant={MID}")).status,
        404
    );
    assert_eq!(
        get(&http, &other, &format!("/api/v1/stats?terminal={tid}")).status,
        404
    );
    assert_eq!(get(&http, &shop, "/api/v1/stats").status, 403);
    assert_eq!(get(&http, &ops, "/api/v1/stats").status, 200);
    // Disputes: a list for each (none opened here).
    for token in [&ops, &shop, &other] {
        assert_eq!(get(&http, token, "/api/v1/disputes").status, 200);
    }

    // Alerts: the first merchant's terminal's alert is seen by it and the operator only.
    let id = raise_alert(&host.data, &tid);
    let seen = |token: &str| {
        get(&http, token, "/api/v1/alerts").body["alerts"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((seen(&ops), seen(&shop), seen(&other)), (1, 1, 0));
    let ack = format!("/api/v1/alerts/{id}/ack");
    let bearer = |t: &str| format!("Bearer {t}");
    let r = call(
        &http,
        "POST",
        &ack,
        &[("authorization", &bearer(&shop))],
        b"",
    );
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (403, &json!("forbidden"))
    );
    let r = call(
        &http,
        "POST",
        &ack,
        &[("authorization", &bearer(&ops))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["alert"]["acked_by"], "ops");
    let r = call(
        &http,
        "POST",
        "/api/v1/alerts/999999/ack",
        &[("authorization", &bearer(&ops))],
        b"",
    );
    assert_eq!(r.status, 404);
    // Audited; the trail is for admins.
    assert_eq!(get(&http, &ops, "/api/v1/audit").status, 403);
    let trail = get(&http, &admin, "/api/v1/audit").body;
    assert!(
        trail["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "alert-ack" && a["user"] == "ops"),
        "{trail}"
    );

    // Explain, in both languages; a code that is not one is 404, a bad language 400.
    let r = get(&http, &shop, "/api/v1/explain/25?lang=en");
    assert_eq!(r.status, 200);
    assert!(r.body["meaning_en"].as_str().unwrap().len() > 5);
    assert!(support::has_chinese(
        get(&http, &shop, "/api/v1/explain/25").body["meaning_zh"]
            .as_str()
            .unwrap()
    ));
    assert_eq!(get(&http, &shop, "/api/v1/explain/Q9").status, 404);
    let r = get(&http, &shop, "/api/v1/explain/25?lang=fr");
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (400, &json!("bad_request"))
    );
    // The OpenAPI document names the routes.
    let r = call(&http, "GET", "/openapi.json", &[], b"");
    assert!(
        r.body["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        r.body
    );
    assert!(r.body["paths"]["/api/v1/lookup"].is_object());
}

#[test]
fn sessions_need_csrf_logins_are_limited_and_bad_input_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let http = free_port();
    let host = HostProcess::start(&temp.path().join("host"), &["--http", &http]);
    let data = host.data().to_owned();
    add_user(&data, "ops", "operator", None);
    let id = raise_alert(&host.data, &demo::fleet_tid(1));
    // Not logged in, or a token that is not one: 401.
    let r = call(&http, "GET", "/api/v1/alerts", &[], b"");
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    assert_eq!(get(&http, "pk_0000", "/api/v1/alerts").status, 401);
    // A console login: an HttpOnly, SameSite cookie, and the CSRF token for writes.
    let login = json!({"name": "ops", "password": "ops has a long password"}).to_string();
    let json_type = ("content-type", "application/json");
    let r = call(
        &http,
        "POST",
        "/api/v1/login",
        &[json_type],
        login.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie_line = r
        .headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = r.body["csrf"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&http, "GET", "/api/v1/me", &[("cookie", &cookie)], b"").body["user"]["name"],
        "ops"
    );
    let ack = format!("/api/v1/alerts/{id}/ack");
    let r = call(&http, "POST", &ack, &[("cookie", &cookie)], b"");
    assert_eq!((r.status, &r.body["error"]["code"]), (403, &json!("csrf")));
    let r = call(
        &http,
        "POST",
        &ack,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Logged out: the cookie no longer works.
    call(
        &http,
        "POST",
        "/api/v1/logout",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        b"",
    );
    assert_eq!(
        call(&http, "GET", "/api/v1/me", &[("cookie", &cookie)], b"").status,
        401
    );
    // Malformed JSON and wrong fields: 400 naming what is wrong.
    let r = call(
        &http,
        "POST",
        "/api/v1/login",
        &[json_type],
        b"{\"name\": 5}",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{}",
        r.body
    );
    // Five wrong passwords, then even the right one waits.
    let wrong = json!({"name": "ops", "password": "not the password"}).to_string();
    for _ in 0..5 {
        assert_eq!(
            call(
                &http,
                "POST",
                "/api/v1/login",
                &[json_type],
                wrong.as_bytes()
            )
            .status,
            401
        );
    }
    let r = call(
        &http,
        "POST",
        "/api/v1/login",
        &[json_type],
        login.as_bytes(),
    );
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (429, &json!("too_many_attempts"))
    );
    // Oversized bodies refused; an unknown route is 404 in the same shape.
    let big = vec![b'x'; 100 * 1024];
    assert_eq!(
        call(&http, "POST", "/api/v1/login", &[json_type], &big).status,
        413
    );
    let r = call(&http, "GET", "/api/v1/nothing", &[], b"");
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (404, &json!("not_found"))
    );
}

#[test]
fn users_are_managed_from_the_command_line_and_plain_http_stays_on_loopback() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("host");
    let out = poskit(&[
        "host",
        "--data",
        data.to_str().unwrap(),
        "--demo",
        "--http",
        "0.0.0.0:0",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain HTTP only on loopback"));
    std::fs::create_dir_all(&data).unwrap();
    poskit_host::run::load_demo(
        &poskit_host::DataDir::create(&data).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let d = data.to_str().unwrap();
    add_user(d, "li", "merchant", Some(MID));
    let out = poskit(&[
        "users",
        "--data",
        d,
        "add",
        "wu",
        "--role",
        "merchant",
        "--merchant",
        "123456789012345",
        "--password-stdin",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = poskit(&[
        "users",
        "--data",
        d,
        "add",
        "wu",
        "--role",
        "boss",
        "--password-stdin",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let listed = poskit(&["users", "--data", d, "list", "--json"]);
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v[0]["name"], "li");
    assert_eq!(v[0]["merchant"], MID);
    assert!(
        poskit(&["users", "--data", d, "remove", "li"])
            .status
            .success()
    );
    assert_eq!(
        poskit(&["users", "--data", d, "remove", "li"])
            .status
            .code(),
        Some(3)
    );
    // console.db is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("console.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
