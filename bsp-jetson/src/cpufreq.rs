//! The CPU clock knob: every cpufreq policy of the board, pinned together.
//!
//! Levels come from each policy's `scaling_available_frequencies`, never from a
//! table in the code. Jetson clusters share one table, so the knob's levels are
//! the frequencies common to all policies. Should the policies have no frequency
//! in common, the knob's levels are those of the first policy (the one holding
//! cpu0) and every other policy is pinned to its own level nearest to the one
//! asked for (the lower on a tie), so the knob still moves all clusters together.

use crate::sysfs::{Error, Limits, Result, Sysfs};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::Knob;
use std::path::PathBuf;

/// Where the policies live on a board.
pub const CPUFREQ_DIR: &str = "/sys/devices/system/cpu/cpufreq";
/// The governor [`FrequencyKnob::hand_over`] prefers.
pub const CPU_GOVERNOR: &str = "schedutil";

/// One cpufreq policy (a cluster of cores sharing a clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPolicy {
    /// The `N` of `policyN`.
    pub id: u32,
    /// The policy directory (under the root).
    pub dir: PathBuf,
    /// `scaling_available_frequencies`, ascending, in kHz.
    pub levels_khz: Vec<u32>,
    /// `scaling_available_governors`.
    pub governors: Vec<String>,
    /// The CPUs of the policy (`related_cpus`), empty if the file is missing.
    pub cpus: Vec<u32>,
}

impl CpuPolicy {
    fn open(sysfs: &Sysfs, id: u32, dir: PathBuf) -> Result<Self> {
        let levels_khz = sysfs.read_levels(&dir.join("scaling_available_frequencies"))?;
        let governors = sysfs
            .read_string(&dir.join("scaling_available_governors"))?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let cpus = sysfs
            .read_string(&dir.join("related_cpus"))
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|c| c.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(CpuPolicy {
            id,
            dir,
            levels_khz,
            governors,
            cpus,
        })
    }

    /// The `scaling_min_freq` / `scaling_max_freq` pair.
    pub fn limits(&self) -> Limits {
        Limits {
            min: self.dir.join("scaling_min_freq"),
            max: self.dir.join("scaling_max_freq"),
        }
    }

    /// The `scaling_governor` file.
    pub fn governor_file(&self) -> PathBuf {
        self.dir.join("scaling_governor")
    }

    /// This policy's level nearest to `khz` (the lower on a tie).
    pub fn nearest(&self, khz: u32) -> u32 {
        let mut best = self.levels_khz[0];
        for &l in &self.levels_khz {
            if l.abs_diff(khz) < best.abs_diff(khz) {
                best = l;
            }
        }
        best
    }

    /// The full hardware range: `cpuinfo_min_freq`..`cpuinfo_max_freq`, or the
    /// ends of the level table where those files are missing.
    fn full_range(&self, sysfs: &Sysfs) -> (u32, u32) {
        let lo = sysfs.read_num(&self.dir.join("cpuinfo_min_freq"));
        let hi = sysfs.read_num(&self.dir.join("cpuinfo_max_freq"));
        (
            lo.unwrap_or(self.levels_khz[0]),
            hi.unwrap_or(self.levels_khz[self.levels_khz.len() - 1]),
        )
    }
}

/// All cpufreq policies of the board, read once; see [`discover_policies`].
pub fn discover_policies(sysfs: &Sysfs) -> Result<Vec<CpuPolicy>> {
    let dir = sysfs.path(CPUFREQ_DIR);
    let mut found = Vec::new();
    let entries = sysfs.entries(&dir).map_err(|_| Error::NotFound {
        what: "cpufreq policy",
        searched: dir.clone(),
    })?;
    for entry in entries {
        let id = entry
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("policy"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(id) = id {
            found.push(CpuPolicy::open(sysfs, id, entry)?);
        }
    }
    if found.is_empty() {
        return Err(Error::NotFound {
            what: "cpufreq policy",
            searched: dir,
        });
    }
    found.sort_by_key(|p| p.id);
    Ok(found)
}

/// The knob's levels: common to all policies, else the first policy's.
fn knob_levels(policies: &[CpuPolicy]) -> Vec<u32> {
    let first = &policies[0].levels_khz;
    let common: Vec<u32> = first
        .iter()
        .copied()
        .filter(|l| {
            policies
                .iter()
                .all(|p| p.levels_khz.binary_search(l).is_ok())
        })
        .collect();
    if common.is_empty() {
        first.clone()
    } else {
        common
    }
}

/// Picks the governor to hand a clock back to: `preferred` when the device
/// offers it, else `saved` (what ran before), else none (leave it).
pub(crate) fn pick_governor<'a>(
    available: &'a [String],
    preferred: &str,
    saved: Option<&'a str>,
) -> Option<&'a str> {
    available
        .iter()
        .find(|g| *g == preferred)
        .map(String::as_str)
        .or(saved)
}

