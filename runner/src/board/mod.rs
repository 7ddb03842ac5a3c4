//! The real boards the service runs on: a Jetson (through bsp-jetson) or any
//! Linux host. A [`LinuxBoard`] is an energy meter plus the clock knobs it can
//! pin, whatever their number. (The simulator's board lives with the
//! simulator.)

pub mod host;

use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;
use ecoedge_bsp_jetson::state::DEFAULT_DIR;
use ecoedge_bsp_jetson::{
    CpuFreq, Error as BspError, MAX_PERIOD, MeterSpec, MonotonicClock, PowerMonitor, RestoreGuard,
    Restorer, Sampler, SamplerConfig, StateDir, Stored, Sysfs, open_i2c_meter,
};
use ecoedge_core::board::{EnergyMeter, EnergySource, FrequencyKnob};
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::time::Instant;

use crate::knobs::{KnobSet, LowerLimits, apply_config, build_space, dimensions};
use host::{CpuTimeMeter, ESTIMATED_CORE_W, RaplMeter};

/// `--board`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoardChoice {
    /// A Jetson when one is detected, else the host.
    Auto,
    /// An NVIDIA Jetson: cpufreq, GPU devfreq, INA3221 power rails.
    Jetson,
    /// Any Linux machine: batch size, cpufreq where writable, RAPL or an estimate.
    Host,
}

/// One clock knob of a Linux board (cpufreq policies, a devfreq GPU, ...):
/// each reports bsp-jetson's error, which names the file and why.
pub type ClockKnob = Box<dyn FrequencyKnob<Error = ecoedge_bsp_jetson::Error> + Send>;

/// Where energy readings come from.
pub enum Meter {
    /// RAPL package counters.
    Rapl(RaplMeter),
    /// CPU time times a per-core power.
    Estimated(CpuTimeMeter),
    /// A power rail sampled every millisecond (or at the sensor's own
    /// rate): the Jetson's module input through the kernel, or an INA3221
    /// channel read over I2C (`--meter`).
    Sampled(Box<Sampler<MonotonicClock>>),
}

/// How the meter fared over a run: the summary's `meter` block (CLI.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MeterStats {
    /// Readings taken (power samples, or counter readings).
    pub samples: u64,
    /// Readings that failed or were refused as implausible (negative power,
    /// a counter going back): left out, the energy around them interpolated
    /// or held.
    pub errors: u64,
    /// Seconds between good readings that had errors between them.
    pub gaps_s: f64,
}

/// What a clock was set to: a level, or handed to its governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Level(usize),
    Governed,
}

/// A Linux board ready to serve: meter, clock knobs, and the guard that puts
/// the clocks back. Fields drop in order: the guard restores the clocks first.
pub struct LinuxBoard {
    guard: Option<RestoreGuard>,
    /// `host` or `jetson`.
    pub name: &'static str,
    meter: Meter,
    clocks: Vec<ClockKnob>,
    /// What each clock was last set to, so a knob a new config leaves as it
    /// was is not written again (`None`: not set yet).
    applied: Vec<Option<Setting>>,
    clock: MonotonicClock,
    /// Readings of a meter that keeps no count of its own (the estimate).
    reads: u64,
    /// What was looked for and not used, and why (said on stderr).
    pub notes: Vec<String>,
}

impl LinuxBoard {
    /// Opens the board `choice` names under `root`, measuring energy with
    /// `meter` when given (else the board's own: the Jetson's input rail,
    /// RAPL, or an estimate). `clock` is the service loop's clock, shared with
    /// a sampling meter so their instants compare. Clocks it will write are
    /// held through `state_dir` (default: `/run/ecoedge` under `root`; see
    /// [`ecoedge_bsp_jetson::state`]): its lock, and the store of the clocks
    /// as they were, restored first if a dead process left one.
    pub fn open(
        choice: BoardChoice,
        root: &Path,
        clock: MonotonicClock,
        meter: Option<&MeterSpec>,
        state_dir: Option<&Path>,
    ) -> Result<LinuxBoard> {
        let sysfs = Sysfs::new(root);
        let state =
            StateDir::new(state_dir.map_or_else(|| sysfs.path(DEFAULT_DIR), Path::to_path_buf));
        let jetson = match choice {
            BoardChoice::Jetson => true,
            BoardChoice::Host => false,
            BoardChoice::Auto => ecoedge_bsp_jetson::detect(&sysfs)
                .map(|info| info.chip_id.is_some())
                .unwrap_or(false),
        };
        let meter = meter
            .map(|spec| open_meter(spec, &sysfs, clock).with_context(|| format!("--meter {spec}")))
            .transpose()?;
        if jetson {
            open_jetson(&sysfs, &state, clock, meter).context("--board jetson")
        } else {
            open_host(&sysfs, &state, clock, meter).context("--board host")
        }
    }

