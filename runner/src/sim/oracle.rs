//! The oracle: the best static config for a workload, found by simulation.
//!
//! Only a simulator can know it: configs are ranked by mean per-request cost,
//! noise off, against one reference baseline; configs that refuse requests
//! rank after all that do not. Simulating all 6000 configs over a 3-hour
//! trace would take minutes, so the search prices first, then decides:
//! - every config is priced over the whole run's arrivals by the core's replay
//!   ([`Load::replay`]) with the model's exact service figures - the batch
//!   rule, waiting, busy and idle energy, as the simulator runs them, one step
//!   per batch;
//! - the [`FINALISTS`] cheapest are simulated over the full run, and the best
//!   simulated one is the answer, with its simulated cost.
//!
//! The replay knows no queue limit, so a config that could not keep up is
//! priced by its growing backlog rather than its refusals; the simulation of
//! the finalists has the last word. The result is the limit a static choice
//! can reach on that workload.
//!
//! [`best_per_window`] is the dynamic oracle: the best config in hindsight for
//! each window's arrivals, the lower bound an adaptive policy is judged by.

use std::collections::HashMap;

use anyhow::{Context, Result};
use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::load::{LOAD_SAMPLE, Load, Sample, Service};
use ecoedge_core::optimizer::Fixed;
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::time::Instant;
use rayon::prelude::*;

use super::model::{Clocks, DeviceModel};
use super::{SimSetup, Stop, simulate, space_of};
use crate::metrics::{PhaseStats, Unserved};

/// Configs the replay carries into the simulated stage.
pub const FINALISTS: usize = 8;

/// The oracle's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaticBest {
    /// The best static config.
    pub config: Config,
    /// Its mean per-request cost over the full run, noise off.
    pub mean_cost: f64,
}

/// Mean energy and latency per request with every knob at its maximum, noise
/// off, over the setup's full run: the `E0, L0` every optimizer on this
/// workload is judged against.
pub fn reference_baseline(model: &dyn DeviceModel, setup: &SimSetup) -> Result<Baseline> {
    let mut quiet = setup.noiseless();
    // Calibration would measure the same thing; a dummy baseline skips it.
    quiet.settings.baseline = Some(Baseline::new(1.0, 1.0)?);
    let out = simulate(model, Fixed::max(), &quiet)?;
    let s = PhaseStats::of(
        &out.served,
        &Baseline::new(1.0, 1.0)?,
        Alpha::default(),
        Unserved::refused(out.refused),
    );
    Ok(Baseline::new(s.mean_energy_j, s.mean_latency_s)?)
}

/// Ranks `configs` by (refused any, mean cost) over `setup`'s run.
fn rank(
    model: &dyn DeviceModel,
    setup: &SimSetup,
    baseline: &Baseline,
    configs: &[Config],
) -> Result<Vec<(bool, f64, Config)>> {
    let mut quiet = setup.noiseless();
    quiet.settings.baseline = Some(*baseline);
    let alpha = quiet.settings.window.alpha;
    let mut ranked = configs
        .par_iter()
        .map(|&c| {
            let out = simulate(model, Fixed::new(c), &quiet)?;
            let s = PhaseStats::of(&out.served, baseline, alpha, Unserved::refused(out.refused));
            Ok((out.refused > 0, s.mean_cost, c))
        })
        .collect::<Result<Vec<_>>>()?;
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ok(ranked)
}

/// The best static config for `setup`'s workload, judged against `baseline`.
pub fn best_static(
    model: &dyn DeviceModel,
    setup: &SimSetup,
    baseline: &Baseline,
) -> Result<StaticBest> {
    let space = space_of(model, setup)?;
    let arrivals = arrivals_until_end(setup)?;
    let load = load_over(setup, baseline, &arrivals);
    let mut priced: Vec<(f64, Config)> = exact_services(model, &space)
        .par_iter()
        .filter_map(|(c, b, service)| Some((load.replay(*b, service)?.cost, *c)))
        .collect();
    priced.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let finalists: Vec<Config> = priced.iter().take(FINALISTS).map(|p| p.1).collect();
    let best = rank(model, setup, baseline, &finalists)?;
    let &(_, mean_cost, config) = best
        .first()
        .with_context(|| format!("{}: no batch forms in the run", setup.workload))?;
    Ok(StaticBest { config, mean_cost })
}

/// The dynamic oracle's answer: the best config for each window's arrivals.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowBest {
    /// Mean per-request cost over every window, each at its best config.
    pub mean_cost: f64,
    /// The windows, in order.
    pub windows: Vec<WindowChoice>,
}

/// One window of the dynamic oracle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowChoice {
    /// Arrival of the window's last request.
    pub last_arrival: Instant,
    /// Requests the window's cost is over: those its config served (the
    /// ones it left waiting open the next window).
    pub requests: usize,
    /// The best config for these arrivals.
    pub config: Config,
    /// Its mean per-request cost.
    pub cost: f64,
}

