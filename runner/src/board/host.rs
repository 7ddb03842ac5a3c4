//! The host board's energy meters: RAPL through powercap where the kernel lets
//! us read it, else an estimate from this process's CPU time.
//!
//! RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`, also used by AMD's
//! driver) counts microjoules per CPU package and wraps at `max_energy_range_uj`;
//! [`RaplMeter`] sums the top-level package zones (sub-zones such as `core` and
//! `uncore` are part of their package, so adding them would count twice) and
//! unwraps each counter. Since Linux 5.10 `energy_uj` is readable by root only,
//! so on most hosts an unprivileged run falls back to [`CpuTimeMeter`].

use ecoedge_core::board::{EnergyMeter, EnergySource};
use ecoedge_core::time::{Duration, Instant};
use std::io;
use std::path::{Path, PathBuf};

use super::MeterStats;

/// Power of one fully busy core assumed by the estimate, watts. A modern x86
/// or Arm server core running dense vector code draws roughly 5-15 W at the
/// package; 10 W sits in the middle. Only relative figures (cost normalised by
/// the baseline) depend on it, and those not at all: it scales E and E0 alike.
pub const ESTIMATED_CORE_W: f64 = 10.0;

/// A step back of a RAPL counter is taken as a wrap-around only when the
/// energy it implies (up to the range, then from 0) is at most this fraction
/// of the range: 1/8 of a 262 kJ range (32 kJ) is minutes at a package's full
/// power, far longer than between two readings, while a small glitch back
/// implies nearly the whole range.
const WRAP_SPAN: u64 = 8;

/// How long an energy counter's readings (RAPL, NVML) may fail before the
/// meter gives up: until then the last total is held (the counter is
/// cumulative, so the energy of the gap is charged to the first batch after
/// it, not lost).
pub(crate) const COUNTER_HOLD: Duration = Duration::from_secs(1);

/// One RAPL package counter.
#[derive(Debug)]
struct Zone {
    energy_file: PathBuf,
    /// The counter wraps to 0 after this value.
    range_uj: u64,
    last_uj: u64,
    total_uj: u128,
}

impl Zone {
    fn read(&self) -> io::Result<u64> {
        let s = std::fs::read_to_string(&self.energy_file)?;
        s.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{s:?}")))
    }

    /// Adds the energy since the last reading, unwrapping one wrap-around (the
    /// counter wraps after about an hour at 60 W for a 32-bit range; readings
    /// are far more frequent). A step back is a wrap only when the counter was
    /// near its range and is now near 0: the energy it implies is under
    /// [`WRAP_SPAN`] of the range. Any other step back (a glitch, a reset) adds
    /// nothing, is refused, and the counter is followed from where it is now.
    fn advance(&mut self, now_uj: u64) -> Result<(), String> {
        let step = if now_uj >= self.last_uj {
            Ok(now_uj - self.last_uj)
        } else {
            let wrapped = self.range_uj.saturating_sub(self.last_uj) + now_uj;
            if wrapped <= self.range_uj / WRAP_SPAN {
                Ok(wrapped)
            } else {
                Err(format!(
                    "{}: the counter went back from {} to {now_uj} uJ, too far from its range {} for a wrap-around",
                    self.energy_file.display(),
                    self.last_uj,
                    self.range_uj
                ))
            }
        };
        self.last_uj = now_uj;
        step.map(|delta| self.total_uj += u128::from(delta))
    }
}

/// Cumulative package energy from RAPL powercap counters.
#[derive(Debug)]
pub struct RaplMeter {
    zones: Vec<Zone>,
    stats: MeterStats,
    /// The last reading that succeeded, and its total, joules.
    last_good: Option<(Instant, f64)>,
    /// True from a failed reading to the next good one.
    failing: bool,
}

