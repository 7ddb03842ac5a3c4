//! The optimizer interface and the `fixed` optimizer.
//!
//! An optimizer proposes the config to measure next from the report of the window
//! just measured. It never sees a clock or a board: the controller feeds it. The
//! paper's EcoGD and its baselines implement this same trait.

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

    /// True when this optimizer leaves `knob` to the operating system's governor
    /// instead of pinning it (the `dvfs` baseline). The config's index for such a
    /// knob is then not applied.
    fn governed(&self, knob: Knob) -> bool {
        let _ = knob;
        false
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
