//! Figures over a set of served requests: the metrics of ECOGD.md.
//!
//! Per request: latency `l`, energy share `e`, and cost
//! `alpha * e/E0 + (1 - alpha) * l/L0` against one baseline, so that runs compared
//! on a workload share the same `E0, L0`. Quantiles come from the core's
//! [`LogHistogram`] (within 1.6 %), so memory stays fixed however long the run.

use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::quantile::LogHistogram;
use serde::Serialize;

use crate::served::Served;

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
    /// Requests that arrived but were neither served nor refused by the end
    /// (a partial batch left waiting).
    pub unserved: u64,
}

/// Requests a run did not serve, and what each costs in the figures.
///
/// A comparison charges every refused or unserved request a penalty cost (see
/// `compare`), so an optimizer cannot look cheap by dropping requests; a
/// run's own summary charges nothing (`penalty` 0 leaves them out of the cost).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Unserved {
    /// Refused by the full queue.
    pub refused: u64,
    /// Still waiting at the end.
    pub pending: u64,
    /// Cost charged for each of them; 0: not charged.
    pub penalty: f64,
}

impl Unserved {
    /// `refused` requests, none pending, nothing charged.
    pub fn refused(refused: u64) -> Self {
        Unserved {
            refused,
            ..Unserved::default()
        }
    }
}

impl PhaseStats {
    /// Figures over `served`; the `unserved` requests are counted, and their
    /// penalty, if any, enters the cost figures (not energy nor latency).
    pub fn of<'a>(
        served: impl IntoIterator<Item = &'a Served>,
        baseline: &Baseline,
        alpha: Alpha,
        unserved: Unserved,
    ) -> Self {
        let mut tally = Tally::new(alpha);
        tally.set_baseline(*baseline);
        for s in served {
            tally.add(s.energy_j, s.latency_s());
        }
        tally.charge(unserved);
        tally.stats(unserved.refused)
    }
}

/// Running figures of served requests in fixed memory, so a service that runs
/// for months summarises without keeping its requests: sums for the means,
/// histograms for the quantiles.
///
/// A request's cost needs the baseline, which the controller measures in its
/// first windows: requests served before it is known wait in a buffer (at
/// most the calibration windows' requests) and are costed once it is.
#[derive(Debug, Clone)]
pub struct Tally {
    alpha: Alpha,
    baseline: Option<Baseline>,
    /// Energy and latency of the requests served before the baseline was known.
    early: Vec<(f64, f64)>,
    served: u64,
    /// Unserved requests whose penalty is in the cost figures.
    charged: u64,
    /// Requests left waiting at the end.
    pending: u64,
    energy_sum: f64,
    latency_sum: f64,
    cost_sum: f64,
    latency: LogHistogram,
    cost: LogHistogram,
}

impl Tally {
    /// Nothing served yet; costs weigh energy by `alpha`.
    pub fn new(alpha: Alpha) -> Self {
        Tally {
            alpha,
            baseline: None,
            early: Vec::new(),
            served: 0,
            charged: 0,
            pending: 0,
            energy_sum: 0.0,
            latency_sum: 0.0,
            cost_sum: 0.0,
            latency: LogHistogram::new(),
            cost: LogHistogram::new(),
        }
    }

    /// Costs from now on (and those of the requests served so far) against
    /// `baseline`. The first baseline stays: the controller measures it once.
    pub fn set_baseline(&mut self, baseline: Baseline) {
        if self.baseline.is_some() {
            return;
        }
        self.baseline = Some(baseline);
        for (e, l) in std::mem::take(&mut self.early) {
            self.cost(&baseline, e, l);
        }
    }

    fn cost(&mut self, baseline: &Baseline, energy_j: f64, latency_s: f64) {
        let c = self.alpha.cost(baseline, energy_j, latency_s);
        self.cost_sum += c;
        self.cost.record(c as f32);
    }

    /// One request served, with its energy share and latency.
    pub fn add(&mut self, energy_j: f64, latency_s: f64) {
        self.served += 1;
        self.energy_sum += energy_j;
        self.latency_sum += latency_s;
        self.latency.record(latency_s as f32);
        match self.baseline {
            Some(b) => self.cost(&b, energy_j, latency_s),
            None => self.early.push((energy_j, latency_s)),
        }
    }

