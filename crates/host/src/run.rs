//! Starting and stopping a host: open the data directory, load the demo data when asked,
//! start the writer, listen, serve until told to stop, drain, and close the database.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

use poskit_monitor::webhook::Webhook;

use crate::admission::Admission;
use crate::alerting::{self, AlertConfig};
use crate::clock::HostTime;
use crate::config::HostConfig;
use crate::server::{self, Server, Stats};
use crate::store::sqlite;
use crate::writer::{self, Shared, WriterSettings};
use crate::{DataDir, HostError, demo};

/// The meta key that records the demo data was loaded.
const DEMO_LOADED: &str = "demo_loaded";

/// Loads the demo data set into a data directory unless it is there already.
pub fn load_demo(dir: &DataDir, config: &HostConfig) -> Result<bool, HostError> {
    let (mut conn, keys) = dir.open_keys()?;
    let loaded: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [DEMO_LOADED],
            |r| r.get(0),
        )
        .ok();
    if loaded.is_some() {
        return Ok(false);
    }
    let set = demo::data_set(keys.pins());
    let now = HostTime::now(config.utc_offset_minutes, config.clock_offset_days);
    sqlite::import(&mut conn, &keys, &set, &now)?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        [DEMO_LOADED, &now.date_iso()],
    )
    .map_err(crate::store::StoreError::from)?;
    Ok(true)
}

/// Worker threads for the connection tasks: one core fewer than the machine has, since
/// the writer thread needs one of its own (at least one). On two cores this measured
/// lower connection-task CPU per request than a worker per core in 6 of 6 alternating
/// runs (fewer wake-ups across threads and no work stealing between them).
pub fn connection_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// A host that is running.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when an admin address was given.
    pub admin_addr: Option<SocketAddr>,
    pub stats: Arc<Stats>,
    pub shared: Arc<Shared>,
}

/// Runs a host until `stop` fires; `ready` is called with the bound address first.
pub async fn run(
    dir: &DataDir,
    config: HostConfig,
    listen: &str,
    demo_data: bool,
    stop: impl std::future::Future<Output = ()>,
    ready: impl FnOnce(&Running),
) -> Result<(), HostError> {
    // Before anything is written: a second host on the same directory stops here.
    let _lock = dir.lock_host()?;
    if demo_data {
        load_demo(dir, &config)?;
    }
    let (conn, keys) = dir.open_keys()?;
    if keys.macs_in_hsm() {
        if config.engine.mac_algorithm != poskit_security::MacAlgorithm::CupEcb {
            return Err(HostError::Config(format!(
                "mac_algorithm {}: the PKCS#11 token computes the cup-ecb MAC only; use cup-ecb with an HSM, or a local KEK",
                config.engine.mac_algorithm
            )));
        }
        tracing::info!("terminals' MAC keys are held and used inside the HSM");
    }
    let pins = keys.pins().clone();
    let shared = Arc::new(Shared::default());
    let metrics = match config.metrics {
        true => Some(Arc::new(
            poskit_monitor::Metrics::new()
                .map_err(|e| HostError::Config(format!("metrics: {e}")))?,
        )),
        false => None,
    };
    let (queue_tx, queue_rx) = mpsc::channel(config.limits.queue_max);
    let writer = writer::spawn(
        conn,
        WriterSettings {
            engine: config.engine.clone(),
            utc_offset_minutes: config.utc_offset_minutes,
            clock_offset_days: config.clock_offset_days,
            group_commit_max: config.limits.group_commit_max,
            config_faults: config.faults.clone(),
            clearing_cut: config.clearing_cut(),
            metrics: metrics.clone(),
        },
        keys.clone(),
        shared.clone(),
        queue_rx,
    )
    .map_err(|e| HostError::Io {
        path: "writer thread".into(),
        source: e,
    })?;
    let listener = listen_on(listen, config.limits.listen_backlog_max)
        .await
        .map_err(|e| HostError::Io {
            path: listen.to_owned(),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| HostError::Io {
        path: listen.to_owned(),
        source: e,
    })?;
    let admin = match &config.admin_listen {
        Some(at) => match crate::admin::bind(at).await {
            Ok(bound) => Some(bound),
            Err(e) if !config.admin_required => {
                tracing::warn!(error = %e, address = %at, "/metrics not served: the admin address is taken");
                None
            }
            Err(e) => {
                return Err(HostError::Io {
                    path: format!("--admin-listen {at}"),
                    source: e,
                });
            }
        },
        None => None,
    };
    let stats = Arc::new(Stats::default());
    ready(&Running {
        admin_addr: admin.as_ref().map(|(_, a)| *a),
        addr,
        stats: stats.clone(),
        shared: shared.clone(),
    });
    let server = Arc::new(Server {
        limits: config.limits.clone(),
        shared,
        queue: queue_tx,
        stats,
        pins,
        mac_algorithm: config.engine.mac_algorithm,
        admission: Arc::new(Admission::new(&config.limits)),
        metrics: metrics.clone(),
        tls: config.tls.clone().map(server::Tls::new),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    if let (Some((admin_listener, _)), Some(metrics)) = (admin, metrics.clone()) {
        let (data, stop) = (dir.path.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::admin::serve(admin_listener, metrics, data, stop).await {
                tracing::warn!(error = %e, "the admin listener stopped");
            }
        });
    }
    if let Some(metrics) = metrics.clone() {
        tokio::spawn(monitor(
            metrics,
            dir.path.clone(),
            config.alerts.clone(),
            config.utc_offset_minutes,
            stop_rx.clone(),
        ));
    }
    if config.tls.is_some() {
        tracing::info!(%addr, "terminals connect over TLS");
    }
    let serving = tokio::spawn(server::serve(server, listener, stop_rx));
    stop.await;
    tracing::info!("stopping: draining in-flight requests");
    let _ = stop_tx.send(true);
    let served = serving.await;
    // The server (and with it the last queue sender) is gone: the writer finishes its
    // group, commits and stops.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(HostError::Io {
            path: addr.to_string(),
            source: e,
        }),
        Err(e) => Err(HostError::Io {
            path: addr.to_string(),
            source: std::io::Error::other(e),
        }),
    }
}

