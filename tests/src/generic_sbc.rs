//! A worked example: porting EcoEdge to a generic Linux single-board computer.
//!
//! A board port implements two traits of `ecoedge-core`,
//! [`EnergyMeter`] and [`FrequencyKnob`], and feeds the sans-IO
//! [`Controller`](ecoedge_core::controller::Controller). This module does that
//! for a board with nothing but mainline Linux interfaces:
//!
//! - the CPU clock through **cpufreq** (`/sys/devices/system/cpu/cpufreq/policyN`,
//!   frequencies in kHz);
//! - the board's power through an **INA226** (or another chip of the kernel's
//!   `ina2xx` hwmon driver) in series with the supply, read from
//!   `/sys/class/hwmon/hwmonN/power1_input` in microwatts.
//!
//! The fixture ([`crate::sysfs::FakeBoard::raspberry_pi5`]) is a Raspberry Pi 5,
//! but nothing here is Pi-specific: an RK3588 board or any other SBC with
//! cpufreq and an `ina2xx` sensor works the same way.
//!
//! The board side uses `ecoedge-core` and `std` and nothing else: that is the
//! point, a port needs nothing more (`tests/tests/generic_sbc.rs` checks the
//! imports). The service loop that drives the controller (step 3) also names
//! `heapless::Vec`, the type of the controller's batch buffer, so a service
//! depends on `heapless` at the core's version (0.9). It lives
//! in the tests crate rather than in `examples/` because there it is compiled,
//! linted and run by `cargo test -p ecoedge-tests` like any library code, and
//! its tests can share the fake-tree fixtures of [`crate::sysfs`].
//!
//! # Step 1: the meter ([`HwmonPower`])
//!
//! The controller wants *cumulative joules* at the instant it is told about
//! (`EnergyMeter::energy_j(now)`); the sensor gives *instantaneous power*. The
//! meter reads `power1_input` on every call and integrates with the trapezoid
//! rule between calls. That is exact when power changes linearly between two
//! readings, and only then: a step between two readings is smeared over the
//! whole interval. A sampling thread that reads the sensor every
//! `update_interval` milliseconds (the chip's own averaging period, 35 ms for an
//! INA226 at the driver's default of 16 averages) and integrates every sample
//! is more accurate, and is what `bsp-jetson` does; this example keeps the
//! simplest meter that is correct for what it claims.
//!
//! What that means for the controller, which reads the meter at each batch's
//! start and end: the sensor sees a batch's extra power only at its end, so
//! the trapezoid books about half of it in the idle time after the batch. The
//! energy is shifted, not lost, and with the default total energy scope that
//! idle time is charged to the next batch. A batch shorter than `update_interval` may not show in the
//! reading at its end at all: its energy is booked late, or missed when no
//! reading falls in the chip's next averaging period. A sampling thread that
//! reads once per period misses nothing.
//!
//! # Step 2: the knob ([`CpufreqPolicy`])
//!
//! `set_level` pins one cpufreq policy by writing the same frequency to
//! `scaling_min_freq` and `scaling_max_freq`, which takes the clock away from
//! any governor without changing the governor. Older kernels (before cpufreq
//! kept its limits as frequency QoS requests) refuse a minimum above the
//! maximum with `EINVAL`, so the two writes come in the order that never asks
//! for one: lowering writes the minimum first, raising writes the maximum
//! first. Newer kernels accept either order; the right one costs nothing there. The levels are the policy's
//! `scaling_available_frequencies`; a driver without that file (intel_pstate,
//! amd-pstate, cppc) gets a clear error rather than levels made up from
//! `cpuinfo_min_freq`/`cpuinfo_max_freq`. `hand_over` gives the clock back to the
//! governor found at start over the full hardware range, and dropping the knob
//! puts back the governor and limits it found.
//!
//! Restore-on-drop covers a normal return and a panic that unwinds. A service
//! must also restore on SIGINT/SIGTERM (`bsp-jetson` uses `signal-hook`) and
//! after a crash (a store file written before the first change); both are left
//! out here to keep the example short.
//!
//! # Step 3: drive the controller ([`space`], [`apply`])
//!
//! Build the [`Space`] from the knob's `dimension()` plus a batch dimension, apply
//! the controller's first config, then loop: read the clock and the meter, poll
//! for a batch, run it, report it done with the meter's new reading, apply the
//! config the completion names, sleep until the next arrival or
//! `poll_timeout()`. On a real board:
//!
//! ```no_run
//! use ecoedge_core::prelude::*;
//! use ecoedge_tests::generic_sbc::{self, Kernel};
//! use std::path::Path;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut board = generic_sbc::discover(Path::new("/"), Kernel)?;
//! let space = generic_sbc::space(&board.cpu, 16)?;
//! let settings = Settings::default();
//! let mut ctl: Controller<u32, EcoGd, 16> =
//!     Controller::new(space.clone(), settings, EcoGd::new(EcoGdSettings::default(), 1))?;
//! generic_sbc::apply(&space, &ctl.config(), &mut board.cpu)?;
//!
//! let start = std::time::Instant::now();
//! let clock = || Instant::from_micros(start.elapsed().as_micros() as u64);
//! let mut queue: RingQueue<u32, 64> = RingQueue::new();
//! let mut batch = heapless::Vec::new();
//! let mut next_arrival = clock();
//! loop {
//!     // A service pushes requests as they arrive (from a socket, or another
//!     // thread through `queue.split()`); here one arrives every 50 ms.
//!     while clock() >= next_arrival {
//!         // A full queue refuses the request and counts it (`queue.stats()`).
//!         let _ = queue.push(next_arrival, 0);
//!         next_arrival = next_arrival + Duration::from_millis(50);
//!     }
//!     let now = clock();
//!     let energy_j = board.meter.energy_j(now)?;
//!     if ctl.poll_batch(now, energy_j, &mut queue, &mut batch)? > 0 {
//!         // ... run inference on `batch` ...
//!         let now = clock();
//!         let done = ctl.handle_batch_done(now, board.meter.energy_j(now)?)?;
//!         if let Some(config) = done.apply {
//!             generic_sbc::apply(&space, &config, &mut board.cpu)?;
//!         }
//!         continue;
//!     }
//!     // Nothing to run: sleep until the next request or the partial-batch
//!     // deadline, whichever comes first.
//!     let wake = ctl.poll_timeout().map_or(next_arrival, |t| t.min(next_arrival));
//!     let left = wake.as_micros().saturating_sub(clock().as_micros());
//!     std::thread::sleep(std::time::Duration::from_micros(left));
//! }
//! # }
//! ```
//!
//! `tests/tests/generic_sbc.rs` runs exactly this loop on a virtual clock against
//! the fake Raspberry Pi 5 tree and a small model of the board.

