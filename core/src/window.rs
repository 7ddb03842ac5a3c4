//! The measurement window: per-request figures of one config, summarised.
//!
//! A window collects `requests` completed requests. After a config change the first
//! `warmup` of them are discarded, because clocks and caches settle (the paper: 416
//! and 100). Means are exact; latency and cost tails come from
//! [`LogHistogram`]s within its stated error.
//!
//! A window can be *abandoned* before it is full ([`CostWindow::abandon`]): the
//! controller does so when the last [`RECENT`] requests served in it cost more
//! than the optimizer's ceiling on average and are not getting cheaper
//! ([`CostWindow::exceeds`]). A probe of a config that cannot keep up with the
//! arrivals then builds a backlog of a few requests, not of a whole window's worth
//! that the next configs would have to drain (and be blamed for). A config that is
//! draining a backlog left by its predecessor gets cheaper request by request, so
//! it is not abandoned for its predecessor's fault.

use core::fmt;

use crate::cost::{Alpha, Baseline, EnergyScope};
use crate::load::{Service, ServiceSums};
use crate::quantile::LogHistogram;
use crate::space::Config;
use crate::time::Instant;

/// Requests whose mean cost decides abandonment: enough that one slow batch does
/// not trip it, few enough that an overloaded config is left within a second.
pub const RECENT: usize = 16;

/// Why window settings are unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WindowError {
    /// A window must count at least one request.
    ZeroWindow,
    /// The warm-up must leave at least one measured request in the window.
    WarmupTooLong {
        /// Warm-up requests asked for.
        warmup: u32,
        /// Requests per window.
        window: u32,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::ZeroWindow => f.write_str("a window of 0 requests measures nothing"),
            WindowError::WarmupTooLong { warmup, window } => write!(
                f,
                "warm-up of {warmup} requests leaves nothing of a {window}-request window"
            ),
        }
    }
}

impl core::error::Error for WindowError {}

/// How windows are measured.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WindowSettings {
    /// Completed requests per window, warm-up included (default 416).
    pub requests: u32,
    /// Requests discarded after a config change (default 100).
    pub warmup: u32,
    /// Energy/latency weight (default 0.5).
    pub alpha: Alpha,
    /// Which energy is charged to requests (default total).
    pub scope: EnergyScope,
}

impl Default for WindowSettings {
    fn default() -> Self {
        WindowSettings {
            requests: 416,
            warmup: 100,
            alpha: Alpha::default(),
            scope: EnergyScope::Total,
        }
    }
}

impl WindowSettings {
    /// Checks the counts.
    pub fn validate(&self) -> Result<(), WindowError> {
        if self.requests == 0 {
            return Err(WindowError::ZeroWindow);
        }
        if self.warmup >= self.requests {
            return Err(WindowError::WarmupTooLong {
                warmup: self.warmup,
                window: self.requests,
            });
        }
        Ok(())
    }
}

/// Cost figures of a window; the tails need the baseline while recording, so they
/// are absent for calibration windows.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CostFigures {
    /// `alpha * E/E0 + (1 - alpha) * L/L0` of the window's means.
    pub mean: f64,
    /// 95th percentile of per-request cost.
    pub p95: Option<f32>,
    /// 99th percentile of per-request cost.
    pub p99: Option<f32>,
}

/// Summary of one finished window: what an optimizer observes and a log records.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WindowReport {
    /// Window number, from 0, calibration windows included.
    pub index: u32,
    /// The config measured.
    pub config: Config,
    /// Requests measured (warm-up excluded).
    pub requests: u32,
    /// Requests discarded as warm-up.
    pub discarded: u32,
    /// Mean energy per request, joules.
    pub energy_j: f64,
    /// Mean latency per request, seconds.
    pub latency_s: f64,
    /// Median latency, seconds.
    pub latency_p50_s: f32,
    /// 95th percentile latency, seconds.
    pub latency_p95_s: f32,
    /// 99th percentile latency, seconds.
    pub latency_p99_s: f32,
    /// Cost figures.
    pub cost: CostFigures,
    /// Arrival rate of the measured requests, per second.
    pub arrival_rate_hz: f64,
    /// When the window closed.
    pub end: Instant,
    /// Closed early because its cost went above the optimizer's ceiling; its
    /// means then cover every request it served, warm-up included.
    pub abandoned: bool,
    /// The config's load-independent figures, from the batches run after the
    /// warm-up; from those during it when none ran after (an abandoned window:
    /// its few batches still tell the config's speed, and without them a cut
    /// probe could only be ranked by its load-bound cost). `None` when no batch
    /// was reported ([`CostWindow::record_batch`]).
    pub service: Option<Service>,
}

