//! Alert rules (issue 21 §3): rules in TOML (the shipped `data/alerts.toml` plus a user
//! file), evaluated over the minutes of `stats.db` ([`evaluate`]); what holds becomes an
//! alert, kept in `stats.db` with its anti-flap ([`apply`]), listed and acknowledged by
//! `poskit alerts`. The caller attaches each new alert's diagnosis and sends it on (log,
//! webhook).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::stats::local_day_hour;

/// The shipped rules.
const BUILTIN: &str = include_str!("../data/alerts.toml");
/// Rules a file may hold at most.
const RULES_MAX: usize = 200;
/// Alerts one rule may raise in one evaluation at most (a fleet-wide failure raises one
/// per terminal; past this, the rule's scope-wide alerts say enough).
const FINDINGS_PER_RULE_MAX: usize = 500;
/// The longest window a rule may ask for: a week.
const WINDOW_MINUTES_MAX: i64 = 7 * 1440;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Count,
    Rate,
    Baseline,
    Burn,
    Silent,
    Recon,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    All,
    Terminal,
    Merchant,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Terminal => "terminal",
            Scope::Merchant => "merchant",
        }
    }
}

/// A column of `minutes` a rule may count instead of codes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    ReversalFailures,
    UnbalancedSettlements,
    Timeouts,
    MacErrors,
}

impl Measure {
    fn column(self) -> &'static str {
        match self {
            Measure::ReversalFailures => "reversal_failures",
            Measure::UnbalancedSettlements => "unbalanced_settlements",
            Measure::Timeouts => "timeouts",
            Measure::MacErrors => "mac_errors",
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One rule, as written in TOML (see `data/alerts.toml` for what each field means).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub codes: Vec<String>,
    pub measure: Option<Measure>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub window_minutes: i64,
    #[serde(default)]
    pub short_minutes: i64,
    #[serde(default)]
    pub baseline_minutes: i64,
    #[serde(default)]
    pub threshold: f64,
    #[serde(default)]
    pub min_attempts: u64,
    #[serde(default)]
    pub sigmas: f64,
    #[serde(default)]
    pub min_increase: f64,
    #[serde(default)]
    pub objective: f64,
    #[serde(default)]
    pub usual_days: i64,
    #[serde(default)]
    pub anti_flap_minutes: i64,
    pub severity: Severity,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub title_en: String,
    pub title_zh: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// The rules in force.
#[derive(Clone, Debug)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

impl Rules {
    /// The shipped rules.
    pub fn builtin() -> Rules {
        Rules::parse(BUILTIN).expect("the shipped alert rules are valid")
    }

    /// The shipped rules' file, as written.
    pub fn builtin_text() -> &'static str {
        BUILTIN
    }

    /// Rules from TOML text; the error names the rule and what is wrong with it.
    pub fn parse(text: &str) -> Result<Rules, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.rule.len() > RULES_MAX {
            return Err(format!("{} rules: at most {RULES_MAX}", file.rule.len()));
        }
        for r in &file.rule {
            r.check().map_err(|e| format!("rule {:?}: {e}", r.name))?;
        }
        Ok(Rules { rules: file.rule })
    }

    /// The shipped rules with a user's file over them: a rule of the same name replaces
    /// the shipped one, others are added.
    pub fn with_user(text: &str) -> Result<Rules, String> {
        let mut rules = Rules::builtin().rules;
        for r in Rules::parse(text)?.rules {
            match rules.iter_mut().find(|s| s.name == r.name) {
                Some(shipped) => *shipped = r,
                None => rules.push(r),
            }
        }
        Ok(Rules { rules })
    }
}

