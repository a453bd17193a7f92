//! "Was the customer charged?" (issue 20 §1): a transaction found from what a merchant or
//! cardholder holds, its whole chain — original, reversal, void, refund, completion,
//! settlement, the switch's clearing record, reconciliation's break, the credit adjustment —
//! and a verdict with the catalog's words for the merchant and the customer.
//!
//! The switch's record counts once its clearing day has been reconciled: before that the
//! acquirer does not know what the network did with a request its issuer never answered,
//! and says so (`unknown_until_clearing`).

use poskit_codes::{Lang, advice};
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
    /// Why, from this transaction's chain, in both languages (the catalog's reasons,
    /// `data/verdicts.toml`, with the chain's amounts, codes and the host's own record).
    pub because: Texts,
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
        because: because.texts(),
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

/// A reason of the catalog (`data/verdicts.toml`, `[[because]]`) with what fills its slots,
/// in each language.
struct Reason {
    id: &'static str,
    slots: Vec<(&'static str, Texts)>,
}

impl Reason {
    fn new(id: &'static str) -> Reason {
        Reason {
            id,
            slots: Vec::new(),
        }
    }

    /// A slot whose value reads the same in both languages (a code, the host's record).
    fn with(self, name: &'static str, value: &str) -> Reason {
        self.with_texts(name, Texts::same(value))
    }

    fn with_texts(mut self, name: &'static str, value: Texts) -> Reason {
        self.slots.push((name, value));
        self
    }

    fn texts(&self) -> Texts {
        let Some(words) = advice::because(self.id) else {
            // Built-in data: every id named here is in the file (a test walks them).
            debug_assert!(false, "no reason {} in verdicts.toml", self.id);
            return Texts::same(self.id);
        };
        let fill = |lang: Lang| {
            let slots: Vec<(&str, &str)> = self
                .slots
                .iter()
                .map(|(name, v)| (*name, v.of(lang)))
                .collect();
            words.fill(lang, &slots)
        };
        Texts {
            zh: fill(Lang::Zh),
            en: fill(Lang::En),
        }
    }
}

impl Texts {
    fn same(text: &str) -> Texts {
        Texts {
            zh: text.to_owned(),
            en: text.to_owned(),
        }
    }

