//! The PKCS#11 key store against a real SoftHSM2 (Debian's `softhsm2`).
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, when the module is initialized, and the environment
//! is the process's: so each test runs its body in a child process of this test binary
//! (`cargo test` runs the tests in threads of one process) whose environment names a token
//! directory of its own, with one token initialized by `softhsm2-util` before the child
//! loads the module. No test shares a token, a login or a module instance with another.
//!
//! The last tests are phase B (`hsm_crypto`): the CUP MAC with the MAK inside the token,
//! equal to `poskit_security`'s, and what SoftHSM refuses for CUP keys (single DES, DES
//! wrap and unwrap), which is why the PIN check cannot run inside it.
//!
//! Without `softhsm2-util` or the module the tests are skipped (with a line saying so),
//! except under CI, where they fail and say to install softhsm2 (`.ci/run` does);
//! `POSKIT_SKIP_SOFTHSM=1` skips them anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use poskit_keystore::pkcs11::{self, Pkcs11Config, Pkcs11Store};
use poskit_keystore::{
    CardVault, DataKeys, KekSource, KeyStore, KeyStoreError, LocalKek, envelope, rewrap,
};
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "poskit-test";
const PIN: &str = "7391-user";
const SO_PIN: &str = "5512-so";
const KEY: &str = "poskit-kek";
/// Set in a child process: the test's token directory.
const CHILD_ENV: &str = "POSKIT_SOFTHSM_CHILD";
const SKIP_ENV: &str = "POSKIT_SKIP_SOFTHSM";

/// Whether SoftHSM2 is here: `false` when skipped on purpose; a panic saying to install it
/// when it is missing.
fn softhsm_present(test: &str) -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        println!("{test}: skipped ({SKIP_ENV}=1): SoftHSM2 tests not run");
        return false;
    }
    let util = Command::new("softhsm2-util").arg("--version").output();
    if util.is_err() || !Path::new(MODULE).is_file() {
        // CI installs it (.ci/run) and must run these; a developer's machine without it
        // skips them, as the browser test skips without Chromium.
        assert!(
            std::env::var_os("CI").is_none(),
            "SoftHSM2 is not installed (softhsm2-util or {MODULE} missing): install it (apt-get install softhsm2), or set {SKIP_ENV}=1 to skip the PKCS#11 tests"
        );
        eprintln!("{test}: skipped: SoftHSM2 is not installed (apt-get install softhsm2)");
        return false;
    }
    true
}

/// Runs `body` in a child process of this test binary, with a fresh token directory and
/// one token ([`TOKEN`], user PIN [`PIN`]) initialized in it.
fn in_softhsm(test: &str, body: fn()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    if !softhsm_present(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path());
    init_token(&conf, TOKEN);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(out.status.success(), "{test} failed in its SoftHSM child");
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its child"
    );
}

fn write_conf(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    let text = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        tokens.display()
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

fn init_token(conf: &Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", PIN, "--so-pin", SO_PIN])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test token's directory (in a child).
fn token_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(CHILD_ENV).unwrap()).join("tokens")
}

fn config(key: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: MODULE.into(),
        token_label: TOKEN.into(),
        pin: Zeroizing::new(PIN.into()),
        key_label: key.into(),
    }
}

/// A session of our own on the test token, logged in (in a child).
fn raw_session() -> Session {
    let ctx = pkcs11::module(Path::new(MODULE)).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) => {}
        Err(e) if pkcs11::describe_error(&e).contains("ALREADY_LOGGED_IN") => {}
        Err(e) => panic!("{e}"),
    }
    session
}

macro_rules! softhsm_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            in_softhsm(stringify!($name), $body);
        }
    };
}