impl WindowReport {
    /// A report with only what optimizers read: the window's index, the config
    /// measured, its mean cost and the arrival rate; no requests, zero figures
    /// otherwise, not abandoned. For driving an optimizer without a controller
    /// (replaying logged windows, tests, benchmarks).
    pub fn measured(index: u32, config: Config, cost: f64, arrival_rate_hz: f64) -> Self {
        WindowReport {
            index,
            config,
            requests: 0,
            discarded: 0,
            energy_j: 0.0,
            latency_s: 0.0,
            latency_p50_s: 0.0,
            latency_p95_s: 0.0,
            latency_p99_s: 0.0,
            cost: CostFigures {
                mean: cost,
                p95: None,
                p99: None,
            },
            arrival_rate_hz,
            end: Instant::ZERO,
            abandoned: false,
            service: None,
        }
    }
}

/// Accumulates one window; see the module doc.
#[derive(Debug, Clone)]
pub struct CostWindow {
    settings: WindowSettings,
    index: u32,
    warmup_left: u32,
    discarded: u32,
    requests: u32,
    energy_sum: f64,
    latency_sum: f64,
    first_arrival: Instant,
    last_arrival: Instant,
    latency: LogHistogram,
    cost: LogHistogram,
    /// Energy and latency sums of the discarded requests (an abandoned window
    /// reports them too).
    warmup_energy_sum: f64,
    warmup_latency_sum: f64,
    /// Costs of the last `RECENT` requests served, warm-up included, as a ring.
    recent: [f32; RECENT],
    recent_seen: u32,
    abandoned: bool,
    /// Batches run during the warm-up and after it.
    warmup_service: ServiceSums,
    service: ServiceSums,
}

impl CostWindow {
    /// An empty first window, which starts with a warm-up (the board was just set).
    pub fn new(settings: WindowSettings) -> Result<Self, WindowError> {
        settings.validate()?;
        Ok(CostWindow::empty(settings, 0, settings.warmup))
    }

