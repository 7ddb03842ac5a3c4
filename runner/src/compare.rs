//! The paper's evaluation: every optimizer on every workload, judged against one
//! baseline per workload, split into the phases of ECOGD.md.
//!
//! For each workload the reference `E0, L0` is measured once (every knob at its
//! maximum, noise off) and given to every optimizer, so their costs are
//! comparable and no run spends a window calibrating. Each optimizer runs
//! `repeats` times: the same arrivals (a rerun replays the trace), other sensor
//! noise, jitter and optimizer randomness. Figures are means over repeats.
//!
//! Phases: the *convergence window* is the first window from which the rolling
//! mean cost over 5 windows stays within +-10 % of the mean cost of the run's last
//! 20 % of windows until the end. "During" is before it, "after" from it on,
//! "overall" the whole run. A run that never settles has no convergence window;
//! its "after" figures are those of the last 20 % of windows.

use anyhow::Result;
use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::optimizer::Fixed;
use rayon::prelude::*;
use serde::Serialize;

use crate::cmd::sim::simulate_named;
use crate::metrics::PhaseStats;
use crate::report::ConfigJson;
use crate::sim::model::DeviceModel;
use crate::sim::oracle::{best_static, reference_baseline};
use crate::sim::{Outcome, SimSetup, simulate};

/// Windows in the rolling mean of the convergence rule.
const ROLLING: usize = 5;
/// Tolerance of the convergence rule, relative.
const TOLERANCE: f64 = 0.10;

/// The convergence window of a per-window cost series (see the module doc).
pub fn converge_window(costs: &[f64]) -> Option<usize> {
    let n = costs.len();
    if n < ROLLING {
        return None;
    }
    let tail = (n / 5).max(1);
    let target = costs[n - tail..].iter().sum::<f64>() / tail as f64;
    let last = n - ROLLING;
    let settled = |i: usize| {
        let r = costs[i..i + ROLLING].iter().sum::<f64>() / ROLLING as f64;
        (r - target).abs() <= TOLERANCE * target
    };
    match (0..=last).rev().find(|&i| !settled(i)) {
        None => Some(0),
        Some(i) if i == last => None,
        Some(i) => Some(i + 1),
    }
}

/// One optimizer's figures on one workload, one repeat.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    /// Before convergence.
    pub during: PhaseStats,
    /// From convergence on.
    pub after: PhaseStats,
    /// The whole run.
    pub overall: PhaseStats,
    /// The convergence window, if the run settled.
    pub converge_window: Option<usize>,
    /// Windows closed.
    pub windows: usize,
    /// The config at the end.
    pub final_config: ConfigJson,
    /// Mean cost of each window, against the workload's baseline.
    #[serde(skip)]
    pub series: Vec<f64>,
}

impl RunFigures {
    /// Splits `out` into phases against `baseline`.
    pub fn of(out: &Outcome, baseline: &Baseline, alpha: Alpha) -> Self {
        let series: Vec<f64> = out.windows.iter().map(|w| w.cost.mean).collect();
        let n = series.len();
        let converge = converge_window(&series);
        let split = converge.unwrap_or(n - (n / 5).max(1).min(n)) as u32;
        let refused =
            |f: &dyn Fn(u32) -> bool| out.refused_in.iter().filter(|&&w| f(w)).count() as u64;
        let during = PhaseStats::of(
            out.served.iter().filter(|s| s.window < split),
            baseline,
            alpha,
            refused(&|w| w < split),
        );
        let after = PhaseStats::of(
            out.served.iter().filter(|s| s.window >= split),
            baseline,
            alpha,
            refused(&|w| w >= split),
        );
        RunFigures {
            during,
            after,
            overall: PhaseStats::of(&out.served, baseline, alpha, out.refused),
            converge_window: converge,
            windows: n,
            final_config: ConfigJson::new(&out.space, &out.final_config),
            series,
        }
    }
}

/// One task of a comparison: a workload, an optimizer, a repeat.
#[derive(Debug, Clone)]
pub struct Task {
    /// Index into the workload list.
    pub workload: usize,
    /// Optimizer name (or `oracle`).
    pub optimizer: String,
    /// Repeat number, from 0.
    pub repeat: u32,
}

/// Per workload: the setup, its reference baseline and the oracle's config.
pub struct Prepared {
    /// The simulation setup (seed of repeat 0).
    pub setup: SimSetup,
    /// `E0, L0` for every optimizer on this workload.
    pub baseline: Baseline,
    /// The best static config, when the oracle is compared.
    pub oracle: Option<ecoedge_core::space::Config>,
}

/// Measures each workload's baseline and, if asked, its oracle (in parallel).
pub fn prepare(
    model: &dyn DeviceModel,
    setups: Vec<SimSetup>,
    oracle: bool,
) -> Result<Vec<Prepared>> {
    setups
        .into_par_iter()
        .map(|setup| {
            let baseline = reference_baseline(model, &setup)?;
            let oracle = if oracle {
                Some(best_static(model, &setup, &baseline)?.config)
            } else {
                None
            };
            Ok(Prepared {
                setup,
                baseline,
                oracle,
            })
        })
        .collect()
}

/// Runs one task.
pub fn run_task(model: &dyn DeviceModel, prepared: &[Prepared], task: &Task) -> Result<RunFigures> {
    let p = &prepared[task.workload];
    let mut setup = p.setup.clone();
    setup.seed = p.setup.seed + task.repeat as u64;
    setup.settings.baseline = Some(p.baseline);
    let out = match (task.optimizer.as_str(), p.oracle) {
        ("oracle", Some(config)) => simulate(model, Fixed::new(config), &setup)?,
        (name, _) => simulate_named(model, name, &setup)?,
    };
    Ok(RunFigures::of(
        &out,
        &p.baseline,
        setup.settings.window.alpha,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convergence_window_follows_the_rule() {
        // Explores for 10 windows, then settles at 1.0.
        let mut c = vec![5.0; 10];
        c.extend(vec![1.0; 40]);
        assert_eq!(converge_window(&c), Some(10));
        // Settled from the start.
        assert_eq!(converge_window(&[1.0; 20]), Some(0));
        // Still wandering at the end.
        let wander: Vec<f64> = (0..50)
            .map(|i| if i % 10 < 5 { 1.0 } else { 3.0 })
            .collect();
        assert_eq!(converge_window(&wander), None);
        assert_eq!(converge_window(&[1.0; 4]), None);
    }
}