softhsm_test!(
    a_key_wraps_and_unwraps_inside_the_token_bound_to_its_context,
    || {
        let store = Pkcs11Store::create_key(&config(KEY)).unwrap();
        let blob = store.wrap("tmk:10100001", b"0123456789abcdef").unwrap();
        assert!(envelope::is_envelope(&blob));
        assert_eq!(envelope::parse("t", &blob).unwrap().kek_id, store.kek_id());
        assert!(!blob.windows(16).any(|w| w == b"0123456789abcdef"));
        assert_eq!(blob.len(), 1 + 8 + 12 + 16 + 16);
        assert_eq!(
            &store.unwrap("tmk:10100001", &blob).unwrap()[..],
            b"0123456789abcdef"
        );
        assert_ne!(
            store.wrap("tmk:10100001", b"0123456789abcdef").unwrap(),
            blob
        );
        // Another context, a flipped bit, a cut blob: damaged, and the session still works.
        let other = store.unwrap("tmk:10100002", &blob).unwrap_err();
        assert!(matches!(other, KeyStoreError::Damaged { .. }), "{other}");
        let mut bent = blob.clone();
        bent[30] ^= 1;
        let bent = store.unwrap("tmk:10100001", &bent).unwrap_err();
        assert!(matches!(bent, KeyStoreError::Damaged { .. }), "{bent}");
        assert!(matches!(
            store.unwrap("tmk:10100001", &blob[..30]),
            Err(KeyStoreError::Damaged { .. })
        ));
        // Reopened by label: the same id, and the blob still unwraps.
        drop(store);
        let again = Pkcs11Store::open(&config(KEY)).unwrap();
        assert_eq!(
            &again.unwrap("tmk:10100001", &blob).unwrap()[..],
            b"0123456789abcdef"
        );
        assert!(again.describe().contains(TOKEN), "{}", again.describe());
        assert!(!format!("{:?}", config(KEY)).contains(PIN));
    }
);

softhsm_test!(a_blob_of_another_kek_is_refused_before_decrypting, || {
    let a = Pkcs11Store::create_key(&config("kek-a")).unwrap();
    let b = Pkcs11Store::create_key(&config("kek-b")).unwrap();
    assert_ne!(a.kek_id(), b.kek_id());
    let blob = a.wrap("pvk", b"secret").unwrap();
    match b.unwrap("pvk", &blob) {
        Err(KeyStoreError::WrongKek {
            given,
            wrapped_under,
        }) => {
            assert_eq!(given, b.kek_id());
            assert_eq!(wrapped_under, a.kek_id());
        }
        other => panic!("{other:?}"),
    }
    let (local, _) = LocalKek::generate("local").unwrap();
    assert!(matches!(
        local.unwrap("pvk", &blob),
        Err(KeyStoreError::WrongKek { .. })
    ));
    let twice = Pkcs11Store::create_key(&config("kek-a")).unwrap_err();
    assert!(twice.to_string().contains("exists already"), "{twice}");
});

softhsm_test!(the_kek_never_leaves_the_token, || {
    let store = Pkcs11Store::create_key(&config(KEY)).unwrap();
    let session = raw_session();
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(KEY.as_bytes().to_vec()),
    ];
    let key = session.find_objects(&template).unwrap()[0];
    let info = session
        .get_attribute_info(key, &[AttributeType::Value])
        .unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
    let got = session
        .get_attributes(key, &[AttributeType::Value])
        .unwrap();
    assert!(got.is_empty(), "C_GetAttributeValue gave CKA_VALUE");
    let wanted = [
        AttributeType::Sensitive,
        AttributeType::Extractable,
        AttributeType::NeverExtractable,
        AttributeType::Token,
        AttributeType::Id,
    ];
    let got = session.get_attributes(key, &wanted).unwrap();
    assert!(got.contains(&Attribute::Sensitive(true)));
    assert!(got.contains(&Attribute::Extractable(false)));
    assert!(got.contains(&Attribute::NeverExtractable(true)));
    assert!(got.contains(&Attribute::Token(true)));
    assert!(got.contains(&Attribute::Id(store.kek_id().0.to_vec())));
    // Nor wrapped out under another key.
    let wrapper = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Token(false),
            ],
        )
        .unwrap();
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapper, key);
    let e = wrapped.unwrap_err();
    assert!(pkcs11::describe_error(&e).contains("UNEXTRACTABLE"), "{e}");
});

