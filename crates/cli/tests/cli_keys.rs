//! Keys at rest from the command line (issue 24 §1): the data directory's own KEK, made
//! 0600 on first start; `poskit keys status` and `rotate`; a wrong KEK refused with nothing
//! written; the KEK in a real PKCS#11 token (SoftHSM2), the terminals' MAC keys held and
//! used by it, and 96 while the token is gone.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use poskit_host::demo;
use support::{HostProcess, Pos, fleet_terminal, poskit};

const EXPIRY: &str = "3012";
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn sale_code(pos: &Pos, i: u32) -> String {
    let (_, v) = pos.sale("1.00", &demo::fleet_pan(i), EXPIRY, demo::DEMO_PIN, &[]);
    v["code"].as_str().unwrap_or_default().to_owned()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_local_kek_is_made_0600_rotated_in_place_and_a_wrong_one_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("host");
    let host = HostProcess::start(&data, &[]);
    let pos = fleet_terminal(temp.path(), 1, &host, &[]);
    assert_eq!(sale_code(&pos, 1), "00");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [
            data.join("kek"),
            data.join("host.sqlite"),
            pos.dir.join("kek"),
        ] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }
    let d = data.to_str().unwrap();
    let status = poskit(&["keys", "status", "--data", d, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["opens"], true, "{v}");
    let before = v["wrapped_under"].as_str().unwrap().to_owned();
    assert!(v["detail"]["terminal_keys_clear"] == 0, "{v}");

    // Rotation needs the host stopped.
    let busy = poskit(&["keys", "rotate", "--data", d]);
    assert_ne!(busy.status.code(), Some(0), "{}", text(&busy));
    host.stop();
    let rotated = poskit(&["keys", "rotate", "--data", d]);
    assert_eq!(rotated.status.code(), Some(0), "{}", text(&rotated));
    assert!(!data.join("kek.new").exists());
    let after = poskit(&["keys", "status", "--data", d, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(v["opens"], true, "{v}");
    assert_ne!(v["wrapped_under"].as_str().unwrap(), before);

    // A wrong KEK: exit 2, the reason, the database untouched.
    let wrong = temp.path().join("wrong.kek");
    assert_eq!(
        poskit(&["keys", "init", "--kek-file", wrong.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let db_before = std::fs::read(data.join("host.sqlite")).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--data",
            d,
        ])
        .args(["--kek-file", wrong.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("is not the one these keys were wrapped under"));
    assert!(std::fs::read(data.join("host.sqlite")).unwrap() == db_before);

    // The host on the rotated key: the terminal's keys and cards open, a sale approves.
    let host = HostProcess::start(&data, &[]);
    pos.init(&demo::fleet_tid(1), support::MID, &host.addr, &[]);
    assert_eq!(sale_code(&pos, 1), "00");
}

fn softhsm_token(dir: &Path) -> Option<Vec<(String, String)>> {
    if !Path::new(SOFTHSM).is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs softhsm2 (.ci/run)"
        );
        eprintln!("skipped: SoftHSM2 is not installed");
        return None;
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let env = vec![
        ("SOFTHSM2_CONF".to_owned(), conf.display().to_string()),
        ("POSKIT_PKCS11_PIN".to_owned(), "4321".to_owned()),
    ];
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "poskit",
            "--pin",
            "4321",
            "--so-pin",
            "8765",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    Some(env)
}

#[test]
fn a_kek_in_softhsm_serves_and_a_lost_token_answers_96_to_what_needs_it() {
    let temp = tempfile::tempdir().unwrap();
    let Some(env) = softhsm_token(temp.path()) else {
        return;
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let data = temp.path().join("host");
    let hsm = ["--pkcs11-module", SOFTHSM, "--pkcs11-token", "poskit"];
    let log = std::fs::File::create(temp.path().join("host.log")).unwrap();
    let host = HostProcess::start_env(&data, &hsm, "warn", Stdio::from(log), &env);
    assert!(
        !data.join("kek").exists(),
        "no key file when the KEK is in the token"
    );
    let first = fleet_terminal(temp.path(), 1, &host, &[]);
    assert_eq!(sale_code(&first, 1), "00");
    let status = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(["keys", "status", "--data", data.to_str().unwrap(), "--json"])
        .args(hsm)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["opens"], true, "{v}");
    assert!(v["from"].as_str().unwrap().contains("PKCS#11"), "{v}");
    // The terminal's MAK is held by the token: the ledger keeps only the token's form.
    assert_eq!(v["detail"]["terminal_maks_in_hsm"], 1, "{v}");
    assert_eq!(v["detail"]["terminal_keys_clear"], 0, "{v}");
    // A new host process has only that form: the MAC of the next sale is verified, and its
    // answer sealed, by the token.
    host.stop();
    let log = std::fs::File::create(temp.path().join("host.log")).unwrap();
    let host = HostProcess::start_env(&data, &hsm, "info", Stdio::from(log), &env);
    first.init(&demo::fleet_tid(1), support::MID, &host.addr, &[]);
    assert_eq!(sale_code(&first, 2), "00");

    // The token goes away: a terminal whose keys the host holds goes on; one that signs in
    // (its new keys must be wrapped) is answered 96, and the log says why.
    std::fs::remove_dir_all(temp.path().join("tokens")).unwrap();
    assert_eq!(sale_code(&first, 1), "00");
    let second = Pos {
        dir: temp.path().join("pos-2"),
    };
    second.init(&demo::fleet_tid(2), support::MID, &host.addr, &[]);
    let signed = second.sign_in();
    assert_eq!(signed["code"], "96", "{signed}");
    host.stop();
    let log = std::fs::read_to_string(temp.path().join("host.log")).unwrap();
    assert!(
        log.contains("MAC keys are held and used inside the HSM"),
        "{log}"
    );
    assert!(log.contains("key store unavailable"), "{log}");
}