impl Rule {
    fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err("name: 1 to 64 letters, digits, - or _".into());
        }
        let window_ok = |m: i64| (1..=WINDOW_MINUTES_MAX).contains(&m);
        if self.kind != Kind::Recon && !window_ok(self.window_minutes) {
            return Err(format!("window_minutes: 1 to {WINDOW_MINUTES_MAX}"));
        }
        if !(0..=WINDOW_MINUTES_MAX).contains(&self.anti_flap_minutes) {
            return Err(format!("anti_flap_minutes: 0 to {WINDOW_MINUTES_MAX}"));
        }
        if self.codes.iter().any(|c| c.len() != 2) {
            return Err("codes: two characters each".into());
        }
        let counted = !self.codes.is_empty() as u8 + self.measure.is_some() as u8;
        match self.kind {
            Kind::Count | Kind::Rate if counted != 1 => {
                Err("give either codes or a measure".into())
            }
            Kind::Baseline if !(self.sigmas >= 0.0 && window_ok(self.baseline_minutes)) => {
                Err("baseline: sigmas ≥ 0 and baseline_minutes needed".into())
            }
            Kind::Burn
                if !(self.objective > 0.0
                    && self.objective < 1.0
                    && window_ok(self.short_minutes)) =>
            {
                Err("burn: objective between 0 and 1 and short_minutes needed".into())
            }
            Kind::Silent
                if self.scope != Scope::Terminal || !(1..=7).contains(&self.usual_days) =>
            {
                Err("silent: scope terminal and usual_days 1 to 7".into())
            }
            Kind::Recon if self.classes.is_empty() => Err("recon: classes needed".into()),
            _ if !self.threshold.is_finite() || self.threshold < 0.0 => {
                Err("threshold: a number ≥ 0".into())
            }
            _ => Ok(()),
        }
    }
}

/// What a rule found to hold for one subject (a terminal, a merchant, or the whole host).
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: String,
    pub subject: String,
    pub value: f64,
    /// What holds, in figures ("7 × A0 in 5 minutes").
    pub detail: String,
}

/// Every enabled rule's findings at `now_ms`.
pub fn evaluate(
    conn: &Connection,
    rules: &Rules,
    now_ms: i64,
    utc_offset_minutes: i32,
) -> rusqlite::Result<Vec<Finding>> {
    let now_minute = now_ms.div_euclid(60_000);
    let mut out = Vec::new();
    for rule in rules.rules.iter().filter(|r| r.enabled) {
        let found = match rule.kind {
            Kind::Count | Kind::Rate => counted(conn, rule, now_minute)?,
            Kind::Baseline => baseline(conn, rule, now_minute)?,
            Kind::Burn => burn(conn, rule, now_minute)?,
            Kind::Silent => silent(conn, rule, now_ms, utc_offset_minutes)?,
            Kind::Recon => recon(conn, rule)?,
        };
        out.extend(found.into_iter().take(FINDINGS_PER_RULE_MAX).map(
            |(subject, value, detail)| Finding {
                rule: rule.name.clone(),
                subject,
                value,
                detail,
            },
        ));
    }
    Ok(out)
}

type Found = Vec<(String, f64, String)>;

/// The first minute of a window of `minutes` ending with the current one.
fn since(now_minute: i64, minutes: i64) -> i64 {
    now_minute - minutes + 1
}

