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

/// `--max-wait`: how long a partial batch may wait, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxWait {
    /// Release a partial batch once its oldest request waited this long.
    Bounded(Duration),
    /// The paper's rule: full batches only.
    Unbounded,
}

fn parse_max_wait(s: &str) -> Result<MaxWait, String> {
    if s == "none" {
        Ok(MaxWait::Unbounded)
    } else {
        parse_duration(s)
            .map(MaxWait::Bounded)
            .map_err(|e| format!("{e}; or `none` for full batches only"))
    }
}

/// What a command measures by default when its flags do not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Requests per window.
    pub window: u32,
    /// Requests discarded after a config change.
    pub warmup: u32,
    /// Longest a partial batch waits (`None`: full batches only).
    pub max_wait: Option<Duration>,
}

impl Defaults {
    /// `sim` and `compare`: the paper's windows of 416 requests with 100 of
    /// warm-up, and its full-batch rule, so the tables compare with the paper.
    pub const PAPER: Defaults = Defaults {
        window: 416,
        warmup: 100,
        max_wait: None,
    };
}

/// How windows are measured and costs weighed; shared by `run`, `sim` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct MeasureArgs {
    /// Weight of energy in the cost (0 = latency only, 1 = energy only).
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Requests per measurement window (sim and compare: 416, the paper's; run: 100).
    #[arg(long)]
    pub window: Option<u32>,
    /// Requests discarded after a config change (sim and compare: 100; run: 20).
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Energy charged to requests: everything the meter saw, or only batch time.
    #[arg(long, value_enum, default_value_t = Scope::Total)]
    pub scope: Scope,
    /// Release a partial batch once its oldest request waited this long (e.g. 100ms), or
    /// `none` for full batches only (sim and compare: none, the paper's rule; run: one
    /// largest batch's time, measured at start).
    #[arg(long, value_parser = parse_max_wait)]
    pub max_wait: Option<MaxWait>,
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
    /// Controller settings and lower limits from the flags, `defaults` where
    /// they say nothing.
    pub fn settings(&self, defaults: &Defaults) -> Result<(Settings, LowerLimits)> {
        let (requests, warmup) = (
            self.window.unwrap_or(defaults.window),
            self.warmup.unwrap_or(defaults.warmup),
        );
        let window = WindowSettings {
            requests,
            warmup,
            alpha: Alpha::new(self.alpha).map_err(|e| anyhow::anyhow!("--alpha: {e}"))?,
            scope: match self.scope {
                Scope::Total => EnergyScope::Total,
                Scope::Active => EnergyScope::Active,
            },
        };
        window
            .validate()
            .map_err(|e| anyhow::anyhow!("--window {requests} --warmup {warmup}: {e}"))?;
        let max_wait = match self.max_wait {
            Some(MaxWait::Bounded(d)) => Some(d),
            Some(MaxWait::Unbounded) => None,
            None => defaults.max_wait,
        };
        let settings = Settings {
            window,
            max_wait,
            ..Settings::default()
        };
        let limits = match self.limits {
            Limits::Full => LowerLimits::NONE,
            Limits::Original => LowerLimits::ORIGINAL,
        };
        Ok((settings, limits))
    }
}
