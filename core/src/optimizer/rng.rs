//! The seedable pseudo-random generator every randomised optimizer uses.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoroshiro128PlusPlus;

/// A small, fast, seedable generator (xoroshiro128++, 16 bytes), so that every run
/// of a randomised optimizer is reproducible from its `u64` seed. Not for secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prng(Xoroshiro128PlusPlus);

#[cfg(feature = "defmt")]
impl defmt::Format for Prng {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Prng");
    }
}

impl Prng {
    /// A generator whose whole sequence is fixed by `seed` (expanded by splitmix64,
    /// so nearby seeds give unrelated sequences).
    pub fn new(seed: u64) -> Self {
        Prng(Xoroshiro128PlusPlus::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-shift: the bias is below
    /// `n / 2^64`, far under anything an optimizer could notice.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_ranges_hold() {
        let (mut a, mut b) = (Prng::new(1), Prng::new(1));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Prng::new(1).next_u64(), Prng::new(2).next_u64());
        assert_eq!(a.below(0), 0);
        for _ in 0..1000 {
            assert!(a.below(7) < 7);
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(!a.chance(0.0));
        assert!(a.chance(1.0));
        let hits = (0..10_000).filter(|_| b.chance(0.9)).count();
        assert!((8_800..9_200).contains(&hits), "{hits}");
    }
}
