//! `bayes`: Bayesian optimisation, the paper's model-based baseline.
//!
//! After [`BayesSettings::hot_start`] random configs (10), every window fits a
//! Gaussian-process regression to the *logarithm* of the measured costs (costs
//! span two orders of magnitude, from a good config to one that builds a
//! backlog; their logarithm is what a stationary kernel can follow) and measures
//! the config with the highest expected improvement over the whole domain (every
//! config inside the limits: 6000 on the Xavier NX). Ties go to the first config
//! in [`Space`] order (last dimension fastest). Once the highest expected
//! improvement is below [`BayesSettings::exploit_below`] (in log-cost units: a
//! relative improvement of the cost), it *exploits* instead: it measures the
//! incumbent (the lowest averaged cost), which also averages that config's noise
//! down, for [`EXPLOIT_RECHECK`] windows before it fits and searches again.
//!
//! A window that served more requests than arrived during it drained a backlog
//! that an earlier config (one that could not keep up) left; its cost says as
//! much about that config as about its own, so it is not observed and its config
//! is measured again ([`DRAIN_SHARE`]). Without this, one overloaded probe
//! poisons the model around the next few configs measured, which are as often as
//! not the good ones.
//!
//! # Model
//!
//! - Observations are *unique* configs, at most [`OBSERVATIONS`]: a config
//!   measured again has its log costs averaged (mean of `count` measurements,
//!   whose noise variance is the single-window noise over `count`). When the
//!   table is full, the config measured longest ago goes, never the incumbent
//!   (the lowest averaged cost), and configs that could not keep up only when
//!   no other is left: forgetting where the overloaded region lies sent the
//!   search back into it, at 10-100 times the cost of a good window plus the
//!   windows that drain its backlog (resnet50 fixed:50ms, development seeds
//!   1-8: 2 of 8 runs never settled with plain oldest-first eviction, none with
//!   this rule; forgetting instead the config closest to another, to keep
//!   covering the space, lost the detail around the best configs and settled
//!   13-73 % above the best static config).
//! - Overloaded configs (utilisation at least 1, see
//!   [`overloaded`]) enter the model at
//!   [`BayesSettings::overload_penalty`] times the worst config that keeps up,
//!   not at their measured cost.
//! - Kernel: RBF with one length scale per dimension (ARD) on coordinates
//!   normalised per dimension to `[0, 1]` between the lower limit and the top
//!   level, times a signal variance, plus per-observation noise.
//! - Targets: the averaged log costs, standardised (mean 0, variance 1).
//! - Hyper-parameters: the length scales and the noise ratio (noise variance of
//!   one window over the signal variance) by maximising the log marginal
//!   likelihood with a bounded coordinate search ([`HYPER_PASSES`] passes, each
//!   trying every parameter doubled and halved, within [`LENGTH_RANGE`] and
//!   [`NOISE_RANGE`], from the previous window's values); the signal variance at
//!   its maximum-likelihood value given the others (closed form: `y' A^-1 y / n`).
//!   Work per window: at most `2 * HYPER_PASSES * (dims + 1) + 2` Cholesky
//!   factorisations of at most `OBSERVATIONS` rows.
//! - Cholesky factorisation of the kernel matrix, in a packed lower triangle.
//!
//! # Cost of the search
//!
//! The maximum is exact, but most configs are ruled out before the plain
//! evaluation (`exp` per observation, `O(OBSERVATIONS^2)` variance solve) by three
//! tiers of bounds (branch and bound):
//!
//! 1. Expected improvement grows with the predictive deviation `sigma` and falls
//!    with the predictive mean `mu`. The RBF kernel is a product over dimensions of
//!    factors that depend only on the level distance, so per-step tables replace
//!    `exp`; `mu` and the bound `sigma^2 <= 1 - max_j k_j^2 / (1 + noise_j)`
//!    (Cauchy-Schwarz in the `K^-1` inner product) then cost `O(OBSERVATIONS)` per
//!    config, or less: observations are grouped by their level in the last
//!    dimension, and a whole row of configs (same leading levels) is done at once.
//!    The expected improvement at unit deviation is tabulated (chords of a convex
//!    curve bound it from above), so the screens need no `erf` or `exp`.
//! 2. Survivors run the variance solve on their tabulated kernel vector, eight at
//!    a time (vectorised; the live ones are packed into 4, 2, 1 lanes as the others
//!    are ruled out); its partial sums only grow, so each bounds `sigma` from
//!    above, checked every `CHECK_ROWS` (8) rows.
//! 3. The rest are evaluated with the plain formula, whose solve also stops as soon
//!    as a partial sum rules the config out.
//!
//! A config is ruled out only when its bound, widened by margins well above any
//! rounding difference between the paths (`TABLE_MARGIN` and the margin of
//! `improvement_bound`), is below the best expected improvement already evaluated;
//! a winner cannot be ruled out, and it is evaluated with the same arithmetic in the
//! same order as the plain exhaustive search. So the choice is the same, bit for bit
//! (the unit tests check this against a brute-force reference).
//!
//! With a fixed length scale and 64 observations one search on the Xavier NX
//! space took about 2.5-2.9 ms on the development machine (2 shared cores), the
//! plain search 12.8-19 ms (`cargo bench -p ecoedge-core --bench optimizers`). The
//! worst case (nothing ruled out) stays the exhaustive search's
//! `O(OBSERVATIONS^3 + configs * OBSERVATIONS^2)`.
//!
//! # Memory
//!
//! Everything lives in fixed arrays: `size_of::<Bayes>()` (about 22 KiB, mostly
//! the Cholesky factor, stored as a packed `f64` lower triangle: no precision lost)
//! is the whole footprint. A step uses about 15 KiB of stack for its tables and
//! lanes.

use libm::{erf, exp, log, sqrt};

use super::linear::overloaded;
use super::{Optimizer, Prng, random_config, unit_coordinate};
use crate::space::{Config, MAX_DIMS, MAX_LEVELS, Space};
use crate::time::Instant;
use crate::window::WindowReport;

/// Unique configs the Gaussian process is fitted to. 64: the original's memory
/// of 64 measurements, now of 64 configs; a Cholesky factorisation of that size
/// takes well under a millisecond.
pub const OBSERVATIONS: usize = 64;

/// Passes of the coordinate search of the hyper-parameters per window. Two: the
/// search continues from the previous window's values, so a few passes per window
/// add up to a full search within the first windows of the model.
pub const HYPER_PASSES: usize = 2;

/// Range of the length scales, in normalised coordinates: from a sixteenth of a
/// knob's range (the Xavier NX's CPU levels are 1/24 apart: nearly independent
/// levels) to four ranges (a cost that barely moves along that knob).
pub const LENGTH_RANGE: (f64, f64) = (1.0 / 16.0, 4.0);

/// Range of the noise ratio (one window's noise variance over the signal
/// variance): from 1e-4 (1 % of the standardised deviation) to 1 (as much noise
/// as signal).
pub const NOISE_RANGE: (f64, f64) = (1e-4, 1.0);

/// Default of [`BayesSettings::overload_penalty`]. The cost of a config that
/// cannot keep up with the arrivals ([`overloaded`])
/// as the model sees it: this many times the worst averaged cost of a config
/// that keeps up. The cost such a
/// window measures says how long it ran (its backlog grows for as long as it
/// runs) more than anything about the config; left as measured (10-100 times the
/// good configs' cost) it is a cliff that sets the length scales, and the model
/// cannot tell the good configs apart. 2: worse than every config that keeps up;
/// not tuned.
pub const OVERLOAD_PENALTY: f64 = 2.0;

/// Windows between two searches while exploiting: the observations barely change
/// then (the incumbent measured again), so the model is refitted and searched
/// every tenth window, which makes an exploiting window about ten times cheaper.
/// Chosen for run time, not tuned on costs.
pub const EXPLOIT_RECHECK: u32 = 10;

/// A window that served more requests than arrived during it, by more than
/// this share, started with a backlog that an earlier config left: its cost is
/// its predecessor's as much as its own, so it is not observed and the config
/// is measured again. 0.1: ten times the one-batch difference (16 requests in
/// 416) that a window boundary makes; not tuned.
pub const DRAIN_SHARE: f64 = 0.1;

/// Smallest noise on the diagonal, relative: keeps the kernel matrix well
/// conditioned when a config was measured hundreds of times.
const NOISE_FLOOR: f64 = 1e-6;

