//! `poskit demo` and `poskit sim` as a user runs them.

use std::process::Command;

fn poskit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .env("LANG", "C")
        .output()
        .unwrap()
}

/// The JSON a command printed, after checking that it succeeded.
fn json_of_success(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_demo_trades_settles_checks_and_says_where_its_data_is() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("demo");
    let out = poskit(&[
        "demo",
        "--seconds",
        "3",
        "--terminals",
        "3",
        "--lang",
        "en",
        "--data",
        data.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Checker: every journal agrees with the ledger"),
        "{text}"
    );
    assert!(text.contains("Settlement: 3 terminals balanced"), "{text}");
    // The day's reconciliation with the switch ends the report, and the command it names
    // runs it again (the same breaks; nothing posted twice).
    assert!(text.contains("== Reconciliation with the switch"), "{text}");
    // Where /metrics was while it ran, and what the statistics counted.
    assert!(
        text.contains("metrics while it runs: http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("== Statistics (poskit stats) =="), "{text}");
    // The alerts the host's rules raised, and the API's address with a login per role
    // (whose passwords work: the users are in the host's console.db).
    assert!(
        text.contains("== Alerts the host raised (poskit alerts) =="),
        "{text}"
    );
    assert!(
        text.contains("API while it runs: http://127.0.0.1:"),
        "{text}"
    );
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("demo-operator (operator): "))
        .expect("a login for the operator");
    let conn = poskit_web::users::open(&data.join("host")).unwrap();
    let user = poskit_web::users::verify(&conn, "demo-operator", password).unwrap();
    assert!(user.is_some(), "the printed password logs in");
    let recon_line = text
        .lines()
        .find(|l| l.contains("poskit recon --data"))
        .expect("the report names the recon command");
    let date = recon_line.rsplit(' ').next().unwrap();
    let recon = poskit(&[
        "recon",
        "--data",
        data.join("host").to_str().unwrap(),
        "--date",
        date,
        "--json",
    ]);
    assert_eq!(recon.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&recon.stdout).unwrap();
    assert_eq!(v["status"], "incomplete", "the day is still open: {v}");
    assert!(v["matched"].as_u64().is_some(), "{v}");
    assert!(
        text.contains(&format!(
            "poskit host check --data {}",
            data.join("host").display()
        )),
        "{text}"
    );
    let check = poskit(&[
        "host",
        "check",
        "--data",
        data.join("host").to_str().unwrap(),
    ]);
    assert_eq!(check.status.code(), Some(0));
    // Every database, journal and key-encryption key the run wrote is its owner's alone.
    #[cfg(unix)]
    assert_private(&data);
    // The journals stay for poskit pos.
    let journal = poskit(&[
        "pos",
        "--terminal",
        data.join("terminals/10100001").to_str().unwrap(),
        "--json",
        "journal",
    ]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&journal.stdout).unwrap();
    assert!(list.len() > 3);
    // A second demo in the same place is refused rather than mixed in.
    let again = poskit(&["demo", "--seconds", "1", "--data", data.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn sim_reports_json_and_exits_0_when_nothing_is_violated() {
    let out = poskit(&[
        "sim",
        "--terminals",
        "4",
        "--transactions",
        "300",
        "--seed",
        "9",
        "--faults",
        "harsh",
        "--json",
    ]);
    let v = json_of_success(&out);
    assert_eq!(v["seed"], 9);
    assert_eq!(v["transactions"], 300);
    assert_eq!(v["violations"], serde_json::json!([]));
    assert!(v["faults"]["answer_loss"].as_u64().unwrap() > 0);
    assert!(v["reproduce"].as_str().unwrap().contains("--seed 9"));
    let bad = poskit(&["sim", "--faults", "/nonexistent/knobs.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

#[test]
fn sim_in_network_mode_runs_terminals_through_a_fault_proxy_to_a_host_process() {
    use std::io::BufRead;
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("host");
    let mut host = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--demo",
            "--data",
        ])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let knobs = temp.path().join("knobs.toml");
    std::fs::write(&knobs, "answer_loss = 0.08\nrequest_loss = 0.05\nreset = 0.03\nduplicate = 0.05\ntimeout_ms = 800\n").unwrap();
    let out = poskit(&[
        "sim",
        "--host",
        &addr,
        "--host-data",
        data.to_str().unwrap(),
        "--terminals",
        "4",
        "--transactions",
        "120",
        "--faults",
        knobs.to_str().unwrap(),
        "--json",
    ]);
    host.kill().unwrap();
    host.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "network");
    // Every operation asked for is accounted for: transactions, the sign-ins the
    // terminals made on their own, and any that could not reach the host.
    let count = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
    assert_eq!(count("operations"), 120, "{v}");
    assert_eq!(
        count("transactions") + count("sign_ins") + count("unreachable"),
        120,
        "{v}"
    );
    assert!(count("sign_ins") >= 4, "each terminal signs in first: {v}");
    assert_eq!(v["violations"], serde_json::json!([]));
    assert_eq!(
        v["settlements"]["balanced"].as_u64().unwrap()
            + v["settlements"]["unbalanced_then_uploaded"]
                .as_u64()
                .unwrap(),
        4
    );
    let injected: u64 = v["faults"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(injected > 0, "{v}");
}

#[test]
fn bench_host_reports_durable_sales_their_latency_and_where_the_cpu_went() {
    let out = poskit(&[
        "bench",
        "host",
        "--connections",
        "2",
        "--depth",
        "4",
        "--seconds",
        "1",
        "--json",
    ]);
    let j = json_of_success(&out);
    let sales = j["sales"].as_u64().unwrap();
    assert!(sales > 0, "{j}");
    assert_eq!(j["declined"], 0, "every sale approved with its MAC: {j}");
    let (p50, p99, p999) = (
        j["p50_ms"].as_f64().unwrap(),
        j["p99_ms"].as_f64().unwrap(),
        j["p999_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{j}");
    assert!(j["group_commit_mean"].as_f64().unwrap() >= 1.0, "{j}");
    let steal = j["steal_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&steal), "{j}");
    assert!(
        j["writer_cpu_us_per_request"].as_f64().unwrap() > 0.0,
        "{j}"
    );
}

#[test]
fn bench_host_refuses_a_shape_it_cannot_run_with_exit_code_2() {
    for args in [
        ["--connections", "0"],
        ["--depth", "33"],
        ["--seconds", "0"],
    ] {
        let mut all = vec!["bench", "host"];
        all.extend(args);
        let out = poskit(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

/// Databases, journals and KEK files under `dir` are mode 0600 (DESIGN.md, invariant 8).
#[cfg(unix)]
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data_file = name == "kek" || name.contains(".sqlite") || name.contains(".db");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert!(
            !data_file || mode == 0o600,
            "{} is {mode:o}",
            path.display()
        );
    }
}
