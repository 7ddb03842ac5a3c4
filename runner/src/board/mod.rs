//! The real boards the service runs on: a Jetson (through bsp-jetson), an
//! NVIDIA GPU through NVML, or any Linux host. A [`LinuxBoard`] is an energy meter plus the clock knobs it can
//! pin, whatever their number. (The simulator's board lives with the
//! simulator.)

pub mod host;
pub mod nvml;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ecoedge_bsp_jetson::state::DEFAULT_DIR;
use ecoedge_bsp_jetson::{
    CpuFreq, Error as BspError, MAX_PERIOD, MeterSpec, MonotonicClock, PowerMonitor, RestoreGuard,
    Restorer, Sampler, SamplerConfig, StateDir, Stored, Sysfs, open_i2c_meter,
};
use ecoedge_core::board::{EnergyMeter, EnergySource, FrequencyKnob};
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::time::Instant;

use nvml::GpuClocks;

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
    /// A Linux machine with an NVIDIA GPU (data-centre or desktop; not a
    /// Jetson): the host's knobs, energy from the GPU's NVML counter plus
    /// RAPL where readable, the GPU clock with `--gpu-clocks lock`.
    Nvml,
}

/// Which board to open and how: the board flags of `run` and `serve`, and
/// the library API's `ServiceOptions` (a doc link here would read as an import
/// in `tests/module_graph.rs`: board comes before service).
#[derive(Debug, Clone, Args)]
pub struct BoardOptions {
    /// Board: auto (a Jetson when detected, else the host), jetson, host or
    /// nvml (an NVIDIA GPU through libnvidia-ml, or the path in ECOEDGE_NVML_LIB).
    #[arg(long = "board", value_enum, default_value_t = BoardChoice::Auto)]
    pub choice: BoardChoice,
    #[command(flatten)]
    pub access: BoardAccess,
}

/// Where a board's files are, how its energy is read and its GPU clock
/// held: every board flag but `--board` itself. Apart from it because
/// `profile` takes these flags too, with an optional `--board` (absent, it
/// writes a simulated device's table).
#[derive(Debug, Clone, Args)]
pub struct BoardAccess {
    /// Root under which /sys is read and written (a fake tree, a container mount).
    #[arg(long, default_value = "/")]
    pub sysfs_root: PathBuf,
    /// Where the board's lock and the store of its clocks as they were live
    /// (default: /run/ecoedge under --sysfs-root).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Read energy from an INA3221 over Linux I2C instead of the board's own
    /// meter: `i2c:/dev/i2c-N@0xADDR[:CHANNEL]` (the kernel's driver must not own it).
    #[arg(long)]
    pub meter: Option<MeterSpec>,
    /// NVML board: read-only (clocks and energy are read; batch size and
    /// the CPU are tuned) or lock (the GPU's graphics clock is a knob, each
    /// level a locked clock; root; reset when the run ends).
    #[arg(long, value_enum, default_value_t = GpuClocks::ReadOnly)]
    pub gpu_clocks: GpuClocks,
}

impl Default for BoardAccess {
    /// Under `/`, with the board's own meter, GPU clocks read only.
    fn default() -> Self {
        BoardAccess {
            sysfs_root: PathBuf::from("/"),
            state_dir: None,
            meter: None,
            gpu_clocks: GpuClocks::ReadOnly,
        }
    }
}

impl BoardOptions {
    /// Checks, before minutes of plan building, what can fail without
    /// touching the board: `--gpu-clocks lock` without the NVML board, and
    /// an NVML library that does not load.
    pub fn check(&self) -> Result<()> {
        self.check_lock()?;
        if self.choice == BoardChoice::Nvml {
            nvml::Gpu::open().context("--board nvml")?;
        }
        Ok(())
    }

    /// Only the NVML board locks GPU clocks (`auto` never picks it).
    fn check_lock(&self) -> Result<()> {
        if self.access.gpu_clocks == GpuClocks::Lock && self.choice != BoardChoice::Nvml {
            bail!(
                "--gpu-clocks lock: only the NVML board (--board nvml) locks GPU clocks; a Jetson's GPU clock is set through devfreq"
            );
        }
        Ok(())
    }
}

impl Default for BoardOptions {
    /// The host under `/`, with its own meter.
    fn default() -> Self {
        BoardOptions {
            choice: BoardChoice::Host,
            access: BoardAccess::default(),
        }
    }
}

