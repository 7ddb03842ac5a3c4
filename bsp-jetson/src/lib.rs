//! Board support for NVIDIA Jetson boards (Xavier NX first, Orin, Nano, TX2):
//! power sensing, CPU and GPU clock knobs implementing the traits of
//! [`ecoedge_core::board`], board detection, and putting the board back as it was.
//!
//! | module | holds |
//! |---|---|
//! | [`ina3221`] | [`ina3221::Ina3221`]: the power sensor's driver over any embedded-hal 1.0 I2C bus (`core` only; also without `std`) |
//! | [`i2c_meter`] | [`open_i2c_meter`]: one INA3221 channel read over `/dev/i2c-N` (`--meter i2c:...`) as a sampler source; [`MeterSpec`], [`Ina3221Rail`] |
//! | [`power`] | [`PowerMonitor`]: the same sensor through the kernel (hwmon on JetPack 5/6, IIO on JetPack 4) |
//! | [`sampler`] | [`Sampler`]: a thread sampling power every 1 ms, integrating energy; core's `EnergyMeter` |
//! | [`cpufreq`] | [`CpuFreq`]: every cpufreq policy as one `FrequencyKnob` (kHz) |
//! | [`devfreq`] | [`GpuFreq`]: the GPU's devfreq device as a `FrequencyKnob` (Hz) |
//! | [`emc`] | [`EmcFreq`]: the memory (EMC) clock through BPMP debugfs as a `FrequencyKnob` (Hz) |
//! | [`restore`] | [`RestoreGuard`]: saves clock settings, restores them on drop, panic, Ctrl-C, SIGTERM |
//! | [`board`] | [`detect`]: which Jetson this is |
//! | [`report`](mod@report) | [`report()`]: all of the above as one serialisable [`BoardReport`] |
//! | [`sysfs`] | [`Sysfs`]: every path under a configurable root, writes through a replaceable [`Writer`]; the [`Error`] type |
//!
//! Features: `std` (default) is everything above but [`ina3221`]. Without it
//! (`default-features = false`) the crate is `#![no_std]`, with no `alloc`: the
//! INA3221 driver and core's board traits ([`EnergyMeter`], [`FrequencyKnob`],
//! re-exported), so a microcontroller port shares the driver; CI builds it so.
//!
//! Every file path is an absolute board path joined to a root (`/` on a board,
//! a temporary tree in tests), and every write goes through [`Writer`], so the
//! whole crate runs against fake sysfs trees. Nothing is hard-coded that the board
//! can tell: levels come from `scaling_available_frequencies` and
//! `available_frequencies`, devices are found by driver and class.
//!
//! ```no_run
//! use ecoedge_bsp_jetson::{open_knobs, MonotonicClock, PowerMonitor, Sampler, SamplerConfig, Sysfs};
//! use ecoedge_core::board::{EnergyMeter, FrequencyKnob};
//!
//! let sysfs = Sysfs::new("/");
//! // Saves every clock's settings before anything is written; restores on exit,
//! // panic, Ctrl-C and SIGTERM.
//! let mut knobs = open_knobs(&sysfs)?.watch_signals()?;
//! knobs.cpu.set_level(0)?;
//! let clock = MonotonicClock::new();
//! let source = PowerMonitor::discover(&sysfs)?.module_input_power()?;
//! let mut meter = Sampler::start(source, clock, SamplerConfig::default())?;
//! let joules = meter.energy_j(clock.now())?;
//! # use ecoedge_bsp_jetson::sampler::Clock;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Without `std`, any use of `std` in the crate fails to compile: the proof that
// the INA3221 driver is portable (CI builds `--no-default-features`).
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
pub mod board;
#[cfg(feature = "std")]
pub mod cpufreq;
#[cfg(feature = "std")]
pub mod devfreq;
#[cfg(feature = "std")]
pub mod emc;
#[cfg(feature = "std")]
pub mod i2c_meter;
pub mod ina3221;
#[cfg(feature = "std")]
pub mod power;
#[cfg(feature = "std")]
pub mod report;
#[cfg(feature = "std")]
pub mod restore;
#[cfg(feature = "std")]
pub mod sampler;
#[cfg(feature = "std")]
pub mod state;
#[cfg(feature = "std")]
pub mod sysfs;

