//! Sorting a day's records, which come nearly in order: the ledger in id order is in time
//! order but for a few (on-us transactions without a key, traces that wrap within a
//! second, late writes of earlier days), and so is a file written as the day went. One
//! pass sets aside what breaks the order, the few set aside are sorted, and merged back:
//! two passes over the records instead of a sort's twenty-odd.

/// Records of the order kept whose key is above the next one's that are set aside with
/// it: an outlier above (a record without a key amid the keyed ones) is set aside rather
/// than everything after it.
const LIFTED_MAX: usize = 8;

/// Sorts `items` by `key` (keys unique, or their order among equals does not matter). In
/// about two passes when at most an eighth of them are out of place; else an unstable
/// sort.
pub(crate) fn sort_nearly_sorted<T: Copy, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K) {
    let aside_max = items.len() / 8;
    let mut aside: Vec<T> = Vec::new();
    // items[..kept] is in order; items[kept..at] are copies of what went aside.
    let mut kept = 0;
    for at in 0..items.len() {
        let item = items[at];
        let k = key(&item);
        let above = items[..kept]
            .iter()
            .rev()
            .take(LIFTED_MAX + 1)
            .take_while(|x| key(x) > k)
            .count();
        if above > LIFTED_MAX {
            aside.push(item);
        } else {
            aside.extend_from_slice(&items[kept - above..kept]);
            kept -= above;
            if kept != at {
                items[kept] = item;
            }
            kept += 1;
        }
        if aside.len() > aside_max {
            items[kept..=at].copy_from_slice(&aside);
            items.sort_unstable_by_key(key);
            return;
        }
    }
    aside.sort_unstable_by_key(&key);
    // Merged from the end, into the room the records set aside left.
    let (mut i, mut j, mut out) = (kept, aside.len(), items.len());
    while j > 0 {
        out -= 1;
        if i > 0 && key(&items[i - 1]) > key(&aside[j - 1]) {
            i -= 1;
            items[out] = items[i];
        } else {
            j -= 1;
            items[out] = aside[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poskit_domain::rand::SplitMix64;

    fn check(mut items: Vec<u64>) {
        let mut expected = items.clone();
        expected.sort_unstable();
        sort_nearly_sorted(&mut items, |x| *x);
        assert_eq!(items, expected);
    }

    #[test]
    fn outliers_wraps_late_ones_and_disorder_all_sort() {
        let ordered: Vec<u64> = (0..10_000).collect();
        check(ordered.clone());
        // Every twentieth far above (no key), in pairs now and then.
        check(
            (0..10_000)
                .map(|i| {
                    if i % 20 == 7 || i % 97 == 8 {
                        u64::MAX - i
                    } else {
                        i
                    }
                })
                .collect(),
        );
        // A counter wrapping within a time: (time, trace) as one number.
        check(
            (0..10_000u64)
                .map(|i| (i / 50) * 1_000 + (i * 7 + 990) % 1_000)
                .collect(),
        );
        // A few late ones, far below, at the end.
        let mut late = ordered.clone();
        late.extend([5, 3, 1]);
        check(late);
        // Reversed, and shuffled: more than an eighth out of place.
        check(ordered.iter().rev().copied().collect());
        let mut rng = SplitMix64::new(7);
        check((0..10_000).map(|_| rng.below(1_000)).collect());
        check(Vec::new());
    }
}
