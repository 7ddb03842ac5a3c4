//! Device profiles: a measured table of latency and power per config.
//!
//! Format (CSV with this exact header; one row per measured config; any subset
//! of configs may be given):
//!
//! ```text
//! cpu_khz,gpu_hz,batch,latency_s,busy_power_w,idle_power_w
//! 1907200,1109250000,16,0.1993,14.93,5.0
//! ```
//!
//! The levels of the profiled device are the distinct `cpu_khz` and `gpu_hz`
//! values, batch sizes run from 1 to the largest given. Configs not in the file are
//! filled at load time by inverse-distance weighting (power 2) over the measured
//! rows in normalised level-index space, so lookups during simulation are a table
//! read. A profiling run on a board (`ecoedge profile --board`) writes this
//! format; so does any [`DeviceModel`] through [`write_profile`]; both
//! through [`profile_text`].

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use ecoedge_core::space::MAX_LEVELS;

use super::model::{Clocks, DeviceModel};

/// The header line of a profile file.
pub const HEADER: &str = "cpu_khz,gpu_hz,batch,latency_s,busy_power_w,idle_power_w";

/// Largest batch size a profile may give (the table holds every batch size
/// up to the largest given).
pub const MAX_PROFILE_BATCH: u32 = 64;

/// Range of a profiled batch latency, seconds: the simulator's clock ticks in
/// microseconds, and an hour per batch is no device the simulator can tune
/// (1e300 s overflowed its clock).
pub const LATENCY_RANGE_S: (f64, f64) = (1e-6, 3600.0);

/// Largest profiled power, watts (an edge board draws tens).
pub const MAX_POWER_W: f64 = 10_000.0;

/// A device model read from a profile file.
#[derive(Debug, Clone)]
pub struct Profile {
    cpu: Vec<u32>,
    gpu: Vec<u32>,
    max_batch: u32,
    /// `[latency_s, busy_power_w, idle_power_w]` per (cpu, gpu, batch - 1).
    table: Vec<[f64; 3]>,
}

impl Profile {
    /// Reads and validates a profile file; errors name the file and line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read device profile {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow!("{}:{e}", path.display()))
    }

    /// Parses profile text; errors start with the line number.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, h)) if h.trim() == HEADER => {}
            Some((i, h)) => bail!("{}: header must be `{HEADER}`, found `{}`", i + 1, h.trim()),
            None => bail!("1: empty profile"),
        }
        let mut rows: Vec<(u32, u32, u32, [f64; 3])> = Vec::new();
        let mut seen = HashSet::new();
        let (mut cpu, mut gpu) = (BTreeSet::new(), BTreeSet::new());
        for (i, line) in lines {
            let n = i + 1;
            let row = parse_row(n, line)?;
            if !seen.insert((row.0, row.1, row.2)) {
                bail!("{n}: config {},{},{} appears twice", row.0, row.1, row.2);
            }
            // Checked row by row: the table grows with the product of the
            // level counts (3000 levels each asked for 13.8 GB).
            cpu.insert(row.0);
            gpu.insert(row.1);
            if cpu.len() > MAX_LEVELS || gpu.len() > MAX_LEVELS {
                bail!("{n}: more than {MAX_LEVELS} distinct cpu_khz or gpu_hz levels");
            }
            rows.push(row);
        }
        if rows.is_empty() {
            bail!("2: the profile has no rows");
        }
        let cpu: Vec<u32> = cpu.into_iter().collect();
        let gpu: Vec<u32> = gpu.into_iter().collect();
        let max_batch = rows.iter().map(|r| r.2).max().unwrap_or(1);
        let norm = |i: usize, len: usize| {
            if len > 1 {
                i as f64 / (len - 1) as f64
            } else {
                0.0
            }
        };
        let pos = |v: u32, levels: &[u32]| levels.binary_search(&v).unwrap_or(0);
        let points: Vec<([f64; 3], [f64; 3])> = rows
            .iter()
            .map(|&(c, g, b, v)| {
                let x = [
                    norm(pos(c, &cpu), cpu.len()),
                    norm(pos(g, &gpu), gpu.len()),
                    norm(b as usize - 1, max_batch as usize),
                ];
                (x, v)
            })
            .collect();
        let mut table = Vec::with_capacity(cpu.len() * gpu.len() * max_batch as usize);
        for ci in 0..cpu.len() {
            for gi in 0..gpu.len() {
                for bi in 0..max_batch as usize {
                    let x = [
                        norm(ci, cpu.len()),
                        norm(gi, gpu.len()),
                        norm(bi, max_batch as usize),
                    ];
                    table.push(idw(&points, x));
                }
            }
        }
        Ok(Profile {
            cpu,
            gpu,
            max_batch,
            table,
        })
    }

    /// The table entry nearest these clocks (a profile is measured at one
    /// memory clock, so the memory clock is ignored).
    fn at(&self, clocks: Clocks, batch: u32) -> [f64; 3] {
        let c = nearest(&self.cpu, clocks.cpu_khz);
        let g = nearest(&self.gpu, clocks.gpu_hz);
        let b = batch.clamp(1, self.max_batch) as usize - 1;
        self.table[(c * self.gpu.len() + g) * self.max_batch as usize + b]
    }
}

