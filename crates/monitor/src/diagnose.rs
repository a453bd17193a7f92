//! Diagnosis (issue 21 §5): from what a terminal, a merchant or one transaction went
//! through, the likely causes ranked — network, host, keys, card or issuer, merchant
//! status, operator or cardholder, terminal — each with the evidence behind it and the
//! catalog's steps. Pure: the caller gathers the facts from the ledger.

use std::collections::BTreeMap;

use poskit_codes::{Catalog, Category, Lang, Table};
use serde::Serialize;

/// One answer the host gave in the window.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at_ms: i64,
    /// Field 39 answered.
    pub code: String,
    /// A reversal, and the terminal's reason for it (field 39 of the 0400: 98 a timeout,
    /// 96 a terminal failure such as a printer jam).
    pub reversal_reason: Option<String>,
}

/// What is known besides the answers.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub now_ms: i64,
    pub utc_offset_minutes: i32,
    pub seen: Vec<Seen>,
    /// The terminal's last sign-in (Unix ms), when one terminal is diagnosed.
    pub signed_in_ms: Option<i64>,
    pub terminal_status: Option<String>,
    pub merchant_status: Option<String>,
    /// Reversals for a timeout per request across all terminals in the window: what this
    /// scope's own rate is compared with.
    pub fleet_timeout_rate: Option<f64>,
    /// Open reconciliation breaks where the switch charged a failure (class C).
    pub charged_but_failed: u64,
    /// A terminal silent since then, in hours it usually works.
    pub silent_since_ms: Option<i64>,
    /// The terminal's settlement totals did not agree with the host's.
    pub unbalanced_settlements: bool,
    /// Reversals the host refused (answered other than 00) that the answers above do not
    /// show (a refusal after a storage failure is recorded nowhere).
    pub reversals_refused: u64,
}

/// A likely cause.
#[derive(Clone, Debug, Serialize)]
pub struct Cause {
    /// The catalog's category (`security-keys`, `communication`, `host-system`, ...).
    pub cause: &'static str,
    pub label: String,
    /// Its share of the evidence, 0 to 1.
    pub likelihood: f64,
    pub evidence: Vec<String>,
    pub steps: Vec<String>,
}

/// Per category: its score, the evidence, and its codes by count.
type Scores = BTreeMap<Category, (f64, Vec<String>, BTreeMap<String, u64>)>;

