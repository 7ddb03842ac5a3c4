//! Flags shared by `run`, `sim` and `compare`: how windows are measured, costs
//! weighed, and which knobs are searched from where.

use anyhow::Result;
use clap::{Args, ValueEnum};
use ecoedge_core::controller::Settings;
use ecoedge_core::cost::{Alpha, EnergyScope};
use ecoedge_core::time::Duration;
use ecoedge_core::window::WindowSettings;

use crate::knobs::{KnobSet, LowerLimits};
use crate::units::parse_duration;

/// Which lower search limits to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Limits {
    /// The full space the slides describe (default).
    Full,
    /// The original code's limits: CPU and GPU level index 4, batch 4.
    Original,
}

/// How windows are measured and costs weighed; shared by `sim` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct MeasureArgs {
    /// Weight of energy in the cost (0 = latency only, 1 = energy only).
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Requests per measurement window.
    #[arg(long, default_value_t = 416)]
    pub window: u32,
    /// Requests discarded after a config change.
    #[arg(long, default_value_t = 100)]
    pub warmup: u32,
    /// Energy charged to requests: everything the meter saw, or only batch time.
    #[arg(long, value_enum, default_value_t = Scope::Total)]
    pub scope: Scope,
    /// Release a partial batch once its oldest request waited this long (e.g. 100ms); off by default.
    #[arg(long, value_parser = parse_duration)]
    pub max_wait: Option<Duration>,
    /// Lower search limits.
    #[arg(long, value_enum, default_value_t = Limits::Full)]
    pub limits: Limits,
    /// Knobs to tune, comma-separated: cpu, gpu, batch, emc (the memory clock).
    #[arg(long, default_value_t = KnobSet::paper())]
    pub knobs: KnobSet,
}

/// Energy scope on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Idle energy between batches included.
    Total,
    /// Only energy while batches run (the original's measurement).
    Active,
}

impl MeasureArgs {
    /// Controller settings and lower limits from the flags.
    pub fn settings(&self) -> Result<(Settings, LowerLimits)> {
        let window = WindowSettings {
            requests: self.window,
            warmup: self.warmup,
            alpha: Alpha::new(self.alpha).map_err(|e| anyhow::anyhow!("--alpha: {e}"))?,
            scope: match self.scope {
                Scope::Total => EnergyScope::Total,
                Scope::Active => EnergyScope::Active,
            },
        };
        window.validate().map_err(|e| {
            anyhow::anyhow!("--window {} --warmup {}: {e}", self.window, self.warmup)
        })?;
        let settings = Settings {
            window,
            max_wait: self.max_wait,
            ..Settings::default()
        };
        let limits = match self.limits {
            Limits::Full => LowerLimits::NONE,
            Limits::Original => LowerLimits::ORIGINAL,
        };
        Ok((settings, limits))
    }
}
