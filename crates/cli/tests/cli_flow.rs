//! `poskit pos` as a newcomer meets it (issue 25): `init` that will not silently turn one
//! terminal into another, `--timeout-ms` on every command that waits for the host, times a
//! person can read, and every text of a run in one language.

mod support;

use poskit_host::demo;
use support::{EXPIRY, HostProcess, MID, Pos, fleet_terminal, has_chinese, yuan};

/// A scenario of the demo data by its expected code.
fn scenario(code: &str) -> demo::Scenario {
    demo::scenarios()
        .into_iter()
        .find(|s| {
            s.expected.as_str() == code && s.operation == poskit_domain::TransactionKind::Sale
        })
        .unwrap_or_else(|| panic!("no sale scenario gives {code}"))
}

#[test]
fn init_again_with_another_identity_is_refused_and_force_starts_a_clean_terminal() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let i = 40;
    let pos = fleet_terminal(temp.path(), i, &host, &[]);
    let pan = demo::fleet_pan(i);
    let (exit, sale) = pos.sale("3.00", &pan, EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(exit, Some(0), "{sale}");
    let before = pos.status();

    // Another TID in the same directory: refused, one line, nothing changed.
    let other = demo::fleet_tid(i + 1);
    let init = |extra: &[&str]| {
        let mut args = vec![
            "init",
            "--tid",
            &other,
            "--mid",
            MID,
            "--tmk",
            demo::DEMO_TMK,
            "--host",
            &host.addr,
        ];
        args.extend_from_slice(extra);
        pos.run(&args)
    };
    let refused = init(&[]);
    assert_eq!(
        refused.code,
        Some(2),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&demo::fleet_tid(i)),
        "{}",
        refused.stderr
    );
    assert_eq!(pos.status(), before, "a refused init changes nothing");

    // The same terminal pointed at the same host again: allowed, its state kept.
    pos.init(
        &demo::fleet_tid(i),
        MID,
        &host.addr,
        &["--timeout-ms", "3000"],
    );
    let again = pos.status();
    assert_eq!(again["batch"], before["batch"], "{again}");
    assert_eq!(again["last_trace"], before["last_trace"], "{again}");
    assert_eq!(again["signed_in"], true, "{again}");

    // --force: a clean terminal of the new identity; the old journal kept aside.
    let forced = init(&["--force"]);
    assert_eq!(forced.code, Some(0), "{}{}", forced.stdout, forced.stderr);
    let status = pos.status();
    assert_eq!(status["tid"], other.as_str(), "{status}");
    assert_eq!(status["signed_in"], false, "{status}");
    assert_eq!(status["last_trace"], "000000", "{status}");
    assert_eq!(status["batch"], "000001", "{status}");
    let (_, journal) = pos.json(&["journal"]);
    assert_eq!(journal, serde_json::json!([]), "the new journal is empty");
    let kept: Vec<_> = std::fs::read_dir(&pos.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal-replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the old journal is kept aside");
    assert!(
        forced.stdout.contains("journal-replaced-"),
        "{}",
        forced.stdout
    );
}

#[test]
fn sign_in_sign_off_and_echo_accept_timeout_ms() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let pos = Pos {
        dir: temp.path().join("pos"),
    };
    pos.init(&demo::fleet_tid(41), MID, &host.addr, &[]);
    for command in ["sign-in", "echo", "sign-off"] {
        let (exit, v) = pos.json(&[command, "--timeout-ms", "4000"]);
        assert_eq!(exit, Some(0), "{command}: {v}");
        assert_eq!(v["code"], "00", "{command}: {v}");
    }
    // The switch is for this command only: the configured time stays.
    assert_eq!(
        pos.status()["response_timeout_ms"],
        poskit_terminal::engine::RESPONSE_TIMEOUT_MS_DEFAULT
    );
}

#[test]
fn failures_and_journal_show_local_date_times() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let s = scenario("51");
    let pos = Pos {
        dir: temp.path().join("pos"),
    };
    pos.init(&s.tid, &s.mid, &host.addr, &[]);
    assert_eq!(pos.sign_in()["code"], "00");
    let (exit, v) = pos.sale(&yuan(s.amount_fen), &s.pan, &s.expiry, s.pin, &[]);
    assert_eq!(exit, Some(1), "{v}");

    let time_of = |tz: &str, command: &str| -> String {
        let run = pos.run_env(&[("TZ", tz), ("LANG", "en_US.UTF-8")], &[command]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let mut lines = run.stdout.lines();
        assert!(lines.next().unwrap().starts_with("time "), "{}", run.stdout);
        let row = lines.last().unwrap().to_owned();
        assert!(
            !row.split_whitespace().any(|w| w.len() >= 12
                && w.bytes().all(|b| b.is_ascii_digit())
                && w.starts_with('1')),
            "no epoch milliseconds: {row}"
        );
        row[..19].to_owned()
    };
    for command in ["failures", "journal"] {
        let utc = time_of("UTC0", command);
        let shanghai = time_of("CST-8", command);
        let shape = |t: &str| {
            t.len() == 19
                && t.bytes().enumerate().all(|(k, b)| match k {
                    4 | 7 => b == b'-',
                    10 => b == b' ',
                    13 | 16 => b == b':',
                    _ => b.is_ascii_digit(),
                })
        };
        assert!(
            shape(&utc) && shape(&shanghai),
            "{command}: {utc} / {shanghai}"
        );
        let hour = |t: &str| t[11..13].parse::<u32>().unwrap();
        assert_eq!(
            (hour(&utc) + 8) % 24,
            hour(&shanghai),
            "{command}: local time follows TZ"
        );
    }
}

