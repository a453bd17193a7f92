//! Statistics (issue 21 §2): per terminal, merchant, BIN and code, by minute — attempts,
//! approvals, first attempts and their approvals (a sale retried after a decline counts
//! once), timeouts, reversals, MAC errors, last seen, and the mix of codes. The host's
//! connection tasks record each answer here ([`Recorder::record`], a short lock); a task
//! of the host's moves the minutes into `stats.db` every second ([`flush`]), where
//! `poskit stats` sums the windows it is asked for. Nothing of it runs in the writer.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rusqlite::{Connection, params};
use serde::Serialize;

/// A sale for the same card and amount at the same terminal this soon after a decline is
/// a retry, not a first attempt.
pub const RETRY_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Declines remembered per terminal for telling retries.
const DECLINES_PER_TERMINAL_MAX: usize = 8;
/// Terminals whose recent declines are remembered.
const TERMINALS_MAX: usize = 200_000;
/// Buckets held between two flushes at most (a flood of strangers cannot grow it).
const PENDING_MAX: usize = 100_000;
/// An answer slower than this misses the latency objective (what the burn-rate alerts
/// count).
pub const SLOW_ANSWER_MS: u64 = 1_000;
/// The version of `stats.db`'s tables this code writes.
const SCHEMA_VERSION: i64 = 1;

/// One answer, as statistics see it.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    pub at_ms: i64,
    pub tid: &'a str,
    pub mid: &'a str,
    /// The card's masked number (its first six digits are the BIN).
    pub pan_masked: Option<&'a str>,
    pub amount_fen: u64,
    pub code: &'a str,
    /// A reversal (counted as such, not as an attempt).
    pub reversal: bool,
    /// A settlement (counted as such, not as an attempt): whether its totals agreed.
    pub settled: Option<bool>,
    /// From the request's arrival to its answer.
    pub latency_ms: u64,
}

/// One scope's minute, as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    attempts: u64,
    approved: u64,
    first_attempts: u64,
    first_approved: u64,
    timeouts: u64,
    reversals: u64,
    mac_errors: u64,
    /// Reversals answered other than 00.
    reversal_failures: u64,
    /// Answers slower than [`SLOW_ANSWER_MS`].
    slow: u64,
    unbalanced_settlements: u64,
    last_seen_ms: i64,
    by_code: HashMap<String, u64>,
}

/// (scope, its id, minute since the epoch).
pub type Key = (&'static str, String, i64);

/// What the connection tasks record until the next flush.
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

/// The scopes a minute is counted in, in the order of `Inner::pending`.
const SCOPES: [&str; 4] = ["terminal", "merchant", "bin", "all"];

#[derive(Default)]
struct Inner {
    /// Per scope (as [`SCOPES`]), per id, per minute. Nested so that an answer finds its
    /// buckets by `&str` and allocates only for a new id, minute or code.
    pending: [HashMap<String, HashMap<i64, Bucket>>; 4],
    /// Buckets in `pending`.
    buckets: usize,
    /// Per terminal, its last declines: (card, amount, at).
    declines: HashMap<String, VecDeque<(String, u64, i64)>>,
}

impl Recorder {
    pub fn record(&self, e: &Event<'_>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let first = !e.reversal && e.settled.is_none() && inner.first_attempt(e);
        let minute = e.at_ms.div_euclid(60_000);
        let bin = e
            .pan_masked
            .and_then(|p| p.get(..6))
            .filter(|b| b.bytes().all(|c| c.is_ascii_digit()));
        let ids = [Some(e.tid), Some(e.mid), bin, Some("")];
        for (scope, id) in ids.into_iter().enumerate() {
            if let Some(b) = id.and_then(|id| inner.bucket(scope, id, minute)) {
                add(b, e, first);
            }
        }
    }

    /// Takes what was recorded since the last call.
    pub fn drain(&self) -> Vec<(Key, Bucket)> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner.buckets = 0;
        let mut out = Vec::new();
        for (scope, map) in SCOPES.iter().zip(inner.pending.iter_mut()) {
            for (id, minutes) in map.drain() {
                for (minute, b) in minutes {
                    out.push(((*scope, id.clone(), minute), b));
                }
            }
        }
        out
    }
}