/// Entries of the packed lower triangle of an `OBSERVATIONS`-square matrix.
const PACKED: usize = OBSERVATIONS * (OBSERVATIONS + 1) / 2;

/// Configs solved together by the screening variance solve (the solve narrows
/// to 4, 2, 1 of them as they are ruled out).
const LANES: usize = 8;
const _: () = assert!(LANES == 8, "Batch::solve dispatches on 8, 4, 2 and 1 lanes");

/// Rows of the variance solve between two checks of its partial bound.
const CHECK_ROWS: usize = 8;

/// Margin for the screening arithmetic (tables instead of `exp`, reordered sums):
/// relative on the kernel values and the predictive mean, relative and absolute on
/// the one-observation variance bound, and, times `1 + 1 / sqrt(noise)`, absolute
/// on the explained variance of the screening solve. The differences it covers
/// are far smaller; see [`Screen`].
const TABLE_MARGIN: f64 = 1e-9;

/// Settings of the Bayesian baseline; [`Default`] gives the paper's.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BayesSettings {
    /// Random configs measured before the model is used (10).
    pub hot_start: u32,
    /// RBF length scale in normalised coordinates that the fit starts from, for
    /// every dimension (0.25: a quarter of each knob's range).
    pub length_scale: f64,
    /// Noise ratio that the fit starts from (0.01).
    pub noise: f64,
    /// Fit the hyper-parameters by marginal likelihood (true); false keeps the
    /// starting values (for tests).
    pub fit: bool,
    /// Exploration margin `xi` of the expected improvement, in standardised
    /// units (0.01).
    pub xi: f64,
    /// Highest expected improvement, in log-cost units (a relative improvement),
    /// below which the search exploits: 0.005, half a percent, below the noise of
    /// one window's mean cost in the simulator (about 1 %), so that further
    /// exploration could not be told from noise. Not tuned.
    pub exploit_below: f64,
    /// How many times the worst config that keeps up an overloaded config
    /// counts in the model ([`OVERLOAD_PENALTY`]).
    pub overload_penalty: f64,
}

impl Default for BayesSettings {
    fn default() -> Self {
        BayesSettings {
            hot_start: 10,
            length_scale: 0.25,
            noise: 0.01,
            fit: true,
            xi: 0.01,
            exploit_below: 0.005,
            overload_penalty: OVERLOAD_PENALTY,
        }
    }
}

/// The kernel's hyper-parameters (signal variance aside: it is profiled out).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hyper {
    /// RBF length scale per dimension, normalised coordinates.
    pub lengths: [f64; MAX_DIMS],
    /// Noise variance of one window over the signal variance.
    pub noise: f64,
}

impl Hyper {
    fn of(settings: &BayesSettings) -> Hyper {
        Hyper {
            lengths: [settings.length_scale; MAX_DIMS],
            noise: settings.noise,
        }
    }
}

/// The Bayesian-optimisation baseline; see the module doc.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bayes {
    settings: BayesSettings,
    rng: Prng,
    /// The unique configs observed, their normalised coordinates, the sum of
    /// their log costs, how often they were measured, and when last (`clock`).
    configs: [Config; OBSERVATIONS],
    xs: [[f64; MAX_DIMS]; OBSERVATIONS],
    log_sums: [f64; OBSERVATIONS],
    counts: [u32; OBSERVATIONS],
    /// Whether the config's last window could not keep up with the arrivals.
    overloaded: [bool; OBSERVATIONS],
    last_seen: [u32; OBSERVATIONS],
    len: usize,
    clock: u32,
    hot_left: u32,
    hyper: Hyper,
    /// The fitted model: standardised targets over the signal deviation, the
    /// noise on the diagonal, the lower Cholesky factor of the kernel matrix
    /// (packed by rows: row `i` holds its `i + 1` entries from `i * (i + 1) / 2`
    /// on) and `K^-1 y`.
    ys: [f64; OBSERVATIONS],
    noise: [f64; OBSERVATIONS],
    chol: [f64; PACKED],
    weights: [f64; OBSERVATIONS],
    model_steps: u32,
    exploits: u32,
    last_improvement: Option<f64>,
    /// Exploiting windows left before the next search.
    recheck_left: u32,
    /// End of the previous window, for the backlog check.
    previous_end: Option<Instant>,
    remeasured: u32,
}

/// The model of one window, in log-cost units.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fit {
    /// Lowest standardised target.
    best: f64,
    /// Log-cost units per standardised unit.
    scale: f64,
}

/// First entry of row `i` in the packed lower triangle.
const fn row_start(i: usize) -> usize {
    i * (i + 1) / 2
}

/// The RBF kernel between two normalised points, one length scale per dimension.
fn kernel(lengths: &[f64; MAX_DIMS], a: &[f64; MAX_DIMS], b: &[f64; MAX_DIMS]) -> f64 {
    let mut e = 0.0;
    for ((p, q), l) in a.iter().zip(b).zip(lengths) {
        let d = (p - q) / l;
        e += d * d;
    }
    exp(-0.5 * e)
}

/// Expected improvement (for minimisation) of a prediction whose `best - mu - xi`
/// is `gain` and whose deviation is `sigma`.
fn improvement(gain: f64, sigma: f64) -> f64 {
    if sigma < 1e-12 {
        return gain.max(0.0);
    }
    let z = gain / sigma;
    let cdf = 0.5 * (1.0 + erf(z / core::f64::consts::SQRT_2));
    let pdf = exp(-0.5 * z * z) / sqrt(2.0 * core::f64::consts::PI);
    gain * cdf + sigma * pdf
}

/// An upper bound of [`improvement`] as computed, given that the exact `gain` and
/// `sigma` are at most the arguments: the value itself plus a margin above the
/// rounding error of either evaluation (`erf`, `exp` and the products are good to a
/// few units in the last place of `|gain| + sigma`, even deep in the tail where the
/// two terms cancel).
fn improvement_bound(gain: f64, sigma: f64) -> f64 {
    let ei = improvement(gain, sigma);
    ei + 1e-12 * ei.abs() + 1e-14 * (gain.abs() + sigma)
}

/// Lowest `z = gain / sigma` in [`Curve`]; below it the curve's first point bounds.
const Z_MIN: f64 = -12.0;
/// Points of [`Curve`] per unit of `z`.
const Z_RESOLUTION: f64 = 16.0;
/// Points of [`Curve`]: `z` from -12 to 8.
const Z_POINTS: usize = 321;

/// The expected improvement at unit deviation, `h(z) = z Phi(z) + phi(z)`, on a
/// grid, so that the screens bound `sigma * h(gain / sigma)` without `erf` and
/// `exp`: `h` is increasing and convex, so the chord between two grid points lies
/// above it (by at most `phi(z) / 2048`, about 0.2% of `h` where it matters).
/// About 2.5 KiB on the stack, 321 evaluations per step.
struct Curve {
    h: [f64; Z_POINTS],
}

impl Curve {
    fn new() -> Curve {
        let mut h = [0.0; Z_POINTS];
        for (k, v) in h.iter_mut().enumerate() {
            *v = improvement(Z_MIN + k as f64 / Z_RESOLUTION, 1.0);
        }
        Curve { h }
    }

    /// An upper bound of [`improvement`] as computed, given that the exact `gain`
    /// and `sigma` are at most the arguments, like [`improvement_bound`]. Falls back
    /// to it for small or non-finite `sigma` and `z` above the grid.
    #[inline]
    fn bound(&self, gain: f64, sigma: f64) -> f64 {
        if sigma.is_nan() || sigma < 1e-3 {
            return improvement_bound(gain, sigma);
        }
        let pos = (gain / sigma - Z_MIN) * Z_RESOLUTION;
        if pos.is_nan() || pos >= (Z_POINTS - 1) as f64 {
            return improvement_bound(gain, sigma);
        }
        let h = if pos <= 0.0 {
            self.h.first().copied()
        } else {
            let k = pos as usize;
            let f = pos - k as f64;
            match (self.h.get(k), self.h.get(k + 1)) {
                (Some(&a), Some(&b)) => Some(a + f * (b - a)),
                _ => None,
            }
        };
        let Some(h) = h else {
            return improvement_bound(gain, sigma);
        };
        // Margins: the grid values' and the plain evaluation's rounding (a few
        // units in the last place of |gain| + sigma), the interpolation's.
        let ei = sigma * h;
        ei + 1e-12 * ei.abs() + 1e-14 * (gain.abs() + sigma)
    }
}