use ecoedge_core::board::{EnergyMeter, FrequencyKnob};
use ecoedge_core::space::{Config, Dimension, Knob, Space, SpaceError};
use ecoedge_core::time::Instant;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the cpufreq policies live on every Linux board.
pub const CPUFREQ_DIR: &str = "sys/devices/system/cpu/cpufreq";
/// Where every hwmon device is linked from, whatever bus it sits on.
pub const HWMON_CLASS_DIR: &str = "sys/class/hwmon";
/// Chip names (the `name` file) of the kernel's `ina2xx` hwmon driver, as
/// Documentation/hwmon/ina2xx.rst lists them; every one has `power1_input`.
pub const INA2XX_NAMES: [&str; 8] = [
    "ina219", "ina220", "ina226", "ina230", "ina231", "ina234", "ina260", "sy24655",
];

/// Why a board operation failed. Every variant that concerns a file names it.
#[derive(Debug)]
pub enum Error {
    /// Reading a file failed (missing, permission, I/O).
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Writing a file failed; a value the kernel refuses comes back as `EINVAL`.
    Write {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// A file holds something other than a number.
    Parse {
        /// The file.
        path: PathBuf,
        /// What it holds, trimmed.
        content: String,
    },
    /// No hwmon device carries one of the wanted chip names.
    NoSensor {
        /// The class directory searched.
        searched: PathBuf,
        /// The names looked for, space-separated.
        names: String,
    },
    /// The cpufreq driver publishes no level table.
    NoLevelTable {
        /// The `scaling_available_frequencies` file that is missing or empty.
        path: PathBuf,
    },
    /// A level index past the knob's last level.
    LevelOutOfRange {
        /// The index asked for.
        index: usize,
        /// How many levels the knob has.
        levels: usize,
    },
    /// The meter was asked about a time before its previous reading.
    ClockWentBack {
        /// The previous reading's time.
        latest: Instant,
        /// The time asked about.
        now: Instant,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Write {
                path,
                value,
                source,
            } => write!(f, "cannot write {value:?} to {}: {source}", path.display()),
            Error::Parse { path, content } => {
                write!(f, "{}: {content:?} is not a number", path.display())
            }
            Error::NoSensor { searched, names } => write!(
                f,
                "no hwmon device named {names} under {}: wire an ina2xx sensor and \
                 bind the driver (echo ina226 0x40 > /sys/bus/i2c/devices/i2c-1/new_device)",
                searched.display()
            ),
            Error::NoLevelTable { path } => write!(
                f,
                "{} is missing or empty: this cpufreq driver publishes no level table \
                 (intel_pstate, amd-pstate and cppc do not), so its levels are unknown",
                path.display()
            ),
            Error::LevelOutOfRange { index, levels } => {
                write!(f, "level index {index} is outside 0..{levels}")
            }
            Error::ClockWentBack { latest, now } => {
                write!(
                    f,
                    "meter read at {now}, before its previous reading at {latest}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } | Error::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn read_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_num<T: FromStr>(path: &Path) -> Result<T, Error> {
    let content = read_string(path)?;
    content.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        content,
    })
}

// ---------------------------------------------------------------------------
// Step 1: the meter.
// ---------------------------------------------------------------------------

/// Cumulative energy from a hwmon power sensor, integrated on every reading.
///
/// Energy counts from the first call of [`EnergyMeter::energy_j`] (0 J then).
/// Each later call adds `(p_before + p_now) / 2 * (now - before)`: exact for
/// power that changes linearly between readings, an estimate otherwise (see the
/// module doc). Read it at least as often as power changes meaningfully; a
/// service loop reads it at every batch's start and end, the readings the
/// controller charges to the batch.
#[derive(Debug)]
pub struct HwmonPower {
    dir: PathBuf,
    name: String,
    update_interval_ms: Option<u32>,
    /// The previous reading: when, and the power then (microwatts).
    last: Option<(Instant, u64)>,
    energy_j: f64,
}

impl HwmonPower {
    /// The first `/sys/class/hwmon/hwmonN` (under `root`) whose `name` is one of
    /// `names`, in ascending `N`. Looking by name, not number, matters: hwmon
    /// numbers follow probe order and change between boots.
    pub fn find(root: &Path, names: &[&str]) -> Result<Self, Error> {
        let class = root.join(HWMON_CLASS_DIR);
        let entries = fs::read_dir(&class).map_err(|source| Error::Read {
            path: class.clone(),
            source,
        })?;
        let mut numbered: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let n = e
                    .file_name()
                    .to_str()?
                    .strip_prefix("hwmon")?
                    .parse()
                    .ok()?;
                Some((n, e.path()))
            })
            .collect();
        numbered.sort();
        for (_, dir) in numbered {
            let name = read_string(&dir.join("name"))?;
            if names.contains(&name.as_str()) {
                // Informational only, and not every chip has it (the ina219 and
                // ina220 convert at a fixed rate): absent or unreadable is None.
                let update_interval_ms = read_num(&dir.join("update_interval")).ok();
                return Ok(HwmonPower {
                    dir,
                    name,
                    update_interval_ms,
                    last: None,
                    energy_j: 0.0,
                });
            }
        }
        Err(Error::NoSensor {
            searched: class,
            names: names.join(" "),
        })
    }