#[test]
fn pos_outcomes_are_in_one_language_chosen_by_lang_or_the_locale() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let s = scenario("51");
    let pos = Pos {
        dir: temp.path().join("pos"),
    };
    pos.init(&s.tid, &s.mid, &host.addr, &[]);
    assert_eq!(pos.sign_in()["code"], "00");
    let amount = yuan(s.amount_fen);
    let sale = [
        "sale", "--amount", &amount, "--card", &s.pan, "--expiry", &s.expiry, "--pin", s.pin,
    ];
    let english = [
        pos.run_env(&[("LANG", "C.UTF-8")], &sale),
        pos.run_env(
            &[("LANG", "zh_CN.UTF-8")],
            &[&["--lang", "en"][..], &sale].concat(),
        ),
        pos.run_env(&[("LC_ALL", "en_US.UTF-8"), ("LANG", "zh_CN.UTF-8")], &sale),
    ];
    for run in &english {
        assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.starts_with("DECLINED  51 — "), "{}", run.stdout);
        assert!(run.stdout.contains("next step: "), "{}", run.stdout);
        for line in run.stdout.lines() {
            // The terminal's own screen text is Chinese by nature, and labelled so.
            if line.contains("the terminal shows (in Chinese): ") {
                continue;
            }
            assert!(!has_chinese(line), "English only: {line}\n{}", run.stdout);
        }
    }
    let chinese = [
        pos.run_env(&[("LANG", "zh_CN.UTF-8")], &sale),
        pos.run_env(
            &[("LANG", "en_US.UTF-8")],
            &[&["--lang", "zh"][..], &sale].concat(),
        ),
    ];
    for run in &chinese {
        assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.starts_with("交易失败  51 — "), "{}", run.stdout);
        assert!(run.stdout.contains("下一步："), "{}", run.stdout);
        for word in ["DECLINED", "next step", "terminal shows"] {
            assert!(!run.stdout.contains(word), "Chinese only: {}", run.stdout);
        }
    }
    // An approval's slip too.
    let approved = demo::fleet_pan(42);
    let tid = demo::fleet_tid(42);
    let pos = Pos {
        dir: temp.path().join("pos-approved"),
    };
    pos.init(&tid, MID, &host.addr, &[]);
    assert_eq!(pos.sign_in()["code"], "00");
    let slip = [
        "sale",
        "--amount",
        "1.00",
        "--card",
        &approved,
        "--expiry",
        EXPIRY,
        "--pin",
        demo::DEMO_PIN,
    ];
    let en = pos.run_env(&[("LANG", "en_US.UTF-8")], &slip);
    assert_eq!(en.code, Some(0), "{}{}", en.stdout, en.stderr);
    assert!(
        en.stdout.contains("sales slip") && !has_chinese(&en.stdout),
        "{}",
        en.stdout
    );
    let zh = pos.run_env(&[("LANG", "zh_CN.UTF-8")], &slip);
    assert_eq!(zh.code, Some(0), "{}{}", zh.stdout, zh.stderr);
    assert!(
        zh.stdout.contains("签购单") && !zh.stdout.contains("sales slip"),
        "{}",
        zh.stdout
    );
}

#[test]
fn sim_against_a_port_where_nothing_listens_says_cannot_connect_within_seconds() {
    let temp = tempfile::tempdir().unwrap();
    // A host data directory, so that only the address is wrong.
    std::fs::write(temp.path().join("host.sqlite"), b"").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = support::poskit(&[
        "sim",
        "--host",
        &addr,
        "--host-data",
        temp.path().to_str().unwrap(),
        "--transactions",
        "50",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{stdout}{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("VIOLATION"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `poskit demo` with its output piped, in the locale `lang`.
fn demo(temp: &std::path::Path, seconds: &str, lang: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(["demo", "--seconds", seconds, "--terminals", "3", "--data"])
        .arg(temp.join(format!("demo-{lang}")))
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", lang)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_demo_report_gives_amounts_latency_faults_and_settlements_per_terminal() {
    let temp = tempfile::tempdir().unwrap();
    let text = demo(temp.path(), "6", "C.UTF-8");
    // Piped: a progress line every few seconds, since no bar is drawn.
    // (At 5 s or a little later: a slow disk's fsync can hold the progress callback.)
    let progress = |l: &str| {
        let (secs, rest) = l.trim_start().split_once(" s  ").unwrap_or(("", ""));
        secs.parse::<u64>().is_ok_and(|s| s >= 5) && rest.contains(" txn · ")
    };
    assert!(text.lines().any(progress), "{text}");
    for part in [
        "Amounts: approved sales and completions ",
        "Latency per transaction: p50 ",
        "Faults the host injected: ",
        "Settlement: 3 terminals balanced",
        "Checker: every journal agrees with the ledger",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    for i in 0..3 {
        let tid = demo::fleet_tid(i);
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&tid) && l.contains("debits")),
            "{tid}'s settled totals: {text}"
        );
    }
    // Everything settled: no reversal can be left pending, so none is said to be.
    assert!(!text.contains("pending"), "{text}");
    // Local codes, when any came up, are marked as the terminal's own.
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with('L') && l.contains('×'))
    {
        assert!(line.contains("(terminal-local code)"), "{line}");
    }
    assert!(!has_chinese(&text), "English only: {text}");
}

#[test]
fn the_demo_report_is_all_chinese_under_a_chinese_locale() {
    let temp = tempfile::tempdir().unwrap();
    let text = demo(temp.path(), "2", "zh_CN.UTF-8");
    assert!(text.contains("秒内发生了什么"), "{text}");
    assert!(text.contains("结算："), "{text}");
    for word in [
        "transactions",
        "Settlement",
        "Reversals",
        "Checker",
        "approved",
        "Amounts",
    ] {
        assert!(!text.contains(word), "{word}: {text}");
    }
}