softhsm_test!(a_wrong_pin_a_missing_token_key_or_module_say_so, || {
    let mut bad = config(KEY);
    bad.pin = Zeroizing::new("0000-wrong".into());
    let e = Pkcs11Store::open(&bad).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, KeyStoreError::Config(_)), "{text}");
    assert!(text.contains("CKR_PIN_INCORRECT"), "{text}");
    assert!(text.contains(pkcs11::PKCS11_PIN_ENV), "{text}");
    assert!(!text.contains("0000-wrong"));

    let e = Pkcs11Store::open(&config(KEY)).unwrap_err().to_string();
    assert!(e.contains("no AES key labelled"), "{e}");

    let mut other_token = config(KEY);
    other_token.token_label = "nope".into();
    let e = Pkcs11Store::open(&other_token).unwrap_err().to_string();
    assert!(e.contains("\"nope\" is not in module"), "{e}");
    assert!(e.contains(TOKEN), "lists the tokens there: {e}");

    let mut missing = config(KEY);
    missing.module = "/nonexistent/libpkcs11.so".into();
    let e = Pkcs11Store::open(&missing).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/libpkcs11.so does not exist"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
});

softhsm_test!(open_creates_the_hsm_key_only_when_asked, || {
    let source = KekSource::Pkcs11(config(KEY));
    assert!(!format!("{source:?}").contains(PIN));
    let e = poskit_keystore::open(&source, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no AES key labelled"), "{e}");
    let first = poskit_keystore::open(&source, true).unwrap();
    assert!(first.created_hsm_key);
    assert!(first.created.is_none());
    let second = poskit_keystore::open(&source, true).unwrap();
    assert!(!second.created_hsm_key);
    assert_eq!(first.store.kek_id(), second.store.kek_id());
    let blob = first.store.wrap("x", b"y").unwrap();
    assert_eq!(&second.store.unwrap("x", &blob).unwrap()[..], b"y");
});

softhsm_test!(
    the_card_vault_works_through_the_hsm_and_survives_rotation,
    || {
        let old = Pkcs11Store::create_key(&config("kek-2025")).unwrap();
        let keys = DataKeys::generate(&old).unwrap();
        let vault = CardVault::open(&old, &keys).unwrap();
        let card = vault.encrypt("6222021234567890123").unwrap();
        let tmk = old.wrap("tmk:10100001", &[0x11; 16]).unwrap();

        let new = Pkcs11Store::generate_rotated(&config("kek-2025"), "kek-2026").unwrap();
        assert_ne!(new.kek_id(), old.kek_id());
        let moved = keys.rewrap(&old, &new).unwrap();
        let tmk2 = rewrap(&old, &new, "tmk:10100001", &tmk).unwrap();
        assert!(matches!(
            CardVault::open(&old, &moved),
            Err(KeyStoreError::WrongKek { .. })
        ));
        let vault2 = CardVault::open(&new, &moved).unwrap();
        assert_eq!(&vault2.decrypt(&card).unwrap()[..], "6222021234567890123");
        assert_eq!(
            vault2.hash("6222021234567890123"),
            vault.hash("6222021234567890123")
        );
        assert_eq!(&new.unwrap("tmk:10100001", &tmk2).unwrap()[..], &[0x11; 16]);
        // And from a local KEK into the HSM (a host moving its keys in).
        let (local, _) = LocalKek::generate("local").unwrap();
        let local_keys = DataKeys::generate(&local).unwrap();
        let in_hsm = local_keys.rewrap(&local, &new).unwrap();
        CardVault::open(&new, &in_hsm).unwrap();
    }
);

softhsm_test!(
    a_lost_login_answers_unavailable_once_and_the_next_call_recovers,
    || {
        let store = Pkcs11Store::create_key(&config(KEY)).unwrap();
        let blob = store.wrap("tmk:1", b"k").unwrap();
        // Another user of the module logs the process out of the token, as a token restart
        // would: the pooled session can no longer use the private key.
        let session = raw_session();
        session.logout().unwrap();
        drop(session);
        let e = store.wrap("tmk:1", b"k").unwrap_err();
        assert!(matches!(e, KeyStoreError::Unavailable(_)), "{e}");
        assert_eq!(&store.unwrap("tmk:1", &blob).unwrap()[..], b"k");
    }
);

// SoftHSM2 does not take back a token directory that vanished while it was loaded (every
// call after fails with CKR_GENERAL_ERROR until the process restarts), so recovery is shown
// with a lost login above; here, that a vanished token answers Unavailable, never hangs or
// panics, call after call.
softhsm_test!(a_removed_token_answers_unavailable, || {
    let store = Pkcs11Store::create_key(&config(KEY)).unwrap();
    let blob = store.wrap("tmk:1", b"k").unwrap();
    let tokens = token_dir();
    std::fs::rename(&tokens, tokens.with_file_name("tokens-away")).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    for _ in 0..3 {
        let e = store.unwrap("tmk:1", &blob).unwrap_err();
        assert!(matches!(e, KeyStoreError::Unavailable(_)), "{e}");
        let e = store.wrap("tmk:1", b"k").unwrap_err();
        assert!(matches!(e, KeyStoreError::Unavailable(_)), "{e}");
    }
});

softhsm_test!(wrap_and_unwrap_latency_from_several_threads, || {
    let store = Arc::new(Pkcs11Store::create_key(&config(KEY)).unwrap());
    let key = [0x5a; 16];
    let rounds = 2000;
    let started = Instant::now();
    let mut each = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let blob = store.wrap("tmk:10100001", &key).unwrap();
        store.unwrap("tmk:10100001", &blob).unwrap();
        each.push(t.elapsed());
    }
    let total = started.elapsed();
    each.sort();
    println!(
        "one thread: {rounds} wrap+unwrap in {total:?}: median {:?}, p99 {:?}, max {:?}",
        each[rounds / 2],
        each[rounds * 99 / 100],
        each[rounds - 1]
    );
    for threads in [2, 4, 8] {
        let started = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..rounds / threads {
                        let blob = store.wrap("tmk:10100001", &key).unwrap();
                        assert_eq!(&store.unwrap("tmk:10100001", &blob).unwrap()[..], &key);
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let total = started.elapsed();
        println!(
            "{threads} threads: {rounds} wrap+unwrap in {total:?} ({:.0}/s)",
            rounds as f64 / total.as_secs_f64()
        );
    }
    assert!(each[rounds / 2] < Duration::from_millis(50));
});

// ---- Phase B: MAC and PIN checks with the working keys inside the token (hsm_crypto) ----

mod inside {
    use super::*;
    use cryptoki::object::{KeyType, ObjectHandle};
    use poskit_keystore::hsm_crypto::{self, DesKind, TokenKey};
    use poskit_security::{MacAlgorithm, SecretKey};

    /// MAKs of each length; the fourth has even-parity bytes (0x11, 0x22).
    pub const KEYS: [&str; 5] = [
        "0123456789ABCDEF",
        "0123456789ABCDEFFEDCBA9876543210",
        "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567",
        "11111111111111112222222222222222",
        "1A2B3C4D5E6F7081",
    ];

    pub fn mak(session: &Session, kwk: ObjectHandle, hex_key: &str) -> TokenKey {
        let clear = Zeroizing::new(hex::decode(hex_key).unwrap());
        let (stored, kind) = hsm_crypto::provision_working_key(session, kwk, &clear).unwrap();
        assert!(!stored.windows(8).any(|w| w == &clear[..8]));
        assert_eq!(kind, DesKind::of_len(clear.len()).unwrap());
        hsm_crypto::unwrap_mak(session, kwk, &stored, kind).unwrap()
    }

    pub fn software_mac(hex_key: &str, data: &[u8]) -> [u8; 8] {
        let key = SecretKey::from_hex(hex_key).unwrap();
        *poskit_security::compute_mac(MacAlgorithm::CupEcb, &key, data)
            .unwrap()
            .as_bytes()
    }

    /// An extractable secret of `kind` with `value`, a session object.
    pub fn secret(session: &Session, kind: KeyType, value: &[u8]) -> ObjectHandle {
        session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(kind),
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::Value(value.to_vec()),
            ])
            .unwrap()
    }

    pub fn des_key(session: &Session, kind: KeyType, hex_key: &str) -> ObjectHandle {
        session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(kind),
                Attribute::Token(false),
                Attribute::Value(hex::decode(hex_key).unwrap()),
                Attribute::Unwrap(true),
                Attribute::Wrap(true),
                Attribute::Decrypt(true),
            ])
            .unwrap()
    }
}

