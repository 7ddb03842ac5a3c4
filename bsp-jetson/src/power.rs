//! INA3221 power rails through the kernel's sysfs.
//!
//! Two drivers, depending on the JetPack release:
//! - JetPack 5/6, mainline `ina3221` hwmon driver:
//!   `/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmonN/` with `inK_label`,
//!   `inK_input` (mV) and `currK_input` (mA) for K = 1..3; power = mV x mA.
//! - JetPack 4, NVIDIA `ina3221x` IIO driver:
//!   `/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN/` with `rail_name_K`,
//!   `in_voltageK_input` (mV), `in_currentK_input` (mA), `in_powerK_input` (mW)
//!   for K = 0..2.
//!
//! Every chip bound to either driver is searched (AGX Orin has two), and the
//! directory names (`hwmonN`, `iio:deviceN`) are discovered, never assumed.

use crate::sampler::PowerSource;
use crate::sysfs::{Error, Result, Sysfs};
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the mainline hwmon driver's devices are bound.
pub const HWMON_DRIVER_DIR: &str = "/sys/bus/i2c/drivers/ina3221";
/// Where NVIDIA's IIO driver's devices are bound.
pub const IIO_DRIVER_DIR: &str = "/sys/bus/i2c/drivers/ina3221x";
/// Names of the whole-module input rail, by board and release.
pub const MODULE_INPUT_RAILS: [&str; 3] = ["VDD_IN", "5V_IN", "POM_5V_IN"];

/// Which kernel driver serves the sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorDriver {
    /// Mainline `ina3221` (hwmon), JetPack 5 and 6.
    Hwmon,
    /// NVIDIA `ina3221x` (IIO), JetPack 4.
    Iio,
}

/// One reading of one rail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RailReading {
    /// The rail's name (`VDD_IN`, ...).
    pub label: String,
    /// Bus voltage, mV.
    pub voltage_mv: i64,
    /// Current, mA.
    pub current_ma: i64,
    /// Power, mW (read from the driver where it gives it, else mV x mA / 1000).
    pub power_mw: i64,
}

/// The files of one rail.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RailFiles {
    label: String,
    voltage: PathBuf,
    current: PathBuf,
    /// Only the IIO driver reports power itself.
    power: Option<PathBuf>,
}

/// All INA3221 rails the kernel exposes.
#[derive(Debug, Clone)]
pub struct PowerMonitor {
    sysfs: Sysfs,
    driver: SensorDriver,
    devices: Vec<PathBuf>,
    rails: Vec<RailFiles>,
    update_interval: Option<Duration>,
}

impl PowerMonitor {
    /// Finds the sensor: the hwmon driver first, then the IIO one. A clear
    /// [`Error::NotFound`] when neither has a device.
    pub fn discover(sysfs: &Sysfs) -> Result<Self> {
        if let Some(m) = Self::discover_hwmon(sysfs)? {
            return Ok(m);
        }
        if let Some(m) = Self::discover_iio(sysfs)? {
            return Ok(m);
        }
        Err(Error::NotFound {
            what: "INA3221 power sensor (ina3221 hwmon or ina3221x iio driver)",
            searched: sysfs.path("/sys/bus/i2c/drivers"),
        })
    }