/// The causes, most likely first.
pub fn diagnose(f: &Facts, lang: Lang) -> Vec<Cause> {
    let catalog = Catalog::builtin();
    let mut by_cat: Scores = BTreeMap::new();
    let mut first_at: BTreeMap<String, i64> = BTreeMap::new();
    for s in f.seen.iter().filter(|s| s.code != "00") {
        let Some(entry) = catalog.lookup(Table::CupPos, &s.code) else {
            continue;
        };
        let e = by_cat.entry(entry.category()).or_default();
        e.0 += 1.0;
        *e.2.entry(s.code.clone()).or_default() += 1;
        let at = first_at.entry(s.code.clone()).or_insert(s.at_ms);
        *at = (*at).min(s.at_ms);
    }
    keys_evidence(f, &first_at, &mut by_cat);
    network_evidence(f, &mut by_cat);
    merchant_evidence(f, &mut by_cat);
    if f.reversals_refused > 0 {
        let e = by_cat.entry(Category::HostSystem).or_default();
        e.0 += f.reversals_refused as f64;
        e.1.push(format!(
            "{} reversals refused by the host: the terminals retry them, and until one is \
             accepted its customer stays charged",
            f.reversals_refused
        ));
    }
    if f.unbalanced_settlements {
        let e = by_cat.entry(Category::Terminal).or_default();
        e.0 += 1.0;
        e.1.push(
            "the terminal's settlement totals differ from the host's: a transaction the terminal \
             counted and the host did not (or the reverse) — its batch upload shows which"
                .to_owned(),
        );
    }
    if let Some(since) = f.silent_since_ms {
        let e = by_cat.entry(Category::Communication).or_default();
        e.0 += 1.0;
        e.1.push(format!(
            "no request since {}, in hours it usually works: its power, its network link or the terminal itself",
            clock(since, f.utc_offset_minutes)
        ));
    }
    if f.charged_but_failed > 0 {
        let e = by_cat.entry(Category::Issuer).or_default();
        e.0 += f.charged_but_failed as f64;
        e.1.push(format!(
            "{} sales the switch charged while the host did not approve them (reconciliation class C)",
            f.charged_but_failed
        ));
    }
    let total: f64 = by_cat.values().map(|v| v.0).sum();
    let mut out: Vec<Cause> = by_cat
        .into_iter()
        .filter(|(_, v)| v.0 > 0.0)
        .map(|(cat, (score, mut evidence, codes))| {
            let (top, _) = codes
                .iter()
                .max_by_key(|(_, n)| **n)
                .map_or((String::new(), 0), |(c, n)| (c.clone(), *n));
            for (code, n) in &codes {
                let since = first_at
                    .get(code)
                    .map(|ms| clock(*ms, f.utc_offset_minutes))
                    .unwrap_or_default();
                evidence.push(format!("{n} × {code} since {since}"));
            }
            let steps = catalog
                .lookup(Table::CupPos, &top)
                .map(|e| e.steps(lang).to_vec())
                .unwrap_or_else(|| default_steps(cat, lang));
            Cause {
                cause: cat.as_str(),
                label: cat.label(lang).to_owned(),
                likelihood: (score / total.max(1.0) * 100.0).round() / 100.0,
                evidence,
                steps,
            }
        })
        .collect();
    out.sort_by(|a, b| b.likelihood.total_cmp(&a.likelihood));
    out
}

/// A0 on every request since some time, with the last sign-in before it: the keys.
fn keys_evidence(f: &Facts, first_at: &BTreeMap<String, i64>, by_cat: &mut Scores) {
    let Some(first_a0) = first_at.get("A0") else {
        return;
    };
    // Requests only: a terminal reverses what an A0 left in doubt, and its reversals are
    // answered 00 (nothing to reverse).
    let since: Vec<&Seen> = f
        .seen
        .iter()
        .filter(|s| s.at_ms >= *first_a0 && s.reversal_reason.is_none())
        .collect();
    let all_a0 = since.iter().all(|s| s.code == "A0");
    let e = by_cat.entry(Category::SecurityKeys).or_default();
    if all_a0 && since.len() >= 3 {
        e.0 += since.len() as f64; // every request since: the strongest sign there is
        e.1.push(format!(
            "every one of the {} requests since {} got A0 (MAC error)",
            since.len(),
            clock(*first_a0, f.utc_offset_minutes)
        ));
    }
    match f.signed_in_ms {
        Some(signed) if signed < *first_a0 => e.1.push(format!(
            "last sign-in at {}, before the MAC errors began: the terminal's working keys are not the host's",
            clock(signed, f.utc_offset_minutes)
        )),
        Some(signed) if all_a0 => e.1.push(format!(
            "MAC errors go on after the sign-in at {}: the terminal's master key (TMK) or MAC algorithm is not the host's",
            clock(signed, f.utc_offset_minutes)
        )),
        _ => {}
    }
}

/// Reversals for timeouts well above the fleet's: this scope's network.
fn network_evidence(f: &Facts, by_cat: &mut Scores) {
    let requests = f
        .seen
        .iter()
        .filter(|s| s.reversal_reason.is_none())
        .count();
    let timeouts = f
        .seen
        .iter()
        .filter(|s| s.reversal_reason.as_deref() == Some("98"))
        .count();
    if requests == 0 || timeouts == 0 {
        return;
    }
    let rate = timeouts as f64 / requests as f64;
    let fleet = f.fleet_timeout_rate.unwrap_or(0.0);
    let e = by_cat.entry(Category::Communication).or_default();
    e.0 += timeouts as f64 * if rate > 2.0 * fleet { 2.0 } else { 1.0 };
    e.1.push(format!(
        "{timeouts} reversals for a timeout in {requests} requests ({:.0} %; all terminals: {:.0} %)",
        rate * 100.0,
        fleet * 100.0
    ));
}

