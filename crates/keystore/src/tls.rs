//! TLS set-ups from PEM files (rustls, the `ring` provider), one copy for every listener and
//! client of poskit: the HTTP API, the host's terminal port, `poskit pos` and `poskit sim`.
//!
//! - [`server_config`]: a certificate chain and its key; with a client CA, mutual TLS — a
//!   client without a certificate signed by that CA is refused in the handshake.
//! - [`client_config`]: the CA that signed the server's certificate; with a certificate and
//!   its key, the client's own identity for mutual TLS.
//! - [`Client`]: a client set-up with the name it expects in the server's certificate, for
//!   connecting a `TcpStream` with a bounded handshake.
//!
//! Errors are one line naming the file and the reason. A PEM file is read up to
//! [`PEM_BYTES_MAX`]; a larger one is refused.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

pub use rustls::{ClientConfig, ClientConnection, ServerConfig, StreamOwned};
pub use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// A PEM file larger than this is not a certificate chain or a key.
pub const PEM_BYTES_MAX: u64 = 1 << 20;
/// A handshake must end within this, on either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The bytes of a PEM file, bounded.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(PEM_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > PEM_BYTES_MAX {
        return Err(format!(
            "{}: larger than {PEM_BYTES_MAX} bytes: not a PEM certificate or key",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Every certificate of a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem(path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{}: no private key in it", path.display())
        }
        e => format!("{}: {e}", path.display()),
    })
}

/// The certificates of a CA file as trust anchors.
fn roots(ca: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a CA certificate: {e}", ca.display()))?;
    }
    Ok(roots)
}

/// The server's set-up from a PEM certificate chain and its PEM private key; with
/// `client_ca`, every client must present a certificate that CA signed (mutual TLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(cert)?;
    let key_der = private_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key_der).map_err(|e| {
        format!(
            "{} and {}: the certificate and the key do not go together: {e}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Arc::new(config))
}

/// The client's set-up: the CA that signed the server's certificate and, for mutual TLS,
/// the client's own certificate chain and key.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| {
                format!(
                    "{} and {}: the certificate and the key do not go together: {e}",
                    cert.display(),
                    key.display()
                )
            })?,
    };
    Ok(Arc::new(config))
}

/// The host part of `host:port` (`[::1]:5800` → `::1`), the name a client expects in the
/// server's certificate unless told another.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// What a TLS client is given: files by path, and the server's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientFiles {
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
    /// The client's certificate chain and key (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name in the server's certificate; `None`: the host part of its address.
    pub name: Option<String>,
}

/// A client's TLS set-up and the server name it checks the certificate against.
#[derive(Clone)]
pub struct Client {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The set-up of `files` for a server at `addr` (`host:port`).
    pub fn new(files: &ClientFiles, addr: &str) -> Result<Client, String> {
        let identity = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => {
                return Err("a client certificate needs its key, and a key its certificate".into());
            }
        };
        let config = client_config(&files.ca, identity)?;
        let name = files.name.as_deref().unwrap_or_else(|| host_of(addr));
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("server name {name:?}: {e}"))?;
        Ok(Client {
            connector: TlsConnector::from(config),
            name,
        })
    }

    /// The TLS handshake over `tcp`, within [`HANDSHAKE_TIMEOUT`]; the error is one line
    /// (the certificate refused, the server hung up, ...).
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<client::TlsStream<TcpStream>> {
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.connector.connect(self.name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(std::io::Error::new(
                e.kind(),
                format!("TLS handshake failed: {e}"),
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake not done within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// The handshake as [`Client::connect`], for a blocking caller's `std` stream: the
    /// rustls connection to drive with [`rustls::StreamOwned`].
    pub fn connection(&self) -> Result<rustls::ClientConnection, String> {
        rustls::ClientConnection::new(self.connector.config().clone(), self.name.clone())
            .map_err(|e| format!("TLS: {e}"))
    }
}

/// Whether a read error is the server refusing the handshake. With TLS 1.3 the client's
/// handshake ends before the server has checked the client's certificate, so a terminal
/// without an acceptable one learns of the refusal as an alert on its first read — and the
/// server never read what it sent.
pub fn is_handshake_refusal(e: &std::io::Error) -> bool {
    use rustls::AlertDescription as A;
    let Some(rustls::Error::AlertReceived(alert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return false;
    };
    matches!(
        alert,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::HandshakeFailure
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_host_part_of_the_address() {
        assert_eq!(host_of("pos.example.com:5800"), "pos.example.com");
        assert_eq!(host_of("127.0.0.1:5800"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5800"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn files_that_are_not_pem_say_which_and_why() {
        let temp = tempfile::tempdir().unwrap();
        let junk = temp.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = server_config(&junk, &junk, None).unwrap_err();
        assert!(
            err.contains("junk.pem") && err.contains("no certificate"),
            "{err}"
        );
        let missing = temp.path().join("missing.pem");
        let err = client_config(&missing, None).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let big = temp.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; PEM_BYTES_MAX as usize + 1]).unwrap();
        let err = certificates(&big).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }
}