impl RaplMeter {
    /// Opens every readable top-level zone under `root/sys/class/powercap`.
    /// `Ok(None)` when there is none (no RAPL, or not readable by this user).
    pub fn open(root: &Path) -> io::Result<Option<Self>> {
        let dir = root.join("sys/class/powercap");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_package_zone(n))
            .collect();
        names.sort();
        let mut zones = Vec::new();
        for name in names {
            let zone_dir = dir.join(&name);
            let energy_file = zone_dir.join("energy_uj");
            let range = std::fs::read_to_string(zone_dir.join("max_energy_range_uj"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let mut zone = Zone {
                energy_file,
                range_uj: range.unwrap_or(u64::from(u32::MAX)),
                last_uj: 0,
                total_uj: 0,
            };
            match zone.read() {
                Ok(v) => {
                    zone.last_uj = v;
                    zones.push(zone);
                }
                // Root-only since Linux 5.10: fall back, do not fail.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{}: {e}", zone.energy_file.display()),
                    ));
                }
            }
        }
        Ok((!zones.is_empty()).then_some(RaplMeter {
            zones,
            stats: MeterStats::default(),
            last_good: None,
            failing: false,
        }))
    }

    /// How many package zones are summed.
    pub fn zones(&self) -> usize {
        self.zones.len()
    }

    /// Readings, refused readings and gaps so far.
    pub fn stats(&self) -> MeterStats {
        self.stats
    }

    /// Reads every zone once: the total, or the first failure. Every zone is
    /// read even after one fails, so all stay followed.
    fn read_all(&mut self) -> Result<f64, String> {
        let mut total = 0u128;
        let mut first = Ok(());
        for zone in &mut self.zones {
            let read = zone
                .read()
                .map_err(|e| format!("{}: {e}", zone.energy_file.display()))
                .and_then(|v| zone.advance(v));
            if let Err(e) = read {
                first = first.and(Err(e));
            }
            total += zone.total_uj;
        }
        first.map(|()| total as f64 * 1e-6)
    }
}

/// `intel-rapl:0` is a package; `intel-rapl:0:1` is a sub-zone of it.
fn is_package_zone(name: &str) -> bool {
    name.strip_prefix("intel-rapl:")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl EnergyMeter for RaplMeter {
    type Error = io::Error;

    /// The total; a failed or refused reading is counted and the last total
    /// held, for `COUNTER_HOLD` at most.
    fn energy_j(&mut self, now: Instant) -> io::Result<f64> {
        match self.read_all() {
            Ok(total) => {
                if std::mem::take(&mut self.failing)
                    && let Some((t, _)) = self.last_good
                {
                    self.stats.gaps_s += now.saturating_since(t).as_secs_f64();
                }
                self.stats.samples += 1;
                self.last_good = Some((now, total));
                Ok(total)
            }
            Err(why) => {
                self.failing = true;
                self.stats.errors += 1;
                match self.last_good {
                    Some((t, total)) if now.saturating_since(t) <= COUNTER_HOLD => Ok(total),
                    _ => Err(io::Error::other(why)),
                }
            }
        }
    }
}

/// Energy estimated as this process's CPU time times [`ESTIMATED_CORE_W`]
/// (per core-second). Idle power and other processes are not seen, so the
/// figures are reported as `estimated`.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimeMeter {
    core_w: f64,
    origin_s: f64,
    reads: u64,
}

impl CpuTimeMeter {
    /// A meter starting at zero now, charging `core_w` per busy core.
    pub fn new(core_w: f64) -> io::Result<Self> {
        Ok(CpuTimeMeter {
            core_w,
            origin_s: process_cpu_s()?,
            reads: 0,
        })
    }

    /// Readings taken (it has no errors or gaps of its own).
    pub fn stats(&self) -> MeterStats {
        MeterStats {
            samples: self.reads,
            ..MeterStats::default()
        }
    }
}

impl EnergyMeter for CpuTimeMeter {
    type Error = io::Error;

