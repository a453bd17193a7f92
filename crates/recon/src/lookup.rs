//! "Was the customer charged?" (issue 20 §1): a transaction found from what a merchant or
//! cardholder holds, its whole chain — original, reversal, void, refund, completion,
//! settlement, the switch's clearing record, reconciliation's break, the credit adjustment —
//! and a verdict with the catalog's words for the merchant and the customer.
//!
//! The switch's record counts once its clearing day has been reconciled: before that the
//! acquirer does not know what the network did with a request its issuer never answered,
//! and says so (`unknown_until_clearing`).

use poskit_codes::advice;
use poskit_host::store::lookup::{self, TxnView};
use poskit_host::switch::{self, SwitchMessage};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Value, json};

use crate::run::ReconError;

/// Original links followed at most from a found row to its root (refund → sale, completion
/// void → completion → pre-authorization).
const ROOT_DEPTH_MAX: usize = 4;

/// What the user has in hand. At least one way in must be given (the CLI checks it).
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub rrn: Option<String>,
    /// Terminal and trace (field 11) together.
    pub tid_trace: Option<(String, u32)>,
    pub auth_code: Option<String>,
    /// Last four digits of the card, the amount and the business day (days since 1970),
    /// optionally within local minutes of the day.
    pub card: Option<CardQuery>,
    pub mid: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CardQuery {
    pub last4: String,
    pub amount_fen: u64,
    pub day: i64,
    pub from_minute: Option<u32>,
    pub to_minute: Option<u32>,
}

/// One transaction found, with its story.
#[derive(Clone, Debug, Serialize)]
pub struct Match {
    /// Higher is closer to what was asked.
    pub score: u32,
    /// What of the query it matched.
    pub matched_on: Vec<&'static str>,
    pub transaction: Value,
    pub chain: Vec<Value>,
    pub verdict: Verdict,
}

/// The answer to "was the customer charged?".
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// `charged`, `not_charged`, `refunded`, `refund_pending`, `unknown_until_clearing`.
    pub verdict: &'static str,
    /// Why, from this transaction's chain.
    pub because: String,
    pub zh: String,
    pub en: String,
    pub next_step: Texts,
    pub say_to_customer: Texts,
}

#[derive(Clone, Debug, Serialize)]
pub struct Texts {
    pub zh: String,
    pub en: String,
}

/// Every transaction matching `q`, best first.
pub fn lookup(
    host: &Connection,
    state: Option<&Connection>,
    q: &Query,
) -> Result<Vec<Match>, ReconError> {
    let mut found: Vec<(TxnView, u32, Vec<&'static str>)> = Vec::new();
    for (row, how) in candidates(host, q)? {
        let Some(root) = root_of(host, row)? else {
            continue;
        };
        if q.mid
            .as_deref()
            .is_some_and(|m| root.mid.as_deref() != Some(m))
        {
            continue;
        }
        match found.iter_mut().find(|(r, _, _)| r.id == root.id) {
            Some((_, score, on)) => {
                *score += 1;
                on.push(how);
            }
            None => found.push((root, 1 + u32::from(q.mid.is_some()), vec![how])),
        }
    }
    found.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.created_ms.cmp(&a.0.created_ms)));
    let mut out = Vec::with_capacity(found.len());
    for (root, score, matched_on) in found {
        out.push(story(host, state, root, score, matched_on)?);
    }
    Ok(out)
}

