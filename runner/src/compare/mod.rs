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

pub mod plots;
pub mod results;

use std::path::Path;

use anyhow::{Context, Result};
use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::optimizer::Fixed;
use rayon::prelude::*;
use serde::Serialize;

use crate::knobs::ConfigJson;
use crate::metrics::PhaseStats;
use crate::record::Outcome;
use crate::sim::model::DeviceModel;
use crate::sim::named::{optimizer_named, simulate_named};
use crate::sim::oracle::{best_static, reference_baseline};
use crate::sim::{SimSetup, simulate, space_of};
use results::{BaselineJson, CompareJson, aggregate, headline, headline_text, table};

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
        let refused = |f: &dyn Fn(u32) -> bool| {
            (0u32..)
                .zip(&out.refused_by_window)
                .filter(|&(w, _)| f(w))
                .map(|(_, n)| n)
                .sum::<u64>()
        };
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

/// A comparison to run: every optimizer on every workload, `repeats` times.
pub struct Comparison<'m> {
    /// Device name, for the report.
    pub device: String,
    /// DNN name, for the report.
    pub model: String,
    /// The device model simulated.
    pub device_model: &'m dyn DeviceModel,
    /// One setup per workload (seed of repeat 0).
    pub setups: Vec<SimSetup>,
    /// Optimizer names (`oracle` included where wanted).
    pub optimizers: Vec<String>,
    /// Reruns per optimizer and workload.
    pub repeats: u32,
}

impl Comparison<'_> {
    /// Units of work [`Comparison::run`] reports progress in: one per
    /// workload's baseline, one per run.
    pub fn steps(&self) -> u64 {
        let w = self.setups.len();
        (w + w * self.optimizers.len() * self.repeats as usize) as u64
    }

    /// Checks every optimizer name against the space before minutes of work.
    pub fn check(&self) -> Result<()> {
        let Some(first) = self.setups.first() else {
            return Ok(());
        };
        let space = space_of(self.device_model, first)?;
        for o in self.optimizers.iter().filter(|o| *o != "oracle") {
            optimizer_named(o, &space, 0).context("--optimizers")?;
        }
        Ok(())
    }

    /// Runs every task in parallel; `progress` hears of each finished step
    /// and what the work is now.
    pub fn run(&self, progress: &(dyn Fn(u64, &'static str) + Sync)) -> Result<CompareJson> {
        let model = self.device_model;
        let w = self.setups.len();
        progress(0, "baselines");
        let wants_oracle = self.optimizers.iter().any(|o| o == "oracle");
        let prepared: Vec<Prepared> = prepare(model, self.setups.clone(), wants_oracle)?;
        progress(w as u64, "runs");
        let tasks: Vec<Task> = (0..w)
            .flat_map(|w| {
                self.optimizers.iter().flat_map(move |o| {
                    (0..self.repeats).map(move |repeat| Task {
                        workload: w,
                        optimizer: o.clone(),
                        repeat,
                    })
                })
            })
            .collect();
        let specs: Vec<String> = self.setups.iter().map(|s| s.workload.to_string()).collect();
        let figures = tasks
            .par_iter()
            .map(|t| {
                let r = run_task(model, &prepared, t)
                    .with_context(|| format!("{} on {}", t.optimizer, specs[t.workload]));
                progress(1, "runs");
                r
            })
            .collect::<Result<Vec<_>>>()?;

        let mut results = Vec::new();
        for (w, spec) in specs.iter().enumerate() {
            for o in &self.optimizers {
                let runs: Vec<RunFigures> = tasks
                    .iter()
                    .zip(&figures)
                    .filter(|(t, _)| t.workload == w && &t.optimizer == o)
                    .map(|(_, f)| f.clone())
                    .collect();
                results.push(aggregate(spec, o, &runs));
            }
        }
        let first = &self.setups[0];
        Ok(CompareJson {
            device: self.device.clone(),
            model: self.model.clone(),
            alpha: first.settings.window.alpha.get(),
            seed: first.seed,
            repeats: self.repeats,
            baselines: specs
                .iter()
                .zip(&prepared)
                .map(|(w, p)| BaselineJson {
                    workload: w.clone(),
                    energy_j: p.baseline.energy_j(),
                    latency_s: p.baseline.latency_s(),
                })
                .collect(),
            headline: headline(&results),
            results,
        })
    }
}

/// The markdown report of `doc`: a table per workload and the headline.
pub fn report_text(doc: &CompareJson) -> String {
    let mut text = format!(
        "## {} on {} (alpha {}, seed {}, {} repeats)\n\n",
        doc.model, doc.device, doc.alpha, doc.seed, doc.repeats
    );
    for b in &doc.baselines {
        text.push_str(&table(&doc.results, &b.workload));
        text.push('\n');
    }
    if let Some(h) = &doc.headline {
        text.push_str(&headline_text(h));
        text.push('\n');
    }
    text
}

/// Writes `tables.md` (`text`), `results.json` and the plots into `dir`.
pub fn write_out(dir: &Path, doc: &CompareJson, text: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("tables.md"), text)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(doc)? + "\n",
    )?;
    plots::write_all(dir, doc)
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
