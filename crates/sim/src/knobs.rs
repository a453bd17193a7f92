//! Fault knobs, in the manner of TigerBeetle's simulator: a probability per path and per
//! kind of fault, drawn from one seeded stream.

use poskit_domain::rand::SplitMix64;
use serde::Deserialize;

/// Probabilities (0 to 1) of each fault, per message or per operation.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    /// A request lost on its way to the host.
    pub request_loss: f64,
    /// An answer lost on its way back.
    pub answer_loss: f64,
    /// A request delivered twice (a retransmitting network element).
    pub duplicate: f64,
    /// An answer delayed past the terminal's timeout (it arrives late, or never matters).
    pub delay: f64,
    /// The connection resets before the request leaves (the terminal knows it never left).
    pub reset: f64,
    /// An approval whose MAC is corrupted on the way back.
    pub corrupt_mac: f64,
    /// The issuer times out (the host answers 98).
    pub issuer_timeout: f64,
    /// The host crashes and restarts: for `host_down_ms` every request is lost.
    pub host_crash: f64,
    pub host_down_ms: u64,
    /// The terminal crashes right after sending (and restarts from its journal).
    pub terminal_crash: f64,
    /// The printer jams after an approval (the terminal reverses with 96).
    pub printer_jam: f64,
    /// One-way network latency, in simulated ms.
    pub latency_ms: u64,
    /// The terminal's answer timeout, in simulated ms.
    pub timeout_ms: u64,
    /// A terminal's link to the host is cut (drawn per request the terminal sends): for
    /// `partition_ms` every message on it, either way, is lost. Simulation only (the
    /// real-network proxy does not apply it).
    pub partition: f64,
    pub partition_ms: u64,
    /// A terminal's link to the host clogs (drawn per request the terminal sends): for
    /// `clog_ms` every message on it, either way, is held, then delivered in the order
    /// sent — perhaps after the terminal's timeout. Simulation only.
    pub clog: f64,
    pub clog_ms: u64,
    /// A request's storage fails after its postings are written (drawn per request): the
    /// writer rolls its group back and does it again request by request; that one is 96.
    pub storage_statement: f64,
    /// A group's commit fails (drawn per group; SQLite's commit hook turns it into a
    /// rollback). Half of the time the writer's retry fails too, and the group is 96.
    pub storage_commit: f64,
    /// The disk fills up (drawn per group): for `disk_full_ms` the database may not grow,
    /// so inserts fail with SQLite's own SQLITE_FULL.
    pub disk_full: f64,
    pub disk_full_ms: u64,
    /// The host's machine loses power after a group's answers left (drawn per group):
    /// everything not synced is lost, the host restarts from its files. Needs the crash
    /// VFS of the tests (`World::with_power_cut`); refused otherwise.
    pub power_cut: f64,
    /// The switch's record departs from the host's, per request for a card of an external
    /// issuer (`poskit_host::switch::Divergence`): the issuer approves after the host said
    /// 98; a reversal is lost before the switch; the switch records a message twice,
    /// clears another amount, or stamps it on the next clearing day. Reconciliation must
    /// find each as its class.
    pub switch_late_answer: f64,
    pub switch_lose_reversal: f64,
    pub switch_duplicate: f64,
    pub switch_amount: f64,
    pub switch_next_day: f64,
}

/// The longest partition or clog a knob may ask for, in simulated ms (ten minutes: a
/// terminal's reversal, retried every timeout, outlasts it).
pub const LINK_FAULT_MS_MAX: u64 = 600_000;

impl Default for Knobs {
    fn default() -> Self {
        Knobs::none()
    }
}

impl Knobs {
    pub fn none() -> Knobs {
        Knobs {
            request_loss: 0.0,
            answer_loss: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            reset: 0.0,
            corrupt_mac: 0.0,
            issuer_timeout: 0.0,
            host_crash: 0.0,
            host_down_ms: 2_000,
            terminal_crash: 0.0,
            printer_jam: 0.0,
            latency_ms: 20,
            timeout_ms: 5_000,
            partition: 0.0,
            // Longer than the terminal's timeout: a request, its reversal and more are lost.
            partition_ms: 8_000,
            clog: 0.0,
            // Longer than the terminal's timeout too: what was sent early in a clog is
            // answered late (after the terminal gave up and perhaps sent a reversal), what
            // was sent later in it is answered in time.
            clog_ms: 6_000,
            storage_statement: 0.0,
            storage_commit: 0.0,
            disk_full: 0.0,
            disk_full_ms: 3_000,
            power_cut: 0.0,
            switch_late_answer: 0.0,
            switch_lose_reversal: 0.0,
            switch_duplicate: 0.0,
            switch_amount: 0.0,
            switch_next_day: 0.0,
        }
    }