softhsm_test!(a_mak_inside_the_token_macs_as_the_software_does, || {
    use poskit_keystore::hsm_crypto;
    let session = raw_session();
    let kwk = hsm_crypto::create_wrapping_key(&session, "poskit-kwk").unwrap();
    let data: Vec<u8> = (0u8..=200).map(|i| i.wrapping_mul(37) ^ 0x5c).collect();
    for hex_key in inside::KEYS {
        let mak = inside::mak(&session, kwk, hex_key);
        for len in [0, 1, 7, 8, 9, 16, 17, 64, 100, 201] {
            let token = hsm_crypto::cup_ecb_mac(&session, mak, &data[..len]).unwrap();
            assert_eq!(
                token,
                inside::software_mac(hex_key, &data[..len]),
                "{len} bytes"
            );
            assert!(hsm_crypto::verify_cup_ecb_mac(&session, mak, &data[..len], &token).unwrap());
            let mut bent = token;
            bent[0] ^= 1;
            assert!(!hsm_crypto::verify_cup_ecb_mac(&session, mak, &data[..len], &bent).unwrap());
        }
        // Never readable, and it only encrypts.
        let info = session
            .get_attribute_info(mak.handle, &[AttributeType::Value])
            .unwrap();
        assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
        assert!(
            session
                .decrypt(&Mechanism::Des3Ecb, mak.handle, &[0; 8])
                .is_err()
        );
    }
    // The known answer of the security crate's vectors (key 0123456789ABCDEF, no data).
    let mak = inside::mak(&session, kwk, inside::KEYS[0]);
    assert_eq!(
        &hsm_crypto::cup_ecb_mac(&session, mak, b"").unwrap(),
        b"DFB656BD"
    );

    let started = Instant::now();
    for _ in 0..1000 {
        hsm_crypto::cup_ecb_mac(&session, mak, &data[..100]).unwrap();
    }
    println!(
        "CUP ECB MAC of 100 bytes in the token: {:?} each",
        started.elapsed() / 1000
    );
});