/// Per subject of the rule's scope: (what it counts, attempts) over `minutes`.
fn sums(
    conn: &Connection,
    rule: &Rule,
    from_minute: i64,
    to_minute: i64,
) -> rusqlite::Result<BTreeMap<String, (u64, u64)>> {
    let scope = rule.scope.as_str();
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let measure = rule.measure.map_or("0", Measure::column);
    let sql = format!(
        "SELECT id, sum({measure}), sum(attempts) FROM minutes
         WHERE scope = ?1 AND minute BETWEEN ?2 AND ?3 GROUP BY id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    for row in stmt.query_map(params![scope, from_minute, to_minute], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (id, n, attempts) = row?;
        out.insert(id, (n.max(0) as u64, attempts.max(0) as u64));
    }
    if !rule.codes.is_empty() {
        let codes = serde_json::to_string(&rule.codes).unwrap_or_default();
        let mut stmt = conn.prepare_cached(
            "SELECT id, sum(count) FROM codes
             WHERE scope = ?1 AND minute BETWEEN ?2 AND ?3
               AND code IN (SELECT value FROM json_each(?4))
             GROUP BY id",
        )?;
        for row in stmt.query_map(params![scope, from_minute, to_minute, codes], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (id, n) = row?;
            out.entry(id).or_default().0 = n.max(0) as u64;
        }
    }
    Ok(out)
}

/// What a rule counts, as words: "A0", "98/91", "reversal_failures".
fn counted_name(rule: &Rule) -> String {
    match rule.measure {
        Some(m) => m.column().to_owned(),
        None => rule.codes.join("/"),
    }
}

fn counted(conn: &Connection, rule: &Rule, now_minute: i64) -> rusqlite::Result<Found> {
    let from = since(now_minute, rule.window_minutes);
    let what = counted_name(rule);
    let w = rule.window_minutes;
    Ok(sums(conn, rule, from, now_minute)?
        .into_iter()
        .filter_map(|(id, (n, attempts))| {
            if rule.kind == Kind::Count {
                let hit = n > 0 && n as f64 >= rule.threshold;
                hit.then(|| (id, n as f64, format!("{n} × {what} in {w} minutes")))
            } else {
                let rate = n as f64 / attempts.max(1) as f64;
                let hit = attempts >= rule.min_attempts.max(1) && n > 0 && rate >= rule.threshold;
                hit.then(|| {
                    let detail = format!(
                        "{n} × {what} in {attempts} attempts ({:.1} %) in {w} minutes",
                        rate * 100.0
                    );
                    (id, rate, detail)
                })
            }
        })
        .collect())
}

/// Per minute of `[from, to]` of the scope-wide figures: (declines, attempts).
fn declines_by_minute(
    conn: &Connection,
    rule: &Rule,
    from_minute: i64,
    to_minute: i64,
) -> rusqlite::Result<Vec<(String, u64, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, sum(attempts - approved), sum(attempts) FROM minutes
         WHERE scope = ?1 AND minute BETWEEN ?2 AND ?3 GROUP BY id, minute",
    )?;
    let rows = stmt.query_map(params![rule.scope.as_str(), from_minute, to_minute], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?.max(0) as u64,
            r.get::<_, i64>(2)?.max(0) as u64,
        ))
    })?;
    rows.collect()
}

/// The window's decline rate against the per-minute rates of the baseline before it.
fn baseline(conn: &Connection, rule: &Rule, now_minute: i64) -> rusqlite::Result<Found> {
    let from = since(now_minute, rule.window_minutes);
    let base_from = from - rule.baseline_minutes;
    let recent = sums_of(declines_by_minute(conn, rule, from, now_minute)?);
    let mut base: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for (id, d, a) in declines_by_minute(conn, rule, base_from, from - 1)? {
        base.entry(id).or_default().push((d, a));
    }
    let mut out = Found::new();
    for (id, (declines, attempts)) in recent {
        let Some(minutes) = base.get(&id) else {
            continue;
        };
        let base_attempts: u64 = minutes.iter().map(|m| m.1).sum();
        if attempts < rule.min_attempts.max(1) || base_attempts < rule.min_attempts.max(1) {
            continue;
        }
        let (mean, sd) = weighted_mean_sd(minutes);
        let rate = declines as f64 / attempts as f64;
        if rate >= mean + rule.sigmas * sd && rate - mean >= rule.min_increase {
            let detail = format!(
                "declines {:.1} % of {attempts} attempts in {} minutes; the {} minutes before: {:.1} % ± {:.1}",
                rate * 100.0,
                rule.window_minutes,
                rule.baseline_minutes,
                mean * 100.0,
                sd * 100.0
            );
            out.push((id, rate, detail));
        }
    }
    Ok(out)
}

fn sums_of(rows: Vec<(String, u64, u64)>) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (id, d, a) in rows {
        let e = out.entry(id).or_default();
        e.0 += d;
        e.1 += a;
    }
    out
}

