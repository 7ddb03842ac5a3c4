//! Figures over a set of served requests: the metrics of ECOGD.md.
//!
//! Per request: latency `l`, energy share `e`, and cost
//! `alpha * e/E0 + (1 - alpha) * l/L0` against one baseline, so that runs compared
//! on a workload share the same `E0, L0`. Quantiles come from the core's
//! [`LogHistogram`] (within 1.6 %), so memory stays fixed however long the run.

use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::quantile::LogHistogram;
use serde::Serialize;

use crate::record::Served;

/// Mean and tail figures of a phase (or a whole run).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct PhaseStats {
    /// Mean per-request cost.
    pub mean_cost: f64,
    /// 95th percentile per-request cost.
    pub p95_cost: f64,
    /// 99th percentile per-request cost.
    pub p99_cost: f64,
    /// Mean energy per request, joules.
    pub mean_energy_j: f64,
    /// Mean latency, seconds.
    pub mean_latency_s: f64,
    /// Median latency, seconds.
    #[serde(skip)]
    pub p50_latency_s: f64,
    /// 95th percentile latency, seconds.
    #[serde(skip)]
    pub p95_latency_s: f64,
    /// 99th percentile latency, seconds.
    pub p99_latency_s: f64,
    /// Requests served.
    pub served: u64,
    /// Requests refused.
    pub refused: u64,
}

impl PhaseStats {
    /// Figures over `served` (refusals counted separately by the caller).
    pub fn of<'a>(
        served: impl IntoIterator<Item = &'a Served>,
        baseline: &Baseline,
        alpha: Alpha,
        refused: u64,
    ) -> Self {
        let mut latency = LogHistogram::new();
        let mut cost = LogHistogram::new();
        let (mut n, mut e_sum, mut l_sum, mut c_sum) = (0u64, 0.0, 0.0, 0.0);
        for s in served {
            let l = s.latency_s();
            let c = alpha.cost(baseline, s.energy_j, l);
            n += 1;
            e_sum += s.energy_j;
            l_sum += l;
            c_sum += c;
            latency.record(l as f32);
            cost.record(c as f32);
        }
        let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
        let q = |h: &LogHistogram, p| h.quantile(p).unwrap_or(0.0) as f64;
        PhaseStats {
            mean_cost: mean(c_sum),
            p95_cost: q(&cost, 0.95),
            p99_cost: q(&cost, 0.99),
            mean_energy_j: mean(e_sum),
            mean_latency_s: mean(l_sum),
            p50_latency_s: q(&latency, 0.5),
            p95_latency_s: q(&latency, 0.95),
            p99_latency_s: q(&latency, 0.99),
            served: n,
            refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecoedge_core::time::Instant;

    #[test]
    fn costs_use_the_given_baseline() {
        let served: Vec<Served> = (1..=100)
            .map(|i| Served {
                arrival: Instant::ZERO,
                done: Instant::from_micros(i * 1_000),
                energy_j: 1.0,
                window: 0,
            })
            .collect();
        let b = Baseline::new(2.0, 0.05).unwrap();
        let s = PhaseStats::of(&served, &b, Alpha::default(), 3);
        assert_eq!((s.served, s.refused), (100, 3));
        assert!((s.mean_energy_j - 1.0).abs() < 1e-12);
        assert!((s.mean_latency_s - 0.0505).abs() < 1e-12);
        // 0.5 * 1/2 + 0.5 * 0.0505/0.05
        assert!((s.mean_cost - 0.755).abs() < 1e-9);
        assert!((s.p99_latency_s - 0.099).abs() < 0.099 * 0.016);
        assert_eq!(PhaseStats::of(&[], &b, Alpha::default(), 0).mean_cost, 0.0);
    }
}