impl Inner {
    /// The bucket of `id` in scope number `scope` for `minute`; `None` when a new one would
    /// pass [`PENDING_MAX`] (a flood of strangers cannot grow it).
    fn bucket(&mut self, scope: usize, id: &str, minute: i64) -> Option<&mut Bucket> {
        let full = self.buckets >= PENDING_MAX;
        let map = &mut self.pending[scope];
        if !map.contains_key(id) {
            if full {
                return None;
            }
            map.insert(id.to_owned(), HashMap::new());
        }
        let minutes = map.get_mut(id)?;
        if !minutes.contains_key(&minute) {
            if full {
                return None;
            }
            self.buckets += 1;
        }
        Some(minutes.entry(minute).or_default())
    }

    /// Whether `e` is a first attempt (not the retry of a decline), and remembers it when
    /// declined.
    fn first_attempt(&mut self, e: &Event<'_>) -> bool {
        let card = e.pan_masked.unwrap_or("");
        let recent = self.declines.get(e.tid).is_some_and(|list| {
            list.iter().any(|(c, a, at)| {
                c == card && *a == e.amount_fen && e.at_ms - at <= RETRY_WINDOW_MS
            })
        });
        if e.code != "00" {
            if self.declines.len() >= TERMINALS_MAX && !self.declines.contains_key(e.tid) {
                self.declines.clear(); // bounded: forget, at worst a retry counts as first
            }
            let list = self.declines.entry(e.tid.to_owned()).or_default();
            if list.len() >= DECLINES_PER_TERMINAL_MAX {
                list.pop_front();
            }
            list.push_back((card.to_owned(), e.amount_fen, e.at_ms));
        }
        !recent
    }
}

fn add(b: &mut Bucket, e: &Event<'_>, first: bool) {
    b.last_seen_ms = b.last_seen_ms.max(e.at_ms);
    b.slow += u64::from(e.latency_ms > SLOW_ANSWER_MS);
    if let Some(balanced) = e.settled {
        b.unbalanced_settlements += u64::from(!balanced);
        return;
    }
    if e.reversal {
        b.reversals += 1;
        b.reversal_failures += u64::from(e.code != "00");
        return;
    }
    let approved = e.code == "00";
    b.attempts += 1;
    b.approved += u64::from(approved);
    b.first_attempts += u64::from(first);
    b.first_approved += u64::from(first && approved);
    b.timeouts += u64::from(e.code == "98");
    b.mac_errors += u64::from(e.code == "A0");
    match b.by_code.get_mut(e.code) {
        Some(n) => *n += 1,
        None => {
            b.by_code.insert(e.code.to_owned(), 1);
        }
    }
}

/// Creates (or brings up to date) the tables of `stats.db`: the minutes, their codes, the
/// hours each terminal was seen in (for telling its usual hours), reconciliation's open
/// breaks and the alerts.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS minutes (
             scope TEXT NOT NULL, id TEXT NOT NULL, minute INTEGER NOT NULL,
             attempts INTEGER NOT NULL, approved INTEGER NOT NULL,
             first_attempts INTEGER NOT NULL, first_approved INTEGER NOT NULL,
             timeouts INTEGER NOT NULL, reversals INTEGER NOT NULL, mac_errors INTEGER NOT NULL,
             last_seen_ms INTEGER NOT NULL,
             PRIMARY KEY (scope, id, minute)
         ) STRICT, WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS codes (
             scope TEXT NOT NULL, id TEXT NOT NULL, minute INTEGER NOT NULL, code TEXT NOT NULL,
             count INTEGER NOT NULL,
             PRIMARY KEY (scope, id, minute, code)
         ) STRICT, WITHOUT ROWID;",
    )?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE minutes ADD COLUMN reversal_failures INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE minutes ADD COLUMN slow INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE minutes ADD COLUMN unbalanced_settlements INTEGER NOT NULL DEFAULT 0;
             CREATE INDEX minutes_by_minute ON minutes (scope, minute);
             CREATE INDEX codes_by_minute ON codes (scope, minute, code);
             CREATE TABLE terminal_hours (
                 id TEXT NOT NULL, day INTEGER NOT NULL, hour INTEGER NOT NULL,
                 PRIMARY KEY (hour, day, id)
             ) STRICT, WITHOUT ROWID;
             CREATE TABLE recon_found (
                 class TEXT PRIMARY KEY, found INTEGER NOT NULL, day TEXT NOT NULL,
                 run_ms INTEGER NOT NULL
             ) STRICT;
             COMMIT;",
        )?;
        crate::alerts::migrate(conn)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "stats.db is of version {version}, newer than this poskit's {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

