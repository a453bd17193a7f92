//! The host's alerts in the simulation: every answer the host commits is recorded in the
//! statistics at its simulated time, and the rules are evaluated over them and the ledger
//! every [`EVALUATE_EVERY_MS`] of simulated time — the code a host runs
//! (`poskit_host::alerting`), on a clock of the simulation's.

use std::collections::BTreeMap;

use poskit_host::alerting;
use poskit_host::engine::Answer;
use poskit_monitor::alerts::{Alert, Rules};
use poskit_monitor::stats::{self, Recorder};
use rusqlite::Connection;

/// The host's default interval, in simulated ms.
const EVALUATE_EVERY_MS: i64 = alerting::EVALUATE_EVERY_MS_DEFAULT as i64;
/// The simulation's host runs in Beijing time.
const UTC_OFFSET_MINUTES: i32 = 480;

pub(crate) struct Watch {
    recorder: Recorder,
    stats: Connection,
    rules: Rules,
    next_evaluation_ms: i64,
    /// Every alert that fired, in order.
    pub fired: Vec<Alert>,
}

impl Watch {
    pub fn new() -> Result<Watch, String> {
        let stats = Connection::open_in_memory().map_err(|e| e.to_string())?;
        stats::migrate(&stats).map_err(|e| format!("stats: {e}"))?;
        Ok(Watch {
            recorder: Recorder::default(),
            stats,
            rules: Rules::builtin(),
            next_evaluation_ms: i64::MIN,
            fired: Vec::new(),
        })
    }

    /// A group's answers, at `at_ms` (Unix ms), each `latency_ms` after its request.
    pub fn record(&self, answers: &[Answer], mid: &str, at_ms: i64, latency_ms: u64) {
        for answer in answers {
            if let Some(event) =
                alerting::stats_event(answer, answer.kind, Some(mid), at_ms, latency_ms)
            {
                self.recorder.record(&event);
            }
        }
    }

    /// Evaluates the rules when their interval has passed (or always, with `force`).
    pub fn tick(&mut self, ledger: &Connection, at_ms: i64, force: bool) {
        if !force && at_ms < self.next_evaluation_ms {
            return;
        }
        self.next_evaluation_ms = at_ms + EVALUATE_EVERY_MS;
        stats::flush(&mut self.stats, self.recorder.drain(), UTC_OFFSET_MINUTES)
            .unwrap_or_else(|e| panic!("stats: {e}"));
        let changes = alerting::cycle(
            &mut self.stats,
            ledger,
            &self.rules,
            at_ms,
            UTC_OFFSET_MINUTES,
        )
        .unwrap_or_else(|e| panic!("alerts: {e}"));
        self.fired.extend(changes.fired);
    }

    /// What reconciliation found, by class.
    pub fn reconciled(&mut self, found: &[(String, u64)], at_ms: i64) {
        let found: Vec<(&str, u64)> = found.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        stats::record_recon(&mut self.stats, "simulated", &found, at_ms)
            .unwrap_or_else(|e| panic!("stats: {e}"));
    }

    /// The alerts that fired, by rule.
    pub fn by_rule(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for a in &self.fired {
            *out.entry(a.rule.clone()).or_default() += 1;
        }
        out
    }

    /// The first alert of each rule: rule, subject, detail, its most likely cause.
    pub fn examples(&self) -> Vec<serde_json::Value> {
        let mut seen = std::collections::BTreeSet::new();
        self.fired
            .iter()
            .filter(|a| seen.insert(a.rule.clone()))
            .map(|a| {
                let cause = a
                    .diagnosis
                    .as_ref()
                    .and_then(|d| d["en"][0]["cause"].as_str())
                    .unwrap_or("")
                    .to_owned();
                serde_json::json!({"rule": a.rule, "subject": a.subject, "detail": a.detail, "cause": cause})
            })
            .collect()
    }
}