    /// Bound devices of a driver (`<bus>-<addr>` entries).
    fn bound(sysfs: &Sysfs, driver_dir: &str) -> Vec<PathBuf> {
        sysfs
            .entries(&sysfs.path(driver_dir))
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.contains('-') && n.chars().next().is_some_and(|c| c.is_ascii_digit())
                })
            })
            .collect()
    }

    /// Subdirectories of `dir` whose names start with `prefix`.
    fn subdirs(sysfs: &Sysfs, dir: &Path, prefix: &str) -> Vec<PathBuf> {
        sysfs
            .entries(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect()
    }

    fn discover_hwmon(sysfs: &Sysfs) -> Result<Option<Self>> {
        let mut devices = Vec::new();
        let mut rails = Vec::new();
        let mut interval = None;
        for dev in Self::bound(sysfs, HWMON_DRIVER_DIR) {
            for hw in Self::subdirs(sysfs, &dev.join("hwmon"), "hwmon") {
                for k in 1..=3 {
                    let voltage = hw.join(format!("in{k}_input"));
                    if !voltage.exists() {
                        continue;
                    }
                    let label_file = hw.join(format!("in{k}_label"));
                    let label = if label_file.exists() {
                        sysfs.read_string(&label_file)?
                    } else {
                        format!("in{k}")
                    };
                    rails.push(RailFiles {
                        label,
                        voltage,
                        current: hw.join(format!("curr{k}_input")),
                        power: None,
                    });
                }
                let ui = hw.join("update_interval");
                if ui.exists() {
                    let ms: u64 = sysfs.read_num(&ui)?;
                    let d = Duration::from_millis(ms);
                    interval = Some(interval.map_or(d, |i: Duration| i.max(d)));
                }
                devices.push(hw);
            }
        }
        Ok((!rails.is_empty()).then(|| PowerMonitor {
            sysfs: sysfs.clone(),
            driver: SensorDriver::Hwmon,
            devices,
            rails,
            update_interval: interval,
        }))
    }

    fn discover_iio(sysfs: &Sysfs) -> Result<Option<Self>> {
        let mut devices = Vec::new();
        let mut rails = Vec::new();
        for dev in Self::bound(sysfs, IIO_DRIVER_DIR) {
            for iio in Self::subdirs(sysfs, &dev, "iio:device") {
                for k in 0..3 {
                    let name = iio.join(format!("rail_name_{k}"));
                    if !name.exists() {
                        continue;
                    }
                    rails.push(RailFiles {
                        label: sysfs.read_string(&name)?,
                        voltage: iio.join(format!("in_voltage{k}_input")),
                        current: iio.join(format!("in_current{k}_input")),
                        power: Some(iio.join(format!("in_power{k}_input"))),
                    });
                }
                devices.push(iio);
            }
        }
        Ok((!rails.is_empty()).then(|| PowerMonitor {
            sysfs: sysfs.clone(),
            driver: SensorDriver::Iio,
            devices,
            rails,
            update_interval: None,
        }))
    }

    /// Which driver serves the sensor.
    pub fn driver(&self) -> SensorDriver {
        self.driver
    }

    /// The device directories found (`hwmonN` or `iio:deviceN`, under the root).
    pub fn devices(&self) -> &[PathBuf] {
        &self.devices
    }

    /// The rail names, in device and channel order.
    pub fn labels(&self) -> Vec<String> {
        self.rails.iter().map(|r| r.label.clone()).collect()
    }

    /// How often the chip produces a new value (hwmon `update_interval`), where
    /// the driver says; the longest over all chips.
    pub fn update_interval(&self) -> Option<Duration> {
        self.update_interval
    }

    /// Reads every rail once.
    pub fn read_all(&self) -> Result<Vec<RailReading>> {
        self.rails.iter().map(|r| self.read_rail(r)).collect()
    }

    fn read_rail(&self, r: &RailFiles) -> Result<RailReading> {
        let voltage_mv: i64 = self.sysfs.read_num(&r.voltage)?;
        let current_ma: i64 = self.sysfs.read_num(&r.current)?;
        let power_mw = match &r.power {
            Some(p) => self.sysfs.read_num(p)?,
            // A reading of an unbound device or a corrupt file can be any
            // integer; the product of two overflowed (a panic in debug builds,
            // a wrapped power in release).
            None => voltage_mv
                .checked_mul(current_ma)
                .map(|p| p / 1_000)
                .ok_or_else(|| Error::Parse {
                    path: r.current.clone(),
                    content: format!("{current_ma} mA at {voltage_mv} mV"),
                    expected: "a current whose power at the rail's voltage fits 64 bits",
                })?,
        };
        Ok(RailReading {
            label: r.label.clone(),
            voltage_mv,
            current_ma,
            power_mw,
        })
    }

    fn find(&self, label: &str) -> Result<&RailFiles> {
        self.rails
            .iter()
            .find(|r| r.label == label)
            .ok_or_else(|| Error::NoSuchRail {
                label: label.to_string(),
                available: self.labels(),
            })
    }

    /// Reads one rail once.
    pub fn read(&self, label: &str) -> Result<RailReading> {
        self.read_rail(self.find(label)?)
    }

    /// The whole-module input rail's label (`VDD_IN`, `5V_IN` or `POM_5V_IN`).
    pub fn module_input_label(&self) -> Result<&str> {
        MODULE_INPUT_RAILS
            .iter()
            .find_map(|want| self.rails.iter().find(|r| r.label == *want))
            .map(|r| r.label.as_str())
            .ok_or_else(|| Error::NoSuchRail {
                label: MODULE_INPUT_RAILS.join(" | "),
                available: self.labels(),
            })
    }

    /// A reader of one rail's power for the [`crate::Sampler`]: it keeps the files
    /// open and re-reads them at offset 0, three system calls fewer per sample
    /// than opening them each time.
    pub fn rail_power(&self, label: &str) -> Result<RailPower> {
        let r = self.find(label)?;
        let open = |p: &Path| {
            File::open(p)
                .map(|f| (f, p.to_path_buf()))
                .map_err(|source| Error::Read {
                    path: p.to_path_buf(),
                    source,
                })
        };
        let files = match &r.power {
            Some(p) => RailPowerFiles::Power(open(p)?),
            None => RailPowerFiles::VoltageCurrent(open(&r.voltage)?, open(&r.current)?),
        };
        Ok(RailPower {
            files,
            update_interval: self.update_interval,
            checked: std::time::Instant::now(),
        })
    }

    /// [`PowerMonitor::rail_power`] of the module input rail.
    pub fn module_input_power(&self) -> Result<RailPower> {
        self.rail_power(self.module_input_label()?)
    }
}

