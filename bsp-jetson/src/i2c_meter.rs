//! One INA3221 channel read directly over I2C, as a [`PowerSource`] for the
//! [`Sampler`](crate::Sampler): the meter behind `--meter i2c:/dev/i2c-N@0xADDR[:CHANNEL]`.
//!
//! On a stock Jetson a kernel driver owns the chip (mainline `ina3221` on
//! JetPack 5/6, NVIDIA's `ina3221x` on JetPack 4) and [`PowerMonitor`](crate::PowerMonitor)
//! reads it through sysfs: that is the default meter. Reading the chip directly
//! serves kernels without the driver, or a driver unbound on purpose (to sample
//! the registers at the chip's own rate rather than through sysfs text files).
//! Two owners would race: the driver reconfigures the chip (mode, averaging,
//! power-down when idle) under the other. So [`open_i2c_meter`] refuses a chip a
//! driver is bound to, saying how to unbind it, and never forces access
//! (`I2C_SLAVE_FORCE`).
//!
//! ```no_run
//! use ecoedge_bsp_jetson::{open_i2c_meter, MeterSpec, MonotonicClock, Sampler, SamplerConfig, Sysfs};
//! use ecoedge_core::board::EnergyMeter;
//!
//! let spec: MeterSpec = "i2c:/dev/i2c-7@0x40".parse()?;
//! let source = open_i2c_meter(&spec, &Sysfs::new("/"))?;
//! let clock = MonotonicClock::new();
//! let mut meter = Sampler::start(source, clock, SamplerConfig::default())?;
//! # use ecoedge_bsp_jetson::sampler::Clock;
//! let joules = meter.energy_j(clock.now())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::ina3221::{self, Address, Channel, Ina3221, Mode};
use crate::sampler::PowerSource;
use crate::sysfs::{self, Sysfs};
use embedded_hal::i2c::I2c;
use i2cdev::linux::LinuxI2CError;
use linux_embedded_hal::{I2CError, I2cdev};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The form of a meter spec, for error messages.
const FORM: &str = "i2c:/dev/i2c-N@0xADDR[:CHANNEL]";

/// Shunt resistance of the INA3221 channels of Jetson modules, in micro-ohms:
/// 5 milliohm on VDD_IN, VDD_CPU_GPU_CV and VDD_SOC of the Xavier NX
/// (`tegra194-p3668.dtsi`) and the Orin NX/Nano (`tegra234-p3767.dtsi`), each
/// `input@N` node's `shunt-resistor-micro-ohms = <5000>` in the kernel's device
/// trees. [`open_i2c_meter`] uses it; a board with other shunts builds its
/// [`Ina3221`] with them and wraps it with [`Ina3221Rail::continuous`].
pub const JETSON_SHUNT_UOHM: u32 = 5_000;

/// Linux's character-device major of `i2c-dev` nodes (`I2C_MAJOR`,
/// `include/uapi/linux/major.h`): anything else at `/dev/i2c-N` is not a bus.
const I2C_MAJOR: u32 = 89;

/// Linux errno values (`asm-generic/errno-base.h`, `errno.h`; the same on
/// every Linux architecture Jetsons run), as the I2C core reports them
/// (`Documentation/i2c/fault-codes.rst`).
mod errno {
    /// `I2C_SLAVE` on an address whose client a driver is bound to.
    pub(super) const EBUSY: i32 = 16;
    /// No acknowledge in the address phase (most adapters).
    pub(super) const ENXIO: i32 = 6;
    /// No acknowledge (Tegra's adapter reports a NACK so).
    pub(super) const EREMOTEIO: i32 = 121;
}

/// Where to read power: `i2c:/dev/i2c-N@0xADDR[:CHANNEL]`.
///
/// `ADDR` is one of the four addresses the chip's A0 pin can select (0x40 GND,
/// 0x41 VS, 0x42 SDA, 0x43 SCL; datasheet SBOS576, "Serial Bus Address");
/// `CHANNEL` is 1, 2 or 3, default 1 (VDD_IN, the whole module, on Jetsons).
/// [`Display`](fmt::Display) writes the spec back with its channel, and
/// parsing that gives the same spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterSpec {
    /// `N` of `/dev/i2c-N`.
    pub bus: u32,
    /// The chip's address.
    pub address: Address,
    /// The channel whose power is sampled.
    pub channel: Channel,
}

