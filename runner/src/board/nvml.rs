//! NVIDIA data-centre and desktop GPUs through NVML (`--board nvml`):
//! `libnvidia-ml.so.1`, loaded at run time by `nvml-wrapper`, so the binary
//! builds and runs where no driver exists, and a missing library is one error
//! line.
//!
//! - Energy: the GPU's total-energy counter (millijoules since the driver
//!   loaded; Volta and later), else its power sampled every millisecond.
//! - The GPU clock is read-only by default. With `--gpu-clocks lock` it is a
//!   knob: each level is a locked graphics clock (min = max, root only), the
//!   lock reset when the run ends however it ends. NVML cannot say what lock,
//!   if any, was set before, so "restored" means NVML's default (no lock),
//!   what `nvidia-smi --reset-gpu-clocks` gives. A store in the state dir
//!   (`nvml.json`) lets the next start or `ecoedge board --restore` reset a
//!   lock that a killed process left.
//! - The first GPU (index 0), as the CUDA provider's default device.
//!
//! NVML reports no power on Jetsons; there the Jetson board (INA3221 rails,
//! devfreq) is the one that works, and `--board nvml` says so.

use std::ffi::OsString;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result, anyhow, bail};
use clap::ValueEnum;
use ecoedge_bsp_jetson::StateDir;
use ecoedge_bsp_jetson::sampler::PowerSource;
use ecoedge_bsp_jetson::state::BoardLock;
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::Knob;
use ecoedge_core::time::Instant;
use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::enums::device::GpuLockedClocksSetting;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use serde::{Deserialize, Serialize};

use super::MeterStats;
use super::host::COUNTER_HOLD;

/// Environment variable naming the NVML library to load; by default the
/// loader finds `libnvidia-ml.so.1`, which the NVIDIA driver installs.
pub const LIB_ENV: &str = "ECOEDGE_NVML_LIB";
const DEFAULT_LIB: &str = "libnvidia-ml.so.1";

/// Most graphics-clock levels searched. Data-centre GPUs list about a
/// hundred, 15 MHz apart: an even sample of 16 (lowest and highest kept)
/// spans the same range at the granularity of a Jetson's GPU table.
pub const MAX_GPU_LEVELS: usize = 16;

/// The store of a held GPU clock lock, in the state dir.
const STORE_FILE: &str = "nvml.json";

/// `--gpu-clocks`: whether the NVML board may lock the GPU's clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum GpuClocks {
    /// Read clocks and energy only; the GPU clock is not a knob.
    #[default]
    ReadOnly,
    /// Lock the graphics clock at each level the optimizer tries (root).
    Lock,
}

/// One GPU as NVML sees it.
#[derive(Debug, Clone)]
pub struct Gpu {
    nvml: Arc<Nvml>,
    index: u32,
    /// The product name (`NVIDIA H200`).
    pub name: String,
    /// NVML's unique id (`GPU-...`).
    pub uuid: String,
}

impl Gpu {
    /// Loads NVML (from [`LIB_ENV`] or the loader path) and opens the first
    /// GPU. Every failure is one line saying what was looked for.
    pub fn open() -> Result<Gpu> {
        let lib: OsString = std::env::var_os(LIB_ENV).unwrap_or_else(|| DEFAULT_LIB.into());
        let shown = lib.to_string_lossy().into_owned();
        let nvml = Nvml::builder().lib_path(&lib).init().map_err(|e| match e {
            NvmlError::LibloadingError(e) => anyhow!(
                "cannot load the NVML library {shown} ({e}): install the NVIDIA driver (it ships libnvidia-ml.so.1), or set {LIB_ENV} to the library's path"
            ),
            NvmlError::DriverNotLoaded => {
                anyhow!("NVML ({shown}): the NVIDIA kernel driver is not loaded")
            }
            e => anyhow!("NVML ({shown}): cannot initialise: {e}"),
        })?;
        let count = nvml.device_count().context("NVML: counting GPUs")?;
        if count == 0 {
            bail!("NVML ({shown}) sees no GPU");
        }
        let index = 0;
        // The device borrows `nvml`: its scope ends before `nvml` moves.
        let (name, uuid) = {
            let device = nvml.device_by_index(index).context("NVML: opening GPU 0")?;
            (
                device.name().context("NVML: GPU 0's name")?,
                device.uuid().context("NVML: GPU 0's UUID")?,
            )
        };
        Ok(Gpu {
            nvml: Arc::new(nvml),
            index,
            name,
            uuid,
        })
    }