/// Rows matching each way in, with its name.
fn candidates(host: &Connection, q: &Query) -> Result<Vec<(TxnView, &'static str)>, ReconError> {
    let mut rows = Vec::new();
    if let Some(rrn) = &q.rrn
        && let Ok(id) = rrn.trim().parse::<i64>()
        && let Some(t) = lookup::by_id(host, id)?
    {
        rows.push((t, "rrn"));
    }
    if let Some((tid, stan)) = &q.tid_trace {
        rows.extend(
            lookup::by_tid_trace(host, tid, *stan)?
                .into_iter()
                .map(|t| (t, "tid+trace")),
        );
    }
    if let Some(auth) = &q.auth_code {
        rows.extend(
            lookup::by_auth_code(host, auth.trim())?
                .into_iter()
                .map(|t| (t, "auth_code")),
        );
    }
    if let Some(c) = &q.card {
        for t in lookup::by_day_amount(host, c.day, c.amount_fen)? {
            let last4 = t
                .pan_masked
                .as_deref()
                .is_some_and(|p| p.ends_with(&c.last4));
            let minute = minute_of(&t.hhmmss);
            let in_window = c.from_minute.is_none_or(|f| minute >= f)
                && c.to_minute.is_none_or(|to| minute <= to);
            if last4 && in_window {
                rows.push((t, "card+amount+date"));
            }
        }
    }
    Ok(rows)
}

fn minute_of(hhmmss: &str) -> u32 {
    let h: u32 = hhmmss.get(..2).and_then(|t| t.parse().ok()).unwrap_or(0);
    let m: u32 = hhmmss.get(2..4).and_then(|t| t.parse().ok()).unwrap_or(0);
    h * 60 + m
}

/// The transaction a row is part of: a reversal's, void's, refund's or adjustment's
/// original, up to the first of its chain. `None` for rows that are no transaction of a
/// card (management messages).
fn root_of(host: &Connection, mut row: TxnView) -> Result<Option<TxnView>, ReconError> {
    for _ in 0..ROOT_DEPTH_MAX {
        let Some(original) = row.original_id.filter(|_| row.code != "94") else {
            break;
        };
        match lookup::by_id(host, original)? {
            Some(o) => row = o,
            None => break,
        }
    }
    let card_kind = matches!(
        row.kind.as_deref(),
        Some(
            "sale" | "pre-auth" | "completion" | "void" | "refund" | "completion-void" | "balance"
        )
    );
    Ok(card_kind.then_some(row))
}

/// A found transaction's chain and verdict.
fn story(
    host: &Connection,
    state: Option<&Connection>,
    root: TxnView,
    score: u32,
    matched_on: Vec<&'static str>,
) -> Result<Match, ReconError> {
    let mut chain = vec![step("original", &root)];
    let mut related = Vec::new();
    let mut queue = vec![root.id];
    while let Some(id) = queue.pop() {
        for r in lookup::naming(host, id)? {
            if related.len() < lookup::ROWS_MAX {
                queue.push(r.id);
                related.push(r);
            }
        }
    }
    related.sort_by_key(|r| r.id);
    chain.extend(related.iter().map(|r| step(step_name(r), r)));
    if let (Some(tid), Some(batch), Some(stan)) = (&root.tid, root.batch, root.stan)
        && let Some((pan, amount_fen, at_ms)) = lookup::upload_of(host, tid, batch, stan)?
    {
        // The terminal's own record of it, as its batch upload sent it.
        chain.push(
            json!({"step": "batch_upload", "batch": batch, "trace": stan,
            "pan": pan, "amount_fen": amount_fen, "received_ms": at_ms}),
        );
    }
    if let (Some(tid), Some(batch)) = (&root.tid, root.batch)
        && let Some((balanced, settled_ms, closed_ms)) = lookup::settlement_of(host, tid, batch)?
    {
        chain.push(
            json!({"step": "settlement", "batch": batch, "balanced": balanced,
            "settled_ms": settled_ms, "closed": closed_ms.is_some()}),
        );
    }
    let cleared = known_clearing(host, state, &root)?;
    for m in &cleared {
        chain.push(json!({"step": "clearing", "clearing_day": poskit_domain::calendar::yyyymmdd(m.clearing_day),
            "mti": m.mti, "amount_fen": m.amount_fen, "code": m.code, "reversed": m.reversed,
            "voided": m.voided, "pan": m.pan_masked}));
    }
    let breaks = breaks_of(state, root.id)?;
    chain.extend(breaks.iter().cloned());
    let verdict = verdict(&root, &related, &cleared, &breaks);
    Ok(Match {
        score,
        matched_on,
        transaction: txn_json(&root),
        chain,
        verdict,
    })
}

