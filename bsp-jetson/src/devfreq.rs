//! The GPU clock knob, through Linux devfreq (levels in Hz).
//!
//! The GPU's devfreq directory moves between boards and JetPack releases
//! (`/sys/devices/gpu.0/devfreq/17000000.gv11b` on Xavier,
//! `/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu` on Orin,
//! `/sys/devices/57000000.gpu/devfreq/57000000.gpu` on Nano), but every release
//! links it from `/sys/class/devfreq/`, so the knob is found there by name.

use crate::cpufreq::pick_governor;
use crate::sysfs::{Error, Limits, Result, Sysfs};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::Knob;
use std::path::{Path, PathBuf};

/// The devfreq class directory.
pub const DEVFREQ_CLASS: &str = "/sys/class/devfreq";
/// Name fragments of Jetson GPUs, most specific first: Xavier (gv11b), Orin
/// (ga10b), TX2 (gp10b), then any `gpu` (Orin on JetPack 6, Nano).
pub const GPU_NAMES: [&str; 4] = ["gv11b", "ga10b", "gp10b", "gpu"];
/// The governor [`FrequencyKnob::hand_over`] prefers (NVIDIA's load-based one).
pub const GPU_GOVERNOR: &str = "nvhost_podgov";

/// The GPU clock as a [`FrequencyKnob`].
///
/// Create the [`crate::RestoreGuard`] first (or use [`crate::open_knobs`]), so
/// the board's settings are saved before this knob writes anything.
#[derive(Debug)]
pub struct GpuFreq {
    sysfs: Sysfs,
    dir: PathBuf,
    levels: Vec<u32>,
    governors: Vec<String>,
    saved_governor: String,
}

/// The GPU's devfreq directory (the `/sys/class/devfreq` entry, under the root).
pub fn find_gpu(sysfs: &Sysfs) -> Result<PathBuf> {
    let class = sysfs.path(DEVFREQ_CLASS);
    let not_found = || Error::NotFound {
        what: "GPU devfreq device (gv11b, ga10b, gp10b or gpu)",
        searched: class.clone(),
    };
    let entries = sysfs.entries(&class).map_err(|_| not_found())?;
    GPU_NAMES
        .iter()
        .find_map(|frag| {
            entries.iter().find(|e| {
                e.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(frag))
            })
        })
        .cloned()
        .ok_or_else(not_found)
}

impl GpuFreq {
    /// Finds the GPU and reads its levels and governors. Writes nothing.
    pub fn open(sysfs: &Sysfs) -> Result<Self> {
        let dir = find_gpu(sysfs)?;
        let levels = sysfs.read_levels(&dir.join("available_frequencies"))?;
        let governors = sysfs
            .read_string(&dir.join("available_governors"))?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let saved_governor = sysfs.read_string(&dir.join("governor"))?;
        Ok(GpuFreq {
            sysfs: sysfs.clone(),
            dir,
            levels,
            governors,
            saved_governor,
        })
    }

    /// The devfreq directory used (the class link, under the root).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The device's name (e.g. `17000000.gv11b`).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The current governor.
    pub fn governor(&self) -> Result<String> {
        self.sysfs.read_string(&self.dir.join("governor"))
    }

    /// The `min_freq` / `max_freq` pair.
    pub fn limits(&self) -> Limits {
        gpu_limits(&self.dir)
    }
}

pub(crate) fn gpu_limits(dir: &Path) -> Limits {
    Limits {
        min: dir.join("min_freq"),
        max: dir.join("max_freq"),
    }
}

impl FrequencyKnob for GpuFreq {
    type Error = Error;

    fn knob(&self) -> Knob {
        Knob::Gpu
    }

    fn levels(&self) -> &[u32] {
        &self.levels
    }

    fn set_level(&mut self, index: usize) -> Result<()> {
        let hz = *self.levels.get(index).ok_or(Error::LevelOutOfRange {
            index,
            levels: self.levels.len(),
        })?;
        self.limits().set(&self.sysfs, hz, hz)
    }

    /// `cur_freq`, in Hz.
    fn read_back(&mut self) -> Result<u32> {
        self.sysfs.read_num(&self.dir.join("cur_freq"))
    }

    /// Governor `nvhost_podgov` (else the one found at open), then limits over
    /// the whole level table.
    fn hand_over(&mut self) -> Result<()> {
        let saved = Some(self.saved_governor.as_str());
        if let Some(g) = pick_governor(&self.governors, GPU_GOVERNOR, saved) {
            self.sysfs.write_verified(&self.dir.join("governor"), g)?;
        }
        let (lo, hi) = (self.levels[0], self.levels[self.levels.len() - 1]);
        self.limits().set(&self.sysfs, lo, hi)
    }
}