/// Adds drained minutes to `stats.db`, in one transaction (the hours of terminals in local
/// time, `utc_offset_minutes` east of UTC).
pub fn flush(
    conn: &mut Connection,
    drained: Vec<(Key, Bucket)>,
    utc_offset_minutes: i32,
) -> rusqlite::Result<()> {
    if drained.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut minute = tx.prepare_cached(
            "INSERT INTO minutes (scope, id, minute, attempts, approved, first_attempts,
                 first_approved, timeouts, reversals, mac_errors, last_seen_ms,
                 reversal_failures, slow, unbalanced_settlements)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (scope, id, minute) DO UPDATE SET
                 attempts = attempts + ?4, approved = approved + ?5,
                 first_attempts = first_attempts + ?6, first_approved = first_approved + ?7,
                 timeouts = timeouts + ?8, reversals = reversals + ?9,
                 mac_errors = mac_errors + ?10, last_seen_ms = max(last_seen_ms, ?11),
                 reversal_failures = reversal_failures + ?12, slow = slow + ?13,
                 unbalanced_settlements = unbalanced_settlements + ?14",
        )?;
        let mut hour = tx.prepare_cached(
            "INSERT OR IGNORE INTO terminal_hours (id, day, hour) VALUES (?1, ?2, ?3)",
        )?;
        let mut code = tx.prepare_cached(
            "INSERT INTO codes VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (scope, id, minute, code) DO UPDATE SET count = count + ?5",
        )?;
        for ((scope, id, m), b) in &drained {
            minute.execute(params![
                scope,
                id,
                m,
                b.attempts as i64,
                b.approved as i64,
                b.first_attempts as i64,
                b.first_approved as i64,
                b.timeouts as i64,
                b.reversals as i64,
                b.mac_errors as i64,
                b.last_seen_ms,
                b.reversal_failures as i64,
                b.slow as i64,
                b.unbalanced_settlements as i64
            ])?;
            if *scope == "terminal" {
                let (day, h) = local_day_hour(*m, utc_offset_minutes);
                hour.execute(params![id, day, h])?;
            }
            for (c, n) in &b.by_code {
                code.execute(params![scope, id, m, c, *n as i64])?;
            }
        }
    }
    tx.commit()
}

/// A scope's figures over a window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    pub scope: String,
    pub id: String,
    pub window_minutes: i64,
    pub attempts: u64,
    pub approved: u64,
    pub approval_rate: f64,
    pub first_attempts: u64,
    pub first_attempt_approval_rate: f64,
    pub timeouts: u64,
    pub reversals: u64,
    pub mac_errors: u64,
    pub reversal_failures: u64,
    pub unbalanced_settlements: u64,
    pub last_seen_ms: Option<i64>,
    pub by_code: std::collections::BTreeMap<String, u64>,
}

/// Sums the minutes of `scope`/`id` in the `window_minutes` before `now_ms`.
pub fn window(
    conn: &Connection,
    scope: &str,
    id: &str,
    window_minutes: i64,
    now_ms: i64,
) -> rusqlite::Result<Window> {
    let since = now_ms.div_euclid(60_000) - window_minutes + 1;
    let mut w = conn.query_row(
        "SELECT coalesce(sum(attempts), 0), coalesce(sum(approved), 0),
                coalesce(sum(first_attempts), 0), coalesce(sum(first_approved), 0),
                coalesce(sum(timeouts), 0), coalesce(sum(reversals), 0),
                coalesce(sum(mac_errors), 0), max(last_seen_ms),
                coalesce(sum(reversal_failures), 0), coalesce(sum(unbalanced_settlements), 0)
         FROM minutes WHERE scope = ?1 AND id = ?2 AND minute >= ?3",
        params![scope, id, since],
        |r| {
            let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            let (first_attempts, first_approved) = (n(2)?, n(3)?);
            let (attempts, approved) = (n(0)?, n(1)?);
            Ok(Window {
                scope: scope.into(),
                id: id.into(),
                window_minutes,
                attempts,
                approved,
                approval_rate: ratio(approved, attempts),
                first_attempts,
                first_attempt_approval_rate: ratio(first_approved, first_attempts),
                timeouts: n(4)?,
                reversals: n(5)?,
                mac_errors: n(6)?,
                reversal_failures: n(8)?,
                unbalanced_settlements: n(9)?,
                last_seen_ms: r.get(7)?,
                by_code: Default::default(),
            })
        },
    )?;
    let mut stmt = conn.prepare(
        "SELECT code, sum(count) FROM codes WHERE scope = ?1 AND id = ?2 AND minute >= ?3
         GROUP BY code",
    )?;
    for row in stmt.query_map(params![scope, id, since], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)?))
    })? {
        let (code, n): (String, i64) = row?;
        w.by_code.insert(code, n.max(0) as u64);
    }
    Ok(w)
}