/// Why a meter spec does not parse. Each message names the bad part and the
/// expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// No `i2c:` prefix.
    #[error("meter {0:?}: expected {FORM}")]
    Scheme(String),
    /// No `@0xADDR` part.
    #[error("meter {0:?}: no chip address; expected {FORM}, e.g. i2c:/dev/i2c-7@0x40")]
    NoAddress(String),
    /// The device is not `/dev/i2c-N` with a decimal `N`.
    #[error("meter device {0:?}: expected /dev/i2c-N with N a bus number, e.g. /dev/i2c-7")]
    Device(String),
    /// The address is not `0x` and hexadecimal digits.
    #[error("meter address {0:?}: expected 0x40, 0x41, 0x42 or 0x43")]
    Address(String),
    /// A well-formed address no INA3221 can have.
    #[error(
        "meter address 0x{0:02x} is not an INA3221's: its A0 pin selects 0x40 (GND), 0x41 (VS), 0x42 (SDA) or 0x43 (SCL)"
    )]
    NotIna3221Address(u8),
    /// The channel is not 1, 2 or 3.
    #[error("meter channel {0:?}: expected 1, 2 or 3 (1 is VDD_IN on Jetson modules)")]
    Channel(String),
}

impl MeterSpec {
    /// Parses `i2c:/dev/i2c-N@0xADDR[:CHANNEL]` (see [`MeterSpec`]).
    pub fn parse(spec: &str) -> Result<MeterSpec, SpecError> {
        let rest = spec
            .strip_prefix("i2c:")
            .ok_or_else(|| SpecError::Scheme(spec.to_string()))?;
        let (device, target) = rest
            .split_once('@')
            .ok_or_else(|| SpecError::NoAddress(spec.to_string()))?;
        let bus = device
            .strip_prefix("/dev/i2c-")
            .filter(|n| is_decimal(n))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| SpecError::Device(device.to_string()))?;
        let (address, channel) = match target.split_once(':') {
            Some((a, c)) => (a, Some(c)),
            None => (target, None),
        };
        let raw = address
            .strip_prefix("0x")
            .or_else(|| address.strip_prefix("0X"))
            .filter(|h| !h.is_empty() && h.len() <= 2 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| SpecError::Address(address.to_string()))?;
        let address = [Address::Gnd, Address::Vs, Address::Sda, Address::Scl]
            .into_iter()
            .find(|a| a.bits() == raw)
            .ok_or(SpecError::NotIna3221Address(raw))?;
        let channel = match channel {
            None => Channel::Ch1,
            Some("1") => Channel::Ch1,
            Some("2") => Channel::Ch2,
            Some("3") => Channel::Ch3,
            Some(other) => return Err(SpecError::Channel(other.to_string())),
        };
        Ok(MeterSpec {
            bus,
            address,
            channel,
        })
    }

    /// The bus's device node, `/dev/i2c-N` (a board path: join it to a root).
    pub fn device_path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/i2c-{}", self.bus))
    }

    /// The kernel's name for the chip's I2C client, `N-00AA` (as in
    /// `/sys/bus/i2c/devices/7-0040`).
    pub fn client_name(&self) -> String {
        format!("{}-{:04x}", self.bus, self.address.bits())
    }
}

/// Digits only, no sign, no leading zero: the one spelling of a bus number, so
/// `/dev/i2c-07` is refused rather than silently opened as `/dev/i2c-7`.
fn is_decimal(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
}

impl FromStr for MeterSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        MeterSpec::parse(s)
    }
}

impl fmt::Display for MeterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channel = match self.channel {
            Channel::Ch1 => 1,
            Channel::Ch2 => 2,
            Channel::Ch3 => 3,
        };
        write!(
            f,
            "i2c:/dev/i2c-{}@0x{:02x}:{channel}",
            self.bus,
            self.address.bits()
        )
    }
}

/// One channel of an [`Ina3221`] read directly over I2C, as a [`PowerSource`]:
/// power is bus voltage times shunt voltage over the shunt resistance, and the
/// sampler never polls faster than the chip refreshes (its configured
/// conversion cycle).
pub struct Ina3221Rail<I2C> {
    /// The sensor.
    pub device: Ina3221<I2C>,
    /// The channel whose power is sampled.
    pub channel: Channel,
}