/// The CPU clock of the whole board as one [`FrequencyKnob`] (levels in kHz).
///
/// Create the [`crate::RestoreGuard`] first (or use [`crate::open_knobs`]), so
/// the board's settings are saved before this knob writes anything.
#[derive(Debug)]
pub struct CpuFreq {
    sysfs: Sysfs,
    policies: Vec<CpuPolicy>,
    levels: Vec<u32>,
    /// Governors found at open, per policy: what `hand_over` falls back to.
    saved_governors: Vec<String>,
}

impl CpuFreq {
    /// Finds every policy and reads its levels. Writes nothing.
    pub fn open(sysfs: &Sysfs) -> Result<Self> {
        let policies = discover_policies(sysfs)?;
        let saved_governors = policies
            .iter()
            .map(|p| sysfs.read_string(&p.governor_file()))
            .collect::<Result<_>>()?;
        Ok(CpuFreq {
            sysfs: sysfs.clone(),
            levels: knob_levels(&policies),
            policies,
            saved_governors,
        })
    }

    /// The policies, by id.
    pub fn policies(&self) -> &[CpuPolicy] {
        &self.policies
    }

    /// Whether all policies offer exactly the knob's levels (else each is pinned
    /// to its nearest level).
    pub fn levels_common(&self) -> bool {
        self.policies.iter().all(|p| p.levels_khz == self.levels)
    }

    /// The current governor of each policy.
    pub fn governors(&self) -> Result<Vec<String>> {
        self.policies
            .iter()
            .map(|p| self.sysfs.read_string(&p.governor_file()))
            .collect()
    }

    /// Pins every policy to `khz` (its nearest level), all or nothing: if one
    /// policy fails, those already pinned get their previous limits back.
    fn pin(&self, khz: u32) -> Result<()> {
        let mut done: Vec<(&CpuPolicy, (u32, u32))> = Vec::new();
        for p in &self.policies {
            let limits = p.limits();
            let target = p.nearest(khz);
            let step = limits.read(&self.sysfs).and_then(|before| {
                limits.set(&self.sysfs, target, target)?;
                Ok(before)
            });
            match step {
                Ok(before) => done.push((p, before)),
                Err(first) => return Err(self.undo(first, &done)),
            }
        }
        Ok(())
    }

    fn undo(&self, first: Error, done: &[(&CpuPolicy, (u32, u32))]) -> Error {
        for (p, (lo, hi)) in done.iter().rev() {
            if let Err(undo) = p.limits().set(&self.sysfs, *lo, *hi) {
                return Error::Undo {
                    first: Box::new(first),
                    undo: Box::new(undo),
                };
            }
        }
        first
    }
}

impl FrequencyKnob for CpuFreq {
    type Error = Error;

    fn knob(&self) -> Knob {
        Knob::Cpu
    }

    fn levels(&self) -> &[u32] {
        &self.levels
    }

    fn set_level(&mut self, index: usize) -> Result<()> {
        let khz = *self.levels.get(index).ok_or(Error::LevelOutOfRange {
            index,
            levels: self.levels.len(),
        })?;
        self.pin(khz)
    }

    /// `scaling_cur_freq` of the first policy (the cluster of cpu0), in kHz.
    fn read_back(&mut self) -> Result<u32> {
        let dir = &self.policies[0].dir;
        self.sysfs.read_num(&dir.join("scaling_cur_freq"))
    }

    /// For each policy: governor `schedutil` (else the one found at open), then
    /// limits `cpuinfo_min_freq..=cpuinfo_max_freq`.
    fn hand_over(&mut self) -> Result<()> {
        for (p, saved) in self.policies.iter().zip(&self.saved_governors) {
            if let Some(g) = pick_governor(&p.governors, CPU_GOVERNOR, Some(saved)) {
                self.sysfs.write_verified(&p.governor_file(), g)?;
            }
            let (lo, hi) = p.full_range(&self.sysfs);
            p.limits().set(&self.sysfs, lo, hi)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(id: u32, levels: &[u32]) -> CpuPolicy {
        CpuPolicy {
            id,
            dir: PathBuf::new(),
            levels_khz: levels.to_vec(),
            governors: vec![],
            cpus: vec![],
        }
    }

    #[test]
    fn levels_are_common_ones_else_the_first_policys() {
        let a = policy(0, &[100, 200, 300]);
        let b = policy(2, &[200, 300, 400]);
        assert_eq!(knob_levels(&[a.clone(), b]), vec![200, 300]);
        let c = policy(4, &[150, 250]);
        assert_eq!(knob_levels(&[a.clone(), c.clone()]), vec![100, 200, 300]);
        assert_eq!(c.nearest(200), 150, "ties go to the lower level");
        assert_eq!(c.nearest(300), 250);
        assert_eq!(a.nearest(10), 100);
    }

    #[test]
    fn governor_choice_prefers_the_default_then_the_saved_one() {
        let avail = vec!["userspace".to_string(), "schedutil".to_string()];
        assert_eq!(
            pick_governor(&avail, "schedutil", Some("userspace")),
            Some("schedutil")
        );
        assert_eq!(
            pick_governor(&avail, "nvhost_podgov", Some("userspace")),
            Some("userspace")
        );
        assert_eq!(pick_governor(&avail, "nvhost_podgov", None), None);
    }
}