    /// Window `index` with nothing recorded, `warmup_left` requests to discard.
    fn empty(settings: WindowSettings, index: u32, warmup_left: u32) -> Self {
        CostWindow {
            settings,
            index,
            warmup_left,
            discarded: 0,
            requests: 0,
            energy_sum: 0.0,
            latency_sum: 0.0,
            first_arrival: Instant::ZERO,
            last_arrival: Instant::ZERO,
            latency: LogHistogram::new(),
            cost: LogHistogram::new(),
            warmup_energy_sum: 0.0,
            warmup_latency_sum: 0.0,
            recent: [0.0; RECENT],
            recent_seen: 0,
            abandoned: false,
            warmup_service: ServiceSums::default(),
            service: ServiceSums::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &WindowSettings {
        &self.settings
    }

    /// Index of the window being filled.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Records one completed request: `energy_j` charged to it (non-negative,
    /// finite: the controller checks), its latency, its arrival. Per-request cost
    /// is recorded when the baseline is known.
    pub fn record(
        &mut self,
        arrival: Instant,
        latency_s: f64,
        energy_j: f64,
        baseline: Option<&Baseline>,
    ) {
        if self.is_full() {
            return;
        }
        let cost = baseline.map(|b| self.settings.alpha.cost(b, energy_j, latency_s) as f32);
        if let Some(c) = cost {
            self.recent[self.recent_seen as usize % RECENT] = c;
            self.recent_seen = self.recent_seen.saturating_add(1);
        }
        if self.warmup_left > 0 {
            self.warmup_left -= 1;
            self.discarded += 1;
            self.warmup_energy_sum += energy_j;
            self.warmup_latency_sum += latency_s;
            return;
        }
        if self.requests == 0 {
            self.first_arrival = arrival;
        }
        self.last_arrival = arrival;
        self.requests += 1;
        self.energy_sum += energy_j;
        self.latency_sum += latency_s;
        self.latency.record(latency_s as f32);
        if let Some(c) = cost {
            self.cost.record(c);
        }
    }

    /// Records one batch of the window's config, before its requests: see
    /// [`ServiceSums::add`].
    pub fn record_batch(
        &mut self,
        size: usize,
        busy_s: f64,
        active_j: f64,
        idle_s: f64,
        idle_j: f64,
    ) {
        let sums = if self.warmup_left > 0 {
            &mut self.warmup_service
        } else {
            &mut self.service
        };
        sums.add(size, busy_s, active_j, idle_s, idle_j);
    }

    /// True when the last [`RECENT`] requests served in this window (warm-up
    /// included, once that many were served with a known baseline) cost more than
    /// `ceiling` on average, and the newer half of them no less than the older.
    pub fn exceeds(&self, ceiling: f64) -> bool {
        let seen = self.recent_seen as usize;
        if seen < RECENT {
            return false;
        }
        // Oldest first: the ring's next slot holds the oldest cost.
        let at = |i: usize| f64::from(self.recent[(seen + i) % RECENT]);
        let older: f64 = (0..RECENT / 2).map(at).sum();
        let newer: f64 = (RECENT / 2..RECENT).map(at).sum();
        (older + newer) / RECENT as f64 > ceiling && newer >= older
    }

    /// Closes the window before it is full; see the module doc.
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// True when the window has all its requests, or was abandoned.
    pub fn is_full(&self) -> bool {
        self.abandoned || self.discarded + self.requests >= self.settings.requests
    }

    /// Mean energy (joules) and latency (seconds) per measured request so far;
    /// over the warm-up too once abandoned.
    pub fn means(&self) -> (f64, f64) {
        let (mut e, mut l, mut n) = (self.energy_sum, self.latency_sum, self.requests);
        if self.abandoned {
            e += self.warmup_energy_sum;
            l += self.warmup_latency_sum;
            n += self.discarded;
        }
        let n = n.max(1) as f64;
        (e / n, l / n)
    }

    /// The report of the window measured at `config`, closing at `end`, with costs
    /// normalised by `baseline`. Does not reset: see [`CostWindow::next`].
    pub fn report(&self, end: Instant, config: Config, baseline: &Baseline) -> WindowReport {
        let (energy_j, latency_s) = self.means();
        let span = self.last_arrival.saturating_since(self.first_arrival);
        let arrival_rate_hz = if self.requests > 1 {
            (self.requests - 1) as f64 / span.as_secs_f64().max(1e-6)
        } else {
            0.0
        };
        let q = |h: &LogHistogram, p| h.quantile(p).unwrap_or(0.0);
        WindowReport {
            index: self.index,
            config,
            requests: self.requests,
            discarded: self.discarded,
            energy_j,
            latency_s,
            latency_p50_s: q(&self.latency, 0.5),
            latency_p95_s: q(&self.latency, 0.95),
            latency_p99_s: q(&self.latency, 0.99),
            cost: CostFigures {
                mean: self.settings.alpha.cost(baseline, energy_j, latency_s),
                p95: self.cost.quantile(0.95),
                p99: self.cost.quantile(0.99),
            },
            arrival_rate_hz,
            end,
            abandoned: self.abandoned,
            service: self.service.service().or(self.warmup_service.service()),
        }
    }

    /// Starts the next window, with a warm-up when the config changes now.
    pub fn next(&mut self, config_changed: bool) {
        let warmup = if config_changed {
            self.settings.warmup
        } else {
            0
        };
        *self = CostWindow::empty(self.settings, self.index + 1, warmup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(requests: u32, warmup: u32) -> WindowSettings {
        WindowSettings {
            requests,
            warmup,
            ..WindowSettings::default()
        }
    }

    #[test]
    fn bad_counts_are_typed_errors() {
        assert_eq!(
            CostWindow::new(settings(0, 0)).unwrap_err(),
            WindowError::ZeroWindow
        );
        assert_eq!(
            CostWindow::new(settings(4, 4)).unwrap_err(),
            WindowError::WarmupTooLong {
                warmup: 4,
                window: 4
            }
        );
    }

    #[test]
    fn warmup_is_discarded_only_after_a_change() {
        let b = Baseline::new(1.0, 1.0).unwrap();
        let mut w = CostWindow::new(settings(4, 2)).unwrap();
        for i in 0..4 {
            // Two warm-up requests cost 100 J each; they must not count.
            let e = if i < 2 { 100.0 } else { 1.0 };
            w.record(Instant::from_micros(i * 1_000_000), 0.5, e, Some(&b));
        }
        assert!(w.is_full());
        assert_eq!(w.means(), (1.0, 0.5));
        let r = w.report(Instant::from_micros(9), Config::default(), &b);
        w.next(false);
        assert_eq!((r.requests, r.discarded), (2, 2));
        assert_eq!(r.energy_j, 1.0);
        assert_eq!(r.cost.mean, 0.75);
        assert_eq!(r.arrival_rate_hz, 1.0);
        assert_eq!(r.latency_p99_s, 0.5);
        // No change: the next window measures all four.
        for i in 0..4 {
            w.record(Instant::ZERO, 0.1, 1.0, Some(&b));
            assert_eq!(w.is_full(), i == 3);
        }
        let r = w.report(Instant::ZERO, Config::default(), &b);
        w.next(true);
        assert_eq!((r.index, r.requests, r.discarded), (1, 4, 0));
        // A change: the next window discards two again.
        for _ in 0..4 {
            w.record(Instant::ZERO, 0.1, 1.0, None);
        }
        let r = w.report(Instant::ZERO, Config::default(), &b);
        assert_eq!((r.requests, r.discarded), (2, 2));
        assert_eq!(r.cost.p99, None);
    }

    #[test]
    fn records_past_a_full_window_are_ignored() {
        let b = Baseline::new(1.0, 1.0).unwrap();
        let mut w = CostWindow::new(settings(1, 0)).unwrap();
        w.record(Instant::ZERO, 1.0, 1.0, Some(&b));
        w.record(Instant::ZERO, 9.0, 9.0, Some(&b));
        let r = w.report(Instant::ZERO, Config::default(), &b);
        assert_eq!((r.requests, r.latency_s), (1, 1.0));
    }
}
