//! The facts a diagnosis ranks (`poskit_monitor::diagnose`), gathered from the ledger: for
//! `poskit diagnose` and for each alert the host raises.

use poskit_codes::Lang;
use poskit_monitor::alerts::{Alert, Kind, Measure, Rule};
use poskit_monitor::diagnose::{Cause, Facts, Seen, diagnose};
use poskit_monitor::stats::code_minutes;
use rusqlite::Connection;

use crate::store::StoreResult;
use crate::store::lookup;

/// What is diagnosed.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    Terminal(&'a str),
    Merchant(&'a str),
    /// One transaction: its terminal around its time.
    Rrn(i64),
    /// Every terminal.
    Host,
}

/// Answers of one code in one minute taken from the statistics at most.
const SEEN_PER_MINUTE_MAX: u64 = 100;

/// Causes an alert carries at most, per language.
const CAUSES_PER_ALERT_MAX: usize = 3;

/// The facts of `subject` since `since_ms`, and its name; `None` when the host knows
/// nothing of it.
pub fn facts(
    conn: &Connection,
    subject: Subject<'_>,
    since_ms: i64,
    now_ms: i64,
    utc_offset_minutes: i32,
) -> StoreResult<Option<(String, Facts)>> {
    let mut facts = Facts {
        now_ms,
        utc_offset_minutes,
        fleet_timeout_rate: Some(lookup::timeout_rate_since(conn, since_ms)?),
        ..Facts::default()
    };
    let tid = match subject {
        Subject::Terminal(t) => Some(t.to_owned()),
        Subject::Rrn(id) => lookup::by_id(conn, id)?.and_then(|t| t.tid),
        Subject::Merchant(_) | Subject::Host => None,
    };
    if let Some(tid) = tid {
        let Some((mid, status, signed_in_ms, merchant_status)) =
            lookup::terminal_facts(conn, &tid)?
        else {
            return Ok(None);
        };
        facts.seen = seen(lookup::answers_of_terminal(conn, &tid, since_ms)?);
        facts.signed_in_ms = signed_in_ms;
        facts.terminal_status = Some(status);
        facts.merchant_status = Some(merchant_status);
        return Ok(Some((format!("terminal {tid} (merchant {mid})"), facts)));
    }
    match subject {
        Subject::Merchant(mid) => {
            let Some(status) = lookup::merchant_status(conn, mid)? else {
                return Ok(None);
            };
            facts.seen = seen(lookup::answers_of_merchant(conn, mid, since_ms)?);
            facts.merchant_status = Some(status);
            Ok(Some((format!("merchant {mid}"), facts)))
        }
        Subject::Host => {
            facts.seen = seen(lookup::answers_since(conn, since_ms)?);
            Ok(Some(("the host".to_owned(), facts)))
        }
        Subject::Terminal(_) | Subject::Rrn(_) => Ok(None),
    }
}

fn seen(rows: Vec<lookup::Answered>) -> Vec<Seen> {
    rows.into_iter()
        .map(|(at_ms, code, reversal_reason)| Seen {
            at_ms,
            code,
            reversal_reason,
        })
        .collect()
}

/// An alert's diagnosis from the hour before `now_ms`: `{"zh": [cause...], "en": [cause...]}`,
/// the most likely causes first.
pub fn of_alert(
    conn: &Connection,
    stats: &Connection,
    alert: &Alert,
    rule: &Rule,
    now_ms: i64,
    utc_offset_minutes: i32,
) -> StoreResult<serde_json::Value> {
    let since_ms = now_ms - 3_600_000;
    let subject = match alert.scope.as_str() {
        "terminal" => Subject::Terminal(&alert.subject),
        "merchant" => Subject::Merchant(&alert.subject),
        _ => Subject::Host,
    };
    let Some((_, mut facts)) = facts(conn, subject, since_ms, now_ms, utc_offset_minutes)? else {
        return Ok(serde_json::json!({"zh": [], "en": []}));
    };
    // The value of a reconciliation alert is its breaks; of a silence, its minutes.
    match rule.kind {
        Kind::Recon => {
            // What reconciliation found, not the day's answers, is the evidence.
            facts.seen.clear();
            facts.charged_but_failed = alert.value.max(0.0) as u64;
        }
        Kind::Silent => {
            facts.silent_since_ms = Some(now_ms - (alert.value.max(0.0) as i64) * 60_000)
        }
        _ => {}
    }
    focus(&mut facts, alert, rule);
    if !facts.seen.iter().any(|s| rule.codes.contains(&s.code)) {
        // Answers the ledger does not keep (a 96 after a storage failure is recorded
        // nowhere): the statistics counted them.
        let from_minute = since_ms.div_euclid(60_000);
        let counted = code_minutes(
            stats,
            &alert.scope,
            &alert.subject,
            from_minute,
            &rule.codes,
        )
        .map_err(crate::store::StoreError::from)?;
        for (minute, code, n) in counted {
            for _ in 0..n.min(SEEN_PER_MINUTE_MAX) {
                facts.seen.push(Seen {
                    at_ms: minute * 60_000,
                    code: code.clone(),
                    reversal_reason: None,
                });
            }
        }
    }
    let ranked = |lang| -> Vec<Cause> {
        let mut causes = diagnose(&facts, lang);
        causes.truncate(CAUSES_PER_ALERT_MAX);
        causes
    };
    Ok(serde_json::json!({"zh": ranked(Lang::Zh), "en": ranked(Lang::En)}))
}

/// Keeps, of the answers, those the rule is about (and the approvals, the background of
/// "every request since"): an alert on 96 is diagnosed from its 96s, not from the
/// timeouts that happened beside them.
fn focus(facts: &mut Facts, alert: &Alert, rule: &Rule) {
    let codes: Vec<&str> = match rule.measure {
        Some(Measure::Timeouts) => vec!["98"],
        Some(Measure::MacErrors) => vec!["A0"],
        Some(Measure::ReversalFailures) => {
            facts
                .seen
                .retain(|s| s.reversal_reason.is_some() && s.code != "00");
            if facts.seen.is_empty() {
                facts.reversals_refused = alert.value.max(1.0) as u64;
            }
            return;
        }
        Some(Measure::UnbalancedSettlements) => {
            facts.seen.clear();
            facts.unbalanced_settlements = true;
            return;
        }
        None => rule.codes.iter().map(String::as_str).collect(),
    };
    if codes.is_empty() {
        return;
    }
    facts.seen.retain(|s| {
        codes.contains(&s.code.as_str()) || (s.code == "00" && s.reversal_reason.is_none())
    });
}