    /// What a shop on a bad day sees.
    pub fn mild() -> Knobs {
        Knobs {
            request_loss: 0.01,
            answer_loss: 0.02,
            duplicate: 0.005,
            delay: 0.01,
            reset: 0.01,
            corrupt_mac: 0.002,
            issuer_timeout: 0.005,
            host_crash: 0.0005,
            terminal_crash: 0.002,
            printer_jam: 0.002,
            partition: 0.001,
            clog: 0.002,
            storage_statement: 0.001,
            storage_commit: 0.0005,
            switch_late_answer: 0.002,
            switch_lose_reversal: 0.02,
            switch_duplicate: 0.002,
            switch_amount: 0.002,
            switch_next_day: 0.002,
            ..Knobs::none()
        }
    }

    /// Everything at once, often.
    pub fn harsh() -> Knobs {
        Knobs {
            request_loss: 0.08,
            answer_loss: 0.1,
            duplicate: 0.05,
            delay: 0.05,
            reset: 0.05,
            corrupt_mac: 0.02,
            issuer_timeout: 0.03,
            host_crash: 0.005,
            terminal_crash: 0.02,
            printer_jam: 0.02,
            partition: 0.005,
            clog: 0.01,
            storage_statement: 0.005,
            storage_commit: 0.003,
            disk_full: 0.0005,
            switch_late_answer: 0.01,
            switch_lose_reversal: 0.1,
            switch_duplicate: 0.01,
            switch_amount: 0.01,
            switch_next_day: 0.01,
            ..Knobs::none()
        }
    }

    /// `none`, `mild`, `harsh`, or a TOML file of knobs (missing ones are zero).
    pub fn named_or_file(text: &str) -> Result<Knobs, String> {
        match text {
            "none" => Ok(Knobs::none()),
            "mild" => Ok(Knobs::mild()),
            "harsh" => Ok(Knobs::harsh()),
            path => {
                let body = std::fs::read_to_string(path).map_err(|e| {
                    format!("--faults {path}: not none, mild, harsh, nor a readable file ({e})")
                })?;
                let knobs: Knobs =
                    toml::from_str(&body).map_err(|e| format!("--faults {path}: {e}"))?;
                knobs
                    .validate()
                    .map_err(|e| format!("--faults {path}: {e}"))?;
                Ok(knobs)
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("request_loss", self.request_loss),
            ("answer_loss", self.answer_loss),
            ("duplicate", self.duplicate),
            ("delay", self.delay),
            ("reset", self.reset),
            ("corrupt_mac", self.corrupt_mac),
            ("issuer_timeout", self.issuer_timeout),
            ("host_crash", self.host_crash),
            ("terminal_crash", self.terminal_crash),
            ("printer_jam", self.printer_jam),
            ("partition", self.partition),
            ("clog", self.clog),
            ("storage_statement", self.storage_statement),
            ("storage_commit", self.storage_commit),
            ("disk_full", self.disk_full),
            ("power_cut", self.power_cut),
            ("switch_late_answer", self.switch_late_answer),
            ("switch_lose_reversal", self.switch_lose_reversal),
            ("switch_duplicate", self.switch_duplicate),
            ("switch_amount", self.switch_amount),
            ("switch_next_day", self.switch_next_day),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p} is not a probability"));
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms <= 2 * self.latency_ms {
            return Err("timeout_ms must exceed two latencies".into());
        }
        for (name, ms) in [
            ("partition_ms", self.partition_ms),
            ("clog_ms", self.clog_ms),
            ("disk_full_ms", self.disk_full_ms),
        ] {
            if ms > LINK_FAULT_MS_MAX {
                return Err(format!(
                    "{name} = {ms} is longer than {LINK_FAULT_MS_MAX} ms"
                ));
            }
        }
        Ok(())
    }
}

/// The simulation's random stream: the domain's SplitMix64, its seed salted so that a
/// simulation seed and a fault plan's seed of the same number draw different streams.
pub type Rng = SplitMix64;

/// The stream of a simulation seed.
pub fn rng(seed: u64) -> Rng {
    SplitMix64::new(seed ^ 0x0005_EED0_F000_5C17)
}
