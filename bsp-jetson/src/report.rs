//! What the board offers, as one serialisable value (the `ecoedge board` output).

use crate::board::{BoardKind, detect};
use crate::cpufreq::CpuFreq;
use crate::devfreq::GpuFreq;
use crate::emc::EmcFreq;
use crate::power::{PowerMonitor, RailReading, SensorDriver};
use crate::sysfs::{Error, Result, Sysfs};
use ecoedge_core::board::FrequencyKnob;
use serde::Serialize;
use std::path::Path;

/// Everything [`report`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardReport {
    /// `xavier-nx`, `orin`, `nano`, `tx2` or `unknown`.
    pub board: BoardKind,
    /// The Tegra chip ID, if found.
    pub chip_id: Option<u32>,
    /// The device-tree model string, if found.
    pub model: Option<String>,
    /// The CPU knob; `None` without cpufreq.
    pub cpu: Option<CpuReport>,
    /// The GPU knob; `None` without a GPU devfreq device.
    pub gpu: Option<GpuReport>,
    /// The memory (EMC) clock knob; `None` without its debugfs interface.
    pub emc: Option<EmcReport>,
    /// The power sensor; `None` without one.
    pub power: Option<PowerReport>,
    /// Every rail's reading now (empty without a sensor).
    pub rails: Vec<RailReading>,
    /// What is missing, in words.
    pub notes: Vec<String>,
}

/// The CPU clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuReport {
    /// One entry per cpufreq policy.
    pub policies: Vec<PolicyReport>,
    /// The knob's levels (common to all policies where they agree).
    pub levels_khz: Vec<u32>,
    /// Whether every policy has exactly the knob's levels.
    pub levels_common: bool,
}

/// One cpufreq policy now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// `policyN`.
    pub name: String,
    /// Its CPUs.
    pub cpus: Vec<u32>,
    /// Its governor now.
    pub governor: String,
    /// Its governors available.
    pub governors: Vec<String>,
    /// `scaling_min_freq`, kHz.
    pub min_khz: u32,
    /// `scaling_max_freq`, kHz.
    pub max_khz: u32,
    /// `scaling_cur_freq`, kHz.
    pub cur_khz: u32,
    /// Its own levels, kHz.
    pub levels_khz: Vec<u32>,
}

/// The GPU clock now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuReport {
    /// The devfreq device's real directory on the board.
    pub path: String,
    /// Its name.
    pub name: String,
    /// Its governor now.
    pub governor: String,
    /// `min_freq`, Hz.
    pub min_hz: u32,
    /// `max_freq`, Hz.
    pub max_hz: u32,
    /// `cur_freq`, Hz.
    pub cur_hz: u32,
    /// Its levels, Hz.
    pub levels_hz: Vec<u32>,
}

/// The memory (EMC) clock now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmcReport {
    /// The clock's BPMP debugfs directory on the board.
    pub path: String,
    /// The file its rates were read from, on the board.
    pub rates_path: String,
    /// Whether its rate is pinned (`mrq_rate_locked`); else the bandwidth
    /// manager sets it.
    pub locked: bool,
    /// `min_rate`, Hz.
    pub min_hz: u32,
    /// `max_rate`, Hz.
    pub max_hz: u32,
    /// The power mode's cap (`emc_iso_cap`), Hz, when set.
    pub iso_cap_hz: Option<u32>,
    /// `rate`, Hz.
    pub cur_hz: u32,
    /// Its levels, Hz: the possible rates from `min_hz` up to the lower of
    /// `max_hz` and `iso_cap_hz`.
    pub levels_hz: Vec<u32>,
}

/// The power sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PowerReport {
    /// `hwmon` or `iio`.
    pub driver: SensorDriver,
    /// Its device directories on the board.
    pub devices: Vec<String>,
    /// The module input rail, if one of the known names.
    pub module_input: Option<String>,
    /// The sensor's update interval, ms, where the driver says.
    pub update_interval_ms: Option<u64>,
}