    /// The device's class directory, `/sys/class/hwmon/hwmonN` under the root.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chip name, as the driver reports it (`ina226`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How often the chip produces a new reading, in milliseconds, where the
    /// driver says (`update_interval`); readings closer together than this see
    /// the same value.
    pub fn update_interval_ms(&self) -> Option<u32> {
        self.update_interval_ms
    }
}

impl EnergyMeter for HwmonPower {
    type Error = Error;

    /// Reads `power1_input` (microwatts) and adds the trapezoid since the previous
    /// reading. A `now` before the previous reading is an error and changes
    /// nothing, so the total never decreases.
    fn energy_j(&mut self, now: Instant) -> Result<f64, Error> {
        let uw: u64 = read_num(&self.dir.join("power1_input"))?;
        if let Some((then, then_uw)) = self.last {
            let dt = now
                .checked_since(then)
                .ok_or(Error::ClockWentBack { latest: then, now })?;
            self.energy_j += (then_uw + uw) as f64 * 0.5e-6 * dt.as_secs_f64();
        }
        self.last = Some((now, uw));
        Ok(self.energy_j)
    }
}

// ---------------------------------------------------------------------------
// Step 2: the knob.
// ---------------------------------------------------------------------------

/// Where the knob's writes go. On a board, the kernel ([`Kernel`]); in a test, a
/// fake kernel that refuses what the real one would (a minimum above the
/// maximum) and records the order of writes, which a tree of plain files
/// cannot do.
pub trait SysfsWrite {
    /// Writes `value` to the attribute at `path`.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
}