    fn device(&self) -> Result<Device<'_>, NvmlError> {
        self.nvml.device_by_index(self.index)
    }

    /// The graphics clocks the GPU supports at its highest memory clock, Hz,
    /// ascending, thinned to [`MAX_GPU_LEVELS`].
    pub fn graphics_levels_hz(&self) -> Result<Vec<u32>, NvmlError> {
        let device = self.device()?;
        let memory = device
            .supported_memory_clocks()?
            .into_iter()
            .max()
            .ok_or(NvmlError::NotSupported)?;
        let mut mhz = device.supported_graphics_clocks(memory)?;
        mhz.sort_unstable();
        mhz.dedup();
        Ok(thin(&mhz, MAX_GPU_LEVELS)
            .into_iter()
            .map(|m| m.saturating_mul(1_000_000))
            .collect())
    }

    /// Graphics and memory clocks now, MHz.
    pub fn clocks_mhz(&self) -> Result<(u32, u32), NvmlError> {
        let device = self.device()?;
        Ok((
            device.clock_info(Clock::Graphics)?,
            device.clock_info(Clock::Memory)?,
        ))
    }

    /// Board power now, watts.
    pub fn power_w(&self) -> Result<f64, NvmlError> {
        Ok(f64::from(self.device()?.power_usage()?) * 1e-3)
    }

    /// The total-energy counter, millijoules since the driver loaded.
    pub fn energy_mj(&self) -> Result<u64, NvmlError> {
        self.device()?.total_energy_consumption()
    }

    fn lock_mhz(&self, mhz: u32) -> Result<(), NvmlError> {
        self.device()?
            .set_gpu_locked_clocks(GpuLockedClocksSetting::Numeric {
                min_clock_mhz: mhz,
                max_clock_mhz: mhz,
            })
    }

    fn reset_lock(&self) -> Result<(), NvmlError> {
        self.device()?.reset_gpu_locked_clocks()
    }
}

/// What `ecoedge board --board nvml` reports of the GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReport {
    /// Product name.
    pub name: String,
    /// NVML's unique id.
    pub uuid: String,
    /// Graphics clock now, MHz.
    pub graphics_mhz: u32,
    /// Memory clock now, MHz.
    pub memory_mhz: u32,
    /// Board power now, watts.
    pub power_w: f64,
    /// Whether the GPU has a total-energy counter (Volta and later); without
    /// one its power is sampled.
    pub energy_counter: bool,
    /// The graphics clocks searched with `--gpu-clocks lock`, MHz.
    pub levels_mhz: Vec<u32>,
}

impl Gpu {
    /// What the GPU reports now.
    pub fn report(&self) -> Result<GpuReport> {
        let (graphics_mhz, memory_mhz) = self.clocks_mhz().map_err(explain)?;
        let energy_counter = match self.energy_mj() {
            Ok(_) => true,
            Err(NvmlError::NotSupported) => false,
            Err(e) => return Err(explain(e)).context("reading the energy counter"),
        };
        Ok(GpuReport {
            name: self.name.clone(),
            uuid: self.uuid.clone(),
            graphics_mhz,
            memory_mhz,
            power_w: self.power_w().map_err(explain).context("reading power")?,
            energy_counter,
            levels_mhz: self
                .graphics_levels_hz()
                .map_err(explain)
                .context("reading the supported clocks")?
                .iter()
                .map(|hz| hz / 1_000_000)
                .collect(),
        })
    }
}

/// `n` of `levels`, evenly spread by index, first and last kept (all of them
/// when there are at most `n`).
fn thin(levels: &[u32], n: usize) -> Vec<u32> {
    if levels.len() <= n || n < 2 {
        return levels.to_vec();
    }
    let last = levels.len() - 1;
    (0..n)
        .map(|i| levels[(i * last + (n - 1) / 2) / (n - 1)])
        .collect()
}

/// What NVML's errors mean to the user, where the bare error would not say.
fn explain(e: NvmlError) -> anyhow::Error {
    match e {
        NvmlError::NoPermission => {
            anyhow!("NVML refused (no permission): locking GPU clocks needs root (sudo)")
        }
        NvmlError::NotSupported => anyhow!("NVML: not supported by this GPU"),
        e => anyhow!("NVML: {e}"),
    }
}

