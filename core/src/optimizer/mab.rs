//! `mab` and `mab-joint`: the paper's multi-armed-bandit baselines.
//!
//! Both start hot with [`MabSettings::hot_start`] random configs (10), average the
//! costs they see exponentially (weight [`MabSettings::weight`] = 0.9 on the new
//! value), and then each window exploit with probability
//! [`MabSettings::exploit`] (0.9) or explore a random arm.
//!
//! - [`Mab`] has one bandit per dimension whose arms are that dimension's levels; it
//!   changes one dimension per window, round-robin. Exploiting picks the level with
//!   the lowest averaged cost over whatever the other dimensions were when it was
//!   measured; exploring picks a random level.
//! - [`MabJoint`] has one bandit whose arms are whole configs. Exploiting picks the
//!   cheapest config measured; exploring a random config. Only measured arms carry
//!   an estimate, so it keeps the [`JOINT_ARMS`] measured arms in a fixed table and
//!   forgets the most expensive one when full (it is the one exploitation would
//!   pick last).

use heapless::Vec;

use super::{Optimizer, Prng, random_config};
use crate::space::{Config, MAX_DIMS, MAX_LEVELS, Space};
use crate::window::WindowReport;

/// Measured arms [`MabJoint`] remembers.
pub const JOINT_ARMS: usize = 128;

/// Parameters shared by both bandits; [`Default`] gives the paper's values.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MabSettings {
    /// Probability of exploiting the best-known arm in a window (0.9).
    pub exploit: f64,
    /// Weight of a new cost in the exponential average (0.9).
    pub weight: f64,
    /// Random configs measured before any exploitation (10).
    pub hot_start: u32,
}

impl Default for MabSettings {
    fn default() -> Self {
        MabSettings {
            exploit: 0.9,
            weight: 0.9,
            hot_start: 10,
        }
    }
}

impl MabSettings {
    fn average(&self, old: Option<f64>, new: f64) -> f64 {
        match old {
            Some(old) => self.weight * new + (1.0 - self.weight) * old,
            None => new,
        }
    }
}

/// Counts of the decisions a bandit took after its hot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decisions {
    /// Windows that exploited the best-known arm.
    pub exploits: u32,
    /// Windows that explored a random arm.
    pub explorations: u32,
}

/// Per-dimension bandits, round-robin over dimensions; see the module doc.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Mab {
    settings: MabSettings,
    rng: Prng,
    /// Averaged cost per dimension and level; NaN where never measured.
    estimates: [[f64; MAX_LEVELS]; MAX_DIMS],
    current: Config,
    round: u32,
    hot_left: u32,
    decisions: Decisions,
}

impl Mab {
    /// Per-dimension bandits with `settings`, random choices fixed by `seed`.
    pub fn new(settings: MabSettings, seed: u64) -> Self {
        Mab {
            settings,
            rng: Prng::new(seed),
            estimates: [[f64::NAN; MAX_LEVELS]; MAX_DIMS],
            current: Config::default(),
            round: 0,
            hot_left: 0,
            decisions: Decisions::default(),
        }
    }

    /// Exploit and explore counts so far (hot start excluded).
    pub fn decisions(&self) -> Decisions {
        self.decisions
    }

    /// The averaged cost of level `index` of dimension `dim`, if ever measured.
    pub fn estimate(&self, dim: usize, index: usize) -> Option<f64> {
        self.estimates
            .get(dim)
            .and_then(|d| d.get(index))
            .copied()
            .filter(|e| !e.is_nan())
    }