    fn energy_j(&mut self, _now: Instant) -> io::Result<f64> {
        let cpu_s = process_cpu_s()?;
        self.reads += 1;
        Ok((cpu_s - self.origin_s).max(0.0) * self.core_w)
    }

    fn source(&self) -> EnergySource {
        EnergySource::Estimated
    }
}

/// CPU time of every thread of this process, seconds (nanosecond resolution).
fn process_cpu_s() -> io::Result<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(root: &Path, name: &str, energy: u64, range: u64) {
        let d = root.join("sys/class/powercap").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("energy_uj"), format!("{energy}\n")).unwrap();
        std::fs::write(d.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn sums_packages_not_subzones_and_unwraps() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        zone(root, "intel-rapl:0", 980, 1000);
        zone(root, "intel-rapl:0:0", 5, 1000);
        zone(root, "intel-rapl:1", 10, 1000);
        let mut m = RaplMeter::open(root).unwrap().unwrap();
        assert_eq!(m.zones(), 2);
        assert_eq!(m.energy_j(Instant::ZERO).unwrap(), 0.0);
        // Package 0 wraps: 980 -> 1000 (20 uJ) -> 50 (50 uJ); package 1 adds 20.
        zone(root, "intel-rapl:0", 50, 1000);
        zone(root, "intel-rapl:1", 30, 1000);
        let e = m.energy_j(Instant::ZERO).unwrap();
        assert!((e - 90e-6).abs() < 1e-12, "{e}");
    }

    #[test]
    fn a_small_step_back_is_no_wrap_around() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let range = 262_143_328_850;
        zone(root, "intel-rapl:0", 5_000_000, range);
        let mut m = RaplMeter::open(root).unwrap().unwrap();
        assert_eq!(m.energy_j(Instant::ZERO).unwrap(), 0.0);
        // 0.3 J back: held (no 262 kJ), counted as an error.
        zone(root, "intel-rapl:0", 4_700_000, range);
        assert_eq!(m.energy_j(Instant::from_micros(1_000)).unwrap(), 0.0);
        assert_eq!(m.stats().errors, 1);
        // Followed from where it is now.
        zone(root, "intel-rapl:0", 5_700_000, range);
        let e = m.energy_j(Instant::from_micros(2_000)).unwrap();
        assert!((e - 1.0).abs() < 1e-9, "{e}");
        assert_eq!(m.stats().samples, 2);
        assert!((m.stats().gaps_s - 0.002).abs() < 1e-9, "{:?}", m.stats());
    }

    #[test]
    fn failed_readings_are_held_a_while_then_fail() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        zone(root, "intel-rapl:0", 1_000_000, 1 << 32);
        let mut m = RaplMeter::open(root).unwrap().unwrap();
        zone(root, "intel-rapl:0", 2_000_000, 1 << 32);
        assert_eq!(m.energy_j(Instant::ZERO).unwrap(), 1.0);
        let file = root.join("sys/class/powercap/intel-rapl:0/energy_uj");
        std::fs::write(&file, "EIO\n").unwrap();
        assert_eq!(m.energy_j(Instant::from_micros(500_000)).unwrap(), 1.0);
        let e = m.energy_j(Instant::from_micros(1_500_000)).unwrap_err();
        assert!(e.to_string().contains("energy_uj"), "{e}");
        assert_eq!(m.stats().errors, 2);
    }

    #[test]
    fn no_powercap_means_no_meter() {
        let dir = tempfile::tempdir().unwrap();
        assert!(RaplMeter::open(dir.path()).unwrap().is_none());
    }

    #[test]
    fn cpu_time_estimate_grows_with_work() {
        let mut m = CpuTimeMeter::new(ESTIMATED_CORE_W).unwrap();
        let a = m.energy_j(Instant::ZERO).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = m.energy_j(Instant::ZERO).unwrap();
        assert!(b > a);
        assert_eq!(m.source(), EnergySource::Estimated);
    }
}
