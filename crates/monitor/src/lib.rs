//! Monitoring (DESIGN.md's `monitor` part): what the host's answers, connections and writer
//! did, as Prometheus metrics (text exposition format 0.0.4).
//!
//! The host publishes each event by one call ([`Metrics::answered`], ...); nothing here
//! computes statistics in the host's writer. No metric has a per-terminal, per-merchant or
//! per-card label (cardinality): those figures belong to statistics.

pub mod alerts;
pub mod diagnose;
pub mod stats;
pub mod webhook;

use std::collections::HashMap;
use std::sync::RwLock;

use poskit_codes::{Catalog, Table};
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Answer latencies, in seconds: 1 ms to 30 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Writer groups: 1 to 512 requests.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Commits (with their fsync), in seconds.
const COMMIT_BUCKETS_S: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Label sets of `poskit_requests_total` kept ready at most.
const HOT_LABEL_SETS_MAX: usize = 4096;

type FoldHash = foldhash::fast::RandomState;

/// (MTI, kind, code) of an answer.
type HotKey = (&'static str, &'static str, [u8; 2]);

/// Every metric the host exports, registered once.
pub struct Metrics {
    registry: Registry,
    /// Per terminal, merchant, BIN and code, by minute, until flushed to `stats.db`.
    pub stats: stats::Recorder,
    requests: IntCounterVec,
    /// The request counters already labelled, by (MTI, kind, code): an answer increments
    /// its counter without hashing four label strings nor asking the catalog for the
    /// code's class (the label sets are few and stay).
    hot: RwLock<HashMap<HotKey, IntCounter, FoldHash>>,
    latency: Histogram,
    group_size: Histogram,
    commit_seconds: Histogram,
    connections_open: IntGauge,
    connections_accepted: IntCounter,
    connections_refused: IntCounterVec,
    connections_closed: IntCounterVec,
    reversals: IntCounter,
    advices: IntCounter,
    faults: IntCounterVec,
    issuer_timeouts: IntCounter,
    strangers: IntCounterVec,
    recon_breaks: IntGaugeVec,
    recon_last_success: IntGauge,
    alerts_firing: IntGaugeVec,
}

/// What one answer was, as a metric sees it.
#[derive(Clone, Copy, Debug)]
pub struct Answered<'a> {
    /// The request's MTI (`0200`, ...).
    pub mti: &'static str,
    /// Its transaction kind's slug (`sale`, ...); `unknown` when it could not be read.
    pub kind: &'static str,
    /// Field 39 answered.
    pub code: &'a str,
    pub reversal: bool,
    pub advice: bool,
    pub latency_s: f64,
}