/// The mean and standard deviation of per-minute rates (declines / attempts), each minute
/// weighted by its attempts.
fn weighted_mean_sd(minutes: &[(u64, u64)]) -> (f64, f64) {
    let total: f64 = minutes.iter().map(|m| m.1 as f64).sum();
    if total == 0.0 {
        return (0.0, 0.0);
    }
    let mean = minutes.iter().map(|m| m.0 as f64).sum::<f64>() / total;
    let var = minutes
        .iter()
        .filter(|m| m.1 > 0)
        .map(|(d, a)| {
            let r = *d as f64 / *a as f64;
            *a as f64 * (r - mean) * (r - mean)
        })
        .sum::<f64>()
        / total;
    (mean, var.sqrt())
}

/// The latency objective's burn rate over the long and the short window.
fn burn(conn: &Connection, rule: &Rule, now_minute: i64) -> rusqlite::Result<Found> {
    let rate = |minutes: i64| -> rusqlite::Result<BTreeMap<String, (u64, u64)>> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, sum(slow), sum(attempts + reversals) FROM minutes
             WHERE scope = ?1 AND minute BETWEEN ?2 AND ?3 GROUP BY id",
        )?;
        let rows = stmt.query_map(
            params![rule.scope.as_str(), since(now_minute, minutes), now_minute],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, i64>(1)?.max(0) as u64,
                        r.get::<_, i64>(2)?.max(0) as u64,
                    ),
                ))
            },
        )?;
        rows.collect()
    };
    let budget = 1.0 - rule.objective;
    let long = rate(rule.window_minutes)?;
    let short = rate(rule.short_minutes)?;
    let mut out = Found::new();
    for (id, (slow, answers)) in long {
        let (s_slow, s_answers) = short.get(&id).copied().unwrap_or_default();
        if answers < rule.min_attempts.max(1) || s_answers == 0 {
            continue;
        }
        let long_burn = slow as f64 / answers as f64 / budget;
        let short_burn = s_slow as f64 / s_answers as f64 / budget;
        if long_burn >= rule.threshold && short_burn >= rule.threshold {
            let detail = format!(
                "{slow} of {answers} answers slower than 1 s in {} minutes: burn rate {long_burn:.1} ({short_burn:.1} over {} minutes)",
                rule.window_minutes, rule.short_minutes
            );
            out.push((id, long_burn, detail));
        }
    }
    Ok(out)
}

/// Terminals seen in this hour on `usual_days` of the 7 days before, and in every hour the
/// silence covers, yet silent for the window.
fn silent(
    conn: &Connection,
    rule: &Rule,
    now_ms: i64,
    utc_offset_minutes: i32,
) -> rusqlite::Result<Found> {
    let now_minute = now_ms.div_euclid(60_000);
    let quiet_from = since(now_minute, rule.window_minutes);
    let (today, hour) = local_day_hour(now_minute, utc_offset_minutes);
    let (_, first_hour) = local_day_hour(quiet_from, utc_offset_minutes);
    let hours: Vec<i64> = if first_hour <= hour {
        (first_hour..=hour).collect()
    } else {
        (first_hour..24).chain(0..=hour).collect()
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM terminal_hours WHERE hour = ?1 AND day BETWEEN ?2 AND ?3
         GROUP BY id HAVING count(*) >= ?4",
    )?;
    let mut usual: Option<Vec<String>> = None;
    for h in hours {
        let ids: Vec<String> = stmt
            .query_map(params![h, today - 7, today - 1, rule.usual_days], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?;
        usual = Some(match usual {
            None => ids,
            Some(prev) => prev.into_iter().filter(|i| ids.contains(i)).collect(),
        });
    }
    let mut last = conn.prepare_cached(
        "SELECT max(last_seen_ms) FROM minutes WHERE scope = 'terminal' AND id = ?1",
    )?;
    let mut out = Found::new();
    for id in usual.unwrap_or_default() {
        let seen: Option<i64> = last.query_row([&id], |r| r.get(0)).optional()?.flatten();
        let Some(seen_ms) = seen else { continue };
        if seen_ms < quiet_from * 60_000 {
            let minutes = (now_ms - seen_ms) / 60_000;
            let detail = format!(
                "no request for {minutes} minutes, in hours it works on {} of the last 7 days",
                rule.usual_days
            );
            out.push((id, minutes as f64, detail));
        }
    }
    Ok(out)
}

fn recon(conn: &Connection, rule: &Rule) -> rusqlite::Result<Found> {
    let (found, _) = crate::stats::recon_found(conn)?;
    let n: u64 = found
        .iter()
        .filter(|(class, _)| rule.classes.contains(class))
        .map(|(_, n)| n)
        .sum();
    if n == 0 || (n as f64) < rule.threshold {
        return Ok(Found::new());
    }
    let detail = format!(
        "{n} breaks of class {} found by the last reconciliation",
        rule.classes.join("/")
    );
    Ok(vec![(String::new(), n as f64, detail)])
}

/// Creates the alerts table of `stats.db`.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS alerts (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             rule TEXT NOT NULL, severity TEXT NOT NULL, scope TEXT NOT NULL,
             subject TEXT NOT NULL, title_en TEXT NOT NULL, title_zh TEXT NOT NULL,
             detail TEXT NOT NULL, value REAL NOT NULL,
             fired_ms INTEGER NOT NULL, last_true_ms INTEGER NOT NULL, resolved_ms INTEGER,
             acked_ms INTEGER, acked_by TEXT,
             diagnosis TEXT, diagnosed_ms INTEGER
         ) STRICT;
         CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (rule, scope, subject)
             WHERE resolved_ms IS NULL;",
    )
}