    /// The knob space: the clock knobs this board can pin that `knobs`
    /// selects, then batch sizes `1..=max_batch`, each above its lower limit.
    pub fn space(&self, knobs: &KnobSet, max_batch: u32, limits: &LowerLimits) -> Result<Space> {
        let clocks = dimensions(self.clocks.iter().map(AsRef::as_ref))?;
        build_space(clocks, knobs, max_batch, limits)
    }

    /// Cumulative energy at `now`, joules.
    pub fn energy_j(&mut self, now: Instant) -> Result<f64> {
        match &mut self.meter {
            Meter::Rapl(m) => m.energy_j(now).context("reading RAPL energy"),
            Meter::Estimated(m) => {
                let e = m.energy_j(now).context("reading process CPU time")?;
                self.reads += 1;
                Ok(e)
            }
            Meter::Sampled(m) => m.energy_j(now).context("reading the power sampler"),
        }
    }

    /// Readings, errors and gaps of the meter so far.
    pub fn meter_stats(&self) -> MeterStats {
        match &self.meter {
            Meter::Rapl(m) => m.stats(),
            Meter::Estimated(_) => MeterStats {
                samples: self.reads,
                ..MeterStats::default()
            },
            Meter::Sampled(m) => {
                let s = m.stats();
                MeterStats {
                    samples: s.samples,
                    errors: s.errors,
                    gaps_s: s.gaps_s,
                }
            }
        }
    }

    /// Measured or estimated.
    pub fn source(&self) -> EnergySource {
        match &self.meter {
            Meter::Rapl(_) => EnergySource::Measured,
            Meter::Estimated(m) => m.source(),
            Meter::Sampled(m) => m.source(),
        }
    }

    /// Applies `config`'s clock levels (or hands a clock to its governor when
    /// `governed` says so). Knobs outside the space are left alone; the batch
    /// size needs no action on the board.
    pub fn apply(
        &mut self,
        space: &Space,
        config: &Config,
        governed: impl Fn(Knob) -> bool,
    ) -> Result<()> {
        let (clocks, applied) = (&mut self.clocks, &mut self.applied);
        let mut write = || -> Result<()> {
            for (knob, last) in clocks.iter_mut().zip(applied.iter_mut()) {
                let which = knob.as_ref().knob();
                let Some(dim) = space.position(which) else {
                    continue;
                };
                let want = if governed(which) {
                    Setting::Governed
                } else {
                    Setting::Level(config.index(dim))
                };
                if *last != Some(want) {
                    apply_config(space, config, &governed, knob.as_mut())?;
                    *last = Some(want);
                }
            }
            Ok(())
        };
        match &self.guard {
            // After a restore (a second signal, on another thread) the
            // clocks stay as restored.
            Some(guard) => guard.unless_restored(write).unwrap_or(Ok(())),
            None => write(),
        }
    }

    /// A handle that restores the board's clocks from another thread (a
    /// signal handler), if the board writes any.
    pub fn restorer(&self) -> Option<Restorer> {
        self.guard.as_ref().map(RestoreGuard::restorer)
    }

    /// The clock the board was opened with: the service loop's, which its
    /// meter samples on.
    pub fn clock(&self) -> MonotonicClock {
        self.clock
    }

    /// Puts every clock back as it was at open; later calls do nothing.
    pub fn restore(&mut self) -> Result<()> {
        if let Some(guard) = &self.guard {
            guard.restore().context("restoring the board's clocks")?;
        }
        Ok(())
    }
}

/// An INA3221 channel read over I2C, sampled on `clock`.
fn open_meter(spec: &MeterSpec, sysfs: &Sysfs, clock: MonotonicClock) -> Result<Meter> {
    let rail = open_i2c_meter(spec, sysfs)?;
    let sampler = Sampler::start(rail, clock, SamplerConfig::default())?;
    Ok(Meter::Sampled(Box::new(sampler)))
}

