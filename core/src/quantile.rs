//! Streaming quantiles without allocation: a log-linear histogram.
//!
//! Each binade `[2^e, 2^(e+1))` is cut into 32 equal buckets, found straight from
//! the bits of an `f32` (exponent and top 5 mantissa bits), so recording a value is
//! a shift and an increment. The histogram covers `[2^-24, 2^16)` (60 ns to 18 h
//! when the unit is seconds) in 1280 buckets of `u32`, 5 KiB.
//!
//! **Error bound.** [`LogHistogram::quantile`] returns the nearest-rank quantile's
//! bucket midpoint, clamped to the recorded minimum and maximum. A bucket is at most
//! `1/32` of its lower edge wide, so for values inside the covered range the
//! estimate is within `1/64` (1.5625 %) of the exact nearest-rank quantile. Values
//! outside the range are clamped into the first or last bucket (the minimum and
//! maximum themselves stay exact).

/// Sub-bucket bits per binade.
const SUB_BITS: u32 = 5;
/// Smallest covered binade exponent.
const MIN_EXP: i32 = -24;
/// First binade exponent past the covered range.
const MAX_EXP: i32 = 16;
/// Number of buckets.
pub const BUCKETS: usize = ((MAX_EXP - MIN_EXP) as usize) << SUB_BITS;
/// Guaranteed relative error of [`LogHistogram::quantile`] inside the covered range.
pub const RELATIVE_ERROR: f64 = 1.0 / (1u32 << (SUB_BITS + 1)) as f64;

/// The bit pattern shift that leaves exponent and sub-bucket bits.
const SHIFT: u32 = 23 - SUB_BITS;
/// Bucket key of the first bucket.
const FIRST_KEY: u32 = ((127 + MIN_EXP) as u32) << SUB_BITS;

/// A fixed-size histogram of non-negative values, see the module doc.
#[derive(Clone)]
pub struct LogHistogram {
    counts: [u32; BUCKETS],
    count: u32,
    min: f32,
    max: f32,
}

impl Default for LogHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for LogHistogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LogHistogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

fn bucket_of(v: f32) -> usize {
    let lo = f32::from_bits(FIRST_KEY << SHIFT);
    if v.is_nan() || v <= lo {
        return 0;
    }
    let key = (v.to_bits() >> SHIFT).saturating_sub(FIRST_KEY) as usize;
    key.min(BUCKETS - 1)
}

fn bucket_mid(index: usize) -> f32 {
    let key = FIRST_KEY + index as u32;
    let lo = f32::from_bits(key << SHIFT);
    let hi = f32::from_bits((key + 1) << SHIFT);
    0.5 * (lo + hi)
}

impl LogHistogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        LogHistogram {
            counts: [0; BUCKETS],
            count: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }

    /// Records one value. Negative and NaN values count as the smallest bucket;
    /// callers validate their inputs before (see the cost window).
    pub fn record(&mut self, v: f32) {
        let i = bucket_of(v);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.count = self.count.saturating_add(1);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The smallest value recorded, exact.
    pub fn min(&self) -> Option<f32> {
        (self.count > 0).then_some(self.min)
    }

    /// The largest value recorded, exact.
    pub fn max(&self) -> Option<f32> {
        (self.count > 0).then_some(self.max)
    }

    /// The nearest-rank `q`-quantile (`q` in `[0, 1]`, clamped) within
    /// [`RELATIVE_ERROR`]; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f32> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = (libm::ceil(q * self.count as f64) as u32).max(1);
        let mut seen = 0u32;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_mid(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn exact(values: &[f32], q: f64) -> f32 {
        let mut v: Vec<f32> = values.to_vec();
        v.sort_by(f32::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).max(1);
        v[rank - 1]
    }

    #[test]
    fn buckets_tile_the_range() {
        assert_eq!(BUCKETS, 1280);
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(-1.0), 0);
        assert_eq!(bucket_of(f32::INFINITY), BUCKETS - 1);
        assert_eq!(bucket_of(1.0), (24 << 5) as usize);
        assert_eq!(bucket_of(1.0 + 1.0 / 32.0), (24 << 5) as usize + 1);
        assert!(bucket_mid(0) > 0.0);
    }

    #[test]
    fn empty_and_single() {
        let mut h = LogHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        h.record(0.25);
        assert_eq!(h.quantile(0.99), Some(0.25));
        assert_eq!(h.min(), Some(0.25));
        h.clear();
        assert_eq!(h.count(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        #[test]
        fn quantiles_within_the_stated_bound(
            values in prop::collection::vec(1e-6f32..1e4, 1..2000),
            q in 0.0f64..=1.0,
        ) {
            let mut h = LogHistogram::new();
            for &v in &values { h.record(v); }
            let truth = exact(&values, q) as f64;
            let est = h.quantile(q).unwrap() as f64;
            prop_assert!((est - truth).abs() <= truth * RELATIVE_ERROR,
                "q={q} est={est} exact={truth}");
            for p in [0.5, 0.95, 0.99] {
                let truth = exact(&values, p) as f64;
                let est = h.quantile(p).unwrap() as f64;
                prop_assert!((est - truth).abs() <= truth * RELATIVE_ERROR);
            }
        }
    }
}
