//! Profiling a real board (`ecoedge profile --board ...`): which configs a
//! profile measures, and measuring each with the model running on the board.
//!
//! **The sample.** Every level of each knob is measured at least once: one
//! knob at a time swept over all its levels while the others stay at the
//! *centre*, every knob at its middle level (index `len / 2`, the upper
//! middle for an even count). The sweeps make the profile's levels the
//! board's own, each measured, not interpolated. The rest of the budget is a
//! uniform draw, seeded, from the configs the sweeps left out: it spreads
//! measurements over how the knobs interact, between which the profile's
//! loader interpolates ([`crate::sim::profile`]).
//!
//! **A measurement.** Configs run in order of their clocks, so each clock
//! config is set once: after the change the board settles
//! ([`Timing::settle`]), then its idle power is measured with the engine
//! idle ([`Timing::idle_time`]; once per clock config, as the batch size
//! does not move an idle board). Each batch size then runs once unmeasured
//! (first-run costs: allocations, cold caches), then repeatedly, for at
//! least [`Timing::min_runs`] runs and [`Timing::min_time`]. The latency is
//! the median time of one batch; busy power is the energy the meter saw over
//! the runs divided by their time.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ecoedge_bsp_jetson::sampler::Clock as _;
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::time::Duration;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::board::LinuxBoard;
use crate::inference::Engine;
use crate::knobs::cli_name;
use crate::report::config_text;
use crate::service::Stop;
use crate::sim::profile::{NOT_A_KNOB, Row};
use crate::units::parse_duration;

/// The least power a profile gives, watts. The format needs positive power,
/// and the CPU-time estimate of a host without RAPL sees no idle power at
/// all (nothing of this process runs): its idle power is written as this.
pub const MIN_POWER_W: f64 = 1e-3;

/// How long each measurement takes: the profile's timing flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct Timing {
    /// After the clocks change, wait this long before measuring: clocks move
    /// within milliseconds, but a power sensor's averaged reading lags (the
    /// Jetson's INA3221 updates every few tens of ms).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub settle: Duration,
    /// Idle power is measured over this long with the engine idle, once per
    /// clock config: several updates of a power sensor.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub idle_time: Duration,
    /// Run each batch size for at least this long: the busy energy covers
    /// many sensor updates, and small batches many runs.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub min_time: Duration,
    /// Run each batch size at least this many times (the latency is their
    /// median: with 3, one outlier, a page fault or a preemption, is not it).
    #[arg(long, default_value_t = 3)]
    pub min_runs: u32,
}

impl Timing {
    /// Checks the flags.
    pub fn check(&self) -> Result<()> {
        if self.idle_time == Duration::ZERO {
            bail!("--idle-time must be positive");
        }
        if self.min_time == Duration::ZERO {
            bail!("--min-time must be positive");
        }
        if self.min_runs == 0 {
            bail!("--min-runs must be at least 1");
        }
        Ok(())
    }
}

/// The configs a profile measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Every config to measure, in the order measured: by clocks, then batch
    /// size, so consecutive configs share their clocks.
    pub configs: Vec<Config>,
    /// Where the one-knob sweeps cross: every knob at its middle level.
    pub centre: Config,
    /// How many of the configs the sweeps take (the rest are drawn).
    pub swept: usize,
}

