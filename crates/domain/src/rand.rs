//! SplitMix64: a small seeded generator, the same on every platform. Pure: the caller
//! chooses the seed and owns the state, so a run with the same seed draws the same numbers
//! (the fault plan's probabilities and the simulation's faults need no more than this).

/// SplitMix64 (Steele, Lea and Flood, 2014). The field is the whole state: `SplitMix64(seed)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

/// The increment of the state on every draw (the odd 64-bit golden ratio).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits of a draw.
    pub fn unit(&mut self) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        debug_assert!((0.0..1.0).contains(&unit));
        unit
    }

    /// Whether an event of probability `p` happens. A `p` ≤ 0 draws nothing, so a knob that
    /// is off leaves the stream where it was.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in `0..n` (`n` = 0 is taken as 1).
    pub fn below(&mut self, n: u64) -> u64 {
        let value = self.next_u64() % n.max(1);
        debug_assert!(value < n.max(1));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn draws_match_the_reference_sequence_for_seed_zero() {
        // The first outputs of the reference implementation (Vigna's splitmix64.c) from 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn unit_chance_and_below_stay_in_their_ranges() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..10_000 {
            assert!((0.0..1.0).contains(&rng.unit()));
            assert!(rng.below(7) < 7);
            assert_eq!(rng.below(0), 0);
        }
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
        let stream = |seed| {
            let mut rng = SplitMix64::new(seed);
            [rng.next_u64(), rng.next_u64(), rng.next_u64()]
        };
        assert_eq!(stream(7), stream(7));
        assert_ne!(stream(7), stream(8));
    }
}