/// One data row (line `n`): levels, batch size and the three measured values,
/// each within its limits.
fn parse_row(n: usize, line: &str) -> Result<(u32, u32, u32, [f64; 3])> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.len() != 6 {
        bail!("{n}: expected 6 fields, found {}", f.len());
    }
    let int = |k: usize, what: &str| -> Result<u32> {
        f[k].parse::<u32>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| anyhow!("{n}: {what} `{}` is not a positive integer", f[k]))
    };
    let real = |k: usize, what: &str, (low, high): (f64, f64)| -> Result<f64> {
        let v = f[k]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| anyhow!("{n}: {what} `{}` is not a positive number", f[k]))?;
        if !(low..=high).contains(&v) {
            bail!("{n}: {what} `{}` is outside {low}..={high}", f[k]);
        }
        Ok(v)
    };
    let batch = int(2, "batch")?;
    if batch > MAX_PROFILE_BATCH {
        bail!("{n}: batch sizes above {MAX_PROFILE_BATCH} are not supported (found {batch})");
    }
    let power = (0.0, MAX_POWER_W);
    Ok((
        int(0, "cpu_khz")?,
        int(1, "gpu_hz")?,
        batch,
        [
            real(3, "latency_s", LATENCY_RANGE_S)?,
            real(4, "busy_power_w", power)?,
            real(5, "idle_power_w", power)?,
        ],
    ))
}

/// Inverse-distance weighting; an exact hit returns the measured value.
fn idw(points: &[([f64; 3], [f64; 3])], x: [f64; 3]) -> [f64; 3] {
    let mut sum = [0.0; 3];
    let mut weight = 0.0;
    for (p, v) in points {
        let d2: f64 = p.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum();
        if d2 < 1e-18 {
            return *v;
        }
        let w = 1.0 / d2;
        weight += w;
        for k in 0..3 {
            sum[k] += w * v[k];
        }
    }
    sum.map(|s| s / weight)
}

fn nearest(levels: &[u32], v: u32) -> usize {
    match levels.binary_search(&v) {
        Ok(i) => i,
        Err(0) => 0,
        Err(i) if i >= levels.len() => levels.len() - 1,
        Err(i) if v - levels[i - 1] <= levels[i] - v => i - 1,
        Err(i) => i,
    }
}

impl DeviceModel for Profile {
    fn cpu_levels_khz(&self) -> &[u32] {
        &self.cpu
    }
    fn gpu_levels_hz(&self) -> &[u32] {
        &self.gpu
    }
    fn max_batch(&self) -> u32 {
        self.max_batch
    }
    fn service_time_s(&self, clocks: Clocks, batch: u32) -> f64 {
        self.at(clocks, batch)[0]
    }
    fn busy_power_w(&self, clocks: Clocks, batch: u32) -> f64 {
        self.at(clocks, batch)[1]
    }
    fn idle_power_w(&self, clocks: Clocks) -> f64 {
        self.at(clocks, 1)[2]
    }
}

/// One row of a profile: a config and what was measured there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// CPU clock, kHz.
    pub cpu_khz: u32,
    /// GPU clock, Hz.
    pub gpu_hz: u32,
    /// Batch size.
    pub batch: u32,
    /// Time one batch takes, seconds.
    pub latency_s: f64,
    /// Power while batches run, watts.
    pub busy_power_w: f64,
    /// Power while the engine is idle at these clocks, watts.
    pub idle_power_w: f64,
}

/// What a profile gives as `cpu_khz` or `gpu_hz` where the board has no
/// such knob (a host without writable cpufreq, any board's GPU but a
/// Jetson's or a locked NVML one): the clock was left to its governor, so no
/// one frequency describes it. The loader needs a positive integer; 1 is no
/// real clock, so it cannot be mistaken for one, and a profile of one level
/// loads as a device without that knob (`sim`'s space leaves it out).
pub const NOT_A_KNOB: u32 = 1;

/// The text of a profile file: the header, then `rows` in order. Every
/// writer of profiles goes through here, so they all write one format.
pub fn profile_text(rows: impl IntoIterator<Item = Row>) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            r.cpu_khz, r.gpu_hz, r.batch, r.latency_s, r.busy_power_w, r.idle_power_w
        );
    }
    s
}

