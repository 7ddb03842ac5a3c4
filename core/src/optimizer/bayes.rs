//! `bayes`: Bayesian optimisation, the paper's model-based baseline.
//!
//! After [`BayesSettings::hot_start`] random configs (10), every window fits a
//! Gaussian-process regression to the last [`OBSERVATIONS`] measurements (RBF
//! kernel on coordinates normalised per dimension to `[0, 1]` between the lower
//! limit and the top level; costs standardised to mean 0, variance 1; Cholesky
//! factorisation) and measures the config with the highest expected improvement
//! over the whole domain (every config inside the limits: 6000 on the Xavier NX).
//!
//! Everything lives in fixed arrays: `size_of::<Bayes>()` (about 35 KiB, the
//! Cholesky factor) is the whole footprint, and a step costs
//! `O(OBSERVATIONS^3 + configs * OBSERVATIONS^2)` arithmetic.

use libm::{erf, exp, sqrt};

use super::{Optimizer, Prng, WithinLimits, random_config, unit_coordinate};
use crate::space::{Config, MAX_DIMS, Space};
use crate::window::WindowReport;

/// Most recent measurements the Gaussian process is fitted to.
pub const OBSERVATIONS: usize = 64;

/// The Gaussian process's fixed hyper-parameters; [`Default`] suits costs that vary
/// smoothly over the knob range.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BayesSettings {
    /// Random configs measured before the model is used (10).
    pub hot_start: u32,
    /// RBF length scale in normalised coordinates (0.25: a quarter of each knob's
    /// range).
    pub length_scale: f64,
    /// Observation noise variance relative to the standardised cost variance
    /// (0.01); also keeps the kernel matrix well conditioned.
    pub noise: f64,
    /// Exploration margin `xi` of the expected improvement (0.01).
    pub xi: f64,
}

impl Default for BayesSettings {
    fn default() -> Self {
        BayesSettings {
            hot_start: 10,
            length_scale: 0.25,
            noise: 0.01,
            xi: 0.01,
        }
    }
}

/// The Bayesian-optimisation baseline; see the module doc.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bayes {
    settings: BayesSettings,
    rng: Prng,
    /// Normalised coordinates of the observations (a ring: `next` is the oldest
    /// once `len` is full).
    xs: [[f64; MAX_DIMS]; OBSERVATIONS],
    ys: [f64; OBSERVATIONS],
    len: usize,
    next: usize,
    hot_left: u32,
    /// Lower Cholesky factor of the kernel matrix, then scratch.
    chol: [[f64; OBSERVATIONS]; OBSERVATIONS],
    /// `K^-1 y` of the standardised costs.
    weights: [f64; OBSERVATIONS],
    model_steps: u32,
}

impl Bayes {
    /// Bayesian optimisation with `settings`, random choices fixed by `seed`.
    pub fn new(settings: BayesSettings, seed: u64) -> Self {
        Bayes {
            settings,
            rng: Prng::new(seed),
            xs: [[0.0; MAX_DIMS]; OBSERVATIONS],
            ys: [0.0; OBSERVATIONS],
            len: 0,
            next: 0,
            hot_left: 0,
            chol: [[0.0; OBSERVATIONS]; OBSERVATIONS],
            weights: [0.0; OBSERVATIONS],
            model_steps: 0,
        }
    }

    /// Measurements held (at most [`OBSERVATIONS`]).
    pub fn observations(&self) -> usize {
        self.len
    }

    /// Windows whose next config came from the model (not random).
    pub fn model_steps(&self) -> u32 {
        self.model_steps
    }

    fn observe(&mut self, space: &Space, config: &Config, cost: f64) {
        let mut x = [0.0; MAX_DIMS];
        for (dim, v) in x.iter_mut().enumerate().take(space.len()) {
            *v = unit_coordinate(space, config, dim);
        }
        if let (Some(slot), Some(y)) = (self.xs.get_mut(self.next), self.ys.get_mut(self.next)) {
            *slot = x;
            *y = cost;
        }
        self.next = (self.next + 1) % OBSERVATIONS;
        self.len = (self.len + 1).min(OBSERVATIONS);
    }

    fn kernel(&self, a: &[f64; MAX_DIMS], b: &[f64; MAX_DIMS]) -> f64 {
        let d2: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
        let l = self.settings.length_scale;
        exp(-d2 / (2.0 * l * l))
    }

