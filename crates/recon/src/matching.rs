//! The comparison itself: pure, no I/O. The host's forwarded transactions and the switch's
//! records are sorted by the CUP key and merged (a day of ten million each needs no hash
//! table); what the key leaves unmatched gets the spec's fallback key (STAN, transmission
//! time, amount, card) without the institutions; terminal settlements are compared with the
//! host's totals.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use poskit_domain::Tid;
use serde_json::{Value, json};

use crate::merchants::Merchants;
use crate::model::{
    Action, Advice, Break, Class, Direction, HostState, HostTxn, MaskedPan, Records, Settlement,
    Status, SwitchKey, SwitchTxn,
};
use crate::sort::sort_nearly_sorted;

/// One clearing day's three sides.
#[derive(Debug, Default)]
pub struct Day {
    /// YYYYMMDD.
    pub date: String,
    /// The first instant (Unix ms) of the next clearing day.
    pub end_ms: i64,
    /// A host transaction this close to the end that the switch lacks is awaited on the
    /// next day's file rather than reversed.
    pub near_cut_ms: i64,
    /// The host's money-moving transactions of the day (on-us ones too).
    pub host: Vec<HostTxn>,
    /// Transactions of earlier days that open breaks wait for (long on our side near the
    /// cut-off), by break id: found in today's file, their break is resolved.
    pub awaited: Vec<(String, HostTxn)>,
    pub switch: Vec<SwitchTxn>,
    pub settlements: Vec<Settlement>,
    /// The merchant ids the host's and the switch's records refer to.
    pub merchants: Arc<Merchants>,
    /// Keep each matched pair's (host transaction, key) in [`Found::matched_pairs`].
    pub keep_matched: bool,
}

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Found {
    pub matched: u64,
    pub breaks: Vec<Break>,
    /// Awaited breaks resolved today, with how.
    pub resolved: Vec<(String, String)>,
    /// The switch's records found alone (class B): the caller may find their host
    /// transaction on an earlier day.
    pub alone_at_switch: Vec<SwitchTxn>,
    /// (host transaction, key) of each matched pair, when the day asked for them.
    pub matched_pairs: Vec<(i64, SwitchKey)>,
}

/// Compares the sides of one day.
pub fn compare(mut day: Day) -> Found {
    let mut found = Found::default();
    let (host_len, switch_len) = sort_sides(&mut day);
    compare_switched(
        &day,
        &day.host[..host_len],
        &day.switch[..switch_len],
        &mut found,
    );
    let on_host = uploads_on_host(&day);
    for s in &day.settlements {
        if let Some(b) = settlement_break(&day.date, s, &on_host) {
            found.breaks.push(b);
        }
    }
    found
        .breaks
        .sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    found
}

/// Sorts both sides in place (on two threads); returns how many of each have a key.
fn sort_sides(day: &mut Day) -> (usize, usize) {
    let (host, switch) = (&mut day.host, &mut day.switch);
    std::thread::scope(|scope| {
        let sorting = scope.spawn(|| sort_switch(switch));
        let host_len = sort_host(host);
        let switch_len = sorting
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (host_len, switch_len)
    })
}

/// Sorts the host's transactions by key, those without one (on-us) after, in id order
/// among equals; returns how many have one. Quick when they are in order already (a
/// reader may sort them while the other side is still being read).
pub fn sort_host(host: &mut [HostTxn]) -> usize {
    sort_nearly_sorted(host, |h| {
        (h.key.is_none(), h.key.map_or(0, |k| k.ordinal()), h.id)
    });
    host.partition_point(|h| h.key.is_some())
}

/// Sorts the switch's records by key, reversal records after, originals of one key in
/// file order; returns how many originals. Quick when they are in order already.
pub fn sort_switch(switch: &mut [SwitchTxn]) -> usize {
    sort_nearly_sorted(switch, |s| (s.is_reversal, s.key.ordinal(), s.line));
    switch.partition_point(|s| !s.is_reversal)
}