/// An alert, as kept, listed and sent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    pub severity: String,
    /// `all`, `terminal` or `merchant`.
    pub scope: String,
    /// The terminal or merchant (empty for the whole host).
    pub subject: String,
    pub title_en: String,
    pub title_zh: String,
    pub detail: String,
    pub value: f64,
    pub fired_ms: i64,
    pub last_true_ms: i64,
    pub resolved_ms: Option<i64>,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    /// The likely causes, in both languages: `{"zh": [cause...], "en": [cause...]}`.
    pub diagnosis: Option<serde_json::Value>,
    /// When the diagnosis was made.
    pub diagnosed_ms: Option<i64>,
}

/// What one evaluation changed.
#[derive(Debug, Default)]
pub struct Changes {
    pub fired: Vec<Alert>,
    pub resolved: Vec<Alert>,
    /// Alerts still firing whose figures changed.
    pub updated: Vec<Alert>,
}

const COLUMNS: &str = "id, rule, severity, scope, subject, title_en, title_zh, detail, value,
    fired_ms, last_true_ms, resolved_ms, acked_ms, acked_by, diagnosis, diagnosed_ms";

fn alert_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let diagnosis: Option<String> = r.get(14)?;
    Ok(Alert {
        id: r.get(0)?,
        rule: r.get(1)?,
        severity: r.get(2)?,
        scope: r.get(3)?,
        subject: r.get(4)?,
        title_en: r.get(5)?,
        title_zh: r.get(6)?,
        detail: r.get(7)?,
        value: r.get(8)?,
        fired_ms: r.get(9)?,
        last_true_ms: r.get(10)?,
        resolved_ms: r.get(11)?,
        acked_ms: r.get(12)?,
        acked_by: r.get(13)?,
        diagnosis: diagnosis.and_then(|d| serde_json::from_str(&d).ok()),
        diagnosed_ms: r.get(15)?,
    })
}

