//! The admin listener (`--admin-listen`, loopback by default): `/metrics` in the Prometheus
//! text exposition format 0.0.4. Reconciliation's figures are read from `recon.db` in the
//! data directory at each scrape (another process writes it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use poskit_monitor::Metrics;

/// What the admin routes read.
#[derive(Clone)]
struct Admin {
    metrics: Arc<Metrics>,
    data: PathBuf,
}

/// Serves `/metrics` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    data: PathBuf,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(Admin { metrics, data });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
}

/// Binds the admin address.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

async fn metrics_text(State(admin): State<Admin>) -> impl IntoResponse {
    refresh_recon(&admin);
    match admin.metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("metrics: {e}\n"),
        ),
    }
}

/// Open breaks by class and the last completed day, from reconciliation's record.
fn refresh_recon(admin: &Admin) {
    let path = admin.data.join("recon.db");
    if !path.is_file() {
        return;
    }
    let read = || -> rusqlite::Result<(Vec<(String, i64)>, i64)> {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = conn.prepare(
            "SELECT substr(id, 1, instr(id, '-') - 1), count(*) FROM recon_breaks
             WHERE status != 'resolved' GROUP BY 1",
        )?;
        let open = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let last_ms: i64 = conn.query_row(
            "SELECT coalesce(max(run_ms), 0) FROM recon_days WHERE closed = 1",
            [],
            |r| r.get(0),
        )?;
        Ok((open, last_ms))
    };
    if let Ok((open, last_ms)) = read() {
        let open: Vec<(&str, i64)> = open.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        admin.metrics.reconciled(&open, last_ms / 1000);
    }
}