/// Where the statistics are kept (`poskit stats` reads it).
pub const STATS_FILE: &str = "stats.db";
/// How often the statistics recorded by the connection tasks reach `stats.db`.
const STATS_FLUSH_MS: u64 = 1_000;

/// Moves the recorded statistics into `stats.db` every second, and evaluates the alert
/// rules every `alerts.evaluate_every_ms`; both once more at the end.
async fn monitor(
    metrics: Arc<poskit_monitor::Metrics>,
    data: std::path::PathBuf,
    alerts: AlertConfig,
    utc_offset_minutes: i32,
    mut stop: watch::Receiver<bool>,
) {
    let opened = tokio::task::spawn_blocking(move || open_monitor_files(&data)).await;
    let mut files = match opened {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "statistics and alerts are not kept");
            return;
        }
        Err(_) => return,
    };
    let webhook = match alerts.webhook.as_deref().map(Webhook::start) {
        Some(Ok(hook)) => Some(Arc::new(hook)),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "alerts are not sent to the webhook");
            None
        }
        None => None,
    };
    let alerts = Arc::new(alerts);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(STATS_FLUSH_MS));
    let mut last_evaluated = std::time::Instant::now();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        // Once more on the way out: what the last seconds showed is not lost.
        let evaluate =
            stopping || last_evaluated.elapsed().as_millis() as u64 >= alerts.evaluate_every_ms;
        if evaluate {
            last_evaluated = std::time::Instant::now();
        }
        let drained = metrics.stats.drain();
        let (metrics2, alerts2, webhook2) = (metrics.clone(), alerts.clone(), webhook.clone());
        let done = tokio::task::spawn_blocking(move || {
            let (stats, ledger) = (&mut files.0, &files.1);
            if let Err(e) = poskit_monitor::stats::flush(stats, drained, utc_offset_minutes) {
                tracing::warn!(error = %e, "statistics not written");
            }
            if evaluate {
                let now_ms = HostTime::now(utc_offset_minutes, 0).unix_ms;
                match alerting::cycle(stats, ledger, &alerts2.rules, now_ms, utc_offset_minutes) {
                    Ok(changes) => {
                        alerting::publish(&changes, stats, webhook2.as_deref(), &metrics2)
                    }
                    Err(e) => tracing::warn!(error = %e, "alerts not evaluated"),
                }
            }
            files
        })
        .await;
        match done {
            Ok(back) => files = back,
            Err(_) => return,
        }
        if stopping {
            break;
        }
    }
}

/// `stats.db` (created when missing) and a connection to the ledger for diagnoses.
fn open_monitor_files(
    data: &std::path::Path,
) -> Result<(rusqlite::Connection, rusqlite::Connection), HostError> {
    let path = data.join(STATS_FILE);
    poskit_keystore::files::private_database(&path).map_err(|e| HostError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let stats = rusqlite::Connection::open(&path)
        .and_then(|conn| poskit_monitor::stats::migrate(&conn).map(|()| conn))
        .map_err(|e| HostError::Data {
            what: format!("{STATS_FILE}: {e}"),
        })?;
    Ok((stats, sqlite::open(data)?))
}

/// Binds `listen` with a backlog sized for a fleet reconnecting at once (tokio's default is
/// 1 024; the kernel caps it at `net.core.somaxconn`).
async fn listen_on(listen: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(listen)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