softhsm_test!(what_softhsm_refuses_for_cup_keys, || {
    use cryptoki::object::KeyType;
    let session = raw_session();
    let tmk = inside::des_key(&session, KeyType::DES2, inside::KEYS[3]);
    let single = inside::des_key(&session, KeyType::DES, inside::KEYS[0]);
    // Field 62's working key: 3DES-ECB under the TMK. No DES unwrap mechanism in SoftHSM.
    let field62_key = hex::decode("7A2883A3162C014BA2AFCD72999CE5CD").unwrap();
    let target = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::DES2),
        Attribute::Token(false),
    ];
    // Single DES is listed but refused (OpenSSL 3 has it only in its legacy provider).
    let e = session
        .encrypt(&Mechanism::DesEcb, single, &[0; 8])
        .unwrap_err();
    println!("C_Encrypt DES-ECB: {}", pkcs11::describe_error(&e));
    assert!(
        pkcs11::describe_error(&e).contains("MECHANISM_INVALID"),
        "{e}"
    );
    for (name, mechanism, key) in [
        ("DES3-ECB", Mechanism::Des3Ecb, tmk),
        ("DES3-CBC", Mechanism::Des3Cbc([0; 8]), tmk),
        ("DES-ECB", Mechanism::DesEcb, single),
    ] {
        let e = session
            .unwrap_key(&mechanism, key, &field62_key, &target)
            .unwrap_err();
        println!("C_UnwrapKey {name}: {}", pkcs11::describe_error(&e));
        assert!(
            pkcs11::describe_error(&e).contains("MECHANISM_INVALID"),
            "{name}: {e}"
        );
    }
    // The PIN check by E_PIK(reference) = field 52 needs the token to encrypt a secret
    // object's value under a DES key: C_WrapKey. SoftHSM 2.6.1 flags DES-ECB, DES-CBC,
    // DES-CBC-PAD and DES3-CBC with CKF_WRAP, but its C_WrapKey implements only AES key wrap
    // (RFC 3394/5649): every DES wrap is refused, whatever the key or the object wrapped.
    let pik = inside::des_key(&session, KeyType::DES2, inside::KEYS[1]);
    let pik3 = inside::des_key(&session, KeyType::DES3, inside::KEYS[2]);
    let block = inside::secret(&session, KeyType::GENERIC_SECRET, &[0x06; 8]);
    let des2_object = inside::secret(&session, KeyType::DES2, &[0x5b; 16]);
    for (name, mechanism, key, object) in [
        (
            "DES3-CBC, DES2 key, 8-byte secret",
            Mechanism::Des3Cbc([0; 8]),
            pik,
            block,
        ),
        (
            "DES3-CBC, DES3 key, 8-byte secret",
            Mechanism::Des3Cbc([0; 8]),
            pik3,
            block,
        ),
        (
            "DES3-CBC, DES2 key, DES2 key",
            Mechanism::Des3Cbc([0; 8]),
            pik,
            des2_object,
        ),
        (
            "DES3-ECB, DES2 key, 8-byte secret",
            Mechanism::Des3Ecb,
            pik,
            block,
        ),
        (
            "DES-ECB, DES key, 8-byte secret",
            Mechanism::DesEcb,
            single,
            block,
        ),
        (
            "DES-CBC, DES key, 8-byte secret",
            Mechanism::DesCbc([0; 8]),
            single,
            block,
        ),
    ] {
        let e = session.wrap_key(&mechanism, key, object).unwrap_err();
        println!("C_WrapKey {name}: {}", pkcs11::describe_error(&e));
        assert!(
            pkcs11::describe_error(&e).contains("MECHANISM_INVALID"),
            "{name}: {e}"
        );
    }
});