/// Writes straight to sysfs, like `echo -n value > path`. Never creates a file:
/// a missing attribute is an error, as it is in sysfs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl SysfsWrite for Kernel {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?
            .write_all(value.as_bytes())
    }
}

/// What a policy was set to before the knob touched it.
#[derive(Debug)]
struct Saved {
    governor: String,
    min_khz: u32,
    max_khz: u32,
}

/// One cpufreq policy as a [`FrequencyKnob`], levels in kHz.
///
/// One policy covers every core sharing a clock: all four cores of a Pi 5.
/// A board with several clusters (RK3588: `policy0`, `policy4`, `policy6`) has
/// one policy each, but a [`Space`] holds one CPU dimension; drive them
/// together (as `bsp-jetson`'s `CpuFreq` does) or tune one and pin the others.
#[derive(Debug)]
pub struct CpufreqPolicy<W: SysfsWrite = Kernel> {
    dir: PathBuf,
    levels: Vec<u32>,
    /// `cpuinfo_min_freq`, `cpuinfo_max_freq`: the hardware's range.
    full_khz: (u32, u32),
    saved: Saved,
    writer: W,
}

impl<W: SysfsWrite> CpufreqPolicy<W> {
    /// Opens `policy{id}` under `root` and remembers its governor and limits, to
    /// put back on drop. Writes nothing.
    pub fn open(root: &Path, id: u32, writer: W) -> Result<Self, Error> {
        let dir = root.join(CPUFREQ_DIR).join(format!("policy{id}"));
        let table = dir.join("scaling_available_frequencies");
        let listed = match fs::read_to_string(&table) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoLevelTable { path: table });
            }
            Err(source) => {
                return Err(Error::Read {
                    path: table,
                    source,
                });
            }
        };
        let mut levels = listed
            .split_whitespace()
            .map(|w| {
                w.parse().map_err(|_| Error::Parse {
                    path: table.clone(),
                    content: w.to_string(),
                })
            })
            .collect::<Result<Vec<u32>, Error>>()?;
        if levels.is_empty() {
            return Err(Error::NoLevelTable { path: table });
        }
        // Drivers list the table in their own order (acpi-cpufreq descending);
        // the trait wants it ascending.
        levels.sort_unstable();
        levels.dedup();
        let full_khz = (
            read_num(&dir.join("cpuinfo_min_freq"))?,
            read_num(&dir.join("cpuinfo_max_freq"))?,
        );
        let saved = Saved {
            governor: read_string(&dir.join("scaling_governor"))?,
            min_khz: read_num(&dir.join("scaling_min_freq"))?,
            max_khz: read_num(&dir.join("scaling_max_freq"))?,
        };
        Ok(CpufreqPolicy {
            dir,
            levels,
            full_khz,
            saved,
            writer,
        })
    }

    /// The policy directory (under the root).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let path = self.dir.join(file);
        self.writer
            .write(&path, value)
            .map_err(|source| Error::Write {
                path,
                value: value.to_string(),
                source,
            })
    }

    /// Sets the limits to `lo..=hi` (`lo <= hi`) so that no write asks for a
    /// minimum above the maximum in force: when `lo` is above the current
    /// maximum, the maximum goes first (`hi >= lo > max >= min`); otherwise the
    /// minimum goes first (`lo <= max`), then the maximum (`hi >= lo`).
    fn set_limits(&self, lo: u32, hi: u32) -> Result<(), Error> {
        let max_now: u32 = read_num(&self.dir.join("scaling_max_freq"))?;
        let min = ("scaling_min_freq", lo);
        let max = ("scaling_max_freq", hi);
        let order = if lo > max_now { [max, min] } else { [min, max] };
        for (file, khz) in order {
            self.write(file, &khz.to_string())?;
        }
        Ok(())
    }

    /// Puts back the governor and limits found at [`open`](Self::open).
    fn restore(&self) -> Result<(), Error> {
        self.write("scaling_governor", &self.saved.governor)?;
        self.set_limits(self.saved.min_khz, self.saved.max_khz)
    }
}

