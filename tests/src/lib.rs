//! Cross-crate integration tests (under `tests/tests/`) and their fixtures:
//!
//! - [`sysfs`]: fake Jetson sysfs trees (Xavier NX on JetPack 4 and 5, Orin NX on
//!   JetPack 6, Nano) with real frequency tables and the `/sys/class/devfreq`
//!   links, and [`sysfs::FakeKernel`], a writer that enforces the kernel's rules
//!   and records every write; and a Raspberry Pi 5 with an INA226 on hwmon, the
//!   board of the port example.
//! - [`ina3221_sim`]: a register-level INA3221 behind embedded-hal's `I2c`.
//! - [`nvml`]: a fake NVIDIA GPU behind a fake `libnvidia-ml.so.1`.
//! - [`cli`]: checks on a finished `ecoedge` process (succeeded; failed with
//!   one `error:` line).
//! - [`generic_sbc`]: the worked example of a board port (cpufreq and an
//!   `ina2xx` hwmon sensor), using nothing but `ecoedge-core` and `std`.

pub mod cli;
pub mod fuzzing;
pub mod generic_sbc;
pub mod ina3221_sim;
pub mod nvml;
pub mod sysfs;