/// The host: cpufreq when every policy's files are writable (root); energy
/// from `meter` when given, else RAPL when readable, else the CPU-time
/// estimate.
fn open_host(
    sysfs: &Sysfs,
    state: &StateDir,
    clock: MonotonicClock,
    meter: Option<Meter>,
) -> Result<LinuxBoard> {
    let mut notes = Vec::new();
    let (guard, clocks) = match open_cpufreq(sysfs, state, &mut notes) {
        Ok((g, c)) => (Some(g), vec![Box::new(c) as ClockKnob]),
        // Another process tunes this board: not a missing knob.
        Err(e @ BspError::Locked { .. }) => return Err(e.into()),
        Err(e) => {
            notes.push(format!("no CPU clock knob ({e})"));
            (None, Vec::new())
        }
    };
    let meter = match meter {
        Some(m) => m,
        None => open_host_meter(sysfs.root(), &mut notes)?,
    };
    Ok(LinuxBoard {
        applied: vec![None; clocks.len()],
        guard,
        name: "host",
        meter,
        clocks,
        clock,
        reads: 0,
        notes,
    })
}

/// RAPL when readable, else the CPU-time estimate (said in `notes`).
fn open_host_meter(root: &Path, notes: &mut Vec<String>) -> Result<Meter> {
    Ok(match RaplMeter::open(root).context("opening RAPL")? {
        Some(m) => Meter::Rapl(m),
        None => {
            notes.push(format!(
                "no readable RAPL counter under {}; energy is estimated from CPU time at {ESTIMATED_CORE_W} W per busy core",
                root.join("sys/class/powercap").display()
            ));
            Meter::Estimated(CpuTimeMeter::new(ESTIMATED_CORE_W)?)
        }
    })
}

/// Saves the clocks (held in `state`), checks they can be written, then
/// opens the CPU knob.
fn open_cpufreq(
    sysfs: &Sysfs,
    state: &StateDir,
    notes: &mut Vec<String>,
) -> Result<(RestoreGuard, CpuFreq), BspError> {
    let (guard, recovered) = RestoreGuard::save_stored(sysfs, state)?;
    notes.extend(recovered.map(|s| recovered_note(&s, state)));
    guard.check_writable()?;
    let cpu = CpuFreq::open(sysfs)?;
    Ok((guard, cpu))
}

/// What to say when a dead process's store was restored.
fn recovered_note(stored: &Stored, state: &StateDir) -> String {
    format!(
        "restored the clocks process {} left pinned (it ended without restoring them; store in {})",
        stored.pid,
        state.dir().display()
    )
}

/// A Jetson: its clock knobs as bsp-jetson opens them (settings saved and
/// checked writable first), energy from `meter` when given, else from the
/// module's input rail through the kernel. The guard does not watch signals:
/// `ecoedge run` handles Ctrl-C itself, to drain and print the summary before
/// the guard restores the clocks.
fn open_jetson(
    sysfs: &Sysfs,
    state: &StateDir,
    clock: MonotonicClock,
    meter: Option<Meter>,
) -> Result<LinuxBoard> {
    let mut notes = Vec::new();
    let (knobs, recovered) = ecoedge_bsp_jetson::open_knobs_stored(sysfs, state)?;
    notes.extend(recovered.map(|s| recovered_note(&s, state)));
    let mut clocks: Vec<ClockKnob> = vec![Box::new(knobs.cpu)];
    match knobs.gpu {
        Some(gpu) => clocks.push(Box::new(gpu)),
        None => notes.push("no GPU devfreq device; GPU clock left alone".into()),
    }
    match knobs.emc {
        Some(emc) => clocks.push(Box::new(emc)),
        None => notes.push(
            "no memory (EMC) clock interface (BPMP debugfs, root only); memory clock left alone"
                .into(),
        ),
    }
    let meter = match meter {
        Some(m) => m,
        None => {
            let monitor = PowerMonitor::discover(sysfs)?;
            if let Some(interval) = monitor.update_interval().filter(|&i| i > MAX_PERIOD) {
                notes.push(format!(
                    "the power sensor updates every {:.1} s: sampled every {} ms, each sample is its latest average",
                    interval.as_secs_f64(),
                    MAX_PERIOD.as_millis()
                ));
            }
            let source = monitor.module_input_power()?;
            Meter::Sampled(Box::new(Sampler::start(
                source,
                clock,
                SamplerConfig::default(),
            )?))
        }
    };
    Ok(LinuxBoard {
        applied: vec![None; clocks.len()],
        guard: Some(knobs.guard),
        name: "jetson",
        meter,
        clocks,
        clock,
        reads: 0,
        notes,
    })
}