/// Per minute since `from_minute`, how often each of `codes` was answered to `scope`/`id`:
/// (minute, code, count), oldest first.
pub fn code_minutes(
    conn: &Connection,
    scope: &str,
    id: &str,
    from_minute: i64,
    codes: &[String],
) -> rusqlite::Result<Vec<(i64, String, u64)>> {
    let codes = serde_json::to_string(codes).unwrap_or_default();
    let mut stmt = conn.prepare_cached(
        "SELECT minute, code, count FROM codes
         WHERE scope = ?1 AND id = ?2 AND minute >= ?3
           AND code IN (SELECT value FROM json_each(?4))
         ORDER BY minute",
    )?;
    let rows = stmt.query_map(params![scope, id, from_minute, codes], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
    })?;
    rows.collect()
}

/// The local day (since the epoch) and hour of a minute since the epoch.
pub fn local_day_hour(minute: i64, utc_offset_minutes: i32) -> (i64, i64) {
    let local = minute + i64::from(utc_offset_minutes);
    (local.div_euclid(1440), local.rem_euclid(1440) / 60)
}

/// Records the breaks a complete reconciliation run found on its day, by class, every
/// class given (zeros too): what the alert on class C and the host's
/// `poskit_recon_breaks` read.
pub fn record_recon(
    conn: &mut Connection,
    day: &str,
    found_by_class: &[(&str, u64)],
    run_ms: i64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM recon_found", [])?;
    for (class, found) in found_by_class {
        tx.execute(
            "INSERT INTO recon_found (class, found, day, run_ms) VALUES (?1, ?2, ?3, ?4)",
            params![class, *found as i64, day, run_ms],
        )?;
    }
    tx.commit()
}

/// Per class its breaks, and when the run was.
pub type ReconFound = (Vec<(String, u64)>, Option<i64>);

/// The breaks the last complete reconciliation run found, (class, breaks), and when it
/// ran.
pub fn recon_found(conn: &Connection) -> rusqlite::Result<ReconFound> {
    let mut stmt = conn.prepare("SELECT class, found, run_ms FROM recon_found ORDER BY class")?;
    let mut run = None;
    let mut out = Vec::new();
    for row in stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
    })? {
        let (class, open, run_ms) = row?;
        out.push((class, open.max(0) as u64));
        run = Some(run_ms);
    }
    Ok((out, run))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale<'a>(at_ms: i64, code: &'a str) -> Event<'a> {
        Event {
            at_ms,
            tid: "10000001",
            mid: "898310048160001",
            pan_masked: Some("622202******0001"),
            amount_fen: 5_000,
            code,
            reversal: false,
            settled: None,
            latency_ms: 5,
        }
    }

    #[test]
    fn a_retried_sale_counts_once_as_a_first_attempt_and_windows_sum_the_minutes() {
        let rec = Recorder::default();
        rec.record(&sale(60_000, "51"));
        rec.record(&sale(90_000, "00")); // the retry: approved, not a first attempt
        rec.record(&Event {
            amount_fen: 100,
            ..sale(120_000, "00")
        });
        rec.record(&Event {
            reversal: true,
            ..sale(130_000, "00")
        });
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        flush(&mut conn, rec.drain(), 480).unwrap();
        let w = window(&conn, "terminal", "10000001", 60, 150_000).unwrap();
        assert_eq!(
            (w.attempts, w.approved, w.first_attempts, w.reversals),
            (3, 2, 2, 1)
        );
        assert_eq!(w.approval_rate, 0.6667);
        assert_eq!(w.first_attempt_approval_rate, 0.5);
        assert_eq!(w.by_code.get("51"), Some(&1));
        let bin = window(&conn, "bin", "622202", 60, 150_000).unwrap();
        assert_eq!(bin.attempts, 3);
        // Flushed twice: added, not replaced.
        rec.record(&sale(140_000, "00"));
        flush(&mut conn, rec.drain(), 480).unwrap();
        assert_eq!(window(&conn, "all", "", 60, 150_000).unwrap().attempts, 4);
        // Outside the window: nothing.
        assert_eq!(
            window(&conn, "terminal", "10000001", 1, 60 * 60_000)
                .unwrap()
                .attempts,
            0
        );
    }
}
