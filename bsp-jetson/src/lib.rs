//! Board support for NVIDIA Jetson boards (Xavier NX first, Orin, Nano, TX2):
//! power sensing, CPU and GPU clock knobs implementing the traits of
//! [`ecoedge_core::board`], board detection, and putting the board back as it was.
//!
//! | module | holds |
//! |---|---|
//! | [`ina3221`] | [`ina3221::Ina3221`]: the power sensor's driver over any embedded-hal 1.0 I2C bus (`core` only) |
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
//! let mut knobs = open_knobs(&sysfs)?;
//! knobs.cpu.set_level(0)?;
//! let clock = MonotonicClock::new();
//! let source = PowerMonitor::discover(&sysfs)?.module_input_power()?;
//! let mut meter = Sampler::start(source, clock, SamplerConfig::default())?;
//! let joules = meter.energy_j(clock.now())?;
//! # use ecoedge_bsp_jetson::sampler::Clock;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod board;
pub mod cpufreq;
pub mod devfreq;
pub mod emc;
pub mod ina3221;
pub mod power;
pub mod report;
pub mod restore;
pub mod sampler;
pub mod sysfs;

pub use board::{BoardInfo, BoardKind, detect};
pub use cpufreq::CpuFreq;
pub use devfreq::GpuFreq;
pub use emc::EmcFreq;
pub use power::{Ina3221Rail, PowerMonitor, RailPower, RailReading};
pub use report::{BoardReport, report};
pub use restore::RestoreGuard;
pub use sampler::{EnergyIntegrator, MonotonicClock, Sampler, SamplerConfig, SamplerError};
pub use sysfs::{Error, FileWriter, Sysfs, Writer};

/// The board's clock knobs, opened after their settings were saved.
///
/// Fields drop in order, so the guard restores the board before the knobs go.
#[derive(Debug)]
pub struct Knobs {
    /// Restores every clock on drop; watches Ctrl-C and SIGTERM.
    pub guard: RestoreGuard,
    /// All CPU clusters (kHz).
    pub cpu: CpuFreq,
    /// The GPU (Hz), if the board has a devfreq GPU.
    pub gpu: Option<GpuFreq>,
    /// The memory clock (Hz), if the board has the BPMP debugfs interface
    /// (debugfs mounted, running as root).
    pub emc: Option<EmcFreq>,
}

/// Saves the board's clock settings, checks every file to be written can be
/// (an [`Error::PermissionDenied`] naming the file otherwise, before any change),
/// starts the Ctrl-C / SIGTERM handler, then opens the CPU, GPU and EMC knobs:
/// the safe order, in one call.
pub fn open_knobs(sysfs: &Sysfs) -> Result<Knobs, Error> {
    let guard = RestoreGuard::save(sysfs)?;
    guard.check_writable()?;
    let guard = guard.watch_signals()?;
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

#[cfg(test)]
mod tests {
    /// The INA3221 driver must stay portable to `no_std`: no `std` or `alloc`
    /// path may appear in its sources.
    #[test]
    fn ina3221_driver_uses_core_only() {
        let sources = [
            include_str!("ina3221/mod.rs"),
            include_str!("ina3221/types.rs"),
            include_str!("ina3221/register.rs"),
            include_str!("ina3221/conversion.rs"),
            include_str!("ina3221/device_impl.rs"),
        ];
        for src in sources {
            for banned in ["std::", "alloc::", "extern crate", "format!", "vec!"] {
                let code: String = src
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                assert!(!code.contains(banned), "INA3221 driver uses {banned}");
            }
        }
    }
}