impl<I2C: I2c> Ina3221Rail<I2C> {
    /// `channel` of `device`, measured continuously.
    ///
    /// A chip a driver let go of may be powered down (the mainline driver
    /// powers it down when idle), in a single-shot mode, or have the channel
    /// disabled; its registers then hold old values and the energy would
    /// silently be wrong. So, if the channel's shunt and bus voltages are not
    /// converted continuously, this sets that mode and enables the channel (the
    /// chip's power-on state for both; every driver rewrites the configuration
    /// when it binds, so nothing needs undoing), then waits with `sleep` until a
    /// full conversion cycle has completed, so the first sample is a fresh
    /// measurement: it polls the conversion-ready flag every quarter cycle (at
    /// least 1 ms) and gives up with [`ina3221::Error::Timeout`] after two
    /// cycles. A chip already converting is left untouched and not waited for.
    pub fn continuous(
        mut device: Ina3221<I2C>,
        channel: Channel,
        mut sleep: impl FnMut(Duration),
    ) -> Result<Self, ina3221::Error<I2C::Error>> {
        if !device.measures_continuously(channel) {
            device.set_mode(Mode::ShuntBusContinuous)?;
            device.enable_channel(channel)?;
            // Continuous mode with a channel enabled always has a cycle.
            let cycle = cycle(&device).ok_or(ina3221::Error::Timeout)?;
            let poll = (cycle / 4).max(Duration::from_millis(1));
            let mut waited = Duration::ZERO;
            loop {
                sleep(poll);
                waited += poll;
                // Writing the configuration cleared the flag: it rises only
                // when a cycle started after the write has completed.
                if device.is_conversion_ready()? {
                    break;
                }
                if waited >= 2 * cycle {
                    return Err(ina3221::Error::Timeout);
                }
            }
        }
        Ok(Ina3221Rail { device, channel })
    }
}

fn cycle<I2C: I2c>(device: &Ina3221<I2C>) -> Option<Duration> {
    device
        .conversion_cycle_us()
        .map(|us| Duration::from_micros(u64::from(us)))
}

/// The bus is left out: `linux_embedded_hal::I2cdev` has no `Debug`.
impl<I2C> fmt::Debug for Ina3221Rail<I2C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ina3221Rail")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl<I2C> PowerSource for Ina3221Rail<I2C>
where
    I2C: I2c + Send + 'static,
    I2C::Error: fmt::Debug,
{
    type Error = ina3221::Error<I2C::Error>;

    fn power_w(&mut self) -> Result<f64, Self::Error> {
        Ok(f64::from(self.device.power_uw(self.channel)?) * 1e-6)
    }

    /// The chip's conversion cycle, from its configuration.
    fn update_interval(&self) -> Option<Duration> {
        cycle(&self.device)
    }
}

/// Why the I2C meter could not be opened. Each message names the device and
/// says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum I2cMeterError {
    /// A kernel driver is bound to the chip.
    #[error(
        "INA3221 {client} is owned by the kernel's {driver} driver; use the kernel's sysfs meter (the default: leave out --meter), or unbind the driver first, as root: echo {client} > /sys/bus/i2c/drivers/{driver}/unbind"
    )]
    KernelDriver {
        /// The client, `N-00AA`.
        client: String,
        /// The driver's name (`ina3221`, `ina3221x`).
        driver: String,
    },
    /// The device node does not exist.
    #[error(
        "{}: no such device; check the bus number (ls /dev/i2c-*) and that the i2c-dev module is loaded (modprobe i2c-dev)",
        path.display()
    )]
    NoDevice {
        /// The node.
        path: PathBuf,
    },
    /// The path is not an i2c-dev character device.
    #[error("{}: not an I2C bus device node: {found}", path.display())]
    NotAnAdapter {
        /// The path.
        path: PathBuf,
        /// What is there instead.
        found: String,
    },
    /// The node may not be opened by this user.
    #[error(
        "{}: permission denied; run as root or as a member of the group owning it (often i2c)",
        path.display()
    )]
    PermissionDenied {
        /// The node.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Opening the node failed otherwise.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The node.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the address as in use (`EBUSY`): a driver bound to
    /// it after the sysfs check, or the sysfs root is not this machine's.
    #[error(
        "{} address 0x{address:02x} is in use by a kernel driver (EBUSY); see /sys/bus/i2c/devices/*-00{address:02x}/driver and unbind it, or use the kernel's sysfs meter",
        path.display()
    )]
    Busy {
        /// The node.
        path: PathBuf,
        /// The address.
        address: u8,
    },
    /// Nothing acknowledged the address.
    #[error(
        "{}: no device answers at address 0x{address:02x}; check the bus and address (i2cdetect -y -r N lists them)",
        path.display()
    )]
    NoAnswer {
        /// The node.
        path: PathBuf,
        /// The address.
        address: u8,
    },
    /// The chip answered but is not an INA3221, or failed while being set up.
    #[error("INA3221 at {} address 0x{address:02x}: {source}", path.display())]
    Sensor {
        /// The node.
        path: PathBuf,
        /// The address.
        address: u8,
        /// What went wrong.
        #[source]
        source: ina3221::Error<I2CError>,
    },
    /// Reading the driver link under the sysfs root failed.
    #[error(transparent)]
    Sysfs(#[from] sysfs::Error),
}