impl Bayes {
    /// Bayesian optimisation with `settings`, random choices fixed by `seed`.
    pub fn new(settings: BayesSettings, seed: u64) -> Self {
        Bayes {
            settings,
            rng: Prng::new(seed),
            configs: [Config::default(); OBSERVATIONS],
            xs: [[0.0; MAX_DIMS]; OBSERVATIONS],
            log_sums: [0.0; OBSERVATIONS],
            counts: [0; OBSERVATIONS],
            overloaded: [false; OBSERVATIONS],
            last_seen: [0; OBSERVATIONS],
            len: 0,
            clock: 0,
            hot_left: 0,
            hyper: Hyper::of(&settings),
            ys: [0.0; OBSERVATIONS],
            noise: [0.0; OBSERVATIONS],
            chol: [0.0; PACKED],
            weights: [0.0; OBSERVATIONS],
            model_steps: 0,
            exploits: 0,
            last_improvement: None,
            recheck_left: 0,
            previous_end: None,
            remeasured: 0,
        }
    }

    /// Unique configs held (at most [`OBSERVATIONS`]).
    pub fn observations(&self) -> usize {
        self.len
    }

    /// Windows whose next config came from the model (searched or exploited).
    pub fn model_steps(&self) -> u32 {
        self.model_steps
    }

    /// Windows that exploited (measured the posterior-mean best) because the
    /// expected improvement was small.
    pub fn exploits(&self) -> u32 {
        self.exploits
    }

    /// Windows measured again because they drained a backlog ([`DRAIN_SHARE`]).
    pub fn remeasured(&self) -> u32 {
        self.remeasured
    }

    /// True when `report`'s window served more requests than arrived during it
    /// (by more than [`DRAIN_SHARE`]): it drained a backlog it inherited.
    fn drained(&self, report: &WindowReport) -> bool {
        let Some(previous) = self.previous_end else {
            return false;
        };
        let span_s = report.end.saturating_since(previous).as_secs_f64();
        let served = f64::from(report.requests + report.discarded);
        let arrived = report.arrival_rate_hz * span_s;
        report.requests > 1 && span_s > 0.0 && served > (1.0 + DRAIN_SHARE) * arrived
    }

    /// The hyper-parameters of the last fit.
    pub fn hyper(&self) -> Hyper {
        self.hyper
    }

    /// The highest expected improvement of the last search, log-cost units.
    pub fn last_improvement(&self) -> Option<f64> {
        self.last_improvement
    }

    /// The incumbent: the observed config with the lowest averaged log cost, and
    /// that average (the geometric mean of its costs).
    pub fn incumbent(&self) -> Option<(Config, f64)> {
        self.incumbent_slot()
            .map(|i| (self.configs[i], exp(self.mean_log(i))))
    }

