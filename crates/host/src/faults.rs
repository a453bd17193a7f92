//! The fault plan: rules that match requests by terminal, merchant, card or kind and, with
//! a probability, delay, drop or corrupt the answer, close the connection, answer a fixed
//! code, make the issuer time out or fail the storage. This is what terminal developers
//! test their timeouts and reversals against.
//!
//! ```toml
//! seed = 7
//! [[rules]]
//! name = "lose approvals of T1"
//! tid = "10000001"
//! kind = "sale"
//! action = "drop"
//! probability = 1.0
//! count_max = 1          # apply once, then stop
//! ```
//!
//! Actions: `delay` (with `delay_ms`), `drop`, `close`, `corrupt-mac`, `code` (with
//! `code`), `issuer-timeout`, `storage-error`; and the switch's record departing from the
//! host's ([`crate::switch::Divergence`]): `late-answer` (the host says 98, the issuer
//! approves after its timeout), `switch-lose-reversal`, `switch-duplicate`,
//! `switch-amount` (with `delta_fen`), `switch-next-day`.

use poskit_domain::rand::SplitMix64;
use serde::Deserialize;

use poskit_domain::{ResponseCode, TransactionKind};

use crate::HostError;
use crate::switch::Divergence;

/// Rules a plan may have.
pub const RULES_MAX: usize = 256;
/// The longest delay a rule may ask for.
pub const DELAY_MS_MAX: u32 = 600_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Delay { ms: u32 },
    Drop,
    Close,
    CorruptMac,
    Code(ResponseCode),
    IssuerTimeout,
    StorageError,
    LateAnswer,
    SwitchLoseReversal,
    SwitchDuplicate,
    SwitchAmount { delta_fen: i64 },
    SwitchNextDay,
}

/// The largest amount difference a `switch-amount` rule may ask for (10 000 yuan).
pub const SWITCH_DELTA_FEN_MAX: i64 = 1_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub tid: Option<String>,
    pub mid: Option<String>,
    /// A whole PAN, or a prefix of one (a BIN).
    pub card: Option<String>,
    pub kind: Option<TransactionKind>,
    /// `Some(true)`: reversals only; `Some(false)`: originals only.
    pub reversal: Option<bool>,
    pub probability: f64,
    pub count_max: Option<u64>,
    pub action: Action,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    tid: Option<String>,
    mid: Option<String>,
    card: Option<String>,
    kind: Option<String>,
    reversal: Option<bool>,
    probability: Option<f64>,
    count_max: Option<u64>,
    action: String,
    delay_ms: Option<u32>,
    code: Option<String>,
    delta_fen: Option<i64>,
}

impl FaultPlan {
    /// Reads a plan from TOML (a whole file, or the `[faults]` table of a host config).
    pub fn parse(text: &str) -> Result<FaultPlan, HostError> {
        let file: PlanFile =
            toml::from_str(text).map_err(|e| HostError::Config(format!("fault plan: {e}")))?;
        FaultPlan::from_file(file)
    }

    pub(crate) fn from_toml_value(value: toml::Value) -> Result<FaultPlan, HostError> {
        let file: PlanFile = value
            .try_into()
            .map_err(|e: toml::de::Error| HostError::Config(format!("fault plan: {e}")))?;
        FaultPlan::from_file(file)
    }

    fn from_file(file: PlanFile) -> Result<FaultPlan, HostError> {
        if file.rules.len() > RULES_MAX {
            return Err(HostError::Config(format!(
                "fault plan: more than {RULES_MAX} rules"
            )));
        }
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let name = r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1));
                let bad = |why: String| HostError::Config(format!("fault plan, {name}: {why}"));
                let action = match r.action.as_str() {
                    "delay" => {
                        let ms = r.delay_ms.ok_or_else(|| bad("delay needs delay_ms".into()))?;
                        if ms > DELAY_MS_MAX {
                            return Err(bad(format!("delay_ms above {DELAY_MS_MAX}")));
                        }
                        Action::Delay { ms }
                    }
                    "drop" => Action::Drop,
                    "close" => Action::Close,
                    "corrupt-mac" => Action::CorruptMac,
                    "code" => {
                        let text = r.code.as_deref().ok_or_else(|| bad("code needs code".into()))?;
                        Action::Code(
                            ResponseCode::parse(text)
                                .ok_or_else(|| bad(format!("{text:?} is not a response code")))?,
                        )
                    }
                    "issuer-timeout" => Action::IssuerTimeout,
                    "storage-error" => Action::StorageError,
                    "late-answer" => Action::LateAnswer,
                    "switch-lose-reversal" => Action::SwitchLoseReversal,
                    "switch-duplicate" => Action::SwitchDuplicate,
                    "switch-next-day" => Action::SwitchNextDay,
                    "switch-amount" => {
                        let delta_fen = r
                            .delta_fen
                            .filter(|d| *d != 0 && d.abs() <= SWITCH_DELTA_FEN_MAX)
                            .ok_or_else(|| {
                                bad(format!(
                                    "switch-amount needs delta_fen, not 0, at most {SWITCH_DELTA_FEN_MAX} either way"
                                ))
                            })?;
                        Action::SwitchAmount { delta_fen }
                    }
                    other => {
                        return Err(bad(format!(
                            "unknown action {other:?} (delay, drop, close, corrupt-mac, code, issuer-timeout, storage-error, late-answer, switch-lose-reversal, switch-duplicate, switch-amount, switch-next-day)"
                        )));
                    }
                };
                let probability = r.probability.unwrap_or(1.0);
                if !(0.0..=1.0).contains(&probability) {
                    return Err(bad("probability must be between 0 and 1".into()));
                }
                let kind = r
                    .kind
                    .as_deref()
                    .map(|k| {
                        TransactionKind::from_slug(k)
                            .ok_or_else(|| bad(format!("unknown transaction kind {k:?}")))
                    })
                    .transpose()?;
                Ok(Rule {
                    name,
                    tid: r.tid,
                    mid: r.mid,
                    card: r.card,
                    kind,
                    reversal: r.reversal,
                    probability,
                    count_max: r.count_max,
                    action,
                })
            })
            .collect::<Result<Vec<_>, HostError>>()?;
        Ok(FaultPlan {
            seed: file.seed,
            rules,
        })
    }
}