/// Opens the INA3221 of `spec` on `/dev/i2c-N` under the root of `sysfs` (a
/// board: `/`) as a [`PowerSource`]; wrap it in a [`Sampler`](crate::Sampler)
/// for core's `EnergyMeter`.
///
/// In order, each failure a clear [`I2cMeterError`]: refuses a chip a kernel
/// driver is bound to (`/sys/bus/i2c/devices/N-00AA/driver`), before touching
/// the bus; checks the node is an i2c-dev character device (a regular file or
/// another device would take ioctls meant for a bus); opens it; checks the
/// manufacturer and die IDs; makes the channel convert continuously if it did
/// not ([`Ina3221Rail::continuous`], sleeping the thread). Shunts:
/// [`JETSON_SHUNT_UOHM`].
pub fn open_i2c_meter(
    spec: &MeterSpec,
    sysfs: &Sysfs,
) -> Result<Ina3221Rail<I2cdev>, I2cMeterError> {
    if let Some(driver) = kernel_driver(spec, sysfs)? {
        return Err(I2cMeterError::KernelDriver {
            client: spec.client_name(),
            driver,
        });
    }
    let path = sysfs.path(spec.device_path());
    check_adapter_node(&path)?;
    let bus = I2cdev::new(&path).map_err(|e| open_error(&path, io::Error::from(e)))?;
    let address = spec.address.bits();
    let device = Ina3221::new(bus, spec.address, [JETSON_SHUNT_UOHM; 3])
        .map_err(|e| sensor_error(&path, address, e.error))?;
    Ina3221Rail::continuous(device, spec.channel, std::thread::sleep)
        .map_err(|e| sensor_error(&path, address, e))
}

