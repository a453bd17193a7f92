//! Which traces of a batch have a row under the idempotency key, as the writer knows them:
//! a request whose trace has none — nearly every request — is answered "not seen" without
//! the key lookup, a seek in the key index that was a tenth of an authorization's
//! instructions in the writer.
//!
//! The filter only ever errs on the safe side. A batch is known once all its keyed rows
//! have been read; from then on every row the writer inserts under the key adds its STAN.
//! A STAN it holds (a resend, a reversal's original) is looked up in the database as
//! before, and so is any batch it does not know: not loaded yet, too large to load, or
//! forgotten when the filter outgrew its memory. Its owner, the [`super::sqlite::WriterCache`],
//! empties it with everything else when another connection writes or a transaction rolls
//! back.

use foldhash::{HashMap, HashSet};

use poskit_domain::{Batch, Mid, Stan, Tid};

/// STANs a batch keeps in a hash set before it takes a bitmap with a bit for each STAN.
const FEW_STANS_MAX: usize = 4_096;
/// Words of a bitmap of STANs 0 to 999999.
const BITMAP_WORDS: usize = (Stan::MAX as usize + 1).div_ceil(64);
/// What the filter counts per STAN of a hash set and per batch (a rough upper bound).
const SET_ENTRY_BYTES: usize = 8;
const BATCH_ENTRY_BYTES: usize = 64;
/// The memory the filter takes at most; past it, it starts again from empty and batches
/// are read again as requests name them.
const TRACE_FILTER_BYTES_MAX: usize = 64 << 20;
/// Keyed rows a batch may have to be loaded; a larger one is looked up in the database
/// request by request.
pub const TRACE_LOAD_ROWS_MAX: usize = 100_000;

enum Stans {
    Few(HashSet<u32>),
    Many(Box<[u64]>),
    /// Too many rows to load: every lookup goes to the database.
    Unfiltered,
}

impl Stans {
    fn contains(&self, stan: u32) -> bool {
        match self {
            Stans::Few(set) => set.contains(&stan),
            Stans::Many(bits) => bits[stan as usize / 64] & (1 << (stan % 64)) != 0,
            Stans::Unfiltered => true,
        }
    }

    /// Adds a STAN; returns the bytes the filter grew by.
    fn insert(&mut self, stan: u32) -> usize {
        match self {
            Stans::Few(set) if set.len() < FEW_STANS_MAX => {
                usize::from(set.insert(stan)) * SET_ENTRY_BYTES
            }
            Stans::Few(set) => {
                let mut bits = vec![0u64; BITMAP_WORDS].into_boxed_slice();
                for s in set.iter().copied().chain([stan]) {
                    bits[s as usize / 64] |= 1 << (s % 64);
                }
                let grew = (BITMAP_WORDS * 8).saturating_sub(set.len() * SET_ENTRY_BYTES);
                *self = Stans::Many(bits);
                grew
            }
            Stans::Many(bits) => {
                bits[stan as usize / 64] |= 1 << (stan % 64);
                0
            }
            Stans::Unfiltered => 0,
        }
    }
}

/// What the filter says of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    /// No row of this trace is on file under the key.
    Unseen,
    /// A row may be on file: look it up.
    Maybe,
    /// The batch is not known: load it ([`TraceFilter::load`]) or look the trace up.
    BatchUnknown,
}

/// The STANs on file under the key, for the batches the writer has asked about.
#[derive(Default)]
pub struct TraceFilter {
    batches: HashMap<(Tid, Mid, Batch), Stans>,
    bytes: usize,
}

impl TraceFilter {
    pub fn trace(&self, tid: Tid, mid: Mid, batch: Batch, stan: Stan) -> Trace {
        match self.batches.get(&(tid, mid, batch)) {
            None => Trace::BatchUnknown,
            Some(stans) if stans.contains(stan.value()) => Trace::Maybe,
            Some(_) => Trace::Unseen,
        }
    }

    /// Takes a batch's STANs as read from the database: all of them, or `None` when it has
    /// more than [`TRACE_LOAD_ROWS_MAX`].
    pub fn load(&mut self, tid: Tid, mid: Mid, batch: Batch, stans: Option<Vec<u32>>) {
        let mut loaded = Stans::Few(HashSet::default());
        let mut bytes = BATCH_ENTRY_BYTES;
        match stans {
            Some(list) => {
                for stan in list {
                    bytes += loaded.insert(stan);
                }
            }
            None => loaded = Stans::Unfiltered,
        }
        self.make_room(bytes);
        self.bytes += bytes;
        self.batches.insert((tid, mid, batch), loaded);
    }