/// Writes every config of `model` in the profile format, at its top memory
/// clock (the format has no memory column).
pub fn write_profile(model: &dyn DeviceModel) -> String {
    let emc_hz = model.emc_levels_hz().last().copied().unwrap_or(0);
    let mut rows = Vec::new();
    for &cpu_khz in model.cpu_levels_khz() {
        for &gpu_hz in model.gpu_levels_hz() {
            let at = Clocks {
                cpu_khz,
                gpu_hz,
                emc_hz,
            };
            rows.extend((1..=model.max_batch()).map(|batch| Row {
                cpu_khz,
                gpu_hz,
                batch,
                latency_s: model.service_time_s(at, batch),
                busy_power_w: model.busy_power_w(at, batch),
                idle_power_w: model.idle_power_w(at),
            }));
        }
    }
    profile_text(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::{DnnKind, XavierNx};

    fn clocks(cpu_khz: u32, gpu_hz: u32) -> Clocks {
        Clocks {
            cpu_khz,
            gpu_hz,
            emc_hz: 0,
        }
    }

    #[test]
    fn the_analytic_model_round_trips_through_a_profile() {
        let m = XavierNx::new(DnnKind::Resnet50);
        let p = Profile::parse(&write_profile(&m)).unwrap();
        assert_eq!(p.cpu_levels_khz(), m.cpu_levels_khz());
        assert_eq!(p.max_batch(), 16);
        for (cpu_khz, gpu_hz, b) in [
            (115_200, 114_750_000, 1),
            (1_907_200, 1_109_250_000, 16),
            (960_000, 599_250_000, 7),
        ] {
            let c = clocks(cpu_khz, gpu_hz);
            assert!((p.service_time_s(c, b) - m.service_time_s(c, b)).abs() < 1e-12);
            assert!((p.busy_power_w(c, b) - m.busy_power_w(c, b)).abs() < 1e-12);
            assert!((p.idle_power_w(c) - m.idle_power_w(c)).abs() < 1e-12);
        }
    }

    #[test]
    fn sparse_profiles_are_interpolated_between_measurements() {
        let text = format!(
            "{HEADER}\n100,1000,1,0.010,10,5\n200,1000,1,0.020,20,6\n100,1000,3,0.030,30,5\n"
        );
        let p = Profile::parse(&text).unwrap();
        assert_eq!(p.max_batch(), 3);
        assert_eq!(p.service_time_s(clocks(200, 1000), 1), 0.020);
        let mid = p.service_time_s(clocks(100, 1000), 2);
        assert!(mid > 0.010 && mid < 0.030, "{mid}");
    }

    #[test]
    fn a_board_with_one_cpu_and_one_gpu_level_loads() {
        // What `ecoedge profile` writes for a host without clock knobs: one
        // level of each clock, batch sizes only.
        let rows = (1..=4).map(|batch| Row {
            cpu_khz: 1,
            gpu_hz: 1,
            batch,
            latency_s: 0.001 * f64::from(batch),
            busy_power_w: 10.0,
            idle_power_w: 0.001,
        });
        let p = Profile::parse(&profile_text(rows)).unwrap();
        assert_eq!(p.cpu_levels_khz(), [1]);
        assert_eq!(p.gpu_levels_hz(), [1]);
        assert_eq!(p.max_batch(), 4);
        assert_eq!(p.service_time_s(clocks(1, 1), 3), 0.003);
        assert_eq!(p.idle_power_w(clocks(1, 1)), 0.001);
    }

    #[test]
    fn levels_and_values_are_limited_while_parsing() {
        // 3000 levels each: the table asked for 13.8 GB before the check.
        let mut text = format!("{HEADER}\n");
        for i in 0..3000 {
            text.push_str(&format!("{},{},64,0.01,10,5\n", 100 + i, 1000 + i));
        }
        let e = Profile::parse(&text).unwrap_err().to_string();
        assert_eq!(e, "66: more than 64 distinct cpu_khz or gpu_hz levels");
        for (row, want) in [
            ("1,2,1,1e300,1,1", "2: latency_s `1e300` is outside"),
            ("1,2,1,1e-300,1,1", "2: latency_s `1e-300` is outside"),
            ("1,2,1,0.1,1e9,1", "2: busy_power_w `1e9` is outside"),
            ("1,2,1,0.1,1,1e9", "2: idle_power_w `1e9` is outside"),
            ("1,2,65,0.1,1,1", "2: batch sizes above 64"),
        ] {
            let e = Profile::parse(&format!("{HEADER}\n{row}\n")).unwrap_err();
            assert!(e.to_string().starts_with(want), "{row}: {e}");
        }
    }

    #[test]
    fn malformed_profiles_name_the_line() {
        for (text, want) in [
            ("", "1: empty profile"),
            ("a,b\n", "1: header must be"),
            (&format!("{HEADER}\n"), "2: the profile has no rows"),
            (&format!("{HEADER}\n1,2,3\n"), "2: expected 6 fields"),
            (&format!("{HEADER}\n1,2,x,1,1,1\n"), "2: batch `x`"),
            (&format!("{HEADER}\n1,2,1,-1,1,1\n"), "2: latency_s `-1`"),
            (
                &format!("{HEADER}\n1,2,1,1,1,1\n1,2,1,1,1,1\n"),
                "3: config 1,2,1 appears twice",
            ),
        ] {
            let e = Profile::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }
}
