//! TLS on the terminal port, end to end with real processes on loopback: `poskit host
//! --tls-cert/--tls-key [--tls-client-ca]`, `poskit pos init --tls-ca [--tls-cert --tls-key]
//! [--tls-name]` and `poskit sim --host ... --tls-ca`. Certificates are made here (rcgen):
//! a CA for the host's certificate, another for the terminals', and a stranger's CA.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use poskit_host::demo;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use support::{EXPIRY, HostProcess, MID, Pos, call, poskit};

/// A CA: its certificate written to `dir/name.crt`, and what signs with it.
fn ca(dir: &Path, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.crt"));
    std::fs::write(&path, cert.pem()).unwrap();
    (path, Issuer::new(params, key))
}

/// A certificate for `names` signed by `issuer`: `dir/file.crt` and `dir/file.key`.
fn leaf(
    dir: &Path,
    file: &str,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'static, KeyPair>,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let (crt, pem) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&pem, key.serialize_pem()).unwrap();
    (path(&crt), path(&pem))
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The host's CA and its certificate for 127.0.0.1 and localhost.
struct Pki {
    ca: String,
    host_crt: String,
    host_key: String,
}

fn pki(dir: &Path) -> Pki {
    let (ca_path, issuer) = ca(dir, "acquirer-ca");
    let (host_crt, host_key) = leaf(
        dir,
        "host",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    );
    Pki {
        ca: path(&ca_path),
        host_crt,
        host_key,
    }
}

fn fleet_pos(root: &Path, i: u32, label: &str) -> Pos {
    Pos {
        dir: root.join(format!("pos-{label}-{}", demo::fleet_tid(i))),
    }
}

fn sale(pos: &Pos, i: u32) -> serde_json::Value {
    let (code, v) = pos.sale("12.34", &demo::fleet_pan(i), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["code"], "00", "{v}");
    v
}

/// The host's `/metrics` text.
fn metrics(host: &HostProcess) -> String {
    call(host.admin.as_deref().unwrap(), "GET", "/metrics", &[], b"").text
}

#[test]
fn a_terminal_signs_in_and_sells_over_tls_and_a_plain_one_is_told_the_host_wants_tls() {
    let temp = tempfile::tempdir().unwrap();
    let p = pki(temp.path());
    let mut host = HostProcess::start_logging(
        &temp.path().join("host"),
        &["--tls-cert", &p.host_crt, "--tls-key", &p.host_key],
        "warn",
        Stdio::piped(),
    );
    // The server name is the host part of the address (127.0.0.1, in the certificate).
    let pos = fleet_pos(temp.path(), 0, "tls");
    pos.init(&demo::fleet_tid(0), MID, &host.addr, &["--tls-ca", &p.ca]);
    assert_eq!(pos.sign_in()["code"], "00");
    sale(&pos, 0);

    // Plain TCP against the TLS port: refused at once, with the reason, not a timeout.
    let plain = fleet_pos(temp.path(), 1, "plain");
    plain.init(&demo::fleet_tid(1), MID, &host.addr, &[]);
    let started = std::time::Instant::now();
    let run = plain.run(&["--lang", "en", "sign-in"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("L01"), "{}", run.stdout);
    assert!(
        run.stdout.contains("expects TLS") && run.stdout.contains("--tls-ca"),
        "{}",
        run.stdout
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // A name the certificate does not carry: refused by the terminal.
    let wrong = fleet_pos(temp.path(), 2, "name");
    wrong.init(
        &demo::fleet_tid(2),
        MID,
        &host.addr,
        &["--tls-ca", &p.ca, "--tls-name", "acquirer.example"],
    );
    let (code, v) = wrong.json(&["sign-in"]);
    assert_eq!((code, &v["code"]), (Some(1), &"L01".into()), "{v}");
    // ... and one it does carry works.
    wrong.init(
        &demo::fleet_tid(2),
        MID,
        &host.addr,
        &["--tls-ca", &p.ca, "--tls-name", "localhost"],
    );
    assert_eq!(wrong.sign_in()["code"], "00");

    // The host counted the failed handshakes and is still serving.
    let text = metrics(&host);
    let failed = text
        .lines()
        .find(|l| l.starts_with("poskit_connections_closed_total{reason=\"tls_handshake\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(failed.ends_with(" 2"), "{failed}");
    sale(&pos, 0);
    host.kill();
    let mut log = String::new();
    host.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("TLS handshake failed"), "{log}");
}

#[test]
fn mutual_tls_refuses_terminals_without_a_certificate_of_the_client_ca() {
    let temp = tempfile::tempdir().unwrap();
    let p = pki(temp.path());
    let (terminals_ca, terminals) = ca(temp.path(), "terminals-ca");
    let (_, stranger) = ca(temp.path(), "stranger-ca");
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    let (good_crt, good_key) = leaf(
        temp.path(),
        "pos-good",
        &["pos"],
        client.clone(),
        &terminals,
    );
    let (bad_crt, bad_key) = leaf(temp.path(), "pos-bad", &["pos"], client, &stranger);
    let host = HostProcess::start(
        &temp.path().join("host"),
        &[
            "--tls-cert",
            &p.host_crt,
            "--tls-key",
            &p.host_key,
            "--tls-client-ca",
            &path(&terminals_ca),
        ],
    );
    for (i, extra) in [
        (0, vec![]),
        (1, vec!["--tls-cert", &bad_crt, "--tls-key", &bad_key]),
    ] {
        let pos = fleet_pos(temp.path(), i, "refused");
        let mut args = vec!["--tls-ca", p.ca.as_str()];
        args.extend(extra);
        pos.init(&demo::fleet_tid(i), MID, &host.addr, &args);
        let run = pos.run(&["--lang", "en", "--json", "sign-in"]);
        let v = run.json();
        assert_eq!((run.code, &v["code"]), (Some(1), &"L01".into()), "{v}");
        assert!(v.to_string().contains("TLS"), "{v}");
    }
    // The host stays up and serves the next good terminal.
    let pos = fleet_pos(temp.path(), 2, "good");
    pos.init(
        &demo::fleet_tid(2),
        MID,
        &host.addr,
        &[
            "--tls-ca",
            &p.ca,
            "--tls-cert",
            &good_crt,
            "--tls-key",
            &good_key,
        ],
    );
    assert_eq!(pos.sign_in()["code"], "00");
    sale(&pos, 2);
}

#[test]
fn tls_options_that_do_not_load_are_bad_arguments_naming_the_file() {
    let temp = tempfile::tempdir().unwrap();
    let junk = temp.path().join("junk.pem");
    std::fs::write(&junk, "not PEM").unwrap();
    let junk = path(&junk);
    let data = path(&temp.path().join("host"));
    let pos_dir = path(&temp.path().join("pos"));
    let tid = demo::fleet_tid(0);
    for args in [
        vec![
            "host",
            "--data",
            &data,
            "--tls-cert",
            &junk,
            "--tls-key",
            &junk,
        ],
        vec!["host", "--data", &data, "--tls-cert", &junk],
        vec![
            "pos",
            "--terminal",
            &pos_dir,
            "init",
            "--tid",
            &tid,
            "--mid",
            MID,
            "--tmk",
            demo::DEMO_TMK,
            "--host",
            "127.0.0.1:5800",
            "--tls-ca",
            &junk,
        ],
        vec![
            "pos",
            "--terminal",
            &pos_dir,
            "init",
            "--tid",
            &tid,
            "--mid",
            MID,
            "--tmk",
            demo::DEMO_TMK,
            "--host",
            "127.0.0.1:5800",
            "--tls-cert",
            &junk,
        ],
        vec!["sim", "--tls-ca", &junk],
    ] {
        let out = poskit(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.to_lowercase().contains("tls"), "{args:?}: {stderr}");
    }
    assert!(!temp.path().join("pos").join("journal.sqlite").exists());
}

#[test]
fn sim_runs_a_short_real_network_simulation_over_tls_and_its_checker_passes() {
    let temp = tempfile::tempdir().unwrap();
    let p = pki(temp.path());
    let host = HostProcess::start(
        &temp.path().join("host"),
        &["--tls-cert", &p.host_crt, "--tls-key", &p.host_key],
    );
    let out = poskit(&[
        "sim",
        "--host",
        &host.addr,
        "--host-data",
        host.data(),
        "--tls-ca",
        &p.ca,
        "--tls-name",
        "localhost",
        "--terminals",
        "3",
        "--transactions",
        "60",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["violations"], serde_json::json!([]), "{v}");
    assert_eq!(v["settlement_failures"], serde_json::json!([]), "{v}");
    assert!(v["approved"].as_u64().unwrap() > 0, "{v}");
}
