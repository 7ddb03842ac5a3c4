//! The host board's energy meters: RAPL through powercap where the kernel lets
//! us read it, else an estimate from this process's CPU time.
//!
//! RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`, also used by AMD's
//! driver) counts microjoules per CPU package and wraps at `max_energy_range_uj`;
//! [`RaplMeter`] sums the top-level package zones (sub-zones such as `core` and
//! `uncore` are part of their package, so adding them would count twice) and
//! unwraps each counter. Since Linux 5.10 `energy_uj` is readable by root only,
//! so on most hosts an unprivileged run falls back to [`CpuTimeMeter`].

use std::io;
use std::path::{Path, PathBuf};

use ecoedge_core::board::{EnergyMeter, EnergySource};
use ecoedge_core::time::Instant;

/// Power of one fully busy core assumed by the estimate, watts. A modern x86
/// or Arm server core running dense vector code draws roughly 5-15 W at the
/// package; 10 W sits in the middle. Only relative figures (cost normalised by
/// the baseline) depend on it, and those not at all: it scales E and E0 alike.
pub const ESTIMATED_CORE_W: f64 = 10.0;

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
    /// are far more frequent).
    fn advance(&mut self, now_uj: u64) {
        let delta = if now_uj >= self.last_uj {
            now_uj - self.last_uj
        } else {
            self.range_uj.saturating_sub(self.last_uj) + now_uj
        };
        self.total_uj += u128::from(delta);
        self.last_uj = now_uj;
    }
}

/// Cumulative package energy from RAPL powercap counters.
#[derive(Debug)]
pub struct RaplMeter {
    zones: Vec<Zone>,
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
        Ok((!zones.is_empty()).then_some(RaplMeter { zones }))
    }

    /// How many package zones are summed.
    pub fn zones(&self) -> usize {
        self.zones.len()
    }
}

/// `intel-rapl:0` is a package; `intel-rapl:0:1` is a sub-zone of it.
fn is_package_zone(name: &str) -> bool {
    name.strip_prefix("intel-rapl:")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl EnergyMeter for RaplMeter {
    type Error = io::Error;

    fn energy_j(&mut self, _now: Instant) -> io::Result<f64> {
        let mut total = 0u128;
        for zone in &mut self.zones {
            let v = zone.read().map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", zone.energy_file.display()))
            })?;
            zone.advance(v);
            total += zone.total_uj;
        }
        Ok(total as f64 * 1e-6)
    }
}

/// Energy estimated as this process's CPU time times [`ESTIMATED_CORE_W`]
/// (per core-second). Idle power and other processes are not seen, so the
/// figures are reported as `estimated`.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimeMeter {
    core_w: f64,
    origin_s: f64,
}

impl CpuTimeMeter {
    /// A meter starting at zero now, charging `core_w` per busy core.
    pub fn new(core_w: f64) -> io::Result<Self> {
        Ok(CpuTimeMeter {
            core_w,
            origin_s: process_cpu_s()?,
        })
    }
}

impl EnergyMeter for CpuTimeMeter {
    type Error = io::Error;

    fn energy_j(&mut self, _now: Instant) -> io::Result<f64> {
        Ok((process_cpu_s()? - self.origin_s).max(0.0) * self.core_w)
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
        zone(root, "intel-rapl:0", 900, 1000);
        zone(root, "intel-rapl:0:0", 5, 1000);
        zone(root, "intel-rapl:1", 10, 1000);
        let mut m = RaplMeter::open(root).unwrap().unwrap();
        assert_eq!(m.zones(), 2);
        assert_eq!(m.energy_j(Instant::ZERO).unwrap(), 0.0);
        // Package 0 wraps: 900 -> 1000 (100 uJ) -> 50 (50 uJ); package 1 adds 20.
        zone(root, "intel-rapl:0", 50, 1000);
        zone(root, "intel-rapl:1", 30, 1000);
        let e = m.energy_j(Instant::ZERO).unwrap();
        assert!((e - 170e-6).abs() < 1e-12, "{e}");
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