/// The name of the driver bound to the chip's client, if any. No client
/// directory (no device-tree node for it) or no `driver` link: none.
fn kernel_driver(spec: &MeterSpec, sysfs: &Sysfs) -> Result<Option<String>, sysfs::Error> {
    let link = sysfs.path(format!(
        "/sys/bus/i2c/devices/{}/driver",
        spec.client_name()
    ));
    match fs::read_link(&link) {
        Ok(target) => Ok(Some(target.file_name().map_or_else(
            || target.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(sysfs::Error::Read { path: link, source }),
    }
}

fn check_adapter_node(path: &Path) -> Result<(), I2cMeterError> {
    let meta = fs::metadata(path).map_err(|e| open_error(path, e))?;
    let kind = meta.file_type();
    let found = if kind.is_char_device() {
        let (major, minor) = major_minor(meta.rdev());
        if major == I2C_MAJOR {
            return Ok(());
        }
        format!("character device {major}:{minor}, not i2c-dev's major {I2C_MAJOR}")
    } else if kind.is_file() {
        "a regular file".to_string()
    } else if kind.is_dir() {
        "a directory".to_string()
    } else if kind.is_block_device() {
        "a block device".to_string()
    } else {
        "a socket or pipe".to_string()
    };
    Err(I2cMeterError::NotAnAdapter {
        path: path.to_path_buf(),
        found,
    })
}

/// Major and minor of a Linux `dev_t` (glibc's `gnu_dev_major`/`gnu_dev_minor`
/// encoding: 12 + 20 bits of major, 8 + 24 of minor).
fn major_minor(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    // Both masks keep at most 32 bits.
    (major as u32, minor as u32)
}

fn open_error(path: &Path, source: io::Error) -> I2cMeterError {
    let path = path.to_path_buf();
    match source.kind() {
        io::ErrorKind::NotFound => I2cMeterError::NoDevice { path },
        io::ErrorKind::PermissionDenied => I2cMeterError::PermissionDenied { path, source },
        _ => I2cMeterError::Open { path, source },
    }
}

/// The errno inside a Linux I2C error.
fn errno(e: &I2CError) -> Option<i32> {
    match e.inner() {
        LinuxI2CError::Errno(n) => Some(*n),
        LinuxI2CError::Io(e) => e.raw_os_error(),
    }
}

fn sensor_error(path: &Path, address: u8, source: ina3221::Error<I2CError>) -> I2cMeterError {
    let path = path.to_path_buf();
    match &source {
        ina3221::Error::I2C(e) => match errno(e) {
            Some(errno::EBUSY) => I2cMeterError::Busy { path, address },
            Some(errno::ENXIO | errno::EREMOTEIO) => I2cMeterError::NoAnswer { path, address },
            _ => I2cMeterError::Sensor {
                path,
                address,
                source,
            },
        },
        _ => I2cMeterError::Sensor {
            path,
            address,
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bus: u32, address: Address, channel: Channel) -> MeterSpec {
        MeterSpec {
            bus,
            address,
            channel,
        }
    }

    #[test]
    fn good_specs_parse_and_print_back() {
        for (text, want, printed) in [
            (
                "i2c:/dev/i2c-7@0x40",
                spec(7, Address::Gnd, Channel::Ch1),
                "i2c:/dev/i2c-7@0x40:1",
            ),
            (
                "i2c:/dev/i2c-1@0x41:3",
                spec(1, Address::Vs, Channel::Ch3),
                "i2c:/dev/i2c-1@0x41:3",
            ),
            (
                "i2c:/dev/i2c-0@0X42:2",
                spec(0, Address::Sda, Channel::Ch2),
                "i2c:/dev/i2c-0@0x42:2",
            ),
            (
                "i2c:/dev/i2c-12@0x43:1",
                spec(12, Address::Scl, Channel::Ch1),
                "i2c:/dev/i2c-12@0x43:1",
            ),
        ] {
            let got = MeterSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), printed);
            assert_eq!(printed.parse::<MeterSpec>(), Ok(want), "round trip");
        }
        let s = MeterSpec::parse("i2c:/dev/i2c-7@0x40").unwrap();
        assert_eq!(s.device_path(), Path::new("/dev/i2c-7"));
        assert_eq!(s.client_name(), "7-0040");
        assert_eq!(
            MeterSpec::parse("i2c:/dev/i2c-1@0x43")
                .unwrap()
                .client_name(),
            "1-0043"
        );
    }

    #[test]
    fn every_malformed_part_has_its_own_one_line_error() {
        for (text, want) in [
            ("", SpecError::Scheme(String::new())),
            (
                "/dev/i2c-7@0x40",
                SpecError::Scheme("/dev/i2c-7@0x40".into()),
            ),
            (
                "I2C:/dev/i2c-7@0x40",
                SpecError::Scheme("I2C:/dev/i2c-7@0x40".into()),
            ),
            (
                "i2c:/dev/i2c-7",
                SpecError::NoAddress("i2c:/dev/i2c-7".into()),
            ),
            ("i2c:/dev/i2c-@0x40", SpecError::Device("/dev/i2c-".into())),
            (
                "i2c:/dev/i2c-x@0x40",
                SpecError::Device("/dev/i2c-x".into()),
            ),
            (
                "i2c:/dev/i2c-+7@0x40",
                SpecError::Device("/dev/i2c-+7".into()),
            ),
            (
                "i2c:/dev/i2c-07@0x40",
                SpecError::Device("/dev/i2c-07".into()),
            ),
            (
                "i2c:/dev/i2c-99999999999@0x40",
                SpecError::Device("/dev/i2c-99999999999".into()),
            ),
            (
                "i2c:/dev/spidev0.0@0x40",
                SpecError::Device("/dev/spidev0.0".into()),
            ),
            ("i2c:i2c-7@0x40", SpecError::Device("i2c-7".into())),
            ("i2c:/dev/i2c-7@40", SpecError::Address("40".into())),
            ("i2c:/dev/i2c-7@0x", SpecError::Address("0x".into())),
            ("i2c:/dev/i2c-7@0x+40", SpecError::Address("0x+40".into())),
            ("i2c:/dev/i2c-7@0x040", SpecError::Address("0x040".into())),
            ("i2c:/dev/i2c-7@0xg0", SpecError::Address("0xg0".into())),
            ("i2c:/dev/i2c-7@", SpecError::Address(String::new())),
            ("i2c:/dev/i2c-7@0x44", SpecError::NotIna3221Address(0x44)),
            ("i2c:/dev/i2c-7@0x3f:1", SpecError::NotIna3221Address(0x3f)),
            ("i2c:/dev/i2c-7@0x40:0", SpecError::Channel("0".into())),
            ("i2c:/dev/i2c-7@0x40:4", SpecError::Channel("4".into())),
            ("i2c:/dev/i2c-7@0x40:", SpecError::Channel(String::new())),
            ("i2c:/dev/i2c-7@0x40:1:2", SpecError::Channel("1:2".into())),
            ("i2c:/dev/i2c-7@0x40:01", SpecError::Channel("01".into())),
        ] {
            let err = MeterSpec::parse(text).unwrap_err();
            assert_eq!(err, want, "{text:?}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let msg = MeterSpec::parse("i2c:/dev/i2c-7@0x44")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("0x44") && msg.contains("0x40 (GND)"), "{msg}");
        let msg = MeterSpec::parse("disk").unwrap_err().to_string();
        assert!(msg.contains(FORM), "{msg}");
    }

    #[test]
    fn device_numbers_split_as_linux_encodes_them() {
        // The kernel's own encoding of a real node: /dev/null is 1:3.
        let null = fs::metadata("/dev/null").unwrap();
        assert_eq!(major_minor(null.rdev()), (1, 3));
        // glibc's makedev, written out: the high bits of a major above 4095
        // and of a minor above 255 sit apart from the low ones.
        let makedev = |major: u64, minor: u64| {
            ((major & 0xffff_f000) << 32)
                | ((major & 0xfff) << 8)
                | ((minor & 0xffff_ff00) << 12)
                | (minor & 0xff)
        };
        for (major, minor) in [(89, 7), (4097, 300), (0xfffff, 0xff_ffff), (0, 0)] {
            assert_eq!(
                major_minor(makedev(u64::from(major), u64::from(minor))),
                (major, minor)
            );
        }
    }

    #[test]
    fn linux_errnos_become_busy_and_no_answer_errors() {
        let path = Path::new("/dev/i2c-7");
        let bus = |e: LinuxI2CError| ina3221::Error::I2C(I2CError::from(e));
        assert!(matches!(
            sensor_error(path, 0x40, bus(LinuxI2CError::Errno(errno::EBUSY))),
            I2cMeterError::Busy { address: 0x40, .. }
        ));
        for n in [errno::ENXIO, errno::EREMOTEIO] {
            let err = sensor_error(path, 0x41, bus(LinuxI2CError::Errno(n)));
            assert!(
                matches!(err, I2cMeterError::NoAnswer { address: 0x41, .. }),
                "{err}"
            );
        }
        let io = LinuxI2CError::Io(io::Error::from_raw_os_error(errno::EBUSY));
        assert!(matches!(
            sensor_error(path, 0x40, bus(io)),
            I2cMeterError::Busy { .. }
        ));
        // EIO: a bus error, reported as such.
        let err = sensor_error(path, 0x40, bus(LinuxI2CError::Errno(5)));
        assert!(matches!(err, I2cMeterError::Sensor { .. }), "{err}");
        let err = sensor_error(path, 0x40, ina3221::Error::WrongDieId(0x2260));
        assert!(err.to_string().contains("0x2260"), "{err}");
        assert!(err.to_string().contains("/dev/i2c-7"), "{err}");
    }
}
