//! What a simulation found.

use std::collections::BTreeMap;

use serde_json::{Value, json};

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    /// Operations the workload asked of the terminals.
    pub transactions: u64,
    pub approved: u64,
    /// Declines and failures by code (host codes and local L codes).
    pub declined: BTreeMap<String, u64>,
    /// Codes the host answered, by count (every message).
    pub host_codes: BTreeMap<String, u64>,
    pub faults: BTreeMap<String, u64>,
    /// Reversals the terminals delivered (in the operation or before a later one).
    pub reversals_delivered: u64,
    pub reversals_done_in_operation: u64,
    pub reversals_pending_at_answer: u64,
    pub reversals_failed: u64,
    pub settlements_balanced: u64,
    pub settlements_unbalanced: u64,
    /// Terminals simulated, and how many of them closed their batch in the final recovery.
    pub terminals: u64,
    pub recovery_settled: u64,
    /// Transactions left for the acquirer (a reversal that gave up), each with its fix.
    pub breaks: Vec<String>,
    pub violations: Vec<String>,
    /// The clearing day's reconciliation against the switch's files: matched, breaks by
    /// class, divergences injected, credit adjustments posted.
    pub recon: Option<Value>,
    /// The alerts the host's rules fired during the run, by rule.
    pub alerts: BTreeMap<String, u64>,
    /// The first alert of each rule: its subject, what held and its most likely cause.
    pub alert_examples: Vec<Value>,
    pub elapsed_ms: u64,
}

impl Report {
    pub fn new(seed: u64) -> Report {
        Report {
            seed,
            ..Report::default()
        }
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn json(&self) -> Value {
        json!({
            "seed": self.seed,
            "transactions": self.transactions,
            "approved": self.approved,
            "declined": self.declined,
            "host_codes": self.host_codes,
            "faults": self.faults,
            "reversals": self.reversals_delivered,
            "reversals_failed": self.reversals_failed,
            "settlements": {"balanced": self.settlements_balanced, "unbalanced_then_uploaded": self.settlements_unbalanced},
            "recovery": {"terminals": self.terminals, "settled": self.recovery_settled},
            "breaks": self.breaks,
            "violations": self.violations,
            "recon": self.recon,
            "alerts": {"fired": self.alerts, "examples": self.alert_examples},
            "elapsed_ms": self.elapsed_ms,
        })
    }
}
