//! Driver for the Texas Instruments INA3221 three-channel shunt and bus voltage
//! monitor, over any [`embedded_hal::i2c::I2c`] bus.
//!
//! The power sensor of every Jetson module (Xavier NX: bus 7, address 0x40; Orin NX
//! and Nano: bus 1, 0x40; AGX Orin adds 0x41; Nano: bus 6, 0x40). The same code
//! runs on Linux through `linux_embedded_hal::I2cdev` on `/dev/i2c-N` and on a
//! microcontroller's HAL: this module uses `core` only, no `std` and no `alloc`,
//! and is all the crate builds without its `std` feature (then `#![no_std]`).
//!
//! Features:
//! - Identity check on construction: manufacturer ID (0xFE = 0x5449) and die ID
//!   (0xFF = 0x3220); anything else is refused and the bus handed back. See
//!   [`Ina3221::new`].
//! - Configuration: [`Ina3221::set_averaging`], [`Ina3221::set_bus_conversion_time`],
//!   [`Ina3221::set_shunt_conversion_time`], [`Ina3221::set_mode`],
//!   [`Ina3221::enable_channel`], [`Ina3221::disable_channel`], [`Ina3221::reset`].
//! - Measurements per channel: [`Ina3221::shunt_voltage_uv`],
//!   [`Ina3221::bus_voltage_mv`], [`Ina3221::current_ua`], [`Ina3221::power_uw`]
//!   (current and power from the per-channel shunt resistances).
//! - Conversion-ready flag: [`Ina3221::conversion_ready`] (`nb`) and
//!   [`Ina3221::wait_conversion_ready`] (bounded poll); the refresh period the
//!   configuration implies, [`Ina3221::conversion_cycle_us`], and whether a
//!   channel is measured continuously, [`Ina3221::measures_continuously`].
//! - [`Ina3221::destroy`] gives the bus back.
//!
//! Datasheet: TI SBOS576, "INA3221 Triple-Channel, High-Side Measurement, Shunt
//! and Bus Voltage Monitor".
//!
//! ```no_run
//! use ecoedge_bsp_jetson::ina3221::{Address, AveragingCount, Channel, Ina3221};
//! use linux_embedded_hal::I2cdev;
//!
//! let bus = I2cdev::new("/dev/i2c-7").unwrap();
//! // Xavier NX: 5 milliohm shunts on all three rails.
//! let mut ina = Ina3221::new(bus, Address::Gnd, [5_000; 3]).map_err(|e| e.error).unwrap();
//! ina.set_averaging(AveragingCount::_4).unwrap();
//! ina.wait_conversion_ready(100).unwrap();
//! let milliwatts = ina.power_uw(Channel::Ch1).unwrap() / 1_000;
//! println!("module input: {milliwatts} mW");
//! let _bus = ina.destroy();
//! ```

mod conversion;
mod device_impl;
mod register;
mod types;

pub use types::{Address, AveragingCount, Channel, ConversionTime, Error, InitError, Mode};

use embedded_hal::i2c::I2c;
use register::{Config, DIE_ID_INA3221, MANUFACTURER_ID_TI, Register};

/// An INA3221 on an I2C bus.
#[derive(Debug)]
pub struct Ina3221<I2C> {
    i2c: I2C,
    address: u8,
    config: Config,
    shunt_uohm: [u32; 3],
}

impl<I2C: I2c> Ina3221<I2C> {
    /// Checks the device at `address` is an INA3221 and takes the bus.
    ///
    /// `shunt_uohm` are the shunt resistances of channels 1..3 in micro-ohms
    /// (they turn shunt voltage into current). Reads the manufacturer ID, the die
    /// ID and the configuration (so the cached word matches the chip, which a
    /// kernel driver or an earlier run may have configured); changes nothing.
    /// A wrong ID or a zero shunt is refused, with the bus handed back.
    pub fn new(
        i2c: I2C,
        address: Address,
        shunt_uohm: [u32; 3],
    ) -> Result<Self, InitError<I2C, I2C::Error>> {
        let mut dev = Ina3221 {
            i2c,
            address: address.bits(),
            config: Config::default(),
            shunt_uohm,
        };
        match dev.check_and_sync() {
            Ok(()) => Ok(dev),
            Err(error) => Err(InitError {
                error,
                i2c: dev.i2c,
            }),
        }
    }

    fn check_and_sync(&mut self) -> Result<(), Error<I2C::Error>> {
        if self.shunt_uohm.contains(&0) {
            return Err(Error::InvalidInputData);
        }
        let id = self.read_register(Register::MANUFACTURER_ID)?;
        if id != MANUFACTURER_ID_TI {
            return Err(Error::WrongManufacturerId(id));
        }
        let id = self.read_register(Register::DIE_ID)?;
        if id != DIE_ID_INA3221 {
            return Err(Error::WrongDieId(id));
        }
        self.config = Config {
            bits: self.read_register(Register::CONFIGURATION)?,
        };
        Ok(())
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }
}