    /// Every observed config with its measurement count, in table order.
    pub fn observed(&self) -> impl Iterator<Item = (Config, u32)> + '_ {
        self.configs
            .iter()
            .zip(&self.counts)
            .take(self.len)
            .map(|(c, n)| (*c, *n))
    }

    fn mean_log(&self, i: usize) -> f64 {
        let n = self.counts.get(i).copied().unwrap_or(0).max(1);
        self.log_sums.get(i).copied().unwrap_or(f64::NAN) / f64::from(n)
    }

    /// The lowest averaged log cost among configs that keep up (among all when
    /// none does).
    fn incumbent_slot(&self) -> Option<usize> {
        let any_keeps_up = self.overloaded.iter().take(self.len).any(|o| !o);
        (0..self.len)
            .filter(|&i| !(any_keeps_up && self.overloaded.get(i).copied().unwrap_or(false)))
            .min_by(|&a, &b| self.mean_log(a).total_cmp(&self.mean_log(b)))
    }

    /// Adds one measurement of `config`: averaged into its entry if observed
    /// before, else a new entry, evicting the one measured longest ago (never the
    /// incumbent) when the table is full.
    fn observe(&mut self, space: &Space, config: &Config, cost: f64, overloaded: bool) {
        let y = log(cost.max(1e-12));
        self.clock = self.clock.wrapping_add(1);
        let mut x = [0.0; MAX_DIMS];
        for (dim, v) in x.iter_mut().enumerate().take(space.len()) {
            *v = unit_coordinate(space, config, dim);
        }
        let slot = match self.configs.iter().take(self.len).position(|c| c == config) {
            Some(i) => i,
            None if self.len < OBSERVATIONS => {
                self.len += 1;
                self.len - 1
            }
            None => {
                // The oldest, never the incumbent; configs that could not keep
                // up go last: measuring one again is the dearest mistake.
                let keep = self.incumbent_slot();
                let Some(victim) = (0..self.len).filter(|&i| Some(i) != keep).min_by_key(|&i| {
                    let over = self.overloaded.get(i).copied().unwrap_or(false);
                    (over, self.last_seen.get(i).copied().unwrap_or(0))
                }) else {
                    return;
                };
                if let (Some(s), Some(n)) =
                    (self.log_sums.get_mut(victim), self.counts.get_mut(victim))
                {
                    (*s, *n) = (0.0, 0);
                }
                victim
            }
        };
        if let Some(o) = self.overloaded.get_mut(slot) {
            *o = overloaded;
        }
        if let (Some(c), Some(xs), Some(s), Some(n), Some(t)) = (
            self.configs.get_mut(slot),
            self.xs.get_mut(slot),
            self.log_sums.get_mut(slot),
            self.counts.get_mut(slot),
            self.last_seen.get_mut(slot),
        ) {
            *c = *config;
            *xs = x;
            *s += y;
            *n = n.saturating_add(1);
            *t = self.clock;
        }
    }

    /// Cholesky factor of the kernel matrix (unit signal variance) of the first
    /// `n` observations under `hyper`, into `self.chol`; the noise on the
    /// diagonal into `self.noise`. False when not positive definite.
    fn factor(&mut self, hyper: &Hyper) -> bool {
        let n = self.len;
        for (d, c) in self.noise.iter_mut().zip(&self.counts).take(n) {
            *d = (hyper.noise / f64::from((*c).max(1))).max(NOISE_FLOOR);
        }
        for i in 0..n {
            let (Some(xi), Some(&noise)) = (self.xs.get(i), self.noise.get(i)) else {
                return false;
            };
            let (done, rest) = self.chol.split_at_mut(row_start(i));
            let Some(row_i) = rest.get_mut(..=i) else {
                return false;
            };
            for j in 0..=i {
                let Some(xj) = self.xs.get(j) else {
                    return false;
                };
                let mut sum = kernel(&hyper.lengths, xi, xj);
                if i == j {
                    sum += noise;
                }
                let (head, tail) = row_i.split_at_mut(j);
                let Some(out) = tail.first_mut() else {
                    return false;
                };
                if i == j {
                    for l in head.iter() {
                        sum -= l * l;
                    }
                    if sum <= 0.0 || !sum.is_finite() {
                        return false;
                    }
                    *out = sqrt(sum);
                } else {
                    let Some(row_j) = done.get(row_start(j)..=row_start(j) + j) else {
                        return false;
                    };
                    let (row_j, diag_j) = row_j.split_at(j);
                    for (a, b) in head.iter().zip(row_j) {
                        sum -= a * b;
                    }
                    let Some(d) = diag_j.first() else {
                        return false;
                    };
                    *out = sum / d;
                }
            }
        }
        true
    }

    /// Solves `L v = y` into `self.weights` (forward substitution).
    fn forward(&mut self, ys: &[f64; OBSERVATIONS]) -> Option<()> {
        for i in 0..self.len {
            let mut sum = *ys.get(i)?;
            let row = self.chol.get(row_start(i)..=row_start(i) + i)?;
            let (solved, rest) = self.weights.split_at_mut(i);
            for (l, w) in row.iter().zip(solved.iter()) {
                sum -= l * w;
            }
            *rest.first_mut()? = sum / row.get(i)?;
        }
        Some(())
    }

    /// Log marginal likelihood of the standardised targets `z` under `hyper`,
    /// with the signal variance at its maximum (`z' A^-1 z / n`), constants
    /// dropped; `None` when the matrix is not positive definite.
    fn likelihood(&mut self, hyper: &Hyper, z: &[f64; OBSERVATIONS]) -> Option<f64> {
        if !self.factor(hyper) {
            return None;
        }
        self.forward(z)?;
        let n = self.len;
        let quad: f64 = self.weights.iter().take(n).map(|v| v * v).sum();
        let log_det: f64 = (0..n)
            .map(|i| 2.0 * log(self.chol.get(row_start(i) + i).copied().unwrap_or(f64::NAN)))
            .sum();
        let signal = (quad / n as f64).max(1e-300);
        let value = -0.5 * n as f64 * log(signal) - 0.5 * log_det;
        value.is_finite().then_some(value)
    }

    /// Coordinate search of the hyper-parameters from the current ones; see the
    /// module doc.
    fn fit_hyper(&mut self, space: &Space, z: &[f64; OBSERVATIONS]) {
        let dims = space.len().min(MAX_DIMS);
        let mut best = self.hyper;
        let Some(mut value) = self.likelihood(&best, z) else {
            // Start over from the settings when the old values no longer fit.
            self.hyper = Hyper::of(&self.settings);
            return;
        };
        for _ in 0..HYPER_PASSES {
            let mut moved = false;
            for k in 0..=dims {
                for factor in [2.0, 0.5] {
                    let mut trial = best;
                    if k < dims {
                        let (lo, hi) = LENGTH_RANGE;
                        let Some(l) = trial.lengths.get_mut(k) else {
                            continue;
                        };
                        *l = (*l * factor).clamp(lo, hi);
                    } else {
                        let (lo, hi) = NOISE_RANGE;
                        trial.noise = (trial.noise * factor).clamp(lo, hi);
                    }
                    if trial == best {
                        continue;
                    }
                    if let Some(v) = self.likelihood(&trial, z)
                        && v > value
                    {
                        (best, value, moved) = (trial, v, true);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        self.hyper = best;
    }

    /// Fits the model to the observations; `None` when the kernel matrix is not
    /// positive definite (the search then measures a random config).
    fn fit(&mut self, space: &Space) -> Option<Fit> {
        let n = self.len;
        if n == 0 {
            return None;
        }
        let mut logs = [0.0; OBSERVATIONS];
        for (i, l) in logs.iter_mut().enumerate().take(n) {
            *l = self.mean_log(i);
        }
        // Configs that cannot keep up: the worst config that does, times
        // OVERLOAD_PENALTY (their own cost measures how long they ran).
        let worst = (0..n)
            .filter(|&i| !self.overloaded.get(i).copied().unwrap_or(false))
            .map(|i| self.mean_log(i))
            .fold(f64::NEG_INFINITY, f64::max);
        if worst.is_finite() {
            for (l, &over) in logs.iter_mut().zip(&self.overloaded).take(n) {
                if over {
                    *l = worst + log(self.settings.overload_penalty.max(1.0));
                }
            }
        }
        let mean = logs.iter().take(n).sum::<f64>() / n as f64;
        let var = logs
            .iter()
            .take(n)
            .map(|y| (y - mean) * (y - mean))
            .sum::<f64>()
            / n as f64;
        let std = if var > 1e-24 { sqrt(var) } else { 1.0 };
        let mut z = [0.0; OBSERVATIONS];
        for (z, l) in z.iter_mut().zip(&logs).take(n) {
            *z = (l - mean) / std;
        }
        if self.settings.fit {
            self.fit_hyper(space, &z);
        }
        // The final factor, the signal deviation, and K^-1 y of the targets in
        // units of that deviation (unit prior variance from here on).
        let hyper = self.hyper;
        if !self.factor(&hyper) {
            return None;
        }
        self.forward(&z)?;
        let quad: f64 = self.weights.iter().take(n).map(|v| v * v).sum();
        let signal = sqrt((quad / n as f64).max(1e-300));
        let mut best = f64::INFINITY;
        for (y, z) in self.ys.iter_mut().zip(&z).take(n) {
            *y = z / signal;
            best = best.min(*y);
        }
        let ys = self.ys;
        self.forward(&ys)?;
        for i in (0..n).rev() {
            let mut sum = *self.weights.get(i)?;
            for k in (i + 1)..n {
                sum -= self.chol.get(row_start(k) + i)? * self.weights.get(k)?;
            }
            *self.weights.get_mut(i)? = sum / self.chol.get(row_start(i) + i)?;
        }
        Some(Fit {
            best,
            scale: std * signal,
        })
    }

    /// Expected improvement (for minimisation) of the config at normalised `x`, or
    /// `None` once it is certainly below `bar` (the variance solve stops early).
    fn expected_improvement(&self, x: &[f64; MAX_DIMS], best: f64, bar: f64) -> Option<f64> {
        let n = self.len;
        let mut k = [0.0; OBSERVATIONS];
        let mut mu = 0.0;
        for ((ki, xi), wi) in k.iter_mut().zip(&self.xs).zip(&self.weights).take(n) {
            *ki = kernel(&self.hyper.lengths, x, xi);
            mu += *ki * wi;
        }
        let gain = best - mu - self.settings.xi;
        // Predictive variance 1 - v.v with L v = k (v overwrites k in place). The
        // partial sums of v.v only grow (non-negative terms, monotone rounding), so
        // each gives an upper bound of sigma and of the expected improvement.
        let mut vv = 0.0;
        let mut start = 0;
        for i in 0..n {
            let Some(row) = self.chol.get(start..=start + i) else {
                break;
            };
            start += i + 1;
            let (solved, rest) = k.split_at_mut(i);
            let (Some(ki), Some(diag)) = (rest.first_mut(), row.last()) else {
                break;
            };
            let sum = *ki
                - row
                    .iter()
                    .zip(solved.iter())
                    .map(|(l, v)| l * v)
                    .sum::<f64>();
            let v = sum / diag;
            *ki = v;
            vv += v * v;
            if (i + 1) % CHECK_ROWS == 0
                && i + 1 < n
                && improvement_bound(gain, sqrt((1.0 - vv).max(0.0))) < bar
            {
                return None;
            }
        }
        let sigma = sqrt((1.0 - vv).max(0.0));
        Some(improvement(gain, sigma))
    }

    /// Evaluates config `c` and makes it the `choice` if its expected improvement is
    /// higher, or equal and `c` comes first in space order.
    fn consider(&self, space: &Space, c: Config, best: f64, choice: &mut Option<(Config, f64)>) {
        let mut x = [0.0; MAX_DIMS];
        for (dim, v) in x.iter_mut().enumerate().take(space.len()) {
            *v = unit_coordinate(space, &c, dim);
        }
        let bar = choice.map_or(f64::NEG_INFINITY, |(_, e)| e);
        let Some(ei) = self.expected_improvement(&x, best, bar) else {
            return;
        };
        if ei.is_finite() && choice.is_none_or(|(b, e)| ei > e || (ei == e && c < b)) {
            *choice = Some((c, ei));
        }
    }

    /// The config of highest expected improvement over the whole domain, and
    /// that improvement (standardised units), for a fitted model with lowest
    /// target `best`.
    fn search(&self, space: &Space, best: f64) -> Option<(Config, f64)> {
        let mut choice: Option<(Config, f64)> = None;
        match Screen::new(self, space) {
            Some(screen) => screen.search(self, space, best, &mut choice),
            None => {
                for c in space.configs() {
                    self.consider(space, c, best, &mut choice);
                }
            }
        }
        choice
    }

    /// The next config from the model: the search's choice, or the measured
    /// config of lowest posterior mean once the expected improvement is small.
    fn suggest(&mut self, space: &Space) -> Option<Config> {
        let fit = self.fit(space)?;
        let (choice, ei) = self.search(space, fit.best)?;
        let improvement = ei * fit.scale;
        self.last_improvement = Some(improvement);
        if improvement >= self.settings.exploit_below {
            return Some(choice);
        }
        // Exploit: the incumbent, whose average only gets better founded.
        let exploit = self
            .incumbent()
            .map(|(c, _)| c)
            .filter(|c| space.within_limits(c));
        match exploit {
            Some(c) => {
                self.exploits = self.exploits.saturating_add(1);
                self.recheck_left = EXPLOIT_RECHECK.saturating_sub(1);
                Some(c)
            }
            None => Some(choice),
        }
    }
}

/// Configs of one row of the search (same leading offsets) waiting for the
/// screening variance solve, which runs on up to [`LANES`] of them at once (one
/// lane each, so that it vectorises): about 4.2 KiB on the stack.
struct Batch {
    len: usize,
    /// The last dimension, and its lower limit.
    last: usize,
    lower_last: usize,
    /// The best standardised cost, and the margin on the explained variance.
    best: f64,
    margin: f64,
    /// Offset of each lane's config in the last dimension.
    c: [usize; LANES],
    /// Upper bound of each lane's `best - mu - xi`.
    gain: [f64; LANES],
    /// Tabulated kernel vectors, one lane each; the solve overwrites them.
    k: [[f64; LANES]; OBSERVATIONS],
}

impl Batch {
    /// Solves the lanes, then evaluates (with [`Bayes::consider`]) the configs whose
    /// bound did not fall below the best expected improvement evaluated so far; empties
    /// the batch.
    fn flush(
        &mut self,
        bayes: &Bayes,
        space: &Space,
        prefix: Config,
        curve: &Curve,
        choice: &mut Option<(Config, f64)>,
    ) {
        let (best, margin) = (self.best, self.margin);
        let bar = choice.map_or(f64::NEG_INFINITY, |(_, e)| e);
        let alive = self.solve(bayes, curve, bar, margin);
        for (&c, _) in self.c.iter().zip(alive).take(self.len).filter(|(_, a)| *a) {
            bayes.consider(
                space,
                prefix.with(self.last, self.lower_last + c),
                best,
                choice,
            );
        }
        self.len = 0;
    }

    /// Which lanes may still reach `bar`: the partial sums of the explained
    /// variance only grow, so each (less `margin`) bounds `sigma` from above;
    /// checked every [`CHECK_ROWS`] rows.
    fn solve(&mut self, bayes: &Bayes, curve: &Curve, bar: f64, margin: f64) -> [bool; LANES] {
        let n = bayes.len;
        let mut alive = [false; LANES];
        for a in alive.iter_mut().take(self.len) {
            *a = true;
        }
        let mut vv = [0.0; LANES];
        // Lanes still solved: the live ones are moved to the front whenever they
        // fit in half of them.
        let mut width = LANES;
        let mut start = 0;
        for i in 0..n {
            let Some(row) = bayes.chol.get(start..=start + i) else {
                break;
            };
            start += i + 1;
            let (solved, rest) = self.k.split_at_mut(i);
            let (Some(current), Some(diag)) = (rest.first_mut(), row.last()) else {
                break;
            };
            let acc = match width {
                8.. => dot_lanes::<8>(row, solved),
                4..=7 => dot_lanes::<4>(row, solved),
                2..=3 => dot_lanes::<2>(row, solved),
                _ => dot_lanes::<1>(row, solved),
            };
            for ((x, s), q) in current.iter_mut().zip(&acc).zip(vv.iter_mut()).take(width) {
                let v = (*x - s) / diag;
                *x = v;
                *q += v * v;
            }
            let rows = i + 1;
            if rows % CHECK_ROWS == 0 || rows == n {
                let mut live = 0;
                for ((a, &q), &gain) in alive.iter_mut().zip(&vv).zip(&self.gain).take(width) {
                    if *a && curve.bound(gain, sqrt((1.0 - (q - margin)).max(0.0))) < bar {
                        *a = false;
                    }
                    live += usize::from(*a);
                }
                if live == 0 {
                    break;
                }
                if live <= width / 2 && rows < n {
                    // Move the live lanes to the front, in order.
                    let mut to = 0;
                    for from in 0..width {
                        if alive.get(from).copied().unwrap_or(false) {
                            if from != to {
                                for lanes in self.k.iter_mut().take(n) {
                                    lanes.swap(from, to);
                                }
                                self.c.swap(from, to);
                                self.gain.swap(from, to);
                                vv.swap(from, to);
                                alive.swap(from, to);
                            }
                            to += 1;
                        }
                    }
                    self.len = live;
                    width = live.next_power_of_two();
                }
            }
        }
        alive
    }
}

/// `sum_j row_j * solved_j[lane]` for the first `W` lanes (at most [`LANES`]).
fn dot_lanes<const W: usize>(row: &[f64], solved: &[[f64; LANES]]) -> [f64; LANES] {
    let mut acc = [0.0; W];
    for (l, v) in row.iter().zip(solved) {
        if let Some(v) = v.first_chunk::<W>() {
            for (s, x) in acc.iter_mut().zip(v) {
                *s += l * x;
            }
        }
    }
    let mut out = [0.0; LANES];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a;
    }
    out
}

/// Per-step tables that bound the expected improvement of every config in
/// `O(OBSERVATIONS)` without `exp` (about 3.5 KiB on the stack).
///
/// Rounding: a tabulated kernel value differs from the plain `exp` of the summed
/// squared distance by at most about `1e-13` relative (about `3e-14` relative error
/// in an exponent of at most 745, beyond which both underflow and differ by less
/// than `1e-300` absolute), and the plain search's sums carry about
/// `OBSERVATIONS * 1.1e-16` relative error: `TABLE_MARGIN` (`1e-9`) covers both
/// on the mean. The variance solves share the Cholesky factor; their results
/// differ by about `2 * ||L^-1|| * ||k_table - k||` plus solve rounding, under
/// `2e-11 / sqrt(noise)` for the smallest noise on the diagonal, covered by
/// `TABLE_MARGIN * (1 + 1 / sqrt(noise))`.
/// The Cauchy-Schwarz bound holds for the computed factor too (Cholesky and the
/// triangular solve are backward stable with diagonal errors of about
/// `OBSERVATIONS * 1.1e-16` relative), covered by the relative and absolute
/// `TABLE_MARGIN`.
struct Screen {
    /// Dimensions of the space (at least one).
    dims: usize,
    lower: [usize; MAX_DIMS],
    /// Top level minus lower limit, per dimension.
    span: [usize; MAX_DIMS],
    /// `factor[d][delta]`: the kernel factor of dimension `d` between levels
    /// `delta` apart, `exp(-(delta / span)^2 / (2 l^2))`.
    factor: [[f64; MAX_LEVELS]; MAX_DIMS],
    /// Level of each observation above the lower limit, per dimension.
    offsets: [[u8; MAX_DIMS]; OBSERVATIONS],
    /// The distinct last-dimension offsets of the observations.
    occupied: [u8; MAX_LEVELS],
    occupied_len: usize,
    /// `sum |w_i|`, for the absolute part of the mean's margin.
    weight_sum: f64,
    /// The last dimension's factors mirrored: `mirror[MAX_LEVELS - 1 + d]` is the
    /// factor for `|d|` levels apart, so a row's factors are one contiguous slice.
    mirror: [f64; 2 * MAX_LEVELS],
}

impl Screen {
    /// The tables, or `None` when they do not describe the observations exactly (an
    /// empty space, or observations normalised in another space): the caller then
    /// evaluates every config.
    fn new(bayes: &Bayes, space: &Space) -> Option<Screen> {
        let dims = space.len();
        if dims == 0 || dims > MAX_DIMS {
            return None;
        }
        let mut screen = Screen {
            dims,
            lower: [0; MAX_DIMS],
            span: [0; MAX_DIMS],
            factor: [[0.0; MAX_LEVELS]; MAX_DIMS],
            offsets: [[0; MAX_DIMS]; OBSERVATIONS],
            occupied: [0; MAX_LEVELS],
            occupied_len: 0,
            weight_sum: 0.0,
            mirror: [f64::NAN; 2 * MAX_LEVELS],
        };
        for (d, dim) in space.dims().iter().enumerate() {
            let (lower, span) = (dim.lower(), dim.max_index().checked_sub(dim.lower())?);
            if span >= MAX_LEVELS {
                return None;
            }
            *screen.lower.get_mut(d)? = lower;
            *screen.span.get_mut(d)? = span;
            let l = *bayes.hyper.lengths.get(d)?;
            let factor = screen.factor.get_mut(d)?;
            for (delta, f) in factor.iter_mut().enumerate().take(span + 1) {
                let u = if span > 0 {
                    delta as f64 / span as f64
                } else {
                    0.0
                };
                let v = u / l;
                *f = exp(-0.5 * (v * v));
            }
        }
        // Recover each observation's levels and check that they give back its
        // coordinates exactly (as `observe` computed them in this space).
        let n = bayes.len;
        for (x, offsets) in bayes.xs.iter().zip(screen.offsets.iter_mut()).take(n) {
            let mut config = Config::default();
            for (d, (&xd, off)) in x.iter().zip(offsets.iter_mut()).enumerate() {
                if d >= dims {
                    if xd != 0.0 {
                        return None;
                    }
                    continue;
                }
                let span = *screen.span.get(d)?;
                let level = libm::round(xd * span as f64);
                if !(0.0..=span as f64).contains(&level) {
                    return None;
                }
                *off = level as u8;
                config = config.with(d, screen.lower.get(d)? + level as usize);
            }
            for (d, &xd) in x.iter().enumerate().take(dims) {
                if unit_coordinate(space, &config, d).to_bits() != xd.to_bits() {
                    return None;
                }
            }
        }
        let last = dims - 1;
        let mut seen = [false; MAX_LEVELS];
        for off in screen.offsets.iter().take(n) {
            let level = *off.get(last)?;
            let s = seen.get_mut(usize::from(level))?;
            if !*s {
                *s = true;
                *screen.occupied.get_mut(screen.occupied_len)? = level;
                screen.occupied_len += 1;
            }
        }
        screen.weight_sum = bayes.weights.iter().take(n).map(|w| w.abs()).sum();
        let factor_last = *screen.factor.get(last)?;
        for (j, m) in screen
            .mirror
            .iter_mut()
            .enumerate()
            .take(2 * MAX_LEVELS - 1)
        {
            *m = factor_last
                .get(j.abs_diff(MAX_LEVELS - 1))
                .copied()
                .unwrap_or(f64::NAN);
        }
        Some(screen)
    }

    /// Every config inside the limits, in space order: ruled out by the one-row
    /// bound, else by the tabulated variance solve, else evaluated by
    /// [`Bayes::consider`].
    fn search(&self, bayes: &Bayes, space: &Space, best: f64, choice: &mut Option<(Config, f64)>) {
        let n = bayes.len;
        let last = self.dims - 1;
        let factor_last = self.factor.get(last).unwrap_or(&[f64::NAN; MAX_LEVELS]);
        let span_last = self.span.get(last).copied().unwrap_or(0);
        let lower_last = self.lower.get(last).copied().unwrap_or(0);
        let occupied = self.occupied.get(..self.occupied_len).unwrap_or(&[]);
        // The one-observation bound `k_j^2 / (1 + noise_j)` holds with the
        // largest noise for every `j`; the smallest noise gives the largest
        // `||L^-1||`, so the solve margin takes that one.
        let noise = bayes
            .noise
            .iter()
            .take(n)
            .fold(NOISE_FLOOR, |a, &b| a.max(b));
        let least_noise = bayes
            .noise
            .iter()
            .take(n)
            .fold(f64::INFINITY, |a, &b| a.min(b));
        let mean_floor = 1e-300 * (self.weight_sum + 1.0);
        let solve_margin = TABLE_MARGIN * (1.0 + 1.0 / sqrt(least_noise.max(NOISE_FLOOR)));
        // Offsets of the leading dimensions (all but the last), odometer order.
        let mut at = [0usize; MAX_DIMS];
        // Kernel products over the leading dimensions, per observation.
        let mut lead = [0.0; OBSERVATIONS];
        // Per last-dimension offset: sums of w_i * lead_i, |w_i| * lead_i, and the
        // largest lead_i of the observations at that offset.
        let mut sum_w = [0.0; MAX_LEVELS];
        let mut sum_abs = [0.0; MAX_LEVELS];
        let mut max_lead = [0.0; MAX_LEVELS];
        let curve = Curve::new();
        let mut batch = Batch {
            len: 0,
            last,
            lower_last,
            best,
            margin: solve_margin,
            c: [0; LANES],
            gain: [0.0; LANES],
            k: [[0.0; LANES]; OBSERVATIONS],
        };
        loop {
            let mut prefix = Config::default();
            for (d, (&a, &lower)) in at.iter().zip(&self.lower).enumerate().take(last) {
                prefix = prefix.with(d, lower + a);
            }
            for &o in occupied {
                let o = usize::from(o);
                if let (Some(s), Some(a), Some(m)) =
                    (sum_w.get_mut(o), sum_abs.get_mut(o), max_lead.get_mut(o))
                {
                    (*s, *a, *m) = (0.0, 0.0, 0.0);
                }
            }
            for ((p, off), w) in lead
                .iter_mut()
                .zip(&self.offsets)
                .zip(&bayes.weights)
                .take(n)
            {
                let mut prod = 1.0;
                for ((factor, &a), &o) in self.factor.iter().zip(&at).zip(off).take(last) {
                    prod *= factor
                        .get(a.abs_diff(usize::from(o)))
                        .copied()
                        .unwrap_or(f64::NAN);
                }
                *p = prod;
                let o = off.get(last).map_or(0, |&o| usize::from(o));
                if let (Some(s), Some(a), Some(m)) =
                    (sum_w.get_mut(o), sum_abs.get_mut(o), max_lead.get_mut(o))
                {
                    *s += prod * w;
                    *a += prod * w.abs();
                    // NaN (never expected) goes to the mean, which then rules out
                    // nothing.
                    *m = if prod > *m { prod } else { *m };
                }
            }
            // Mean, its margin's scale and the largest kernel value of every config
            // in the row, one occupied offset at a time (vectorises over the row).
            let (mut row_mu, mut row_abs, mut row_kmax) =
                ([0.0; MAX_LEVELS], [0.0; MAX_LEVELS], [0.0; MAX_LEVELS]);
            for &o in occupied {
                let o = usize::from(o);
                let (Some(&s), Some(&a), Some(&m), Some(t)) = (
                    sum_w.get(o),
                    sum_abs.get(o),
                    max_lead.get(o),
                    self.mirror.get(MAX_LEVELS - 1 - o..),
                ) else {
                    row_mu = [f64::NAN; MAX_LEVELS];
                    continue;
                };
                for (((mu, abs), kmax), &t) in row_mu
                    .iter_mut()
                    .zip(row_abs.iter_mut())
                    .zip(row_kmax.iter_mut())
                    .zip(t)
                    .take(span_last + 1)
                {
                    *mu += s * t;
                    *abs += a * t;
                    let k = m * t;
                    *kmax = if k > *kmax { k } else { *kmax };
                }
            }
            for (c, ((&mu, &abs), &kmax)) in row_mu
                .iter()
                .zip(&row_abs)
                .zip(&row_kmax)
                .enumerate()
                .take(span_last + 1)
            {
                let mu_low = mu - (TABLE_MARGIN * abs + mean_floor);
                let gain = best - mu_low - bayes.settings.xi;
                let bar = choice.map_or(f64::NEG_INFINITY, |(_, e)| e);
                let explained =
                    (kmax * kmax * (1.0 - TABLE_MARGIN) / (1.0 + noise) - TABLE_MARGIN).max(0.0);
                if curve.bound(gain, sqrt((1.0 - explained).max(0.0))) < bar {
                    continue;
                }
                if bar == f64::NEG_INFINITY {
                    bayes.consider(space, prefix.with(last, lower_last + c), best, choice);
                    continue;
                }
                if let (Some(lane_c), Some(lane_gain)) =
                    (batch.c.get_mut(batch.len), batch.gain.get_mut(batch.len))
                {
                    (*lane_c, *lane_gain) = (c, gain);
                    for ((k, p), off) in batch.k.iter_mut().zip(&lead).zip(&self.offsets).take(n) {
                        let o = off.get(last).map_or(0, |&o| usize::from(o));
                        if let Some(k) = k.get_mut(batch.len) {
                            *k = p * factor_last.get(c.abs_diff(o)).copied().unwrap_or(f64::NAN);
                        }
                    }
                    batch.len += 1;
                }
                if batch.len == LANES {
                    batch.flush(bayes, space, prefix, &curve, choice);
                }
            }
            batch.flush(bayes, space, prefix, &curve, choice);
            // Next leading offsets, last leading dimension fastest.
            let mut advanced = false;
            for d in (0..last).rev() {
                let span = self.span.get(d).copied().unwrap_or(0);
                if let Some(a) = at.get_mut(d)
                    && *a < span
                {
                    *a += 1;
                    for after in at.iter_mut().take(last).skip(d + 1) {
                        *after = 0;
                    }
                    advanced = true;
                    break;
                }
            }
            if !advanced {
                break;
            }
        }
    }
}

impl Optimizer for Bayes {
    fn name(&self) -> &'static str {
        "bayes"
    }

    fn start(&mut self, space: &Space) -> Config {
        *self = Bayes {
            rng: self.rng.clone(),
            ..Bayes::new(self.settings, 0)
        };
        self.hot_left = self.settings.hot_start.saturating_sub(1);
        random_config(space, &mut self.rng)
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        let drained = self.drained(report);
        self.previous_end = Some(report.end);
        if drained && space.within_limits(&report.config) {
            self.remeasured = self.remeasured.saturating_add(1);
            return report.config;
        }
        let cost = report.cost.mean;
        if cost.is_finite() && cost > 0.0 && space.within_limits(&report.config) {
            self.observe(space, &report.config, cost, overloaded(space, report));
        }
        if self.hot_left > 0 || self.len == 0 {
            self.hot_left = self.hot_left.saturating_sub(1);
            return random_config(space, &mut self.rng);
        }
        if self.recheck_left > 0
            && let Some((c, _)) = self.incumbent().filter(|(c, _)| space.within_limits(c))
        {
            self.recheck_left -= 1;
            self.exploits = self.exploits.saturating_add(1);
            self.model_steps = self.model_steps.saturating_add(1);
            return c;
        }
        match self.suggest(space) {
            Some(c) => {
                self.model_steps = self.model_steps.saturating_add(1);
                c
            }
            None => random_config(space, &mut self.rng),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The optimised search against a brute-force reference (full square
    //! matrices, `exp` for every kernel value, every config evaluated) on the
    //! same fitted model, so that a wrong bound or table cannot pass; and the
    //! model's own properties.

    use super::*;
    use crate::space::{Dimension, Knob};
    use std::vec::Vec;

    /// Brute force on `bayes`'s fitted model: the expected improvement of every
    /// config inside the limits, the first maximum in space order.
    // Indexed loops on purpose: the plain version.
    #[allow(clippy::needless_range_loop)]
    fn brute_force(bayes: &Bayes, space: &Space, best: f64) -> Option<(Config, f64)> {
        let n = bayes.len;
        let lengths = &bayes.hyper.lengths;
        let mut chol = std::vec![[0.0f64; OBSERVATIONS]; OBSERVATIONS];
        for i in 0..n {
            for j in 0..=i {
                let mut sum = kernel(lengths, &bayes.xs[i], &bayes.xs[j]);
                if i == j {
                    sum += bayes.noise[i];
                }
                for k in 0..j {
                    sum -= chol[i][k] * chol[j][k];
                }
                if i == j {
                    if sum <= 0.0 || !sum.is_finite() {
                        return None;
                    }
                    chol[i][j] = sqrt(sum);
                } else {
                    chol[i][j] = sum / chol[j][j];
                }
            }
        }
        let mut weights = [0.0; OBSERVATIONS];
        for i in 0..n {
            let mut sum = bayes.ys[i];
            for k in 0..i {
                sum -= chol[i][k] * weights[k];
            }
            weights[i] = sum / chol[i][i];
        }
        for i in (0..n).rev() {
            let mut sum = weights[i];
            for k in (i + 1)..n {
                sum -= chol[k][i] * weights[k];
            }
            weights[i] = sum / chol[i][i];
        }
        let mut choice: Option<(Config, f64)> = None;
        for c in every_config(space) {
            let mut x = [0.0; MAX_DIMS];
            for (dim, v) in x.iter_mut().enumerate().take(space.len()) {
                *v = unit_coordinate(space, &c, dim);
            }
            let mut k = [0.0; OBSERVATIONS];
            let mut mu = 0.0;
            for i in 0..n {
                k[i] = kernel(lengths, &x, &bayes.xs[i]);
                mu += k[i] * weights[i];
            }
            let mut vv = 0.0;
            for i in 0..n {
                let mut dot = Vec::with_capacity(i);
                for j in 0..i {
                    dot.push(chol[i][j] * k[j]);
                }
                k[i] = (k[i] - dot.into_iter().sum::<f64>()) / chol[i][i];
                vv += k[i] * k[i];
            }
            let sigma = sqrt((1.0 - vv).max(0.0));
            let gain = best - mu - bayes.settings.xi;
            let ei = if sigma < 1e-12 {
                gain.max(0.0)
            } else {
                let z = gain / sigma;
                let cdf = 0.5 * (1.0 + erf(z / core::f64::consts::SQRT_2));
                let pdf = exp(-0.5 * z * z) / sqrt(2.0 * core::f64::consts::PI);
                gain * cdf + sigma * pdf
            };
            if ei.is_finite() && choice.is_none_or(|(_, e)| ei > e) {
                choice = Some((c, ei));
            }
        }
        choice
    }

    /// Every config inside the limits, last dimension fastest, by plain nested
    /// counting (not [`Space::configs`]).
    fn every_config(space: &Space) -> Vec<Config> {
        let mut all = std::vec![Config::default()];
        for (dim, d) in space.dims().iter().enumerate() {
            all = all
                .into_iter()
                .flat_map(|c| (d.lower()..=d.max_index()).map(move |i| c.with(dim, i)))
                .collect();
        }
        all
    }

    /// Deterministic noise in `[-0.5, 0.5)` from two integers (splitmix64).
    fn noise(a: u64, b: u64) -> f64 {
        let mut z = a
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(b)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    /// A bowl over the level indices with its minimum at `opt`, plus noise of
    /// amplitude `amp` that depends on the seed and the window.
    fn noisy_bowl(space: &Space, opt: &[f64], amp: f64, seed: u64, window: u32, c: &Config) -> f64 {
        let mut sum = 0.6;
        for (dim, d) in space.dims().iter().enumerate() {
            let span = (d.max_index().max(1)) as f64;
            let o = opt.get(dim).copied().unwrap_or(0.0);
            let t = (c.index(dim) as f64 - o) / span;
            sum += t * t;
        }
        sum + amp * noise(seed, u64::from(window))
    }

    /// Runs `bayes` for `windows` windows on `cost` (space `spaces(window)`);
    /// before every step that uses the model, checks the optimised search on a
    /// copy against the brute force on the same fit. Returns the configs.
    fn lockstep(
        bayes: &mut Bayes,
        windows: u32,
        spaces: impl Fn(u32) -> Space,
        cost: impl Fn(&Space, u32, &Config) -> f64,
    ) -> Vec<Config> {
        let space = spaces(0);
        let mut config = bayes.start(&space);
        let mut run = std::vec![config];
        for w in 1..=windows {
            let space = spaces(w);
            let y = cost(&space, w, &config);
            let report = WindowReport::measured(w, config, y, 20.0);
            if bayes.hot_left == 0 {
                let mut copy = bayes.clone();
                copy.observe(&space, &config, y, false);
                if let Some(fit) = copy.fit(&space) {
                    let fast = copy.search(&space, fit.best);
                    let slow = brute_force(&copy, &space, fit.best);
                    assert_eq!(
                        fast.map(|f| f.0),
                        slow.map(|s| s.0),
                        "window {w}, {:?}",
                        copy.hyper
                    );
                    assert_eq!(fast.map(|f| f.1.to_bits()), slow.map(|s| s.1.to_bits()));
                }
            }
            config = bayes.step(&space, &report);
            assert!(space.within_limits(&config));
            run.push(config);
        }
        run
    }

    fn levels(n: u32) -> Vec<u32> {
        (1..=n).map(|i| i * 1000).collect()
    }

    fn xavier() -> Space {
        Space::new(&[
            Dimension::new(Knob::Cpu, &levels(25)).unwrap(),
            Dimension::new(Knob::Gpu, &levels(15)).unwrap(),
            Dimension::batch(16).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn same_choices_as_brute_force_on_the_xavier_grid() {
        let space = xavier();
        let mut bayes = Bayes::new(BayesSettings::default(), 7);
        lockstep(
            &mut bayes,
            80,
            |_| space.clone(),
            |s, w, c| noisy_bowl(s, &[16.0, 9.0, 10.0], 0.05, 7, w, c),
        );
        // 10 random configs (the start and 9 steps), then the model.
        assert_eq!(bayes.model_steps(), 80 - 9);
        assert_ne!(bayes.hyper(), Hyper::of(&BayesSettings::default()));
    }

    #[test]
    fn same_choices_as_brute_force_across_spaces_settings_and_seeds() {
        let cpu = |lower| {
            Dimension::new(Knob::Cpu, &levels(9))
                .unwrap()
                .with_lower_limit(lower)
                .unwrap()
        };
        let gpu = Dimension::new(Knob::Gpu, &levels(7))
            .unwrap()
            .with_lower_limit(2)
            .unwrap();
        let one_level = Dimension::new(Knob::Gpu, &[5]).unwrap();
        let spaces = [
            Space::new(&[cpu(3), gpu.clone(), Dimension::batch(6).unwrap()]).unwrap(),
            Space::new(&[cpu(0), Dimension::batch(12).unwrap()]).unwrap(),
            Space::new(&[Dimension::batch(40).unwrap()]).unwrap(),
            Space::new(&[one_level, cpu(1), Dimension::batch(3).unwrap()]).unwrap(),
        ];
        let settings = [
            BayesSettings::default(),
            BayesSettings {
                length_scale: 0.08,
                fit: false,
                ..BayesSettings::default()
            },
            BayesSettings {
                length_scale: 1.5,
                noise: 1e-4,
                xi: 0.0,
                hot_start: 3,
                ..BayesSettings::default()
            },
        ];
        for (s, space) in spaces.iter().enumerate() {
            for (k, settings) in settings.iter().enumerate() {
                let seed = (10 * s + k) as u64;
                let opt = [3.5, 4.0, 2.0];
                let mut bayes = Bayes::new(*settings, seed);
                lockstep(
                    &mut bayes,
                    90,
                    |_| space.clone(),
                    |sp, w, c| noisy_bowl(sp, &opt, 0.1, seed, w, c),
                );
            }
        }
    }

    #[test]
    fn same_choices_when_the_limits_move_under_the_observations() {
        // Observations normalised in the first space no longer sit on the second
        // space's levels: the tables do not apply and every config is evaluated.
        let space = |lower| {
            Space::new(&[
                Dimension::new(Knob::Cpu, &levels(10))
                    .unwrap()
                    .with_lower_limit(lower)
                    .unwrap(),
                Dimension::batch(8).unwrap(),
            ])
            .unwrap()
        };
        let (before, after) = (space(0), space(4));
        let mut bayes = Bayes::new(BayesSettings::default(), 3);
        lockstep(
            &mut bayes,
            60,
            |w| {
                if w <= 30 {
                    before.clone()
                } else {
                    after.clone()
                }
            },
            |sp, w, c| noisy_bowl(sp, &[6.0, 3.0], 0.05, 3, w, c),
        );
    }

    #[test]
    fn repeated_configs_are_averaged_and_the_incumbent_is_never_evicted() {
        let space = xavier();
        let mut bayes = Bayes::new(BayesSettings::default(), 1);
        let _ = bayes.start(&space);
        let best = Config::default().with(0, 3).with(1, 3).with(2, 3);
        bayes.observe(&space, &best, 0.5, false);
        bayes.observe(&space, &best, 0.2, false);
        assert_eq!(bayes.observations(), 1);
        let (c, cost) = bayes.incumbent().unwrap();
        assert_eq!(c, best);
        // The geometric mean of 0.5 and 0.2.
        assert!((cost - 0.1_f64.sqrt()).abs() < 1e-12, "{cost}");
        // Many more unique configs than the table holds, all worse.
        for (i, c) in space.configs().step_by(7).take(300).enumerate() {
            if c != best {
                bayes.observe(&space, &c, 1.0 + i as f64 * 1e-3, false);
            }
            assert!(bayes.observations() <= OBSERVATIONS);
            assert_eq!(bayes.incumbent().map(|i| i.0), Some(best), "after {i}");
        }
        assert_eq!(bayes.observations(), OBSERVATIONS);
        // The others are the most recent ones.
        let kept: Vec<Config> = bayes.observed().map(|(c, _)| c).collect();
        let recent: Vec<Config> = space.configs().step_by(7).take(300).collect();
        assert!(recent[300 - 63..].iter().all(|c| kept.contains(c)));
        assert_eq!(bayes.observed().find(|o| o.0 == best).map(|o| o.1), Some(2));
    }

    /// A cost over two orders of magnitude, `0.4 * exp(6 * bowl)`, smooth in its
    /// logarithm, with 1 % multiplicative noise; its minimum at `opt`.
    fn steep(space: &Space, opt: &[f64; 3], seed: u64, window: u32, c: &Config) -> f64 {
        let mut sum = 0.0;
        for (dim, d) in space.dims().iter().enumerate() {
            let t = (c.index(dim) as f64 - opt[dim]) / d.max_index() as f64;
            sum += t * t;
        }
        0.4 * exp(6.0 * sum) * (1.0 + 0.02 * noise(seed, u64::from(window)))
    }

    #[test]
    fn the_log_cost_fit_finds_a_known_minimum_and_then_exploits() {
        let space = xavier();
        let opt = [16.0, 9.0, 10.0];
        let mut near = 0;
        for seed in 1..=3 {
            let mut bayes = Bayes::new(BayesSettings::default(), seed);
            let mut config = bayes.start(&space);
            let mut tail = Vec::new();
            for w in 1..=150 {
                let cost = steep(&space, &opt, seed, w, &config);
                if w > 120 {
                    tail.push(cost);
                }
                config = bayes.step(&space, &WindowReport::measured(w, config, cost, 20.0));
            }
            let (best, _) = bayes.incumbent().unwrap();
            let exact = steep(&space, &opt, 0, 0, &best) / (1.0 + 0.02 * noise(0, 0));
            // Within 2 % of the minimum (0.4) in its own cost.
            near += usize::from(exact < 0.4 * 1.02);
            assert!(exact < 0.4 * 1.05, "seed {seed}: {best:?} costs {exact}");
            // It stopped exploring: most of the last windows exploit.
            assert!(bayes.exploits() >= 20, "seed {seed}: {}", bayes.exploits());
            let mean = tail.iter().sum::<f64>() / tail.len() as f64;
            assert!(mean < 0.4 * 1.05, "seed {seed}: tail mean {mean}");
        }
        assert!(near >= 2, "{near} of 3 within 2 %");
    }

    #[test]
    fn deterministic_for_a_seed_and_within_limits() {
        let cpu = Dimension::new(Knob::Cpu, &levels(25))
            .unwrap()
            .with_lower_limit(4)
            .unwrap();
        let space = Space::new(&[
            cpu,
            Dimension::batch(16).unwrap().with_lower_limit(3).unwrap(),
        ])
        .unwrap();
        let run = |seed| {
            let mut bayes = Bayes::new(BayesSettings::default(), seed);
            let mut config = bayes.start(&space);
            let mut out = std::vec![config];
            for w in 1..=60 {
                assert!(space.within_limits(&config));
                let cost = noisy_bowl(&space, &[2.0, 1.0], 0.05, seed, w, &config);
                config = bayes.step(&space, &WindowReport::measured(w, config, cost, 20.0));
                out.push(config);
            }
            out
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn a_window_that_drained_a_backlog_is_measured_again_not_observed() {
        let space = xavier();
        let mut bayes = Bayes::new(BayesSettings::default(), 2);
        let first = bayes.start(&space);
        // 416 requests at 20 a second take 20.8 s.
        let window = |index: u32, config: Config, end_s: u64, cost: f64| {
            let mut r = WindowReport::measured(index, config, cost, 20.0);
            (r.requests, r.discarded) = (316, 100);
            r.end = Instant::from_micros(end_s * 1_000_000);
            r
        };
        let second = bayes.step(&space, &window(1, first, 21, 0.9));
        assert_eq!(bayes.observations(), 1);
        // 416 served in 12 s: about 176 of them arrived before the window.
        let again = bayes.step(&space, &window(2, second, 33, 7.0));
        assert_eq!(again, second, "measured again");
        assert_eq!((bayes.observations(), bayes.remeasured()), (1, 1));
        let _ = bayes.step(&space, &window(3, again, 54, 0.8));
        assert_eq!((bayes.observations(), bayes.remeasured()), (2, 1));
        let (_, cost) = bayes.incumbent().unwrap();
        assert!((cost - 0.8).abs() < 1e-12);
    }

    #[test]
    fn footprint_fits_the_controller_goal() {
        assert!(core::mem::size_of::<Bayes>() <= 24 * 1024);
    }
}