softhsm_test!(
    the_stores_mac_device_holds_maks_the_host_only_sees_wrapped,
    || {
        use poskit_keystore::hsm_mac;
        let store = Pkcs11Store::create_key(&config(KEY)).unwrap();
        let device = store.mac_device().unwrap().expect("a token MACs");
        let data: Vec<u8> = (0u8..=99).collect();
        let mut helds = Vec::new();
        for hex_key in inside::KEYS {
            let clear = Zeroizing::new(hex::decode(hex_key).unwrap());
            let held = device.provision(&clear).unwrap();
            assert!(hsm_mac::is_held(&held));
            assert!(!held.windows(8).any(|w| w == &clear[..8]), "{hex_key}");
            // The first MAC unwraps the key into its session, the second finds it there.
            for _ in 0..2 {
                assert_eq!(
                    device.cup_ecb_mac(&held, &data).unwrap(),
                    inside::software_mac(hex_key, &data),
                    "{hex_key}"
                );
            }
            helds.push(held);
        }
        // The same device again (one per store), and a new store on the same token finds
        // the same MAK-wrapping key: what one host process provisioned, the next one MACs.
        let again = store.mac_device().unwrap().unwrap();
        assert_eq!(
            again.cup_ecb_mac(&helds[1], &data).unwrap(),
            inside::software_mac(inside::KEYS[1], &data)
        );
        drop(store);
        let reopened = Pkcs11Store::open(&config(KEY)).unwrap();
        let device = reopened.mac_device().unwrap().unwrap();
        assert_eq!(
            device.cup_ecb_mac(&helds[2], &data).unwrap(),
            inside::software_mac(inside::KEYS[2], &data)
        );
        // A held MAK altered is damaged, not the token unavailable; the device goes on.
        let mut bent = helds[0].clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(matches!(
            device.cup_ecb_mac(&bent, &data),
            Err(KeyStoreError::Damaged { .. })
        ));
        assert!(matches!(
            device.cup_ecb_mac(&helds[0][..10], &data),
            Err(KeyStoreError::Damaged { .. })
        ));
        assert_eq!(
            device.cup_ecb_mac(&helds[0], &data).unwrap(),
            inside::software_mac(inside::KEYS[0], &data)
        );
    }
);

softhsm_test!(
    a_mac_device_that_lost_its_login_is_unavailable_once_and_recovers,
    || {
        let store = Pkcs11Store::create_key(&config(KEY)).unwrap();
        let device = store.mac_device().unwrap().unwrap();
        let held = device
            .provision(&hex::decode(inside::KEYS[1]).unwrap())
            .unwrap();
        let data = b"a request".to_vec();
        let want = inside::software_mac(inside::KEYS[1], &data);
        assert_eq!(device.cup_ecb_mac(&held, &data).unwrap(), want);
        // Logged out by another user of the module, as a token restart would: the MAK
        // unwrapped in the session is private and can no longer be used.
        let session = raw_session();
        session.logout().unwrap();
        drop(session);
        let e = device.cup_ecb_mac(&held, &data).unwrap_err();
        assert!(matches!(e, KeyStoreError::Unavailable(_)), "{e}");
        // The next call opens a new session, logs in, unwraps the MAK again and MACs.
        assert_eq!(device.cup_ecb_mac(&held, &data).unwrap(), want);
    }
);
