//! The oracle: the best static config for a workload, found by simulation.
//!
//! Only a simulator can know it: configs are simulated without noise (ideal
//! meter, no jitter) and ranked by mean per-request cost against one reference
//! baseline; configs that refuse requests rank after all that do not.
//! Simulating all 6000 configs over a 3-hour trace would take minutes, so the
//! search screens, then decides over the full run:
//! - every config over the first [`SCREEN_WINDOWS`] windows (enough for a
//!   stationary workload to rank configs);
//! - for traces, whose load changes over hours, also a coarse grid (every other
//!   level of each clock with the top one, batches 1 2 3 4 6 8 12 16) over the
//!   full run;
//! - the [`FINALISTS`] best of each screen over the full run.
//!
//! The result is the limit a static choice can reach on that workload.

use anyhow::Result;
use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::optimizer::Fixed;
use ecoedge_core::space::{Config, Knob};
use rayon::prelude::*;

use super::model::DeviceModel;
use super::{SimSetup, Stop, simulate, space_of};
use crate::metrics::PhaseStats;

/// Windows of the screening stage.
pub const SCREEN_WINDOWS: u32 = 6;
/// Configs each screen carries into the full-length stage.
pub const FINALISTS: usize = 8;
/// Batch sizes of the coarse grid.
const COARSE_BATCHES: [u32; 8] = [1, 2, 3, 4, 6, 8, 12, 16];

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
        out.refused,
    );
    Ok(Baseline::new(s.mean_energy_j, s.mean_latency_s)?)
}

/// Ranks `configs` by (refused any, mean cost) over `stop`.
fn rank(
    model: &dyn DeviceModel,
    setup: &SimSetup,
    baseline: &Baseline,
    configs: &[Config],
    stop: Stop,
) -> Result<Vec<(bool, f64, Config)>> {
    let mut quiet = setup.noiseless();
    quiet.stop = stop;
    quiet.settings.baseline = Some(*baseline);
    let alpha = quiet.settings.window.alpha;
    let mut ranked = configs
        .par_iter()
        .map(|&c| {
            let out = simulate(model, Fixed::new(c), &quiet)?;
            let s = PhaseStats::of(&out.served, baseline, alpha, out.refused);
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
    let dims = space.dims();
    let all: Vec<Config> = space.configs().collect();
    let screened = rank(model, setup, baseline, &all, Stop::Windows(SCREEN_WINDOWS))?;
    let mut finalists: Vec<Config> = screened.iter().take(FINALISTS).map(|r| r.2).collect();
    if setup.workload.is_trace() {
        let coarse: Vec<Config> = all
            .iter()
            .copied()
            .filter(|c| {
                let every_other = |d: usize| {
                    let (i, top) = (c.index(d), dims[d].max_index());
                    i == top || (top - i) % 2 == 0
                };
                let clocks = dims
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.knob() != Knob::Batch);
                clocks.map(|(i, _)| i).all(every_other)
                    && COARSE_BATCHES.contains(&space.batch_size(c))
            })
            .collect();
        let full = rank(model, setup, baseline, &coarse, setup.stop)?;
        finalists.extend(full.iter().take(FINALISTS).map(|r| r.2));
        finalists.sort();
        finalists.dedup();
    }
    let best = rank(model, setup, baseline, &finalists, setup.stop)?;
    let (_, mean_cost, config) = best[0];
    Ok(StaticBest { config, mean_cost })
}
