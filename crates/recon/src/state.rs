//! Reconciliation's own record (`recon.db` in the data directory): each day's last run
//! and whether it is closed, and every break with its status across runs. Only
//! reconciliation writes it; the ledger keeps what was posted (`recon_adjustments`).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{Break, Status};
use crate::run::Report;

/// Reconciliation's record in a data directory.
pub const STATE_FILE: &str = "recon.db";

/// Opens (creating, mode 0600, when absent) reconciliation's record in `data` and brings
/// its tables up to date.
pub fn open(data: &std::path::Path) -> rusqlite::Result<Connection> {
    let path = data.join(STATE_FILE);
    poskit_keystore::files::private_database(&path).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("{}: {e}", path.display())),
        )
    })?;
    let conn = Connection::open(&path)?;
    migrate(&conn)?;
    Ok(conn)
}

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS recon_days (
             day INTEGER PRIMARY KEY,
             closed INTEGER NOT NULL,
             id_hi INTEGER NOT NULL,
             report TEXT NOT NULL,
             run_ms INTEGER NOT NULL
         ) STRICT;
         CREATE TABLE IF NOT EXISTS recon_breaks (
             id TEXT PRIMARY KEY,
             day INTEGER NOT NULL,
             status TEXT NOT NULL,
             action TEXT NOT NULL,
             host_txn_id INTEGER,
             resolution TEXT,
             json TEXT NOT NULL
         ) STRICT;",
    )
}

/// A closed day's report, as it was when the day closed.
pub fn closed_report(conn: &Connection, day: i64) -> rusqlite::Result<Option<Report>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT report FROM recon_days WHERE day = ?1 AND closed = 1",
            [day],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The last transaction id a closed day saw; `None` when the day is not closed.
pub fn closed_id_hi(conn: &Connection, day: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id_hi FROM recon_days WHERE day = ?1 AND closed = 1",
        [day],
        |r| r.get(0),
    )
    .optional()
}

/// Open breaks of earlier days that a later file may resolve (long on our side: the
/// switch may clear it late): (break id, host transaction).
pub fn awaiting(conn: &Connection, day: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT id, host_txn_id FROM recon_breaks
         WHERE day < ?1 AND status != 'resolved' AND json LIKE '{\"id\":\"E-%'
             AND host_txn_id IS NOT NULL",
    )?;
    stmt.query_map([day], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Gives today's breaks their status against the stored ones (seen before: persisting;
/// resolved before: resolved), and adds the open breaks of earlier days (persisting), the
/// ones resolved today, and this day's earlier breaks no longer found (resolved).
pub fn merge(
    conn: &Connection,
    day: i64,
    found: Vec<Break>,
    resolved_today: &[(String, String)],
) -> rusqlite::Result<Vec<Break>> {
    let mut stored: HashMap<String, (i64, String, Option<String>, String)> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT id, day, status, resolution, json FROM recon_breaks WHERE day <= ?1",
        )?;
        for row in stmt.query_map([day], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
            ))
        })? {
            let (id, rest) = row?;
            stored.insert(id, rest);
        }
    }
    let mut out = Vec::new();
    for mut b in found {
        if let Some((_, status, resolution, _)) = stored.remove(&b.id) {
            if status == "resolved" {
                b.status = Status::Resolved;
                b.resolution = resolution;
            } else {
                b.status = Status::Persisting;
            }
        }
        out.push(b);
    }
    let resolved: HashMap<&str, &str> = resolved_today
        .iter()
        .map(|(id, how)| (id.as_str(), how.as_str()))
        .collect();
    for (id, (found_day, status, _, json)) in stored {
        if status == "resolved" {
            continue;
        }
        let Ok(mut b) = serde_json::from_str::<Break>(&json) else {
            continue;
        };
        if let Some(how) = resolved.get(id.as_str()) {
            b.status = Status::Resolved;
            b.resolution = Some((*how).to_owned());
        } else if found_day == day {
            b.status = Status::Resolved;
            b.resolution = Some("no longer found by a later run of the same day".into());
        } else {
            b.status = Status::Persisting;
        }
        out.push(b);
    }
    out.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    Ok(out)
}

/// Keeps a run: its report (closing the day when complete) and every break's status.
pub fn keep(
    conn: &Connection,
    day: i64,
    report: &Report,
    id_hi: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let closed = report.status == "complete";
    let json = serde_json::to_string(report).unwrap_or_default();
    tx.execute(
        "INSERT INTO recon_days (day, closed, id_hi, report, run_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (day) DO UPDATE SET closed = ?2, id_hi = ?3, report = ?4, run_ms = ?5",
        params![day, closed, id_hi, json, now_ms],
    )?;
    for b in &report.breaks {
        let found_day = crate::model::day_of_break(b).unwrap_or(day);
        tx.execute(
            "INSERT INTO recon_breaks (id, day, status, action, host_txn_id, resolution, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET status = ?3, action = ?4, resolution = ?6, json = ?7",
            params![
                b.id,
                found_day,
                text(&b.status),
                text(&b.action),
                b.records.host.as_ref().and_then(|h| h["id"].as_i64()),
                b.resolution,
                serde_json::to_string(b).unwrap_or_default(),
            ],
        )?;
    }
    tx.commit()
}

/// One day's last run as kept: when it ran, whether the day is closed, and its report.
#[derive(Clone, Debug)]
pub struct KeptRun {
    pub day: i64,
    pub closed: bool,
    pub run_ms: i64,
    pub report: Report,
}

/// The days on file, newest first, those before `before_day` when given, at most `limit`
/// (a day keeps its last run only). Reads only.
pub fn runs(
    conn: &Connection,
    before_day: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<KeptRun>> {
    let mut stmt = conn.prepare(
        "SELECT day, closed, run_ms, report FROM recon_days WHERE day < ?1
         ORDER BY day DESC LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![before_day.unwrap_or(i64::MAX), limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (day, closed, run_ms, text) = row?;
        // A report that does not read (written by another version) is left out.
        if let Ok(report) = serde_json::from_str(&text) {
            out.push(KeptRun {
                day,
                closed,
                run_ms,
                report,
            });
        }
    }
    Ok(out)
}

/// One day's last run, closed or not.
pub fn run_of(conn: &Connection, day: i64) -> rusqlite::Result<Option<KeptRun>> {
    Ok(runs(conn, day.checked_add(1), 1)?
        .into_iter()
        .find(|r| r.day == day))
}