/// The configs of `space` to measure within `budget`: the sweeps of every
/// knob through the centre, then a uniform draw from the rest, seeded with
/// `seed`, up to `budget` in all (or the whole space, if smaller). A budget
/// below the sweeps' count is an error saying how many they take.
pub fn sample(space: &Space, budget: usize, seed: u64) -> Result<Sample> {
    let centre = space
        .dims()
        .iter()
        .enumerate()
        .fold(Config::default(), |c, (i, d)| {
            c.with(i, d.lower() + (d.len() - d.lower()) / 2)
        });
    let mut chosen = BTreeSet::new();
    for (i, d) in space.dims().iter().enumerate() {
        chosen.extend((d.lower()..d.len()).map(|level| centre.with(i, level)));
    }
    let swept = chosen.len();
    if budget < swept {
        let levels: Vec<String> = space
            .dims()
            .iter()
            .map(|d| format!("{} {}", d.len() - d.lower(), cli_name(d.knob())))
            .collect();
        bail!(
            "--configs {budget}: measuring every level of each knob once takes {swept} configs ({} levels)",
            levels.join(", ")
        );
    }
    let mut rest: Vec<Config> = space.configs().filter(|c| !chosen.contains(c)).collect();
    let draw = (budget - swept).min(rest.len());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (drawn, _) = rest.partial_shuffle(&mut rng, draw);
    chosen.extend(drawn.iter().copied());
    Ok(Sample {
        configs: chosen.into_iter().collect(),
        centre,
        swept,
    })
}

/// Measures each of `configs` of `space` on `board` with `engine` (see the
/// module's notes), calling `progress` with how many are done, the config
/// and its row after each. A signal (`stop`) ends it after the batch in
/// flight, as an error: a profile cut short is not written. The board's
/// clocks are left where the last config set them: restoring them is the
/// caller's, as it must be on every error too.
pub fn measure(
    board: &mut LinuxBoard,
    engine: &mut dyn Engine,
    space: &Space,
    configs: &[Config],
    timing: &Timing,
    stop: &Stop,
    mut progress: impl FnMut(usize, &Config, &Row),
) -> Result<Vec<Row>> {
    let batch_dim = space.position(Knob::Batch);
    let clocks_of = |c: &Config| batch_dim.map_or(*c, |b| c.with(b, 0));
    let mut idle: Option<(Config, f64)> = None;
    let mut rows = Vec::with_capacity(configs.len());
    for (done, config) in configs.iter().enumerate() {
        let interrupted = || anyhow!("interrupted after {done} of {} configs", configs.len());
        if stop.stopping() {
            return Err(interrupted());
        }
        let what = || format!("measuring {}", config_text(space, config));
        board.apply(space, config, |_| false).with_context(what)?;
        let clocks = clocks_of(config);
        let idle_power_w = match idle {
            Some((at, w)) if at == clocks => w,
            _ => {
                std::thread::sleep(std_duration(timing.settle));
                let w = idle_power(board, timing.idle_time).with_context(what)?;
                idle = Some((clocks, w));
                w
            }
        };
        let batch = space.batch_size(config);
        let Some((latency_s, busy_power_w)) =
            busy(board, engine, batch as usize, timing, stop).with_context(what)?
        else {
            return Err(interrupted());
        };
        let row = Row {
            cpu_khz: space.knob_value(config, Knob::Cpu).unwrap_or(NOT_A_KNOB),
            gpu_hz: space.knob_value(config, Knob::Gpu).unwrap_or(NOT_A_KNOB),
            batch,
            latency_s,
            busy_power_w,
            idle_power_w,
        };
        progress(done + 1, config, &row);
        rows.push(row);
    }
    Ok(rows)
}

/// Mean power over `idle` with nothing running, watts.
fn idle_power(board: &mut LinuxBoard, idle: Duration) -> Result<f64> {
    let clock = board.clock();
    let t0 = clock.now();
    let e0 = board.energy_j(t0)?;
    std::thread::sleep(std_duration(idle));
    let t1 = clock.now();
    let e1 = board.energy_j(t1)?;
    Ok(power_w(e1 - e0, t1.saturating_since(t0)))
}

