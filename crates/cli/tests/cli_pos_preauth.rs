//! `poskit pos` after a declined pre-authorization: the next step it prints is the
//! catalog's step for the operation it ran (no void or refund advice: nothing was charged),
//! and with a Chinese locale its notes are Chinese too (issue 25 §4, §5).

mod support;

use poskit_codes::{Catalog, Lang, Operation, Table};
use poskit_host::demo;
use serde_json::Value;

use support::{EXPIRY, HostProcess, Pos, has_chinese};

/// A signed-in terminal of the demo's main merchant.
fn terminal(root: &std::path::Path, host: &HostProcess) -> (Pos, demo::Scenario) {
    let approved = demo::scenario("approved").expect("the demo's approved card");
    let pos = Pos {
        dir: root.join("pos"),
    };
    pos.init(&approved.tid, &approved.mid, &host.addr, &[]);
    assert_eq!(pos.sign_in()["code"], "00");
    (pos, approved)
}

/// `pan` with its last digit changed: it fails its Luhn check (the host answers 14).
fn luhn_broken(pan: &str) -> String {
    let (body, last) = pan.split_at(pan.len() - 1);
    let digit = (last.parse::<u8>().unwrap() + 1) % 10;
    format!("{body}{digit}")
}

fn first_step(code: &str, op: Operation, lang: Lang) -> String {
    let entry = Catalog::builtin().lookup(Table::CupPos, code).expect(code);
    entry.steps_for(op, lang)[0].clone()
}

fn card_args<'a>(operation: &'a str, pan: &'a str, pin: &'a str) -> Vec<&'a str> {
    vec![
        operation, "--amount", "5.00", "--card", pan, "--expiry", EXPIRY, "--pin", pin,
    ]
}

#[test]
fn a_declined_pre_authorization_prints_the_pre_authorizations_next_step_not_a_void() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let (pos, approved) = terminal(temp.path(), &host);
    let bad = luhn_broken(&approved.pan);

    let (exit, preauth) = pos.json(&card_args("preauth", &bad, approved.pin));
    assert_eq!(exit, Some(1), "{preauth}");
    assert_eq!(preauth["code"], "14", "{preauth}");
    let step = preauth["next_step"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        step,
        first_step("14", Operation::Preauth, Lang::En),
        "{preauth}"
    );
    let lower = step.to_lowercase();
    assert!(
        !lower.contains("void") && !lower.contains("refund"),
        "{step}"
    );

    // The control: the same code after a sale gives the general step, not the pre-auth's.
    let (_, sale) = pos.json(&card_args("sale", &bad, approved.pin));
    assert_eq!(sale["code"], "14", "{sale}");
    assert_eq!(
        sale["next_step"].as_str(),
        Some(first_step("14", Operation::Sale, Lang::En).as_str()),
        "{sale}"
    );
    assert_ne!(sale["next_step"], preauth["next_step"]);

    // The same decline as a person reads it in Chinese: no 撤销 or 退货 anywhere.
    let run = pos.run_env(
        &[("LANG", "zh_CN.UTF-8")],
        &card_args("preauth", &bad, approved.pin),
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let zh_step = first_step("14", Operation::Preauth, Lang::Zh);
    assert!(run.stdout.contains(&zh_step), "{}", run.stdout);
    assert!(
        !run.stdout.contains("撤销") && !run.stdout.contains("退货"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_declined_pre_authorizations_notes_are_chinese_under_a_chinese_locale() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let (pos, _) = terminal(temp.path(), &host);
    // 1.00 yuan on the card, 5.00 asked: 51, a class C decline, which the engine notes as
    // not retried automatically.
    let poor = demo::scenario("insufficient_funds").expect("the demo's 51 card");
    let args = card_args("preauth", &poor.pan, poor.pin);

    let (_, v) = pos.json(&args);
    assert_eq!(v["code"], "51", "{v}");
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(!notes.is_empty(), "the control: English notes exist: {v}");
    assert!(notes.iter().all(|n| !has_chinese(n)), "{notes:?}");

    let run = pos.run_env(&[("LANG", "zh_CN.UTF-8")], &args);
    let note_lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('·'))
        .collect();
    assert_eq!(note_lines.len(), notes.len(), "{}", run.stdout);
    assert!(
        note_lines.iter().all(|l| has_chinese(l)),
        "every note in Chinese: {}",
        run.stdout
    );
    let (_, failures) = pos.json(&["--lang", "zh", "failures"]);
    let last = failures.as_array().and_then(|f| f.last()).cloned();
    let last = last.expect("the decline is in the failure log");
    assert_eq!(last["cause_code"], "declined:51", "{last}");
    assert!(
        has_chinese(last["cause"].as_str().unwrap_or_default()),
        "{last}"
    );
}
