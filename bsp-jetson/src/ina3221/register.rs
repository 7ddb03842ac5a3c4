//! Register map, bit fields and the cached configuration word (private).

/// Register addresses (datasheet SBOS576, table "Register Map").
pub(crate) struct Register;

impl Register {
    pub(crate) const CONFIGURATION: u8 = 0x00;
    /// Shunt-voltage registers of channels 1, 2, 3.
    pub(crate) const SHUNT_VOLTAGE: [u8; 3] = [0x01, 0x03, 0x05];
    /// Bus-voltage registers of channels 1, 2, 3.
    pub(crate) const BUS_VOLTAGE: [u8; 3] = [0x02, 0x04, 0x06];
    pub(crate) const MASK_ENABLE: u8 = 0x0F;
    pub(crate) const MANUFACTURER_ID: u8 = 0xFE;
    pub(crate) const DIE_ID: u8 = 0xFF;
}

/// Bits and fields of the configuration and mask/enable registers.
pub(crate) struct BitFlags;

impl BitFlags {
    pub(crate) const RESET: u16 = 1 << 15;
    /// Channel enable bits of channels 1, 2, 3 (bits 14, 13, 12).
    pub(crate) const CHANNEL_ENABLE: [u16; 3] = [1 << 14, 1 << 13, 1 << 12];
    pub(crate) const AVERAGING_SHIFT: u16 = 9;
    pub(crate) const BUS_CT_SHIFT: u16 = 6;
    pub(crate) const SHUNT_CT_SHIFT: u16 = 3;
    pub(crate) const MODE_SHIFT: u16 = 0;
    /// Every 3-bit field of the configuration register has this width.
    pub(crate) const FIELD_MASK: u16 = 0b111;
    /// Conversion-ready flag in the mask/enable register.
    pub(crate) const CONVERSION_READY: u16 = 1;
}

/// The identification values a genuine INA3221 answers with.
pub(crate) const MANUFACTURER_ID_TI: u16 = 0x5449;
pub(crate) const DIE_ID_INA3221: u16 = 0x3220;

/// Cached copy of the configuration register, so a setter changes one field with
/// a single write instead of a read-modify-write on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) bits: u16,
}

impl Default for Config {
    /// The datasheet's power-on value: all channels on, 1 sample, 1.1 ms
    /// conversions, shunt and bus continuous.
    fn default() -> Self {
        Config { bits: 0x7127 }
    }
}

impl Config {
    /// The word with the 3-bit field at `shift` replaced by `value`.
    pub(crate) fn with_field(self, shift: u16, value: u16) -> Self {
        let mask = BitFlags::FIELD_MASK << shift;
        Config {
            bits: (self.bits & !mask) | ((value & BitFlags::FIELD_MASK) << shift),
        }
    }

    /// The 3-bit field at `shift`.
    pub(crate) fn field(self, shift: u16) -> u16 {
        (self.bits >> shift) & BitFlags::FIELD_MASK
    }

    /// The word with `mask` set or cleared.
    pub(crate) fn with_flag(self, mask: u16, on: bool) -> Self {
        let bits = if on {
            self.bits | mask
        } else {
            self.bits & !mask
        };
        Config { bits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_replace_only_their_bits() {
        let c = Config::default().with_field(BitFlags::AVERAGING_SHIFT, 0b101);
        assert_eq!(c.bits, 0x7127 | (0b101 << 9));
        let c = c.with_field(BitFlags::MODE_SHIFT, 0b010);
        assert_eq!(c.bits & 0b111, 0b010);
        assert_eq!(c.field(BitFlags::MODE_SHIFT), 0b010);
        assert_eq!(c.field(BitFlags::AVERAGING_SHIFT), 0b101);
        assert_eq!(
            c.with_flag(BitFlags::CHANNEL_ENABLE[1], false).bits & (1 << 13),
            0
        );
        // A value wider than the field cannot spill into the neighbour.
        assert_eq!(
            Config::default()
                .with_field(BitFlags::SHUNT_CT_SHIFT, 0xFFFF)
                .bits,
            0x7127 | (0b111 << 3)
        );
    }
}