/// The GPU's total-energy counter: energy since open, with failed readings
/// counted and the last total held (for `COUNTER_HOLD` at most), and a
/// counter that went back (a driver reload) followed from where it is.
pub struct EnergyCounter {
    gpu: Gpu,
    last_mj: u64,
    joules: f64,
    stats: MeterStats,
    last_good: Instant,
    failing: bool,
}

impl EnergyCounter {
    /// The counter, or `None` where the GPU has none (before Volta).
    pub fn open(gpu: Gpu, now: Instant) -> Result<Option<EnergyCounter>> {
        match gpu.energy_mj() {
            Ok(mj) => Ok(Some(EnergyCounter {
                gpu,
                last_mj: mj,
                joules: 0.0,
                stats: MeterStats::default(),
                last_good: now,
                failing: false,
            })),
            Err(NvmlError::NotSupported) => Ok(None),
            Err(e) => Err(explain(e)).context("reading the GPU's energy counter"),
        }
    }

    /// Joules since open.
    pub fn energy_j(&mut self, now: Instant) -> Result<f64> {
        match self.gpu.energy_mj() {
            Ok(mj) => {
                match mj.checked_sub(self.last_mj) {
                    Some(d) => self.joules += d as f64 * 1e-3,
                    None => self.stats.errors += 1,
                }
                if std::mem::take(&mut self.failing) {
                    self.stats.gaps_s += now.saturating_since(self.last_good).as_secs_f64();
                }
                self.last_mj = mj;
                self.last_good = now;
                self.stats.samples += 1;
                Ok(self.joules)
            }
            Err(e) => {
                self.failing = true;
                self.stats.errors += 1;
                if now.saturating_since(self.last_good) <= COUNTER_HOLD {
                    Ok(self.joules)
                } else {
                    Err(explain(e)).context("reading the GPU's energy counter")
                }
            }
        }
    }

    /// Readings, errors and gaps so far.
    pub fn stats(&self) -> MeterStats {
        self.stats
    }
}

/// The GPU's power reading, for a sampler where there is no energy counter.
pub struct GpuPower(pub Gpu);

impl PowerSource for GpuPower {
    type Error = NvmlError;

    fn power_w(&mut self) -> Result<f64, NvmlError> {
        self.0.power_w()
    }
}

/// What the store holds: which process locked which GPU's clocks.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLock {
    pid: u32,
    uuid: String,
}

/// The lock, until reset: shared by the guard, the knob and restorers.
#[derive(Debug)]
struct Held {
    gpu: Gpu,
    state: StateDir,
}

type Shared = Arc<Mutex<Option<Held>>>;

/// Resets the held lock once; later calls find nothing to do.
fn reset_shared(shared: &Shared) -> Result<()> {
    let held = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(h) = held {
        h.gpu
            .reset_lock()
            .map_err(explain)
            .context("resetting the GPU's locked clocks")?;
        h.state.remove(STORE_FILE)?;
    }
    Ok(())
}

/// Owns the GPU clock lock: resets it on [`LockGuard::restore`], on drop,
/// or through a [`LockRestorer`] from a signal thread, and holds the board's
/// state-dir lock when no other guard does.
pub struct LockGuard {
    shared: Shared,
    _board_lock: Option<BoardLock>,
}

/// Resets the lock from another thread (a signal handler's).
#[derive(Debug, Clone)]
pub struct LockRestorer(Shared);

impl LockRestorer {
    /// Resets now, unless done already.
    pub fn restore(&self) -> Result<()> {
        reset_shared(&self.0)
    }
}

/// A lock store a process that died left: reset that GPU's lock (taking the
/// board's lock while at it) and say whose it was.
pub fn restore_stored(state: &StateDir) -> Result<Option<u32>> {
    let _lock = state.lock()?;
    restore_stored_held(state, None)
}

/// As [`restore_stored`], the board's lock held, through `gpu` when open.
fn restore_stored_held(state: &StateDir, gpu: Option<&Gpu>) -> Result<Option<u32>> {
    let Some(stored) = state.read_json::<StoredLock>(STORE_FILE)? else {
        return Ok(None);
    };
    let gpu = match gpu {
        Some(g) => g.clone(),
        None => Gpu::open()?,
    };
    if gpu.uuid != stored.uuid {
        bail!(
            "{}: the lock was on GPU {}, and GPU 0 is now {}; reset it with nvidia-smi --reset-gpu-clocks",
            state.dir().join(STORE_FILE).display(),
            stored.uuid,
            gpu.uuid
        );
    }
    reset_shared(&Arc::new(Mutex::new(Some(Held {
        gpu,
        state: state.clone(),
    }))))?;
    Ok(Some(stored.pid))
}