/// One batch size, warmed up then run for the timing's least runs and time:
/// the median latency of a batch, seconds, and the mean power over the
/// runs, watts; `None` when a signal came first.
fn busy(
    board: &mut LinuxBoard,
    engine: &mut dyn Engine,
    batch: usize,
    timing: &Timing,
    stop: &Stop,
) -> Result<Option<(f64, f64)>> {
    engine
        .run_synthetic(batch)
        .context("the warm-up batch failed")?;
    let clock = board.clock();
    let t0 = clock.now();
    let e0 = board.energy_j(t0)?;
    let mut latencies = Vec::new();
    while latencies.len() < timing.min_runs as usize || clock.now() < t0 + timing.min_time {
        if stop.stopping() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        engine.run_synthetic(batch)?;
        latencies.push(started.elapsed().as_secs_f64());
    }
    let t1 = clock.now();
    let e1 = board.energy_j(t1)?;
    Ok(Some((
        median(&mut latencies),
        power_w(e1 - e0, t1.saturating_since(t0)),
    )))
}

/// The median of `values` (the mean of the middle two for an even count);
/// `values` is not empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// `joules` over `time` in watts, at least [`MIN_POWER_W`].
fn power_w(joules: f64, time: Duration) -> f64 {
    (joules / time.as_secs_f64()).max(MIN_POWER_W)
}

/// The core's duration as the standard library's.
fn std_duration(d: Duration) -> std::time::Duration {
    std::time::Duration::from_micros(d.as_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecoedge_core::space::Dimension;

    fn space(cpu: usize, gpu: usize, batch: u32) -> Space {
        let levels = |n: usize, step: u32| (1..=n as u32).map(|i| i * step).collect::<Vec<_>>();
        Space::new(&[
            Dimension::new(Knob::Cpu, &levels(cpu, 100_000)).unwrap(),
            Dimension::new(Knob::Gpu, &levels(gpu, 100_000_000)).unwrap(),
            Dimension::batch(batch).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn the_sample_sweeps_every_level_through_the_centre_then_draws_the_rest() {
        let s = space(5, 4, 8);
        let sample = sample(&s, 40, 7).unwrap();
        assert_eq!(sample.centre, s.config(&[2, 2, 4]).unwrap());
        assert_eq!(sample.swept, 5 + 4 + 8 - 2);
        assert_eq!(sample.configs.len(), 40);
        for (dim, d) in s.dims().iter().enumerate() {
            for level in 0..d.len() {
                assert!(
                    sample.configs.contains(&sample.centre.with(dim, level)),
                    "{dim} {level}"
                );
            }
        }
        // Ordered by clocks then batch, each config once.
        assert!(sample.configs.windows(2).all(|w| w[0] < w[1]));
        // Seeded: the same seed draws the same, another seed another.
        assert_eq!(super::sample(&s, 40, 7).unwrap(), sample);
        assert_ne!(super::sample(&s, 40, 8).unwrap().configs, sample.configs);
    }

    #[test]
    fn a_budget_past_the_space_measures_it_all_and_one_below_the_sweeps_is_refused() {
        let s = space(3, 1, 2);
        let all = sample(&s, 1000, 1).unwrap();
        assert_eq!(all.configs, s.configs().collect::<Vec<_>>());
        let e = sample(&s, 3, 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "--configs 3: measuring every level of each knob once takes 4 configs (3 cpu, 1 gpu, 2 batch levels)"
        );
    }

    #[test]
    fn medians_and_powers() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(power_w(2.0, Duration::from_millis(500)), 4.0);
        assert_eq!(power_w(0.0, Duration::from_secs(1)), MIN_POWER_W);
    }

    #[test]
    fn timing_flags_are_checked() {
        let ok = Timing {
            settle: Duration::ZERO,
            idle_time: Duration::from_millis(10),
            min_time: Duration::from_millis(10),
            min_runs: 1,
        };
        ok.check().unwrap();
        for (bad, want) in [
            (
                Timing {
                    idle_time: Duration::ZERO,
                    ..ok
                },
                "--idle-time",
            ),
            (
                Timing {
                    min_time: Duration::ZERO,
                    ..ok
                },
                "--min-time",
            ),
            (Timing { min_runs: 0, ..ok }, "--min-runs"),
        ] {
            assert!(bad.check().unwrap_err().to_string().starts_with(want));
        }
    }
}