fn step_name(r: &TxnView) -> &'static str {
    match r.mti.as_str() {
        "E32" => return "credit_adjustment",
        "E23" => return "chargeback",
        "E24" => return "representment",
        "E25" => return "second_chargeback",
        _ => {}
    }
    if r.reversal {
        return "reversal";
    }
    if r.code == "94" {
        return "trace_reused";
    }
    match r.kind.as_deref() {
        Some("void" | "completion-void") => "void",
        Some("refund") => "refund",
        Some("completion") => "completion",
        Some("pre-auth-cancel") => "cancel",
        _ => "related",
    }
}

fn step(name: &str, t: &TxnView) -> Value {
    let mut v = txn_json(t);
    v["step"] = json!(name);
    v
}

pub fn txn_json(t: &TxnView) -> Value {
    json!({
        "id": t.id,
        "rrn": t.rrn,
        "kind": t.kind,
        "tid": t.tid,
        "mid": t.mid,
        "batch": t.batch,
        "trace": t.stan,
        "amount_fen": t.amount_fen,
        "pan": t.pan_masked,
        "auth_code": t.auth_code,
        "date": format!("{}", poskit_domain::calendar::yyyymmdd(t.day)),
        "time": format!("{}:{}:{}", &t.hhmmss[..2.min(t.hhmmss.len())], t.hhmmss.get(2..4).unwrap_or(""), t.hhmmss.get(4..6).unwrap_or("")),
        "code": t.code,
        "state": t.state,
        "reason": t.reason,
        "through_switch": t.fwd,
    })
}

/// The switch's records of the transaction on clearing days reconciliation has seen.
fn known_clearing(
    host: &Connection,
    state: Option<&Connection>,
    root: &TxnView,
) -> Result<Vec<SwitchMessage>, ReconError> {
    let (Some(state), true) = (state, root.fwd) else {
        return Ok(Vec::new());
    };
    let rrn = poskit_host::engine::rrn_of(root.id);
    let mut known = Vec::new();
    for m in switch::messages_with_rrn(host, &rrn)? {
        let seen: Option<i64> = state
            .query_row(
                "SELECT day FROM recon_days WHERE day = ?1",
                [m.clearing_day],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() && !m.mti.starts_with("04") {
            known.push(m);
        }
    }
    Ok(known)
}

/// Reconciliation's breaks about the transaction.
fn breaks_of(state: Option<&Connection>, id: i64) -> Result<Vec<Value>, ReconError> {
    let Some(state) = state else {
        return Ok(Vec::new());
    };
    let mut stmt =
        state.prepare("SELECT json FROM recon_breaks WHERE host_txn_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        if let Ok(mut b) = serde_json::from_str::<Value>(&json?) {
            if let Some(o) = b.as_object_mut() {
                o.remove("records");
            }
            b["step"] = json!("reconciliation_break");
            out.push(b);
        }
    }
    Ok(out)
}

/// What the chain says of the cardholder's money.
fn verdict(
    root: &TxnView,
    related: &[TxnView],
    cleared: &[SwitchMessage],
    breaks: &[Value],
) -> Verdict {
    let (name, because) = decide(root, related, cleared, breaks);
    let words = advice::verdict(name);
    let text = |f: fn(&advice::Verdict) -> &String| words.map(f).cloned().unwrap_or_default();
    Verdict {
        verdict: name,
        because,
        zh: text(|v| &v.meaning_zh),
        en: text(|v| &v.meaning_en),
        next_step: Texts {
            zh: text(|v| &v.next_zh),
            en: text(|v| &v.next_en),
        },
        say_to_customer: Texts {
            zh: text(|v| &v.customer_zh),
            en: text(|v| &v.customer_en),
        },
    }
}

fn approved(t: &TxnView) -> bool {
    t.code == "00"
}