/// One clock knob of a Linux board (cpufreq policies, a devfreq GPU, an NVML
/// GPU clock, ...): each error names the file or call, and why.
pub type ClockKnob = Box<dyn FrequencyKnob<Error = anyhow::Error> + Send>;

/// A knob whose errors become anyhow's, so knobs of every kind share one
/// list.
struct AnyError<K>(K);

impl<K> FrequencyKnob for AnyError<K>
where
    K: FrequencyKnob,
    K::Error: Into<anyhow::Error>,
{
    type Error = anyhow::Error;

    fn knob(&self) -> Knob {
        self.0.knob()
    }

    fn levels(&self) -> &[u32] {
        self.0.levels()
    }

    fn set_level(&mut self, index: usize) -> Result<()> {
        self.0.set_level(index).map_err(Into::into)
    }

    fn read_back(&mut self) -> Result<u32> {
        self.0.read_back().map_err(Into::into)
    }

    fn hand_over(&mut self) -> Result<()> {
        self.0.hand_over().map_err(Into::into)
    }
}

/// `knob` as a [`ClockKnob`].
fn clock_knob<K>(knob: K) -> ClockKnob
where
    K: FrequencyKnob + Send + 'static,
    K::Error: Into<anyhow::Error>,
{
    Box::new(AnyError(knob))
}

