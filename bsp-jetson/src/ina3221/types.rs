//! Public types of the INA3221 driver: errors, addresses, channels and settings.

use core::fmt;

/// All errors of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The I2C bus failed.
    I2C(E),
    /// An argument is out of range (a shunt resistance of zero).
    InvalidInputData,
    /// A measurement does not fit the result type (see the method's doc).
    OutOfRange,
    /// The manufacturer ID register (0xFE) did not read 0x5449 ("TI").
    WrongManufacturerId(u16),
    /// The die ID register (0xFF) did not read 0x3220: not an INA3221.
    WrongDieId(u16),
    /// No conversion completed within the allowed number of polls.
    Timeout,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::I2C(e) => write!(f, "I2C bus error: {e:?}"),
            Error::InvalidInputData => f.write_str("invalid input data"),
            Error::OutOfRange => f.write_str("measurement out of the representable range"),
            Error::WrongManufacturerId(id) => {
                write!(
                    f,
                    "manufacturer id 0x{id:04x} is not Texas Instruments (0x5449)"
                )
            }
            Error::WrongDieId(id) => write!(f, "die id 0x{id:04x} is not an INA3221 (0x3220)"),
            Error::Timeout => f.write_str("conversion not ready in time"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Construction refused: the error, and the bus handed back so the caller can
/// keep using it for other devices.
#[derive(Debug)]
pub struct InitError<I2C, E> {
    /// Why the device was refused.
    pub error: Error<E>,
    /// The bus, unchanged.
    pub i2c: I2C,
}

impl<I2C, E: fmt::Debug> fmt::Display for InitError<I2C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INA3221 refused: {}", self.error)
    }
}

impl<I2C: fmt::Debug, E: fmt::Debug> core::error::Error for InitError<I2C, E> {}

/// I2C address, set by what pin A0 is tied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Address {
    /// A0 to GND: 0x40 (every Jetson module's first INA3221).
    #[default]
    Gnd,
    /// A0 to VS: 0x41 (AGX Orin's second INA3221).
    Vs,
    /// A0 to SDA: 0x42.
    Sda,
    /// A0 to SCL: 0x43.
    Scl,
}

impl Address {
    /// The 7-bit bus address.
    pub const fn bits(self) -> u8 {
        match self {
            Address::Gnd => 0x40,
            Address::Vs => 0x41,
            Address::Sda => 0x42,
            Address::Scl => 0x43,
        }
    }
}

/// One of the three measurement channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Channel 1 (Jetson: the module input, VDD_IN / POM_5V_IN).
    Ch1,
    /// Channel 2.
    Ch2,
    /// Channel 3.
    Ch3,
}

impl Channel {
    /// Zero-based index, for the per-channel register and shunt tables.
    pub(crate) const fn index(self) -> usize {
        match self {
            Channel::Ch1 => 0,
            Channel::Ch2 => 1,
            Channel::Ch3 => 2,
        }
    }
}

/// Number of samples averaged per reported value (config bits 11-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AveragingCount {
    /// 1 sample (power-on value).
    #[default]
    _1,
    /// 4 samples.
    _4,
    /// 16 samples.
    _16,
    /// 64 samples.
    _64,
    /// 128 samples.
    _128,
    /// 256 samples.
    _256,
    /// 512 samples.
    _512,
    /// 1024 samples.
    _1024,
}

impl AveragingCount {
    pub(crate) const fn bits(self) -> u16 {
        self as u16
    }

    /// The setting held in the 3-bit field `bits` (higher bits ignored).
    pub(crate) const fn from_bits(bits: u16) -> Self {
        match bits & 0b111 {
            0 => AveragingCount::_1,
            1 => AveragingCount::_4,
            2 => AveragingCount::_16,
            3 => AveragingCount::_64,
            4 => AveragingCount::_128,
            5 => AveragingCount::_256,
            6 => AveragingCount::_512,
            _ => AveragingCount::_1024,
        }
    }