pub use ecoedge_core::board::{EnergyMeter, FrequencyKnob};

#[cfg(feature = "std")]
pub use board::{BoardInfo, BoardKind, detect};
#[cfg(feature = "std")]
pub use cpufreq::CpuFreq;
#[cfg(feature = "std")]
pub use devfreq::GpuFreq;
#[cfg(feature = "std")]
pub use emc::EmcFreq;
#[cfg(feature = "std")]
pub use i2c_meter::{I2cMeterError, Ina3221Rail, MeterSpec, SpecError, open_i2c_meter};
#[cfg(feature = "std")]
pub use power::{PowerMonitor, RailPower, RailReading};
#[cfg(feature = "std")]
pub use report::{BoardReport, report};
#[cfg(feature = "std")]
pub use restore::{RestoreGuard, Restorer, restore_stored};
#[cfg(feature = "std")]
pub use sampler::{
    EnergyIntegrator, MAX_PERIOD, MonotonicClock, Sampler, SamplerConfig, SamplerError,
    SamplerStats,
};
#[cfg(feature = "std")]
pub use state::{StateDir, Stored};
#[cfg(feature = "std")]
pub use sysfs::{Error, FileWriter, Sysfs, Writer};

/// The board's clock knobs, opened after their settings were saved.
///
/// Fields drop in order, so the guard restores the board before the knobs go.
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct Knobs {
    /// Restores every clock on drop (and on Ctrl-C and SIGTERM once
    /// [`Knobs::watch_signals`] was called).
    pub guard: RestoreGuard,
    /// All CPU clusters (kHz).
    pub cpu: CpuFreq,
    /// The GPU (Hz), if the board has a devfreq GPU.
    pub gpu: Option<GpuFreq>,
    /// The memory clock (Hz), if the board has the BPMP debugfs interface
    /// (debugfs mounted, running as root).
    pub emc: Option<EmcFreq>,
}

#[cfg(feature = "std")]
impl Knobs {
    /// Restores the board and exits on Ctrl-C or SIGTERM (with 130 or 143),
    /// for programs that do not handle those signals themselves.
    pub fn watch_signals(mut self) -> Result<Self, Error> {
        self.guard = self.guard.watch_signals()?;
        Ok(self)
    }
}

/// Saves the board's clock settings, checks every file to be written can be
/// (an [`Error::PermissionDenied`] naming the file otherwise, before any change),
/// then opens the CPU, GPU and EMC knobs: the safe order, in one call.
/// Signals are the caller's: see [`Knobs::watch_signals`].
#[cfg(feature = "std")]
pub fn open_knobs(sysfs: &Sysfs) -> Result<Knobs, Error> {
    open_knobs_guarded(sysfs, RestoreGuard::save(sysfs)?)
}

/// As [`open_knobs`], holding the board in `state` (its lock and store file,
/// see [`state`]): what a dead process left pinned is restored first and
/// returned, so the caller can say so.
#[cfg(feature = "std")]
pub fn open_knobs_stored(
    sysfs: &Sysfs,
    state: &StateDir,
) -> Result<(Knobs, Option<Stored>), Error> {
    let (guard, recovered) = RestoreGuard::save_stored(sysfs, state)?;
    Ok((open_knobs_guarded(sysfs, guard)?, recovered))
}

#[cfg(feature = "std")]
fn open_knobs_guarded(sysfs: &Sysfs, guard: RestoreGuard) -> Result<Knobs, Error> {
    guard.check_writable()?;
    let cpu = CpuFreq::open(sysfs)?;
    let gpu = match GpuFreq::open(sysfs) {
        Ok(g) => Some(g),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let emc = match EmcFreq::open(sysfs) {
        Ok(e) => Some(e),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(Knobs {
        guard,
        cpu,
        gpu,
        emc,
    })
}