/// The best config in hindsight for each window of `setup`'s arrivals, noise
/// off, judged against `baseline`.
///
/// The arrivals up to the run's end are cut into windows of the controller's
/// window size, and every config within the search limits is priced on each
/// by the core's replay ([`Load::replay`]) with the model's exact service
/// figures: the batch rule, waiting, busy and idle energy, as the simulator
/// runs them. The requests a window's best config leaves waiting (a partial
/// batch under the full-batch rule) open the next window, as they would on
/// the board. Each window is chosen on its own arrivals, starts with an idle
/// engine and switches for free: no policy that must learn the load, pay for
/// its changes and carry backlog over gets there, so it stands for the lower
/// bound of an adaptive optimizer (a greedy one, not a proven minimum), as the
/// static oracle does for a fixed config. Windows whose gaps repeat an earlier
/// window's (periodic workloads) reuse its answer.
pub fn best_per_window(
    model: &dyn DeviceModel,
    setup: &SimSetup,
    baseline: &Baseline,
) -> Result<WindowBest> {
    let space = space_of(model, setup)?;
    let priced = exact_services(model, &space);
    let largest = priced.iter().map(|p| p.1 as usize).max().unwrap_or(1);
    // A window with the requests carried over fits the controller's own load
    // sample, as it would on the board.
    let size = (setup.settings.window.requests as usize).clamp(1, LOAD_SAMPLE - largest);
    let arrivals = arrivals_until_end(setup)?;
    let best_for = |sample: &[Instant]| -> Option<(Config, u32, f64)> {
        let load = load_over(setup, baseline, sample);
        priced
            .par_iter()
            .filter_map(|(c, b, service)| Some((*c, *b, load.replay(*b, service)?.cost)))
            .min_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)))
    };
    let mut known: HashMap<Vec<u64>, Option<(Config, u32, f64)>> = HashMap::new();
    let mut windows = Vec::new();
    let mut sample: Vec<Instant> = Vec::with_capacity(size + largest);
    for block in arrivals.chunks(size) {
        sample.extend_from_slice(block);
        let gaps: Vec<u64> = sample
            .windows(2)
            .map(|w| w[1].saturating_since(w[0]).as_micros())
            .collect();
        let answer = *known.entry(gaps).or_insert_with(|| best_for(&sample));
        let (Some((config, batch, cost)), Some(&last)) = (answer, sample.last()) else {
            sample.clear();
            continue;
        };
        let batch = batch.max(1) as usize;
        let served = if setup.settings.max_wait.is_some() {
            sample.len()
        } else {
            sample.len() / batch * batch
        };
        windows.push(WindowChoice {
            last_arrival: last,
            requests: served,
            config,
            cost,
        });
        sample.drain(..served);
    }
    let n: usize = windows.iter().map(|w| w.requests).sum();
    let total: f64 = windows.iter().map(|w| w.cost * w.requests as f64).sum();
    Ok(WindowBest {
        mean_cost: if n == 0 { f64::NAN } else { total / n as f64 },
        windows,
    })
}

/// The arrivals a run of `setup` sees: up to its duration, or as many as its
/// windows hold when it stops after a number of windows.
fn arrivals_until_end(setup: &SimSetup) -> Result<Vec<Instant>> {
    let arrivals = setup.workload.arrivals(setup.arrival_seed)?;
    Ok(match setup.stop {
        Stop::Duration(d) => arrivals
            .take_while(|t| t.as_micros() < d.as_micros())
            .collect(),
        Stop::Windows(n) => arrivals
            .take(n as usize * setup.settings.window.requests as usize)
            .collect(),
    })
}

/// Every config of `space` with its batch size and exact service figures.
fn exact_services(model: &dyn DeviceModel, space: &Space) -> Vec<(Config, u32, Service)> {
    space
        .configs()
        .map(|c| (c, space.batch_size(&c), exact_service(model, space, &c)))
        .collect()
}

/// `arrivals` as a load priced under `setup`'s cost settings against
/// `baseline`.
fn load_over<'a>(setup: &SimSetup, baseline: &Baseline, arrivals: &'a [Instant]) -> Load<'a> {
    Load {
        sample: Sample::of_run(arrivals),
        baseline: *baseline,
        alpha: setup.settings.window.alpha,
        scope: setup.settings.window.scope,
        max_wait: setup.settings.max_wait,
    }
}

/// `config`'s service figures on `model`, noise off: what a window at that
/// config would measure on an ideal meter. The model's batch time is affine
/// in the batch size, so the line through batch 1 and the config's batch is
/// exact for the partial batches a maximum wait releases.
fn exact_service(model: &dyn DeviceModel, space: &Space, config: &Config) -> Service {
    let top = |knob: Knob| model.levels(knob).last().copied().unwrap_or(0);
    let clock = |knob: Knob| space.knob_value(config, knob).unwrap_or_else(|| top(knob));
    let clocks = Clocks {
        cpu_khz: clock(Knob::Cpu),
        gpu_hz: clock(Knob::Gpu),
        emc_hz: clock(Knob::Memory),
    };
    let batch = space.batch_size(config).max(1);
    let full = model.service_time_s(clocks, batch);
    let per_request_s = if batch > 1 {
        ((full - model.service_time_s(clocks, 1)) / f64::from(batch - 1)).max(0.0)
    } else {
        0.0
    };
    Service {
        fixed_s: full - per_request_s * f64::from(batch),
        per_request_s,
        active_w: model.busy_power_w(clocks, batch),
        idle_w: Some(model.idle_power_w(clocks)),
    }
}