/// The verdict's name and the reason in this chain.
fn decide(
    root: &TxnView,
    related: &[TxnView],
    cleared: &[SwitchMessage],
    breaks: &[Value],
) -> (&'static str, String) {
    // Money given back through the network: credit adjustments and chargebacks, less what
    // representments took back.
    let through = |codes: &[&str]| -> u64 {
        related
            .iter()
            .filter(|r| codes.contains(&r.mti.as_str()) && approved(r))
            .filter_map(|r| r.amount_fen)
            .sum()
    };
    let adjusted = (through(&["E32", "E23", "E25"])).saturating_sub(through(&["E24"]));
    let refunded: u64 = related
        .iter()
        .filter(|r| {
            r.kind.as_deref() == Some("refund")
                && approved(r)
                && !r.reversal
                && r.state != "reversed"
        })
        .filter_map(|r| r.amount_fen)
        .sum();
    let (host_charged, host_why) = host_charge(root, related);
    let switch_charged = cleared
        .iter()
        .any(|m| m.code == "00" && !m.reversed && !m.voided);
    let pending_adjustment = breaks
        .iter()
        .any(|b| b["action"] == "credit_adjustment" && b["status"] != "resolved");
    if adjusted > 0 {
        return (
            "refunded",
            format!(
                "a credit adjustment (E32) of {} gave the card back what the switch charged",
                yuan(adjusted)
            ),
        );
    }
    if switch_charged && host_charged == 0 {
        let why = if pending_adjustment {
            "the switch cleared it while the host did not approve it; reconciliation's credit adjustment (E32) is due".to_owned()
        } else {
            format!(
                "the switch cleared it while the host did not ({host_why}); the next reconciliation sends a credit adjustment (E32)"
            )
        };
        return ("refund_pending", why);
    }
    if host_charged > 0 && refunded >= host_charged {
        return (
            "refunded",
            format!("refunded {} of {}", yuan(refunded), yuan(host_charged)),
        );
    }
    if host_charged > 0 {
        let part = if refunded > 0 {
            format!(", {} of it refunded", yuan(refunded))
        } else {
            String::new()
        };
        return ("charged", format!("{host_why}{part}"));
    }
    if root.fwd && uncertain(&root.code) && cleared.is_empty() {
        return (
            "unknown_until_clearing",
            format!(
                "the host answered {} without the issuer's final answer; the switch's clearing file for the day tells whether the issuer approved it",
                root.code
            ),
        );
    }
    ("not_charged", host_why)
}

/// Codes after which the issuer may still have approved: it did not answer in time, or
/// the host failed after asking it.
fn uncertain(code: &str) -> bool {
    matches!(code, "98" | "96" | "91" | "68")
}

/// What the host charged the card (fen) and why, from the root and its chain.
fn host_charge(root: &TxnView, related: &[TxnView]) -> (u64, String) {
    let amount = root.amount_fen.unwrap_or(0);
    let kind = root.kind.as_deref().unwrap_or("");
    if !approved(root) {
        return (0, format!("declined with {}: {}", root.code, root.reason));
    }
    if root.reversal {
        // A reversal that found no original (a tombstone): the sale never posted, and a
        // late copy of it cannot.
        return (
            0,
            format!("only its reversal reached the host: {}", root.reason),
        );
    }
    match (kind, root.state.as_str()) {
        (_, "reversed") => (0, "reversed before settlement: nothing was taken".into()),
        (_, "voided") => (0, "voided the same day: nothing was taken".into()),
        ("sale" | "completion", _) => (amount, format!("approved for {}", yuan(amount))),
        ("pre-auth", _) => {
            let completed: u64 = related
                .iter()
                .filter(|r| r.kind.as_deref() == Some("completion") && approved(r) && !r.reversal)
                .filter(|r| r.state != "reversed" && r.state != "voided")
                .filter_map(|r| r.amount_fen)
                .sum();
            if completed > 0 {
                (
                    completed,
                    format!("pre-authorized, then completed for {}", yuan(completed)),
                )
            } else {
                (0, "a pre-authorization holds the amount on the card; nothing is taken unless it is completed".into())
            }
        }
        _ => (0, format!("a {kind}: it takes no money")),
    }
}

fn yuan(fen: u64) -> String {
    format!("{}.{:02} yuan", fen / 100, fen % 100)
}