/// Host and switch, merged by key; duplicates, then one class per pair.
fn compare_switched(day: &Day, host: &[HostTxn], originals: &[SwitchTxn], found: &mut Found) {
    let awaited: HashMap<SwitchKey, String> = day
        .awaited
        .iter()
        .filter_map(|(id, h)| h.key.map(|k| (k, id.clone())))
        .collect();
    let (mut lone_host, mut lone_switch) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < host.len() || j < originals.len() {
        let hk = host.get(i).and_then(|h| h.key);
        let sk = originals.get(j).map(|s| s.key);
        match (hk, sk) {
            (Some(h), Some(s)) if h == s => {
                let n = group_len(&originals[j..]);
                pair(day, found, Some(&host[i]), &originals[j..j + n]);
                i += 1;
                j += n;
            }
            (Some(h), s) if s.is_none_or(|s| h < s) => {
                lone_host.push(&host[i]);
                i += 1;
            }
            _ => {
                let n = group_len(&originals[j..]);
                match awaited.get(&originals[j].key) {
                    Some(id) => found
                        .resolved
                        .push((id.clone(), format!("cleared by the switch on {}", day.date))),
                    None => lone_switch.push(&originals[j..j + n]),
                }
                j += n;
            }
        }
    }
    fallback(day, found, lone_host, lone_switch);
}

/// Records of the switch with the same key as the first.
fn group_len(records: &[SwitchTxn]) -> usize {
    records
        .iter()
        .take_while(|r| r.key == records[0].key)
        .count()
}

/// What the key left alone, paired by the fallback key; the rest classified alone.
fn fallback(day: &Day, found: &mut Found, host: Vec<&HostTxn>, switch: Vec<&[SwitchTxn]>) {
    type Loose = (u32, u32, u64, (u32, u16));
    let loose = |time: u32, stan: u32, amount: u64, pan: MaskedPan| -> Loose {
        (
            time,
            stan,
            amount,
            (pan.to_string().len() as u32, pan.last4()),
        )
    };
    let mut by_loose: HashMap<Loose, &[SwitchTxn]> = switch
        .iter()
        .map(|g| {
            let s = &g[0];
            (loose(s.key.time, s.key.stan, s.amount.fen(), s.pan), *g)
        })
        .collect();
    for h in host {
        let Some(k) = h.key else { continue };
        match by_loose.remove(&loose(k.time, k.stan, h.amount.fen(), h.pan)) {
            Some(g) => pair(day, found, Some(h), g),
            None => pair(day, found, Some(h), &[]),
        }
    }
    let mut rest: Vec<&[SwitchTxn]> = by_loose.into_values().collect();
    rest.sort_by_key(|g| g[0].line);
    for g in rest {
        pair(day, found, None, g);
    }
}

/// Where one side stands on a transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stand {
    Charged,
    NotCharged,
    Pending,
    Absent,
}

