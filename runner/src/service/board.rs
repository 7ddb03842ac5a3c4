//! The real boards `ecoedge run` serves on: a Jetson (through bsp-jetson) or any
//! Linux host. Each is an energy meter plus the clock knobs it can pin.

use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;
use ecoedge_bsp_jetson::{
    CpuFreq, GpuFreq, MonotonicClock, PowerMonitor, RestoreGuard, Sampler, SamplerConfig, Sysfs,
};
use ecoedge_core::board::{EnergyMeter, EnergySource};
use ecoedge_core::space::{Config, Dimension, Knob, Space};
use ecoedge_core::time::Instant;

use crate::apply::apply_config;
use crate::host::{CpuTimeMeter, ESTIMATED_CORE_W, RaplMeter};

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

/// Where energy readings come from.
pub enum Meter {
    /// RAPL package counters.
    Rapl(RaplMeter),
    /// CPU time times a per-core power.
    Estimated(CpuTimeMeter),
    /// The Jetson's module input rail, sampled every millisecond.
    Jetson(Box<Sampler<MonotonicClock>>),
}

/// A board ready to serve: meter, knobs, and the guard that puts its clocks
/// back. Fields drop in order: the guard restores the clocks first.
pub struct Board {
    guard: Option<RestoreGuard>,
    /// `host` or `jetson`.
    pub name: &'static str,
    meter: Meter,
    cpu: Option<CpuFreq>,
    gpu: Option<GpuFreq>,
    /// What was looked for and not used, and why (said on stderr).
    pub notes: Vec<String>,
}

impl Board {
    /// Opens the board `choice` names under `root`. `clock` is the service
    /// loop's clock, shared with a sampling meter so their instants compare.
    pub fn open(choice: BoardChoice, root: &Path, clock: MonotonicClock) -> Result<Board> {
        let sysfs = Sysfs::new(root);
        let jetson = match choice {
            BoardChoice::Jetson => true,
            BoardChoice::Host => false,
            BoardChoice::Auto => ecoedge_bsp_jetson::detect(&sysfs)
                .map(|info| info.chip_id.is_some())
                .unwrap_or(false),
        };
        if jetson {
            open_jetson(&sysfs, clock).context("--board jetson")
        } else {
            open_host(&sysfs, root).context("--board host")
        }
    }

    /// The knob space: the clocks this board can pin, then batch sizes
    /// `1..=max_batch`, with lower limits for (CPU, GPU, batch).
    pub fn space(&self, max_batch: u32, lower: [usize; 3]) -> Result<Space> {
        use ecoedge_core::board::FrequencyKnob;
        let mut dims = Vec::new();
        if let Some(cpu) = &self.cpu {
            dims.push(Dimension::new(Knob::Cpu, cpu.levels())?.with_lower_limit(lower[0])?);
        }
        if let Some(gpu) = &self.gpu {
            dims.push(Dimension::new(Knob::Gpu, gpu.levels())?.with_lower_limit(lower[1])?);
        }
        dims.push(Dimension::batch(max_batch)?.with_lower_limit(lower[2])?);
        Ok(Space::new(&dims)?)
    }

    /// Cumulative energy at `now`, joules.
    pub fn energy_j(&mut self, now: Instant) -> Result<f64> {
        match &mut self.meter {
            Meter::Rapl(m) => m.energy_j(now).context("reading RAPL energy"),
            Meter::Estimated(m) => m.energy_j(now).context("reading process CPU time"),
            Meter::Jetson(m) => m.energy_j(now).context("reading the power sampler"),
        }
    }

    /// Measured or estimated.
    pub fn source(&self) -> EnergySource {
        match &self.meter {
            Meter::Rapl(_) => EnergySource::Measured,
            Meter::Estimated(m) => m.source(),
            Meter::Jetson(m) => m.source(),
        }
    }

    /// Applies `config`'s clock levels (or hands a clock to its governor when
    /// `governed` says so). The batch size needs no action on the board.
    pub fn apply(
        &mut self,
        space: &Space,
        config: &Config,
        governed: impl Fn(Knob) -> bool,
    ) -> Result<()> {
        if let Some(cpu) = &mut self.cpu {
            apply_config(space, config, &governed, cpu)?;
        }
        if let Some(gpu) = &mut self.gpu {
            apply_config(space, config, &governed, gpu)?;
        }
        Ok(())
    }

    /// Puts every clock back as it was at open; later calls do nothing.
    pub fn restore(&mut self) -> Result<()> {
        if let Some(guard) = &self.guard {
            guard.restore().context("restoring the board's clocks")?;
        }
        Ok(())
    }
}

/// The host: cpufreq when every policy's files are writable (root), RAPL when
/// readable, else the CPU-time estimate.
fn open_host(sysfs: &Sysfs, root: &Path) -> Result<Board> {
    let mut notes = Vec::new();
    let (guard, cpu) = match open_cpufreq(sysfs) {
        Ok((g, c)) => (Some(g), Some(c)),
        Err(e) => {
            notes.push(format!("no CPU clock knob ({e})"));
            (None, None)
        }
    };
    let meter = match RaplMeter::open(root).context("opening RAPL")? {
        Some(m) => Meter::Rapl(m),
        None => {
            notes.push(format!(
                "no readable RAPL counter under {}; energy is estimated from CPU time at {ESTIMATED_CORE_W} W per busy core",
                root.join("sys/class/powercap").display()
            ));
            Meter::Estimated(CpuTimeMeter::new(ESTIMATED_CORE_W)?)
        }
    };
    Ok(Board {
        guard,
        name: "host",
        meter,
        cpu,
        gpu: None,
        notes,
    })
}

/// Saves the clocks, checks they can be written, then opens the CPU knob.
fn open_cpufreq(sysfs: &Sysfs) -> Result<(RestoreGuard, CpuFreq)> {
    let guard = RestoreGuard::save(sysfs)?;
    guard.check_writable()?;
    let cpu = CpuFreq::open(sysfs)?;
    Ok((guard, cpu))
}

/// A Jetson: every CPU policy and the GPU pinned through cpufreq/devfreq (the
/// guard restores them), energy from the module's input rail. The guard is not
/// told to watch signals: `ecoedge run` handles Ctrl-C itself, to drain and
/// print the summary before the guard restores the clocks.
fn open_jetson(sysfs: &Sysfs, clock: MonotonicClock) -> Result<Board> {
    let mut notes = Vec::new();
    let guard = RestoreGuard::save(sysfs)?;
    guard.check_writable()?;
    let cpu = CpuFreq::open(sysfs)?;
    let gpu = match GpuFreq::open(sysfs) {
        Ok(g) => Some(g),
        Err(ecoedge_bsp_jetson::Error::NotFound { .. }) => {
            notes.push("no GPU devfreq device; GPU clock left alone".into());
            None
        }
        Err(e) => return Err(e.into()),
    };
    let source = PowerMonitor::discover(sysfs)?.module_input_power()?;
    let sampler = Sampler::start(source, clock, SamplerConfig::default())?;
    Ok(Board {
        guard: Some(guard),
        name: "jetson",
        meter: Meter::Jetson(Box::new(sampler)),
        cpu: Some(cpu),
        gpu,
        notes,
    })
}