/// Turns findings into alerts: a finding with no open alert fires one; an open alert's
/// finding keeps it; an open alert with no finding for `anti_flap_minutes` resolves. One
/// transaction.
pub fn apply(
    conn: &mut Connection,
    rules: &Rules,
    findings: &[Finding],
    now_ms: i64,
) -> rusqlite::Result<Changes> {
    let tx = conn.transaction()?;
    let mut changes = Changes::default();
    let open = open_alerts(&tx)?;
    for f in findings {
        let Some(rule) = rules.rules.iter().find(|r| r.name == f.rule) else {
            continue;
        };
        let key = (f.rule.as_str(), f.subject.as_str());
        if let Some(a) = open
            .iter()
            .find(|a| (a.rule.as_str(), a.subject.as_str()) == key)
        {
            tx.execute(
                "UPDATE alerts SET last_true_ms = ?2, value = ?3, detail = ?4 WHERE id = ?1",
                params![a.id, now_ms, f.value, f.detail],
            )?;
            if a.detail != f.detail {
                changes.updated.push(Alert {
                    last_true_ms: now_ms,
                    value: f.value,
                    detail: f.detail.clone(),
                    ..a.clone()
                });
            }
            continue;
        }
        tx.execute(
            "INSERT INTO alerts (rule, severity, scope, subject, title_en, title_zh, detail,
                 value, fired_ms, last_true_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            params![
                rule.name,
                rule.severity.as_str(),
                rule.scope.as_str(),
                f.subject,
                rule.title_en,
                rule.title_zh,
                f.detail,
                f.value,
                now_ms
            ],
        )?;
        changes
            .fired
            .push(by_id(&tx, tx.last_insert_rowid())?.expect("just inserted"));
    }
    for a in open {
        let still = findings
            .iter()
            .any(|f| f.rule == a.rule && f.subject == a.subject);
        let flap_ms = rules
            .rules
            .iter()
            .find(|r| r.name == a.rule)
            .map_or(0, |r| r.anti_flap_minutes * 60_000);
        if !still && now_ms - a.last_true_ms >= flap_ms {
            tx.execute(
                "UPDATE alerts SET resolved_ms = ?2 WHERE id = ?1",
                params![a.id, now_ms],
            )?;
            changes.resolved.push(Alert {
                resolved_ms: Some(now_ms),
                ..a
            });
        }
    }
    tx.commit()?;
    Ok(changes)
}

fn open_alerts(conn: &Connection) -> rusqlite::Result<Vec<Alert>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE resolved_ms IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([], alert_of)?;
    rows.collect()
}

/// One alert.
pub fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Alert>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row([id], alert_of)
        .optional()
}

/// Alerts firing now, and with `resolved_since_ms` those resolved since then too; newest
/// first, `limit` at most.
pub fn list(
    conn: &Connection,
    resolved_since_ms: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<Alert>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE resolved_ms IS NULL OR resolved_ms >= ?1
         ORDER BY id DESC LIMIT ?2"
    ))?;
    let since = resolved_since_ms.unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![since, limit as i64], alert_of)?;
    rows.collect()
}

/// Acknowledges an alert (who, when); `false` when there is no such alert. Acknowledging
/// twice keeps the first.
pub fn ack(conn: &Connection, id: i64, by: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE alerts SET acked_ms = coalesce(acked_ms, ?2), acked_by = coalesce(acked_by, ?3)
         WHERE id = ?1",
        params![id, now_ms, by],
    )?;
    Ok(n == 1)
}

/// Attaches an alert's diagnosis, made at `now_ms`.
pub fn set_diagnosis(
    conn: &Connection,
    id: i64,
    diagnosis: &serde_json::Value,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE alerts SET diagnosis = ?2, diagnosed_ms = ?3 WHERE id = ?1",
        params![id, diagnosis.to_string(), now_ms],
    )?;
    Ok(())
}

