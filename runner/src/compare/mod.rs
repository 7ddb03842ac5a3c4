//! The paper's evaluation: every optimizer on every workload, judged against one
//! baseline per workload instance, split into the phases of ECOGD.md.
//!
//! Fairness by construction:
//! - *Equal horizons*: every run of a workload instance sees the same arrivals
//!   over the same virtual time. A synthetic pattern's `--windows N` becomes
//!   the time `N` windows of requests take to arrive, so an optimizer whose
//!   windows are cut short serves as many requests as one whose are not.
//! - *Nothing dropped for free*: a refused request, or one still waiting at
//!   the end, is charged the [`Penalty`] in the cost figures.
//! - *One reference*: for each instance `E0, L0` are measured once (every knob
//!   at its maximum, noise off) and given to every optimizer, so their costs
//!   are comparable and no run spends a window calibrating.
//!
//! Repeat `r` runs with seed `seed + r`: other sensor noise, jitter and
//! optimizer randomness, and, for workloads whose arrivals are random
//! (Poisson, the synthetic traces), another instance of the workload. The
//! figures are means over repeats; the paired differences against EcoGD, with
//! their confidence intervals, are in [`results::paired`].
//!
//! Phases: the *convergence window* is the first window from which the rolling
//! mean cost over 5 windows stays within +-10 % of the mean cost of the run's last
//! 20 % of windows until the end. "During" is before it (none when that is
//! window 0), "after" from it on, "overall" the whole run. A run that never
//! settles has no convergence window; its "after" figures are those of the last
//! 20 % of windows.
//!
//! Bounds, when `oracle` is compared: the best static config (a row of its
//! own), and the best config for each window ([`best_per_window`]), the lower
//! bound of an adaptive policy; each run's *regret* is its mean cost above
//! the latter.

pub mod plots;
pub mod results;

use std::path::Path;

use anyhow::{Context, Result};
use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::optimizer::Fixed;
use ecoedge_core::time::Duration;
use rayon::prelude::*;
use serde::Serialize;

use crate::knobs::ConfigJson;
use crate::metrics::{PhaseStats, Unserved};
use crate::record::Outcome;
use crate::sim::model::DeviceModel;
use crate::sim::named::{optimizer_named, simulate_named};
use crate::sim::oracle::{best_per_window, best_static, reference_baseline};
use crate::sim::{SimSetup, Stop, simulate, space_of};
use results::{
    BaselineJson, CompareJson, aggregate, headline, headline_text, paired, summary_table, table,
};

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

/// What a request the run did not serve costs: that of a request served at the
/// baseline's energy `E0` after `latency` - by default the 30 s after which a
/// client gives up (`serve --client-timeout`), so dropping a request is as bad
/// as making its client time out, and never cheaper than serving it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalty {
    /// The latency charged.
    pub latency: Duration,
}

impl Default for Penalty {
    fn default() -> Self {
        Penalty {
            latency: Duration::from_secs(30),
        }
    }
}

impl Penalty {
    /// The cost charged per unserved request against `baseline`.
    pub fn cost(&self, baseline: &Baseline, alpha: Alpha) -> f64 {
        alpha.cost(baseline, baseline.energy_j(), self.latency.as_secs_f64())
    }
}

/// One optimizer's figures on one workload, one repeat.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    /// Before convergence; `None` when the run settled at once.
    pub during: Option<PhaseStats>,
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
    /// Overall mean cost above the per-window oracle's, when it is known.
    pub regret: Option<f64>,
    /// Mean cost of each window, against the workload's baseline.
    #[serde(skip)]
    pub series: Vec<f64>,
    /// Per [`TIMELINE_BIN`] of arrival time: requests served that arrived
    /// in it, and their mean cost (for the plots against time).
    #[serde(skip)]
    pub timeline: Vec<Bin>,
}

/// The bins of the plots against time: every optimizer's runs share them,
/// unlike windows, whose lengths differ.
pub const TIMELINE_BIN: Duration = Duration::from_secs(300);

/// One [`TIMELINE_BIN`] of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bin {
    /// Requests that arrived in the bin and were served.
    pub served: f64,
    /// Their mean cost (0 when none).
    pub mean_cost: f64,
}

/// `out`'s served requests binned by arrival time, costed against
/// `baseline`.
fn timeline(out: &Outcome, baseline: &Baseline, alpha: Alpha) -> Vec<Bin> {
    let bin_us = TIMELINE_BIN.as_micros();
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for s in &out.served {
        let i = (s.arrival.as_micros() / bin_us) as usize;
        if sums.len() <= i {
            sums.resize(i + 1, (0.0, 0.0));
        }
        sums[i].0 += 1.0;
        sums[i].1 += alpha.cost(baseline, s.energy_j, s.latency_s());
    }
    sums.into_iter()
        .map(|(n, c)| Bin {
            served: n,
            mean_cost: if n > 0.0 { c / n } else { 0.0 },
        })
        .collect()
}