    pub fn of(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }
}

fn approved(t: &TxnView) -> bool {
    t.code == "00"
}

/// Money given back through the network: credit adjustments and chargebacks, less what
/// representments took back.
fn adjusted_fen(related: &[TxnView]) -> u64 {
    let through = |codes: &[&str]| -> u64 {
        related
            .iter()
            .filter(|r| codes.contains(&r.mti.as_str()) && approved(r))
            .filter_map(|r| r.amount_fen)
            .sum()
    };
    through(&["E32", "E23", "E25"]).saturating_sub(through(&["E24"]))
}

fn refunded_fen(related: &[TxnView]) -> u64 {
    related
        .iter()
        .filter(|r| {
            r.kind.as_deref() == Some("refund")
                && approved(r)
                && !r.reversal
                && r.state != "reversed"
        })
        .filter_map(|r| r.amount_fen)
        .sum()
}

/// The verdict's name and the reason in this chain.
fn decide(
    root: &TxnView,
    related: &[TxnView],
    cleared: &[SwitchMessage],
    breaks: &[Value],
) -> (&'static str, Reason) {
    let adjusted = adjusted_fen(related);
    let refunded = refunded_fen(related);
    let (host_charged, host_why) = host_charge(root, related);
    let switch_charged = cleared
        .iter()
        .any(|m| m.code == "00" && !m.reversed && !m.voided);
    let pending_adjustment = breaks
        .iter()
        .any(|b| b["action"] == "credit_adjustment" && b["status"] != "resolved");
    if adjusted > 0 {
        let why = Reason::new("credit_adjustment").with_texts("amount", yuan(adjusted));
        return ("refunded", why);
    }
    if switch_charged && host_charged == 0 {
        let why = if pending_adjustment {
            Reason::new("switch_charged_adjustment_due")
        } else {
            Reason::new("switch_charged_host_not").with_texts("why", host_why.texts())
        };
        return ("refund_pending", why);
    }
    if host_charged > 0 && refunded >= host_charged {
        let why = Reason::new("refunded")
            .with_texts("refunded", yuan(refunded))
            .with_texts("charged", yuan(host_charged));
        return ("refunded", why);
    }
    if host_charged > 0 {
        let why = if refunded > 0 {
            Reason::new("charged_part_refunded")
                .with_texts("why", host_why.texts())
                .with_texts("refunded", yuan(refunded))
        } else {
            Reason::new("charged").with_texts("why", host_why.texts())
        };
        return ("charged", why);
    }
    if root.fwd && uncertain(&root.code) && cleared.is_empty() {
        let why = Reason::new("unknown_until_clearing").with("code", &root.code);
        return ("unknown_until_clearing", why);
    }
    ("not_charged", host_why)
}

/// Codes after which the issuer may still have approved: it did not answer in time, or
/// the host failed after asking it.
fn uncertain(code: &str) -> bool {
    matches!(code, "98" | "96" | "91" | "68")
}

/// The catalog's meaning of a code the host answered, in each language.
fn meaning(code: &str) -> Texts {
    let entry = poskit_codes::Catalog::builtin().lookup(poskit_codes::Table::CupPos, code);
    match entry {
        Some(e) => Texts {
            zh: e.meaning(Lang::Zh).to_owned(),
            en: e.meaning(Lang::En).to_owned(),
        },
        None => Texts::same(code),
    }
}

/// What the host charged the card (fen) and why, from the root and its chain.
fn host_charge(root: &TxnView, related: &[TxnView]) -> (u64, Reason) {
    let amount = root.amount_fen.unwrap_or(0);
    let kind = root.kind.as_deref().unwrap_or("");
    if !approved(root) {
        let why = Reason::new("declined")
            .with("code", &root.code)
            .with_texts("meaning", meaning(&root.code))
            .with("reason", &root.reason);
        return (0, why);
    }
    if root.reversal {
        // A reversal that found no original (a tombstone): the sale never posted, and a
        // late copy of it cannot.
        return (0, Reason::new("reversal_only").with("reason", &root.reason));
    }
    match (kind, root.state.as_str()) {
        (_, "reversed") => (0, Reason::new("reversed")),
        (_, "voided") => (0, Reason::new("voided")),
        ("sale" | "completion", _) => (
            amount,
            Reason::new("approved").with_texts("amount", yuan(amount)),
        ),
        ("pre-auth", _) => {
            let completed: u64 = related
                .iter()
                .filter(|r| r.kind.as_deref() == Some("completion") && approved(r) && !r.reversal)
                .filter(|r| r.state != "reversed" && r.state != "voided")
                .filter_map(|r| r.amount_fen)
                .sum();
            if completed > 0 {
                let why = Reason::new("pre_auth_completed").with_texts("amount", yuan(completed));
                (completed, why)
            } else {
                (0, Reason::new("pre_auth_held"))
            }
        }
        _ => (
            0,
            Reason::new("takes_no_money").with_texts("kind", kind_name(kind)),
        ),
    }
}

/// A kind's name in each language (its slug when the domain does not know it).
fn kind_name(slug: &str) -> Texts {
    match poskit_domain::TransactionKind::from_slug(slug) {
        Some(k) => Texts {
            zh: k.name_zh().to_owned(),
            en: k.name_en().to_owned(),
        },
        None => Texts::same(slug),
    }
}

fn yuan(fen: u64) -> Texts {
    let figure = format!("{}.{:02}", fen / 100, fen % 100);
    Texts {
        zh: format!("{figure} 元"),
        en: format!("{figure} yuan"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: i64, kind: &str, code: &str, state: &str, amount_fen: u64) -> TxnView {
        TxnView {
            id,
            kind: Some(kind.to_owned()),
            reversal: false,
            mti: "0200".into(),
            tid: Some("10100002".into()),
            mid: Some("898310048160001".into()),
            batch: Some(1),
            stan: Some(id as u32),
            amount_fen: Some(amount_fen),
            pan_masked: Some("622202*********0017".into()),
            rrn: None,
            auth_code: None,
            day: 20_000,
            mmdd: "1205".into(),
            hhmmss: "101010".into(),
            created_ms: 0,
            code: code.into(),
            reason: format!("the host's record of {id}"),
            state: state.into(),
            original_id: None,
            refunded_fen: 0,
            fwd: false,
        }
    }

    fn cleared(code: &str) -> SwitchMessage {
        SwitchMessage {
            id: 1,
            clearing_day: 20_000,
            fwd_stan: 1,
            fwd_time: "1205101010".into(),
            mti: "0210".into(),
            processing_code: "000000".into(),
            kind: None,
            pan_masked: "621700*********0012".into(),
            amount_fen: 1_230,
            tid: "10100002".into(),
            mid: "898310048160001".into(),
            mcc: "5812".into(),
            merchant_name: String::new(),
            rrn: "000000000001".into(),
            auth_code: String::new(),
            code: code.into(),
            condition_code: "00".into(),
            entry_mode: "021".into(),
            original: None,
            issuer: String::new(),
            acquirer: String::new(),
            reversed: false,
            voided: false,
        }
    }

    /// The verdict of `root` with `related`, and its reason checked: in both languages,
    /// every slot filled, the Chinese in Chinese.
    fn check(root: &TxnView, related: &[TxnView], switch: &[SwitchMessage]) -> Verdict {
        let v = verdict(root, related, switch, &[]);
        for text in [&v.because.zh, &v.because.en] {
            assert!(!text.is_empty() && !text.contains('{'), "{text}");
        }
        assert!(
            v.because.zh.chars().any(|c| c > '\u{2e80}'),
            "{}",
            v.because.zh
        );
        assert!(v.because.en.is_ascii(), "{}", v.because.en);
        v
    }

    #[test]
    fn every_way_a_verdict_is_reached_says_why_in_both_languages() {
        let sale = txn(1, "sale", "00", "approved", 1_230);
        let v = check(&sale, &[], &[]);
        assert_eq!(
            (v.verdict, v.because.en.as_str()),
            ("charged", "approved for 12.30 yuan")
        );
        assert_eq!(v.because.zh, "已批准 12.30 元");
        let declined = txn(2, "sale", "51", "declined", 1_230);
        let v = check(&declined, &[], &[]);
        assert_eq!(v.verdict, "not_charged");
        assert!(
            v.because.zh.starts_with("主机以应答码 51（"),
            "{}",
            v.because.zh
        );
        assert!(
            v.because.en.ends_with("the host's record of 2"),
            "{}",
            v.because.en
        );
        for state in ["reversed", "voided"] {
            assert_eq!(
                check(&txn(3, "sale", "00", state, 100), &[], &[]).verdict,
                "not_charged"
            );
        }
        let mut refund = txn(4, "refund", "00", "approved", 1_230);
        refund.original_id = Some(1);
        assert_eq!(
            check(&sale, std::slice::from_ref(&refund), &[]).verdict,
            "refunded"
        );
        refund.amount_fen = Some(230);
        let v = check(&sale, &[refund], &[]);
        assert_eq!(v.verdict, "charged");
        assert!(
            v.because.zh.contains("其中 2.30 元已退货"),
            "{}",
            v.because.zh
        );
        let preauth = txn(5, "pre-auth", "00", "approved", 5_000);
        assert_eq!(check(&preauth, &[], &[]).verdict, "not_charged");
        let completion = txn(6, "completion", "00", "approved", 4_000);
        assert_eq!(check(&preauth, &[completion], &[]).verdict, "charged");
        let v = check(&txn(7, "balance", "00", "approved", 0), &[], &[]);
        assert!(v.because.zh.starts_with("余额查询"), "{}", v.because.zh);
        let mut tombstone = txn(8, "sale", "00", "approved", 100);
        tombstone.reversal = true;
        assert_eq!(check(&tombstone, &[], &[]).verdict, "not_charged");
        let mut adjustment = txn(9, "sale", "00", "approved", 1_230);
        adjustment.mti = "E32".into();
        let late = txn(10, "sale", "98", "declined", 1_230);
        assert_eq!(check(&late, &[adjustment], &[]).verdict, "refunded");
        assert_eq!(
            check(&late, &[], &[cleared("00")]).verdict,
            "refund_pending"
        );
        let mut forwarded = late.clone();
        forwarded.fwd = true;
        assert_eq!(
            check(&forwarded, &[], &[]).verdict,
            "unknown_until_clearing"
        );
    }
}
