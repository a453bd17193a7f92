//! The host's alerts (issue 21 §3): every few seconds the rules
//! (`poskit_monitor::alerts`) are evaluated over `stats.db`; each new alert gets its
//! diagnosis from the ledger ([`crate::diagnosis`]), goes to the log and to the webhook,
//! and `poskit_alerts_firing` follows what fires. Nothing of it runs in the writer.

use poskit_domain::TransactionKind;
use poskit_monitor::alerts::{self, Alert, Changes, Rules};
use poskit_monitor::stats::Event;
use poskit_monitor::webhook::Webhook;
use rusqlite::Connection;

use crate::diagnosis;
use crate::engine::Answer;

/// An answer as statistics count it (`poskit_monitor::stats`): requests of registered
/// terminals that carry a MAC, their reversals and settlements; `None` for the rest
/// (strangers, sign-ins, echoes).
pub fn stats_event<'a>(
    answer: &'a Answer,
    kind: Option<TransactionKind>,
    mid: Option<&'a str>,
    at_ms: i64,
    latency_ms: u64,
) -> Option<Event<'a>> {
    let counted =
        kind.is_some_and(|k| k.carries_mac() || answer.reversal || answer.settled.is_some());
    // A retransmission's answer is the first one again: not a new attempt.
    if answer.stranger.is_some() || answer.repeated || !counted {
        return None;
    }
    Some(Event {
        at_ms,
        tid: answer.tid.as_deref()?,
        mid: mid?,
        pan_masked: answer.pan_masked.as_deref(),
        amount_fen: answer.amount_fen.unwrap_or(0),
        code: answer.code.as_str(),
        reversal: answer.reversal,
        settled: answer.settled,
        latency_ms,
    })
}

/// An alert still firing is diagnosed again when its figures moved, this long after its
/// last diagnosis at the soonest.
const REDIAGNOSE_AFTER_MS: i64 = 60_000;
/// Alerts diagnosed again in one evaluation at most (each reads the ledger).
const REDIAGNOSED_PER_EVALUATION_MAX: usize = 20;

/// How often the rules are evaluated unless configured otherwise.
pub const EVALUATE_EVERY_MS_DEFAULT: u64 = 15_000;

/// The alert set-up of a host.
#[derive(Clone, Debug)]
pub struct AlertConfig {
    pub rules: Rules,
    /// Where each alert is POSTed as JSON (`--alert-webhook`).
    pub webhook: Option<String>,
    pub evaluate_every_ms: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            rules: Rules::builtin(),
            webhook: None,
            evaluate_every_ms: EVALUATE_EVERY_MS_DEFAULT,
        }
    }
}

/// One evaluation at `now_ms`: findings become alerts (with anti-flap) and each new alert
/// carries its diagnosis. What the host and the simulation both run.
pub fn cycle(
    stats: &mut Connection,
    ledger: &Connection,
    rules: &Rules,
    now_ms: i64,
    utc_offset_minutes: i32,
) -> Result<Changes, String> {
    let findings = alerts::evaluate(stats, rules, now_ms, utc_offset_minutes)
        .map_err(|e| format!("alert rules: {e}"))?;
    let mut changes =
        alerts::apply(stats, rules, &findings, now_ms).map_err(|e| format!("alerts: {e}"))?;
    // New alerts are diagnosed now; alerts whose figures moved, again once a minute at
    // most (a bounded number per evaluation), so that the causes follow the figures.
    let stale = |a: &Alert| {
        a.diagnosed_ms
            .is_none_or(|at| now_ms - at >= REDIAGNOSE_AFTER_MS)
    };
    let again = changes
        .updated
        .iter_mut()
        .filter(|a| stale(a))
        .take(REDIAGNOSED_PER_EVALUATION_MAX);
    for alert in changes.fired.iter_mut().chain(again) {
        let Some(rule) = rules.rules.iter().find(|r| r.name == alert.rule) else {
            continue; // `apply` keeps alerts only for rules in force
        };
        let found = diagnosis::of_alert(ledger, stats, alert, rule, now_ms, utc_offset_minutes)
            .map_err(|e| format!("diagnosis of alert {}: {e}", alert.id))?;
        alerts::set_diagnosis(stats, alert.id, &found, now_ms)
            .map_err(|e| format!("alert {}: {e}", alert.id))?;
        alert.diagnosis = Some(found);
        alert.diagnosed_ms = Some(now_ms);
    }
    Ok(changes)
}

/// What the host does with one evaluation's changes: the log, the webhook, the metrics
/// (`poskit_recon_breaks` is read from `recon.db` at each scrape, `admin.rs`).
pub fn publish(
    changes: &Changes,
    stats: &Connection,
    webhook: Option<&Webhook>,
    metrics: &poskit_monitor::Metrics,
) {
    for a in &changes.fired {
        tracing::warn!(
            alert = a.id,
            rule = %a.rule,
            severity = %a.severity,
            subject = %a.subject,
            detail = %a.detail,
            cause = %top_cause(a),
            "alert firing: {}",
            a.title_en
        );
        if let Some(hook) = webhook {
            hook.send(&serde_json::json!({"status": "firing", "alert": a}));
        }
    }
    for a in &changes.resolved {
        tracing::info!(alert = a.id, rule = %a.rule, subject = %a.subject, "alert resolved");
        if let Some(hook) = webhook {
            hook.send(&serde_json::json!({"status": "resolved", "alert": a}));
        }
    }
    match alerts::firing_by_rule(stats) {
        Ok(by_rule) => metrics.alerts_firing(&by_rule),
        Err(e) => tracing::warn!(error = %e, "alerts firing not counted"),
    }
}

/// The most likely cause's label (English), for the log line.
fn top_cause(a: &Alert) -> String {
    a.diagnosis
        .as_ref()
        .and_then(|d| d["en"][0]["label"].as_str())
        .unwrap_or("unknown")
        .to_owned()
}