/// Classifies one key: the host's transaction (if any) and the switch's records of it.
fn pair(day: &Day, found: &mut Found, host: Option<&HostTxn>, switch: &[SwitchTxn]) {
    assert!(host.is_some() || !switch.is_empty(), "a pair has a side");
    // Copies the switch still charges beyond the first (copies it reversed moved nothing).
    let charging = |s: &&SwitchTxn| s.code.is_approved() && !s.reversed;
    let charged_len = switch.iter().filter(charging).count();
    if charged_len > 1 {
        let extra = switch
            .iter()
            .filter(charging)
            .skip(1)
            .map(|s| s.amount.fen())
            .sum();
        found.breaks.push(new_break(
            day,
            Class::Duplicate,
            extra,
            vec![format!(
                "records: {} ({} charged)",
                switch.len(),
                charged_len
            )],
            host,
            switch.first(),
            Action::OpenItem,
        ));
    }
    let s = switch.first();
    let h_stand = host.map_or(Stand::Absent, |h| match h.state {
        HostState::Approved => Stand::Charged,
        HostState::Declined | HostState::Reversed => Stand::NotCharged,
        HostState::Pending => Stand::Pending,
    });
    let s_stand = s.map_or(Stand::Absent, |s| {
        if s.code.is_approved() && !s.reversed {
            Stand::Charged
        } else {
            Stand::NotCharged
        }
    });
    let amount = s
        .map(|s| s.amount.fen())
        .or(host.map(|h| h.amount.fen()))
        .unwrap_or(0);
    let debit = s.map(|s| s.direction).or(host.map(|h| h.direction)) == Some(Direction::Debit);
    let give_back = if debit {
        Action::CreditAdjustment
    } else {
        Action::OpenItem
    };
    let (class, action) = match (h_stand, s_stand) {
        (Stand::Charged, Stand::Charged) => {
            let (h, s) = (
                host.unwrap_or_else(|| unreachable!()),
                s.unwrap_or_else(|| unreachable!()),
            );
            let differing = differing(&day.merchants, h, s);
            if differing.is_empty() {
                matched(day, found, Some(h), s.key);
                return;
            }
            let b = new_break(
                day,
                Class::G,
                amount.abs_diff(h.amount.fen()),
                differing,
                host,
                Some(s),
                Action::OpenItem,
            );
            found.breaks.push(b);
            return;
        }
        (Stand::NotCharged, Stand::Charged)
            if host.is_some_and(|h| h.state == HostState::Reversed) =>
        {
            (Class::OneSidedReversal, give_back)
        }
        (Stand::NotCharged, Stand::Charged) => (Class::C, give_back),
        (Stand::Pending, Stand::Charged) => (Class::D, Action::OpenItem),
        (Stand::Absent, Stand::Charged) => {
            found.alone_at_switch.extend(s.copied());
            (Class::B, Action::OpenItem)
        }
        (Stand::Charged, Stand::NotCharged) if s.is_some_and(|s| s.reversed) => {
            (Class::OneSidedReversal, Action::OpenItem)
        }
        (Stand::Charged, Stand::Absent | Stand::NotCharged) => {
            let h = host.unwrap_or_else(|| unreachable!());
            let near = h.created_ms >= day.end_ms - day.near_cut_ms;
            (
                Class::E,
                if near {
                    Action::AwaitNextDay
                } else {
                    Action::ReversalToSwitch
                },
            )
        }
        (Stand::Pending, Stand::Absent | Stand::NotCharged) => (Class::F, Action::OpenItem),
        // Neither side charged: they agree.
        _ => {
            let key = s.map(|s| s.key).or(host.and_then(|h| h.key));
            if let Some(key) = key {
                matched(day, found, host, key);
            } else {
                found.matched += 1;
            }
            return;
        }
    };
    found
        .breaks
        .push(new_break(day, class, amount, Vec::new(), host, s, action));
}

/// A pair that agrees: counted, and kept when the day asks.
fn matched(day: &Day, found: &mut Found, host: Option<&HostTxn>, key: SwitchKey) {
    found.matched += 1;
    if day.keep_matched {
        found.matched_pairs.push((host.map_or(0, |h| h.id), key));
    }
}

/// The fields of a pair that differ, named as in the files.
fn differing(merchants: &Merchants, h: &HostTxn, s: &SwitchTxn) -> Vec<String> {
    let mut out = Vec::new();
    if h.amount != s.amount {
        out.push(format!(
            "amount_fen: host {} switch {}",
            h.amount.fen(),
            s.amount.fen()
        ));
    }
    if h.pan != s.pan {
        out.push(format!("pan: host {} switch {}", h.pan, s.pan));
    }
    if h.tid != s.tid {
        out.push(format!(
            "tid: host {} switch {}",
            h.tid.as_str(),
            s.tid.as_str()
        ));
    }
    if h.mid != s.mid {
        out.push(format!(
            "mid: host {} switch {}",
            merchants.mid(h.mid).as_str(),
            merchants.mid(s.mid).as_str()
        ));
    }
    if h.direction != s.direction {
        out.push("direction".to_owned());
    }
    out
}

fn new_break(
    day: &Day,
    class: Class,
    amount_fen: u64,
    fields_differing: Vec<String>,
    host: Option<&HostTxn>,
    switch: Option<&SwitchTxn>,
    action: Action,
) -> Break {
    let key = switch.map(|s| s.key).or(host.and_then(|h| h.key));
    let id = match key {
        Some(k) => format!("{}-{}-{}", class.as_str(), day.date, k.text()),
        None => format!(
            "{}-{}-host-{}",
            class.as_str(),
            day.date,
            host.map_or(0, |h| h.id)
        ),
    };
    Break {
        id,
        class,
        status: Status::New,
        priority: priority_of(class),
        amount_fen,
        fields_differing,
        records: Records {
            terminal: None,
            host: host.map(|h| host_json(&day.merchants, h)),
            switch: switch.map(|s| switch_json(&day.merchants, s)),
        },
        action,
        resolution: None,
        found_on: day.date.clone(),
        advice: Advice::of(class),
    }
}

/// The catalog's priority for a class.
pub fn priority_of(class: Class) -> u8 {
    poskit_codes::advice::break_advice(class.as_str()).map_or(2, |a| a.priority)
}