impl RunFigures {
    /// Splits `out` into phases against `baseline`, charging `penalty` (a cost)
    /// for every request refused or left waiting.
    pub fn of(out: &Outcome, baseline: &Baseline, alpha: Alpha, penalty: f64) -> Self {
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
        let pending = out
            .arrived
            .saturating_sub(out.refused)
            .saturating_sub(out.served.len() as u64);
        let unserved = |refused, pending| Unserved {
            refused,
            pending,
            penalty,
        };
        let during = (split > 0).then(|| {
            PhaseStats::of(
                out.served.iter().filter(|s| s.window < split),
                baseline,
                alpha,
                unserved(refused(&|w| w < split), 0),
            )
        });
        let after = PhaseStats::of(
            out.served.iter().filter(|s| s.window >= split),
            baseline,
            alpha,
            unserved(refused(&|w| w >= split), pending),
        );
        RunFigures {
            during,
            after,
            overall: PhaseStats::of(&out.served, baseline, alpha, unserved(out.refused, pending)),
            converge_window: converge,
            windows: n,
            final_config: ConfigJson::new(&out.space, &out.final_config),
            regret: None,
            series,
            timeline: timeline(out, baseline, alpha),
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

/// One instance of a workload (its arrivals for one seed): the setup, its
/// reference baseline and, when asked, its bounds.
pub struct Prepared {
    /// The simulation setup of this instance.
    pub setup: SimSetup,
    /// `E0, L0` for every optimizer on this instance.
    pub baseline: Baseline,
    /// The best static config, when the oracle is compared.
    pub oracle: Option<ecoedge_core::space::Config>,
    /// The per-window oracle's mean cost, when the oracle is compared.
    pub window_oracle: Option<f64>,
}

/// Measures each instance's baseline and, if asked, its bounds (in parallel).
pub fn prepare(
    model: &dyn DeviceModel,
    setups: Vec<SimSetup>,
    oracle: bool,
) -> Result<Vec<Prepared>> {
    setups
        .into_par_iter()
        .map(|setup| {
            let baseline = reference_baseline(model, &setup)?;
            let (oracle, window_oracle) = if oracle {
                (
                    Some(best_static(model, &setup, &baseline)?.config),
                    Some(best_per_window(model, &setup, &baseline)?.mean_cost),
                )
            } else {
                (None, None)
            };
            Ok(Prepared {
                setup,
                baseline,
                oracle,
                window_oracle,
            })
        })
        .collect()
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
    /// What an unserved request costs.
    pub penalty: Penalty,
}

impl Comparison<'_> {
    /// Instances of workload `w`: one per repeat when its arrivals are random.
    fn instances(&self, w: usize) -> u32 {
        if self.setups[w].workload.varies_with_seed() {
            self.repeats
        } else {
            1
        }
    }

    /// The setup of instance `i` of workload `w`, for equal horizons.
    fn instance(&self, w: usize, i: u32) -> SimSetup {
        let mut setup = self.setups[w].clone();
        setup.arrival_seed += u64::from(i);
        if let (Stop::Windows(n), Some(rate)) = (setup.stop, setup.workload.mean_rate()) {
            let requests = f64::from(n) * f64::from(setup.settings.window.requests);
            setup.stop = Stop::Duration(Duration::from_micros((requests / rate * 1e6) as u64));
        }
        setup
    }

    /// Units of work [`Comparison::run`] reports progress in: one per
    /// workload instance prepared, one per run.
    pub fn steps(&self) -> u64 {
        let w = self.setups.len();
        let instances: u64 = (0..w).map(|w| u64::from(self.instances(w))).sum();
        instances + (w * self.optimizers.len() * self.repeats as usize) as u64
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

    /// Runs one task on its instance.
    fn run_task(&self, prepared: &[Vec<Prepared>], task: &Task) -> Result<RunFigures> {
        let instance = task.repeat % self.instances(task.workload);
        let p = &prepared[task.workload][instance as usize];
        let mut setup = p.setup.clone();
        setup.seed += u64::from(task.repeat);
        setup.settings.baseline = Some(p.baseline);
        let model = self.device_model;
        let out = match (task.optimizer.as_str(), p.oracle) {
            ("oracle", Some(config)) => simulate(model, Fixed::new(config), &setup)?,
            (name, _) => simulate_named(model, name, &setup)?,
        };
        let alpha = setup.settings.window.alpha;
        let mut figures = RunFigures::of(
            &out,
            &p.baseline,
            alpha,
            self.penalty.cost(&p.baseline, alpha),
        );
        figures.regret = p.window_oracle.map(|o| figures.overall.mean_cost - o);
        Ok(figures)
    }

    /// Runs every task in parallel; `progress` hears of each finished step
    /// and what the work is now.
    pub fn run(&self, progress: &(dyn Fn(u64, &'static str) + Sync)) -> Result<CompareJson> {
        let model = self.device_model;
        let w = self.setups.len();
        progress(0, "baselines");
        let wants_oracle = self.optimizers.iter().any(|o| o == "oracle");
        let instances: Vec<SimSetup> = (0..w)
            .flat_map(|w| (0..self.instances(w)).map(move |i| (w, i)))
            .map(|(w, i)| self.instance(w, i))
            .collect();
        let count = instances.len() as u64;
        let mut flat = prepare(model, instances, wants_oracle)?.into_iter();
        let prepared: Vec<Vec<Prepared>> = (0..w)
            .map(|w| flat.by_ref().take(self.instances(w) as usize).collect())
            .collect();
        progress(count, "runs");
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
                let r = self
                    .run_task(&prepared, t)
                    .with_context(|| format!("{} on {}", t.optimizer, specs[t.workload]));
                progress(1, "runs");
                r
            })
            .collect::<Result<Vec<_>>>()?;

        let mut runs_by = Vec::new();
        for (w, spec) in specs.iter().enumerate() {
            for o in &self.optimizers {
                let runs: Vec<RunFigures> = tasks
                    .iter()
                    .zip(&figures)
                    .filter(|(t, _)| t.workload == w && &t.optimizer == o)
                    .map(|(_, f)| f.clone())
                    .collect();
                runs_by.push((spec.clone(), o.clone(), runs));
            }
        }
        let results = runs_by
            .iter()
            .map(|(spec, o, runs)| aggregate(spec, o, runs))
            .collect();
        let paired = paired(&runs_by);
        let first = &self.setups[0];
        let alpha = first.settings.window.alpha;
        Ok(CompareJson {
            device: self.device.clone(),
            model: self.model.clone(),
            alpha: alpha.get(),
            seed: first.seed,
            repeats: self.repeats,
            penalty_latency_s: self.penalty.latency.as_secs_f64(),
            model_departures: departures(first),
            baselines: specs
                .iter()
                .zip(&prepared)
                .map(|(w, ps)| {
                    let mean = |f: &dyn Fn(&Prepared) -> f64| {
                        ps.iter().map(f).sum::<f64>() / ps.len().max(1) as f64
                    };
                    BaselineJson {
                        workload: w.clone(),
                        instances: ps.len() as u32,
                        energy_j: mean(&|p| p.baseline.energy_j()),
                        latency_s: mean(&|p| p.baseline.latency_s()),
                        penalty_cost: mean(&|p| self.penalty.cost(&p.baseline, alpha)),
                        // Known only when every instance has it.
                        window_oracle_mean_cost: ps
                            .iter()
                            .map(|p| p.window_oracle)
                            .sum::<Option<f64>>()
                            .map(|sum| sum / ps.len().max(1) as f64),
                    }
                })
                .collect(),
            headline: headline(&paired),
            paired,
            results,
        })
    }
}

/// How `setup` departs from the defaults a reader assumes (scope, limits,
/// jitter, warm-up after clock changes), in words; empty for none.
fn departures(setup: &SimSetup) -> String {
    let mut d = Vec::new();
    if setup.settings.window.scope != ecoedge_core::window::WindowSettings::default().scope {
        d.push(format!(
            "energy scope {}",
            setup.settings.window.scope.name()
        ));
    }
    if setup.lower_limits != crate::knobs::LowerLimits::NONE {
        d.push("the original's lower limits".to_string());
    }
    if setup.jitter != crate::sim::JITTER {
        d.push(format!("service-time jitter {}", setup.jitter));
    }
    let w = setup.clock_warmup;
    if w.batches > 0 {
        d.push(format!(
            "{} batches {:.0} % slower after each clock change",
            w.batches,
            w.slowdown * 100.0
        ));
    }
    d.join(", ")
}

/// The markdown report of `doc`: a table per workload and the headline.
pub fn report_text(doc: &CompareJson) -> String {
    let last = doc.seed + u64::from(doc.repeats.max(1)) - 1;
    let departures = if doc.model_departures.is_empty() {
        String::new()
    } else {
        format!("; {}", doc.model_departures)
    };
    let mut text = format!(
        "## {} on {} (alpha {}, seeds {}-{last}, {} repeats; a refused or unserved request costs as one served after {} s{departures})\n\n",
        doc.model, doc.device, doc.alpha, doc.seed, doc.repeats, doc.penalty_latency_s
    );
    for b in &doc.baselines {
        if let Some(lower) = b.window_oracle_mean_cost {
            text.push_str(&format!(
                "Per-window oracle (lower bound of adaptive policies) on {}: mean cost {lower:.3}.\n\n",
                b.workload
            ));
        }
        text.push_str(&table(&doc.results, &doc.paired, &b.workload));
        text.push('\n');
    }
    let workloads: Vec<String> = doc.baselines.iter().map(|b| b.workload.clone()).collect();
    text.push_str(&summary_table(&doc.results, &workloads));
    text.push('\n');
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
    fn penalty_is_a_timed_out_request_at_baseline_energy() {
        let b = Baseline::new(2.0, 0.1).unwrap();
        // 0.5 * 2/2 + 0.5 * 30/0.1
        assert!((Penalty::default().cost(&b, Alpha::default()) - 150.5).abs() < 1e-9);
    }

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
