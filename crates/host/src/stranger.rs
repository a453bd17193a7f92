//! Requests that did not prove themselves (invariant 9): why, how many, from where. They
//! cost counters and a bounded, rate-limited log — never a ledger row.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::logbudget::LogBudget;

/// Why a request was answered without being recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stranger {
    /// The frame does not decode or read (30), and nothing in it proves its sender.
    Undecodable,
    /// Terminal not registered, registered elsewhere, deactivated (97), or its merchant
    /// refused (03) without a MAC that verifies.
    UnknownTerminal,
    /// MAC missing, wrong, or no MAC key (A0).
    BadMac,
}

impl Stranger {
    pub const ALL: [Stranger; 3] = [
        Stranger::Undecodable,
        Stranger::UnknownTerminal,
        Stranger::BadMac,
    ];

    /// The metric label.
    pub fn slug(self) -> &'static str {
        match self {
            Stranger::Undecodable => "undecodable",
            Stranger::UnknownTerminal => "unknown_terminal",
            Stranger::BadMac => "bad_mac",
        }
    }

    fn index(self) -> usize {
        match self {
            Stranger::Undecodable => 0,
            Stranger::UnknownTerminal => 1,
            Stranger::BadMac => 2,
        }
    }
}

/// Peer addresses counted apart at most; past it, the rest are counted as "other".
pub const PEERS_COUNTED_MAX: usize = 4096;
/// Log lines about strangers per interval at most; the rest are counted in the next line.
pub const LOG_LINES_PER_INTERVAL_MAX: u32 = 10;
/// Refusals kept with their reason for operators and tests ([`StrangerCounters::recent`]).
pub const RECENT_MAX: usize = 256;
/// The interval of [`LOG_LINES_PER_INTERVAL_MAX`].
pub const LOG_INTERVAL_MS: u64 = 10_000;

/// A refusal answered and not recorded: who, and why.
#[derive(Clone, Debug)]
pub struct Recent {
    pub peer: IpAddr,
    pub why: Stranger,
    pub tid: Option<String>,
    pub stan: Option<String>,
    pub reason: String,
}

/// Metrics-ready counters of requests answered and not recorded.
#[derive(Debug, Default)]
pub struct StrangerCounters {
    by_reason: [AtomicU64; 3],
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_peer: HashMap<IpAddr, u64>,
    /// Counted from addresses past [`PEERS_COUNTED_MAX`].
    other_peers: u64,
    recent: VecDeque<Recent>,
    log: Option<LogBudget>,
}

impl StrangerCounters {
    /// Counts one, and logs it unless the interval's lines are spent.
    pub fn count(
        &self,
        why: Stranger,
        peer: IpAddr,
        tid: Option<&str>,
        stan: Option<&str>,
        reason: &str,
    ) {
        self.by_reason[why.index()].fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = inner.by_peer.get_mut(&peer) {
            *n += 1;
        } else if inner.by_peer.len() < PEERS_COUNTED_MAX {
            inner.by_peer.insert(peer, 1);
        } else {
            inner.other_peers += 1;
        }
        assert!(inner.by_peer.len() <= PEERS_COUNTED_MAX);
        if inner.recent.len() == RECENT_MAX {
            inner.recent.pop_front();
        }
        inner.recent.push_back(Recent {
            peer,
            why,
            tid: tid.map(str::to_owned),
            stan: stan.map(str::to_owned),
            reason: reason.to_owned(),
        });
        let log = inner
            .log
            .get_or_insert_with(|| LogBudget::new(LOG_INTERVAL_MS, LOG_LINES_PER_INTERVAL_MAX));
        let Some(suppressed) = log.allow(Instant::now()) else {
            return;
        };
        drop(inner);
        tracing::warn!(
            %peer,
            tid = tid.unwrap_or("-"),
            why = why.slug(),
            reason,
            suppressed_before = suppressed,
            "request answered and not recorded: it did not prove itself"
        );
    }

    /// The last refusals answered and not recorded, oldest first ([`RECENT_MAX`] at most).
    pub fn recent(&self) -> Vec<Recent> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.recent.iter().cloned().collect()
    }

    /// Requests answered and not recorded, for this reason.
    pub fn of(&self, why: Stranger) -> u64 {
        self.by_reason[why.index()].load(Ordering::Relaxed)
    }

    /// Requests answered and not recorded from this address (`None` when it was not
    /// counted apart).
    pub fn of_peer(&self, peer: IpAddr) -> Option<u64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_peer.get(&peer).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_bounded_in_peers() {
        let c = StrangerCounters::default();
        for i in 0..(PEERS_COUNTED_MAX as u32 + 10) {
            c.count(
                Stranger::BadMac,
                IpAddr::from(i.to_be_bytes()),
                None,
                None,
                "test",
            );
        }
        assert_eq!(c.of(Stranger::BadMac), PEERS_COUNTED_MAX as u64 + 10);
        assert_eq!(c.of(Stranger::Undecodable), 0);
        assert_eq!(c.of_peer(IpAddr::from([0, 0, 0, 1])), Some(1));
        let mut inner = c.inner.lock().unwrap();
        assert_eq!(inner.other_peers, 10);
        let log = inner.log.as_mut().expect("the first count opened the log");
        assert_eq!(
            log.allow(std::time::Instant::now()),
            None,
            "the log is rate-limited"
        );
    }
}