impl<W: SysfsWrite> FrequencyKnob for CpufreqPolicy<W> {
    type Error = Error;

    fn knob(&self) -> Knob {
        Knob::Cpu
    }

    fn levels(&self) -> &[u32] {
        &self.levels
    }

    /// Writes the level to both limits, in the order that never asks for a
    /// minimum above the maximum.
    fn set_level(&mut self, index: usize) -> Result<(), Error> {
        let khz = *self.levels.get(index).ok_or(Error::LevelOutOfRange {
            index,
            levels: self.levels.len(),
        })?;
        self.set_limits(khz, khz)
    }

    /// `scaling_cur_freq`, kHz: what the kernel last asked the clock for.
    fn read_back(&mut self) -> Result<u32, Error> {
        read_num(&self.dir.join("scaling_cur_freq"))
    }

    /// The governor found at open, over `cpuinfo_min_freq..=cpuinfo_max_freq`.
    fn hand_over(&mut self) -> Result<(), Error> {
        self.write("scaling_governor", &self.saved.governor)?;
        self.set_limits(self.full_khz.0, self.full_khz.1)
    }
}

impl<W: SysfsWrite> Drop for CpufreqPolicy<W> {
    /// Puts back the governor (something else may have switched it meanwhile)
    /// and the limits found at open. Drop cannot return an error; it says on
    /// stderr what it could not undo, since the board is left changed.
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("ecoedge: could not restore {}: {e}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Step 3: drive the controller.
// ---------------------------------------------------------------------------

/// The generic SBC: its power meter and its CPU clock.
#[derive(Debug)]
pub struct Board<W: SysfsWrite = Kernel> {
    /// The first `ina2xx` sensor found.
    pub meter: HwmonPower,
    /// cpufreq `policy0` (the policy of cpu0).
    pub cpu: CpufreqPolicy<W>,
}

/// Finds the board's meter and CPU knob under `root` (`/` on the board, a
/// temporary tree in tests). Writes nothing.
pub fn discover<W: SysfsWrite>(root: &Path, writer: W) -> Result<Board<W>, Error> {
    Ok(Board {
        meter: HwmonPower::find(root, &INA2XX_NAMES)?,
        cpu: CpufreqPolicy::open(root, 0, writer)?,
    })
}

/// The search space: the knob's levels, then batch sizes `1..=max_batch`. Uses
/// only the trait, so it serves any board's knob.
pub fn space(knob: &impl FrequencyKnob, max_batch: u32) -> Result<Space, SpaceError> {
    Space::new(&[knob.dimension()?, Dimension::batch(max_batch)?])
}

/// Applies the CPU level of `config` to `knob` and returns what the board reads
/// back (kHz), for the caller to log or compare: a thermal cap can hold the
/// clock below the level asked for. The batch dimension needs nothing from the
/// board: the controller sizes batches itself. A space without the knob's
/// dimension leaves the knob alone (`Ok(None)`).
pub fn apply<K: FrequencyKnob>(
    space: &Space,
    config: &Config,
    knob: &mut K,
) -> Result<Option<u32>, K::Error> {
    match space.position(knob.knob()) {
        Some(dim) => {
            knob.set_level(config.index(dim))?;
            knob.read_back().map(Some)
        }
        None => Ok(None),
    }
}