#[derive(Debug)]
enum RailPowerFiles {
    /// `in_powerK_input`, mW.
    Power((File, PathBuf)),
    /// `inK_input` (mV) and `currK_input` (mA).
    VoltageCurrent((File, PathBuf), (File, PathBuf)),
}

/// How often [`RailPower`] checks that its files are still there.
const PRESENCE_CHECK: Duration = Duration::from_secs(1);

/// One rail's power, read from open sysfs files; a [`PowerSource`].
#[derive(Debug)]
pub struct RailPower {
    files: RailPowerFiles,
    update_interval: Option<Duration>,
    /// When the files were last found in place.
    checked: std::time::Instant,
}

impl RailPower {
    /// Fails, naming the file, if one of the rail's files is gone or is no
    /// longer a file. The kernel fails reads of an unbound device's open
    /// attributes, but a file removed from an ordinary filesystem (a fake
    /// tree, a copy of sysfs) reads on through its descriptor: without a look
    /// at the path the meter would go on measuring a ghost.
    fn check_present(&self) -> Result<()> {
        let paths: [Option<&Path>; 2] = match &self.files {
            RailPowerFiles::Power((_, p)) => [Some(p), None],
            RailPowerFiles::VoltageCurrent((_, v), (_, c)) => [Some(v), Some(c)],
        };
        for path in paths.into_iter().flatten() {
            let present = std::fs::metadata(path).and_then(|m| {
                if m.is_file() {
                    Ok(())
                } else {
                    Err(std::io::Error::other("no longer a file"))
                }
            });
            present.map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Reads an integer from the start of an open file without allocating.
fn read_int((file, path): &(File, PathBuf)) -> Result<i64> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
    text.parse().map_err(|_| Error::Parse {
        path: path.clone(),
        content: String::from_utf8_lossy(&buf[..n]).trim().to_string(),
        expected: "an integer",
    })
}

impl PowerSource for RailPower {
    type Error = Error;

    fn power_w(&mut self) -> Result<f64> {
        if self.checked.elapsed() >= PRESENCE_CHECK {
            self.check_present()?;
            self.checked = std::time::Instant::now();
        }
        Ok(match &self.files {
            RailPowerFiles::Power(p) => read_int(p)? as f64 * 1e-3,
            RailPowerFiles::VoltageCurrent(v, c) => {
                read_int(v)? as f64 * read_int(c)? as f64 * 1e-6
            }
        })
    }

    fn update_interval(&self) -> Option<Duration> {
        self.update_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_whose_power_overflows_is_an_error_naming_the_file() {
        // Found by fuzzing the sysfs files (fuzz/regressions/sysfs/): 1e16 mV
        // at 960 mA overflowed `voltage * current` (a panic in debug builds).
        let root = tempfile::tempdir().unwrap();
        let hw = root
            .path()
            .join(HWMON_DRIVER_DIR.trim_start_matches('/'))
            .join("7-0040/hwmon/hwmon5");
        std::fs::create_dir_all(&hw).unwrap();
        std::fs::write(hw.join("in1_label"), "VDD_IN\n").unwrap();
        std::fs::write(hw.join("in1_input"), "9999999999999999\n").unwrap();
        std::fs::write(hw.join("curr1_input"), "960\n").unwrap();
        let m = PowerMonitor::discover(&Sysfs::new(root.path())).unwrap();
        let e = m.read("VDD_IN").unwrap_err();
        assert!(matches!(e, Error::Parse { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("curr1_input") && e.contains("fits 64 bits"),
            "{e}"
        );
        // Within range it reads as before.
        std::fs::write(hw.join("in1_input"), "5048\n").unwrap();
        assert_eq!(m.read("VDD_IN").unwrap().power_mw, 4_846);
    }
}