/// 03 with the merchant not active: its status.
fn merchant_evidence(f: &Facts, by_cat: &mut Scores) {
    if let Some(status) = f.merchant_status.as_deref().filter(|s| *s != "active") {
        let e = by_cat.entry(Category::MerchantSetup).or_default();
        e.0 += 1.0;
        e.1.push(format!("the merchant's status at the host is {status}"));
    }
    if let Some(status) = f.terminal_status.as_deref().filter(|s| *s != "active") {
        let e = by_cat.entry(Category::MerchantSetup).or_default();
        e.0 += 1.0;
        e.1.push(format!("the terminal's status at the host is {status}"));
    }
}

fn default_steps(cat: Category, lang: Lang) -> Vec<String> {
    if cat == Category::Terminal {
        // Evidence of the terminal with no code of its own: its settlement did not balance.
        return poskit_codes::advice::break_advice("batch_total")
            .map(|b| {
                vec![match lang {
                    Lang::Zh => b.action_zh.clone(),
                    Lang::En => b.action_en.clone(),
                }]
            })
            .unwrap_or_default();
    }
    let code = match cat {
        Category::Communication => "98",
        Category::MerchantSetup => "03",
        Category::Issuer => "91",
        Category::SecurityKeys => "A0",
        _ => "96",
    };
    Catalog::builtin()
        .lookup(Table::CupPos, code)
        .map(|e| e.steps(lang).to_vec())
        .unwrap_or_default()
}

/// HH:MM local time.
fn clock(ms: i64, utc_offset_minutes: i32) -> String {
    let minute = (ms.div_euclid(60_000) + i64::from(utc_offset_minutes)).rem_euclid(1440);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at_min: i64, code: &str) -> Seen {
        Seen {
            at_ms: at_min * 60_000,
            code: code.into(),
            reversal_reason: None,
        }
    }

    #[test]
    fn mac_errors_since_a_time_after_the_last_sign_in_point_at_the_keys() {
        let mut facts = Facts {
            signed_in_ms: Some(540 * 60_000),
            ..Facts::default()
        };
        facts.seen = vec![seen(600, "00"), seen(602, "51")];
        facts.seen.extend((0..6).map(|i| seen(603 + i, "A0")));
        let causes = diagnose(&facts, Lang::En);
        assert_eq!(causes[0].cause, "security-keys", "{causes:#?}");
        assert!(
            causes[0]
                .evidence
                .iter()
                .any(|e| e.contains("last sign-in at 09:00"))
        );
        assert!(!causes[0].steps.is_empty());
    }

    #[test]
    fn timeouts_far_above_the_fleets_point_at_the_network() {
        let mut facts = Facts {
            fleet_timeout_rate: Some(0.01),
            ..Facts::default()
        };
        for i in 0..10 {
            facts.seen.push(seen(i, "00"));
            if i % 2 == 0 {
                facts.seen.push(Seen {
                    reversal_reason: Some("98".into()),
                    ..seen(i, "00")
                });
            }
        }
        let causes = diagnose(&facts, Lang::En);
        assert_eq!(causes[0].cause, "communication", "{causes:#?}");
    }

    #[test]
    fn an_inactive_merchant_with_03_points_at_its_status() {
        let facts = Facts {
            seen: vec![seen(1, "03"), seen(2, "03")],
            merchant_status: Some("inactive".into()),
            ..Facts::default()
        };
        let causes = diagnose(&facts, Lang::Zh);
        assert_eq!(causes[0].cause, "merchant-setup");
        assert!(causes[0].evidence.iter().any(|e| e.contains("inactive")));
    }
}
