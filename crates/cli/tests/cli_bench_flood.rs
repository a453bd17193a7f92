//! `poskit bench flood` (issue 17): the junk flood against two host processes in one run,
//! one with the tarpit off and one with it on. Held, the flood costs the host less than a
//! fifth of a core and far fewer connections; no junk becomes a row; the terminal behind
//! the flood's address is served throughout.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_tarpit_holds_a_junk_flood_below_a_fifth_of_a_core_while_a_terminal_sells() {
    let temp = tempfile::tempdir().unwrap();
    let no_tarpit = temp.path().join("no-tarpit.toml");
    std::fs::write(&no_tarpit, "[limits]\ntarpit_hold_ms = 0\n").unwrap();
    let poskit = env!("CARGO_BIN_EXE_poskit");
    // This binary's host with the tarpit off; `--compare` runs the same binary's host with
    // the defaults (the tarpit on).
    let out = Command::new(poskit)
        .args(["bench", "flood", "--seconds", "2", "--json", "--config"])
        .arg(&no_tarpit)
        .arg("--compare")
        .arg(poskit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let [open, held] = v.as_array().unwrap().as_slice() else {
        panic!("two measurements: {v:#}");
    };
    for m in [open, held] {
        assert_eq!(m["junk_rows"], 0, "{m:#}");
        assert_eq!(m["sales"]["not_approved"], 0, "{m:#}");
        assert!(m["sales"]["approved"].as_u64().unwrap() > 0, "{m:#}");
    }
    let cores = held["host_cores"].as_f64().unwrap();
    assert!(cores < 0.2, "held, the flood cost {cores} cores: {held:#}");
    let rate = |m: &Value| m["connections_per_second"].as_f64().unwrap();
    assert!(
        rate(held) * 10.0 < rate(open),
        "connections/s held {} and not {}",
        rate(held),
        rate(open)
    );
}

#[test]
fn bad_sizes_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(["bench", "flood", "--attackers", "65"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