/// Looks at the board under `root` (`/` on a board) and reports it. Writes
/// nothing. A missing subsystem is a `None` and a note; a file that exists but
/// cannot be read or parsed is an error.
pub fn report(root: &Path) -> Result<BoardReport> {
    let sysfs = Sysfs::new(root);
    let info = detect(&sysfs)?;
    let mut notes = Vec::new();
    let cpu = optional(CpuFreq::open(&sysfs), &mut notes)?
        .map(|cpu| cpu_report(&sysfs, &cpu))
        .transpose()?;
    let gpu = optional(GpuFreq::open(&sysfs), &mut notes)?
        .map(|gpu| gpu_report(&sysfs, gpu))
        .transpose()?;
    let emc = optional(EmcFreq::open(&sysfs), &mut notes)?
        .map(|emc| emc_report(&sysfs, emc))
        .transpose()?;
    let (power, rails) = match optional(PowerMonitor::discover(&sysfs), &mut notes)? {
        Some(m) => {
            let rails = m.read_all()?;
            let power = PowerReport {
                driver: m.driver(),
                devices: m
                    .devices()
                    .iter()
                    .map(|d| sysfs.board_path(d).display().to_string())
                    .collect(),
                module_input: m.module_input_label().ok().map(str::to_string),
                update_interval_ms: m.update_interval().map(|d| d.as_millis() as u64),
            };
            (Some(power), rails)
        }
        None => (None, Vec::new()),
    };
    Ok(BoardReport {
        board: info.kind,
        chip_id: info.chip_id,
        model: info.model,
        cpu,
        gpu,
        emc,
        power,
        rails,
        notes,
    })
}

/// `NotFound` becomes `None` and a note; other errors stay errors.
fn optional<T>(r: Result<T>, notes: &mut Vec<String>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e @ Error::NotFound { .. }) => {
            notes.push(e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn cpu_report(sysfs: &Sysfs, cpu: &CpuFreq) -> Result<CpuReport> {
    let policies = cpu
        .policies()
        .iter()
        .map(|p| {
            let (min_khz, max_khz) = p.limits().read(sysfs)?;
            Ok(PolicyReport {
                name: format!("policy{}", p.id),
                cpus: p.cpus.clone(),
                governor: sysfs.read_string(&p.governor_file())?,
                governors: p.governors.clone(),
                min_khz,
                max_khz,
                cur_khz: sysfs.read_num(&p.dir.join("scaling_cur_freq"))?,
                levels_khz: p.levels_khz.clone(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(CpuReport {
        policies,
        levels_khz: cpu.levels().to_vec(),
        levels_common: cpu.levels_common(),
    })
}

fn gpu_report(sysfs: &Sysfs, mut gpu: GpuFreq) -> Result<GpuReport> {
    let (min_hz, max_hz) = gpu.limits().read(sysfs)?;
    Ok(GpuReport {
        path: sysfs.board_path(gpu.dir()).display().to_string(),
        name: gpu.name(),
        governor: gpu.governor()?,
        min_hz,
        max_hz,
        cur_hz: gpu.read_back()?,
        levels_hz: gpu.levels().to_vec(),
    })
}

fn emc_report(sysfs: &Sysfs, mut emc: EmcFreq) -> Result<EmcReport> {
    let files = emc.files().clone();
    Ok(EmcReport {
        path: sysfs.board_path(&files.dir).display().to_string(),
        rates_path: sysfs.board_path(&files.rates).display().to_string(),
        locked: emc.locked()?,
        min_hz: sysfs.read_num(&files.min)?,
        max_hz: sysfs.read_num(&files.max)?,
        iso_cap_hz: files.iso_cap(sysfs)?,
        cur_hz: emc.read_back()?,
        levels_hz: emc.levels().to_vec(),
    })
}