/// Per rule and severity, the alerts firing now (for `poskit_alerts_firing`).
pub fn firing_by_rule(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rule, severity, count(*) FROM alerts WHERE resolved_ms IS NULL
         GROUP BY rule, severity",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Event, Recorder, flush, migrate};

    const MIN: i64 = 60_000;
    /// 2026-12-01 00:00 UTC (08:00 in Beijing).
    const T0: i64 = 1_796_083_200_000;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn
    }

    fn answer(rec: &Recorder, at_ms: i64, tid: &str, code: &str, latency_ms: u64) {
        rec.record(&Event {
            at_ms,
            tid,
            mid: "898310048160001",
            pan_masked: Some("622202******0001"),
            amount_fen: (at_ms % 9_973) as u64 + 1,
            code,
            reversal: false,
            settled: None,
            latency_ms,
        });
    }

    fn cycle(conn: &mut Connection, rec: &Recorder, rules: &Rules, now_ms: i64) -> Changes {
        flush(conn, rec.drain(), 480).unwrap();
        let found = evaluate(conn, rules, now_ms, 480).unwrap();
        apply(conn, rules, &found, now_ms).unwrap()
    }

    fn fired(c: &Changes) -> Vec<(String, String)> {
        c.fired
            .iter()
            .map(|a| (a.rule.clone(), a.subject.clone()))
            .collect()
    }

    #[test]
    fn the_shipped_rules_parse_and_a_user_file_replaces_adds_and_is_checked() {
        let rules = Rules::builtin();
        assert!(rules.rules.len() >= 11);
        let user = Rules::with_user(
            "[[rule]]\nname = \"host-storage-error\"\nkind = \"count\"\ncodes = [\"96\"]\nwindow_minutes = 1\nthreshold = 3\nseverity = \"warning\"\nenabled = false\ntitle_en = \"x\"\ntitle_zh = \"x\"\n",
        )
        .unwrap();
        assert_eq!(user.rules.len(), rules.rules.len());
        let r = user
            .rules
            .iter()
            .find(|r| r.name == "host-storage-error")
            .unwrap();
        assert!(!r.enabled);
        let bad = Rules::parse(
            "[[rule]]\nname = \"x\"\nkind = \"count\"\nwindow_minutes = 5\nseverity = \"info\"\ntitle_en = \"x\"\ntitle_zh = \"x\"\n",
        )
        .unwrap_err();
        assert!(
            bad.contains("rule \"x\": give either codes or a measure"),
            "{bad}"
        );
        assert!(Rules::parse("[[rule]]\nname = 1\n").is_err());
    }

    #[test]
    fn a0_on_one_terminal_fires_once_stays_through_anti_flap_then_resolves() {
        let mut conn = db();
        let rec = Recorder::default();
        let rules = Rules::builtin();
        for i in 0..4 {
            answer(&rec, T0 + i * 1_000, "10000001", "A0", 5);
        }
        answer(&rec, T0, "10000002", "00", 5);
        assert!(fired(&cycle(&mut conn, &rec, &rules, T0 + 10_000)).is_empty());
        answer(&rec, T0 + 20_000, "10000001", "A0", 5);
        let c = cycle(&mut conn, &rec, &rules, T0 + 30_000);
        assert_eq!(
            fired(&c),
            [("mac-errors-on-terminal".to_owned(), "10000001".to_owned())]
        );
        assert_eq!(c.fired[0].detail, "5 × A0 in 5 minutes");
        // Still holding: the same alert, not a new one.
        answer(&rec, T0 + 40_000, "10000001", "A0", 5);
        assert!(fired(&cycle(&mut conn, &rec, &rules, T0 + 45_000)).is_empty());
        // The condition clears after 5 minutes; the alert stays 10 more (anti-flap).
        let c = cycle(&mut conn, &rec, &rules, T0 + 7 * MIN);
        assert!(c.resolved.is_empty());
        assert_eq!(list(&conn, None, 10).unwrap().len(), 1);
        let c = cycle(&mut conn, &rec, &rules, T0 + 16 * MIN);
        assert_eq!(c.resolved.len(), 1);
        assert!(list(&conn, None, 10).unwrap().is_empty());
        assert_eq!(list(&conn, Some(T0), 10).unwrap().len(), 1);
        let id = c.resolved[0].id;
        assert!(ack(&conn, id, "ops", T0 + 17 * MIN).unwrap());
        assert!(ack(&conn, id, "later", T0 + 18 * MIN).unwrap());
        let a = by_id(&conn, id).unwrap().unwrap();
        assert_eq!(
            (a.acked_by.as_deref(), a.acked_ms),
            (Some("ops"), Some(T0 + 17 * MIN))
        );
        assert!(!ack(&conn, 999, "ops", T0).unwrap());
    }

    #[test]
    fn a_decline_spike_fires_against_its_own_baseline_and_steady_declines_do_not() {
        let mut conn = db();
        let rec = Recorder::default();
        let rules = Rules::builtin();
        // An hour at 10 % declines, 20 attempts a minute.
        for m in 0..60 {
            for i in 0..20 {
                let code = if i < 2 { "51" } else { "00" };
                answer(&rec, T0 + m * MIN + i * 100, "10000001", code, 5);
            }
        }
        let steady = cycle(&mut conn, &rec, &rules, T0 + 59 * MIN + 59_000);
        assert!(fired(&steady).is_empty(), "{:?}", fired(&steady));
        // Then 15 minutes at 40 %.
        for m in 60..75 {
            for i in 0..20 {
                let code = if i < 8 { "05" } else { "00" };
                answer(&rec, T0 + m * MIN + i * 100, "10000001", code, 5);
            }
        }
        let c = cycle(&mut conn, &rec, &rules, T0 + 74 * MIN + 59_000);
        assert_eq!(fired(&c), [("decline-spike".to_owned(), String::new())]);
        assert!(
            c.fired[0]
                .detail
                .starts_with("declines 40.0 % of 300 attempts")
        );
    }

    #[test]
    fn slow_answers_burn_the_latency_objective_on_both_windows() {
        let mut conn = db();
        let rec = Recorder::default();
        let rules = Rules::builtin();
        for m in 0..60 {
            for i in 0..10 {
                let latency = if m >= 40 && i < 5 { 2_500 } else { 20 };
                answer(&rec, T0 + m * MIN + i * 100, "10000001", "00", latency);
            }
        }
        let c = cycle(&mut conn, &rec, &rules, T0 + 59 * MIN + 59_000);
        // 100 of 600 slow over the hour: 16.7 % / 1 % = burn 16.7, ≥ 14.4 and ≥ 6; and
        // 50 % over the last 5 and 30 minutes: both the fast and the slow burn.
        assert_eq!(
            fired(&c),
            [
                ("latency-fast-burn".to_owned(), String::new()),
                ("latency-slow-burn".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn a_terminal_silent_in_its_usual_hours_fires_and_one_outside_them_does_not() {
        let mut conn = db();
        let rec = Recorder::default();
        let rules = Rules::builtin();
        // Both terminals worked 10:00–12:00 (Beijing) the four days before; 10000002 also
        // today at 10:30.
        let day = 1440 * MIN;
        let ten = T0 + 2 * 60 * MIN; // 10:00 Beijing
        for d in 1..=4 {
            for m in (0..120).step_by(10) {
                answer(&rec, ten - d * day + m * MIN, "10000001", "00", 5);
                answer(&rec, ten - d * day + m * MIN, "10000002", "00", 5);
            }
        }
        answer(&rec, ten - day + 200 * MIN, "10000001", "00", 5); // 13:20 yesterday
        answer(&rec, ten + 30 * MIN, "10000002", "00", 5);
        let c = cycle(&mut conn, &rec, &rules, ten + 70 * MIN);
        assert_eq!(
            fired(&c),
            [("terminal-silent".to_owned(), "10000001".to_owned())]
        );
        // At 09:30 neither is in its usual hours.
        let mut conn2 = db();
        for d in 1..=4 {
            answer(&rec, ten - d * day + 5 * MIN, "10000001", "00", 5);
        }
        assert!(fired(&cycle(&mut conn2, &rec, &rules, ten - 30 * MIN)).is_empty());
    }

    #[test]
    fn open_class_c_breaks_fire_and_other_classes_do_not() {
        let mut conn = db();
        let rules = Rules::builtin();
        crate::stats::record_recon(&mut conn, "20261201", &[("B", 4), ("C", 0)], T0).unwrap();
        assert!(evaluate(&conn, &rules, T0, 480).unwrap().is_empty());
        crate::stats::record_recon(&mut conn, "20261202", &[("B", 4), ("C", 2)], T0).unwrap();
        let found = evaluate(&conn, &rules, T0, 480).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "charged-but-failed");
        assert_eq!(found[0].value, 2.0);
    }
}