impl LockGuard {
    /// Takes charge of `gpu`'s clock lock: takes the board's state-dir lock
    /// unless `board_locked` (another guard holds it), resets a lock a dead
    /// process left (returning its pid), checks that this process may lock
    /// (by resetting, which changes nothing when no lock is set), and writes
    /// the store before the first lock.
    pub fn take(
        gpu: &Gpu,
        state: &StateDir,
        board_locked: bool,
    ) -> Result<(LockGuard, Option<u32>)> {
        let board_lock = if board_locked {
            None
        } else {
            Some(state.lock()?)
        };
        let recovered = restore_stored_held(state, Some(gpu))?;
        gpu.reset_lock()
            .map_err(explain)
            .context("--gpu-clocks lock")?;
        state.write_json(
            STORE_FILE,
            &StoredLock {
                pid: std::process::id(),
                uuid: gpu.uuid.clone(),
            },
        )?;
        let guard = LockGuard {
            shared: Arc::new(Mutex::new(Some(Held {
                gpu: gpu.clone(),
                state: state.clone(),
            }))),
            _board_lock: board_lock,
        };
        Ok((guard, recovered))
    }

    /// The GPU clock as a knob that locks through this guard.
    pub fn knob(&self, gpu: &Gpu) -> Result<GpuClock> {
        let levels = gpu
            .graphics_levels_hz()
            .map_err(explain)
            .context("reading the GPU's supported clocks")?;
        Ok(GpuClock {
            gpu: gpu.clone(),
            levels,
            shared: Arc::clone(&self.shared),
        })
    }

    /// A handle that resets the lock from another thread.
    pub fn restorer(&self) -> LockRestorer {
        LockRestorer(Arc::clone(&self.shared))
    }

    /// Resets the lock now; only the first call does anything.
    pub fn restore(&self) -> Result<()> {
        reset_shared(&self.shared)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Err(e) = reset_shared(&self.shared) {
            eprintln!("ecoedge: {e:#}");
        }
    }
}

/// The graphics clock, each level a lock at one frequency.
pub struct GpuClock {
    gpu: Gpu,
    levels: Vec<u32>,
    shared: Shared,
}

impl FrequencyKnob for GpuClock {
    type Error = anyhow::Error;

    fn knob(&self) -> Knob {
        Knob::Gpu
    }

    fn levels(&self) -> &[u32] {
        &self.levels
    }

    /// Locks the graphics clock at the level, unless the lock was reset
    /// already (the run is ending: nothing is locked after the restore,
    /// whatever thread restored).
    fn set_level(&mut self, index: usize) -> Result<()> {
        let hz = *self
            .levels
            .get(index)
            .ok_or_else(|| anyhow!("GPU clock level {index} of {}", self.levels.len()))?;
        let held = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_none() {
            return Ok(());
        }
        self.gpu
            .lock_mhz(hz / 1_000_000)
            .map_err(explain)
            .with_context(|| format!("locking the GPU clock at {} MHz", hz / 1_000_000))
    }

    fn read_back(&mut self) -> Result<u32> {
        let (graphics, _) = self.gpu.clocks_mhz().map_err(explain)?;
        Ok(graphics.saturating_mul(1_000_000))
    }

    /// Removes the lock: the driver's own clock management.
    fn hand_over(&mut self) -> Result<()> {
        let held = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_none() {
            return Ok(());
        }
        self.gpu
            .reset_lock()
            .map_err(explain)
            .context("resetting the GPU's locked clocks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_spreads_evenly() {
        let levels: Vec<u32> = (0..100).map(|i| 300 + 15 * i).collect();
        let t = thin(&levels, 16);
        assert_eq!(t.len(), 16);
        assert_eq!((t[0], t[15]), (300, 300 + 15 * 99));
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        let steps: Vec<u32> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let (lo, hi) = (steps.iter().min().unwrap(), steps.iter().max().unwrap());
        assert!(hi - lo <= 15, "{steps:?}");
        assert_eq!(thin(&levels[..5], 16), levels[..5]);
    }
}