    /// How many conversions one reported value averages.
    pub const fn samples(self) -> u32 {
        match self {
            AveragingCount::_1 => 1,
            AveragingCount::_4 => 4,
            AveragingCount::_16 => 16,
            AveragingCount::_64 => 64,
            AveragingCount::_128 => 128,
            AveragingCount::_256 => 256,
            AveragingCount::_512 => 512,
            AveragingCount::_1024 => 1024,
        }
    }
}

/// Conversion time of one bus- or shunt-voltage measurement (config bits 8-6
/// and 5-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConversionTime {
    /// 140 us.
    Us140,
    /// 204 us.
    Us204,
    /// 332 us.
    Us332,
    /// 588 us.
    Us588,
    /// 1.1 ms (power-on value).
    #[default]
    Us1100,
    /// 2.116 ms.
    Us2116,
    /// 4.156 ms.
    Us4156,
    /// 8.244 ms.
    Us8244,
}

impl ConversionTime {
    pub(crate) const fn bits(self) -> u16 {
        self as u16
    }

    /// The setting held in the 3-bit field `bits` (higher bits ignored).
    pub(crate) const fn from_bits(bits: u16) -> Self {
        match bits & 0b111 {
            0 => ConversionTime::Us140,
            1 => ConversionTime::Us204,
            2 => ConversionTime::Us332,
            3 => ConversionTime::Us588,
            4 => ConversionTime::Us1100,
            5 => ConversionTime::Us2116,
            6 => ConversionTime::Us4156,
            _ => ConversionTime::Us8244,
        }
    }

    /// The time in microseconds, to size a polling loop.
    pub const fn micros(self) -> u32 {
        match self {
            ConversionTime::Us140 => 140,
            ConversionTime::Us204 => 204,
            ConversionTime::Us332 => 332,
            ConversionTime::Us588 => 588,
            ConversionTime::Us1100 => 1_100,
            ConversionTime::Us2116 => 2_116,
            ConversionTime::Us4156 => 4_156,
            ConversionTime::Us8244 => 8_244,
        }
    }
}

/// Operating mode (config bits 2-0). Writing a single-shot mode starts one
/// conversion of every enabled channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Power-down (0b000; 0b100 is the same).
    PowerDown,
    /// Shunt voltage, single shot (0b001).
    ShuntSingleShot,
    /// Bus voltage, single shot (0b010).
    BusSingleShot,
    /// Shunt and bus voltage, single shot (0b011).
    ShuntBusSingleShot,
    /// Shunt voltage, continuous (0b101).
    ShuntContinuous,
    /// Bus voltage, continuous (0b110).
    BusContinuous,
    /// Shunt and bus voltage, continuous (0b111, power-on value).
    #[default]
    ShuntBusContinuous,
}

impl Mode {
    pub(crate) const fn bits(self) -> u16 {
        match self {
            Mode::PowerDown => 0b000,
            Mode::ShuntSingleShot => 0b001,
            Mode::BusSingleShot => 0b010,
            Mode::ShuntBusSingleShot => 0b011,
            Mode::ShuntContinuous => 0b101,
            Mode::BusContinuous => 0b110,
            Mode::ShuntBusContinuous => 0b111,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_on_values_match_the_reset_word_0x7127() {
        let word = (0b111 << 12)
            | (AveragingCount::default().bits() << 9)
            | (ConversionTime::default().bits() << 6)
            | (ConversionTime::default().bits() << 3)
            | Mode::default().bits();
        assert_eq!(word, 0x7127);
        assert_eq!(AveragingCount::_1024.bits(), 0b111);
        assert_eq!(ConversionTime::Us8244.bits(), 0b111);
        assert_eq!(Address::default().bits(), 0x40);
    }

    #[test]
    fn field_values_map_back_to_their_settings() {
        for bits in 0..8 {
            assert_eq!(AveragingCount::from_bits(bits).bits(), bits);
            assert_eq!(ConversionTime::from_bits(bits).bits(), bits);
        }
        assert_eq!(AveragingCount::from_bits(0b1000 | 0b011).bits(), 0b011);
        assert_eq!(AveragingCount::_1024.samples(), 1024);
        assert_eq!(AveragingCount::_16.samples(), 16);
    }
}
