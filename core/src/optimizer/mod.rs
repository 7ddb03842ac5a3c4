//! The optimizer interface, EcoGD and the paper's baselines.
//!
//! An optimizer proposes the config to measure next from the report of the window
//! just measured. It never sees a clock or a board: the controller feeds it. The
//! paper's EcoGD and its baselines implement this same trait, each in its own
//! module, each in fixed memory (`size_of` is the whole footprint) with bounded work
//! per step, and each deterministic for a given seed.
//!
//! | name | type | module |
//! |---|---|---|
//! | `ecogd` | [`EcoGd`] | [`ecogd`] |
//! | `grid` | [`Grid`] | [`grid`] |
//! | `linear` | [`Linear`] | [`linear`] |
//! | `dvfs` | [`Dvfs`] | [`dvfs`] |
//! | `mab`, `mab-joint` | [`Mab`], [`MabJoint`] | [`mab`] |
//! | `bayes` | [`Bayes`] | [`bayes`] |
//! | `random` | [`RandomSearch`] | [`random`] |
//! | `fixed:CPU,GPU,BATCH`, `fixed:max` | [`Fixed`] | here |
//!
//! [`by_name`] builds any of them from its command-line name as an
//! [`AnyOptimizer`], an enum that delegates (no `dyn`, no heap), in the
//! [`Assisted`] wrapper that offers every optimizer EcoGD's load replay and
//! early abandonment (`grid+replay+abandon`), so comparisons can be fair.
//!
//! All optimizers stay inside the search limits of the space ([`Space::step`],
//! [`Space::within_limits`]); only `fixed` may go below them.

pub mod assist;
pub mod bayes;
pub mod dvfs;
pub mod ecogd;
pub mod grid;
pub mod history;
pub mod linear;
pub mod mab;
pub mod names;
pub mod random;
mod rng;

pub use assist::{Assist, Assisted};
pub use bayes::{Bayes, BayesSettings};
pub use dvfs::Dvfs;
pub use ecogd::{EcoGd, EcoGdSettings};
pub use grid::Grid;
pub use history::History;
pub use linear::{Linear, Repeat};
pub use mab::{Decisions, Mab, MabJoint, MabSettings};
pub use names::{ADDITIONS, AnyOptimizer, BaseOptimizer, NAMES, NameError, by_name};
pub use random::RandomSearch;
pub use rng::Prng;

use crate::load::Load;
use crate::space::{Config, Knob, Space};
use crate::window::WindowReport;

/// Chooses the next config to measure, one window at a time.
pub trait Optimizer {
    /// Short name for reports (`"ecogd"`, `"fixed"`, ...).
    fn name(&self) -> &'static str;

    /// The first config to measure, once the baseline exists.
    fn start(&mut self, space: &Space) -> Config;

    /// The next config, given the finished window of the config this optimizer
    /// last asked for (its `cost.mean` is normalised by the baseline).
    fn step(&mut self, space: &Space, report: &WindowReport) -> Config;

    /// [`step`](Self::step), with the recent load at hand to price remembered
    /// configs under the same arrivals ([`Load::replay`]); the controller calls
    /// this one. The default ignores the load.
    fn step_under(&mut self, space: &Space, report: &WindowReport, load: &Load<'_>) -> Config {
        let _ = load;
        self.step(space, report)
    }

    /// True when this optimizer leaves `knob` to the operating system's governor
    /// instead of pinning it (the `dvfs` baseline). The config's index for such a
    /// knob is then not applied.
    fn governed(&self, knob: Knob) -> bool {
        let _ = knob;
        false
    }

    /// A cost above which the window of the config just proposed may be closed
    /// early ([`WindowReport::abandoned`]): the optimizer would not move there
    /// anyway, and an overloaded config builds a backlog for every request it
    /// keeps serving. `None` (the default): measure every window in full.
    fn ceiling(&self) -> Option<f64> {
        None
    }
}

/// Always the same config: a reference, and the `fixed:CPU,GPU,BATCH` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fixed {
    config: Option<Config>,
}

impl Fixed {
    /// Pins `config` (checked against the space by the controller).
    pub fn new(config: Config) -> Self {
        Fixed {
            config: Some(config),
        }
    }

    /// Pins every knob at its maximum, whatever the space (`fixed:max`).
    pub fn max() -> Self {
        Fixed { config: None }
    }

    fn config(&self, space: &Space) -> Config {
        self.config.unwrap_or_else(|| space.max_config())
    }
}

impl Optimizer for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn start(&mut self, space: &Space) -> Config {
        self.config(space)
    }

    fn step(&mut self, space: &Space, _report: &WindowReport) -> Config {
        self.config(space)
    }
}

/// A uniformly random config inside the search limits.
pub(crate) fn random_config(space: &Space, rng: &mut Prng) -> Config {
    let mut c = Config::default();
    for (dim, d) in space.dims().iter().enumerate() {
        c = c.with(dim, d.lower() + rng.below(d.max_index() - d.lower() + 1));
    }
    c
}

/// Position of a level index between the lower limit (0) and the top (1) of its
/// dimension: the coordinates the Bayesian baseline compares configs in.
pub(crate) fn unit_coordinate(space: &Space, config: &Config, dim: usize) -> f64 {
    match space.dims().get(dim) {
        Some(d) if d.max_index() > d.lower() => {
            config.index(dim).saturating_sub(d.lower()) as f64 / (d.max_index() - d.lower()) as f64
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Dimension;

    #[test]
    fn within_limits_visits_every_config_once() {
        let cpu = Dimension::new(Knob::Cpu, &[1, 2, 3])
            .unwrap()
            .with_lower_limit(1)
            .unwrap();
        let space = Space::new(&[cpu, Dimension::batch(3).unwrap()]).unwrap();
        let all: std::vec::Vec<Config> = space.configs().collect();
        assert_eq!(all.len(), space.size());
        assert_eq!(all.first(), Some(&space.min_config()));
        assert_eq!(all.last(), Some(&space.max_config()));
        assert!(all.iter().all(|c| space.within_limits(c)));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let empty = Space::default();
        assert_eq!(empty.configs().count(), 1);
    }

    #[test]
    fn random_configs_stay_within_limits() {
        let cpu = Dimension::new(Knob::Cpu, &[1, 2, 3, 4])
            .unwrap()
            .with_lower_limit(2)
            .unwrap();
        let space = Space::new(&[cpu, Dimension::batch(16).unwrap()]).unwrap();
        let mut rng = Prng::new(7);
        for _ in 0..200 {
            assert!(space.within_limits(&random_config(&space, &mut rng)));
        }
        assert_eq!(unit_coordinate(&space, &space.min_config(), 0), 0.0);
        assert_eq!(unit_coordinate(&space, &space.max_config(), 1), 1.0);
    }
}
