//! Cross-crate integration tests (under `tests/tests/`) and their fixtures:
//!
//! - [`sysfs`]: fake Jetson sysfs trees (Xavier NX on JetPack 4 and 5, Orin NX on
//!   JetPack 6, Nano) with real frequency tables and the `/sys/class/devfreq`
//!   links, and [`sysfs::FakeKernel`], a writer that enforces the kernel's rules
//!   and records every write.
//! - [`ina3221_sim`]: a register-level INA3221 behind embedded-hal's `I2c`.

pub mod ina3221_sim;
pub mod sysfs;
