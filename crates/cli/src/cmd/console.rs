//! `poskit console --data DIR --http ADDR`: the HTTP API against a host's data directory
//! (a host serves it itself with `poskit host --http ADDR`). Plain HTTP is for loopback;
//! another address needs `--http-allow-plain`, with a warning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use poskit_web::AppState;

use crate::fail::usage;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Where to serve the API, HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: String,
    /// Serve plain HTTP on an address other than loopback (passwords and cookies then cross
    /// the network in clear).
    #[arg(long)]
    http_allow_plain: bool,
}

/// The address to serve on, checked: loopback, or plain HTTP allowed.
pub fn http_addr(text: &str, allow_plain: bool) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        usage(format!(
            "--http {text}: expected IP:PORT such as 127.0.0.1:8080"
        ))
    })?;
    if !addr.ip().is_loopback() {
        if !allow_plain {
            return Err(usage(format!(
                "--http {text}: plain HTTP only on loopback (add --http-allow-plain to serve it on the network)"
            )));
        }
        tracing::warn!(address = %addr, "the console is served in plain HTTP beyond loopback");
        eprintln!(
            "poskit: warning: plain HTTP on {addr}: passwords and session cookies cross the network in clear"
        );
    }
    Ok(addr)
}

/// Binds the console's listener and its state.
pub async fn bind(
    data: &Path,
    addr: SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--http {addr}"))?;
    // Cookies are marked Secure only where the browser reaches the console by TLS; plain
    // HTTP on loopback keeps them usable.
    Ok((listener, AppState::new(data.to_path_buf(), false)))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let addr = http_addr(&args.http, args.http_allow_plain)?;
    let dir = crate::cmd::host::existing_data_dir(&args.data)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (listener, state) = bind(&dir.path, addr).await?;
        outln!(
            "poskit console: API on http://{}/api/v1/ (data {})",
            listener.local_addr()?,
            dir.path.display()
        )?;
        crate::out::flush()?;
        poskit_web::serve(listener, state, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
