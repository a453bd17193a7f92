//! The API over TLS: a certificate and key from PEM files (made here by rcgen), a client that
//! trusts that certificate only. Plain HTTP to the TLS port gets nothing; a login over TLS
//! sets a `Secure` cookie.

use std::io::{Read, Write};
use std::sync::Arc;

use poskit_web::{AppState, tls, users};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

#[test]
fn the_api_answers_over_tls_to_a_client_that_trusts_its_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (temp.path().join("api.crt"), temp.path().join("api.key"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let config = tls::server_config(&cert_pem, &key_pem).unwrap();
    // A key that is not the certificate's is refused with a reason.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_key = temp.path().join("other.key");
    std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
    let err = tls::server_config(&cert_pem, &other_key).unwrap_err();
    assert!(err.contains("do not go together"), "{err}");

    let conn = users::open(temp.path()).unwrap();
    users::add(
        &conn,
        "ops",
        users::Role::Operator,
        None,
        "ops has a long password",
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = AppState::new(temp.path().to_path_buf(), true);
    runtime.spawn(poskit_web::serve(
        listener,
        state,
        Some(config),
        std::future::pending(),
    ));

    let roots = RootCerts::Specific(Arc::new(vec![
        Certificate::from_der(cert.cert.der()).to_owned(),
    ]));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .http_status_as_error(false)
        .build()
        .into();
    let base = format!("https://localhost:{port}");
    let mut doc = agent.get(format!("{base}/openapi.json")).call().unwrap();
    assert_eq!(doc.status(), 200);
    assert!(
        doc.body_mut()
            .read_to_string()
            .unwrap()
            .contains("\"openapi\"")
    );
    let me = agent.get(format!("{base}/api/v1/me")).call().unwrap();
    assert_eq!(me.status(), 401);
    let login = agent
        .post(format!("{base}/api/v1/login"))
        .header("content-type", "application/json")
        .send(r#"{"name": "ops", "password": "ops has a long password"}"#)
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // Plain HTTP to the TLS port: no HTTP answer.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    s.write_all(b"GET /openapi.json HTTP/1.0\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1."),
        "{got:?}"
    );
}