    fn best_level(&self, space: &Space, dim: usize) -> Option<usize> {
        let d = space.dims().get(dim)?;
        (d.lower()..=d.max_index())
            .filter_map(|i| self.estimate(dim, i).map(|e| (i, e)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}

impl Optimizer for Mab {
    fn name(&self) -> &'static str {
        "mab"
    }

    fn start(&mut self, space: &Space) -> Config {
        self.estimates = [[f64::NAN; MAX_LEVELS]; MAX_DIMS];
        self.round = 0;
        self.decisions = Decisions::default();
        self.hot_left = self.settings.hot_start.saturating_sub(1);
        self.current = random_config(space, &mut self.rng);
        self.current
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        let cost = report.cost.mean;
        if cost.is_finite() {
            for dim in 0..space.len().min(MAX_DIMS) {
                let level = report.config.index(dim);
                let old = self.estimate(dim, level);
                if let Some(e) = self.estimates[dim].get_mut(level) {
                    *e = self.settings.average(old, cost);
                }
            }
        }
        if self.hot_left > 0 {
            self.hot_left -= 1;
            self.current = random_config(space, &mut self.rng);
            return self.current;
        }
        if space.is_empty() {
            return self.current;
        }
        let dim = (self.round as usize) % space.len();
        self.round = self.round.wrapping_add(1);
        let exploit = self.rng.chance(self.settings.exploit);
        let level = if exploit {
            self.best_level(space, dim)
        } else {
            None
        };
        let level = match (level, space.dims().get(dim)) {
            (Some(level), _) => {
                self.decisions.exploits = self.decisions.exploits.saturating_add(1);
                level
            }
            (None, Some(d)) => {
                self.decisions.explorations = self.decisions.explorations.saturating_add(1);
                d.lower() + self.rng.below(d.max_index() - d.lower() + 1)
            }
            (None, None) => return self.current,
        };
        self.current = self.current.with(dim, level);
        self.current
    }
}

/// One measured arm of the joint bandit.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Arm {
    config: Config,
    cost: f64,
}

/// One bandit over whole configs; see the module doc.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MabJoint {
    settings: MabSettings,
    rng: Prng,
    arms: Vec<Arm, JOINT_ARMS>,
    current: Config,
    hot_left: u32,
    decisions: Decisions,
}

impl MabJoint {
    /// A joint bandit with `settings`, random choices fixed by `seed`.
    pub fn new(settings: MabSettings, seed: u64) -> Self {
        MabJoint {
            settings,
            rng: Prng::new(seed),
            arms: Vec::new(),
            current: Config::default(),
            hot_left: 0,
            decisions: Decisions::default(),
        }
    }

    /// Exploit and explore counts so far (hot start excluded).
    pub fn decisions(&self) -> Decisions {
        self.decisions
    }

    /// The averaged cost of `config`, if it is a remembered arm.
    pub fn estimate(&self, config: &Config) -> Option<f64> {
        self.arms
            .iter()
            .find(|a| a.config == *config)
            .map(|a| a.cost)
    }

    fn update(&mut self, config: Config, cost: f64) {
        let settings = self.settings;
        if let Some(a) = self.arms.iter_mut().find(|a| a.config == config) {
            a.cost = settings.average(Some(a.cost), cost);
            return;
        }
        if self.arms.is_full() {
            let worst = self
                .arms
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.cost.total_cmp(&b.1.cost))
                .map(|(i, _)| i);
            if let Some(i) = worst {
                self.arms.swap_remove(i);
            }
        }
        // Cannot fail: there is room now.
        let _ = self.arms.push(Arm { config, cost });
    }
}

impl Optimizer for MabJoint {
    fn name(&self) -> &'static str {
        "mab-joint"
    }

    fn start(&mut self, space: &Space) -> Config {
        self.arms.clear();
        self.decisions = Decisions::default();
        self.hot_left = self.settings.hot_start.saturating_sub(1);
        self.current = random_config(space, &mut self.rng);
        self.current
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        if report.cost.mean.is_finite() && space.within_limits(&report.config) {
            self.update(report.config, report.cost.mean);
        }
        if self.hot_left > 0 {
            self.hot_left -= 1;
            self.current = random_config(space, &mut self.rng);
            return self.current;
        }
        let best = self
            .arms
            .iter()
            .min_by(|a, b| a.cost.total_cmp(&b.cost))
            .map(|a| a.config);
        self.current = match best.filter(|_| self.rng.chance(self.settings.exploit)) {
            Some(best) => {
                self.decisions.exploits = self.decisions.exploits.saturating_add(1);
                best
            }
            None => {
                self.decisions.explorations = self.decisions.explorations.saturating_add(1);
                random_config(space, &mut self.rng)
            }
        };
        self.current
    }
}
