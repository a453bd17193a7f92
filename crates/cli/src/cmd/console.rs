//! `poskit console --data DIR --http ADDR`: the HTTP API against a host's data directory
//! (a host serves it itself with `poskit host --http ADDR`). Plain HTTP is for loopback;
//! another address needs `--http-allow-plain`, with a warning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use poskit_host::DataDir;
use poskit_web::AppState;

use crate::fail::usage;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Where the data directory's key-encryption key is (admins' master data writes wrap a
    /// terminal's master key under it).
    #[command(flatten)]
    kek: crate::kek_args::KekArgs,
    /// Where to serve the API, IP:PORT.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: String,
    #[command(flatten)]
    tls: TlsArgs,
}

/// How the API is served: TLS from a certificate and key, or plain HTTP (loopback unless
/// allowed).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// The API's TLS certificate chain (PEM); with --http-tls-key the API is served over
    /// TLS, on any address.
    #[arg(long, value_name = "FILE", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// The private key of --http-tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (passwords and cookies then cross
    /// the network in clear).
    #[arg(long)]
    pub http_allow_plain: bool,
}

/// Where and how to serve the API, checked before anything starts.
pub struct Http {
    pub addr: SocketAddr,
    pub tls: Option<Arc<poskit_web::tls::ServerConfig>>,
}

impl Http {
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

impl TlsArgs {
    /// The API's address `at` and its TLS set-up.
    pub fn http(&self, at: &str) -> anyhow::Result<Http> {
        let tls = match (&self.http_tls_cert, &self.http_tls_key) {
            (Some(cert), Some(key)) => Some(
                poskit_web::tls::server_config(cert, key)
                    .map_err(|e| usage(format!("--http-tls-cert: {e}")))?,
            ),
            _ => None,
        };
        let addr = http_addr(at, tls.is_some() || self.http_allow_plain)?;
        Ok(Http { addr, tls })
    }
}

/// The address to serve on, checked: loopback, or TLS, or plain HTTP allowed.
fn http_addr(text: &str, allowed: bool) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        usage(format!(
            "--http {text}: expected IP:PORT such as 127.0.0.1:8080"
        ))
    })?;
    if !addr.ip().is_loopback() && !allowed {
        return Err(usage(format!(
            "--http {text}: plain HTTP only on loopback (give --http-tls-cert and --http-tls-key, or --http-allow-plain)"
        )));
    }
    Ok(addr)
}

/// Binds the API's listener and its state, for the data directory `dir` (with its
/// key-encryption key's source).
pub async fn bind(
    dir: &DataDir,
    http: &Http,
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let listener = tokio::net::TcpListener::bind(http.addr)
        .await
        .with_context(|| format!("--http {}", http.addr))?;
    if http.tls.is_none() && !http.addr.ip().is_loopback() {
        eprintln!(
            "poskit: warning: plain HTTP on {}: passwords and session cookies cross the network in clear",
            http.addr
        );
    }
    // Cookies are marked Secure where the browser reaches the API by TLS; plain HTTP on
    // loopback keeps them usable.
    let state = AppState::new(dir.path.clone(), http.tls.is_some()).with_dir(dir.clone());
    Ok((listener, state))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let http = args.tls.http(&args.http)?;
    let dir =
        crate::cmd::host::existing_data_dir(&args.data)?.with_kek(args.kek.source(&args.data)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (listener, state) = bind(&dir, &http).await?;
        outln!(
            "poskit console: API on {}://{}/api/v1/ (data {})",
            http.scheme(),
            listener.local_addr()?,
            dir.path.display()
        )?;
        crate::out::flush()?;
        poskit_web::serve(listener, state, http.tls.clone(), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
