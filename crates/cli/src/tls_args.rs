//! TLS on the terminal port: the options of `poskit host` ([`HostTls`]) and of the
//! terminals' side, `poskit pos init` and `poskit sim --host` ([`TerminalTls`]). Plain TCP
//! stays the default, as on CUP lines. Files are read when the command starts: a missing or
//! unreadable one is a bad argument (exit 2) naming the file and the reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use poskit_keystore::tls::{self, ClientFiles};

use crate::fail::usage;

/// `poskit host`: the terminal port over TLS, mutual TLS with a client CA.
#[derive(Debug, Clone, clap::Args)]
pub struct HostTls {
    /// Serve terminals over TLS with this certificate chain (PEM), with --tls-key; plain
    /// TCP without it. Overrides the config file's [tls].
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: a terminal must present a certificate signed by this CA (PEM); one
    /// without is refused in the handshake.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl HostTls {
    /// The server's TLS set-up when the options ask for TLS.
    pub fn config(&self) -> anyhow::Result<Option<Arc<tls::ServerConfig>>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        tls::server_config(cert, key, self.tls_client_ca.as_deref())
            .map(Some)
            .map_err(|e| usage(format!("terminal TLS: {e}")))
    }
}

/// `poskit pos init` and `poskit sim --host`: how a terminal reaches its host over TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct TerminalTls {
    /// Connect to the host over TLS, trusting this CA (PEM) for the host's certificate;
    /// plain TCP without it.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Mutual TLS: the terminal's certificate chain (PEM), with --tls-key.
    #[arg(long, value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the host's certificate must carry (default: the host part of the host's
    /// address).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_name: Option<String>,
}

/// A path as given, made absolute (a terminal keeps it for commands run from elsewhere).
fn absolute(option: &str, path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).map_err(|e| usage(format!("{option} {}: {e}", path.display())))
}

impl TerminalTls {
    /// The files by absolute path, checked now against a host at `addr` (a file that does
    /// not load, or a name that is not one, is a bad argument); `None`: plain TCP.
    pub fn files(&self, addr: &str) -> anyhow::Result<Option<ClientFiles>> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let files = ClientFiles {
            ca: absolute("--tls-ca", ca)?,
            cert: self
                .tls_cert
                .as_deref()
                .map(|p| absolute("--tls-cert", p))
                .transpose()?,
            key: self
                .tls_key
                .as_deref()
                .map(|p| absolute("--tls-key", p))
                .transpose()?,
            name: self.tls_name.clone(),
        };
        tls::Client::new(&files, addr).map_err(|e| usage(format!("terminal TLS: {e}")))?;
        Ok(Some(files))
    }

    /// The client's set-up for a host at `addr`; `None`: plain TCP.
    pub fn client(&self, addr: &str) -> anyhow::Result<Option<tls::Client>> {
        self.files(addr)?
            .map(|files| {
                tls::Client::new(&files, addr).map_err(|e| usage(format!("terminal TLS: {e}")))
            })
            .transpose()
    }
}