/// What a request looks like to the plan.
#[derive(Clone, Debug, Default)]
pub struct Target<'a> {
    pub tid: Option<&'a str>,
    pub mid: Option<&'a str>,
    pub pan: Option<&'a str>,
    pub kind: Option<TransactionKind>,
    pub reversal: bool,
}

/// What the plan does to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub delay_ms: u32,
    pub drop: bool,
    pub close: bool,
    pub corrupt_mac: bool,
    pub code: Option<(ResponseCode, String)>,
    pub issuer_timeout: bool,
    pub storage_error: bool,
    /// How the switch's record departs from the host's.
    pub divergence: Divergence,
    /// Names of the rules that fired.
    pub fired: Vec<String>,
}

/// A plan in force, with its random stream and how often each rule fired.
#[derive(Debug)]
pub struct FaultState {
    plan: FaultPlan,
    rng: SplitMix64,
    fired: Vec<u64>,
}

impl FaultState {
    pub fn new(plan: FaultPlan) -> FaultState {
        FaultState {
            rng: SplitMix64(plan.seed),
            fired: vec![0; plan.rules.len()],
            plan,
        }
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// How often each rule has fired since this plan came into force, by rule name.
    pub fn fired(&self) -> impl Iterator<Item = (&str, u64)> {
        assert_eq!(self.fired.len(), self.plan.rules.len());
        self.plan
            .rules
            .iter()
            .zip(&self.fired)
            .map(|(rule, n)| (rule.name.as_str(), *n))
    }

    pub fn decide(&mut self, target: &Target<'_>) -> Decision {
        let mut d = Decision::default();
        for (i, rule) in self.plan.rules.iter().enumerate() {
            let matches = rule.tid.as_deref().is_none_or(|t| Some(t) == target.tid)
                && rule.mid.as_deref().is_none_or(|m| Some(m) == target.mid)
                && rule
                    .card
                    .as_deref()
                    .is_none_or(|c| target.pan.is_some_and(|p| p.starts_with(c)))
                && rule.kind.is_none_or(|k| Some(k) == target.kind)
                && rule.reversal.is_none_or(|r| r == target.reversal)
                && rule.count_max.is_none_or(|max| self.fired[i] < max);
            if !matches || self.rng.unit() >= rule.probability {
                continue;
            }
            self.fired[i] += 1;
            d.fired.push(rule.name.clone());
            match &rule.action {
                Action::Delay { ms } => {
                    d.delay_ms = d.delay_ms.saturating_add(*ms).min(DELAY_MS_MAX)
                }
                Action::Drop => d.drop = true,
                Action::Close => d.close = true,
                Action::CorruptMac => d.corrupt_mac = true,
                Action::Code(code) => {
                    d.code.get_or_insert((*code, rule.name.clone()));
                }
                Action::IssuerTimeout => d.issuer_timeout = true,
                Action::StorageError => d.storage_error = true,
                Action::LateAnswer => {
                    d.issuer_timeout = true;
                    d.divergence.late_answer = true;
                }
                Action::SwitchLoseReversal => d.divergence.lose_reversal = true,
                Action::SwitchDuplicate => d.divergence.duplicate = true,
                Action::SwitchAmount { delta_fen } => d.divergence.amount_delta_fen = *delta_fen,
                Action::SwitchNextDay => d.divergence.next_day = true,
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_matches_by_terminal_and_kind_and_stops_at_its_count() {
        let plan = FaultPlan::parse(
            r#"
            [[rules]]
            tid = "10000001"
            kind = "sale"
            action = "drop"
            count_max = 1
            "#,
        )
        .unwrap();
        let mut state = FaultState::new(plan);
        let sale = Target {
            tid: Some("10000001"),
            kind: Some(TransactionKind::Sale),
            ..Target::default()
        };
        let other = Target {
            tid: Some("10000002"),
            ..sale.clone()
        };
        assert!(!state.decide(&other).drop);
        assert!(state.decide(&sale).drop);
        assert!(!state.decide(&sale).drop, "count_max = 1");
    }

    #[test]
    fn probabilities_follow_the_seed() {
        let text = "seed = 3\n[[rules]]\naction = \"close\"\nprobability = 0.25\n";
        let run = || {
            let mut s = FaultState::new(FaultPlan::parse(text).unwrap());
            (0..1000)
                .filter(|_| s.decide(&Target::default()).close)
                .count()
        };
        let n = run();
        assert_eq!(n, run(), "same seed, same faults");
        assert!((180..320).contains(&n), "{n} of 1000 at p = 0.25");
    }

    #[test]
    fn bad_plans_are_refused_with_the_rule_named() {
        for (text, needle) in [
            ("[[rules]]\nname = \"x\"\naction = \"explode\"\n", "explode"),
            ("[[rules]]\naction = \"delay\"\n", "delay_ms"),
            (
                "[[rules]]\naction = \"code\"\ncode = \"5\"\n",
                "not a response code",
            ),
            (
                "[[rules]]\naction = \"drop\"\nprobability = 2.0\n",
                "probability",
            ),
            ("[[rules]]\naction = \"drop\"\nkind = \"salez\"\n", "salez"),
        ] {
            let err = FaultPlan::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
