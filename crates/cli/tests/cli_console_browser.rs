//! The web console in a real browser (issue 22 §3, §5): a host process serves `--http` on
//! loopback, headless Chromium (Debian's `chromium`, driven by its `chromedriver` over the
//! W3C WebDriver protocol) logs in with the login form and uses the pages as a person would:
//! an operator finds a real sale by its RRN and reads the verdict and why (in Chinese),
//! explains code 25 in Chinese and then in English, sees a terminal's code chart, its keys'
//! age and its decline explained, acknowledges an alert with its diagnosis, reads the day's
//! reconciliation breaks in the catalog's words, watches a sale arrive on the live activity
//! page without a reload, and accepts a chargeback with its button; a merchant user sees
//! only its own terminals, alerts without an Ack button, and on a phone-sized window its
//! breaks and live activity in Chinese and its disputes without the operators' buttons; no
//! page logs an error. Screenshots go to `console-screenshots/` under the target directory
//! (or `POSKIT_SCREENSHOTS`). CI installs the browser (.ci/run); a machine without it skips
//! that test. Another, browser or not, checks the pages' security headers and the console's
//! own routes over plain HTTP.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::prelude::{BASE64_STANDARD, Engine};
use poskit_domain::calendar::{ClearingCut, yyyymmdd};
use poskit_host::demo;
use serde_json::{Value, json};
use support::{
    EXPIRY, HostProcess, MID, OTHER_TID, add_user, call, fleet_terminal, free_port, get,
    has_chinese, password_of, poskit, raise_alert,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what is waited for (a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(15);
/// The key W3C WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether Chromium and chromedriver are installed (CI must have them).
fn browser_installed() -> bool {
    let found = Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file();
    if !found && std::env::var_os("CI").is_some() {
        panic!(
            "CI installs {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium, chromium-driver; .ci/run)"
        );
    }
    found
}

/// Where the screenshots go: `POSKIT_SCREENSHOTS`, or `console-screenshots/` in the target
/// directory the test binary was built in.
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("POSKIT_SCREENSHOTS").map_or_else(
        || {
            Path::new(env!("CARGO_BIN_EXE_poskit"))
                .ancestors()
                .nth(2)
                .unwrap()
                .join("console-screenshots")
        },
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver process on a loopback port; killed and reaped when dropped.
struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
    log: PathBuf,
    /// Where each session's fresh profile goes.
    dir: PathBuf,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        let addr = free_port();
        let port = addr.rsplit(':').next().unwrap();
        let log = dir.join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut driver = Driver {
            child,
            base: format!("http://{addr}"),
            agent,
            log,
            dir: dir.to_owned(),
        };
        driver.wait_ready();
        driver
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("chromedriver exited ({status}):\n{}", self.log());
            }
            let ready = self
                .agent
                .get(format!("{}/status", self.base))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let tail = bytes.len().saturating_sub(4_000);
        String::from_utf8_lossy(&bytes[tail..]).into_owned()
    }

    /// One WebDriver command: its status and `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, v["value"].clone())
    }

    /// A new browser session with a profile of its own (so nothing is remembered).
    fn session(&self, name: &str) -> Browser<'_> {
        let profile = self.dir.join(format!("profile-{name}"));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let (status, v) = self.command("POST", "/session", Some(caps));
        assert_eq!(status, 200, "new session: {v}\n{}", self.log());
        Browser {
            driver: self,
            id: v["sessionId"].as_str().unwrap().to_owned(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; closed when dropped.
struct Browser<'d> {
    driver: &'d Driver,
    id: String,
}

impl Browser<'_> {
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/session/{}{path}", self.id);
        self.driver.command(method, &path, body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.command(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.ok("GET", "/url", None).as_str().unwrap().to_owned()
    }

    /// The first element matching `css`, if there is one now.
    fn find(&self, css: &str) -> Option<String> {
        let (status, v) = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        (status == 200).then(|| v[ELEMENT].as_str().unwrap().to_owned())
    }

    fn count(&self, css: &str) -> usize {
        self.all(css).len()
    }

    fn all(&self, css: &str) -> Vec<String> {
        let body = json!({"using": "css selector", "value": css});
        let found = self.ok("POST", "/elements", Some(body));
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    /// The texts of the elements matching `css` now.
    fn texts(&self, css: &str) -> Vec<String> {
        self.all(css)
            .iter()
            .map(|id| {
                let text = self.ok("GET", &format!("/element/{id}/text"), None);
                text.as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// The element matching `css` whose text satisfies `ok`, waiting for it; its text.
    fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Some(id) = self.find(css) {
                let (status, v) = self.command("GET", &format!("/element/{id}/text"), None);
                if status == 200 {
                    last = v.as_str().unwrap_or_default().to_owned();
                    if ok(&last) {
                        return last;
                    }
                }
            }
            if Instant::now() > deadline {
                self.screenshot("failed");
                panic!(
                    "no {css} as expected within {WAIT:?} on {}; last text {last:?}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(&self, css: &str) -> String {
        self.wait_text(css, |_| true)
    }

    /// The element matching `css`, waiting for the page to show it.
    fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self.find(css) {
                return id;
            }
            if Instant::now() > deadline {
                self.screenshot("failed");
                panic!("no {css} within {WAIT:?} on {}", self.url());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.ok("POST", &format!("/element/{id}/clear"), None);
        self.ok(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.ok("POST", &format!("/element/{id}/click"), None);
    }

    /// How many pages the console has shown (`data-rendered` of its `#view`).
    fn rendered(&self) -> String {
        let id = self.element("#view");
        let v = self.ok(
            "GET",
            &format!("/element/{id}/attribute/data-rendered"),
            None,
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks `css`, which shows another page of the console, and waits until it is shown
    /// (so that what is looked for next is not the page before).
    fn click_to_page(&self, css: &str) {
        let before = self.rendered();
        self.click(css);
        let deadline = Instant::now() + WAIT;
        while self.rendered() == before {
            assert!(Instant::now() < deadline, "{css} showed no page");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn resize(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.ok("POST", "/window/rect", Some(rect));
    }

    /// The page's errors so far (script errors, CSP violations, failed loads), from
    /// Chromium's console log.
    fn page_errors(&self) -> Vec<String> {
        let log = self.ok("POST", "/se/log", Some(json!({"type": "browser"})));
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Saves what the browser shows as `NAME.png` in the screenshot directory.
    fn screenshot(&self, name: &str) {
        let (status, v) = self.command("GET", "/screenshot", None);
        if status != 200 {
            return; // a failing test's last look; its own failure says more
        }
        let png = BASE64_STANDARD.decode(v.as_str().unwrap()).unwrap();
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    }

    /// Logs in with the login form (a page that needs a login goes there first).
    fn log_in(&self, base: &str, name: &str) {
        self.goto(&format!("{base}/"));
        self.wait("#login-form");
        assert!(self.url().ends_with("/login"), "{}", self.url());
        self.type_into("#name", name);
        self.type_into("#password", &password_of(name));
        self.screenshot(&format!("login-{name}"));
        self.click("#login-submit");
        self.wait_text("#who", |t| t.starts_with(name));
        let deadline = Instant::now() + WAIT;
        while self.rendered().is_empty() {
            assert!(Instant::now() < deadline, "the console showed no page");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.command("DELETE", "", None);
    }
}

/// `/`, `/login` and the script are served with the security headers.
fn pages_carry_security_headers(http: &str) {
    for path in ["/", "/login", "/assets/app.js", "/assets/console.css"] {
        let r = call(http, "GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        let head = r.headers.to_ascii_lowercase();
        for want in [
            "content-security-policy: default-src 'self'; script-src 'self';",
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
        ] {
            assert!(head.contains(want), "{path} lacks {want}:\n{}", r.headers);
        }
    }
    let page = call(http, "GET", "/", &[], b"").text;
    assert!(!page.contains("<script>") && page.contains("src=\"/assets/app.js\""));
    assert_eq!(
        call(http, "GET", "/assets/nothing.js", &[], b"").status,
        404
    );
}

/// The operator finds the sale by its RRN; the verdict shown is the API's, in Chinese.
fn lookup_by_rrn(ops: &Browser, http: &str, token: &str, rrn: &str) {
    let api = get(http, token, &format!("/api/v1/lookup?rrn={rrn}")).body;
    let verdict = &api["matches"][0]["verdict"];
    assert_eq!(verdict["verdict"], "charged", "{api}");
    ops.click_to_page("nav a[data-route=lookup]");
    ops.type_into("#f-rrn", rrn);
    ops.click_to_page("#lookup-submit");
    let shown = ops.wait(".verdict[data-verdict=charged] .verdict-text");
    assert_eq!(shown, verdict["zh"].as_str().unwrap());
    assert!(shown.starts_with("已扣款"), "{shown}");
    let chain = ops.wait_text("ol.chain", |t| !t.is_empty());
    assert!(chain.contains("原交易") && chain.contains("00"), "{chain}");
    // Why, in the language shown: the catalog's reason, in Chinese.
    ops.click("details.because summary");
    let because = ops.wait_text(".because-text", |t| !t.is_empty());
    assert_eq!(because, verdict["because"]["zh"].as_str().unwrap());
    assert!(has_chinese(&because), "{because}");
    ops.screenshot("lookup-zh");
}

/// Code 25 explained in Chinese (the catalog's words for its class too), then in English
/// after the switch; the choice survives a reload. Words typed instead of a code find the
/// catalog's codes and symptom guides.
fn explain_in_both_languages(ops: &Browser, http: &str, token: &str) {
    let api = |path: &str| get(http, token, path).body;
    let (zh, en) = (
        api("/api/v1/explain/25?lang=zh"),
        api("/api/v1/explain/25?lang=en"),
    );
    let class = &api("/api/v1/catalog/labels?lang=zh")["class"][zh["class"].as_str().unwrap()];
    ops.click_to_page("nav a[data-route=explain]");
    ops.type_into("#explain-input", "25");
    ops.click_to_page("#explain-submit");
    let meaning = ops.wait("#explanation[data-code='25'] #meaning");
    assert_eq!(meaning, zh["meaning_zh"].as_str().unwrap());
    assert!(has_chinese(&meaning));
    let facts = ops.wait("#explanation dl");
    assert!(facts.contains(class.as_str().unwrap()), "{facts}");
    let steps = ops.wait("#explanation ol");
    assert!(steps.contains(zh["steps"][0].as_str().unwrap()), "{steps}");
    ops.screenshot("explain-25-zh");

    ops.click_to_page("#lang");
    let wanted = en["meaning_en"].as_str().unwrap();
    ops.wait_text("#explanation #meaning", |t| t == wanted);
    let steps = ops.wait_text("#explanation ol", |t| !has_chinese(t));
    assert!(steps.contains(en["steps"][0].as_str().unwrap()), "{steps}");
    assert_eq!(ops.wait("nav a[data-route=alerts]"), "Alerts");
    ops.ok("POST", "/refresh", None);
    ops.wait_text("#explanation #meaning", |t| t == wanted);
    ops.screenshot("explain-25-en");

    let hits = api("/api/v1/search?q=wrong%20PIN&lang=en")["hits"].clone();
    let first = hits[0]["code"]
        .as_str()
        .or(hits[0]["title"].as_str())
        .unwrap();
    ops.type_into("#explain-input", "wrong PIN");
    ops.click_to_page("#explain-submit");
    let shown = ops.wait("#search-hits .hit");
    assert!(shown.contains(first), "{shown} (the API: {hits})");
    ops.screenshot("explain-search-en");
}

/// The terminal page draws its code chart: a bar for each code answered (`codes`).
fn terminal_chart(
    ops: &Browser,
    (base, http, token): (&str, &str, &str),
    tid: &str,
    codes: &[&str],
) {
    let bars = "#last-day svg.chart rect.bar";
    ops.goto(&format!("{base}/#/terminal/{tid}"));
    let deadline = Instant::now() + WAIT;
    // The host writes its figures every second: reload until both sales are counted.
    loop {
        ops.wait("#last-day h2");
        if ops.count(bars) == codes.len() {
            break;
        }
        assert!(Instant::now() < deadline, "no chart of {codes:?}");
        std::thread::sleep(Duration::from_millis(500));
        ops.ok("POST", "/refresh", None);
    }
    for code in codes {
        assert_eq!(
            ops.count(&format!("{bars}[data-code='{code}']")),
            1,
            "{code}"
        );
    }
    // Its keys' age, and its decline listed with the catalog's meaning in English.
    let keys = ops.wait("#keys-age");
    assert!(keys.contains("min ago"), "{keys}");
    let declined = codes.iter().find(|c| **c != "00").unwrap();
    let failure = ops.wait(&format!("#recent-failures li[data-code='{declined}']"));
    let meaning = get(http, token, &format!("/api/v1/explain/{declined}?lang=en")).body;
    assert!(
        failure.contains(meaning["meaning_en"].as_str().unwrap()),
        "{failure}"
    );
    ops.screenshot("terminal-en");
}

/// The operator acknowledges the alert with its button; the page shows it acknowledged.
fn ack_alert(ops: &Browser, base: &str, id: i64) {
    ops.goto(&format!("{base}/#/alerts?all=true"));
    let button = format!("button[data-ack='{id}']");
    ops.wait(&button);
    ops.screenshot("alerts-before-ack");
    ops.click(&button);
    let card = format!("article[data-alert='{id}']");
    ops.wait_text(&format!("{card} .acked"), |t| t.contains("Acknowledged"));
    let facts = ops.wait(&format!("{card} dl"));
    assert!(facts.contains("ops"), "{facts}");
    let diagnosis = ops.wait(&format!("{card} ol.diagnosis"));
    assert!(!has_chinese(&diagnosis), "{diagnosis}");
    assert_eq!(ops.count(&button), 0);
    ops.screenshot("alerts-acked");
}

/// A chargeback opened on the sale (as `poskit disputes open` does) is listed with its due
/// date and the days left; the operator accepts it with its button (the row then says so,
/// and the audit trail has it).
fn dispute_is_listed_and_acted_on(
    ops: &Browser,
    base: &str,
    (http, admin): (&str, &str),
    rrn: &str,
) {
    ops.goto(&format!("{base}/#/disputes"));
    let row = ops.wait("#disputes tbody tr[data-dispute]");
    assert!(row.contains("days left") && row.contains("4515"), "{row}");
    assert!(row.contains("charged back"), "its state in English: {row}");
    ops.screenshot("disputes-en");
    // Representing without evidence: the API's refusal is shown in the row.
    ops.click("#disputes button[data-step='represent']");
    let refused = ops.wait("#disputes tbody tr[data-dispute] .error");
    assert!(refused.contains("evidence"), "{refused}");
    ops.click("#disputes button[data-step='accept']");
    let row = ops.wait("#disputes tbody tr[data-dispute][data-state='accepted']");
    assert!(row.contains("accepted") && row.contains("closed"), "{row}");
    assert_eq!(ops.count("#disputes button[data-act]"), 0, "no step left");
    ops.screenshot("disputes-accepted-en");
    let trail = get(http, admin, "/api/v1/audit").body.to_string();
    assert!(
        trail.contains("dispute-act") && trail.contains("\"ops\""),
        "{trail}"
    );
    // Its transaction links to the lookup, which tells of the chargeback.
    ops.click_to_page("#disputes tbody tr[data-dispute] a");
    let chain = ops.wait("ol.chain");
    assert!(chain.contains("chargeback"), "{chain}");
    assert!(
        ops.url()
            .ends_with(&format!("rrn={}", rrn.trim_start_matches('0'))),
        "{}",
        ops.url()
    );
}

/// Reconciliation's breaks: the days reconciled, each break with its class's name and what
/// to do from the catalog (`breaks.toml`) in the language shown, its RRN a link to lookup.
fn breaks_are_shown_with_the_catalogs_words(
    ops: &Browser,
    base: &str,
    (http, token): (&str, &str),
    day: &str,
) {
    let api = get(http, token, &format!("/api/v1/recon/breaks?day={day}")).body;
    let first = &api["breaks"][0];
    let class = first["class"].as_str().unwrap();
    let names = get(http, token, "/api/v1/catalog/labels?lang=en").body;
    ops.click_to_page("nav a[data-route=breaks]");
    ops.wait(&format!("#recon-runs li[data-day='{day}']"));
    let card = format!(
        "#breaks article[data-break='{}']",
        first["id"].as_str().unwrap()
    );
    let name = ops.wait(&format!("{card} .break-name"));
    assert_eq!(name, names["break_class"][class].as_str().unwrap());
    let advice = ops.wait(&format!("{card} .advice"));
    assert_eq!(advice, first["advice"]["en"].as_str().unwrap());
    assert_eq!(
        ops.count("#breaks article[data-break]"),
        api["breaks"].as_array().unwrap().len()
    );
    ops.screenshot("breaks-en");
    // One class only, as the filter asks the API.
    let of_class = get(
        http,
        token,
        &format!("/api/v1/recon/breaks?day={day}&class={class}"),
    )
    .body["breaks"]
        .as_array()
        .unwrap()
        .len();
    let before = ops.rendered();
    ops.goto(&format!("{base}/#/breaks/{day}?class={class}"));
    let deadline = Instant::now() + WAIT;
    while ops.rendered() == before {
        assert!(Instant::now() < deadline, "the filtered page was not shown");
        std::thread::sleep(Duration::from_millis(50));
    }
    ops.wait(&format!(
        "#breaks[data-day='{day}'] article[data-class='{class}']"
    ));
    assert_eq!(ops.count("#breaks article[data-break]"), of_class);
    assert_eq!(
        ops.count(&format!("#breaks article[data-class='{class}']")),
        of_class
    );
}

/// Live activity: the newest transactions with their codes explained in the language
/// shown; a sale made while the page is open appears without a reload.
fn live_activity_polls(ops: &Browser, base: &str, (http, token): (&str, &str), pos: &support::Pos) {
    ops.goto(&format!("{base}/#/activity"));
    let first = ops.wait("#activity tbody tr[data-event]");
    assert!(first.contains("*"), "the card masked: {first}");
    let events = get(http, token, "/api/v1/activity").body;
    let newest = &events["events"][0];
    let meaning = newest["code"]["meaning"]["en"].as_str().unwrap();
    let row = ops.wait(&format!("#activity tr[data-event='{}']", newest["id"]));
    assert!(row.contains(meaning), "{row} lacks {meaning}");
    let (_, sale) = pos.sale("6.66", &demo::fleet_pan(1), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "{sale}");
    let fresh = ops.wait_text("#activity tbody tr.fresh", |t| t.contains("6.66"));
    assert!(fresh.contains(sale["rrn"].as_str().unwrap()), "{fresh}");
    let polls = ops.element("#activity-status");
    let n = ops.ok(
        "GET",
        &format!("/element/{polls}/attribute/data-polls"),
        None,
    );
    assert!(n.as_str().unwrap().parse::<u32>().unwrap() >= 1, "{n}");
    ops.screenshot("activity-en");
}

/// A merchant user sees its own terminals, not the other merchant's; its alert without an
/// Ack button. Seen on a phone-sized window too.
fn merchant_sees_its_own(shop: &Browser, base: &str, tid: &str, alert: i64) {
    shop.click_to_page("nav a[data-route=terminals]");
    shop.wait(&format!("#terminals tr[data-tid='{tid}']"));
    let mids = shop.texts("#terminals tbody td:nth-child(2)");
    assert!(
        !mids.is_empty() && mids.iter().all(|m| m == MID),
        "{mids:?}"
    );
    assert_eq!(
        shop.count(&format!("#terminals tr[data-tid='{OTHER_TID}']")),
        0
    );
    let table = shop.wait("#terminals tbody");
    assert!(!table.contains(OTHER_TID) && table.contains(MID), "{table}");
    shop.screenshot("merchant-terminals-zh");
    shop.goto(&format!("{base}/#/alerts?all=true"));
    let card = format!("article[data-alert='{alert}']");
    let diagnosis = shop.wait(&format!("{card} ol.diagnosis"));
    assert!(has_chinese(&diagnosis), "{diagnosis}");
    assert_eq!(shop.count("button[data-ack]"), 0);
    shop.screenshot("merchant-alerts-zh");
    shop.resize(390, 844);
    shop.goto(&format!("{base}/#/terminal/{tid}"));
    shop.wait("#last-hour h2");
    shop.screenshot("merchant-terminal-phone-zh");
}

/// Everything the page shows lies within the phone-sized window: nothing to scroll
/// sideways, not even inside a table.
fn fits_a_phone(browser: &Browser) {
    const SCRIPT: &str = "const w = window.innerWidth; \
        const out = [...document.querySelectorAll('#view *')] \
            .filter((e) => e.getBoundingClientRect().right > w + 1) \
            .map((e) => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40)); \
        return [document.documentElement.scrollWidth, w, out.slice(0, 5)];";
    let v = browser.ok(
        "POST",
        "/execute/sync",
        Some(json!({"script": SCRIPT, "args": []})),
    );
    let (page, window) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
    assert!(
        page <= window && v[2].as_array().unwrap().is_empty(),
        "wider than the {window} px window on {}: {v}",
        browser.url()
    );
}

/// On a phone, the merchant reads its breaks in Chinese, its disputes without the
/// operators' buttons and the live activity of its own terminals.
fn merchant_on_a_phone(shop: &Browser, base: &str, (http, token): (&str, &str), tid: &str) {
    let day = reconciled_day();
    let own = get(http, token, &format!("/api/v1/recon/breaks?day={day}")).body;
    let first = &own["breaks"][0];
    shop.goto(&format!("{base}/#/breaks"));
    let card = format!(
        "#breaks article[data-break='{}']",
        first["id"].as_str().unwrap()
    );
    let advice = shop.wait(&format!("{card} .advice"));
    assert_eq!(advice, first["advice"]["zh"].as_str().unwrap());
    assert!(has_chinese(&shop.wait(&format!("{card} .break-name"))));
    fits_a_phone(shop);
    shop.screenshot("merchant-breaks-phone-zh");
    shop.goto(&format!("{base}/#/activity"));
    let rows = shop.wait("#activity tbody");
    assert!(rows.contains(tid) && !rows.contains(OTHER_TID), "{rows}");
    assert!(has_chinese(&rows), "codes explained in Chinese: {rows}");
    fits_a_phone(shop);
    shop.screenshot("merchant-activity-phone-zh");
    shop.goto(&format!("{base}/#/disputes"));
    shop.wait("#disputes tbody tr[data-dispute]");
    assert_eq!(
        shop.count("button[data-act]"),
        0,
        "merchants do not act on disputes"
    );
    fits_a_phone(shop);
    shop.screenshot("merchant-disputes-phone-zh");
}

/// The clearing day of now (what `poskit recon --date` takes for today's sales).
fn reconciled_day() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    yyyymmdd(ClearingCut::default().day_of(now_ms))
}

/// A sale with the external issuer's card that the switch records with another amount,
/// then the day's clearing files and `poskit recon` over them: a break at `pos`'s merchant.
fn reconcile_a_break(host: &HostProcess, pos: &support::Pos, root: &Path) {
    let card = demo::scenario("external_issuer").unwrap();
    host.set_faults(&format!(
        "[[rules]]\nname = \"amount\"\ncard = \"{}\"\naction = \"switch-amount\"\ncount_max = 1\ndelta_fen = 100\n",
        card.pan
    ));
    let (_, sale) = pos.sale("23.45", &card.pan, &card.expiry, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "{sale}");
    host.clear_faults();
    let (day, clearing) = (reconciled_day(), root.join("clearing"));
    let clearing = clearing.to_str().unwrap();
    for args in [
        vec![
            "clearing",
            "export",
            "--data",
            host.data(),
            "--date",
            &day,
            "--out",
            clearing,
        ],
        vec![
            "recon",
            "--data",
            host.data(),
            "--date",
            &day,
            "--clearing",
            clearing,
        ],
    ] {
        let out = poskit(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
}

/// A chargeback opened on the sale `rrn` (as `poskit disputes open` does).
fn open_chargeback(data: &str, rrn: &str) {
    let out = poskit(&[
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
    ]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_console_in_a_real_browser() {
    if !browser_installed() {
        eprintln!("skipped: {CHROMIUM} and {CHROMEDRIVER} are not installed");
        return;
    }
    let started = Instant::now();
    let temp = tempfile::tempdir().unwrap();
    let http = free_port();
    let host = HostProcess::start(&temp.path().join("host"), &["--http", &http]);
    let data = host.data().to_owned();
    let ops_token = add_user(&data, "ops", "operator", None);
    let shop_token = add_user(&data, "shop1", "merchant", Some(MID));
    let root_token = add_user(&data, "root", "admin", None);
    let pos = fleet_terminal(temp.path(), 1, &host, &[]);
    let (_, sale) = pos.sale("12.30", &demo::fleet_pan(1), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(sale["code"], "00", "{sale}");
    let rrn = sale["rrn"].as_str().unwrap().to_owned();
    let (_, declined) = pos.sale("8.00", &demo::fleet_pan(1), EXPIRY, "999999", &[]);
    let declined = declined["code"].as_str().unwrap().to_owned();
    assert_ne!(declined, "00", "a wrong PIN");
    let (_, disputed) = pos.sale("20.00", &demo::fleet_pan(1), EXPIRY, demo::DEMO_PIN, &[]);
    let disputed = disputed["rrn"].as_str().unwrap().to_owned();
    let tid = demo::fleet_tid(1);
    let alert = raise_alert(&host.data, &tid);
    reconcile_a_break(&host, &pos, temp.path());
    open_chargeback(&data, &disputed);

    let driver = Driver::start(temp.path());
    let base = format!("http://{http}");
    {
        let shop = driver.session("shop1");
        shop.log_in(&base, "shop1");
        merchant_sees_its_own(&shop, &base, &tid, alert);
        merchant_on_a_phone(&shop, &base, (&http, &shop_token), &tid);
        let errors = shop.page_errors();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    let ops = driver.session("ops");
    ops.log_in(&base, "ops");
    lookup_by_rrn(&ops, &http, &ops_token, &rrn);
    explain_in_both_languages(&ops, &http, &ops_token);
    terminal_chart(&ops, (&base, &http, &ops_token), &tid, &["00", &declined]);
    ack_alert(&ops, &base, alert);
    breaks_are_shown_with_the_catalogs_words(&ops, &base, (&http, &ops_token), &reconciled_day());
    live_activity_polls(&ops, &base, (&http, &ops_token), &pos);
    dispute_is_listed_and_acted_on(&ops, &base, (&http, &root_token), &disputed);
    let mut errors = ops.page_errors();
    // The one refusal asked for (representing without evidence), which the page showed.
    let refused = "/act - Failed to load resource: the server responded with a status of 400";
    assert_eq!(
        errors.iter().filter(|e| e.contains(refused)).count(),
        1,
        "{errors:#?}"
    );
    errors.retain(|e| !e.contains(refused));
    assert!(errors.is_empty(), "{errors:#?}");
    ops.click("#logout");
    ops.wait("#login-form");
    eprintln!(
        "console in Chromium: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshot_dir().display()
    );
}

/// Without a browser: the pages' headers, and the console's own routes (the search of
/// codes and symptoms, the catalog's labels) with their errors.
#[test]
fn the_pages_and_the_console_routes_on_the_wire() {
    let temp = tempfile::tempdir().unwrap();
    let http = free_port();
    let host = HostProcess::start(&temp.path().join("host"), &["--http", &http]);
    let token = add_user(host.data(), "shop1", "merchant", Some(MID));
    pages_carry_security_headers(&http);
    assert_eq!(
        call(&http, "GET", "/api/v1/search?q=25", &[], b"").status,
        401
    );
    let r = get(
        &http,
        &token,
        "/api/v1/search?q=%E5%AF%86%E7%A0%81%E9%94%99%E8%AF%AF",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let hits = r.body["hits"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 10, "{}", r.body);
    assert!(
        hits.iter()
            .all(|h| h["kind"] == "code" || h["kind"] == "symptom")
    );
    let first = &hits[0];
    let text = first["meaning"]
        .as_str()
        .or(first["title"].as_str())
        .unwrap();
    assert!(has_chinese(text), "{first}");
    let r = get(&http, &token, "/api/v1/search?q=wrong%20PIN&lang=en");
    assert!(!r.body["hits"].as_array().unwrap().is_empty(), "{}", r.body);
    assert_eq!(
        get(&http, &token, "/api/v1/search?q=25&lang=fr").status,
        400
    );
    assert_eq!(get(&http, &token, "/api/v1/search").status, 400);
    let long = "x".repeat(201);
    assert_eq!(
        get(&http, &token, &format!("/api/v1/search?q={long}")).status,
        400
    );
    // The catalog's words for each value an explanation has, in each language.
    let zh = get(&http, &token, "/api/v1/catalog/labels").body;
    let en = get(&http, &token, "/api/v1/catalog/labels?lang=en").body;
    let entry = get(&http, &token, "/api/v1/explain/25").body;
    for field in ["class", "money_moved", "category", "actor", "retry"] {
        let value = entry[field].as_str().unwrap();
        assert!(
            has_chinese(zh[field][value].as_str().unwrap()),
            "{field} {zh}"
        );
        assert!(
            !has_chinese(en[field][value].as_str().unwrap()),
            "{field} {en}"
        );
    }
    // Each break class's name and words for the customer, from breaks.toml.
    for class in [
        "A",
        "B",
        "C",
        "D",
        "E",
        "F",
        "G",
        "duplicate",
        "batch_total",
    ] {
        for field in ["break_class", "break_customer"] {
            assert!(
                has_chinese(zh[field][class].as_str().unwrap()),
                "{field} {class}"
            );
            let words = en[field][class].as_str().unwrap();
            assert!(
                words.is_ascii() && words.len() > 5,
                "{field} {class}: {words}"
            );
        }
    }
    assert_eq!(
        get(&http, &token, "/api/v1/catalog/labels?lang=fr").status,
        400
    );
}