    /// Counts the `unserved` requests, and charges their penalty (when not 0)
    /// in the cost figures as if each had been served at that cost.
    pub fn charge(&mut self, unserved: Unserved) {
        self.pending += unserved.pending;
        if unserved.penalty > 0.0 {
            let n = unserved.refused + unserved.pending;
            self.charged += n;
            self.cost_sum += n as f64 * unserved.penalty;
            for _ in 0..n {
                self.cost.record(unserved.penalty as f32);
            }
        }
    }

    /// The figures so far; the cost figures are NaN while no baseline is known.
    pub fn stats(&self, refused: u64) -> PhaseStats {
        let n = self.served;
        let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
        let costed_n = n + self.charged;
        let mean_cost = if costed_n == 0 {
            0.0
        } else {
            self.cost_sum / costed_n as f64
        };
        let q = |h: &LogHistogram, p| h.quantile(p).unwrap_or(0.0) as f64;
        let costed = |x: f64| if self.baseline.is_some() { x } else { f64::NAN };
        PhaseStats {
            mean_cost: costed(mean_cost),
            p95_cost: costed(q(&self.cost, 0.95)),
            p99_cost: costed(q(&self.cost, 0.99)),
            mean_energy_j: mean(self.energy_sum),
            mean_latency_s: mean(self.latency_sum),
            p50_latency_s: q(&self.latency, 0.5),
            p95_latency_s: q(&self.latency, 0.95),
            p99_latency_s: q(&self.latency, 0.99),
            served: n,
            refused,
            unserved: self.pending,
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
        let s = PhaseStats::of(&served, &b, Alpha::default(), Unserved::refused(3));
        assert_eq!((s.served, s.refused), (100, 3));
        assert!((s.mean_energy_j - 1.0).abs() < 1e-12);
        assert!((s.mean_latency_s - 0.0505).abs() < 1e-12);
        // 0.5 * 1/2 + 0.5 * 0.0505/0.05
        assert!((s.mean_cost - 0.755).abs() < 1e-9);
        assert!((s.p99_latency_s - 0.099).abs() < 0.099 * 0.016);
        assert_eq!(
            PhaseStats::of(&[], &b, Alpha::default(), Unserved::default()).mean_cost,
            0.0
        );
        // Charged: 100 served at 0.755 and 3 refused plus 1 pending at 10 each.
        let unserved = Unserved {
            refused: 3,
            pending: 1,
            penalty: 10.0,
        };
        let c = PhaseStats::of(&served, &b, Alpha::default(), unserved);
        assert!((c.mean_cost - (75.5 + 40.0) / 104.0).abs() < 1e-9, "{c:?}");
        assert_eq!((c.served, c.refused, c.unserved), (100, 3, 1));
        assert_eq!(
            c.mean_latency_s, s.mean_latency_s,
            "latency over served only"
        );
        assert!(
            (c.p99_cost - 10.0).abs() < 0.2,
            "the penalties are the tail"
        );
    }

    #[test]
    fn requests_before_the_baseline_are_costed_once_it_is_known() {
        let b = Baseline::new(2.0, 0.05).unwrap();
        let mut streamed = Tally::new(Alpha::default());
        let mut known = Tally::new(Alpha::default());
        known.set_baseline(b);
        for i in 1..=50 {
            let (e, l) = (0.01 * f64::from(i), 0.002 * f64::from(i));
            if i == 20 {
                streamed.set_baseline(b);
            }
            streamed.add(e, l);
            known.add(e, l);
        }
        assert!(streamed.early.is_empty());
        assert_eq!(streamed.stats(1), known.stats(1));
        assert!(Tally::new(Alpha::default()).stats(0).mean_cost.is_nan());
        streamed.set_baseline(Baseline::new(9.0, 9.0).unwrap());
        assert_eq!(
            streamed.stats(1),
            known.stats(1),
            "the first baseline stays"
        );
    }
}