/// Where energy readings come from.
pub enum Meter {
    /// RAPL package counters.
    Rapl(RaplMeter),
    /// CPU time times a per-core power.
    Estimated(CpuTimeMeter),
    /// A power rail sampled every millisecond (or at the sensor's own
    /// rate): the Jetson's module input through the kernel, or an INA3221
    /// channel read over I2C (`--meter`), or an NVML GPU without an energy
    /// counter.
    Sampled(Box<Sampler<MonotonicClock>>),
    /// An NVIDIA GPU's total-energy counter.
    Nvml(nvml::EnergyCounter),
    /// Two meters of disjoint parts (the GPU and the CPU package): their sum.
    Sum(Box<Meter>, Box<Meter>),
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

/// A Linux board ready to serve: meter, clock knobs, and the guards that put
/// the clocks back. Fields drop in order: the guards restore the clocks
/// first, the GPU lock's before the sysfs guard lets the board's lock go.
pub struct LinuxBoard {
    /// The NVML GPU's clock lock (`--gpu-clocks lock`).
    gpu_lock: Option<nvml::LockGuard>,
    guard: Option<RestoreGuard>,
    /// `host`, `jetson` or `nvml`.
    pub name: &'static str,
    meter: Meter,
    clocks: Vec<ClockKnob>,
    /// What each clock was last set to, so a knob a new config leaves as it
    /// was is not written again (`None`: not set yet).
    applied: Vec<Option<Setting>>,
    clock: MonotonicClock,
    /// What was looked for and not used, and why (said on stderr).
    pub notes: Vec<String>,
}

impl LinuxBoard {
    /// Opens the board `options` name under their `sysfs_root`, measuring
    /// energy with their `meter` when given (else the board's own: the
    /// Jetson's input rail, RAPL, or an estimate). `clock` is the service
    /// loop's clock, shared with a sampling meter so their instants compare.
    /// Clocks it will write are held through the state dir (default:
    /// `/run/ecoedge` under the root; see [`ecoedge_bsp_jetson::state`]): its
    /// lock, and the store of the clocks as they were, restored first if a
    /// dead process left one.
    pub fn open(options: &BoardOptions, clock: MonotonicClock) -> Result<LinuxBoard> {
        let access = &options.access;
        let sysfs = Sysfs::new(&access.sysfs_root);
        let state = StateDir::new(
            access
                .state_dir
                .clone()
                .unwrap_or_else(|| sysfs.path(DEFAULT_DIR)),
        );
        let is_jetson = || {
            ecoedge_bsp_jetson::detect(&sysfs)
                .map(|info| info.chip_id.is_some())
                .unwrap_or(false)
        };
        let choice = match options.choice {
            BoardChoice::Auto if is_jetson() => BoardChoice::Jetson,
            BoardChoice::Auto => BoardChoice::Host,
            c => c,
        };
        options.check_lock()?;
        if choice == BoardChoice::Nvml && is_jetson() {
            bail!(
                "--board nvml: this is a Jetson, where NVML reports no power; use --board jetson"
            );
        }
        let meter = access
            .meter
            .as_ref()
            .map(|spec| open_meter(spec, &sysfs, clock).with_context(|| format!("--meter {spec}")))
            .transpose()?;
        match choice {
            BoardChoice::Jetson => {
                open_jetson(&sysfs, &state, clock, meter).context("--board jetson")
            }
            BoardChoice::Nvml => {
                open_nvml(&sysfs, &state, clock, meter, access.gpu_clocks).context("--board nvml")
            }
            _ => open_host(&sysfs, &state, clock, meter).context("--board host"),
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
        self.meter.energy_j(now)
    }

    /// Readings, errors and gaps of the meter so far.
    pub fn meter_stats(&self) -> MeterStats {
        self.meter.stats()
    }

    /// Measured or estimated.
    pub fn source(&self) -> EnergySource {
        self.meter.source()
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
    pub fn restorer(&self) -> Option<BoardRestorer> {
        let r = BoardRestorer {
            gpu: self.gpu_lock.as_ref().map(nvml::LockGuard::restorer),
            sysfs: self.guard.as_ref().map(RestoreGuard::restorer),
        };
        (r.gpu.is_some() || r.sysfs.is_some()).then_some(r)
    }

    /// The clock the board was opened with: the service loop's, which its
    /// meter samples on.
    pub fn clock(&self) -> MonotonicClock {
        self.clock
    }

    /// Puts every clock back as it was at open; later calls do nothing.
    pub fn restore(&mut self) -> Result<()> {
        if let Some(lock) = &self.gpu_lock {
            lock.restore()?;
        }
        if let Some(guard) = &self.guard {
            guard.restore().context("restoring the board's clocks")?;
        }
        Ok(())
    }
}

impl Meter {
    fn energy_j(&mut self, now: Instant) -> Result<f64> {
        match self {
            Meter::Rapl(m) => m.energy_j(now).context("reading RAPL energy"),
            Meter::Estimated(m) => m.energy_j(now).context("reading process CPU time"),
            Meter::Sampled(m) => m.energy_j(now).context("reading the power sampler"),
            Meter::Nvml(m) => m.energy_j(now),
            Meter::Sum(a, b) => Ok(a.energy_j(now)? + b.energy_j(now)?),
        }
    }

    /// A sum's readings and errors add up; its gaps are the longer part's.
    fn stats(&self) -> MeterStats {
        match self {
            Meter::Rapl(m) => m.stats(),
            Meter::Estimated(m) => m.stats(),
            Meter::Sampled(m) => {
                let s = m.stats();
                MeterStats {
                    samples: s.samples,
                    errors: s.errors,
                    gaps_s: s.gaps_s,
                }
            }
            Meter::Nvml(m) => m.stats(),
            Meter::Sum(a, b) => {
                let (a, b) = (a.stats(), b.stats());
                MeterStats {
                    samples: a.samples + b.samples,
                    errors: a.errors + b.errors,
                    gaps_s: a.gaps_s.max(b.gaps_s),
                }
            }
        }
    }

    /// Measured only where every part is.
    fn source(&self) -> EnergySource {
        match self {
            Meter::Rapl(_) | Meter::Nvml(_) => EnergySource::Measured,
            Meter::Estimated(m) => m.source(),
            Meter::Sampled(m) => m.source(),
            Meter::Sum(a, b) => match (a.source(), b.source()) {
                (EnergySource::Measured, EnergySource::Measured) => EnergySource::Measured,
                _ => EnergySource::Estimated,
            },
        }
    }
}

/// Puts a board's clocks back from another thread (a signal handler's): the
/// NVML GPU's lock and the sysfs clocks.
#[derive(Debug, Clone)]
pub struct BoardRestorer {
    gpu: Option<nvml::LockRestorer>,
    sysfs: Option<Restorer>,
}

impl BoardRestorer {
    /// Restores both, now, unless done already; the first error is
    /// returned, after both were tried.
    pub fn restore(&self) -> Result<()> {
        let gpu = self
            .gpu
            .as_ref()
            .map_or(Ok(()), nvml::LockRestorer::restore);
        let sysfs = self.sysfs.as_ref().map_or(Ok(()), |r| {
            r.restore().context("restoring the board's clocks")
        });
        gpu.and(sysfs)
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
    let (guard, clocks) = host_clocks(sysfs, state, &mut notes)?;
    let meter = match meter {
        Some(m) => m,
        None => open_host_meter(sysfs.root(), &mut notes)?,
    };
    Ok(LinuxBoard {
        applied: vec![None; clocks.len()],
        gpu_lock: None,
        guard,
        name: "host",
        meter,
        clocks,
        clock,
        notes,
    })
}

/// The host's clock knob: cpufreq, when every policy's files are writable,
/// with the guard that restores it.
fn host_clocks(
    sysfs: &Sysfs,
    state: &StateDir,
    notes: &mut Vec<String>,
) -> Result<(Option<RestoreGuard>, Vec<ClockKnob>)> {
    match open_cpufreq(sysfs, state, notes) {
        Ok((g, c)) => Ok((Some(g), vec![clock_knob(c)])),
        // Another process tunes this board: not a missing knob.
        Err(e @ BspError::Locked { .. }) => Err(e.into()),
        Err(e) => {
            notes.push(format!("no CPU clock knob ({e})"));
            Ok((None, Vec::new()))
        }
    }
}

/// An NVIDIA GPU through NVML on a Linux host: the host's CPU knob, the GPU
/// clock with `--gpu-clocks lock`, and energy from `meter` when given, else
/// the GPU's (its energy counter, or its power sampled) plus the CPU
/// package's from RAPL where readable.
fn open_nvml(
    sysfs: &Sysfs,
    state: &StateDir,
    clock: MonotonicClock,
    meter: Option<Meter>,
    gpu_clocks: GpuClocks,
) -> Result<LinuxBoard> {
    let gpu = nvml::Gpu::open()?;
    let mut notes = vec![format!("GPU 0: {} ({})", gpu.name, gpu.uuid)];
    let (guard, mut clocks) = host_clocks(sysfs, state, &mut notes)?;
    let gpu_lock = match gpu_clocks {
        GpuClocks::Lock => {
            let (lock, recovered) = nvml::LockGuard::take(&gpu, state, guard.is_some())?;
            notes.extend(recovered.map(|pid| {
                format!(
                    "reset the GPU clock lock process {pid} left (it ended without resetting it; store in {})",
                    state.dir().display()
                )
            }));
            clocks.push(clock_knob(lock.knob(&gpu)?));
            Some(lock)
        }
        GpuClocks::ReadOnly => {
            notes.push(
                "GPU clocks are read only (--gpu-clocks lock makes the graphics clock a knob; root)"
                    .into(),
            );
            None
        }
    };
    let meter = match meter {
        Some(m) => m,
        None => nvml_meter(gpu, sysfs.root(), clock, &mut notes)?,
    };
    Ok(LinuxBoard {
        applied: vec![None; clocks.len()],
        gpu_lock,
        guard,
        name: "nvml",
        meter,
        clocks,
        clock,
        notes,
    })
}

/// The GPU's energy counter (or its power, sampled, before Volta), plus the
/// CPU package's RAPL counters where readable. Without RAPL the CPU's energy
/// is left out (said in `notes`) rather than estimated: the GPU's measured
/// figure stays a measurement.
fn nvml_meter(
    gpu: nvml::Gpu,
    root: &Path,
    clock: MonotonicClock,
    notes: &mut Vec<String>,
) -> Result<Meter> {
    use ecoedge_bsp_jetson::sampler::Clock as _;
    let gpu_meter = match nvml::EnergyCounter::open(gpu.clone(), clock.now())? {
        Some(counter) => Meter::Nvml(counter),
        None => {
            notes.push("the GPU has no energy counter (before Volta): its power is sampled".into());
            Meter::Sampled(Box::new(Sampler::start(
                nvml::GpuPower(gpu),
                clock,
                SamplerConfig::default(),
            )?))
        }
    };
    Ok(match RaplMeter::open(root).context("opening RAPL")? {
        Some(rapl) => Meter::Sum(Box::new(gpu_meter), Box::new(Meter::Rapl(rapl))),
        None => {
            notes.push(format!(
                "no readable RAPL counter under {}: energy is the GPU's alone",
                root.join("sys/class/powercap").display()
            ));
            gpu_meter
        }
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
    let mut clocks: Vec<ClockKnob> = vec![clock_knob(knobs.cpu)];
    match knobs.gpu {
        Some(gpu) => clocks.push(clock_knob(gpu)),
        None => notes.push("no GPU devfreq device; GPU clock left alone".into()),
    }
    match knobs.emc {
        Some(emc) => clocks.push(clock_knob(emc)),
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
        gpu_lock: None,
        guard: Some(knobs.guard),
        name: "jetson",
        meter,
        clocks,
        clock,
        notes,
    })
}