impl Metrics {
    /// The metrics, with the process's own (`process_*`) when the platform has them.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let m = Metrics {
            hot: RwLock::new(HashMap::default()),
            stats: stats::Recorder::default(),
            requests: counter_vec(
                "poskit_requests_total",
                "Requests answered, by MTI, transaction kind, response code and the code's class.",
                &["mti", "kind", "code", "class"],
            )?,
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    "poskit_answer_latency_seconds",
                    "From a request read to its answer handed to the connection.",
                )
                .buckets(LATENCY_BUCKETS_S.to_vec()),
            )?,
            group_size: Histogram::with_opts(
                HistogramOpts::new(
                    "poskit_writer_group_size",
                    "Requests committed together by the writer (one fsync).",
                )
                .buckets(GROUP_BUCKETS.to_vec()),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "poskit_writer_commit_seconds",
                    "A group's decisions and its commit, fsync included.",
                )
                .buckets(COMMIT_BUCKETS_S.to_vec()),
            )?,
            connections_open: IntGauge::new("poskit_connections_open", "Connections open now.")?,
            connections_accepted: IntCounter::new(
                "poskit_connections_accepted_total",
                "Connections accepted.",
            )?,
            connections_refused: counter_vec(
                "poskit_connections_refused_total",
                "Connections accepted and closed at once, by reason.",
                &["reason"],
            )?,
            connections_closed: counter_vec(
                "poskit_connections_closed_total",
                "Connections closed, by reason.",
                &["reason"],
            )?,
            reversals: IntCounter::new(
                "poskit_reversals_received_total",
                "Reversals (04xx) answered.",
            )?,
            advices: IntCounter::new("poskit_advices_received_total", "Advices (0220) answered.")?,
            faults: counter_vec(
                "poskit_faults_injected_total",
                "Fault-plan rules that fired, by rule name (a plan has at most 256).",
                &["rule"],
            )?,
            issuer_timeouts: IntCounter::new(
                "poskit_issuer_timeouts_total",
                "Requests answered 98: the issuer did not answer in time.",
            )?,
            strangers: counter_vec(
                "poskit_strangers_total",
                "Requests answered and not recorded (unknown terminal, bad MAC, undecodable), by reason.",
                &["reason"],
            )?,
            recon_breaks: IntGaugeVec::new(
                Opts::new(
                    "poskit_recon_breaks",
                    "Open reconciliation breaks, by class, as of the last run.",
                ),
                &["class"],
            )?,
            recon_last_success: IntGauge::new(
                "poskit_recon_last_success_timestamp_seconds",
                "When reconciliation last completed a day (Unix seconds; 0: never).",
            )?,
            alerts_firing: IntGaugeVec::new(
                Opts::new("poskit_alerts_firing", "Alerts firing now, by rule."),
                &["rule", "severity"],
            )?,
            registry,
        };
        m.register_all()?;
        Ok(m)
    }

    /// Every metric of the host's own, as collectors (cheap clones of the handles).
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.latency.clone()),
            Box::new(self.group_size.clone()),
            Box::new(self.commit_seconds.clone()),
            Box::new(self.connections_open.clone()),
            Box::new(self.connections_accepted.clone()),
            Box::new(self.connections_refused.clone()),
            Box::new(self.connections_closed.clone()),
            Box::new(self.reversals.clone()),
            Box::new(self.advices.clone()),
            Box::new(self.faults.clone()),
            Box::new(self.issuer_timeouts.clone()),
            Box::new(self.strangers.clone()),
            Box::new(self.recon_breaks.clone()),
            Box::new(self.recon_last_success.clone()),
            Box::new(self.alerts_firing.clone()),
        ]
    }

    fn register_all(&self) -> Result<(), prometheus::Error> {
        for c in self.collectors() {
            self.registry.register(c)?;
        }
        #[cfg(target_os = "linux")]
        self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(())
    }

    /// The names of every metric family exported (those with labels too, before any
    /// series exists), the `process_*` ones included.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .collectors()
            .iter()
            .flat_map(|c| {
                c.desc()
                    .into_iter()
                    .map(|d| d.fq_name.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        #[cfg(target_os = "linux")]
        out.extend(
            prometheus::process_collector::ProcessCollector::for_self()
                .desc()
                .into_iter()
                .map(|d| d.fq_name.clone()),
        );
        out.sort();
        out
    }

    /// An answer handed to its connection.
    pub fn answered(&self, a: &Answered<'_>) {
        self.request_counter(a).inc();
        self.latency.observe(a.latency_s.max(0.0));
        if a.reversal {
            self.reversals.inc();
        }
        if a.advice {
            self.advices.inc();
        }
        if a.code == "98" {
            self.issuer_timeouts.inc();
        }
    }

    /// The counter of an answer's label set, labelled once.
    fn request_counter(&self, a: &Answered<'_>) -> IntCounter {
        let code: [u8; 2] = match a.code.as_bytes() {
            [x, y] => [*x, *y],
            _ => *b"??",
        };
        let key = (a.mti, a.kind, code);
        if let Some(c) = self.hot.read().ok().and_then(|hot| hot.get(&key).cloned()) {
            return c;
        }
        let class = Catalog::builtin().class_of(Table::CupPos, a.code).as_str();
        let counter = self
            .requests
            .with_label_values(&[a.mti, a.kind, a.code, class]);
        if let Ok(mut hot) = self.hot.write() {
            // Bounded: MTIs, kinds and codes are each a short list.
            if hot.len() < HOT_LABEL_SETS_MAX {
                hot.insert(key, counter.clone());
            }
        }
        counter
    }

    /// A group the writer committed.
    pub fn committed(&self, requests: usize, seconds: f64) {
        self.group_size.observe(requests as f64);
        self.commit_seconds.observe(seconds.max(0.0));
    }

    pub fn connection_accepted(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    pub fn connection_closed(&self, reason: &str) {
        self.connections_closed.with_label_values(&[reason]).inc();
        self.connections_open.dec();
    }

    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused.with_label_values(&[reason]).inc();
    }

    pub fn fault_fired(&self, rule: &str) {
        self.faults.with_label_values(&[rule]).inc();
    }

    pub fn stranger(&self, reason: &str) {
        self.strangers.with_label_values(&[reason]).inc();
    }

    /// Reconciliation's open breaks by class, and when it last completed a day.
    pub fn reconciled(&self, open_by_class: &[(&str, i64)], last_success_unix_s: i64) {
        self.recon_breaks.reset();
        for (class, n) in open_by_class {
            self.recon_breaks.with_label_values(&[class]).set(*n);
        }
        self.recon_last_success.set(last_success_unix_s);
    }

    /// The alerts firing now: (rule, severity, how many).
    pub fn alerts_firing(&self, by_rule: &[(String, String, i64)]) {
        self.alerts_firing.reset();
        for (rule, severity, n) in by_rule {
            self.alerts_firing
                .with_label_values(&[rule.as_str(), severity.as_str()])
                .set(*n);
        }
    }

    /// The text exposition format 0.0.4 of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_counts_by_code_and_class_and_renders_in_the_text_format() {
        let m = Metrics::new().unwrap();
        m.answered(&Answered {
            mti: "0200",
            kind: "sale",
            code: "51",
            reversal: false,
            advice: false,
            latency_s: 0.004,
        });
        m.committed(3, 0.002);
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"poskit_requests_total{class="C",code="51",kind="sale",mti="0200"} 1"#),
            "{text}"
        );
        assert!(text.contains("# TYPE poskit_answer_latency_seconds histogram"));
        assert!(text.contains("poskit_writer_group_size_sum 3"));
    }
}