/// The host's record of a break; its `rrn` null, for the caller to read back from the
/// ledger (a [`HostTxn`] does not hold it).
pub fn host_json(merchants: &Merchants, h: &HostTxn) -> Value {
    json!({
        "id": h.id,
        "key": h.key.map(|k| k.text()),
        "tid": h.tid.as_str(),
        "mid": merchants.mid(h.mid).as_str(),
        "batch": h.batch,
        "stan": h.stan,
        "amount_fen": h.amount.fen(),
        "pan": h.pan.to_string(),
        "rrn": null,
        "code": h.code.as_str(),
        "state": h.state,
    })
}

fn switch_json(merchants: &Merchants, s: &SwitchTxn) -> Value {
    json!({
        "line": s.line,
        "key": s.key.text(),
        "tid": s.tid.as_str(),
        "mid": merchants.mid(s.mid).as_str(),
        "amount_fen": s.amount.fen(),
        "pan": s.pan.to_string(),
        "rrn": s.rrn.as_str(),
        "code": s.code.as_str(),
        "reversed": s.reversed,
        "voided": s.voided,
    })
}

/// (terminal, batch, STAN, amount in fen) of a host transaction.
type UploadKey = (Tid, u32, u32, u64);

/// The details uploaded with a breaking settlement that the host has as sent (one pass
/// over the host, looking each transaction up among the few details).
fn uploads_on_host(day: &Day) -> HashSet<UploadKey, RandomState> {
    let uploaded: HashSet<UploadKey, RandomState> = day
        .settlements
        .iter()
        .filter(|s| settlement_differs(s))
        .flat_map(|s| {
            s.uploads
                .iter()
                .map(|u| (s.tid, s.batch, u.stan, u.amount_fen))
        })
        .collect();
    if uploaded.is_empty() {
        return HashSet::default();
    }
    day.host
        .iter()
        .map(|x| (x.tid, x.batch, x.stan, x.amount.fen()))
        .filter(|k| uploaded.contains(k))
        .collect()
}

/// The settlement's terminal totals are not the host's, or the host did not find it
/// balanced.
fn settlement_differs(s: &Settlement) -> bool {
    s.terminal != s.host || !s.balanced
}

/// A settlement whose terminal totals are not the host's (or that the host did not find
/// balanced): one break, with the uploaded details the host does not have as sent.
fn settlement_break(
    date: &str,
    s: &Settlement,
    on_host: &HashSet<UploadKey, RandomState>,
) -> Option<Break> {
    let (t, h) = (&s.terminal, &s.host);
    let mut differing = Vec::new();
    for (name, a, b) in [
        ("debit_fen", t.debit_fen, h.debit_fen),
        (
            "debit_count",
            u64::from(t.debit_count),
            u64::from(h.debit_count),
        ),
        ("credit_fen", t.credit_fen, h.credit_fen),
        (
            "credit_count",
            u64::from(t.credit_count),
            u64::from(h.credit_count),
        ),
    ] {
        if a != b {
            differing.push(format!("{name}: terminal {a} host {b}"));
        }
    }
    if !settlement_differs(s) {
        return None;
    }
    let unmatched: Vec<Value> = s
        .uploads
        .iter()
        .filter(|u| !on_host.contains(&(s.tid, s.batch, u.stan, u.amount_fen)))
        .map(|u| json!({"stan": u.stan, "pan": u.pan_masked, "amount_fen": u.amount_fen}))
        .collect();
    let amount = t.debit_fen.abs_diff(h.debit_fen) + t.credit_fen.abs_diff(h.credit_fen);
    Some(Break {
        id: format!("batch_total-{date}-{}-{:06}", s.tid.as_str(), s.batch),
        class: Class::BatchTotal,
        status: Status::New,
        priority: priority_of(Class::BatchTotal),
        amount_fen: amount,
        fields_differing: differing,
        records: Records {
            terminal: Some(json!({
                "tid": s.tid.as_str(), "batch": s.batch, "totals": s.terminal,
                "uploads_not_on_host": unmatched,
            })),
            host: Some(json!({"tid": s.tid.as_str(), "batch": s.batch, "totals": s.host})),
            switch: None,
        },
        action: Action::OpenItem,
        resolution: None,
        found_on: date.to_owned(),
        advice: Advice::of(Class::BatchTotal),
    })
}