    /// Fits the model; returns the standardisation (mean, std) and the best
    /// standardised cost, or `None` when the kernel matrix is not positive definite.
    fn fit(&mut self) -> Option<(f64, f64, f64)> {
        let n = self.len;
        let ys = self.ys.get(..n)?;
        let mean = ys.iter().sum::<f64>() / n as f64;
        let var = ys.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / n as f64;
        let std = if var > 1e-24 { sqrt(var) } else { 1.0 };
        // Cholesky: K = L L^T, K = kernel + noise on the diagonal.
        for i in 0..n {
            for j in 0..=i {
                let mut sum = self.kernel(&self.xs[i], &self.xs[j]);
                if i == j {
                    sum += self.settings.noise.max(1e-9);
                }
                for k in 0..j {
                    sum -= self.chol[i][k] * self.chol[j][k];
                }
                self.chol[i][j] = if i == j {
                    if sum <= 0.0 || !sum.is_finite() {
                        return None;
                    }
                    sqrt(sum)
                } else {
                    sum / self.chol[j][j]
                };
            }
        }
        // weights = K^-1 y: forward then backward substitution.
        let mut best = f64::INFINITY;
        for i in 0..n {
            let y = (self.ys[i] - mean) / std;
            best = best.min(y);
            let mut sum = y;
            for k in 0..i {
                sum -= self.chol[i][k] * self.weights[k];
            }
            self.weights[i] = sum / self.chol[i][i];
        }
        for i in (0..n).rev() {
            let mut sum = self.weights[i];
            for k in (i + 1)..n {
                sum -= self.chol[k][i] * self.weights[k];
            }
            self.weights[i] = sum / self.chol[i][i];
        }
        Some((mean, std, best))
    }

    /// Expected improvement (for minimisation) of the config at normalised `x`.
    fn expected_improvement(&self, x: &[f64; MAX_DIMS], best: f64) -> f64 {
        let n = self.len;
        let mut k = [0.0; OBSERVATIONS];
        let mut mu = 0.0;
        for ((ki, xi), wi) in k.iter_mut().zip(&self.xs).zip(&self.weights).take(n) {
            *ki = self.kernel(x, xi);
            mu += *ki * wi;
        }
        // Predictive variance 1 - v.v with L v = k (v overwrites k in place).
        let mut vv = 0.0;
        for (i, row) in self.chol.iter().enumerate().take(n) {
            let (solved, rest) = k.split_at_mut(i);
            let Some(ki) = rest.first_mut() else {
                break;
            };
            let sum = *ki
                - row
                    .iter()
                    .zip(solved.iter())
                    .map(|(l, v)| l * v)
                    .sum::<f64>();
            let v = sum / row[i];
            *ki = v;
            vv += v * v;
        }
        let sigma = sqrt((1.0 - vv).max(0.0));
        let gain = best - mu - self.settings.xi;
        if sigma < 1e-12 {
            return gain.max(0.0);
        }
        let z = gain / sigma;
        let cdf = 0.5 * (1.0 + erf(z / core::f64::consts::SQRT_2));
        let pdf = exp(-0.5 * z * z) / sqrt(2.0 * core::f64::consts::PI);
        gain * cdf + sigma * pdf
    }

    fn suggest(&mut self, space: &Space) -> Option<Config> {
        let (_, _, best) = self.fit()?;
        let mut choice: Option<(Config, f64)> = None;
        for c in WithinLimits::new(space) {
            let mut x = [0.0; MAX_DIMS];
            for (dim, v) in x.iter_mut().enumerate().take(space.len()) {
                *v = unit_coordinate(space, &c, dim);
            }
            let ei = self.expected_improvement(&x, best);
            if ei.is_finite() && choice.is_none_or(|(_, e)| ei > e) {
                choice = Some((c, ei));
            }
        }
        choice.map(|(c, _)| c)
    }
}

impl Optimizer for Bayes {
    fn name(&self) -> &'static str {
        "bayes"
    }

    fn start(&mut self, space: &Space) -> Config {
        self.len = 0;
        self.next = 0;
        self.model_steps = 0;
        self.hot_left = self.settings.hot_start.saturating_sub(1);
        random_config(space, &mut self.rng)
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        if report.cost.mean.is_finite() && space.within_limits(&report.config) {
            self.observe(space, &report.config, report.cost.mean);
        }
        if self.hot_left > 0 || self.len == 0 {
            self.hot_left = self.hot_left.saturating_sub(1);
            return random_config(space, &mut self.rng);
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