    /// A row now on file under the key (in the transaction the filter's owner commits or,
    /// on failure, clears it with).
    pub fn insert(&mut self, tid: Tid, mid: Mid, batch: Batch, stan: Stan) {
        let Some(stans) = self.batches.get_mut(&(tid, mid, batch)) else {
            return;
        };
        let grew = stans.insert(stan.value());
        if self.bytes + grew > TRACE_FILTER_BYTES_MAX {
            // Forgetting is always safe: what the filter does not know is looked up.
            self.clear();
        } else {
            self.bytes += grew;
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    fn make_room(&mut self, bytes: usize) {
        if self.bytes + bytes > TRACE_FILTER_BYTES_MAX {
            self.clear();
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Tid, Mid, Batch) {
        (
            Tid::parse("10000001").unwrap(),
            Mid::parse("898100000000001").unwrap(),
            Batch::new(1).unwrap(),
        )
    }

    fn stan(n: u32) -> Stan {
        Stan::new(n).unwrap()
    }

    #[test]
    fn a_batch_not_loaded_is_unknown_and_inserts_into_it_are_not_kept() {
        let (tid, mid, batch) = ids();
        let mut filter = TraceFilter::default();
        filter.insert(tid, mid, batch, stan(5));
        assert_eq!(filter.trace(tid, mid, batch, stan(5)), Trace::BatchUnknown);
        filter.load(tid, mid, batch, Some(vec![7]));
        assert_eq!(filter.trace(tid, mid, batch, stan(5)), Trace::Unseen);
        assert_eq!(filter.trace(tid, mid, batch, stan(7)), Trace::Maybe);
        let other = Batch::new(2).unwrap();
        assert_eq!(filter.trace(tid, mid, other, stan(7)), Trace::BatchUnknown);
    }

    #[test]
    fn every_stan_inserted_stays_seen_through_the_change_to_a_bitmap() {
        let (tid, mid, batch) = ids();
        let mut filter = TraceFilter::default();
        filter.load(tid, mid, batch, Some(vec![0, 999_999]));
        let inserted: Vec<u32> = (0..3 * FEW_STANS_MAX as u32)
            .map(|i| i * 97 % 999_983)
            .collect();
        for &s in &inserted {
            filter.insert(tid, mid, batch, stan(s));
        }
        for s in inserted.iter().copied().chain([0, 999_999]) {
            assert_eq!(filter.trace(tid, mid, batch, stan(s)), Trace::Maybe, "{s}");
        }
        let unseen = (0..=Stan::MAX)
            .filter(|s| filter.trace(tid, mid, batch, stan(*s)) == Trace::Unseen)
            .count();
        let mut distinct = inserted.clone();
        distinct.extend([0, 999_999]);
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(unseen, Stan::MAX as usize + 1 - distinct.len());
        assert!(filter.bytes() >= BITMAP_WORDS * 8);
    }

    #[test]
    fn a_batch_too_large_to_load_is_always_looked_up() {
        let (tid, mid, batch) = ids();
        let mut filter = TraceFilter::default();
        filter.load(tid, mid, batch, None);
        assert_eq!(filter.trace(tid, mid, batch, stan(1)), Trace::Maybe);
        filter.insert(tid, mid, batch, stan(1));
        assert_eq!(filter.trace(tid, mid, batch, stan(2)), Trace::Maybe);
    }

    #[test]
    fn past_its_memory_the_filter_forgets_and_stays_bounded() {
        let mut filter = TraceFilter::default();
        let mid = Mid::parse("898100000000001").unwrap();
        let bitmaps = TRACE_FILTER_BYTES_MAX / (BITMAP_WORDS * 8) + 2;
        for t in 0..bitmaps as u32 {
            let tid = Tid::parse(&format!("{:08}", 10_000_000 + t)).unwrap();
            let batch = Batch::new(1).unwrap();
            let many: Vec<u32> = (0..=FEW_STANS_MAX as u32).collect();
            filter.load(tid, mid, batch, Some(many));
            assert!(filter.bytes() <= TRACE_FILTER_BYTES_MAX);
            assert_eq!(filter.trace(tid, mid, batch, stan(1)), Trace::Maybe);
        }
        let first = Tid::parse("10000000").unwrap();
        let batch = Batch::new(1).unwrap();
        assert_eq!(
            filter.trace(first, mid, batch, stan(1)),
            Trace::BatchUnknown
        );
    }
}
