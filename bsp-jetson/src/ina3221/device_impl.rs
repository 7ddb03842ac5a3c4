//! Configuration, measurement and register access.

use super::conversion;
use super::register::{BitFlags, Config, Register};
use super::{AveragingCount, Channel, ConversionTime, Error, Ina3221, Mode};
use embedded_hal::i2c::I2c;

impl<I2C: I2c> Ina3221<I2C> {
    /// Sets how many samples are averaged per reported value.
    pub fn set_averaging(&mut self, count: AveragingCount) -> Result<(), Error<I2C::Error>> {
        self.write_config(
            self.config
                .with_field(BitFlags::AVERAGING_SHIFT, count.bits()),
        )
    }

    /// Sets the bus-voltage conversion time.
    pub fn set_bus_conversion_time(&mut self, t: ConversionTime) -> Result<(), Error<I2C::Error>> {
        self.write_config(self.config.with_field(BitFlags::BUS_CT_SHIFT, t.bits()))
    }

    /// Sets the shunt-voltage conversion time.
    pub fn set_shunt_conversion_time(
        &mut self,
        t: ConversionTime,
    ) -> Result<(), Error<I2C::Error>> {
        self.write_config(self.config.with_field(BitFlags::SHUNT_CT_SHIFT, t.bits()))
    }

    /// Sets the operating mode; a single-shot mode starts one conversion.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), Error<I2C::Error>> {
        self.write_config(self.config.with_field(BitFlags::MODE_SHIFT, mode.bits()))
    }

    /// Includes `channel` in the conversion cycle.
    pub fn enable_channel(&mut self, channel: Channel) -> Result<(), Error<I2C::Error>> {
        let flag = BitFlags::CHANNEL_ENABLE[channel.index()];
        self.write_config(self.config.with_flag(flag, true))
    }

    /// Leaves `channel` out of the conversion cycle (shortens it).
    pub fn disable_channel(&mut self, channel: Channel) -> Result<(), Error<I2C::Error>> {
        let flag = BitFlags::CHANNEL_ENABLE[channel.index()];
        self.write_config(self.config.with_flag(flag, false))
    }

    /// Resets every register of the chip to its power-on value.
    pub fn reset(&mut self) -> Result<(), Error<I2C::Error>> {
        let default = Config::default();
        // The reset bit clears itself; the chip then holds the power-on word.
        self.write_register(Register::CONFIGURATION, default.bits | BitFlags::RESET)?;
        self.config = default;
        Ok(())
    }

    /// Changes the shunt resistance used for `channel`'s current (micro-ohms, > 0).
    pub fn set_shunt_resistance(
        &mut self,
        channel: Channel,
        uohm: u32,
    ) -> Result<(), Error<I2C::Error>> {
        if uohm == 0 {
            return Err(Error::InvalidInputData);
        }
        self.shunt_uohm[channel.index()] = uohm;
        Ok(())
    }

    /// Shunt voltage of `channel` in microvolts (40 uV steps, +-163.84 mV).
    pub fn shunt_voltage_uv(&mut self, channel: Channel) -> Result<i32, Error<I2C::Error>> {
        let raw = self.read_register(Register::SHUNT_VOLTAGE[channel.index()])?;
        Ok(conversion::shunt_voltage_uv(raw))
    }

    /// Bus voltage of `channel` in millivolts (8 mV steps).
    pub fn bus_voltage_mv(&mut self, channel: Channel) -> Result<i32, Error<I2C::Error>> {
        let raw = self.read_register(Register::BUS_VOLTAGE[channel.index()])?;
        Ok(conversion::bus_voltage_mv(raw))
    }

    /// Current of `channel` in microamperes, from its shunt voltage and shunt
    /// resistance. [`Error::OutOfRange`] if it does not fit an `i32`.
    pub fn current_ua(&mut self, channel: Channel) -> Result<i32, Error<I2C::Error>> {
        let uv = self.shunt_voltage_uv(channel)?;
        conversion::current_ua(uv, self.shunt_uohm[channel.index()]).ok_or(Error::OutOfRange)
    }

    /// Power of `channel` in microwatts: bus voltage times current (reads the shunt
    /// register, then the bus register). [`Error::OutOfRange`] above about 2.1 kW.
    pub fn power_uw(&mut self, channel: Channel) -> Result<i32, Error<I2C::Error>> {
        let ua = self.current_ua(channel)?;
        let mv = self.bus_voltage_mv(channel)?;
        conversion::power_uw(mv, ua).ok_or(Error::OutOfRange)
    }

    /// How long the chip takes to refresh its results, from the configuration
    /// it holds (no bus access): averaging x enabled channels x conversion
    /// times. `None` when nothing refreshes on its own (power-down, single shot,
    /// no channel enabled). A reader sampling faster only re-reads old values.
    pub fn conversion_cycle_us(&self) -> Option<u32> {
        conversion::cycle_us(self.config)
    }

    /// Whether `channel`'s shunt and bus voltages are converted continuously
    /// (mode 0b111 with the channel enabled), so its registers keep following
    /// the rail; no bus access.
    pub fn measures_continuously(&self, channel: Channel) -> bool {
        self.config.field(BitFlags::MODE_SHIFT) == Mode::ShuntBusContinuous.bits()
            && self.config.bits & BitFlags::CHANNEL_ENABLE[channel.index()] != 0
    }

    /// Whether a conversion cycle finished since the flag was last read. Reading
    /// the mask/enable register clears the flag (datasheet), so each `true` means
    /// a fresh cycle.
    pub fn is_conversion_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        let mask = self.read_register(Register::MASK_ENABLE)?;
        Ok(mask & BitFlags::CONVERSION_READY != 0)
    }

    /// Non-blocking form of [`Ina3221::is_conversion_ready`]: `WouldBlock` until
    /// a conversion cycle has finished.
    pub fn conversion_ready(&mut self) -> nb::Result<(), Error<I2C::Error>> {
        if self.is_conversion_ready()? {
            Ok(())
        } else {
            Err(nb::Error::WouldBlock)
        }
    }

    /// Polls the conversion-ready flag at most `max_polls` times (bounded work:
    /// one register read per poll), [`Error::Timeout`] if it never rose.
    pub fn wait_conversion_ready(&mut self, max_polls: u32) -> Result<(), Error<I2C::Error>> {
        for _ in 0..max_polls {
            if self.is_conversion_ready()? {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    fn write_config(&mut self, config: Config) -> Result<(), Error<I2C::Error>> {
        self.write_register(Register::CONFIGURATION, config.bits)?;
        self.config = config;
        Ok(())
    }

    fn write_register(&mut self, register: u8, value: u16) -> Result<(), Error<I2C::Error>> {
        let [hi, lo] = value.to_be_bytes();
        self.i2c
            .write(self.address, &[register, hi, lo])
            .map_err(Error::I2C)
    }

    pub(super) fn read_register(&mut self, register: u8) -> Result<u16, Error<I2C::Error>> {
        let mut buf = [0; 2];
        self.i2c
            .write_read(self.address, &[register], &mut buf)
            .map_err(Error::I2C)?;
        Ok(u16::from_be_bytes(buf))
    }
}
